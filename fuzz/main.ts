/**
 * `make fuzz`: mutates real inputs (see `corpus.ts`) and feeds them to cfs's readers and to
 * fsck, one at a time, in a child process (`child.ts`, `harness.ts`). Every input must be
 * handled (accepted, or refused with a one-line error of a known code), within a per-input
 * timeout and a memory limit; anything else is a finding, printed with the seed and iteration
 * that make it again and saved with a note of how it was made.
 *
 *     deno run -A fuzz/main.ts [--seed N] [--time S] [--total S] [--targets a,b]
 *                              [--timeout MS] [--max-rss MIB] [--cli-every N]
 *                              [--corpus DIR] [--out DIR] [--rebuild-corpus]
 *     deno run -A fuzz/main.ts --replay FILE --target T       # one saved input
 *     deno run -A fuzz/main.ts --seed N --target T --iteration I   # remake one input
 *
 * Inputs are a function of (seed, target, iteration): iteration I of a target in a run with
 * seed N is the same input on every machine with the same corpus. Each iteration picks a seed
 * input and mutates it format-aware (`structure/`), blindly (`mutate.ts`), or both.
 *
 * A finding goes to `--out` (default `test/.work/fuzz/failures/<target>/`) as the input and a
 * `.json` note. Keep it as a regression test by copying both into `test/fuzz_regressions/`
 * (see that directory's README) once it is fixed.
 *
 * Exit status: 0 when every input passed, 1 when something was found, 2 for bad arguments.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { iterationRng, type Rng } from "./rng.ts";
import { havoc, type Mutated } from "./mutate.ts";
import { FuzzChild, type Verdict } from "./harness.ts";
import { isTargetName, TARGET_NAMES, type TargetName } from "./targets.ts";
import { ensureCorpus, loadSeeds } from "./corpus.ts";
import { erofsPoints } from "./structure/erofs.ts";
import { mutateField } from "./structure/fields.ts";
import { mutateSplitstream, splitstreamAnalysis } from "./structure/splitstream.ts";
import { mutateTar, tarAnalysis } from "./structure/tar.ts";
import { mutateDumpfile } from "./structure/dumpfile.ts";
import { mutateOciBundle } from "./structure/oci.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** The format-aware mutator of a target, with its per-seed analysis cached. */
function structuredMutator(
  target: TargetName,
): (
  rng: Rng,
  seed: Uint8Array,
  name: string,
  others: readonly Uint8Array[],
) => Mutated | undefined {
  const cache = new Map<string, unknown>();
  const analysed = <T>(name: string, seed: Uint8Array, f: (s: Uint8Array) => T): T => {
    if (!cache.has(name)) cache.set(name, f(seed));
    return cache.get(name) as T;
  };
  switch (target) {
    case "erofs":
    case "fsck-image":
      return (rng, seed, name) => mutateField(rng, seed, analysed(name, seed, erofsPoints));
    case "splitstream":
    case "fsck-stream":
      return (rng, seed, name, others) =>
        mutateSplitstream(rng, seed, analysed(name, seed, splitstreamAnalysis), others);
    case "tar":
    case "layer-import":
      return (rng, seed, name) => mutateTar(rng, seed, analysed(name, seed, tarAnalysis));
    case "dumpfile":
      return (rng, seed) => mutateDumpfile(rng, seed);
    case "oci-layout":
      return (rng, seed, _name, others) => mutateOciBundle(rng, seed, others);
  }
}

/** Makes iteration `i`'s input for `target`. */
function makeInput(
  seed: number,
  target: TargetName,
  i: number,
  seeds: Map<string, Uint8Array>,
  structured: ReturnType<typeof structuredMutator>,
): { bytes: Uint8Array; seedName: string; how: string } {
  const rng = iterationRng(seed, target, i);
  const names = [...seeds.keys()];
  const seedName = rng.pick(names);
  const base = seeds.get(seedName)!;
  const others = names.filter((n) => n !== seedName).map((n) => seeds.get(n)!);
  // oci-layout inputs are bundles: blind mutation would only break the container.
  const blindOk = target !== "oci-layout";
  const mode = blindOk ? rng.weighted([5, 3, 2]) : 0;
  let m: Mutated | undefined;
  if (mode === 0 || mode === 2) m = structured(rng, base, seedName, others);
  if (m === undefined && !blindOk) return { bytes: base, seedName, how: "seed as it is" };
  if (m === undefined || mode === 1) m = havoc(rng, base, others);
  else if (mode === 2) {
    const h = havoc(rng, m.bytes, others, 2);
    m = { bytes: h.bytes, how: `${m.how}; then ${h.how}` };
  }
  return { bytes: m.bytes, seedName, how: m.how };
}

/** What makes findings "the same" (to save a few of each, not thousands). */
function signature(target: string, v: Verdict): string {
  const frame = /at .*?\/(lib|fuzz)\/([^:)]+):(\d+)/.exec(v.stack ?? "");
  const msg = (v.message ?? "").replace(/[0-9]+/g, "N").replace(/"[^"]*"/g, "S").slice(0, 100);
  return `${target} ${v.kind} ${v.code ?? v.name ?? ""} ${frame ? `${frame[2]}:${frame[3]}` : msg}`;
}

interface Finding {
  signature: string;
  count: number;
  first: { iteration: number; path: string; message: string };
}

async function save(
  out: string,
  target: TargetName,
  seed: number,
  iteration: number,
  input: { bytes: Uint8Array; seedName: string; how: string },
  verdict: Verdict,
): Promise<string> {
  const dir = join(out, target);
  await Deno.mkdir(dir, { recursive: true });
  const base = join(dir, `${target}-s${seed}-i${iteration}`);
  await Deno.writeFile(`${base}.bin`, input.bytes);
  const note = {
    target,
    seed,
    iteration,
    seedInput: input.seedName,
    mutation: input.how,
    verdict: {
      kind: verdict.kind,
      name: verdict.name,
      code: verdict.code,
      message: verdict.message,
    },
    stack: verdict.stack,
  };
  await Deno.writeTextFile(`${base}.json`, JSON.stringify(note, null, 2) + "\n");
  return `${base}.bin`;
}

function usage(message: string): never {
  console.error(`fuzz: ${message}`);
  console.error(
    "usage: deno run -A fuzz/main.ts [--seed N] [--time S] [--total S] [--targets a,b] " +
      "[--timeout MS] [--max-rss MIB] [--cli-every N] [--corpus DIR] [--out DIR] [--rebuild-corpus] | " +
      "--replay FILE --target T | --seed N --target T --iteration I",
  );
  Deno.exit(2);
}

function number(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) usage(`--${name} ${value} is not a number`);
  return n;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        seed: { type: "string" },
        time: { type: "string" },
        total: { type: "string" },
        targets: { type: "string" },
        target: { type: "string" },
        timeout: { type: "string" },
        "max-rss": { type: "string" },
        "cli-every": { type: "string" },
        corpus: { type: "string" },
        out: { type: "string" },
        replay: { type: "string" },
        iteration: { type: "string" },
        "rebuild-corpus": { type: "boolean" },
      },
    }));
  } catch (e) {
    usage((e as Error).message);
  }
  const child = new FuzzChild({
    timeoutMs: number(values.timeout, "timeout", 10_000),
    maxRss: number(values["max-rss"], "max-rss", 1024) * 2 ** 20,
  });
  const out = values.out ?? join(ROOT, "test/.work/fuzz/failures");
  try {
    if (values.replay !== undefined) {
      const target = values.target ?? "";
      if (!isTargetName(target)) usage(`--target ${target}: one of ${TARGET_NAMES.join(", ")}`);
      const verdict = await child.run(target, await Deno.readFile(values.replay), true);
      console.log(JSON.stringify(verdict, null, 2));
      return verdict.pass ? 0 : 1;
    }
    const seed = values.seed !== undefined
      ? number(values.seed, "seed", 0) >>> 0
      : crypto.getRandomValues(new Uint32Array(1))[0];
    const corpus = values.corpus ?? join(ROOT, "test/.work/fuzz/corpus");
    const sizes = await ensureCorpus(corpus, (l) => console.log(l), values["rebuild-corpus"]);
    if (values.iteration !== undefined) {
      const target = values.target ?? "";
      if (!isTargetName(target)) usage(`--target ${target}: one of ${TARGET_NAMES.join(", ")}`);
      const i = number(values.iteration, "iteration", 0);
      const input = makeInput(
        seed,
        target,
        i,
        await loadSeeds(corpus, target),
        structuredMutator(target),
      );
      const verdict = await child.run(target, input.bytes, true);
      const path = await save(out, target, seed, i, input, verdict);
      console.log(
        `${input.seedName}: ${input.how}\n${JSON.stringify(verdict, null, 2)}\nsaved ${path}`,
      );
      return verdict.pass ? 0 : 1;
    }

    const targets = (values.targets ?? TARGET_NAMES.join(",")).split(",").map((t) => t.trim());
    for (const t of targets) {
      if (!isTargetName(t)) usage(`unknown target ${t} (${TARGET_NAMES.join(", ")})`);
    }
    const perTarget = number(values.time, "time", 60) * 1000;
    const total = number(values.total, "total", 600) * 1000;
    const cliEvery = number(values["cli-every"], "cli-every", 50);
    console.log(
      `fuzz: seed ${seed}; ${perTarget / 1000} s per target, ${total / 1000} s in all; ` +
        `corpus ${JSON.stringify(sizes)}`,
    );
    const started = Date.now();
    const summary: string[] = [];
    let failed = false;
    for (const target of targets as TargetName[]) {
      const left = total - (Date.now() - started);
      if (left <= 0) {
        summary.push(`${target}: not run (total time used up)`);
        continue;
      }
      const budget = Math.min(perTarget, left);
      const seeds = await loadSeeds(corpus, target);
      const structured = structuredMutator(target);
      const findings = new Map<string, Finding>();
      const kinds: Record<string, number> = {};
      const t0 = Date.now();
      let lastReport = t0;
      let i = 0;
      let slowest = 0;
      for (; Date.now() - t0 < budget; i++) {
        const input = makeInput(seed, target, i, seeds, structured);
        const cli = target.startsWith("fsck") && cliEvery > 0 && i % cliEvery === 0;
        const verdict = await child.run(target, input.bytes, cli);
        kinds[verdict.kind] = (kinds[verdict.kind] ?? 0) + 1;
        if (!cli) slowest = Math.max(slowest, verdict.ms ?? 0);
        if (!verdict.pass) {
          const sig = signature(target, verdict);
          const f = findings.get(sig);
          if (f) f.count++;
          else {
            const path = await save(out, target, seed, i, input, verdict);
            findings.set(sig, {
              signature: sig,
              count: 1,
              first: { iteration: i, path, message: verdict.message ?? "" },
            });
            console.log(
              `FOUND ${target} seed ${seed} iteration ${i}: ${verdict.kind}: ` +
                `${
                  (verdict.message ?? "").slice(0, 300)
                }\n  input: ${path}\n  how: ${input.seedName}: ` +
                `${
                  input.how.slice(0, 300)
                }\n  again: deno run -A fuzz/main.ts --replay ${path} --target ${target}`,
            );
          }
        }
        if (Date.now() - lastReport > 15_000) {
          lastReport = Date.now();
          const s = (lastReport - t0) / 1000;
          console.log(
            `  ${target}: ${i + 1} inputs in ${s.toFixed(0)} s (${((i + 1) / s).toFixed(1)}/s)`,
          );
        }
      }
      const secs = (Date.now() - t0) / 1000;
      const line = `${target}: ${i} inputs in ${secs.toFixed(0)} s (${(i / secs).toFixed(1)}/s), ` +
        `${
          Object.entries(kinds).map(([k, n]) => `${k} ${n}`).join(", ")
        }; slowest ${slowest} ms; ` +
        `${findings.size} distinct finding(s)`;
      summary.push(line);
      for (const f of findings.values()) {
        failed = true;
        summary.push(
          `  ${f.count}x ${f.signature}\n     e.g. ${f.first.path}: ${
            f.first.message.slice(0, 200)
          }`,
        );
      }
    }
    console.log(`\nfuzz summary (seed ${seed}, child restarts ${child.starts - 1}):`);
    for (const l of summary) console.log(l);
    return failed ? 1 : 0;
  } finally {
    await child.close();
  }
}

Deno.exit(await main());
