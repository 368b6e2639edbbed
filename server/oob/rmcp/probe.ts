/**
 * The native RMCP+ status probe: one short session per read (Open Session, RAKP 1–4, one command, Close Session)
 * over a connected UDP socket, with no child process. Only two reads: Get Chassis Status (power) and Get Device ID
 * (reachability). It never guesses: any timeout, status code, integrity or format mismatch rejects with
 * `RmcpError`, and the driver then asks ipmitool (ipmitool.ts). The password stays in this process's memory.
 */
import crypto from "node:crypto";
import dgram from "node:dgram";
import net from "node:net";
import type { BmcTarget } from "../types";
import {
  CIPHER_SUITES,
  CMD,
  PAYLOAD,
  PRIVILEGE_LEVEL,
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
  type DecodedPacket,
  type SessionKeys,
} from "./packets";

export interface ProbeOptions {
  /** Time allowed for each request/response exchange. */
  stepTimeoutMs: number;
}

/** Can the native probe talk to this BMC at all? (Cipher suites 3 and 17 only; anything else goes to ipmitool.) */
export function nativeProbeSupports(t: BmcTarget): boolean {
  return CIPHER_SUITES[t.cipherSuite] !== undefined && Buffer.byteLength(t.username) <= 16 && Buffer.byteLength(t.password) <= 20;
}

class Channel {
  private readonly queue: Buffer[] = [];
  private waiter: ((b: Buffer) => void) | undefined;
  private failure: Error | undefined;
  private failWaiter: ((e: Error) => void) | undefined;

  constructor(private readonly sock: dgram.Socket) {
    sock.on("message", (b) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        this.failWaiter = undefined;
        w(b);
      } else if (this.queue.length < 8) this.queue.push(b);
    });
    sock.on("error", (e) => {
      this.failure = new RmcpError(`socket: ${e.message}`);
      this.failWaiter?.(this.failure);
    });
  }

  send(b: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.sock.send(b, (err) => (err ? reject(new RmcpError(`send: ${err.message}`)) : resolve())));
  }

  next(timeoutMs: number, what: string): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        this.failWaiter = undefined;
        reject(new RmcpError(`no answer to ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (b) => {
        clearTimeout(timer);
        resolve(b);
      };
      this.failWaiter = (e) => {
        clearTimeout(timer);
        reject(e);
      };
    });
  }
}

async function connect(t: BmcTarget): Promise<dgram.Socket> {
  const sock = dgram.createSocket(net.isIPv6(t.address) ? "udp6" : "udp4");
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    // connect(): the kernel drops datagrams from any other address/port.
    sock.connect(t.port, t.address, () => {
      sock.off("error", reject);
      resolve();
    });
  });
  return sock;
}

interface Session {
  ch: Channel;
  keys: SessionKeys;
  consoleSessionId: number;
  bmcSessionId: number;
  seq: number;
  rqSeq: number;
}

async function openSession(ch: Channel, t: BmcTarget, o: ProbeOptions): Promise<Session> {
  const suite = CIPHER_SUITES[t.cipherSuite];
  if (!suite) throw new RmcpError(`cipher suite ${t.cipherSuite} is not handled natively`);
  const privilege = PRIVILEGE_LEVEL[t.privilege as keyof typeof PRIVILEGE_LEVEL];
  if (!privilege) throw new RmcpError(`privilege ${t.privilege} is not handled natively`);
  let consoleSessionId = 0;
  while (consoleSessionId === 0) consoleSessionId = crypto.randomBytes(4).readUInt32LE(0);
  const tag = crypto.randomBytes(1)[0]!;
  const expect = (pkt: DecodedPacket, type: number, what: string) => {
    if (pkt.payloadType !== type || pkt.authenticated || pkt.encrypted || pkt.sessionId !== 0) throw new RmcpError(`${what}: unexpected packet (payload type 0x${pkt.payloadType.toString(16)})`);
    return pkt.payload;
  };

  await ch.send(encodeSessionless(PAYLOAD.openSessionRequest, openSessionRequest({ tag, consoleSessionId, privilege, suite })));
  const { bmcSessionId } = parseOpenSessionResponse(expect(decodePacket(await ch.next(o.stepTimeoutMs, "open session")), PAYLOAD.openSessionResponse, "open session"), { tag, consoleSessionId, suite });

  const consoleRandom = crypto.randomBytes(16);
  const role = rakpRole(privilege);
  const username = Buffer.from(t.username, "utf8");
  const password = Buffer.from(t.password, "utf8");
  const base = { suite, consoleSessionId, bmcSessionId, consoleRandom, role, username, password };
  await ch.send(encodeSessionless(PAYLOAD.rakp1, rakp1({ tag, bmcSessionId, consoleRandom, privilege, username: t.username })));
  const r2 = parseRakp2(expect(decodePacket(await ch.next(o.stepTimeoutMs, "RAKP 1")), PAYLOAD.rakp2, "RAKP 2"), base, tag);
  const secrets = { ...base, ...r2 };
  const keys = deriveKeys(secrets);
  await ch.send(encodeSessionless(PAYLOAD.rakp3, rakp3(secrets, tag)));
  parseRakp4(expect(decodePacket(await ch.next(o.stepTimeoutMs, "RAKP 3")), PAYLOAD.rakp4, "RAKP 4"), secrets, keys, tag);
  return { ch, keys, consoleSessionId, bmcSessionId, seq: 1, rqSeq: crypto.randomBytes(1)[0]! & 0x3f };
}

async function command(s: Session, c: { netFn: number; cmd: number }, o: ProbeOptions, data?: Buffer): Promise<Buffer> {
  const req = { ...c, rqSeq: s.rqSeq };
  s.rqSeq = (s.rqSeq + 1) & 0x3f;
  await s.ch.send(encodeSessionMessage(s.keys, s.bmcSessionId, s.seq++, ipmiRequest({ ...req, data })));
  const pkt = decodePacket(await s.ch.next(o.stepTimeoutMs, `command 0x${c.cmd.toString(16)}`), s.keys.suite.icvLen);
  const res = parseIpmiResponse(decodeSessionMessage(pkt, s.keys, s.consoleSessionId), req);
  if (res.cc !== 0) throw new RmcpError(`command 0x${c.cmd.toString(16)}: completion code 0x${res.cc.toString(16).padStart(2, "0")}`);
  return res.data;
}

/** Open a session, run `fn`, close the session (best effort: a lost close only ends by the BMC's timeout). */
async function withSession<T>(t: BmcTarget, o: ProbeOptions, fn: (s: Session) => Promise<T>): Promise<T> {
  const sock = await connect(t);
  try {
    const ch = new Channel(sock);
    const s = await openSession(ch, t, o);
    const result = await fn(s);
    try {
      const id = Buffer.alloc(4);
      id.writeUInt32LE(s.bmcSessionId);
      await command(s, CMD.closeSession, { stepTimeoutMs: Math.min(o.stepTimeoutMs, 500) }, id);
    } catch {
      // The answer is already read; the session expires on the BMC by itself.
    }
    return result;
  } finally {
    sock.close();
  }
}

export function probePower(t: BmcTarget, o: ProbeOptions): Promise<"on" | "off"> {
  return withSession(t, o, async (s) => parseChassisStatus(await command(s, CMD.getChassisStatus, o)));
}

export function probeDeviceId(t: BmcTarget, o: ProbeOptions): Promise<{ firmware: string; ipmiVersion: string }> {
  return withSession(t, o, async (s) => parseDeviceId(await command(s, CMD.getDeviceId, o)));
}
