import crypto from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CIPHER_SUITES,
  CMD,
  PAYLOAD,
  RmcpError,
  decodePacket,
  decodeSessionMessage,
  deriveKeys,
  encodeSessionMessage,
  encodeSessionless,
  ipmiRequest,
  openSessionRequest,
  parseChassisStatus,
  parseDeviceId,
  parseIpmiResponse,
  parseOpenSessionResponse,
  parseRakp2,
  parseRakp4,
  rakp1,
  rakp3,
  rakpRole,
  type SessionSecrets,
} from "./packets";

const suite3 = CIPHER_SUITES[3]!;

function secrets(suite = suite3): SessionSecrets {
  return {
    suite,
    consoleSessionId: 0x11223344,
    bmcSessionId: 0x55667788,
    consoleRandom: Buffer.alloc(16, 0xa1),
    bmcRandom: Buffer.alloc(16, 0xb2),
    bmcGuid: Buffer.alloc(16, 0xc3),
    role: rakpRole(4),
    username: Buffer.from("admin"),
    password: Buffer.from("secret"),
  };
}

/** The BMC's side of the HMACs, written from the spec's field lists (IPMI v2.0 §13.31), to check ours. */
function bmcRakp2(s: SessionSecrets, tag: number): Buffer {
  const h = crypto.createHmac(s.suite.hash, s.password);
  const ids = Buffer.alloc(8);
  ids.writeUInt32LE(s.consoleSessionId, 0);
  ids.writeUInt32LE(s.bmcSessionId, 4);
  h.update(Buffer.concat([ids, s.consoleRandom, s.bmcRandom, s.bmcGuid, Buffer.from([s.role, s.username.length]), s.username]));
  const head = Buffer.alloc(8);
  head[0] = tag;
  head.writeUInt32LE(s.consoleSessionId, 4);
  return Buffer.concat([head, s.bmcRandom, s.bmcGuid, h.digest()]);
}

describe("RMCP+ codec", () => {
  it("frames a sessionless payload and reads it back", () => {
    const p = openSessionRequest({ tag: 7, consoleSessionId: 0xdeadbeef, privilege: 4, suite: suite3 });
    expect(p.length).toBe(32);
    expect([p[8], p[12], p[16], p[20], p[24], p[28]]).toEqual([0x00, 0x01, 0x01, 0x01, 0x02, 0x01]);
    const d = decodePacket(encodeSessionless(PAYLOAD.openSessionRequest, p));
    expect(d).toMatchObject({ payloadType: 0x10, authenticated: false, encrypted: false, sessionId: 0, sequence: 0 });
    expect(d.payload.equals(p)).toBe(true);
  });

  it("RAKP 1 carries the role with the name-only lookup bit and the user name; over-long names are refused", () => {
    const b = rakp1({ tag: 1, bmcSessionId: 5, consoleRandom: Buffer.alloc(16, 9), privilege: 2, username: "operator" });
    expect(b[24]).toBe(0x12);
    expect(b[27]).toBe(8);
    expect(b.subarray(28).toString()).toBe("operator");
    expect(() => rakp1({ tag: 1, bmcSessionId: 5, consoleRandom: Buffer.alloc(16), privilege: 2, username: "x".repeat(17) })).toThrow(RmcpError);
  });

  it("accepts a RAKP 2 only with the right password, for both hash suites", () => {
    for (const suite of [CIPHER_SUITES[3]!, CIPHER_SUITES[17]!]) {
      const s = secrets(suite);
      const msg = bmcRakp2(s, 3);
      expect(parseRakp2(msg, s, 3)).toEqual({ bmcRandom: s.bmcRandom, bmcGuid: s.bmcGuid });
      expect(() => parseRakp2(msg, { ...s, password: Buffer.from("Secret") }, 3)).toThrow(/invalid integrity check value/);
      expect(() => parseRakp2(msg, s, 4)).toThrow(/tag/);
      const tampered = Buffer.from(msg);
      tampered[30]! ^= 1; // the GUID, covered by the HMAC
      expect(() => parseRakp2(tampered, s, 3)).toThrow(RmcpError);
    }
  });

  it("RAKP 3 and 4 follow from the same secrets; a RAKP 4 from other keys is refused", () => {
    const s = secrets();
    const keys = deriveKeys(s);
    expect(rakp3(s, 1).length).toBe(8 + 20);
    const icv = crypto.createHmac("sha1", keys.sik).update(Buffer.concat([s.consoleRandom, Buffer.from([0x88, 0x77, 0x66, 0x55]), s.bmcGuid])).digest().subarray(0, 12);
    const head = Buffer.alloc(8);
    head[0] = 1;
    head.writeUInt32LE(s.consoleSessionId, 4);
    expect(() => parseRakp4(Buffer.concat([head, icv]), s, keys, 1)).not.toThrow();
    const other = deriveKeys({ ...s, bmcRandom: Buffer.alloc(16, 0xb3) });
    expect(() => parseRakp4(Buffer.concat([head, icv]), s, other, 1)).toThrow(/does not match/);
  });

  it("a status code in a setup answer is an error with the spec's wording", () => {
    const p = Buffer.alloc(36);
    p[0] = 9;
    p[1] = 0x0d;
    expect(() => parseOpenSessionResponse(p, { tag: 9, consoleSessionId: 1, suite: suite3 })).toThrow(/unauthorized name/);
  });

  it("encrypts and authenticates an IPMI message; the BMC's answer decodes; any flipped bit is refused", () => {
    for (const suite of [CIPHER_SUITES[3]!, CIPHER_SUITES[17]!]) {
      const keys = deriveKeys(secrets(suite));
      for (let len = 0; len < 40; len++) {
        const msg = crypto.randomBytes(len);
        const pkt = encodeSessionMessage(keys, 0x01020304, 1, msg);
        expect((pkt.length - 4 - suite.icvLen) % 4).toBe(0); // the AuthCode covers whole DWORDs
        const d = decodePacket(pkt, suite.icvLen);
        expect(d.sessionId).toBe(0x01020304);
        expect(decodeSessionMessage(d, keys, 0x01020304).equals(msg)).toBe(true);
        expect(() => decodeSessionMessage(d, keys, 0x01020305)).toThrow(/another session/);
        const bad = Buffer.from(pkt);
        bad[20 + (len % 16)]! ^= 0x40;
        expect(() => decodeSessionMessage(decodePacket(bad, suite.icvLen), keys, 0x01020304)).toThrow(RmcpError);
      }
    }
  });

  it("IPMI request/response framing with checksums, sequence and command checked", () => {
    const req = { ...CMD.getChassisStatus, rqSeq: 5 };
    const r = ipmiRequest(req);
    expect([...r]).toEqual([0x20, 0x00, 0xe0, 0x81, 0x14, 0x01, 0x6a]);
    const res = Buffer.from([0x81, 0x04, 0x7b, 0x20, 0x14, 0x01, 0x00, 0x01, 0x00, 0x40, 0x00, 0x00]);
    let sum = 0;
    for (let i = 3; i < res.length - 1; i++) sum += res[i]!;
    res[res.length - 1] = (0x100 - (sum & 0xff)) & 0xff;
    expect(parseIpmiResponse(res, req)).toEqual({ cc: 0, data: Buffer.from([0x01, 0x00, 0x40, 0x00]) });
    expect(parseChassisStatus(Buffer.from([0x01, 0x00, 0x40, 0x00]))).toBe("on");
    expect(parseChassisStatus(Buffer.from([0x60, 0x00, 0x40, 0x00]))).toBe("off");
    expect(() => parseIpmiResponse(res, { ...req, rqSeq: 6 })).toThrow(/sequence/);
    expect(() => parseIpmiResponse(res, { ...CMD.getDeviceId, rqSeq: 5 })).toThrow(/network function/);
    const broken = Buffer.from(res);
    broken[8]! ^= 1;
    expect(() => parseIpmiResponse(broken, req)).toThrow(/checksum/);
    expect(() => parseChassisStatus(Buffer.from([1]))).toThrow(RmcpError);
  });

  it("device id reads like ipmitool's mc info", () => {
    expect(parseDeviceId(Buffer.from([0x23, 0x09, 0x09, 0x08, 0x02, 0x9f, 0x91, 0x12, 0x00, 0x02, 0x0f]))).toEqual({ firmware: "9.08", ipmiVersion: "2.0" });
    expect(parseDeviceId(Buffer.from([0, 0, 0x81, 0x15, 0x51, 0, 0, 0, 0, 0, 0]))).toEqual({ firmware: "1.15", ipmiVersion: "1.5" });
  });

  it("hostile datagrams: decoding random or mutated bytes only ever fails with RmcpError, never returns a forged message", () => {
    const keys = deriveKeys(secrets());
    const good = encodeSessionMessage(keys, 7, 1, Buffer.from([1, 2, 3]));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          const d = decodePacket(Buffer.from(bytes), 12);
          decodeSessionMessage(d, keys, 7);
          return false; // a random packet that authenticates would be a forgery
        } catch (err) {
          return err instanceof RmcpError;
        }
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const b = Buffer.from(good);
        b[at]! ^= x;
        try {
          // Only the RMCP header's sequence byte is outside the AuthCode; the message must then be the genuine one.
          return decodeSessionMessage(decodePacket(b, 12), keys, 7).equals(Buffer.from([1, 2, 3])) && at === 2;
        } catch (err) {
          return err instanceof RmcpError;
        }
      }),
      { numRuns: 2000 },
    );
  });
});
