import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";
import { ADMIN, signIn } from "./fixtures";
import { openPage, seedPages, unseed } from "./pages";

/**
 * Every page through axe-core (WCAG 2.1 A/AA rules), in the light and the dark theme (the system preference,
 * emulated): no serious or critical violation. The report names each rule, its impact and the first elements.
 */
async function axe(page: Page, what: string) {
  const result = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]).analyze();
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const report = bad.map((v) => `${v.id} (${v.impact}): ${v.help}\n${v.nodes.slice(0, 5).map((n) => `    ${n.target.join(" ")} — ${n.failureSummary?.split("\n").slice(1).join(" ")}`).join("\n")}`);
  expect.soft(report, `${what}: axe found serious/critical violations`).toEqual([]);
}

for (const scheme of ["light", "dark"] as const) {
  test.describe(`accessibility, ${scheme} theme`, () => {
    test.use({ colorScheme: scheme });

    test(`login page (${scheme})`, async ({ page }) => {
      await page.goto("/login");
      await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
      await expect(page.locator("html")).toHaveClass(scheme === "dark" ? /\bdark\b/ : /^(?!.*\bdark\b)/);
      await axe(page, `login (${scheme})`);
    });

    test(`every dashboard page (${scheme})`, async ({ page }) => {
      test.setTimeout(180_000);
      await signIn(page, ADMIN);
      const seeded = await seedPages(page, `a11y${scheme[0]}`, scheme === "light" ? 0x11 : 0x12);
      try {
        const { pages } = seeded;
        for (const [name, path] of Object.entries(pages)) {
          await test.step(name, async () => {
            await openPage(page, path);
            await axe(page, `${name} ${path} (${scheme})`);
          });
        }
        // An open dialog, too: the in-app confirmation of the machine page.
        await openPage(page, pages["machine detail"]!);
        await page.getByRole("button", { name: "Delete machine" }).click();
        await expect(page.getByRole("dialog")).toBeVisible();
        await axe(page, `delete dialog (${scheme})`);
        await page.keyboard.press("Escape");
      } finally {
        await unseed(page, seeded);
      }
    });
  });
}
