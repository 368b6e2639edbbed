ALTER TABLE `jobs` ADD `install_done_at` integer;--> statement-breakpoint
-- Installer reports used to be kept in the job's params (its inputs, which a retry copies): move them out.
UPDATE `jobs` SET `install_done_at` = json_extract(`params`, '$.installDoneAt'), `params` = json_remove(`params`, '$.installDoneAt') WHERE json_extract(`params`, '$.installDoneAt') IS NOT NULL;
