/**
 * npm run lab — a virtual rack for newcomers and demos: N QEMU VMs behind ipmi_sim BMCs on a provisioning network
 * in a namespace, and Rackhand (the production build) started with its managed dnsmasq there, the VMs enrolled and
 * ready to deploy from the browser. Runs in the foreground; Ctrl-C stops Rackhand (the rack stays until `down`).
 *
 *   npm run lab [-- up] [--nodes 3] [--firmware bios|uefi|secureboot|mixed] [--port 3000] [--net 10.77.0]
 *               [--data data/lab] [--debian] [--down-on-exit]
 *   npm run lab -- down [--data data/lab]
 *   npm run lab -- status [--data data/lab]
 *
 * --firmware: the VMs' firmware (default bios): SeaBIOS on QEMU pc, OVMF on q35 (uefi), OVMF with Secure Boot
 * enforced and Microsoft's keys enrolled (secureboot); mixed gives the nodes bios, uefi, secureboot in turn.
 * The admin password is RACKHAND_ADMIN_PASSWORD when set, else generated on the first start and kept in
 * <data>/admin-password (0600). Everything it creates is listed in <data>/rack/rack.json and removed by `down`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { prepareArtifacts } from "./artifacts";
import { signIn } from "./client";
import { provisionRack } from "./provision";
import { rackDown, rackUp, readRack, requireLabTools, VM_FIRMWARES, vmRunning, type VmFirmware } from "./rack";

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    nodes: { type: "string", default: "3" },
    firmware: { type: "string", default: "bios" },
    port: { type: "string", default: "3000" },
    net: { type: "string", default: "10.77.0" },
    prefix: { type: "string", default: "rhlab" },
    data: { type: "string", default: "data/lab" },
    cache: { type: "string" },
    "bmc-port-base": { type: "string", default: "9600" },
    "down-on-exit": { type: "boolean", default: false },
    /** The agent runs in the Debian root file system (debootstrap; the VMs get 1 GiB). */
    debian: { type: "boolean", default: false },
  },
});
const command = positionals[0] ?? "up";
const dataDir = path.resolve(opt.data);
const rackDir = path.join(dataDir, "rack");
const say = (s: string) => console.log(`[lab] ${s}`);

function adminPassword(): string {
  if (process.env.RACKHAND_ADMIN_PASSWORD) return process.env.RACKHAND_ADMIN_PASSWORD;
  const file = path.join(dataDir, "admin-password");
  if (fs.existsSync(file)) return fs.readFileSync(file, "utf8").trim();
  if (fs.existsSync(path.join(dataDir, "rackhand.db"))) {
    throw new Error(`${dataDir} has a database but no admin-password file: set RACKHAND_ADMIN_PASSWORD, or remove ${dataDir}`);
  }
  const pw = crypto.randomBytes(12).toString("base64url");
  fs.writeFileSync(file, pw + "\n", { mode: 0o600 });
  return pw;
}

async function waitHealthy(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Rackhand exited (${child.exitCode}) while starting`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`Rackhand did not answer ${url}/healthz within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** --firmware: one of VM_FIRMWARES for every node, or mixed (bios, uefi, secureboot in turn over the nodes). */
function parseFirmware(v: string, nodes: number): VmFirmware | readonly VmFirmware[] {
  if (v === "mixed") return Array.from({ length: nodes }, (_, i) => VM_FIRMWARES[i % VM_FIRMWARES.length]!);
  if ((VM_FIRMWARES as readonly string[]).includes(v)) return v as VmFirmware;
  throw new Error(`--firmware: one of ${VM_FIRMWARES.join(", ")} or mixed, not ${JSON.stringify(v.slice(0, 40))}`);
}

async function up(): Promise<void> {
  const firmware = parseFirmware(opt.firmware, Number(opt.nodes));
  requireLabTools(typeof firmware === "string" ? [firmware] : firmware);
  const port = Number(opt.port);
  const nodes = Number(opt.nodes);
  for (const f of ["dist/server.mjs", "dist/agent.mjs", ".next/BUILD_ID"]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run npm run build (scripts/lab.sh does)`);
  }
  fs.mkdirSync(dataDir, { recursive: true });
  const password = adminPassword();
  say("preparing the RAM disk and the OS image (the first time downloads a Debian kernel and builds for ~1 min)");
  const artifacts = prepareArtifacts({
    dataDir,
    cacheDir: path.resolve(opt.cache ?? path.join(dataDir, "cache")),
    agent: path.resolve("dist/agent.mjs"),
    after: "shell",
    debian: opt.debian,
    // BIOS VMs get the BIOS stand-in image, UEFI and Secure Boot VMs the UEFI one (ESP with shim + signed GRUB).
    firmware: typeof firmware === "string" ? (firmware === "bios" ? "bios" : "uefi") : "both",
    log: (l) => say(l),
  });
  say(`bringing up ${nodes} VM(s) on ${opt.net}.0/24 (prefix ${opt.prefix}, firmware ${opt.firmware})`);
  const rack = await rackUp({ dir: rackDir, prefix: opt.prefix, net: opt.net, nodes, firmware, portBase: Number(opt["bmc-port-base"]), memMiB: opt.debian ? 1024 : 512, diskMiB: 128 });

  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ["dist/server.mjs"], {
    stdio: "inherit",
    env: {
      ...process.env,
      NODE_ENV: "production",
      NEXT_TELEMETRY_DISABLED: "1",
      PORT: String(port),
      RACKHAND_HOST: process.env.RACKHAND_HOST ?? "0.0.0.0",
      RACKHAND_DATA_DIR: dataDir,
      RACKHAND_ADMIN_PASSWORD: password,
      RACKHAND_DEMO: process.env.RACKHAND_DEMO ?? "false",
      RACKHAND_DNSMASQ_COMMAND: `ip netns exec ${rack.netns} dnsmasq`,
    },
  });
  let stopping = false;
  const stop = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    child.kill(sig);
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  const exited = new Promise<number>((r) => child.on("exit", (code) => r(code ?? 0)));

  try {
    await waitHealthy(url, child, 60_000);
    const client = await signIn(url, "admin", password);
    const p = await provisionRack(client, rack, { port, image: artifacts.image, uefiImage: artifacts.uefiImage, provide: true, agentEnvironment: opt.debian ? "debian" : "busybox", log: (l) => say(l) });
    say("");
    say(`Rackhand: http://localhost:${port}  (user admin, password ${password})`);
    say(`rack "virtual-rack" with ${p.machines.length} VM(s), each available to deploy; console logs in ${rackDir}/<vm>/console.log`);
    say("Ctrl-C stops Rackhand; `npm run lab -- down` removes the VMs, BMCs and network.");
  } catch (err) {
    say(`setup failed: ${(err as Error).message}`);
    stop("SIGTERM");
  }
  const code = await exited;
  if (opt["down-on-exit"]) {
    await rackDown(rackDir);
    say("rack removed");
  }
  process.exit(code);
}

async function status(): Promise<void> {
  const st = readRack(rackDir);
  if (!st) return say(`no lab in ${rackDir}`);
  say(`lab since ${st.createdAt}: netns ${st.netns}, bridge ${st.bridge}, ${st.net}.0/24`);
  for (const n of st.nodes) say(`${n.name}: ${n.firmware ?? "bios"}, MAC ${n.mac} IP ${n.ip} BMC 127.0.0.1:${n.bmc.port} VM ${vmRunning(n) ? "running" : "off"}`);
}

async function main() {
  if (command === "up") return up();
  if (command === "down") {
    await rackDown(rackDir);
    return say(`removed the lab in ${rackDir} (VMs, BMCs, namespace, links)`);
  }
  if (command === "status") return status();
  throw new Error(`unknown command ${command}: up, down or status`);
}

main().catch((err) => {
  console.error(`[lab] ${(err as Error).message}`);
  process.exit(1);
});
