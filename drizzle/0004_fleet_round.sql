ALTER TABLE `machines` ADD `power_pending` text;--> statement-breakpoint
ALTER TABLE `nic_links` ADD `address_mode` text;--> statement-breakpoint
ALTER TABLE `nic_links` ADD `ipv6_mode` text;--> statement-breakpoint
ALTER TABLE `nic_links` ADD `ip6` text;--> statement-breakpoint
ALTER TABLE `nic_links` ADD `prefix6` integer;--> statement-breakpoint
ALTER TABLE `nic_links` ADD `gateway6` text;--> statement-breakpoint
ALTER TABLE `nic_links` ADD `dns` text;--> statement-breakpoint
ALTER TABLE `nic_links` ADD `miimon` integer;--> statement-breakpoint
ALTER TABLE `nic_links` ADD `lacp_rate` text;--> statement-breakpoint
ALTER TABLE `nic_links` ADD `xmit_hash_policy` text;--> statement-breakpoint
ALTER TABLE `nics` ADD `address_mode` text;--> statement-breakpoint
ALTER TABLE `nics` ADD `ipv6_mode` text;--> statement-breakpoint
ALTER TABLE `nics` ADD `ip6` text;--> statement-breakpoint
ALTER TABLE `nics` ADD `prefix6` integer;--> statement-breakpoint
ALTER TABLE `nics` ADD `gateway6` text;--> statement-breakpoint
ALTER TABLE `nics` ADD `dns` text;