/**
 * The 0.3.0 splitstream module (lib/splitstream.ts, still used until callers move to
 * lib/splitstream/): writer -> reader -> cat round trips, the exact 0.3.0 layout
 * of the decompressed content, repository naming, and hostile input.
 */
import { concatBytes } from "../lib/bytes.ts";
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { zstdCompressSync, zstdDecompressSync } from "node:zlib";
import {
  buildSplitStream,
  checkZstdFrames,
  parseSplitStream,
  SplitStreamError,
  SplitStreamReader,
  SplitStreamWriter,
  streamRefSymlinkTarget,
  streamSymlinkTarget,
} from "../lib/splitstream.ts";
import { Repository } from "../lib/repository.ts";
import { toHex } from "../lib/fsverity/digest.ts";

function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

function pseudoRandom(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return concatBytes(parts);
}

function u64(n: number | bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

/** A fake object store keyed by hex ID: id = sha256(content) is enough for the format. */
class MemoryObjects {
  map = new Map<string, Uint8Array>();
  put(data: Uint8Array): Uint8Array {
    const id = sha256(data);
    this.map.set(toHex(id), data);
    return id;
  }
  get = (id: Uint8Array): Uint8Array => {
    const d = this.map.get(toHex(id));
    if (!d) throw new Error(`no object ${toHex(id)}`);
    return d;
  };
}

type Part = { inline: Uint8Array } | { external: Uint8Array; padding?: Uint8Array };

/** Writes `parts` and checks that cat gives back their concatenation and the sha256. */
async function roundTrip(parts: Part[]): Promise<{ bytes: Uint8Array; original: Uint8Array }> {
  const store = new MemoryObjects();
  const w = new SplitStreamWriter();
  const original: Uint8Array[] = [];
  for (const p of parts) {
    if ("inline" in p) {
      w.writeInline(p.inline);
      original.push(p.inline);
    } else {
      const id = store.put(p.external);
      w.writeExternal(id, p.padding, p.external);
      original.push(p.external, p.padding ?? new Uint8Array(0));
    }
  }
  const bytes = w.finish();
  const want = concatBytes(original);
  deepEqual(w.contentSha256, sha256(want));
  equal(w.contentLength, want.length);
  const r = parseSplitStream(bytes, { name: "t" });
  const got = await collect(r.cat(store.get));
  equal(got.length, want.length);
  ok(Buffer.compare(got, want) === 0, "cat reproduces the input");
  return { bytes, original: want };
}

Deno.test("empty stream: 8 zero bytes of content, cat is empty", async () => {
  const { bytes, original } = await roundTrip([]);
  equal(original.length, 0);
  deepEqual(new Uint8Array(zstdDecompressSync(bytes)), new Uint8Array(8));
  deepEqual(parseSplitStream(bytes).objectRefs(), []);
});

Deno.test("inline only: one fragment for the whole inline run", async () => {
  const a = new TextEncoder().encode("hello ");
  const b = new TextEncoder().encode("world");
  const { bytes } = await roundTrip([{ inline: a }, { inline: b }]);
  deepEqual(
    new Uint8Array(zstdDecompressSync(bytes)),
    concatBytes([u64(0), u64(11), a, b]),
  );
  deepEqual(parseSplitStream(bytes).stats(), { inlineBytes: 11, externals: 0, fragments: 1 });
});

Deno.test("external only, and padding becomes the next inline run", async () => {
  const body = pseudoRandom(1000, 1);
  const pad = new Uint8Array(24);
  const { bytes } = await roundTrip([{ external: body }, { external: body, padding: pad }]);
  const id = sha256(body);
  deepEqual(
    new Uint8Array(zstdDecompressSync(bytes)),
    concatBytes([u64(0), u64(0), id, u64(0), id, u64(24), pad]),
  );
  deepEqual(parseSplitStream(bytes).objectRefs(), [id, id]);
});

Deno.test("mixed tar-like layout: header inline, body external, padding + next header inline", async () => {
  const parts: Part[] = [];
  for (let i = 0; i < 50; i++) {
    parts.push({ inline: pseudoRandom(512, 100 + i) });
    const size = [65, 511, 512, 513, 4096, 70000][i % 6];
    const pad = new Uint8Array((512 - (size % 512)) % 512);
    parts.push({ external: pseudoRandom(size, 200 + i), padding: pad });
    parts.push({ inline: pseudoRandom(i % 64, 300 + i) });
  }
  parts.push({ inline: new Uint8Array(1024) });
  const { bytes } = await roundTrip(parts);
  const st = parseSplitStream(bytes).stats();
  equal(st.externals, 50);
  equal(st.fragments, 101);
});

Deno.test("a 50 MB inline run and many small fragments", async () => {
  const big = pseudoRandom(50 << 20, 7);
  const t0 = performance.now();
  const { bytes } = await roundTrip([{ inline: big }]);
  const ms = performance.now() - t0;
  console.log(
    `50 MiB inline run: ${bytes.length} compressed bytes, round trip ${ms.toFixed(0)} ms`,
  );
  const small: Part[] = [];
  for (let i = 0; i < 20000; i++) {
    small.push({ inline: pseudoRandom(1 + (i % 37), i) });
    small.push({ external: pseudoRandom(65 + (i % 5), i % 100) });
  }
  const t1 = performance.now();
  const r = await roundTrip(small);
  console.log(`40000 fragments: round trip ${(performance.now() - t1).toFixed(0)} ms`);
  equal(parseSplitStream(r.bytes).stats().fragments, 40000);
});

Deno.test("sha256 of the reconstructed content equals sha256sum's", async () => {
  const store = new MemoryObjects();
  const body = pseudoRandom(300000, 9);
  const { bytes, sha256: digest } = buildSplitStream([
    { inline: pseudoRandom(512, 1) },
    { external: store.put(body), content: body, padding: new Uint8Array(512 - (300000 % 512)) },
    { inline: new Uint8Array(1024) },
  ]);
  const out = await collect(parseSplitStream(bytes).cat(store.get));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cfs-ss-"));
  try {
    fs.writeFileSync(path.join(dir, "x"), out);
    const r = spawnSync("sha256sum", [path.join(dir, "x")], { encoding: "utf8" });
    equal(r.status, 0);
    equal(r.stdout.split(" ")[0], toHex(digest));
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

Deno.test("hashExternal streams an external body's hash in pieces", () => {
  const body = pseudoRandom(10000, 3);
  const w = new SplitStreamWriter({ expectedSha256: sha256(body) });
  w.hashExternal(body.subarray(0, 4000));
  w.hashExternal(body.subarray(4000));
  w.writeExternal(sha256(body));
  w.finish();
  const bad = new SplitStreamWriter({ expectedSha256: new Uint8Array(32) });
  bad.writeInline(body);
  throws(() => bad.finish(), SplitStreamError);
});

Deno.test("digest map: sorted, de-duplicated, looked up; sha512 object IDs", () => {
  const e = (b: number, v: number) => ({
    body: new Uint8Array(32).fill(b),
    verity: new Uint8Array(64).fill(v),
  });
  const { bytes } = buildSplitStream([{ inline: new Uint8Array([1, 2, 3]) }], {
    objectIdLength: 64,
    digestMap: [e(9, 1), e(3, 2), e(9, 1)],
  });
  const raw = new Uint8Array(zstdDecompressSync(bytes));
  deepEqual(raw.subarray(0, 8), u64(2));
  equal(raw[8], 3);
  equal(raw[8 + 96], 9);
  const r = parseSplitStream(bytes, { objectIdLength: 64 });
  deepEqual(r.digestMap(), [e(3, 2), e(9, 1)]);
  deepEqual(r.lookup(new Uint8Array(32).fill(9)), new Uint8Array(64).fill(1));
  equal(r.lookup(new Uint8Array(32).fill(4)), undefined);
  deepEqual(r.objectRefs(), [new Uint8Array(64).fill(2), new Uint8Array(64).fill(1)]);
  throws(
    () => buildSplitStream([], { digestMap: [e(1, 1)] }),
    SplitStreamError,
    "a 64-byte ID in a 32-byte stream",
  );
  throws(
    () => buildSplitStream([], { objectIdLength: 64, digestMap: [e(1, 1), e(1, 2)] }),
    SplitStreamError,
  );
});

Deno.test("the writer refuses object IDs of the wrong size and use after finish", () => {
  const w = new SplitStreamWriter();
  throws(() => w.writeExternal(new Uint8Array(31)), SplitStreamError);
  w.finish();
  throws(() => w.writeInline(new Uint8Array(1)), SplitStreamError);
});

Deno.test("repository: objects via Repository, streams/ symlinks as cfsctl 0.3.0 names them", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cfs-ss-repo-"));
  try {
    const repo = Repository.init(dir, { insecure: true, algorithm: "fsverity-sha256-12" });
    const body = pseudoRandom(5000, 11);
    const w = new SplitStreamWriter();
    w.writeInline(pseudoRandom(512, 12));
    w.writeExternal(repo.storeBytes(body), new Uint8Array(512 - (5000 % 512)), body);
    const stream = w.finish();
    const streamId = repo.storeBytes(stream);
    const hex = toHex(w.contentSha256);
    fs.symlinkSync(streamSymlinkTarget(streamId), path.join(dir, "streams", hex));
    fs.mkdirSync(path.join(dir, "streams/refs/oci"), { recursive: true });
    fs.symlinkSync(
      streamRefSymlinkTarget("oci/layer", w.contentSha256),
      path.join(dir, "streams/refs/oci/layer"),
    );
    equal(
      fs.readlinkSync(path.join(dir, "streams", hex)),
      `../objects/${toHex(streamId).slice(0, 2)}/${toHex(streamId).slice(2)}`,
    );
    equal(fs.readlinkSync(path.join(dir, "streams/refs/oci/layer")), `../../${hex}`);
    const r = parseSplitStream(fs.readFileSync(path.join(dir, "streams/refs/oci/layer")));
    const out = await collect(r.cat((id) => fs.readFileSync(repo.objectPath(id))));
    deepEqual(sha256(out), w.contentSha256);
    repo.close();
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
  throws(() => streamRefSymlinkTarget("../x", new Uint8Array(32)), SplitStreamError);
});

// --- hostile input ----------------------------------------------------------------------------

/** Parses and walks everything; must throw SplitStreamError (never RangeError or others). */
async function expectHostile(bytes: Uint8Array, pattern: RegExp) {
  let err: unknown;
  try {
    const r = parseSplitStream(bytes, { name: "evil" });
    r.objectRefs();
    await collect(r.cat(() => new Uint8Array(0)));
  } catch (e) {
    err = e;
  }
  ok(err instanceof SplitStreamError, `expected SplitStreamError, got ${err}`);
  ok((err as Error).message.startsWith("evil: "), (err as Error).message);
  ok(pattern.test((err as Error).message), `${(err as Error).message} !~ ${pattern}`);
}

const z = (b: Uint8Array) => new Uint8Array(zstdCompressSync(b));

Deno.test("hostile: truncated, empty and garbage zstd", async () => {
  const good = buildSplitStream([{ inline: pseudoRandom(100000, 5) }]).bytes;
  for (const cut of [1, 3, 10, good.length >> 1, good.length - 1]) {
    await expectHostile(good.subarray(0, cut), /zstd data at byte \d+/);
  }
  await expectHostile(new Uint8Array(0), /empty/);
  await expectHostile(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), /bad frame magic/);
  // Valid framing, corrupt compressed block.
  const corrupt = good.slice();
  for (let i = 12; i < Math.min(corrupt.length - 4, 200); i++) corrupt[i] ^= 0x5a;
  let err: unknown;
  try {
    parseSplitStream(corrupt, { name: "evil" }).stats();
  } catch (e) {
    err = e;
  }
  ok(err instanceof SplitStreamError, `corrupt block: ${err}`);
});

Deno.test("hostile: digest map count absurd or past the end, unsorted map", async () => {
  await expectHostile(z(u64(2n ** 64n - 1n)), /digest map count at offset 0 is absurd/);
  await expectHostile(z(u64(1n << 40n)), /digest map count at offset 0 is \d+ \(more than/);
  await expectHostile(
    z(concatBytes([u64(3), new Uint8Array(64)])),
    /inside digest map entry 1 of 3/,
  );
  await expectHostile(z(new Uint8Array(5)), /inside digest map count/);
  const a = new Uint8Array(64).fill(2);
  const b = new Uint8Array(64).fill(1);
  await expectHostile(z(concatBytes([u64(2), a, b])), /entry 1 at offset 72 is out of order/);
});

Deno.test("hostile: fragment size past the end, absurd, short external ID, partial size", async () => {
  await expectHostile(
    z(concatBytes([u64(0), u64(1000), new Uint8Array(10)])),
    /inline fragment at offset 8 claims 1000 bytes from offset 16; the content ends after 10/,
  );
  await expectHostile(
    z(concatBytes([u64(0), u64(2n ** 60n)])),
    /fragment size at offset 8 is absurd/,
  );
  await expectHostile(
    z(concatBytes([u64(0), u64(0), new Uint8Array(20)])),
    /external reference at offset 8/,
  );
  await expectHostile(
    z(concatBytes([u64(0), new Uint8Array(3)])),
    /ends at offset 11 inside fragment size \(8 bytes needed at offset 8\)/,
  );
});

Deno.test("checkZstdFrames accepts what the writer and zstdCompressSync produce", () => {
  equal(checkZstdFrames(buildSplitStream([]).bytes), 1);
  equal(checkZstdFrames(concatBytes([z(new Uint8Array(10)), z(new Uint8Array(100000))])), 2);
  ok(
    SplitStreamReader.parse(
      concatBytes([z(u64(0)), z(concatBytes([u64(1), new Uint8Array([7])]))]),
    ),
  );
});
