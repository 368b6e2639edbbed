import type { Metadata } from "next";
import type { ReactNode } from "react";
import { TrpcProviders } from "@/components/trpc";
import "./globals.css";

export const metadata: Metadata = {
  title: { default: "Rackhand", template: "%s · Rackhand" },
  description: "Bare-metal provisioning dashboard",
  icons: { icon: "/favicon.svg" },
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <TrpcProviders>{children}</TrpcProviders>
      </body>
    </html>
  );
}
