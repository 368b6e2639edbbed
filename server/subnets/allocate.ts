/**
 * Address allocation from subnets (issue 14). One `Allocator` lives for one write transaction: it loads each subnet
 * it is asked about once (its plan and the addresses taken), then hands out addresses in memory, so a CSV import of
 * 10,000 machines costs one read per subnet, not one query per address. Every address it hands out is also written
 * to `ip_allocations`, whose UNIQUE (subnet_id, address) is the last word: two transactions that both chose an
 * address cannot both commit it.
 */
import { and, between, eq, inArray, isNotNull, isNull, or, sql } from "drizzle-orm";
import { AppError } from "../../lib/errors";
import { addrKey, canonicalAddr, firstFree, formatAddr, hostBounds, parseAddr, pinProblem, subnetPlan, type SubnetPlan } from "../../lib/subnets";
import { insertMany } from "../db/prepared";
import { ipAllocations, type Subnet } from "../db/schema";
import { forUpdate } from "../db/sql";
import { lockMachines, pgErrorCode, sqliteDbOf, type Store, type StoreDb, type StoreTx } from "../db/store";

/** A subnet row as lib/subnets.ts subnetPlan wants it. */
export function planOf(s: Subnet): SubnetPlan {
  return subnetPlan({
    id: s.id,
    name: s.name,
    cidr: s.cidr,
    gateway: s.gateway,
    reserved: s.reserved,
    dynamic: s.dynamicStart && s.dynamicEnd ? { start: s.dynamicStart, end: s.dynamicEnd } : null,
  });
}

interface Loaded {
  row: Subnet;
  plan: SubnetPlan;
  taken: Set<bigint>;
  /** Where the next automatic search starts (nothing below it is free within this transaction). */
  cursor: bigint | undefined;
  /** The highest address noteTaken() counts as this subnet's (its last host + 1: the broadcast of an IPv4 subnet). */
  top: bigint;
}

export interface Allocated {
  subnet: Subnet;
  address: string;
  prefix: number;
  gateway: string | null;
}

const ALLOCATION_FIELDS = ["subnetId", "address", "sortKey", "machineId", "nicId", "linkId", "mode", "createdAt"];

/**
 * The in-memory part of the allocator: the subnets loaded so far and the addresses handed out. How a subnet is
 * loaded and who holds an address are read by `StoreAllocator` (enrollment, bulk enrollment, the network editor,
 * allocation at deploy), awaited on the Store.
 */
abstract class AllocatorCore {
  protected loaded = new Map<number, Loaded>();
  protected pending: { subnetId: number; address: string; n: bigint }[] = [];
  protected held = new Map<string, number>();
  protected rows: (typeof ipAllocations.$inferInsert)[] = [];

  /** A loaded subnet: its row, the allocations' addresses, and (IPv4) the NIC and BMC addresses inside it. */
  protected static build(row: Subnet, allocated: { address: string }[], ips: (string | null)[]): Loaded {
    const plan = planOf(row);
    const taken = new Set<bigint>();
    for (const a of allocated) {
      const p = parseAddr(a.address);
      if (p) taken.add(p.n);
    }
    // Addresses held outside allocations (a NIC's typed DHCP reservation, a BMC) are not handed out either.
    for (const ip of ips) if (ip) taken.add(parseAddr(ip)!.n);
    return { row, plan, taken, cursor: undefined, top: hostBounds(plan.cidr).last + 1n };
  }

  /** The IPv4 host range of a subnet as ip_num() values (the NIC and BMC addresses inside it are read by range). */
  protected static range4(row: Subnet): { lo: number; hi: number } | null {
    const plan = planOf(row);
    if (plan.cidr.family !== 4) return null;
    const { first, last } = hostBounds(plan.cidr);
    return { lo: Number(first), hi: Number(last) };
  }

  protected static notFound(subnetId: number, field: string): AppError {
    return new AppError("NOT_FOUND", `Subnet ${subnetId} does not exist`, [{ field, message: "No such subnet" }]);
  }

  /** An address written outside the allocator in this transaction (a typed NIC IP, a BMC): never handed out here. */
  noteTaken(address: string): void {
    const a = parseAddr(address);
    if (!a) return;
    for (const l of this.loaded.values()) if (l.plan.cidr.family === a.family && a.n >= l.plan.cidr.network && a.n <= l.top) l.taken.add(a.n);
  }

  protected result(l: Loaded, address: string): Allocated {
    return { subnet: l.row, address, prefix: l.plan.cidr.prefix, gateway: l.row.gateway };
  }

  /** The first free address of a loaded subnet. @throws AppError CONFLICT when the subnet is full */
  protected autoIn(l: Loaded, subnetId: number, field: string): Allocated {
    const n = firstFree(l.plan, l.taken, l.cursor);
    if (n === null) throw fullError(l.row, field);
    l.taken.add(n);
    l.cursor = n + 1n;
    const address = formatAddr({ family: l.plan.cidr.family, n });
    this.pending.push({ subnetId, address, n });
    return this.result(l, address);
  }

  /** pin() on a loaded subnet: the address, or the canonical address already taken (the caller names its holder). */
  protected pinIn(l: Loaded, subnetId: number, address: string, field: string, holder?: number): Allocated | { taken: string } {
    const problem = pinProblem(l.plan, address);
    if (problem) throw new AppError("VALIDATION", problem, [{ field, message: problem }]);
    const canonical = canonicalAddr(address)!;
    const n = parseAddr(canonical)!.n;
    const key = `${subnetId}/${canonical}`;
    if (holder !== undefined && this.held.get(key) === holder) {
      this.held.delete(key);
      this.pending.push({ subnetId, address: canonical, n });
      return this.result(l, canonical);
    }
    if (l.taken.has(n)) return { taken: canonical };
    l.taken.add(n);
    this.pending.push({ subnetId, address: canonical, n });
    return this.result(l, canonical);
  }

  protected takenError(l: Loaded, canonical: string, who: string, field: string): AppError {
    const message = `${canonical} in subnet ${l.row.name} is already ${who}`;
    return new AppError("CONFLICT", message, [{ field, message }]);
  }

  protected holdIn(l: Loaded, subnetId: number, address: string, holder: number): void {
    const canonical = canonicalAddr(address);
    if (!canonical || pinProblem(l.plan, canonical)) return;
    const n = parseAddr(canonical)!.n;
    if (l.taken.has(n)) return;
    l.taken.add(n);
    this.held.set(`${subnetId}/${canonical}`, holder);
  }

  /** Taken by this allocator's own change (held or handed out), for messages. */
  protected ownHolder(subnetId: number, address: string): boolean {
    return this.held.has(`${subnetId}/${address}`) || this.pending.some((p) => p.subnetId === subnetId && p.address === address);
  }

  /**
   * The allocation row of an address this allocator handed out, written by flush() (many rows per INSERT: an import
   * of 10,000 machines would otherwise pay one statement per address). Call flush() before the transaction ends.
   */
  record(a: Allocated, mode: "auto" | "static", holder: { machineId: number; nicId?: number | null; linkId?: number | null }): void {
    this.rows.push({
      subnetId: a.subnet.id,
      address: a.address,
      sortKey: addrKey(parseAddr(a.address)!.n),
      machineId: holder.machineId,
      nicId: holder.nicId ?? null,
      linkId: holder.linkId ?? null,
      mode,
      createdAt: new Date(),
    });
  }
}

function fullError(row: Subnet, field: string): AppError {
  return new AppError("CONFLICT", `Subnet ${row.name} (${row.cidr}) has no free address left`, [{ field, message: "Subnet full" }]);
}

/**
 * The allocator on the Store (either database), inside `tx`, an open Store transaction. On PostgreSQL each subnet's
 * row is locked (`SELECT … FOR UPDATE`) before its taken addresses are read, so two transactions allocating from the
 * same subnet take turns, and the second one sees the first one's addresses. UNIQUE (subnet_id, address) and the
 * NICs' unique IP stay the last guard: a duplicate there is reported as the subnet having no free address.
 */
export class StoreAllocator extends AllocatorCore {
  constructor(
    private readonly store: Store,
    private readonly tx: StoreTx,
  ) {
    super();
  }

  private async load(subnetId: number, field: string): Promise<Loaded> {
    const hit = this.loaded.get(subnetId);
    if (hit) return hit;
    const { subnets: s, ipAllocations: a, nics: n, bmcs: b } = this.store.t;
    const d = this.store.dialect;
    const [row] = await forUpdate(d, this.tx.select().from(s).where(eq(s.id, subnetId)).limit(1));
    if (!row) throw AllocatorCore.notFound(subnetId, field);
    const allocated = await this.tx.select({ address: a.address }).from(a).where(eq(a.subnetId, subnetId));
    const ips: (string | null)[] = [];
    const r4 = AllocatorCore.range4(row);
    if (r4) {
      for (const r of await this.tx.select({ ip: n.ip }).from(n).where(between(sql`ip_num(${n.ip})`, r4.lo, r4.hi))) ips.push(r.ip);
      for (const r of await this.tx.select({ ip: b.address }).from(b).where(between(sql`ip_num(${b.address})`, r4.lo, r4.hi))) ips.push(r.ip);
    }
    const l = AllocatorCore.build(row, allocated, ips);
    this.loaded.set(subnetId, l);
    return l;
  }

  async subnet(subnetId: number, field = "subnet"): Promise<Subnet> {
    return (await this.load(subnetId, field)).row;
  }

  /** The subnet's row if it is loaded already (no read), else undefined. */
  loadedSubnet(subnetId: number): Subnet | undefined {
    return this.loaded.get(subnetId)?.row;
  }

  /** auto() on a subnet loaded already, without awaiting (bulk enrollment). @throws Error when it is not loaded */
  autoLoaded(subnetId: number, field = "subnet"): Allocated {
    const l = this.loaded.get(subnetId);
    if (!l) throw new Error(`subnet ${subnetId} is not loaded`);
    return this.autoIn(l, subnetId, field);
  }

  /** The first free address outside reserved and dynamic ranges. @throws AppError CONFLICT when the subnet is full */
  async auto(subnetId: number, field = "subnet"): Promise<Allocated> {
    return this.autoIn(await this.load(subnetId, field), subnetId, field);
  }

  /**
   * Pin `address` in the subnet: inside it, not the gateway, not reserved or dynamic, not held by anyone.
   * @throws AppError VALIDATION (naming the reason) or CONFLICT (naming the holder)
   */
  async pin(subnetId: number, address: string, field = "ip", holder?: number): Promise<Allocated> {
    const l = await this.load(subnetId, "subnet");
    const r = this.pinIn(l, subnetId, address, field, holder);
    if ("taken" in r) throw this.takenError(l, r.taken, await this.holder(subnetId, r.taken), field);
    return r;
  }

  /** Set a pinned address aside before anything is allocated automatically (see Allocator.hold). */
  async hold(subnetId: number, address: string, holder: number): Promise<void> {
    try {
      this.holdIn(await this.load(subnetId, "subnet"), subnetId, address, holder);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
    }
  }

  /** Who holds an address, for messages (see Allocator). */
  private async holder(subnetId: number, address: string): Promise<string> {
    if (this.ownHolder(subnetId, address)) return "taken by another row of this change";
    const { ipAllocations: ia, machines: m, nics: n, nicLinks: nl, bmcs: b } = this.store.t;
    const [a] = await this.tx
      .select({ name: m.name, nic: n.ifname, mac: n.mac, link: nl.ifname })
      .from(ia)
      .innerJoin(m, eq(m.id, ia.machineId))
      .leftJoin(n, eq(n.id, ia.nicId))
      .leftJoin(nl, eq(nl.id, ia.linkId))
      .where(and(eq(ia.subnetId, subnetId), eq(ia.address, address)))
      .limit(1);
    if (a) return `held by ${a.name}${a.nic || a.link ? ` (${a.nic ?? a.link})` : a.mac ? ` (${a.mac})` : ""}`;
    const [byNic] = await this.tx.select({ name: m.name }).from(n).innerJoin(m, eq(m.id, n.machineId)).where(eq(n.ip, address)).limit(1);
    if (byNic) return `the IP of ${byNic.name}`;
    const [byBmc] = await this.tx.select({ name: m.name }).from(b).innerJoin(m, eq(m.id, b.machineId)).where(eq(b.address, address)).limit(1);
    if (byBmc) return `the BMC address of ${byBmc.name}`;
    return "taken";
  }

  /**
   * Write the recorded rows. A duplicate address (another transaction committed it first, which the subnet's row lock
   * should have prevented) fails the transaction with the same CONFLICT as a full subnet, naming it.
   */
  async flush(): Promise<void> {
    const rows = this.rows;
    this.rows = [];
    const { ipAllocations: a } = this.store.t;
    // SQLite: one prepared multi-row INSERT per 100 rows on the transaction's connection (drizzle's builder cost more
    // than the rows: a CSV import of 10,000 machines into a subnet, issue 14's bench).
    const fast = this.store.dialect === "sqlite" && rows.length > 1 ? insertMany(sqliteDbOf(this.store), ipAllocations, ALLOCATION_FIELDS) : null;
    for (let i = 0; i < rows.length; i += 100) {
      try {
        if (fast) fast(rows.slice(i, i + 100));
        else await this.tx.insert(a).values(rows.slice(i, i + 100));
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        const l = this.loaded.get(rows[i]!.subnetId);
        throw l ? fullError(l.row, "subnet") : new AppError("CONFLICT", "An address chosen for this change was taken meanwhile: no free address", [{ field: "subnet", message: "Subnet full" }]);
      }
    }
  }
}

/** A UNIQUE violation: PostgreSQL's 23505, or SQLite's SQLITE_CONSTRAINT_UNIQUE. */
export function isUniqueViolation(err: unknown): boolean {
  if (pgErrorCode(err) === "23505") return true;
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (e.code === "SQLITE_CONSTRAINT_UNIQUE" || e.code === "SQLITE_CONSTRAINT_PRIMARYKEY") return true;
  }
  return false;
}

type AddressedRow = {
  id: number;
  ifname: string | null;
  addressMode: string | null;
  subnetId: number | null;
  ip: string | null;
  gateway: string | null;
  ipv6Mode: string | null;
  subnet6Id: number | null;
  ip6: string | null;
  gateway6: string | null;
};

/**
 * Allocation at deploy: the machine's interfaces in mode auto that have a subnet but no address yet (the subnet was
 * set after enroll, or its address was released) get the first free one now. Call it inside `tx`, the Store
 * transaction that creates the deploy's job, before the network files are rendered. All or nothing: every address is
 * chosen before any row is written. On PostgreSQL the machine's row and then each subnet's row are locked first
 * (StoreAllocator), so concurrent deploys take turns per subnet. Returns the addresses handed out (empty when nothing
 * was pending).
 * @throws AppError CONFLICT naming the machine, the interface and the full subnet; NOT_FOUND for a vanished subnet
 */
export async function allocatePending(store: Store, tx: StoreTx, machineId: number): Promise<{ ifname: string; address: string }[]> {
  const { nics, nicLinks, machines } = store.t;
  const cols = (t: typeof nics | typeof nicLinks) => ({
    id: t.id,
    ifname: t.ifname,
    addressMode: t.addressMode,
    subnetId: t.subnetId,
    ip: t.ip,
    gateway: t.gateway,
    ipv6Mode: t.ipv6Mode,
    subnet6Id: t.subnet6Id,
    ip6: t.ip6,
    gateway6: t.gateway6,
  });
  const pending = (r: AddressedRow) => (r.addressMode === "auto" && r.subnetId !== null && !r.ip) || (r.ipv6Mode === "auto" && r.subnet6Id !== null && !r.ip6);
  await lockMachines(tx, [machineId]);
  const rows = [
    ...(await tx.select(cols(nics)).from(nics).where(eq(nics.machineId, machineId)).orderBy(nics.id)).filter(pending).map((r) => ({ r, table: "nic" as const })),
    ...(await tx.select(cols(nicLinks)).from(nicLinks).where(eq(nicLinks.machineId, machineId)).orderBy(nicLinks.id)).filter(pending).map((r) => ({ r, table: "link" as const })),
  ];
  if (!rows.length) return [];
  const [m] = await tx.select({ name: machines.name }).from(machines).where(eq(machines.id, machineId)).limit(1);
  const name = m?.name ?? `Machine ${machineId}`;
  const allocator = new StoreAllocator(store, tx);
  const refused = (ifname: string | null, family: 4 | 6, err: AppError) => {
    const message = `${name} cannot be deployed: ${ifname ?? "its boot NIC"} needs an IPv${family} address: ${err.message}`;
    return new AppError(err.code, message, [{ field: ifname ?? "network", message: err.message }]);
  };
  // Subnets are locked in ascending id order (two deploys needing the same two subnets cannot deadlock on them).
  const wanted = [...new Set(rows.flatMap(({ r }) => [pending4(r) ? r.subnetId! : null, pending6(r) ? r.subnet6Id! : null].filter((x): x is number => x !== null)))].sort((a, b) => a - b);
  for (const id of wanted) {
    try {
      await allocator.subnet(id);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      // Named with the interface that asked for it.
      const asker = rows.find(({ r }) => (pending4(r) && r.subnetId === id) || (pending6(r) && r.subnet6Id === id))!;
      throw refused(asker.r.ifname, pending4(asker.r) && asker.r.subnetId === id ? 4 : 6, err);
    }
  }
  const chosen: { r: AddressedRow; table: "nic" | "link"; v4: Allocated | null; v6: Allocated | null }[] = [];
  for (const { r, table } of rows) {
    const take = async (subnetId: number, family: 4 | 6): Promise<Allocated> => {
      try {
        const s = await allocator.subnet(subnetId);
        if (s.family !== family) throw new AppError("VALIDATION", `subnet ${s.name} is not an IPv${family} subnet`);
        return await allocator.auto(subnetId);
      } catch (err) {
        if (err instanceof AppError) throw refused(r.ifname, family, err);
        throw err;
      }
    };
    const v4 = pending4(r) ? await take(r.subnetId!, 4) : null;
    const v6 = pending6(r) ? await take(r.subnet6Id!, 6) : null;
    chosen.push({ r, table, v4, v6 });
  }
  const out: { ifname: string; address: string }[] = [];
  for (const { r, table, v4, v6 } of chosen) {
    const set = {
      ...(v4 && { ip: v4.address, prefix: v4.prefix, gateway: r.gateway ?? v4.gateway }),
      ...(v6 && { ip6: v6.address, prefix6: v6.prefix, gateway6: r.gateway6 ?? v6.gateway }),
    };
    try {
      if (table === "nic") await tx.update(nics).set(set).where(eq(nics.id, r.id));
      else await tx.update(nicLinks).set(set).where(eq(nicLinks.id, r.id));
    } catch (err) {
      // The NICs' unique IP: the address went to another machine meanwhile.
      if (isUniqueViolation(err) && v4) throw refused(r.ifname, 4, new AppError("CONFLICT", `Subnet ${v4.subnet.name} (${v4.subnet.cidr}) has no free address left`));
      throw err;
    }
    const holder = table === "nic" ? { machineId, nicId: r.id } : { machineId, linkId: r.id };
    for (const a of [v4, v6]) {
      if (!a) continue;
      allocator.record(a, "auto", holder);
      out.push({ ifname: r.ifname ?? "", address: a.address });
    }
  }
  try {
    await allocator.flush();
  } catch (err) {
    if (err instanceof AppError) throw refused(chosen[0]!.r.ifname, chosen[0]!.v4 ? 4 : 6, err);
    throw err;
  }
  return out;
}

const pending4 = (r: AddressedRow) => r.addressMode === "auto" && r.subnetId !== null && !r.ip;
const pending6 = (r: AddressedRow) => r.ipv6Mode === "auto" && r.subnet6Id !== null && !r.ip6;

/** Of `machineIds`, those with an auto interface still waiting for its address (a batch asks once, not per machine). */
export async function machinesWithPendingAddresses(store: Store, q: StoreDb | StoreTx, machineIds: number[]): Promise<Set<number>> {
  const out = new Set<number>();
  const { nics, nicLinks } = store.t;
  for (let i = 0; i < machineIds.length; i += 500) {
    const ids = machineIds.slice(i, i + 500);
    for (const t of [nics, nicLinks] as const) {
      const pending = or(and(eq(t.addressMode, "auto"), isNotNull(t.subnetId), isNull(t.ip)), and(eq(t.ipv6Mode, "auto"), isNotNull(t.subnet6Id), isNull(t.ip6)));
      for (const r of await q.selectDistinct({ id: t.machineId }).from(t).where(and(inArray(t.machineId, ids), pending))) out.add(r.id);
    }
  }
  return out;
}
