import { describe, expect, it } from "vitest";
import { checkDatabaseUrl } from "./client";

describe("checkDatabaseUrl (RACKHAND_DATABASE_URL)", () => {
  it("accepts postgres:// and postgresql:// URLs with a database, over TCP or a unix socket directory", () => {
    for (const u of [
      "postgres://rackhand:s3cret@db.example:5432/rackhand",
      "postgresql://rackhand@10.0.0.5/rackhand?sslmode=require",
      "postgres://postgres@localhost/rackhand?host=%2Ftmp%2Frh-pg%2Fsock",
      "postgres://u:p%40ss%3Bword@db/r%C3%A9",
    ]) {
      expect(checkDatabaseUrl(u)).toBe(u);
    }
  });

  it.each([
    ["newline", "postgres://u@db/rackhand\n"],
    ["CR", "postgres://u@db/rack\rhand"],
    ["NUL", "postgres://u@db/rack\0hand"],
    ["another protocol", "mysql://u@db/rackhand"],
    ["a file path", "/var/lib/rackhand/rackhand.db"],
    ["a shell substitution", "$(reboot)"],
    ["no database", "postgres://u@db"],
    ["no database (slash)", "postgres://u@db/"],
    ["no host", "postgres:///rackhand"],
    ["over-long", `postgres://u@db/${"x".repeat(5000)}`],
  ])("refuses %s with a clear message", (_what, url) => {
    expect(() => checkDatabaseUrl(url)).toThrow(/RACKHAND_DATABASE_URL/);
  });

  it("never repeats the password in its message", () => {
    for (const u of ["mysql://u:hunter2@db/x", "postgres://u:hunter2@db", "postgres://u:hunter2@db/x\n"]) {
      expect(() => checkDatabaseUrl(u)).toThrow();
      try {
        checkDatabaseUrl(u);
      } catch (e) {
        expect((e as Error).message).not.toContain("hunter2");
      }
    }
  });
});
