"use client";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useCallback, useMemo } from "react";
import { MACHINE_STATES, type MachineState } from "@/lib/lifecycle";
import { POWER_STATES, SORT_FIELDS, type MachineFilter, type PowerState, type SortField } from "@/lib/schemas";

export interface MachineQuery extends MachineFilter {
  sort: SortField;
  dir: "asc" | "desc";
  page: number;
  pageSize: number;
}

const PAGE_SIZES = [50, 100, 250, 500];
export { PAGE_SIZES };

/** The machine table's filter, sort and page, kept in the URL so views can be bookmarked and shared. */
export function useMachineQuery(): [MachineQuery, (patch: Partial<MachineQuery>) => void] {
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const query = useMemo<MachineQuery>(() => {
    const states = (params.get("state") ?? "")
      .split(",")
      .filter((s): s is MachineState => (MACHINE_STATES as readonly string[]).includes(s));
    const rack = Number(params.get("rack"));
    const power = params.get("power");
    const sort = params.get("sort");
    const size = Number(params.get("size"));
    return {
      states: states.length ? states : undefined,
      rackId: Number.isInteger(rack) && rack > 0 ? rack : undefined,
      power: (POWER_STATES as readonly string[]).includes(power ?? "") ? (power as PowerState) : undefined,
      q: params.get("q") || undefined,
      ...inventoryFilterOf(params),
      sort: (SORT_FIELDS as readonly string[]).includes(sort ?? "") ? (sort as SortField) : "name",
      dir: params.get("dir") === "desc" ? "desc" : "asc",
      page: Math.max(1, Number(params.get("page")) || 1),
      pageSize: PAGE_SIZES.includes(size) ? size : 50,
    };
  }, [params]);

  const update = useCallback(
    (patch: Partial<MachineQuery>) => {
      const next = { ...query, ...patch };
      // Any change of filter or sort goes back to page 1.
      if (!("page" in patch)) next.page = 1;
      const sp = new URLSearchParams();
      if (next.states?.length) sp.set("state", next.states.join(","));
      if (next.rackId) sp.set("rack", String(next.rackId));
      if (next.power) sp.set("power", next.power);
      if (next.q) sp.set("q", next.q);
      if (next.minMemoryGiB !== undefined) sp.set("mem", String(next.minMemoryGiB));
      if (next.minDisks !== undefined) sp.set("disks", String(next.minDisks));
      if (next.cpuModel) sp.set("cpu", next.cpuModel);
      if (next.sort !== "name") sp.set("sort", next.sort);
      if (next.dir !== "asc") sp.set("dir", next.dir);
      if (next.page > 1) sp.set("page", String(next.page));
      if (next.pageSize !== 50) sp.set("size", String(next.pageSize));
      const qs = sp.toString();
      router.replace(qs ? `${pathname}?${qs}` : pathname, { scroll: false });
    },
    [query, router, pathname],
  );
  return [query, update];
}

export function filterOf(q: MachineQuery): MachineFilter {
  return { states: q.states, rackId: q.rackId, power: q.power, q: q.q, minMemoryGiB: q.minMemoryGiB, minDisks: q.minDisks, cpuModel: q.cpuModel };
}

/** The inventory filters from the URL (?mem=GiB&disks=N&cpu=text); absurd values are ignored. */
function inventoryFilterOf(params: URLSearchParams): Pick<MachineFilter, "minMemoryGiB" | "minDisks" | "cpuModel"> {
  const mem = Number(params.get("mem"));
  const disks = Number(params.get("disks"));
  return {
    minMemoryGiB: params.get("mem") && Number.isFinite(mem) && mem >= 0 && mem <= 1_048_576 ? mem : undefined,
    minDisks: params.get("disks") && Number.isInteger(disks) && disks >= 0 && disks <= 1000 ? disks : undefined,
    cpuModel: params.get("cpu")?.slice(0, 100) || undefined,
  };
}
