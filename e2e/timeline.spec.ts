import AxeBuilder from "@axe-core/playwright";
import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import { ADMIN, bootEntryNonce, signIn, snap, trpcMutation, writeBootTree } from "./fixtures";

/**
 * The job page's deploy timeline: a deploy with the agent simulated over HTTP by the test (the real protocol) and
 * the machine's console open on a second page (the fake BMC prints a line a second), so steps, 20,000 agent lines,
 * events and console lines share one time axis. Live lines, jumps both ways, the source filter in the URL, and axe.
 */
const MAC = "52:54:00:de:71:01";
const API = "/api/agent/v1";
const LINES = 20_000;

async function agent(request: APIRequestContext, path: string, body: unknown, token?: string) {
  const res = await request.post(`${API}${path}`, { data: body, headers: token ? { authorization: `Bearer ${token}` } : {} });
  expect(res.status(), `${path}: ${await res.text()}`).toBeLessThan(300);
  return res.json();
}

async function nextStep(request: APIRequestContext, token: string, name: string): Promise<{ id: number; name: string; attempt: number }> {
  let step: { id: number; name: string; attempt: number } | undefined;
  await expect
    .poll(
      async () => {
        step = (await agent(request, "/heartbeat", { waitS: 5 }, token)).steps[0];
        return step?.name;
      },
      { timeout: 30_000, intervals: [0] },
    )
    .toBe(name);
  return step!;
}

let seq = 0;
const post = (request: APIRequestContext, token: string, stepId: number, texts: string[], stream = "stdout") =>
  agent(request, `/steps/${stepId}/logs`, { lines: texts.map((text) => ({ seq: seq++, ts: Date.now(), stream, text })) }, token);

const waitAgentOf = (page: Page) => stepButton(page, "wait_agent");
const axis = (page: Page) => page.getByRole("log", { name: /^Timeline of job/ });
const stepButton = (page: Page, name: string) => page.getByRole("navigation", { name: "Steps" }).getByRole("button", { name: new RegExp(`^${name}\\b`) });

async function axe(page: Page, what: string) {
  const result = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]).analyze();
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const report = bad.map((v) => `${v.id} (${v.impact}): ${v.help}\n${v.nodes.slice(0, 5).map((n) => `    ${n.target.join(" ")} — ${n.failureSummary?.split("\n").slice(1).join(" ")}`).join("\n")}`);
  expect.soft(report, `${what}: axe found serious/critical violations`).toEqual([]);
}

const created: { machines: number[]; profiles: number[] } = { machines: [], profiles: [] };
test.afterEach(async ({ page }) => {
  await writeBootTree(page, false);
  for (const id of created.machines.splice(0)) {
    for (const action of ["abort", "release", "abort"]) await trpcMutation(page, "machines.action", { id, action });
    expect((await trpcMutation(page, "machines.delete", { id })).status()).toBe(200);
  }
  for (const id of created.profiles.splice(0)) await trpcMutation(page, "osProfiles.delete", { id });
});

test("job timeline: steps, agent lines, events and console on one axis; live; jump both ways; filter in the URL; axe", async ({ page, browser, request }) => {
  test.setTimeout(180_000);
  await signIn(page, ADMIN);
  const prof = await trpcMutation(page, "osProfiles.create", {
    name: "timeline Debian 12 image",
    kind: "image",
    osFamily: "debian",
    imageUrl: "http://images.example/debian-12.raw.gz",
    imageSha256: "e".repeat(64),
    imageFormat: "raw.gz",
  });
  expect(prof.status(), await prof.text()).toBe(200);
  created.profiles.push((await prof.json()).result.data.id);
  const enroll = await trpcMutation(page, "machines.enroll", {
    name: "timeline-01",
    bootMac: MAC,
    osProfileId: created.profiles[0],
    bmc: { driver: "fake", address: "10.77.71.10", username: "admin", password: "x" },
  });
  expect(enroll.status(), await enroll.text()).toBe(200);
  const machineId: number = (await enroll.json()).result.data.id;
  created.machines.push(machineId);
  for (const action of ["manage", "provide"]) expect((await trpcMutation(page, "machines.action", { id: machineId, action })).status()).toBe(200);
  await writeBootTree(page, true);

  // Deploy from the machine page; its job card links to the timeline.
  await page.goto(`/machines/${machineId}`);
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Deploy" }).click();
  const card = page.getByRole("list", { name: "Job timeline" }).getByRole("listitem").first();
  await expect(card.getByRole("row", { name: "wait_agent" })).toContainText("running");
  const jobId = Number((await card.getAttribute("aria-label"))?.replace("Job ", ""));
  expect(jobId).toBeGreaterThan(0);

  // A second page watches the console: the fake BMC prints "fake console line N" every second into the transcript.
  const ctx = await browser.newContext();
  const consolePage = await ctx.newPage();
  await signIn(consolePage, ADMIN);
  await consolePage.goto(`/machines/${machineId}`);
  await consolePage.getByRole("tab", { name: "Console" }).click();
  await expect(consolePage.getByTestId("serial-console")).toContainText("fake console line 1");

  await card.getByRole("link", { name: "Timeline" }).click();
  await expect(page).toHaveURL(new RegExp(`/jobs/${jobId}$`));
  await expect(page.getByRole("heading", { name: `Job #${jobId} · deploy_image` })).toBeVisible();
  await expect(stepButton(page, "wait_agent")).toContainText("running");
  // Console lines arrive on the axis while the job waits for its agent, tied to wait_agent.
  const consoleRow = axis(page).locator('[data-source="console"]', { hasText: "fake console line" }).last();
  await expect(consoleRow).toBeVisible({ timeout: 20_000 });
  await expect(consoleRow.getByRole("button")).toHaveText("wait_agent");

  // The agent: lookup with the boot entry's nonce, then its steps. Live: the open page follows.
  let nonce: string | null = null;
  await expect.poll(() => (nonce = bootEntryNonce(MAC))).toMatch(/^[0-9a-f]{64}$/);
  const token: string = (await agent(request, "/lookup", { macs: [MAC], nonce, inventory: { cpus: 2 } })).token;
  const inventory = await nextStep(request, token, "inventory");
  await post(request, token, inventory.id, ["inventory: 2 CPUs, 4096 MiB"], "agent");
  await expect(axis(page)).toContainText("inventory: 2 CPUs, 4096 MiB");
  await expect(stepButton(page, "inventory")).toContainText("running");
  // The machine page's install log with a line in it, through axe in both themes (its pane inverts in the dark one).
  for (const colorScheme of ["light", "dark"] as const) {
    const themed = await browser.newContext({ colorScheme });
    const p = await themed.newPage();
    await signIn(p, ADMIN);
    await p.goto(`/machines/${machineId}`);
    await expect(p.getByRole("log", { name: `Log lines of job ${jobId}` })).toContainText("inventory: 2 CPUs, 4096 MiB");
    await axe(p, `machine page with an install log (${colorScheme})`);
    await themed.close();
  }
  await agent(request, `/steps/${inventory.id}/result`, { attempt: inventory.attempt, ok: true, result: { cpus: 2 } }, token);
  const wipe = await nextStep(request, token, "wipe");
  await agent(request, `/steps/${wipe.id}/result`, { attempt: wipe.attempt, ok: true }, token);
  const write = await nextStep(request, token, "write_image");
  for (let i = 0; i < LINES; i += 2000) {
    await post(request, token, write.id, Array.from({ length: 2000 }, (_, k) => `write_image: ${i + k + 1} MiB written`));
  }
  await post(request, token, write.id, ["write_image: done (needle)"], "stderr");
  await ctx.close(); // the console viewer leaves: no more console lines

  // 20,000 lines: the axis renders only what is in view.
  await expect(axis(page)).toContainText("write_image: done (needle)", { timeout: 30_000 });
  expect(await axis(page).locator("[data-index]").count()).toBeLessThan(200);
  await snap(page, "job-timeline");

  // Step → its lines: the axis scrolls to the step's first entry and marks the step's rows.
  await stepButton(page, "inventory").click();
  await expect(stepButton(page, "inventory")).toHaveAttribute("aria-current", "step");
  await expect(page).toHaveURL(new RegExp(`[?&]step=${inventory.id}\\b`));
  const invLine = axis(page).locator("[data-index]", { hasText: "inventory: 2 CPUs, 4096 MiB" });
  await expect(invLine).toBeInViewport();
  await expect(invLine).toHaveAttribute("data-step-id", String(inventory.id));
  await stepButton(page, "write_image").click();
  await expect(axis(page).locator("[data-index]", { hasText: /write_image: 1 MiB written$/ })).toBeInViewport();

  // Console line → the step it happened in.
  // The filter lives in the URL: a click replaces the URL, and the box follows it (so click, then expect).
  await page.getByRole("checkbox", { name: /^Agent/ }).click();
  await expect(page.getByRole("checkbox", { name: /^Agent/ })).not.toBeChecked();
  await expect(page).toHaveURL(/[?&]sources=step%2Cinstaller%2Cserver%2Cevent%2Cconsole\b|[?&]sources=step,installer,server,event,console\b/);
  await expect(axis(page).locator('[data-source="agent"]')).toHaveCount(0);
  await axis(page).evaluate((el) => (el.scrollTop = 0)); // the job's start: its first steps and the wait for the agent
  const con = axis(page)
    .locator('[data-source="console"]', { hasText: "fake console line" })
    .filter({ has: page.getByRole("button", { name: "wait_agent" }) })
    .first();
  await con.scrollIntoViewIfNeeded();
  await expect(waitAgentOf(page)).not.toHaveAttribute("aria-current", "step");
  await con.getByRole("button", { name: "wait_agent" }).click();
  const waitAgent = stepButton(page, "wait_agent");
  await expect(waitAgent).toHaveAttribute("aria-current", "step");
  await expect(waitAgent).toBeFocused();
  const waitId = await con.getAttribute("data-step-id");
  await expect(page).toHaveURL(new RegExp(`[?&]step=${waitId}\\b`));

  // The filter is in the URL: a reload (or a shared link) shows the same view.
  await page.reload();
  await expect(page.getByRole("checkbox", { name: /^Agent/ })).not.toBeChecked();
  await expect(page.getByRole("checkbox", { name: /^Console/ })).toBeChecked();
  await expect(axis(page).locator('[data-source="console"]').first()).toBeVisible();
  await expect(axis(page).locator('[data-source="agent"]')).toHaveCount(0);
  await expect(stepButton(page, "wait_agent")).toHaveAttribute("aria-current", "step");
  // Only the console: no step, event or agent rows.
  for (const name of ["Steps", "Server", "Events", "Installer"]) {
    await page.getByRole("checkbox", { name: new RegExp(`^${name}`) }).click();
    await expect(page.getByRole("checkbox", { name: new RegExp(`^${name}`) })).not.toBeChecked();
  }
  await expect(page).toHaveURL(/[?&]sources=console\b/);
  await expect(axis(page).locator("[data-index]").first()).toHaveAttribute("data-source", "console");
  expect(new Set(await axis(page).locator("[data-index]").evaluateAll((els) => els.map((e) => e.getAttribute("data-source"))))).toEqual(new Set(["console"]));

  // The whole record still downloads as one bundle, with the console lines on its axis.
  const rec = await page.request.get(`/api/jobs/${jobId}/record`);
  expect(rec.status()).toBe(200);
  const body = await rec.json();
  expect(body.timeline.filter((e: { source: string }) => e.source === "agent").length).toBe(LINES + 2);
  expect(body.timeline.some((e: { source: string; stepName: string }) => e.source === "console" && e.stepName === "wait_agent")).toBe(true);

  // A shared link with a step opens the axis at that step's lines, not at the end.
  await page.goto(`/jobs/${jobId}?step=${inventory.id}`);
  await expect(axis(page).locator("[data-index]", { hasText: "inventory: 2 CPUs, 4096 MiB" })).toBeInViewport();
  await expect(stepButton(page, "inventory")).toHaveAttribute("aria-current", "step");

  // Accessibility of the job page, all sources shown, in both themes.
  await page.goto(`/jobs/${jobId}`);
  await expect(axis(page)).toContainText("write_image: done (needle)");
  await axe(page, "job timeline (light)");
  await page.emulateMedia({ colorScheme: "dark" });
  await page.reload();
  await expect(page.locator("html")).toHaveClass(/\bdark\b/);
  await expect(axis(page)).toContainText("write_image: done (needle)");
  await axe(page, "job timeline (dark)");
});
