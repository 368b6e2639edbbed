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
ALTER TABLE `jobs` ADD `agent_seen_at` integer;--> statement-breakpoint
ALTER TABLE `jobs` ADD `created_by` text;--> statement-breakpoint
CREATE UNIQUE INDEX `jobs_one_active` ON `jobs` (`machine_id`) WHERE "jobs"."state" IN ('queued', 'running');--> statement-breakpoint
ALTER TABLE `steps` ADD `backoff_base_ms` integer DEFAULT 2000 NOT NULL;--> statement-breakpoint
ALTER TABLE `steps` ADD `backoff_max_ms` integer DEFAULT 60000 NOT NULL;--> statement-breakpoint
ALTER TABLE `steps` ADD `next_attempt_at` integer;--> statement-breakpoint
CREATE INDEX `steps_state` ON `steps` (`state`);--> statement-breakpoint
ALTER TABLE `bmcs` ADD `privilege` text DEFAULT 'ADMINISTRATOR' NOT NULL;--> statement-breakpoint
ALTER TABLE `bmcs` ADD `cipher_suite` integer DEFAULT 3 NOT NULL;--> statement-breakpoint
ALTER TABLE `bmcs` ADD `last_error` text;--> statement-breakpoint
ALTER TABLE `nics` ADD `ifname` text;--> statement-breakpoint
ALTER TABLE `nics` ADD `prefix` integer;--> statement-breakpoint
ALTER TABLE `nics` ADD `gateway` text;--> statement-breakpoint
ALTER TABLE `nics` ADD `mtu` integer;--> statement-breakpoint
ALTER TABLE `os_profiles` ADD `options` text;