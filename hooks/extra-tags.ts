/**
 * `extra-tags`: points more tags at the pulled image, next to bootc's
 * `localhost/bootc-<manifest digest>`. Tags come from the hook's options and from
 * `$CFS_EXTRA_TAGS` (comma-separated); `{digest}` in a tag becomes the first 12 hex digits
 * of the manifest digest. Tags already in the list are not added twice.
 *
 * It runs before the `tag` stage, when the manifest is known; like every tag of the pull,
 * the extra tags are written only when the whole pipeline completes.
 *
 * Options (`hooks.extra-tags` in the configuration file):
 * - `tags`: string[], the tags to add (optional).
 *
 * ```json
 * { "hooks": { "extra-tags": { "tags": ["oem/golden", "oem/build-{digest}"] } } }
 * ```
 *
 * @module
 */
import type { Hook, HookContext } from "./types.ts";
import { parseHookOptions, z } from "./options.ts";

const Options = z.strictObject({ tags: z.array(z.string().min(1)).optional() });

function parseOptions(options: Record<string, unknown>): z.infer<typeof Options> {
  return parseHookOptions(Options, options);
}

function expand(tag: string, ctx: HookContext): string {
  return tag.replace(/\{([^}]*)\}/g, (_, name: string) => {
    if (name !== "digest") {
      throw new Error(`unknown placeholder {${name}} in tag ${JSON.stringify(tag)}`);
    }
    if (!ctx.manifest) throw new Error(`{digest} in ${tag}: no manifest yet`);
    return ctx.manifest.digest.replace(/^sha256:/, "").slice(0, 12);
  });
}

export default {
  name: "extra-tags",
  before: {
    tag: (ctx) => {
      const fromEnv = (Deno.env.get("CFS_EXTRA_TAGS") ?? "").split(",").map((t) => t.trim());
      const wanted = [...parseOptions(ctx.options).tags ?? [], ...fromEnv.filter((t) => t !== "")];
      for (const tag of wanted.map((t) => expand(t, ctx))) {
        if (ctx.tags.includes(tag)) continue;
        ctx.tags.push(tag);
        ctx.log.info(`extra tag ${tag}`, { CFS_TAG: tag });
      }
    },
  },
} satisfies Hook;
