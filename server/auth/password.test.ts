import { describe, expect, it } from "vitest";
import { generatePassword, hashPassword, verifyPassword } from "./password";

describe("scrypt password hashing", () => {
  it("verifies the right password and rejects a wrong one", async () => {
    const stored = await hashPassword("correct horse battery");
    expect(await verifyPassword("correct horse battery", stored)).toBe(true);
    expect(await verifyPassword("correct horse batterY", stored)).toBe(false);
    expect(await verifyPassword("", stored)).toBe(false);
  });

  it("treats a corrupted stored hash as a failed check, not a crash", async () => {
    expect(await verifyPassword("x", "scrypt$abc$8$1$c2FsdA==$aGFzaA==")).toBe(false);
    expect(await verifyPassword("x", "scrypt$16384$8$1$c2FsdA==$")).toBe(false);
    expect(await verifyPassword("x", "md5$whatever")).toBe(false);
  });

  it("stores algorithm and parameters with a random salt, never the password", async () => {
    const a = await hashPassword("same password");
    const b = await hashPassword("same password");
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(a).not.toContain("same password");
    expect(a).not.toBe(b);
    expect(a.split("$")[4]).not.toBe(b.split("$")[4]);
    expect(Buffer.from(a.split("$")[5]!, "base64")).toHaveLength(64);
    expect(await verifyPassword("same password", b)).toBe(true);
  });

  it("verifies hashes made with other parameters (they are read from the hash)", async () => {
    // A hash of "legacy-pw" with N=1024, r=8, p=1, made the same way as hashPassword does.
    const crypto = await import("node:crypto");
    const salt = crypto.randomBytes(16);
    const hash = crypto.scryptSync("legacy-pw", salt, 32, { N: 1024, r: 8, p: 1 });
    const stored = ["scrypt", 1024, 8, 1, salt.toString("base64"), hash.toString("base64")].join("$");
    expect(await verifyPassword("legacy-pw", stored)).toBe(true);
    expect(await verifyPassword("legacy-pX", stored)).toBe(false);
  });

  it.each(["", "plain", "bcrypt$2b$10$abc", "scrypt$32768$8$1$$"])("rejects a malformed stored hash %j", async (stored) => {
    expect(await verifyPassword("anything", stored)).toBe(false);
  });

  it("generates typeable, unambiguous, distinct passwords", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const p = generatePassword();
      expect(p).toMatch(/^[abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789]{20}$/);
      seen.add(p);
    }
    expect(seen.size).toBe(50);
  });
});
