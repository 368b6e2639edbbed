/** A minimal tRPC-over-HTTP client (no transformer) on a keep-alive agent, as a browser or script would call it. */
import http from "node:http";

export class BenchError extends Error {}

export class TrpcCallError extends BenchError {
  constructor(
    readonly procedure: string,
    readonly status: number,
    message: string,
  ) {
    super(`${procedure} failed (HTTP ${status}): ${message}`);
  }
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const REQUEST_TIMEOUT_MS = 60_000;

export class TrpcClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private cookie = "";

  constructor(readonly baseUrl: string) {}

  /** The session cookie value after login (for handing to a browser context). */
  get sessionToken(): string {
    return this.cookie.replace(/^rh_session=/, "");
  }

  async login(name: string, password: string): Promise<void> {
    const res = await this.send("POST", "/api/trpc/auth.login", JSON.stringify({ name, password }));
    unwrap("auth.login", res);
    const setCookie = res.headers["set-cookie"] ?? [];
    const session = setCookie.map((c) => c.split(";")[0]!).find((c) => c.startsWith("rh_session="));
    if (!session) throw new BenchError("auth.login answered without a rh_session cookie");
    this.cookie = session;
  }

  async query<T>(procedure: string, input?: unknown): Promise<T> {
    const qs = input === undefined ? "" : `?input=${encodeURIComponent(JSON.stringify(input))}`;
    return unwrap<T>(procedure, await this.send("GET", `/api/trpc/${procedure}${qs}`));
  }

  async mutate<T>(procedure: string, input: unknown): Promise<T> {
    return unwrap<T>(procedure, await this.send("POST", `/api/trpc/${procedure}`, JSON.stringify(input)));
  }

  /** Plain GET of a non-tRPC path (e.g. /healthz). */
  async get(path: string): Promise<RawResponse> {
    return this.send("GET", path);
  }

  close(): void {
    this.agent.destroy();
  }

  private send(method: "GET" | "POST", path: string, body?: string): Promise<RawResponse> {
    const url = new URL(path, this.baseUrl);
    const headers: http.OutgoingHttpHeaders = { accept: "application/json" };
    if (this.cookie) headers.cookie = this.cookie;
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = Buffer.byteLength(body);
    }
    return new Promise((resolve, reject) => {
      const req = http.request(url, { method, headers, agent: this.agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new BenchError(`${method} ${url.pathname} timed out after ${REQUEST_TIMEOUT_MS} ms`)));
      req.on("error", reject);
      req.end(body);
    });
  }
}

function unwrap<T>(procedure: string, res: RawResponse): T {
  let parsed: { result?: { data: T }; error?: { message?: string } };
  try {
    parsed = JSON.parse(res.body);
  } catch {
    throw new TrpcCallError(procedure, res.status, `not JSON: ${res.body.slice(0, 200)}`);
  }
  if (res.status !== 200 || !parsed.result) {
    throw new TrpcCallError(procedure, res.status, parsed.error?.message ?? res.body.slice(0, 200));
  }
  return parsed.result.data;
}
