import fs from "node:fs";
import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import { ADMIN, bootEntryNonce, signIn, snap, trpcMutation, writeBootTree } from "./fixtures";

/**
 * A deploy started from the UI, with the agent simulated over HTTP by the test (the real protocol,
 * lib/agent-protocol.ts): the timeline follows the steps, log lines arrive live on two pages, and the log pane's
 * search, pause/follow and download work on them.
 */
const MAC = "52:54:00:de:50:01";
const API = "/api/agent/v1";

async function agent(request: APIRequestContext, path: string, body: unknown, token?: string) {
  const res = await request.post(`${API}${path}`, { data: body, headers: token ? { authorization: `Bearer ${token}` } : {} });
  expect(res.status(), `${path}: ${await res.text()}`).toBeLessThan(300);
  return res.json();
}

/** Long-poll the heartbeat until the server hands out the next agent step. */
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

// The server and its data directory are shared by every spec file: leave no machine behind (fleet.spec counts them).
const created: { machines: number[]; profiles: number[] } = { machines: [], profiles: [] };
test.afterEach(async ({ page }) => {
  await writeBootTree(page, false);
  for (const id of created.machines.splice(0)) {
    // deployed → release (a clean job) → abort it → clean_failed, which may be deleted; refusals are fine.
    for (const action of ["release", "abort"]) await trpcMutation(page, "machines.action", { id, action });
    expect((await trpcMutation(page, "machines.delete", { id })).status()).toBe(200);
  }
  for (const id of created.profiles.splice(0)) await trpcMutation(page, "osProfiles.delete", { id });
});

let seq = 0;
const post = (request: APIRequestContext, token: string, stepId: number, texts: string[], stream = "stdout") =>
  agent(request, `/steps/${stepId}/logs`, { lines: texts.map((text) => ({ seq: seq++, ts: Date.now(), stream, text })) }, token);

const logOf = (page: Page) => page.getByRole("log");
const stepRow = (page: Page, jobId: number, name: string) => page.getByRole("table", { name: `Steps of job ${jobId}` }).getByRole("row", { name: name });
const atBottom = (page: Page) => logOf(page).evaluate((el) => el.scrollTop + el.clientHeight >= el.scrollHeight - 4);

test("deploy from the machine page: steps progress, logs stream live to two pages, search, pause/follow, download", async ({ page, browser, request }) => {
  await signIn(page, ADMIN);
  const prof = await trpcMutation(page, "osProfiles.create", {
    name: "Debian 12 image",
    kind: "image",
    osFamily: "debian",
    imageUrl: "http://images.example/debian-12.raw.gz",
    imageSha256: "c".repeat(64),
    imageFormat: "raw.gz",
  });
  expect(prof.status(), await prof.text()).toBe(200);
  const profileId: number = (await prof.json()).result.data.id;
  created.profiles.push(profileId);
  const enroll = await trpcMutation(page, "machines.enroll", {
    name: "deploy-01",
    bootMac: MAC,
    osProfileId: profileId,
    bmc: { driver: "fake", address: "10.77.0.10", username: "admin", password: "x" },
  });
  expect(enroll.status(), await enroll.text()).toBe(200);
  const machineId: number = (await enroll.json()).result.data.id;
  created.machines.push(machineId);
  for (const action of ["manage", "provide"]) expect((await trpcMutation(page, "machines.action", { id: machineId, action })).status()).toBe(200);

  // The simulated agent reads its nonce from the boot entry the server writes, like the real one from /proc/cmdline.
  await writeBootTree(page, true);
  await page.goto(`/machines/${machineId}`);
  await expect(page.getByTestId("machine-state")).toContainText("Available");
  await expect(page.getByRole("region", { name: "Jobs" })).toContainText("No jobs yet");
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Deploy" }).click();
  await expect(page.getByTestId("machine-state")).toContainText("Deploying");

  const timeline = page.getByRole("list", { name: "Job timeline" });
  await expect(timeline.getByRole("listitem")).toHaveCount(1);
  const jobLabel = await timeline.getByRole("listitem").first().getAttribute("aria-label");
  const jobId = Number(jobLabel?.replace("Job ", ""));
  expect(jobId).toBeGreaterThan(0);
  // Server steps run against the fake BMC; the job then waits for the agent.
  await expect(stepRow(page, jobId, "power_cycle").first()).toContainText("succeeded");
  await expect(stepRow(page, jobId, "wait_agent")).toContainText("running");
  await expect(stepRow(page, jobId, "write_image")).toContainText("pending");

  // A second browser (another session) watches the same machine.
  const ctx = await browser.newContext();
  const watcher = await ctx.newPage();
  await signIn(watcher, ADMIN);
  await watcher.goto(`/machines/${machineId}`);
  await expect(watcher.getByRole("button", { name: "Log shown" })).toBeVisible();

  // The agent boots and looks itself up by MAC, with the nonce of its boot entry; the MAC alone gets no token.
  const bare = await request.post(`${API}/lookup`, { data: { macs: [MAC] } });
  expect(bare.status()).toBe(401);
  expect(await bare.json()).toEqual({ error: expect.stringMatching(/^lookup refused: no nonce/) });
  let nonce: string | null = null;
  await expect.poll(() => (nonce = bootEntryNonce(MAC))).toMatch(/^[0-9a-f]{64}$/);
  const look = await agent(request, "/lookup", { macs: [MAC.toUpperCase()], nonce, inventory: { cpus: 2 } });
  expect(look).toMatchObject({ machineId, jobId });
  const token: string = look.token;
  const inventory = await nextStep(request, token, "inventory");
  await expect(stepRow(page, jobId, "wait_agent")).toContainText("succeeded");
  await expect(stepRow(page, jobId, "inventory")).toContainText("running");
  await expect(stepRow(watcher, jobId, "inventory")).toContainText("1/3");

  await post(request, token, inventory.id, ["inventory: 2 CPUs, 4096 MiB", "disk /dev/sda 20 GiB"]);
  await post(request, token, inventory.id, ["agent started"], "agent");
  for (const p of [page, watcher]) {
    await expect(logOf(p)).toContainText("disk /dev/sda 20 GiB");
    await expect(logOf(p)).toContainText("agent started");
    await expect(p.getByTestId("log-count")).toHaveText("3 lines");
  }
  await agent(request, `/steps/${inventory.id}/result`, { attempt: inventory.attempt, ok: true, result: { cpus: 2 } }, token);

  const wipe = await nextStep(request, token, "wipe");
  await expect(stepRow(page, jobId, "inventory")).toContainText("succeeded");
  await agent(request, `/steps/${wipe.id}/result`, { attempt: wipe.attempt, ok: true }, token);
  const write = await nextStep(request, token, "write_image");
  await expect(stepRow(watcher, jobId, "write_image")).toContainText("running");
  // Enough lines to scroll; the last one must be in view on both pages (they follow).
  await post(request, token, write.id, Array.from({ length: 120 }, (_, i) => `write_image: ${i + 1} MiB written`));
  await post(request, token, write.id, ["write_image: sha256 mismatch on retry 0 (needle)"], "stderr");
  for (const p of [page, watcher]) {
    await expect(logOf(p)).toContainText("(needle)");
    await expect(p.getByTestId("log-count")).toHaveText("124 lines");
    await expect.poll(() => atBottom(p)).toBe(true);
  }
  await snap(page, "machine-deploy-log");

  // Search: highlight, then only matching lines.
  await page.getByLabel("Search the log").fill("MiB WRITTEN");
  await expect(page.getByTestId("log-matches")).toHaveText("120 matches");
  await expect(logOf(page).locator("mark").first()).toHaveText("MiB written");
  await page.getByLabel("Search the log").fill("needle");
  await expect(page.getByTestId("log-matches")).toHaveText("1 match");
  await page.getByLabel("Only matching lines").check();
  await expect(logOf(page).locator("[data-seq]")).toHaveCount(1);
  await expect(logOf(page)).toContainText("sha256 mismatch");
  await page.getByLabel("Only matching lines").uncheck();
  await page.getByLabel("Search the log").fill("");
  await expect(logOf(page).locator("[data-seq]")).toHaveCount(124);

  // Pause: new lines arrive (the watcher follows them) but this view stays where it is and says so.
  await page.getByRole("button", { name: "Follow", pressed: true }).click();
  await expect(page.getByRole("button", { name: "Follow", pressed: false })).toBeVisible();
  await logOf(page).evaluate((el) => (el.scrollTop = 0));
  await post(request, token, write.id, Array.from({ length: 5 }, (_, i) => `verify ${i + 1}/5`));
  await expect(logOf(watcher)).toContainText("verify 5/5");
  await expect(page.getByRole("button", { name: "5 new lines below — follow" })).toBeVisible();
  await expect(logOf(page)).toContainText("verify 5/5");
  expect(await atBottom(page)).toBe(false);
  await page.getByRole("button", { name: "5 new lines below — follow" }).click();
  await expect(page.getByRole("button", { name: "Follow", pressed: true })).toBeVisible();
  await expect.poll(() => atBottom(page)).toBe(true);

  // The watcher loses its connection while lines keep coming; on reconnect it backfills after its last seq.
  // Its first backfill read fails: the pane says so and retries until it holds every line. A live line arrives
  // before the retry, so the backfilled lines land between lines already shown.
  const logsRead = /\/api\/trpc\/[^?]*jobs\.logs/;
  let reads = 0;
  await watcher.route(logsRead, (route) => (reads++ === 0 ? route.abort("failed") : route.continue()));
  await ctx.setOffline(true);
  await expect(watcher.getByText("offline — will resume when reconnected")).toBeVisible();
  await post(request, token, write.id, ["while offline 1", "while offline 2"]);
  await ctx.setOffline(false);
  await expect(watcher.getByText("offline — will resume when reconnected")).toHaveCount(0);
  await expect(watcher.getByText(/Could not load the log: .* retrying in 1 s/)).toBeVisible();
  await post(request, token, write.id, ["after reconnect"]);
  await expect(watcher.getByText(/Could not load the log/)).toHaveCount(0);
  expect(reads).toBeGreaterThanOrEqual(2);
  await watcher.unroute(logsRead);
  await expect(logOf(watcher)).toContainText("while offline 2");
  await expect(logOf(watcher)).toContainText("after reconnect");
  await expect(watcher.getByTestId("log-count")).toHaveText("132 lines");
  await expect(logOf(watcher).locator("[data-seq]")).toHaveCount(132);

  // Download: every line, in order, with stream and time.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download .log" }).click()]);
  expect(download.suggestedFilename()).toBe(`deploy-01-job-${jobId}.log`);
  const text = fs.readFileSync((await download.path()), "utf8");
  const lines = text.trimEnd().split("\n");
  expect(lines).toHaveLength(132);
  expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z \[stdout\] inventory: 2 CPUs, 4096 MiB$/);
  expect(lines[2]).toContain("[agent] agent started");
  expect(lines[123]).toContain("[stderr] write_image: sha256 mismatch");
  expect(lines[128]).toContain("verify 5/5");
  expect(lines[131]).toContain("after reconnect");

  // Finish the agent's steps; the server boots the machine from disk and the job succeeds on both pages.
  await agent(request, `/steps/${write.id}/result`, { attempt: write.attempt, ok: true }, token);
  const net = await nextStep(request, token, "configure_network");
  await post(request, token, net.id, ["network configured"]);
  await agent(request, `/steps/${net.id}/result`, { attempt: net.attempt, ok: true }, token);
  for (const p of [page, watcher]) {
    await expect(p.getByRole("listitem", { name: `Job ${jobId}` })).toContainText("succeeded");
    await expect(p.getByTestId("machine-state")).toContainText("Deployed");
    await expect(logOf(p)).toContainText("network configured");
  }
  await expect(page.getByRole("button", { name: "Cancel job" })).toHaveCount(0);
  await snap(page, "machine-deploy-done");
  await ctx.close();
});

test("an operator cancels a running job after confirming; the error shows in the timeline", async ({ page }) => {
  await signIn(page, ADMIN);
  const enroll = await trpcMutation(page, "machines.enroll", {
    name: "deploy-02",
    bootMac: "52:54:00:de:50:02",
    bmc: { driver: "fake", address: "10.77.0.11", username: "admin", password: "x" },
  });
  const machineId: number = (await enroll.json()).result.data.id;
  created.machines.push(machineId);
  expect((await trpcMutation(page, "machines.action", { id: machineId, action: "manage" })).status()).toBe(200);
  await page.goto(`/machines/${machineId}`);
  await page.getByRole("button", { name: "Inspect", exact: true }).click();
  const job = page.getByRole("list", { name: "Job timeline" }).getByRole("listitem").first();
  await expect(job).toContainText("running");
  await expect(job.getByRole("row", { name: "wait_agent" })).toContainText("running");
  await job.getByRole("button", { name: "Cancel job" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Keep running" }).click();
  await expect(job).toContainText("running");
  await job.getByRole("button", { name: "Cancel job" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Cancel job" }).click();
  await expect(job).toContainText("cancelled by operator");
  await expect(job.getByRole("row", { name: "wait_agent" })).toContainText("cancelled");
  await expect(page.getByTestId("machine-state")).toContainText("Inspect failed");
  await expect(job.getByRole("button", { name: "Cancel job" })).toHaveCount(0);
});
