import { describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { createHarness } from "../testing/harness";
import { LoginThrottle } from "./throttle";

describe("LoginThrottle", () => {
  it("locks a (client, user) pair after 5 failures in the window, then lets it try again", () => {
    let now = 1_000_000;
    const t = new LoginThrottle(5, 15 * 60_000, 5 * 60_000, () => now);
    for (let i = 0; i < 4; i++) t.failed("10.0.0.1", "admin");
    expect(() => t.check("10.0.0.1", "admin")).not.toThrow();
    t.failed("10.0.0.1", "ADMIN");
    expect(() => t.check("10.0.0.1", "admin")).toThrowError(AppError);
    // Another client, or another user from the same client, is not affected.
    expect(() => t.check("10.0.0.2", "admin")).not.toThrow();
    expect(() => t.check("10.0.0.1", "operator")).not.toThrow();
    now += 5 * 60_000 + 1;
    expect(() => t.check("10.0.0.1", "admin")).not.toThrow();
  });

  it("forgets failures older than the window and on success", () => {
    let now = 0;
    const t = new LoginThrottle(3, 60_000, 60_000, () => now);
    t.failed("ip", "u");
    t.failed("ip", "u");
    now = 61_000;
    t.failed("ip", "u");
    expect(() => t.check("ip", "u")).not.toThrow();
    t.failed("ip", "u");
    t.succeeded("ip", "u");
    t.failed("ip", "u");
    expect(() => t.check("ip", "u")).not.toThrow();
  });
});

describe("auth.login throttling through the router", () => {
  it("answers TOO_MANY_REQUESTS after repeated wrong passwords, even with the right one", async () => {
    const h = createHarness();
    try {
      await h.addUser("olga", "operator", "olga-password-1");
      const anon = h.caller(null, undefined, "192.0.2.7");
      for (let i = 0; i < 5; i++) await expect(anon.auth.login({ name: "olga", password: "wrong" })).rejects.toMatchObject({ code: "UNAUTHORIZED" });
      await expect(anon.auth.login({ name: "olga", password: "olga-password-1" })).rejects.toMatchObject({
        code: "TOO_MANY_REQUESTS",
        message: expect.stringMatching(/Too many failed sign-ins/),
      });
      // Another address still signs in.
      await expect(h.caller(null, undefined, "192.0.2.8").auth.login({ name: "olga", password: "olga-password-1" })).resolves.toMatchObject({ name: "olga" });
    } finally {
      h.close();
    }
  });
});
