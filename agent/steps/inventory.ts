import fs from "node:fs";
import path from "node:path";
import { run, type LogFn } from "../exec";
import { listDisks } from "./disk";
import type { StepHandler } from "./context";

function read(p: string): string | null {
  try {
    return fs.readFileSync(p, "utf8");
  } catch {
    return null;
  }
}

/** CPU model, sockets, cores and threads from /proc/cpuinfo. */
export function parseCpuinfo(text: string) {
  const blocks = text.split(/\n\s*\n/).filter((b) => b.trim());
  const field = (b: string, k: string) => b.match(new RegExp(`^${k}\\s*:\\s*(.*)$`, "m"))?.[1]?.trim();
  const sockets = new Set(blocks.map((b) => field(b, "physical id") ?? "0"));
  const cores = new Set(blocks.map((b) => `${field(b, "physical id") ?? "0"}:${field(b, "core id") ?? field(b, "processor")}`));
  return {
    model: blocks.map((b) => field(b, "model name")).find(Boolean) ?? null,
    sockets: sockets.size,
    cores: cores.size,
    threads: blocks.length,
    flags: (blocks[0] && field(blocks[0], "flags")?.split(" ").filter((f) => ["vmx", "svm", "aes", "avx2", "avx512f"].includes(f))) ?? [],
  };
}

/** MemTotal in bytes from /proc/meminfo. */
export function parseMemTotal(text: string): number | null {
  const kib = text.match(/^MemTotal:\s+(\d+)\s+kB/m)?.[1];
  return kib ? Number(kib) * 1024 : null;
}

interface IpAddr {
  ifname?: string;
  address?: string;
  mtu?: number;
  operstate?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

function nics(ipJson: string | null) {
  const byName = new Map<string, IpAddr>();
  if (ipJson) for (const i of JSON.parse(ipJson) as IpAddr[]) if (i.ifname) byName.set(i.ifname, i);
  const names = fs.existsSync("/sys/class/net") ? fs.readdirSync("/sys/class/net") : [...byName.keys()];
  return names
    .filter((n) => n !== "lo")
    .map((name) => {
      const sys = (f: string) => read(path.join("/sys/class/net", name, f))?.trim() ?? null;
      const ip = byName.get(name);
      const speed = Number(sys("speed"));
      return {
        name,
        mac: ip?.address ?? sys("address"),
        mtu: ip?.mtu ?? (Number(sys("mtu")) || null),
        state: ip?.operstate ?? sys("operstate"),
        speedMbps: speed > 0 ? speed : null,
        driver: (() => {
          try {
            return path.basename(fs.readlinkSync(path.join("/sys/class/net", name, "device/driver")));
          } catch {
            return null;
          }
        })(),
        addresses: (ip?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`),
      };
    });
}

/** CPU, memory, disks and NICs (also sent with every lookup). @throws StepFailure when lsblk is missing or fails */
export async function collectInventory(log: LogFn = () => undefined, signal?: AbortSignal): Promise<Record<string, unknown>> {
  const cpu = parseCpuinfo(read("/proc/cpuinfo") ?? "");
  const memoryBytes = parseMemTotal(read("/proc/meminfo") ?? "");
  const disks = (await listDisks(signal)).map((d) => ({
    name: d.name,
    path: d.path ?? `/dev/${d.name}`,
    sizeBytes: Number(d.size ?? 0),
    model: d.model?.trim() ?? null,
    serial: d.serial?.trim() ?? null,
    rotational: d.rota === true || d.rota === "1" || d.rota === 1,
    removable: d.rm === true || d.rm === "1" || d.rm === 1,
    transport: d.tran ?? null,
  }));
  // `ip` is optional: /sys alone still names every NIC with its MAC.
  const ip = await run("ip", ["-j", "addr"], { signal }).catch(() => null);
  const interfaces = nics(ip && ip.code === 0 ? ip.stdout : null);
  log(`cpu: ${cpu.model ?? "unknown"}, ${cpu.sockets} socket(s), ${cpu.cores} core(s), ${cpu.threads} thread(s)`);
  log(`memory: ${memoryBytes === null ? "unknown" : `${Math.round(memoryBytes / 2 ** 20)} MiB`}`);
  for (const d of disks) log(`disk ${d.path}: ${d.sizeBytes} bytes${d.model ? `, ${d.model}` : ""}${d.rotational ? ", rotational" : ""}`);
  for (const n of interfaces) log(`nic ${n.name}: ${n.mac ?? "no MAC"} ${n.state ?? ""} ${n.addresses.join(" ")}`.trimEnd());
  return {
    cpus: cpu.threads,
    cpu,
    memoryBytes,
    memoryMiB: memoryBytes === null ? null : Math.round(memoryBytes / 2 ** 20),
    disks,
    nics: interfaces,
    collectedAt: new Date().toISOString(),
  };
}

/** Inventory: the result becomes the machine's inventory on the server. */
export const inventory: StepHandler = ({ log, signal }) => collectInventory(log, signal);
