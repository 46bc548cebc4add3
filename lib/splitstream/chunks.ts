/**
 * What both splitstream readers (0.9.4's and the legacy 0.3.0 one) yield: the content as a
 * sequence of chunks, inline bytes in pieces and references to external objects. Shared so that
 * code reading a stream (cat, the tar reader, fsck, the repository upgrade) does not care which
 * format the object is in.
 *
 * @module
 */
import { SplitStreamError } from "./error.ts";

/** A source of a splitstream file's bytes: whole in memory, or read by offset (a file). */
export type SplitStreamSource = Uint8Array | RandomAccessSource;

/** Random access to a file's bytes (e.g. an open repository object). */
export interface RandomAccessSource {
  /** The file's size in bytes. */
  readonly size: number;
  /** Exactly `length` bytes from `offset` (within `size`). */
  readAt(offset: number, length: number): Uint8Array;
}

/** Size of a source. */
export function sourceSize(source: SplitStreamSource): number {
  return source instanceof Uint8Array ? source.length : source.size;
}

/** Bytes `[start, end)` of a source (a view for in-memory sources); `end` is checked. */
export function sourceRange(
  source: SplitStreamSource,
  start: number,
  end: number,
  what: string,
): Uint8Array {
  if (source instanceof Uint8Array) return source.subarray(start, end);
  const out = source.readAt(start, end - start);
  if (out.length !== end - start) {
    throw new SplitStreamError(
      `${what}: short read at byte ${start} (${out.length} of ${end - start} bytes)`,
    );
  }
  return out;
}

/**
 * One item of a splitstream's content, in order. An inline chunk comes as one or more
 * `inline` pieces (at most 64 KiB each; `first` on the first, `last` on the last, `size` the
 * whole chunk's length); each piece is the consumer's to keep.
 */
export type SplitStreamChunk =
  | {
    kind: "inline";
    /** The piece's bytes. */
    data: Uint8Array;
    /** True on the chunk's first piece. */
    first: boolean;
    /** True on the chunk's last piece. */
    last: boolean;
    /** Length of the whole inline chunk. */
    size: number;
  }
  | {
    kind: "external";
    /** The object id (fs-verity digest) whose content goes here. */
    id: Uint8Array;
    /** Index into the object refs array (0.9.4 format); undefined for 0.3.0 streams. */
    index?: number;
  };

/** Where the bytes of an external object come from when reproducing a stream's content. */
export type ObjectSource = (
  id: Uint8Array,
) =>
  | Uint8Array
  | Iterable<Uint8Array>
  | AsyncIterable<Uint8Array>
  | Promise<Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>>;

/**
 * The original content from chunks: inline bytes as they are, each external chunk replaced by
 * the object's bytes from `getObject`. With `expectedSize`, a total that differs is an error
 * naming `what` (a 0.9.4 stream records its size).
 */
export async function* catChunks(
  chunks: AsyncIterable<SplitStreamChunk>,
  getObject: ObjectSource,
  what: string,
  expectedSize?: number,
): AsyncGenerator<Uint8Array> {
  let total = 0;
  for await (const c of chunks) {
    if (c.kind === "inline") {
      total += c.data.length;
      yield c.data;
      continue;
    }
    const got = await getObject(c.id);
    if (got instanceof Uint8Array) {
      total += got.length;
      yield got;
    } else if (Symbol.asyncIterator in got) {
      for await (const piece of got) {
        total += piece.length;
        yield piece;
      }
    } else {
      for (const piece of got) {
        total += piece.length;
        yield piece;
      }
    }
  }
  if (expectedSize !== undefined && total !== expectedSize) {
    throw new SplitStreamError(
      `${what}: content is ${total} bytes, the stream records ${expectedSize}`,
    );
  }
}

/**
 * Pull-based reader over decompressed pieces: exact small reads (chunk headers) and long reads
 * in pieces (inline data), with the content offset for error messages.
 */
export class ByteCursor {
  #source: AsyncIterator<Uint8Array>;
  #head: Uint8Array = new Uint8Array(0);
  #ended = false;
  /** Offset in the decompressed content of the next byte. */
  offset = 0;

  constructor(pieces: AsyncIterable<Uint8Array>) {
    this.#source = pieces[Symbol.asyncIterator]();
  }

  /** True when at least one byte is left, pulling a piece if needed. */
  async more(): Promise<boolean> {
    while (this.#head.length === 0) {
      if (this.#ended) return false;
      const r = await this.#source.next();
      if (r.done) {
        this.#ended = true;
        return false;
      }
      this.#head = r.value;
    }
    return true;
  }

  /**
   * Exactly `n` bytes (small n, copied), or undefined at a clean end (no byte left); an end
   * after some bytes is an error naming `what`.
   */
  async exact(n: number, what: string, name: string): Promise<Uint8Array | undefined> {
    const start = this.offset;
    const out = new Uint8Array(n);
    let have = 0;
    while (have < n) {
      if (!(await this.more())) {
        if (have === 0) return undefined;
        throw new SplitStreamError(
          `${name}: content ends inside ${what} at offset ${start} (${have} of ${n} bytes)`,
        );
      }
      const k = Math.min(n - have, this.#head.length);
      out.set(this.#head.subarray(0, k), have);
      this.#head = this.#head.subarray(k);
      have += k;
      this.offset += k;
    }
    return out;
  }

  /** `n` bytes in pieces (copies); running out is an error naming `what`. */
  async *pieces(n: number, what: string, name: string): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      if (!(await this.more())) {
        throw new SplitStreamError(
          `${name}: ${what} claims ${n} bytes; the content ends after ${n - left}`,
        );
      }
      const k = Math.min(left, this.#head.length);
      const piece = this.#head.slice(0, k);
      this.#head = this.#head.subarray(k);
      left -= k;
      this.offset += k;
      yield piece;
    }
  }

  /** Stops the underlying source early (releases a decompressor). */
  async close(): Promise<void> {
    if (!this.#ended) {
      this.#ended = true;
      await this.#source.return?.();
    }
  }
}
