/**
 * Tar-aware mutation: headers of a valid archive rewritten field by field with the checksum
 * made right again (so the reader gets past it), pax records changed and their header resized,
 * synthetic pax, global and GNU long-name headers inserted in front of an entry, and entries
 * dropped or repeated. The values are those readers disagree on or that reach the importer's
 * checks: `..` and absolute names, whiteouts, hardlinks to directories, sizes on entries that
 * carry no data, base-256 and blank numbers, sparse and unknown type flags.
 *
 * @module
 */
import { concatBytes } from "../../lib/bytes.ts";
import type { Mutated } from "../mutate.ts";
import type { Rng } from "../rng.ts";

const BLOCK = 512;

/** One entry's blocks in a seed: where its header blocks start, its own header, its data. */
interface TarBlock {
  /** Offset of the header block. */
  at: number;
  /** Type flag character code. */
  flag: number;
  /** Data bytes after the header (size field). */
  size: number;
}

/** The headers of a seed, in order (extended headers are entries of their own here). */
export function tarAnalysis(seed: Uint8Array): TarBlock[] {
  const out: TarBlock[] = [];
  let p = 0;
  while (p + BLOCK <= seed.length && out.length < 20000) {
    const block = seed.subarray(p, p + BLOCK);
    if (block.every((b) => b === 0)) break;
    const size = parseOctal(block.subarray(124, 136));
    out.push({ at: p, flag: block[156], size });
    p += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
  return out;
}

function parseOctal(field: Uint8Array): number {
  if (field[0] & 0x80) {
    let x = 0;
    for (let i = 1; i < field.length; i++) x = x * 256 + field[i];
    return x;
  }
  const t = new TextDecoder("latin1").decode(field).replace(/[\0 ]/g, "");
  return /^[0-7]+$/.test(t) ? parseInt(t, 8) : 0;
}

const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);

/** Writes the checksum of a header block (unsigned sum, the field counted as spaces). */
export function fixChecksum(block: Uint8Array): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.set(latin1(sum.toString(8).padStart(6, "0") + "\0 "), 148);
}

function setField(block: Uint8Array, at: number, len: number, value: Uint8Array): void {
  block.fill(0, at, at + len);
  block.set(value.subarray(0, len), at);
}

const NUMERIC: ReadonlyArray<[string, number, number]> = [
  ["mode", 100, 8],
  ["uid", 108, 8],
  ["gid", 116, 8],
  ["size", 124, 12],
  ["mtime", 136, 12],
  ["devmajor", 329, 8],
  ["devminor", 337, 8],
];

const TEXT: ReadonlyArray<[string, number, number]> = [
  ["name", 0, 100],
  ["linkname", 157, 100],
  ["prefix", 345, 155],
  ["uname", 265, 32],
  ["gname", 297, 32],
];

const NAMES = [
  "..",
  "../escape",
  "a/../../b",
  "/etc/passwd",
  "./",
  "",
  "a//./b/",
  ".wh..wh..opq",
  ".wh.etc",
  "usr",
  "etc/.wh.passwd",
  "x".repeat(100),
  "dir/\0hidden",
  "\xff\xfe",
  "a\nb",
];

function numericValue(rng: Rng, len: number, actual: number): Uint8Array {
  const octal = (n: number | bigint) => latin1(n.toString(8).padStart(len - 1, "0") + "\0");
  switch (rng.int(8)) {
    case 0:
      return octal(rng.pick([0, 1, 0o7777, 0o4777, actual + 1, Math.max(0, actual - 1), 512]));
    case 1:
      return latin1("7".repeat(len));
    case 2: { // base-256, positive or negative
      const out = new Uint8Array(len);
      out[0] = rng.chance(0.5) ? 0x80 : 0xff;
      for (let i = 1; i < len; i++) {
        out[i] = rng.chance(0.7) ? (out[0] === 0xff ? 0xff : 0) : rng.int(256);
      }
      return out;
    }
    case 3:
      return latin1(" ".repeat(len));
    case 4:
      return new Uint8Array(len);
    case 5:
      return latin1(rng.pick(["8", "-1", "0x10", "1e9", "12 34", "+7"]));
    case 6:
      return octal(BigInt(rng.pick([2 ** 32, 2 ** 32 - 1, 2 ** 53, 2 ** 31])));
    default:
      return octal(rng.int(1 << 20));
  }
}

function header(fields: { name: string; flag: string; size: number; link?: string }): Uint8Array {
  const b = new Uint8Array(BLOCK);
  setField(b, 0, 100, latin1(fields.name));
  setField(b, 100, 8, latin1("0000644\0"));
  setField(b, 108, 8, latin1("0000000\0"));
  setField(b, 116, 8, latin1("0000000\0"));
  setField(b, 124, 12, latin1(fields.size.toString(8).padStart(11, "0") + "\0"));
  setField(b, 136, 12, latin1("14545431400\0"));
  b[156] = fields.flag.charCodeAt(0);
  setField(b, 157, 100, latin1(fields.link ?? ""));
  b.set(latin1("ustar\x0000"), 257);
  fixChecksum(b);
  return b;
}

function padded(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / BLOCK) * BLOCK);
  out.set(data);
  return out;
}

/** A pax record `LEN KEY=VALUE\n` with LEN counting itself. */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len++;
  return `${len}${body}`;
}

const PAX_KEYS = [
  "path",
  "linkpath",
  "size",
  "uid",
  "gid",
  "mtime",
  "uname",
  "gname",
  "SCHILY.xattr.user.x",
  "SCHILY.xattr.trusted.overlay.opaque",
  "SCHILY.xattr.security.capability",
  "LIBARCHIVE.xattr.user.%41",
  "GNU.sparse.size",
  "SCHILY.devmajor",
  "SCHILY.devminor",
  "comment",
];

const PAX_VALUES = [
  "",
  "0",
  "-1",
  "18446744073709551616",
  "9007199254740993",
  "1.5",
  "-1.000000001",
  "1700000000.123456789123",
  "..",
  "../../x",
  "/abs",
  "YWJj",
  "!!!",
  "x".repeat(300),
  "\xff",
  "4294967296",
];

function randomPax(rng: Rng): string {
  let text = "";
  for (let i = rng.small(4); i > 0; i--) {
    text += paxRecord(rng.pick(PAX_KEYS), rng.pick(PAX_VALUES));
  }
  if (rng.chance(0.2)) {
    // A record whose length lies.
    const r = paxRecord(rng.pick(PAX_KEYS), rng.pick(PAX_VALUES));
    const n = parseInt(r) + rng.pick([-2, -1, 1, 2, 1000]);
    text += `${n}${r.slice(String(parseInt(r)).length)}`;
  }
  return text;
}

/** One tar-aware mutation of a seed; undefined when the seed has no header. */
export function mutateTar(
  rng: Rng,
  seed: Uint8Array,
  blocks: readonly TarBlock[],
): Mutated | undefined {
  if (blocks.length === 0) return undefined;
  const i = rng.int(blocks.length);
  const b = blocks[i];
  const end = (k: number) =>
    k + 1 < blocks.length
      ? blocks[k + 1].at
      : blocks[k].at + BLOCK + Math.ceil(blocks[k].size / BLOCK) * BLOCK;
  const choice = rng.weighted([6, 4, 2, 3, 2, 1, 1]);
  if (choice === 0 || choice === 1) {
    const out = seed.slice();
    const block = out.subarray(b.at, b.at + BLOCK);
    let how: string;
    if (choice === 0) {
      const [name, at, len] = rng.pick(NUMERIC);
      const v = numericValue(rng, len, b.size);
      setField(block, at, len, v);
      how = `header at ${b.at}: ${name} = ${JSON.stringify(new TextDecoder("latin1").decode(v))}`;
    } else if (rng.chance(0.3)) {
      const flag = rng.pick([..."0123456789xgLKSAVDMN", "\0", " "]);
      block[156] = flag.charCodeAt(0);
      how = `header at ${b.at}: typeflag ${JSON.stringify(flag)}`;
    } else if (rng.chance(0.2)) {
      const magic = rng.pick(["ustar\x0000", "ustar  \0", "\0\0\0\0\0\0\0\0", "ustar\x0001"]);
      block.set(latin1(magic), 257);
      how = `header at ${b.at}: magic ${JSON.stringify(magic)}`;
    } else {
      const [field, at, len] = rng.pick(TEXT);
      let v = rng.pick(NAMES);
      if (rng.chance(0.3)) {
        // Another entry's name: hardlinks to directories, duplicates, links to themselves.
        const o = seed.subarray(rng.pick(blocks).at, rng.pick(blocks).at + 100);
        v = new TextDecoder("latin1").decode(o.subarray(0, o.indexOf(0) < 0 ? 100 : o.indexOf(0)));
      }
      setField(block, at, len, latin1(v));
      how = `header at ${b.at}: ${field} = ${JSON.stringify(v.slice(0, 40))}`;
    }
    const fix = rng.chance(0.9);
    if (fix) fixChecksum(block);
    return { bytes: out, how: how + (fix ? "" : " (checksum left stale)") };
  }
  if (choice === 2 && (b.flag === 0x78 || b.flag === 0x67)) {
    // Rewrite a pax header's records; the header's size follows.
    const data = latin1(randomPax(rng));
    const h = seed.slice(b.at, b.at + BLOCK);
    setField(h, 124, 12, latin1(data.length.toString(8).padStart(11, "0") + "\0"));
    fixChecksum(h);
    const bytes = concatBytes([seed.subarray(0, b.at), h, padded(data), seed.subarray(end(i))]);
    return {
      bytes,
      how: `pax header at ${b.at} rewritten: ${
        JSON.stringify(new TextDecoder("latin1").decode(data).slice(0, 120))
      }`,
    };
  }
  if (choice === 2 || choice === 3) {
    // Insert an extended header in front of entry i.
    const kind = rng.pick(["x", "x", "g", "L", "K"]);
    const text = kind === "L" || kind === "K"
      ? rng.pick(NAMES) + (rng.chance(0.5) ? "\0" : "")
      : randomPax(rng);
    const data = latin1(text);
    const name = kind === "L" || kind === "K" ? "././@LongLink" : "PaxHeaders/x";
    const bytes = concatBytes([
      seed.subarray(0, b.at),
      header({ name, flag: kind, size: data.length }),
      padded(data),
      seed.subarray(b.at),
    ]);
    return {
      bytes,
      how: `'${kind}' header inserted at ${b.at}: ${JSON.stringify(text.slice(0, 120))}`,
    };
  }
  if (choice === 4) {
    const bytes = concatBytes([seed.subarray(0, b.at), seed.subarray(end(i))]);
    return { bytes, how: `entry at ${b.at} removed` };
  }
  if (choice === 5) {
    const bytes = concatBytes([
      seed.subarray(0, end(i)),
      seed.subarray(b.at, end(i)),
      seed.subarray(end(i)),
    ]);
    return { bytes, how: `entry at ${b.at} repeated` };
  }
  // A new entry of an odd kind in front of entry i.
  const kind = rng.pick(["1", "2", "3", "5", "6", "0"]);
  const size = kind === "0" ? rng.pick([0, 1, 64, 65, 513]) : rng.pick([0, 0, 0, 1]);
  const h = header({ name: rng.pick(NAMES), flag: kind, size, link: rng.pick(NAMES) });
  const bytes = concatBytes([
    seed.subarray(0, b.at),
    h,
    padded(new Uint8Array(size)),
    seed.subarray(b.at),
  ]);
  return { bytes, how: `entry of type '${kind}', size ${size}, inserted at ${b.at}` };
}
