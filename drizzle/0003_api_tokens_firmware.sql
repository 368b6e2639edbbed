CREATE TABLE `api_tokens` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`user_id` integer NOT NULL,
	`name` text NOT NULL,
	`scope` text NOT NULL,
	`token_hash` text NOT NULL,
	`prefix` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`last_used_at` integer,
	`revoked_at` integer,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_tokens_token_hash_unique` ON `api_tokens` (`token_hash`);--> statement-breakpoint
CREATE INDEX `api_tokens_user` ON `api_tokens` (`user_id`);--> statement-breakpoint
ALTER TABLE `machines` ADD `firmware` text DEFAULT 'auto' NOT NULL;--> statement-breakpoint
ALTER TABLE `machines` ADD `boot_firmware` text;--> statement-breakpoint
ALTER TABLE `machines` ADD `boot_arch` integer;--> statement-breakpoint
ALTER TABLE `machines` ADD `boot_seen_at` integer;