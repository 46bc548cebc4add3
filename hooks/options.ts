/**
 * What the shipped hooks share: zod, and reading a hook's `ctx.options` against a schema
 * with errors that name the key (`options.tags[1]: ...`).
 *
 * zod is imported by its full `npm:` specifier, the version deno.json pins: that resolves
 * the same in `deno run`, in the compiled binary and when a hook is copied out of the cfs
 * tree, without relying on cfs's import map.
 *
 * @module
 */
// deno-lint-ignore no-import-prefix
import { z } from "npm:zod@4.6.7";

export { z };

/** Validates `options` against `schema`; throws one line listing every problem by key. */
export function parseHookOptions<T extends z.ZodType>(
  schema: T,
  options: Record<string, unknown>,
): z.infer<T> {
  const result = schema.safeParse(options);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const key = issue.path.map((p) => typeof p === "number" ? `[${p}]` : `.${String(p)}`);
    return `options${key.join("")}: ${issue.message}`;
  });
  throw new Error(problems.join("; "));
}
