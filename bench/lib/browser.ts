/**
 * Time-to-first-rows of the Machines page in headless Chromium: from the navigation's start (performance time
 * origin) until the first [data-testid="machine-row"] is in the DOM and visible, recorded inside the page.
 */
import { chromium, type BrowserContext, type Page } from "@playwright/test";
import { CHROMIUM_ARGS, CHROMIUM_PATH as CHROMIUM } from "../../e2e/chromium";
import { BenchError } from "./http-trpc";

const ROW_SELECTOR = '[data-testid="machine-row"]';
const LOAD_TIMEOUT_MS = 30_000;
const LOGIN_TIMEOUT_MS = 10_000;

export interface FirstRowsOptions {
  baseUrl: string;
  user: string;
  password: string;
  /** rh_session from an HTTP login, used when the login page cannot be driven. */
  sessionToken: string;
  warmups: number;
  loads: number;
}

export interface FirstRowsResult {
  samplesMs: number[];
  loginMethod: "login page" | "session cookie (login page unusable)";
  browserVersion: string;
}

/**
 * Runs in the page before any of its scripts: note when the first machine row becomes visible.
 * A string, not a function: tsx/esbuild may wrap named functions in helpers that do not exist in the page.
 */
const WATCH_FIRST_ROW = `(() => {
  const check = () => {
    if (window.__rhFirstRowAt !== undefined) return true;
    const el = document.querySelector(${JSON.stringify(ROW_SELECTOR)});
    if (el && el.checkVisibility()) { window.__rhFirstRowAt = performance.now(); return true; }
    return false;
  };
  const observer = new MutationObserver(() => { if (check()) observer.disconnect(); });
  observer.observe(document, { childList: true, subtree: true, attributes: true });
  const tick = () => { if (!check()) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
})();`;

export async function measureFirstRows(opts: FirstRowsOptions): Promise<FirstRowsResult> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const loginMethod = await signIn(context, opts);
    await context.addInitScript({ content: WATCH_FIRST_ROW });
    const page = await context.newPage();
    const samplesMs: number[] = [];
    for (let i = 0; i < opts.warmups + opts.loads; i++) {
      const ms = await loadMachinesPage(page, opts.baseUrl);
      if (i >= opts.warmups) samplesMs.push(ms);
    }
    return { samplesMs, loginMethod, browserVersion: browser.version() };
  } finally {
    await browser.close();
  }
}

/** Sign in through /login; when that page is missing or unusable, fall back to the HTTP session cookie. */
async function signIn(context: BrowserContext, opts: FirstRowsOptions): Promise<FirstRowsResult["loginMethod"]> {
  const page = await context.newPage();
  try {
    const res = await page.goto(`${opts.baseUrl}/login`, { timeout: LOAD_TIMEOUT_MS });
    if (res?.status() !== 200) throw new BenchError(`GET /login answered HTTP ${res?.status()}`);
    await page.getByLabel("User name").fill(opts.user, { timeout: LOGIN_TIMEOUT_MS });
    await page.getByLabel("Password", { exact: true }).fill(opts.password, { timeout: LOGIN_TIMEOUT_MS });
    await page.getByRole("button", { name: "Sign in" }).click({ timeout: LOGIN_TIMEOUT_MS });
    await page.waitForURL((u) => !u.pathname.startsWith("/login"), { timeout: LOGIN_TIMEOUT_MS });
    if ((await context.cookies()).some((c) => c.name === "rh_session")) return "login page";
    throw new BenchError("signing in through /login set no rh_session cookie");
  } catch (err) {
    console.warn(`  login page unusable (${firstLine(err)}); using the HTTP session cookie instead`);
  } finally {
    await page.close();
  }
  await context.clearCookies();
  const { hostname } = new URL(opts.baseUrl);
  await context.addCookies([{ name: "rh_session", value: opts.sessionToken, domain: hostname, path: "/", httpOnly: true, sameSite: "Lax" }]);
  return "session cookie (login page unusable)";
}

/** One full load of /machines; returns ms from navigation start to the first visible machine row. */
async function loadMachinesPage(page: Page, baseUrl: string): Promise<number> {
  const res = await page.goto(`${baseUrl}/machines`, { waitUntil: "commit", timeout: LOAD_TIMEOUT_MS });
  if (!res) throw new BenchError("navigating to /machines gave no response");
  const landed = new URL(page.url()).pathname;
  if (landed.startsWith("/login")) throw new BenchError("/machines redirected to /login: the browser is not signed in");
  if (res.status() === 404) {
    throw new BenchError("the Machines page does not exist yet: GET /machines answered 404. Browser figure not measured.");
  }
  if (res.status() !== 200) throw new BenchError(`GET /machines answered HTTP ${res.status()}`);
  try {
    await page.waitForFunction(() => (window as unknown as { __rhFirstRowAt?: number }).__rhFirstRowAt !== undefined, undefined, {
      timeout: LOAD_TIMEOUT_MS,
      polling: 50,
    });
  } catch {
    throw new BenchError(
      `/machines loaded but no ${ROW_SELECTOR} became visible within ${LOAD_TIMEOUT_MS / 1000} s ` +
        "(is the machine table built, and does each row carry data-testid=\"machine-row\"?)",
    );
  }
  return page.evaluate(() => (window as unknown as { __rhFirstRowAt: number }).__rhFirstRowAt);
}

const firstLine = (err: unknown) => String(err instanceof Error ? err.message : err).split("\n")[0];
