import { expect, test } from "@playwright/test";
import { signIn, snap } from "./fixtures";
import { LAB_ADMIN } from "./lab-config";

/**
 * With the virtual lab up (`lab/cli.ts up`, started by playwright.config.ts for this project): a real QEMU VM
 * behind an ipmi_sim BMC, Rackhand's managed dnsmasq in the lab's namespace. An operator watches the VM's serial
 * console (SOL) on one page and clicks Deploy there; a second page shows the machine's install log. The console
 * shows the RAM disk booting and then the installed OS's marker; the log pane fills with the agent's lines; the
 * machine ends Deployed.
 */
test.describe.configure({ timeout: 300_000 });

test("deploy a VM of the virtual lab from the UI: serial console over SOL, live agent log, deployed", async ({ page, browser }) => {
  await signIn(page, LAB_ADMIN);
  // The lab enrols its VMs right after Rackhand answers: wait for vm1 to be there and available.
  await expect
    .poll(
      async () => {
        await page.goto("/machines?q=vm1");
        // The table's rows arrive after the page has loaded: give them a moment before looking again.
        return page
          .getByRole("link", { name: "vm1", exact: true })
          .waitFor({ timeout: 5_000 })
          .then(
            () => 1,
            () => 0,
          );
      },
      { timeout: 60_000 },
    )
    .toBe(1);
  await page.getByRole("link", { name: "vm1", exact: true }).click();
  await expect(page.getByTestId("machine-state")).toContainText("Available", { timeout: 30_000 });
  const machineUrl = page.url();

  // Page 1: the serial console, opened while the VM is still off.
  await page.getByRole("tab", { name: "Console" }).click();
  await expect(page.getByTestId("console-state")).toContainText("open", { timeout: 30_000 });
  // Page 2: the same machine's overview with the install log pane.
  const logPage = await (await browser.newContext()).newPage();
  await signIn(logPage, LAB_ADMIN);
  await logPage.goto(machineUrl);

  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  const dialog = page.getByRole("dialog");
  if (await dialog.isVisible().catch(() => false)) await dialog.getByRole("button", { name: /Deploy|Confirm/ }).click();
  await expect(logPage.getByTestId("machine-state")).toContainText("Deploying", { timeout: 30_000 });

  // The VM was powered on through the BMC and PXE-booted the RAM disk: its init speaks on the serial console.
  const term = page.getByTestId("serial-console");
  await expect(term).toContainText("rackhand-init: lease", { timeout: 120_000 });

  // The log pane fills live with the agent's lines as it works.
  const log = logPage.getByRole("log");
  await expect(log).toContainText("inventory", { timeout: 120_000 });
  await expect(log).toContainText(/verified: \d+ bytes, sha256 [0-9a-f]{64}/, { timeout: 120_000 });
  await snap(logPage, "lab-deploy-log");

  // Boot device disk + power cycle: the installed OS prints its marker and the network file Rackhand wrote.
  await expect(term).toContainText("RACKHAND-OS-UP", { timeout: 120_000 });
  await expect(term).toContainText("os-net: /etc/network/interfaces");
  await snap(page, "lab-console");

  await expect(logPage.getByTestId("machine-state")).toContainText("Deployed", { timeout: 60_000 });
  await snap(logPage, "lab-deployed");
});
