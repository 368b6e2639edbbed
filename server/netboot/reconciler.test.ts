import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TreeWriter } from "./reconciler";
import { CONF_FILE, HOSTS_DIR, TFTP_DIR, type Tree } from "./tree";

const dirs: string[] = [];
function root(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "rh-tree-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** n machines' four files each, plus the configuration. */
function fleet(n: number, tag = "v1"): Tree {
  const t: Tree = new Map([[CONF_FILE, `conf ${tag}\n`]]);
  for (let i = 0; i < n; i++) {
    const hy = `52-54-00-00-00-${i.toString(16).padStart(2, "0")}`;
    t.set(`${HOSTS_DIR}/${hy}`, `host ${i} ${tag}\n`);
    t.set(`${TFTP_DIR}/pxelinux.cfg/01-${hy}`, `pxe ${i} ${tag}\n`);
    t.set(`${TFTP_DIR}/grub/grub.cfg-01-${hy}`, `grub ${i} ${tag}\n`);
    t.set(`${TFTP_DIR}/ipxe/${hy}.ipxe`, `ipxe ${i} ${tag}\n`);
  }
  return t;
}

/** Every file under the root (relative path → content), dot files included. */
function onDisk(r: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of fs.readdirSync(r, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out.set(path.relative(r, path.join(e.parentPath, e.name)), fs.readFileSync(path.join(e.parentPath, e.name), "utf8"));
  }
  return out;
}
const ino = (r: string, d: string) => fs.statSync(path.join(r, d)).ino;

describe("TreeWriter", () => {
  it("stages an empty TFTP directory and renames it into place; hosts.d keeps its inode", () => {
    const r = root();
    const w = new TreeWriter(r);
    w.scan();
    const before = { pxe: ino(r, `${TFTP_DIR}/pxelinux.cfg`), hosts: ino(r, HOSTS_DIR) };
    const t = fleet(40);
    const ch = w.applyFull(t);
    expect(ch.written.length).toBe(t.size);
    expect(onDisk(r)).toEqual(t);
    // The TFTP directory is a new one (the staging directory renamed over the empty one) ...
    expect(ino(r, `${TFTP_DIR}/pxelinux.cfg`)).not.toBe(before.pxe);
    // ... but dnsmasq's watched hosts.d is the same directory.
    expect(ino(r, HOSTS_DIR)).toBe(before.hosts);
    expect(fs.readdirSync(path.join(r, TFTP_DIR)).filter((n) => n.startsWith("."))).toEqual([]);
    // Nothing changed: nothing written. A change: files replaced one by one in the same directory.
    expect(w.applyFull(t).written).toEqual([]);
    const pxe = ino(r, `${TFTP_DIR}/pxelinux.cfg`);
    const t2 = fleet(40, "v2");
    w.applyFull(t2);
    expect(onDisk(r)).toEqual(t2);
    expect(ino(r, `${TFTP_DIR}/pxelinux.cfg`)).toBe(pxe);
  });

  it("writes few files per file (no staging) and leaves no temp file", () => {
    const r = root();
    const w = new TreeWriter(r);
    w.scan();
    const pxe = ino(r, `${TFTP_DIR}/pxelinux.cfg`);
    w.applyFull(fleet(3));
    expect(onDisk(r)).toEqual(fleet(3));
    expect(ino(r, `${TFTP_DIR}/pxelinux.cfg`)).toBe(pxe);
  });

  it("leaves the previous tree and no staging directory when a write fails half-way", () => {
    const r = root();
    const w = new TreeWriter(r);
    w.scan();
    w.applyFull(new Map([[CONF_FILE, "old\n"]]));
    // A directory where a staged file would go makes that write fail.
    const stage = path.join(r, TFTP_DIR, `.grub.staging.${process.pid}`);
    const t = fleet(40);
    const realMkdir = fs.mkdirSync;
    let blocked = false;
    fs.mkdirSync = ((p: fs.PathLike, o?: fs.MakeDirectoryOptions) => {
      const res = realMkdir(p, o);
      if (String(p) === stage && !blocked) {
        blocked = true;
        realMkdir(path.join(stage, "grub.cfg-01-52-54-00-00-00-07"));
      }
      return res;
    }) as typeof fs.mkdirSync;
    try {
      expect(() => w.applyFull(t)).toThrow(/EISDIR|illegal operation/i);
    } finally {
      fs.mkdirSync = realMkdir;
    }
    expect(blocked).toBe(true);
    expect(onDisk(r)).toEqual(new Map([[CONF_FILE, "old\n"]]));
    expect(fs.readdirSync(path.join(r, TFTP_DIR)).filter((n) => n.startsWith("."))).toEqual([]);
    // The next attempt writes everything.
    w.scan();
    w.applyFull(t);
    expect(onDisk(r)).toEqual(t);
  });

  it("moves staged files in one by one when something appeared in the directory meanwhile", () => {
    const r = root();
    const w = new TreeWriter(r);
    w.scan();
    // Not known to this writer (appeared after its scan): the directory is not empty for rename(2).
    fs.writeFileSync(path.join(r, TFTP_DIR, "ipxe", "foreign.ipxe"), "x");
    const t = fleet(40);
    w.applyFull(t);
    const disk = onDisk(r);
    for (const [k, v] of t) expect(disk.get(k)).toBe(v);
    expect(fs.readdirSync(path.join(r, TFTP_DIR)).filter((n) => n.startsWith("."))).toEqual([]);
  });

  it("removes a staging directory left by a crash when it scans", () => {
    const r = root();
    const crashed = path.join(r, TFTP_DIR, ".grub.staging.12345");
    fs.mkdirSync(crashed, { recursive: true });
    fs.writeFileSync(path.join(crashed, "half"), "x");
    fs.writeFileSync(path.join(r, TFTP_DIR, ".keep-me"), "not ours");
    new TreeWriter(r).scan();
    expect(fs.existsSync(crashed)).toBe(false);
    expect(fs.existsSync(path.join(r, TFTP_DIR, ".keep-me"))).toBe(true);
  });
});
