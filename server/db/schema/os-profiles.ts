import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

export const osProfiles = sqliteTable("os_profiles", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  name: text("name").notNull().unique(),
  /** image: the agent writes an image; installer: a classic preseed/kickstart install; agent_install: the agent debootstraps. */
  kind: text("kind").$type<"image" | "installer" | "agent_install">().notNull(),
  osFamily: text("os_family"),
  kernel: text("kernel"),
  initrd: text("initrd"),
  kernelArgs: text("kernel_args"),
  imageUrl: text("image_url"),
  imageSha256: text("image_sha256"),
  imageFormat: text("image_format"),
  /** Install template (preseed | autoinstall | kickstart) for installer profiles. */
  template: text("template"),
  /** Installer options (mirror, locale, user, keys, packages, disk, NIC config format): lib/netboot.ts profileOptionsSchema. */
  options: text("options", { mode: "json" }).$type<Record<string, unknown>>(),
  createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
  updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
});
export type OsProfile = typeof osProfiles.$inferSelect;
