import { expect, test } from "@playwright/test";
import { signIn, snap } from "./fixtures";
import { LAB_ADMIN } from "./lab-config";

/**
 * With the virtual lab up (`lab/cli.ts up`, started by playwright.config.ts for this project): a real QEMU VM
 * behind an ipmi_sim BMC, Rackhand's managed dnsmasq in the lab's namespace. A deploy clicked on the machine page
 * powers the VM on through ipmitool; the Console tab shows the VM's serial console over SOL (the RAM disk's init,
 * later the installed OS's marker); the log pane shows the agent's lines; the machine ends Deployed.
 */
test.describe.configure({ timeout: 300_000 });

test("deploy a VM of the virtual lab from the UI: serial console over SOL, live agent log, deployed", async ({ page }) => {
  await signIn(page, LAB_ADMIN);
  // The lab enrols its VMs right after Rackhand answers: wait for vm1 to be there and available.
  await expect
    .poll(
      async () => {
        await page.goto("/machines?q=vm1");
        return page.getByRole("link", { name: "vm1", exact: true }).count();
      },
      { timeout: 60_000 },
    )
    .toBe(1);
  await page.getByRole("link", { name: "vm1", exact: true }).click();
  await expect(page.getByTestId("machine-state")).toContainText("Available", { timeout: 30_000 });

  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  const dialog = page.getByRole("dialog");
  if (await dialog.isVisible().catch(() => false)) await dialog.getByRole("button", { name: /Deploy|Confirm/ }).click();
  await expect(page.getByTestId("machine-state")).toContainText("Deploying", { timeout: 30_000 });

  // The log pane (Overview tab) fills with the agent's lines as it works.
  const log = page.getByRole("log");
  await expect(log).toContainText("inventory", { timeout: 120_000 });
  await expect(log).toContainText(/verified: \d+ bytes, sha256 [0-9a-f]{64}/, { timeout: 120_000 });
  await snap(page, "lab-deploy-log");

  // The Console tab: the VM's serial console through the BMC's SOL. The installed OS prints its marker after
  // Rackhand switches the boot device to disk and power-cycles the VM.
  await page.getByRole("tab", { name: "Console" }).click();
  const term = page.getByTestId("serial-console");
  await expect(term).toContainText("RACKHAND-OS-UP", { timeout: 120_000 });
  await expect(term).toContainText("os-net: /etc/network/interfaces");
  await snap(page, "lab-console");

  await page.getByRole("tab", { name: "Overview" }).click();
  await expect(page.getByTestId("machine-state")).toContainText("Deployed", { timeout: 60_000 });
  await snap(page, "lab-deployed");
});
