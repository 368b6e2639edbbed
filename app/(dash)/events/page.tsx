"use client";
import { EventList } from "@/components/event-list";
import { PageHeader } from "@/components/ui";

export default function EventsPage() {
  return (
    <div>
      <PageHeader title="Events" subtitle="Every change, by whom and when; newest first." />
      <div className="card p-4">
        <EventList limit={100} />
      </div>
    </div>
  );
}
