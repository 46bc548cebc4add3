/**
 * dax, loaded when first needed. Importing it costs about 130 ms of start-up (measured:
 * `await import("dax")` in an empty script, 121-138 ms on this 2-core host), which every
 * command paid before, including `compute-id` and `oci pull` that never run a process or
 * draw a progress bar. Code that runs commands calls {@link loadDax} (async, once); the
 * logger's terminal output, which must be synchronous, uses {@link loadedDax} and the CLI
 * loads dax first when stderr is a terminal.
 *
 * The specifier is a literal, so `deno compile` still bundles dax.
 *
 * @module
 */
import type * as Dax from "dax";

let dax: typeof Dax | undefined;

/** dax's module, imported on the first call. */
export async function loadDax(): Promise<typeof Dax> {
  dax ??= await import("dax");
  return dax;
}

/** dax's `$`, imported on the first call. */
export async function dax$(): Promise<typeof Dax.$> {
  return (await loadDax()).$;
}

/** dax's module when {@link loadDax} has run, else undefined (never imports). */
export function loadedDax(): typeof Dax | undefined {
  return dax;
}
