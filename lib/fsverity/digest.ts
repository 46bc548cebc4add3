/**
 * The fs-verity file digest, computed the way the Linux kernel does it (and `fsverity
 * digest` prints it): a Merkle tree over 4 KiB blocks without salt, whose root hash goes
 * into a 256-byte descriptor; the digest is the hash of that descriptor.
 *
 * Pure: bytes in, bytes out. Reading files lives in `file.ts`, the kernel interface in
 * `ioctl.ts`.
 *
 * The tree: level 0 hashes each 4096-byte data block (the last one zero-padded); every
 * level above packs the hashes of the level below into 4096-byte blocks (zero-padded) and
 * hashes those, until a level fits in one block. The root hash is the hash of that block;
 * an empty file's root hash is all zeros.
 *
 * Hashing itself is `block_hash.ts`'s: a native backend (libcrypto through FFI) where it
 * loads, node:crypto otherwise. This module only arranges the tree.
 *
 * @module
 */
import { BLOCK_SIZE, blockHasher } from "./block_hash.ts";

/** The fs-verity hash algorithms cfs supports (those composefs uses). */
export type VerityAlgorithm = "sha256" | "sha512";

export { BLOCK_SIZE };

const LOG_BLOCK_SIZE = 12;
const DESCRIPTOR_SIZE = 256;

/** Size in bytes of one hash (and of the file digest) for `alg`: 32 or 64. */
export function digestSize(alg: VerityAlgorithm): number {
  return alg === "sha512" ? 64 : 32;
}

/** The kernel's FS_VERITY_HASH_ALG_* number for `alg`: SHA-256 is 1, SHA-512 is 2. */
export function algorithmId(alg: VerityAlgorithm): number {
  return alg === "sha512" ? 2 : 1;
}

/** Narrows a user-given string to a {@link VerityAlgorithm}, or returns undefined. */
export function parseAlgorithm(name: string): VerityAlgorithm | undefined {
  return name === "sha256" || name === "sha512" ? name : undefined;
}

/** The hash of `bytes` zero-padded to `padTo` bytes, as a new array. */
function hashOf(alg: VerityAlgorithm, bytes: Uint8Array, padTo = 0): Uint8Array {
  const out = new Uint8Array(digestSize(alg));
  blockHasher(alg).hashPadded(bytes, padTo, out, 0);
  return out;
}

/**
 * Hashes `data` block by block (the last block zero-padded) and writes the hashes one
 * after the other into `out` at `outOffset`; returns the number of blocks. Used for the
 * leaf level and for every level above it: a level's bytes are just the hashes below.
 */
export function hashBlocks(
  alg: VerityAlgorithm,
  data: Uint8Array,
  out: Uint8Array,
  outOffset = 0,
): number {
  return blockHasher(alg).hashBlocks(data, out, outOffset);
}

/**
 * The file digest from a tree's root hash and the file size: the hash of the fs-verity
 * descriptor (version 1, no salt, 4 KiB blocks), as FS_IOC_MEASURE_VERITY reports it.
 */
export function descriptorDigest(
  alg: VerityAlgorithm,
  rootHash: Uint8Array,
  dataSize: number,
): Uint8Array {
  const d = new Uint8Array(DESCRIPTOR_SIZE);
  const v = new DataView(d.buffer);
  d[0] = 1; // version
  d[1] = algorithmId(alg);
  d[2] = LOG_BLOCK_SIZE;
  d[3] = 0; // salt_size; bytes 4..7 reserved
  v.setBigUint64(8, BigInt(dataSize), true);
  d.set(rootHash, 16); // root_hash[64], zero-padded; then salt[32] and reserved[144], zero
  return hashOf(alg, d);
}

/**
 * The fs-verity digest of bytes held in memory: one call per block, no copies of the
 * data. Memory beyond `data` is one hash per block (1/128 or 1/64 of the data size).
 */
export function fsverityDigest(data: Uint8Array, alg: VerityAlgorithm): Uint8Array {
  const ds = digestSize(alg);
  if (data.length === 0) return descriptorDigest(alg, new Uint8Array(ds), 0);
  let level = data;
  while (level.length > BLOCK_SIZE) {
    const next = new Uint8Array(Math.ceil(level.length / BLOCK_SIZE) * ds);
    hashBlocks(alg, level, next);
    level = next;
  }
  return descriptorDigest(alg, hashOf(alg, level, BLOCK_SIZE), data.length);
}

/**
 * Streaming fs-verity digest in constant memory: it keeps one partial block per tree
 * level (a 1 TiB file has 4 levels with SHA-512), and accepts chunks of any size.
 *
 * ```ts
 * const h = new FsVerityHasher("sha512");
 * for await (const chunk of file.readable) h.update(chunk);
 * console.log(toHex(h.digest()));
 * ```
 */
export class FsVerityHasher {
  readonly #alg: VerityAlgorithm;
  readonly #ds: number;
  /** levels[0] buffers data; levels[n > 0] buffers hashes of level n-1's blocks. */
  readonly #levels: TreeLevel[] = [];
  #size = 0;
  #done = false;

  /** A hasher for `alg` digests (4 KiB blocks, no salt), with no data yet. */
  constructor(alg: VerityAlgorithm) {
    this.#alg = alg;
    this.#ds = digestSize(alg);
    this.#levels.push(newLevel());
  }

  /** The algorithm this hasher was made for. */
  get algorithm(): VerityAlgorithm {
    return this.#alg;
  }

  /** Bytes of file data taken so far. */
  get size(): number {
    return this.#size;
  }

  /** Adds file data. Whole blocks are hashed straight from `data`, without copying. */
  update(data: Uint8Array): void {
    this.#checkOpen();
    this.#size += data.length;
    const l0 = this.#levels[0];
    let off = 0;
    if (l0.fill > 0) {
      const n = Math.min(BLOCK_SIZE - l0.fill, data.length);
      l0.block.set(data.subarray(0, n), l0.fill);
      l0.fill += n;
      off = n;
      if (l0.fill < BLOCK_SIZE) return;
      l0.fill = 0;
      this.#addHashOf(1, l0.block);
    }
    // Whole blocks: hashed in runs straight into level 1's block, as many as it has room for.
    const hasher = blockHasher(this.#alg);
    const l1 = this.#level(1);
    while (data.length - off >= BLOCK_SIZE) {
      const room = (BLOCK_SIZE - l1.fill) / this.#ds;
      const n = Math.min(room, Math.floor((data.length - off) / BLOCK_SIZE));
      hasher.hashBlocks(data.subarray(off, off + n * BLOCK_SIZE), l1.block, l1.fill);
      off += n * BLOCK_SIZE;
      l1.fill += n * this.#ds;
      l1.entries += n;
      if (l1.fill === BLOCK_SIZE) {
        l1.fill = 0;
        this.#addHashOf(2, l1.block);
      }
    }
    if (off < data.length) {
      l0.block.set(data.subarray(off), 0);
      l0.fill = data.length - off;
    }
  }

  /**
   * Adds the leaf hashes of data hashed elsewhere (in a worker, say): `hashes` holds one
   * hash per 4096-byte block of the `dataSize` bytes that follow the data taken so far,
   * the last block zero-padded if partial. Only allowed at a block boundary, and after a
   * partial last block nothing more may be added.
   */
  updateLeafHashes(hashes: Uint8Array, dataSize: number): void {
    this.#checkOpen();
    if (this.#levels[0].fill !== 0 || this.#size % BLOCK_SIZE !== 0) {
      throw new Error("FsVerityHasher: leaf hashes must start at a block boundary");
    }
    if (hashes.length !== Math.ceil(dataSize / BLOCK_SIZE) * this.#ds) {
      throw new Error("FsVerityHasher: leaf hash count does not match the data size");
    }
    this.#size += dataSize;
    const l1 = this.#level(1);
    for (let o = 0; o < hashes.length;) {
      const n = Math.min(BLOCK_SIZE - l1.fill, hashes.length - o);
      l1.block.set(hashes.subarray(o, o + n), l1.fill);
      o += n;
      l1.fill += n;
      l1.entries += n / this.#ds;
      if (l1.fill === BLOCK_SIZE) {
        l1.fill = 0;
        this.#addHashOf(2, l1.block);
      }
    }
  }

  /** Finishes the tree and returns the file digest; the hasher cannot be used after. */
  digest(): Uint8Array {
    this.#checkOpen();
    this.#done = true;
    for (let n = 0;; n++) {
      const below = this.#levels[n];
      if (below.fill > 0) {
        this.#addHashOf(n + 1, below.block.subarray(0, below.fill), BLOCK_SIZE);
        below.fill = 0;
      }
      const above = this.#levels[n + 1];
      if (above === undefined || above.entries === 0) {
        return descriptorDigest(this.#alg, new Uint8Array(this.#ds), 0);
      }
      if (above.entries === 1) {
        return descriptorDigest(this.#alg, above.block.slice(0, this.#ds), this.#size);
      }
    }
  }

  /**
   * Appends the hash of `block` (zero-padded to `padTo`) to level `n`; a level whose
   * block fills up is hashed into the level above at once, so each keeps one block.
   */
  #addHashOf(n: number, block: Uint8Array, padTo = 0): void {
    const level = this.#level(n);
    blockHasher(this.#alg).hashPadded(block, padTo, level.block, level.fill);
    level.fill += this.#ds;
    level.entries++;
    if (level.fill === BLOCK_SIZE) {
      level.fill = 0;
      this.#addHashOf(n + 1, level.block);
    }
  }

  #level(n: number): TreeLevel {
    while (this.#levels.length <= n) this.#levels.push(newLevel());
    return this.#levels[n];
  }

  #checkOpen(): void {
    if (this.#done) throw new Error("FsVerityHasher: digest() was already called");
  }
}

/** One level of a tree being built: its current, partial block. */
interface TreeLevel {
  block: Uint8Array;
  /** Bytes used in `block`. */
  fill: number;
  /** Hashes (or for level 0, nothing) added to this level so far. */
  entries: number;
}

function newLevel(): TreeLevel {
  return { block: new Uint8Array(BLOCK_SIZE), fill: 0, entries: 0 };
}

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]];
  return s;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Bytes of a hex string (either case); throws on odd length or a non-hex character. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new Error(`not a hex string: '${hex.length > 40 ? hex.slice(0, 40) + "..." : hex}'`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}
