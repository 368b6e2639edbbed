/**
 * The boot tree as this process writes it (NetbootService's reconciles, service.ts): the whole tree from every
 * machine, or only some machines' entries, through one TreeWriter (atomic files, stale ones removed), with what it
 * remembers between reconciles: which files each machine owns, the dhcp-hostsfile's lines, and the boot loaders
 * placed in the TFTP root (docs/ARCHITECTURE.md, netboot).
 */
import fs from "node:fs";
import path from "node:path";
import type { Domain } from "../context";
import { storeOf } from "../db/store";
import { loadBootRows } from "./load";
import { LoaderInstaller, type LoaderOptions } from "./loaders";
import { TreeWriter, type TreeChanges } from "./reconciler";
import { addMachines, desiredTree, hostKey, HOSTS_DIR, HOSTS_FILE, renderHostsFile, TFTP_DIR, type Tree, type TreeContext } from "./tree";

export class TreeSync {
  readonly loaders: LoaderInstaller;
  private readonly writer: TreeWriter;
  /** Loader names whose error was logged already (logged again only after they were fine once). */
  private loggedMissing = new Set<string>();
  /** The files of each machine, as last written. */
  private owners = new Map<number, string[]>();
  /** The dhcp-hostsfile as written: MAC (hyphen spelling) → its dhcp-host line. */
  private hostLines = new Map<string, string>();

  /** `root`: the tree (<dataDir>/netboot); `httpRoot`: the HTTP boot files, linked from the TFTP root. */
  constructor(
    private readonly d: Domain,
    private readonly root: string,
    private readonly httpRoot: string,
    loaderOptions?: LoaderOptions,
  ) {
    this.writer = new TreeWriter(root);
    this.loaders = new LoaderInstaller(path.join(root, TFTP_DIR), loaderOptions);
  }

  /** Forget what is on disk (another process may have written the tree meanwhile): the next write compares afresh. */
  forget(): void {
    this.writer.forget();
  }

  /** Whole tree from all rows. @throws AppError VALIDATION before anything is written */
  async all(ctx: TreeContext): Promise<TreeChanges> {
    const rows = await loadBootRows(storeOf(this.d));
    const { tree, owners, hosts } = desiredTree(rows, { ...ctx, loaders: this.installLoaders() });
    // Writes `hosts` (all NICs) before removing the hosts.d files it replaces; either changed → SIGHUP.
    const changes = this.writer.applyFull(tree);
    this.owners = owners;
    this.hostLines = hosts;
    return changes;
  }

  /**
   * Boot loaders from the packages into the TFTP root, and tftp/boot → the HTTP tree (network GRUB reads
   * kernels over TFTP). Returns the names in place; each missing one is logged once.
   */
  private installLoaders(): Set<string> {
    const link = path.join(this.root, TFTP_DIR, "boot");
    fs.mkdirSync(this.httpRoot, { recursive: true });
    fs.mkdirSync(path.dirname(link), { recursive: true });
    let current: string | null = null;
    try {
      current = fs.readlinkSync(link);
    } catch {
      /* absent */
    }
    if (current !== this.httpRoot) {
      const tmp = path.join(path.dirname(link), `.boot.${process.pid}.tmp`);
      fs.rmSync(tmp, { force: true });
      fs.symlinkSync(this.httpRoot, tmp);
      fs.renameSync(tmp, link);
    }
    const ok = new Set<string>();
    for (const l of this.loaders.install()) {
      if (!l.error) {
        ok.add(l.name);
        this.loggedMissing.delete(l.name);
      } else if (!this.loggedMissing.has(l.name)) {
        this.loggedMissing.add(l.name);
        this.d.log.error(`boot loader ${l.name} missing: ${l.error}`, { loader: l.name, package: l.package });
      }
    }
    return ok;
  }

  /** Only the given machines' files (a deleted machine has none left). @throws AppError VALIDATION */
  async some(ids: number[], ctx: TreeContext): Promise<TreeChanges> {
    const rows = await loadBootRows(storeOf(this.d), ids);
    const desired: Tree = new Map();
    const { owners: newOwners, hosts } = addMachines(desired, rows, ctx);
    const previous = ids.flatMap((id) => this.owners.get(id) ?? []);
    // Host lines: a MAC dnsmasq has never seen gets its own hosts.d file, which dnsmasq reads on inotify without a
    // signal (enroll → lease stays fast). A changed or removed line is rewritten in the hosts file and dnsmasq is
    // SIGHUP'd: it only ever adds entries on inotify, so a changed hosts.d file would leave the replaced entry behind,
    // holding the old address against the next machine given it.
    // The hosts file's lines after this change: a copy, made only when a line changes, kept only once written.
    let next: Map<string, string> | null = null;
    const edit = () => (next ??= new Map(this.hostLines));
    for (const [hy, line] of hosts) {
      const inDir = this.writer.get(`${HOSTS_DIR}/${hy}`);
      if (this.hostLines.has(hy)) {
        if (this.hostLines.get(hy) !== line) edit().set(hy, line);
      } else if (inDir === undefined || inDir === line) desired.set(`${HOSTS_DIR}/${hy}`, line);
      else edit().set(hy, line); // the hosts.d file is stale: removed below (it is in `previous`, not desired)
    }
    for (const rel of previous) {
      const hy = hostKey(rel);
      if (hy && !hosts.has(hy) && this.hostLines.has(hy)) edit().delete(hy);
    }
    if (next) desired.set(HOSTS_FILE, renderHostsFile(next));
    const changes = this.writer.applyPartial(desired, previous);
    if (next) this.hostLines = next;
    for (const id of ids) {
      const o = newOwners.get(id);
      if (o) this.owners.set(id, o);
      else this.owners.delete(id);
    }
    return changes;
  }
}
