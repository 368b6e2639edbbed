import { expect, test } from "@playwright/test";
import { IpmiSim, SIM_USER } from "../server/oob/testing/ipmi-sim";
import { ADMIN, signIn, snap, trpcMutation } from "./fixtures";

// A real BMC simulator (ipmi_sim with a fake serial console on TCP) behind one machine, started for this file.
let sim: IpmiSim;
let machineId: number;

test.beforeAll(async () => {
  sim = await new IpmiSim("e2e", { console: true, power: "off" }).start();
});
test.afterAll(async () => {
  await sim?.stop();
});

test.describe.serial("out-of-band control against ipmi_sim", () => {
  test("enroll on the simulator, verify the BMC, power on from the machine page", async ({ page }) => {
    await signIn(page, ADMIN);
    const res = await trpcMutation(page, "machines.enroll", {
      name: "bmc-01",
      bootMac: "52:54:00:e2:e0:01",
      bmc: { address: "127.0.0.1", port: sim.port, username: SIM_USER, password: sim.password },
    });
    expect(res.status()).toBe(200);
    machineId = (await res.json()).result.data.id;
    await page.goto(`/machines/${machineId}`);
    await page.getByRole("button", { name: "Check BMC" }).click();
    await expect(page.getByTestId("bmc-check")).toContainText("BMC answers: IPMI 2.0");
    await page.getByRole("button", { name: "Manage", exact: true }).click();
    await expect(page.getByTestId("machine-state")).toContainText("Manageable");
    await expect(page.getByTestId("machine-state").getByTitle("Power off")).toBeVisible();

    await page.getByRole("button", { name: "Power on" }).click();
    await expect(page.getByTestId("machine-state").getByTitle("Power on")).toBeVisible();
    await expect(page.getByTestId("power-outcome")).toHaveText("Power is on");
    expect(sim.power()).toBe("on");
    await expect(page.getByTestId("event-list")).toContainText("Power off → on");
    await snap(page, "machine-power");

    // Power off asks for confirmation first.
    await page.getByRole("button", { name: "Power off" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Power off" }).click();
    await expect(page.getByTestId("power-outcome")).toHaveText("Power is off");
    expect(sim.power()).toBe("off");
  });

  test("bulk power from the table selection, with per-machine outcomes", async ({ page }) => {
    await signIn(page, ADMIN);
    await page.goto("/machines?q=bmc-01");
    await page.getByLabel("Select bmc-01").check();
    await page.getByRole("group", { name: "Bulk power" }).getByRole("button", { name: "Power on" }).click();
    await expect(page.getByRole("dialog").getByTestId("plan-summary")).toHaveText("1 of 1 machine will act; 0 skipped.");
    await page.getByRole("dialog").getByRole("button", { name: "Power on 1 machine" }).click();
    await expect(page.getByTestId("power-summary")).toHaveText("1 machine switched, 0 refused, 0 skipped.");
    await expect(page.getByRole("dialog")).toContainText("power on");
    expect(sim.power()).toBe("on");
  });

  test("Settings: power sync settings apply at once, Sync now shows the sweep and how the BMC was read", async ({ page }) => {
    await signIn(page, ADMIN);
    await page.goto("/settings");
    const panel = page.getByTestId("power-sync");
    await panel.getByLabel("Interval (s)").fill("30");
    await panel.getByRole("checkbox", { name: "enrolled" }).check();
    await panel.getByRole("button", { name: "Save power sync" }).click();
    await expect(panel.getByRole("status")).toHaveText("Saved, applied now");
    // The simulator's machine is manageable, so it is still synced; flip its power behind Rackhand's back.
    expect(sim.ipmitool(["chassis", "power", "off"]).status).toBe(0);
    await panel.getByRole("button", { name: "Sync now" }).click();
    await expect(page.getByTestId("power-sync-last")).toContainText(/Last sweep .*: \d+ machines?, \d+ answered, [1-9]\d* changed/);
    await expect(page.getByTestId("power-sync-last")).toContainText(/by Rackhand's RMCP\+ probe/);
    await page.goto(`/machines/${machineId}`);
    await expect(page.getByTestId("machine-state").getByTitle("Power off")).toBeVisible();
    await expect(page.getByTestId("event-list")).toContainText("seen by power sync");
  });

  test("Console tab: the serial console prints, a typed key reaches it, a second page sees the same bytes", async ({ page, browser }) => {
    await signIn(page, ADMIN);
    await page.goto(`/machines/${machineId}`);
    await page.getByRole("tab", { name: "Console" }).click();
    const term = page.getByTestId("serial-console");
    await expect(term).toContainText("console-line");
    await expect(page.getByTestId("console-state")).toContainText("open");

    const ctx = await browser.newContext();
    const watcher = await ctx.newPage();
    await signIn(watcher, ADMIN);
    await watcher.goto(`/machines/${machineId}`);
    await watcher.getByRole("tab", { name: "Console" }).click();
    await expect(watcher.getByTestId("console-state")).toContainText("2 watching");

    await page.getByRole("button", { name: "Take keyboard" }).click();
    await expect(watcher.getByTestId("console-holder")).toHaveText("Keyboard: admin");
    await term.click();
    await page.keyboard.type("hello-e2e");
    await page.keyboard.press("Enter");
    await expect(term).toContainText("ECHO:hello-e2e");
    await expect(watcher.getByTestId("serial-console")).toContainText("ECHO:hello-e2e");
    await snap(page, "machine-console");
    await page.getByRole("button", { name: "Release keyboard" }).click();
    await expect(watcher.getByTestId("console-holder")).toHaveText("Keyboard: free");

    const transcript = await page.request.get(`/api/consoles/${machineId}/transcript`);
    expect(await transcript.text()).toContain("ECHO:hello-e2e");
    await ctx.close();
  });
});
