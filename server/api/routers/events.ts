import { eventsOut } from "../outputs";
import { z } from "zod";
import { pageSchema } from "../../../lib/schemas";
import { listEvents } from "../../events/audit";
import { router, viewerProcedure } from "../trpc";

export const eventsRouter = router({
  /** Fleet-wide, or one machine's with machineId; newest first, paged with `before`. */
  list: viewerProcedure
    .input(pageSchema.extend({ machineId: z.number().int().positive().optional() }))
    .output(eventsOut.list)
    .query(({ ctx, input }) =>
      listEvents(ctx.domain.db, { machineId: input.machineId, before: input.before ?? input.cursor ?? undefined, limit: input.limit }),
    ),
});
