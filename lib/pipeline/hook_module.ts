/**
 * The shape a hook module's default export must have, checked with zod where the module is
 * imported: in the hook's own process (hook_child.ts), since functions do not cross to cfs.
 *
 * @module
 */
import { z } from "zod";
import type { Hook, StageName } from "../../hooks/types.ts";
import { STAGES } from "../../hooks/types.ts";

const hookFunction = z.custom<(ctx: unknown) => unknown>(
  (v) => typeof v === "function",
  { message: "must be a function" },
);

const stageMap = z.object(
  Object.fromEntries(STAGES.map((s) => [s, hookFunction.optional()])) as Record<
    StageName,
    z.ZodOptional<typeof hookFunction>
  >,
).strict();

/** The shape a hook module's default export must have. */
export const hookSchema = z.object({
  name: z.string().min(1).max(100).regex(/^[^\n\0]+$/, "must be one line"),
  before: stageMap.optional(),
  after: stageMap.optional(),
  timeout: z.number().int().positive().max(24 * 3600 * 1000).optional(),
}).strict();

/** `path.to.field: message` for the first zod issue (the one a user fixes first). */
function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  const path = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    const keys = (issue as { keys?: string[] }).keys ?? [];
    return `${path ? path + ": " : ""}unknown field${keys.length > 1 ? "s" : ""} ${
      keys.map((k) => JSON.stringify(k)).join(", ")
    }${path === "" ? "" : ` (stages: ${STAGES.join(", ")})`}`;
  }
  return `${path || "(the export)"}: ${issue.message}`;
}

/**
 * The module namespace's default export as a {@link Hook}, or a message saying what is wrong
 * with it (`no default export ...`, `default export: before.open: must be a function`).
 */
export function hookOfModule(mod: Record<string, unknown>): Hook | string {
  if (!("default" in mod) || mod.default === undefined) {
    return "no default export (export default { name, before, after })";
  }
  const r = hookSchema.safeParse(mod.default);
  if (!r.success) return `default export: ${describeIssue(r.error)}`;
  return mod.default as Hook;
}
