import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const IV_POOL = 256;

/**
 * Encrypts secrets at rest (BMC passwords) with AES-256-GCM. The key comes from RACKHAND_SECRET_KEY
 * (64 hex chars or 44 base64 chars) or from `<dataDir>/secret.key`, created 0600 on first start.
 * Ciphertext format: `v1:<iv b64>:<tag b64>:<ciphertext b64>`.
 */
export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  static fromKey(key: Buffer): SecretBox {
    if (key.length !== KEY_BYTES) throw new Error(`secret key must be ${KEY_BYTES} bytes, got ${key.length}`);
    return new SecretBox(key);
  }

  /** Load or create the key. Throws with a clear message when RACKHAND_SECRET_KEY is malformed. */
  static open(dataDir: string, envKey?: string): SecretBox {
    if (envKey) return SecretBox.fromKey(parseKey(envKey, "RACKHAND_SECRET_KEY"));
    const file = path.join(dataDir, "secret.key");
    fs.mkdirSync(dataDir, { recursive: true });
    try {
      // "wx" fails if the file exists, so two processes starting at once never overwrite each other's key.
      const fd = fs.openSync(file, "wx", 0o600);
      fs.writeSync(fd, crypto.randomBytes(KEY_BYTES).toString("hex") + "\n");
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const mode = fs.statSync(file).mode & 0o777;
    if (mode & 0o077) fs.chmodSync(file, 0o600);
    return SecretBox.fromKey(parseKey(fs.readFileSync(file, "utf8").trim(), file));
  }

  /** A 32-byte key for another purpose (e.g. netboot install tokens), derived so the master key never leaves. */
  deriveKey(label: string): Buffer {
    return crypto.createHmac("sha256", this.key).update(`rackhand derive: ${label}`).digest();
  }

  /** Random IVs drawn IV_POOL at a time: one randomBytes() call per encryption was ~40% of encrypt() (bulk enrollment seals a password per machine). Each IV is used once. */
  private ivPool = Buffer.alloc(0);
  private ivOffset = 0;

  private nextIv(): Buffer {
    if (this.ivOffset + IV_BYTES > this.ivPool.length) {
      this.ivPool = crypto.randomBytes(IV_BYTES * IV_POOL);
      this.ivOffset = 0;
    }
    const iv = this.ivPool.subarray(this.ivOffset, this.ivOffset + IV_BYTES);
    this.ivOffset += IV_BYTES;
    return iv;
  }

  encrypt(plain: string): string {
    const iv = this.nextIv();
    const cipher = crypto.createCipheriv("aes-256-gcm", this.key, iv);
    const ct = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    return ["v1", iv.toString("base64"), cipher.getAuthTag().toString("base64"), ct.toString("base64")].join(":");
  }

  /** Throws when the ciphertext was tampered with or made with another key. */
  decrypt(sealed: string): string {
    const [v, iv, tag, ct] = sealed.split(":");
    if (v !== "v1" || !iv || !tag || ct === undefined) throw new Error("unrecognised secret format");
    // authTagLength pins the full 16-byte tag: otherwise Node accepts a truncated (4..15-byte) tag.
    const decipher = crypto.createDecipheriv("aes-256-gcm", this.key, Buffer.from(iv, "base64"), { authTagLength: TAG_BYTES });
    decipher.setAuthTag(Buffer.from(tag, "base64"));
    return Buffer.concat([decipher.update(Buffer.from(ct, "base64")), decipher.final()]).toString("utf8");
  }
}

function parseKey(text: string, source: string): Buffer {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  const b = Buffer.from(text, "base64");
  if (b.length === KEY_BYTES && /^[A-Za-z0-9+/]+={0,2}$/.test(text)) return b;
  throw new Error(`${source}: expected a 32-byte key as 64 hex characters or base64`);
}
