/**
 * `log-json`: appends one JSON object per line to a file for every stage event of
 * `cfs pull`: before and after each of `open`, `fetch`, `import`, `tag`, `label`, `image`,
 * `boot`. A line holds `time` (ISO 8601), `stage`, `phase`, `reference`, and what is known
 * at that point: `manifest` and `config` (digests), `layers` (layer digests), `tags`,
 * `imageId`. The file is created when missing and never truncated.
 *
 * Options (`hooks.log-json` in the configuration file):
 * - `path`: string, the file to append to; default `$CFS_HOOK_LOG`. One of them is needed.
 *
 * ```json
 * { "hooks": { "log-json": { "path": "/var/log/cfs-pull.jsonl" } } }
 * ```
 *
 * @module
 */
import type { Hook, HookContext, HookFunction, StageName } from "./types.ts";
import { parseHookOptions, z } from "./options.ts";

// The stage list is spelled out here (types.ts may only be imported for types); the
// `satisfies` makes the type checker fail when a stage is added to StageName.
const STAGE_SET = {
  open: true,
  storage: true,
  fetch: true,
  import: true,
  "label-storage": true,
  tag: true,
  label: true,
  image: true,
  boot: true,
} satisfies Record<StageName, true>;
const STAGES = Object.keys(STAGE_SET) as StageName[];

const Options = z.strictObject({ path: z.string().min(1).optional() });

function logPath(options: Record<string, unknown>): string {
  const path = parseHookOptions(Options, options).path ?? Deno.env.get("CFS_HOOK_LOG");
  if (!path) throw new Error("no log file: set options.path or $CFS_HOOK_LOG");
  return path;
}

/** The JSON line for one call: stage, phase, time and what the context knows so far. */
function eventLine(ctx: HookContext): string {
  const event: Record<string, unknown> = {
    time: new Date().toISOString(),
    stage: ctx.stage,
    phase: ctx.phase,
    reference: ctx.reference,
  };
  if (ctx.manifest) event.manifest = ctx.manifest.digest;
  if (ctx.config) event.config = ctx.config.digest;
  if (ctx.layers) event.layers = ctx.layers.map((layer) => layer.digest);
  event.tags = [...ctx.tags];
  if (ctx.imageId !== undefined) event.imageId = ctx.imageId;
  return JSON.stringify(event) + "\n";
}

const write: HookFunction = async (ctx) => {
  await Deno.writeTextFile(logPath(ctx.options), eventLine(ctx), { append: true, create: true });
};

const everyStage = () =>
  Object.fromEntries(STAGES.map((stage) => [stage, write])) as Record<StageName, HookFunction>;

export default {
  name: "log-json",
  before: everyStage(),
  after: everyStage(),
} satisfies Hook;
