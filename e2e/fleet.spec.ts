import { expect, test } from "@playwright/test";
import { ADMIN, signIn, snap, trpcMutation } from "./fixtures";

// One story, in order: an operator builds a rack of machines and watches it live.
test.describe.serial("rack and machines", () => {
  test("signed-out visitors are sent to the login page, and a wrong password is refused", async ({ page }) => {
    await page.goto("/racks");
    await expect(page).toHaveURL(/\/login\?next=%2Fracks/);
    await snap(page, "login");
    await page.getByLabel("User name").fill("admin");
    await page.getByLabel("Password").fill("wrong-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert").filter({ hasText: "Wrong user name or password" })).toBeVisible();
    await page.getByLabel("Password").fill(ADMIN.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page).toHaveURL(/\/racks$/);
    await expect(page.getByTestId("signed-in-user")).toContainText("admin");
  });

  test("create a rack", async ({ page }) => {
    await signIn(page, ADMIN);
    await page.goto("/racks");
    await expect(page.getByText("No racks yet")).toBeVisible();
    await page.getByRole("button", { name: "New rack" }).click();
    const dialog = page.getByRole("dialog", { name: "New rack" });
    await dialog.getByLabel("Rack name").fill("bad name!");
    await dialog.getByLabel("Height (U)").fill("24");
    await expect(dialog.getByText(/Use letters, digits/)).toBeVisible();
    await dialog.getByLabel("Rack name").fill("e2e-r01");
    await dialog.getByLabel("Site").fill("lab");
    await dialog.getByRole("button", { name: "Create rack" }).click();
    await expect(page.getByRole("figure", { name: "Rack e2e-r01" })).toBeVisible();
    await expect(page.getByRole("figure", { name: "Rack e2e-r01" })).toContainText("0/24U");
  });

  test("enroll a machine by form, with inline validation", async ({ page }) => {
    await signIn(page, ADMIN);
    await page.goto("/machines/new");
    await page.getByLabel("Name (host name)").fill("web-01");
    await page.getByLabel("Boot MAC").fill("52:54:00:zz");
    await page.getByLabel("Boot MAC").blur();
    await expect(page.getByText(/is not a MAC address/)).toBeVisible();
    await page.getByLabel("Boot MAC").fill("52-54-00-AA-00-01");
    await page.getByLabel("IP address").fill("10.9.0.300");
    await page.getByLabel("IP address").blur();
    await expect(page.getByText(/is not an IPv4 address/)).toBeVisible();
    await page.getByLabel("IP address").fill("10.9.0.1");
    await page.getByLabel("Rack").selectOption({ label: "e2e-r01 (24U, 0 machines)" });
    await page.getByLabel("U position").fill("24");
    await page.getByLabel("Height (U)").fill("2");
    // The fake driver: "Manage" verifies the BMC, and this story has no simulator (e2e/oob.spec.ts has one).
    await page.getByLabel("Driver").selectOption("fake");
    await page.getByLabel("BMC address").fill("127.0.0.1");
    await page.getByLabel("BMC user").fill("admin");
    await page.getByLabel("BMC password").fill("bmc-secret-web01");
    await snap(page, "enroll");
    await page.getByRole("button", { name: "Enroll machine" }).click();
    // U24 + 2U does not fit a 24U rack: the server says so next to the field.
    await expect(page.getByText(/does not fit in rack e2e-r01/).first()).toBeVisible();
    await page.getByLabel("U position").fill("20");
    await page.getByRole("button", { name: "Enroll machine" }).click();
    await expect(page.getByRole("heading", { name: "web-01" })).toBeVisible();
    await expect(page.getByTestId("machine-state")).toContainText("Enrolled");
    await expect(page.getByRole("region", { name: "Network", exact: true })).toContainText("52:54:00:aa:00:01");
    await expect(page.getByText("stored (encrypted)")).toBeVisible();
    await expect(page.getByText("bmc-secret-web01")).toHaveCount(0);
  });

  test("CSV import: a bad file is rejected whole, a good one imports", async ({ page }) => {
    await signIn(page, ADMIN);
    await page.goto("/machines");
    await page.getByRole("button", { name: "Import CSV" }).click();
    const dialog = page.getByRole("dialog", { name: "Import machines from CSV" });
    const bad = [
      "name,rack,u_position,mac,ip",
      "db-01,e2e-r01,1,52:54:00:bb:00:01,10.9.1.1",
      "db-02,e2e-r01,2,not-a-mac,10.9.1.2",
      "db-03,e2e-r01,20,52:54:00:bb:00:03,10.9.1.3",
    ].join("\n");
    await dialog.getByLabel("CSV text").fill(bad);
    await dialog.getByRole("button", { name: "Preview" }).click();
    const errors = dialog.getByTestId("csv-errors");
    await expect(errors).toContainText("Row 2, mac");
    await expect(errors).toContainText("Row 3, u_position");
    await expect(dialog.getByRole("button", { name: /^Import/ })).toBeDisabled();
    await snap(page, "csv-rejected");

    const good = ["name,rack,u_position,mac,ip"]
      .concat(Array.from({ length: 8 }, (_, i) => `db-0${i + 1},e2e-r01,${i + 1},5254.00bb.00${String(i + 1).padStart(2, "0")},10.9.1.${i + 1}`))
      .join("\n");
    await dialog.getByLabel("CSV text").fill(good);
    await dialog.getByRole("button", { name: "Preview" }).click();
    await expect(dialog.getByRole("table", { name: "CSV preview" }).getByRole("row")).toHaveCount(9);
    await dialog.getByRole("button", { name: "Import 8 machines" }).click();
    await expect(dialog.getByRole("status")).toHaveText("Imported 8 machines.");
    await dialog.getByRole("button", { name: "Done" }).click();
    // Other spec files share this server: count this rack's machines only.
    await page.getByRole("combobox", { name: "Rack" }).selectOption({ label: "e2e-r01" });
    await expect(page.getByTestId("machine-row")).toHaveCount(9);
  });

  test("machines appear in the elevation and the table; filter and select", async ({ page }) => {
    await signIn(page, ADMIN);
    await page.goto("/racks");
    const rack = page.getByRole("figure", { name: "Rack e2e-r01" });
    await expect(rack.getByTestId("rack-machine")).toHaveCount(9);
    await expect(rack).toContainText("10/24U");
    await snap(page, "racks");

    await page.goto("/machines");
    await page.getByRole("combobox", { name: "Rack" }).selectOption({ label: "e2e-r01" });
    await expect(page).toHaveURL(/rack=\d+/);
    await expect(page.getByTestId("machine-row")).toHaveCount(9);
    await page.getByRole("searchbox", { name: "Search machines" }).fill("db-0");
    await expect(page).toHaveURL(/q=db-0/);
    await expect(page.getByTestId("machine-row")).toHaveCount(8);
    // Search by MAC in another spelling.
    await page.getByRole("searchbox", { name: "Search machines" }).fill("52-54-00-AA-00-01");
    await expect(page.getByTestId("machine-row")).toHaveCount(1);
    await page.getByRole("searchbox", { name: "Search machines" }).fill("");
    await expect(page.getByTestId("machine-row")).toHaveCount(9);

    // Move two machines along the lifecycle, then filter by state.
    await page.getByLabel("Select db-01").check();
    await page.getByLabel("Select db-02").check();
    await expect(page.getByTestId("selection-status")).toContainText("2 machines selected");
    await page.getByRole("group", { name: "Bulk actions" }).getByRole("button", { name: "Manage" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Manage 2 machines" }).click();
    await expect(page.getByTestId("bulk-summary")).toHaveText("2 machines moved, 0 refused, 0 skipped.");
    await page.keyboard.press("Escape");
    await page.getByRole("group", { name: "Filter by state" }).getByRole("button", { name: "Manageable" }).click();
    await expect(page).toHaveURL(/state=manageable/);
    await expect(page.getByTestId("machine-row")).toHaveCount(2);
    await page.getByRole("group", { name: "Filter by state" }).getByRole("button", { name: "Manageable" }).click();
    await snap(page, "machines");
  });

  test("select all N matching the filter, across pages, and act on them", async ({ page }) => {
    await signIn(page, ADMIN);
    const csv = ["name,mac"].concat(Array.from({ length: 60 }, (_, i) => `bulk-${String(i).padStart(2, "0")},52:54:00:cc:00:${i.toString(16).padStart(2, "0")}`));
    const res = await trpcMutation(page, "machines.importCsv", { csv: csv.join("\n"), dryRun: false });
    expect(res.status()).toBe(200);
    await page.goto("/machines?q=bulk-");
    await expect(page.getByTestId("machine-row")).toHaveCount(50);
    await expect(page.getByRole("navigation", { name: "Pagination" })).toContainText("1–50 of 60");
    await page.getByLabel("Select this page").check();
    await expect(page.getByTestId("selection-status")).toContainText("50 machines selected");
    await page.getByRole("button", { name: "Select all 60 machines matching the filter" }).click();
    await expect(page.getByTestId("selection-status")).toContainText("All 60 machines matching the filter selected");
    await page.getByLabel("Select bulk-03").uncheck();
    await expect(page.getByTestId("selection-status")).toContainText("49 machines selected");
    await page.getByLabel("Select this page").check();
    await page.getByRole("button", { name: "Select all 60 machines matching the filter" }).click();
    await page.getByRole("group", { name: "Bulk actions" }).getByRole("button", { name: "Manage" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Manage 60 machines" }).click();
    await expect(page.getByTestId("bulk-summary")).toHaveText("60 machines moved, 0 refused, 0 skipped.");
    await page.keyboard.press("Escape");
    await page.goto("/machines?q=bulk-&state=manageable");
    await expect(page.getByRole("navigation", { name: "Pagination" })).toContainText("of 60");
  });

  test("machine page: actions the lifecycle allows, and a state change arrives live on a second page", async ({ page, browser }) => {
    await signIn(page, ADMIN);
    await page.goto("/machines?q=web");
    await page.getByRole("link", { name: "web-01" }).click();
    await expect(page.getByRole("heading", { name: "web-01" })).toBeVisible();
    await expect(page.getByRole("button", { name: "Manage" })).toBeVisible();
    await expect(page.getByRole("button", { name: "Deploy" })).toHaveCount(0);

    // A second browser (another operator's screen) watches the same machine, the table and the rack.
    const ctx = await browser.newContext();
    const watcher = await ctx.newPage();
    await signIn(watcher, ADMIN);
    await watcher.goto(page.url());
    await expect(watcher.getByTestId("machine-state")).toContainText("Enrolled");
    await expect(watcher.getByTestId("live-status")).toContainText("Live");

    await page.getByRole("button", { name: "Manage" }).click();
    await expect(page.getByTestId("machine-state")).toContainText("Manageable");
    await expect(watcher.getByTestId("machine-state")).toContainText("Manageable");
    await expect(watcher.getByTestId("event-list")).toContainText("Enrolled → Manageable (manage)");

    const table = await ctx.newPage();
    await table.goto("/machines?q=web-01");
    await expect(table.getByTestId("machine-row")).toContainText("Manageable");
    const rackView = await ctx.newPage();
    await rackView.goto("/racks");
    await expect(rackView.getByRole("link", { name: /web-01, Manageable/ })).toBeVisible();

    await page.getByRole("button", { name: "Provide" }).click();
    await expect(table.getByTestId("machine-row")).toContainText("Available");
    await expect(rackView.getByRole("link", { name: /web-01, Available/ })).toBeVisible();
    await expect(watcher.getByTestId("machine-state")).toContainText("Available");
    await snap(page, "machine-detail");
    await ctx.close();
  });

  test("screenshots of the remaining pages", async ({ page }) => {
    await signIn(page, ADMIN);
    for (const [path, name, heading] of [
      ["/", "overview", "Overview"],
      ["/events", "events", "Events"],
      ["/users", "users", "Users"],
    ] as const) {
      await page.goto(path);
      await expect(page.getByRole("heading", { name: heading, exact: true })).toBeVisible();
      await snap(page, name);
    }
    await expect(page.getByRole("cell", { name: "admin", exact: true }).first()).toBeVisible();
  });
});
