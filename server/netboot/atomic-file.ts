import fs from "node:fs";
import path from "node:path";

/**
 * Put a file in place atomically: `fill` writes a temporary name next to `dest` (same directory, so the rename
 * never crosses a file system), which then replaces `dest` in one rename. A failure leaves `dest` as it was and no
 * temporary file behind. Used for boot loaders and installer files; the tree itself goes through TreeWriter.
 */
export function placeFileAtomically(dest: string, fill: (tmp: string) => void): void {
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${process.pid}.tmp`);
  try {
    fs.rmSync(tmp, { force: true });
    fill(tmp);
    fs.renameSync(tmp, dest);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}
