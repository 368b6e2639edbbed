import { expect, type Page } from "@playwright/test";
import { trpcMutation } from "./fixtures";

async function call(page: Page, path: string, input: unknown) {
  const res = await trpcMutation(page, path, input);
  expect(res.status(), `${path}: ${await res.text()}`).toBe(200);
  return (await res.json()).result.data;
}

/**
 * A rack, a machine in it (fake BMC, an OS profile, an IP) and a power batch over it, and a machine whose Manage
 * was refused (its BMC shown unreachable), so that the
 * detail pages have something to show; returns every dashboard page's path. `tag` keeps names apart between specs.
 */
export async function seedPages(page: Page, tag: string, macByte: number) {
  const rack = { name: `${tag}-rack`, id: (await call(page, "racks.create", { name: `${tag}-rack`, heightU: 24, site: "lab" })).id as number };
  const profileName = `${tag} Debian 12 cloud image with a long descriptive name`;
  const profile = { name: profileName, id: (await call(page, "osProfiles.create", {
    name: profileName,
    kind: "image",
    imageUrl: "http://images.example/debian-12-generic-amd64.raw.gz",
    imageSha256: "d".repeat(64),
    imageFormat: "raw.gz",
  })).id as number };
  const mac = `52:54:00:a1:${macByte.toString(16).padStart(2, "0")}:01`;
  const machine = await call(page, "machines.enroll", {
    name: `${tag}-node-01`,
    bootMac: mac,
    rackId: rack.id,
    uPosition: 3,
    ip: `10.99.${macByte}.21`,
    osProfileId: profile.id,
    bmc: { driver: "fake", address: `10.98.${macByte}.21`, username: "admin", password: "fake-pass" },
  });
  // A second machine whose BMC refuses its password: Manage is refused, and the table shows its BMC unreachable.
  const failing = await call(page, "machines.enroll", {
    name: `${tag}-node-02`,
    bootMac: `52:54:00:a1:${macByte.toString(16).padStart(2, "0")}:02`,
    rackId: rack.id,
    uPosition: 5,
    ip: `10.99.${macByte}.22`,
    osProfileId: profile.id,
    bmc: { driver: "fake", address: `10.98.${macByte}.22`, username: "admin", password: "wrong" },
  });
  const refused = await trpcMutation(page, "machines.action", { id: failing.id, action: "manage" });
  expect(refused.status(), await refused.text()).toBe(412);
  const batch = await call(page, "batches.create", { selection: { ids: [machine.id] }, kind: "power_on", concurrency: 1 });
  return {
    rack,
    profile,
    machine: { ...machine, name: `${tag}-node-01` },
    failing: { id: failing.id as number, name: `${tag}-node-02` },
    pages: {
      dashboard: "/",
      racks: "/racks",
      machines: "/machines",
      "machine detail": `/machines/${machine.id}`,
      "new machine": "/machines/new",
      "os-profiles": "/os-profiles",
      batches: "/batches",
      "batch detail": `/batches/${batch.batchId}`,
      events: "/events",
      settings: "/settings",
      users: "/users",
    } as Record<string, string>,
  };
}

/** Open a dashboard page and wait until it has drawn its data (its heading, no "Loading…" left). */
export async function openPage(page: Page, path: string) {
  await page.goto(path);
  await expect(page.locator("main h1").first()).toBeVisible();
  await expect(page.getByText(/^Loading/)).toHaveCount(0);
}

/**
 * Remove what seedPages made, whatever is left of it (the specs share one server, and the fleet spec expects no
 * racks). The batch stays: batches are history.
 */
export async function unseed(page: Page, seeded: Awaited<ReturnType<typeof seedPages>> | undefined) {
  if (!seeded) return;
  const steps = [
    ["machines.delete", seeded.machine.id],
    ["machines.delete", seeded.failing.id],
    ["osProfiles.delete", seeded.profile.id],
    ["racks.delete", seeded.rack.id],
  ] as const;
  for (const [path, id] of steps) {
    const res = await trpcMutation(page, path, { id });
    expect([200, 404], `${path}: ${await res.text()}`).toContain(res.status());
  }
}
