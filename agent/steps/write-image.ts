import crypto from "node:crypto";
import fs from "node:fs";
import { Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import { sleep } from "../../lib/retry";
import { permanent, StepFailure, transient } from "../errors";
import { run, type LogFn } from "../exec";
import type { StepHandler } from "./context";
import { resolveTarget, targetSize } from "./disk";
import { prepareFirmwareBoot } from "./firmware-boot";
import { decompress, httpGet, imageFormat, redactUrl } from "./image-source";
import { parseParams } from "./params";

const MiB = 1 << 20;
const writeImageParams = z.object({
  url: z.string().regex(/^https?:\/\/\S+$/, "must be an http(s) URL"),
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, "must be 64 hex digits").nullish(),
  format: z.string().nullish(),
  target: z.string().startsWith("/").nullish(),
  targetDisk: z.string().startsWith("/").nullish(),
});

/** sha256 of the first `length` bytes of the target, read back after the write. */
async function readBackSha256(target: string, length: number, block: boolean, signal: AbortSignal): Promise<string> {
  // Block devices: drop the device's buffer cache so the read comes from the disk, not from what we just wrote.
  if (block) await run("blockdev", ["--flushbufs", target], { signal }).catch(() => undefined);
  const hash = crypto.createHash("sha256");
  const fd = fs.openSync(target, "r");
  try {
    const buf = Buffer.alloc(4 * MiB);
    for (let off = 0; off < length; ) {
      if (signal.aborted) throw transient("read-back aborted");
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, length - off), off);
      if (n <= 0) throw permanent(`read-back: ${target} ended at byte ${off} of ${length}`);
      hash.update(buf.subarray(0, n));
      off += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}

/** A progress line at most every `everyMs`; the percentage is of the (compressed) download when its length is known. */
/**
 * Writes a stream at increasing offsets of an fd the caller owns (fs.WriteStream may close the fd when the
 * pipeline fails, and the caller must fsync and close it exactly once).
 */
function fdWriter(fd: number): Writable {
  let pos = 0;
  return new Writable({
    highWaterMark: MiB,
    write(chunk: Buffer, _enc, cb) {
      const next = (off: number): void =>
        fs.write(fd, chunk, off, chunk.length - off, pos, (err, n) => {
          if (err) return cb(err);
          pos += n;
          if (off + n < chunk.length) return next(off + n); // a short write: the rest follows
          cb();
        });
      next(0);
    },
  });
}

function progressLogger(log: LogFn, everyMs: number, downloaded: () => number, total: number | null) {
  const started = Date.now();
  let last = started;
  return (bytes: number, force = false) => {
    const now = Date.now();
    if (!force && now - last < everyMs) return;
    last = now;
    const s = Math.max((now - started) / 1000, 0.001);
    const pct = total ? ` (${Math.min(100, Math.floor((downloaded() / total) * 100))}% of the download)` : "";
    log(`written ${(bytes / MiB).toFixed(1)} MiB, ${(bytes / 1e6 / s).toFixed(1)} MB/s${pct}`);
  };
}

/**
 * Stream an image over HTTP onto the target disk (or file): decompress on the fly, hash the decompressed
 * stream, write without truncating, fsync, then compare the sha256 with the expected one and with a read-back
 * of what landed on the disk. A wrong checksum or a corrupt archive is permanent; a broken download transient.
 */
export const writeImage: StepHandler = async ({ params, log, signal, config }) => {
  const p = parseParams("write_image", writeImageParams, params);
  const format = imageFormat(p.format, p.url);
  const target = await resolveTarget(p.target ?? p.targetDisk, config.targetDisk, log, signal);
  const { size, block } = targetSize(target);
  log(`writing ${redactUrl(p.url)} (${format}) to ${target} (${size} bytes)`);
  if (!p.sha256) log("no sha256 given: only the read-back is verified");

  const res = await httpGet(p.url, signal);
  const compressedLength = Number(res.headers["content-length"]) || null;
  let downloaded = 0;
  let networkError: Error | null = null;
  res.on("data", (c: Buffer) => (downloaded += c.length));
  const dec = decompress(format, res, signal);
  res.on("error", (e) => {
    networkError = e;
    dec.output.destroy(transient(`download of ${redactUrl(p.url)} broke off: ${e.message}`));
  });

  const hash = crypto.createHash("sha256");
  let bytes = 0;
  const progress = progressLogger(log, config.progressMs, () => downloaded, compressedLength);
  const tap = new Transform({
    highWaterMark: MiB,
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes > size) return cb(permanent(`image is larger than the target: more than ${size} bytes`));
      hash.update(chunk);
      progress(bytes);
      cb(null, chunk);
    },
  });
  const fd = fs.openSync(target, "r+"); // never truncate or create: block devices, and files standing in for them
  let outcome: PromiseSettledResult<unknown>[];
  try {
    outcome = await Promise.allSettled([
      pipeline(dec.output, tap, fdWriter(fd), { signal }),
      dec.done,
    ]);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  const failed = outcome.find((o): o is PromiseRejectedResult => o.status === "rejected");
  if (failed) throw imageError(failed.reason, networkError, signal);
  progress(bytes, true);

  const sha256 = hash.digest("hex");
  if (p.sha256 && sha256 !== p.sha256.toLowerCase()) {
    throw permanent(`sha256 mismatch: the image is ${sha256}, expected ${p.sha256.toLowerCase()}`);
  }
  const readBack = await readBackSha256(target, bytes, block, signal);
  if (readBack !== sha256) throw permanent(`read-back of ${target} differs from what was written (${readBack} != ${sha256})`);
  log(`verified: ${bytes} bytes, sha256 ${sha256}${p.sha256 ? " (as expected)" : ""}, read back identical`);
  if (block) await rereadPartitions(target, log, signal);
  // Under UEFI: the ESP's fallback loader must be there, and an NVRAM entry points at it.
  const boot = await prepareFirmwareBoot(target, block, config.efiDir, log, signal);
  return { target, format, bytes, sha256, verified: true, boot };
};

/**
 * The image carries its own partition table: ask the kernel to re-read it so the partitions (e.g. /dev/vda1,
 * where configure_network writes) exist before the next step. udev is absent in the RAM disk; devtmpfs adds the
 * nodes. Failing to re-read is logged, not fatal: the image is written and verified, and a later step names
 * the missing partition if it needs it.
 */
async function rereadPartitions(target: string, log: LogFn, signal: AbortSignal): Promise<void> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    const r = await run("blockdev", ["--rereadpt", target], { signal }).catch((e: Error) => ({ code: -1, stderr: e.message }));
    if (r.code === 0) return log(`partition table of ${target} re-read`);
    if (attempt === 5) return log(`could not re-read the partition table of ${target}: ${r.stderr.trim()}`, "stderr");
    await sleep(200 * attempt); // EBUSY right after the write: the device settles
  }
}

function imageError(err: unknown, networkError: Error | null, signal: AbortSignal): StepFailure {
  if (networkError) return transient(`download broke off: ${networkError.message}`);
  if (err instanceof StepFailure) return err;
  if (signal.aborted) return transient("write_image aborted (timeout or cancel)");
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === "string" && e.code.startsWith("Z_")) return permanent(`the image is not valid gzip: ${e.message}`);
  if (e?.code === "ENOSPC") return permanent(`target is full: ${e.message}`);
  if (e?.code === "EBUSY" || e?.code === "EAGAIN") return transient(e.message);
  return permanent(e instanceof Error ? e.message : String(err));
}
