/**
 * Field-level mutation shared by the binary formats: a format module lists the fields of a
 * valid input (offset, width, what it is, and for references the values that would be valid
 * elsewhere in the same input), and {@link mutateField} rewrites one of them. This is how
 * "valid headers with bad offsets" are made: everything around the field stays as the writer
 * made it, so the parser gets past its first checks.
 *
 * @module
 */
import { fieldValue, type Mutated, readUint, writeUint } from "../mutate.ts";
import type { Rng } from "../rng.ts";

/** One integer field of an input. */
export interface FieldPoint {
  /** Byte offset in the input. */
  at: number;
  /** Width in bytes. */
  width: 1 | 2 | 4 | 8;
  /** What it is, for the failure report (`inode 36 size`). */
  label: string;
  /** Values that are valid somewhere else in the input (other nids, offsets, sizes). */
  alternatives?: readonly bigint[];
}

/** Rewrites one field (or, now and then, two) of `input`; undefined when there are none. */
export function mutateField(
  rng: Rng,
  input: Uint8Array,
  points: readonly FieldPoint[],
): Mutated | undefined {
  if (points.length === 0) return undefined;
  const out = input.slice();
  const how: string[] = [];
  const count = rng.chance(0.2) ? 2 : 1;
  for (let i = 0; i < count; i++) {
    const p = rng.pick(points);
    const old = readUint(out, p.at, p.width);
    let v: bigint;
    if (p.alternatives && p.alternatives.length > 0 && rng.chance(0.4)) {
      v = rng.pick(p.alternatives);
    } else if (rng.chance(0.1)) {
      v = BigInt(input.length + rng.range(-8, 8)); // a length or offset near the end
    } else {
      v = fieldValue(rng, p.width, old);
    }
    writeUint(out, p.at, p.width, v);
    how.push(
      `${p.label} (u${p.width * 8} at ${p.at}): 0x${old.toString(16)} -> 0x${v.toString(16)}`,
    );
  }
  return { bytes: out, how: how.join("; ") };
}
