/**
 * Installer syslog over real UDP into a real app: a deploy_installer job (fake BMC, as boot.int.test.ts) whose
 * machine sends d-i's recorded datagrams from its own (loopback) address: lines and phases in the job log with
 * job-wide seqs, another address's lines in no job, the fatal download failure fails the job at once.
 */
import dgram from "node:dgram";
import net from "node:net";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp, type App } from "../app";
import { createCaller } from "../api/root";
import { LoginThrottle } from "../auth/throttle";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { testDatabaseEnv } from "../testing/test-store";

const oct = () => 2 + Math.floor(Math.random() * 250);
const NET = `127.${oct()}.${oct()}`;
const SERVER = `${NET}.1`;
const MACHINE = `${NET}.51`;
const PORT = 20000 + Math.floor(Math.random() * 20000);

let dataDir: string;
let app: App;
beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-dilog-"));
  const config = loadConfig({ ...(await testDatabaseEnv()), NODE_ENV: "test", RACKHAND_DATA_DIR: dataDir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: "dilog-test-admin" }, { ui: false });
  app = await startApp(config, silentLogger);
});
afterAll(async () => {
  await app?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

function send(lines: string[], from: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket("udp4");
    s.bind(0, from, async () => {
      for (const l of lines) await new Promise<void>((r, j) => s.send(l, PORT, SERVER, (e) => (e ? j(e) : r())));
      s.close(() => resolve());
    });
    s.on("error", reject);
  });
}

describe("installer syslog receiver", () => {
  it("puts d-i's lines and phases on the job's log pane and fails the job within seconds of the fatal error", async () => {
    const user = { id: 1, name: "admin", role: "admin" as const };
    const api = createCaller({ domain: app.domain, config: {} as never, user, clientIp: "t", loginThrottle: new LoginThrottle(), setCookie: () => {} });
    await api.netboot.saveSettings({ mode: "external", interface: "lo", serverAddress: SERVER, rangeStart: `${NET}.100`, rangeEnd: `${NET}.200`, httpBaseUrl: `http://${SERVER}:3000`, installerLogPort: PORT });
    const profile = (await api.osProfiles.list()).find((p) => p.name === "Debian 12 (installer)");
    expect(profile, "the seeded installer profile (debian-installer-12-netboot-amd64 installed?)").toBeDefined();
    const { id } = await api.machines.enroll({ name: "dilog-1", bootMac: "52:54:00:12:33:01", ip: MACHINE, osProfileId: profile!.id, bmc: { driver: "fake", address: `${NET}.251`, username: "admin", password: "fake-pw" } });
    for (const action of ["manage", "provide", "deploy"] as const) await api.machines.action({ id, action });
    const file = path.join(dataDir, "netboot/tftp/ipxe/52-54-00-12-33-01.ipxe");
    let entry = "";
    for (let i = 0; i < 100 && !entry.includes("installer"); i++) {
      await new Promise((r) => setTimeout(r, 20));
      entry = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    }
    expect(entry).toContain(`log_host=${SERVER} log_port=${PORT}`);
    expect(entry).toContain(`/boot/installers/debian-12-amd64/linux`);

    let job = (await api.jobs.forMachine({ machineId: id }))[0]!;
    for (let i = 0; i < 200 && !job.steps.some((s) => s.name === "wait_install" && s.state === "running"); i++) {
      await new Promise((r) => setTimeout(r, 50));
      job = (await api.jobs.forMachine({ machineId: id }))[0]!;
    }
    expect(job.steps.find((s) => s.name === "wait_install")?.state).toBe("running");

    await send(["<14>Dec  4 02:37:09 netcfg[502]: INFO: Gateway reachable on enp0s1", "<13>Dec  4 02:37:56 preseed: successfully loaded preseed file"], MACHINE);
    await send(["<14>Dec  4 02:37:09 netcfg[502]: stranger"], `${NET}.52`);
    await send(["<14>Dec  4 02:38:15 main-menu[258]: INFO: Menu item 'download-installer' selected", "<14>Dec  4 02:38:27 anna[2905]: 2026-12-04 02:38:27 ERROR 404: Not Found."], MACHINE);
    const t0 = Date.now();
    await send(["<12>Dec  4 02:38:27 anna[2905]: WARNING **: package retrieval failed"], MACHINE);
    for (let i = 0; i < 100 && job.state === "running"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      job = (await api.jobs.forMachine({ machineId: id }))[0]!;
    }
    expect(job.state).toBe("failed");
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(job.error ?? job.steps.find((s) => s.name === "wait_install")?.error).toMatch(/Installer failed at installer components: installer components could not be downloaded\. Last lines: .*package retrieval failed/);
    const logs = await api.jobs.logs({ jobId: job.id, afterSeq: -1 });
    const texts = logs.map((l) => `${l.stream} ${l.text}`);
    expect(texts.slice(0, 4)).toEqual(["installer netcfg[502]: INFO: Gateway reachable on enp0s1", "phase phase: network", "installer preseed: successfully loaded preseed file", "phase phase: preseed"]);
    expect(texts).toContain("phase phase: installer components");
    expect(texts.some((t) => t.includes("stranger"))).toBe(false);
    expect(logs.map((l) => l.seq)).toEqual(logs.map((_, i) => i));
    // Resumable: after a seq only the later lines.
    expect((await api.jobs.logs({ jobId: job.id, afterSeq: 3 }))[0]!.seq).toBe(4);
  }, 60_000);

  it("takes subiquity's reporting webhook at the install-token URL: lines, phases, FAIL fails the job; bad token or body refused", async () => {
    const user = { id: 1, name: "admin", role: "admin" as const };
    const api = createCaller({ domain: app.domain, config: {} as never, user, clientIp: "t", loginThrottle: new LoginThrottle(), setCookie: () => {} });
    const profile = (await api.osProfiles.list()).find((p) => p.name === "Debian 12 (installer)")!;
    const { id } = await api.machines.enroll({ name: "dilog-2", bootMac: "52:54:00:12:33:02", ip: `${NET}.61`, osProfileId: profile.id, bmc: { driver: "fake", address: `${NET}.252`, username: "admin", password: "fake-pw" } });
    for (const action of ["manage", "provide", "deploy"] as const) await api.machines.action({ id, action });
    const file = path.join(dataDir, "netboot/tftp/ipxe/52-54-00-12-33-02.ipxe");
    let entry = "";
    for (let i = 0; i < 100 && !entry.includes("installer"); i++) {
      await new Promise((r) => setTimeout(r, 20));
      entry = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    }
    const base = /url=http:\/\/[^/]+(\/boot\/m\/\d+\/[A-Za-z0-9_-]+)\/preseed\.cfg/.exec(entry)![1]!;
    let job = (await api.jobs.forMachine({ machineId: id }))[0]!;
    for (let i = 0; i < 200 && !job.steps.some((s) => s.name === "wait_install" && s.state === "running"); i++) {
      await new Promise((r) => setTimeout(r, 50));
      job = (await api.jobs.forMachine({ machineId: id }))[0]!;
    }
    const post = (p: string, body: unknown) => fetch(`${app.url}${p}`, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });
    // Events shaped as curtin's as_dict() posts them for subiquity's contexts (fixtures/subiquity-install-*.jsonl).
    const fixture = (name: string) => fs.readFileSync(path.join(import.meta.dirname, "fixtures", name), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { name: string });
    const partitioning = fixture("subiquity-install-ok.jsonl").find((e) => e.name.endsWith("/cmd-install/stage-partitioning"))!;
    expect((await post(`${base}/events`, partitioning)).status).toBe(200);
    expect((await post(`${base}/events`, "{not json")).status).toBe(400);
    expect((await post(`${base}/events`, { description: "no name" })).status).toBe(400);
    expect((await post(`${base.slice(0, -2)}xx/events`, { name: "x", event_type: "start" })).status).toBe(404);
    expect((await fetch(`${app.url}${base}/events`)).status).toBe(405);
    // curtin attaches its log (base64) to a finish event: well above the old 64 KiB body limit.
    const withLog = { name: "cmd-install/stage-partitioning/builtin", description: "finished: x", event_type: "finish", origin: "curtin", timestamp: 1, level: "INFO", result: "SUCCESS", files: [{ path: "/var/log/curtin/install.log", content: Buffer.alloc(300_000, 65).toString("base64"), encoding: "base64" }] };
    expect((await post(`${base}/events`, withLog)).status).toBe(200);
    const failing = fixture("subiquity-install-fail.jsonl");
    for (const e of failing.slice(0, -1)) expect((await post(`${base}/events`, e)).status).toBe(200);
    for (let i = 0; i < 100 && job.state === "running"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      job = (await api.jobs.forMachine({ machineId: id }))[0]!;
    }
    expect(job.state).toBe("failed");
    const logs = (await api.jobs.logs({ jobId: job.id, afterSeq: -1 })).map((l) => `${l.stream} ${l.text}`);
    expect(logs.slice(0, 2)).toEqual(["installer start subiquity/Install/install/curtin_install/run_curtin_step/cmd-install/stage-partitioning: started: configuring storage", "phase phase: partitioning"]);
    // The nested step FAILs are lines; the install task's FAIL ends the job, once.
    const reasons = logs.filter((l) => l.startsWith("stderr Installer failed"));
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/^stderr Installer failed at partitioning: subiquity\/Install\/install failed: Command .*returned non-zero exit status 3\./);
  }, 60_000);

  it("takes anaconda's inst.syslog over TCP (rsyslog @@host:port): LF lines and octet-counted frames, split anywhere, by source address", async () => {
    const user = { id: 1, name: "admin", role: "admin" as const };
    const api = createCaller({ domain: app.domain, config: {} as never, user, clientIp: "t", loginThrottle: new LoginThrottle(), setCookie: () => {} });
    const profile = (await api.osProfiles.list()).find((p) => p.name === "Debian 12 (installer)")!;
    const ip = `${NET}.71`;
    const { id } = await api.machines.enroll({ name: "dilog-3", bootMac: "52:54:00:12:33:03", ip, osProfileId: profile.id, bmc: { driver: "fake", address: `${NET}.253`, username: "admin", password: "fake-pw" } });
    for (const action of ["manage", "provide", "deploy"] as const) await api.machines.action({ id, action });
    let job = (await api.jobs.forMachine({ machineId: id }))[0]!;
    for (let i = 0; i < 200 && !job.steps.some((s) => s.name === "wait_install" && s.state === "running"); i++) {
      await new Promise((r) => setTimeout(r, 50));
      job = (await api.jobs.forMachine({ machineId: id }))[0]!;
    }
    // rsyslog's default forwarding format (RSYSLOG_TraditionalForwardFormat): <PRI>TIMESTAMP HOSTNAME TAG MSG.
    const lines = ["<30>Dec  6 10:01:02 localhost anaconda[1234]: Running pre-installation scripts", "<27>Dec  6 10:01:03 localhost anaconda[1234]: a\u0000b $(reboot)"];
    const counted = "<30>Dec  6 10:01:04 localhost org.fedoraproject.Anaconda.Modules.Storage[1300]: Probing storage";
    const payload = Buffer.from(`${lines[0]}\n${lines[1]}\n${Buffer.byteLength(counted)} ${counted}`);
    await new Promise<void>((resolve, reject) => {
      const c = net.connect({ host: SERVER, port: PORT, localAddress: ip }, () => {
        // Split in the middle of a line and of the frame's length prefix.
        c.write(payload.subarray(0, 30));
        setTimeout(() => c.write(payload.subarray(30, payload.length - 40)), 50);
        setTimeout(() => c.end(payload.subarray(payload.length - 40)), 100);
      });
      c.on("close", () => resolve());
      c.on("error", reject);
    });
    let texts: string[] = [];
    for (let i = 0; i < 100 && texts.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 50));
      texts = (await api.jobs.logs({ jobId: job.id, afterSeq: -1 })).filter((l) => l.stream === "installer").map((l) => l.text);
    }
    expect(texts).toEqual(["anaconda[1234]: Running pre-installation scripts", "anaconda[1234]: error: a b $(reboot)", "org.fedoraproject.Anaconda.Modules.Storage[1300]: Probing storage"]);
    // An over-long line (100 kB, no newline for a while) is cut, never buffered whole; the next line arrives intact.
    await new Promise<void>((resolve, reject) => {
      const c = net.connect({ host: SERVER, port: PORT, localAddress: ip }, () => c.end(`<30>Dec  6 10:01:05 localhost anaconda[1234]: ${"x".repeat(100_000)}\n<30>Dec  6 10:01:06 localhost anaconda[1234]: after the long one\n`));
      c.on("close", () => resolve());
      c.on("error", reject);
    });
    for (let i = 0; i < 100 && !texts.includes("anaconda[1234]: after the long one"); i++) {
      await new Promise((r) => setTimeout(r, 50));
      texts = (await api.jobs.logs({ jobId: job.id, afterSeq: -1 })).filter((l) => l.stream === "installer").map((l) => l.text);
    }
    expect(texts.at(-1)).toBe("anaconda[1234]: after the long one");
    expect(texts.every((t) => t.length <= 8300)).toBe(true);
    await api.jobs.cancel({ jobId: job.id });
  }, 60_000);
});
