/**
 * A writer for the "newc" cpio format the Linux kernel unpacks as an initramfs (see the kernel's
 * Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte ASCII header per entry, the name,
 * the data, each padded to 4 bytes, ended by "TRAILER!!!".
 */

export interface CpioEntry {
  /** Path inside the archive, without a leading slash (e.g. "usr/bin/node"). */
  name: string;
  kind: "file" | "dir" | "symlink";
  /** Permission bits (e.g. 0o755). */
  mode: number;
  /** File contents, or the link target for a symlink. */
  data?: Buffer;
}

const TYPE_BITS = { file: 0o100000, dir: 0o040000, symlink: 0o120000 } as const;

const hex8 = (n: number) => n.toString(16).padStart(8, "0");
const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);

function header(ino: number, mode: number, nlink: number, size: number, nameSize: number): Buffer {
  const fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, nameSize, 0];
  return Buffer.from("070701" + fields.map(hex8).join(""), "ascii");
}

/** Encode entries (owned by root, mtime 0, so the same inputs always give the same bytes). */
export function* cpioChunks(entries: Iterable<CpioEntry>): Generator<Buffer> {
  let ino = 1;
  for (const e of entries) {
    if (!e.name || e.name.startsWith("/") || e.name.split("/").includes("..")) throw new Error(`bad cpio entry name ${JSON.stringify(e.name)}`);
    const data = e.kind === "dir" ? Buffer.alloc(0) : (e.data ?? Buffer.alloc(0));
    const name = Buffer.from(e.name + "\0", "utf8");
    const h = header(ino++, TYPE_BITS[e.kind] | (e.mode & 0o7777), e.kind === "dir" ? 2 : 1, data.length, name.length);
    yield Buffer.concat([h, name, pad4(h.length + name.length)]);
    if (data.length) yield Buffer.concat([data, pad4(data.length)]);
  }
  const end = Buffer.from("TRAILER!!!\0", "ascii");
  const h = header(0, 0, 1, 0, end.length);
  yield Buffer.concat([h, end, pad4(h.length + end.length)]);
}
