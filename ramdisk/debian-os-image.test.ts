import { describe, expect, it } from "vitest";
import { buildDebianOsImage, DEBIAN_NET_STACKS, STACK_PACKAGES } from "./debian-os-image";

// Every value below reaches a shell script on the image (marker), a package list, or debootstrap's command line
// (suite, mirror): refused before anything is built or run.
const base = { kernelDir: "/nonexistent-kernel", outDir: "/nonexistent-out", cacheDir: "/nonexistent-cache", stack: "ifupdown" as const, marker: "OK-MARKER" };

describe("buildDebianOsImage refuses hostile options before doing anything", () => {
  it.each([
    "a b",
    "line\nbreak",
    "cr\rx",
    "nul\0x",
    "back\\slash",
    'quote"x',
    "single'x",
    "$(reboot)",
    "`id`",
    "a;b",
    "a&b",
    "../x",
    "ünïcödé",
    "",
  ])("marker %j", (marker) => {
    expect(() => buildDebianOsImage({ ...base, marker })).toThrow(/^marker: letters, digits and _ \. = - only$/);
  });

  it.each(["ifupdown;rm", "netplan\n", "NetworkManager", "../ifupdown", ""])("stack %j", (stack) => {
    expect(() => buildDebianOsImage({ ...base, stack: stack as "ifupdown" })).toThrow(/^stack: one of ifupdown, netplan, nm-keyfile$/);
  });

  it.each(["bookworm;id", "bookworm\n", "Bookworm", "book worm", "../sid", "$(id)", "x".repeat(40) + "1"])("suite %j", (suite) => {
    expect(() => buildDebianOsImage({ ...base, suite })).toThrow(/^suite: a Debian codename/);
  });

  it.each(["ftp://x/debian", "http://x/debian;id", "http://x/$(id)", "http://x/a b", "http://x/\n", "file:///etc", "http://x/'q'", "http://ünï/"])("mirror %j", (mirror) => {
    expect(() => buildDebianOsImage({ ...base, suite: "bookworm", mirror })).toThrow(/^mirror: an http\(s\) URL/);
  });

  it("each stack names plain Debian package names only", () => {
    for (const s of DEBIAN_NET_STACKS) for (const p of STACK_PACKAGES[s]) expect(p).toMatch(/^[a-z0-9][a-z0-9.+-]+$/);
  });
});
