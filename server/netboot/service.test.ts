import fs from "node:fs";
import path from "node:path";
import { sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deleteMachine, enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { NetbootService } from "./service";
import { saveNetbootSettings } from "./settings";

/** Every file below dir, relative, with contents. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isSymbolicLink()) continue; // tftp/boot → the HTTP tree
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = fs.readFileSync(p, "utf8");
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

describe("netboot reconciler (external mode, real database)", () => {
  let h: Harness;
  let nb: NetbootService;
  beforeEach(async () => {
    h = createHarness();
    saveNetbootSettings(h.domain, { mode: "external", interface: "rhnb0", serverAddress: "10.0.0.1", rangeStart: "10.0.200.1", rangeEnd: "10.0.200.99", netmask: "255.255.0.0", httpBaseUrl: "http://10.0.0.1:3000" }, "test");
    nb = new NetbootService(h.domain, { dataDir: h.dataDir, debounceMs: 5 });
  });
  afterEach(async () => {
    await nb.stop();
    h.close();
  });
  const tree = () => snapshot(nb.root);
  const ipxe = (n: number) => tree()[`tftp/ipxe/52-54-00-00-00-${n.toString(16).padStart(2, "0")}.ipxe`];

  it("writes the tree for every machine on start, idempotently, and removes stale files", async () => {
    for (let i = 1; i <= 3; i++) await enrollMachine(h.domain, machineInput(i) as never, "test");
    fs.mkdirSync(path.join(nb.root, "hosts.d"), { recursive: true });
    fs.writeFileSync(path.join(nb.root, "hosts.d", "52-54-00-99-99-99"), "52:54:00:99:99:99,10.0.9.9,ghost\n");
    await nb.start();
    const t = tree();
    expect(Object.keys(t).filter((k) => k.startsWith("hosts.d/")).sort()).toEqual(["hosts.d/52-54-00-00-00-01", "hosts.d/52-54-00-00-00-02", "hosts.d/52-54-00-00-00-03"]);
    expect(t["hosts.d/52-54-00-00-00-02"]).toBe("52:54:00:00:00:02,10.0.0.2,node-002\n");
    expect(t["dnsmasq.conf"]).toContain("interface=rhnb0");
    expect(nb.status().lastReconcile?.removed).toBe(1);
    // Idempotent: a second full reconcile writes nothing.
    h.domain.bus.publish({ type: "machines.bulk", count: 0 });
    await nb.whenIdle();
    expect(nb.status().lastReconcile).toMatchObject({ full: true, written: 0, removed: 0 });
    expect(tree()).toEqual(t);
  });

  it("follows state changes per machine: deploying boots the RAM disk, deployed boots local disk", async () => {
    const { id } = await enrollMachine(h.domain, machineInput(1) as never, "test");
    await enrollMachine(h.domain, machineInput(2) as never, "test");
    await nb.start();
    expect(ipxe(1)).toContain("exit");
    for (const a of ["manage", "provide", "deploy"] as const) await transition(h.domain, id, a, { actor: "test" });
    await nb.whenIdle();
    expect(ipxe(1)).toContain("kernel http://10.0.0.1:3000/boot/ramdisk/vmlinuz");
    expect(nb.status().lastReconcile).toMatchObject({ full: false, written: 3 }); // pxelinux, GRUB, iPXE; the host line is unchanged
    expect(ipxe(2)).toContain("exit");
    await transition(h.domain, id, "succeed", { actor: "system" });
    await nb.whenIdle();
    expect(ipxe(1)).toContain("deployed, booting from local disk");
  });

  it("puts the RAM disk's payload checksum in every agent entry, and rewrites them all when the RAM disk is rebuilt", async () => {
    const ids = [(await enrollMachine(h.domain, machineInput(1) as never, "test")).id, (await enrollMachine(h.domain, machineInput(2) as never, "test")).id];
    for (const id of ids) for (const a of ["manage", "provide", "deploy"] as const) await transition(h.domain, id, a, { actor: "test" });
    const rd = path.join(h.dataDir, "http", "ramdisk");
    fs.mkdirSync(rd, { recursive: true });
    const manifest = (sha: string) => fs.writeFileSync(path.join(rd, "manifest.json"), JSON.stringify({ files: [{ name: "vmlinuz", sha256: "f".repeat(64) }, { name: "agent.cpio.zst", sha256: sha }] }));
    manifest("a".repeat(64));
    await nb.start();
    for (const n of [1, 2]) expect(ipxe(n)).toContain(`rackhand.payload=http://10.0.0.1:3000/boot/ramdisk/agent.cpio.zst rackhand.payload_sha256=${"a".repeat(64)}`);
    // The Settings page's "RAM disk built" needs every part the manifest names.
    for (const f of ["vmlinuz", "initrd.img"]) fs.writeFileSync(path.join(rd, f), "x");
    expect(nb.status().agentFiles.ramdisk).toBe(false);
    fs.writeFileSync(path.join(rd, "agent.cpio.zst"), "x");
    expect(nb.status().agentFiles.ramdisk).toBe(true);
    // Rebuilt: the next reconcile (any event, even one about another machine) rewrites every agent entry.
    manifest("b".repeat(64));
    h.domain.bus.publish({ type: "netboot.changed" });
    await nb.whenIdle();
    for (const n of [1, 2]) expect(ipxe(n)).toContain(`rackhand.payload_sha256=${"b".repeat(64)}`);
    expect(nb.status().lastReconcile?.full).toBe(true);
    // A broken manifest: entries without a payload (stage 1 then says on the console that it has no agent).
    fs.writeFileSync(path.join(rd, "manifest.json"), "{not json");
    h.domain.bus.publish({ type: "netboot.changed" });
    await nb.whenIdle();
    expect(ipxe(1)).not.toContain("rackhand.payload");
    // A manifest value that must not reach a kernel command line: refused, previous tree kept.
    manifest("b".repeat(63) + "\n");
    h.domain.bus.publish({ type: "netboot.changed" });
    await nb.whenIdle();
    expect(nb.status().lastError).toMatch(/agent payload sha256/);
    expect(ipxe(1)).not.toContain("rackhand.payload");
  });

  it("removes a deleted machine's files and asks for a SIGHUP", async () => {
    const { id } = await enrollMachine(h.domain, machineInput(1) as never, "test");
    await nb.start();
    expect(tree()["hosts.d/52-54-00-00-00-01"]).toBeDefined();
    await deleteMachine(h.domain, id, "test");
    await nb.whenIdle();
    const t = tree();
    expect(Object.keys(t).filter((k) => k.includes("52-54-00-00-00-01"))).toEqual([]);
    expect(nb.status().lastReconcile?.removed).toBe(4);
  });

  it("keeps the previous tree when a row is refused, and writes nothing of the batch", async () => {
    const a = await enrollMachine(h.domain, machineInput(1) as never, "test");
    const b = await enrollMachine(h.domain, machineInput(2) as never, "test");
    await nb.start();
    const before = tree();
    // Rows that bypassed the API (a hand-edited database): a name with a newline, then a traversal MAC.
    h.db.run(sql`update machines set name = 'evil' || char(10) || 'LABEL x' where id = ${a.id}`);
    h.db.run(sql`update nics set ip = '10.0.0.77' where machine_id = ${b.id}`);
    h.domain.bus.publish({ type: "machines.bulk", count: 2 });
    await nb.whenIdle();
    expect(nb.status().lastError).toMatch(/name/);
    expect(tree()).toEqual(before);
    h.db.run(sql`update machines set name = 'fixed' where id = ${a.id}`);
    h.db.run(sql`update nics set mac = '../../etc/x' where machine_id = ${a.id}`);
    h.domain.bus.publish({ type: "machines.bulk", count: 2 });
    await nb.whenIdle();
    expect(nb.status().lastError).toMatch(/MAC/);
    expect(tree()).toEqual(before);
    expect(fs.existsSync(path.join(h.dataDir, "etc"))).toBe(false);
  });

  it("leaves the previous tree when writing fails half-way (no temp files left)", async () => {
    const { id } = await enrollMachine(h.domain, machineInput(1) as never, "test");
    await enrollMachine(h.domain, machineInput(2) as never, "test");
    await nb.start();
    const before = tree();
    // A directory where the temp file of machine 2's host file would go makes that write fail.
    fs.mkdirSync(path.join(nb.root, "hosts.d", `.52-54-00-00-00-02.${process.pid}.tmp`));
    h.db.run(sql`update nics set ip = '10.0.0.88' where machine_id = 2`);
    await transition(h.domain, id, "manage", { actor: "test" }); // machine 1 also dirty
    h.domain.bus.publish({ type: "machine.changed", machineId: 2, name: "node-002", state: "enrolled", powerState: "unknown", maintenance: false, rackId: null });
    await nb.whenIdle();
    expect(nb.status().lastError).toMatch(/EISDIR|illegal operation/i);
    const after = tree();
    expect(after).toEqual(before);
  });

  it("writes nothing in mode off", async () => {
    saveNetbootSettings(h.domain, { mode: "off" }, "test");
    await enrollMachine(h.domain, machineInput(1) as never, "test");
    await nb.start();
    expect(tree()).toEqual({});
  });
});
