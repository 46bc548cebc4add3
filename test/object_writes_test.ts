/**
 * Objects written on other threads (`ObjectWrites`, lib/sys/async_io.ts): what lands in
 * `objects/` is named by the digest `fsverity digest` (fsverity-utils) prints for the same
 * bytes, in memory and streamed (more than the 8 MiB a stream may have waiting), an object
 * stored twice is one file, no staging name is left, and a write that fails (a full tmpfs) is
 * reported by drain() naming the unnamed staging file, leaving no object name behind.
 * About 2 s.
 *
 * @module
 */
import { ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { Repository } from "../lib/repository.ts";
import type { ObjectId } from "../lib/repository/object_id.ts";
import { run } from "./cfs.ts";

/** `fsverity digest --hash-alg=sha512` of `data`, written to a file in `dir`. */
async function toolDigest(dir: string, data: Uint8Array): Promise<string> {
  const file = join(dir, "sample");
  await Deno.writeFile(file, data);
  const out = await new Deno.Command("fsverity", {
    args: ["digest", "--hash-alg=sha512", "--compact", file],
    stdout: "piped",
  }).output();
  if (!out.success) throw new Error("fsverity digest failed");
  return new TextDecoder().decode(out.stdout).trim();
}

function pattern(seed: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 131 + seed * 7 + (i >> 12)) & 0xff;
  return b;
}

function stagingNames(repo: string): string[] {
  return [...Deno.readDirSync(join(repo, "objects"))].map((e) => e.name).filter((n) =>
    n.startsWith(".tmp")
  );
}

Deno.test("objects written on other threads are named by fsverity digest's digest, streamed ones too; a repeat is one file; nothing staged is left", async () => {
  const work = await Deno.makeTempDir({ prefix: "cfs-objwrites-" });
  try {
    const path = join(work, "repo");
    const repo = Repository.init(path, { insecure: true });
    const writes = repo.objects.parallelWrites(3);
    const small = Array.from({ length: 20 }, (_, i) => pattern(i, 100 + i * 5000));
    const ids: ObjectId[] = [];
    for (const data of small) ids.push(await writes.store(data));
    ids.push(await writes.store(small[0])); // the same bytes again
    const big = pattern(99, (20 << 20) + 123);
    const bigId = await writes.storeStream(
      (async function* () {
        for (let o = 0; o < big.length; o += 300_000) yield big.subarray(o, o + 300_000);
      })(),
      big.length,
    );
    await writes.drain();
    for (const [i, data] of small.entries()) {
      const want = await toolDigest(work, data);
      strictEqual(ids[i].hex, want, `object ${i}`);
      const stored = await Deno.readFile(join(path, "objects", ids[i].objectPath));
      strictEqual(stored.length, data.length);
      ok(stored.every((b, j) => b === data[j]), `object ${i}'s content`);
    }
    strictEqual(ids[20].hex, ids[0].hex);
    strictEqual(bigId.hex, await toolDigest(work, big));
    strictEqual((await Deno.stat(join(path, "objects", bigId.objectPath))).size, big.length);
    strictEqual(stagingNames(path).length, 0);
    repo.close();
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("a write that fails (full tmpfs) is reported by drain() naming the unnamed staging file; no object name is left", async () => {
  const mnt = await Deno.makeTempDir({ prefix: "cfs-objwrites-full-" });
  await run("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt]);
  try {
    const path = join(mnt, "repo");
    const repo = Repository.init(path, { insecure: true });
    const writes = repo.objects.parallelWrites(2);
    const ids: ObjectId[] = [];
    await rejects(
      async () => {
        for (let i = 0; i < 8; i++) ids.push(await writes.store(pattern(i, 900_000)));
        await writes.drain();
      },
      (e: Error) => {
        ok(/ENOSPC/.test(e.message), e.message);
        ok(e.message.includes(join(path, "objects", ".tmp-object-<O_TMPFILE>")), e.message);
        return true;
      },
    );
    await writes.settle();
    // Every object that has a name is whole; the rest have none.
    for (const id of ids) {
      const st = await Deno.stat(join(path, "objects", id.objectPath)).catch(() => undefined);
      if (st) strictEqual(st.size, 900_000, id.hex);
    }
    strictEqual(stagingNames(path).length, 0);
    repo.close();
  } finally {
    await run("umount", [mnt]);
    await Deno.remove(mnt, { recursive: true });
  }
});
