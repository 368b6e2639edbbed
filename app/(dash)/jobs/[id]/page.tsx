"use client";
import { Suspense, use } from "react";
import { DeployTimeline } from "@/components/deploy-timeline";

export default function JobPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = use(params);
  const n = Number(id);
  if (!Number.isInteger(n) || n <= 0) return <p className="text-red-700">Not a job id: {id}</p>;
  return (
    <Suspense>
      <DeployTimeline jobId={n} />
    </Suspense>
  );
}
