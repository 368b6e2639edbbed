import { describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors";
import { createHarness } from "../testing/harness";
import { LoginThrottle } from "./throttle";

describe("LoginThrottle", () => {
  it("locks a user name after 5 attempts without success, from any address, then lets it try again", () => {
    let now = 1_000_000;
    const t = new LoginThrottle({ perUser: 5, perSource: 100, windowMs: 15 * 60_000, lockMs: 5 * 60_000 }, () => now);
    for (let i = 0; i < 4; i++) t.begin("10.0.0.1", "admin");
    t.begin("10.0.0.1", "ADMIN");
    expect(() => t.begin("10.0.0.1", "admin")).toThrowError(AppError);
    // Another address gets no fresh budget for that name; another name from the same address is not affected.
    expect(() => t.begin("10.0.0.2", "admin")).toThrowError(/Too many failed sign-ins/);
    expect(() => t.begin("10.0.0.1", "operator")).not.toThrow();
    now += 5 * 60_000 + 1;
    expect(() => t.begin("10.0.0.1", "admin")).not.toThrow();
  });

  it("counts an attempt before its password is checked: the 6th concurrent attempt is refused", () => {
    const t = new LoginThrottle({ perUser: 5 });
    for (let i = 0; i < 5; i++) t.begin("ip", "u"); // five in flight, none answered yet
    expect(() => t.begin("ip", "u")).toThrowError(AppError);
  });

  it("locks one address trying many names", () => {
    const t = new LoginThrottle({ perUser: 5, perSource: 20 });
    for (let i = 0; i < 20; i++) t.begin("10.9.9.9", `user${i}`);
    expect(() => t.begin("10.9.9.9", "user99")).toThrowError(/Too many failed sign-ins/);
    expect(() => t.begin("10.9.9.8", "user99")).not.toThrow();
  });

  it("forgets failures older than the window and on success", () => {
    let now = 0;
    const t = new LoginThrottle({ perUser: 3, perSource: 100, windowMs: 60_000, lockMs: 60_000 }, () => now);
    t.begin("ip", "u");
    t.begin("ip", "u");
    now = 61_000;
    t.begin("ip", "u");
    expect(() => t.begin("ip", "u")).not.toThrow();
    t.succeeded("ip", "u");
    t.begin("ip", "u");
    t.begin("ip", "u");
    expect(() => t.begin("ip", "u")).not.toThrow();
  });
});

describe("auth.login throttling through the router", () => {
  it("answers TOO_MANY_REQUESTS after repeated wrong passwords, even with the right one and from another address", async () => {
    const h = createHarness();
    try {
      await h.addUser("olga", "operator", "olga-password-1");
      const anon = h.caller(null, undefined, "192.0.2.7");
      for (let i = 0; i < 5; i++) await expect(anon.auth.login({ name: "olga", password: "wrong" })).rejects.toMatchObject({ code: "UNAUTHORIZED" });
      await expect(anon.auth.login({ name: "olga", password: "olga-password-1" })).rejects.toMatchObject({
        code: "TOO_MANY_REQUESTS",
        message: expect.stringMatching(/Too many failed sign-ins/),
      });
      // Another address is refused too: the lock is on the name.
      await expect(h.caller(null, undefined, "192.0.2.8").auth.login({ name: "olga", password: "olga-password-1" })).rejects.toMatchObject({
        code: "TOO_MANY_REQUESTS",
      });
    } finally {
      h.close();
    }
  });
});
