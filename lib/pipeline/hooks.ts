/**
 * Loading hook modules: user TypeScript files found on disk at run time, each into a process
 * of its own (hook_process.ts) that cfs can stop.
 *
 * `deno compile`d programs cannot `import()` a file that was not in the module graph at
 * compile time (denoland/deno#18327), so cfs never asks Deno to load a hook file. The
 * loader reads the file itself, strips the types with sucrase (a pure-JavaScript
 * TypeScript transform, part of cfs's own graph), finds its imports with es-module-lexer,
 * loads every relative import (`./util.ts`, `../lib/x.ts`) the same way, rewrites those
 * specifiers to the dependencies' `data:` URLs, and hands the hook's own `data:` URL to its
 * process, which imports it. That one code path serves `deno run` and the compiled binary
 * alike: `data:` modules need nothing from the file system. Other specifiers are left as they
 * are: `node:` modules always resolve; `npm:` and bare specifiers resolve when cfs's own
 * graph has them (the import map of deno.json applies to `data:` modules too).
 * `import type` is erased, so hooks take their types from `hooks/types.ts` freely.
 *
 * As root, every file read here (the hook and its relative imports) must be one only root can
 * change (hook_trust.ts), or it is refused with `hook-file-unsafe`.
 *
 * The shipped hooks (hooks/*.ts) are also reachable as `builtin:NAME`, imported
 * statically by cfs (builtin.ts), so they are compiled into the binary; they run in a process
 * of their own too.
 *
 * The module's default export is validated with zod (hook_module.ts) in its process; an error
 * says which file and which field.
 *
 * Discovery order (all of them run; within a directory, by file name in byte order):
 * 1. `/etc/cfs/hooks.d/*.ts`, 2. `$XDG_CONFIG_HOME/cfs/hooks.d/*.ts` (default
 * `~/.config`), 3. the configuration file's `hookDirs`, 4. each `--hooks-dir`, 5. each
 * `--hook FILE`, in the order given. Files and directories that do not exist are skipped
 * for the standard directories and are errors when named explicitly.
 *
 * @module
 */
import type * as Sucrase from "sucrase";
import type * as Lexer from "es-module-lexer";
import { dirname, join, resolve } from "node:path";
import { BUILTIN_HOOKS } from "./builtin.ts";
import { HookLoadError } from "./hook_errors.ts";
import { HookCallError, type HookInfo, HookProcess } from "./hook_process.ts";
import { runningAsRoot, untrustedReason } from "./hook_trust.ts";

export { HookLoadError } from "./hook_errors.ts";
export { hookSchema } from "./hook_module.ts";
export type { HookInfo } from "./hook_process.ts";

/** A hook loaded into its own process, ready to be called by the pipeline (run.ts). */
export interface LoadedHook {
  /** What its module declared: name, timeout, the stages it has functions for. */
  readonly hook: HookInfo;
  /** The file it was loaded from, or `builtin:NAME`. */
  readonly source: string;
  /** Its process; {@link closeHooks} stops it (the pipeline does, when it ends). */
  readonly process: HookProcess;
}

/** Options of {@link loadHook} and {@link loadHooks}. */
export interface LoadOptions {
  /** Time to start a hook's process and load its module (ms); default 60000. */
  loadTimeoutMs?: number;
  /** Check that only root can change the files (hook_trust.ts); default: when running as root. */
  checkOwnership?: boolean;
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
/**
 * The TypeScript transpiler and the import lexer, imported when the first hook is compiled:
 * a pull without hooks does not pay their loading (lib/dax.ts has the measurements of the
 * same change). The literal specifiers keep them in the binary.
 */
let compilers: { transform: typeof Sucrase.transform; lexer: typeof Lexer } | undefined;

async function loadCompilers(): Promise<{
  transform: typeof Sucrase.transform;
  lexer: typeof Lexer;
}> {
  if (compilers === undefined) {
    const [sucrase, lexer] = await Promise.all([import("sucrase"), import("es-module-lexer")]);
    await lexer.init;
    compilers = { transform: sucrase.transform, lexer };
  }
  return compilers;
}

async function compileFile(
  file: string,
  root: string,
  done: Map<string, string>,
  inProgress: Set<string>,
  checkOwnership: boolean,
): Promise<string> {
  const cached = done.get(file);
  if (cached) return cached;
  if (inProgress.has(file)) {
    throw new HookLoadError(root, `import cycle through ${file} (not supported in hooks)`);
  }
  inProgress.add(file);
  if (checkOwnership) {
    const reason = untrustedReason(file);
    if (reason !== undefined) {
      throw new HookLoadError(
        root,
        `${file === root ? "" : `import ${file}: `}refused: ${reason}; as root, cfs runs only ` +
          "hooks that root alone can change (owner root, not writable by group or others, " +
          "nor any directory above)",
        { code: "hook-file-unsafe" },
      );
    }
  }
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
  const { transform, lexer } = await loadCompilers();
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
  let imports;
  try {
    [imports] = lexer.parse(js);
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
    const url = await compileFile(dep, root, done, inProgress, checkOwnership);
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

/**
 * Loads one hook, a file path or `builtin:NAME`, into a process of its own and validates its
 * default export there. The caller owns the result: {@link closeHooks} (or the pipeline, which
 * closes the hooks it is given) stops its process.
 */
export async function loadHook(spec: string, options: LoadOptions = {}): Promise<LoadedHook> {
  let source: string;
  let load: { builtin?: string; url?: string };
  if (spec.startsWith("builtin:")) {
    const name = spec.slice(8);
    if (!Object.hasOwn(BUILTIN_HOOKS, name)) {
      throw new HookLoadError(
        spec,
        `no such built-in hook (have: ${Object.keys(BUILTIN_HOOKS).join(", ")})`,
      );
    }
    source = spec;
    load = { builtin: name };
  } else {
    source = resolve(spec);
    const checkOwnership = options.checkOwnership ?? runningAsRoot();
    load = { url: await compileFile(source, source, new Map(), new Set(), checkOwnership) };
  }
  try {
    const { process, info } = await HookProcess.start(load, options);
    return { hook: info, source, process };
  } catch (e) {
    if (!(e instanceof HookCallError)) throw e;
    throw new HookLoadError(source, e.message, { cause: e });
  }
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

/**
 * Finds and loads every hook, in discovery order; their processes start side by side. When one
 * fails to load, the others are stopped and the first failure (in that order) is thrown.
 */
export async function loadHooks(
  sources: HookSources,
  options: LoadOptions = {},
): Promise<LoadedHook[]> {
  const files = await hookFiles(sources);
  const results = await Promise.allSettled(files.map((f) => loadHook(f, options)));
  const loaded = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) {
    await closeHooks(loaded);
    throw (failed as PromiseRejectedResult).reason;
  }
  return loaded;
}

/** Stops the processes of `hooks` (whatever they are doing). */
export async function closeHooks(hooks: readonly LoadedHook[]): Promise<void> {
  await Promise.all(hooks.map((h) => h.process.close()));
}
