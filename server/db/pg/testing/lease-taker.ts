// A separate Rackhand-like process for leases.int.test.ts: takes server step leases on the PostgreSQL at argv[2].
//   drain <owner>: claim and finish steps until none is left; prints the ids it finished as one JSON line.
//   hold <owner> <n>: claim up to n steps, print their ids, then keep renewing them until killed.
import { openPgDatabase } from "../client";
import { claimSteps, finishStep, renewSteps } from "../leases";

const [url, mode, owner, n] = process.argv.slice(2);
if (!url || !owner || (mode !== "drain" && mode !== "hold")) throw new Error("usage: lease-taker.ts <url> drain|hold <owner> [n]");
const db = await openPgDatabase(url, { max: 2, applicationName: owner });
if (mode === "drain") {
  const done: number[] = [];
  for (;;) {
    const got = await claimSteps(db, owner, { limit: 3, leaseMs: 60_000 });
    if (got.length === 0) break;
    for (const l of got) if (await finishStep(db, l, { state: "succeeded", result: { by: owner } })) done.push(l.id);
  }
  process.stdout.write(`${JSON.stringify(done)}\n`);
  await db.$client.end();
} else {
  const got = await claimSteps(db, owner, { limit: Number(n ?? 1), leaseMs: 2000 });
  process.stdout.write(`${JSON.stringify(got.map((l) => l.id))}\n`);
  setInterval(() => void renewSteps(db, owner, got.map((l) => l.id), 2000), 200);
}
