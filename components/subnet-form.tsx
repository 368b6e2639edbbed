"use client";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { subnetCreateSchema } from "@/lib/subnets";
import { errorInfo, useTRPC } from "./trpc";
import { ErrorBanner, Field } from "./ui";

export interface SubnetValue {
  id: number;
  name: string;
  cidr: string;
  gateway: string | null;
  dns: string[];
  vlanId: number | null;
  reserved: { start: string; end: string }[];
  dynamic: { start: string; end: string } | null;
  provisioning: boolean;
}

const list = (s: string) => s.split(/[\s,]+/).filter(Boolean);
/** "10.0.0.2-10.0.0.9" per line (or comma separated). */
const ranges = (s: string) =>
  s
    .split(/[\n,]+/)
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [start = "", end = start] = l.split(/\s*-\s*/);
      return { start, end };
    });

/** Create a subnet, or edit `subnet`. Validated as you type with the API's own schema (lib/subnets.ts). */
export function SubnetForm({ subnet, onDone }: { subnet?: SubnetValue; onDone: () => void }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const [v, setV] = useState({
    name: subnet?.name ?? "",
    cidr: subnet?.cidr ?? "",
    gateway: subnet?.gateway ?? "",
    dns: subnet?.dns.join(", ") ?? "",
    vlanId: subnet?.vlanId != null ? String(subnet.vlanId) : "",
    reserved: subnet?.reserved.map((r) => `${r.start}-${r.end}`).join("\n") ?? "",
    dynStart: subnet?.dynamic?.start ?? "",
    dynEnd: subnet?.dynamic?.end ?? "",
    provisioning: subnet?.provisioning ?? false,
  });
  const [touched, setTouched] = useState(false);
  const input = {
    name: v.name,
    cidr: v.cidr,
    gateway: v.gateway.trim() || null,
    dns: list(v.dns),
    vlanId: v.vlanId.trim() ? Number(v.vlanId) : null,
    reserved: ranges(v.reserved),
    dynamic: v.dynStart.trim() || v.dynEnd.trim() ? { start: v.dynStart.trim(), end: v.dynEnd.trim() } : null,
    provisioning: v.provisioning,
  };
  const parsed = subnetCreateSchema.safeParse(input);
  const fieldErrors: Record<string, string> = {};
  if (!parsed.success) for (const i of parsed.error.issues) fieldErrors[String(i.path[0])] ??= i.message;
  const done = () => {
    void qc.invalidateQueries({ queryKey: trpc.subnets.pathKey() });
    onDone();
  };
  const create = useMutation(trpc.subnets.create.mutationOptions({ onSuccess: done }));
  const update = useMutation(trpc.subnets.update.mutationOptions({ onSuccess: done }));
  const m = subnet ? update : create;
  const server = m.error ? errorInfo(m.error) : null;
  const err = (f: string) => (touched ? fieldErrors[f] : undefined) ?? server?.details.find((d) => d.field === f)?.message;
  function submit(e: FormEvent) {
    e.preventDefault();
    setTouched(true);
    if (!parsed.success) return;
    if (subnet) update.mutate({ id: subnet.id, ...input });
    else create.mutate(input);
  }
  const text = (k: "name" | "cidr" | "gateway" | "dns" | "vlanId" | "dynStart" | "dynEnd") => ({
    value: v[k],
    onChange: (e: { target: { value: string } }) => setV({ ...v, [k]: e.target.value }),
  });
  return (
    <form onSubmit={submit} className="space-y-3" noValidate>
      <div className="grid grid-cols-2 gap-3">
        <Field label="Subnet name" error={err("name")}>
          <input className="input" {...text("name")} aria-invalid={!!err("name")} />
        </Field>
        <Field label="CIDR" error={err("cidr")} hint="e.g. 10.0.0.0/24 or 2001:db8::/64">
          <input className="input font-mono" {...text("cidr")} aria-invalid={!!err("cidr")} />
        </Field>
        <Field label="Gateway" error={err("gateway")}>
          <input className="input font-mono" {...text("gateway")} />
        </Field>
        <Field label="VLAN id" error={err("vlanId")}>
          <input className="input" inputMode="numeric" {...text("vlanId")} />
        </Field>
        <Field label="DNS servers" error={err("dns")} hint="Comma separated">
          <input className="input font-mono" {...text("dns")} />
        </Field>
        <div className="grid grid-cols-2 gap-2">
          <Field label="Dynamic range start" error={err("dynamic")}>
            <input className="input font-mono" {...text("dynStart")} />
          </Field>
          <Field label="Dynamic range end">
            <input className="input font-mono" {...text("dynEnd")} />
          </Field>
        </div>
      </div>
      <Field label="Reserved ranges" error={err("reserved")} hint="One start-end per line; never handed out automatically">
        <textarea className="input font-mono" rows={3} value={v.reserved} onChange={(e) => setV({ ...v, reserved: e.target.value })} />
      </Field>
      <label className="flex items-center gap-2 text-sm">
        <input type="checkbox" checked={v.provisioning} onChange={(e) => setV({ ...v, provisioning: e.target.checked })} />
        Provisioning subnet (its dynamic range is the netboot DHCP range)
      </label>
      {err("provisioning") && <span className="field-error" role="alert">{err("provisioning")}</span>}
      <ErrorBanner message={server && !server.details.length ? server.message : null} />
      <div className="flex justify-end gap-2">
        <button type="button" className="btn" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" className="btn btn-primary" disabled={m.isPending}>
          {subnet ? "Save subnet" : "Create subnet"}
        </button>
      </div>
    </form>
  );
}
