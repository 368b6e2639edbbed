/**
 * The lab's ownership of what it creates on the host. A lab whose owner was killed (SIGKILL: no `down`) and whose
 * directory was then removed (the browser tests remove their data directory before each run) leaves a namespace,
 * links, detached BMCs and a running QEMU. The next `up` of that prefix removes them; a namespace it has no record of,
 * or one whose owner lives, is refused. Real ip, ipmi_sim and qemu (root).
 */
import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { alive } from "../server/oob/testing/ipmi-sim";
import { nodeIpmitool, rackDown, rackUp, requireLabTools, vmRunning, type RackState } from "./rack";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "rh-rack-"));
const tag = crypto.randomBytes(2);
const prefix = `rk${tag.toString("hex").slice(0, 3)}`;
const net = `10.${150 + (tag[0]! % 40)}.${tag[1]}`;
const tsx = path.resolve("node_modules/.bin/tsx");
const rackModule = path.resolve("lab/rack.ts");
const netnsList = () => spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout.split("\n").map((l) => l.split(" ")[0]);
const linkExists = (name: string) => spawnSync("ip", ["link", "show", name], { stdio: "ignore" }).status === 0;

const started: number[] = [];
afterAll(async () => {
  for (const pid of started) if (alive(pid)) process.kill(pid, "SIGKILL");
  await rackDown(path.join(work, "second"));
  await rackDown(path.join(work, "first"));
  fs.rmSync(work, { recursive: true, force: true });
}, 60_000);

/** Bring a rack up in a child process that stays alive (the owner), with its first VM powered on. */
async function ownerProcess(dir: string): Promise<{ pid: number; state: RackState }> {
  const script = path.join(work, "owner.mts");
  fs.writeFileSync(
    script,
    `import { rackUp, nodeIpmitool } from ${JSON.stringify(rackModule)};
const st = await rackUp({ dir: ${JSON.stringify(dir)}, prefix: ${JSON.stringify(prefix)}, net: ${JSON.stringify(net)}, nodes: 1, memMiB: 256, diskMiB: 16 });
const on = nodeIpmitool(st.nodes[0], ["chassis", "power", "on"]);
if (on.status !== 0) throw new Error("power on: " + on.stderr);
process.stdout.write(JSON.stringify({ pid: process.pid, state: st }) + "\\n");
setInterval(() => {}, 1000);
`,
  );
  const child = spawn(tsx, [script], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("\n")) resolve(out.split("\n")[0]!);
    });
    child.once("exit", (code) => reject(new Error(`the owner exited (${code}) before the rack was up`)));
  });
  started.push(child.pid!);
  const { pid, state } = JSON.parse(line) as { pid: number; state: RackState };
  started.push(pid); // tsx runs the script in a child of its own: that one is the owner
  return { pid, state };
}

describe("lab ownership across a killed owner", () => {
  it("the next up of a prefix removes a stale lab whose owner died and whose directory is gone", async () => {
    requireLabTools();
    const first = path.join(work, "first");
    const { pid, state } = await ownerProcess(first);
    const node = state.nodes[0]!;
    for (let i = 0; i < 50 && !vmRunning(node); i++) await new Promise((r) => setTimeout(r, 100));
    expect(vmRunning(node)).toBe(true);
    const qemu = Number(fs.readFileSync(path.join(node.dir, "qemu.pid"), "utf8"));
    expect(alive(qemu)).toBe(true);

    // While the owner lives, the same prefix is refused, whatever the directory.
    await expect(rackUp({ dir: path.join(work, "second"), prefix, net, nodes: 1 })).rejects.toThrow(`lab ${prefix} is in use by PID ${pid}`);

    for (const p of started) if (alive(p)) process.kill(p, "SIGKILL");
    for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    fs.rmSync(first, { recursive: true, force: true }); // rack.json and the pidfile go; the detached processes stay
    expect(netnsList()).toContain(state.netns);
    expect(alive(node.bmcPid)).toBe(true);
    expect(alive(qemu)).toBe(true);

    const second = await rackUp({ dir: path.join(work, "second"), prefix, net, nodes: 1, memMiB: 256, diskMiB: 16 });
    expect(alive(qemu)).toBe(false);
    expect(alive(node.bmcPid)).toBe(false);
    expect(alive(node.relayPid)).toBe(false);
    expect(netnsList()).toContain(second.netns);
    expect(nodeIpmitool(second.nodes[0]!, ["chassis", "power", "status"]).stdout).toContain("off");

    await rackDown(path.join(work, "second"));
    expect(netnsList()).not.toContain(second.netns);
    expect(linkExists(second.bridge)).toBe(false);
    expect(fs.existsSync(`/run/rackhand-lab/${prefix}.json`)).toBe(false);
  }, 120_000);

  it("refuses a namespace it has no record of", async () => {
    const other = `${prefix}x`; // 6 characters, the longest prefix; its namespace is <prefix>ns
    expect(spawnSync("ip", ["netns", "add", `${other}ns`]).status).toBe(0);
    try {
      await expect(rackUp({ dir: path.join(work, "third"), prefix: other, net, nodes: 1 })).rejects.toThrow(`network namespace ${other}ns already exists and is not ours`);
      expect(netnsList()).toContain(`${other}ns`);
    } finally {
      spawnSync("ip", ["netns", "del", `${other}ns`]);
    }
  }, 30_000);
});
