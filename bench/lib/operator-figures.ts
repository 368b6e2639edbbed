/**
 * bench:list figures for issue 13's operator pages, at the bench's 10,000 machines (median of 5 each):
 *  - Events page, first event row visible in headless Chromium, with 100,000 events in the database;
 *  - CSV export of all 10,000 machines over HTTP (GET /api/machines.csv, full body received).
 * The 100,000 events are inserted straight into the server's SQLite file (one transaction, WAL mode, while the
 * server runs): through the API they would take minutes of unrelated work. Kinds, actors and machines vary.
 */
import path from "node:path";
import { performance } from "node:perf_hooks";
import Database from "better-sqlite3";
import { chromium } from "@playwright/test";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../../e2e/chromium";
import { BenchError, type TrpcClient } from "./http-trpc";
import type { Figure } from "./report";
import type { ServerProcess } from "./server";
import { median, round } from "./stats";

export const EVENT_COUNT = 100_000;
const LOADS = 5;
const EVENT_ROW = '[data-testid="event-list"] li';

/** Insert `n` events spread over the last 30 days, newest last (ids follow time as in production). */
export function seedEvents(dataDir: string, n: number): number {
  const db = new Database(path.join(dataDir, "rackhand.db"));
  try {
    db.pragma("busy_timeout = 10000");
    const ids = db.prepare("SELECT id FROM machines ORDER BY id").pluck().all() as number[];
    const kinds = ["machine.transition", "job.started", "job.succeeded", "job.failed", "power.changed", "bmc.checked", "machine.updated"];
    const actors = ["system", "agent", "user:admin", "user:alice", "user:bob"];
    const ins = db.prepare("INSERT INTO events (ts, actor, machine_id, kind, message) VALUES (?, ?, ?, ?, ?)");
    const t0 = Date.now() - 30 * 86_400_000;
    const started = performance.now();
    db.transaction(() => {
      for (let i = 0; i < n; i++) {
        const m = ids.length ? ids[(i * 7919) % ids.length]! : null;
        ins.run(t0 + Math.floor((i * 30 * 86_400_000) / n), actors[i % actors.length], m, kinds[i % kinds.length], `bench event ${i} on machine ${m}: state changed, details follow`);
      }
    })();
    return (performance.now() - started) / 1000;
  } finally {
    db.close();
  }
}

const WATCH = `(() => {
  const check = () => {
    if (window.__rhFirstEventAt !== undefined) return true;
    const el = document.querySelector(${JSON.stringify(EVENT_ROW)});
    if (el && el.checkVisibility() && el.textContent.includes("bench event")) { window.__rhFirstEventAt = performance.now(); return true; }
    return false;
  };
  const observer = new MutationObserver(() => { if (check()) observer.disconnect(); });
  observer.observe(document, { childList: true, subtree: true, characterData: true });
})();`;

/** Navigation start → first event row visible on /events (1 warm-up, then LOADS loads). */
async function eventsFirstPaint(baseUrl: string, sessionToken: string): Promise<{ samples: number[]; version: string }> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    await context.addCookies([{ name: "rh_session", value: sessionToken, domain: new URL(baseUrl).hostname, path: "/", httpOnly: true, sameSite: "Lax" }]);
    await context.addInitScript({ content: WATCH });
    const page = await context.newPage();
    const samples: number[] = [];
    for (let i = 0; i < LOADS + 1; i++) {
      const res = await page.goto(`${baseUrl}/events`, { waitUntil: "commit", timeout: 30_000 });
      if (res?.status() !== 200 || new URL(page.url()).pathname !== "/events") throw new BenchError(`GET /events answered ${res?.status()} at ${page.url()}`);
      await page.waitForFunction(() => (window as unknown as { __rhFirstEventAt?: number }).__rhFirstEventAt !== undefined, undefined, { timeout: 30_000, polling: 50 });
      const ms = await page.evaluate(() => (window as unknown as { __rhFirstEventAt: number }).__rhFirstEventAt);
      if (i > 0) samples.push(ms);
    }
    return { samples, version: browser.version() };
  } finally {
    await browser.close();
  }
}

/** GET /api/machines.csv of the whole fleet, body fully read; checks the row count. */
async function csvExport(baseUrl: string, sessionToken: string, expectRows: number): Promise<{ samples: number[]; mb: number }> {
  const samples: number[] = [];
  let mb = 0;
  for (let i = 0; i < LOADS + 1; i++) {
    const t = performance.now();
    const res = await fetch(`${baseUrl}/api/machines.csv`, { headers: { cookie: `rh_session=${sessionToken}` } });
    const body = await res.text();
    const ms = performance.now() - t;
    if (res.status !== 200) throw new BenchError(`GET /api/machines.csv answered ${res.status}: ${body.slice(0, 200)}`);
    const rows = body.split("\r\n").length - 2;
    if (rows < expectRows) throw new BenchError(`the CSV export had ${rows} rows, expected at least ${expectRows}`);
    mb = Buffer.byteLength(body) / 1e6;
    if (i > 0) samples.push(ms);
  }
  return { samples, mb };
}

/** The operator figures; `attempt` records a figure or its failure (bench/list.ts). */
export async function operatorFigures(
  client: TrpcClient,
  server: ServerProcess,
  machines: number,
  attempt: (names: string[], fn: () => Promise<Figure[]>) => Promise<void>,
  log: (msg: string) => void,
): Promise<void> {
  const csvName = `CSV export, all ${machines.toLocaleString("en")} machines (GET /api/machines.csv) — median of ${LOADS}`;
  log(`measuring ${csvName}`);
  await attempt([csvName], async () => {
    const r = await csvExport(server.url, client.sessionToken, machines);
    const note = `request to last byte, client-side; ${r.mb.toFixed(2)} MB; 1 warm-up, then ${r.samples.map((x) => Math.round(x)).join(", ")} ms`;
    return [{ name: csvName, unit: "ms", value: round(median(r.samples)), target: { op: "<=", value: 1000 }, note }];
  });
  const evName = `Events page, first event row visible, ${EVENT_COUNT.toLocaleString("en")} events (Chromium, median of ${LOADS})`;
  log(`seeding ${EVENT_COUNT} events and measuring ${evName}`);
  await attempt([evName], async () => {
    const seedS = seedEvents(server.dataDir, EVENT_COUNT);
    const r = await eventsFirstPaint(server.url, client.sessionToken);
    const note = `navigation start → first visible event row (page of 100, newest first); events inserted in ${seedS.toFixed(1)} s; 1 warm-up, then ${r.samples.map((x) => Math.round(x)).join(", ")} ms; Chromium ${r.version}`;
    return [{ name: evName, unit: "ms", value: Math.round(median(r.samples)), target: { op: "<=", value: 1500 }, note }];
  });
}
