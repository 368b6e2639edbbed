DROP INDEX "machines_state_name";--> statement-breakpoint
CREATE INDEX "machines_state_name" ON "machines" USING btree ("state","name" COLLATE "C");