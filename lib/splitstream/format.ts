/**
 * The splitstream file format of composefs-rs 0.9.4 (`composefs/src/splitstream_format.rs`,
 * `splitstream.rs`), declared once for the writer and the reader. Pure: bytes in, bytes out.
 *
 * A file is a fixed header, then sections anywhere in the file, each found through a
 * `[start, end)` byte range (two u64). All integers are little-endian.
 *
 *     header (32 bytes, at 0)   magic "SplitStream" [11] | version u8 = 0 | flags u16 (ignored)
 *                               | algorithm u8 (kernel id: 1 sha256, 2 sha512)
 *                               | lg_blocksize u8 = 12 | info range [16]
 *     info (80 bytes or more)   stream_refs, object_refs, stream, named_refs ranges [4 x 16]
 *                               | content_type u64 | stream_size u64
 *     stream_refs, object_refs  flat arrays of object ids (32 or 64 bytes each), uncompressed,
 *                               so that gc finds references without decompressing anything
 *     named_refs                one zstd frame of `index:name\0` records (index into
 *                               stream_refs), sorted by name
 *     stream                    one zstd frame of chunks: an i64 n < 0 is followed by -n inline
 *                               bytes; n >= 0 is an external chunk, object_refs[n]
 *
 * composefs-rs 0.9.4 writes the sections in the order header, info, stream_refs, object_refs,
 * named_refs, stream, back to back. Readers accept any placement and an info section longer than
 * 80 bytes (room the format keeps for growth; the extra bytes are ignored).
 *
 * Old header layout: bootc up to 1.15 wrote the header from a Rust struct without `repr(C)`,
 * and the compiler reordered it: info range at 0, flags at 16, magic at 18, version at 29,
 * algorithm at 30, lg_blocksize at 31. composefs-rs 0.9.4 reads both layouts (it tries the
 * other one when the magic is not at 0) and writes only the current one; so does cfs.
 *
 * @module
 */
import { algorithmId, digestSize, type VerityAlgorithm } from "../fsverity/digest.ts";
import { SplitStreamError } from "./error.ts";

/** The 11 magic bytes `SplitStream`. */
export const SPLITSTREAM_MAGIC: Uint8Array = new TextEncoder().encode("SplitStream");
/** Size of the fixed header at offset 0. */
export const HEADER_SIZE = 32;
/** Size of the info section as composefs-rs 0.9.4 writes it (a larger one is accepted). */
export const INFO_SIZE = 80;
/** The only format version there is. */
export const FORMAT_VERSION = 0;
/** log2 of the fs-verity block size: composefs uses 4 KiB blocks only. */
export const LG_BLOCK_SIZE = 12;

/** Offsets in the old (pre-`repr(C)`) header layout; see the module doc. */
const OLD = { info: 0, flags: 16, magic: 18, version: 29, algorithm: 30, lgBlockSize: 31 };
/** Offsets in the current header layout. */
const NEW = { magic: 0, version: 11, flags: 12, algorithm: 14, lgBlockSize: 15, info: 16 };

/**
 * A content type from its 8-byte ASCII tag, read as a little-endian u64: the way composefs-oci
 * 0.9.4 names its stream kinds (`u64::from_le_bytes(*b"ocilayer")`).
 */
export function contentTypeOf(tag: string): bigint {
  const bytes = new TextEncoder().encode(tag);
  if (bytes.length !== 8) {
    throw new SplitStreamError(`a content type tag has 8 ASCII bytes, not '${tag}'`);
  }
  return new DataView(bytes.buffer).getBigUint64(0, true);
}

/** The content types composefs-oci 0.9.4 writes (`skopeo.rs`). */
export const CONTENT_TYPE = {
  /** A layer tar (`ocilayer`). */
  ociLayer: contentTypeOf("ocilayer"),
  /** An image config JSON with named refs to its layers (`ociconfg`). */
  ociConfig: contentTypeOf("ociconfg"),
  /** An image manifest JSON with a named ref to its config (`ocimanif`). */
  ociManifest: contentTypeOf("ocimanif"),
  /** Any other blob of an OCI artifact (`oci_blob`). */
  ociBlob: contentTypeOf("oci_blob"),
} as const;

/** A content type for messages: its tag when it is 8 printable ASCII bytes, else hex. */
export function describeContentType(contentType: bigint): string {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, contentType), true);
  if (b.every((c) => c >= 0x20 && c < 0x7f)) return `'${new TextDecoder().decode(b)}'`;
  return `0x${BigInt.asUintN(64, contentType).toString(16)}`;
}

/** A `[start, end)` byte range of the file. */
export interface FileRange {
  /** Offset of the first byte. */
  start: number;
  /** Offset just past the last byte. */
  end: number;
}

/** Which header layout a file has: current, or the old one bootc up to 1.15 wrote. */
export type HeaderLayout = "current" | "pre-repr-c";

/** The decoded fixed header. */
export interface SplitStreamHeader {
  /** Where the fields were found. */
  layout: HeaderLayout;
  /** Always {@link FORMAT_VERSION}. */
  version: number;
  /** Reserved, written as 0, ignored when read (as composefs-rs does). */
  flags: number;
  /** The fs-verity algorithm of every object id in the file. */
  algorithm: VerityAlgorithm;
  /** Always {@link LG_BLOCK_SIZE}. */
  lgBlockSize: number;
  /** Where the info section is. */
  info: FileRange;
}

/** The decoded info section. */
export interface SplitStreamInfo {
  /** The stream references array (object ids of other splitstreams). */
  streamRefs: FileRange;
  /** The object references array (object ids of external chunks). */
  objectRefs: FileRange;
  /** The zstd-compressed chunk stream. */
  stream: FileRange;
  /** The zstd-compressed named references. */
  namedRefs: FileRange;
  /** The writer's identifier of what the content is ({@link CONTENT_TYPE}). */
  contentType: bigint;
  /** Size of the original content: inline plus external bytes. */
  streamSize: number;
}

/** The on-disk formats a stream object can be in ({@link detectSplitStreamFormat}). */
export type SplitStreamFormat =
  /** composefs-rs 0.9.4, current header layout. */
  | "current"
  /** composefs-rs 0.9.4's format with the old header layout (bootc up to 1.15). */
  | "pre-repr-c"
  /** composefs-rs 0.3.0 (and cfs before 0.9.4 support): one zstd stream with a digest map. */
  | "legacy-0.3"
  /** None of these. */
  | "unknown";

function hasMagicAt(bytes: Uint8Array, at: number): boolean {
  if (bytes.length < at + SPLITSTREAM_MAGIC.length) return false;
  for (let i = 0; i < SPLITSTREAM_MAGIC.length; i++) {
    if (bytes[at + i] !== SPLITSTREAM_MAGIC[i]) return false;
  }
  return true;
}

/**
 * Tells the formats apart from a file's first bytes (32 are enough; fewer give "unknown"
 * unless they start a zstd frame). The two cannot be confused: a 0.3.0 file starts with the
 * zstd frame magic `28 b5 2f fd`, a 0.9.4 file with `SplitStream` at offset 0 or 18.
 */
export function detectSplitStreamFormat(head: Uint8Array): SplitStreamFormat {
  if (hasMagicAt(head, NEW.magic)) return "current";
  if (hasMagicAt(head, OLD.magic)) return "pre-repr-c";
  if (
    head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f &&
    head[3] === 0xfd
  ) return "legacy-0.3";
  return "unknown";
}

/** Reads a u64 that must fit a JavaScript number (offsets and sizes). */
function readSafeU64(dv: DataView, at: number, what: string, field: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new SplitStreamError(`${what}: ${field} is ${v}, too large to be real`);
  }
  return Number(v);
}

function readRange(dv: DataView, at: number, what: string, field: string): FileRange {
  return {
    start: readSafeU64(dv, at, what, `${field} start`),
    end: readSafeU64(dv, at + 8, what, `${field} end`),
  };
}

function writeRange(dv: DataView, at: number, r: FileRange): void {
  dv.setBigUint64(at, BigInt(r.start), true);
  dv.setBigUint64(at + 8, BigInt(r.end), true);
}

function algorithmFromId(id: number, what: string): VerityAlgorithm {
  if (id === algorithmId("sha256")) return "sha256";
  if (id === algorithmId("sha512")) return "sha512";
  throw new SplitStreamError(`${what}: unknown fs-verity algorithm id ${id} (1 sha256, 2 sha512)`);
}

/**
 * Decodes the fixed header (either layout) from a file's first 32 bytes and checks version,
 * algorithm and block size; `what` names the file in errors.
 */
export function decodeHeader(bytes: Uint8Array, what: string): SplitStreamHeader {
  if (bytes.length < HEADER_SIZE) {
    throw new SplitStreamError(
      `${what}: ${bytes.length} bytes, too short for a splitstream header (${HEADER_SIZE})`,
    );
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  let layout: HeaderLayout;
  let at: typeof NEW | typeof OLD;
  if (hasMagicAt(bytes, NEW.magic)) {
    layout = "current";
    at = NEW;
  } else if (hasMagicAt(bytes, OLD.magic)) {
    layout = "pre-repr-c";
    at = OLD;
  } else {
    throw new SplitStreamError(`${what}: not a splitstream (no 'SplitStream' magic)`);
  }
  const version = bytes[at.version];
  if (version !== FORMAT_VERSION) {
    throw new SplitStreamError(`${what}: splitstream version ${version}, only 0 is known`);
  }
  const algorithm = algorithmFromId(bytes[at.algorithm], what);
  const lgBlockSize = bytes[at.lgBlockSize];
  if (lgBlockSize !== LG_BLOCK_SIZE) {
    throw new SplitStreamError(
      `${what}: fs-verity block size 2^${lgBlockSize}; composefs uses 2^${LG_BLOCK_SIZE}`,
    );
  }
  return {
    layout,
    version,
    flags: dv.getUint16(at.flags, true),
    algorithm,
    lgBlockSize,
    info: readRange(dv, at.info, what, "info range"),
  };
}

/** Encodes the header in the current layout (what composefs-rs 0.9.4 writes). */
export function encodeHeader(algorithm: VerityAlgorithm, info: FileRange): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  const dv = new DataView(out.buffer);
  out.set(SPLITSTREAM_MAGIC, NEW.magic);
  out[NEW.version] = FORMAT_VERSION;
  dv.setUint16(NEW.flags, 0, true);
  out[NEW.algorithm] = algorithmId(algorithm);
  out[NEW.lgBlockSize] = LG_BLOCK_SIZE;
  writeRange(dv, NEW.info, info);
  return out;
}

/**
 * The same file with its header rewritten in the old (pre-`repr(C)`) layout, the rest
 * untouched: what bootc up to 1.15 would have written (composefs-rs's `new_to_old_format`).
 */
export function toPreReprCLayout(file: Uint8Array): Uint8Array {
  const h = decodeHeader(file, "splitstream");
  if (h.layout !== "current") return file.slice();
  const out = file.slice();
  const dv = new DataView(out.buffer);
  out.fill(0, 0, HEADER_SIZE);
  writeRange(dv, OLD.info, h.info);
  dv.setUint16(OLD.flags, h.flags, true);
  out.set(SPLITSTREAM_MAGIC, OLD.magic);
  out[OLD.version] = h.version;
  out[OLD.algorithm] = algorithmId(h.algorithm);
  out[OLD.lgBlockSize] = h.lgBlockSize;
  return out;
}

/** Decodes the info section (its first 80 bytes; more are ignored, fewer are an error). */
export function decodeInfo(bytes: Uint8Array, what: string): SplitStreamInfo {
  if (bytes.length < INFO_SIZE) {
    throw new SplitStreamError(
      `${what}: info section of ${bytes.length} bytes, at least ${INFO_SIZE} needed`,
    );
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, INFO_SIZE);
  return {
    streamRefs: readRange(dv, 0, what, "stream refs range"),
    objectRefs: readRange(dv, 16, what, "object refs range"),
    stream: readRange(dv, 32, what, "stream range"),
    namedRefs: readRange(dv, 48, what, "named refs range"),
    contentType: dv.getBigUint64(64, true),
    streamSize: readSafeU64(dv, 72, what, "stream size"),
  };
}

/** Encodes the info section (80 bytes). */
export function encodeInfo(info: SplitStreamInfo): Uint8Array {
  const out = new Uint8Array(INFO_SIZE);
  const dv = new DataView(out.buffer);
  writeRange(dv, 0, info.streamRefs);
  writeRange(dv, 16, info.objectRefs);
  writeRange(dv, 32, info.stream);
  writeRange(dv, 48, info.namedRefs);
  dv.setBigUint64(64, BigInt.asUintN(64, info.contentType), true);
  dv.setBigUint64(72, BigInt(info.streamSize), true);
  return out;
}

/**
 * Checks that `range` lies within a file of `fileSize` bytes and is not reversed; `field` names
 * it in the error.
 */
export function checkRange(range: FileRange, fileSize: number, what: string, field: string): void {
  if (range.end < range.start) {
    throw new SplitStreamError(
      `${what}: ${field} [${range.start}, ${range.end}) ends before it starts`,
    );
  }
  if (range.end > fileSize) {
    throw new SplitStreamError(
      `${what}: ${field} [${range.start}, ${range.end}) is past the end of the file ` +
        `(${fileSize} bytes)`,
    );
  }
}

/** Splits a refs array section into object ids of `algorithm`'s size (copies). */
export function decodeIdArray(
  bytes: Uint8Array,
  algorithm: VerityAlgorithm,
  what: string,
  field: string,
): Uint8Array[] {
  const size = digestSize(algorithm);
  if (bytes.length % size !== 0) {
    throw new SplitStreamError(
      `${what}: ${field} of ${bytes.length} bytes is not a whole number of ${size}-byte ids`,
    );
  }
  const ids: Uint8Array[] = [];
  for (let p = 0; p < bytes.length; p += size) ids.push(bytes.slice(p, p + size));
  return ids;
}

/** A named reference: a name and an index into the stream refs array. */
export interface NamedRefRecord {
  /** The name (any UTF-8 without NUL; an OCI config names its layers by diff_id). */
  name: string;
  /** Index into the stream refs array. */
  index: number;
}

/** Byte order of the UTF-8 encodings (Rust's `str` order, which composefs-rs sorts by). */
export function compareUtf8(a: string, b: string): number {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/**
 * The uncompressed named refs section: `index:name\0` per record, in the order given (the
 * writer sorts by name, {@link compareUtf8}). Refuses a name with a NUL byte.
 */
export function encodeNamedRefs(records: readonly NamedRefRecord[]): Uint8Array {
  let text = "";
  for (const r of records) {
    if (r.name.includes("\0")) {
      throw new SplitStreamError(`named ref ${JSON.stringify(r.name)} contains a NUL byte`);
    }
    text += `${r.index}:${r.name}\0`;
  }
  return new TextEncoder().encode(text);
}

/** What composefs-rs accepts as an index: Rust's `usize` parse, an optional `+` and digits. */
const INDEX = /^\+?[0-9]+$/;

/**
 * Decodes an uncompressed named refs section, as composefs-rs 0.9.4 does: NUL-terminated
 * records (bytes after the last NUL are junk), UTF-8, `index:name` split at the first colon,
 * the index within `streamRefCount`. A repeated name keeps its last record (composefs-rs's map).
 */
export function decodeNamedRefs(
  bytes: Uint8Array,
  streamRefCount: number,
  what: string,
): NamedRefRecord[] {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const byName = new Map<string, number>();
  let p = 0;
  let n = 0;
  while (p < bytes.length) {
    const nul = bytes.indexOf(0, p);
    if (nul < 0) {
      throw new SplitStreamError(
        `${what}: named refs: ${bytes.length - p} bytes of junk after the last record`,
      );
    }
    let item: string;
    try {
      item = decoder.decode(bytes.subarray(p, nul));
    } catch {
      throw new SplitStreamError(`${what}: named ref ${n} is not UTF-8`);
    }
    const colon = item.indexOf(":");
    if (colon < 0) {
      throw new SplitStreamError(`${what}: named ref ${n} has no colon: ${clip(item)}`);
    }
    const indexText = item.slice(0, colon);
    if (!INDEX.test(indexText)) {
      throw new SplitStreamError(`${what}: named ref ${n} has a bad index: ${clip(item)}`);
    }
    const index = Number(indexText);
    if (!(index < streamRefCount)) {
      throw new SplitStreamError(
        `${what}: named ref ${n} points at stream ref ${indexText}; there are ${streamRefCount}`,
      );
    }
    const name = item.slice(colon + 1);
    byName.delete(name);
    byName.set(name, index);
    p = nul + 1;
    n++;
  }
  return [...byName].map(([name, index]) => ({ name, index }));
}

function clip(s: string): string {
  const j = JSON.stringify(s);
  return j.length > 80 ? `${j.slice(0, 77)}...` : j;
}
