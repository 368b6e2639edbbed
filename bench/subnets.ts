/**
 * Issue 14's two benchmark rows (`npm run bench:subnets`):
 * 1. allocation of 10,000 addresses across 40 subnets during a CSV import: target ≤ 2 s, and at most 20 % over the
 *    same import without allocation. In-process (the domain's importCsv on a real SQLite file), fresh database per
 *    round, rounds alternating with and without the subnet/address_mode columns; the median of each is reported.
 * 2. the subnet page at 10,000 allocations: first paint (navigation start → the first allocation row visible) in
 *    headless Chromium (/usr/bin/chromium) against the production build (`npm run build` when missing): ≤ 1 s.
 * Env: BENCH_SUBNETS_ROWS (10000), BENCH_SUBNETS_COUNT (40 subnets), BENCH_SUBNETS_ROUNDS (5),
 * BENCH_SUBNETS_LOADS (5 page loads after 1 warm-up), BENCH_SUBNETS_PARTS (import,page).
 * Prints the figures; with BENCH_SUBNETS_WRITE=1 writes the "subnets" section of docs/BENCHMARKS.md.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { chromium } from "@playwright/test";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../e2e/chromium";
import { SecretBox } from "../server/auth/secrets";
import type { Domain } from "../server/context";
import { openDatabase } from "../server/db/client";
import { EventBus } from "../server/events/bus";
import { silentLogger } from "../server/log";
import { importCsv } from "../server/machines/csv";
import { createSubnet } from "../server/subnets/subnets";
import { TrpcClient } from "./lib/http-trpc";
import { machineInfo, printTable, type Figure } from "./lib/report";
import { writeSection } from "./lib/sections";
import { ensureBuild, startServer } from "./lib/server";
import { percentile, round } from "./lib/stats";

const ROWS = Number(process.env.BENCH_SUBNETS_ROWS ?? 10_000);
const COUNT = Number(process.env.BENCH_SUBNETS_COUNT ?? 40);
const ROUNDS = Number(process.env.BENCH_SUBNETS_ROUNDS ?? 5);
const LOADS = Number(process.env.BENCH_SUBNETS_LOADS ?? 5);
const PARTS = (process.env.BENCH_SUBNETS_PARTS ?? "import,page").split(",");
const PASSWORD = "bench-subnets-admin-pw";

const mac = (i: number) => `52:54:02:${((i >> 16) & 255).toString(16).padStart(2, "0")}:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;

/** Subnet k: a quarter are IPv6 /64s, the rest IPv4 /20s (4,094 hosts, a reserved block and a dynamic range each). */
function subnetInput(k: number) {
  if (k % 4 === 3) return { name: `bench-v6-${k}`, cidr: `2001:db8:${k.toString(16)}::/64`, gateway: `2001:db8:${k.toString(16)}::1`, reserved: [{ start: `2001:db8:${k.toString(16)}::2`, end: `2001:db8:${k.toString(16)}::ff` }] };
  const b = 16 * k;
  return { name: `bench-v4-${k}`, cidr: `10.${100 + (b >> 8)}.${b & 255}.0/20`, gateway: `10.${100 + (b >> 8)}.${b & 255}.1`, reserved: [{ start: `10.${100 + (b >> 8)}.${b & 255}.2`, end: `10.${100 + (b >> 8)}.${b & 255}.20` }], dynamic: { start: `10.${100 + (b >> 8)}.${(b & 255) + 15}.0`, end: `10.${100 + (b >> 8)}.${(b & 255) + 15}.250` } };
}

function csv(withSubnets: boolean): string {
  const lines = [withSubnets ? "name,mac,subnet,address_mode" : "name,mac"];
  for (let i = 0; i < ROWS; i++) lines.push(withSubnets ? `b${i},${mac(i)},${subnetInput(i % COUNT).name},auto` : `b${i},${mac(i)}`);
  return lines.join("\n");
}

function domainIn(dir: string): Domain {
  const db = openDatabase(path.join(dir, "rackhand.db"));
  return { db, bus: new EventBus(), secrets: SecretBox.open(dir), log: silentLogger, oob: undefined as never };
}

async function importFigures(figures: Figure[], context: string[]): Promise<void> {
  const times = { with: [] as number[], without: [] as number[] };
  const texts = { with: csv(true), without: csv(false) };
  // Two warm-up rounds (one of each, not counted): the first import of a process pays for JIT and statement caches.
  for (let r = -2; r < ROUNDS * 2; r++) {
    const kind = r % 2 === 0 ? "with" : "without";
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-bench-subnets-"));
    try {
      const d = domainIn(dir);
      for (let k = 0; k < COUNT; k++) await createSubnet(d, { dns: [], vlanId: null, dynamic: null, provisioning: false, ...subnetInput(k) }, "bench");
      const t0 = performance.now();
      const res = await importCsv(d, texts[kind], "bench", false);
      const ms = performance.now() - t0;
      if (res.imported !== ROWS) throw new Error(`imported ${res.imported} of ${ROWS}`);
      if (kind === "with") {
        const n = d.db.$client.prepare("select count(*) n, count(distinct subnet_id || '/' || address) d from ip_allocations").get() as { n: number; d: number };
        if (n.n !== ROWS || n.d !== ROWS) throw new Error(`expected ${ROWS} distinct allocations, found ${n.n} (${n.d} distinct)`);
      }
      if (r >= 0) times[kind].push(ms);
      console.log(`  import ${kind} allocation, ${r < 0 ? "warm-up" : `round ${Math.floor(r / 2) + 1}`}: ${ms.toFixed(0)} ms`);
      d.db.$client.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const withMs = percentile(times.with, 50);
  const withoutMs = percentile(times.without, 50);
  figures.push(
    { name: `CSV import of ${ROWS.toLocaleString("en")} with allocation across ${COUNT} subnets (median)`, unit: "s", value: round(withMs / 1000, 3), target: { op: "<=", value: 2 } },
    { name: "same import without allocation (median)", unit: "s", value: round(withoutMs / 1000, 3) },
    { name: "allocation overhead (with / without)", unit: "×", value: round(withMs / withoutMs, 3), target: { op: "<=", value: 1.2 } },
  );
  context.push(`Import: ${ROUNDS} rounds each after one warm-up each, alternating, fresh SQLite file per round; ${COUNT} subnets (${Math.ceil(COUNT / 4)} IPv6 /64, the rest IPv4 /20 with reserved and dynamic ranges), every row \`address_mode=auto\`.`);
}

const WATCH = `(() => {
  const check = () => {
    if (window.__rhFirstRowAt !== undefined) return true;
    const el = document.querySelector('[data-testid="allocation-row"]');
    if (el && el.checkVisibility()) { window.__rhFirstRowAt = performance.now(); return true; }
    return false;
  };
  const o = new MutationObserver(() => { if (check()) o.disconnect(); });
  o.observe(document, { childList: true, subtree: true, attributes: true });
})();`;

async function pageFigures(figures: Figure[], context: string[]): Promise<void> {
  await ensureBuild(process.cwd());
  const server = await startServer(process.cwd(), PASSWORD);
  const client = new TrpcClient(server.url);
  try {
    await client.login("admin", PASSWORD);
    const { id } = await client.mutate<{ id: number }>("subnets.create", { name: "page", cidr: "10.200.0.0/16", gateway: "10.200.0.1" });
    for (let i = 0; i < ROWS; i += 1000) {
      const lines = ["name,mac,subnet,address_mode"];
      for (let j = i; j < Math.min(ROWS, i + 1000); j++) lines.push(`p${j},${mac(j)},page,auto`);
      await client.mutate("machines.importCsv", { csv: lines.join("\n"), dryRun: false });
    }
    const got = await client.query<{ allocated: number }>("subnets.get", { id, limit: 1 });
    if (got.allocated !== ROWS) throw new Error(`seeded ${got.allocated} allocations, expected ${ROWS}`);
    const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
    try {
      const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
      await ctx.addCookies([{ name: "rh_session", value: client.sessionToken, domain: "127.0.0.1", path: "/", httpOnly: true, sameSite: "Lax" }]);
      await ctx.addInitScript({ content: WATCH });
      const page = await ctx.newPage();
      const samples: number[] = [];
      for (let i = 0; i < LOADS + 1; i++) {
        await page.goto(`${server.url}/subnets/${id}`, { waitUntil: "commit" });
        await page.waitForFunction(() => (window as unknown as { __rhFirstRowAt?: number }).__rhFirstRowAt !== undefined, undefined, { timeout: 30_000, polling: 50 });
        const ms = await page.evaluate(() => (window as unknown as { __rhFirstRowAt: number }).__rhFirstRowAt);
        if (i > 0) samples.push(ms);
      }
      figures.push({ name: `subnet page first paint at ${ROWS.toLocaleString("en")} allocations (median of ${LOADS})`, unit: "ms", value: round(percentile(samples, 50), 0), target: { op: "<=", value: 1000 } });
      context.push(`Page: Chromium ${browser.version()} (${CHROMIUM_PATH}, headless), production build, one subnet holding ${ROWS.toLocaleString("en")} addresses; first page of 200 rows; 1 warm-up load.`);
    } finally {
      await browser.close();
    }
  } finally {
    client.close();
    await server.stop();
  }
}

async function main(): Promise<void> {
  const figures: Figure[] = [];
  const context: string[] = [];
  const t0 = Date.now();
  if (PARTS.includes("import")) await importFigures(figures, context);
  if (PARTS.includes("page")) await pageFigures(figures, context);
  printTable(figures);
  if (process.env.BENCH_SUBNETS_WRITE === "1") {
    const m = machineInfo();
    const rows = figures.map((f) => `| ${f.name} | ${f.value ?? "—"} ${f.unit} | ${f.target ? `${f.target.op} ${f.target.value} ${f.unit}` : ""} |`);
    writeSection(path.resolve("docs/BENCHMARKS.md"), "subnets", [`Run ${new Date().toISOString()} on ${m.cpu} (${m.cores} cores), \`npm run bench:subnets\`, ${((Date.now() - t0) / 1000).toFixed(0)} s.`, "", "| figure | result | target |", "|---|---|---|", ...rows, "", ...context.map((c) => `- ${c}`)].join("\n"));
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
