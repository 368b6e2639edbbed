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
import type { Db } from "../db/client";
import { insertRow } from "../db/prepared";
import { bmcs, ipAllocations, machines, nicLinks, nics, subnets, type Subnet } from "../db/schema";

type Tx = Pick<Db, "select" | "insert">;

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

export class Allocator {
  private loaded = new Map<number, Loaded>();
  private pending: { subnetId: number; address: string; n: bigint }[] = [];
  private held = new Map<string, number>();

  constructor(private readonly tx: Tx) {}

  private load(subnetId: number, field: string): Loaded {
    const hit = this.loaded.get(subnetId);
    if (hit) return hit;
    const row = this.tx.select().from(subnets).where(eq(subnets.id, subnetId)).get();
    if (!row) throw new AppError("NOT_FOUND", `Subnet ${subnetId} does not exist`, [{ field, message: "No such subnet" }]);
    const plan = planOf(row);
    const taken = new Set<bigint>();
    for (const a of this.tx.select({ address: ipAllocations.address }).from(ipAllocations).where(eq(ipAllocations.subnetId, subnetId)).all()) {
      const p = parseAddr(a.address);
      if (p) taken.add(p.n);
    }
    if (plan.cidr.family === 4) {
      // Addresses held outside allocations (a NIC's typed DHCP reservation, a BMC) are not handed out either.
      const { first, last } = hostBounds(plan.cidr);
      const lo = Number(first);
      const hi = Number(last);
      for (const r of this.tx.select({ ip: nics.ip }).from(nics).where(between(sql`ip_num(${nics.ip})`, lo, hi)).all()) if (r.ip) taken.add(parseAddr(r.ip)!.n);
      for (const r of this.tx.select({ ip: bmcs.address }).from(bmcs).where(between(sql`ip_num(${bmcs.address})`, lo, hi)).all()) taken.add(parseAddr(r.ip)!.n);
    }
    const l: Loaded = { row, plan, taken, cursor: undefined, top: hostBounds(plan.cidr).last + 1n };
    this.loaded.set(subnetId, l);
    return l;
  }

  /** An address written outside the allocator in this transaction (a typed NIC IP, a BMC): never handed out here. */
  noteTaken(address: string): void {
    const a = parseAddr(address);
    if (!a) return;
    for (const l of this.loaded.values()) if (l.plan.cidr.family === a.family && a.n >= l.plan.cidr.network && a.n <= l.top) l.taken.add(a.n);
  }

  subnet(subnetId: number, field = "subnet"): Subnet {
    return this.load(subnetId, field).row;
  }

  private result(l: Loaded, address: string): Allocated {
    return { subnet: l.row, address, prefix: l.plan.cidr.prefix, gateway: l.row.gateway };
  }

  /** The first free address outside reserved and dynamic ranges. @throws AppError CONFLICT when the subnet is full */
  auto(subnetId: number, field = "subnet"): Allocated {
    const l = this.load(subnetId, field);
    const n = firstFree(l.plan, l.taken, l.cursor);
    if (n === null) throw new AppError("CONFLICT", `Subnet ${l.row.name} (${l.row.cidr}) has no free address left`, [{ field, message: "Subnet full" }]);
    l.taken.add(n);
    l.cursor = n + 1n;
    const address = formatAddr({ family: l.plan.cidr.family, n });
    this.pending.push({ subnetId, address, n });
    return this.result(l, address);
  }

  /**
   * Pin `address` in the subnet: inside it, not the gateway, not reserved or dynamic, not held by anyone.
   * @throws AppError VALIDATION (naming the reason) or CONFLICT (naming the holder)
   */
  pin(subnetId: number, address: string, field = "ip", holder?: number): Allocated {
    const l = this.load(subnetId, "subnet");
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
    if (l.taken.has(n)) {
      const who = this.holder(subnetId, canonical);
      const message = `${canonical} in subnet ${l.row.name} is already ${who}`;
      throw new AppError("CONFLICT", message, [{ field, message }]);
    }
    l.taken.add(n);
    this.pending.push({ subnetId, address: canonical, n });
    return this.result(l, canonical);
  }

  /**
   * Set a pinned address aside before anything is allocated automatically (a CSV import pins its static rows first,
   * so an earlier auto row never takes a later row's pinned address). A later pin() with the same holder takes it;
   * anything wrong with the address is left for that pin() to report.
   */
  hold(subnetId: number, address: string, holder: number): void {
    try {
      const l = this.load(subnetId, "subnet");
      const canonical = canonicalAddr(address);
      if (!canonical || pinProblem(l.plan, canonical)) return;
      const n = parseAddr(canonical)!.n;
      const key = `${subnetId}/${canonical}`;
      if (l.taken.has(n)) return;
      l.taken.add(n);
      this.held.set(key, holder);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
    }
  }

  /** Who holds an address, for messages: "held by web-01 (eno1)", or "taken by an earlier row of this import". */
  private holder(subnetId: number, address: string): string {
    if (this.held.has(`${subnetId}/${address}`) || this.pending.some((p) => p.subnetId === subnetId && p.address === address)) return "taken by another row of this change";
    const a = this.tx
      .select({ name: machines.name, nic: nics.ifname, mac: nics.mac, link: nicLinks.ifname })
      .from(ipAllocations)
      .innerJoin(machines, eq(machines.id, ipAllocations.machineId))
      .leftJoin(nics, eq(nics.id, ipAllocations.nicId))
      .leftJoin(nicLinks, eq(nicLinks.id, ipAllocations.linkId))
      .where(and(eq(ipAllocations.subnetId, subnetId), eq(ipAllocations.address, address)))
      .get();
    if (a) return `held by ${a.name}${a.nic || a.link ? ` (${a.nic ?? a.link})` : a.mac ? ` (${a.mac})` : ""}`;
    const n = this.tx.select({ name: machines.name }).from(nics).innerJoin(machines, eq(machines.id, nics.machineId)).where(eq(nics.ip, address)).get();
    if (n) return `the IP of ${n.name}`;
    const b = this.tx.select({ name: machines.name }).from(bmcs).innerJoin(machines, eq(machines.id, bmcs.machineId)).where(eq(bmcs.address, address)).get();
    if (b) return `the BMC address of ${b.name}`;
    return "taken";
  }

  private rows: (typeof ipAllocations.$inferInsert)[] = [];

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

  /** Write the recorded rows; UNIQUE (subnet_id, address) refuses a duplicate here, failing the transaction. */
  flush(): void {
    if (this.rows.length > 20 && "$client" in this.tx) {
      // On the database handle (bulk enrollment runs in its own transaction on it): one prepared single-row INSERT
      // run per row. Drizzle's multi-row builder cost more than the rows (issue 14's import bench: 2.5× → see BENCHMARKS).
      const insert = insertRow(this.tx as Db, ipAllocations, ALLOCATION_FIELDS);
      for (const r of this.rows) insert(r);
    } else {
      // 9 columns × 100 rows stays far below SQLite's bound-parameter limit.
      for (let i = 0; i < this.rows.length; i += 100) this.tx.insert(ipAllocations).values(this.rows.slice(i, i + 100)).run();
    }
    this.rows = [];
  }
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
 * set after enroll, or its address was released) get the first free one now. Call it in the transaction that creates
 * the deploy's job, before the network files are rendered. All or nothing: every address is chosen before any row
 * is written. Returns the addresses handed out (empty when nothing was pending).
 * @throws AppError CONFLICT naming the machine, the interface and the full subnet; NOT_FOUND for a vanished subnet
 */
export function allocatePending(tx: Pick<Db, "select" | "insert" | "update">, machineId: number): { ifname: string; address: string }[] {
  const cols = {
    id: nics.id,
    ifname: nics.ifname,
    addressMode: nics.addressMode,
    subnetId: nics.subnetId,
    ip: nics.ip,
    gateway: nics.gateway,
    ipv6Mode: nics.ipv6Mode,
    subnet6Id: nics.subnet6Id,
    ip6: nics.ip6,
    gateway6: nics.gateway6,
  };
  const linkCols = {
    id: nicLinks.id,
    ifname: nicLinks.ifname,
    addressMode: nicLinks.addressMode,
    subnetId: nicLinks.subnetId,
    ip: nicLinks.ip,
    gateway: nicLinks.gateway,
    ipv6Mode: nicLinks.ipv6Mode,
    subnet6Id: nicLinks.subnet6Id,
    ip6: nicLinks.ip6,
    gateway6: nicLinks.gateway6,
  };
  const pending = (r: AddressedRow) => (r.addressMode === "auto" && r.subnetId !== null && !r.ip) || (r.ipv6Mode === "auto" && r.subnet6Id !== null && !r.ip6);
  const rows = [
    ...tx.select(cols).from(nics).where(eq(nics.machineId, machineId)).all().filter(pending).map((r) => ({ r, table: "nic" as const })),
    ...tx.select(linkCols).from(nicLinks).where(eq(nicLinks.machineId, machineId)).all().filter(pending).map((r) => ({ r, table: "link" as const })),
  ];
  if (!rows.length) return [];
  const name = tx.select({ name: machines.name }).from(machines).where(eq(machines.id, machineId)).get()?.name ?? `Machine ${machineId}`;
  const allocator = new Allocator(tx);
  const chosen = rows.map(({ r, table }) => {
    const take = (subnetId: number, family: 4 | 6): Allocated => {
      try {
        if (allocator.subnet(subnetId).family !== family) throw new AppError("VALIDATION", `subnet ${allocator.subnet(subnetId).name} is not an IPv${family} subnet`);
        return allocator.auto(subnetId);
      } catch (err) {
        if (err instanceof AppError) {
          const message = `${name} cannot be deployed: ${r.ifname ?? "its boot NIC"} needs an IPv${family} address: ${err.message}`;
          throw new AppError(err.code, message, [{ field: r.ifname ?? "network", message: err.message }]);
        }
        throw err;
      }
    };
    const v4 = r.addressMode === "auto" && r.subnetId !== null && !r.ip ? take(r.subnetId, 4) : null;
    const v6 = r.ipv6Mode === "auto" && r.subnet6Id !== null && !r.ip6 ? take(r.subnet6Id, 6) : null;
    return { r, table, v4, v6 };
  });
  const out: { ifname: string; address: string }[] = [];
  for (const { r, table, v4, v6 } of chosen) {
    const set = {
      ...(v4 && { ip: v4.address, prefix: v4.prefix, gateway: r.gateway ?? v4.gateway }),
      ...(v6 && { ip6: v6.address, prefix6: v6.prefix, gateway6: r.gateway6 ?? v6.gateway }),
    };
    if (table === "nic") tx.update(nics).set(set).where(eq(nics.id, r.id)).run();
    else tx.update(nicLinks).set(set).where(eq(nicLinks.id, r.id)).run();
    const holder = table === "nic" ? { machineId, nicId: r.id } : { machineId, linkId: r.id };
    for (const a of [v4, v6]) {
      if (!a) continue;
      allocator.record(a, "auto", holder);
      out.push({ ifname: r.ifname ?? "", address: a.address });
    }
  }
  allocator.flush();
  return out;
}

/** Of `machineIds`, those with an auto interface still waiting for its address (a batch asks once, not per machine). */
export function machinesWithPendingAddresses(tx: Pick<Db, "selectDistinct">, machineIds: number[]): Set<number> {
  const out = new Set<number>();
  for (let i = 0; i < machineIds.length; i += 500) {
    const ids = machineIds.slice(i, i + 500);
    for (const t of [nics, nicLinks] as const) {
      const pending = or(and(eq(t.addressMode, "auto"), isNotNull(t.subnetId), isNull(t.ip)), and(eq(t.ipv6Mode, "auto"), isNotNull(t.subnet6Id), isNull(t.ip6)));
      for (const r of tx.selectDistinct({ id: t.machineId }).from(t).where(and(inArray(t.machineId, ids), pending)).all()) out.add(r.id);
    }
  }
  return out;
}
