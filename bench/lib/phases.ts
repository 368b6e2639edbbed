/** The measured phases, each against a running server through a signed-in TrpcClient. */
import { performance } from "node:perf_hooks";
import { createRacks, enrollOne, fillRacks, importMachines, spreadStates, MACHINES_PER_RACK, type Rack } from "./fleet";
import { BenchError, type TrpcClient } from "./http-trpc";
import { runConcurrent, sampleSequential, summarize, timed, type Summary } from "./stats";

export const FLEET_RACKS = 250;
export const FLEET_MACHINES = 10_000;
export { MACHINES_PER_RACK } from "./fleet";
export const ENROLL_COUNT = 1_000;
export const LIST_FILTER_STATES = ["available"];
export const LIST_PAGE_SIZE = 100;
const LIST_WARMUP = 30;
const LIST_SAMPLES = 300;
const FULL_WARMUP = 2;
const FULL_SAMPLES = 10;

export interface Seeded {
  seedS: number;
  states: Record<string, number>;
  enrollRacks: Rack[];
}

/** 250 racks and 10,000 machines by CSV import, a spread of states, and empty racks for the enrollment phase. */
export async function seedFleet(client: TrpcClient): Promise<Seeded> {
  const t0 = performance.now();
  const racks = await createRacks(client, "r", FLEET_RACKS);
  await importMachines(client, fillRacks(racks, 0, FLEET_MACHINES));
  const states = await spreadStates(client);
  const seedS = (performance.now() - t0) / 1000;
  // Room for 2 x 1,000 enrolled machines at 1U; created after the timer: not part of seeding.
  const enrollRacks = await createRacks(client, "e", Math.ceil((2 * ENROLL_COUNT) / MACHINES_PER_RACK));
  return { seedS, states, enrollRacks };
}

export interface EnrollRun {
  perSecond: number;
  wallS: number;
}

/**
 * Enroll `ENROLL_COUNT` new machines, one machines.enroll request each, with `workers` concurrent clients.
 * `batch` (0 or 1) picks which half of the enrollment racks and which machine numbers to use.
 */
export async function measureEnroll(client: TrpcClient, enrollRacks: Rack[], batch: number, workers: number): Promise<EnrollRun> {
  const racksPerBatch = enrollRacks.length / 2;
  const racks = enrollRacks.slice(batch * racksPerBatch, (batch + 1) * racksPerBatch);
  const specs = fillRacks(racks, FLEET_MACHINES + batch * ENROLL_COUNT, ENROLL_COUNT);
  const wallMs = await runConcurrent(specs.length, workers, (i) => enrollOne(client, specs[i]!));
  return { perSecond: (specs.length / wallMs) * 1000, wallS: wallMs / 1000 };
}

interface ListPage {
  rows: { id: number }[];
  total: number;
}

/** Latency of one page of 100 machines filtered by state, walking through every page of the result in turn. */
export async function measureListPages(client: TrpcClient, sort: "name" | "ip"): Promise<Summary & { matching: number }> {
  const first = await client.query<ListPage>("machines.list", { states: LIST_FILTER_STATES, sort, pageSize: LIST_PAGE_SIZE });
  if (first.rows.length !== Math.min(LIST_PAGE_SIZE, first.total) || first.total === 0) {
    throw new BenchError(`machines.list states=${LIST_FILTER_STATES.join(",")} returned ${first.rows.length} rows of ${first.total}`);
  }
  const pages = Math.ceil(first.total / LIST_PAGE_SIZE);
  const samples = await sampleSequential(LIST_WARMUP, LIST_SAMPLES, (i) =>
    client.query("machines.list", { states: LIST_FILTER_STATES, sort, page: (i % pages) + 1, pageSize: LIST_PAGE_SIZE }),
  );
  return { ...summarize(samples), matching: first.total };
}

/** Round trip (request, 10,000 rows, JSON parse) of the whole fleet in one machines.list. */
export async function measureFullList(client: TrpcClient): Promise<Summary & { payloadMb: number }> {
  const probe = await timed(() => client.query<ListPage>("machines.list", { sort: "name", pageSize: 10_000 }));
  if (probe.value.rows.length !== FLEET_MACHINES) {
    throw new BenchError(`machines.list pageSize 10000 returned ${probe.value.rows.length} rows, expected ${FLEET_MACHINES}`);
  }
  const payloadMb = Buffer.byteLength(JSON.stringify({ result: { data: probe.value } })) / 1024 ** 2;
  const samples = await sampleSequential(FULL_WARMUP - 1, FULL_SAMPLES, () =>
    client.query("machines.list", { sort: "name", pageSize: 10_000 }),
  );
  return { ...summarize(samples), payloadMb };
}
