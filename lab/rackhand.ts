/**
 * Rackhand in this process, pointed at a virtual rack (the VM test and `npm run bench:vm`): the RAM disk and OS
 * image linked into a fresh data directory, managed dnsmasq in the rack's namespace, the server log kept (DHCP
 * timings are read from it), the rack's VMs enrolled, managed and provided through tRPC. `npm run lab` runs the
 * built server as a child instead (lab/cli.ts).
 */
import fs from "node:fs";
import path from "node:path";
import { eq } from "drizzle-orm";
import { startApp, type App } from "../server/app";
import { loadConfig } from "../server/config";
import { jobs, steps } from "../server/db/schema";
import { createLogger } from "../server/log";
import { until } from "../server/testing/until";
import { prepareArtifacts, type LabArtifacts } from "./artifacts";
import { signIn, type RackhandClient } from "./client";
import { provisionRack, type ProvisionedNode } from "./provision";
import type { RackState } from "./rack";

export interface LabRackhand {
  app: App;
  /** Its data directory (netboot tree under netboot/). */
  dataDir: string;
  client: RackhandClient;
  /** Every line Rackhand logged (dnsmasq's included), also appended to <dir>/rackhand.log. */
  serverLog: string[];
  artifacts: LabArtifacts;
  machines: ProvisionedNode[];
  close(): Promise<void>;
}

export interface LabRackhandOptions {
  /** Working directory: data/ and rackhand.log go here. */
  dir: string;
  rack: RackState;
  /** The bundled agent and the cache of built RAM disks and images (lab/artifacts.ts). */
  agent: string;
  cacheDir: string;
  marker: string;
  adminPassword: string;
  nodeEnv?: "test" | "production";
  /** Also prepare the Debian agent environment (rootfs.tar.zst). */
  debian?: boolean;
  /** The stand-in OS image's firmware (lab/artifacts.ts; default bios); both: a profile each, by the VM's firmware. */
  imageFirmware?: "bios" | "uefi" | "both";
  /** The machines' firmware setting (lab/provision.ts; default auto). */
  machineFirmware?: "auto" | "bios" | "uefi";
}

/** @throws Error when something fails to start; whatever had started is closed again */
export async function startLabRackhand(o: LabRackhandOptions): Promise<LabRackhand> {
  const dataDir = path.join(o.dir, "data");
  fs.mkdirSync(dataDir, { recursive: true });
  const artifacts = prepareArtifacts({ dataDir, cacheDir: o.cacheDir, agent: o.agent, marker: o.marker, after: "poweroff", debian: o.debian, firmware: o.imageFirmware, log: (l) => console.log(`[artifacts] ${l}`) });
  const env = {
    RACKHAND_DATA_DIR: dataDir,
    PORT: "0",
    RACKHAND_HOST: "0.0.0.0", // the VMs reach it on the rack's bridge address
    RACKHAND_ADMIN_PASSWORD: o.adminPassword,
    RACKHAND_DNSMASQ_COMMAND: `ip netns exec ${o.rack.netns} dnsmasq`,
    NODE_ENV: o.nodeEnv ?? "test",
  };
  const serverLog: string[] = [];
  const logFile = path.join(o.dir, "rackhand.log");
  const log = createLogger("info", "rackhand", (line) => {
    serverLog.push(line);
    fs.appendFileSync(logFile, line + "\n");
  });
  const app = await startApp(loadConfig(env, { ui: false }), log);
  try {
    const client = await signIn(app.url, "admin", o.adminPassword);
    const p = await provisionRack(client, o.rack, { port: Number(new URL(app.url).port), image: artifacts.image, uefiImage: artifacts.uefiImage, provide: true, firmware: o.machineFirmware });
    await until("Rackhand's dnsmasq to serve", () => serverLog.some((l) => l.includes("TFTP root")), 30_000);
    return { app, dataDir, client, serverLog, artifacts, machines: p.machines, close: () => app.close() }; // close stops dnsmasq
  } catch (err) {
    await app.close();
    throw err;
  }
}

/** Wait until a job ends; returns it with its steps (in group order). */
export async function waitForJob(app: App, jobId: number, timeoutMs: number): Promise<{ job: typeof jobs.$inferSelect; steps: (typeof steps.$inferSelect)[] }> {
  const db = app.domain.db;
  const job = await until(
    `job ${jobId} to finish`,
    () => {
      const j = db.select().from(jobs).where(eq(jobs.id, jobId)).get();
      return j && ["succeeded", "failed", "cancelled"].includes(j.state) ? j : null;
    },
    timeoutMs,
  );
  return { job, steps: db.select().from(steps).where(eq(steps.jobId, jobId)).orderBy(steps.group, steps.id).all() };
}

/** One line per step, for failure messages. */
export function stepSummary(all: { name: string; state: string; attempt: number; error: string | null }[]): string {
  return all.map((s) => `${s.name} ${s.state} attempt ${s.attempt}${s.error ? ` (${s.error})` : ""}`).join("\n");
}
