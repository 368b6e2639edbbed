import type { ZodType } from "zod";
import { permanent } from "../errors";

/** Validate a step's params; a bad spec will not get better by retrying. @throws StepFailure (permanent) */
export function parseParams<T>(step: string, schema: ZodType<T>, params: Record<string, unknown>): T {
  const r = schema.safeParse(params);
  if (!r.success) {
    throw permanent(`${step}: bad params: ${r.error.issues.map((i) => `${i.path.join(".") || "params"}: ${i.message}`).join("; ")}`);
  }
  return r.data;
}
