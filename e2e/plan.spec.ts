/**
 * The plan preview of bulk actions (issue 13): a bulk deploy with a chosen OS profile driven from the plan (the typed
 * count is the number that acts), the stale-plan refusal and re-plan, the bulk "Set OS profile", and the CSV
 * preview reporting every problem of a row and duplicates within the file.
 */
import { expect, test, type Page } from "@playwright/test";
import { ADMIN, signIn, snap, trpcMutation } from "./fixtures";

async function call(page: Page, path: string, input: unknown) {
  const res = await trpcMutation(page, path, input);
  expect(res.status(), `${path}: ${await res.text()}`).toBe(200);
  return (await res.json()).result.data;
}
async function get(page: Page, path: string, input: unknown) {
  const res = await page.request.get(`/api/trpc/${path}?input=${encodeURIComponent(JSON.stringify(input))}`);
  expect(res.status()).toBe(200);
  return (await res.json()).result.data;
}

// The specs share one server: what this file creates is removed again.
const created: { machines: number[]; profiles: number[] } = { machines: [], profiles: [] };
test.afterEach(async ({ page }) => {
  for (const id of created.machines.splice(0)) {
    const state = (await get(page, "machines.get", { id })).state as string;
    if (["deploying", "inspecting", "cleaning"].includes(state)) await call(page, "machines.action", { id, action: "abort" });
    await call(page, "machines.delete", { id });
  }
  for (const id of created.profiles.splice(0)) await call(page, "osProfiles.delete", { id });
});

async function profile(page: Page, name: string): Promise<number> {
  const p = await call(page, "osProfiles.create", { name, kind: "image", imageUrl: `http://images.example/${name}.raw.gz`, imageSha256: "e".repeat(64), imageFormat: "raw.gz" });
  created.profiles.push(p.id);
  return p.id;
}

/** A machine on the fake BMC driver, brought to `to`. */
async function machine(page: Page, name: string, macByte: number, to: "enrolled" | "available", osProfileId?: number): Promise<number> {
  const mac = `52:54:00:be:${macByte.toString(16).padStart(2, "0")}:01`;
  const bmc = { driver: "fake", address: `10.76.0.${macByte}`, username: "admin", password: "fake-pass" };
  const { id } = await call(page, "machines.enroll", { name, bootMac: mac, bmc, ...(osProfileId && { osProfileId }) });
  created.machines.push(id);
  if (to === "available") {
    await call(page, "machines.action", { id, action: "manage" });
    await call(page, "machines.action", { id, action: "provide" });
  }
  return id;
}

test("bulk deploy with a chosen OS profile, driven from the plan: the typed count is the number that acts", async ({ page }) => {
  await signIn(page, ADMIN);
  const img = await profile(page, "e2e-plan-bookworm");
  const ids = [await machine(page, "e2e-pd-1", 0x11, "available"), await machine(page, "e2e-pd-2", 0x12, "available"), await machine(page, "e2e-pd-3", 0x13, "available")];
  await machine(page, "e2e-pd-4", 0x14, "enrolled");

  await page.goto("/machines?q=e2e-pd-");
  await expect(page.getByTestId("machine-row")).toHaveCount(4);
  await page.getByLabel("Select this page").check();
  await page.getByRole("group", { name: "Bulk actions" }).getByRole("button", { name: "Deploy" }).click();
  const dialog = page.getByRole("dialog");
  // Each machine's own profile: none has one, so nothing would act.
  await expect(dialog.getByTestId("plan-summary")).toHaveText("0 of 4 machines will act; 4 skipped.");
  await expect(dialog.getByTestId("plan-row-e2e-pd-1")).toContainText("has no OS profile");
  await expect(dialog.getByText("nothing to confirm")).toBeVisible();

  // One profile for the whole selection: three act, the Enrolled one is skipped with its reason, before anything runs.
  await dialog.getByLabel("OS profile").selectOption({ label: "e2e-plan-bookworm" });
  await expect(dialog.getByTestId("plan-summary")).toHaveText("3 of 4 machines will act; 1 skipped.");
  await expect(dialog.getByTestId("plan-row-e2e-pd-4")).toContainText("Deploy is not allowed in state Enrolled");
  await expect(dialog.getByTestId("plan-row-e2e-pd-1")).toContainText("Available → Deploying");
  await expect(dialog.getByTestId("plan-row-e2e-pd-1")).toContainText("OS profile: none → e2e-plan-bookworm");
  await expect(dialog.getByRole("list", { name: "What changes" })).toContainText("Image written: e2e-plan-bookworm.raw.gz: 3");
  await expect(dialog.getByRole("list", { name: "Skipped" })).toContainText("Skipped, state does not allow it: 1");
  const submit = dialog.getByRole("button", { name: "Deploy 3 machines" });
  // The selected number (4) does not confirm; the acting number (3) does.
  await dialog.getByLabel("Type the number of machines").fill("4");
  await expect(submit).toBeDisabled();
  await dialog.getByLabel("Type the number of machines").fill("3");
  await snap(page, "plan-deploy");
  await submit.click();
  await expect(page).toHaveURL(/\/batches\/\d+$/);
  await expect(page.getByTestId("batch-machine")).toHaveCount(3);
  for (const id of ids) expect((await get(page, "machines.get", { id })).osProfileId).toBe(img);
});

test("a plan that went stale is refused and planned again; the new plan executes", async ({ page }) => {
  await signIn(page, ADMIN);
  const a = await machine(page, "e2e-ps-1", 0x21, "available");
  const b = await machine(page, "e2e-ps-2", 0x22, "available");
  await page.goto("/machines?q=e2e-ps-");
  await expect(page.getByTestId("machine-row")).toHaveCount(2);
  await page.getByLabel("Select this page").check();
  await page.getByRole("group", { name: "Bulk power" }).getByRole("button", { name: "Power off" }).click();
  const dialog = page.getByRole("dialog");
  await expect(dialog.getByTestId("plan-summary")).toHaveText("2 of 2 machines will act; 0 skipped.");
  await dialog.getByLabel("Type the number of machines").fill("2");
  // Meanwhile, another operator removes one machine's BMC.
  await call(page, "machines.update", { id: b, bmc: null });
  await dialog.getByRole("button", { name: "Power off 2 machines" }).click();
  await expect(dialog.getByTestId("plan-stale")).toContainText("The plan is stale");
  await expect(dialog.getByTestId("plan-summary")).toHaveText("1 of 2 machines will act; 1 skipped.");
  await expect(dialog.getByTestId("plan-row-e2e-ps-2")).toContainText("has no BMC");
  await snap(page, "plan-stale");
  await dialog.getByLabel("Type the number of machines").fill("1");
  await dialog.getByRole("button", { name: "Power off 1 machine" }).click();
  await expect(page.getByTestId("power-summary")).toHaveText("1 machine switched, 0 refused, 1 skipped.");
  expect((await get(page, "machines.get", { id: a })).powerState).toBe("off");
});

test("bulk Set OS profile: the plan skips machines that already have it", async ({ page }) => {
  await signIn(page, ADMIN);
  const img = await profile(page, "e2e-plan-trixie");
  const ids = [await machine(page, "e2e-pp-1", 0x31, "enrolled"), await machine(page, "e2e-pp-2", 0x32, "available"), await machine(page, "e2e-pp-3", 0x33, "enrolled", img)];
  await page.goto("/machines?q=e2e-pp-");
  await expect(page.getByTestId("machine-row")).toHaveCount(3);
  await page.getByLabel("Select this page").check();
  await page.getByRole("group", { name: "Bulk actions" }).getByRole("button", { name: "Set OS profile" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("OS profile").selectOption({ label: "e2e-plan-trixie" });
  await expect(dialog.getByTestId("plan-summary")).toHaveText("2 of 3 machines will act; 1 skipped.");
  await expect(dialog.getByTestId("plan-row-e2e-pp-3")).toContainText("already has OS profile e2e-plan-trixie");
  await dialog.getByRole("button", { name: "Set OS profile of 2 machines" }).click();
  await expect(page.getByTestId("bulk-summary")).toHaveText("2 machines updated, 0 refused, 1 skipped.");
  for (const id of ids) expect((await get(page, "machines.get", { id })).osProfileId).toBe(img);
});

test("CSV preview: every problem of a row at once, and a duplicate within the file named as such", async ({ page }) => {
  await signIn(page, ADMIN);
  await page.goto("/machines");
  await page.getByRole("button", { name: "Import CSV" }).click();
  const dialog = page.getByRole("dialog", { name: "Import machines from CSV" });
  const text = [
    "name,mac,ip,bmc_address,bmc_user,bmc_password",
    "e2e-csv-1,52:54:00:bf:00:01,10.75.0.1,10.75.1.1,admin,secret",
    `e2e-csv-2,not-a-mac,10.75.0.2,10.43.1.999,admin,${"x".repeat(25)}`,
    "e2e-csv-1,52:54:00:bf:00:03,10.75.0.3,10.75.1.3,admin,secret",
  ].join("\n");
  await dialog.getByLabel("CSV text").fill(text);
  await dialog.getByRole("button", { name: "Preview" }).click();
  const errors = dialog.getByTestId("csv-errors");
  await expect(errors.getByRole("listitem")).toHaveCount(4);
  await expect(errors).toContainText("Row 2, mac");
  await expect(errors).toContainText('Row 2, bmc_address: "10.43.1.999" is not an IPv4 address');
  await expect(errors).toContainText("Row 2, bmc_password: IPMI passwords are at most 20 bytes; this one is 25 bytes (UTF-8)");
  await expect(errors).toContainText("Row 3, name: Name e2e-csv-1 is also on row 1 of this file");
  await expect(errors).not.toContainText("already exists");
  await expect(dialog).toContainText("4 problems in 2 rows");
  await expect(dialog.getByRole("button", { name: /^Import/ })).toBeDisabled();
  await snap(page, "csv-all-problems");
});
