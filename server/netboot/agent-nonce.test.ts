import crypto from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { enrollMachine } from "../machines/enroll";
import { transition } from "../machines/lifecycle";
import { machineInput } from "../testing/fixtures";
import { createHarness, type Harness } from "../testing/harness";
import { AgentNonces, agentBootSessionIn, currentAgentNonce, currentAgentNonceForMac } from "./agent-nonce";

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

  it("exists only while the machine netboots the agent, and changes with every new state (either database)", async () => {
    const agentBootSession = (id: number) => agentBootSessionIn(h.store, h.store.db, id);
    const input = machineInput(1) as { bootMac: string };
    const { id } = await enrollMachine(h.domain, input as never, "test");
    expect((await agentBootSession(id))).toBeNull();
    await transition(h.domain, id, "manage", { actor: "test" });
    expect((await currentAgentNonce(h.domain, id))).toBeNull(); // manageable: boots its disk
    await transition(h.domain, id, "inspect", { actor: "test" });
    const first = await agentBootSession(id);
    expect(first).not.toBeNull();
    const nonce = (await currentAgentNonce(h.domain, id))!;
    expect(nonce).toMatch(/^[0-9a-f]{64}$/);
    expect(nonce).toBe(AgentNonces.of(h.domain).nonce(id, first!));
    expect(await currentAgentNonceForMac(h.domain, input.bootMac.toUpperCase())).toBe(nonce);
    expect(await currentAgentNonceForMac(h.domain, "52:54:00:ff:ff:fe")).toBeNull();
    // A hostile "MAC" is only a value in the lookup: no machine, no error.
    for (const bad of ["52:54:00:00:00:01' OR '1'='1", "52:54:00:00:00:01\n", "\0", "$(reboot)", "%", "_".repeat(17), "é".repeat(300)]) {
      expect(await currentAgentNonceForMac(h.domain, bad), JSON.stringify(bad)).toBeNull();
    }
    await transition(h.domain, id, "succeed", { actor: "test" });
    expect((await currentAgentNonce(h.domain, id))).toBeNull();
    await transition(h.domain, id, "inspect", { actor: "test" });
    expect((await agentBootSession(id))).toBeGreaterThan(first!);
    expect((await currentAgentNonce(h.domain, id))).not.toBe(nonce);
  });
});
