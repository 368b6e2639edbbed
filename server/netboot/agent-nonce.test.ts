import crypto from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { AgentNonces, agentBootSession, currentAgentNonce, currentAgentNonceForMac } from "./agent-nonce";

describe("agent nonces", () => {
  const nonces = new AgentNonces(Buffer.alloc(32, 7));

  it("are 64 hex digits, differ per machine, session and key, and verify only exactly", () => {
    const n = nonces.nonce(7, 41);
    expect(n).toMatch(/^[0-9a-f]{64}$/);
    expect(n).toBe(crypto.createHmac("sha256", Buffer.alloc(32, 7)).update("agent:7:41").digest("hex"));
    expect(new Set([n, nonces.nonce(8, 41), nonces.nonce(7, 42), new AgentNonces(Buffer.alloc(32, 8)).nonce(7, 41)]).size).toBe(4);
    expect(nonces.verify(7, 41, n)).toBe(true);
    for (const bad of [nonces.nonce(7, 42), n.toUpperCase(), n.slice(0, 63), `${n}0`, `${n.slice(0, 63)}\n`, `${n.slice(0, 63)}\0`, "", "é".repeat(32)]) {
      expect(nonces.verify(7, 41, bad)).toBe(false);
    }
  });
});

describe("the current agent boot session", () => {
  let h: Harness;
  beforeEach(() => (h = createHarness()));
  afterEach(() => h.close());

  it("exists only while the machine netboots the agent, and changes with every new state", async () => {
    const input = machineInput(1) as { bootMac: string };
    const { id } = await enrollMachine(h.domain, input as never, "test");
    expect(agentBootSession(h.db, id)).toBeNull();
    await transition(h.domain, id, "manage", { actor: "test" });
    expect(currentAgentNonce(h.domain, id)).toBeNull(); // manageable: boots its disk
    await transition(h.domain, id, "inspect", { actor: "test" });
    const first = agentBootSession(h.db, id);
    expect(first).not.toBeNull();
    const nonce = currentAgentNonce(h.domain, id)!;
    expect(nonce).toBe(AgentNonces.of(h.domain).nonce(id, first!));
    expect(currentAgentNonceForMac(h.domain, input.bootMac.toUpperCase())).toBe(nonce);
    expect(currentAgentNonceForMac(h.domain, "52:54:00:ff:ff:fe")).toBeNull();
    await transition(h.domain, id, "succeed", { actor: "test" });
    expect(currentAgentNonce(h.domain, id)).toBeNull();
    await transition(h.domain, id, "inspect", { actor: "test" });
    expect(agentBootSession(h.db, id)).toBeGreaterThan(first!);
    expect(currentAgentNonce(h.domain, id)).not.toBe(nonce);
  });
});
