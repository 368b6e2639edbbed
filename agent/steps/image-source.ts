import { spawn } from "node:child_process";
import http from "node:http";
import https from "node:https";
import { PassThrough, type Readable } from "node:stream";
import zlib from "node:zlib";
import { permanent, transient } from "../errors";

export const IMAGE_FORMATS = ["raw", "raw.gz", "raw.xz", "raw.zst"] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

/** The URL without query and fragment: signed URLs carry credentials that must not reach the log. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}${u.search ? "?…" : ""}`;
  } catch {
    return "(invalid URL)";
  }
}

/** The format named by the step, else guessed from the URL's suffix. @throws StepFailure (permanent) */
export function imageFormat(format: string | null | undefined, url: string): ImageFormat {
  const f = format ?? (/\.gz$/.test(new URL(url).pathname) ? "raw.gz" : /\.xz$/.test(url) ? "raw.xz" : /\.zstd?$/.test(url) ? "raw.zst" : "raw");
  if (!(IMAGE_FORMATS as readonly string[]).includes(f)) throw permanent(`write_image: format ${f} is not supported (use ${IMAGE_FORMATS.join(", ")})`);
  return f as ImageFormat;
}

/**
 * GET an image over HTTP(S), following up to 5 redirects. 5xx, 408 and 429 are transient (the mirror may be
 * busy), other statuses permanent (a wrong URL stays wrong). @throws StepFailure
 */
export function httpGet(url: string, signal: AbortSignal, redirects = 5): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const get = u.protocol === "https:" ? https.get : u.protocol === "http:" ? http.get : null;
    if (!get) return reject(permanent(`write_image: unsupported URL scheme ${u.protocol}`));
    const req = get(u, { signal, headers: { "user-agent": "rackhand-agent" } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location && redirects > 0) {
        res.resume();
        return resolve(httpGet(new URL(res.headers.location, u).toString(), signal, redirects - 1));
      }
      if (status === 200) return resolve(res);
      res.resume();
      const msg = `GET ${redactUrl(url)}: HTTP ${status}`;
      reject(status >= 500 || status === 408 || status === 429 ? transient(msg) : permanent(msg));
    });
    req.on("error", (e) => reject(transient(`GET ${redactUrl(url)}: ${e.message}`)));
  });
}

export interface Decompressor {
  /** The decompressed stream. */
  output: Readable;
  /** Resolves when the decompressor is done; rejects (permanent) when the data was not in its format. */
  done: Promise<void>;
}

/**
 * Decompress on the fly: gzip in-process (zlib, 1 MiB chunks: the default 16 KiB makes writes 3x slower),
 * xz and zstd through `xz -dc` / `zstd -dc` children (argument arrays; missing tools fail permanently).
 */
export function decompress(format: ImageFormat, input: Readable, signal: AbortSignal): Decompressor {
  if (format === "raw") {
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    input.pipe(out);
    return { output: out, done: Promise.resolve() };
  }
  if (format === "raw.gz") {
    const gunzip = zlib.createGunzip({ chunkSize: 1 << 20 });
    input.pipe(gunzip);
    return { output: gunzip, done: Promise.resolve() };
  }
  const tool = format === "raw.xz" ? "xz" : "zstd";
  const child = spawn(tool, ["-dc"], { stdio: ["pipe", "pipe", "pipe"], signal });
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")).slice(-2000));
  input.pipe(child.stdin);
  // The child may stop reading (bad data) before the download ends; that shows in its exit code.
  child.stdin.on("error", () => undefined);
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", (e: NodeJS.ErrnoException) =>
      reject(e.code === "ENOENT" ? permanent(`write_image: ${tool} is not installed`) : transient(`${tool}: ${e.message}`)),
    );
    child.on("close", (code, sig) => {
      if (code === 0) resolve();
      else if (sig) reject(transient(`${tool} killed by ${sig}`));
      else reject(permanent(`${tool} -dc failed (exit ${code}): ${stderr.trim().split("\n").pop() ?? "corrupt data"}`));
    });
  });
  return { output: child.stdout, done };
}
