/**
 * The reader of composefs-rs 0.3.0's splitstream format (lib/splitstream/legacy.ts), kept for
 * upgrading old repositories, and the check that tells the formats apart. The 0.3.0 files here
 * are made by hand from the format's definition and compressed by the `zstd` CLI, so nothing of
 * ours writes what our reader reads.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { concatBytes } from "../lib/bytes.ts";
import { toHex } from "../lib/fsverity/digest.ts";
import {
  detectSplitStreamFormat,
  LegacySplitStreamReader,
  SplitStreamError,
  SplitStreamWriter,
  toPreReprCLayout,
} from "../lib/splitstream/mod.ts";

const enc = new TextEncoder();

function u64(n: number | bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

/** Compresses with the zstd CLI (level 3, as composefs-rs). */
function zstd(data: Uint8Array, args: string[] = []): Uint8Array {
  const dir = fs.mkdtempSync("/tmp/cfs-legacy-");
  try {
    fs.writeFileSync(path.join(dir, "in"), data);
    const out = new Deno.Command("zstd", {
      args: ["-3", "-cq", ...args, path.join(dir, "in")],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
    return out.stdout;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const ID = (n: number, size = 32) => new Uint8Array(size).fill(n);
const BODY = (n: number) => new Uint8Array(32).fill(n);

/** 0.3.0 content: digest map, then fragments (`inline` bytes or an external id). */
function legacyContent(
  map: Array<[Uint8Array, Uint8Array]>,
  fragments: Array<Uint8Array | { id: Uint8Array }>,
): Uint8Array {
  const parts = [u64(map.length)];
  for (const [body, id] of map) parts.push(body, id);
  for (const f of fragments) {
    if (f instanceof Uint8Array) parts.push(u64(f.length), f);
    else parts.push(u64(0), f.id);
  }
  return concatBytes(parts);
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return concatBytes(parts);
}

Deno.test("detect: 0.3.0, 0.9.4 (both header layouts) and anything else", async () => {
  const legacy = zstd(legacyContent([], [enc.encode("x")]));
  equal(detectSplitStreamFormat(legacy), "legacy-0.3");
  const w = new SplitStreamWriter({ algorithm: "sha256" });
  w.writeInline(enc.encode("x"));
  const current = await w.finish();
  equal(detectSplitStreamFormat(current), "current");
  equal(detectSplitStreamFormat(toPreReprCLayout(current)), "pre-repr-c");
  equal(detectSplitStreamFormat(current.subarray(0, 32)), "current");
  equal(detectSplitStreamFormat(toPreReprCLayout(current).subarray(0, 32)), "pre-repr-c");
  equal(detectSplitStreamFormat(new Uint8Array(0)), "unknown");
  equal(detectSplitStreamFormat(enc.encode("SplitStrea")), "unknown");
  equal(detectSplitStreamFormat(new Uint8Array(64)), "unknown");
});

for (const alg of ["sha256", "sha512"] as const) {
  Deno.test(`legacy (${alg}): digest map, chunks, cat and object refs`, async () => {
    const size = alg === "sha256" ? 32 : 64;
    const big = new Uint8Array(200_000).map((_, i) => (i * 7) & 0xff);
    const content = legacyContent(
      [[BODY(1), ID(0xa1, size)], [BODY(2), ID(0xa2, size)]],
      [enc.encode("head"), { id: ID(5, size) }, big, { id: ID(5, size) }, { id: ID(6, size) }],
    );
    const r = await LegacySplitStreamReader.open(zstd(content), { algorithm: alg, name: "s" });
    equal(r.digestMap.length, 2);
    equal(toHex(r.lookup(BODY(2))!), toHex(ID(0xa2, size)));
    equal(r.lookup(BODY(3)), undefined);
    const kinds: string[] = [];
    let inlineBytes = 0;
    for await (const c of r.chunks()) {
      if (c.kind === "inline") {
        inlineBytes += c.data.length;
        if (c.first) kinds.push(`inline:${c.size}`);
      } else {
        equal(c.index, undefined);
        kinds.push(`ext:${c.id[0]}`);
      }
    }
    deepEqual(kinds, ["inline:4", "ext:5", "inline:200000", "ext:5", "ext:6"]);
    equal(inlineBytes, 200_004);
    deepEqual((await r.objectRefs()).map((id) => id[0]), [0xa1, 0xa2, 5, 6]);
    const cat = await collect(r.cat((id) => enc.encode(`<${id[0]}>`)));
    equal(cat.length, 4 + 3 + 200_000 + 3 + 3);
    equal(new TextDecoder().decode(cat.subarray(0, 7)), "head<5>");
  });
}

Deno.test("legacy: several zstd frames are one content (libzstd reads them all)", async () => {
  const a = zstd(legacyContent([], [enc.encode("abc")]));
  const b = zstd(concatBytes([u64(2), enc.encode("de")]));
  const r = await LegacySplitStreamReader.open(concatBytes([a, b]), { algorithm: "sha256" });
  equal(new TextDecoder().decode(await collect(r.cat(() => new Uint8Array()))), "abcde");
});

async function fails(file: Uint8Array, pattern: RegExp): Promise<void> {
  let err: unknown;
  try {
    const r = await LegacySplitStreamReader.open(file, { algorithm: "sha256", name: "streams/x" });
    await collect(r.cat(() => new Uint8Array(1)));
  } catch (e) {
    err = e;
  }
  ok(err instanceof SplitStreamError, `not a SplitStreamError: ${err}`);
  const msg = (err as Error).message;
  ok(!msg.includes("\n") && msg.startsWith("streams/x: "), msg);
  ok(pattern.test(msg), `${msg} !~ ${pattern}`);
}

Deno.test("legacy hostile: zstd framing, digest map, fragments", async () => {
  const good = zstd(legacyContent([[BODY(1), ID(1)]], [enc.encode("abc"), { id: ID(2) }]));
  await fails(new Uint8Array(0), /empty/);
  await fails(good.subarray(0, good.length - 1), /truncated/);
  await fails(concatBytes([good, enc.encode("junk!")]), /bad frame magic/);
  await fails(zstd(new Uint8Array(0)), /empty content \(no digest map count\)/);
  await fails(zstd(u64(1n << 40n)), /digest map count 1099511627776 is more than/);
  await fails(zstd(concatBytes([u64(2), BODY(1), ID(1)])), /before digest map entry 1 of 2/);
  await fails(
    zstd(legacyContent([[BODY(2), ID(1)], [BODY(1), ID(1)]], [])),
    /digest map entry 1 at offset 72 is out of order/,
  );
  await fails(
    zstd(legacyContent([[BODY(1), ID(1)], [BODY(1), ID(2)]], [])),
    /out of order or repeated/,
  );
  await fails(
    zstd(concatBytes([u64(0), u64(10), enc.encode("abc")])),
    /inline fragment at offset 8 claims 10 bytes; the content ends after 3/,
  );
  await fails(
    zstd(concatBytes([u64(0), u64(0), ID(1).subarray(0, 20)])),
    /inside the object id of the external fragment at offset 16 \(20 of 32 bytes\)/,
  );
  await fails(zstd(concatBytes([u64(0), Uint8Array.of(1, 2)])), /inside a fragment size/);
  await fails(zstd(concatBytes([u64(0), u64(0)])), /ends after the external fragment marker/);
  await fails(zstd(concatBytes([u64(0), u64(1n << 62n)])), /fragment size at offset 8 is/);
});
