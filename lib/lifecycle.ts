/**
 * The machine lifecycle (DESIGN §4). This table is the single source of truth: the server's
 * `transition()` checks it before writing, and the UI offers only the actions it allows.
 * Isomorphic: no node:* imports.
 */

export const MACHINE_STATES = [
  "enrolled",
  "manageable",
  "inspecting",
  "inspect_failed",
  "available",
  "deploying",
  "deploy_failed",
  "deployed",
  "cleaning",
  "clean_failed",
] as const;
export type MachineState = (typeof MACHINE_STATES)[number];

/** Actions an operator may request. */
export const OPERATOR_ACTIONS = ["manage", "inspect", "provide", "deploy", "reinstall", "release", "retry", "abort"] as const;
/** Actions only the system takes, when work finishes or fails. */
export const SYSTEM_ACTIONS = ["succeed", "fail"] as const;
export const LIFECYCLE_ACTIONS = [...OPERATOR_ACTIONS, ...SYSTEM_ACTIONS] as const;
export type OperatorAction = (typeof OPERATOR_ACTIONS)[number];
export type LifecycleAction = (typeof LIFECYCLE_ACTIONS)[number];

export interface Transition {
  from: MachineState;
  action: LifecycleAction;
  to: MachineState;
}

const t = (from: MachineState, action: LifecycleAction, to: MachineState): Transition => ({ from, action, to });

export const TRANSITIONS: readonly Transition[] = [
  // Enrolment: the BMC is verified (credentials answer), then the machine is ours to manage.
  t("enrolled", "manage", "manageable"),
  // Inspection collects inventory through the agent.
  t("manageable", "inspect", "inspecting"),
  t("manageable", "provide", "available"),
  t("available", "inspect", "inspecting"),
  t("available", "manage", "manageable"),
  t("inspecting", "succeed", "available"),
  t("inspecting", "fail", "inspect_failed"),
  t("inspecting", "abort", "inspect_failed"),
  // Deployment.
  t("available", "deploy", "deploying"),
  t("deploying", "succeed", "deployed"),
  t("deploying", "fail", "deploy_failed"),
  t("deploying", "abort", "deploy_failed"),
  t("deployed", "reinstall", "deploying"),
  // Release wipes the machine and returns it to the pool.
  t("deployed", "release", "cleaning"),
  t("cleaning", "succeed", "available"),
  t("cleaning", "fail", "clean_failed"),
  t("cleaning", "abort", "clean_failed"),
  // Failures: retry the phase that failed, or give the machine back to manageable.
  t("inspect_failed", "retry", "inspecting"),
  t("deploy_failed", "retry", "deploying"),
  t("clean_failed", "retry", "cleaning"),
  t("inspect_failed", "manage", "manageable"),
  t("deploy_failed", "manage", "manageable"),
  t("clean_failed", "manage", "manageable"),
];

const byKey = new Map<string, MachineState>(TRANSITIONS.map((x) => [`${x.from}:${x.action}`, x.to]));

/** The state `action` leads to from `from`, or null when the move is not allowed. */
export function nextState(from: MachineState, action: LifecycleAction): MachineState | null {
  return byKey.get(`${from}:${action}`) ?? null;
}

/** Operator actions allowed in `state`, in table order (what the UI shows as buttons). */
export function allowedActions(state: MachineState): OperatorAction[] {
  return TRANSITIONS.filter((x) => x.from === state && (OPERATOR_ACTIONS as readonly string[]).includes(x.action)).map(
    (x) => x.action as OperatorAction,
  );
}

/** States in which work runs on the machine (it boots the agent over the network). */
export const BUSY_STATES: readonly MachineState[] = ["inspecting", "deploying", "cleaning"];

/** A machine may be deleted only when nothing runs on it and no workload lives on it. */
export const DELETABLE_STATES: readonly MachineState[] = [
  "enrolled",
  "manageable",
  "available",
  "inspect_failed",
  "deploy_failed",
  "clean_failed",
];

export const STATE_LABELS: Record<MachineState, string> = {
  enrolled: "Enrolled",
  manageable: "Manageable",
  inspecting: "Inspecting",
  inspect_failed: "Inspect failed",
  available: "Available",
  deploying: "Deploying",
  deploy_failed: "Deploy failed",
  deployed: "Deployed",
  cleaning: "Cleaning",
  clean_failed: "Clean failed",
};

export const ACTION_LABELS: Record<LifecycleAction, string> = {
  manage: "Manage",
  inspect: "Inspect",
  provide: "Provide",
  deploy: "Deploy",
  reinstall: "Reinstall",
  release: "Release",
  retry: "Retry",
  abort: "Abort",
  succeed: "Succeed",
  fail: "Fail",
};

/** Actions that destroy data or interrupt work: the UI asks for confirmation. */
export const DESTRUCTIVE_ACTIONS: readonly OperatorAction[] = ["reinstall", "release", "abort", "deploy"];
