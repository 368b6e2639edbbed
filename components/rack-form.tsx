"use client";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import type { RackSummary } from "@/lib/dto";
import { rackCreateSchema } from "@/lib/schemas";
import { errorInfo, useTRPC } from "./trpc";
import { ErrorBanner, Field } from "./ui";

/** Create a rack, or edit one when `rack` is given. Validates with the server's own zod schema as you type. */
export function RackForm({ rack, onDone }: { rack?: RackSummary; onDone: () => void }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const [v, setV] = useState({
    name: rack?.name ?? "",
    site: rack?.site ?? "",
    row: rack?.row ?? "",
    heightU: String(rack?.heightU ?? 42),
  });
  const [touched, setTouched] = useState(false);
  const parsed = rackCreateSchema.safeParse({ ...v, heightU: Number(v.heightU) });
  const fieldErrors: Record<string, string> = {};
  if (!parsed.success) for (const i of parsed.error.issues) fieldErrors[String(i.path[0])] ??= i.message;
  const done = () => {
    void qc.invalidateQueries({ queryKey: trpc.racks.pathKey() });
    onDone();
  };
  const create = useMutation(trpc.racks.create.mutationOptions({ onSuccess: done }));
  const update = useMutation(trpc.racks.update.mutationOptions({ onSuccess: done }));
  const m = rack ? update : create;
  const server = m.error ? errorInfo(m.error) : null;
  const serverField = (f: string) => server?.details.find((d) => d.field === f)?.message;

  function submit(e: FormEvent) {
    e.preventDefault();
    setTouched(true);
    if (!parsed.success) return;
    if (rack) update.mutate({ id: rack.id, ...parsed.data });
    else create.mutate(parsed.data);
  }

  const err = (f: string) => (touched || v[f as keyof typeof v] !== "" ? fieldErrors[f] : undefined) ?? serverField(f);
  return (
    <form onSubmit={submit} className="space-y-3" noValidate>
      <div className="grid grid-cols-2 gap-3">
        <Field label="Rack name" error={err("name")}>
          <input className="input" value={v.name} aria-invalid={!!err("name")} onChange={(e) => setV({ ...v, name: e.target.value })} />
        </Field>
        <Field label="Height (U)" error={err("heightU")}>
          <input
            className="input"
            type="number"
            min={1}
            max={60}
            value={v.heightU}
            aria-invalid={!!err("heightU")}
            onChange={(e) => setV({ ...v, heightU: e.target.value })}
          />
        </Field>
        <Field label="Site" error={err("site")}>
          <input className="input" value={v.site} onChange={(e) => setV({ ...v, site: e.target.value })} />
        </Field>
        <Field label="Row" error={err("row")}>
          <input className="input" value={v.row} onChange={(e) => setV({ ...v, row: e.target.value })} />
        </Field>
      </div>
      <ErrorBanner message={server && !server.details.length ? server.message : null} />
      <div className="flex justify-end gap-2">
        <button type="button" className="btn" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" className="btn btn-primary" disabled={m.isPending}>
          {rack ? "Save rack" : "Create rack"}
        </button>
      </div>
    </form>
  );
}
