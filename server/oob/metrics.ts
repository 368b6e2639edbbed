/** Power sync and BMC status-read figures in /metrics: sweep duration, BMCs checked/changed/failed, CPU per sweep. */
import client from "prom-client";
import type { PowerSync } from "./power-sync";
import type { ProbeStats } from "./types";

export function registerPowerSyncMetrics(registry: client.Registry, sync: PowerSync, probe: ProbeStats): void {
  const duration = new client.Histogram({
    name: "rackhand_power_sync_sweep_duration_seconds",
    help: "Wall time of each power-sync sweep",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const cpu = new client.Histogram({
    name: "rackhand_power_sync_sweep_cpu_seconds",
    help: "CPU (user + system) of the server process during each power-sync sweep",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const bmcs = new client.Counter({
    name: "rackhand_power_sync_bmcs_total",
    help: "BMCs handled by power-sync sweeps: checked (answered), changed (power differed), failed",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  const written = new client.Counter({ name: "rackhand_power_sync_rows_written_total", help: "Rows written by power-sync sweeps (only differences)", registers: [registry] });
  sync.onSweep((s) => {
    duration.observe(s.durationMs / 1000);
    cpu.observe(s.cpuMs / 1000);
    bmcs.inc({ result: "checked" }, s.ok);
    bmcs.inc({ result: "changed" }, s.changed);
    bmcs.inc({ result: "failed" }, s.failed);
    written.inc(s.written);
  });
  new client.Gauge({
    name: "rackhand_bmc_status_reads",
    help: "Status reads since start, by how they reached the BMC: native (RMCP+ probe), fallback (probe failed, ipmitool asked), ipmitool (probe not used)",
    labelNames: ["via"] as const,
    registers: [registry],
    collect() {
      this.set({ via: "native" }, probe.native);
      this.set({ via: "fallback" }, probe.fallback);
      this.set({ via: "ipmitool" }, probe.ipmitool);
    },
  });
}
