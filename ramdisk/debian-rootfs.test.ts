import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { hostMirror, hostSuite } from "./debian-rootfs";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rackhand-apt-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => (fs.writeFileSync(path.join(dir, name), text), path.join(dir, name));

describe("the Debian agent environment's build inputs", () => {
  it("reads this host's release from os-release", () => {
    expect(hostSuite('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n')).toBe("bookworm");
    expect(() => hostSuite("ID=debian\n")).toThrow(/--suite/);
  });

  it("takes the mirror apt uses for the suite, from deb822 and one-line sources, skipping disabled and deb-src entries", () => {
    const sources = file(
      "debian.sources",
      [
        "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no",
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main",
        "Types: deb\nURIs: http://mirror.example/debian http://second.example/debian\nSuites: bookworm bookworm-updates\nComponents: main",
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main",
      ].join("\n\n"),
    );
    const list = file("extra.list", "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://local.example/debian trixie main\n");
    expect(hostMirror("bookworm", [sources, list])).toBe("http://mirror.example/debian");
    expect(hostMirror("bookworm-security", [sources, list])).toBe("http://mirror.example/debian-security");
    expect(hostMirror("trixie", [sources, list])).toBe("http://local.example/debian");
    expect(hostMirror("sid", [sources, list])).toBeNull();
  });
});
