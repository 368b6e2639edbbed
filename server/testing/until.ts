/**
 * Wait for a condition that background work makes true (no fixed sleeps: the machine may be busy).
 * Resolves with the first truthy value of `f`. @throws Error naming `what` after `timeoutMs`
 */
export async function until<T>(what: string, f: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
