ALTER TABLE `machines` ADD `firmware` text DEFAULT 'auto' NOT NULL;--> statement-breakpoint
ALTER TABLE `machines` ADD `boot_firmware` text;--> statement-breakpoint
ALTER TABLE `machines` ADD `boot_arch` integer;--> statement-breakpoint
ALTER TABLE `machines` ADD `boot_seen_at` integer;