import { describe, expect, it } from "vitest";
import { heartbeatRequest } from "./agent-protocol";

describe("heartbeatRequest.running (the steps an agent runs)", () => {
  it("takes step ids, and is optional (older agents)", () => {
    expect(heartbeatRequest.parse({ waitS: 5, running: [1, 2, 2 ** 31 - 1] })).toEqual({ waitS: 5, running: [1, 2, 2 ** 31 - 1] });
    expect(heartbeatRequest.parse({})).toEqual({ waitS: 20 });
  });

  it.each([
    ["a string", ["1"]],
    ["a SQL fragment", ["1) or (1=1"]],
    ["a command", ["$(reboot)"]],
    ["zero", [0]],
    ["a negative id", [-1]],
    ["a fraction", [1.5]],
    ["past int4", [2 ** 31]],
    ["NaN", [Number.NaN]],
    ["null", [null]],
    ["a nested list", [[1]]],
    ["not a list", "1,2"],
    ["65 ids", Array.from({ length: 65 }, (_, i) => i + 1)],
  ])("refuses %s", (_what, running) => {
    expect(heartbeatRequest.safeParse({ waitS: 5, running }).success).toBe(false);
  });
});
