/**
 * Hashing of 4 KiB blocks, the one operation an fs-verity Merkle tree needs, behind one small
 * interface with two backends:
 *
 * - `libcrypto` (`libcrypto_hash.ts`): OpenSSL's SHA-256/SHA-512 through Deno FFI, a few
 *   fast native calls per block and nothing allocated per hash; the default where the library
 *   loads (Debian, Fedora, Alpine and most systems ship it: `libcrypto.so.3` or `.so.1.1`).
 * - `node:crypto` (`node_hash.ts`): Deno's own hashing, always there; one hash object per block,
 *   whose fixed cost (~0.75 µs, as much as hashing 1.5 KiB) is why the native backend exists.
 *
 * Both give the same bytes; `test/fsverity_backend_test.ts` checks each against `fsverity
 * digest` at block boundaries. `CFS_HASH_BACKEND=node` (or `libcrypto`) picks one for a whole
 * process (workers included), for comparisons; {@link useHashBackend} does it from code.
 *
 * @module
 */
import type { VerityAlgorithm } from "./digest.ts";
import { libcryptoBlockHasher } from "./libcrypto_hash.ts";
import { nodeBlockHasher } from "./node_hash.ts";

/** The fs-verity Merkle tree block size (log2 = 12), as composefs requires. */
export const BLOCK_SIZE = 4096;

/** Names of the hashing backends. */
export type HashBackendName = "libcrypto" | "node";

/** Hashes blocks for one algorithm. Instances are per thread and not reentrant. */
export interface BlockHasher {
  /** The algorithm: SHA-256 or SHA-512. */
  readonly algorithm: VerityAlgorithm;
  /** Which backend this is. */
  readonly backend: HashBackendName;
  /**
   * Hashes each 4096-byte block of `data` (the last one zero-padded when partial) and writes
   * the hashes one after the other into `out` at `outOffset`; returns the number of blocks.
   */
  hashBlocks(data: Uint8Array, out: Uint8Array, outOffset: number): number;
  /** Writes the hash of `bytes`, zero-padded to `padTo` bytes (if longer), into `out` at `offset`. */
  hashPadded(bytes: Uint8Array, padTo: number, out: Uint8Array, offset: number): void;
}

let chosen: HashBackendName | "auto" | undefined;
const hashers = new Map<VerityAlgorithm, BlockHasher>();

/**
 * Chooses the backend for this thread: `"auto"` (libcrypto where it loads, else node:crypto),
 * or one by name; `"libcrypto"` throws when the library cannot be loaded.
 */
export function useHashBackend(name: HashBackendName | "auto"): void {
  if (name === "libcrypto") {
    libcryptoBlockHasher("sha256", true);
  }
  chosen = name;
  hashers.clear();
}

/** The block hasher for `alg` under the backend in use (see the module doc). */
export function blockHasher(alg: VerityAlgorithm): BlockHasher {
  let h = hashers.get(alg);
  if (h === undefined) {
    chosen ??= backendFromEnvironment();
    h = (chosen !== "node" ? libcryptoBlockHasher(alg, chosen === "libcrypto") : undefined) ??
      nodeBlockHasher(alg);
    hashers.set(alg, h);
  }
  return h;
}

/** `CFS_HASH_BACKEND`, read only when the environment may be read without a prompt. */
function backendFromEnvironment(): HashBackendName | "auto" {
  try {
    const name = "CFS_HASH_BACKEND";
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return "auto";
    }
    const v = Deno.env.get(name);
    return v === "node" || v === "libcrypto" ? v : "auto";
  } catch {
    return "auto";
  }
}
