import type { ReactNode } from "react";
import { AppShell } from "@/components/app-shell";
import { LiveProvider } from "@/components/live";

export default function DashboardLayout({ children }: { children: ReactNode }) {
  return (
    <LiveProvider>
      <AppShell>{children}</AppShell>
    </LiveProvider>
  );
}
