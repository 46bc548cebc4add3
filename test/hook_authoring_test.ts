/**
 * Writing a hook (issue 14, item 7): the README's example type-checks against the types
 * `make install` puts in PREFIX/share/cfs/hooks/types.ts, with `deno check` and nothing else
 * (no configuration file, an empty module cache: no network); a hook that misuses the API
 * fails that check (so the types are not `any`); `cfs hook init NAME` writes a hook that
 * checks and runs in a pull. Host tier (make, deno check, a pull); about 30 s.
 *
 * @module
 */
import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { ROOT, runCfs } from "./cfs.ts";
import { buildDemoImage, DEMO_POLICY } from "../demo.ts";

const decoder = new TextDecoder();

/** `deno check --no-config FILE` in the file's directory, with an empty module cache. */
async function denoCheck(file: string, cache: string): Promise<{ ok: boolean; output: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--no-config", file],
    cwd: join(file, ".."),
    env: { DENO_DIR: cache, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { ok: out.success, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

/** The README's complete hook example (the ts block that `satisfies Hook`). */
async function readmeHook(): Promise<string> {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const block = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1])
    .find((b) => b.includes("satisfies Hook") && b.includes("/usr/share/cfs/hooks/types.ts"));
  ok(block, "README.md has no hook example importing /usr/share/cfs/hooks/types.ts");
  return block;
}

Deno.test("make install: the README's hook example checks against the installed types", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-hook-types-" });
  try {
    const prefix = join(tmp, "usr");
    const make = await new Deno.Command("make", {
      args: ["-s", "install", `PREFIX=${prefix}`],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    equal(make.code, 0, decoder.decode(make.stderr));
    const types = join(prefix, "share/cfs/hooks/types.ts");
    ok((await Deno.stat(types)).isFile);
    // The installed command runs.
    const version = await new Deno.Command(join(prefix, "bin/cfs"), {
      args: ["--version"],
      stdout: "piped",
    }).output();
    equal(version.code, 0);
    match(decoder.decode(version.stdout), /^cfs \S+\n$/);
    // The README's example, its import pointed at PREFIX instead of /usr.
    const hooks = join(tmp, "hooks.d");
    await Deno.mkdir(join(hooks, "oem"), { recursive: true });
    const example = (await readmeHook()).replace("/usr/share/cfs/hooks/types.ts", types);
    await Deno.writeTextFile(join(hooks, "50-oem.ts"), example);
    await Deno.writeTextFile(
      join(hooks, "oem/allow.ts"),
      'export function allowed(digest: string): boolean {\n  return digest.startsWith("sha256:");\n}\n',
    );
    const cache = join(tmp, "deno-cache");
    const good = await denoCheck(join(hooks, "50-oem.ts"), cache);
    ok(good.ok, good.output);
    // Misuses are type errors: a number as a tag, a method ctx.$ commands do not have, a tree
    // node's field that does not exist.
    await Deno.writeTextFile(
      join(hooks, "bad.ts"),
      `import type { Hook } from ${JSON.stringify(types)};
export default {
  name: "bad",
  before: {
    tag: (ctx) => { ctx.tags.push(1); },
    image: async (ctx) => {
      await ctx.$\`true\`.txt();
      ctx.tree!.root.children;
    },
  },
} satisfies Hook;
`,
    );
    const bad = await denoCheck(join(hooks, "bad.ts"), cache);
    ok(!bad.ok, bad.output);
    match(bad.output, /'number' is not assignable to parameter of type 'string'/);
    match(bad.output, /Property 'txt' does not exist on type 'HookCommand'/);
    match(bad.output, /Property 'children' does not exist on type 'Directory'/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("cfs hook init: a typed hook that deno check accepts and a pull runs", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-hook-init-" });
  try {
    const dir = join(tmp, "hooks");
    await Deno.mkdir(dir);
    const init = await runCfs(["hook", "init", "site-tags", dir]);
    equal(init.code, 0, init.stderr);
    const file = join(dir, "site-tags.ts");
    match(init.text, new RegExp(`^wrote ${file}$`, "m"));
    // From a checkout, the import names the checkout's types.
    match(await Deno.readTextFile(file), new RegExp(`from "${join(ROOT, "hooks/types.ts")}"`));
    const checked = await denoCheck(file, join(tmp, "deno-cache"));
    ok(checked.ok, checked.output);
    // It runs: its tag is written and its messages are logged.
    const image = await buildDemoImage(join(tmp, "image"));
    const repo = join(tmp, "repo");
    const pull = await runCfs([
      "--repo",
      repo,
      "--json",
      "pull",
      "--allow-missing-fsverity",
      "--signature-policy",
      DEMO_POLICY,
      "--hook",
      file,
      image,
    ]);
    equal(pull.code, 0, pull.text + pull.stderr);
    const lines = pull.text.trim().split("\n").map((l) => JSON.parse(l));
    const result = lines.at(-1).result;
    ok(result.tags.includes("site-tags/latest"), JSON.stringify(result.tags));
    const said = lines.filter((l) => l.CFS_HOOK === "site-tags" && l.level === "info")
      .map((l) => l.message);
    ok(said.some((m) => /^pulling sha256:[0-9a-f]{64}$/.test(m)), said.join("\n"));
    ok(said.some((m) => /^\/usr has \d+ entries; image made on \S+$/.test(m)), said.join("\n"));
    ok(said.includes("boot entry bls 6.1.0-cfs-demo"), said.join("\n"));
    // An existing file is left alone; a bad name is a usage error.
    const again = await runCfs(["--json", "hook", "init", "site-tags", dir]);
    equal(again.code, 1);
    equal(JSON.parse(again.text).error.code, "hook-init-failed");
    const badName = await runCfs(["hook", "init", "Site_Tags", dir]);
    equal(badName.code, 2, badName.stderr);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
