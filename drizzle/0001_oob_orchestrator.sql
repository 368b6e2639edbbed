ALTER TABLE `jobs` ADD `agent_seen_at` integer;--> statement-breakpoint
ALTER TABLE `jobs` ADD `created_by` text;--> statement-breakpoint
CREATE UNIQUE INDEX `jobs_one_active` ON `jobs` (`machine_id`) WHERE "jobs"."state" IN ('queued', 'running');--> statement-breakpoint
ALTER TABLE `steps` ADD `backoff_base_ms` integer DEFAULT 2000 NOT NULL;--> statement-breakpoint
ALTER TABLE `steps` ADD `backoff_max_ms` integer DEFAULT 60000 NOT NULL;--> statement-breakpoint
ALTER TABLE `steps` ADD `next_attempt_at` integer;--> statement-breakpoint
CREATE INDEX `steps_state` ON `steps` (`state`);--> statement-breakpoint
ALTER TABLE `bmcs` ADD `privilege` text DEFAULT 'ADMINISTRATOR' NOT NULL;--> statement-breakpoint
ALTER TABLE `bmcs` ADD `cipher_suite` integer DEFAULT 3 NOT NULL;--> statement-breakpoint
ALTER TABLE `bmcs` ADD `last_error` text;