/**
 * Output schemas of the tRPC procedures (`.output()`): what each returns, for the OpenAPI document
 * (server/api/openapi.ts) and as a guard that nothing unlisted (a secret, a hash) leaves the server: plain objects
 * strip unknown keys. Every field the UI reads is named here (tsc checks the UI against these).
 */
import { z } from "zod";
import { BATCH_KINDS, BATCH_STATES } from "../../lib/batches";
import { JOB_KINDS, JOB_STATES, STEP_STATES } from "../../lib/jobs";
import { MACHINE_STATES, OPERATOR_ACTIONS } from "../../lib/lifecycle";
import { FIRMWARE_SETTINGS, POWER_STATES, ROLES } from "../../lib/schemas";
import { bulkOpSchema, SKIP_REASONS } from "../../lib/plan";
import { tokenDtoSchema } from "../auth/tokens";

export { netbootOut } from "./outputs-netboot";

const n = z.number();
const s = z.string();
const ns = s.nullable();
const nn = n.nullable();
const state = z.enum(MACHINE_STATES);
const power = z.enum(POWER_STATES);

export const okOut = z.object({ ok: z.literal(true) });
export const idOut = z.object({ id: n });
export const noneOut = z.void();

export const sessionUserOut = z.object({ id: n, name: s, role: z.enum(ROLES) });

const rackSummary = z.object({ id: n, name: s, site: ns, row: ns, heightU: n, machineCount: n, usedU: n });
const machineCore = {
  id: n,
  name: s,
  state,
  powerState: power,
  powerPending: z.enum(["on", "off"]).nullable(),
  maintenance: z.boolean(),
  uPosition: nn,
  uHeight: n,
  bootMac: ns,
  ip: ns,
  lastError: ns,
  bmcReachable: z.boolean().nullable(),
  bmcLastSeen: nn,
  firmware: z.enum(FIRMWARE_SETTINGS),
  bootFirmware: z.enum(["bios", "uefi"]).nullable(),
};
const machineRow = z.object({ ...machineCore, rackId: nn, rackName: ns, osProfileName: ns });
export const racksOut = {
  list: z.array(rackSummary),
  elevations: z.array(rackSummary.extend({ machines: z.array(z.object(machineCore)) })),
};

/** One interface of a machine's network (lib/net-model.ts NetIface): the fields of its kind are set, the rest absent. */
const netIfaceOut = z.object({
  kind: z.enum(["ethernet", "bond", "vlan"]),
  name: s,
  mac: ns.optional(),
  members: z.array(s).optional(),
  bondMode: s.optional(),
  miimon: n.optional(),
  lacpRate: ns.optional(),
  xmitHashPolicy: ns.optional(),
  parent: s.optional(),
  vlanId: n.optional(),
  master: ns,
  subnetId: nn.optional(),
  subnet6Id: nn.optional(),
  mode: s,
  ipv4: ns.optional(),
  gateway4: ns.optional(),
  ipv6Mode: s,
  ipv6: ns.optional(),
  gateway6: ns.optional(),
  dns: z.array(s),
  mtu: nn.optional(),
});

export const machinesOut = {
  network: z.object({ bootMac: ns, network: z.object({ interfaces: z.array(netIfaceOut), dns: z.array(s), search: z.array(s) }) }),
  list: z.object({ rows: z.array(machineRow), total: n, page: n, pageSize: n, nextCursor: ns }),
  /** machines.list with only the requested fields in each row (and id). */
  listFields: z.object({ rows: z.array(machineRow.partial().extend({ id: n })), total: n, page: n, pageSize: n, nextCursor: ns }),
  count: z.object({ total: n }),
  summary: z.object({
    total: n,
    byState: z.array(z.object({ state, n })),
    byPower: z.array(z.object({ power, n })),
    maintenance: n,
  }),
  get: machineRow.extend({
    maintenanceReason: ns,
    osProfileId: nn,
    bootArch: nn,
    bootSeenAt: nn,
    inventory: z.record(s, z.unknown()).nullable(),
    createdAt: n,
    updatedAt: n,
    nics: z.array(z.object({ id: n, mac: s, ip: ns, isBoot: z.boolean(), ifname: ns, prefix: nn, gateway: ns })),
    bmc: z
      .object({
        driver: s,
        address: s,
        port: n,
        username: s,
        hasPassword: z.boolean(),
        reachable: z.boolean().nullable(),
        lastSeen: nn,
        privilege: s,
        cipherSuite: n,
        lastError: ns,
      })
      .nullable(),
    allowedActions: z.array(z.enum(OPERATOR_ACTIONS)),
  }),
  importCsv: z.object({
    ok: z.boolean(),
    dryRun: z.boolean(),
    imported: n,
    errors: z.array(z.object({ message: s, row: n.optional(), field: s.optional() })),
    rows: z.array(z.object({ row: n, name: s, mac: s, ip: ns, rack: ns, uPosition: nn, bmcAddress: ns, osProfile: ns })),
  }),
  bulkEnroll: z.object({
    ok: z.boolean(),
    dryRun: z.boolean(),
    enrolled: n,
    ids: z.array(n),
    errors: z.array(z.object({ message: s, row: n.optional(), field: s.optional() })),
  }),
  action: z.object({ machineId: n, from: state, to: state, jobId: n.optional() }),
  bulkAction: z.array(
    z.object({ id: n, name: s, ok: z.boolean(), error: s.optional(), state: state.optional(), skipped: z.boolean().optional(), profile: ns.optional() }),
  ),
  plan: z.object({
    planId: s,
    op: bulkOpSchema,
    title: s,
    total: n,
    acting: n,
    skipped: n,
    skipTotals: z.array(z.object({ reason: z.enum(SKIP_REASONS), label: s, count: n })),
    transitions: z.array(z.object({ label: s, count: n })),
    changes: z.array(z.object({ label: s, count: n })),
    rows: z.array(
      z.object({
        id: n,
        name: s,
        act: z.boolean(),
        reason: z.enum(SKIP_REASONS).nullable(),
        detail: s,
        from: state,
        to: state.nullable(),
        changes: z.array(s),
        profile: ns,
      }),
    ),
    rowsTruncated: z.boolean(),
  }),
};

export const eventsOut = {
  list: z.object({
    items: z.array(
      z.object({ id: n, ts: n, actor: s, kind: s, machineId: nn, machineName: ns.optional(), message: s, payload: z.record(s, z.unknown()).nullable() }),
    ),
    nextBefore: nn,
  }),
  facets: z.object({ kinds: z.array(s), actors: z.array(s) }),
};

export const authOut = { changePassword: z.object({ endedSessions: n }) };

export const usersOut = {
  list: z.array(z.object({ id: n, name: s, role: z.enum(ROLES), disabled: z.boolean(), createdAt: n, lastLoginAt: nn })),
};

const powerSync = z.object({ intervalS: n, jitterS: n, concurrency: n, failureThreshold: n, skipStates: z.array(z.enum(MACHINE_STATES)) });
const sweepStats = z.object({ machines: n, ok: n, failed: n, changed: n, written: n, durationMs: n, cpuMs: n, at: s });
export const oobOut = {
  power: z.array(
    z.object({ id: n, name: s, ok: z.boolean(), powerState: power.optional(), pending: z.enum(["on", "off"]).optional(), error: s.optional(), code: s.optional(), skipped: z.boolean().optional() }),
  ),
  powerStart: z.object({
    /** Wait on it with oob.powerWait. */
    operationId: s,
    results: z.array(z.object({ id: n, name: s, ok: z.boolean(), pending: z.enum(["on", "off"]).optional(), error: s.optional(), code: s.optional(), skipped: z.boolean().optional() })),
  }),
  powerWait: z.object({
    done: z.boolean(),
    results: z.array(z.object({ id: n, name: s, ok: z.boolean(), powerState: power.optional(), error: s.optional(), code: s.optional(), skipped: z.boolean().optional() })).nullable(),
  }),
  checkBmc: z.object({ reachable: z.boolean(), info: s.optional(), error: s.optional(), code: s.optional() }),
  syncSettings: powerSync,
  sweep: sweepStats,
  syncStatus: z.object({
    /** A power-sync loop runs in this process (RACKHAND_POWER_SYNC). */
    loop: z.boolean(),
    last: sweepStats.nullable(),
    probe: z.object({ native: n, fallback: n, ipmitool: n, lastFallbackReason: s.optional() }),
    statusProbe: z.enum(["native", "ipmitool"]),
  }),
};

const job = { id: n, machineId: n, batchId: nn, kind: z.enum(JOB_KINDS), state: z.enum(JOB_STATES), error: ns };
export const jobsOut = {
  forMachine: z.array(
    z.object({
      ...job,
      createdBy: ns,
      createdAt: n,
      startedAt: nn,
      finishedAt: nn,
      steps: z.array(
        z.object({
          id: n,
          group: n,
          name: s,
          runner: z.enum(["server", "agent"]),
          state: z.enum(STEP_STATES),
          attempt: n,
          maxAttempts: n,
          timeoutS: n,
          error: ns,
          startedAt: nn,
          finishedAt: nn,
          nextAttemptAt: nn,
        }),
      ),
    }),
  ),
  logs: z.array(z.object({ seq: n, ts: n, stream: s, text: s, stepId: nn })),
  get: z.object(job),
};

const skipped = z.array(z.object({ machineId: n, name: s, error: s }));
const batchSummary = z.object({
  id: n,
  kind: z.enum(BATCH_KINDS),
  state: z.enum(BATCH_STATES),
  concurrency: n,
  failureThresholdPct: n,
  createdBy: ns,
  createdAt: n,
  finishedAt: nn,
  skipped: n,
  counts: z.object({ total: n, running: n, queued: n, succeeded: n, failed: n, cancelled: n }),
  alert: z
    .object({
      at: n,
      message: s,
      webhook: z.object({ state: z.enum(["none", "sending", "sent", "failed"]), attempts: n, error: ns }),
    })
    .nullable(),
});
const batchSettings = z.object({ webhookUrl: ns, publicUrl: ns });
export const batchesOut = {
  create: z.object({ batchId: n, queued: n, skipped }),
  list: z.array(batchSummary),
  get: batchSummary.extend({
    skippedMachines: skipped,
    machines: z.array(
      z.object({
        machineId: n,
        machineName: s,
        machineState: state,
        powerState: power,
        jobId: n,
        jobState: z.enum(JOB_STATES),
        startedAt: nn,
        finishedAt: nn,
        error: ns,
        currentStep: z.object({ name: s, attempt: n, maxAttempts: n, state: s }).nullable(),
      }),
    ),
  }),
  summary: batchSummary,
  settings: batchSettings,
};

export const tokensOut = {
  list: z.array(tokenDtoSchema),
  create: z.object({ token: s, info: tokenDtoSchema }),
};

const range = z.object({ start: s, end: s });
const subnetCore = {
  id: n,
  name: s,
  cidr: s,
  family: z.union([z.literal(4), z.literal(6)]),
  gateway: ns,
  dns: z.array(s),
  vlanId: nn,
  reserved: z.array(range),
  dynamic: range.nullable(),
  provisioning: z.boolean(),
  allocated: n,
  /** Decimal text: an IPv6 subnet holds more addresses than a JSON number can count. */
  assignable: s,
  free: s,
};
export const subnetsOut = {
  list: z.array(z.object(subnetCore)),
  get: z.object({
    ...subnetCore,
    allocations: z.array(z.object({ address: s, mode: z.enum(["auto", "static"]), machineId: n, machineName: s, machineState: state, interface: ns, mac: ns })),
    more: z.boolean(),
  }),
};
