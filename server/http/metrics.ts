import { sql } from "drizzle-orm";
import client from "prom-client";
import type { Store } from "../db/store";

/**
 * Prometheus metrics on a registry of our own (no global default registry, so tests can build many apps).
 * `processName`: several processes share one database (PostgreSQL): every series carries `process="<host:pid>"`,
 * the name the process has in leases and /healthz. One process (SQLite): no such label, no series churn at restarts.
 */
export function createMetrics(store: Store, processName?: string) {
  const { machines } = store.t;
  const registry = new client.Registry();
  registry.setDefaultLabels({ app: "rackhand", ...(processName && { process: processName }) });
  client.collectDefaultMetrics({ register: registry });

  const httpDuration = new client.Histogram({
    name: "rackhand_http_request_duration_seconds",
    help: "HTTP request duration by route family and status code",
    labelNames: ["route", "method", "status"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  new client.Gauge({
    name: "rackhand_machines",
    help: "Machines by lifecycle state",
    labelNames: ["state"] as const,
    registers: [registry],
    async collect() {
      const rows = await store.db.select({ state: machines.state, n: sql<number>`count(*)`.mapWith(Number) }).from(machines).groupBy(machines.state);
      this.reset();
      for (const r of rows) this.set({ state: r.state }, r.n);
    },
  });
  new client.Gauge({
    name: "rackhand_machines_power",
    help: "Machines by last known power state",
    labelNames: ["power"] as const,
    registers: [registry],
    async collect() {
      const rows = await store.db.select({ p: machines.powerState, n: sql<number>`count(*)`.mapWith(Number) }).from(machines).groupBy(machines.powerState);
      this.reset();
      for (const r of rows) this.set({ power: r.p }, r.n);
    },
  });
  const socketClients = new client.Gauge({ name: "rackhand_socket_clients", help: "Connected socket.io clients", registers: [registry] });
  const liveEvents = new client.Counter({
    name: "rackhand_live_events_total",
    help: "Domain events published on the bus",
    labelNames: ["type"] as const,
    registers: [registry],
  });
  return { registry, httpDuration, socketClients, liveEvents };
}
export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Route family for metric labels: bounded cardinality (no ids, no client-chosen names in labels). A tRPC path
 * becomes its procedure name only when `procedures` knows it (a batch call: its first procedure); any other name,
 * which an anonymous client can make up by the million, is "trpc:unknown".
 */
export function routeFamily(url: string, procedures: ReadonlySet<string>): string {
  const p = url.split("?")[0]!;
  if (p.startsWith("/api/trpc/")) {
    const first = p.slice("/api/trpc/".length).split(",")[0]!;
    return procedures.has(first) ? "trpc:" + first : "trpc:unknown";
  }
  if (p.startsWith("/api/agent/")) return "agent";
  if (p.startsWith("/boot/")) return "boot";
  if (p.startsWith("/_next/")) return "next-static";
  if (p.startsWith("/socket.io")) return "socket.io";
  if (p === "/healthz" || p === "/metrics") return p;
  return "page";
}
