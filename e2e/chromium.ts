/**
 * How Rackhand's browser tests and benchmarks launch Debian's Chromium (never a downloaded browser). The
 * background-networking flags keep it from calling out on a machine without internet.
 */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
