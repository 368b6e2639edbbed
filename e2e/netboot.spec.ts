import { expect, test } from "@playwright/test";
import { ADMIN, signIn, snap } from "./fixtures";

test("an admin creates an OS profile, is refused an injected kernel argument, and sets up the provisioning network", async ({ page }) => {
  await signIn(page, ADMIN);
  await page.getByRole("link", { name: "OS profiles" }).click();
  await page.getByRole("button", { name: "New profile" }).click();
  const form = page.getByRole("form", { name: "OS profile" });
  await form.getByLabel("Profile name").fill("Debian 12 netinst");
  await form.getByLabel(/^Kernel(?! arguments)/).fill("debian/12/linux");
  await form.getByLabel("Initrd").fill("debian/12/initrd.gz");
  await form.getByLabel("Kernel arguments").fill('quiet"; reboot');
  await form.getByRole("button", { name: "Save profile" }).click();
  await expect(form.getByText(/Kernel arguments may contain/)).toBeVisible();
  await form.getByLabel("Kernel arguments").fill("console=ttyS0,115200 quiet");
  await form.getByLabel("Mirror").fill("http://deb.debian.org/debian");
  await form.getByRole("button", { name: "Save profile" }).click();
  await expect(page.getByRole("cell", { name: "Debian 12 netinst", exact: true })).toBeVisible();
  await snap(page, "os-profiles");

  await page.getByRole("link", { name: "Settings" }).click();
  const net = page.getByRole("form", { name: "Provisioning network" });
  await net.getByLabel("Netboot mode").selectOption("external");
  await net.getByLabel("Range end").fill("10.99.0.1");
  await expect(net.getByText("is not in the server's subnet")).toBeVisible();
  await expect(net.getByRole("button", { name: "Save settings" })).toBeDisabled();
  await net.getByLabel("Range end").fill("10.77.0.200");
  await net.getByRole("button", { name: "Save settings" }).click();
  await expect(net.getByRole("status")).toHaveText("Saved");
  await expect(page.getByTestId("netboot-status")).toContainText("Mode: external");
  // The Debian agent environment needs its root file system built; the page says so before anything boots it.
  await expect(page.getByTestId("agent-files")).toContainText("Debian root file system: not built (npm run ramdisk -- --debian)");
  await net.getByLabel("Agent environment").selectOption("debian");
  await expect(net.getByText("Not built yet: run npm run ramdisk -- --debian")).toBeVisible();
  await net.getByLabel("Agent environment").selectOption("busybox");
  await expect(net.getByText("Not built yet")).toHaveCount(0);
  await snap(page, "settings");

  await page.goto("/machines/new");
  await expect(page.getByLabel("OS profile")).toContainText("Debian 12 netinst (installer)");
});
