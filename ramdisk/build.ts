/**
 * npm run ramdisk — build the agent RAM disk (ramdisk/builder.ts) into <dataDir>/http/ramdisk/{vmlinuz,
 * initrd.img, manifest.json}, served at /boot/ramdisk/... and booted by the netboot tree's agent entries.
 * Options: --out DIR, --cache DIR, --compress zstd|gzip|xz, --kernel-dir DIR (an extracted linux-image .deb),
 * --agent FILE, --firmware-dir DIR (where the firmware the drivers declare is found; default /lib/firmware),
 * --debian (also build the Debian variant's rootfs.tar.zst with debootstrap; --suite, --mirror).
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { buildRamdisk } from "./builder";
import { buildDebianRootfs } from "./debian-rootfs";

const { values: opt } = parseArgs({
  options: {
    out: { type: "string" },
    cache: { type: "string" },
    compress: { type: "string", default: "zstd" },
    "kernel-dir": { type: "string" },
    agent: { type: "string", default: "dist/agent.mjs" },
    "firmware-dir": { type: "string" },
    debian: { type: "boolean", default: false },
    suite: { type: "string" },
    mirror: { type: "string" },
  },
});
const dataDir = path.resolve(process.env.RACKHAND_DATA_DIR ?? "data");

try {
  if (!["zstd", "gzip", "xz"].includes(opt.compress)) throw new Error(`--compress: zstd, xz or gzip, not ${opt.compress}`);
  buildRamdisk({
    outDir: path.resolve(opt.out ?? path.join(dataDir, "http/ramdisk")),
    cacheDir: path.resolve(opt.cache ?? path.join(dataDir, "cache/ramdisk")),
    compress: opt.compress as "zstd" | "gzip" | "xz",
    kernelDir: opt["kernel-dir"],
    agent: opt.agent,
    firmwareDir: opt["firmware-dir"],
    log: (s) => console.log(`[ramdisk] ${s}`),
  });
  if (opt.debian) {
    buildDebianRootfs({
      outDir: path.resolve(opt.out ?? path.join(dataDir, "http/ramdisk")),
      cacheDir: path.resolve(opt.cache ?? path.join(dataDir, "cache/ramdisk")),
      agent: opt.agent,
      suite: opt.suite,
      mirror: opt.mirror,
      log: (s) => console.log(`[ramdisk] ${s}`),
    });
  }
} catch (err) {
  console.error(`[ramdisk] ${(err as Error).message}`);
  process.exit(1);
}
