/**
 * Per-machine install files served under /boot/m/<machineId>/<token>/<name>: only to the machine being
 * installed (state deploying, installer profile) and only with the token of its current install session
 * (install-token.ts). Everything else is "not found", so the URL space reveals nothing.
 */
import { and, eq } from "drizzle-orm";
import { packageProxyUrl, profileOptionsSchema, NET_CONFIG_FORMATS, type NetConfigFormat } from "../../lib/netboot";
import type { Actor, Domain } from "../context";
import { storeOf } from "../db/store";
import { transition } from "../machines/lifecycle";
import type { InstallTokens } from "./install-token";
import { loadBootRows } from "./load";
import { loadNetModelIn } from "../orchestrator/net-model-read";
import { loadNetbootSettings } from "./settings";
import { renderAutoinstallMetaData, renderAutoinstallUserData, renderKickstart, renderPreseed, type InstallContext } from "./templates/install";
import { NET_RENDERERS } from "./templates/net-config";

export interface InstallFile {
  contentType: string;
  body: string;
}

/** The machine's install context when (id, token) names its current install; null otherwise. */
export async function installContext(d: Domain, tokens: InstallTokens, machineId: number, token: string): Promise<InstallContext | null> {
  const store = storeOf(d);
  const [row] = await loadBootRows(store, [machineId]);
  if (!row || row.state !== "deploying" || row.sessionId == null || row.profile?.kind !== "installer") return null;
  if (!tokens.verify(machineId, row.sessionId, token)) return null;
  const { osProfiles: p } = store.t;
  const [profile] = await store.db.select().from(p).where(eq(p.id, row.profile.id)).limit(1);
  const options = profileOptionsSchema.safeParse(profile?.options ?? {});
  if (!options.success) return null;
  const settings = await loadNetbootSettings(store);
  const base = settings.httpBaseUrl.replace(/\/+$/, "");
  const filesUrl = `${base}/boot/m/${machineId}/${token}`;
  return {
    machineId,
    sessionId: row.sessionId,
    hostname: row.name,
    domain: settings.domain ?? "localdomain",
    options: options.data,
    net: await loadNetModelIn(store, store.db, machineId, settings.dnsServers, settings.domain),
    filesUrl,
    doneUrl: `${filesUrl}/done`,
    proxy: packageProxyUrl(settings),
  };
}

/** Render one install file by its name; null when the profile does not use it. */
export function renderInstallFile(c: InstallContext, template: string | null, name: string): InstallFile | null {
  const text = (body: string) => ({ contentType: "text/plain; charset=utf-8", body });
  if (name === "preseed.cfg" && template === "preseed") return text(renderPreseed(c));
  if (name === "user-data" && template === "autoinstall") return { contentType: "text/cloud-config; charset=utf-8", body: renderAutoinstallUserData(c) };
  if (name === "meta-data" && template === "autoinstall") return { contentType: "text/yaml; charset=utf-8", body: renderAutoinstallMetaData(c) };
  if (name === "vendor-data" && template === "autoinstall") return { contentType: "text/yaml; charset=utf-8", body: "{}\n" };
  if (name === "ks.cfg" && template === "kickstart") return text(renderKickstart(c));
  const m = /^net\/([a-z-]+)\/([A-Za-z0-9_.-]+)$/.exec(name);
  if (m && (NET_CONFIG_FORMATS as readonly string[]).includes(m[1]!)) {
    const f = NET_RENDERERS[m[1] as NetConfigFormat](c.net).find((x) => x.path === m[2]);
    if (f) return { contentType: m[1] === "netplan" ? "text/yaml; charset=utf-8" : "text/plain; charset=utf-8", body: f.content };
  }
  return null;
}

/** The install's late command reports success: deploying → deployed. */
/** Without a job waiting (e.g. a deploy started before jobs existed), the report moves the lifecycle itself. */
export async function reportInstallDone(d: Domain, c: InstallContext, actor: Actor = "agent"): Promise<void> {
  await transition(d, c.machineId, "succeed", { actor, automatic: true, reason: "installer reported completion" });
}

/** Profile template of a machine (for renderInstallFile). */
export async function profileTemplate(d: Domain, machineId: number): Promise<string | null> {
  const { db, t } = storeOf(d);
  const [r] = await db
    .select({ template: t.osProfiles.template })
    .from(t.machines)
    .innerJoin(t.osProfiles, and(eq(t.osProfiles.id, t.machines.osProfileId)))
    .where(eq(t.machines.id, machineId))
    .limit(1);
  return r?.template ?? null;
}
