"use client";
import { use } from "react";
import { MachineDetailView } from "./machine-detail";

export default function MachinePage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = use(params);
  const n = Number(id);
  if (!Number.isInteger(n) || n <= 0) return <p className="text-red-700">Not a machine id: {id}</p>;
  return <MachineDetailView id={n} />;
}
