/**
 * `make binary` and the compiled cfs. Whenever a binary can be built (a denort runtime can be
 * downloaded, or `DENORT_BIN` names one), it is built and run: `--version`, an fs-verity digest
 * large enough for the hashing workers (checked against `fsverity digest`). Where none can be
 * built (our build machines reach no Deno download server and no registry ships denort), the
 * test checks that `make binary` says so in one line naming `DENORT_BIN`, and prints loudly that
 * the binary was not run; `make binary-test` (CFS_REQUIRE_BINARY=1) fails there instead.
 *
 * Always: every file cfs loads by path at run time (a Worker's or a spawned module's
 * `new URL("./x.ts", import.meta.url)`) is in the Makefile's COMPILE_INCLUDES, or started in a
 * way the binary does not need it (hook processes: the binary runs itself).
 *
 * About 10 s without a denort (the probe compile), a few minutes with one.
 *
 * @module
 */
import { equal, ok } from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import { ROOT, run } from "./cfs.ts";

/** Files started by path that the compiled binary does not need (and why). */
const NOT_NEEDED: Record<string, string> = {
  "lib/pipeline/hook_child.ts": "the binary starts itself as the hook process",
  "hooks/types.ts": "a path shown to hook authors (cfs hook init), never loaded by cfs",
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

Deno.test("make binary: every file loaded by path is compiled in", () => {
  const makefile = fs.readFileSync(join(ROOT, "Makefile"), "utf8");
  const includes = /^COMPILE_INCLUDES := (.*)$/m.exec(makefile)?.[1] ?? "";
  const listed = [...includes.matchAll(/--include (\S+)/g)].map((m) => m[1]);
  ok(listed.length > 0, "COMPILE_INCLUDES is empty");
  const loaded: string[] = [];
  for (const file of [...sources("lib"), "cli.ts"]) {
    const text = fs.readFileSync(join(ROOT, file), "utf8");
    for (const m of text.matchAll(/new URL\("(\.{1,2}\/[^"]+\.ts)", import\.meta\.url\)/g)) {
      const target = new URL(m[1], `file:///${file}`).pathname.slice(1);
      if (target !== "cli.ts" && target !== "deno.json") loaded.push(target);
    }
  }
  ok(loaded.includes("lib/fsverity/leaf_worker.ts"), loaded.join(" "));
  for (const f of loaded) {
    ok(listed.includes(f) || f in NOT_NEEDED, `${f} is loaded by path but not in COMPILE_INCLUDES`);
    ok(fs.existsSync(join(ROOT, f)), f);
  }
});

Deno.test("make binary: builds and runs cfs, or says in one line what to do", async () => {
  const r = await new Deno.Command("make", {
    args: ["-s", "binary"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(r.stderr);
  if (r.code !== 0) {
    const ours = stderr.split("\n").filter((l) => l.startsWith("make binary: "));
    equal(ours.length, 1, stderr);
    ok(ours[0].includes("DENORT_BIN="), ours[0]);
    ok(/could not download denort-\S+\.zip/.test(ours[0]), ours[0]);
    const note = "NO BINARY BUILT OR RUN HERE: no denort runtime can be had on this machine; " +
      "`make binary DENORT_BIN=/path/to/denort` and `make binary-test` run it where one exists";
    console.error(`\n  !!! ${note}\n`);
    if (Deno.env.get("CFS_REQUIRE_BINARY") === "1") throw new Error(`${note}: ${ours[0]}`);
    return;
  }
  const bin = join(ROOT, "dist/cfs");
  equal((await run(bin, ["--version"])).trim(), "cfs 0.1.0");
  // Large enough for the hashing workers (lib/fsverity/file.ts).
  const tmp = await Deno.makeTempDir({ prefix: "cfs-binary-" });
  try {
    const file = join(tmp, "big");
    const chunk = crypto.getRandomValues(new Uint8Array(65536));
    const f = fs.openSync(file, "w");
    for (let i = 0; i < 1024; i++) fs.writeSync(f, chunk);
    fs.closeSync(f);
    const ours = (await run(bin, ["digest", "--algorithm", "sha512", file])).trim();
    const theirs = (await run("fsverity", ["digest", "--hash-alg=sha512", file])).trim();
    equal(ours, theirs);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
