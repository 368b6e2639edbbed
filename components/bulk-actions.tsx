"use client";
import { BulkResultsDialog } from "./bulk-results";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { batchKindOf } from "@/lib/batches";
import type { BulkResult } from "@/lib/dto";
import { ACTION_LABELS, DESTRUCTIVE_ACTIONS, OPERATOR_ACTIONS, STATE_LABELS, type OperatorAction } from "@/lib/lifecycle";
import type { Selection } from "@/lib/schemas";
import { plural } from "@/lib/format";
import { BatchStartForm } from "./batch-start";
import { PlanConfirm, ProfileSelect } from "./plan-preview";
import { NEEDS_OPERATOR, useSession } from "./session";
import { useTRPC } from "./trpc";
import { Dialog } from "./ui";

type Choice = OperatorAction | "set_profile";
const PROFILE_ACTIONS: readonly Choice[] = ["deploy", "reinstall", "set_profile"];

/** "3 machines moved, 1 refused, 2 skipped." */
export function resultSummary(results: { ok: boolean; skipped?: boolean }[], done: string): string {
  const ok = results.filter((r) => r.ok).length;
  const skipped = results.filter((r) => r.skipped).length;
  const refused = results.length - ok - skipped;
  return `${plural(ok, "machine")} ${done}, ${refused.toLocaleString("en-US")} refused, ${skipped.toLocaleString("en-US")} skipped.`;
}

/** One machine's outcome in the UI's words: its new state, its profile, or why it was refused or skipped. */
function outcomeText(r: BulkResult): string {
  if (!r.ok) return r.skipped ? `skipped: ${r.error ?? ""}` : (r.error ?? "refused");
  if (r.state) return `→ ${STATE_LABELS[r.state]}`;
  return r.profile !== undefined ? `OS profile: ${r.profile ?? "none"}` : "done";
}

/**
 * Lifecycle actions over the selection, plus "Set OS profile". Every one shows the server's plan first (who acts,
 * who is skipped and why, what changes) and confirms exactly that plan; destructive ones ask for the number of
 * machines that will act. Deploy, reinstall, release and inspect start a batch (BatchStartForm); Deploy and
 * Reinstall choose the OS profile for the whole selection (default: each machine's own).
 */
export function BulkActions({ selection, count, onDone }: { selection: Selection; count: number; onDone: () => void }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can } = useSession();
  const [action, setAction] = useState<Choice | null>(null);
  const [profile, setProfile] = useState("");
  const [results, setResults] = useState<{ rows: BulkResult[]; done: string } | null>(null);
  const finished = (rows: BulkResult[], done: string) => {
    setAction(null);
    setResults({ rows, done });
    void qc.invalidateQueries({ queryKey: trpc.machines.pathKey() });
    onDone();
  };
  const run = useMutation(trpc.machines.bulkAction.mutationOptions({ onSuccess: (r) => finished(r, "moved") }));
  const setOs = useMutation(trpc.machines.setOsProfile.mutationOptions({ onSuccess: (r) => finished(r, "updated") }));
  const batchKind = action && action !== "set_profile" ? batchKindOf(action) : undefined;
  const osProfileId = profile === "" ? undefined : Number(profile);
  const label = action === "set_profile" ? "Set OS profile" : action ? ACTION_LABELS[action] : "";
  const profilePicker = action && PROFILE_ACTIONS.includes(action) && (
    <ProfileSelect value={profile} onChange={setProfile} ownLabel={action === "set_profile" ? "No OS profile" : "Each machine's own profile"} />
  );

  return (
    <>
      <div className="flex flex-wrap items-center gap-1.5" role="group" aria-label="Bulk actions">
        {[...OPERATOR_ACTIONS, "set_profile" as const].map((a) => (
          <button
            key={a}
            className="btn btn-sm"
            disabled={!can("operator") || count === 0}
            title={!can("operator") ? NEEDS_OPERATOR : undefined}
            onClick={() => {
              run.reset();
              setOs.reset();
              setProfile("");
              setAction(a);
            }}
          >
            {a === "set_profile" ? "Set OS profile" : ACTION_LABELS[a]}
          </button>
        ))}
      </div>
      <Dialog open={!!action} onClose={() => setAction(null)} title={action ? `${label}: ${plural(count, "selected machine")}` : ""} wide>
        {action && batchKind && (
          <BatchStartForm
            kind={batchKind}
            selection={selection}
            osProfileId={PROFILE_ACTIONS.includes(action) ? osProfileId : undefined}
            onCancel={() => setAction(null)}
          >
            {profilePicker}
          </BatchStartForm>
        )}
        {action === "set_profile" && (
          <PlanConfirm
            selection={selection}
            op={{ type: "setProfile", osProfileId: osProfileId ?? null }}
            typed={false}
            danger={false}
            confirmLabel="Set OS profile of"
            pending={setOs.isPending}
            error={setOs.error}
            onCancel={() => setAction(null)}
            onConfirm={(planId) => setOs.mutate({ selection, osProfileId: osProfileId ?? null, planId })}
          >
            {profilePicker}
          </PlanConfirm>
        )}
        {action && action !== "set_profile" && !batchKind && (
          <PlanConfirm
            selection={selection}
            op={{ type: "action", action }}
            typed={DESTRUCTIVE_ACTIONS.includes(action)}
            danger={DESTRUCTIVE_ACTIONS.includes(action)}
            confirmLabel={ACTION_LABELS[action]}
            pending={run.isPending}
            error={run.error}
            onCancel={() => setAction(null)}
            onConfirm={(planId) => run.mutate({ selection, action, planId })}
          />
        )}
      </Dialog>
      <BulkResultsDialog
        rows={results?.rows.map((r) => ({ id: r.id, name: r.name, ok: r.ok, text: outcomeText(r) })) ?? null}
        title="Bulk action results"
        summary={results ? resultSummary(results.rows, results.done) : ""}
        summaryTestId="bulk-summary"
        onClose={() => setResults(null)}
      />
    </>
  );
}
