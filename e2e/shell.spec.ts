import { expect, test, type Page } from "@playwright/test";
import { ADMIN, signIn, snap, trpcMutation } from "./fixtures";
import { openPage, seedPages, unseed } from "./pages";

// The layout, theme and dialog primitives of the shell (components/app-shell.tsx, theme.tsx, dialog.tsx).

const nav = (page: Page) => page.getByRole("navigation", { name: "Main" });
const menu = (page: Page) => page.getByRole("button", { name: "Show navigation" });

/** A browser pop-up (window.confirm/prompt/alert) anywhere fails the test: everything asks in-app. */
function refusePopups(page: Page) {
  page.on("dialog", (d) => {
    throw new Error(`browser pop-up "${d.message()}" (${d.type()}); dialogs must be in-app`);
  });
}

async function noSidewaysScroll(page: Page, what: string) {
  const { scroll, client } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
  expect(scroll, `${what}: the page scrolls sideways (${scroll} > ${client})`).toBeLessThanOrEqual(client);
}

test.describe.serial("shell", () => {
  let pages: Record<string, string> = {};
  let seeded: Awaited<ReturnType<typeof seedPages>>;

  test.beforeAll(async ({ browser }) => {
    const page = await browser.newPage();
    await signIn(page, ADMIN);
    seeded = await seedPages(page, "shell", 0x21);
    pages = seeded.pages;
    await page.close();
  });
  test.afterAll(async ({ browser }) => {
    const page = await browser.newPage();
    await signIn(page, ADMIN);
    await unseed(page, seeded);
    await page.close();
  });

  test("wide screen: the sidebar collapses and stays collapsed after a reload", async ({ page }) => {
    await signIn(page, ADMIN);
    await openPage(page, "/machines");
    await expect(nav(page)).toBeVisible();
    await expect(menu(page)).toBeHidden();
    await nav(page).getByRole("button", { name: "Collapse sidebar" }).click();
    await expect(nav(page)).toBeHidden();
    await expect(menu(page)).toBeFocused();
    await page.reload();
    await expect(page.locator("html")).toHaveAttribute("data-sidebar", "collapsed");
    await expect(nav(page)).toBeHidden();
    await menu(page).click();
    await expect(nav(page)).toBeVisible();
    await page.reload();
    await expect(nav(page)).toBeVisible();
    await expect(menu(page)).toBeHidden();
  });

  for (const width of [768, 375]) {
    test(`${width} px: the sidebar is a drawer behind the menu button`, async ({ page }) => {
      await page.setViewportSize({ width, height: 900 });
      await signIn(page, ADMIN);
      await openPage(page, "/");
      await expect(nav(page)).toBeHidden();
      await expect(menu(page)).toHaveAttribute("aria-expanded", "false");
      await menu(page).click();
      await expect(nav(page)).toBeVisible();
      await expect(menu(page)).toHaveAttribute("aria-expanded", "true");
      await expect(nav(page).getByRole("link").first()).toBeFocused();
      await snap(page, `shell-drawer-${width}`);
      // Escape closes it and gives focus back to the menu button.
      await page.keyboard.press("Escape");
      await expect(nav(page)).toBeHidden();
      await expect(menu(page)).toBeFocused();
      // A link navigates and closes the drawer.
      await menu(page).click();
      await nav(page).getByRole("link", { name: "Racks" }).click();
      await expect(page).toHaveURL(/\/racks$/);
      await expect(nav(page)).toBeHidden();
      await noSidewaysScroll(page, `racks at ${width}`);
    });
  }

  test("375 px: no page scrolls sideways", async ({ page, browser }) => {
    test.setTimeout(120_000);
    await page.setViewportSize({ width: 375, height: 800 });
    await signIn(page, ADMIN);
    for (const [name, path] of Object.entries(pages)) {
      await openPage(page, path);
      await noSidewaysScroll(page, `${name} ${path}`);
    }
    await snap(page, "shell-375-users");
    await openPage(page, "/machines");
    await snap(page, "shell-375-machines");
    const anon = await browser.newPage({ viewport: { width: 375, height: 800 } });
    await anon.goto("/login");
    await expect(anon.getByRole("button", { name: "Sign in" })).toBeVisible();
    await noSidewaysScroll(anon, "login");
    await anon.close();
  });

  for (const width of [1024, 768]) {
    test(`${width} px: the machine table fits, its last column visible`, async ({ page }) => {
      await page.setViewportSize({ width, height: 800 });
      await signIn(page, ADMIN);
      // Filtered to the seeded machine: other specs leave dozens of machines before it in the name order.
      await openPage(page, `/machines?q=${encodeURIComponent(seeded.failing.name)}`);
      const table = page.getByRole("table", { name: "Machines" });
      await expect(table.locator(`[data-machine="${seeded.failing.name}"]`)).toBeVisible();
      const fit = await table.evaluate((t) => {
        const card = t.parentElement!;
        const cells = [...t.querySelectorAll("thead th")].filter((th) => (th as HTMLElement).offsetParent !== null);
        const last = cells[cells.length - 1]!.getBoundingClientRect();
        return { cardScroll: card.scrollWidth, cardClient: card.clientWidth, lastRight: last.right, cardRight: card.getBoundingClientRect().right, lastText: cells[cells.length - 1]!.textContent };
      });
      expect(fit.cardScroll, `the table is wider than its card at ${width} px`).toBeLessThanOrEqual(fit.cardClient);
      expect(fit.lastRight).toBeLessThanOrEqual(fit.cardRight + 0.5);
      expect(fit.lastText).toContain("Last error");
      await noSidewaysScroll(page, `machines at ${width}`);
      await snap(page, `shell-machines-${width}`);
    });
  }

  test("dark mode follows the system until a choice is made, is remembered, and is there before the first paint", async ({ page }) => {
    await page.emulateMedia({ colorScheme: "dark" });
    await signIn(page, ADMIN);
    await openPage(page, "/machines");
    const html = page.locator("html");
    await expect(html).toHaveClass(/\bdark\b/);
    const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const darkBg = await bg();
    await snap(page, "shell-dark-machines");
    // The system turns light: so does the page (choice "system").
    await page.emulateMedia({ colorScheme: "light" });
    await expect(html).not.toHaveClass(/\bdark\b/);
    expect(await bg()).not.toBe(darkBg);
    // Choose dark against the light system; it sticks across a reload.
    const theme = page.getByLabel("Theme");
    await expect(theme).toHaveValue("system");
    await theme.selectOption("dark");
    await expect(html).toHaveClass(/\bdark\b/);
    expect(await bg()).toBe(darkBg);
    // No flash: with every script bundle held back, the page is dark already when its HTML has been parsed.
    await page.route("**/_next/static/chunks/**", async (route) => {
      await new Promise((r) => setTimeout(r, 1500));
      await route.continue();
    });
    await page.goto("/machines", { waitUntil: "domcontentloaded" });
    expect(await page.evaluate(() => document.documentElement.classList.contains("dark"))).toBe(true);
    expect(await bg()).toBe(darkBg);
    await page.unrouteAll({ behavior: "ignoreErrors" });
    await openPage(page, "/machines");
    await expect(page.getByLabel("Theme")).toHaveValue("dark");
    // Light against a dark system.
    await page.emulateMedia({ colorScheme: "dark" });
    await page.getByLabel("Theme").selectOption("light");
    await expect(html).not.toHaveClass(/\bdark\b/);
    await page.reload();
    await expect(html).not.toHaveClass(/\bdark\b/);
    await page.getByLabel("Theme").selectOption("system");
    await expect(html).toHaveClass(/\bdark\b/);
  });

  test("dialogs keep focus inside, close on Escape and give focus back to their opener", async ({ page }) => {
    refusePopups(page);
    await signIn(page, ADMIN);
    await openPage(page, pages["machine detail"]!);
    const opener = page.getByRole("button", { name: "Delete machine" });
    await opener.click();
    const dialog = page.getByRole("dialog", { name: `Delete ${seeded.machine.name}?` });
    await expect(dialog).toBeVisible();
    await expect(dialog).toHaveAttribute("aria-modal", "true");
    await expect(dialog).toHaveAccessibleDescription(/history stays/);
    // Focus starts on Cancel (the safe choice); Tab walks Cancel → Delete → Close (first in the dialog) → Cancel, and
    // Shift+Tab the other way round, never leaving the dialog.
    const cancel = dialog.getByRole("button", { name: "Cancel" });
    const confirm = dialog.getByRole("button", { name: "Delete" });
    const close = dialog.getByRole("button", { name: "Close" });
    await expect(cancel).toBeFocused();
    const seen: string[] = [];
    for (let i = 0; i < 7; i++) {
      await page.keyboard.press("Tab");
      seen.push(await page.evaluate(() => document.activeElement?.getAttribute("aria-label") || document.activeElement?.textContent?.trim() || "?"));
      expect(await dialog.evaluate((d) => d.contains(document.activeElement))).toBe(true);
    }
    expect(seen).toEqual(["Delete", "Close", "Cancel", "Delete", "Close", "Cancel", "Delete"]);
    await expect(confirm).toBeFocused();
    const back: string[] = [];
    for (let i = 0; i < 5; i++) {
      await page.keyboard.press("Shift+Tab");
      back.push(await page.evaluate(() => document.activeElement?.getAttribute("aria-label") || document.activeElement?.textContent?.trim() || "?"));
      expect(await dialog.evaluate((d) => d.contains(document.activeElement))).toBe(true);
    }
    expect(back).toEqual(["Cancel", "Close", "Delete", "Cancel", "Close"]);
    await expect(close).toBeFocused();
    await page.keyboard.press("Escape");
    await expect(dialog).toBeHidden();
    await expect(opener).toBeFocused();
    // The close button and Cancel also give focus back.
    await opener.click();
    await close.click();
    await expect(dialog).toBeHidden();
    await expect(opener).toBeFocused();
  });

  test("maintenance asks its reason in-app; deletes of machine, OS profile and rack confirm in-app", async ({ page }) => {
    refusePopups(page);
    await signIn(page, ADMIN);
    await openPage(page, pages["machine detail"]!);
    const name = seeded.machine.name;
    await page.getByRole("button", { name: "Maintenance", exact: true }).click();
    const maint = page.getByRole("dialog", { name: `Put ${name} in maintenance?` });
    await expect(maint.getByLabel("Reason (optional)")).toBeFocused();
    await page.keyboard.type("fan swap");
    await page.keyboard.press("Enter");
    await expect(maint).toBeHidden();
    await expect(page.getByTestId("machine-state")).toContainText("Maintenance: fan swap");
    await page.getByRole("button", { name: "End maintenance" }).click();
    await expect(page.getByTestId("machine-state")).not.toContainText("Maintenance");

    // Cancel keeps the machine; Delete removes it.
    await page.getByRole("button", { name: "Delete machine" }).click();
    const del = page.getByRole("dialog", { name: `Delete ${name}?` });
    await del.getByRole("button", { name: "Cancel" }).click();
    await expect(del).toBeHidden();
    await expect(page.getByRole("heading", { name })).toBeVisible();
    await page.getByRole("button", { name: "Delete machine" }).click();
    await del.getByRole("button", { name: "Delete" }).click();
    await expect(page).toHaveURL(/\/machines$/);

    // The other seeded machine goes by API, so that the profile and the rack are unused.
    const gone = await trpcMutation(page, "machines.delete", { id: seeded.failing.id });
    expect(gone.status(), await gone.text()).toBe(200);
    await openPage(page, "/os-profiles");
    const profile = seeded.profile;
    const row = page.getByRole("row").filter({ has: page.getByRole("cell", { name: profile.name, exact: true }) });
    await expect(row).toHaveCount(1);
    await row.getByRole("button", { name: "Delete", exact: true }).click();
    const delProfile = page.getByRole("dialog", { name: `Delete ${profile.name}?` });
    await delProfile.getByRole("button", { name: "Delete" }).click();
    await expect(delProfile).toBeHidden();
    await expect(row).toHaveCount(0);

    await openPage(page, "/racks");
    const rackName = seeded.rack.name;
    await page.getByRole("button", { name: `Edit ${rackName}` }).locator("xpath=following-sibling::button[1]").click();
    const delRack = page.getByRole("dialog", { name: `Delete rack ${rackName}?` });
    await delRack.getByRole("button", { name: "Delete" }).click();
    await expect(delRack).toBeHidden();
    await expect(page.getByRole("figure", { name: `Rack ${rackName}` })).toHaveCount(0);
  });
});
