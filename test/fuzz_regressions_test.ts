/**
 * Every input the fuzzer (`make fuzz`, fuzz/main.ts) found a bug with, replayed through the same
 * target and harness: each must now be handled, within the timeout and memory limit, with
 * exactly the outcome its note records (`expect`: accepted, or refused with that error code).
 * The inputs and notes are in test/fuzz_regressions/<target>/ (see the README there).
 *
 * @module
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FuzzChild } from "../fuzz/harness.ts";
import { isTargetName, TARGET_NAMES } from "../fuzz/targets.ts";

const DIR = fileURLToPath(new URL("./fuzz_regressions/", import.meta.url));

/** A kept input's note (`<name>.json` next to `<name>.bin`). */
interface Note {
  /** The fuzz target the input is for (also its directory). */
  target: string;
  /** What the input did before the fix. */
  found: string;
  /** What was changed. */
  fix: string;
  /** The outcome now: `ok`, or `refused` with the error code. */
  expect: { kind: "ok" | "refused"; code?: string };
}

function kept(): Array<{ target: string; name: string; bin: string; note: Note }> {
  const out = [];
  for (const d of Deno.readDirSync(DIR)) {
    if (!d.isDirectory) continue;
    for (const f of [...Deno.readDirSync(join(DIR, d.name))].map((e) => e.name).sort()) {
      if (!f.endsWith(".bin")) continue;
      const name = f.slice(0, -4);
      const note = JSON.parse(Deno.readTextFileSync(join(DIR, d.name, `${name}.json`))) as Note;
      out.push({ target: d.name, name, bin: join(DIR, d.name, f), note });
    }
  }
  return out;
}

Deno.test("fuzz regressions: every kept input has a note naming its target and outcome", () => {
  const all = kept();
  ok(all.length > 0, `no kept inputs in ${DIR}`);
  for (const k of all) {
    ok(isTargetName(k.target), `${k.bin}: directory ${k.target} is not a target (${TARGET_NAMES})`);
    deepStrictEqual(k.note.target, k.target, `${k.name}.json: target`);
    ok(k.note.found && k.note.fix, `${k.name}.json: found and fix`);
    ok(k.note.expect.kind === "ok" || k.note.expect.code, `${k.name}.json: expect`);
  }
});

Deno.test({
  name: "fuzz regressions: each kept input is handled as its note says",
  // The child process outlives single steps; it is closed at the end.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const child = new FuzzChild({ timeoutMs: 60_000 });
    try {
      for (const k of kept()) {
        await t.step(`${k.target}/${k.name}: ${k.note.found.slice(0, 80)}`, async () => {
          if (!isTargetName(k.target)) throw new Error(`unknown target ${k.target}`);
          const v = await child.run(
            k.target,
            await Deno.readFile(k.bin),
            k.target.startsWith("fsck"),
          );
          ok(v.pass, `${v.kind}: ${v.message}\n${v.stack ?? ""}`);
          deepStrictEqual(
            { kind: v.kind, code: v.code },
            { kind: k.note.expect.kind, code: k.note.expect.code },
            `outcome of ${k.bin}: ${v.message}`,
          );
        });
      }
    } finally {
      await child.close();
    }
  },
});
