"use client";
import { use } from "react";
import { BatchDetailView } from "./batch-detail";

export default function BatchPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = use(params);
  const n = Number(id);
  if (!Number.isInteger(n) || n <= 0) return <p className="text-red-700">Not a batch id: {id}</p>;
  return <BatchDetailView id={n} />;
}
