/**
 * Loading hook modules: user TypeScript files found on disk at run time.
 *
 * `deno compile`d programs cannot `import()` a file that was not in the module graph at
 * compile time (denoland/deno#18327), so cfs never asks Deno to load a hook file. The
 * loader reads the file itself, strips the types with sucrase (a pure-JavaScript
 * TypeScript transform, part of cfs's own graph), finds its imports with es-module-lexer,
 * loads every relative import (`./util.ts`, `../lib/x.ts`) the same way, rewrites those
 * specifiers to the dependencies' `data:` URLs, and finally imports the hook itself from
 * a `data:` URL. That one code path serves `deno run` and the compiled binary alike:
 * `data:` modules need nothing from the file system. Other specifiers are left as they
 * are: `node:` modules always resolve; `npm:` and bare specifiers resolve when cfs's own
 * graph has them (the import map of deno.json applies to `data:` modules too).
 * `import type` is erased, so hooks take their types from `hooks/types.ts` freely.
 *
 * The shipped hooks (hooks/*.ts) are also reachable as `builtin:NAME`, imported
 * statically by cfs (builtin.ts), so they are compiled into the binary.
 *
 * The module's default export is validated with zod ({@link hookSchema}); an error says
 * which file and which field.
 *
 * Discovery order (all of them run; within a directory, by file name in byte order):
 * 1. `/etc/cfs/hooks.d/*.ts`, 2. `$XDG_CONFIG_HOME/cfs/hooks.d/*.ts` (default
 * `~/.config`), 3. the configuration file's `hookDirs`, 4. each `--hooks-dir`, 5. each
 * `--hook FILE`, in the order given. Files and directories that do not exist are skipped
 * for the standard directories and are errors when named explicitly.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";
import { transform } from "sucrase";
import { init as lexerReady, parse as parseImports } from "es-module-lexer";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import type { Hook, StageName } from "../../hooks/types.ts";
import { STAGES } from "../../hooks/types.ts";
import { BUILTIN_HOOKS } from "./builtin.ts";

/** A hook file that cannot be loaded or whose default export is not a {@link Hook}. */
export class HookLoadError extends CfsError {
  /** The file (or `builtin:NAME`). */
  readonly file: string;
  /** Creates the error: `hook FILE: MESSAGE`; exit code 3, as for a hook that fails running. */
  constructor(file: string, message: string, options?: CfsErrorOptions) {
    super(`hook ${file}: ${message}`, withCode(options, "hook-load-failed", 3));
    this.name = "HookLoadError";
    this.file = file;
  }
}

/** A validated hook and where it came from. */
export interface LoadedHook {
  /** The module's default export. */
  hook: Hook;
  /** The file it was loaded from, or `builtin:NAME`. */
  source: string;
}

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

/** Validates a module namespace's default export. */
export function validateHookModule(source: string, mod: Record<string, unknown>): Hook {
  if (!("default" in mod) || mod.default === undefined) {
    throw new HookLoadError(source, "no default export (export default { name, before, after })");
  }
  const r = hookSchema.safeParse(mod.default);
  if (!r.success) throw new HookLoadError(source, `default export: ${describeIssue(r.error)}`);
  return mod.default as Hook;
}

const RELATIVE = /^\.{1,2}\//;
/** Files larger than this are not hook sources. */
const MAX_SOURCE_BYTES = 4 << 20;

function dataUrl(code: string): string {
  const bytes = new TextEncoder().encode(code);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return `data:application/javascript;base64,${btoa(bin)}`;
}

/**
 * Turns a TypeScript/JavaScript file and its relative imports into a `data:` URL module
 * (see the module documentation). `seen` holds the files in progress (cycles) and done.
 */
async function compileFile(
  file: string,
  root: string,
  done: Map<string, string>,
  inProgress: Set<string>,
): Promise<string> {
  const cached = done.get(file);
  if (cached) return cached;
  if (inProgress.has(file)) {
    throw new HookLoadError(root, `import cycle through ${file} (not supported in hooks)`);
  }
  inProgress.add(file);
  let text: string;
  try {
    const info = await Deno.stat(file);
    if (!info.isFile) throw new HookLoadError(root, `${file} is not a regular file`);
    if (info.size > MAX_SOURCE_BYTES) {
      throw new HookLoadError(root, `${file} is over ${MAX_SOURCE_BYTES} bytes`);
    }
    text = new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(file));
  } catch (e) {
    if (e instanceof HookLoadError) throw e;
    const what = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof TypeError
      ? "not UTF-8 text"
      : (e as Error).message;
    throw new HookLoadError(root, file === root ? what : `import ${file}: ${what}`);
  }
  let js: string;
  try {
    js = transform(text, {
      transforms: ["typescript"],
      filePath: file,
      disableESTransforms: true,
    }).code;
  } catch (e) {
    const msg = (e as Error).message.split("\n")[0];
    throw new HookLoadError(root, `${file === root ? "" : `${file}: `}syntax error: ${msg}`);
  }
  await lexerReady;
  let imports;
  try {
    [imports] = parseImports(js);
  } catch (e) {
    throw new HookLoadError(root, `${file}: cannot parse imports: ${(e as Error).message}`);
  }
  let out = "";
  let last = 0;
  for (const imp of imports) {
    const spec = imp.n;
    if (spec === undefined || !RELATIVE.test(spec)) continue;
    // Static imports: s..e is the specifier without quotes; dynamic: s..e is the whole
    // argument expression, which has to be a plain string literal here.
    const dep = resolve(dirname(file), spec);
    const url = await compileFile(dep, root, done, inProgress);
    if (imp.d === -1) {
      out += js.slice(last, imp.s) + url;
      last = imp.e;
    } else if (imp.d >= 0) {
      out += js.slice(last, imp.s) + JSON.stringify(url);
      last = imp.e;
    }
  }
  out += js.slice(last);
  // Keep the file's own name visible in stack traces.
  out += `\n//# sourceURL=${file}\n`;
  const url = dataUrl(out);
  inProgress.delete(file);
  done.set(file, url);
  return url;
}

/** Loads and validates one hook: a file path or `builtin:NAME`. */
export async function loadHook(spec: string): Promise<LoadedHook> {
  if (spec.startsWith("builtin:")) {
    const name = spec.slice(8);
    const mod = BUILTIN_HOOKS[name];
    if (!mod) {
      throw new HookLoadError(
        spec,
        `no such built-in hook (have: ${Object.keys(BUILTIN_HOOKS).join(", ")})`,
      );
    }
    return { hook: validateHookModule(spec, mod), source: spec };
  }
  const file = resolve(spec);
  const url = await compileFile(file, file, new Map(), new Set());
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
  } catch (e) {
    const msg = ((e as Error).message ?? String(e)).split("\n")[0];
    throw new HookLoadError(file, `failed to load: ${msg}`, { cause: e });
  }
  return { hook: validateHookModule(file, mod), source: file };
}

/** The hook files of a directory (`*.ts`, `*.js`, `*.mts`, `*.mjs`), by name. */
async function dirHooks(dir: string, required: boolean): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if ((e.isFile || e.isSymlink) && /\.(m?ts|m?js)$/.test(e.name)) names.push(e.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound && !required) return [];
    throw new HookLoadError(dir, `cannot read the hooks directory: ${(e as Error).message}`);
  }
  return names.sort().map((n) => join(dir, n));
}

/** Where hooks come from; see the module documentation for the order. */
export interface HookSources {
  /** `--hook` files (and `builtin:NAME`), in order. */
  files?: string[];
  /** `--hooks-dir` directories, in order. */
  dirs?: string[];
  /** The configuration file's `hookDirs`. */
  configDirs?: string[];
  /** Skip `/etc/cfs/hooks.d` and the XDG directory (tests, `--no-default-hooks`). */
  noDefaultDirs?: boolean;
  /** Environment for the XDG lookup; default Deno.env. */
  env?: { XDG_CONFIG_HOME?: string; HOME?: string };
}

/** The hook file list in discovery order (no loading). */
export async function hookFiles(sources: HookSources): Promise<string[]> {
  const files: string[] = [];
  if (!sources.noDefaultDirs) {
    const env = sources.env ??
      { XDG_CONFIG_HOME: Deno.env.get("XDG_CONFIG_HOME"), HOME: Deno.env.get("HOME") };
    const xdg = env.XDG_CONFIG_HOME || (env.HOME ? join(env.HOME, ".config") : undefined);
    files.push(...await dirHooks("/etc/cfs/hooks.d", false));
    if (xdg) files.push(...await dirHooks(join(xdg, "cfs", "hooks.d"), false));
  }
  for (const d of sources.configDirs ?? []) files.push(...await dirHooks(d, true));
  for (const d of sources.dirs ?? []) files.push(...await dirHooks(d, true));
  files.push(...(sources.files ?? []));
  return files;
}

/** Finds and loads every hook, in discovery order. */
export async function loadHooks(sources: HookSources): Promise<LoadedHook[]> {
  const out: LoadedHook[] = [];
  for (const f of await hookFiles(sources)) out.push(await loadHook(f));
  return out;
}
