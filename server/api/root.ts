import { authRouter } from "./routers/auth";
import { eventsRouter } from "./routers/events";
import { machinesRouter } from "./routers/machines";
import { netbootRouter, osProfilesRouter } from "./routers/netboot";
import { racksRouter } from "./routers/racks";
import { usersRouter } from "./routers/users";
import { createCallerFactory, router } from "./trpc";

export const appRouter = router({
  auth: authRouter,
  racks: racksRouter,
  machines: machinesRouter,
  events: eventsRouter,
  users: usersRouter,
  osProfiles: osProfilesRouter,
  netboot: netbootRouter,
});
export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
