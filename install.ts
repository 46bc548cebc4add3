/**
 * `make install [PREFIX=/usr] [DESTDIR=]`: puts cfs on a machine from this checkout.
 *
 * - `PREFIX/bin/cfs`: the binary `make binary` wrote (`dist/cfs`) when there is one, else a
 *   launcher that runs this checkout's `cli.ts` with its pinned Deno and its module cache
 *   (so the checkout must stay where it is).
 * - `PREFIX/share/cfs/hooks/types.ts`, the hook API that hooks import their types from (the
 *   README's examples name `/usr/share/cfs/hooks/types.ts`), with the modules of cfs it takes
 *   types from, in the same layout: `deno info` lists them, so the copy is complete whatever
 *   those modules import. `deno check` of a hook then needs nothing else.
 *
 * Run as `deno run -A install.ts PREFIX DESTDIR` (the Makefile does).
 *
 * @module
 */
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("./", import.meta.url));

/** The checkout's files that `hooks/types.ts` needs, relative to the checkout. */
export async function hookTypeFiles(): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "hooks/types.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`deno info failed: ${new TextDecoder().decode(out.stderr)}`);
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: Array<{ specifier: string }>;
  };
  const files = graph.modules
    .map((m) => m.specifier)
    .filter((s) => s.startsWith("file:"))
    .map((s) => relative(ROOT, fileURLToPath(s)));
  const outside = files.find((f) => f.startsWith(".."));
  if (outside) throw new Error(`hooks/types.ts needs ${outside}, outside the checkout`);
  return files.sort();
}

/** The launcher installed when there is no compiled binary. */
export function launcher(root: string): string {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  return `#!/bin/sh
# cfs, run from the checkout ${root} (installed by 'make install'; after 'make binary',
# 'make install' installs the compiled binary instead).
DENO_DIR=${q(join(root, ".deno"))} exec ${q(join(root, ".tools/node_modules/.bin/deno"))} \\
  run --allow-all --quiet --no-prompt --config ${q(join(root, "deno.json"))} \\
  ${q(join(root, "cli.ts"))} "$@"
`;
}

async function install(prefix: string, destdir: string): Promise<void> {
  const base = `${destdir}${prefix}`;
  const bin = join(base, "bin/cfs");
  await Deno.mkdir(dirname(bin), { recursive: true });
  const binary = join(ROOT, "dist/cfs");
  let what: string;
  try {
    await Deno.copyFile(binary, bin);
    what = `the binary ${binary}`;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    await Deno.writeTextFile(bin, launcher(ROOT));
    what = `a launcher of ${join(ROOT, "cli.ts")}`;
  }
  await Deno.chmod(bin, 0o755);
  console.log(`installed ${bin}: ${what}`);
  const share = join(base, "share/cfs");
  for (const file of await hookTypeFiles()) {
    await Deno.mkdir(dirname(join(share, file)), { recursive: true });
    await Deno.copyFile(join(ROOT, file), join(share, file));
    await Deno.chmod(join(share, file), 0o644);
  }
  console.log(`installed ${join(share, "hooks/types.ts")} (the hook API) and what it imports`);
}

if (import.meta.main) {
  const [prefix, destdir = ""] = Deno.args;
  if (!prefix?.startsWith("/")) {
    console.error("usage: install.ts PREFIX [DESTDIR] (PREFIX an absolute path)");
    Deno.exit(2);
  }
  await install(prefix, destdir);
}
