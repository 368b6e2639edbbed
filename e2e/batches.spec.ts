import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import { ADMIN, bootEntryNonce, signIn, snap, trpcMutation, writeBootTree } from "./fixtures";

async function call(page: Page, path: string, input: unknown) {
  const res = await trpcMutation(page, path, input);
  expect(res.status(), `${path}: ${await res.text()}`).toBe(200);
  return (await res.json()).result.data;
}

// The specs share one server: what this file creates is removed again, so the others see the fleet they expect.
const created: { machines: number[]; profiles: number[] } = { machines: [], profiles: [] };
test.afterEach(async ({ page }) => {
  await writeBootTree(page, false);
  for (const id of created.machines.splice(0)) {
    const m = await (await page.request.get(`/api/trpc/machines.get?input=${encodeURIComponent(JSON.stringify({ id }))}`)).json();
    // A deployed machine is released and the clean job aborted (→ clean_failed); one still working (a failed test
    // leaves machines deploying) is aborted first (→ *_failed). Both may then be deleted.
    const state = m.result.data.state as string;
    if (state === "deployed") {
      await call(page, "machines.action", { id, action: "release" });
      await call(page, "machines.action", { id, action: "abort" });
    } else if (["deploying", "inspecting", "cleaning"].includes(state)) {
      await call(page, "machines.action", { id, action: "abort" });
    }
    await call(page, "machines.delete", { id });
  }
  for (const id of created.profiles.splice(0)) await call(page, "osProfiles.delete", { id });
});

/** An image OS profile (removed after the test); `shaChar` makes its checksum differ from the other tests'. */
async function imageProfile(page: Page, name: string, shaChar: string): Promise<{ id: number }> {
  const profile = await call(page, "osProfiles.create", { name, kind: "image", imageUrl: "http://images.example/debian.raw.gz", imageSha256: shaChar.repeat(64), imageFormat: "raw.gz" });
  created.profiles.push(profile.id);
  return profile;
}

/** Machines on the fake BMC driver (or without a BMC), brought to `to` through the lifecycle. */
async function machines(page: Page, prefix: string, n: number, opts: { macByte: number; bmc: boolean; profileId?: number; to: "manageable" | "available" }) {
  const out: { id: number; name: string; mac: string }[] = [];
  for (let i = 1; i <= n; i++) {
    const name = `${prefix}-${i}`;
    const mac = `52:54:00:ba:${opts.macByte.toString(16).padStart(2, "0")}:${i.toString(16).padStart(2, "0")}`;
    const bmc = opts.bmc ? { driver: "fake", address: `10.77.0.${10 + i}`, username: "admin", password: "fake-pass" } : undefined;
    const { id } = await call(page, "machines.enroll", { name, bootMac: mac, osProfileId: opts.profileId, ...(bmc && { bmc }) });
    created.machines.push(id);
    await call(page, "machines.action", { id, action: "manage" });
    if (opts.to === "available") await call(page, "machines.action", { id, action: "provide" });
    out.push({ id, name, mac });
  }
  return out;
}

/** Be a machine's agent over the real protocol: report each step it is handed as done until the job ends. */
async function runAgent(request: APIRequestContext, token: string) {
  for (;;) {
    const res = await request.post("/api/agent/v1/heartbeat", { data: { waitS: 2 }, headers: { authorization: `Bearer ${token}` } });
    // A finished job's token is revoked: 401 ends the agent's work as "done" does (a busy server may answer either).
    if (res.status() === 401) return;
    expect(res.status(), await res.text()).toBe(200);
    const hb = await res.json();
    if (hb.done) return;
    for (const s of hb.steps) {
      const r = await request.post(`/api/agent/v1/steps/${s.id}/result`, { data: { attempt: s.attempt, ok: true, result: {} }, headers: { authorization: `Bearer ${token}` } });
      expect(r.status()).toBe(200);
    }
  }
}

test("bulk deploy of a selection starts a batch whose page shows per-machine progress live", async ({ page, browser, request }) => {
  await signIn(page, ADMIN);
  // The simulated agents read their nonce from the boot entries the server writes (netboot mode external).
  await writeBootTree(page, true);
  const profile = await imageProfile(page, "e2e-batch-image", "b");
  const ms = await machines(page, "e2e-dep", 3, { macByte: 1, bmc: true, profileId: profile.id, to: "available" });

  await page.goto("/machines?q=e2e-dep-");
  for (const m of ms) await page.getByLabel(`Select ${m.name}`).check();
  await page.getByRole("group", { name: "Bulk actions" }).getByRole("button", { name: "Deploy" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Concurrency").fill("2");
  const submit = dialog.getByRole("button", { name: "Deploy 3 machines" });
  await expect(submit).toBeDisabled();
  await dialog.getByLabel("Type the number of machines").fill("2");
  await expect(submit).toBeDisabled();
  await dialog.getByLabel("Type the number of machines").fill("3");
  await submit.click();
  await expect(page).toHaveURL(/\/batches\/\d+$/);
  const batchUrl = new URL(page.url()).pathname;

  // Two at a time: two machines run (power cycled, waiting for their agent), one waits its turn.
  const rows = page.getByTestId("batch-machine");
  await expect(rows).toHaveCount(3);
  await expect(page.getByTestId("job-state").filter({ hasText: "running" })).toHaveCount(2);
  await expect(page.getByTestId("job-state").filter({ hasText: "queued" })).toHaveCount(1);
  await expect(page.getByTestId("current-step").filter({ hasText: "wait agent" })).toHaveCount(2);
  await snap(page, "batch-running");

  // A second page watches the batch list.
  const ctx = await browser.newContext();
  const watcher = await ctx.newPage();
  await signIn(watcher, ADMIN);
  await watcher.goto("/batches");
  const listRow = watcher.getByTestId(`batch-row-${batchUrl.split("/").pop()}`);
  await expect(listRow.getByTestId("batch-counts")).toContainText("0 succeeded · 0 failed · 2 running · 1 queued");

  // The agent of one running machine boots and reports every step: its job succeeds and the third machine starts.
  const tokens: { mac: string; token: string }[] = [];
  for (const m of ms) {
    // Only a machine whose job runs has an agent boot entry (the queued one still boots its disk).
    const nonce = bootEntryNonce(m.mac);
    if (!nonce) continue;
    const r = await request.post("/api/agent/v1/lookup", { data: { macs: [m.mac], nonce } });
    if (r.status() === 200) tokens.push({ mac: m.mac, token: (await r.json()).token });
  }
  expect(tokens).toHaveLength(2);
  const first = ms.find((m) => m.mac === tokens[0]!.mac)!;
  await runAgent(request, tokens[0]!.token);
  const firstRow = rows.filter({ hasText: first.name });
  await expect(firstRow.getByTestId("job-state")).toHaveText("succeeded");
  await expect(firstRow).toContainText("Deployed");
  await expect(page.getByTestId("job-state").filter({ hasText: "running" })).toHaveCount(2);
  await expect(page.getByTestId("job-state").filter({ hasText: "queued" })).toHaveCount(0);
  await expect(listRow.getByTestId("batch-counts")).toContainText("1 succeeded · 0 failed · 2 running · 0 queued");
  await snap(watcher, "batches-list");

  // The rest is aborted from the batch page, cancelling the running jobs (nothing is powered off).
  await page.getByRole("button", { name: "Abort" }).click();
  await page.getByRole("dialog").getByRole("checkbox").check();
  await page.getByRole("dialog").getByRole("button", { name: "Abort batch" }).click();
  await expect(page.getByTestId("batch-state").first()).toHaveText("aborted");
  await expect(page.getByTestId("job-state").filter({ hasText: "cancelled" })).toHaveCount(2);
  await ctx.close();
});

test("a batch whose failures pass the threshold pauses and shows the banner with Resume and Abort", async ({ page }) => {
  await signIn(page, ADMIN);
  // Machines whose (fake) BMC refuses the credentials once they are managed: their first BMC step fails for good.
  // (Machines without a BMC are skipped by the plan: a job cannot boot them.)
  const a = await machines(page, "e2e-failA", 4, { macByte: 2, bmc: true, to: "manageable" });
  const b = await machines(page, "e2e-failB", 4, { macByte: 3, bmc: true, to: "manageable" });
  for (const [i, m] of [...a, ...b].entries()) {
    await call(page, "machines.update", { id: m.id, bmc: { driver: "fake", address: `10.77.1.${10 + i}`, username: "admin", password: "wrong" } });
  }
  await page.goto("/");
  await expect(page.getByTestId("batch-alert")).toHaveCount(0);

  const first = await call(page, "batches.create", { selection: { ids: a.map((m) => m.id) }, kind: "inspect", concurrency: 1, failureThresholdPct: 20 });
  const banner = page.getByTestId("batch-alert").filter({ hasText: `Inspect batch ${first.batchId} paused.` });
  await expect(banner).toContainText("3 of 3 finished jobs failed, above the 20% threshold; paused with 1 queued");
  await expect(banner.getByRole("button", { name: "Resume" })).toBeVisible();
  await expect(banner.getByRole("button", { name: "Abort" })).toBeVisible();
  await snap(page, "batch-alert-banner");

  await banner.getByRole("link", { name: "View batch" }).click();
  await expect(page.getByTestId("batch-machine").filter({ hasText: "refused the credentials" })).toHaveCount(3);
  await expect(page.getByTestId("job-state").filter({ hasText: "queued" })).toHaveCount(1);
  await expect(page.getByTestId("webhook-status")).toHaveText("Webhook: none configured");

  // Resume: the last machine gets its turn (and fails too); nothing is left, so the batch finishes.
  await banner.getByRole("button", { name: "Resume" }).click();
  await expect(banner).toHaveCount(0);
  await expect(page.getByTestId("batch-state").first()).toHaveText("finished");
  await expect(page.getByTestId("job-state").filter({ hasText: "failed" })).toHaveCount(4);

  // Abort from the banner: the queued job is cancelled.
  const second = await call(page, "batches.create", { selection: { ids: b.map((m) => m.id) }, kind: "inspect", concurrency: 1, failureThresholdPct: 20 });
  const banner2 = page.getByTestId("batch-alert").filter({ hasText: `Inspect batch ${second.batchId} paused.` });
  await banner2.getByRole("button", { name: "Abort" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Abort batch" }).click();
  await expect(banner2).toHaveCount(0);
  await page.goto(`/batches/${second.batchId}`);
  await expect(page.getByTestId("batch-state").first()).toHaveText("aborted");
  await expect(page.getByTestId("job-state").filter({ hasText: "cancelled" })).toHaveCount(1);
});

test("bulk reinstall of deployed machines from the table runs as a batch with per-machine progress", async ({ page, request }) => {
  await signIn(page, ADMIN);
  // The simulated agents read their nonce from the boot entries the server writes (netboot mode external).
  await writeBootTree(page, true);
  const profile = await imageProfile(page, "e2e-reinstall-image", "c");
  const ms = await machines(page, "e2e-rei", 2, { macByte: 4, bmc: true, profileId: profile.id, to: "available" });
  // Deploy both first (through a batch and their agents), so there is something to reinstall.
  await call(page, "batches.create", { selection: { ids: ms.map((m) => m.id) }, kind: "deploy", concurrency: 2, confirmCount: 2 });
  const bootAgents = async () => {
    for (const m of ms) {
      let token = "";
      await expect
        .poll(async () => {
          const nonce = bootEntryNonce(m.mac);
          if (!nonce) return "no agent boot entry yet";
          const r = await request.post("/api/agent/v1/lookup", { data: { macs: [m.mac], nonce } });
          if (r.status() === 200) token = (await r.json()).token;
          return r.status();
        })
        .toBe(200);
      await runAgent(request, token);
    }
  };
  await bootAgents();
  await page.goto("/machines?q=e2e-rei-");
  await expect(page.getByTestId("machine-row").filter({ hasText: "Deployed" })).toHaveCount(2);

  for (const m of ms) await page.getByLabel(`Select ${m.name}`).check();
  await page.getByRole("group", { name: "Bulk actions" }).getByRole("button", { name: "Reinstall" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Type the number of machines").fill("2");
  await dialog.getByRole("button", { name: "Reinstall 2 machines" }).click();
  await expect(page).toHaveURL(/\/batches\/\d+$/);
  const rows = page.getByTestId("batch-machine");
  await expect(rows).toHaveCount(2);
  await expect(page.getByTestId("job-state").filter({ hasText: "running" })).toHaveCount(2);
  await snap(page, "batch-reinstall");
  // Each machine's agent boots again (wipe, write the image, configure the network) and reports.
  await bootAgents();
  await expect(page.getByTestId("job-state").filter({ hasText: "succeeded" })).toHaveCount(2);
  for (const m of ms) await expect(rows.filter({ hasText: m.name })).toContainText("Deployed");
  await expect(page.getByTestId("batch-state").first()).toHaveText("finished");
});

test("bulk power cycle of more machines than the immediate path takes runs as a batch; lifecycle states stay", async ({ page }) => {
  await signIn(page, ADMIN);
  // 17 machines: one more than IMMEDIATE_POWER_MAX (components/bulk-power.tsx). The fake BMC driver answers at once.
  const ms = await machines(page, "e2e-pwr", 17, { macByte: 5, bmc: true, to: "available" });
  await page.goto("/machines?q=e2e-pwr-");
  await expect(page.getByTestId("machine-row")).toHaveCount(17);
  await page.getByLabel("Select this page").check();
  await page.getByRole("group", { name: "Bulk power" }).getByRole("button", { name: "Power cycle" }).click();
  const dialog = page.getByRole("dialog");
  await expect(dialog).toContainText("Power cycle as a batch: 17 selected machines");
  await expect(dialog.getByTestId("plan-summary")).toHaveText("17 of 17 machines will act; 0 skipped.");
  await dialog.getByLabel("Concurrency").fill("5");
  const submit = dialog.getByRole("button", { name: "Power cycle 17 machines" });
  await expect(submit).toBeDisabled();
  await dialog.getByLabel("Type the number of machines").fill("17");
  await submit.click();
  await expect(page).toHaveURL(/\/batches\/\d+$/);
  await expect(page.getByRole("heading", { name: /Batch \d+: Power cycle/ })).toBeVisible();
  await expect(page.getByTestId("batch-state").first()).toHaveText("finished");
  await expect(page.getByTestId("job-state").filter({ hasText: "succeeded" })).toHaveCount(17);
  await expect(page.getByTestId("power-state").filter({ hasText: "on" })).toHaveCount(17);
  // Power moved no machine through the lifecycle.
  await expect(page.getByTestId("batch-machine").filter({ hasText: "Available" })).toHaveCount(ms.length);
  await snap(page, "batch-power");
});
