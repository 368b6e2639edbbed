import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { startApp } from "../../app";
import { loadConfig } from "../../config";
import { silentLogger } from "../../log";

describe("RACKHAND_DATABASE_URL and the server", () => {
  it("is read into the config; unset or empty keeps SQLite", () => {
    expect(loadConfig({ RACKHAND_DATABASE_URL: "postgres://u@db/rackhand", NODE_ENV: "test" }).databaseUrl).toBe("postgres://u@db/rackhand");
    expect(loadConfig({ NODE_ENV: "test" }).databaseUrl).toBeUndefined();
    expect(loadConfig({ RACKHAND_DATABASE_URL: "", NODE_ENV: "test" }).databaseUrl).toBeUndefined();
  });

  it("that does not answer fails the start with a clear error, without the password, before anything is written", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-pgrefuse-"));
    try {
      const config = loadConfig(
        { RACKHAND_DATA_DIR: dir, RACKHAND_DATABASE_URL: "postgres://u:pw@127.0.0.1:1/rackhand", PORT: "0", RACKHAND_HOST: "127.0.0.1", NODE_ENV: "test" },
        { ui: false, powerSync: false },
      );
      const err = await startApp(config, silentLogger).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(/^PostgreSQL at 127\.0\.0\.1:1\/rackhand \(RACKHAND_DATABASE_URL\): .*ECONNREFUSED/);
      expect(err?.message).not.toContain("pw");
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
