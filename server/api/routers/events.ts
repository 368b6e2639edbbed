import { eventsOut } from "../outputs";
import { eventFilterSchema, pageSchema } from "../../../lib/schemas";
import { storeOf } from "../../db/store";
import { eventFacets, listEvents } from "../../events/audit";
import { router, viewerProcedure } from "../trpc";

export const eventsRouter = router({
  /** Fleet-wide or filtered (machine, kind, actor, time range, text); newest first, paged with `before`. */
  list: viewerProcedure
    .input(pageSchema.extend(eventFilterSchema.shape))
    .output(eventsOut.list)
    .query(({ ctx, input }) => listEvents(storeOf(ctx.domain), { ...input, before: input.before ?? input.cursor ?? undefined })),
  /** The kinds and actors that occur (the filter choices). */
  facets: viewerProcedure.output(eventsOut.facets).query(({ ctx }) => eventFacets(storeOf(ctx.domain))),
});
