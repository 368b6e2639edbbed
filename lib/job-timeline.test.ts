import { describe, expect, it } from "vitest";
import { axisTime, countBySource, firstIndexOfStep, parseSources, sourcesParam, TIMELINE_SOURCES, type TimelineEntry } from "./job-timeline";

describe("job timeline helpers", () => {
  it("reads and writes the source filter of the URL", () => {
    expect([...parseSources(null)]).toEqual([...TIMELINE_SOURCES]);
    expect([...parseSources("console,agent,bogus,../x")].sort()).toEqual(["agent", "console"]);
    expect(parseSources("").size).toBe(0);
    expect(sourcesParam(new Set(TIMELINE_SOURCES))).toBeNull();
    expect(sourcesParam(new Set(["console", "agent"]))).toBe("agent,console");
    expect(sourcesParam(new Set())).toBe("");
    expect(parseSources(sourcesParam(new Set(["installer"])))).toEqual(new Set(["installer"]));
  });

  it("counts by source, finds a step's first entry, formats axis time in UTC", () => {
    const e = (source: TimelineEntry["source"], stepId: number | null): TimelineEntry => ({ ts: 0, source, stepId, stepName: null, text: "" });
    const list = [e("step", 1), e("agent", 1), e("console", null), e("agent", 2), e("event", 2)];
    expect(countBySource(list)).toEqual({ step: 1, agent: 2, installer: 0, server: 0, event: 1, console: 1 });
    expect(firstIndexOfStep(list, 2)).toBe(3);
    expect(firstIndexOfStep(list, 9)).toBe(-1);
    expect(axisTime(Date.UTC(2026, 11, 7, 1, 2, 3, 45))).toBe("01:02:03.045");
  });
});
