/**
 * Splitstream-aware mutation, for both formats.
 *
 * 0.9.4 files: the header and info fields (ranges get the other sections' offsets as
 * alternatives, so sections overlap, swap or run past the end), the zstd frame and block
 * headers of the stream section, and rebuilt files whose sections are valid zstd but whose
 * content is not: a chunk header set to a bad index or length, havoc on the decompressed
 * chunks, named refs with bad indexes, no NUL, repeated or non-UTF-8 names, refs arrays cut
 * short, the stream split into two frames or led by a skippable frame. Rebuilt files are laid
 * out as composefs-rs lays them out (and in the old header layout when the seed was).
 *
 * 0.3.0 files: the decompressed content's digest-map count and fragment sizes, or havoc on
 * it, compressed again.
 *
 * @module
 */
import * as zlib from "node:zlib";
import {
  decodeHeader,
  decodeInfo,
  encodeHeader,
  encodeInfo,
  HEADER_SIZE,
  INFO_SIZE,
  type SplitStreamHeader,
  type SplitStreamInfo,
  toPreReprCLayout,
} from "../../lib/splitstream/format.ts";
import { detectSplitStreamFormat } from "../../lib/splitstream/format.ts";
import { digestSize } from "../../lib/fsverity/digest.ts";
import { concatBytes } from "../../lib/bytes.ts";
import { havoc, type Mutated, writeUint } from "../mutate.ts";
import type { Rng } from "../rng.ts";
import { type FieldPoint, mutateField } from "./fields.ts";

/** A 0.9.4 file taken apart. */
interface Parts {
  header: SplitStreamHeader;
  info: SplitStreamInfo;
  streamRefs: Uint8Array;
  objectRefs: Uint8Array;
  named: Uint8Array;
  content: Uint8Array;
  points: FieldPoint[];
}

/** What {@link splitstreamAnalysis} found in a seed. */
export type SplitstreamAnalysis =
  | { kind: "current"; parts: Parts }
  | { kind: "legacy"; content: Uint8Array }
  | { kind: "other" };

function decompress(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(zlib.zstdDecompressSync(bytes));
}

function compress(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(zlib.zstdCompressSync(bytes));
}

/** Offsets of the zstd frame and block headers in a section (walked as the reader does). */
function zstdPoints(section: Uint8Array, base: number, label: string): FieldPoint[] {
  const out: FieldPoint[] = [];
  let p = 0;
  while (p + 5 <= section.length) {
    if (section[p] !== 0x28 || section[p + 1] !== 0xb5) break;
    out.push({ at: base + p + 4, width: 1, label: `${label} frame header descriptor` });
    const fhd = section[p + 4];
    const single = (fhd >> 5) & 1;
    const rest = (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3] + [single ? 1 : 0, 2, 4, 8][fhd >> 6];
    if (!single) out.push({ at: base + p + 5, width: 1, label: `${label} window descriptor` });
    p += 5 + rest;
    for (let i = 0; p + 3 <= section.length && i < 64; i++) {
      out.push({ at: base + p, width: 2, label: `${label} block header` });
      out.push({ at: base + p + 2, width: 1, label: `${label} block header high byte` });
      const bh = section[p] | (section[p + 1] << 8) | (section[p + 2] << 16);
      p += 3 + (((bh >> 1) & 3) === 1 ? 1 : bh >>> 3);
      if (bh & 1) break;
    }
    if ((fhd >> 2) & 1) p += 4;
  }
  return out;
}

/** Takes a seed apart once; the mutations below start from this. */
export function splitstreamAnalysis(seed: Uint8Array): SplitstreamAnalysis {
  const format = detectSplitStreamFormat(seed.subarray(0, 64));
  try {
    if (format === "legacy-0.3") return { kind: "legacy", content: decompress(seed) };
    if (format !== "current" && format !== "pre-repr-c") return { kind: "other" };
    const header = decodeHeader(seed.subarray(0, HEADER_SIZE), "seed");
    const info = decodeInfo(seed.subarray(header.info.start, header.info.end), "seed");
    const r = (x: { start: number; end: number }) => seed.subarray(x.start, x.end);
    const o = header.layout === "current"
      ? { info: 16, flags: 12, version: 11, algorithm: 14, lg: 15 }
      : { info: 0, flags: 16, version: 29, algorithm: 30, lg: 31 };
    const offsets = [info.streamRefs, info.objectRefs, info.stream, info.namedRefs, header.info]
      .flatMap((x) => [BigInt(x.start), BigInt(x.end)]).concat([BigInt(seed.length)]);
    const points: FieldPoint[] = [
      { at: o.info, width: 8, label: "info range start", alternatives: offsets },
      { at: o.info + 8, width: 8, label: "info range end", alternatives: offsets },
      { at: o.flags, width: 2, label: "flags" },
      { at: o.version, width: 1, label: "version" },
      { at: o.algorithm, width: 1, label: "algorithm", alternatives: [1n, 2n, 0n, 3n] },
      { at: o.lg, width: 1, label: "lg_blocksize" },
    ];
    const names = ["stream refs", "object refs", "stream", "named refs"];
    names.forEach((n, i) => {
      const at = header.info.start + i * 16;
      points.push({ at, width: 8, label: `${n} start`, alternatives: offsets });
      points.push({ at: at + 8, width: 8, label: `${n} end`, alternatives: offsets });
    });
    points.push({ at: header.info.start + 64, width: 8, label: "content type" });
    points.push({ at: header.info.start + 72, width: 8, label: "stream size" });
    points.push(...zstdPoints(r(info.stream), info.stream.start, "stream"));
    points.push(...zstdPoints(r(info.namedRefs), info.namedRefs.start, "named refs"));
    return {
      kind: "current",
      parts: {
        header,
        info,
        streamRefs: r(info.streamRefs).slice(),
        objectRefs: r(info.objectRefs).slice(),
        named: decompress(r(info.namedRefs)),
        content: decompress(r(info.stream)),
        points,
      },
    };
  } catch {
    return { kind: "other" };
  }
}

/** A 0.9.4 file from its sections, laid out as composefs-rs writes it. */
function build(
  parts: Parts,
  sections: {
    streamRefs?: Uint8Array;
    objectRefs?: Uint8Array;
    named?: Uint8Array;
    stream?: Uint8Array;
    streamSize?: number;
  },
): Uint8Array {
  const streamRefs = sections.streamRefs ?? parts.streamRefs;
  const objectRefs = sections.objectRefs ?? parts.objectRefs;
  const named = sections.named ?? compress(parts.named);
  const stream = sections.stream ?? compress(parts.content);
  let p = HEADER_SIZE + INFO_SIZE;
  const range = (n: number) => ({ start: p, end: p += n });
  const info: SplitStreamInfo = {
    streamRefs: range(streamRefs.length),
    objectRefs: range(objectRefs.length),
    namedRefs: range(named.length),
    stream: range(stream.length),
    contentType: parts.info.contentType,
    streamSize: sections.streamSize ?? parts.info.streamSize,
  };
  const file = concatBytes([
    encodeHeader(parts.header.algorithm, { start: HEADER_SIZE, end: HEADER_SIZE + INFO_SIZE }),
    encodeInfo(info),
    streamRefs,
    objectRefs,
    named,
    stream,
  ]);
  return parts.header.layout === "current" ? file : toPreReprCLayout(file);
}

/** Offsets of the chunk headers in 0.9.4 content, as far as they can be walked. */
function chunkHeaders(content: Uint8Array): number[] {
  const dv = new DataView(content.buffer, content.byteOffset, content.byteLength);
  const out: number[] = [];
  let p = 0;
  while (p + 8 <= content.length && out.length < 10000) {
    out.push(p);
    const n = dv.getBigInt64(p, true);
    p += 8;
    if (n < 0n) p += Number(-n);
  }
  return out;
}

const enc = new TextEncoder();

function mutateNamedRefs(rng: Rng, text: Uint8Array): { bytes: Uint8Array; how: string } {
  const s = new TextDecoder("latin1").decode(text);
  const records = s.split("\0");
  const last = records.pop() ?? "";
  const i = records.length > 0 ? rng.int(records.length) : -1;
  const latin1 = (x: string) => Uint8Array.from(x, (c) => c.charCodeAt(0));
  switch (rng.int(7)) {
    case 0: {
      if (i < 0) break;
      const idx = rng.pick(["99999", "-1", "", "+0", "18446744073709551616", "1e3", " 0", "0x1"]);
      records[i] = idx + records[i].slice(records[i].indexOf(":"));
      return {
        bytes: latin1(records.join("\0") + "\0" + last),
        how: `named ref ${i} index ${idx}`,
      };
    }
    case 1:
      return { bytes: latin1(records.join("\0") + last), how: "named refs without the last NUL" };
    case 2:
      if (i < 0) break;
      records.push(records[i]);
      return { bytes: latin1(records.join("\0") + "\0"), how: `named ref ${i} repeated` };
    case 3:
      return { bytes: latin1(s + "0\0"), how: "named ref without colon" };
    case 4:
      return {
        bytes: concatBytes([
          text,
          enc.encode("0:"),
          Uint8Array.of(0xff, 0xfe, 0xc0),
          Uint8Array.of(0),
        ]),
        how: "named ref with invalid UTF-8",
      };
    case 5:
      return { bytes: new Uint8Array(0), how: "named refs empty" };
  }
  return { bytes: latin1(s + "0:" + "x".repeat(rng.small(70000)) + "\0"), how: "long named ref" };
}

function i64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, BigInt.asIntN(64, v), true);
  return b;
}

/** One splitstream-aware mutation of a seed; undefined when the seed is not a splitstream. */
export function mutateSplitstream(
  rng: Rng,
  seed: Uint8Array,
  a: SplitstreamAnalysis,
  others: readonly Uint8Array[],
): Mutated | undefined {
  if (a.kind === "other") return undefined;
  if (a.kind === "legacy") {
    const content = a.content.slice();
    const dv = new DataView(content.buffer);
    if (content.length < 8) return undefined;
    // Fragment sizes after the digest map (entries of 32 + 32 or 32 + 64 bytes).
    const count = Number(dv.getBigUint64(0, true));
    const idSize = rng.pick([32, 64]);
    const heads: number[] = [];
    let p = 8 + count * (32 + idSize);
    while (p + 8 <= content.length && heads.length < 10000) {
      heads.push(p);
      const n = Number(dv.getBigUint64(p, true));
      p += 8 + (n === 0 ? idSize : n);
    }
    let how: string;
    let out: Uint8Array = content;
    if (rng.chance(0.3)) {
      const v = rng.pick([0n, 1n, BigInt(count + 1), 0xffffffffn, 1n << 24n, (1n << 24n) + 1n]);
      writeUint(out, 0, 8, v);
      how = `legacy digest map count ${count} -> ${v}`;
    } else if (heads.length > 0 && rng.chance(0.6)) {
      const at = rng.pick(heads);
      const left = BigInt(content.length - at - 8);
      const v = rng.pick([0n, left, left + 1n, left - 1n, 1n << 53n, 0xffffffffffffffffn, 7n]);
      writeUint(out, at, 8, v);
      how = `legacy fragment size at ${at} -> ${v}`;
    } else {
      const m = havoc(rng, content, []);
      out = m.bytes;
      how = `legacy content: ${m.how}`;
    }
    return { bytes: compress(out), how: `${how} (recompressed)` };
  }
  const parts = a.parts;
  const choice = rng.weighted([5, 4, 2, 2, 1, 1]);
  if (choice === 0) return mutateField(rng, seed, parts.points);
  if (choice === 1) {
    const content = parts.content.slice();
    const heads = chunkHeaders(content);
    const objects = parts.objectRefs.length / digestSize(parts.header.algorithm);
    let how: string;
    let out: Uint8Array = content;
    if (heads.length > 0 && rng.chance(0.7)) {
      const at = rng.pick(heads);
      const left = BigInt(content.length - at - 8);
      const v = rng.pick([
        BigInt(objects),
        BigInt(objects) - 1n,
        -left,
        -left - 1n,
        -left + 1n,
        0n,
        -1n,
        -(1n << 53n),
        -(1n << 63n),
        1n << 62n,
      ]);
      out.set(i64(v), at);
      how = `chunk header at content offset ${at} -> ${v}`;
    } else {
      const m = havoc(rng, content, []);
      out = m.bytes;
      how = `stream content: ${m.how}`;
    }
    const streamSize = rng.chance(0.5) ? undefined : out.length;
    return { bytes: build(parts, { stream: compress(out), streamSize }), how: `${how} (rebuilt)` };
  }
  if (choice === 2) {
    const m = mutateNamedRefs(rng, parts.named);
    return { bytes: build(parts, { named: compress(m.bytes) }), how: `${m.how} (rebuilt)` };
  }
  if (choice === 3) {
    const which = rng.chance(0.5) ? "objectRefs" : "streamRefs";
    const ids = parts[which];
    const size = digestSize(parts.header.algorithm);
    const v = rng.pick([
      ids.subarray(0, Math.max(0, ids.length - rng.range(1, size))),
      new Uint8Array(0),
      concatBytes([ids, ids]),
      concatBytes([ids, new Uint8Array(size)]),
    ]);
    return { bytes: build(parts, { [which]: v }), how: `${which} of ${v.length} bytes (rebuilt)` };
  }
  if (choice === 4) {
    const c = parts.content;
    const cut = rng.int(c.length + 1);
    const frames = rng.chance(0.5)
      ? concatBytes([compress(c.subarray(0, cut)), compress(c.subarray(cut))])
      : concatBytes([Uint8Array.of(0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9), compress(c)]);
    return {
      bytes: build(parts, { stream: frames }),
      how: `stream section in two frames at ${cut}`,
    };
  }
  // Sections from another stream spliced in: a stream from one file with the refs of another.
  const other = others.length > 0 ? rng.pick(others) : seed;
  const o = splitstreamAnalysis(other);
  if (o.kind !== "current") return mutateField(rng, seed, parts.points);
  return {
    bytes: build(parts, { stream: compress(o.parts.content) }),
    how: "stream content of another input with this one's refs (rebuilt)",
  };
}
