import http from "node:http";
import type { Duplex } from "node:stream";
import path from "node:path";
import type { TRPCError } from "@trpc/server";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { AGENT_API_PREFIX } from "../lib/agent-protocol";
import { buildOpenApi } from "./api/openapi";
import { appRouter } from "./api/root";
import type { TrpcContext } from "./api/trpc";
import { SecretBox } from "./auth/secrets";
import { LoginThrottle } from "./auth/throttle";
import { parseCookies, SESSION_COOKIE, sessionUser } from "./auth/sessions";
import { bearerOf, tokenUser } from "./auth/tokens";
import { ensureAdmin } from "./auth/users";
import type { Config } from "./config";
import type { Domain } from "./context";
import { startCheckpointer } from "./db/checkpointer";
import { noSqliteOnPostgres } from "./db/client";
import { openStore, sqliteDbOf, type Store } from "./db/store";
import { createPgPool } from "./db/pg/client";
import { bmcLockOn, processOwner } from "./db/pg/leases";
import { health } from "./http/health";
import { PgBusBridge } from "./events/pg-bus-bridge";
import { EventBus } from "./events/bus";
import { attachGateway } from "./events/gateway";
import { isCrossSiteWrite, isPublicPath } from "./http/guards";
import { createMetrics, routeFamily } from "./http/metrics";
import { registerProxyMetrics } from "./proxy/metrics";
import { ProxyService } from "./proxy/service";
import { InstallerLogReceiver } from "./installer-logs/receiver";
import type { Logger } from "./log";
import { seedDemoLab } from "./demo/seed";
import { startDemoAgents } from "./demo/demo-agents";
import { createAgentApi } from "./agent-api/routes";
import { BatchRunner, type BatchRunnerOptions } from "./orchestrator/batch-runner";
import { Orchestrator, type OrchestratorOptions } from "./orchestrator/orchestrator";
import { createMachinePorts } from "./orchestrator/machine-ports";
import type { MachinePorts } from "./orchestrator/ports";
import { createConsoleManager, type ConsoleManager } from "./oob/console/manager";
import { registerPowerSyncMetrics } from "./oob/metrics";
import { PowerSync } from "./oob/power-sync";
import { clearStalePowerPending } from "./operator/hand-power";
import { serveTranscript, TRANSCRIPT_PATH } from "./http/transcript";
import { MACHINES_CSV_PATH, serveMachinesCsv } from "./http/machines-csv";
import { JOB_RECORD_PATH, serveJobRecord } from "./http/job-bundle";
import { createOobRuntime, defaultOobConfig } from "./oob/registry";
import { serveBoot } from "./http/boot";
import { startIdleGc } from "./http/idle-gc";
import { createDirectTrpc } from "./http/trpc-direct";
import { NetbootService } from "./netboot/service";

export interface App {
  server: http.Server;
  /** Its store is always set (SQLite or PostgreSQL). */
  domain: Domain & { store: Store };
  orchestrator: Orchestrator;
  batches: BatchRunner;
  consoles: ConsoleManager;
  /** The installer syslog receiver (the d-i VM test and bench record its raw datagrams). */
  installerLogs: InstallerLogReceiver;
  url: string;
  close(): Promise<void>;
}

type NextHandler = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;

export interface AppOverrides {
  /** Replace the orchestrator's out-of-band/netboot ports (tests). */
  ports?: MachinePorts;
  orchestrator?: OrchestratorOptions;
  /** Webhook timeouts and retries of batch alerts (tests). */
  batches?: Pick<BatchRunnerOptions, "webhook">;
}

/**
 * Build and start the whole process: database (migrated), secrets, admin account, tRPC, socket.io, metrics,
 * background services (orchestrator, power sync), and the Next.js UI when `config.ui` is set.
 * Resolves when the port is listening.
 */
export async function startApp(config: Config, log: Logger, overrides: AppOverrides = {}): Promise<App> {
  // PostgreSQL when RACKHAND_DATABASE_URL is set (migrations applied under an advisory lock), else SQLite under dataDir.
  const store = await openStore(config.dataDir, config.databaseUrl, { applicationName: `rackhand ${processOwner()}` });
  const dbFile = path.join(config.dataDir, "rackhand.db");
  const db = store.dialect === "sqlite" ? sqliteDbOf(store) : noSqliteOnPostgres();
  const checkpointer = store.dialect === "sqlite" ? startCheckpointer(db.$client, dbFile, log.child("db")) : undefined;
  const secrets = SecretBox.open(config.dataDir, config.secretKey);
  const bus = new EventBus();
  const oob = createOobRuntime(defaultOobConfig(config.dataDir, config.oob));
  const domain: Domain & { store: Store } = { db, store, bus, secrets, log, oob };
  // Several processes on one PostgreSQL: a BMC call holds a per-BMC advisory lock, so two processes never talk to
  // the same BMC at once (server/db/pg/leases.ts bmcLockOn). Each lock holds a connection for the whole BMC call
  // (seconds for an unreachable BMC), so the locks get a pool of their own: a sweep cannot starve the API's queries.
  // Its 16 connections bound this process's BMC calls in flight (the power sync default concurrency is 16).
  const bmcLockPool = store.dialect === "postgres" && config.databaseUrl ? createPgPool(config.databaseUrl, { max: 16, applicationName: `rackhand ${processOwner()} bmc locks` }) : undefined;
  if (bmcLockPool) oob.scheduler.crossProcess = bmcLockOn(bmcLockPool);
  /** This process's name among processes sharing a database (leases, /healthz). */
  const owner = processOwner();
  // Several processes on PostgreSQL: each one's bus carries the others' events (LISTEN/NOTIFY).
  const busBridge = store.dialect === "postgres" && config.databaseUrl ? new PgBusBridge(bus, config.databaseUrl, { origin: owner, log }) : undefined;
  await busBridge?.start();
  await ensureAdmin(store, log, config.adminPassword);
  if (config.demo) await seedDemoLab(domain);

  // Netboot follows the bus; its mode (off by default) comes from the settings table.
  // On PostgreSQL one process at a time owns the boot tree and dnsmasq (the leader lease `netboot:provisioning`).
  const netboot = new NetbootService(domain, { dataDir: config.dataDir, dnsmasqCommand: config.dnsmasqCommand, leader: { owner } });
  await netboot.start();
  // The package proxy (apt-cacher-ng) follows the same settings; installers and agent installs use it.
  const packageProxy = new ProxyService(domain, { dataDir: config.dataDir });
  await packageProxy.start();
  const orchestrator = new Orchestrator(domain, overrides.ports ?? createMachinePorts(domain, netboot), overrides.orchestrator);
  const agentApi = createAgentApi(domain, orchestrator);
  // Installer syslog (d-i log_host, anaconda inst.syslog) into the job log; a fatal installer error fails the job.
  const installerLogs = new InstallerLogReceiver(domain, {
    failStep: (id, attempt, message) => void orchestrator.complete(id, attempt, { ok: false, transient: false, message }),
    // The proxy's 404 lines go into the job log first (flush), so the failure's reason stays its last line.
    missingFor: async (ip) => (await packageProxy.flush(), packageProxy.status().stats?.recentErrors ?? []).filter((e) => e.client === ip && e.code === 404).map((e) => e.path.split("/").pop() ?? e.path),
  });
  await installerLogs.start();

  const metrics = createMetrics(store, store.dialect === "postgres" ? owner : undefined);
  const procedureNames = new Set(Object.keys(appRouter._def.procedures));
  registerProxyMetrics(metrics.registry, () => packageProxy.status());
  bus.subscribe((e) => metrics.liveEvents.inc({ type: e.type }));

  const loginThrottle = new LoginThrottle();
  const createContext = async ({ req, res }: { req: http.IncomingMessage; res: http.ServerResponse }): Promise<TrpcContext> => {
    // An Authorization header means token auth only: the cookie is then ignored (see the CSRF note in handle()).
    const bearer = req.headers.authorization !== undefined ? await tokenUser(store, bearerOf(req.headers.authorization)) : undefined;
    const token = bearer === undefined ? parseCookies(req.headers.cookie)[SESSION_COOKIE] : undefined;
    return {
      domain,
      config,
      user: bearer === undefined ? await sessionUser(store, token) : (bearer?.user ?? null),
      ...(bearer && { token: { id: bearer.tokenId, readOnly: bearer.readOnly } }),
      sessionToken: token,
      clientIp: req.socket.remoteAddress ?? "unknown",
      loginThrottle,
      netboot: { status: () => ({ ...netboot.status(), packageProxy: packageProxy.status() }) },
      setCookie: (c) => res.appendHeader("Set-Cookie", c),
    };
  };
  const onError = ({ error, path: p }: { error: TRPCError; path?: string }) => {
    if (error.code === "INTERNAL_SERVER_ERROR") log.error("tRPC internal error", { path: p, error: String(error.cause ?? error) });
  };
  const trpc = createHTTPHandler({ router: appRouter, basePath: "/api/trpc/", createContext, onError });
  // Single queries and mutations skip the fetch adapter (same procedures, same answers): server/http/trpc-direct.ts.
  const trpcDirect = createDirectTrpc({ router: appRouter, basePath: "/api/trpc/", createContext, onError });

  let nextHandler: NextHandler | undefined;
  let nextUpgrade: ((req: http.IncomingMessage, socket: Duplex, head: Buffer) => Promise<void>) | undefined;
  let closeNext: (() => Promise<void>) | undefined;
  if (config.ui) {
    const { default: next } = await import("next");
    const nextApp = next({ dev: config.dev, dir: process.cwd(), hostname: config.host, port: config.port });
    await nextApp.prepare();
    nextHandler = nextApp.getRequestHandler();
    nextUpgrade = nextApp.getUpgradeHandler();
    closeNext = () => nextApp.close();
  }

  const server = http.createServer((req, res) => {
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      const s = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.httpDuration.observe({ route: routeFamily(req.url ?? "/", procedureNames), method: req.method ?? "GET", status: String(res.statusCode) }, s);
    });
    void handle(req, res).catch((err) => {
      log.error("request failed", { url: req.url, error: String(err) });
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("Internal error");
    });
  });
  // Idle kept-alive connections stay open longer than any client or proxy in front keeps them (Node's fetch: 4 s,
  // nginx upstream keepalive_timeout: 60 s, AWS ALB: 60 s). With Node's default of 5 s the server could close a
  // connection just as a client reused it, and that request failed with "other side closed" (seen under load).
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  let openApiJson: string | undefined;
  // Collects the garbage of a burst (all machines, a bulk enrollment) once requests stop: server/http/idle-gc.ts.
  const idleGc = startIdleGc();
  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const p = url.pathname;
    // A request is in flight for the idle collector until it is answered. Agents' heartbeat long-polls and socket.io's
    // polling transport (a browser behind a proxy without WebSockets) wait without allocating, and boot files stream
    // for minutes: for those only the start counts, or it would never run.
    if (p.startsWith(`${AGENT_API_PREFIX}/`) || p.startsWith("/boot/") || p.startsWith("/socket.io/")) idleGc.collector.activity();
    else {
      idleGc.collector.begin();
      res.once("close", () => idleGc.collector.end());
    }
    if (p === "/healthz") {
      let body: string;
      try {
        body = JSON.stringify(await health(store, owner));
      } catch (err) {
        log.warn("health check: the database does not answer", { error: String(err) });
        res.writeHead(503, { "content-type": "application/json", "cache-control": "no-store" });
        res.end(JSON.stringify({ status: "unavailable", error: "database unreachable" }));
        return;
      }
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(body);
      return;
    }
    if (p === "/metrics") {
      res.writeHead(200, { "content-type": metrics.registry.contentType });
      res.end(await metrics.registry.metrics());
      return;
    }
    if (p === "/api/openapi.json" && (req.method === "GET" || req.method === "HEAD")) {
      openApiJson ??= JSON.stringify(buildOpenApi());
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-cache" });
      res.end(req.method === "HEAD" ? undefined : openApiJson);
      return;
    }
    if (TRANSCRIPT_PATH.test(p) && req.method === "GET") return serveTranscript(req, res, url, store, oob.config.consoleDir);
    if (p === MACHINES_CSV_PATH && req.method === "GET") return serveMachinesCsv(req, res, url, db, store);
    if (JOB_RECORD_PATH.test(p) && req.method === "GET") return serveJobRecord(req, res, url, db, oob.config.consoleDir, store);
    if (p.startsWith("/api/trpc/")) {
      // Requests carrying an Authorization header are authenticated by it alone (never by the cookie), and a
      // browser cannot attach that header cross-site, so the cookie CSRF guard does not apply to them.
      if (req.headers.authorization === undefined && isCrossSiteWrite(req)) {
        res.writeHead(403, { "content-type": "text/plain" });
        res.end("Cross-site request refused");
        return;
      }
      if (await trpcDirect(req, res, url)) return;
      return trpc(req, res);
    }
    if (await agentApi(req, res, p)) return;
    if (p.startsWith("/socket.io/")) return; // handled by socket.io's own listener
    // Machines fetch boot files without a session; install files carry their own token (server/netboot/install-token.ts).
    if (p.startsWith("/boot/")) return serveBoot(req, res, p, {
        domain,
        tokens: netboot.tokens,
        roots: [netboot.httpRoot, netboot.tftpRoot],
        installDone: (id) => orchestrator.installDone(id),
        installerEvent: (id, body) => installerLogs.webhookEvent(id, body, Date.now()),
      });
    if (!nextHandler) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("Not found (UI disabled)");
      return;
    }
    // Pages need a session; send signed-out browsers to the login page (and the signed-in away from it).
    if (!isPublicPath(p) && !p.startsWith("/api/")) {
      const user = await sessionUser(store, parseCookies(req.headers.cookie)[SESSION_COOKIE]);
      if (!user) {
        res.writeHead(302, { location: `/login?next=${encodeURIComponent(p + url.search)}` });
        res.end();
        return;
      }
    }
    return nextHandler(req, res);
  }

  // Serial consoles; on PostgreSQL each machine's console is owned by one process, seen and typed into from any
  // (server/oob/console/cluster.ts).
  const consoles = createConsoleManager(domain, { databaseUrl: config.databaseUrl, owner });
  await consoles.start();
  const gateway = attachGateway({
    httpServer: server,
    db,
    store,
    bus,
    log: log.child("socket"),
    onClientCount: (n) => metrics.socketClients.set(n),
    consoles,
  });
  if (nextUpgrade) {
    const upgrade = nextUpgrade;
    server.on("upgrade", (req, socket, head) => {
      if (!req.url?.startsWith("/socket.io/")) void upgrade(req, socket, head);
    });
  }

  await orchestrator.start();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : config.port;
  const url = `http://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${port}`;
  // Batches start queued jobs through the orchestrator (bus job.changed), so they start after it.
  const batchRunner = new BatchRunner(domain, { baseUrl: url, ...overrides.batches });
  await batchRunner.start();
  // Power actions in flight died with the previous process: their "powering on…" marks would never clear.
  const stale = await clearStalePowerPending(domain);
  if (stale) log.warn("cleared power actions left pending by the previous process", { machines: stale });
  const powerSync = new PowerSync(domain);
  // Several processes: a process that died mid-action left "powering on…" marks whose holds lapse; a sweep clears them.
  if (store.dialect === "postgres") powerSync.onSweep(() => void clearStalePowerPending(domain).catch((err) => log.warn("clearing stale power marks failed", { error: String(err) })));
  registerPowerSyncMetrics(metrics.registry, powerSync, domain.oob.probeStats);
  if (config.powerSync) powerSync.start();
  // The demo lab's fake-driver machines get simulated agents, so its deploys finish (server/demo/demo-agents.ts).
  const stopDemoAgents = config.demo ? startDemoAgents(domain, url) : undefined;

  log.info(`listening on ${url}`, { dataDir: config.dataDir, ui: config.ui });

  return {
    server,
    domain,
    orchestrator,
    batches: batchRunner,
    consoles,
    installerLogs,
    url,
    async close() {
      stopDemoAgents?.();
      idleGc.stop();
      await batchRunner.stop();
      await orchestrator.stop();
      await powerSync.stop();
      await netboot.stop();
      await packageProxy.stop();
      await installerLogs.stop();
      await busBridge?.stop();
      // A stopping process does not wait for clients: a connection whose request the server has not finished
      // reading (a client that sent a body nobody read, a half-sent request) would hold server.close() until the
      // request timeout (the HTTP fuzz test's afterAll once waited more than 30 s in a clean-clone run).
      server.closeAllConnections();
      await gateway.close();
      await consoles.closeAll();
      await new Promise<void>((r) => server.close(() => r()));
      await closeNext?.();
      await checkpointer?.stop();
      await bmcLockPool?.end();
      await store.close();
    },
  };
}
