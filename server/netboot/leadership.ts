/**
 * Who owns the netboot tree when several processes share one PostgreSQL (service.ts uses it; SQLite has none).
 *
 * An installation has one provisioning network (the netboot settings' interface and DHCP range, with at most one
 * provisioning subnet), so there is one leader lease, `netboot:provisioning` unless configured otherwise
 * (server/db/pg/leases.ts LeaderLease: renewed every renewMs, lapses after ttlMs, counted by the holder's own clock).
 * The holder writes the tree and runs the managed dnsmasq. A follower's set_boot_target asks it through the database
 * (tree-requests.ts): `request()` records the request, wakes the leader with a `netboot.apply` bus event and waits for
 * the leader's fenced confirmation (`netboot.applied` wakes it; it also reads the row every pollMs, since the bus
 * bridge may drop events). The leader reads the pending requests before each reconcile (`pending()`) and confirms or
 * fails them after it (`settle()`); every renewMs it also looks for requests whose event was lost.
 */
import type { LiveEvent } from "../../lib/live-events";
import type { Domain } from "../context";
import type { PgDb } from "../db/pg/client";
import { LeaderLease, processOwner, readLease } from "../db/pg/leases";
import { confirmApplied, outcomeOf, readRequests, recordFailure, requestApply, type RequestOutcome, type TreeRequestState } from "./tree-requests";

export interface NetbootLeaderOptions {
  /** This process's name among processes, as in step leases and /healthz (default `processOwner()`: host:pid). */
  owner?: string;
  /** The provisioning network in the lease name `netboot:<network>` (default "provisioning"). */
  network?: string;
  /** Lease length (ms, default 15,000): the longest a dead leader leaves the network without DHCP. */
  ttlMs?: number;
  /** Renewal interval (ms, default 5,000; at most half of ttlMs); also how often the leader looks for requests the bus missed. */
  renewMs?: number;
  /** How long a follower's set_boot_target waits for the leader (ms, default 20,000; the step's timeout is 30 s). */
  confirmTimeoutMs?: number;
  /** How often a waiting follower reads the request row besides the leader's bus event (ms, default 1,000). */
  pollMs?: number;
}

/** Leadership as NetbootService.status() reports it. */
export interface NetbootLeadershipStatus {
  lease: string;
  owner: string;
  leader: boolean;
  epoch: number;
}

export interface LeadershipHooks {
  /** Gained the lease: reconcile the whole tree from the database, then start the DHCP backend. */
  gained(epoch: number): void;
  /** Lost it (another holds it, or it ran out by this process's clock): stop the DHCP backend now. */
  lost(epoch: number): void;
  /** The leader has requests not yet confirmed (found in the database; their bus event was lost): reconcile. */
  requestsPending(): void;
}

export class NetbootLeadership {
  readonly lease: LeaderLease;
  readonly network: string;
  private leading = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly db: PgDb,
    private readonly d: Pick<Domain, "bus" | "log">,
    private readonly o: NetbootLeaderOptions,
    private readonly hooks: LeadershipHooks,
  ) {
    this.network = o.network ?? "provisioning";
    this.lease = new LeaderLease(db, `netboot:${this.network}`, o.owner ?? processOwner(), {
      ttlMs: o.ttlMs ?? 15_000,
      renewMs: o.renewMs ?? 5_000,
      onChange: (leader, epoch) => {
        this.leading = leader;
        if (leader) {
          d.log.info("netboot leader: rewriting the tree from the database, then starting the DHCP backend", { lease: this.lease.name, epoch });
          hooks.gained(epoch);
        } else {
          d.log.warn("netboot: no longer the leader; DHCP backend stopped", { lease: this.lease.name, epoch });
          hooks.lost(epoch);
        }
      },
      onError: (err) => d.log.warn("netboot leader lease: renewal failed", { lease: this.lease.name, error: err.message }),
    });
  }

  /** Take part: resolves after the first attempt (leading, with its full reconcile asked for, or following). */
  async start(): Promise<void> {
    this.lease.start();
    await this.lease.tick();
    this.timer = setInterval(() => void this.checkRequests(), this.o.renewMs ?? 5_000);
    this.timer.unref?.();
  }

  /** Whether this process owns the tree now (by its own clock). */
  isLeader(): boolean {
    return this.leading && this.lease.isLeader();
  }

  status(): NetbootLeadershipStatus {
    return { lease: this.lease.name, owner: this.lease.holder, leader: this.isLeader(), epoch: this.lease.currentEpoch() };
  }

  /** Bus events of the protocol: a confirmation wakes the waiting followers; a request is for the leader. */
  onEvent(e: LiveEvent): "request" | "handled" | null {
    if (e.type === "netboot.applied") {
      if (e.network === this.network) for (const w of [...this.waiters]) w();
      return "handled";
    }
    if (e.type === "netboot.apply") return e.network === this.network && this.isLeader() ? "request" : "handled";
    return null;
  }

  private async checkRequests(): Promise<void> {
    if (!this.isLeader()) return;
    try {
      const r = await readRequests(this.db, this.network);
      if (r.requested > r.applied) this.hooks.requestsPending();
    } catch (err) {
      this.d.log.warn("netboot: reading boot-entry requests failed", { error: String(err) });
    }
  }

  /** Leader, before reading the machines: the requests to cover (null when they cannot be read: none confirmed then). */
  async pending(): Promise<TreeRequestState | null> {
    return readRequests(this.db, this.network).catch(() => null);
  }

  /** Leader, after a reconcile that read the machines after `requests`: confirm them, or fail them with `error`. */
  async settle(requests: TreeRequestState | null, error: string | null): Promise<void> {
    if (!requests || requests.requested <= requests.applied) return;
    const upTo = requests.requested;
    const fence = { name: this.lease.name, holder: this.lease.holder, epoch: this.lease.currentEpoch() };
    try {
      const ok = error === null ? await confirmApplied(this.db, this.network, fence, upTo) : await recordFailure(this.db, this.network, fence, upTo, error);
      if (ok) this.d.bus.publish({ type: "netboot.applied", network: this.network, applied: upTo, ok: error === null });
    } catch (err) {
      this.d.log.warn("netboot: confirming boot-entry requests failed (the followers retry)", { error: String(err) });
    }
  }

  /** Follower: record the request, wake the leader, wait for its confirmation (or failure, or the timeout). */
  async request(machineId: number): Promise<RequestOutcome> {
    const timeoutMs = this.o.confirmTimeoutMs ?? 20_000;
    const r = await requestApply(this.db, this.network, machineId);
    this.d.bus.publish({ type: "netboot.apply", network: this.network, machineId });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const outcome = outcomeOf(await readRequests(this.db, this.network), r);
      if (outcome) return outcome;
      const left = deadline - Date.now();
      if (left <= 0 || !this.timer) break;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, this.o.pollMs ?? 1_000));
        this.waiters.add(done);
      });
    }
    const holder = await readLease(this.db, this.lease.name).catch(() => null);
    const who = holder?.held ? `leader ${holder.holder}` : "no process holds the netboot lease";
    return { ok: false, message: `no confirmation within ${Math.round(timeoutMs / 1000)} s (${who})` };
  }

  /** Stop taking part; `release` gives the lease up at once (a clean stop), else it lapses (as when the process dies). */
  async stop(release: boolean): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const w of [...this.waiters]) w();
    await this.lease.stop(release);
  }

  /** Stop counting as leader now (a clean stop, before the backend goes down), without giving the lease up yet. */
  resign(): void {
    this.leading = false;
  }
}
