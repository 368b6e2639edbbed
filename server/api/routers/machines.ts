import { idOut, machinesOut, noneOut } from "../outputs";
import { z } from "zod";
import {
  bulkActionSchema,
  bulkEnrollSchema,
  csvImportSchema,
  lifecycleActionSchema,
  machineEnrollSchema,
  machineFilterSchema,
  machineListFieldsSchema,
  machineListSchema,
  machineUpdateSchema,
  maintenanceSchema,
  setOsProfileSchema,
} from "../../../lib/schemas";
import { planInputSchema } from "../../../lib/plan";
import { bulkEnroll } from "../../machines/bulk-enroll";
import { importCsv } from "../../machines/csv";
import { getMachineNetworkIn, setMachineNetwork } from "../../machines/network";
import { machineNetworkSchema } from "../../../lib/net-model";
import { deleteMachine, enrollMachine, setMaintenance, updateMachine } from "../../machines/enroll";
import { storeOf } from "../../db/store";
import { fleetSummary, getMachine } from "../../machines/detail";
import { countMachines, listMachines, listRows } from "../../machines/queries";
import { bulkAction, setOsProfile } from "../../operator/bulk-actions";
import { computePlanIn, publicPlan } from "../../operator/plan";
import { operatorAction } from "../../operator/lifecycle-actions";
import { operatorProcedure, operatorReadProcedure, router, viewerProcedure } from "../trpc";

const id = z.object({ id: z.number().int().positive() });

export const machinesRouter = router({
  list: viewerProcedure.input(machineListSchema).output(machinesOut.list).query(({ ctx, input }) => listMachines(storeOf(ctx.domain), input)),
  /** machines.list with only the named fields in each row (smaller answers, fewer joins for large pages). */
  listFields: viewerProcedure
    .input(machineListFieldsSchema)
    .output(machinesOut.listFields)
    .query(({ ctx, input }) => listRows(storeOf(ctx.domain), input)),
  /** How many machines a filter matches (for "select all N matching"). */
  count: viewerProcedure
    .input(machineFilterSchema)
    .output(machinesOut.count)
    .query(async ({ ctx, input }) => ({ total: await countMachines(storeOf(ctx.domain), input) })),
  summary: viewerProcedure.output(machinesOut.summary).query(({ ctx }) => fleetSummary(storeOf(ctx.domain))),
  get: viewerProcedure.input(id).output(machinesOut.get).query(({ ctx, input }) => getMachine(storeOf(ctx.domain), input.id)),
  enroll: operatorProcedure.input(machineEnrollSchema).output(idOut).mutation(({ ctx, input }) => enrollMachine(ctx.domain, input, ctx.actor)),
  importCsv: operatorProcedure
    .input(csvImportSchema)
    .output(machinesOut.importCsv)
    .mutation(({ ctx, input }) => importCsv(ctx.domain, input.csv, ctx.actor, input.dryRun)),
  /** Many machines at once (JSON), with the CSV import's checks: all or nothing, every problem with its row. */
  bulkEnroll: operatorProcedure
    .input(bulkEnrollSchema)
    .output(machinesOut.bulkEnroll)
    .mutation(({ ctx, input }) => bulkEnroll(ctx.domain, input.machines, ctx.actor, input.dryRun)),
  update: operatorProcedure.input(machineUpdateSchema).output(noneOut).mutation(({ ctx, input }) => updateMachine(ctx.domain, input, ctx.actor)),
  delete: operatorProcedure.input(id).output(noneOut).mutation(({ ctx, input }) => deleteMachine(ctx.domain, input.id, ctx.actor)),
  action: operatorProcedure
    .input(lifecycleActionSchema)
    .output(machinesOut.action)
    .mutation(({ ctx, input }) =>
      operatorAction(ctx.domain, input.id, input.action, { actor: ctx.actor, reason: input.reason, osProfileId: input.osProfileId }),
    ),
  /**
   * The plan of a bulk operation (lifecycle action, power, batch, set OS profile) without doing it: per machine act
   * or skip with the reason, what changes, totals, and the plan id to execute exactly it. A mutation only because a
   * selection of 10,000 ids does not fit a GET URL; it writes nothing, so read-only API tokens may call it.
   */
  plan: operatorReadProcedure
    .input(planInputSchema)
    .output(machinesOut.plan)
    .mutation(async ({ ctx, input }) => publicPlan(await computePlanIn(ctx.domain, input.selection, input.op), input.limit)),
  bulkAction: operatorProcedure
    .input(bulkActionSchema)
    .output(machinesOut.bulkAction)
    .mutation(({ ctx, input }) =>
      bulkAction(ctx.domain, input.selection, input.action, ctx.actor, { planId: input.planId, osProfileId: input.osProfileId }),
    ),
  /** The bulk "Set OS profile" (as planned: machines that already have it, or whose firmware it does not fit, are skipped). */
  setOsProfile: operatorProcedure
    .input(setOsProfileSchema)
    .output(machinesOut.bulkAction)
    .mutation(({ ctx, input }) => setOsProfile(ctx.domain, input.selection, input.osProfileId, ctx.actor, input.planId)),
  /** The machine's NICs, bonds and VLANs with their addressing, as the installed OS gets them (issue 14). */
  network: viewerProcedure.input(id).output(machinesOut.network).query(({ ctx, input }) => getMachineNetworkIn(storeOf(ctx.domain), input.id)),
  /** Replace the machine's whole network, all or nothing; refused while it is inspecting, deploying or cleaning. */
  setNetwork: operatorProcedure
    .input(id.extend({ network: machineNetworkSchema }))
    .output(noneOut)
    .mutation(({ ctx, input }) => setMachineNetwork(ctx.domain, input.id, input.network, ctx.actor)),
  setMaintenance: operatorProcedure
    .input(maintenanceSchema)
    .output(noneOut)
    .mutation(({ ctx, input }) => setMaintenance(ctx.domain, input.id, input.on, input.reason, ctx.actor)),
});
