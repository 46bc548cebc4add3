/**
 * zstd for splitstreams through public `node:zlib` APIs only: `zstdCompressSync` /
 * `zstdDecompressSync` for small sections, `createZstdCompress` / `createZstdDecompress` streams
 * for the (possibly large) stream section.
 *
 * Why these produce composefs-rs's bytes: composefs-rs writes with the Rust `zstd` crate's
 * `Encoder::new(vec![], 0)` (level 0 = libzstd's default, 3), feeding bytes with plain writes
 * and ending with `finish()`. libzstd's streaming compressor buffers input up to a full block
 * before it compresses, so the output does not depend on how the input is split into writes,
 * and neither libzstd nor Deno's binding pledge a source size: the frame header carries a
 * window descriptor and no content size. Both properties are pinned by the tests against
 * cfsctl 0.9.4.
 *
 * A quirk handled here: Deno 2.9's zstd compressor (sync and streaming alike) sometimes ends
 * its output with a second, empty frame (`28 b5 2f fd 20 00 01 00 00`: content size 0, one
 * empty block) after the real one, depending on how the output fills its buffers (e.g. for
 * 131,071 bytes of input but not for 131,072). composefs-rs writes one frame; the extra frame
 * is dropped ({@link singleFrame}).
 *
 * Why frames are walked by hand ({@link zstdFrames}): Deno's zstd decompressor stops after the
 * first frame, ignores bytes after it, and reports nothing when the input ends inside a frame.
 * composefs-rs reads every frame and fails on a truncated one or on trailing junk, so this
 * module splits a section into frames first (headers only, no decompression) and decompresses
 * each frame on its own.
 *
 * @module
 */
import * as zlib from "node:zlib";
import { concatBytes } from "../bytes.ts";
import { SplitStreamError } from "./error.ts";

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
/** Output piece size of the streaming decompressor (and so of inline data pieces). */
const DECOMPRESS_CHUNK = 1 << 16;
/** Uncompressed bytes the compressor is handed at once; output does not depend on it. */
const COMPRESS_BATCH = 1 << 20;

/** One frame found by {@link zstdFrames}: where it is, and whether it holds data. */
export interface ZstdFrame {
  /** Offset of the frame's first byte in the walked bytes. */
  start: number;
  /** Offset just past the frame. */
  end: number;
  /** True for a skippable frame (no content; libzstd skips it). */
  skippable: boolean;
}

/**
 * Walks the zstd frames of `data` (frame and block headers only, no decompression) and returns
 * them; throws {@link SplitStreamError} naming `what` and the byte offset when a frame is
 * truncated or malformed, when bytes follow the last frame, or when there is no frame at all
 * (composefs-rs fails on an empty section: "incomplete frame").
 */
export function zstdFrames(data: Uint8Array, what: string): ZstdFrame[] {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const fail = (off: number, problem: string): never => {
    throw new SplitStreamError(`${what}: zstd data at byte ${off}: ${problem}`);
  };
  const frames: ZstdFrame[] = [];
  let p = 0;
  if (data.length === 0) fail(0, "empty (no zstd frame)");
  while (p < data.length) {
    const start = p;
    if (data.length - p < 4) fail(p, "truncated frame magic (or junk after the last frame)");
    const magic = dv.getUint32(p, true);
    if (((magic & SKIPPABLE_MASK) >>> 0) === SKIPPABLE_MAGIC) {
      if (data.length - p < 8) fail(p, "truncated skippable frame header");
      const size = dv.getUint32(p + 4, true);
      if (data.length - p - 8 < size) fail(p, `skippable frame of ${size} bytes is truncated`);
      p += 8 + size;
      frames.push({ start, end: p, skippable: true });
      continue;
    }
    if (magic !== ZSTD_MAGIC) {
      fail(p, `bad frame magic 0x${magic.toString(16).padStart(8, "0")}`);
    }
    p += 4;
    if (p >= data.length) fail(start, "truncated frame header");
    const fhd = data[p++];
    if (fhd & 0x08) fail(p - 1, "reserved bit set in the frame header descriptor");
    const fcsFlag = fhd >> 6;
    const single = (fhd >> 5) & 1;
    const checksum = (fhd >> 2) & 1;
    const dictFlag = fhd & 3;
    const headerRest = (single ? 0 : 1) + [0, 1, 2, 4][dictFlag] +
      [single ? 1 : 0, 2, 4, 8][fcsFlag];
    if (data.length - p < headerRest) fail(start, "truncated frame header");
    p += headerRest;
    for (;;) {
      if (data.length - p < 3) fail(p, "truncated block header");
      const bh = data[p] | (data[p + 1] << 8) | (data[p + 2] << 16);
      const last = bh & 1;
      const type = (bh >> 1) & 3;
      const size = bh >>> 3;
      if (type === 3) fail(p, "reserved block type");
      p += 3;
      const stored = type === 1 ? 1 : size; // an RLE block stores one byte
      if (data.length - p < stored) fail(p - 3, `block of ${stored} bytes is truncated`);
      p += stored;
      if (last) break;
    }
    if (checksum) {
      if (data.length - p < 4) fail(p, "truncated frame checksum");
      p += 4;
    }
    frames.push({ start, end: p, skippable: false });
  }
  if (!frames.some((f) => !f.skippable)) fail(0, "no zstd data frame");
  return frames;
}

/** The empty frame Deno's compressor sometimes appends (see the module doc). */
const EMPTY_FRAME = Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00);

/**
 * The compressor's output cut to its first frame, after checking that whatever follows is
 * only the empty frame of Deno's quirk (anything else is a bug worth failing loudly on).
 */
function singleFrame(out: Uint8Array): Uint8Array {
  const frames = zstdFrames(out, "zstd compressor output");
  for (const f of frames.slice(1)) {
    const extra = out.subarray(f.start, f.end);
    if (extra.length !== EMPTY_FRAME.length || !extra.every((b, i) => b === EMPTY_FRAME[i])) {
      throw new SplitStreamError(
        `zstd compressor wrote an unexpected second frame of ${extra.length} bytes`,
      );
    }
  }
  return frames.length === 1 ? out : out.slice(0, frames[0].end);
}

/**
 * What composefs-rs writes for a section with no bytes at all: its encoder, finished before any
 * write, starts the frame knowing the input is empty, so the header records a content size of 0
 * (single segment) instead of a window size. `pledgedSrcSize: 0` makes libzstd do the same.
 */
function emptyFrame(): Uint8Array {
  // Node documents `pledgedSrcSize`; Deno's bundled type declarations lack it.
  const options: Record<string, number> = { pledgedSrcSize: 0 };
  return new Uint8Array(zlib.zstdCompressSync(new Uint8Array(0), options as zlib.ZstdOptions));
}

/** Compresses a small section in one call (composefs-rs's bytes; see the module doc). */
export function zstdCompressSmall(data: Uint8Array): Uint8Array {
  if (data.length === 0) return emptyFrame();
  return singleFrame(new Uint8Array(zlib.zstdCompressSync(data)));
}

/**
 * Decompresses a small section whole, every frame, refusing more than `maxOutput` bytes (a
 * decompression bomb in a hostile repository costs at most that much memory).
 */
export function zstdDecompressSmall(data: Uint8Array, what: string, maxOutput: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const f of zstdFrames(data, what)) {
    if (f.skippable) continue;
    let out: Uint8Array;
    try {
      out = zlib.zstdDecompressSync(data.subarray(f.start, f.end), {
        maxOutputLength: Math.max(1, maxOutput - total),
      });
    } catch (e) {
      const msg = (e as Error).message;
      if (/larger than|maxOutputLength|buffer/i.test(msg)) {
        throw new SplitStreamError(`${what}: decompresses to more than ${maxOutput} bytes`);
      }
      throw new SplitStreamError(`${what}: corrupt zstd frame at byte ${f.start}: ${msg}`, {
        cause: e,
      });
    }
    total += out.length;
    if (total > maxOutput) {
      throw new SplitStreamError(`${what}: decompresses to more than ${maxOutput} bytes`);
    }
    parts.push(out);
  }
  return parts.length === 1 ? parts[0] : concatBytes(parts);
}

/**
 * Streaming compressor for the stream section: {@link push} queues uncompressed bytes,
 * {@link flow} hands them over in batches and waits while the compressor is behind,
 * {@link finish} returns the whole compressed frame. Memory: the compressed output plus one batch.
 */
export class ZstdStreamCompressor {
  #stream = zlib.createZstdCompress();
  #out: Uint8Array[] = [];
  #batch: Uint8Array[] = [];
  #batched = 0;
  #error: Error | undefined;
  #ended: Promise<void>;
  #written = false;
  #done = false;

  constructor() {
    this.#stream.on("data", (c: Uint8Array) => this.#out.push(c));
    this.#ended = new Promise<void>((resolve, reject) => {
      this.#stream.on("end", () => resolve());
      this.#stream.on("error", (e: Error) => {
        this.#error = e;
        reject(e);
      });
    });
    this.#ended.catch(() => {}); // observed through #error and finish()
  }

  /**
   * Queues `data` synchronously, so that calls keep their order even when nobody awaits
   * {@link flow} in between. The bytes are kept by reference: do not modify them afterwards.
   */
  push(data: Uint8Array): void {
    if (this.#done) throw new SplitStreamError("zstd compressor already finished");
    if (this.#error) throw this.#error;
    if (data.length === 0) return;
    this.#batch.push(data);
    this.#batched += data.length;
  }

  /** Hands a full batch to the compressor and waits while it is behind (backpressure). */
  async flow(): Promise<void> {
    if (this.#error) throw this.#error;
    if (this.#batched >= COMPRESS_BATCH) await this.#drain();
  }

  async #drain(): Promise<void> {
    if (this.#batched === 0) return;
    this.#written = true;
    const chunk = this.#batch.length === 1 ? this.#batch[0] : concatBytes(this.#batch);
    this.#batch = [];
    this.#batched = 0;
    if (!this.#stream.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          this.#stream.off("error", onError);
          resolve();
        };
        const onError = (e: Error) => {
          this.#stream.off("drain", onDrain);
          reject(e);
        };
        this.#stream.once("drain", onDrain);
        this.#stream.once("error", onError);
      });
    }
    if (this.#error) throw this.#error;
  }

  /** Ends the frame and returns all compressed bytes. */
  async finish(): Promise<Uint8Array> {
    if (this.#done) throw new SplitStreamError("zstd compressor already finished");
    if (!this.#written && this.#batched === 0) {
      this.abort();
      return emptyFrame();
    }
    await this.#drain();
    this.#done = true;
    this.#stream.end();
    await this.#ended;
    const out = concatBytes(this.#out);
    this.#out = [];
    return singleFrame(out);
  }

  /** Releases the compressor without finishing (after an error). */
  abort(): void {
    this.#done = true;
    this.#batch = [];
    this.#stream.destroy();
  }
}

/**
 * Decompresses `data` (already split into frames by {@link zstdFrames}) lazily: each output
 * piece (at most 64 KiB) is produced when the consumer asks for it, so a decompression bomb
 * costs no more memory than the consumer keeps. Stopping early releases the decompressor.
 */
export async function* zstdDecompressPieces(
  data: Uint8Array,
  frames: readonly ZstdFrame[],
  what: string,
): AsyncGenerator<Uint8Array> {
  for (const f of frames) {
    if (f.skippable) continue;
    const stream = zlib.createZstdDecompress({ chunkSize: DECOMPRESS_CHUNK });
    try {
      stream.end(data.subarray(f.start, f.end));
      for await (const piece of stream as AsyncIterable<Uint8Array>) {
        yield new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength);
      }
    } catch (e) {
      if (e instanceof SplitStreamError) throw e;
      throw new SplitStreamError(
        `${what}: corrupt zstd frame at byte ${f.start}: ${(e as Error).message}`,
        { cause: e },
      );
    } finally {
      stream.destroy();
    }
  }
}
