"use client";
import { useRouter } from "next/navigation";
import { MachineForm } from "@/components/machine-form";
import { PageHeader } from "@/components/ui";

export default function EnrollPage() {
  const router = useRouter();
  return (
    <div className="max-w-5xl">
      <PageHeader title="Enroll a machine" subtitle="It starts in Enrolled; verify its BMC (Manage) to take it into service." />
      <div className="card p-5">
        <MachineForm onSaved={(id) => router.push(`/machines/${id}`)} />
      </div>
    </div>
  );
}
