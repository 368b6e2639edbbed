/**
 * GET/HEAD /boot/...: the HTTP side of netboot.
 *   /boot/m/<id>/<token>/<file>   per-machine install files (install-files.ts); POST .../done reports completion
 *   /boot/<path>                   static files: <dataDir>/http/<path> (kernels, initrds, images, the RAM disk),
 *                                  then the generated TFTP tree (iPXE scripts), with Range support
 * Paths are checked segment by segment and resolved with realpath, so nothing outside the two roots is served.
 */
import fs from "node:fs";
import type http from "node:http";
import { readJson } from "./json";
import path from "node:path";
import { pipeline } from "node:stream";
import type { Domain } from "../context";
import { installContext, profileTemplate, renderInstallFile, reportInstallDone } from "../netboot/install-files";
import type { InstallTokens } from "../netboot/install-token";

export interface BootRoutes {
  domain: Domain;
  tokens: InstallTokens;
  /** The installer finished: let the machine's job go on (its wait_install step). False when no job waits. */
  installDone?: (machineId: number) => Promise<boolean>;
  /** An installer's reporting webhook event (subiquity), POSTed to .../events. False: not taken. */
  installerEvent?: (machineId: number, body: unknown) => boolean | Promise<boolean>;
  /** Static roots, searched in order. */
  roots: string[];
}

const TYPES: Record<string, string> = {
  ".ipxe": "text/plain; charset=utf-8",
  ".cfg": "text/plain; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".yaml": "text/yaml; charset=utf-8",
  ".iso": "application/x-iso9660-image",
  ".gz": "application/gzip",
  ".xz": "application/x-xz",
  ".zst": "application/zstd",
  ".img": "application/octet-stream",
  ".raw": "application/octet-stream",
  ".qcow2": "application/x-qemu-disk",
  ".efi": "application/efi",
  ".sha256": "text/plain; charset=utf-8",
};

export function contentTypeOf(file: string): string {
  return TYPES[path.extname(file).toLowerCase()] ?? "application/octet-stream";
}

function send(res: http.ServerResponse, status: number, body: string, type = "text/plain; charset=utf-8"): void {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

export async function serveBoot(req: http.IncomingMessage, res: http.ServerResponse, pathname: string, r: BootRoutes): Promise<void> {
  let segs: string[];
  try {
    segs = pathname.slice("/boot/".length).split("/").map(decodeURIComponent);
  } catch {
    return send(res, 400, "Bad path\n");
  }
  if (!segs.length || segs.some((s) => s === "" || s === "." || s === ".." || /[\u0000-\u001f\\]/.test(s))) return send(res, 404, "Not found\n");

  if (segs[0] === "m") {
    const id = Number(segs[1]);
    const token = segs[2] ?? "";
    const name = segs.slice(3).join("/");
    const ctx = Number.isInteger(id) && id > 0 && /^[A-Za-z0-9_-]{16,64}$/.test(token) ? await installContext(r.domain, r.tokens, id, token) : null;
    if (!ctx) return send(res, 404, "Not found\n");
    if (name === "done") {
      if (req.method !== "POST") return send(res, 405, "Use POST\n");
      if (!(await r.installDone?.(id))) await reportInstallDone(r.domain, ctx);
      return send(res, 200, "ok\n");
    }
    if (name === "events") {
      if (req.method !== "POST") return send(res, 405, "Use POST\n");
      let body: unknown;
      try {
        // curtin attaches its log files (base64) to a finish event, a failing one included: room for them.
        body = await readJson(req, 4 << 20);
      } catch {
        return send(res, 400, "Bad event\n");
      }
      return (await r.installerEvent?.(id, body)) ? send(res, 200, "ok\n") : send(res, 400, "Event not taken\n");
    }
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "Method not allowed\n");
    const file = renderInstallFile(ctx, await profileTemplate(r.domain, id), name);
    if (!file) return send(res, 404, "Not found\n");
    res.writeHead(200, { "content-type": file.contentType, "cache-control": "no-store", "content-length": Buffer.byteLength(file.body) });
    res.end(req.method === "HEAD" ? undefined : file.body);
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "Method not allowed\n");
  for (const root of r.roots) {
    const found = await resolveInside(root, segs);
    if (found) return serveFile(req, res, found.file, found.size);
  }
  send(res, 404, "Not found\n");
}

async function resolveInside(root: string, segs: string[]): Promise<{ file: string; size: number } | null> {
  try {
    const realRoot = await fs.promises.realpath(root);
    const file = await fs.promises.realpath(path.join(realRoot, ...segs));
    if (!file.startsWith(realRoot + path.sep)) return null; // a symlink pointing out of the root
    const st = await fs.promises.stat(file);
    return st.isFile() ? { file, size: st.size } : null;
  } catch {
    return null;
  }
}

/** One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`) as iPXE, curl and installers send; multi-range is served whole. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | "unsatisfiable" | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  let start: number;
  let end: number;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return "unsatisfiable";
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return "unsatisfiable";
  return { start, end };
}

function serveFile(req: http.IncomingMessage, res: http.ServerResponse, file: string, size: number): void {
  const range = parseRange(req.headers.range, size);
  const headers: Record<string, string | number> = { "content-type": contentTypeOf(file), "accept-ranges": "bytes" };
  if (range === "unsatisfiable") {
    res.writeHead(416, { ...headers, "content-range": `bytes */${size}` });
    res.end();
    return;
  }
  const { start, end } = range ?? { start: 0, end: size - 1 };
  if (range) headers["content-range"] = `bytes ${start}-${end}/${size}`;
  headers["content-length"] = size === 0 ? 0 : end - start + 1;
  res.writeHead(range ? 206 : 200, headers);
  if (req.method === "HEAD" || size === 0) return void res.end();
  // pipeline, not pipe: when the client goes away mid-file (iPXE and curl abort downloads), the file stream is
  // destroyed and its descriptor closed; with pipe() it stayed open for good.
  pipeline(fs.createReadStream(file, { start, end, highWaterMark: 1 << 20 }), res, () => {});
}
