/**
 * The synthetic fleet: racks, machines (generated names, MACs, IPs, fake BMCs) and a spread of lifecycle states,
 * all created through the public tRPC API.
 */
import { BenchError, type TrpcClient } from "./http-trpc";

export const MACHINES_PER_RACK = 40; // 1U each, U1..U40 of a 42U rack
const RACK_HEIGHT_U = 42;
const IMPORT_CHUNK = 1000;

export interface Rack {
  id: number;
  name: string;
}

/** Machine number i (0-based, unique across the whole run) placed at rack/u. */
export interface MachineSpec {
  name: string;
  rack: Rack;
  u: number;
  mac: string;
  ip: string;
  bmcAddress: string;
}

const hex2 = (n: number) => (n & 255).toString(16).padStart(2, "0");
const pad = (n: number, width: number) => String(n).padStart(width, "0");

/** IPs in an order unrelated to names (7919 is odd, so i -> 7919*i mod 2^16 is a bijection), so sort-by-ip differs. */
/** A unique address per index; last octets 1..250 (the demo's fake driver treats .254 as an unreachable BMC). */
function ipFor(prefix: string, i: number): string {
  const k = (i * 7919) % 62500;
  return `${prefix}.${Math.floor(k / 250)}.${(k % 250) + 1}`;
}

export function machineSpec(i: number, rack: Rack, u: number): MachineSpec {
  if (i >= 65536) throw new BenchError("machine index out of the generated address space");
  return {
    name: `node-${rack.name}-u${pad(u, 2)}`,
    rack,
    u,
    mac: `52:54:00:${hex2(i >> 16)}:${hex2(i >> 8)}:${hex2(i)}`,
    ip: ipFor("10.1", i),
    bmcAddress: ipFor("10.2", i),
  };
}

/** Machine specs filling racks[0..] at U1..U40, numbered from firstIndex. */
export function fillRacks(racks: Rack[], firstIndex: number, count: number): MachineSpec[] {
  if (count > racks.length * MACHINES_PER_RACK) throw new BenchError(`${count} machines do not fit in ${racks.length} racks`);
  return Array.from({ length: count }, (_, j) =>
    machineSpec(firstIndex + j, racks[Math.floor(j / MACHINES_PER_RACK)]!, (j % MACHINES_PER_RACK) + 1),
  );
}

/** Create racks `${prefix}001`.. one mutation each. */
export async function createRacks(client: TrpcClient, prefix: string, count: number): Promise<Rack[]> {
  const out: Rack[] = [];
  for (let r = 1; r <= count; r++) {
    const name = `${prefix}${pad(r, 3)}`;
    const { id } = await client.mutate<{ id: number }>("racks.create", {
      name,
      site: "bench",
      row: `row-${Math.ceil(r / 10)}`,
      heightU: RACK_HEIGHT_U,
    });
    out.push({ id, name });
  }
  return out;
}

const CSV_HEADER = "name,rack,u_position,u_height,mac,ip,bmc_address,bmc_port,bmc_user,bmc_password,bmc_driver";

function csvLine(m: MachineSpec): string {
  return [m.name, m.rack.name, m.u, 1, m.mac, m.ip, m.bmcAddress, 623, "admin", `pw-${m.mac.slice(-8)}`, "fake"].join(",");
}

/** Bulk-import machines with machines.importCsv in chunks of 1,000 rows. */
export async function importMachines(client: TrpcClient, specs: MachineSpec[]): Promise<void> {
  for (let at = 0; at < specs.length; at += IMPORT_CHUNK) {
    const chunk = specs.slice(at, at + IMPORT_CHUNK);
    const csv = [CSV_HEADER, ...chunk.map(csvLine)].join("\n");
    const r = await client.mutate<{ ok: boolean; imported: number }>("machines.importCsv", { csv, dryRun: false });
    if (!r.ok || r.imported !== chunk.length) {
      throw new BenchError(`machines.importCsv imported ${r.imported} of ${chunk.length} rows`);
    }
  }
}

/** Enroll one machine with machines.enroll (what the "add machine" form sends). */
export async function enrollOne(client: TrpcClient, m: MachineSpec): Promise<void> {
  await client.mutate<{ id: number }>("machines.enroll", {
    name: m.name,
    rackId: m.rack.id,
    uPosition: m.u,
    uHeight: 1,
    bootMac: m.mac,
    ip: m.ip,
    bmc: { driver: "fake", address: m.bmcAddress, port: 623, username: "admin", password: `pw-${m.mac.slice(-8)}` },
  });
}

/**
 * Where machine k (in enrollment order) ends up, by k mod 10, and the operator actions that take it there.
 * Only actions that start no job (manage, provide): thousands of inspect/deploy jobs running in the background
 * would measure the orchestrator, not the list.
 */
const STATE_PLAN: { mods: number[]; actions: string[]; state: string }[] = [
  { mods: [0], actions: [], state: "enrolled" },
  { mods: [1, 2, 7, 8, 9], actions: ["manage"], state: "manageable" },
  { mods: [3, 4, 5, 6], actions: ["manage", "provide"], state: "available" },
];
const ACTION_ORDER = ["manage", "provide"];

interface BulkResult {
  id: number;
  name: string;
  ok: boolean;
  error?: string;
}

/** Move the fleet into a mix of states with machines.bulkAction over explicit ids; returns machines per state. */
export async function spreadStates(client: TrpcClient): Promise<Record<string, number>> {
  const all = await client.query<{ rows: { id: number }[]; total: number }>("machines.list", { sort: "created", pageSize: 10_000 });
  if (all.total > 10_000) throw new BenchError("spreadStates expects at most 10,000 machines");
  const ids = all.rows.map((r) => r.id);
  for (const action of ACTION_ORDER) {
    const mods = new Set(STATE_PLAN.filter((p) => p.actions.includes(action)).flatMap((p) => p.mods));
    const selected = ids.filter((_, k) => mods.has(k % 10));
    const results = await client.mutate<BulkResult[]>("machines.bulkAction", { selection: { ids: selected }, action });
    const failed = results.filter((r) => !r.ok);
    if (failed.length) throw new BenchError(`bulk ${action}: ${failed.length} machines refused, e.g. ${failed[0]!.name}: ${failed[0]!.error}`);
  }
  const summary = await client.query<{ byState: { state: string; n: number }[] }>("machines.summary");
  return Object.fromEntries(summary.byState.map((s) => [s.state, s.n]));
}
