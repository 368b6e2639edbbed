"use client";
import { useQuery } from "@tanstack/react-query";
import { useTRPC } from "@/components/trpc";
import { ErrorBanner } from "@/components/ui";

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

/** The package proxy (apt-cacher-ng) on the Settings page: mode, address, cache size, hit rate, upstream errors. */
export function PackageProxyStatus() {
  const trpc = useTRPC();
  const { data: status } = useQuery(trpc.netboot.status.queryOptions(undefined, { refetchInterval: 5000 }));
  const p = status?.packageProxy;
  if (!p) return null;
  return (
    <div className="card mt-4 p-4 text-sm" data-testid="package-proxy-status">
      <div>
        Package proxy: <b>{p.mode}</b>
        {p.url && <> · <span className="font-mono break-all">{p.url}</span></>}
        {p.mode === "managed" && (p.running ? ` · apt-cacher-ng pid ${p.pid}` : " · not running")}
        {p.upstreamProxy && <> · upstream via <span className="font-mono break-all">{p.upstreamProxy}</span></>}
      </div>
      {p.error && <ErrorBanner message={p.error} />}
      {p.stats && (
        <div className="text-slate-500">
          Cache {mib(p.stats.cacheBytes)} · hit rate {p.stats.hitRate == null ? "—" : `${Math.round(p.stats.hitRate * 100)} %`} · {mib(p.stats.bytesFromUpstream)} from upstream, {mib(p.stats.bytesToClients)} served ·{" "}
          {p.stats.upstreamErrors} upstream errors
        </div>
      )}
      {p.stats?.recentErrors.length ? (
        <ul className="mt-1 font-mono text-xs text-red-700">
          {p.stats.recentErrors.slice(-5).map((e, i) => (
            <li key={i}>{e.client} {e.code ?? "error"} {e.path}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
