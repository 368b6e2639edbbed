/**
 * Rackhand's layer rules as code (docs/ARCHITECTURE.md "Layers"), checked by `npm run lint` (scripts/test.sh).
 * Domain folders: server/<module>/ (netboot was server/pxe before its rename).
 */
const DOMAIN = "^server/(machines|orchestrator|oob|netboot|proxy|installer-logs|racks|operator|agent-api|auth|db|demo|subnets)/";
/** Tests and test helpers may reach across layers (a domain test drives the tRPC caller or the operator layer). */
const TESTS = "(\\.test\\.tsx?$|/testing/)";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "No import cycles anywhere (type-only imports included).",
      from: {},
      to: { circular: true },
    },
    {
      name: "lib-is-isomorphic",
      severity: "error",
      comment: "lib/ is shared by server, agent and browser: it imports nothing of server/, app/, components/ or node:.",
      from: { path: "^lib/" },
      to: { path: "^(server|app|components|agent)/" },
    },
    {
      name: "lib-no-node",
      severity: "error",
      comment: "lib/ runs in the browser too: no node: built-ins.",
      from: { path: "^lib/" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "agent-only-lib",
      severity: "error",
      comment: "The agent runs on the machine being installed: of Rackhand's code it imports only lib/.",
      from: { path: "^agent/" },
      to: { path: "^(server|app|components|ramdisk|bench|lab|scripts)/" },
    },
    {
      name: "ui-only-types-from-server",
      severity: "error",
      comment: "The UI (app/, components/) takes only types from server/ (the tRPC router type); code goes through the API.",
      from: { path: "^(app|components)/" },
      to: { path: "^server/", dependencyTypesNot: ["type-only"] },
    },
    {
      name: "domain-not-api",
      severity: "error",
      comment: "Domain folders never import the API layer (server/api), socket.io or Next.",
      // server/agent-api/routes.ts is the agent's HTTP layer itself.
      from: { path: DOMAIN, pathNot: [TESTS, "^server/agent-api/routes\\.ts$"] },
      to: { path: ["^server/api/", "^server/http/", "^server/events/gateway", "^node_modules/(socket\\.io|socket\\.io-client|next)/"] },
    },
    {
      name: "lower-layers-not-operator",
      severity: "error",
      comment: "The operator-action layer (server/operator) sits above oob, orchestrator and machines: they never import it.",
      from: { path: "^server/(machines|orchestrator|oob|netboot|proxy|installer-logs|racks|subnets)/", pathNot: TESTS },
      to: { path: "^server/operator/" },
    },
    {
      name: "not-to-test-code",
      severity: "error",
      comment: "Production code does not import tests.",
      from: { path: "^(server|lib|agent|app|components)/", pathNot: TESTS },
      to: { path: "\\.test\\.tsx?$" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(node_modules|\\.next|dist|test-results|playwright-report)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default", "types"] },
    reporterOptions: {
      archi: {
        collapsePattern: "^(server/[^/]+|lib|agent|app|components|ramdisk|lab|bench|scripts)",
      },
    },
  },
};
