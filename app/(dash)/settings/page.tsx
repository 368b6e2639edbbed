"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { AGENT_ENVIRONMENT_LABELS, AGENT_ENVIRONMENTS, NETBOOT_MODES, netbootSettingsSchema, PROXY_MODES } from "@/lib/netboot";
import { PackageProxyStatus } from "@/components/package-proxy-status";
import { BatchAlertSettings } from "@/components/batch-alert-settings";
import { PowerSyncSettings } from "@/components/power-sync-settings";
import { useSession } from "@/components/session";
import { errorInfo, useTRPC } from "@/components/trpc";
import { ErrorBanner, Field, PageHeader } from "@/components/ui";

type Form = Record<"mode" | "interface" | "serverAddress" | "rangeStart" | "rangeEnd" | "netmask" | "gateway" | "dnsServers" | "domain" | "httpBaseUrl" | "leaseTimeS" | "agentEnvironment" | "proxyMode" | "proxyPort" | "proxyUrl", string> & { ipv6RouterAdvertisements: boolean };

function toInput(f: Form) {
  return { ...f, dnsServers: f.dnsServers.split(/[\s,]+/).filter(Boolean), gateway: f.gateway || null, domain: f.domain || null, leaseTimeS: Number(f.leaseTimeS), proxyPort: Number(f.proxyPort), proxyUrl: f.proxyUrl || null };
}

export default function SettingsPage() {
  const trpc = useTRPC();
  const qc = useQueryClient();
  const { can } = useSession();
  const { data: settings, error } = useQuery(trpc.netboot.settings.queryOptions(undefined, { enabled: can("admin") }));
  const { data: status } = useQuery(trpc.netboot.status.queryOptions(undefined, { refetchInterval: 5000 }));
  const { data: subnets } = useQuery(trpc.subnets.list.queryOptions());
  const provisioning = subnets?.find((s) => s.provisioning);
  const [form, setForm] = useState<Form | null>(null);
  const [saved, setSaved] = useState(false);
  // The form starts from the saved settings once they arrive (set while rendering, not in an effect).
  if (settings && !form)
    setForm({ ...settings, gateway: settings.gateway ?? "", domain: settings.domain ?? "", dnsServers: settings.dnsServers.join(", "), leaseTimeS: String(settings.leaseTimeS), proxyPort: String(settings.proxyPort), proxyUrl: settings.proxyUrl ?? "" });
  const save = useMutation(trpc.netboot.saveSettings.mutationOptions({ onSuccess: () => (setSaved(true), void qc.invalidateQueries({ queryKey: trpc.netboot.pathKey() })) }));
  if (!can("admin")) return <ErrorBanner message="Only admins change settings." />;
  if (!form) return <ErrorBanner message={error ? errorInfo(error).message : null} />;

  const parsed = netbootSettingsSchema.safeParse(toInput(form));
  const errors: Record<string, string> = {};
  if (!parsed.success) for (const i of parsed.error.issues) errors[String(i.path[0])] ??= i.message;
  for (const d of save.error ? errorInfo(save.error).details : []) if (d.field) errors[d.field.split(".")[0]!] ??= d.message;
  const bind = (f: Exclude<keyof Form, "ipv6RouterAdvertisements">) => ({ value: form[f], "aria-invalid": !!errors[f], onChange: (e: { target: { value: string } }) => (setForm({ ...form, [f]: e.target.value }), setSaved(false)) });
  function submit(e: FormEvent) {
    e.preventDefault();
    if (parsed.success) save.mutate(parsed.data);
  }
  return (
    <div className="max-w-4xl">
      <PageHeader title="Settings" subtitle="The provisioning network: DHCP and TFTP by dnsmasq, boot files over HTTP." />
      <form onSubmit={submit} noValidate className="card grid grid-cols-1 gap-3 p-4 md:grid-cols-3" aria-label="Provisioning network">
        <Field label="Netboot mode" hint="managed: Rackhand runs dnsmasq · external: your dnsmasq reads the tree · off">
          <select className="input" {...bind("mode")}>{NETBOOT_MODES.map((m) => <option key={m}>{m}</option>)}</select>
        </Field>
        <Field label="Interface" error={errors.interface}><input className="input font-mono" {...bind("interface")} /></Field>
        <Field label="Server address" error={errors.serverAddress}><input className="input font-mono" {...bind("serverAddress")} /></Field>
        <Field label="Range start" error={errors.rangeStart} hint={provisioning ? `Provisioning subnet ${provisioning.name} supplies the range, netmask, gateway and DNS` : undefined}><input className="input font-mono" {...bind("rangeStart")} /></Field>
        <Field label="Range end" error={errors.rangeEnd}><input className="input font-mono" {...bind("rangeEnd")} /></Field>
        <Field label="Netmask" error={errors.netmask}><input className="input font-mono" {...bind("netmask")} /></Field>
        <Field label="Gateway" error={errors.gateway}><input className="input font-mono" {...bind("gateway")} /></Field>
        <Field label="DNS servers" error={errors.dnsServers} hint="Comma-separated"><input className="input font-mono" {...bind("dnsServers")} /></Field>
        <Field label="Domain" error={errors.domain}><input className="input font-mono" {...bind("domain")} /></Field>
        <Field label="HTTP base URL" error={errors.httpBaseUrl} hint="How machines reach Rackhand"><input className="input font-mono" {...bind("httpBaseUrl")} /></Field>
        <Field label="Lease time (s)" error={errors.leaseTimeS}><input className="input" type="number" {...bind("leaseTimeS")} /></Field>
        <Field
          label="Agent environment"
          error={form.agentEnvironment === "debian" && status && !status.agentFiles.debianRootfs ? "Not built yet: run npm run ramdisk -- --debian" : undefined}
          hint="Where the agent runs during inspect, deploy and clean"
        >
          <select className="input" {...bind("agentEnvironment")}>
            {AGENT_ENVIRONMENTS.map((e) => <option key={e} value={e}>{AGENT_ENVIRONMENT_LABELS[e]}</option>)}
          </select>
        </Field>
        <Field label="Package proxy" hint="managed: Rackhand runs apt-cacher-ng on the server address · external: your proxy · off">
          <select className="input" {...bind("proxyMode")}>{PROXY_MODES.map((m) => <option key={m}>{m}</option>)}</select>
        </Field>
        <Field label="Proxy port" error={errors.proxyPort}><input className="input" type="number" {...bind("proxyPort")} /></Field>
        <Field label="External proxy URL" error={errors.proxyUrl}><input className="input font-mono" {...bind("proxyUrl")} /></Field>
        <label className="flex items-center gap-2 text-sm">
          <input type="checkbox" checked={form.ipv6RouterAdvertisements} onChange={(e) => setForm({ ...form, ipv6RouterAdvertisements: e.target.checked })} />
          IPv6 router advertisements (faster iPXE)
        </label>
        <div className="flex items-center gap-3 md:col-span-3">
          <button type="submit" className="btn btn-primary" disabled={!parsed.success || save.isPending}>Save settings</button>
          {saved && <span role="status" className="text-sm text-emerald-700">Saved</span>}
          <ErrorBanner message={save.error && !errorInfo(save.error).details.length ? errorInfo(save.error).message : null} />
        </div>
      </form>
      <div className="card mt-4 p-4 text-sm" data-testid="netboot-status">
        <div>Mode: <b>{status?.mode ?? "—"}</b>{status?.backend?.running ? ` · dnsmasq pid ${status.backend.pid}` : ""}</div>
        {status?.lastReconcile && <div>Last reconcile: {status.lastReconcile.written} written, {status.lastReconcile.removed} removed in {status.lastReconcile.ms.toFixed(1)} ms</div>}
        {status?.lastError && <ErrorBanner message={status.lastError} />}
        {status && <div className="text-slate-500">Boot tree: <span className="font-mono break-all">{status.treeDir}</span></div>}
        {status && (
          <div className="text-slate-500" data-testid="agent-files">
            Agent RAM disk: {status.agentFiles.ramdisk ? "built" : "not built (npm run ramdisk)"} · Debian root file system:{" "}
            {status.agentFiles.debianRootfs ? "built" : "not built (npm run ramdisk -- --debian)"}
          </div>
        )}
        {status && status.mode !== "off" && (
          <div className="mt-3" data-testid="boot-loaders">
            <div className="font-medium">Boot loaders (copied from Debian's packages into the TFTP root)</div>
            <table className="mt-1 block w-full overflow-x-auto text-left text-xs">
              <thead className="text-slate-500">
                <tr><th className="pr-2">File</th><th className="pr-2">Package</th><th className="pr-2">Version</th><th className="pr-2">sha256</th><th>Used for</th></tr>
              </thead>
              <tbody>
                {status.loaders.map((l) => (
                  <tr key={l.name} data-testid={`loader-${l.name}`} className={l.error ? "text-red-700" : ""}>
                    <td className="pr-2 font-mono">{l.name}</td>
                    <td className="pr-2">{l.package}</td>
                    <td className="pr-2 font-mono">{l.version ?? "—"}</td>
                    <td className="pr-2 font-mono" title={l.sha256 ?? undefined}>{l.error ? <span role="alert">Missing: {l.error}</span> : `${l.sha256?.slice(0, 16)}…`}</td>
                    <td>{l.purpose}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {status?.installerFiles?.map((f) => (
          <div key={f.id} className="text-slate-500" data-testid={`installer-files-${f.id}`}>
            {f.profileName}: {f.placed ? <>{f.pkg} <b>{f.version}</b> in <span className="font-mono break-all">/boot/{f.kernel.replace(/\/[^/]*$/, "/")}</span></> : <span className="text-red-700">{f.error}</span>}
          </div>
        ))}
      </div>
      <PackageProxyStatus />
      <PowerSyncSettings />
      <BatchAlertSettings />
    </div>
  );
}
