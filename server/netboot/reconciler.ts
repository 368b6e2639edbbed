/**
 * Makes the boot tree on disk equal to a desired tree: writes what differs, removes what is stale.
 * Every write is atomic (temp file + rename). Temp files are dot-named because dnsmasq's hostsdir inotify
 * ignores names starting with '.', so it never reads a half-written host file nor both the temp and the
 * final name (which would log "duplicate dhcp-host IP address").
 * Two phases: all temp files first (a failure removes them and leaves the previous tree as it was), then renames.
 *
 * A TFTP directory that is empty on disk and gets many files (the first reconcile of a fleet) is built as a dot-named
 * staging directory next to it, its files written in place, and the staging directory renamed over the empty one:
 * one rename makes all of them appear at once, instead of one temp file and rename per file (the renames were
 * three quarters of a 10,000-machine reconcile). hosts.d is never staged: dnsmasq watches that directory's inode.
 */
import fs from "node:fs";
import path from "node:path";
import { CONF_FILE, HOSTS_DIR, HOSTS_FILE, TFTP_DIR, type Tree } from "./tree";

export interface TreeChanges {
  written: string[];
  removed: string[];
  /**
   * dnsmasq needs SIGHUP: it only adds host entries on inotify, so a removed hosts.d file, or a rewritten
   * dhcp-hostsfile (read only at start and on SIGHUP), is seen only after one.
   */
  hostsReload: boolean;
  /** dnsmasq reads its configuration at start only: a change needs a restart. */
  configChanged: boolean;
}

/** Directories whose contents the reconciler owns entirely (anything else in them is stale). */
export const MANAGED_DIRS = [HOSTS_DIR, `${TFTP_DIR}/pxelinux.cfg`, `${TFTP_DIR}/grub`, `${TFTP_DIR}/ipxe`];
const MANAGED_FILES = [CONF_FILE, HOSTS_FILE, `${TFTP_DIR}/boot.ipxe`];
/** An empty directory getting at least this many files is staged (below it, per-file renames cost less than a directory). */
const STAGE_MIN_FILES = 16;
const STAGING = /^\..+\.staging\.\d+$/;

export class TreeWriter {
  /** What is on disk, as far as this process knows (filled by scan()). */
  private readonly onDisk = new Map<string, string>();
  private scanned = false;

  constructor(readonly root: string) {}

  /** Forget what is known of the disk: the next apply reads it again (a new netboot leader: another may have written). */
  forget(): void {
    this.scanned = false;
  }

  /** Read the managed part of the tree from disk (start-up, and after a failed write). */
  scan(): void {
    this.onDisk.clear();
    // Staging directories left by a crash, beside the managed directories.
    for (const parent of new Set(MANAGED_DIRS.map((d) => path.join(this.root, path.dirname(d))))) {
      if (!fs.existsSync(parent)) continue;
      for (const e of fs.readdirSync(parent)) if (STAGING.test(e)) fs.rmSync(path.join(parent, e), { recursive: true, force: true });
    }
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

  /** The content on disk of a managed file, as far as this process knows. */
  get(rel: string): string | undefined {
    return this.onDisk.get(rel);
  }

  /** Managed directories (relative) with nothing in them as far as onDisk knows: candidates for staging. */
  private emptyDirs(): Set<string> {
    const empty = new Set(MANAGED_DIRS.filter((d) => d !== HOSTS_DIR));
    for (const rel of this.onDisk.keys()) empty.delete(path.posix.dirname(rel));
    return empty;
  }

  private apply(desired: Tree, stale: string[]): TreeChanges {
    const changes: TreeChanges = { written: [], removed: [], hostsReload: false, configChanged: false };
    const writes: { rel: string; content: string }[] = [];
    for (const [rel, content] of desired) {
      if (this.onDisk.get(rel) === content) continue;
      assertInside(rel);
      writes.push({ rel, content });
    }
    const perDir = new Map<string, number>();
    for (const w of writes) perDir.set(path.posix.dirname(w.rel), (perDir.get(path.posix.dirname(w.rel)) ?? 0) + 1);
    // Only a batch big enough to stage looks for empty directories (a scan of everything known on disk: an
    // incremental change of one machine must not pay for the size of the tree).
    const stageable = [...perDir.values()].some((n) => n >= STAGE_MIN_FILES) ? this.emptyDirs() : new Set<string>();
    /** Relative managed dir → its staging directory (absolute). */
    const staged = new Map<string, string>();
    for (const [dir, n] of perDir) {
      if (n >= STAGE_MIN_FILES && stageable.has(dir)) {
        const abs = path.join(this.root, dir);
        staged.set(dir, path.join(path.dirname(abs), `.${path.basename(abs)}.staging.${process.pid}`));
      }
    }
    const pending: { rel: string; tmp: string; abs: string; content: string }[] = [];
    const dirs = new Set<string>();
    try {
      for (const stage of staged.values()) {
        fs.rmSync(stage, { recursive: true, force: true });
        fs.mkdirSync(stage, { recursive: true });
      }
      for (const { rel, content } of writes) {
        const abs = path.join(this.root, rel);
        const stage = staged.get(path.posix.dirname(rel));
        if (stage) {
          // Invisible until the staging directory is renamed into place.
          fs.writeFileSync(path.join(stage, path.basename(abs)), content);
          pending.push({ rel, tmp: "", abs, content });
          continue;
        }
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
      for (const p of pending) if (p.tmp) fs.rmSync(p.tmp, { force: true });
      for (const stage of staged.values()) fs.rmSync(stage, { recursive: true, force: true });
      throw err;
    }
    for (const [dir, stage] of staged) {
      const abs = path.join(this.root, dir);
      try {
        // rename(2) replaces an empty directory atomically.
        fs.renameSync(stage, abs);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
        // Something appeared in the directory meanwhile: move the files in one by one (each rename atomic).
        for (const f of fs.readdirSync(stage)) fs.renameSync(path.join(stage, f), path.join(abs, f));
        fs.rmSync(stage, { recursive: true, force: true });
      }
    }
    for (const p of pending) {
      if (p.tmp) fs.renameSync(p.tmp, p.abs);
      this.onDisk.set(p.rel, p.content);
      changes.written.push(p.rel);
      if (p.rel === CONF_FILE) changes.configChanged = true;
      if (p.rel === HOSTS_FILE) changes.hostsReload = true;
    }
    for (const rel of stale) {
      assertInside(rel);
      fs.rmSync(path.join(this.root, rel), { force: true, recursive: true });
      this.onDisk.delete(rel);
      changes.removed.push(rel);
      if (rel.startsWith(`${HOSTS_DIR}/`) || rel === HOSTS_FILE) changes.hostsReload = true;
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
