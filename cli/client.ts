/** The CLI's tRPC-over-HTTP calls (no batching, no transformer: what the server speaks) with a Bearer token. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null,
    readonly details: { field: string; message: string }[] = [],
  ) {
    super(message);
  }
}

export interface Conn {
  url: string;
  token: string;
}

export async function call<T = unknown>(conn: Conn, proc: string, type: "query" | "mutation", input?: unknown): Promise<T> {
  const base = `${conn.url.replace(/\/+$/, "")}/api/trpc/${proc}`;
  const headers: Record<string, string> = { authorization: `Bearer ${conn.token}` };
  let res: Response;
  try {
    res =
      type === "query"
        ? await fetch(input === undefined ? base : `${base}?input=${encodeURIComponent(JSON.stringify(input))}`, { headers })
        : await fetch(base, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify(input ?? null) });
  } catch (err) {
    throw new ApiError(`Cannot reach ${conn.url}: ${String((err as Error & { cause?: Error }).cause ?? (err as Error).message)}`, 0, null);
  }
  const body = (await res.json().catch(() => null)) as { result?: { data: T }; error?: { message: string; data?: { appCode?: string | null; details?: { field: string; message: string }[] } } } | null;
  if (!res.ok || !body?.result) {
    const msg = body?.error?.message ?? `HTTP ${res.status}`;
    throw new ApiError(res.status === 401 ? `${msg} (is RACKHAND_TOKEN a valid, unexpired token?)` : msg, res.status, body?.error?.data?.appCode ?? null, body?.error?.data?.details ?? []);
  }
  return body.result.data;
}
