"use client";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import type { BmcCheckResult, MachineDetail } from "@/lib/dto";
import { DISRUPTIVE_POWER_ACTIONS, POWER_ACTION_LABELS, POWER_ACTIONS, type PowerActionName } from "@/lib/schemas";
import { NEEDS_OPERATOR, useSession } from "./session";
import { errorInfo, useTRPC } from "./trpc";
import { Dialog, ErrorBanner } from "./ui";

/** Power buttons, boot device and "Check BMC" for one machine. */
export function PowerControls({ machine: m }: { machine: MachineDetail }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can } = useSession();
  const operator = can("operator");
  const [confirm, setConfirm] = useState<PowerActionName | null>(null);
  const [outcome, setOutcome] = useState<string | null>(null);
  const [check, setCheck] = useState<BmcCheckResult | null>(null);
  const [device, setDevice] = useState<"pxe" | "disk">("pxe");
  const [persistent, setPersistent] = useState(false);
  const invalidate = () => void qc.invalidateQueries({ queryKey: trpc.machines.pathKey() });
  // The action is answered at once ("powering on…" shows on the badge); the outcome follows from powerWait.
  const wait = useMutation(
    trpc.oob.powerWait.mutationOptions({
      onSuccess: (w, vars) => {
        const r = w.results?.[0];
        if (!w.done) wait.mutate(vars);
        else setOutcome(r ? (r.ok ? `Power is ${r.powerState}` : r.error!) : null);
        invalidate();
      },
    }),
  );
  const power = useMutation(
    trpc.oob.powerStart.mutationOptions({
      onSuccess: ({ operationId, results: [r] }) => {
        setConfirm(null);
        invalidate();
        if (r && !r.ok) return setOutcome(r.error!);
        setOutcome(r?.pending ? `Powering ${r.pending}…` : null);
        wait.mutate({ operationId, timeoutMs: 20_000 });
      },
    }),
  );
  const boot = useMutation(trpc.oob.bootDevice.mutationOptions({ onSuccess: () => setOutcome(`Boot device set to ${device === "pxe" ? "PXE" : "disk"}`) }));
  const checkBmc = useMutation(trpc.oob.checkBmc.mutationOptions({ onSuccess: (r) => (setCheck(r), invalidate()) }));
  if (!m.bmc) return <p className="text-sm text-slate-500">No BMC configured: power is controlled by hand.</p>;
  const run = (a: PowerActionName) => (DISRUPTIVE_POWER_ACTIONS.includes(a) ? setConfirm(a) : power.mutate({ selection: { ids: [m.id] }, action: a }));
  const busy = power.isPending || boot.isPending || checkBmc.isPending;
  const disabled = !operator || busy;
  const title = operator ? undefined : NEEDS_OPERATOR;
  const error = power.error ?? wait.error ?? boot.error ?? checkBmc.error;

  return (
    <div className="space-y-3" aria-label="Power controls">
      <div className="flex flex-wrap gap-1.5" role="group" aria-label="Power">
        {POWER_ACTIONS.map((a) => (
          <button key={a} className={`btn btn-sm ${a === "on" ? "btn-primary" : ""}`} disabled={disabled} title={title} onClick={() => run(a)}>
            {POWER_ACTION_LABELS[a]}
          </button>
        ))}
      </div>
      <div className="flex flex-wrap items-center gap-2 text-sm">
        <label className="flex items-center gap-1">
          Boot device
          <select className="input w-auto py-0.5" value={device} onChange={(e) => setDevice(e.target.value as "pxe" | "disk")} aria-label="Boot device">
            <option value="pxe">PXE</option>
            <option value="disk">Disk</option>
          </select>
        </label>
        <label className="flex items-center gap-1">
          <input type="checkbox" checked={persistent} onChange={(e) => setPersistent(e.target.checked)} /> persistent
        </label>
        <button className="btn btn-sm" disabled={disabled} title={title} onClick={() => boot.mutate({ id: m.id, device, persistent })}>
          Set boot device
        </button>
        <button className="btn btn-sm" disabled={disabled} title={title} onClick={() => checkBmc.mutate({ id: m.id })}>
          Check BMC
        </button>
      </div>
      {busy && <p className="text-xs text-slate-500">Talking to the BMC…</p>}
      {outcome && !busy && (
        <p className="text-sm text-slate-700" role="status" data-testid="power-outcome">
          {outcome}
        </p>
      )}
      {check && !busy && (
        <p className={`text-sm ${check.reachable ? "text-emerald-700" : "text-red-700"}`} role="status" data-testid="bmc-check">
          {check.reachable ? `BMC answers: ${check.info}` : `BMC check failed: ${check.error}`}
        </p>
      )}
      <ErrorBanner message={error ? errorInfo(error).message : null} />
      <Dialog open={!!confirm} onClose={() => setConfirm(null)} title={confirm ? `${POWER_ACTION_LABELS[confirm]} ${m.name}?` : ""}>
        {confirm && (
          <div className="space-y-3">
            <p className="text-sm">This interrupts whatever runs on {m.name} (power is {m.powerState}).</p>
            <div className="flex justify-end gap-2">
              <button className="btn" onClick={() => setConfirm(null)}>
                Cancel
              </button>
              <button className="btn btn-danger" disabled={power.isPending} onClick={() => power.mutate({ selection: { ids: [m.id] }, action: confirm })}>
                {POWER_ACTION_LABELS[confirm]}
              </button>
            </div>
          </div>
        )}
      </Dialog>
    </div>
  );
}
