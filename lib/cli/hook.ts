/**
 * `cfs hook init NAME [DIR]`: writes `DIR/NAME.ts`, a typed hook to start from, whose type
 * import names a copy of hooks/types.ts that exists here, so that `deno check` and editors
 * see the API: this checkout's when cfs runs from one, else the one `make install` put beside
 * the running cfs (`PREFIX/share/cfs/hooks/types.ts`), else `/usr/share/cfs/hooks/types.ts`.
 * The import is type-only: cfs erases it when it loads the hook, so the hook runs wherever
 * the file is, types installed or not.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CfsError } from "../errors.ts";
import { type CommandHandler, parseCommandArgs, println, UsageError } from "./command.ts";

const USAGE = `usage: cfs hook init NAME [DIR]

Writes DIR/NAME.ts (DIR: the current directory), a typed cfs pull hook to start from. Its
type import names hooks/types.ts where cfs finds it (this checkout's, or the one 'make install'
puts in PREFIX/share/cfs), so 'deno check DIR/NAME.ts' checks it against the API.
Try it with 'cfs pull --hook DIR/NAME.ts IMAGE'; install it into /etc/cfs/hooks.d/.
NAME: lower-case letters, digits and '-', starting with a letter (it is also the hook's name).`;

/** The installed location of the hook types that the README's examples import. */
export const INSTALLED_HOOK_TYPES = "/usr/share/cfs/hooks/types.ts";

/** Where the hook types are for this cfs: see the module documentation. */
export function hookTypesPath(): { path: string; exists: boolean } {
  const candidates: string[] = [];
  const own = new URL("../../hooks/types.ts", import.meta.url);
  if (own.protocol === "file:" && !Deno.build.standalone) candidates.push(fileURLToPath(own));
  candidates.push(join(dirname(Deno.execPath()), "../share/cfs/hooks/types.ts"));
  candidates.push(INSTALLED_HOOK_TYPES);
  for (const path of candidates) {
    try {
      if (Deno.statSync(path).isFile) return { path: resolve(path), exists: true };
    } catch { /* not there: the next one */ }
  }
  return { path: INSTALLED_HOOK_TYPES, exists: false };
}

/** The hook `cfs hook init` writes. */
export function hookTemplate(name: string, typesPath: string): string {
  return `/**
 * ${name}: a cfs pull hook. Its default export names functions to run before and after the
 * pull's stages (open, fetch, import, tag, label, image, boot); see 'cfs pull --help'.
 *
 *   deno check ${name}.ts                  # against cfs's hook API (types only)
 *   cfs pull --hook ./${name}.ts IMAGE     # try it; then copy it into /etc/cfs/hooks.d/
 */
import type { Hook } from ${JSON.stringify(typesPath)}; // types only: erased on load

export default {
  name: ${JSON.stringify(name)},
  timeout: 60_000, // ms per call
  after: {
    // The manifest is known and the signature policy has accepted the image.
    fetch: (ctx) => {
      ctx.log.info(\`pulling \${ctx.manifest!.digest}\`, { CFS_LAYERS: ctx.layers!.length });
    },
    // The bootable image is written and its boot entries found.
    boot: (ctx) => {
      for (const entry of ctx.bootEntries ?? []) {
        ctx.log.info(\`boot entry \${entry.kind} \${entry.kernelVersion ?? "-"}\`);
      }
    },
  },
  before: {
    // Tags to add; written when the whole pull succeeds.
    tag: (ctx) => {
      ctx.tags.push(${JSON.stringify(`${name}/latest`)});
    },
    // The tree is the hook's to read and change until the image is written.
    image: async (ctx) => {
      const usr = ctx.tree!.root.entries.get("usr");
      const count = usr?.kind === "dir" ? usr.entries.size : 0;
      // A command's output goes to cfs's log; .text() captures it instead.
      const host = await ctx.$\`uname -n\`.text();
      ctx.log.info(\`/usr has \${count} entries; image made on \${host}\`);
    },
  },
} satisfies Hook;
`;
}

/** A hook file cannot be written. */
export class HookInitError extends CfsError {
  /** Creates the error; `message` names the file. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { code: "hook-init-failed", cause: options?.cause });
    this.name = "HookInitError";
  }
}

/** `cfs hook` */
export const hookCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, USAGE);
  if (values.help) {
    println(USAGE);
    return 0;
  }
  const [sub, name, dir = ".", ...rest] = positionals;
  if (sub !== "init") {
    throw new UsageError(sub ? `unknown hook command '${sub}'` : "hook needs 'init'", USAGE);
  }
  if (name === undefined) throw new UsageError("hook init needs a NAME", USAGE);
  if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`, USAGE);
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) {
    throw new UsageError(
      `hook name '${name}': lower-case letters, digits and '-', starting with a letter`,
      USAGE,
    );
  }
  const types = hookTypesPath();
  const file = resolve(dir, `${name}.ts`);
  try {
    await Deno.writeTextFile(file, hookTemplate(name, types.path), { createNew: true });
  } catch (e) {
    const why = e instanceof Deno.errors.AlreadyExists ? "it exists" : (e as Error).message;
    throw new HookInitError(`cannot write ${file}: ${why}`, { cause: e });
  }
  if (globals.json) {
    println(JSON.stringify({ file, types: types.path, typesInstalled: types.exists }));
    return 0;
  }
  println(`wrote ${file}`);
  println(`types: ${types.path}`);
  if (!types.exists) {
    println(`(not installed here: 'make install' in a cfs checkout puts them there)`);
  }
  println(`next: deno check ${file}; cfs pull --hook ${file} IMAGE`);
  return 0;
};
