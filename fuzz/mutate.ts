/**
 * Format-blind mutations of bytes, the part every target shares: bit flips, byte sets,
 * "interesting" integers (0, -1, sign boundaries, 2^53) and small deltas written over what is
 * there (length-field tweaks: any aligned word may be a length or an offset), truncations,
 * extensions, deleted, duplicated and copied ranges, and splices with another input of the same
 * target. Pure: each returns a new array and a short description of what it did, so a saved
 * failure says how its input was made. Format-aware mutations are in `structure/`.
 *
 * @module
 */
import type { Rng } from "./rng.ts";

/** A mutation's result: the new bytes and what was done, for the failure report. */
export interface Mutated {
  /** The mutated input (a new array). */
  bytes: Uint8Array;
  /** One line: the steps applied. */
  how: string;
}

/** Integers worth writing over a length, offset or count field, by width in bytes. */
export const INTERESTING: Readonly<Record<1 | 2 | 4 | 8, readonly bigint[]>> = {
  1: [0n, 1n, 0x7fn, 0x80n, 0xffn, 0x10n, 0x20n, 0x40n, 0x64n],
  2: [0n, 1n, 0xffn, 0x100n, 0x7fffn, 0x8000n, 0xffffn, 0x1000n, 0xfffn, 0x200n, 0x1ffn],
  4: [
    0n,
    1n,
    0xffffn,
    0x10000n,
    0x7fffffffn,
    0x80000000n,
    0xffffffffn,
    0x1000n,
    0xfffn,
    0x100000n,
    0x40000000n,
  ],
  8: [
    0n,
    1n,
    0xffffffffn,
    0x100000000n,
    0x1fffffffffffffn,
    0x20000000000000n,
    0x7fffffffffffffffn,
    0x8000000000000000n,
    0xffffffffffffffffn,
    0xfffffffffffffff8n,
    0xffffffffffff0000n,
  ],
};

/** Writes `value` (truncated to `width` bytes) at `at`, little-endian unless `bigEndian`. */
export function writeUint(
  out: Uint8Array,
  at: number,
  width: 1 | 2 | 4 | 8,
  value: bigint,
  bigEndian = false,
): void {
  let v = BigInt.asUintN(width * 8, value);
  for (let i = 0; i < width; i++) {
    const k = bigEndian ? width - 1 - i : i;
    if (at + k < out.length) out[at + k] = Number(v & 0xffn);
    v >>= 8n;
  }
}

/** Reads `width` bytes at `at` as an unsigned little-endian integer (missing bytes are 0). */
export function readUint(bytes: Uint8Array, at: number, width: 1 | 2 | 4 | 8): bigint {
  let v = 0n;
  for (let i = width - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i] ?? 0);
  return v;
}

const WIDTHS = [1, 2, 4, 8] as const;

/** A value for a `width`-byte field holding `old`: interesting, nearby, or random. */
export function fieldValue(rng: Rng, width: 1 | 2 | 4 | 8, old: bigint): bigint {
  switch (rng.int(4)) {
    case 0:
      return rng.pick(INTERESTING[width]);
    case 1: {
      const delta = BigInt(rng.range(1, 35)) * (rng.chance(0.5) ? 1n : -1n);
      return BigInt.asUintN(width * 8, old + delta);
    }
    case 2: // powers of two and their neighbours
      return BigInt.asUintN(
        width * 8,
        (1n << BigInt(rng.int(width * 8))) + BigInt(rng.range(-1, 1)),
      );
    default:
      return BigInt.asUintN(width * 8, readUint(new Uint8Array(rng.bytes(width)), 0, width));
  }
}

function offsetIn(rng: Rng, length: number, width = 1): number {
  if (length <= width) return 0;
  const at = rng.int(length - width + 1);
  return rng.chance(0.5) ? at - (at % width) : at;
}

/** One generic mutation of `input`; `others` are the target's other inputs, for splices. */
export function mutateOnce(
  rng: Rng,
  input: Uint8Array,
  others: readonly Uint8Array[],
): Mutated {
  const n = input.length;
  const out = input.slice();
  const kind = rng.weighted([8, 6, 10, 8, 4, 2, 3, 2, 3, 3, 2]);
  switch (kind) {
    case 0: { // bit flips
      if (n === 0) break;
      const k = rng.small(4);
      const at: number[] = [];
      for (let i = 0; i < k; i++) {
        const p = rng.int(n);
        out[p] ^= 1 << rng.int(8);
        at.push(p);
      }
      return { bytes: out, how: `flip bits at ${at.join(",")}` };
    }
    case 1: { // random bytes
      if (n === 0) break;
      const k = rng.small(8);
      const at = rng.int(n);
      for (let i = 0; i < k && at + i < n; i++) out[at + i] = rng.int(256);
      return { bytes: out, how: `set ${k} random bytes at ${at}` };
    }
    case 2: { // interesting integer
      const w = rng.pick(WIDTHS);
      if (n < w) break;
      const at = offsetIn(rng, n, w);
      const v = rng.pick(INTERESTING[w]);
      const be = rng.chance(0.15);
      writeUint(out, at, w, v, be);
      return { bytes: out, how: `u${w * 8}${be ? "be" : ""} at ${at} = 0x${v.toString(16)}` };
    }
    case 3: { // arithmetic on a word: a length or offset a little off
      const w = rng.pick(WIDTHS);
      if (n < w) break;
      const at = offsetIn(rng, n, w);
      const old = readUint(out, at, w);
      const v = fieldValue(rng, w, old);
      writeUint(out, at, w, v);
      return {
        bytes: out,
        how: `u${w * 8} at ${at}: 0x${old.toString(16)} -> 0x${v.toString(16)}`,
      };
    }
    case 4: { // truncate
      if (n === 0) break;
      const cut = rng.chance(0.3)
        ? Math.max(0, n - rng.small(64))
        : rng.chance(0.3)
        ? Math.floor(rng.int(n + 1) / 512) * 512
        : rng.int(n);
      return { bytes: input.slice(0, cut), how: `truncate to ${cut}` };
    }
    case 5: { // extend
      const k = rng.small(4096);
      const fill = rng.int(3);
      const tail = fill === 0 ? new Uint8Array(k) : fill === 1 ? rng.bytes(k) : new Uint8Array(k)
        .fill(0xff);
      const bytes = new Uint8Array(n + k);
      bytes.set(input);
      bytes.set(tail, n);
      return { bytes, how: `append ${k} ${["zero", "random", "0xff"][fill]} bytes` };
    }
    case 6: { // delete a range
      if (n === 0) break;
      const at = rng.int(n);
      const k = Math.min(n - at, rng.small(Math.max(1, Math.min(4096, n >> 2))));
      const bytes = new Uint8Array(n - k);
      bytes.set(input.subarray(0, at));
      bytes.set(input.subarray(at + k), at);
      return { bytes, how: `delete ${k} bytes at ${at}` };
    }
    case 7: { // duplicate a range in place
      if (n === 0) break;
      const at = rng.int(n);
      const k = Math.min(n - at, rng.small(Math.max(1, Math.min(4096, n >> 2))));
      const to = rng.int(n + 1);
      const bytes = new Uint8Array(n + k);
      bytes.set(input.subarray(0, to));
      bytes.set(input.subarray(at, at + k), to);
      bytes.set(input.subarray(to), to + k);
      return { bytes, how: `insert copy of ${k} bytes from ${at} at ${to}` };
    }
    case 8: { // copy a range over another
      if (n < 2) break;
      const from = rng.int(n);
      const to = rng.int(n);
      const k = Math.min(n - from, n - to, rng.small(256));
      out.copyWithin(to, from, from + k);
      return { bytes: out, how: `copy ${k} bytes from ${from} over ${to}` };
    }
    case 9: { // splice with another input
      if (others.length === 0) break;
      const other = rng.pick(others);
      const i = rng.int(n + 1);
      const j = rng.int(other.length + 1);
      const bytes = new Uint8Array(i + other.length - j);
      bytes.set(input.subarray(0, i));
      bytes.set(other.subarray(j), i);
      return { bytes, how: `splice: first ${i} bytes, then another input from ${j}` };
    }
    case 10: { // fill a range
      if (n === 0) break;
      const at = rng.int(n);
      const k = Math.min(n - at, rng.small(1024));
      const v = rng.pick([0, 0xff, 0x20, 0x30]);
      out.fill(v, at, at + k);
      return { bytes: out, how: `fill ${k} bytes at ${at} with 0x${v.toString(16)}` };
    }
  }
  out.reverse();
  return { bytes: out, how: "reverse (input too short for the chosen mutation)" };
}

/** One to `max` generic mutations in a row (AFL's "havoc"). */
export function havoc(
  rng: Rng,
  input: Uint8Array,
  others: readonly Uint8Array[],
  max = 8,
): Mutated {
  const steps = rng.small(max);
  let bytes = input;
  const how: string[] = [];
  for (let i = 0; i < steps; i++) {
    const m = mutateOnce(rng, bytes, others);
    bytes = m.bytes;
    how.push(m.how);
  }
  return { bytes, how: how.join("; ") };
}
