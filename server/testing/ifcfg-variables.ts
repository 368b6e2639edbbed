/**
 * Variable names NetworkManager's ifcfg-rh plugin reads from ifcfg-* files that concern wired, bond and VLAN
 * profiles: the network part of `nms_ifcfg_well_known_keys[]` in NetworkManager's
 * src/core/settings/plugins/ifcfg-rh/nms-ifcfg-rh-utils.c (read at commit 01ab5ce4a829; the Wi-Fi, 802.1X, DCB,
 * team, OVS and SR-IOV names are left out). NUMBERED names may carry a number suffix (IPADDR0, DNS1, …).
 * The ifcfg renderer's int test checks every variable it writes against this list.
 */
export const IFCFG_PLAIN = [
  "ACCEPT_ALL_MAC_ADDRESSES", "ARPING_WAIT", "AUTOCONNECT_PRIORITY", "AUTOCONNECT_RETRIES", "AUTOCONNECT_SLAVES",
  "BONDING_MASTER", "BONDING_OPTS", "BOND_PORT_PRIO", "BOND_PORT_QUEUE_ID", "BOOTPROTO", "BRIDGE", "CONNECTION_METERED",
  "DEFROUTE", "DELAY", "DEVICE", "DEVICETYPE", "DEVTIMEOUT", "DHCPV6C", "DHCPV6_DUID", "DHCPV6_HOSTNAME", "DHCPV6_IAID",
  "DHCPV6_SEND_HOSTNAME", "DHCP_CLIENT_ID", "DHCP_FQDN", "DHCP_HOSTNAME", "DHCP_SEND_HOSTNAME", "DOMAIN",
  "ETHTOOL_OPTS", "ETHTOOL_WAKE_ON_LAN", "GATEWAYDEV", "HWADDR", "HWADDR_BLACKLIST", "IPV4_DHCP_TIMEOUT",
  "IPV4_DNS_PRIORITY", "IPV4_FAILURE_FATAL", "IPV4_ROUTE_METRIC", "IPV4_ROUTE_TABLE", "IPV6ADDR", "IPV6ADDR_SECONDARIES",
  "IPV6FORWARDING", "IPV6INIT", "IPV6_ADDR_GEN_MODE", "IPV6_AUTOCONF", "IPV6_DEFAULTDEV", "IPV6_DEFAULTGW",
  "IPV6_DEFROUTE", "IPV6_DHCP_TIMEOUT", "IPV6_DISABLED", "IPV6_DNS_PRIORITY", "IPV6_DOMAIN", "IPV6_FAILURE_FATAL",
  "IPV6_PEERDNS", "IPV6_PEERROUTES", "IPV6_PRIVACY", "IPV6_RA_TIMEOUT", "IPV6_ROUTE_METRIC", "IPV6_ROUTE_TABLE",
  "IPV6_TOKEN", "LLDP", "MACADDR", "MASTER", "MASTER_UUID", "MTU", "NAME", "NM_CONTROLLED", "ONBOOT", "PEERDNS",
  "PEERROUTES", "PHYSDEV", "REORDER_HDR", "RES_OPTIONS", "SEARCH", "SLAVE", "STABLE_ID", "TYPE", "UUID", "VLAN",
  "VLAN_EGRESS_PRIORITY_MAP", "VLAN_FLAGS", "VLAN_ID", "VLAN_INGRESS_PRIORITY_MAP", "VLAN_PROTOCOL", "ZONE",
] as const;
export const IFCFG_NUMBERED = ["ADDRESS", "DNS", "GATEWAY", "IPADDR", "METRIC", "NETMASK", "OPTIONS", "PREFIX"] as const;

/** Whether NetworkManager's ifcfg-rh plugin knows `name` (NAME or a numbered NAME<n>). */
export function isIfcfgVariable(name: string): boolean {
  if ((IFCFG_PLAIN as readonly string[]).includes(name)) return true;
  const m = /^([A-Z_]+?)([0-9]*)$/.exec(name);
  return !!m && (IFCFG_NUMBERED as readonly string[]).includes(m[1]!);
}
