import { jsonb, pgTable, text } from "drizzle-orm/pg-core";
import { id, ts } from "./columns";

export const osProfiles = pgTable("os_profiles", {
  id: id(),
  name: text("name").notNull().unique(),
  kind: text("kind").$type<"image" | "installer" | "agent_install">().notNull(),
  osFamily: text("os_family"),
  kernel: text("kernel"),
  initrd: text("initrd"),
  kernelArgs: text("kernel_args"),
  imageUrl: text("image_url"),
  imageSha256: text("image_sha256"),
  imageFormat: text("image_format"),
  template: text("template"),
  options: jsonb("options").$type<Record<string, unknown>>(),
  createdAt: ts("created_at").notNull(),
  updatedAt: ts("updated_at").notNull(),
});
