/** The package proxy's figures in /metrics (read from the running ProxyService at scrape time). */
import client from "prom-client";
import type { ProxyStatus } from "./service";

export function registerProxyMetrics(registry: client.Registry, status: () => ProxyStatus): void {
  const gauge = (name: string, help: string, value: (s: ProxyStatus) => number | null | undefined) =>
    new client.Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const v = value(status());
        if (v == null) this.reset();
        else this.set(v);
      },
    });
  gauge("rackhand_package_proxy_up", "1 when the managed apt-cacher-ng runs (or an external proxy is configured)", (s) => (s.mode === "off" ? 0 : s.mode === "external" ? 1 : s.running ? 1 : 0));
  gauge("rackhand_package_proxy_cache_bytes", "Bytes in the managed apt-cacher-ng cache", (s) => s.stats?.cacheBytes);
  gauge("rackhand_package_proxy_upstream_bytes", "Bytes the proxy fetched from upstream since it started", (s) => s.stats?.bytesFromUpstream);
  gauge("rackhand_package_proxy_client_bytes", "Bytes the proxy served to provisioning clients since it started", (s) => s.stats?.bytesToClients);
  gauge("rackhand_package_proxy_hit_ratio", "Share of served bytes that came from the cache (0..1)", (s) => s.stats?.hitRate);
  gauge("rackhand_package_proxy_upstream_errors", "Upstream errors (e.g. HTTP 404) since the proxy started", (s) => s.stats?.upstreamErrors);
}
