/**
 * The native block hashing backend: OpenSSL libcrypto's `SHA256_Init/Update/Final` and the
 * SHA-512 ones through Deno FFI.
 *
 * Why these calls and these parameter types (measured with Deno 2.9.6 on x86-64):
 *
 * - The low-level `SHA*_Init/Update/Final` run the assembly block function on a context we own;
 *   OpenSSL 3's one-shot `SHA256()` fetches an algorithm object on every call (~1 µs), which
 *   is what we are trying to avoid.
 * - An FFI call is a V8 fast call (~10-20 ns) only when every argument maps to one: addresses
 *   as `usize` must be BigInts (a Number takes the slow path, ~250 ns), lengths are `u32`.
 *   So the loop over a buffer's blocks passes BigInt addresses of the data and of the output,
 *   stepping them by the block and hash size: ~5% over hashing one large buffer in one call.
 * - Typed arrays of at most 64 bytes may live inside V8's heap, where the garbage collector
 *   moves them, so an address is only taken of arrays longer than that; the rest go through
 *   `buffer` parameters, which V8 resolves at each call.
 *
 * An address is only good while its array is alive: the arrays whose addresses are kept are
 * fields of the hasher, and a caller's arrays are held by the caller during the call.
 *
 * Nothing here is thread-safe: each thread (worker) loads its own instance.
 *
 * @module
 */
import type { BlockHasher } from "./block_hash.ts";
import type { VerityAlgorithm } from "./digest.ts";

const BLOCK = 4096;
/** Larger than SHA512_CTX (216 bytes) and SHA256_CTX (112), and off V8's heap. */
const CTX_SIZE = 512;
/** Typed arrays above this length are never in V8's heap (its `typed_array_max_size_in_heap`). */
const MAX_ON_HEAP = 64;
/** The names the library has on Linux systems, newest first. */
const LIBRARY_NAMES = ["libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"];

const SYMBOLS = {
  SHA256_Init: { parameters: ["usize"], result: "i32" },
  SHA256_Update: { parameters: ["usize", "usize", "u32"], result: "i32" },
  SHA256_Final: { parameters: ["usize", "usize"], result: "i32" },
  SHA512_Init: { parameters: ["usize"], result: "i32" },
  SHA512_Update: { parameters: ["usize", "usize", "u32"], result: "i32" },
  SHA512_Final: { parameters: ["usize", "usize"], result: "i32" },
  SHA256_Update_buffer: {
    name: "SHA256_Update",
    parameters: ["usize", "buffer", "u32"],
    result: "i32",
  },
  SHA512_Update_buffer: {
    name: "SHA512_Update",
    parameters: ["usize", "buffer", "u32"],
    result: "i32",
  },
} as const;

type Library = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let library: Library | null | undefined;
let loadError = "";

/** Loads libcrypto once per thread; null (with `loadError`) when FFI or the library is missing. */
function load(): Library | null {
  if (library !== undefined) return library;
  library = null;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      loadError = "no FFI permission (--allow-ffi)";
      return library;
    }
  } catch (e) {
    loadError = `FFI not available: ${(e as Error).message}`;
    return library;
  }
  for (const name of LIBRARY_NAMES) {
    try {
      library = Deno.dlopen(name, SYMBOLS).symbols;
      return library;
    } catch (e) {
      loadError ||= `cannot load ${name}: ${(e as Error).message}`;
    }
  }
  return library;
}

/** The address of `a`'s first byte; only for arrays longer than {@link MAX_ON_HEAP}. */
function addressOf(a: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(a)));
}

/**
 * A libcrypto block hasher for `alg`, or undefined when the library cannot be loaded (with
 * `required`, that throws instead, saying why).
 */
export function libcryptoBlockHasher(
  alg: VerityAlgorithm,
  required = false,
): BlockHasher | undefined {
  const lib = load();
  if (lib === null) {
    if (required) throw new Error(`the libcrypto hashing backend is unavailable: ${loadError}`);
    return undefined;
  }
  return new LibcryptoBlockHasher(lib, alg);
}

class LibcryptoBlockHasher implements BlockHasher {
  readonly backend = "libcrypto";
  readonly algorithm: VerityAlgorithm;
  readonly #size: number;
  readonly #sizeBig: bigint;
  readonly #init: (ctx: bigint) => number;
  readonly #update: (ctx: bigint, data: bigint, length: number) => number;
  readonly #updateBuffer: (ctx: bigint, data: Uint8Array, length: number) => number;
  readonly #final: (md: bigint, ctx: bigint) => number;
  // The arrays whose addresses are kept are fields, so they live as long as the hasher: a
  // collected array would free the memory under the address.
  readonly #ctxBuffer = new Uint8Array(CTX_SIZE);
  readonly #ctx: bigint;
  /** Where a hash is written when the destination is too small to take its address. */
  readonly #result = new Uint8Array(BLOCK);
  readonly #resultAddress: bigint;
  /** The last, partial block, copied and zero-padded. */
  readonly #pad = new Uint8Array(BLOCK);
  readonly #padAddress: bigint;

  constructor(lib: Library, alg: VerityAlgorithm) {
    const sha512 = alg === "sha512";
    this.algorithm = alg;
    this.#size = sha512 ? 64 : 32;
    this.#sizeBig = BigInt(this.#size);
    this.#init = sha512 ? lib.SHA512_Init : lib.SHA256_Init;
    this.#update = sha512 ? lib.SHA512_Update : lib.SHA256_Update;
    this.#updateBuffer = sha512 ? lib.SHA512_Update_buffer : lib.SHA256_Update_buffer;
    this.#final = sha512 ? lib.SHA512_Final : lib.SHA256_Final;
    this.#ctx = addressOf(this.#ctxBuffer);
    this.#resultAddress = addressOf(this.#result);
    this.#padAddress = addressOf(this.#pad);
  }

  hashBlocks(data: Uint8Array, out: Uint8Array, outOffset: number): number {
    const size = this.#size;
    if (outOffset + Math.ceil(data.length / BLOCK) * size > out.length) {
      throw new RangeError("hashBlocks: output too small");
    }
    const full = Math.floor(data.length / BLOCK);
    if (full > 0) {
      // The calls cannot fail for these arguments (OpenSSL returns 1), so the hot loop does not
      // look at their results. `data` is longer than 64 bytes here, so off V8's heap.
      const ctx = this.#ctx;
      const init = this.#init;
      const update = this.#update;
      const final = this.#final;
      let d = addressOf(data);
      if (out.length > MAX_ON_HEAP) {
        let o = addressOf(out) + BigInt(outOffset);
        for (let i = 0; i < full; i++, d += BLOCK_BIG, o += this.#sizeBig) {
          init(ctx);
          update(ctx, d, BLOCK);
          final(o, ctx);
        }
      } else {
        for (let i = 0; i < full; i++, d += BLOCK_BIG) {
          init(ctx);
          update(ctx, d, BLOCK);
          final(this.#resultAddress, ctx);
          out.set(this.#result.subarray(0, size), outOffset + i * size);
        }
      }
    }
    const rest = data.length - full * BLOCK;
    if (rest === 0) return full;
    this.#pad.set(data.subarray(full * BLOCK));
    this.#pad.fill(0, rest);
    this.#check(this.#init(this.#ctx));
    this.#check(this.#update(this.#ctx, this.#padAddress, BLOCK));
    this.#finishInto(out, outOffset + full * size);
    return full + 1;
  }

  hashPadded(bytes: Uint8Array, padTo: number, out: Uint8Array, offset: number): void {
    this.#check(this.#init(this.#ctx));
    if (bytes.length > 0) this.#check(this.#updateBuffer(this.#ctx, bytes, bytes.length));
    if (bytes.length < padTo) {
      this.#pad.fill(0);
      for (let left = padTo - bytes.length; left > 0; left -= BLOCK) {
        this.#check(this.#update(this.#ctx, this.#padAddress, Math.min(left, BLOCK)));
      }
    }
    this.#finishInto(out, offset);
  }

  /** Finishes the hash in the context into `out` at `offset`. */
  #finishInto(out: Uint8Array, offset: number): void {
    if (out.length > MAX_ON_HEAP) {
      this.#check(this.#final(addressOf(out) + BigInt(offset), this.#ctx));
    } else {
      this.#check(this.#final(this.#resultAddress, this.#ctx));
      out.set(this.#result.subarray(0, this.#size), offset);
    }
  }

  #check(ok: number): void {
    if (ok !== 1) throw new Error(`libcrypto ${this.algorithm} failed`);
  }
}

const BLOCK_BIG = BigInt(BLOCK);
