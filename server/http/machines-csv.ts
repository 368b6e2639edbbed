/**
 * GET /api/machines.csv?<the machine page's query>: the machine list of the current filter and sort as CSV, for any
 * signed-in user (session cookie) or API token (Authorization: Bearer). Streamed in chunks with back-pressure.
 * Query keys are the machine page's: state, rack, power, maintenance, q, mem, disks, cpu, sort, dir.
 * Reads through the Store (`store`; the one over `db` by default, as server/app.ts calls it on SQLite).
 */
import type http from "node:http";
import { machineListSchema } from "../../lib/schemas";
import { parseCookies, SESSION_COOKIE, sessionUser } from "../auth/sessions";
import { bearerOf, tokenUser } from "../auth/tokens";
import type { Db } from "../db/client";
import { storeOf, type Store } from "../db/store";
import { machinesCsv } from "../machines/export-csv";

export const MACHINES_CSV_PATH = "/api/machines.csv";

/** The machine page's URL query as a list input (validated by the same schema as machines.list). */
export function listInputFromQuery(sp: URLSearchParams) {
  const num = (k: string) => (sp.get(k) !== null && sp.get(k) !== "" ? Number(sp.get(k)) : undefined);
  const str = (k: string) => sp.get(k) ?? undefined;
  return machineListSchema.omit({ page: true, pageSize: true }).safeParse({
    states: sp.get("state") ? sp.get("state")!.split(",") : undefined,
    rackId: num("rack"),
    power: str("power"),
    maintenance: sp.get("maintenance") === null ? undefined : sp.get("maintenance") === "1" || sp.get("maintenance") === "true",
    q: str("q"),
    minMemoryGiB: num("mem"),
    minDisks: num("disks"),
    cpuModel: str("cpu"),
    sort: str("sort"),
    dir: str("dir"),
  });
}

export async function serveMachinesCsv(req: http.IncomingMessage, res: http.ServerResponse, url: URL, db: Db, store: Store = storeOf({ db })): Promise<void> {
  const user = req.headers.authorization !== undefined ? ((await tokenUser(store, bearerOf(req.headers.authorization)))?.user ?? null) : await sessionUser(store, parseCookies(req.headers.cookie)[SESSION_COOKIE]);
  if (!user) {
    res.writeHead(401, { "content-type": "text/plain" });
    res.end("Sign in first");
    return;
  }
  const input = listInputFromQuery(url.searchParams);
  if (!input.success) {
    res.writeHead(400, { "content-type": "text/plain; charset=utf-8" });
    res.end(`Bad filter: ${input.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    return;
  }
  const stamp = new Date().toISOString().slice(0, 19).replaceAll(":", "-");
  res.writeHead(200, {
    "content-type": "text/csv; charset=utf-8",
    "content-disposition": `attachment; filename="machines-${stamp}.csv"`,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  });
  for await (const chunk of machinesCsv(store, input.data)) {
    if (res.destroyed) return;
    if (!res.write(chunk)) await new Promise<void>((resolve) => (res.once("drain", resolve), res.once("close", resolve)));
  }
  res.end();
}
