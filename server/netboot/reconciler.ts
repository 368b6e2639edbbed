/**
 * Makes the boot tree on disk equal to a desired tree: writes what differs, removes what is stale.
 * Every write is atomic (temp file + rename). Temp files are dot-named because dnsmasq's hostsdir inotify
 * ignores names starting with '.', so it never reads a half-written host file nor both the temp and the
 * final name (which would log "duplicate dhcp-host IP address").
 * Two phases: all temp files first (a failure removes them and leaves the previous tree as it was), then renames.
 */
import fs from "node:fs";
import path from "node:path";
import { CONF_FILE, HOSTS_DIR, TFTP_DIR, type Tree } from "./tree";

export interface TreeChanges {
  written: string[];
  removed: string[];
  /** dnsmasq only adds host entries on inotify; a removed or rewritten host file needs SIGHUP. */
  hostsRemoved: boolean;
  /** dnsmasq reads its configuration at start only: a change needs a restart. */
  configChanged: boolean;
}

/** Directories whose contents the reconciler owns entirely (anything else in them is stale). */
export const MANAGED_DIRS = [HOSTS_DIR, `${TFTP_DIR}/pxelinux.cfg`, `${TFTP_DIR}/grub`, `${TFTP_DIR}/ipxe`];
const MANAGED_FILES = [CONF_FILE, `${TFTP_DIR}/boot.ipxe`];

export class TreeWriter {
  /** What is on disk, as far as this process knows (filled by scan()). */
  private readonly onDisk = new Map<string, string>();
  private scanned = false;

  constructor(readonly root: string) {}

  /** Read the managed part of the tree from disk (start-up, and after a failed write). */
  scan(): void {
    this.onDisk.clear();
    for (const dir of MANAGED_DIRS) {
      const abs = path.join(this.root, dir);
      fs.mkdirSync(abs, { recursive: true });
      for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
        const rel = `${dir}/${e.name}`;
        if (e.name.startsWith(".")) {
          fs.rmSync(path.join(abs, e.name), { force: true }); // a temp file left by a crash
          continue;
        }
        if (e.isFile()) this.onDisk.set(rel, fs.readFileSync(path.join(abs, e.name), "utf8"));
        else this.onDisk.set(rel, "\0not-a-file");
      }
    }
    for (const f of MANAGED_FILES) {
      try {
        this.onDisk.set(f, fs.readFileSync(path.join(this.root, f), "utf8"));
      } catch {
        /* absent: will be written */
      }
    }
    this.scanned = true;
  }

  /** The full tree: `desired` replaces everything managed. */
  applyFull(desired: Tree): TreeChanges {
    if (!this.scanned) this.scan();
    const stale = [...this.onDisk.keys()].filter((k) => !desired.has(k));
    return this.apply(desired, stale);
  }

  /** Part of the tree: write `desired`, remove `previous` paths that are no longer desired. */
  applyPartial(desired: Tree, previous: Iterable<string>): TreeChanges {
    if (!this.scanned) this.scan();
    const stale = [...previous].filter((k) => !desired.has(k) && this.onDisk.has(k));
    return this.apply(desired, stale);
  }

  has(rel: string): boolean {
    return this.onDisk.has(rel);
  }

  private apply(desired: Tree, stale: string[]): TreeChanges {
    const changes: TreeChanges = { written: [], removed: [], hostsRemoved: false, configChanged: false };
    const pending: { rel: string; tmp: string; abs: string; content: string }[] = [];
    const dirs = new Set<string>();
    try {
      for (const [rel, content] of desired) {
        if (this.onDisk.get(rel) === content) continue;
        assertInside(rel);
        const abs = path.join(this.root, rel);
        const dir = path.dirname(abs);
        if (!dirs.has(dir)) {
          fs.mkdirSync(dir, { recursive: true });
          dirs.add(dir);
        }
        const tmp = path.join(dir, `.${path.basename(abs)}.${process.pid}.tmp`);
        fs.writeFileSync(tmp, content);
        pending.push({ rel, tmp, abs, content });
      }
    } catch (err) {
      for (const p of pending) fs.rmSync(p.tmp, { force: true });
      throw err;
    }
    for (const p of pending) {
      fs.renameSync(p.tmp, p.abs);
      this.onDisk.set(p.rel, p.content);
      changes.written.push(p.rel);
      if (p.rel === CONF_FILE) changes.configChanged = true;
    }
    for (const rel of stale) {
      assertInside(rel);
      fs.rmSync(path.join(this.root, rel), { force: true, recursive: true });
      this.onDisk.delete(rel);
      changes.removed.push(rel);
      if (rel.startsWith(`${HOSTS_DIR}/`)) changes.hostsRemoved = true;
    }
    return changes;
  }
}

/** Defence in depth: tree.ts validates every component; never write outside the tree whatever happens. */
function assertInside(rel: string): void {
  if (path.isAbsolute(rel) || rel.split("/").some((s) => s === ".." || s === "" || s.includes("\0"))) {
    throw new Error(`refusing to write outside the boot tree: ${JSON.stringify(rel)}`);
  }
}
