import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { dpkgProvenance, dpkgProvenanceAll, LOADERS } from "./loaders";

// Needs the loader packages (scripts/install-system-deps.sh): a missing one fails here, it is not skipped.
describe("dpkg provenance of the boot loaders", () => {
  it("asks dpkg for every loader at once and gets what one query per loader gets", () => {
    const items = LOADERS.map((l) => ({ file: fs.realpathSync(l.source), pkg: l.package }));
    const one = items.map((i) => dpkgProvenance(i.file, i.pkg));
    expect(one.every((p) => p.version !== null)).toBe(true);
    expect(dpkgProvenanceAll(items)).toEqual(one);
    // A file dpkg does not know keeps its expected package and has no version; the others are unaffected.
    const withUnknown = [...items, { file: "/etc/hostname", pkg: "no-such-package-x" }];
    expect(dpkgProvenanceAll(withUnknown)).toEqual([...one, { package: "no-such-package-x", version: null }]);
  });
});
