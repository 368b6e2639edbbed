/**
 * Per-boot agent nonces: the secret an agent must present to POST /api/agent/v1/lookup. It is delivered only in
 * that machine's agent boot entry (kernel argument rackhand.nonce=<hex>, tree.ts), so knowing a MAC is not enough
 * to obtain a job's agent token. nonce = HMAC-SHA256(key, "agent:<machineId>:<sessionId>"), where sessionId is
 * the id of the event that moved the machine into its current (netboot) state, as for install tokens
 * (install-token.ts): it changes with every new inspect/deploy/clean, and nothing is stored.
 * Like the install token, it travels over TFTP/HTTP unauthenticated: anyone who can read that machine's boot
 * entry on the provisioning network can read it (docs/ARCHITECTURE.md, security).
 */
import crypto from "node:crypto";
import type { Domain } from "../context";
import { and, desc, eq } from "drizzle-orm";
import { storeOf, type Store, type StoreDb, type StoreTx } from "../db/store";
import { NETBOOT_STATES } from "../../lib/netboot";

export const AGENT_NONCE_KEY_LABEL = "agent boot nonces";

export class AgentNonces {
  constructor(private readonly key: Buffer) {}

  static of(d: Pick<Domain, "secrets">): AgentNonces {
    return new AgentNonces(d.secrets.deriveKey(AGENT_NONCE_KEY_LABEL));
  }

  /** 64 lowercase hex digits. */
  nonce(machineId: number, sessionId: number): string {
    return crypto.createHmac("sha256", this.key).update(`agent:${machineId}:${sessionId}`).digest("hex");
  }

  /** Timing-safe comparison with the nonce of (machineId, sessionId). */
  verify(machineId: number, sessionId: number, nonce: string): boolean {
    const want = Buffer.from(this.nonce(machineId, sessionId));
    const got = Buffer.from(nonce);
    return want.length === got.length && crypto.timingSafeEqual(want, got);
  }
}

/**
 * The session whose agent boot entry is current for this machine (the agent API's lookup, currentAgentNonce): the id
 * of the machine's latest state.changed event while it is in a netboot state, else null.
 */
export async function agentBootSessionIn(store: Store, q: StoreDb | StoreTx, machineId: number): Promise<number | null> {
  const { machines: m, events: e } = store.t;
  const [row] = await q.select({ state: m.state }).from(m).where(eq(m.id, machineId)).limit(1);
  if (!row || !(NETBOOT_STATES as readonly string[]).includes(row.state)) return null;
  const [last] = await q
    .select({ id: e.id })
    .from(e)
    .where(and(eq(e.machineId, machineId), eq(e.kind, "state.changed")))
    .orderBy(desc(e.id))
    .limit(1);
  return last?.id ?? null;
}

/**
 * The nonce in this machine's current agent boot entry (what the agent reads from /proc/cmdline; the demo's and the
 * benches' simulated agents, tests), through the Store; null when it does not netboot the agent now.
 */
export async function currentAgentNonce(d: Pick<Domain, "db" | "store" | "secrets">, machineId: number): Promise<string | null> {
  const store = storeOf(d);
  const session = await agentBootSessionIn(store, store.db, machineId);
  return session === null ? null : AgentNonces.of(d).nonce(machineId, session);
}

/** currentAgentNonce of the machine with this MAC (any case); null when none or it does not netboot the agent now. */
export async function currentAgentNonceForMac(d: Pick<Domain, "db" | "store" | "secrets">, mac: string): Promise<string | null> {
  const canonical = mac.toLowerCase();
  // Only a MAC can match (and a NUL, which PostgreSQL refuses in a parameter, never reaches the query).
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(canonical)) return null;
  const store = storeOf(d);
  const { nics } = store.t;
  const [nic] = await store.db.select({ machineId: nics.machineId }).from(nics).where(eq(nics.mac, canonical)).limit(1);
  return nic ? currentAgentNonce(d, nic.machineId) : null;
}
