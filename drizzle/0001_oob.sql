ALTER TABLE `bmcs` ADD `privilege` text DEFAULT 'ADMINISTRATOR' NOT NULL;--> statement-breakpoint
ALTER TABLE `bmcs` ADD `cipher_suite` integer DEFAULT 3 NOT NULL;--> statement-breakpoint
ALTER TABLE `bmcs` ADD `last_error` text;