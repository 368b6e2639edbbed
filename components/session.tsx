"use client";
import { useQuery } from "@tanstack/react-query";
import type { SessionUser } from "@/lib/dto";
import type { Role } from "@/lib/schemas";
import { useTRPC } from "./trpc";

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** The signed-in user and what they may do. The server enforces roles; the UI only avoids offering what would be refused. */
export function useSession(): { user: SessionUser | null | undefined; can: (role: Role) => boolean } {
  const trpc = useTRPC();
  const { data } = useQuery(trpc.auth.me.queryOptions(undefined, { staleTime: 60_000 }));
  return { user: data, can: (role) => !!data && RANK[data.role] >= RANK[role] };
}

export const NEEDS_OPERATOR = "Needs the operator role";
