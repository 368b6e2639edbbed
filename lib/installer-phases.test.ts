import { describe, expect, it } from "vitest";
import { phasesReached } from "./installer-phases";

describe("phasesReached", () => {
  it("reads only phase-stream lines", () => {
    expect([...phasesReached([{ stream: "phase", text: "phase: network" }, { stream: "installer", text: "phase: finish" }, { stream: "phase", text: "phase: installer components" }])]).toEqual(["network", "installer components"]);
  });
});
