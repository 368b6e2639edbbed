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

  it("is refused by the server (its domain runs on SQLite only) before anything is opened or written", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rh-pgrefuse-"));
    try {
      const config = loadConfig(
        { RACKHAND_DATA_DIR: dir, RACKHAND_DATABASE_URL: "postgres://u:pw@127.0.0.1:1/rackhand", PORT: "0", RACKHAND_HOST: "127.0.0.1", NODE_ENV: "test" },
        { ui: false, powerSync: false },
      );
      await expect(startApp(config, silentLogger)).rejects.toThrow(/RACKHAND_DATABASE_URL is set, but the server cannot run on PostgreSQL yet/);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
