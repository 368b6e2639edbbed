/** Timing helpers: wall-clock samples in milliseconds and nearest-rank percentiles. */
import { performance } from "node:perf_hooks";

export interface Summary {
  n: number;
  p50: number;
  p95: number;
  max: number;
}

/** Nearest-rank percentile of unsorted samples. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) throw new Error("percentile of no samples");
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/** The median (the mean of the two middle values for an even count), for a few repeated runs. */
export function median(samples: number[]): number {
  if (samples.length === 0) throw new Error("median of no samples");
  const s = [...samples].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function summarize(samples: number[]): Summary {
  return { n: samples.length, p50: percentile(samples, 50), p95: percentile(samples, 95), max: Math.max(...samples) };
}

/** Time one async call. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** Run `fn(i)` warmup times unrecorded, then `samples` times recorded, one after another. */
export async function sampleSequential(warmup: number, samples: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const out: number[] = [];
  for (let i = 0; i < samples; i++) out.push((await timed(() => fn(warmup + i))).ms);
  return out;
}

/** Run `count` jobs with `workers` concurrent loops; returns the wall time in ms. */
export async function runConcurrent(count: number, workers: number, job: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const loop = async () => {
    while (next < count) await job(next++);
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: workers }, loop));
  return performance.now() - t0;
}

export const round = (x: number, digits = 1) => Number(x.toFixed(digits));
