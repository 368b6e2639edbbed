/**
 * The demo lab's simulated agents (RACKHAND_DEMO=true, `npm start`): a machine on the `fake` BMC driver has no
 * hardware that could netboot the agent, so when one of its jobs starts waiting for the agent (wait_agent running),
 * a simulated agent (./sim-agent.ts) "boots" a moment later and runs the job over the real agent HTTP API with the
 * machine's MACs and current boot nonce. Its inventory, log lines and results all say "simulated", and the UI
 * labels such machines as simulated (inventory.simulated). Machines on real drivers are never touched.
 */
import http from "node:http";
import { asc, eq } from "drizzle-orm";
import { AGENT_API_PREFIX } from "../../lib/agent-protocol";
import type { Domain } from "../context";
import { storeOf } from "../db/store";
import { currentAgentNonce } from "../netboot/agent-nonce";
import { retryingPost, runSimulatedAgent, type AgentPost } from "./sim-agent";

export interface DemoAgentOptions {
  /** Pause between "power on" and the agent's lookup, as a real boot would take. */
  bootDelayMs?: number;
  stepMs?: number;
  linesPerStep?: number;
}

/** The inventory a simulated agent reports: plausible, and marked `simulated: true`. */
export function simulatedInventory(machineId: number, macs: string[]): Record<string, unknown> {
  const gib = [16, 32, 64, 128][machineId % 4]!;
  return {
    simulated: true,
    cpus: 8,
    cpu: { model: "Simulated CPU (demo) @ 2.4GHz", sockets: 1, cores: 4, threads: 8, flags: ["vmx", "aes"] },
    memoryBytes: gib * 2 ** 30,
    memoryMiB: gib * 1024,
    disks: Array.from({ length: 1 + (machineId % 3) }, (_, i) => ({
      name: `sd${String.fromCharCode(97 + i)}`,
      path: `/dev/sd${String.fromCharCode(97 + i)}`,
      sizeBytes: 480 * 10 ** 9,
      model: "Simulated disk (demo)",
      serial: `SIM${machineId}-${i}`,
      rotational: false,
      removable: false,
      transport: "sata",
    })),
    nics: macs.map((mac, i) => ({ name: `eno${i + 1}`, mac, mtu: 1500, state: "up", speedMbps: 10000, driver: "simulated", addresses: [] })),
    collectedAt: new Date().toISOString(),
  };
}

function httpPost(baseUrl: string, agent: http.Agent): AgentPost {
  return (path, body, token) =>
    new Promise((resolve, reject) => {
      const payload = JSON.stringify(body);
      const req = http.request(
        `${baseUrl}${AGENT_API_PREFIX}${path}`,
        { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload), ...(token && { authorization: `Bearer ${token}` }) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            try {
              resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8") || "null") as unknown });
            } catch (err) {
              reject(err instanceof Error ? err : new Error(String(err)));
            }
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
}

/** Start following the bus; returns a stop function that aborts the running simulations. */
export function startDemoAgents(d: Domain, baseUrl: string, o: DemoAgentOptions = {}): () => void {
  const agent = new http.Agent({ keepAlive: true });
  const post = retryingPost(httpPost(baseUrl, agent));
  const running = new Set<number>();
  const stop = new AbortController();
  const store = storeOf(d);
  const { bmcs, nics, steps } = store.t;
  /** A wait_agent step of a machine on the fake driver: its simulated agent boots a moment later. */
  const boot = async (jobId: number, stepId: number, machineId: number) => {
    const [step] = await store.db.select({ name: steps.name }).from(steps).where(eq(steps.id, stepId)).limit(1);
    if (step?.name !== "wait_agent") return;
    const [bmc] = await store.db.select({ driver: bmcs.driver }).from(bmcs).where(eq(bmcs.machineId, machineId)).limit(1);
    if (bmc?.driver !== "fake" || running.has(jobId) || stop.signal.aborted) return;
    running.add(jobId);
    await new Promise((r) => setTimeout(r, o.bootDelayMs ?? 3000).unref());
    try {
      if (stop.signal.aborted) return;
      const macs = (await store.db.select({ mac: nics.mac }).from(nics).where(eq(nics.machineId, machineId)).orderBy(asc(nics.id))).map((n) => n.mac);
      d.log.info("demo: a simulated agent boots", { machineId, jobId });
      await runSimulatedAgent(post, {
        macs,
        nonce: await currentAgentNonce(d, machineId),
        inventory: simulatedInventory(machineId, macs),
        stepMs: o.stepMs ?? 1500,
        linesPerStep: o.linesPerStep ?? 3,
        lookupTries: 40,
        signal: stop.signal,
      });
    } finally {
      running.delete(jobId);
    }
  };
  const unsubscribe = d.bus.subscribe((e) => {
    if (e.type !== "step.changed" || e.state !== "running" || running.has(e.jobId)) return;
    const { jobId, machineId } = e;
    boot(jobId, e.stepId, machineId).catch((err: unknown) => d.log.warn("demo: the simulated agent stopped", { machineId, jobId, error: String(err) }));
  });
  return () => {
    stop.abort();
    unsubscribe();
    agent.destroy();
  };
}
