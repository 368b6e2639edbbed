CREATE TABLE `sessions` (
	`id_hash` text PRIMARY KEY NOT NULL,
	`user_id` integer NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`last_seen_at` integer NOT NULL,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `sessions_user` ON `sessions` (`user_id`);--> statement-breakpoint
CREATE INDEX `sessions_expires` ON `sessions` (`expires_at`);--> statement-breakpoint
CREATE TABLE `settings` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `users` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`role` text NOT NULL,
	`password_hash` text NOT NULL,
	`disabled` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL,
	`last_login_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `users_name_unique` ON `users` (`name`);--> statement-breakpoint
CREATE TABLE `events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`ts` integer NOT NULL,
	`actor` text NOT NULL,
	`machine_id` integer,
	`kind` text NOT NULL,
	`message` text NOT NULL,
	`payload` text,
	FOREIGN KEY (`machine_id`) REFERENCES `machines`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE INDEX `events_machine` ON `events` (`machine_id`,`id`);--> statement-breakpoint
CREATE TABLE `agent_tokens` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`job_id` integer NOT NULL,
	`machine_id` integer NOT NULL,
	`token_hash` text NOT NULL,
	`created_at` integer NOT NULL,
	`revoked_at` integer,
	FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`machine_id`) REFERENCES `machines`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `agent_tokens_job_id_unique` ON `agent_tokens` (`job_id`);--> statement-breakpoint
CREATE UNIQUE INDEX `agent_tokens_token_hash_unique` ON `agent_tokens` (`token_hash`);--> statement-breakpoint
CREATE TABLE `batches` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`kind` text NOT NULL,
	`concurrency` integer DEFAULT 10 NOT NULL,
	`failure_threshold_pct` integer DEFAULT 20 NOT NULL,
	`state` text DEFAULT 'running' NOT NULL,
	`params` text,
	`created_by` text,
	`created_at` integer NOT NULL,
	`finished_at` integer
);
--> statement-breakpoint
CREATE TABLE `jobs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`machine_id` integer NOT NULL,
	`batch_id` integer,
	`kind` text NOT NULL,
	`state` text DEFAULT 'pending' NOT NULL,
	`attempt` integer DEFAULT 0 NOT NULL,
	`params` text,
	`error` text,
	`created_at` integer NOT NULL,
	`started_at` integer,
	`finished_at` integer,
	FOREIGN KEY (`machine_id`) REFERENCES `machines`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`batch_id`) REFERENCES `batches`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE INDEX `jobs_machine` ON `jobs` (`machine_id`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_batch` ON `jobs` (`batch_id`);--> statement-breakpoint
CREATE INDEX `jobs_state` ON `jobs` (`state`);--> statement-breakpoint
CREATE TABLE `log_lines` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`job_id` integer NOT NULL,
	`step_id` integer,
	`seq` integer NOT NULL,
	`ts` integer NOT NULL,
	`stream` text DEFAULT 'stdout' NOT NULL,
	`text` text NOT NULL,
	FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`step_id`) REFERENCES `steps`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `log_lines_job_seq` ON `log_lines` (`job_id`,`seq`);--> statement-breakpoint
CREATE TABLE `steps` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`job_id` integer NOT NULL,
	`group` integer NOT NULL,
	`name` text NOT NULL,
	`runner` text NOT NULL,
	`params` text,
	`state` text DEFAULT 'pending' NOT NULL,
	`attempt` integer DEFAULT 0 NOT NULL,
	`max_attempts` integer DEFAULT 3 NOT NULL,
	`timeout_s` integer DEFAULT 600 NOT NULL,
	`lease_expires_at` integer,
	`result` text,
	`error` text,
	`started_at` integer,
	`finished_at` integer,
	FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `steps_job` ON `steps` (`job_id`,`group`);--> statement-breakpoint
CREATE TABLE `bmcs` (
	`machine_id` integer PRIMARY KEY NOT NULL,
	`driver` text DEFAULT 'ipmitool' NOT NULL,
	`address` text NOT NULL,
	`port` integer DEFAULT 623 NOT NULL,
	`username` text NOT NULL,
	`password_encrypted` text NOT NULL,
	`last_seen` integer,
	`reachable` integer,
	`consecutive_failures` integer DEFAULT 0 NOT NULL,
	FOREIGN KEY (`machine_id`) REFERENCES `machines`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `machines` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`rack_id` integer,
	`u_position` integer,
	`u_height` integer DEFAULT 1 NOT NULL,
	`state` text DEFAULT 'enrolled' NOT NULL,
	`power_state` text DEFAULT 'unknown' NOT NULL,
	`maintenance` integer DEFAULT false NOT NULL,
	`maintenance_reason` text,
	`last_error` text,
	`os_profile_id` integer,
	`inventory` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`rack_id`) REFERENCES `racks`(`id`) ON UPDATE no action ON DELETE restrict,
	FOREIGN KEY (`os_profile_id`) REFERENCES `os_profiles`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE UNIQUE INDEX `machines_name_unique` ON `machines` (`name`);--> statement-breakpoint
CREATE INDEX `machines_state_name` ON `machines` (`state`,`name`);--> statement-breakpoint
CREATE INDEX `machines_rack_u` ON `machines` (`rack_id`,`u_position`);--> statement-breakpoint
CREATE INDEX `machines_power` ON `machines` (`power_state`);--> statement-breakpoint
CREATE TABLE `nics` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`machine_id` integer NOT NULL,
	`mac` text NOT NULL,
	`ip` text,
	`is_boot` integer DEFAULT false NOT NULL,
	FOREIGN KEY (`machine_id`) REFERENCES `machines`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `nics_mac_unique` ON `nics` (`mac`);--> statement-breakpoint
CREATE UNIQUE INDEX `nics_ip_unique` ON `nics` (`ip`);--> statement-breakpoint
CREATE INDEX `nics_machine` ON `nics` (`machine_id`);--> statement-breakpoint
CREATE UNIQUE INDEX `nics_one_boot` ON `nics` (`machine_id`) WHERE "nics"."is_boot" = 1;--> statement-breakpoint
CREATE TABLE `os_profiles` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`kind` text NOT NULL,
	`os_family` text,
	`kernel` text,
	`initrd` text,
	`kernel_args` text,
	`image_url` text,
	`image_sha256` text,
	`image_format` text,
	`template` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `os_profiles_name_unique` ON `os_profiles` (`name`);--> statement-breakpoint
CREATE TABLE `racks` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`site` text,
	`row` text,
	`height_u` integer DEFAULT 42 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `racks_name_unique` ON `racks` (`name`);