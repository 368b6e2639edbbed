import { authRouter } from "./routers/auth";
import { batchesRouter } from "./routers/batches";
import { eventsRouter } from "./routers/events";
import { jobsRouter } from "./routers/jobs";
import { machinesRouter } from "./routers/machines";
import { oobRouter } from "./routers/oob";
import { netbootRouter, osProfilesRouter } from "./routers/netboot";
import { racksRouter } from "./routers/racks";
import { subnetsRouter } from "./routers/subnets";
import { tokensRouter } from "./routers/tokens";
import { usersRouter } from "./routers/users";
import { createCallerFactory, router } from "./trpc";

export const appRouter = router({
  auth: authRouter,
  racks: racksRouter,
  machines: machinesRouter,
  events: eventsRouter,
  users: usersRouter,
  oob: oobRouter,
  osProfiles: osProfilesRouter,
  netboot: netbootRouter,
  jobs: jobsRouter,
  batches: batchesRouter,
  tokens: tokensRouter,
  subnets: subnetsRouter,
});
export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
