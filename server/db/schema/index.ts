export * from "./auth";
export * from "./events";
export * from "./jobs";
export * from "./leases";
export * from "./machines";
export * from "./os-profiles";
export * from "./racks";
export * from "./subnets";
