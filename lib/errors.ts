/** Error codes shared by server and UI. Codes are enum members, never sentences. */
export const ERROR_CODES = [
  "VALIDATION",
  "NOT_FOUND",
  "MACHINE_NOT_FOUND",
  "RACK_NOT_FOUND",
  "USER_NOT_FOUND",
  "CONFLICT",
  "RACK_NOT_EMPTY",
  "U_OUT_OF_RANGE",
  "U_OVERLAP",
  "INVALID_TRANSITION",
  "MACHINE_IN_MAINTENANCE",
  "MACHINE_BUSY",
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "CSV_INVALID",
  "ROWS_INVALID",
  "RATE_LIMITED",
  "BMC_NOT_CONFIGURED",
  "BMC_UNREACHABLE",
  "BMC_AUTH_FAILED",
  "BMC_UNSUPPORTED",
  "BMC_ERROR",
  "POWER_STATE_UNKNOWN",
  "CONSOLE_NOT_HELD",
  "PLAN_STALE",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Where in the input an error sits, so forms and the CSV preview can point at it. */
export interface ErrorDetail {
  row?: number;
  field?: string;
  message: string;
}

/** The one error class domain code throws. `message` is shown to the user as is. */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
    this.name = "AppError";
  }
}
