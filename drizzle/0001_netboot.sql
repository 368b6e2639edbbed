CREATE TABLE `nic_links` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`machine_id` integer NOT NULL,
	`ifname` text NOT NULL,
	`kind` text NOT NULL,
	`members` text,
	`bond_mode` text,
	`parent` text,
	`vlan_id` integer,
	`ip` text,
	`prefix` integer,
	`gateway` text,
	`mtu` integer,
	FOREIGN KEY (`machine_id`) REFERENCES `machines`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `nic_links_machine_ifname` ON `nic_links` (`machine_id`,`ifname`);--> statement-breakpoint
ALTER TABLE `nics` ADD `ifname` text;--> statement-breakpoint
ALTER TABLE `nics` ADD `prefix` integer;--> statement-breakpoint
ALTER TABLE `nics` ADD `gateway` text;--> statement-breakpoint
ALTER TABLE `nics` ADD `mtu` integer;--> statement-breakpoint
ALTER TABLE `os_profiles` ADD `options` text;