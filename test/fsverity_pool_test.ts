/**
 * FileDigestPool (lib/fsverity/file_pool.ts): digests of many files hashed by a worker and the
 * calling thread together, each checked against `fsverity digest` (never cfs's own code).
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { join } from "node:path";
import { FileDigestPool } from "../lib/fsverity/file_pool.ts";
import { toHex, type VerityAlgorithm } from "../lib/fsverity/digest.ts";
import { FileDigestError } from "../lib/fsverity/file.ts";

const enc = new TextEncoder();

/** 300 files of 65 B to 1 MiB + 1 in a new directory, and fsverity digest's output per file. */
async function corpus(
  alg: VerityAlgorithm,
): Promise<{ dir: string; files: string[]; want: string[] }> {
  const dir = await Deno.makeTempDir({ prefix: "cfs-pool-" });
  const files: string[] = [];
  for (let i = 0; i < 300; i++) {
    const size = [65, 4096, 4097, 70_000, (1 << 20) + 1][i % 5];
    const path = join(dir, `f${i}`);
    await Deno.writeFile(path, randomFillSync(new Uint8Array(size)));
    files.push(path);
  }
  const out = await new Deno.Command("fsverity", {
    args: ["digest", `--hash-alg=${alg}`, ...files],
    stdout: "piped",
  }).output();
  ok(out.success, "fsverity digest failed (apt-get install fsverity)");
  const want = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => l.split(" ")[0]);
  return { dir, files, want };
}

for (const alg of ["sha256", "sha512"] as const) {
  Deno.test(`${alg}: the pool's digests are fsverity digest's, with and without the worker`, async () => {
    const { dir, files, want } = await corpus(alg);
    try {
      for (const worker of [true, false]) {
        const pool = new FileDigestPool(alg, { worker, workerAfter: 0 });
        const outs = files.map((f) => pool.digest(enc.encode(f), Deno.statSync(f).size));
        pool.finish();
        deepEqual(outs.map((d) => `${alg}:${toHex(d)}`), want, `worker: ${worker}`);
        const { here, worker: there } = pool.counts;
        equal(here + there, files.length);
        if (!worker) equal(here, files.length);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("the worker takes part when the calling thread is busy", async () => {
  const { dir, files, want } = await corpus("sha512");
  try {
    const pool = new FileDigestPool("sha512", { worker: true, workerAfter: 0 });
    const outs = files.map((f) => pool.digest(enc.encode(f), Deno.statSync(f).size));
    // The calling thread is busy elsewhere (as in a tree walk) until the worker has hashed a
    // file, within a bound: then finish() takes the rest.
    const until = Date.now() + 60_000;
    while (pool.counts.worker === 0 && Date.now() < until) { /* busy */ }
    pool.finish();
    deepEqual(outs.map((d) => `sha512:${toHex(d)}`), want);
    ok(pool.counts.worker > 0, `the worker hashed nothing in 60 s: ${JSON.stringify(pool.counts)}`);
    equal(pool.counts.here + pool.counts.worker, files.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a file gone before it is hashed fails finish() with an error naming it", async () => {
  const { dir, files } = await corpus("sha256");
  try {
    for (const worker of [true, false]) {
      const pool = new FileDigestPool("sha256", { worker, workerAfter: 0 });
      for (const f of files) pool.digest(enc.encode(f), Deno.statSync(f).size);
      const gone = join(dir, "gone");
      await Deno.writeFile(gone, new Uint8Array(100));
      pool.digest(enc.encode(gone), 100);
      await Deno.remove(gone);
      throws(() => pool.finish(), (e: Error) => {
        ok(e instanceof FileDigestError, String(e));
        ok(e.message.includes(gone) && /no such file/.test(e.message), e.message);
        return true;
      });
      pool.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
