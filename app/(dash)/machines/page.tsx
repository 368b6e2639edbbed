import { Suspense } from "react";
import { MachinesView } from "./machines-view";

export const metadata = { title: "Machines" };

export default function MachinesPage() {
  return (
    <Suspense>
      <MachinesView />
    </Suspense>
  );
}
