import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bmcs } from "../../db/schema";
import { createHarness, type Harness } from "../../testing/harness";
import { until } from "../../testing/until";
import { ConsoleManager } from "./manager";

let h: Harness;
let consoles: ConsoleManager;
let n = 0;
beforeAll(() => {
  h = createHarness();
  consoles = new ConsoleManager(h.domain);
});
afterAll(async () => {
  await consoles.closeAll();
  h.close();
});

async function machine(address: string, password = "pw") {
  const i = ++n;
  return (await h.operator.machines.enroll({ name: `con-${i}`, bootMac: `52:54:00:c0:00:${i.toString(16).padStart(2, "0")}`, bmc: { driver: "fake", address, username: "admin", password } })).id;
}

describe("console reconnects", () => {
  it("a console that fails to open is retried with backoff while someone watches, and opens when the BMC answers", async () => {
    const id = await machine("10.9.9.254"); // the fake driver's unreachable BMC
    const joined = await consoles.join(id, "v1", "alice");
    expect(joined.status).toMatchObject({ state: "error", retryInS: 1 });
    expect(joined.status.error).toMatch(/unreachable/);
    // The BMC comes back (here: its address changes to one that answers); the next attempt opens the console.
    h.db.update(bmcs).set({ address: "10.9.9.10" }).where(eq(bmcs.machineId, id)).run();
    await until("the console to reopen", () => consoles.status(id).state === "open", 5_000);
    expect(consoles.status(id).retryInS).toBeUndefined();
    expect(consoles.status(id).error).toBeUndefined();
    await consoles.leave(id, "v1");
  });

  it("wrong credentials are not retried; nobody watching stops the retries", async () => {
    const bad = await machine("10.9.9.11", "wrong");
    expect((await consoles.join(bad, "v2", "bob")).status).toMatchObject({ state: "error" });
    expect(consoles.status(bad).retryInS).toBeUndefined();
    await consoles.leave(bad, "v2");

    const gone = await machine("10.9.9.254");
    expect((await consoles.join(gone, "v3", "carol")).status.retryInS).toBe(1);
    await consoles.leave(gone, "v3");
    await consoles.close(gone); // grace over: the session and its retry timer are gone
    expect(consoles.status(gone)).toMatchObject({ state: "closed", viewers: 0 });
    expect(consoles.status(gone).retryInS).toBeUndefined();
  });
});
