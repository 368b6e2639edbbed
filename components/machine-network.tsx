"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { BUSY_STATES, STATE_LABELS, type MachineState } from "@/lib/lifecycle";
import { ADDRESS_MODES, BOND_MODES, formatNetworkIssues, IPV6_MODES, LACP_RATES, machineNetworkSchema, XMIT_HASH_POLICIES, type NetInterfaceInput } from "@/lib/net-model";
import { NEEDS_OPERATOR, useSession } from "./session";
import { errorInfo, useTRPC } from "./trpc";
import { ErrorBanner } from "./ui";

type Kind = "ethernet" | "bond" | "vlan";
/** One interface as the editor holds it: every field as typed text. */
interface Row {
  key: number;
  kind: Kind;
  name: string;
  mac: string;
  members: string;
  bondMode: string;
  miimon: string;
  lacpRate: string;
  xmitHashPolicy: string;
  parent: string;
  vlanId: string;
  mode: string;
  subnetId: string;
  ipv4: string;
  gateway4: string;
  ipv6Mode: string;
  subnet6Id: string;
  ipv6: string;
  mtu: string;
}

let nextKey = 1;
const empty = (kind: Kind): Row => ({
  key: nextKey++,
  kind,
  name: "",
  mac: "",
  members: "",
  bondMode: "active-backup",
  miimon: "100",
  lacpRate: "",
  xmitHashPolicy: "",
  parent: "",
  vlanId: "",
  mode: "dhcp",
  subnetId: "",
  ipv4: "",
  gateway4: "",
  ipv6Mode: "none",
  subnet6Id: "",
  ipv6: "",
  mtu: "",
});

const num = (s: string) => (s.trim() === "" ? null : Number(s));
const txt = (s: string) => (s.trim() === "" ? null : s.trim());

function toInput(r: Row): NetInterfaceInput {
  // Auto addresses are the allocator's: the editor sends only what the operator chooses.
  const common = {
    name: r.name.trim(),
    mode: r.mode as NetInterfaceInput["mode"],
    subnetId: num(r.subnetId),
    ipv4: r.mode === "static" ? txt(r.ipv4) : null,
    gateway4: r.mode === "static" ? txt(r.gateway4) : null,
    ipv6Mode: r.ipv6Mode as NetInterfaceInput["ipv6Mode"],
    subnet6Id: num(r.subnet6Id),
    ipv6: r.ipv6Mode === "static" ? txt(r.ipv6) : null,
    mtu: num(r.mtu),
  };
  if (r.kind === "bond") {
    return {
      kind: "bond",
      ...common,
      members: r.members.split(/[\s,]+/).filter(Boolean),
      bondMode: r.bondMode as never,
      miimon: num(r.miimon) ?? 100,
      lacpRate: (txt(r.lacpRate) as never) ?? null,
      xmitHashPolicy: (txt(r.xmitHashPolicy) as never) ?? null,
    };
  }
  if (r.kind === "vlan") return { kind: "vlan", ...common, parent: r.parent.trim(), vlanId: num(r.vlanId) ?? 0 };
  return { kind: "ethernet", ...common, mac: txt(r.mac) };
}

type Iface = { kind: Kind; name: string; mac?: string | null; members?: string[]; bondMode?: string; miimon?: number; lacpRate?: string | null; xmitHashPolicy?: string | null; parent?: string; vlanId?: number; mode: string; subnetId?: number | null; ipv4?: string | null; gateway4?: string | null; ipv6Mode: string; subnet6Id?: number | null; ipv6?: string | null; mtu?: number | null };

function fromIface(i: Iface): Row {
  return {
    ...empty(i.kind),
    name: i.name,
    mac: i.mac ?? "",
    members: (i.members ?? []).join(", "),
    bondMode: i.bondMode ?? "active-backup",
    miimon: String(i.miimon ?? 100),
    lacpRate: i.lacpRate ?? "",
    xmitHashPolicy: i.xmitHashPolicy ?? "",
    parent: i.parent ?? "",
    vlanId: i.vlanId != null ? String(i.vlanId) : "",
    mode: i.mode,
    subnetId: i.subnetId != null ? String(i.subnetId) : "",
    ipv4: i.ipv4 ?? "",
    gateway4: i.gateway4 ?? "",
    ipv6Mode: i.ipv6Mode,
    subnet6Id: i.subnet6Id != null ? String(i.subnet6Id) : "",
    ipv6: i.ipv6 ?? "",
    mtu: i.mtu != null ? String(i.mtu) : "",
  };
}

/** The machine's NICs, bonds and VLANs (issue 14): shown, and edited as a whole (saved all or nothing). */
export function MachineNetwork({ machineId, state }: { machineId: number; state: MachineState }) {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can } = useSession();
  const net = useQuery(trpc.machines.network.queryOptions({ id: machineId }));
  const subnets = useQuery(trpc.subnets.list.queryOptions());
  const [rows, setRows] = useState<Row[] | null>(null);
  const save = useMutation(
    trpc.machines.setNetwork.mutationOptions({
      onSuccess: () => {
        setRows(null);
        void qc.invalidateQueries({ queryKey: trpc.machines.pathKey() });
        void qc.invalidateQueries({ queryKey: trpc.subnets.pathKey() });
      },
    }),
  );
  const busy = BUSY_STATES.includes(state);
  const subnetName = (id: number | null | undefined) => subnets.data?.find((s) => s.id === id)?.name;
  const v4 = subnets.data?.filter((s) => s.family === 4) ?? [];
  const v6 = subnets.data?.filter((s) => s.family === 6) ?? [];
  const editing = rows !== null;
  const parsed = editing ? machineNetworkSchema.safeParse({ interfaces: rows.map(toInput) }) : null;
  const problems = parsed && !parsed.success ? formatNetworkIssues(parsed.error, (i) => rows![i]?.name || `interface ${i + 1}`) : null;
  const set = (key: number, patch: Partial<Row>) => setRows((rs) => rs!.map((r) => (r.key === key ? { ...r, ...patch } : r)));
  const ifaces = (net.data?.network.interfaces ?? []) as Iface[];

  return (
    <section className="card mt-4 p-4" aria-label="Network interfaces">
      <div className="mb-2 flex flex-wrap items-center justify-between gap-2">
        <h2 className="font-semibold">Network interfaces</h2>
        {!editing && (
          <button
            className="btn"
            disabled={!can("operator") || busy || !net.data}
            title={!can("operator") ? NEEDS_OPERATOR : busy ? `The machine is ${STATE_LABELS[state].toLowerCase()}: its network cannot change now` : undefined}
            onClick={() => setRows(ifaces.length ? ifaces.map(fromIface) : [{ ...empty("ethernet"), name: "eth0", mac: net.data?.bootMac ?? "" }])}
          >
            Edit network
          </button>
        )}
      </div>
      <ErrorBanner message={net.error ? errorInfo(net.error).message : null} />
      {busy && <p className="mb-2 text-sm text-slate-600">The machine is {STATE_LABELS[state].toLowerCase()}: its network cannot be edited until that finishes.</p>}
      {!editing && net.data && (
        ifaces.length === 0 ? (
          <p className="text-sm text-slate-600">No interface is configured for the installed OS: it keeps its own network configuration (DHCP).</p>
        ) : (
          <div className="overflow-x-auto">
            <table className="w-full text-sm" data-testid="network-table">
              <thead className="text-left text-xs uppercase text-slate-600">
                <tr>
                  <th className="py-1 pr-3">Interface</th>
                  <th className="py-1 pr-3">Type</th>
                  <th className="py-1 pr-3">IPv4</th>
                  <th className="py-1 pr-3">IPv6</th>
                  <th className="py-1 pr-3">MTU</th>
                </tr>
              </thead>
              <tbody className="divide-y divide-slate-100">
                {ifaces.map((i) => (
                  <tr key={i.name}>
                    <td className="py-1 pr-3 font-mono text-xs">{i.name}</td>
                    <td className="py-1 pr-3 text-xs">
                      {i.kind === "ethernet" && <>NIC <span className="font-mono">{i.mac}</span>{(i as { master?: string | null }).master ? ` · in ${(i as { master?: string }).master}` : ""}</>}
                      {i.kind === "bond" && <>bond {i.bondMode} of {(i.members ?? []).join(", ")}</>}
                      {i.kind === "vlan" && <>VLAN {i.vlanId} on {i.parent}</>}
                    </td>
                    <td className="py-1 pr-3 font-mono text-xs">
                      {i.mode}
                      {i.ipv4 ? ` ${i.ipv4}` : ""}
                      {i.subnetId ? ` (${subnetName(i.subnetId) ?? `subnet ${i.subnetId}`})` : ""}
                    </td>
                    <td className="py-1 pr-3 font-mono text-xs">
                      {i.ipv6Mode}
                      {i.ipv6 ? ` ${i.ipv6}` : ""}
                      {i.subnet6Id ? ` (${subnetName(i.subnet6Id) ?? `subnet ${i.subnet6Id}`})` : ""}
                    </td>
                    <td className="py-1 pr-3 text-xs">{i.mtu ?? "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      )}
      {editing && (
        <form
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            if (parsed?.success) save.mutate({ id: machineId, network: { interfaces: rows.map(toInput) } });
          }}
        >
          <div className="space-y-3">
            {rows.map((r) => (
              <fieldset key={r.key} className="rounded border border-slate-200 p-2" aria-label={`Interface ${r.name || r.kind}`}>
                <div className="flex flex-wrap items-end gap-2 text-xs">
                  <span className="w-12 pb-2 font-semibold uppercase text-slate-600">{r.kind === "ethernet" ? "NIC" : r.kind}</span>
                  <Inp label="Name" value={r.name} onChange={(v) => set(r.key, { name: v })} w="w-28" />
                  {r.kind === "ethernet" && <Inp label="MAC" value={r.mac} onChange={(v) => set(r.key, { mac: v })} w="w-40" />}
                  {r.kind === "bond" && (
                    <>
                      <Inp label="Members" value={r.members} onChange={(v) => set(r.key, { members: v })} w="w-32" />
                      <Sel label="Bond mode" value={r.bondMode} options={BOND_MODES} onChange={(v) => set(r.key, { bondMode: v })} />
                      <Inp label="miimon (ms)" value={r.miimon} onChange={(v) => set(r.key, { miimon: v })} w="w-20" />
                      <Sel label="LACP rate" value={r.lacpRate} options={["", ...LACP_RATES]} onChange={(v) => set(r.key, { lacpRate: v })} />
                      <Sel label="Hash policy" value={r.xmitHashPolicy} options={["", ...XMIT_HASH_POLICIES]} onChange={(v) => set(r.key, { xmitHashPolicy: v })} />
                    </>
                  )}
                  {r.kind === "vlan" && (
                    <>
                      <Inp label="Parent" value={r.parent} onChange={(v) => set(r.key, { parent: v })} w="w-28" />
                      <Inp label="VLAN id" value={r.vlanId} onChange={(v) => set(r.key, { vlanId: v })} w="w-20" />
                    </>
                  )}
                  <Inp label="MTU" value={r.mtu} onChange={(v) => set(r.key, { mtu: v })} w="w-20" />
                  <button type="button" className="ml-auto pb-2 text-red-700 hover:underline" onClick={() => setRows(rows.filter((x) => x.key !== r.key))}>
                    Remove {r.name || r.kind}
                  </button>
                </div>
                <div className="mt-2 flex flex-wrap items-end gap-2 text-xs">
                  <span className="w-12" />
                  <Sel label="IPv4" value={r.mode} options={ADDRESS_MODES} onChange={(v) => set(r.key, { mode: v })} />
                  <Sel label="IPv4 subnet" value={r.subnetId} options={["", ...v4.map((s) => String(s.id))]} labels={Object.fromEntries(v4.map((s) => [String(s.id), `${s.name} (${s.cidr})`]))} onChange={(v) => set(r.key, { subnetId: v })} />
                  {r.mode === "static" && (
                    <>
                      <Inp label="IPv4 address/prefix" value={r.ipv4} onChange={(v) => set(r.key, { ipv4: v })} w="w-36" />
                      <Inp label="Gateway" value={r.gateway4} onChange={(v) => set(r.key, { gateway4: v })} w="w-28" />
                    </>
                  )}
                  {r.mode === "auto" && r.ipv4 && <span className="pb-2 font-mono text-slate-600">now {r.ipv4}</span>}
                  <Sel label="IPv6" value={r.ipv6Mode} options={IPV6_MODES} onChange={(v) => set(r.key, { ipv6Mode: v })} />
                  <Sel label="IPv6 subnet" value={r.subnet6Id} options={["", ...v6.map((s) => String(s.id))]} labels={Object.fromEntries(v6.map((s) => [String(s.id), `${s.name} (${s.cidr})`]))} onChange={(v) => set(r.key, { subnet6Id: v })} />
                  {r.ipv6Mode === "static" && <Inp label="IPv6 address/prefix" value={r.ipv6} onChange={(v) => set(r.key, { ipv6: v })} w="w-48" />}
                </div>
              </fieldset>
            ))}
          </div>
          <div className="mt-3 flex flex-wrap gap-2">
            <button type="button" className="btn" onClick={() => setRows([...rows, empty("ethernet")])}>
              Add NIC
            </button>
            <button type="button" className="btn" onClick={() => setRows([...rows, { ...empty("bond"), mode: "dhcp" }])}>
              Add bond
            </button>
            <button type="button" className="btn" onClick={() => setRows([...rows, empty("vlan")])}>
              Add VLAN
            </button>
          </div>
          <div className="mt-3 space-y-2">
            {problems && (
              <p role="alert" className="text-sm text-red-700" data-testid="network-problems">
                {problems}
              </p>
            )}
            <ErrorBanner message={save.error ? errorInfo(save.error).message : null} />
          </div>
          <div className="mt-3 flex justify-end gap-2">
            <button type="button" className="btn" onClick={() => (save.reset(), setRows(null))}>
              Cancel
            </button>
            <button type="submit" className="btn btn-primary" disabled={!parsed?.success || save.isPending}>
              Save network
            </button>
          </div>
        </form>
      )}
    </section>
  );
}

function Inp({ label, value, onChange, w }: { label: string; value: string; onChange: (v: string) => void; w: string }) {
  return (
    <label className="block">
      <span className="label">{label}</span>
      <input className={`input font-mono ${w}`} aria-label={label} value={value} onChange={(e) => onChange(e.target.value)} />
    </label>
  );
}

function Sel({ label, value, options, labels, onChange }: { label: string; value: string; options: readonly string[]; labels?: Record<string, string>; onChange: (v: string) => void }) {
  return (
    <label className="block">
      <span className="label">{label}</span>
      <select className="input" aria-label={label} value={value} onChange={(e) => onChange(e.target.value)}>
        {options.map((o) => (
          <option key={o} value={o}>
            {labels?.[o] ?? (o || "—")}
          </option>
        ))}
      </select>
    </label>
  );
}
