/**
 * The portable block hashing backend: one node:crypto hash object per block. Used where
 * libcrypto cannot be loaded through FFI (no library, no FFI permission).
 *
 * Speed notes (Deno 2.9.6): every hash object costs ~0.75 µs on top of the hashing, as much as
 * hashing 1.5 KiB with SHA-256. `digest("hex")` returns a string straight from Rust, which is
 * cheaper than `digest()`'s Buffer (two allocations): decoding the hex here made a 4 KiB block
 * ~30% faster with SHA-256.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { BlockHasher } from "./block_hash.ts";
import type { VerityAlgorithm } from "./digest.ts";

const BLOCK = 4096;
const ZERO_BLOCK = new Uint8Array(BLOCK);

/** Value of each lower-case hex digit's char code (what `digest("hex")` emits). */
const HEX_VALUE = new Uint8Array(128);
for (let i = 0; i < 16; i++) HEX_VALUE["0123456789abcdef".charCodeAt(i)] = i;

let hashCalls = 0;
const GC_NUDGE_INTERVAL = 16384;

/**
 * Each hash object holds native memory outside V8's heap, freed only by a full collection,
 * which a loop making nothing but small garbage rarely triggers: hashing 1 GiB grew a thread by
 * ~40 MB. Announcing a large ArrayBuffer makes V8 collect sooner. At 64 MiB the buffer comes
 * from a fresh mmap that is never touched, so it costs address space, not memory. Measured:
 * 16384 hashes (64 MiB of data) between nudges was best; more often made the peak larger.
 */
function nudgeGarbageCollector(): void {
  try {
    new ArrayBuffer(64 << 20);
  } catch {
    // No address space for it (strict overcommit): then memory just grows a little.
  }
}

function hashInto(
  alg: VerityAlgorithm,
  bytes: Uint8Array,
  padTo: number,
  out: Uint8Array,
  offset: number,
): void {
  const h = createHash(alg).update(bytes);
  for (let left = padTo - bytes.length; left > 0; left -= BLOCK) {
    h.update(ZERO_BLOCK.subarray(0, Math.min(left, BLOCK)));
  }
  const hex = h.digest("hex");
  for (let i = 0, o = offset; i < hex.length; i += 2, o++) {
    out[o] = (HEX_VALUE[hex.charCodeAt(i)] << 4) | HEX_VALUE[hex.charCodeAt(i + 1)];
  }
  if (++hashCalls % GC_NUDGE_INTERVAL === 0) nudgeGarbageCollector();
}

/** A node:crypto block hasher for `alg`. */
export function nodeBlockHasher(alg: VerityAlgorithm): BlockHasher {
  const size = alg === "sha512" ? 64 : 32;
  return {
    algorithm: alg,
    backend: "node",
    hashBlocks(data, out, outOffset) {
      if (outOffset + Math.ceil(data.length / BLOCK) * size > out.length) {
        throw new RangeError("hashBlocks: output too small");
      }
      const full = Math.floor(data.length / BLOCK);
      let o = outOffset;
      for (let i = 0, off = 0; i < full; i++, off += BLOCK, o += size) {
        hashInto(alg, data.subarray(off, off + BLOCK), 0, out, o);
      }
      if (full * BLOCK === data.length) return full;
      hashInto(alg, data.subarray(full * BLOCK), BLOCK, out, o);
      return full + 1;
    },
    hashPadded(bytes, padTo, out, offset) {
      hashInto(alg, bytes, padTo, out, offset);
    },
  };
}
