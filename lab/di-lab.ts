/**
 * debian-installer through Rackhand on a virtual rack (issue 17 point 5a): shared by lab/di-install.vm.test.ts and
 * bench/installer-di.ts.
 *
 *   - one QEMU VM (BIOS, TCG) behind an ipmi_sim BMC, on the rack's bridge (lab/rack.ts);
 *   - Rackhand in this process with its managed dnsmasq in the rack's namespace, its managed apt-cacher-ng
 *     (netboot proxy mode "managed") and its installer syslog receiver on the bridge address;
 *   - the machine enrolled with the seeded "Debian 12 (installer)" profile, its BMC verified through ipmitool.
 *
 * The VM's static netcfg (from the boot entry) names the dnsmasq namespace's address as its gateway: that namespace
 * does not forward (net.ipv4.ip_forward=0 there, checked) and there is no DNS server, so the VM reaches nothing but
 * the bridge. Its mirror (deb.debian.org, the profile's) is only reachable through the package proxy, whose
 * upstream is the host's apt. A deploy is clicked through tRPC as the UI does; the job's log pane is followed over
 * socket.io as the browser does, and every syslog datagram is recorded as received.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { eq } from "drizzle-orm";
import { io as connectSocket, type Socket } from "socket.io-client";
import { INSTALLER_PHASES, type InstallerPhase } from "../lib/installer-phases";
import type { LogLineDto } from "../lib/jobs";
import type { LiveEvent } from "../lib/live-events";
import { startApp, type App } from "../server/app";
import { loadConfig } from "../server/config";
import { jobs, steps } from "../server/db/schema";
import { createLogger } from "../server/log";
import { DEBIAN_12_AMD64 } from "../server/netboot/installer-files";
import { until } from "../server/testing/until";
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import type { AppRouter } from "../server/api/root";
import { retryingFetch, type RackhandClient } from "./client";
import { rackDown, rackUp, requireLabTools, vmRunning, type RackState, type VirtualNode } from "./rack";

const ACNG = "/usr/sbin/apt-cacher-ng";

export interface DiLab {
  rack: RackState;
  node: VirtualNode;
  app: App;
  client: RackhandClient;
  machineId: number;
  /** Every line Rackhand logged (also <dir>/rackhand.log). */
  serverLog: string[];
  close(): Promise<void>;
}

export interface DiLabOptions {
  /** Working directory: rack/, data/, rackhand.log. */
  dir: string;
  /** Name prefix of netns and links (2–6 lowercase letters/digits) and the provisioning /24's first three octets. */
  prefix: string;
  net: string;
  log?: (line: string) => void;
}

/** Throw (never skip) when the host lacks what the d-i lab needs besides the rack's tools. */
export function requireDiTools(): void {
  requireLabTools();
  for (const f of DEBIAN_12_AMD64.files) {
    const p = path.join(DEBIAN_12_AMD64.sourceDir, f);
    if (!fs.existsSync(p)) throw new Error(`${p} is missing: install ${DEBIAN_12_AMD64.pkg} (scripts/install-system-deps.sh)`);
  }
  if (!fs.existsSync(ACNG)) throw new Error(`${ACNG} is missing: install apt-cacher-ng (scripts/install-system-deps.sh)`);
}

/** A tRPC client signed in as the browser is (cookie + same-origin header). */
function clientFor(baseUrl: string, cookie: string): RackhandClient {
  return createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: `${baseUrl}/api/trpc`, headers: () => ({ cookie, origin: baseUrl }), fetch: retryingFetch })] });
}

async function login(baseUrl: string, password: string): Promise<string> {
  const res = await fetch(`${baseUrl}/api/trpc/auth.login`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: baseUrl },
    body: JSON.stringify({ name: "admin", password }),
  });
  if (res.status !== 200) throw new Error(`sign-in failed: HTTP ${res.status}`);
  return res.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
}

/** Rack (one VM), Rackhand and the machine, ready for a deploy. @throws Error when something fails to start (all closed again) */
export async function startDiLab(o: DiLabOptions): Promise<DiLab> {
  const log = o.log ?? (() => undefined);
  requireDiTools();
  const rackDir = path.join(o.dir, "rack");
  // d-i needs ~1 GiB under TCG (the lab recipe's size); it stops before it touches the disk here.
  const rack = await rackUp({ dir: rackDir, prefix: o.prefix, net: o.net, nodes: 1, memMiB: 1024, diskMiB: 1024, namePrefix: "di" });
  const node = rack.nodes[0]!;
  let app: App | null = null;
  try {
    const forward = execFileSync("ip", ["netns", "exec", rack.netns, "cat", "/proc/sys/net/ipv4/ip_forward"], { encoding: "utf8" }).trim();
    if (forward !== "0") throw new Error(`namespace ${rack.netns} forwards IPv4: the VM would have a way out besides the proxy`);
    const dataDir = path.join(o.dir, "data");
    fs.mkdirSync(dataDir, { recursive: true });
    const password = "di-lab-admin-password";
    const serverLog: string[] = [];
    const logFile = path.join(o.dir, "rackhand.log");
    const slog = createLogger("info", "rackhand", (line) => {
      serverLog.push(line);
      fs.appendFileSync(logFile, line + "\n");
    });
    const env = {
      RACKHAND_DATA_DIR: dataDir,
      PORT: "0",
      RACKHAND_HOST: "0.0.0.0", // the VM reaches it on the rack's bridge address
      RACKHAND_ADMIN_PASSWORD: password,
      RACKHAND_DNSMASQ_COMMAND: `ip netns exec ${rack.netns} dnsmasq`,
      NODE_ENV: "test" as const,
    };
    app = await startApp(loadConfig(env, { ui: false }), slog);
    const client = clientFor(app.url, await login(app.url, password));
    const httpBaseUrl = `http://${rack.hostAddress}:${new URL(app.url).port}`;
    // As an admin on the Settings page: managed dnsmasq, managed package proxy, the installer syslog receiver.
    await client.netboot.saveSettings.mutate({
      mode: "managed",
      interface: rack.dhcpInterface,
      serverAddress: rack.dhcpAddress,
      rangeStart: `${rack.net}.100`,
      rangeEnd: `${rack.net}.200`,
      netmask: "255.255.255.0",
      gateway: rack.dhcpAddress, // a router that does not route (see above)
      dnsServers: [],
      leaseTimeS: 3600,
      httpBaseUrl,
      ipv6RouterAdvertisements: true,
      dnsPort: 0,
      proxyMode: "managed",
      installerLogPort: 5514,
    });
    const profile = await until("the seeded Debian 12 (installer) profile", async () => (await client.osProfiles.list.query()).find((p) => p.name === DEBIAN_12_AMD64.profileName) ?? null, 30_000);
    // d-i's text frontend on the serial line: the console log then shows its prompts (for the failure message).
    const { id: _id, ...fields } = profile as typeof profile & { id: number };
    await client.osProfiles.update.mutate({ ...(fields as Parameters<typeof client.osProfiles.create.mutate>[0]), id: profile.id, kernelArgs: "console=ttyS0,115200n8 DEBIAN_FRONTEND=text" });
    const bmc = { driver: "ipmitool" as const, address: node.bmc.address, port: node.bmc.port, username: node.bmc.username, password: node.bmc.password };
    const { id: machineId } = await client.machines.enroll.mutate({ name: node.name, uHeight: 1, bootMac: node.mac, ip: node.ip, network: { prefix: 24, gateway: rack.dhcpAddress }, bmc, osProfileId: profile.id });
    await client.machines.action.mutate({ id: machineId, action: "manage" });
    await until("the BMC to be verified (manageable)", async () => ((await client.machines.get.query({ id: machineId })).state === "manageable" ? true : null), 60_000);
    await client.machines.action.mutate({ id: machineId, action: "provide" });
    await until("Rackhand's dnsmasq to serve", () => serverLog.some((l) => l.includes("TFTP root")), 30_000);
    await until("the managed package proxy to run", async () => ((await client.netboot.status.query())?.packageProxy?.running ? true : null), 30_000);
    log(`${node.name}: machine ${machineId}, ${node.mac}, ${node.ip}; Rackhand at ${httpBaseUrl}; proxy and syslog on ${rack.hostAddress}`);
    const started = app;
    return {
      rack,
      node,
      app: started,
      client,
      machineId,
      serverLog,
      close: async () => {
        await started.close();
        await rackDown(rackDir);
      },
    };
  } catch (err) {
    await app?.close();
    await rackDown(rackDir);
    throw err;
  }
}

export interface DiRun {
  jobId: number;
  clickAt: number;
  /** Log pane lines as they arrived over socket.io (at = arrival, ms epoch). */
  live: { at: number; line: LogLineDto }[];
  /** Every syslog datagram the receiver got from the VM, as received. */
  datagrams: { at: number; from: string; raw: string }[];
  /** Phases in the order the log pane showed them (at = arrival). */
  phases: { phase: InstallerPhase; at: number }[];
  job: typeof jobs.$inferSelect;
  steps: (typeof steps.$inferSelect)[];
  /** The package proxy's counters after the run (this VM is its only client). */
  proxy: { bytesFromUpstream: number; bytesToClients: number; requests: number; upstreamErrors: number; errors: { path: string; code: number | null }[] };
  /** The VM's serial console, escape sequences removed. */
  console: string;
}

const PHASE_LINE = /^phase: (.+)$/;
const later = (a: InstallerPhase, b: InstallerPhase) => INSTALLER_PHASES.indexOf(a) > INSTALLER_PHASES.indexOf(b);

/**
 * Click deploy and follow the job until it ends, or until d-i got past "installer components" and reached the next
 * phase (then the job is cancelled: a full install is not what this run measures), or `timeoutMs`.
 */
export async function runDiDeploy(lab: DiLab, timeoutMs: number): Promise<DiRun> {
  const { app, client } = lab;
  const cookie = await login(app.url, "di-lab-admin-password");
  const socket: Socket = connectSocket(app.url, { path: "/socket.io", transports: ["websocket"], reconnection: false, forceNew: true, extraHeaders: { cookie } });
  const datagrams: DiRun["datagrams"] = [];
  const stopObserving = app.installerLogs.observe((raw, from, at) => {
    if (from === lab.node.ip) datagrams.push({ at, from, raw: typeof raw === "string" ? raw : raw.toString("utf8") });
  });
  const live: DiRun["live"] = [];
  let jobId = 0;
  socket.on("live", (e: LiveEvent) => {
    if (e.type === "log.lines" && e.jobId === jobId) for (const line of e.lines) live.push({ at: Date.now(), line });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    // A machine whose last install failed is deployed again with "retry", as the machine page offers it.
    const action = (await client.machines.get.query({ id: lab.machineId })).state === "deploy_failed" ? "retry" : "deploy";
    const clickAt = Date.now();
    jobId = ((await client.machines.action.mutate({ id: lab.machineId, action })) as { jobId?: number }).jobId ?? 0;
    if (!jobId) throw new Error("deploy started no job");
    const ack = (await socket.emitWithAck("subscribe", { jobId })) as { ok: boolean };
    if (!ack.ok) throw new Error("could not follow the job's log room");
    const db = app.domain.db;
    const phases = () => live.flatMap(({ at, line }) => (line.stream === "phase" && PHASE_LINE.test(line.text) ? [{ phase: PHASE_LINE.exec(line.text)![1] as InstallerPhase, at }] : []));
    // Not `until`: on a timeout the caller still gets everything seen so far (its assertions say what was missing).
    for (const end = Date.now() + timeoutMs; Date.now() < end; await new Promise((r) => setTimeout(r, 250))) {
      const j = db.select().from(jobs).where(eq(jobs.id, jobId)).get();
      if (j && ["succeeded", "failed", "cancelled"].includes(j.state)) break;
      if (phases().some((p) => later(p.phase, "installer components"))) break;
    }
    let job = db.select().from(jobs).where(eq(jobs.id, jobId)).get()!;
    if (job.state === "running") {
      await client.jobs.cancel.mutate({ jobId });
      job = db.select().from(jobs).where(eq(jobs.id, jobId)).get()!;
    }
    // Late live lines of the same instant (the failure line follows the fatal one).
    await new Promise((r) => setTimeout(r, 500));
    const st = (await client.netboot.status.query())?.packageProxy?.stats;
    const proxy = {
      bytesFromUpstream: st?.bytesFromUpstream ?? 0,
      bytesToClients: st?.bytesToClients ?? 0,
      requests: st?.requests ?? 0,
      upstreamErrors: st?.upstreamErrors ?? 0,
      errors: (st?.recentErrors ?? []).filter((e) => e.client === lab.node.ip).map((e) => ({ path: e.path, code: e.code })),
    };
    return {
      jobId,
      clickAt,
      live: [...live],
      datagrams: [...datagrams],
      phases: phases(),
      job,
      steps: db.select().from(steps).where(eq(steps.jobId, jobId)).orderBy(steps.group, steps.id).all(),
      proxy,
      console: consoleText(lab.node),
    };
  } finally {
    stopObserving();
    socket.disconnect();
    // d-i waits at its prompt forever: power the VM off through the BMC as an operator would.
    if (vmRunning(lab.node)) await client.oob.power.mutate({ selection: { ids: [lab.machineId] }, action: "off" }).catch(() => undefined);
  }
}

/** The VM's console log without terminal escapes (d-i runs GNU screen on the serial line). */
export function consoleText(node: VirtualNode): string {
  const raw = fs.existsSync(node.consoleLog) ? fs.readFileSync(node.consoleLog, "latin1") : "";
  return raw.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, "").replace(/\x1b[()][0-9A-Za-z]/g, "").replace(/\r/g, "");
}

/** Recorded datagrams as a fixture: one JSON object per line, times relative to the first. */
export function datagramsToJsonl(d: DiRun["datagrams"]): string {
  const t0 = d[0]?.at ?? 0;
  return d.map((x) => JSON.stringify({ ms: x.at - t0, raw: x.raw })).join("\n") + "\n";
}
