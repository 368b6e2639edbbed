/**
 * The managed package proxy with the real apt-cacher-ng (scripts/install-system-deps.sh test): started on a
 * loopback address of its own, fetching from the host's apt upstream; cache hits, upstream 404s in the running
 * job's log by file name, /metrics, mode off stops it.
 */
import fs from "node:fs";
import { storeOf } from "../db/store";
import http from "node:http";
import client from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enrollMachine } from "../machines/enroll";
import { jobLogs } from "../orchestrator/jobs";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { storeNetbootSettings } from "../netboot/settings";
import { parseAcngLogLine } from "./acng";
import { registerProxyMetrics } from "./metrics";
import { ProxyService } from "./service";

// acng logs a transfer when the client's connection closes: one connection per request here (agent: false).
// A loopback address and port of this test's own (parallel runs differ).
const oct = () => 2 + Math.floor(Math.random() * 250);
const SERVER = `127.${oct()}.${oct()}.1`;
const CLIENT = SERVER.replace(/\.1$/, ".77");
const PORT = 20000 + Math.floor(Math.random() * 12000); // apt-cacher-ng cannot bind ports >= 32768

function viaProxy(url: string, localAddress = CLIENT): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: SERVER, port: PORT, path: url, localAddress, agent: false, headers: { host: new URL(url).host } }, (res) => {
      let bytes = 0;
      res.on("data", (b: Buffer) => (bytes += b.length));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes }));
    });
    req.on("error", reject);
    req.setTimeout(60_000, () => req.destroy(new Error("timeout")));
  });
}

describe("package proxy: managed apt-cacher-ng", () => {
  let h: Harness;
  let proxy: ProxyService;
  let jobId: number;
  beforeAll(async () => {
    expect(fs.existsSync("/usr/sbin/apt-cacher-ng"), "apt-cacher-ng missing: run scripts/install-system-deps.sh test").toBe(true);
    h = createHarness();
    const base = SERVER.replace(/\.1$/, "");
    await storeNetbootSettings(h.domain, { mode: "off", interface: "lo", serverAddress: SERVER, rangeStart: `${base}.100`, rangeEnd: `${base}.200`, httpBaseUrl: `http://${SERVER}:3000`, proxyMode: "managed", proxyPort: PORT }, "test");
    const { id } = await enrollMachine(h.domain, machineInput(1, { ip: CLIENT }) as never, "test");
    const { jobs } = h.store.t;
    const [job] = await h.store.db.insert(jobs).values({ machineId: id, kind: "deploy_installer", state: "running", createdAt: new Date(), startedAt: new Date() }).returning({ id: jobs.id });
    jobId = job!.id;
    proxy = new ProxyService(h.domain, { dataDir: h.dataDir, pollMs: 100 });
    await proxy.start();
  }, 30_000);
  afterAll(async () => {
    await proxy?.stop();
    h?.close();
  });

  it("runs on the provisioning address with its config under the data dir", async () => {
    const s = proxy.status();
    expect(s, s.error ?? "").toMatchObject({ mode: "managed", running: true, url: `http://${SERVER}:${PORT}`, error: null });
    const conf = fs.readFileSync(`${h.dataDir}/proxy/conf/acng.conf`, "utf8");
    expect(conf).toContain(`BindAddress: ${SERVER}\n`);
    expect(conf).toContain(`CacheDir: ${h.dataDir}/proxy/cache\n`);
  });

  it("serves a package from upstream, then from its cache (hit rate, cache size, /metrics)", async () => {
    const url = "http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb";
    const a = await viaProxy(url);
    expect(a.status).toBe(200);
    const b = await viaProxy(url);
    expect(b).toEqual(a);
    await new Promise((r) => setTimeout(r, 300));
    proxy.poll();
    const st = proxy.status().stats!;
    expect(st.bytesToClients).toBeGreaterThanOrEqual(2 * a.bytes);
    expect(st.hitRate).toBeGreaterThan(0.4);
    expect(st.cacheBytes).toBeGreaterThanOrEqual(a.bytes);
    const registry = new client.Registry();
    registerProxyMetrics(registry, () => proxy.status());
    const text = await registry.metrics();
    expect(text).toMatch(/^rackhand_package_proxy_up 1$/m);
    expect(text).toMatch(/^rackhand_package_proxy_hit_ratio 0\.\d+$/m);
    expect(Number(/^rackhand_package_proxy_cache_bytes (\d+)$/m.exec(text)?.[1])).toBe(st.cacheBytes);
  }, 120_000);

  it("puts an upstream 404 of the machine's download into its running job's log, naming the file", async () => {
    const r = await viaProxy("http://deb.debian.org/debian/pool/main/r/rackhand-missing/rackhand-missing-udeb_1.0_all.udeb");
    expect(r.status).toBe(404);
    await new Promise((res) => setTimeout(res, 300));
    proxy.poll();
    const lines = await jobLogs(storeOf(h.domain), jobId, -1, 100);
    expect(lines.map((l) => l.text)).toContain(
      "package proxy: upstream HTTP 404 for rackhand-missing-udeb_1.0_all.udeb (deb.debian.org/debian/pool/main/r/rackhand-missing/rackhand-missing-udeb_1.0_all.udeb)",
    );
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i));
    expect(proxy.status().stats!.upstreamErrors).toBeGreaterThanOrEqual(1);
    // Another client's 404 (no machine at that address) goes to no job.
    await viaProxy("http://deb.debian.org/debian/pool/main/r/rackhand-missing/other_1.0_all.udeb", SERVER.replace(/\.1$/, ".78"));
    await new Promise((res) => setTimeout(res, 300));
    proxy.poll();
    expect((await jobLogs(storeOf(h.domain), jobId, -1, 100)).some((l) => l.text.includes("other_1.0_all.udeb"))).toBe(false);
  }, 120_000);

  it("stops when the mode goes off", async () => {
    const pid = proxy.status().pid!;
    await storeNetbootSettings(h.domain, { mode: "off", interface: "lo", serverAddress: SERVER, rangeStart: SERVER.replace(/\.1$/, ".100"), rangeEnd: SERVER.replace(/\.1$/, ".200"), proxyMode: "off" }, "test");
    await proxy.reconcile();
    expect(proxy.status()).toMatchObject({ mode: "off", running: false, url: null });
    expect(() => process.kill(pid, 0)).toThrow();
  });
});

describe("acng transfer log lines", () => {
  it("parses in/out/error lines, keeps the path, refuses other text", async () => {
    expect(parseAcngLogLine("1796585396|O|149482|10.88.0.10|deb.debian.org/debian/dists/bookworm/Release")).toEqual({ ts: 1796585396000, kind: "out", bytes: 149482, client: "10.88.0.10", path: "deb.debian.org/debian/dists/bookworm/Release", code: null });
    expect(parseAcngLogLine("1796585396|E|613|10.88.0.10|deb.debian.org/debian/pool/main/a/apt-setup/apt-mirror-setup_0.182_all.udeb [HTTP error, code: 404]")).toMatchObject({ kind: "error", code: 404, path: "deb.debian.org/debian/pool/main/a/apt-setup/apt-mirror-setup_0.182_all.udeb" });
    expect(parseAcngLogLine("1796585396|I|164|10.88.0.10|x/y.udeb [HTTP error, code: 404]")).toMatchObject({ kind: "in", code: 404 });
    for (const bad of ["", "garbage", "1|X|1|c|p", "a|O|1|c|p", "1|O|x|c|p"]) expect(parseAcngLogLine(bad)).toBeNull();
  });
});
