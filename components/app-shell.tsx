"use client";
import { useMutation } from "@tanstack/react-query";
import Link from "next/link";
import { usePathname } from "next/navigation";
import { useEffect, useRef, useState, type ReactNode } from "react";
import { AlertBanner } from "./alert-banner";
import { ConfirmProvider } from "./dialog";
import { useLive } from "./live";
import { useSession } from "./session";
import { ThemeToggle } from "./theme";
import { SIDEBAR_KEY } from "./theme-script";
import { useTRPC } from "./trpc";

const NAV: { href: string; label: string; admin?: boolean; labelForOthers?: string }[] = [
  { href: "/", label: "Overview" },
  { href: "/racks", label: "Racks" },
  { href: "/machines", label: "Machines" },
  { href: "/subnets", label: "Subnets" },
  { href: "/batches", label: "Batches" },
  { href: "/events", label: "Events" },
  { href: "/os-profiles", label: "OS profiles" },
  { href: "/settings", label: "Settings", admin: true },
  // Everyone manages their own API tokens on the Users page; only admins see (and manage) the users.
  { href: "/users", label: "Users", labelForOthers: "API tokens" },
];

export function AppShell({ children }: { children: ReactNode }) {
  const path = usePathname();
  const { user, can } = useSession();
  const { connected } = useLive();
  const trpc = useTRPC();
  const logout = useMutation(trpc.auth.logout.mutationOptions({ onSettled: () => window.location.assign("/login") }));
  const active = (href: string) => (href === "/" ? path === "/" : path.startsWith(href));
  // The drawer (below 1024 px, or with the sidebar collapsed) is open only until the next navigation.
  const [drawer, setDrawer] = useState(false);
  const menuButton = useRef<HTMLButtonElement>(null);
  const nav = useRef<HTMLElement>(null);
  const [shownPath, setShownPath] = useState(path);
  if (shownPath !== path) {
    setShownPath(path);
    setDrawer(false);
  }

  const closeDrawer = () => {
    setDrawer(false);
    menuButton.current?.focus();
  };
  const showNav = () => {
    if (window.matchMedia("(min-width: 64rem)").matches && document.documentElement.dataset.sidebar === "collapsed") {
      setSidebarCollapsed(false);
      nav.current?.querySelector<HTMLElement>("a[href]")?.focus();
      return;
    }
    setDrawer(true);
  };
  useEffect(() => {
    if (drawer) nav.current?.querySelector<HTMLElement>("a[href]")?.focus();
  }, [drawer]);

  return (
    <ConfirmProvider>
      <div className="flex min-h-full">
        <a href="#main" className="sr-only z-50 rounded bg-white px-3 py-2 text-sm focus:not-sr-only focus:fixed focus:left-2 focus:top-2">
          Skip to content
        </a>
        <nav
          ref={nav}
          id="main-nav"
          data-open={drawer}
          className="shell-nav shrink-0 flex-col bg-(--shell-bg) text-(--shell-text)"
          aria-label="Main"
          onKeyDown={(e) => {
            if (e.key === "Escape" && drawer) closeDrawer();
          }}
        >
          <div className="flex items-center justify-between pr-2">
            <Link href="/" className="flex items-center gap-2 px-4 py-4 text-(--shell-strong)">
              {/* eslint-disable-next-line @next/next/no-img-element -- a static SVG icon; the image optimizer adds nothing */}
              <img src="/favicon.svg" alt="" className="h-6 w-6" />
              <span className="text-lg font-semibold tracking-tight">Rackhand</span>
            </Link>
            <button type="button" className="shell-drawer-only rounded px-2 py-1 hover:bg-(--shell-hover)" aria-label="Close navigation" onClick={closeDrawer}>
              ✕
            </button>
            <button
              type="button"
              className="shell-wide-only rounded px-2 py-1 text-(--shell-muted) hover:bg-(--shell-hover) hover:text-(--shell-strong)"
              aria-label="Collapse sidebar"
              title="Collapse sidebar"
              onClick={() => {
                setSidebarCollapsed(true);
                menuButton.current?.focus();
              }}
            >
              «
            </button>
          </div>
          <ul className="flex-1 space-y-0.5 px-2">
            {NAV.filter((n) => !n.admin || can("admin")).map((n) => (
              <li key={n.href}>
                <Link
                  href={n.href}
                  aria-current={active(n.href) ? "page" : undefined}
                  className={`block rounded-md px-3 py-1.5 text-sm ${active(n.href) ? "bg-(--shell-active) text-(--shell-strong)" : "hover:bg-(--shell-hover) hover:text-(--shell-strong)"}`}
                  onClick={() => setDrawer(false)}
                >
                  {n.labelForOthers && !can("admin") ? n.labelForOthers : n.label}
                </Link>
              </li>
            ))}
          </ul>
          <div className="border-t border-(--shell-border) px-4 py-3 text-xs">
            <div className="flex items-center gap-1.5" data-testid="live-status">
              <span className={`h-2 w-2 rounded-full ${connected ? "bg-[#34d399]" : "bg-[#fbbf24]"}`} />
              {connected ? "Live" : "Reconnecting…"}
            </div>
            {user && (
              <div className="mt-2" data-testid="signed-in-user">
                <Link href="/users#password" className="font-medium text-(--shell-strong) hover:underline" title="Change your password">
                  {user.name}
                </Link>
                <div className="text-(--shell-muted)">{user.role}</div>
              </div>
            )}
            <ThemeToggle className="mt-2" />
            <button type="button" className="mt-2 text-(--shell-muted) underline hover:text-(--shell-strong)" onClick={() => logout.mutate()}>
              Sign out
            </button>
          </div>
        </nav>
        {drawer && <div className="shell-backdrop fixed inset-0 z-30 bg-black/50" aria-hidden onClick={closeDrawer} />}
        <div className="min-w-0 flex-1">
          <header className="shell-topbar sticky top-0 z-20 h-12 items-center gap-2 bg-(--shell-bg) px-3 text-(--shell-text)">
            <button
              ref={menuButton}
              type="button"
              className="rounded px-2 py-1 text-lg leading-none hover:bg-(--shell-hover) hover:text-(--shell-strong)"
              aria-label="Show navigation"
              aria-controls="main-nav"
              aria-expanded={drawer}
              onClick={showNav}
            >
              ☰
            </button>
            <Link href="/" className="font-semibold text-(--shell-strong)">
              Rackhand
            </Link>
          </header>
          <main id="main" tabIndex={-1} className="min-w-0 p-3 outline-none sm:p-4 lg:p-6">
            <AlertBanner />
            {children}
          </main>
        </div>
      </div>
    </ConfirmProvider>
  );
}

/** Fold the sidebar away on a wide screen, or bring it back; remembered per browser (see THEME_SCRIPT). */
function setSidebarCollapsed(collapsed: boolean) {
  if (collapsed) document.documentElement.dataset.sidebar = "collapsed";
  else delete document.documentElement.dataset.sidebar;
  try {
    if (collapsed) localStorage.setItem(SIDEBAR_KEY, "collapsed");
    else localStorage.removeItem(SIDEBAR_KEY);
  } catch {
    // Storage refused: collapsed for this page only.
  }
}
