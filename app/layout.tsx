import type { Metadata } from "next";
import type { ReactNode } from "react";
import { THEME_SCRIPT } from "@/components/theme-script";
import { TrpcProviders } from "@/components/trpc";
import "./globals.css";

export const metadata: Metadata = {
  title: { default: "Rackhand", template: "%s · Rackhand" },
  description: "Bare-metal provisioning dashboard",
  icons: { icon: "/favicon.svg" },
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    // The theme script sets class="dark" before the first paint; React must not undo it on hydration.
    <html lang="en" suppressHydrationWarning>
      <head>
        <script dangerouslySetInnerHTML={{ __html: THEME_SCRIPT }} />
      </head>
      <body>
        <TrpcProviders>{children}</TrpcProviders>
      </body>
    </html>
  );
}
