import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, describe, expect, it } from "vitest";
import { silentLogger } from "../log";
import { until } from "../testing/until";
import { startCheckpointer } from "./checkpointer";
import { openDatabase } from "./client";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-ckpt-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("the WAL checkpointer", () => {
  it("moves committed pages into the database file from its worker, not from the writer's commits", async () => {
    const file = path.join(dir, "rackhand.db");
    const db = openDatabase(file);
    const ck = startCheckpointer(db.$client, file, silentLogger, 200);
    const before = fs.statSync(file).size;
    db.run(sql`CREATE TABLE blob_test (b BLOB)`);
    const insert = db.$client.prepare("INSERT INTO blob_test (b) VALUES (?)");
    db.$client.transaction(() => {
      for (let i = 0; i < 64; i++) insert.run(Buffer.alloc(32 * 1024, i));
    })();
    // 2 MiB sit in the WAL: far below the main connection's automatic threshold (10,000 pages), so only the
    // worker's checkpoint can grow the database file.
    expect(fs.statSync(file).size).toBe(before);
    await until("the worker to checkpoint", () => fs.statSync(file).size > before + 2 * 1024 * 1024, 5_000);
    await ck.stop();
    await ck.stop(); // idempotent
    db.$client.close();
  });
});
