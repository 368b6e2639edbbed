/** Output schemas of the netboot procedures (OS profiles, netboot settings and status); see outputs.ts. */
import { z } from "zod";
import { PROXY_MODES, AGENT_ENVIRONMENTS, IMAGE_FORMATS, INSTALL_TEMPLATES, NET_CONFIG_FORMATS, NETBOOT_MODES, OS_FAMILIES, PROFILE_KINDS } from "../../lib/netboot";

const n = z.number();
const s = z.string();
const ns = s.nullable();
const nn = n.nullable();
const opt = <T extends z.ZodType>(t: T) => t.nullable().optional();
const netbootSettings = z.object({
  mode: z.enum(NETBOOT_MODES),
  interface: s,
  serverAddress: s,
  rangeStart: s,
  rangeEnd: s,
  netmask: s,
  gateway: opt(s),
  domain: opt(s),
  dnsServers: z.array(s),
  leaseTimeS: n,
  httpBaseUrl: s,
  ipv6RouterAdvertisements: z.boolean(),
  dnsPort: n,
  agentEnvironment: z.enum(AGENT_ENVIRONMENTS),
  proxyMode: z.enum(PROXY_MODES),
  proxyPort: n,
  proxyUrl: opt(s),
  installerLogPort: n,
});
const osProfile = z.object({
  id: n,
  name: s,
  kind: z.enum(PROFILE_KINDS),
  machineCount: n,
  osFamily: opt(z.enum(OS_FAMILIES)),
  kernel: opt(s),
  initrd: opt(s),
  kernelArgs: opt(s),
  imageUrl: opt(s),
  imageSha256: opt(s),
  imageFormat: opt(z.enum(IMAGE_FORMATS)),
  template: opt(z.enum(INSTALL_TEMPLATES)),
  options: z.object({
    locale: s,
    timezone: s,
    username: s,
    sshKeys: z.array(s),
    packages: z.array(s),
    mirror: opt(s),
    passwordHash: opt(s),
    disk: opt(s),
    netConfig: opt(z.enum(NET_CONFIG_FORMATS)),
    rootPartition: opt(s),
    raid: opt(z.object({ level: z.union([z.literal(0), z.literal(1), z.literal(10)]), devices: z.array(s), name: s, metadata: z.enum(["1.0", "1.2"]) })),
    postInstallScript: opt(z.object({ script: s, interpreter: s, timeoutS: n })),
    installLayout: opt(z.object({ espMiB: n, swapMiB: n, rootMiB: opt(n) })),
    suite: opt(s),
    initramfsDrivers: opt(s),
  }),
});
export const netbootOut = {
  profiles: z.array(osProfile),
  settings: netbootSettings,
  status: z
    .object({
      mode: z.enum(NETBOOT_MODES),
      lastError: ns,
      backend: z.object({ mode: z.enum(NETBOOT_MODES), running: z.boolean(), pid: nn, restarts: n, lastExit: ns }).nullable(),
      lastReconcile: z.object({ at: n, ms: n, written: n, removed: n, full: z.boolean() }).nullable(),
      treeDir: s,
      agentFiles: z.object({ ramdisk: z.boolean(), debianRootfs: z.boolean() }),
      loaders: z.array(
        z.object({ name: s, purpose: s, package: s, version: ns, sha256: ns, size: nn, source: s, error: ns }),
      ),
      installerFiles: z.array(
        z.object({ id: s, pkg: s, profileName: s, version: ns, placed: z.boolean(), kernel: s, initrd: s, error: ns }),
      ),
      packageProxy: z
        .object({
          mode: z.enum(PROXY_MODES),
          url: ns,
          running: z.boolean(),
          pid: nn,
          error: ns,
          upstreamProxy: ns,
          stats: z
            .object({
              bytesFromUpstream: n,
              bytesToClients: n,
              requests: n,
              hitRate: nn,
              upstreamErrors: n,
              recentErrors: z.array(z.object({ ts: n, client: s, path: s, code: nn })),
              cacheBytes: n,
            })
            .nullable(),
        })
        .nullable()
        .optional(),
    })
    .nullable(),
};
