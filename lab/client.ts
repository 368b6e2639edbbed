/**
 * A typed tRPC client for a running Rackhand, signed in like the browser is (session cookie, same-origin header):
 * the lab and the VM tests drive Rackhand exactly as the UI does.
 */
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import type { AppRouter } from "../server/api/root";

export type RackhandClient = ReturnType<typeof createTRPCClient<AppRouter>>;

/**
 * fetch, sent once more when the server closed a kept-alive connection as the request went out ("other side
 * closed" before any byte of the answer): the server drops a connection idle for 5 s without reading what arrives,
 * and with Rackhand in the test's own process a busy host can stall the event loop past that between two calls.
 * Nothing of the request was processed then, so repeating it is safe.
 */
export const retryingFetch: typeof fetch = async (input, init) => {
  try {
    return await fetch(input, init);
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code !== "UND_ERR_SOCKET" || !/other side closed/.test(cause.message ?? "")) throw e;
    return fetch(input, init);
  }
};

/** Sign in as `name` and return a client that carries the session cookie. @throws Error when sign-in fails */
export async function signIn(baseUrl: string, name: string, password: string): Promise<RackhandClient> {
  const res = await fetch(`${baseUrl}/api/trpc/auth.login`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: baseUrl },
    body: JSON.stringify({ name, password }),
  });
  if (res.status !== 200) throw new Error(`sign-in as ${name} at ${baseUrl} failed: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
  const cookie = res.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  return createTRPCClient<AppRouter>({
    links: [httpBatchLink({ url: `${baseUrl}/api/trpc`, headers: () => ({ cookie, origin: baseUrl }), fetch: retryingFetch })],
  });
}
