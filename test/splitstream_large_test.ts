/**
 * A 1 GiB splitstream (512 MiB of inline data in 1 MiB runs, 512 external chunks of 1 MiB)
 * goes through the writer and back through the reader with bounded memory: the process's
 * resident size may not grow by more than {@link RSS_BUDGET} at any checkpoint, far below what
 * holding the content (or the decompressed stream section) would take.
 */
import { equal, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { SplitStreamReader, SplitStreamWriter } from "../lib/splitstream/mod.ts";

const RUN = 1 << 20;
const RUNS = 512;
const RSS_BUDGET = 192 << 20;

/** Inline run `i`: compressible but not constant, different for every run. */
function run(i: number, buf: Uint8Array): Uint8Array {
  const dv = new DataView(buf.buffer);
  for (let p = 0; p < buf.length; p += 64) {
    dv.setUint32(p, i, true);
    dv.setUint32(p + 4, p, true);
    buf.fill((i + p / 64) & 0xff, p + 8, p + 64);
  }
  return buf;
}

function id(i: number): Uint8Array {
  const b = new Uint8Array(32);
  new DataView(b.buffer).setUint32(0, i + 1, true);
  return b;
}

Deno.test("1 GiB of content streams through writer and reader in bounded memory", async () => {
  (globalThis as { gc?: () => void }).gc?.();
  const base = Deno.memoryUsage().rss;
  let peak = 0;
  const check = () => {
    peak = Math.max(peak, Deno.memoryUsage().rss - base);
  };

  const expected = createHash("sha256");
  const buf = new Uint8Array(RUN);
  const w = new SplitStreamWriter({ algorithm: "sha256" });
  for (let i = 0; i < RUNS; i++) {
    const data = run(i, buf);
    expected.update(data);
    w.writeInline(data);
    await w.writeExternal(id(i % 100), RUN);
    if (i % 32 === 0) check();
  }
  const file = await w.finish();
  check();
  equal(w.streamSize, 2 * RUN * RUNS);
  ok(file.length < 64 << 20, `compressed file of ${file.length} bytes`);

  const r = SplitStreamReader.open(file, { algorithm: "sha256" });
  equal(r.streamSize, 1 << 30);
  equal(r.objectRefs.length, 100);
  const got = createHash("sha256");
  let externals = 0;
  let pieces = 0;
  for await (const c of r.chunks()) {
    if (c.kind === "inline") got.update(c.data);
    else externals++;
    if (++pieces % 1024 === 0) check();
  }
  check();
  equal(externals, RUNS);
  equal(got.digest("hex"), expected.digest("hex"));
  ok(peak < RSS_BUDGET, `resident size grew by ${peak >> 20} MiB`);
});
