import type http from "node:http";

/**
 * CSRF guard for state-changing requests: a browser always sends Origin on cross-site POSTs, so a POST whose
 * Origin names another host is refused. (The session cookie is also SameSite=Lax.)
 */
export function isCrossSiteWrite(req: http.IncomingMessage): boolean {
  if (req.method === "GET" || req.method === "HEAD" || req.method === "OPTIONS") return false;
  const origin = req.headers.origin;
  if (!origin) return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

/** Paths a signed-out browser may load: the login page and the assets it needs. */
export function isPublicPath(pathname: string): boolean {
  return (
    pathname === "/login" ||
    pathname.startsWith("/_next/") ||
    pathname === "/favicon.ico" ||
    pathname === "/favicon.svg" ||
    pathname === "/healthz" ||
    pathname === "/metrics"
  );
}
