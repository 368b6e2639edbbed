/**
 * A real serial console across processes (vitest project postgres only): ipmi_sim with SOL wired to a fake serial
 * console, two ConsoleManagers (as two processes) on one PostgreSQL with the real ipmitool driver. One
 * `ipmitool sol activate` for both; keys typed on the viewer process reach the machine; when the owner dies, the
 * other process opens SOL itself.
 */
import type pg from "pg";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Domain } from "../context";
import { EventBus } from "../events/bus";
import { silentLogger } from "../log";
import { createHarness, type Harness } from "../testing/harness";
import { until } from "../testing/until";
import { createConsoleManager, type ConsoleManager } from "./console/manager";
import { createOobRuntime, defaultOobConfig } from "./registry";
import { alive, IpmiSim, SIM_USER } from "./testing/ipmi-sim";

let h: Harness;
let sim: IpmiSim;
let machineId: number;
const managers: ConsoleManager[] = [];


async function proc(name: string) {
  const url = (h.store.db as unknown as { $client: pg.Pool }).$client.options.connectionString!;
  const oob = createOobRuntime(defaultOobConfig(h.dataDir, { consoleDir: `${h.dataDir}/consoles-${name}`, callTimeoutMs: 5000, consoleGraceMs: 60_000 }));
  const d: Domain = { db: h.db, store: h.store, bus: new EventBus(), secrets: h.domain.secrets, log: silentLogger, oob };
  const consoles = createConsoleManager(d, { databaseUrl: url, owner: `${name}:1`, channel: `rh_sol_test_${process.pid}`, leaseMs: 600_000, renewMs: 300_000 });
  let text = "";
  consoles.subscribe((m) => {
    if (m.type === "data") text += m.data.toString("latin1");
  });
  await consoles.start();
  managers.push(consoles);
  return { consoles, text: () => text };
}

beforeAll(async () => {
  sim = await new IpmiSim("solpg", { console: true, power: "on" }).start();
  h = createHarness();
  machineId = (await h.operator.machines.enroll({ name: "sol-pg", bootMac: "52:54:00:50:02:01", bmc: { address: "127.0.0.1", port: sim.port, username: SIM_USER, password: sim.password } })).id;
}, 30_000);
afterAll(async () => {
  for (const m of managers) await m.closeAll();
  await sim?.stop();
  h?.close();
});

describe("SOL console across processes", () => {
  it("one ipmitool for viewers on two processes; keys from the other process; a takeover opens SOL on the survivor", async () => {
    const a = await proc("proc-a");
    const b = await proc("proc-b");
    expect((await a.consoles.join(machineId, "va", "alice")).status).toMatchObject({ state: "open" });
    await b.consoles.join(machineId, "vb", "bob");
    await until("console output at B", () => b.text().includes("console-line"));
    const kids = sim.solChildren().map((k) => k.pid);
    expect(kids).toHaveLength(1);

    await b.consoles.take(machineId, "vb", "bob");
    await b.consoles.input(machineId, "vb", "hello-from-b\r");
    await until("the echo at A", () => a.text().includes("ECHO:hello-from-b"));
    await until("the echo at B", () => b.text().includes("ECHO:hello-from-b"));

    // A dies (its ipmitool goes with it); its lease lapses; B opens SOL itself and bob keeps typing.
    await a.consoles.halt();
    await until("A's ipmitool gone", () => !alive(kids[0]!));
    await h.store.db.execute(sql`UPDATE leases SET expires_at = clock_timestamp() - interval '1 second' WHERE name = ${`console:${machineId}`}`);
    await b.consoles.tick();
    expect(b.consoles.status(machineId)).toMatchObject({ state: "open", holder: "bob", viewers: 1 });
    expect(sim.solChildren()).toHaveLength(1);
    await b.consoles.input(machineId, "vb", "after-takeover\r");
    await until("the echo after the takeover", () => b.text().includes("ECHO:after-takeover"));
  }, 60_000);
});
