/**
 * Installer logs live (issue 17 point 3): a syslog receiver on the provisioning address, UDP and TCP on the same
 * port. d-i's busybox syslogd sends UDP datagrams there (`log_host=`/`log_port=`, tree.ts puts them on its kernel
 * command line). anaconda's `inst.syslog=host:port` becomes rsyslog's `*.* @@host:port` (pyanaconda's
 * `updateRemote`): TCP, one message per line (or RFC 6587 octet-counted frames, also taken). Each
 * message is mapped to the running job of the machine with that source address and appended to the job's log
 * (same seqs and live event as agent lines). d-i's phases become "phase:" lines and the job's progress; a fatal
 * installer error fails the job's wait_install step at once, with the last lines (and the package proxy's
 * upstream errors for that machine: the missing file names) as the reason.
 */
import dgram from "node:dgram";
import net from "node:net";
import { and, eq } from "drizzle-orm";
import { rackhandAddress } from "../../lib/netboot";
import type { Domain } from "../context";
import { storeOf } from "../db/store";
import { loadNetbootSettings } from "../netboot/settings";
import { appendJobLines, runningJobByAddress, runningJobOf } from "../proxy/job-lines";
import { DiProgress, diFatal, type DiPhase } from "./di-phases";
import { subiquityEventSchema, subiquityFatal, subiquityLine, subiquityPhase } from "./subiquity";
import { formatSyslogLine, parseSyslog } from "./syslog";

export interface InstallerLogOptions {
  /** Fail the job's running wait_install step (orchestrator.complete). */
  failStep(stepId: number, attempt: number, message: string): void;
  /**
   * File names the package proxy could not fetch for this client address (most recent last), once its error lines
   * are in the job log.
   */
  missingFor?(clientIp: string): string[] | Promise<string[]>;
}

interface Tracked {
  jobId: number;
  progress: DiProgress;
  last: string[];
  failed: boolean;
}

/**
 * Installers log the URLs they fetch, and those carry the machine's install token (d-i: "preseed: successfully
 * loaded preseed file from …/boot/m/<id>/<token>/preseed.cfg"). Job logs are for viewers too, and the token lets
 * its holder read the answer file and report the install done: it is replaced before a line is stored.
 */
export function redactInstallTokens(text: string): string {
  return text.replace(/(\/boot\/m\/\d+\/)[A-Za-z0-9_-]{16,64}(?=[/\s'"]|$)/g, "$1<install-token>");
}

export class InstallerLogReceiver {
  private sock: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  private readonly conns = new Set<net.Socket>();
  private bound: string | null = null;
  private readonly jobs = new Map<number, Tracked>();
  private unsubscribe: (() => void) | null = null;
  private chain: Promise<void> = Promise.resolve();
  private readonly observers = new Set<(raw: Buffer | string, from: string, at: number) => void>();
  /** Per source address (and per webhook machine), the messages being stored, in arrival order. */
  private readonly queues = new Map<string, Promise<void>>();
  error: string | null = null;
  received = 0;

  constructor(
    private readonly d: Domain,
    private readonly o: InstallerLogOptions,
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = this.d.bus.subscribe((e) => {
      if (e.type === "netboot.changed") void this.reconcile();
    });
    await this.reconcile();
  }

  /** Listen on serverAddress:installerLogPort while netboot is on. Never throws (error kept). */
  reconcile(): Promise<void> {
    this.chain = this.chain.then(async () => {
      let want: string | null = null;
      try {
        const s = await loadNetbootSettings(storeOf(this.d));
        want = s.mode !== "off" && s.installerLogPort ? `${rackhandAddress(s)}:${s.installerLogPort}` : null;
      } catch (err) {
        this.error = String(err);
      }
      if (want === this.bound && (this.sock || !want)) return;
      await this.close();
      if (!want) return;
      const [host, port] = [want.slice(0, want.lastIndexOf(":")), Number(want.slice(want.lastIndexOf(":") + 1))];
      const sock = dgram.createSocket("udp4");
      sock.on("message", (buf, r) => void this.handle(buf, r.address, Date.now()));
      try {
        await new Promise<void>((resolve, reject) => {
          sock.once("error", reject);
          sock.bind(port, host, () => (sock.off("error", reject), resolve()));
        });
        this.tcp = await this.listenTcp(host, port);
        sock.on("error", (e) => (this.error = e.message));
        this.sock = sock;
        this.bound = want;
        this.error = null;
        this.d.log.info("installer log receiver listening", { udp: want, tcp: want });
      } catch (err) {
        sock.close();
        this.error = `installer syslog receiver not listening on ${want}: ${err instanceof Error ? err.message : String(err)}`;
        this.d.log.error("installer log receiver", { error: this.error });
      }
    });
    return this.chain;
  }

  /** rsyslog's TCP forwarding (anaconda): LF-terminated lines or octet-counted frames, each one message. */
  private async listenTcp(host: string, port: number): Promise<net.Server> {
    const server = net.createServer((c) => {
      const from = (c.remoteAddress ?? "").replace(/^::ffff:/, "");
      let buf: Buffer = Buffer.alloc(0);
      this.conns.add(c);
      c.on("close", () => this.conns.delete(c));
      c.setTimeout(15 * 60_000, () => c.destroy()); // an installer that went quiet for a quarter hour
      c.on("error", () => c.destroy());
      c.on("data", (chunk: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        for (;;) {
          const counted = /^(\d{1,5}) /.exec(buf.subarray(0, 6).toString("latin1"));
          if (counted) {
            const n = Number(counted[1]);
            if (buf.length < counted[0].length + n) break;
            void this.handle(buf.subarray(counted[0].length, counted[0].length + n), from, Date.now());
            buf = buf.subarray(counted[0].length + n);
            continue;
          }
          const lf = buf.indexOf(10);
          if (lf < 0) break;
          if (lf > 0) void this.handle(buf.subarray(0, lf), from, Date.now());
          buf = buf.subarray(lf + 1);
        }
        // A line longer than the parser keeps (8 KiB) is cut: the rest until its newline is dropped, not buffered.
        if (buf.length > 65536) buf = Buffer.alloc(0);
      });
    });
    server.maxConnections = 256;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => (server.off("error", reject), resolve()));
    });
    server.on("error", (e) => (this.error = e.message));
    return server;
  }

  /**
   * Run `work` after the earlier messages of the same source (`key`): a source's lines keep their order in the job's
   * log, while different machines' messages are stored concurrently. Never rejects: a failure is logged.
   */
  private inOrder<T>(key: string, work: () => Promise<T>, fallback: T): Promise<T> {
    const prev = this.queues.get(key) ?? Promise.resolve();
    const result = prev.then(work).catch((err: unknown) => {
      this.d.log.warn("installer log message not stored", { source: key, error: err instanceof Error ? err.message : String(err) });
      return fallback;
    });
    const done = result.then(() => undefined);
    this.queues.set(key, done);
    void done.then(() => {
      if (this.queues.get(key) === done) this.queues.delete(key);
    });
    return result;
  }

  /**
   * One datagram (or TCP frame) from `from` (exposed for tests with recorded payloads). Resolves once it is stored
   * (or found to belong to no running job); never rejects.
   */
  handle(buf: Buffer | string, from: string, at: number): Promise<void> {
    this.received++;
    for (const f of this.observers) f(buf, from, at);
    return this.inOrder(`ip:${from}`, () => this.store(buf, from, at), undefined);
  }

  private async store(buf: Buffer | string, from: string, at: number): Promise<void> {
    const job = await runningJobByAddress(this.d, from);
    if (!job) return;
    let t = this.jobs.get(job.machineId);
    if (!t || t.jobId !== job.jobId) this.jobs.set(job.machineId, (t = { jobId: job.jobId, progress: new DiProgress(), last: [], failed: false }));
    const m = parseSyslog(buf);
    const text = redactInstallTokens(formatSyslogLine(m));
    const lines = [{ ts: at, stream: "installer", text }];
    t.last.push(text);
    if (t.last.length > 8) t.last.shift();
    const phase = t.progress.see(m, at);
    if (phase) lines.push({ ts: at, stream: "phase", text: `phase: ${phase}` });
    await appendJobLines(this.d, job.jobId, job.machineId, lines);
    const fatal = t.failed ? null : diFatal(m);
    if (fatal) {
      t.failed = true;
      await this.fail(job.jobId, job.machineId, from, t, fatal);
    }
  }

  /**
   * One subiquity/curtin reporting event POSTed to the machine's install-token URL (boot.ts checked the token).
   * @returns false when the body is not an event (400) or the machine has no running job
   */
  webhookEvent(machineId: number, body: unknown, at: number): Promise<boolean> {
    const ev = subiquityEventSchema.safeParse(body);
    if (!ev.success) return Promise.resolve(false);
    return this.inOrder(
      `machine:${machineId}`,
      async () => {
        const job = await runningJobOf(this.d, machineId);
        if (!job) return false;
        let t = this.jobs.get(machineId);
        if (!t || t.jobId !== job.jobId) this.jobs.set(machineId, (t = { jobId: job.jobId, progress: new DiProgress(), last: [], failed: false }));
        const text = redactInstallTokens(subiquityLine(ev.data));
        const lines = [{ ts: at, stream: "installer", text }];
        t.last.push(text);
        if (t.last.length > 8) t.last.shift();
        const phase = t.progress.move(subiquityPhase(ev.data), at);
        if (phase) lines.push({ ts: at, stream: "phase", text: `phase: ${phase}` });
        await appendJobLines(this.d, job.jobId, machineId, lines);
        const fatal = t.failed ? null : subiquityFatal(ev.data);
        if (fatal) {
          t.failed = true;
          await this.fail(job.jobId, machineId, null, t, fatal);
        }
        return true;
      },
      false,
    );
  }

  private async fail(jobId: number, machineId: number, from: string | null, t: Tracked, fatal: string): Promise<void> {
    const missing = from ? ((await this.o.missingFor?.(from)) ?? []) : [];
    const reason =
      `Installer failed at ${t.progress.phase ?? "start"}: ${fatal}` +
      (missing.length ? `; missing on the mirror: ${[...new Set(missing)].join(", ")}` : "") +
      `. Last lines: ${t.last.join(" | ")}`;
    await appendJobLines(this.d, jobId, machineId, [{ ts: Date.now(), stream: "stderr", text: reason }]);
    const { db, t: tables } = storeOf(this.d);
    const { steps } = tables;
    const [w] = await db
      .select({ id: steps.id, attempt: steps.attempt })
      .from(steps)
      .where(and(eq(steps.jobId, jobId), eq(steps.name, "wait_install"), eq(steps.state, "running")))
      .limit(1);
    if (w) this.o.failStep(w.id, w.attempt, reason);
  }

  /** Also hand every datagram, as received, to `f` (the lab records real installers' syslog). @returns unsubscribe */
  observe(f: (raw: Buffer | string, from: string, at: number) => void): () => void {
    this.observers.add(f);
    return () => this.observers.delete(f);
  }

  /** Phases the current install of a machine reached (bench, tests). */
  progress(machineId: number): { phase: DiPhase | null; reached: { phase: DiPhase; at: number }[] } | null {
    const t = this.jobs.get(machineId);
    return t ? { phase: t.progress.phase, reached: [...t.progress.reached] } : null;
  }

  status(): { listening: string | null; error: string | null; received: number } {
    return { listening: this.sock ? this.bound : null, error: this.error, received: this.received };
  }

  private async close(): Promise<void> {
    const s = this.sock;
    const t = this.tcp;
    this.sock = null;
    this.tcp = null;
    this.bound = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
    if (t) {
      for (const c of this.conns) c.destroy();
      await new Promise<void>((r) => t.close(() => r()));
    }
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.chain;
    await this.close();
    await Promise.all([...this.queues.values()]);
  }
}
