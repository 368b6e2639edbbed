/**
 * A console driver for tests of the console manager: the fake driver, but each console it opens is a stream the test
 * drives: `push` is what the machine prints (any bytes), `written` what was typed into it. Streams are recorded in
 * `streams` with the name of the process (test manager) that opened them.
 */
import { createFakeDriver } from "../fake";
import type { ConsoleStream, OobDriver } from "../types";

/** A console stream the test drives: `push` is what the machine prints, `written` what was typed into it. */
export interface TestStream {
  proc: string;
  machineId: number;
  written: Buffer[];
  push(b: Buffer | string): void;
  closed: boolean;
}

export function testConsoleDriver(proc: string, streams: TestStream[]): OobDriver {
  return {
    ...createFakeDriver(),
    console: {
      validate: () => {},
      async open(t): Promise<ConsoleStream> {
        const data: ((b: Buffer) => void)[] = [];
        const closers: ((r: string) => void)[] = [];
        const ts: TestStream = {
          proc,
          machineId: t.machineId,
          written: [],
          closed: false,
          push: (b) => data.forEach((l) => l(Buffer.from(b))),
        };
        streams.push(ts);
        return {
          write: (d) => void ts.written.push(Buffer.from(d)),
          onData: (l) => void data.push(l),
          onClose: (l) => void closers.push(l),
          close() {
            ts.closed = true;
            closers.forEach((l) => l("closed"));
            return Promise.resolve();
          },
        };
      },
    },
  };
}
