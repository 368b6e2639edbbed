/** The agent's steps fail with the step failure type shared with the server (lib/step-failure.ts). */
export { classifyFailure, permanent, StepFailure, transient } from "../lib/step-failure";
