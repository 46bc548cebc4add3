/**
 * The splitstream reader for composefs-rs 0.9.4's format (either header layout); the format is
 * in `format.ts`.
 *
 * Repositories are hostile input, so {@link SplitStreamReader.open} checks everything it can
 * without decompressing the stream: header fields, every range inside the file, the refs
 * arrays' sizes, the named refs (decompressed, at most {@link MAX_NAMED_REFS_BYTES}, each index
 * within the stream refs), the frame structure of the stream section (truncation, junk after
 * the last frame), the algorithm and content type the caller expects. The chunks are checked
 * as they are decoded: a chunk header cut short, inline data past the end, an external index
 * outside the object refs. `cat` also checks the total against the recorded `stream_size`.
 *
 * Memory: the compressed stream section is held (it is small: tar headers compress well), the
 * decompressed content never is; inline data comes in pieces of at most 64 KiB.
 *
 * For gc, {@link readSplitStreamRefs} reads only the header, the info and the two refs arrays.
 *
 * composefs-rs 0.9.4 ignores bytes of the file outside the sections; so does this reader (a
 * future writer may grow the info section or add sections).
 *
 * @module
 */
import { type VerityAlgorithm } from "../fsverity/digest.ts";
import { SplitStreamError } from "./error.ts";
import {
  checkRange,
  decodeHeader,
  decodeIdArray,
  decodeInfo,
  decodeNamedRefs,
  describeContentType,
  HEADER_SIZE,
  type HeaderLayout,
  type SplitStreamHeader,
  type SplitStreamInfo,
} from "./format.ts";
import {
  ByteCursor,
  catChunks,
  type ObjectSource,
  sourceRange,
  sourceSize,
  type SplitStreamChunk,
  type SplitStreamSource,
} from "./chunks.ts";
import { zstdDecompressPieces, zstdDecompressSmall, type ZstdFrame, zstdFrames } from "./zstd.ts";

/** Largest decompressed named refs section accepted (about 200,000 layer refs). */
export const MAX_NAMED_REFS_BYTES = 16 << 20;

/** Options of {@link SplitStreamReader.open} and {@link readSplitStreamRefs}. */
export interface SplitStreamReadOptions {
  /** Names the stream in errors (a path or an object id); default "splitstream". */
  name?: string;
  /** The repository's algorithm: a stream of the other one is an error. */
  algorithm?: VerityAlgorithm;
  /** The content type the caller expects (`CONTENT_TYPE.ociLayer`, ...): others are errors. */
  contentType?: bigint;
}

/** The references of a splitstream: what gc needs, read without decompressing anything. */
export interface SplitStreamRefs {
  /** The header's fs-verity algorithm. */
  algorithm: VerityAlgorithm;
  /** Which header layout the file has. */
  layout: HeaderLayout;
  /** The content type. */
  contentType: bigint;
  /** Size of the original content. */
  streamSize: number;
  /** Object ids of the splitstreams this one refers to (named refs index into this). */
  streamRefs: Uint8Array[];
  /** Object ids of the external chunks' objects. */
  objectRefs: Uint8Array[];
}

interface Parsed {
  header: SplitStreamHeader;
  info: SplitStreamInfo;
  refs: SplitStreamRefs;
}

function parseRefs(source: SplitStreamSource, options: SplitStreamReadOptions): Parsed {
  const name = options.name ?? "splitstream";
  const size = sourceSize(source);
  if (size < HEADER_SIZE) {
    throw new SplitStreamError(
      `${name}: ${size} bytes, too short for a splitstream header (${HEADER_SIZE})`,
    );
  }
  const header = decodeHeader(sourceRange(source, 0, HEADER_SIZE, name), name);
  if (options.algorithm && options.algorithm !== header.algorithm) {
    throw new SplitStreamError(
      `${name}: a ${header.algorithm} splitstream; this repository uses ${options.algorithm}`,
    );
  }
  checkRange(header.info, size, name, "info range");
  const info = decodeInfo(sourceRange(source, header.info.start, header.info.end, name), name);
  if (options.contentType !== undefined && options.contentType !== info.contentType) {
    throw new SplitStreamError(
      `${name}: content type ${describeContentType(info.contentType)}, expected ` +
        describeContentType(options.contentType),
    );
  }
  checkRange(info.streamRefs, size, name, "stream refs range");
  checkRange(info.objectRefs, size, name, "object refs range");
  checkRange(info.stream, size, name, "stream range");
  checkRange(info.namedRefs, size, name, "named refs range");
  const read = (r: { start: number; end: number }) => sourceRange(source, r.start, r.end, name);
  return {
    header,
    info,
    refs: {
      algorithm: header.algorithm,
      layout: header.layout,
      contentType: info.contentType,
      streamSize: info.streamSize,
      streamRefs: decodeIdArray(read(info.streamRefs), header.algorithm, name, "stream refs"),
      objectRefs: decodeIdArray(read(info.objectRefs), header.algorithm, name, "object refs"),
    },
  };
}

/**
 * The references of a splitstream (header, info and the two refs arrays only: no
 * decompression, the stream section is not read). Throws {@link SplitStreamError}.
 */
export function readSplitStreamRefs(
  source: SplitStreamSource,
  options: SplitStreamReadOptions = {},
): SplitStreamRefs {
  return parseRefs(source, options).refs;
}

function i64Chunk(b: Uint8Array): bigint {
  return new DataView(b.buffer, b.byteOffset, 8).getBigInt64(0, true);
}

/** A checked 0.9.4 splitstream; chunks are decoded lazily on each pass. */
export class SplitStreamReader {
  readonly #stream: Uint8Array;
  readonly #frames: ZstdFrame[];
  readonly #named: Map<string, Uint8Array>;

  private constructor(
    /** Names the stream in errors. */
    readonly name: string,
    /** The decoded header. */
    readonly header: SplitStreamHeader,
    /** The decoded info section. */
    readonly info: SplitStreamInfo,
    /** The references (streams, objects). */
    readonly refs: SplitStreamRefs,
    stream: Uint8Array,
    frames: ZstdFrame[],
    named: Map<string, Uint8Array>,
  ) {
    this.#stream = stream;
    this.#frames = frames;
    this.#named = named;
  }

  /** Parses and checks a splitstream (see the module doc); throws {@link SplitStreamError}. */
  static open(source: SplitStreamSource, options: SplitStreamReadOptions = {}): SplitStreamReader {
    const name = options.name ?? "splitstream";
    const { header, info, refs } = parseRefs(source, options);
    const namedSection = sourceRange(source, info.namedRefs.start, info.namedRefs.end, name);
    const text = zstdDecompressSmall(namedSection, `${name}: named refs`, MAX_NAMED_REFS_BYTES);
    const named = new Map<string, Uint8Array>();
    for (const r of decodeNamedRefs(text, refs.streamRefs.length, name)) {
      named.set(r.name, refs.streamRefs[r.index]);
    }
    const stream = sourceRange(source, info.stream.start, info.stream.end, name);
    const frames = zstdFrames(stream, `${name}: stream`);
    return new SplitStreamReader(name, header, info, refs, stream, frames, named);
  }

  /** The fs-verity algorithm of the ids. */
  get algorithm(): VerityAlgorithm {
    return this.refs.algorithm;
  }

  /** The content type. */
  get contentType(): bigint {
    return this.refs.contentType;
  }

  /** Size of the original content (inline plus external bytes), as recorded. */
  get streamSize(): number {
    return this.refs.streamSize;
  }

  /** Object ids of the external chunks' objects, each once, in order of first appearance. */
  get objectRefs(): readonly Uint8Array[] {
    return this.refs.objectRefs;
  }

  /** Object ids of referenced splitstreams (the targets of named refs and possibly more). */
  get streamRefs(): readonly Uint8Array[] {
    return this.refs.streamRefs;
  }

  /** Named refs: name -> the referenced splitstream's object id, sorted by name as stored. */
  get namedRefs(): ReadonlyMap<string, Uint8Array> {
    return this.#named;
  }

  /** The stream object id recorded under `name`, if any. */
  lookupNamedRef(name: string): Uint8Array | undefined {
    return this.#named.get(name);
  }

  /**
   * The content's chunks in order (see {@link SplitStreamChunk}), decompressed as they are
   * pulled; stopping early releases the decompressor. Throws {@link SplitStreamError} at the
   * first bad chunk.
   */
  async *chunks(): AsyncGenerator<SplitStreamChunk> {
    const what = `${this.name}: stream`;
    const cur = new ByteCursor(zstdDecompressPieces(this.#stream, this.#frames, what));
    const objects = this.refs.objectRefs;
    try {
      for (;;) {
        const at = cur.offset;
        const head = await cur.exact(8, "a chunk header", this.name);
        if (!head) return;
        const n = i64Chunk(head);
        if (n >= 0n) {
          if (n >= BigInt(objects.length)) {
            throw new SplitStreamError(
              `${this.name}: external chunk at offset ${at} refers to object ${n}; there are ` +
                `${objects.length}`,
            );
          }
          const index = Number(n);
          yield { kind: "external", id: objects[index].slice(), index };
          continue;
        }
        const size = -n;
        if (size > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new SplitStreamError(
            `${this.name}: inline chunk at offset ${at} claims ${size} bytes`,
          );
        }
        const length = Number(size);
        let first = true;
        let left = length;
        for await (const data of cur.pieces(length, `inline chunk at offset ${at}`, this.name)) {
          left -= data.length;
          yield { kind: "inline", data, first, last: left === 0, size: length };
          first = false;
        }
      }
    } finally {
      await cur.close();
    }
  }

  /**
   * The original content: inline bytes, and each external object's bytes from `getObject`.
   * Fails when the total differs from the recorded `stream_size`.
   */
  cat(getObject: ObjectSource): AsyncGenerator<Uint8Array> {
    return catChunks(this.chunks(), getObject, this.name, this.refs.streamSize);
  }
}
