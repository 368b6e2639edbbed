"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import type { MachineDetail } from "@/lib/dto";
import { BMC_DRIVERS, FIRMWARE_LABELS, FIRMWARE_SETTINGS, machineEnrollSchema } from "@/lib/schemas";
import { errorInfo, useTRPC } from "./trpc";
import { ErrorBanner, Field } from "./ui";

type Values = Record<
  | "name"
  | "osProfileId"
  | "firmware"
  | "rackId"
  | "uPosition"
  | "uHeight"
  | "bootMac"
  | "ip"
  | "ifname"
  | "prefix"
  | "gateway"
  | "bmcDriver"
  | "bmcAddress"
  | "bmcPort"
  | "bmcUser"
  | "bmcPassword",
  string
>;

const num = (s: string) => (s.trim() === "" ? null : Number(s));

/** The form's values in the shape of the server's zod schema, and errors keyed by form field. */
function validate(v: Values, editing: boolean) {
  const hasBmc = Boolean(v.bmcAddress || v.bmcUser || v.bmcPassword);
  const input = {
    name: v.name,
    rackId: num(v.rackId),
    uPosition: num(v.uPosition),
    uHeight: num(v.uHeight) ?? 1,
    bootMac: v.bootMac,
    ip: v.ip.trim() || null,
    osProfileId: num(v.osProfileId),
    firmware: v.firmware,
    network: { ifname: v.ifname.trim() || null, prefix: num(v.prefix), gateway: v.gateway.trim() || null },
    bmc: hasBmc
      ? {
          driver: v.bmcDriver,
          address: v.bmcAddress,
          port: num(v.bmcPort) ?? 623,
          username: v.bmcUser,
          // Editing: an empty password keeps the stored one.
          password: editing && !v.bmcPassword ? "unchanged" : v.bmcPassword,
        }
      : null,
  };
  const r = machineEnrollSchema.safeParse(input);
  const errors: Record<string, string> = {};
  if (!r.success) {
    for (const i of r.error.issues) {
      const key = i.path.join(".");
      const field =
        {
          "bmc.address": "bmcAddress",
          "bmc.username": "bmcUser",
          "bmc.password": "bmcPassword",
          "bmc.port": "bmcPort",
          "network.ifname": "ifname",
          "network.prefix": "prefix",
          "network.gateway": "gateway",
        }[key] ?? key;
      errors[field] ??= i.message;
    }
  }
  if (input.rackId && input.uPosition == null) errors.uPosition ??= "Required in a rack";
  return { input, data: r.success ? r.data : null, errors };
}

const SERVER_FIELD: Record<string, keyof Values> = {
  name: "name",
  bootMac: "bootMac",
  ip: "ip",
  uPosition: "uPosition",
  rackId: "rackId",
  osProfileId: "osProfileId",
  "bmc.password": "bmcPassword",
  "network.ifname": "ifname",
  "network.prefix": "prefix",
  "network.gateway": "gateway",
};

export function MachineForm({ machine, onSaved }: { machine?: MachineDetail; onSaved: (id: number) => void }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { data: racks } = useQuery(trpc.racks.list.queryOptions());
  const { data: profiles } = useQuery(trpc.osProfiles.list.queryOptions());
  const bootNic = machine?.nics.find((n) => n.isBoot);
  const [v, setV] = useState<Values>({
    name: machine?.name ?? "",
    osProfileId: machine?.osProfileId ? String(machine.osProfileId) : "",
    firmware: machine?.firmware ?? "auto",
    rackId: machine?.rackId ? String(machine.rackId) : "",
    uPosition: machine?.uPosition ? String(machine.uPosition) : "",
    uHeight: String(machine?.uHeight ?? 1),
    bootMac: machine?.bootMac ?? "",
    ip: machine?.ip ?? "",
    ifname: bootNic?.ifname ?? "",
    prefix: bootNic?.prefix != null ? String(bootNic.prefix) : "",
    gateway: bootNic?.gateway ?? "",
    bmcDriver: machine?.bmc?.driver ?? "ipmitool",
    bmcAddress: machine?.bmc?.address ?? "",
    bmcPort: String(machine?.bmc?.port ?? 623),
    bmcUser: machine?.bmc?.username ?? "",
    bmcPassword: "",
  });
  const [touched, setTouched] = useState<Set<string>>(new Set());
  const [submitted, setSubmitted] = useState(false);
  const { data, errors } = validate(v, !!machine);
  const invalidate = () => {
    void qc.invalidateQueries({ queryKey: trpc.machines.pathKey() });
    void qc.invalidateQueries({ queryKey: trpc.racks.pathKey() });
  };
  const enroll = useMutation(trpc.machines.enroll.mutationOptions({ onSuccess: (r) => (invalidate(), onSaved(r.id)) }));
  const update = useMutation(trpc.machines.update.mutationOptions({ onSuccess: () => (invalidate(), onSaved(machine!.id)) }));
  const m = machine ? update : enroll;
  const server = m.error ? errorInfo(m.error) : null;
  const serverErrors: Record<string, string> = {};
  for (const d of server?.details ?? []) if (d.field && SERVER_FIELD[d.field]) serverErrors[SERVER_FIELD[d.field]!] ??= d.message;

  const err = (f: keyof Values) => ((submitted || touched.has(f)) && errors[f]) || serverErrors[f];
  const bind = (f: keyof Values) => ({
    value: v[f],
    "aria-invalid": !!err(f),
    onChange: (e: { target: { value: string } }) => {
      setV((cur) => ({ ...cur, [f]: e.target.value }));
      m.reset();
    },
    onBlur: () => setTouched((t) => new Set(t).add(f)),
  });

  function submit(e: FormEvent) {
    e.preventDefault();
    setSubmitted(true);
    if (!data || Object.keys(errors).length) return;
    if (machine) {
      update.mutate({
        id: machine.id,
        name: data.name,
        rackId: data.rackId ?? null,
        uPosition: data.uPosition ?? null,
        uHeight: data.uHeight,
        bootMac: data.bootMac,
        ip: data.ip ?? null,
        osProfileId: data.osProfileId ?? null,
        firmware: data.firmware ?? "auto",
        network: data.network ?? null,
        bmc: data.bmc ? { ...data.bmc, password: v.bmcPassword || undefined } : null,
      });
    } else enroll.mutate(data);
  }

  return (
    <form onSubmit={submit} noValidate className="space-y-5">
      <fieldset className="grid grid-cols-1 gap-3 md:grid-cols-3">
        <legend className="mb-2 text-sm font-semibold text-slate-800">Machine</legend>
        <Field label="Name (host name)" error={err("name")}>
          <input className="input" autoComplete="off" {...bind("name")} />
        </Field>
        <Field label="Boot MAC" error={err("bootMac")} hint="Any spelling: aa:bb:…, AA-BB-…, aabb.ccdd.eeff">
          <input className="input font-mono" autoComplete="off" {...bind("bootMac")} />
        </Field>
        <Field label="IP address" error={err("ip")} hint="Optional IPv4">
          <input className="input font-mono" autoComplete="off" {...bind("ip")} />
        </Field>
        <Field label="OS profile" error={err("osProfileId")} hint="What the machine is deployed with">
          <select className="input" {...bind("osProfileId")}>
            <option value="">None</option>
            {profiles?.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name} ({p.kind})
              </option>
            ))}
          </select>
        </Field>
        <Field label="Boot firmware" error={err("firmware")} hint="Auto: what its last network boot request showed">
          <select className="input" {...bind("firmware")}>
            {FIRMWARE_SETTINGS.map((f) => (
              <option key={f} value={f}>
                {FIRMWARE_LABELS[f]}
              </option>
            ))}
          </select>
        </Field>
      </fieldset>
      <fieldset className="grid grid-cols-1 gap-3 md:grid-cols-3">
        <legend className="mb-2 text-sm font-semibold text-slate-800">Installed system&apos;s network (image deploys)</legend>
        <Field label="Interface name" error={err("ifname")} hint="e.g. eno1; empty: the image keeps DHCP">
          <input className="input font-mono" autoComplete="off" {...bind("ifname")} />
        </Field>
        <Field label="Prefix length" error={err("prefix")} hint="Netmask bits, default 24">
          <input className="input" type="number" min={1} max={32} {...bind("prefix")} />
        </Field>
        <Field label="Gateway" error={err("gateway")} hint="Optional IPv4">
          <input className="input font-mono" autoComplete="off" {...bind("gateway")} />
        </Field>
      </fieldset>
      <fieldset className="grid grid-cols-1 gap-3 md:grid-cols-3">
        <legend className="mb-2 text-sm font-semibold text-slate-800">Placement</legend>
        <Field label="Rack" error={err("rackId")}>
          <select className="input" {...bind("rackId")}>
            <option value="">Unracked</option>
            {racks?.map((r) => (
              <option key={r.id} value={r.id}>
                {r.name} ({r.heightU}U, {r.machineCount} machines)
              </option>
            ))}
          </select>
        </Field>
        <Field label="U position" error={err("uPosition")} hint="Lowest U the machine occupies">
          <input className="input" type="number" min={1} {...bind("uPosition")} />
        </Field>
        <Field label="Height (U)" error={err("uHeight")}>
          <input className="input" type="number" min={1} max={20} {...bind("uHeight")} />
        </Field>
      </fieldset>
      <fieldset className="grid grid-cols-1 gap-3 md:grid-cols-5">
        <legend className="mb-2 text-sm font-semibold text-slate-800">BMC (out-of-band)</legend>
        <Field label="Driver">
          <select className="input" {...bind("bmcDriver")}>
            {BMC_DRIVERS.map((d) => (
              <option key={d}>{d}</option>
            ))}
          </select>
        </Field>
        <Field label="BMC address" error={err("bmcAddress")}>
          <input className="input font-mono" autoComplete="off" {...bind("bmcAddress")} />
        </Field>
        <Field label="Port" error={err("bmcPort")}>
          <input className="input" type="number" {...bind("bmcPort")} />
        </Field>
        <Field label="BMC user" error={err("bmcUser")}>
          <input className="input" autoComplete="off" {...bind("bmcUser")} />
        </Field>
        <Field label="BMC password" error={err("bmcPassword")} hint={machine?.bmc ? "Leave empty to keep the stored one" : "Stored encrypted"}>
          <input className="input" type="password" autoComplete="new-password" {...bind("bmcPassword")} />
        </Field>
      </fieldset>
      <ErrorBanner message={server ? server.message : null} />
      <div className="flex justify-end gap-2">
        <button type="submit" className="btn btn-primary" disabled={m.isPending}>
          {machine ? "Save changes" : "Enroll machine"}
        </button>
      </div>
    </form>
  );
}
