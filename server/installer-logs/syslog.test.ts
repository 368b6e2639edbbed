import { describe, expect, it } from "vitest";
import { DiProgress, diFatal, diPhaseOf } from "./di-phases";
import { redactInstallTokens } from "./receiver";
import { formatSyslogLine, parseSyslog } from "./syslog";

// Datagrams as d-i 20230607+deb12u15 sent them (../shared/lab/installer README, remote syslog section).
const DI = [
  "<14>Dec  4 02:37:09 netcfg[502]: INFO: Gateway reachable on enp0s1",
  "<13>Dec  4 02:37:56 preseed: successfully loaded preseed file from http://10.88.0.1:8000/preseed.cfg",
  "<14>Dec  4 02:38:11 main-menu[258]: INFO: Menu item 'choose-mirror' selected",
  "<14>Dec  4 02:38:15 main-menu[258]: INFO: Menu item 'download-installer' selected",
  "<13>Dec  4 02:38:21 net-retriever: regular: dists/bookworm/main/debian-installer/binary-amd64/Packages.xz /tmp/net-retriever-2907-Packages",
  "<14>Dec  4 02:38:27 anna[2905]: 2026-12-04 02:38:27 ERROR 404: Not Found.",
  "<12>Dec  4 02:38:27 anna[2905]: WARNING **: package retrieval failed",
];

describe("syslog parser", () => {
  it("parses d-i's RFC 3164 datagrams (no host name)", () => {
    expect(parseSyslog(DI[0]!)).toEqual({ format: "rfc3164", facility: 1, severity: 6, timestamp: "Dec  4 02:37:09", host: null, app: "netcfg", pid: "502", msgId: null, msg: "INFO: Gateway reachable on enp0s1" });
    expect(parseSyslog(DI[1]!)).toMatchObject({ app: "preseed", pid: null, severity: 5, msg: "successfully loaded preseed file from http://10.88.0.1:8000/preseed.cfg" });
    expect(parseSyslog("<6>Dec  4 02:49:54 kernel: [  802.723272] EXT4-fs (vda): mounted filesystem")).toMatchObject({ facility: 0, severity: 6, app: "kernel", msg: "[  802.723272] EXT4-fs (vda): mounted filesystem" });
    expect(formatSyslogLine(parseSyslog(DI[6]!))).toBe("anna[2905]: warning: WARNING **: package retrieval failed");
  });

  it("parses RFC 3164 with a host name (rsyslog, busybox syslogd)", () => {
    expect(parseSyslog("<30>Dec 14 10:01:02 node-007 anaconda[1234]: Running pre-installation scripts")).toMatchObject({ host: "node-007", app: "anaconda", pid: "1234", severity: 6, facility: 3, msg: "Running pre-installation scripts" });
  });

  it("parses RFC 5424 with nil values, structured data (escaped ]) and a BOM", () => {
    expect(parseSyslog("<165>1 2026-12-04T02:38:27.003Z node-007 anaconda 1234 ID47 - Installing bash")).toEqual({ format: "rfc5424", facility: 20, severity: 5, timestamp: "2026-12-04T02:38:27.003Z", host: "node-007", app: "anaconda", pid: "1234", msgId: "ID47", msg: "Installing bash" });
    expect(parseSyslog('<11>1 - - - - - [x@1 a="q\\"]x" b="2"][y@2] \ufeffdisk full')).toMatchObject({ severity: 3, timestamp: null, host: null, app: null, msg: "disk full" });
  });

  it("keeps hostile payloads in one line of their field: newline, CR, NUL, quotes, $(…), over-long, non-ASCII, bad PRI", () => {
    const m = parseSyslog("<14>Dec  4 02:37:09 netcfg[1]: a\nphase: finish\r\0b \"'$(reboot); & ../ é");
    expect(m.msg).toBe("a phase: finish  b \"'$(reboot); & ../ é");
    expect(m.msg).not.toMatch(/[\n\r\0]/);
    expect(parseSyslog("<14>" + "x".repeat(100_000)).msg.length).toBeLessThanOrEqual(8192);
    expect(parseSyslog("<999>hello")).toMatchObject({ format: "raw", msg: "<999>hello" });
    expect(parseSyslog("no header at all\n")).toMatchObject({ format: "raw", msg: "no header at all" });
    expect(parseSyslog(Buffer.from([0x3c, 0x31, 0x34, 0x3e, 0xff, 0xfe, 0x41])).msg).toBe("\ufffd\ufffdA");
  });
});

describe("d-i phases", () => {
  it("derives network → preseed → installer components from the recorded run, and the fatal download failure", () => {
    const p = new DiProgress();
    const seen = DI.map((l, i) => p.see(parseSyslog(l), i));
    expect(seen).toEqual(["network", "preseed", null, "installer components", null, null, null]);
    expect(DI.map((l) => diFatal(parseSyslog(l)))).toEqual([null, null, null, null, null, null, "installer components could not be downloaded"]);
  });

  it("maps the later main-menu items of a full run and never goes back", () => {
    const item = (x: string) => parseSyslog(`<14>Dec  4 02:40:00 main-menu[258]: INFO: Menu item '${x}' selected`);
    expect(["partman-base", "bootstrap-base", "pkgsel", "grub-installer", "finish-install", "clock-setup"].map((x) => diPhaseOf(item(x)))).toEqual(["partitioning", "base system", "packages", "boot loader", "finish", null]);
    const p = new DiProgress();
    expect(p.see(item("bootstrap-base"), 1)).toBe("base system");
    expect(p.see(parseSyslog(DI[0]!), 2)).toBeNull(); // a late netcfg line does not move progress back
    expect(diFatal(parseSyslog("<12>Dec  4 02:40:00 main-menu[258]: WARNING **: Configuring 'partman-base' failed with error code 1"))).toBe("installer step partman-base failed");
  });
});

describe("a real d-i run through Rackhand (fixtures/di-bookworm-installer-components-404.jsonl, captured by lab/di-install.vm.test.ts)", async () => {
  const fs = await import("node:fs");
  const path = await import("node:path");
  const capture = fs
    .readFileSync(path.join(import.meta.dirname, "fixtures", "di-bookworm-installer-components-404.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { ms: number; raw: string });

  it("parses every datagram d-i sent as RFC 3164 without a host, one line each", () => {
    const parsed = capture.map((d) => parseSyslog(d.raw));
    expect(parsed.every((m) => m.format === "rfc3164" && m.app !== null && m.host === null && m.timestamp !== null)).toBe(true);
    expect(parsed.every((m) => !/[\n\r]/.test(m.msg))).toBe(true);
    // net-retriever passes gpgv's blank lines on: empty messages are real, kept as lines of their program.
    expect(parsed.filter((m) => m.msg === "").map((m) => m.app)).toEqual(Array(5).fill("net-retriever"));
    expect(new Set(parsed.map((m) => m.app))).toEqual(new Set(["netcfg", "main-menu", "debconf", "localechooser", "preseed", "kernel", "choose-mirror", "net-retriever", "anna", "anna-install"]));
  });

  it("derives network → preseed → installer components and the fatal download failure exactly once, at anna's report", () => {
    const p = new DiProgress();
    const phases = capture.flatMap((d) => p.see(parseSyslog(d.raw), d.ms) ?? []);
    expect(phases).toEqual(["network", "preseed", "installer components"]);
    const fatal = capture.map((d, i) => ({ i, f: diFatal(parseSyslog(d.raw)) })).filter((x) => x.f);
    expect(fatal.map((x) => x.f)).toEqual(["installer components could not be downloaded"]);
    expect(capture[fatal[0]!.i]!.raw).toMatch(/anna\[\d+\]: .*package retrieval failed/);
  });
});

describe("install tokens in installer lines", () => {
  it("are replaced wherever an installer logs a URL of its install files (real d-i lines), nothing else changes", () => {
    const tok = "WrJU4GBRwyblxdE83pvERk58nXhPARH8";
    expect(redactInstallTokens(`preseed: successfully loaded preseed file from http://10.150.60.2:45153/boot/m/1/${tok}/preseed.cfg`)).toBe(
      "preseed: successfully loaded preseed file from http://10.150.60.2:45153/boot/m/1/<install-token>/preseed.cfg",
    );
    expect(redactInstallTokens(`main-menu[251]: (process:520): 2026-12-06 22:22:20 URL:http://h:1/boot/m/12/${tok}/preseed.cfg [2791/2791] -> "/var/lib/preseed/x" [1]`)).toBe(
      'main-menu[251]: (process:520): 2026-12-06 22:22:20 URL:http://h:1/boot/m/12/<install-token>/preseed.cfg [2791/2791] -> "/var/lib/preseed/x" [1]',
    );
    expect(redactInstallTokens(`start x: wget http://h/boot/m/3/${tok} done`)).toBe("start x: wget http://h/boot/m/3/<install-token> done");
    expect(redactInstallTokens("GET /boot/installers/debian-12-amd64/linux 200")).toBe("GET /boot/installers/debian-12-amd64/linux 200");
  });
});

describe("subiquity reporting events (shapes from curtin's events.py and subiquity's contexts: fixtures/subiquity-install-*.jsonl)", async () => {
  const fs = await import("node:fs");
  const path = await import("node:path");
  const { subiquityEventSchema, subiquityFatal, subiquityLine, subiquityPhase } = await import("./subiquity");
  const ev = (o: object) => subiquityEventSchema.parse(o);
  const fixture = (name: string) => fs.readFileSync(path.join(import.meta.dirname, "fixtures", name), "utf8").trim().split("\n").map((l) => ev(JSON.parse(l) as object));

  it("follows a whole install in phase order; a retried download's FAIL does not end it", () => {
    const events = fixture("subiquity-install-ok.jsonl");
    const p = new DiProgress();
    const phases = events.flatMap((e, i) => p.move(subiquityPhase(e), i) ?? []);
    expect(phases).toEqual(["network", "partitioning", "base system", "packages", "boot loader", "finish"]);
    // configure_apt and curtin_install start before partitioning: they must not jump ahead.
    expect(subiquityPhase(events.find((e) => e.name.endsWith("/configure_apt"))!)).toBeNull();
    expect(subiquityPhase(events.find((e) => e.name.endsWith("/curtin_install"))!)).toBeNull();
    expect(events.some((e) => e.result === "FAIL")).toBe(true);
    expect(events.map(subiquityFatal).filter(Boolean)).toEqual([]);
    expect(subiquityLine(events.find((e) => e.name.endsWith("/stage-partitioning"))!)).toBe("start subiquity/Install/install/curtin_install/run_curtin_step/cmd-install/stage-partitioning: started: configuring storage");
  });

  it("ends the install where subiquity does: the install task failed (once, with curtin's reason), or the error commands start", () => {
    const events = fixture("subiquity-install-fail.jsonl");
    const fatal = events.map(subiquityFatal);
    // The nested curtin stage and step FAILs come first; the install task's FAIL is the end.
    expect(fatal.slice(0, -2).every((f) => f === null)).toBe(true);
    expect(fatal.at(-2)).toBe("subiquity/Install/install failed: Command '['/snap/subiquity/current/usr/bin/python3.10', '-m', 'curtin', '--showtrace', '-vvv', 'install']' returned non-zero exit status 3.");
    expect(fatal.at(-1)).toBe("the installer is running its error commands");
    expect(subiquityFatal(ev({ name: "subiquity/Late/run", event_type: "finish", result: "FAIL", description: "failed: exit 1" }))).toBe("subiquity/Late/run failed: exit 1");
    expect(subiquityFatal(ev({ name: "cmd-install", event_type: "finish", result: "FAIL", origin: "curtin" }))).toBe("cmd-install failed");
    expect(subiquityFatal(ev({ name: "subiquity/Install/install", event_type: "finish", result: "SUCCESS" }))).toBeNull();
  });

  it("accepts curtin's attached log files and refuses what is not an event; hostile text stays in its line", () => {
    const withFiles = ev({ name: "cmd-install", event_type: "finish", result: "FAIL", files: [{ path: "/var/log/curtin/install.log", content: "aGVsbG8=", encoding: "base64" }] });
    expect(withFiles.files?.[0]?.path).toBe("/var/log/curtin/install.log");
    for (const bad of [null, "x", [], { description: "no name" }, { name: 1, event_type: "start" }, { name: "x".repeat(600), event_type: "start" }]) expect(subiquityEventSchema.safeParse(bad).success).toBe(false);
    expect(subiquityLine(ev({ name: "a\nphase: finish", event_type: "start", description: "$(reboot)\r\0é" }))).toBe("start a phase: finish: $(reboot)  é");
  });
});
