/**
 * The narrow port netboot needs from a DHCP/TFTP server (the consumer owns it): start, react to a tree
 * change, report, stop. Implementations: DnsmasqSupervisor (managed), ExternalBackend (operator's dnsmasq).
 * Mode `off` has no backend at all.
 */
import type { NetbootMode } from "../../lib/netboot";
import type { Logger } from "../log";
import type { TreeChanges } from "./reconciler";

export interface DhcpBackendStatus {
  mode: NetbootMode;
  running: boolean;
  pid: number | null;
  restarts: number;
  lastExit: string | null;
}

export interface DhcpBackend {
  readonly mode: NetbootMode;
  start(): Promise<void>;
  apply(changes: TreeChanges): Promise<void>;
  status(): DhcpBackendStatus;
  stop(): Promise<void>;
}

/** `external`: an operator-run dnsmasq reads the tree; Rackhand only writes it and says what needs a signal. */
export class ExternalBackend implements DhcpBackend {
  readonly mode = "external" as const;
  constructor(private readonly log: Logger) {}
  async start(): Promise<void> {}
  apply(changes: TreeChanges): Promise<void> {
    if (changes.configChanged) this.log.warn("dnsmasq.conf changed: restart the external dnsmasq to apply it");
    else if (changes.hostsReload) this.log.warn("host entries changed or removed: send SIGHUP to the external dnsmasq so it re-reads them");
    return Promise.resolve();
  }
  status(): DhcpBackendStatus {
    return { mode: "external", running: false, pid: null, restarts: 0, lastExit: null };
  }
  async stop(): Promise<void> {}
}
