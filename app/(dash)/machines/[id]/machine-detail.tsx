"use client";
import { InventoryTables } from "@/components/inventory-tables";
import { MachineNetwork } from "@/components/machine-network";
import { ARCH_LABELS, firmwareLabel } from "@/lib/schemas";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState, type ReactNode } from "react";
import { dateTime, relativeTime } from "@/lib/format";
import { ACTION_LABELS, DESTRUCTIVE_ACTIONS, STATE_LABELS, type OperatorAction } from "@/lib/lifecycle";
import { EventList } from "@/components/event-list";
import { JobsSection } from "@/components/job-timeline";
import { useMachineRoom } from "@/components/live";
import { MachineForm } from "@/components/machine-form";
import { ProfileSelect } from "@/components/plan-preview";
import { PowerControls } from "@/components/power-controls";
import { SerialConsole } from "@/components/serial-console";
import { NEEDS_OPERATOR, useSession } from "@/components/session";
import { errorInfo, useTRPC } from "@/components/trpc";
import { useConfirm } from "@/components/dialog";
import { Dialog, ErrorBanner, PageHeader, PowerDot, StateBadge } from "@/components/ui";

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="grid grid-cols-3 gap-2 py-1.5 text-sm">
      <dt className="text-slate-500">{label}</dt>
      <dd className="col-span-2 min-w-0 break-words">{children}</dd>
    </div>
  );
}

export function MachineDetailView({ id }: { id: number }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const router = useRouter();
  const { can } = useSession();
  useMachineRoom(id);
  const { data: m, error, isLoading } = useQuery(trpc.machines.get.queryOptions({ id }));
  const [confirm, setConfirm] = useState<OperatorAction | null>(null);
  /** Deploy and reinstall: the OS profile chosen in the dialog ("" = the machine's own). */
  const [profile, setProfile] = useState("");
  const [editing, setEditing] = useState(false);
  const [tab, setTab] = useState<"overview" | "console">("overview");
  const invalidate = () => void qc.invalidateQueries({ queryKey: trpc.machines.pathKey() });
  const action = useMutation(trpc.machines.action.mutationOptions({ onSuccess: () => (setConfirm(null), invalidate()) }));
  const maint = useMutation(trpc.machines.setMaintenance.mutationOptions({ onSuccess: invalidate }));
  const del = useMutation(trpc.machines.delete.mutationOptions({ onSuccess: () => router.push("/machines") }));
  const operator = can("operator");
  const ask = useConfirm();

  if (isLoading) return <p className="text-slate-500">Loading…</p>;
  if (error || !m) return <ErrorBanner message={error ? errorInfo(error).message : "Not found"} />;

  const run = (a: OperatorAction) => (DESTRUCTIVE_ACTIONS.includes(a) ? (setProfile(""), setConfirm(a)) : action.mutate({ id, action: a }));
  const withProfile = confirm === "deploy" || confirm === "reinstall";
  const mutationError = action.error ?? maint.error ?? del.error;

  return (
    <div>
      <div className="mb-1 text-sm">
        <Link href="/machines" className="text-blue-700 hover:underline">
          ← Machines
        </Link>
      </div>
      <PageHeader
        title={m.name}
        subtitle={
          <span className="flex items-center gap-2" data-testid="machine-state">
            <StateBadge state={m.state} />
            <PowerDot power={m.powerState} pending={m.powerPending} withLabel />
            {m.maintenance && (
              <span className="rounded bg-amber-100 px-1.5 py-0.5 text-xs font-semibold text-amber-800">
                Maintenance{m.maintenanceReason ? `: ${m.maintenanceReason}` : ""}
              </span>
            )}
            {m.inventory?.simulated === true && (
              <span className="rounded bg-violet-100 px-1.5 py-0.5 text-xs font-semibold text-violet-800" data-testid="simulated-agent" title="Demo lab: its agent is simulated (server/demo); nothing is written to any disk">
                Simulated agent (demo)
              </span>
            )}
          </span>
        }
        actions={
          <>
            {m.allowedActions.map((a) => (
              <button
                key={a}
                className={`btn ${DESTRUCTIVE_ACTIONS.includes(a) ? "" : "btn-primary"}`}
                disabled={!operator || action.isPending}
                title={operator ? undefined : NEEDS_OPERATOR}
                onClick={() => run(a)}
              >
                {ACTION_LABELS[a]}
              </button>
            ))}
            <button
              className="btn"
              disabled={!operator || maint.isPending}
              title={operator ? undefined : NEEDS_OPERATOR}
              onClick={() => {
                if (m.maintenance) return maint.mutate({ id, on: false });
                void ask({
                  title: `Put ${m.name} in maintenance?`,
                  message: "Rackhand starts no action on a machine in maintenance until it is ended.",
                  confirmLabel: "Maintenance",
                  input: { label: "Reason (optional)", maxLength: 500 },
                }).then((reason) => reason !== null && maint.mutate({ id, on: true, reason: reason || undefined }));
              }}
            >
              {m.maintenance ? "End maintenance" : "Maintenance"}
            </button>
            <button className="btn" disabled={!operator} title={operator ? undefined : NEEDS_OPERATOR} onClick={() => setEditing(true)}>
              Edit
            </button>
          </>
        }
      />
      <ErrorBanner message={mutationError ? errorInfo(mutationError).message : null} />
      {m.lastError && (
        <div className="mb-4 rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800">
          <b>Last error:</b> {m.lastError}
        </div>
      )}
      <div className="mb-3 flex gap-1 border-b border-slate-200" role="tablist" aria-label="Machine views">
        {(["overview", "console"] as const).map((t) => (
          <button
            key={t}
            role="tab"
            aria-selected={tab === t}
            className={`-mb-px border-b-2 px-3 py-1.5 text-sm ${tab === t ? "border-blue-600 font-semibold text-blue-700" : "border-transparent text-slate-600"}`}
            onClick={() => setTab(t)}
          >
            {t === "overview" ? "Overview" : "Console"}
          </button>
        ))}
      </div>
      {tab === "console" && (
        <section className="card p-4" aria-label="Console">
          {m.bmc ? <SerialConsole machineId={id} /> : <p className="text-sm text-slate-500">No BMC configured: no serial console.</p>}
        </section>
      )}
      {tab === "overview" && (
      <>
      <section className="card mb-4 p-4" aria-label="Power">
        <h2 className="mb-2 font-semibold">Power and boot</h2>
        <PowerControls machine={m} />
      </section>
      <JobsSection machineId={id} machineName={m.name} simulated={m.inventory?.simulated === true} />
      <div className="grid gap-4 lg:grid-cols-3">
        <section className="card p-4" aria-label="Details">
          <h2 className="mb-2 font-semibold">Details</h2>
          <dl className="divide-y divide-slate-100">
            <Row label="Rack / U">{m.rackName ? `${m.rackName} / U${m.uPosition}${m.uHeight > 1 ? `–U${m.uPosition! + m.uHeight - 1}` : ""}` : "unracked"}</Row>
            <Row label="Height">{m.uHeight}U</Row>
            <Row label="OS profile">{m.osProfileName ?? "—"}</Row>
            <Row label="Firmware">
              <span data-testid="machine-firmware">{firmwareLabel(m.firmware, m.bootFirmware)}</span>
              {m.bootArch != null && (
                <span className="text-slate-500">
                  {" "}· last network boot: {ARCH_LABELS[m.bootArch] ?? `architecture ${m.bootArch}`}
                  {m.bootSeenAt ? `, ${relativeTime(m.bootSeenAt)}` : ""}
                </span>
              )}
            </Row>
            <Row label="Enrolled">{dateTime(m.createdAt)}</Row>
            <Row label="Updated">{relativeTime(m.updatedAt)}</Row>
          </dl>
        </section>
        <section className="card p-4" aria-label="Network">
          <h2 className="mb-2 font-semibold">Network</h2>
          <dl className="divide-y divide-slate-100">
            {m.nics.map((n) => (
              <Row key={n.id} label={n.isBoot ? "Boot NIC" : "NIC"}>
                <span className="font-mono text-xs">{n.mac}</span>
                {n.ip && <span className="ml-2 font-mono text-xs text-slate-600">{n.ip}</span>}
              </Row>
            ))}
          </dl>
        </section>
        <section className="card p-4" aria-label="BMC">
          <h2 className="mb-2 font-semibold">BMC</h2>
          {m.bmc ? (
            <dl className="divide-y divide-slate-100">
              <Row label="Address">
                <span className="font-mono text-xs">
                  {m.bmc.address}:{m.bmc.port}
                </span>
              </Row>
              <Row label="Driver">{m.bmc.driver}</Row>
              <Row label="User">{m.bmc.username}</Row>
              <Row label="Password">{m.bmc.hasPassword ? "stored (encrypted)" : "—"}</Row>
              <Row label="Privilege / cipher">
                {m.bmc.privilege} / suite {m.bmc.cipherSuite}
              </Row>
              <Row label="Reachable">
                <span data-testid="bmc-reachable">
                  {m.bmc.reachable == null ? "not checked yet" : m.bmc.reachable ? "yes" : <span className="text-red-700">no (BMC unreachable)</span>}
                </span>
                <span className="ml-2 text-xs text-slate-500">last seen {relativeTime(m.bmc.lastSeen)}</span>
              </Row>
              {m.bmc.lastError && (
                <Row label="Last BMC error">
                  <span className="text-xs text-red-700">{m.bmc.lastError}</span>
                </Row>
              )}
            </dl>
          ) : (
            <p className="text-sm text-slate-500">No BMC configured.</p>
          )}
        </section>
      </div>
      <MachineNetwork machineId={id} state={m.state} />
      {m.inventory && (
        <section className="card mt-4 p-4" aria-label="Inventory">
          <h2 className="mb-2 font-semibold">Inventory</h2>
          <InventoryTables inventory={m.inventory} />
        </section>
      )}
      <section className="card mt-4 p-4" aria-label="Machine events">
        <h2 className="mb-2 font-semibold">Events</h2>
        <EventList machineId={id} />
      </section>
      </>
      )}
      {operator && (
        <div className="mt-4 text-right">
          <button
            className="text-sm text-red-700 hover:underline"
            onClick={() =>
              void ask({ title: `Delete ${m.name}?`, message: "Its history stays in the fleet events.", confirmLabel: "Delete", danger: true }).then(
                (ok) => ok !== null && del.mutate({ id }),
              )
            }
          >
            Delete machine
          </button>
        </div>
      )}
      <Dialog open={!!confirm} onClose={() => setConfirm(null)} title={confirm ? `${ACTION_LABELS[confirm]} ${m.name}?` : ""}>
        {confirm && (
          <div className="space-y-3">
            <p className="text-sm">
              This is <b>{ACTION_LABELS[confirm]}</b> on {m.name}, currently {STATE_LABELS[m.state]}. It may erase or interrupt work on the machine.
            </p>
            {withProfile && <ProfileSelect value={profile} onChange={setProfile} ownLabel={`Its own profile (${m.osProfileName ?? "none"})`} />}
            <ErrorBanner message={action.error ? errorInfo(action.error).message : null} />
            <div className="flex justify-end gap-2">
              <button className="btn" onClick={() => setConfirm(null)}>
                Cancel
              </button>
              <button className="btn btn-danger" disabled={action.isPending} onClick={() => action.mutate({ id, action: confirm, ...(withProfile && profile !== "" && { osProfileId: Number(profile) }) })}>
                {ACTION_LABELS[confirm]}
              </button>
            </div>
          </div>
        )}
      </Dialog>
      <Dialog open={editing} onClose={() => setEditing(false)} title={`Edit ${m.name}`} wide>
        {editing && <MachineForm machine={m} onSaved={() => setEditing(false)} />}
      </Dialog>
    </div>
  );
}
