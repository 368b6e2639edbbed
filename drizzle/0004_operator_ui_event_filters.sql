CREATE INDEX `events_kind` ON `events` (`kind`,`id`);--> statement-breakpoint
CREATE INDEX `events_actor` ON `events` (`actor`,`id`);--> statement-breakpoint
CREATE INDEX `events_ts` ON `events` (`ts`);