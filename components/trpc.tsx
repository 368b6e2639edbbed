"use client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createTRPCClient, httpBatchLink, TRPCClientError } from "@trpc/client";
import { createTRPCContext } from "@trpc/tanstack-react-query";
import { useState, type ReactNode } from "react";
import type { AppRouter } from "@/server/api/root";
import type { ErrorDetail } from "@/lib/errors";

export const { TRPCProvider, useTRPC, useTRPCClient } = createTRPCContext<AppRouter>();

function makeQueryClient() {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 5_000,
        refetchOnWindowFocus: false,
        // Auth and validation errors will not fix themselves by retrying.
        retry: (n, err) => !(err instanceof TRPCClientError && [401, 403, 404, 400].includes((err.data as { httpStatus?: number } | undefined)?.httpStatus ?? 0)) && n < 2,
      },
    },
  });
}

export function TrpcProviders({ children }: { children: ReactNode }) {
  const [queryClient] = useState(makeQueryClient);
  const [trpcClient] = useState(() =>
    createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: "/api/trpc", maxURLLength: 4000 })] }),
  );
  return (
    <QueryClientProvider client={queryClient}>
      <TRPCProvider trpcClient={trpcClient} queryClient={queryClient}>
        {children}
      </TRPCProvider>
    </QueryClientProvider>
  );
}

/** The user-facing message and field details of an error from the server. */
export function errorInfo(err: unknown): { message: string; details: ErrorDetail[]; status?: number } {
  if (err instanceof TRPCClientError) {
    const data = err.data as { details?: ErrorDetail[]; httpStatus?: number } | undefined;
    return { message: err.message, details: data?.details ?? [], status: data?.httpStatus };
  }
  return { message: err instanceof Error ? err.message : String(err), details: [] };
}
