import { expect, test } from "@playwright/test";
import { ADMIN, signIn, snap, trpcMutation } from "./fixtures";

test("a viewer reads everything and is refused every change, in the UI and in the API", async ({ page, browser }) => {
  // The admin creates the viewer account through the Users page.
  await signIn(page, ADMIN);
  const enrolled = await trpcMutation(page, "machines.enroll", { name: "viewer-probe", bootMac: "52:54:00:ee:00:01" });
  expect(enrolled.status()).toBe(200);
  await page.goto("/users");
  const form = page.getByRole("form", { name: "New user" });
  await form.getByLabel("New user name").fill("vera");
  await form.getByLabel("Role").selectOption("viewer");
  await form.getByLabel("Initial password").fill("viewer-password-1");
  await form.getByRole("button", { name: "Create user" }).click();
  await expect(page.getByRole("cell", { name: "vera" })).toBeVisible();

  const ctx = await browser.newContext();
  const viewer = await ctx.newPage();
  await signIn(viewer, { name: "vera", password: "viewer-password-1" });
  await expect(viewer.getByTestId("signed-in-user")).toContainText("viewer");
  await expect(viewer.getByRole("link", { name: "Users" })).toHaveCount(0);

  await viewer.goto("/racks");
  await expect(viewer.getByRole("button", { name: "New rack" })).toBeDisabled();
  await viewer.goto("/machines");
  await expect(viewer.getByRole("button", { name: "Import CSV" })).toBeDisabled();
  await expect(viewer.getByRole("button", { name: "Enroll machine" })).toBeDisabled();
  await viewer.getByLabel("Select this page").check();
  await expect(viewer.getByRole("group", { name: "Bulk actions" }).getByRole("button", { name: "Manage" })).toBeDisabled();
  await snap(viewer, "machines-as-viewer");

  // The API refuses too, whatever the UI shows.
  const res = await trpcMutation(viewer, "racks.create", { name: "sneaky", heightU: 42 });
  expect(res.status()).toBe(403);
  expect(await res.text()).toContain("needs the operator role");
  const action = await trpcMutation(viewer, "machines.bulkAction", { selection: { filter: {} }, action: "manage" });
  expect(action.status()).toBe(403);
  const list = await viewer.request.get(`/api/trpc/racks.list`);
  expect(list.status()).toBe(200);
  await viewer.goto("/machines?q=viewer-probe");
  await viewer.getByRole("link", { name: "viewer-probe" }).click();
  await expect(viewer.getByRole("heading", { name: "viewer-probe" })).toBeVisible();
  await expect(viewer.getByRole("button", { name: "Manage", exact: true })).toBeDisabled();
  await expect(viewer.getByRole("button", { name: "Delete machine" })).toHaveCount(0);
  await ctx.close();
});
