/**
 * Install tokens authenticate the per-machine files (preseed, kickstart, cloud-init, NIC config) served under
 * /boot/m/<machineId>/<token>/. token = HMAC-SHA256(key, "install:<machineId>:<sessionId>"), where sessionId is
 * the id of the event that moved the machine into `deploying`. Nothing is stored: the token changes with every
 * install, and a request is served only while the machine is deploying in that same session.
 * The token travels in the kernel command line (readable over TFTP by anyone on the provisioning network),
 * so it limits exposure to one machine's current install, not more.
 */
import crypto from "node:crypto";

export class InstallTokens {
  constructor(private readonly key: Buffer) {}


  token(machineId: number, sessionId: number): string {
    return crypto.createHmac("sha256", this.key).update(`install:${machineId}:${sessionId}`).digest("base64url").slice(0, 32);
  }

  verify(machineId: number, sessionId: number, token: string): boolean {
    const want = Buffer.from(this.token(machineId, sessionId));
    const got = Buffer.from(token);
    return want.length === got.length && crypto.timingSafeEqual(want, got);
  }
}
