/**
 * lib/oci/layer_file.ts: a layer blob read, checked and decompressed by a worker gives what
 * the calling thread's verifiedLayer gives, bytes and refusals alike. Each case runs both ways
 * (a worker forced with `workerMinBytes: 0`, none with `Infinity`). The blob is compressed by
 * `gzip` and its digests come from `sha256sum`, not from cfs.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { BlobError, type LayerBlob } from "../lib/oci/blob.ts";
import { verifiedLayerFile } from "../lib/oci/layer_file.ts";
import { VERIFIED_DIFF_ID } from "../lib/oci/blob.ts";
import { run, sha256sum } from "./fixtures/oci.ts";

const GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
const WAYS = { worker: 0, "calling thread": Infinity } as const;

/** A 3 MiB "layer" (any bytes: only digests and gzip matter here), gzipped by gzip. */
async function makeBlob(
  dir: string,
): Promise<{ gz: string; raw: string; blob: LayerBlob; diffId: string }> {
  const raw = join(dir, "layer.tar");
  const data = new Uint8Array(3 << 20);
  for (let i = 0; i < data.length; i += 65536) {
    crypto.getRandomValues(data.subarray(i, i + 32768)); // half random, half zeros
  }
  await Deno.writeFile(raw, data);
  await run(["sh", "-c", 'gzip -c -6 "$1" > "$1.gz"', "sh", raw]);
  const gz = `${raw}.gz`;
  const blob = { mediaType: GZIP, digest: await sha256sum(gz), size: (await Deno.stat(gz)).size };
  return { gz, raw, blob, diffId: await sha256sum(raw) };
}

async function readAll(
  path: string,
  blob: LayerBlob,
  diffId: string,
  workerMinBytes: number,
  onBytes?: (n: number) => void,
): Promise<Uint8Array> {
  const file = await Deno.open(path);
  const tar = verifiedLayerFile(file, path, blob, diffId, {
    workerMinBytes,
    onCompressedBytes: onBytes,
  });
  equal(tar[VERIFIED_DIFF_ID], diffId);
  return new Uint8Array(await new Response(tar).arrayBuffer());
}

async function refusal(
  p: Promise<unknown>,
): Promise<{ problem: string; code: string; message: string }> {
  let got: { problem: string; code: string; message: string } | undefined;
  await rejects(p, (e: unknown) => {
    ok(e instanceof BlobError, String(e));
    got = { problem: e.problem, code: e.code, message: e.message };
    return true;
  });
  return got!;
}

/** Runs `fn` on a fresh blob in a temporary directory, removed afterwards. */
async function withBlob(
  fn: (dir: string, made: Awaited<ReturnType<typeof makeBlob>>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cfs-layer-file-" });
  try {
    await fn(dir, await makeBlob(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("layer file: a worker's tar is gzip -dc's, its byte count the blob's, as on the calling thread", async () => {
  await withBlob(async (_dir, { gz, raw, blob, diffId }) => {
    const expected = await Deno.readFile(raw);
    for (const [way, min] of Object.entries(WAYS)) {
      let counted = 0;
      const got = await readAll(gz, blob, diffId, min, (n) => counted += n);
      equal(got.length, expected.length, way);
      ok(got.every((b, i) => b === expected[i]), `${way}: bytes differ`);
      equal(counted, blob.size, `${way}: ${counted} of ${blob.size}`);
    }
  });
});

Deno.test("layer file: refusals are the same from a worker (blob digest, diff_id, corrupt gzip)", async () => {
  await withBlob(async (dir, { gz, blob, diffId }) => {
    const other = "sha256:" + "0".repeat(64);
    // A corrupt stream: the gzip cut in the middle, described by its own digest and size.
    const cut = join(dir, "cut.gz");
    await Deno.writeFile(cut, (await Deno.readFile(gz)).subarray(0, Math.floor(blob.size / 2)));
    const cutBlob = {
      mediaType: GZIP,
      digest: await sha256sum(cut),
      size: (await Deno.stat(cut)).size,
    };
    const cases: Array<[string, string, LayerBlob, string, string]> = [
      ["blob digest", gz, { ...blob, digest: other }, diffId, "digest-mismatch"],
      ["diff_id", gz, blob, other, "digest-mismatch"],
      ["corrupt gzip", cut, cutBlob, diffId, "decompress"],
    ];
    for (const [what, path, b, d, problem] of cases) {
      const worker = await refusal(readAll(path, b, d, WAYS.worker));
      const here = await refusal(readAll(path, b, d, WAYS["calling thread"]));
      equal(worker.problem, problem, `${what}: ${worker.message}`);
      deepEqual(worker, here, what);
    }
  });
});

Deno.test("layer file: a blob replaced after it was opened is refused by the worker, not read", async () => {
  await withBlob(async (dir, { gz, blob, diffId }) => {
    // The file the calling thread opened (and checked) stays; its name now holds another.
    const file = await Deno.open(gz);
    const other = join(dir, "other.gz");
    await Deno.copyFile(gz, other);
    await Deno.rename(other, gz);
    const tar = verifiedLayerFile(file, gz, blob, diffId, { workerMinBytes: 0 });
    const got = await refusal(new Response(tar).arrayBuffer());
    equal(got.problem, "changed", got.message);
    ok(got.message.includes(gz), got.message);
  });
});

Deno.test("layer file: a file system error in the worker arrives as its Deno.errors class", async () => {
  await withBlob(async (_dir, { gz, blob, diffId }) => {
    const file = await Deno.open(gz);
    await Deno.remove(gz); // the worker opens the name again: it is gone
    const tar = verifiedLayerFile(file, gz, blob, diffId, { workerMinBytes: 0 });
    await rejects(new Response(tar).arrayBuffer(), Deno.errors.NotFound);
  });
});

Deno.test("layer file: a reader that stops early ends the worker (no leak, no hang)", async () => {
  await withBlob(async (_dir, { gz, blob, diffId }) => {
    const file = await Deno.open(gz);
    const tar = verifiedLayerFile(file, gz, blob, diffId, { workerMinBytes: 0 });
    const reader = tar.getReader();
    const first = await reader.read();
    ok(!first.done && first.value.length > 0);
    await reader.cancel();
  });
});
