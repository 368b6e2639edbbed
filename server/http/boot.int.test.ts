/** /boot over real HTTP: static files with Range, refused paths, per-machine install files behind their token. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp, type App } from "../app";
import { loadConfig } from "../config";
import { silentLogger } from "../log";
import { createCaller } from "../api/root";
import { LoginThrottle } from "../auth/throttle";
import { testDatabaseEnv } from "../testing/test-store";

let dataDir: string;
let app: App;
const kernel = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-boot-"));
  fs.mkdirSync(path.join(dataDir, "http/ramdisk"), { recursive: true });
  fs.mkdirSync(path.join(dataDir, "http/debian"), { recursive: true });
  fs.writeFileSync(path.join(dataDir, "http/ramdisk/vmlinuz"), kernel);
  fs.writeFileSync(path.join(dataDir, "http/debian/initrd.gz"), "gz");
  fs.symlinkSync("/etc/passwd", path.join(dataDir, "http/debian/escape"));
  const config = loadConfig({ ...(await testDatabaseEnv()), NODE_ENV: "test", RACKHAND_DATA_DIR: dataDir, PORT: "0", RACKHAND_HOST: "127.0.0.1", RACKHAND_ADMIN_PASSWORD: "boot-test-admin" }, { ui: false });
  app = await startApp(config, silentLogger);
});

afterAll(async () => {
  await app?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const get = (p: string, headers: Record<string, string> = {}) => fetch(`${app.url}${p}`, { headers });

describe("HTTP boot files", () => {
  it("serves kernels with content type, length and byte ranges", async () => {
    const full = await get("/boot/ramdisk/vmlinuz");
    expect(full.status).toBe(200);
    expect(full.headers.get("accept-ranges")).toBe("bytes");
    expect(full.headers.get("content-type")).toBe("application/octet-stream");
    expect(Buffer.from(await full.arrayBuffer())).toEqual(kernel);
    const part = await get("/boot/ramdisk/vmlinuz", { range: "bytes=10-19" });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe("bytes 10-19/1000");
    expect(Buffer.from(await part.arrayBuffer())).toEqual(kernel.subarray(10, 20));
    const tail = await get("/boot/ramdisk/vmlinuz", { range: "bytes=-5" });
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(kernel.subarray(995));
    const open = await get("/boot/ramdisk/vmlinuz", { range: "bytes=990-" });
    expect(open.headers.get("content-range")).toBe("bytes 990-999/1000");
    const bad = await get("/boot/ramdisk/vmlinuz", { range: "bytes=1000-" });
    expect(bad.status).toBe(416);
    expect(bad.headers.get("content-range")).toBe("bytes */1000");
    const gz = await get("/boot/debian/initrd.gz");
    expect(gz.headers.get("content-type")).toBe("application/gzip");
  });

  it.each(["/boot/%2e%2e/rackhand.db", "/boot/..%2fsecret.key", "/boot/debian/escape", "/boot/debian/%00", "/boot/ramdisk", "/boot/nothing"])("refuses %s", async (p) => {
    const res = await get(p);
    expect(res.status).toBe(404);
    expect(await res.text()).not.toContain("root:");
  });

  it("serves install files only to the installing machine with its current token", async () => {
    const user = { id: 1, name: "admin", role: "admin" as const };
    const api = createCaller({ domain: app.domain, config: {} as never, user, clientIp: "t", loginThrottle: new LoginThrottle(), setCookie: () => {} });
    await api.netboot.saveSettings({ mode: "external", interface: "rhnb0", serverAddress: "10.9.0.1", rangeStart: "10.9.0.100", rangeEnd: "10.9.0.200", httpBaseUrl: "http://10.9.0.1:3000" });
    const { id: profileId } = await api.osProfiles.create({
      name: "Debian 12",
      kind: "installer",
      osFamily: "debian",
      kernel: "debian/linux",
      initrd: "debian/initrd.gz",
      kernelArgs: "console=ttyS0,115200",
      template: "preseed",
      options: { mirror: "http://deb.debian.org/debian", username: "ops" },
    });
    // A fake BMC: the deploy job sets the boot device and power-cycles before it waits for the installer.
    const { id } = await api.machines.enroll({
      name: "inst-1",
      bootMac: "52:54:00:12:00:01",
      ip: "10.9.0.51",
      osProfileId: profileId,
      bmc: { driver: "fake", address: "10.9.1.51", username: "admin", password: "fake-pw" },
    });
    for (const action of ["manage", "provide", "deploy"] as const) await api.machines.action({ id, action });
    const entry = path.join(dataDir, "netboot/tftp/ipxe/52-54-00-12-00-01.ipxe");
    let script = "";
    for (let i = 0; i < 100 && !script.includes("installer"); i++) {
      await new Promise((r) => setTimeout(r, 20));
      script = fs.existsSync(entry) ? fs.readFileSync(entry, "utf8") : "";
    }
    const url = /url=http:\/\/10\.9\.0\.1:3000(\/boot\/m\/\d+\/[A-Za-z0-9_-]+)\/preseed\.cfg/.exec(script);
    expect(url, script).not.toBeNull();
    const base = url![1]!;
    const preseed = await get(`${base}/preseed.cfg`);
    expect(preseed.status).toBe(200);
    const text = await preseed.text();
    expect(text).toContain("d-i netcfg/get_hostname string inst-1");
    expect(text).toContain(`${base}/done`);
    expect((await get(`${base}/ks.cfg`)).status).toBe(404); // not this profile's template
    expect((await get(`${base.slice(0, -2)}xx/preseed.cfg`)).status).toBe(404);
    expect((await get(`/boot/m/${id + 1}/${base.split("/").pop()}/preseed.cfg`)).status).toBe(404);
    const done = await fetch(`${app.url}${base}/done`, { method: "POST" });
    expect(done.status).toBe(200);
    // The job goes on: boot entry and boot device to disk, power cycle, then deployed.
    for (let i = 0; i < 200 && (await api.machines.get({ id })).state !== "deployed"; i++) await new Promise((r) => setTimeout(r, 25));
    expect((await api.machines.get({ id })).state).toBe("deployed");
    // Installed: the same URL now serves nothing.
    expect((await get(`${base}/preseed.cfg`)).status).toBe(404);
  });

  it("refuses profiles and settings whose values would inject boot directives", async () => {
    const user = { id: 1, name: "admin", role: "admin" as const };
    const api = createCaller({ domain: app.domain, config: {} as never, user, clientIp: "t", loginThrottle: new LoginThrottle(), setCookie: () => {} });
    const base = { name: "Bad", kind: "installer" as const, osFamily: "debian" as const, kernel: "debian/linux", initrd: "debian/initrd.gz", template: "preseed" as const };
    await expect(api.osProfiles.create({ ...base, kernelArgs: "quiet\nkernel http://evil/x" })).rejects.toThrow(/Kernel arguments/);
    await expect(api.osProfiles.create({ ...base, kernel: "../../etc/passwd" })).rejects.toThrow(/'\.\.' is not allowed|relative path/);
    await expect(api.osProfiles.create({ ...base, options: { username: "ops", mirror: "http://x/\"; reboot" } })).rejects.toThrow();
    await expect(api.netboot.saveSettings({ interface: "eth0\ndhcp-script=/tmp/x" })).rejects.toThrow(/Interface/);
    expect((await api.osProfiles.list()).map((p) => p.name)).not.toContain("Bad");
  });
});
