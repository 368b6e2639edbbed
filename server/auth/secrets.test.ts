import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SecretBox } from "./secrets";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-secrets-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const keyFile = () => path.join(dir, "secret.key");
const mode = (file: string) => fs.statSync(file).mode & 0o777;

describe("SecretBox key file", () => {
  it("is created on first open with mode 0600, holding a 32-byte key", () => {
    SecretBox.open(dir);
    expect(mode(keyFile())).toBe(0o600);
    expect(fs.readFileSync(keyFile(), "utf8").trim()).toMatch(/^[0-9a-f]{64}$/);
  });

  it("is 0600 even under a permissive umask", () => {
    const old = process.umask(0);
    try {
      SecretBox.open(dir);
    } finally {
      process.umask(old);
    }
    expect(mode(keyFile())).toBe(0o600);
  });

  it("creates the data directory when missing", () => {
    const nested = path.join(dir, "a", "b");
    SecretBox.open(nested);
    expect(fs.existsSync(path.join(nested, "secret.key"))).toBe(true);
  });

  it("is reused on reopen: what one box sealed, the next one opens", () => {
    const sealed = SecretBox.open(dir).encrypt("bmc-password");
    const key = fs.readFileSync(keyFile(), "utf8");
    const again = SecretBox.open(dir);
    expect(fs.readFileSync(keyFile(), "utf8")).toBe(key);
    expect(again.decrypt(sealed)).toBe("bmc-password");
  });

  it("tightens a key file left group/world readable", () => {
    fs.writeFileSync(keyFile(), crypto.randomBytes(32).toString("hex") + "\n", { mode: 0o644 });
    fs.chmodSync(keyFile(), 0o644);
    SecretBox.open(dir);
    expect(mode(keyFile())).toBe(0o600);
  });

  it("refuses a malformed key file", () => {
    fs.writeFileSync(keyFile(), "too-short\n", { mode: 0o600 });
    expect(() => SecretBox.open(dir)).toThrow(/secret\.key.*32-byte key/);
  });

  it("a different data directory means a different key", () => {
    const sealed = SecretBox.open(dir).encrypt("x");
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-secrets-"));
    try {
      expect(() => SecretBox.open(other).decrypt(sealed)).toThrow();
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});

describe("SecretBox env key", () => {
  const raw = crypto.randomBytes(32);

  it("accepts 64 hex characters and writes no key file", () => {
    const box = SecretBox.open(dir, raw.toString("hex"));
    expect(fs.existsSync(keyFile())).toBe(false);
    expect(box.decrypt(box.encrypt("s3cret"))).toBe("s3cret");
  });

  it("accepts base64, and hex and base64 of the same bytes are the same key", () => {
    const sealed = SecretBox.open(dir, raw.toString("hex")).encrypt("same key");
    expect(SecretBox.open(dir, raw.toString("base64")).decrypt(sealed)).toBe("same key");
    expect(SecretBox.open(dir, raw.toString("hex").toUpperCase()).decrypt(sealed)).toBe("same key");
  });

  it.each([
    ["too short hex", crypto.randomBytes(16).toString("hex")],
    ["too long hex", crypto.randomBytes(33).toString("hex")],
    ["base64 of 16 bytes", crypto.randomBytes(16).toString("base64")],
    ["base64 of 48 bytes", crypto.randomBytes(48).toString("base64")],
    ["not hex nor base64", "z".repeat(64) + "!"],
    ["a passphrase", "correct horse battery staple"],
  ])("rejects %s with a message naming RACKHAND_SECRET_KEY", (_what, key) => {
    expect(() => SecretBox.open(dir, key)).toThrow(/RACKHAND_SECRET_KEY/);
  });
});

describe("SecretBox encryption", () => {
  it("round-trips, including unicode, and never contains the plaintext", () => {
    const box = SecretBox.open(dir);
    for (const plain of ["", "p", "pässwörd ✓ 密码", "x".repeat(1000)]) {
      const sealed = box.encrypt(plain);
      expect(sealed).toMatch(/^v1:/);
      // (Single characters can occur in base64 by chance; longer plaintexts must not.)
      if (plain.length > 4) expect(sealed).not.toContain(plain);
      expect(box.decrypt(sealed)).toBe(plain);
    }
  });

  it("uses a fresh IV each time: the same plaintext seals differently", () => {
    const box = SecretBox.open(dir);
    const a = box.encrypt("same");
    const b = box.encrypt("same");
    expect(a).not.toBe(b);
    expect(a.split(":")[1]).not.toBe(b.split(":")[1]);
  });

  const flip = (b64: string) => {
    const buf = Buffer.from(b64, "base64");
    buf[0] = buf[0]! ^ 0x01;
    return buf.toString("base64");
  };

  it.each([
    ["ciphertext", 3],
    ["auth tag", 2],
    ["IV", 1],
  ])("throws when the %s was tampered with", (_part, index) => {
    const box = SecretBox.open(dir);
    const parts = box.encrypt("do not touch").split(":");
    parts[index] = flip(parts[index]!);
    expect(() => box.decrypt(parts.join(":"))).toThrow();
  });

  // GCM in Node accepts tags of 4..16 bytes unless told the length: a truncated (still matching) tag would
  // reduce forgery to guessing 32 bits.
  it.each([4, 8, 12, 15])("throws on a tag truncated to %i bytes", (bytes) => {
    const box = SecretBox.open(dir);
    const parts = box.encrypt("abc").split(":");
    parts[2] = Buffer.from(parts[2]!, "base64").subarray(0, bytes).toString("base64");
    expect(() => box.decrypt(parts.join(":"))).toThrow();
  });

  it("throws on an unknown format", () => {
    const box = SecretBox.open(dir);
    expect(() => box.decrypt("plain text")).toThrow(/format/);
    expect(() => box.decrypt("v2:a:b:c")).toThrow(/format/);
  });

  it("throws when opened with another key", () => {
    const sealed = SecretBox.fromKey(crypto.randomBytes(32)).encrypt("mine");
    expect(() => SecretBox.fromKey(crypto.randomBytes(32)).decrypt(sealed)).toThrow();
  });

  it("fromKey refuses keys that are not 32 bytes", () => {
    expect(() => SecretBox.fromKey(crypto.randomBytes(16))).toThrow(/32 bytes/);
  });
});

describe("SecretBox IVs (drawn from a pool)", () => {
  it("every sealing has its own IV, across several pool refills, and every one opens", () => {
    const box = SecretBox.fromKey(crypto.randomBytes(32));
    const n = 256 * 3 + 17;
    const sealed = Array.from({ length: n }, (_, i) => box.encrypt(`pw-${i}`));
    const ivs = sealed.map((s) => s.split(":")[1]!);
    expect(new Set(ivs).size).toBe(n);
    for (const iv of ivs) expect(Buffer.from(iv, "base64")).toHaveLength(12);
    // Not a counter or a constant: the IVs differ in many bytes.
    expect(ivs.filter((iv) => Buffer.from(iv, "base64").equals(Buffer.alloc(12))).length).toBe(0);
    sealed.forEach((s, i) => expect(box.decrypt(s)).toBe(`pw-${i}`));
  });

  it("the same password sealed twice gives two different texts, and hostile text round-trips", () => {
    const box = SecretBox.fromKey(crypto.randomBytes(32));
    expect(box.encrypt("same")).not.toBe(box.encrypt("same"));
    for (const v of ["", "line\nbreak\r\0", "quote'\"\\", "$(reboot);&", "ünïcödé ✓", "x".repeat(10_000)]) expect(box.decrypt(box.encrypt(v))).toBe(v);
  });
});
