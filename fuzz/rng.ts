/**
 * The fuzzer's seeded random numbers: every input a run makes follows from the run's seed, the
 * target's name and the iteration number (see {@link iterationRng}), so a failure printed as
 * `--seed S --target T --iteration N` can be made again without the saved file.
 *
 * sfc32 (Chris Doty-Humphrey's small fast counting generator): 128 bits of state, fast in
 * 32-bit JavaScript arithmetic, and good enough for choosing mutations. Not for secrets.
 *
 * @module
 */

/** A 32-bit FNV-1a hash of `text`, to turn names into seed words. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A seeded generator with the helpers the mutators need. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** Seeds from four 32-bit words (any values; the first outputs are discarded). */
  constructor(a: number, b: number, c: number, d: number) {
    this.#a = a >>> 0;
    this.#b = b >>> 0;
    this.#c = c >>> 0;
    this.#d = d >>> 0;
    for (let i = 0; i < 15; i++) this.u32();
  }

  /** The next 32 random bits. */
  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** A uniform integer in [0, n) (n > 0, at most 2^32). */
  int(n: number): number {
    if (n <= 1) return 0;
    return Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** A uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** An index into `weights`, chosen with probability proportional to its weight. */
  weighted(weights: readonly number[]): number {
    const total = weights.reduce((s, w) => s + w, 0);
    let r = (this.u32() / 0x1_0000_0000) * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i];
      if (r < 0) return i;
    }
    return weights.length - 1;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** A small count with a bias towards small values: 1, 2, 4, ... up to `max`. */
  small(max: number): number {
    return Math.min(max, 1 << this.int(Math.floor(Math.log2(Math.max(1, max))) + 1));
  }
}

/** The generator for iteration `iteration` of `target` in a run with `seed`. */
export function iterationRng(seed: number, target: string, iteration: number): Rng {
  return new Rng(seed, hash32(target), iteration, 0x9e3779b9 ^ seed);
}
