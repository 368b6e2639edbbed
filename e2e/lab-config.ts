/** Where the Playwright "lab" project's virtual lab runs (playwright.config.ts starts it; lab.spec.ts uses it). */
export const LAB_PORT = Number(process.env.E2E_LAB_PORT ?? 3240);
export const LAB_ADMIN = { name: "admin", password: "e2e-lab-admin-password" };
