/**
 * The splitstream writer of composefs-rs 0.9.4, byte for byte (`SplitStreamWriter` in
 * `composefs/src/splitstream.rs`); the format is in `format.ts`.
 *
 * The rules that decide the bytes:
 *
 * - inline bytes are collected until the next external chunk (or the end) and written as one
 *   chunk: `-length` as i64, then the bytes. Empty writes add nothing; there is never a
 *   zero-length inline chunk;
 * - an external chunk is its index in the object refs array, which lists each object id once,
 *   in order of first appearance;
 * - {@link SplitStreamWriter.addNamedRef} puts the stream's id in the stream refs array (once,
 *   in order of first appearance) and maps the name to its index; a name given twice keeps the
 *   last id (the first id stays in the array, as in composefs-rs). Records are written sorted
 *   by the UTF-8 bytes of the name;
 * - `stream_size` counts inline bytes and the sizes given for external chunks;
 * - the file is header, info, stream refs, object refs, named refs, stream; named refs are one
 *   zstd frame even when there are none (a frame of nothing).
 *
 * Memory: the compressed stream (small: tar headers compress well) and the current inline run
 * (composefs-rs keeps it whole too, since its length comes first). Nothing here touches the
 * repository: the caller stores external objects and the finished file.
 *
 * @module
 */
import { digestSize, type VerityAlgorithm } from "../fsverity/digest.ts";
import { concatBytes } from "../bytes.ts";
import { toHex } from "../fsverity/digest.ts";
import { SplitStreamError } from "./error.ts";
import {
  compareUtf8,
  encodeHeader,
  encodeInfo,
  encodeNamedRefs,
  HEADER_SIZE,
  INFO_SIZE,
} from "./format.ts";
import { zstdCompressSmall, ZstdStreamCompressor } from "./zstd.ts";

/** Options of {@link SplitStreamWriter}. */
export interface SplitStreamWriterOptions {
  /** The repository's fs-verity algorithm: decides the id size (32 or 64) and the header. */
  algorithm: VerityAlgorithm;
  /** What the content is ({@link CONTENT_TYPE} in `format.ts`); 0 when not given. */
  contentType?: bigint;
}

/** Ids kept once each, in order of first appearance, with their index. */
class IdList {
  readonly ids: Uint8Array[] = [];
  #index = new Map<string, number>();

  ensure(id: Uint8Array): number {
    const key = toHex(id);
    let i = this.#index.get(key);
    if (i === undefined) {
      i = this.ids.length;
      this.#index.set(key, i);
      this.ids.push(id.slice());
    }
    return i;
  }
}

function i64le(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, BigInt(n), true);
  return b;
}

/**
 * Builds one splitstream file. Call {@link writeInline} and {@link writeExternal} in content
 * order, {@link addNamedRef} at any time, then {@link finish} for the file's bytes; after an
 * error, {@link abort}.
 */
export class SplitStreamWriter {
  /** The fs-verity algorithm of the ids. */
  readonly algorithm: VerityAlgorithm;
  /** The content type written to the info section. */
  readonly contentType: bigint;
  #idSize: number;
  #zstd = new ZstdStreamCompressor();
  #inline: Uint8Array[] = [];
  #inlineLength = 0;
  #objectRefs = new IdList();
  #streamRefs = new IdList();
  #named = new Map<string, number>();
  #streamSize = 0;
  #done = false;

  /** A writer for one file of `options.algorithm`'s ids and `options.contentType`. */
  constructor(options: SplitStreamWriterOptions) {
    if (options.algorithm !== "sha256" && options.algorithm !== "sha512") {
      throw new SplitStreamError(`unknown fs-verity algorithm '${options.algorithm}'`);
    }
    this.algorithm = options.algorithm;
    this.#idSize = digestSize(options.algorithm);
    this.contentType = BigInt.asUintN(64, options.contentType ?? 0n);
  }

  /** Size of the content so far: inline bytes plus the sizes of external chunks. */
  get streamSize(): number {
    return this.#streamSize;
  }

  /** The object ids referenced so far, each once, in order of first appearance. */
  get objectRefs(): readonly Uint8Array[] {
    return this.#objectRefs.ids;
  }

  /** Appends inline bytes (copied); adjacent inline bytes become one chunk. */
  writeInline(data: Uint8Array): void {
    this.#open();
    if (data.length === 0) return;
    this.#inline.push(data.slice());
    this.#inlineLength += data.length;
    this.#streamSize += data.length;
  }

  /**
   * Appends a reference to the stored object `objectId` whose content is `size` bytes (counted
   * in `stream_size`; the writer cannot check it). Resolves when the compressor has taken the
   * bytes so far.
   */
  async writeExternal(objectId: Uint8Array, size: number): Promise<void> {
    this.#open();
    this.#checkId(objectId, "object id");
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new SplitStreamError(`external chunk size ${size} is not a byte count`);
    }
    this.#flushInline();
    const index = this.#objectRefs.ensure(objectId);
    this.#streamSize += size;
    this.#zstd.push(i64le(index));
    await this.#zstd.flow();
  }

  /**
   * Records that this stream refers to the splitstream object `streamObjectId` under `name`
   * (an OCI config names each layer's stream by its diff_id); gc keeps referenced streams.
   */
  addNamedRef(name: string, streamObjectId: Uint8Array): void {
    this.#open();
    this.#checkId(streamObjectId, "stream object id");
    if (name.includes("\0")) {
      throw new SplitStreamError(`named ref ${JSON.stringify(name)} contains a NUL byte`);
    }
    this.#named.set(name, this.#streamRefs.ensure(streamObjectId));
  }

  /** Ends the stream and returns the complete file (the object to store). */
  async finish(): Promise<Uint8Array> {
    this.#open();
    let stream: Uint8Array;
    try {
      this.#flushInline();
      this.#done = true;
      stream = await this.#zstd.finish();
    } catch (e) {
      this.abort();
      throw e;
    }
    const records = [...this.#named]
      .sort(([a], [b]) => compareUtf8(a, b))
      .map(([name, index]) => ({ name, index }));
    const named = zstdCompressSmall(encodeNamedRefs(records));
    const streamRefs = concatBytes(this.#streamRefs.ids);
    const objectRefs = concatBytes(this.#objectRefs.ids);

    const info = { start: HEADER_SIZE, end: HEADER_SIZE + INFO_SIZE };
    const streamRefsRange = { start: info.end, end: info.end + streamRefs.length };
    const objectRefsRange = {
      start: streamRefsRange.end,
      end: streamRefsRange.end + objectRefs.length,
    };
    const namedRange = { start: objectRefsRange.end, end: objectRefsRange.end + named.length };
    const streamRange = { start: namedRange.end, end: namedRange.end + stream.length };
    return concatBytes([
      encodeHeader(this.algorithm, info),
      encodeInfo({
        streamRefs: streamRefsRange,
        objectRefs: objectRefsRange,
        stream: streamRange,
        namedRefs: namedRange,
        contentType: this.contentType,
        streamSize: this.#streamSize,
      }),
      streamRefs,
      objectRefs,
      named,
      stream,
    ]);
  }

  /** Releases the compressor without finishing (after an error; idempotent). */
  abort(): void {
    this.#done = true;
    this.#inline = [];
    this.#zstd.abort();
  }

  /** Queues the pending inline run as one chunk (synchronously: calls keep their order). */
  #flushInline(): void {
    if (this.#inlineLength === 0) return;
    this.#zstd.push(i64le(-this.#inlineLength));
    for (const piece of this.#inline) this.#zstd.push(piece);
    this.#inline = [];
    this.#inlineLength = 0;
  }

  #checkId(id: Uint8Array, what: string): void {
    if (!(id instanceof Uint8Array) || id.length !== this.#idSize) {
      throw new SplitStreamError(
        `${what} of ${id?.length} bytes; a ${this.algorithm} splitstream uses ${this.#idSize}`,
      );
    }
  }

  #open(): void {
    if (this.#done) throw new SplitStreamError("splitstream writer already finished");
  }
}
