import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { findPgBin, startPgCluster } from "./pg-cluster";

describe("the test PostgreSQL fails loudly without its binaries", () => {
  const saved = process.env.RACKHAND_PG_BIN;
  afterEach(() => {
    if (saved === undefined) delete process.env.RACKHAND_PG_BIN;
    else process.env.RACKHAND_PG_BIN = saved;
  });

  it("finds Debian's server binaries on this machine (the test profile installs postgresql)", () => {
    delete process.env.RACKHAND_PG_BIN;
    expect(fs.existsSync(path.join(findPgBin(), "initdb"))).toBe(true);
  });

  it("a directory without initdb/pg_ctl/postgres is an error naming the package, never a skip", async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "rh-nopg-"));
    try {
      process.env.RACKHAND_PG_BIN = empty;
      expect(() => findPgBin()).toThrow(/install Debian's postgresql package/);
      await expect(startPgCluster()).rejects.toThrow(/not found/);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });
});
