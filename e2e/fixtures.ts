import { expect, type Page } from "@playwright/test";
import fs from "node:fs";

export const ADMIN = { name: "admin", password: "e2e-admin-password" };

export async function signIn(page: Page, user: { name: string; password: string }) {
  await page.goto("/login");
  await page.getByLabel("User name").fill(user.name);
  await page.getByLabel("Password").fill(user.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("signed-in-user")).toContainText(user.name);
}

/** Save a full-page screenshot as a test artefact (test-results/screenshots/<name>.png). */
export async function snap(page: Page, name: string) {
  fs.mkdirSync("test-results/screenshots", { recursive: true });
  await page.screenshot({ path: `test-results/screenshots/${name}.png`, fullPage: true });
}

/** Call a tRPC mutation from the page's session (same origin, with its cookie). */
export async function trpcMutation(page: Page, path: string, input: unknown) {
  return page.request.post(`/api/trpc/${path}`, { data: input, headers: { "content-type": "application/json" } });
}

/**
 * Netboot mode `external`: the server writes the boot tree (test-results/e2e-data/netboot, see serve.mjs) and runs
 * no DHCP server, so a test can read a machine's agent boot entry; `off` again afterwards (the specs share a server).
 */
export async function writeBootTree(page: Page, on: boolean) {
  const res = await trpcMutation(page, "netboot.saveSettings", { mode: on ? "external" : "off" });
  expect(res.status(), await res.text()).toBe(200);
}

/**
 * The per-boot nonce in the machine's agent boot entry (rackhand.nonce= on its kernel command line, what the real
 * agent sends with its lookup); null while it has no agent entry (not inspecting, deploying or cleaning).
 */
export function bootEntryNonce(mac: string): string | null {
  const file = `test-results/e2e-data/netboot/tftp/pxelinux.cfg/01-${mac.toLowerCase().replaceAll(":", "-")}`;
  if (!fs.existsSync(file)) return null;
  return fs.readFileSync(file, "utf8").match(/ rackhand\.nonce=([0-9a-f]{64})\b/)?.[1] ?? null;
}
