import fs from "node:fs";
import path from "node:path";
import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deleteMachine, enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { NetbootService } from "./service";
import { loadNetbootSettings, storeNetbootSettings } from "./settings";

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
    await storeNetbootSettings(h.domain, { mode: "external", interface: "rhnb0", serverAddress: "10.0.0.1", rangeStart: "10.0.200.1", rangeEnd: "10.0.200.99", netmask: "255.255.0.0", httpBaseUrl: "http://10.0.0.1:3000" }, "test");
    // Events wait for whenIdle() (no timer fires between the steps of a test: one reconcile per step, on either database).
    nb = new NetbootService(h.domain, { dataDir: h.dataDir, debounceMs: 600_000 });
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
    // All host lines in the one dhcp-hostsfile; hosts.d (NICs added later) is empty, the ghost's file removed.
    expect(Object.keys(t).filter((k) => k.startsWith("hosts.d/"))).toEqual([]);
    expect(t["hosts"]).toBe("52:54:00:00:00:01,10.0.0.1,node-001\n52:54:00:00:00:02,10.0.0.2,node-002\n52:54:00:00:00:03,10.0.0.3,node-003\n");
    expect(t["dnsmasq.conf"]).toContain("interface=rhnb0");
    expect(t["dnsmasq.conf"]).toContain(`dhcp-hostsfile=${nb.root}/hosts\n`);
    // Machines booting their local disk have no per-MAC boot entries: the defaults serve them.
    expect(Object.keys(t).filter((k) => /^tftp\/(ipxe|grub|pxelinux\.cfg)\//.test(k)).sort()).toEqual(["tftp/grub/grub.cfg", "tftp/ipxe/default.ipxe", "tftp/pxelinux.cfg/default"]);
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
    expect(ipxe(1)).toBeUndefined(); // local disk: the default entry
    expect(tree()["tftp/ipxe/default.ipxe"]).toContain("exit");
    for (const a of ["manage", "provide", "deploy"] as const) await transition(h.domain, id, a, { actor: "test" });
    await nb.whenIdle();
    expect(ipxe(1)).toContain("kernel http://10.0.0.1:3000/boot/ramdisk/vmlinuz");
    expect(nb.status().lastReconcile).toMatchObject({ full: false, written: 3 }); // pxelinux, GRUB, iPXE; the host line is unchanged
    expect(ipxe(2)).toBeUndefined();
    await transition(h.domain, id, "succeed", { actor: "system" });
    await nb.whenIdle();
    expect(ipxe(1)).toBeUndefined();
    expect(nb.status().lastReconcile).toMatchObject({ full: false, written: 0, removed: 3 });
    expect(Object.keys(tree()).filter((k) => k.includes("52-54-00-00-00-01"))).toEqual([]);
  });

  it("concurrent set_boot_target calls share the reconcile queued behind the running one, and each sees its machine written", async () => {
    const ids: number[] = [];
    for (let i = 1; i <= 20; i++) ids.push((await enrollMachine(h.domain, machineInput(i) as never, "test")).id);
    await nb.start();
    for (const id of ids) for (const a of ["manage", "provide", "deploy"] as const) await transition(h.domain, id, a, { actor: "test" });
    const before = nb.status().reconciles;
    // As 20 set_boot_target steps of a batch wave: each marks its machine and waits for a reconcile that read it.
    await Promise.all(ids.map((id) => nb.applyMachine(id)));
    for (let n = 1; n <= 20; n++) expect(ipxe(n), `machine ${n}`).toContain("kernel http://10.0.0.1:3000/boot/ramdisk/vmlinuz");
    // One reconcile for the first caller, one shared by the 19 that came while it ran (one per call: 20).
    expect(nb.status().reconciles - before).toBeLessThanOrEqual(2);
    // A call made after those finished gets a reconcile of its own.
    await nb.applyMachine(ids[0]!);
    expect(nb.status().reconciles - before).toBeLessThanOrEqual(3);
  });

  it("adds a new NIC as its own hosts.d file (inotify, no SIGHUP); a changed or removed line goes through the hosts file and a SIGHUP", async () => {
    const a = await enrollMachine(h.domain, machineInput(1) as never, "test");
    await nb.start();
    const ctx = nb.context(await loadNetbootSettings(h.store));
    const hostsFile = () => tree()["hosts"];
    const before = hostsFile();
    // A machine enrolled after the full reconcile: one hosts.d file, the hosts file untouched, no signal needed.
    const b = await enrollMachine(h.domain, machineInput(2) as never, "test");
    let c = await nb.reconcileSome([b.id], ctx);
    expect(c).toMatchObject({ written: ["hosts.d/52-54-00-00-00-02"], removed: [], hostsReload: false });
    expect(tree()["hosts.d/52-54-00-00-00-02"]).toBe("52:54:00:00:00:02,10.0.0.2,node-002\n");
    // A state change leaves host lines alone: nothing to re-read.
    await transition(h.domain, a.id, "manage", { actor: "test" });
    await transition(h.domain, b.id, "manage", { actor: "test" });
    expect(await nb.reconcileSome([a.id, b.id], ctx)).toMatchObject({ written: [], removed: [], hostsReload: false });
    // b's address changes: dnsmasq would keep the old entry of a rewritten hosts.d file, so the line moves to the hosts file.
    await h.store.db.update(h.store.t.nics).set({ ip: "10.0.0.22" }).where(eq(h.store.t.nics.machineId, b.id));
    c = await nb.reconcileSome([b.id], ctx);
    expect(c).toMatchObject({ written: ["hosts"], removed: ["hosts.d/52-54-00-00-00-02"], hostsReload: true });
    expect(hostsFile()).toBe(`${before}52:54:00:00:00:02,10.0.0.22,node-002\n`);
    // a's address changes: rewritten in place.
    await h.store.db.update(h.store.t.nics).set({ ip: "10.0.0.11" }).where(eq(h.store.t.nics.machineId, a.id));
    expect(await nb.reconcileSome([a.id], ctx)).toMatchObject({ written: ["hosts"], hostsReload: true });
    expect(hostsFile()).toBe("52:54:00:00:00:01,10.0.0.11,node-001\n52:54:00:00:00:02,10.0.0.22,node-002\n");
    // Deleted: the line leaves the hosts file.
    await deleteMachine(h.domain, a.id, "test");
    expect(await nb.reconcileSome([a.id], ctx)).toMatchObject({ written: ["hosts"], removed: [], hostsReload: true });
    expect(hostsFile()).toBe("52:54:00:00:00:02,10.0.0.22,node-002\n");
    // A machine deleted while its NIC is still in hosts.d: the file goes, and dnsmasq must forget it.
    const d = await enrollMachine(h.domain, machineInput(4) as never, "test");
    await nb.reconcileSome([d.id], ctx);
    await deleteMachine(h.domain, d.id, "test");
    expect(await nb.reconcileSome([d.id], ctx)).toMatchObject({ written: [], removed: ["hosts.d/52-54-00-00-00-04"], hostsReload: true });
    // The next full reconcile folds hosts.d into the hosts file.
    const e = await enrollMachine(h.domain, machineInput(5) as never, "test");
    await nb.reconcileSome([e.id], ctx);
    c = await nb.reconcileAll(ctx);
    expect(c).toMatchObject({ written: ["hosts"], removed: ["hosts.d/52-54-00-00-00-05"], hostsReload: true });
    expect(hostsFile()).toBe("52:54:00:00:00:02,10.0.0.22,node-002\n52:54:00:00:00:05,10.0.0.5,node-005\n");
    expect(await nb.reconcileAll(ctx)).toMatchObject({ written: [], removed: [], hostsReload: false });
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
    expect(tree()["hosts"]).toContain("52:54:00:00:00:01");
    await deleteMachine(h.domain, id, "test");
    await nb.whenIdle();
    const t = tree();
    expect(Object.keys(t).filter((k) => k.includes("52-54-00-00-00-01"))).toEqual([]);
    expect(t["hosts"]).toBe("");
    expect(nb.status().lastReconcile).toMatchObject({ written: 1, removed: 0 }); // the hosts file, without its line
  });

  it("keeps the previous tree when a row is refused, and writes nothing of the batch", async () => {
    const a = await enrollMachine(h.domain, machineInput(1) as never, "test");
    const b = await enrollMachine(h.domain, machineInput(2) as never, "test");
    await nb.start();
    const before = tree();
    // Rows that bypassed the API (a hand-edited database): a name with a newline, then a traversal MAC.
    await h.store.db.update(h.store.t.machines).set({ name: "evil\nLABEL x" }).where(eq(h.store.t.machines.id, a.id));
    await h.store.db.update(h.store.t.nics).set({ ip: "10.0.0.77" }).where(eq(h.store.t.nics.machineId, b.id));
    h.domain.bus.publish({ type: "machines.bulk", count: 2 });
    await nb.whenIdle();
    expect(nb.status().lastError).toMatch(/name/);
    expect(tree()).toEqual(before);
    await h.store.db.update(h.store.t.machines).set({ name: "fixed" }).where(eq(h.store.t.machines.id, a.id));
    await h.store.db.update(h.store.t.nics).set({ mac: "../../etc/x" }).where(eq(h.store.t.nics.machineId, a.id));
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
    // A directory where the temp file of the hosts file would go makes that write fail.
    const blocker = path.join(nb.root, `.hosts.${process.pid}.tmp`);
    fs.mkdirSync(blocker);
    await h.store.db.update(h.store.t.nics).set({ ip: "10.0.0.88" }).where(eq(h.store.t.nics.machineId, 2));
    for (const a of ["manage", "inspect"] as const) await transition(h.domain, id, a, { actor: "test" }); // machine 1's entries too
    h.domain.bus.publish({ type: "machine.changed", machineId: 2, name: "node-002", state: "enrolled", powerState: "unknown", maintenance: false, rackId: null });
    await nb.whenIdle();
    expect(nb.status().lastError).toMatch(/EISDIR|illegal operation/i);
    const after = tree();
    expect(after).toEqual(before);
    // The retry (next event) writes the same change: nothing of it was taken as done.
    fs.rmSync(blocker, { recursive: true });
    h.domain.bus.publish({ type: "machine.changed", machineId: 1, name: "node-001", state: "inspecting", powerState: "unknown", maintenance: false, rackId: null });
    await nb.whenIdle();
    expect(nb.status().lastError).toBeNull();
    expect(tree()["hosts"]).toContain("52:54:00:00:00:02,10.0.0.88,node-002\n");
    expect(ipxe(1)).toContain("rackhand.mode=inspecting");
  });

  it("writes nothing in mode off", async () => {
    await storeNetbootSettings(h.domain, { mode: "off" }, "test");
    await enrollMachine(h.domain, machineInput(1) as never, "test");
    await nb.start();
    expect(tree()).toEqual({});
  });
});
