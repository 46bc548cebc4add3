/**
 * Reader of the splitstream format of composefs-rs **0.3.0** (`cfsctl` 0.3.0 and cfs releases
 * before 0.9.4 support wrote it), kept so that old repositories can be read and upgraded. It
 * yields the same chunks as the 0.9.4 reader (`reader.ts`); tell the formats apart with
 * `detectSplitStreamFormat` (`format.ts`).
 *
 * The 0.3.0 format (composefs-0.3.0 `src/splitstream.rs`), all integers u64 little-endian:
 *
 *     file     = one zstd stream of:
 *     content  = N, N x (body sha256 [32] | object id [32 or 64]), sorted by body, unique,
 *                fragment* until the end
 *     fragment = size > 0, then size inline bytes
 *              | 0, then an object id (an external chunk)
 *
 * The digest map links a stream to other streams (an OCI config to its layers: the layer's
 * diff_id -> the object id of the layer's stream). The file does not say which algorithm its
 * ids use: the caller gives the repository's.
 *
 * @module
 */
import { digestSize, toHex, type VerityAlgorithm } from "../fsverity/digest.ts";
import { SplitStreamError } from "./error.ts";
import {
  ByteCursor,
  catChunks,
  type ObjectSource,
  sourceRange,
  sourceSize,
  type SplitStreamChunk,
  type SplitStreamSource,
} from "./chunks.ts";
import { zstdDecompressPieces, type ZstdFrame, zstdFrames } from "./zstd.ts";

/** Size of a body digest (sha256) in the digest map. */
export const LEGACY_BODY_SIZE = 32;
/** Largest digest-map entry count accepted (hostile input guard). */
export const MAX_DIGEST_MAP_ENTRIES = 1 << 24;

/** One digest-map entry: the sha256 of a referenced stream's content and its object id. */
export interface DigestMapEntry {
  /** sha256 of the referenced stream's original content (32 bytes). */
  body: Uint8Array;
  /** Object id of the referenced stream's object (32 or 64 bytes). */
  verity: Uint8Array;
}

/** Options of {@link LegacySplitStreamReader.open}. */
export interface LegacySplitStreamReadOptions {
  /** The repository's algorithm: decides the size of the ids (the file does not record it). */
  algorithm: VerityAlgorithm;
  /** Names the stream in errors; default "splitstream". */
  name?: string;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function u64(b: Uint8Array, name: string, what: string, at: number): number {
  const v = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new SplitStreamError(`${name}: ${what} at offset ${at} is ${v}, too large to be real`);
  }
  return Number(v);
}

/** A checked 0.3.0 splitstream: frames walked and digest map read up front. */
export class LegacySplitStreamReader {
  readonly #bytes: Uint8Array;
  readonly #frames: ZstdFrame[];
  readonly #map: DigestMapEntry[];

  private constructor(
    /** Names the stream in errors. */
    readonly name: string,
    /** The algorithm of the ids. */
    readonly algorithm: VerityAlgorithm,
    bytes: Uint8Array,
    frames: ZstdFrame[],
    map: DigestMapEntry[],
  ) {
    this.#bytes = bytes;
    this.#frames = frames;
    this.#map = map;
  }

  /** Checks the zstd framing and reads the digest map; throws {@link SplitStreamError}. */
  static async open(
    source: SplitStreamSource,
    options: LegacySplitStreamReadOptions,
  ): Promise<LegacySplitStreamReader> {
    const name = options.name ?? "splitstream";
    if (options.algorithm !== "sha256" && options.algorithm !== "sha512") {
      throw new SplitStreamError(`${name}: unknown fs-verity algorithm '${options.algorithm}'`);
    }
    const bytes = sourceRange(source, 0, sourceSize(source), name);
    const frames = zstdFrames(bytes, name);
    const r = new LegacySplitStreamReader(name, options.algorithm, bytes, frames, []);
    const cur = r.#cursor();
    try {
      r.#map.push(...await r.#readMap(cur));
    } finally {
      await cur.close();
    }
    return r;
  }

  /** The digest map (sha256 of referenced streams -> their object ids), sorted by sha256. */
  get digestMap(): readonly DigestMapEntry[] {
    return this.#map;
  }

  /** The object id recorded for a referenced stream's sha256, if any. */
  lookup(body: Uint8Array): Uint8Array | undefined {
    let lo = 0;
    let hi = this.#map.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const c = compareBytes(this.#map[mid].body, body);
      if (c === 0) return this.#map[mid].verity;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }

  /** The content's chunks in order, as the 0.9.4 reader yields them (`index` undefined). */
  async *chunks(): AsyncGenerator<SplitStreamChunk> {
    const idSize = digestSize(this.algorithm);
    const cur = this.#cursor();
    try {
      await this.#readMap(cur);
      for (;;) {
        const at = cur.offset;
        const head = await cur.exact(8, "a fragment size", this.name);
        if (!head) return;
        const size = u64(head, this.name, "fragment size", at);
        if (size === 0) {
          const id = await cur.exact(idSize, `the object id of the external fragment`, this.name);
          if (!id) {
            throw new SplitStreamError(
              `${this.name}: content ends after the external fragment marker at offset ${at}`,
            );
          }
          yield { kind: "external", id };
          continue;
        }
        let first = true;
        let left = size;
        for await (const data of cur.pieces(size, `inline fragment at offset ${at}`, this.name)) {
          left -= data.length;
          yield { kind: "inline", data, first, last: left === 0, size };
          first = false;
        }
      }
    } finally {
      await cur.close();
    }
  }

  /**
   * Every object id the stream needs (what gc and the upgrade must keep): the digest map's
   * ids, then each external fragment's id, duplicates removed, in that order.
   */
  async objectRefs(): Promise<Uint8Array[]> {
    const seen = new Set<string>();
    const out: Uint8Array[] = [];
    const add = (id: Uint8Array) => {
      const k = toHex(id);
      if (!seen.has(k)) {
        seen.add(k);
        out.push(id);
      }
    };
    for (const e of this.#map) add(e.verity);
    for await (const c of this.chunks()) if (c.kind === "external") add(c.id);
    return out;
  }

  /** The original content: inline bytes, and each external object's bytes from `getObject`. */
  cat(getObject: ObjectSource): AsyncGenerator<Uint8Array> {
    return catChunks(this.chunks(), getObject, this.name);
  }

  #cursor(): ByteCursor {
    return new ByteCursor(zstdDecompressPieces(this.#bytes, this.#frames, this.name));
  }

  async #readMap(cur: ByteCursor): Promise<DigestMapEntry[]> {
    const head = await cur.exact(8, "the digest map count", this.name);
    if (!head) throw new SplitStreamError(`${this.name}: empty content (no digest map count)`);
    const n = u64(head, this.name, "digest map count", 0);
    if (n > MAX_DIGEST_MAP_ENTRIES) {
      throw new SplitStreamError(
        `${this.name}: digest map count ${n} is more than ${MAX_DIGEST_MAP_ENTRIES}`,
      );
    }
    const idSize = digestSize(this.algorithm);
    const map: DigestMapEntry[] = [];
    for (let i = 0; i < n; i++) {
      const at = cur.offset;
      const e = await cur.exact(LEGACY_BODY_SIZE + idSize, `digest map entry ${i}`, this.name);
      if (!e) {
        throw new SplitStreamError(
          `${this.name}: content ends at offset ${at} before digest map entry ${i} of ${n}`,
        );
      }
      const entry = { body: e.slice(0, LEGACY_BODY_SIZE), verity: e.slice(LEGACY_BODY_SIZE) };
      const prev = map[map.length - 1];
      if (prev && compareBytes(prev.body, entry.body) >= 0) {
        throw new SplitStreamError(
          `${this.name}: digest map entry ${i} at offset ${at} is out of order or repeated`,
        );
      }
      map.push(entry);
    }
    return map;
  }
}
