CREATE TABLE `leases` (
	`name` text PRIMARY KEY NOT NULL,
	`holder` text NOT NULL,
	`epoch` integer DEFAULT 0 NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `ip_allocations` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`subnet_id` integer NOT NULL,
	`address` text NOT NULL,
	`sort_key` text NOT NULL,
	`machine_id` integer NOT NULL,
	`nic_id` integer,
	`link_id` integer,
	`mode` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`subnet_id`) REFERENCES `subnets`(`id`) ON UPDATE no action ON DELETE restrict,
	FOREIGN KEY (`machine_id`) REFERENCES `machines`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`nic_id`) REFERENCES `nics`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`link_id`) REFERENCES `nic_links`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `ip_allocations_subnet_address` ON `ip_allocations` (`subnet_id`,`address`);--> statement-breakpoint
CREATE INDEX `ip_allocations_subnet_key` ON `ip_allocations` (`subnet_id`,`sort_key`);--> statement-breakpoint
CREATE INDEX `ip_allocations_machine` ON `ip_allocations` (`machine_id`);--> statement-breakpoint
CREATE TABLE `subnets` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`cidr` text NOT NULL,
	`family` integer NOT NULL,
	`gateway` text,
	`dns` text DEFAULT '[]' NOT NULL,
	`vlan_id` integer,
	`reserved` text DEFAULT '[]' NOT NULL,
	`dynamic_start` text,
	`dynamic_end` text,
	`provisioning` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `subnets_name_unique` ON `subnets` (`name`);--> statement-breakpoint
CREATE UNIQUE INDEX `subnets_cidr_unique` ON `subnets` (`cidr`);--> statement-breakpoint
CREATE UNIQUE INDEX `subnets_one_provisioning` ON `subnets` (`provisioning`) WHERE "subnets"."provisioning" = 1;--> statement-breakpoint
ALTER TABLE `steps` ADD `lease_owner` text;--> statement-breakpoint
ALTER TABLE `nic_links` ADD `subnet_id` integer REFERENCES subnets(id);--> statement-breakpoint
ALTER TABLE `nic_links` ADD `subnet6_id` integer REFERENCES subnets(id);--> statement-breakpoint
ALTER TABLE `nics` ADD `subnet_id` integer REFERENCES subnets(id);--> statement-breakpoint
ALTER TABLE `nics` ADD `subnet6_id` integer REFERENCES subnets(id);