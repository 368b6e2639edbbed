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
