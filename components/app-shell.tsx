"use client";
import { useMutation } from "@tanstack/react-query";
import Link from "next/link";
import { usePathname } from "next/navigation";
import type { ReactNode } from "react";
import { AlertBanner } from "./alert-banner";
import { useLive } from "./live";
import { useSession } from "./session";
import { useTRPC } from "./trpc";

const NAV: { href: string; label: string; admin?: boolean; labelForOthers?: string }[] = [
  { href: "/", label: "Overview" },
  { href: "/racks", label: "Racks" },
  { href: "/machines", label: "Machines" },
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

  return (
    <div className="flex min-h-full">
      <nav className="sticky top-0 flex h-screen w-52 shrink-0 flex-col bg-slate-900 text-slate-300" aria-label="Main">
        <Link href="/" className="flex items-center gap-2 px-4 py-4 text-white">
          {/* eslint-disable-next-line @next/next/no-img-element -- a static SVG icon; the image optimizer adds nothing */}
          <img src="/favicon.svg" alt="" className="h-6 w-6" />
          <span className="text-lg font-semibold tracking-tight">Rackhand</span>
        </Link>
        <ul className="flex-1 space-y-0.5 px-2">
          {NAV.filter((n) => !n.admin || can("admin")).map((n) => (
            <li key={n.href}>
              <Link
                href={n.href}
                aria-current={active(n.href) ? "page" : undefined}
                className={`block rounded-md px-3 py-1.5 text-sm ${active(n.href) ? "bg-slate-700 text-white" : "hover:bg-slate-800 hover:text-white"}`}
              >
                {n.labelForOthers && !can("admin") ? n.labelForOthers : n.label}
              </Link>
            </li>
          ))}
        </ul>
        <div className="border-t border-slate-800 px-4 py-3 text-xs">
          <div className="flex items-center gap-1.5" data-testid="live-status">
            <span className={`h-2 w-2 rounded-full ${connected ? "bg-emerald-400" : "bg-amber-400"}`} />
            {connected ? "Live" : "Reconnecting…"}
          </div>
          {user && (
            <div className="mt-2" data-testid="signed-in-user">
              <Link href="/users#password" className="font-medium text-white hover:underline" title="Change your password">
                {user.name}
              </Link>
              <div className="text-slate-400">{user.role}</div>
            </div>
          )}
          <button type="button" className="mt-2 text-slate-400 underline hover:text-white" onClick={() => logout.mutate()}>
            Sign out
          </button>
        </div>
      </nav>
      <main className="min-w-0 flex-1 p-6">
        <AlertBanner />
        {children}
      </main>
    </div>
  );
}
