/**
 * RMCP+ (IPMI v2.0 "lanplus") packet codec for Rackhand's native status probe: pure functions, no sockets.
 * Only what a status read needs: the session-setup payloads (Open Session, RAKP 1–4), authenticated and
 * encrypted IPMI messages, and the Close Session request. Cipher suites 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96,
 * AES-CBC-128) and 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128). Everything that does not match what
 * was asked for, byte for byte, is an `RmcpError`: the caller then falls back to ipmitool.
 *
 * Layout (IPMI v2.0 §13.6, §13.8): RMCP header (4) | auth type 06h | payload type | session id (LE32) |
 * session seq (LE32) | payload length (LE16) | payload | [integrity pad FFh… | pad length | next header 07h |
 * AuthCode] — the trailer only on authenticated packets.
 */
import crypto from "node:crypto";

export class RmcpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RmcpError";
  }
}

export const PAYLOAD = {
  ipmi: 0x00,
  openSessionRequest: 0x10,
  openSessionResponse: 0x11,
  rakp1: 0x12,
  rakp2: 0x13,
  rakp3: 0x14,
  rakp4: 0x15,
} as const;

export interface CipherSuite {
  id: number;
  hash: "sha1" | "sha256";
  /** Authentication algorithm number in the Open Session payload (RAKP-HMAC-SHA1 = 1, RAKP-HMAC-SHA256 = 3). */
  authAlg: number;
  /** Integrity algorithm number (HMAC-SHA1-96 = 1, HMAC-SHA256-128 = 4). */
  integrityAlg: number;
  /** Bytes of the RAKP 2/3 key-exchange code (the full HMAC). */
  kexLen: number;
  /** Bytes of the RAKP 4 check value and of each packet's AuthCode (truncated HMAC). */
  icvLen: number;
}

export const CIPHER_SUITES: Readonly<Record<number, CipherSuite>> = {
  3: { id: 3, hash: "sha1", authAlg: 0x01, integrityAlg: 0x01, kexLen: 20, icvLen: 12 },
  17: { id: 17, hash: "sha256", authAlg: 0x03, integrityAlg: 0x04, kexLen: 32, icvLen: 16 },
};

/** AES-CBC-128, the only confidentiality algorithm used here. */
const CONF_AES_CBC_128 = 0x01;

export const PRIVILEGE_LEVEL = { CALLBACK: 1, USER: 2, OPERATOR: 3, ADMINISTRATOR: 4 } as const;
/** RAKP 1 role bit: look the user up by name only (what ipmitool sends by default). */
const NAME_ONLY_LOOKUP = 0x10;

const RMCP_HEADER = Buffer.from([0x06, 0x00, 0xff, 0x07]);
const AUTH_TYPE_RMCPPLUS = 0x06;
const FLAG_ENCRYPTED = 0x80;
const FLAG_AUTHENTICATED = 0x40;

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

function hmac(hash: CipherSuite["hash"], key: Buffer, ...parts: Buffer[]): Buffer {
  const h = crypto.createHmac(hash, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** A packet outside a session (session id and sequence 0): Open Session Request and RAKP 1/3. */
export function encodeSessionless(payloadType: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(12);
  h[0] = AUTH_TYPE_RMCPPLUS;
  h[1] = payloadType;
  h.writeUInt16LE(payload.length, 10);
  return Buffer.concat([RMCP_HEADER, h, payload]);
}

export interface DecodedPacket {
  payloadType: number;
  authenticated: boolean;
  encrypted: boolean;
  sessionId: number;
  sequence: number;
  /** The payload as sent (still encrypted for encrypted packets). */
  payload: Buffer;
  /** From auth type through next header: what the AuthCode covers. */
  signed: Buffer;
  authCode: Buffer;
}

/** Split a datagram into its fields. `icvLen` is only needed for authenticated packets. */
export function decodePacket(buf: Buffer, icvLen = 0): DecodedPacket {
  if (buf.length < 16) throw new RmcpError(`short packet (${buf.length} bytes)`);
  if (buf[0] !== 0x06 || buf[1] !== 0x00 || buf[3] !== 0x07) throw new RmcpError("not an RMCP/IPMI packet");
  const s = buf.subarray(4);
  if (s[0] !== AUTH_TYPE_RMCPPLUS) throw new RmcpError(`not an RMCP+ packet (auth type ${s[0]})`);
  const flags = s[1]!;
  const payloadType = flags & 0x3f;
  const authenticated = (flags & FLAG_AUTHENTICATED) !== 0;
  const encrypted = (flags & FLAG_ENCRYPTED) !== 0;
  if (payloadType === 0x02) throw new RmcpError("OEM payloads are not expected");
  const sessionId = s.readUInt32LE(2);
  const sequence = s.readUInt32LE(6);
  const len = s.readUInt16LE(10);
  if (12 + len > s.length) throw new RmcpError(`payload length ${len} exceeds the packet`);
  const payload = s.subarray(12, 12 + len);
  if (!authenticated) {
    if (12 + len !== s.length) throw new RmcpError("trailing bytes after an unauthenticated payload");
    return { payloadType, authenticated, encrypted, sessionId, sequence, payload, signed: Buffer.alloc(0), authCode: Buffer.alloc(0) };
  }
  // Trailer: pad (0–3 × FFh), pad length, next header (07h), AuthCode.
  const trailerEnd = s.length - icvLen;
  if (icvLen <= 0 || trailerEnd < 12 + len + 2) throw new RmcpError("authenticated packet without a trailer");
  const padLen = s[trailerEnd - 2]!;
  if (s[trailerEnd - 1] !== 0x07) throw new RmcpError("bad next-header byte");
  if (padLen > 3 || 12 + len + padLen + 2 !== trailerEnd) throw new RmcpError("bad integrity pad");
  for (let i = 12 + len; i < 12 + len + padLen; i++) if (s[i] !== 0xff) throw new RmcpError("bad integrity pad byte");
  if (trailerEnd % 4 !== 0) throw new RmcpError("integrity range not a multiple of 4 bytes");
  return { payloadType, authenticated, encrypted, sessionId, sequence, payload, signed: s.subarray(0, trailerEnd), authCode: s.subarray(trailerEnd) };
}

// ---------------------------------------------------------------- session setup

export function openSessionRequest(o: { tag: number; consoleSessionId: number; privilege: number; suite: CipherSuite }): Buffer {
  const b = Buffer.alloc(32);
  b[0] = o.tag;
  b[1] = o.privilege;
  b.writeUInt32LE(o.consoleSessionId, 4);
  // Three 8-byte algorithm records: type, reserved ×2, length 8, algorithm, reserved ×3.
  const rec = (at: number, type: number, alg: number) => {
    b[at] = type;
    b[at + 3] = 0x08;
    b[at + 4] = alg;
  };
  rec(8, 0x00, o.suite.authAlg);
  rec(16, 0x01, o.suite.integrityAlg);
  rec(24, 0x02, CONF_AES_CBC_128);
  return b;
}

/** RMCP+ status codes (IPMI v2.0 table 13-15), for messages. */
const STATUS: Record<number, string> = {
  0x01: "insufficient resources to create a session",
  0x02: "invalid session ID",
  0x03: "invalid payload type",
  0x04: "invalid authentication algorithm",
  0x05: "invalid integrity algorithm",
  0x06: "no matching authentication payload",
  0x07: "no matching integrity payload",
  0x08: "inactive session ID",
  0x09: "invalid role",
  0x0a: "unauthorized role or privilege level requested",
  0x0b: "insufficient resources to create a session at the requested role",
  0x0c: "invalid name length",
  0x0d: "unauthorized name",
  0x0e: "unauthorized GUID",
  0x0f: "invalid integrity check value",
  0x10: "invalid confidentiality algorithm",
  0x11: "no cipher suite match with proposed security algorithms",
  0x12: "illegal or unrecognized parameter",
};
export const statusText = (code: number) => STATUS[code] ?? `status 0x${code.toString(16).padStart(2, "0")}`;

/** Statuses that mean "these credentials are wrong", as opposed to "this BMC or session is in trouble". */
export const AUTH_STATUSES = new Set([0x0d, 0x0f, 0x0a, 0x09]);

export class RmcpStatusError extends RmcpError {
  constructor(
    readonly step: string,
    readonly status: number,
  ) {
    super(`${step}: ${statusText(status)}`);
  }
}

export function parseOpenSessionResponse(p: Buffer, o: { tag: number; consoleSessionId: number; suite: CipherSuite }): { bmcSessionId: number } {
  if (p.length < 2 || p[0] !== o.tag) throw new RmcpError("open session response: wrong message tag");
  if (p[1] !== 0) throw new RmcpStatusError("open session", p[1]!);
  if (p.length !== 36) throw new RmcpError(`open session response: length ${p.length}`);
  if (p.readUInt32LE(4) !== o.consoleSessionId) throw new RmcpError("open session response: not our session");
  const bmcSessionId = p.readUInt32LE(8);
  if (bmcSessionId === 0) throw new RmcpError("open session response: session id 0");
  if (p[12] !== 0x00 || p[16] !== o.suite.authAlg || p[20] !== 0x01 || p[24] !== o.suite.integrityAlg || p[28] !== 0x02 || p[32] !== CONF_AES_CBC_128) {
    throw new RmcpError("open session response: the BMC chose other algorithms");
  }
  return { bmcSessionId };
}

export interface Rakp1Input {
  tag: number;
  bmcSessionId: number;
  consoleRandom: Buffer;
  privilege: number;
  username: string;
}

/** The role byte as sent in RAKP 1 and used in the HMACs. */
export const rakpRole = (privilege: number) => (privilege | NAME_ONLY_LOOKUP) & 0xff;

export function rakp1(o: Rakp1Input): Buffer {
  const name = Buffer.from(o.username, "utf8");
  if (name.length > 16) throw new RmcpError("user name longer than 16 bytes");
  const b = Buffer.alloc(28 + name.length);
  b[0] = o.tag;
  b.writeUInt32LE(o.bmcSessionId, 4);
  o.consoleRandom.copy(b, 8);
  b[24] = rakpRole(o.privilege);
  b[27] = name.length;
  name.copy(b, 28);
  return b;
}

export interface SessionSecrets {
  suite: CipherSuite;
  consoleSessionId: number;
  bmcSessionId: number;
  consoleRandom: Buffer;
  bmcRandom: Buffer;
  bmcGuid: Buffer;
  role: number;
  username: Buffer;
  /** Kuid: the user's password (HMAC zero-pads keys, so no explicit padding to 20 bytes is needed). */
  password: Buffer;
}

/** Check RAKP 2 (the BMC proves it knows the password) and return the BMC's random number and GUID. */
export function parseRakp2(p: Buffer, s: Omit<SessionSecrets, "bmcRandom" | "bmcGuid">, tag: number): { bmcRandom: Buffer; bmcGuid: Buffer } {
  if (p.length < 2 || p[0] !== tag) throw new RmcpError("RAKP 2: wrong message tag");
  if (p[1] !== 0) throw new RmcpStatusError("RAKP 2", p[1]!);
  if (p.length !== 40 + s.suite.kexLen) throw new RmcpError(`RAKP 2: length ${p.length}`);
  if (p.readUInt32LE(4) !== s.consoleSessionId) throw new RmcpError("RAKP 2: not our session");
  const bmcRandom = Buffer.from(p.subarray(8, 24));
  const bmcGuid = Buffer.from(p.subarray(24, 40));
  const expected = hmac(s.suite.hash, s.password, u32(s.consoleSessionId), u32(s.bmcSessionId), s.consoleRandom, bmcRandom, bmcGuid, Buffer.from([s.role, s.username.length]), s.username);
  if (!crypto.timingSafeEqual(expected, p.subarray(40))) throw new RmcpStatusError("RAKP 2", 0x0f);
  return { bmcRandom, bmcGuid };
}

export function rakp3(s: SessionSecrets, tag: number): Buffer {
  const code = hmac(s.suite.hash, s.password, s.bmcRandom, u32(s.consoleSessionId), Buffer.from([s.role, s.username.length]), s.username);
  const b = Buffer.alloc(8);
  b[0] = tag;
  b.writeUInt32LE(s.bmcSessionId, 4);
  return Buffer.concat([b, code]);
}

export interface SessionKeys {
  suite: CipherSuite;
  sik: Buffer;
  /** Integrity key. */
  k1: Buffer;
  /** AES-128 key (first 16 bytes of K2). */
  aesKey: Buffer;
}

/** SIK = HMAC(Kg, Rm | Rc | role | ulen | uname); without a BMC key (Kg) the user key stands in. K1/K2 from SIK. */
export function deriveKeys(s: SessionSecrets, kg?: Buffer): SessionKeys {
  const sik = hmac(s.suite.hash, kg && kg.length ? kg : s.password, s.consoleRandom, s.bmcRandom, Buffer.from([s.role, s.username.length]), s.username);
  const k1 = hmac(s.suite.hash, sik, Buffer.alloc(20, 0x01));
  const k2 = hmac(s.suite.hash, sik, Buffer.alloc(20, 0x02));
  return { suite: s.suite, sik, k1, aesKey: k2.subarray(0, 16) };
}

/** Check RAKP 4 (the BMC derived the same session key). */
export function parseRakp4(p: Buffer, s: SessionSecrets, keys: SessionKeys, tag: number): void {
  if (p.length < 2 || p[0] !== tag) throw new RmcpError("RAKP 4: wrong message tag");
  if (p[1] !== 0) throw new RmcpStatusError("RAKP 4", p[1]!);
  if (p.length !== 8 + s.suite.icvLen) throw new RmcpError(`RAKP 4: length ${p.length}`);
  if (p.readUInt32LE(4) !== s.consoleSessionId) throw new RmcpError("RAKP 4: not our session");
  const expected = hmac(s.suite.hash, keys.sik, s.consoleRandom, u32(s.bmcSessionId), s.bmcGuid).subarray(0, s.suite.icvLen);
  if (!crypto.timingSafeEqual(expected, p.subarray(8))) throw new RmcpError("RAKP 4: integrity check value does not match");
}

// ---------------------------------------------------------------- in-session IPMI messages

const checksum = (b: Buffer, from: number, to: number) => {
  let sum = 0;
  for (let i = from; i < to; i++) sum = (sum + b[i]!) & 0xff;
  return (0x100 - sum) & 0xff;
};

const BMC_ADDR = 0x20;
const CONSOLE_SWID = 0x81;

export function ipmiRequest(o: { netFn: number; cmd: number; rqSeq: number; data?: Buffer }): Buffer {
  const data = o.data ?? Buffer.alloc(0);
  const b = Buffer.alloc(7 + data.length);
  b[0] = BMC_ADDR;
  b[1] = (o.netFn << 2) & 0xff;
  b[2] = checksum(b, 0, 2);
  b[3] = CONSOLE_SWID;
  b[4] = (o.rqSeq << 2) & 0xff;
  b[5] = o.cmd;
  data.copy(b, 6);
  b[6 + data.length] = checksum(b, 3, 6 + data.length);
  return b;
}

/** Parse an IPMI response to `req`; returns the completion code and the data after it. */
export function parseIpmiResponse(m: Buffer, req: { netFn: number; cmd: number; rqSeq: number }): { cc: number; data: Buffer } {
  if (m.length < 8) throw new RmcpError(`IPMI response too short (${m.length} bytes)`);
  if (checksum(m, 0, 2) !== m[2] || checksum(m, 3, m.length - 1) !== m[m.length - 1]) throw new RmcpError("IPMI response checksum mismatch");
  if (m[0] !== CONSOLE_SWID || m[3] !== BMC_ADDR) throw new RmcpError("IPMI response: unexpected addresses");
  if (m[1]! >> 2 !== req.netFn + 1) throw new RmcpError("IPMI response: wrong network function");
  if (m[4]! >> 2 !== (req.rqSeq & 0x3f)) throw new RmcpError("IPMI response: wrong sequence");
  if (m[5] !== req.cmd) throw new RmcpError("IPMI response: wrong command");
  return { cc: m[6]!, data: Buffer.from(m.subarray(7, m.length - 1)) };
}

/** An authenticated, AES-encrypted IPMI message in the session (the BMC's session id, our sequence number). */
export function encodeSessionMessage(keys: SessionKeys, bmcSessionId: number, sequence: number, message: Buffer, iv = crypto.randomBytes(16)): Buffer {
  // Confidentiality trailer: pad bytes 01h, 02h, … then the pad length, to a multiple of the AES block.
  const padLen = (16 - ((message.length + 1) % 16)) % 16;
  const plain = Buffer.concat([message, Buffer.from(Array.from({ length: padLen }, (_, i) => i + 1)), Buffer.from([padLen])]);
  const c = crypto.createCipheriv("aes-128-cbc", keys.aesKey, iv);
  c.setAutoPadding(false);
  const payload = Buffer.concat([iv, c.update(plain), c.final()]);
  const h = Buffer.alloc(12);
  h[0] = AUTH_TYPE_RMCPPLUS;
  h[1] = FLAG_ENCRYPTED | FLAG_AUTHENTICATED | PAYLOAD.ipmi;
  h.writeUInt32LE(bmcSessionId >>> 0, 2);
  h.writeUInt32LE(sequence >>> 0, 6);
  h.writeUInt16LE(payload.length, 10);
  const intPad = (4 - ((12 + payload.length + 2) % 4)) % 4;
  const signed = Buffer.concat([h, payload, Buffer.alloc(intPad, 0xff), Buffer.from([intPad, 0x07])]);
  const code = hmac(keys.suite.hash, keys.k1, signed).subarray(0, keys.suite.icvLen);
  return Buffer.concat([RMCP_HEADER, signed, code]);
}

/** Verify and decrypt an in-session packet addressed to our console session id; returns the IPMI message. */
export function decodeSessionMessage(pkt: DecodedPacket, keys: SessionKeys, consoleSessionId: number): Buffer {
  if (pkt.payloadType !== PAYLOAD.ipmi) throw new RmcpError(`unexpected payload type 0x${pkt.payloadType.toString(16)}`);
  if (!pkt.authenticated || !pkt.encrypted) throw new RmcpError("in-session packet is not authenticated and encrypted");
  if (pkt.sessionId !== consoleSessionId) throw new RmcpError("packet for another session");
  const expected = hmac(keys.suite.hash, keys.k1, pkt.signed).subarray(0, keys.suite.icvLen);
  if (pkt.authCode.length !== expected.length || !crypto.timingSafeEqual(expected, pkt.authCode)) throw new RmcpError("AuthCode does not match");
  const p = pkt.payload;
  if (p.length < 32 || (p.length - 16) % 16 !== 0) throw new RmcpError(`encrypted payload of ${p.length} bytes`);
  const d = crypto.createDecipheriv("aes-128-cbc", keys.aesKey, p.subarray(0, 16));
  d.setAutoPadding(false);
  const plain = Buffer.concat([d.update(p.subarray(16)), d.final()]);
  const padLen = plain[plain.length - 1]!;
  if (padLen > 15 || padLen + 1 > plain.length) throw new RmcpError("bad confidentiality pad");
  for (let i = 0; i < padLen; i++) if (plain[plain.length - 1 - padLen + i] !== i + 1) throw new RmcpError("bad confidentiality pad byte");
  return plain.subarray(0, plain.length - 1 - padLen);
}

// ---------------------------------------------------------------- the two commands

export const CMD = {
  getDeviceId: { netFn: 0x06, cmd: 0x01 },
  getChassisStatus: { netFn: 0x00, cmd: 0x01 },
  closeSession: { netFn: 0x06, cmd: 0x3c },
} as const;

/** Get Chassis Status → power on/off (byte 1 bit 0, "power is on"). */
export function parseChassisStatus(data: Buffer): "on" | "off" {
  if (data.length < 3) throw new RmcpError(`chassis status: ${data.length} data bytes`);
  return (data[0]! & 0x01) !== 0 ? "on" : "off";
}

/** Get Device ID → the same text ipmitool's `mc info` gives ("Firmware Revision: %u.%02x", "IPMI Version: %x.%x"). */
export function parseDeviceId(data: Buffer): { firmware: string; ipmiVersion: string } {
  if (data.length < 11) throw new RmcpError(`device id: ${data.length} data bytes`);
  const firmware = `${data[2]! & 0x7f}.${data[3]!.toString(16).padStart(2, "0")}`;
  const v = data[4]!;
  return { firmware, ipmiVersion: `${(v & 0x0f).toString(16)}.${(v >> 4).toString(16)}` };
}
