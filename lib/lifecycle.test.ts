import { describe, expect, it } from "vitest";
import {
  allowedActions,
  LIFECYCLE_ACTIONS,
  MACHINE_STATES,
  nextState,
  OPERATOR_ACTIONS,
  TRANSITIONS,
} from "./lifecycle";

describe("lifecycle table", () => {
  it("has no duplicate (state, action) pairs and only known states", () => {
    const keys = TRANSITIONS.map((t) => `${t.from}:${t.action}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const t of TRANSITIONS) {
      expect(MACHINE_STATES).toContain(t.from);
      expect(MACHINE_STATES).toContain(t.to);
    }
  });

  it("reaches every state from enrolled", () => {
    const seen = new Set(["enrolled"]);
    let grew = true;
    while (grew) {
      grew = false;
      for (const t of TRANSITIONS)
        if (seen.has(t.from) && !seen.has(t.to)) {
          seen.add(t.to);
          grew = true;
        }
    }
    expect([...seen].sort()).toEqual([...MACHINE_STATES].sort());
  });

  it("follows DESIGN §4 for the main path", () => {
    expect(nextState("enrolled", "manage")).toBe("manageable");
    expect(nextState("manageable", "inspect")).toBe("inspecting");
    expect(nextState("inspecting", "succeed")).toBe("available");
    expect(nextState("available", "deploy")).toBe("deploying");
    expect(nextState("deploying", "succeed")).toBe("deployed");
    expect(nextState("deployed", "reinstall")).toBe("deploying");
    expect(nextState("deployed", "release")).toBe("cleaning");
    expect(nextState("cleaning", "succeed")).toBe("available");
    expect(nextState("deploy_failed", "retry")).toBe("deploying");
    expect(nextState("clean_failed", "manage")).toBe("manageable");
  });

  it("offers only operator actions, never succeed/fail", () => {
    for (const s of MACHINE_STATES) {
      for (const a of allowedActions(s)) expect(OPERATOR_ACTIONS).toContain(a);
      expect(allowedActions(s)).not.toContain("succeed");
    }
    expect(allowedActions("deployed")).toEqual(["reinstall", "release"]);
  });

  it("refuses every pair not in the table", () => {
    let refused = 0;
    for (const s of MACHINE_STATES)
      for (const a of LIFECYCLE_ACTIONS) {
        const inTable = TRANSITIONS.some((t) => t.from === s && t.action === a);
        expect(nextState(s, a) !== null).toBe(inTable);
        if (!inTable) refused++;
      }
    expect(refused).toBe(MACHINE_STATES.length * LIFECYCLE_ACTIONS.length - TRANSITIONS.length);
  });
});
