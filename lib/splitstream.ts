/**
 * composefs splitstreams, in the format composefs-rs **0.3.0** (`cfsctl` 0.3.0) writes and reads.
 *
 * Superseded: cfs now speaks composefs-rs 0.9.4's format through `lib/splitstream/` (writer,
 * reader, and a 0.3.0 reader for upgrades, all on public `node:zlib` APIs). This module stays
 * only until its callers move there; it still drives libzstd through `node:zlib` internals.
 *
 * A splitstream stores a byte stream (an OCI layer tar, a config JSON) with its large parts
 * moved out into repository objects. Decision: cfs writes the 0.3.0 format because cfsctl 0.3.0
 * (crates.io) is the only cfsctl we can install and run as an oracle. The newer format of
 * composefs-rs git (`doc/splitstream.md`: magic header, stream refs and object refs arrays,
 * named refs inside the stream, content type) is future work; 0.3.0 cannot read it.
 *
 * The 0.3.0 format (composefs-0.3.0 `src/splitstream.rs`), all integers u64 little-endian:
 *
 *     file    = ONE zstd stream (level 0 = libzstd's default) of:
 *     content = N, N x (body sha256 [32] | object ID [32 or 64]), sorted by body,
 *               fragment*  until the end of the stream
 *     fragment= size > 0, size inline bytes
 *             | 0, object ID               (external: the bytes of objects/<ID>)
 *
 * The digest map links a stream to other streams (an OCI config to its layers: layer diff_id
 * -> fs-verity ID of the layer's stream object). Reading the content back ("cat") writes the
 * inline bytes and the external objects' bytes in order.
 *
 * How cfsctl 0.3.0 splits a layer (composefs-oci-0.3.0 `src/tar.rs` `split`): every 512-byte
 * tar header (PAX and GNU extension headers and the zero end blocks included) is inline; the
 * body of a regular file (`'0'`/NUL type) of more than 64 bytes is an object, and its zero
 * padding up to 512 bytes is passed along with the reference to become the start of the next
 * inline run; every other body is inline with its padding. Consecutive inline bytes are merged
 * into one fragment until the next external reference. (Quirk of 0.3.0: padding passed while no
 * inline bytes are pending is dropped; a tar always has a header before a body, so it never
 * happens there. This writer never drops it.)
 *
 * In the repository (composefs-0.3.0 `repository.rs`): the compressed file is stored as an
 * object; `streams/<sha256 hex of the original content>` -> `../objects/XX/<rest>`; a named
 * ref `streams/refs/<name>` -> `../` once per path component of `<name>`, then the sha256 hex
 * ({@link streamSymlinkTarget}, {@link streamRefSymlinkTarget}). Storing is not this module's
 * job: it is pure, bytes in and bytes out; object storage is the caller's (`repository.ts`).
 *
 * zstd: Deno's `node:zlib` has zstd, but its synchronous API is one-shot and its streaming API is
 * asynchronous. To compress and decompress incrementally and synchronously with bounded memory,
 * {@link ZstdEngine} drives the engine behind `ZstdCompress`/`ZstdDecompress` through the
 * same `writeSync` calls Node's own `zstdCompressSync` makes in its loop (checked on Deno 2.9.6
 * at first use: a clear error if a Deno version lacks it). Truncation is not reported by zstd
 * streaming, so the frame structure is walked first ({@link checkZstdFrames}).
 *
 * @module
 */
import { toHex } from "./fsverity/digest.ts";
import { SplitStreamError } from "./splitstream/error.ts";
import * as zlib from "node:zlib";
import { createHash, type Hash } from "node:crypto";

/** Size of a sha256 body digest in the digest map. */
export const SHA256_SIZE = 32;
/** Largest digest-map entry count accepted when reading (hostile input guard). */
export const MAX_DIGEST_MAP_ENTRIES = 1 << 24;

/** The splitstream error type, shared with `lib/splitstream/` (one class for both). */
export { SplitStreamError };

/** One digest-map entry: the sha256 of a referenced stream's content and its object ID. */
export interface DigestMapEntry {
  /** sha256 of the referenced stream's original content (32 bytes). */
  body: Uint8Array;
  /** fs-verity object ID of the referenced stream's object (32 or 64 bytes). */
  verity: Uint8Array;
}

/** A decoded fragment of a splitstream's content. */
export type SplitStreamFragment =
  | {
    kind: "inline";
    /** A piece of an inline fragment (long fragments come in several pieces). */
    data: Uint8Array;
    /** Offset of the fragment's size field in the decompressed content. */
    offset: number;
    /** True for the first piece of a fragment. */
    start: boolean;
  }
  | {
    kind: "external";
    /** The object ID. */
    id: Uint8Array;
    /** Offset of the fragment's size field in the decompressed content. */
    offset: number;
  };

/** Where the bytes of an external object come from when reproducing a stream. */
export type ObjectSource = (
  id: Uint8Array,
) =>
  | Uint8Array
  | Iterable<Uint8Array>
  | AsyncIterable<Uint8Array>
  | Promise<Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>>;

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function u64le(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

// --- zstd engine --------------------------------------------------------------------------

interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  close(): void;
  onerror: (message: string, errno: number, code?: string) => void;
}

const OUT_CHUNK = 1 << 17;

/**
 * Synchronous, incremental zstd compression or decompression: each {@link push} hands over
 * input and returns the output produced so far (libzstd buffers up to a block internally).
 */
export class ZstdEngine {
  #handle: ZlibHandle;
  #state: Uint32Array;
  #out = new Uint8Array(OUT_CHUNK);
  #error: Error | undefined;
  #closed = false;

  constructor(readonly mode: "compress" | "decompress") {
    const stream =
      (mode === "compress"
        ? zlib.createZstdCompress()
        : zlib.createZstdDecompress()) as unknown as {
          _handle?: ZlibHandle;
          _writeState?: Uint32Array;
        };
    const handle = stream._handle;
    const state = stream._writeState;
    if (!handle || typeof handle.writeSync !== "function" || !(state instanceof Uint32Array)) {
      throw new Error(
        "this runtime's node:zlib has no synchronous zstd engine (_handle.writeSync); " +
          "cfs splitstreams need Deno 2.9 or a compatible version",
      );
    }
    handle.onerror = (message, errno, code) => {
      this.#error = new Error(`zstd: ${message} (${code ?? errno})`);
    };
    this.#handle = handle;
    this.#state = state;
  }

  /**
   * Feeds `input`; `end` finishes the frame (compression) and closes the engine. Returns the
   * output produced by this call as a list of chunks. Throws the engine's error (corrupt data).
   */
  push(input: Uint8Array, end = false): Uint8Array[] {
    return [...this.pushLazily(input, end)];
  }

  /**
   * {@link push} as a generator: one output chunk (at most 128 KiB) per step, produced only when
   * pulled, so a decompression bomb costs no more memory than the consumer keeps.
   */
  *pushLazily(input: Uint8Array, end = false): Generator<Uint8Array> {
    if (this.#closed) throw new Error("zstd engine already finished");
    const flush = end ? zlib.constants.ZSTD_e_end : zlib.constants.ZSTD_e_continue;
    let off = 0;
    let len = input.length;
    try {
      for (;;) {
        this.#handle.writeSync(flush, input, off, len, this.#out, 0, this.#out.length);
        if (this.#error) throw this.#error;
        const availOut = this.#state[0];
        const availIn = this.#state[1];
        const have = this.#out.length - availOut;
        off += len - availIn;
        len = availIn;
        if (have > 0) yield this.#out.slice(0, have);
        if (availOut !== 0 && len === 0) break;
      }
    } catch (e) {
      this.close();
      throw e;
    }
    if (end) this.close();
  }

  /** Releases the engine (idempotent). */
  close(): void {
    if (!this.#closed) {
      this.#closed = true;
      this.#handle.close();
    }
  }
}

const ZSTD_MAGIC = 0xfd2fb528;

/**
 * Walks the zstd frames of `data` (headers and block headers only, no decompression) and
 * returns the number of frames; throws {@link SplitStreamError} when a frame is truncated or
 * malformed, naming `name` and the byte offset. Skippable frames are allowed (libzstd skips
 * them). Streaming decompression alone cannot tell a truncated stream from a finished one.
 */
export function checkZstdFrames(data: Uint8Array, name = "splitstream"): number {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const fail = (off: number, what: string): never => {
    throw new SplitStreamError(`${name}: zstd data at byte ${off}: ${what}`);
  };
  let p = 0;
  let frames = 0;
  if (data.length === 0) fail(0, "empty (not a zstd stream)");
  while (p < data.length) {
    if (data.length - p < 4) fail(p, "truncated frame magic");
    const magic = dv.getUint32(p, true);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      if (data.length - p < 8) fail(p, "truncated skippable frame header");
      const size = dv.getUint32(p + 4, true);
      if (data.length - p - 8 < size) fail(p, `skippable frame of ${size} bytes is truncated`);
      p += 8 + size;
      continue;
    }
    if (magic !== ZSTD_MAGIC) fail(p, `bad frame magic 0x${magic.toString(16)}`);
    const frameStart = p;
    p += 4;
    if (p >= data.length) fail(frameStart, "truncated frame header");
    const fhd = data[p++];
    if (fhd & 0x08) fail(p - 1, "reserved bit set in frame header descriptor");
    const fcsFlag = fhd >> 6;
    const single = (fhd >> 5) & 1;
    const checksum = (fhd >> 2) & 1;
    const dictFlag = fhd & 3;
    const headerRest = (single ? 0 : 1) + [0, 1, 2, 4][dictFlag] +
      [single ? 1 : 0, 2, 4, 8][fcsFlag];
    if (data.length - p < headerRest) fail(frameStart, "truncated frame header");
    p += headerRest;
    for (;;) {
      if (data.length - p < 3) fail(p, "truncated block header");
      const bh = data[p] | (data[p + 1] << 8) | (data[p + 2] << 16);
      const last = bh & 1;
      const type = (bh >> 1) & 3;
      const size = bh >>> 3;
      p += 3;
      if (type === 3) fail(p - 3, "reserved block type");
      const stored = type === 1 ? 1 : size;
      if (data.length - p < stored) fail(p - 3, `block of ${stored} bytes is truncated`);
      p += stored;
      if (last) break;
    }
    if (checksum) {
      if (data.length - p < 4) fail(p, "truncated frame checksum");
      p += 4;
    }
    frames++;
  }
  if (frames === 0) fail(0, "no zstd frame");
  return frames;
}

// --- writer -------------------------------------------------------------------------------

/** Options of {@link SplitStreamWriter}. */
export interface SplitStreamWriterOptions {
  /** Size of the repository's object IDs: 32 (fsverity-sha256) or 64 (fsverity-sha512). */
  objectIdLength?: 32 | 64;
  /** Digest-map entries (any order; sorted and de-duplicated here). */
  digestMap?: DigestMapEntry[];
  /** When set, {@link SplitStreamWriter.finish} fails unless the content has this sha256. */
  expectedSha256?: Uint8Array;
}

/** Compressed input is handed to libzstd in pieces of this size (fewer engine calls). */
const STAGE_SIZE = 1 << 17;

/**
 * Builds a splitstream. Inline bytes are buffered only until the next external reference
 * (one fragment per inline run, like cfsctl 0.3.0), then streamed into the zstd compressor;
 * memory is the compressed output plus the longest inline run. The sha256 of the original
 * content is computed on the fly: inline bytes and padding here, external bodies through
 * {@link writeExternal}'s `content` or {@link hashExternal} (the caller streams them into the
 * object store; this class never touches storage).
 */
export class SplitStreamWriter {
  readonly objectIdLength: 32 | 64;
  #zstd = new ZstdEngine("compress");
  #compressed: Uint8Array[] = [];
  #stage = new Uint8Array(STAGE_SIZE);
  #staged = 0;
  #inline: Uint8Array[] = [];
  #inlineLength = 0;
  #hash: Hash = createHash("sha256");
  #sha256: Uint8Array | undefined;
  #expected: Uint8Array | undefined;
  #contentLength = 0;
  #externals = 0;
  #done = false;

  constructor(options: SplitStreamWriterOptions = {}) {
    this.objectIdLength = options.objectIdLength ?? 32;
    if (this.objectIdLength !== 32 && this.objectIdLength !== 64) {
      throw new SplitStreamError(`object ID length must be 32 or 64, not ${this.objectIdLength}`);
    }
    if (options.expectedSha256 && options.expectedSha256.length !== SHA256_SIZE) {
      throw new SplitStreamError("expectedSha256 must be 32 bytes");
    }
    this.#expected = options.expectedSha256;
    const map = normalizeDigestMap(options.digestMap ?? [], this.objectIdLength);
    this.#feed(u64le(map.length));
    for (const e of map) {
      this.#feed(e.body);
      this.#feed(e.verity);
    }
  }

  /** Bytes of original content seen so far (inline, padding and hashed external bodies). */
  get contentLength(): number {
    return this.#contentLength;
  }

  /** Number of external references written. */
  get externalCount(): number {
    return this.#externals;
  }

  /** Appends inline bytes (they are copied). */
  writeInline(data: Uint8Array): void {
    this.#open();
    if (data.length === 0) return;
    this.#hash.update(data);
    this.#contentLength += data.length;
    this.#inline.push(data.slice());
    this.#inlineLength += data.length;
  }

  /**
   * Feeds bytes of the next external object's content into the content hash (in order, before
   * its {@link writeExternal}); for bodies that stream in pieces.
   */
  hashExternal(chunk: Uint8Array): void {
    this.#open();
    this.#hash.update(chunk);
    this.#contentLength += chunk.length;
  }

  /**
   * Writes a reference to an object the caller has stored, then `padding` as the start of the
   * next inline run (tar padding after a body). The object's bytes must be hashed: pass them as
   * `content`, or through {@link hashExternal} beforehand.
   */
  writeExternal(
    objectId: Uint8Array,
    padding: Uint8Array = new Uint8Array(0),
    content?: Uint8Array,
  ): void {
    this.#open();
    if (objectId.length !== this.objectIdLength) {
      throw new SplitStreamError(
        `object ID of ${objectId.length} bytes; this stream uses ${this.objectIdLength}`,
      );
    }
    if (content) this.hashExternal(content);
    this.flushInline();
    this.#feed(u64le(0));
    this.#feed(objectId);
    this.#externals++;
    this.writeInline(padding);
  }

  /**
   * Ends the current inline run as a fragment now. {@link writeExternal} and {@link finish} do
   * this; call it yourself only to bound memory on very long inline runs, and only at a
   * boundary readers need whole (cfsctl's tar reader wants each 512-byte header and each inline
   * body within one fragment): the content stays the same, the fragmenting differs from cfsctl.
   */
  flushInline(): void {
    if (this.#inlineLength === 0) return;
    this.#feed(u64le(this.#inlineLength));
    for (const c of this.#inline) this.#feed(c);
    this.#inline = [];
    this.#inlineLength = 0;
  }

  /** sha256 of the original content; available after {@link finish}. */
  get contentSha256(): Uint8Array {
    if (!this.#sha256) throw new SplitStreamError("contentSha256 is known only after finish()");
    return this.#sha256;
  }

  /** Flushes, checks `expectedSha256`, and returns the compressed stream (the object to store). */
  finish(): Uint8Array {
    this.#open();
    this.flushInline();
    this.#done = true;
    this.#sha256 = new Uint8Array(this.#hash.digest());
    const last = this.#zstd.push(this.#stage.subarray(0, this.#staged), true);
    this.#compressed.push(...last);
    this.#staged = 0;
    let n = 0;
    for (const c of this.#compressed) n += c.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of this.#compressed) {
      out.set(c, o);
      o += c.length;
    }
    this.#compressed = [];
    if (this.#expected && compareBytes(this.#expected, this.#sha256) !== 0) {
      throw new SplitStreamError(
        `content has sha256 ${toHex(this.#sha256)}, expected ${toHex(this.#expected)}`,
      );
    }
    return out;
  }

  /** Releases the compressor without finishing (after an error). */
  abort(): void {
    this.#done = true;
    this.#zstd.close();
  }

  #open(): void {
    if (this.#done) throw new SplitStreamError("splitstream writer already finished");
  }

  /** Appends bytes to the decompressed content, staging small pieces. */
  #feed(b: Uint8Array): void {
    if (b.length >= STAGE_SIZE) {
      this.#drainStage();
      this.#compressed.push(...this.#zstd.push(b));
      return;
    }
    if (this.#staged + b.length > STAGE_SIZE) this.#drainStage();
    this.#stage.set(b, this.#staged);
    this.#staged += b.length;
  }

  #drainStage(): void {
    if (this.#staged === 0) return;
    this.#compressed.push(...this.#zstd.push(this.#stage.subarray(0, this.#staged)));
    this.#staged = 0;
  }
}

function normalizeDigestMap(entries: DigestMapEntry[], idLength: number): DigestMapEntry[] {
  for (const e of entries) {
    if (e.body.length !== SHA256_SIZE || e.verity.length !== idLength) {
      throw new SplitStreamError(
        `digest map entry needs a 32-byte body and a ${idLength}-byte object ID`,
      );
    }
  }
  const sorted = [...entries].sort((a, b) => compareBytes(a.body, b.body));
  const out: DigestMapEntry[] = [];
  for (const e of sorted) {
    const prev = out[out.length - 1];
    if (prev && compareBytes(prev.body, e.body) === 0) {
      if (compareBytes(prev.verity, e.verity) !== 0) {
        throw new SplitStreamError(
          `digest map: body ${toHex(e.body)} given two different object IDs`,
        );
      }
      continue;
    }
    out.push({ body: e.body.slice(), verity: e.verity.slice() });
  }
  return out;
}

/**
 * Convenience: a whole splitstream from a list of parts (tests, small streams such as configs).
 * `external` parts give the object ID and the content (hashed only).
 */
export function buildSplitStream(
  parts: Array<
    | { inline: Uint8Array }
    | { external: Uint8Array; content: Uint8Array; padding?: Uint8Array }
  >,
  options: SplitStreamWriterOptions = {},
): { bytes: Uint8Array; sha256: Uint8Array } {
  const w = new SplitStreamWriter(options);
  try {
    for (const p of parts) {
      if ("inline" in p) w.writeInline(p.inline);
      else w.writeExternal(p.external, p.padding, p.content);
    }
    const bytes = w.finish();
    return { bytes, sha256: w.contentSha256 };
  } catch (e) {
    w.abort();
    throw e;
  }
}

// --- reader -------------------------------------------------------------------------------

/** Options of {@link parseSplitStream}. */
export interface SplitStreamReaderOptions {
  /** Size of the repository's object IDs: 32 (fsverity-sha256, cfsctl 0.3.0) or 64. */
  objectIdLength?: 32 | 64;
  /** Name used in error messages (a path or the stream's sha256). */
  name?: string;
}

/** Pull-based reader of the decompressed content, bounded memory. */
class ContentCursor {
  #zstd = new ZstdEngine("decompress");
  #input: Uint8Array;
  #pending: Uint8Array[] = [];
  #pendingOff = 0; // offset into pending[0]
  #available = 0;
  /** Offset in the decompressed content of the next byte to be consumed. */
  offset = 0;

  constructor(input: Uint8Array, readonly name: string) {
    this.#input = input;
  }

  #chunks: Generator<Uint8Array> | undefined;

  /** Decompresses one more chunk; false when everything is out. */
  #produce(): boolean {
    this.#chunks ??= this.#chunkGen();
    const r = this.#chunks.next();
    if (r.done) return false;
    this.#pending.push(r.value);
    this.#available += r.value.length;
    return true;
  }

  *#chunkGen(): Generator<Uint8Array> {
    const STEP = 1 << 16;
    try {
      for (let p = 0; p < this.#input.length; p += STEP) {
        const slice = this.#input.subarray(p, Math.min(p + STEP, this.#input.length));
        try {
          yield* this.#zstd.pushLazily(slice);
        } catch (e) {
          if (e instanceof SplitStreamError) throw e;
          throw new SplitStreamError(
            `${this.name}: corrupt zstd data near byte ${p}: ${(e as Error).message}`,
            { cause: e },
          );
        }
      }
    } finally {
      this.#zstd.close();
    }
  }

  /** Ensures at least `n` bytes are available (or everything left); returns what is. */
  #want(n: number): number {
    while (this.#available < n && this.#produce()) { /* more */ }
    return this.#available;
  }

  /** True when the content is exhausted. */
  atEnd(): boolean {
    return this.#want(1) === 0;
  }

  /** Exactly `n` bytes (small n), or throws naming `what`. */
  readExact(n: number, what: string): Uint8Array {
    const start = this.offset;
    if (this.#want(n) < n) {
      throw new SplitStreamError(
        `${this.name}: content ends at offset ${start + this.#available} inside ${what} ` +
          `(${n} bytes needed at offset ${start})`,
      );
    }
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of this.take(n)) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }

  /** Yields `n` bytes in pieces (views, valid until the next call); throws if they run out. */
  *read(n: number, what: string): Generator<Uint8Array> {
    const start = this.offset;
    let left = n;
    while (left > 0) {
      if (this.#want(1) === 0) {
        throw new SplitStreamError(
          `${this.name}: ${what} claims ${n} bytes from offset ${start}; the content ends ` +
            `after ${n - left}`,
        );
      }
      const take = Math.min(left, this.#available);
      yield* this.take(take);
      left -= take;
    }
  }

  /** Consumes `n` available bytes. */
  *take(n: number): Generator<Uint8Array> {
    let left = n;
    while (left > 0) {
      const head = this.#pending[0];
      const have = head.length - this.#pendingOff;
      const k = Math.min(have, left);
      const piece = head.subarray(this.#pendingOff, this.#pendingOff + k);
      this.#pendingOff += k;
      if (this.#pendingOff === head.length) {
        this.#pending.shift();
        this.#pendingOff = 0;
      }
      this.#available -= k;
      this.offset += k;
      left -= k;
      yield piece;
    }
  }

  close(): void {
    this.#zstd.close();
  }
}

/**
 * A parsed splitstream: the digest map is read and checked up front; fragments are decoded on
 * each pass over the (compressed) bytes, so memory stays bounded for any stream size.
 */
export class SplitStreamReader {
  private constructor(
    readonly bytes: Uint8Array,
    readonly name: string,
    readonly objectIdLength: 32 | 64,
    private readonly map: DigestMapEntry[],
  ) {}

  /** Checks the zstd framing and reads the digest map; throws {@link SplitStreamError}. */
  static parse(bytes: Uint8Array, options: SplitStreamReaderOptions = {}): SplitStreamReader {
    const name = options.name ?? "splitstream";
    const idLength = options.objectIdLength ?? 32;
    checkZstdFrames(bytes, name);
    const cur = new ContentCursor(bytes, name);
    try {
      const map = readDigestMap(cur, idLength);
      return new SplitStreamReader(bytes, name, idLength, map);
    } finally {
      cur.close();
    }
  }

  /** The digest map (sha256 of referenced streams -> their object IDs), sorted by body. */
  digestMap(): DigestMapEntry[] {
    return this.map.map((e) => ({ body: e.body.slice(), verity: e.verity.slice() }));
  }

  /** The object ID recorded for a referenced stream's sha256, if any. */
  lookup(body: Uint8Array): Uint8Array | undefined {
    let lo = 0;
    let hi = this.map.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const c = compareBytes(this.map[mid].body, body);
      if (c === 0) return this.map[mid].verity.slice();
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }

  /**
   * Decodes the fragments in order. Inline data comes in pieces (several consecutive `inline`
   * items may belong to one fragment, the first has `start`); each piece is its own copy.
   */
  *fragments(): Generator<SplitStreamFragment> {
    const cur = new ContentCursor(this.bytes, this.name);
    try {
      readDigestMap(cur, this.objectIdLength);
      while (!cur.atEnd()) {
        const at = cur.offset;
        const size = readU64(cur, "fragment size");
        if (size === 0) {
          const id = cur.readExact(this.objectIdLength, `external reference at offset ${at}`);
          yield { kind: "external", id, offset: at };
        } else {
          let start = true;
          for (const piece of cur.read(size, `inline fragment at offset ${at}`)) {
            yield { kind: "inline", data: piece, offset: at, start };
            start = false;
          }
        }
      }
    } finally {
      cur.close();
    }
  }

  /**
   * Object IDs this stream needs (for GC): the digest map's object IDs, then every external
   * reference in order (duplicates kept, as cfsctl reports them).
   */
  objectRefs(): Uint8Array[] {
    const out: Uint8Array[] = this.map.map((e) => e.verity.slice());
    for (const f of this.fragments()) if (f.kind === "external") out.push(f.id);
    return out;
  }

  /** Total size of the inline bytes and the number of external references (one pass). */
  stats(): { inlineBytes: number; externals: number; fragments: number } {
    let inlineBytes = 0;
    let externals = 0;
    let fragments = 0;
    for (const f of this.fragments()) {
      if (f.kind === "inline") {
        inlineBytes += f.data.length;
        if (f.start) fragments++;
      } else {
        externals++;
        fragments++;
      }
    }
    return { inlineBytes, externals, fragments };
  }

  /**
   * Reproduces the original bytes: inline data and, for each external reference, the object's
   * bytes from `getObject` (whole, or as an (async) iterable of chunks).
   */
  async *cat(getObject: ObjectSource): AsyncGenerator<Uint8Array> {
    for (const f of this.fragments()) {
      if (f.kind === "inline") {
        yield f.data;
        continue;
      }
      const got = await getObject(f.id);
      if (got instanceof Uint8Array) yield got;
      else if (Symbol.asyncIterator in got) { for await (const c of got) yield c; }
      else for (const c of got) yield c;
    }
  }
}

/** {@link SplitStreamReader.parse} as a function. */
export function parseSplitStream(
  bytes: Uint8Array,
  options: SplitStreamReaderOptions = {},
): SplitStreamReader {
  return SplitStreamReader.parse(bytes, options);
}

function readU64(cur: ContentCursor, what: string): number {
  const at = cur.offset;
  const b = cur.readExact(8, what);
  const v = new DataView(b.buffer).getBigUint64(0, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new SplitStreamError(`${cur.name}: ${what} at offset ${at} is absurd (${v})`);
  }
  return Number(v);
}

function readDigestMap(cur: ContentCursor, idLength: number): DigestMapEntry[] {
  const n = readU64(cur, "digest map count");
  if (n > MAX_DIGEST_MAP_ENTRIES) {
    throw new SplitStreamError(
      `${cur.name}: digest map count at offset 0 is ${n} (more than ${MAX_DIGEST_MAP_ENTRIES})`,
    );
  }
  const map: DigestMapEntry[] = [];
  for (let i = 0; i < n; i++) {
    const at = cur.offset;
    const e = cur.readExact(SHA256_SIZE + idLength, `digest map entry ${i} of ${n}`);
    const entry = { body: e.slice(0, SHA256_SIZE), verity: e.slice(SHA256_SIZE) };
    const prev = map[map.length - 1];
    if (prev && compareBytes(prev.body, entry.body) >= 0) {
      throw new SplitStreamError(
        `${cur.name}: digest map entry ${i} at offset ${at} is out of order or repeated`,
      );
    }
    map.push(entry);
  }
  return map;
}

// --- repository naming (pure) ---------------------------------------------------------------

/** `objects/XX/<rest>` relative to the repository, for an object ID. */
export function objectRelativePath(objectId: Uint8Array): string {
  const h = toHex(objectId);
  return `objects/${h.slice(0, 2)}/${h.slice(2)}`;
}

/** Target of `streams/<sha256 hex>`: `../objects/XX/<rest>` (cfsctl 0.3.0's relative link). */
export function streamSymlinkTarget(objectId: Uint8Array): string {
  return `../${objectRelativePath(objectId)}`;
}

/**
 * Target of the named ref `streams/refs/<name>`: one `../` per path component of `name`, then
 * the stream's sha256 hex (cfsctl 0.3.0 `Repository::symlink`: `refs/oci/x` -> `../../<hex>`).
 */
export function streamRefSymlinkTarget(name: string, contentSha256: Uint8Array): string {
  const parts = name.split("/");
  if (parts.some((p) => p === "" || p === "." || p === "..")) {
    throw new SplitStreamError(`bad stream ref name ${JSON.stringify(name)}`);
  }
  return `${"../".repeat(parts.length)}${toHex(contentSha256)}`;
}
