import fs from "node:fs";
import { expect, test, type Browser, type Page } from "@playwright/test";
import { ADMIN, bootEntryNonce, signIn, snap, trpcMutation, writeBootTree } from "./fixtures";

/**
 * Issue 13's operator points: own password change and admin reset (ending sessions), Events filters in the URL,
 * CSV export of the machine filter, inventory tables and filters, the wait_agent hint, step limits, and the job
 * record download. The agent is simulated over HTTP with the real protocol (as in deploy.spec.ts).
 */
const API = "/api/agent/v1";
const MAC = "52:54:00:de:13:01";
const created: number[] = [];

test.afterEach(async ({ page }) => {
  await writeBootTree(page, false);
  for (const id of created.splice(0)) {
    await trpcMutation(page, "machines.action", { id, action: "abort" });
    expect((await trpcMutation(page, "machines.delete", { id })).status()).toBe(200);
  }
});

async function newSession(browser: Browser, user: { name: string; password: string }): Promise<Page> {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, user);
  return page;
}

async function enroll(page: Page, name: string, extra: Record<string, unknown> = {}): Promise<number> {
  const res = await trpcMutation(page, "machines.enroll", { name, ...extra });
  expect(res.status(), await res.text()).toBe(200);
  const id: number = (await res.json()).result.data.id;
  created.push(id);
  return id;
}

test("change your own password ends your other sessions; an admin reset ends all of the user's sessions", async ({ page, browser }) => {
  await signIn(page, ADMIN);
  const mk = await trpcMutation(page, "users.create", { name: "opui-carol", role: "viewer", password: "carol-first-pw" });
  expect(mk.status(), await mk.text()).toBe(200);
  const carol = { name: "opui-carol", password: "carol-first-pw" };
  const a = await newSession(browser, carol);
  const b = await newSession(browser, carol);

  // Clicking your name leads to the password form.
  await a.getByTestId("signed-in-user").getByRole("link", { name: "opui-carol" }).click();
  const form = a.getByRole("form", { name: "Change your password" });
  await form.getByLabel("Current password").fill("not-the-password");
  await form.getByLabel(/^New password/).fill("carol-second-pw");
  await form.getByLabel("Repeat new password").fill("carol-second-pw");
  await form.getByRole("button", { name: "Change password" }).click();
  await expect(form.getByText("Wrong password")).toBeVisible();
  await form.getByLabel("Current password").fill("carol-first-pw");
  await form.getByRole("button", { name: "Change password" }).click();
  await expect(form.getByRole("status")).toHaveText("Password changed. 1 other session was signed out.");
  await snap(a, "account-password");

  // This session stays; the other one is signed out.
  await a.reload();
  await expect(a.getByTestId("signed-in-user")).toContainText("opui-carol");
  await b.goto("/machines");
  await expect(b).toHaveURL(/\/login/);

  // The admin resets carol's password from the Users page: her remaining session ends too.
  await page.goto("/users");
  await page.getByRole("row", { name: /opui-carol/ }).getByRole("button", { name: "Reset password" }).click();
  const dialog = page.getByRole("dialog", { name: "Reset the password of opui-carol" });
  await dialog.getByLabel(/^New password/).fill("carol-reset-pw1");
  await dialog.getByRole("button", { name: "Reset password" }).click();
  await expect(dialog).toBeHidden();
  await a.goto("/machines");
  await expect(a).toHaveURL(/\/login/);
  await signIn(a, { name: "opui-carol", password: "carol-reset-pw1" });
  await a.context().close();
  await b.context().close();
});

test("events: filters and text search live in the URL and survive a reload", async ({ page }) => {
  await signIn(page, ADMIN);
  const one = await enroll(page, "opui-ev-01", { bootMac: "52:54:00:de:13:11" });
  await enroll(page, "opui-ev-02", { bootMac: "52:54:00:de:13:12" });
  expect((await trpcMutation(page, "machines.action", { id: one, action: "manage", reason: "opui marker" })).status()).toBe(200);

  await page.goto("/events");
  const list = page.getByTestId("event-list");
  await expect(list).toContainText("opui-ev-02");
  const filters = page.getByRole("form", { name: "Event filters" });
  await filters.getByLabel("Machine", { exact: true }).fill("opui-ev-01");
  await expect(page).toHaveURL(/[?&]machine=opui-ev-01/);
  await expect(list).not.toContainText("opui-ev-02");
  await expect(list).toContainText("opui-ev-01");
  await filters.getByRole("combobox", { name: /^Kind/ }).selectOption("state.changed");
  await expect(page).toHaveURL(/kind=state\.changed/);
  await expect(list.getByRole("listitem")).toHaveCount(1);
  await expect(list).toContainText("Enrolled → Manageable");
  await filters.getByRole("combobox", { name: /^Actor/ }).selectOption("user:admin");
  await filters.getByLabel("Search", { exact: true }).fill("no such text");
  await expect(page).toHaveURL(/q=no\+such\+text/);
  await expect(list).toContainText("No events match these filters.");
  await filters.getByLabel("Search", { exact: true }).fill("Manageable");
  await expect(page).toHaveURL(/q=Manageable/);
  await expect(list.getByRole("listitem")).toHaveCount(1);

  // The URL alone reproduces the view (shareable), and a time range in the future matches nothing.
  await page.reload();
  await expect(filters.getByLabel("Machine", { exact: true })).toHaveValue("opui-ev-01");
  await expect(filters.getByRole("combobox", { name: /^Kind/ })).toHaveValue("state.changed");
  await expect(list.getByRole("listitem")).toHaveCount(1);
  await snap(page, "events-filtered");
  await filters.getByLabel("From", { exact: true }).fill("2099-01-01T00:00");
  await expect(page).toHaveURL(/from=2099-01-01T00%3A00/);
  await expect(list).toContainText("No events match these filters.");
  await filters.getByRole("button", { name: "Clear filters" }).click();
  await expect(page).toHaveURL(/\/events$/);
  await expect(list).toContainText("opui-ev-02");
});

test("wait_agent hint, step limits, inventory tables and filters, CSV export of the filter, job record download", async ({ page, request }) => {
  await signIn(page, ADMIN);
  const id = await enroll(page, "opui-inv-01", { bootMac: MAC, ip: "10.13.0.1", bmc: { driver: "fake", address: "10.77.13.1", username: "admin", password: "x" } });
  expect((await trpcMutation(page, "machines.action", { id, action: "manage" })).status()).toBe(200);
  await writeBootTree(page, true);
  expect((await trpcMutation(page, "machines.action", { id, action: "inspect" })).status()).toBe(200);

  // No agent yet: the job says how long it has waited, its limit, and what to check.
  await page.goto(`/machines/${id}`);
  const hint = page.getByTestId("waiting-hint");
  await expect(hint).toContainText("Waiting for the agent");
  await expect(hint).toContainText("of 15m 00s");
  await expect(hint).toContainText("No agent has contacted Rackhand for this machine; is its boot device PXE");
  await expect(page.getByRole("row", { name: /wait_agent/ }).getByTestId("step-elapsed")).toContainText("/ 15m 00s");
  await snap(page, "waiting-hint");

  // The agent looks itself up with its inventory.
  await expect.poll(() => bootEntryNonce(MAC)).not.toBeNull();
  const inventory = {
    cpus: 16,
    cpu: { model: "Opui Xeon 9999 @ 3.1GHz", sockets: 2, cores: 8, threads: 16, flags: ["vmx", "aes"] },
    memoryBytes: 64 * 2 ** 30,
    disks: [
      { name: "sda", path: "/dev/sda", sizeBytes: 480 * 10 ** 9, model: "SSD-480", serial: "S1", rotational: false, transport: "sata" },
      { name: "sdb", path: "/dev/sdb", sizeBytes: 4 * 10 ** 12, model: "=HDD-4T", serial: "S2", rotational: true, transport: "sas" },
    ],
    nics: [{ name: "eno1", mac: MAC, state: "up", speedMbps: 10000, mtu: 1500, driver: "ixgbe", addresses: ["10.13.0.1/24"] }],
    collectedAt: new Date().toISOString(),
  };
  const look = await request.post(`${API}/lookup`, { data: { macs: [MAC], nonce: bootEntryNonce(MAC), inventory } });
  expect(look.status(), await look.text()).toBe(200);
  await expect(hint).toBeHidden();

  await page.reload();
  const inv = page.getByRole("region", { name: "Inventory" });
  await expect(inv.getByRole("table", { name: "CPU" })).toContainText("Opui Xeon 9999 @ 3.1GHz");
  await expect(inv.getByRole("table", { name: "Memory" })).toContainText("64.0 GiB");
  await expect(inv.getByRole("table", { name: "Disks" }).getByRole("row")).toHaveCount(3);
  await expect(inv.getByRole("table", { name: "Disks" })).toContainText("3.6 TiB");
  await expect(inv.getByRole("table", { name: "NICs" })).toContainText("10000 Mb/s");
  await expect(inv.getByText('"memoryBytes"')).toBeHidden();
  await snap(page, "inventory-tables");

  // The record of the job: one JSON with the time axis and the text rendering.
  const [dl] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download record" }).first().click()]);
  expect(dl.suggestedFilename()).toMatch(/^rackhand-job-\d+-opui-inv-01\.json$/);
  const record = JSON.parse(fs.readFileSync(await dl.path(), "utf8"));
  expect(record.format).toBe("rackhand-job-record/1");
  expect(record.timeline.some((t: { source: string; text: string }) => t.source === "step" && /wait_agent/.test(t.text))).toBe(true);
  expect(record.timeline.some((t: { source: string }) => t.source === "event")).toBe(true);
  expect(record.text).toContain("Timeline (time, source, step, text):");

  // Inventory filters on the machine list, kept in the URL, and the CSV export of exactly that filter.
  await page.goto("/machines");
  await page.getByLabel("CPU model").fill("opui xeon");
  await page.getByLabel("Minimum memory (GiB)").fill("32");
  await page.getByLabel("Minimum disk count").fill("2");
  await expect(page).toHaveURL(/cpu=opui\+xeon/);
  await expect(page).toHaveURL(/mem=32/);
  await expect(page).toHaveURL(/disks=2/);
  await expect(page.getByRole("row", { name: /opui-inv-01/ })).toBeVisible();
  await expect(page.getByText("1 machine matches")).toBeVisible();
  const [csv] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-csv").click()]);
  const text = fs.readFileSync(await csv.path(), "utf8");
  const lines = text.trim().split("\r\n");
  expect(lines[0]).toMatch(/^name,state,power,/);
  expect(lines).toHaveLength(2);
  expect(lines[1]).toMatch(/^opui-inv-01,inspecting,/);
  expect(lines[1]).toContain("Opui Xeon 9999 @ 3.1GHz,64,2,");
  await page.getByLabel("Minimum disk count").fill("3");
  await expect(page.getByText("0 machines match")).toBeVisible();
});
