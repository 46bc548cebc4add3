/**
 * A streaming tar reader: chunks of bytes in, entries out. Pure: no file system.
 *
 * ```ts
 * const tar = readTar(layerStream);
 * for await (const entry of tar) {
 *   entry.headerBytes;              // every header block of the entry, byte for byte
 *   for await (const chunk of entry.body) hash(chunk);
 *   const padding = await entry.readPadding();
 * }
 * tar.trailer;                      // the end-of-archive blocks, byte for byte
 * ```
 *
 * Concatenating, in order, each entry's `headerBytes`, body chunks and padding, and then
 * the `trailer`, gives back the input exactly: what a splitstream writer needs.
 *
 * Formats read: POSIX ustar, pax (per-entry `x` and global `g` extended headers), GNU
 * (long names `L`, long link targets `K`, base-256 numbers) and v7 headers. Metadata
 * precedence: pax record, else GNU long name/link, else the header field. Sparse files
 * (GNU `S`, pax `GNU.sparse.*`) and other entry types are refused. Any malformed input
 * raises a {@link TarError} naming the entry or the byte offset.
 *
 * Decisions where readers disagree:
 * - Entries that carry no data (hardlink, symlink, devices, directory, fifo) must have a
 *   size of 0: GNU tar and composefs-rs skip `size` bytes after them while Go and Python
 *   skip none, so a non-zero size would make readers see different archives.
 * - `\0` and `7` are regular files like `0`; a trailing `/` does not make a directory
 *   (as composefs-rs reads them).
 * - Global `g` headers apply to every following entry, as POSIX says and Python does
 *   (Go hands them to the caller, who ignores them; composefs-rs 0.3 stops on them).
 * - The ustar `prefix` field is used only under the POSIX magic `ustar\0`; GNU headers
 *   keep other data there.
 * - The end of the archive is the first all-zero block; everything after it must be zero
 *   too (at most {@link TAR_MAX_TRAILER_SIZE} bytes). The input may also end at a block
 *   boundary without zero blocks, as composefs-rs and Go accept.
 * - Path safety (`..`, absolute paths, where links point) is the importer's job; see
 *   {@link normalizeEntryPath}.
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import type { Xattr } from "../tree.ts";

export type { Xattr };

// --- types ---------------------------------------------------------------------------------------

/** What an entry is, from its type flag. */
export type TarEntryType =
  | "regular"
  | "hardlink"
  | "symlink"
  | "chardev"
  | "blockdev"
  | "directory"
  | "fifo";

/**
 * An entry's metadata, with pax and GNU extensions applied. Paths, link targets and user
 * and group names are byte strings (one char per byte, as in lib/tree.ts): tar names need
 * not be UTF-8. Pax values are kept as their bytes too.
 */
export interface TarMetadata {
  /** As stored (pax `path`, else GNU long name, else ustar prefix + `/` + name); never empty. */
  path: string;
  /** What the entry is (`0`, `\0` and `7` are all regular files). */
  type: TarEntryType;
  /** The header's type flag character, as stored (`"0"`, `"\0"`, `"7"`, ...). */
  typeflag: string;
  /** Permission bits, including setuid, setgid and sticky (mode & 0o7777). */
  mode: number;
  /** Owner (pax `uid`, else the header's octal or base-256 field); at most 2^32-1. */
  uid: number;
  /** Group (pax `gid`, else the header field); at most 2^32-1. */
  gid: number;
  /** Body size in bytes; 0 for every type but regular files. */
  size: number;
  /** Whole seconds since the epoch (a fractional pax mtime is floored); may be negative. */
  mtime: number;
  /**
   * Nanoseconds of a fractional mtime in the entry's own pax header, read as composefs-rs
   * 0.9.4 reads them (the first 9 digits of the fraction, fewer padded; 0 when unparsable);
   * 0 without one.
   */
  mtimeNsec: number;
  /** Owner name (pax `uname`, else the header field), a byte string; may be empty. */
  uname: string;
  /** Group name (pax `gname`, else the header field), a byte string; may be empty. */
  gname: string;
  /** Device major number; 0 unless the entry is a character or block device. */
  devmajor: number;
  /** Device minor number; 0 unless the entry is a character or block device. */
  devminor: number;
  /** Hardlink or symlink target (pax `linkpath`, else GNU long link, else the header field). */
  linkTarget: string;
  /**
   * Extended attributes from pax records, global ones first, in archive order (a later
   * record for the same name replaces the value in place). bsdtar writes every attribute
   * twice, as `LIBARCHIVE.xattr.NAME` (name URL-encoded, value base64: exact) and as
   * `SCHILY.xattr.NAME`; when an entry has any `LIBARCHIVE.xattr` record only those are
   * used. Otherwise `SCHILY.xattr.NAME` records give the name and value bytes as they are
   * (GNU tar writes `%` and `=` in names as `%25` and `%3D`; like composefs-rs, Go and
   * Python, this reader does not decode them).
   */
  xattrs: Xattr[];
}

/**
 * One entry of the archive. Its body must be read to the end (or the entry skipped, which
 * advancing the iteration does) before the next entry can be read. Misuse (a body read
 * twice, padding asked for before the body, an entry read after the iteration moved on)
 * throws a plain `Error`; only bad input throws a {@link TarError}.
 */
export interface TarEntry {
  /** The entry's metadata. */
  readonly meta: TarMetadata;
  /** Every 512-byte block in front of the body: pax `x`/`g` and GNU `L`/`K` headers with
   * their data and padding, then the entry's own header. A copy the caller may keep. */
  readonly headerBytes: Uint8Array;
  /** Offset of the first byte of `headerBytes` in the archive. */
  readonly offset: number;
  /**
   * The body, `meta.size` bytes in chunks that are views into the input's chunks (not
   * copies: the input must not reuse its buffers). Iterable once.
   */
  readonly body: AsyncIterable<Uint8Array>;
  /**
   * Reads the whole body into one array, instead of iterating `body` (for small bodies: it
   * holds `meta.size` bytes; a view into the input when they lie in one chunk).
   */
  readBody(): Promise<Uint8Array>;
  /**
   * The bytes between the end of the body and the next 512-byte boundary, as stored
   * (usually zeros). Call after the body has been read to the end.
   */
  readPadding(): Promise<Uint8Array>;
  /** Discards what is left of the body and the padding. */
  skip(): Promise<void>;
}

/** What {@link readTar} takes: a `ReadableStream`, or any (async) iterable of chunks. */
export type TarInput = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** Malformed or unsupported tar input. */
export class TarError extends CfsError {
  /** The entry's path (byte string), when the error concerns one entry. */
  readonly path?: string;
  /** The archive offset where the problem was found, when it concerns a position. */
  readonly offset?: number;

  /** An error with its message and, when known, the entry path and archive offset. */
  constructor(message: string, where: { path?: string; offset?: number } = {}) {
    super(message, { code: "tar-invalid" });
    this.name = "TarError";
    this.path = where.path;
    this.offset = where.offset;
  }
}

// --- limits and format constants ------------------------------------------------------------------

/** The tar block size. */
export const TAR_BLOCK_SIZE = 512;
/** Largest accepted data of one pax or GNU long-name header (Go's archive/tar limit). */
export const TAR_MAX_EXTENDED_HEADER_SIZE = 1 << 20;
/** Largest accepted `headerBytes` of one entry (several extended headers together). */
export const TAR_MAX_ENTRY_HEADER_BYTES = 4 << 20;
/** Largest accepted total size of the global pax records in force. */
export const TAR_MAX_GLOBAL_RECORDS_SIZE = 1 << 20;
/** Largest accepted run of zero bytes after the end-of-archive marker (plus pending blocks). */
export const TAR_MAX_TRAILER_SIZE = 16 << 20;
/** Largest size or |mtime| accepted: exact in a JS number. */
const MAX_NUMBER = Number.MAX_SAFE_INTEGER;
const MAX_ID = 0xffff_ffff;

// ustar header fields: [offset, length]
const F_NAME = [0, 100] as const;
const F_MODE = [100, 8] as const;
const F_UID = [108, 8] as const;
const F_GID = [116, 8] as const;
const F_SIZE = [124, 12] as const;
const F_MTIME = [136, 12] as const;
const F_CHKSUM = [148, 8] as const;
const O_TYPEFLAG = 156;
const F_LINKNAME = [157, 100] as const;
const O_MAGIC = 257;
const F_UNAME = [265, 32] as const;
const F_GNAME = [297, 32] as const;
const F_DEVMAJOR = [329, 8] as const;
const F_DEVMINOR = [337, 8] as const;
const F_PREFIX = [345, 155] as const;

const POSIX_MAGIC = [0x75, 0x73, 0x74, 0x61, 0x72, 0x00]; // "ustar\0"

const TYPES: Record<string, TarEntryType> = {
  "0": "regular",
  "\0": "regular",
  "7": "regular",
  "1": "hardlink",
  "2": "symlink",
  "3": "chardev",
  "4": "blockdev",
  "5": "directory",
  "6": "fifo",
};

const EMPTY = new Uint8Array(0);

// --- byte helpers --------------------------------------------------------------------------------

function byteString(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return s;
}

function stringBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A NUL-terminated header field as a byte string. */
function cString(block: Uint8Array, [off, len]: readonly [number, number]): string {
  const field = block.subarray(off, off + len);
  const nul = field.indexOf(0);
  return byteString(nul < 0 ? field : field.subarray(0, nul));
}

function isZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

const utf8Fatal = new TextDecoder("utf-8", { fatal: true });

/** A byte string for an error message: UTF-8 when it is, `\xNN` for other bytes. */
export function displayPath(path: string): string {
  let text: string;
  try {
    text = utf8Fatal.decode(stringBytes(path));
  } catch {
    text = path.replace(/[\x80-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
  }
  text = text.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
  return text.length > 300 ? text.slice(0, 300) + "..." : text;
}

function flagText(c: number): string {
  return c >= 0x21 && c <= 0x7e ? `'${String.fromCharCode(c)}'` : `0x${c.toString(16)}`;
}

// --- numbers -------------------------------------------------------------------------------------

/**
 * A numeric header field: octal digits, optionally surrounded by spaces and NULs (blank
 * means 0), or GNU base-256 (high bit of the first byte set; the next bit is the sign).
 * Returns undefined when the field is malformed or does not fit in a safe integer.
 */
function parseNumeric(
  block: Uint8Array,
  [off, len]: readonly [number, number],
): number | undefined {
  const end = off + len;
  const first = block[off];
  if (first & 0x80) {
    const inv = first & 0x40 ? 0xff : 0;
    let x = 0;
    for (let i = off; i < end; i++) {
      let c = block[i] ^ inv;
      if (i === off) c &= 0x7f;
      x = x * 256 + c;
      if (x > MAX_NUMBER) return undefined;
    }
    return inv ? -x - 1 : x;
  }
  let i = off;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  let x = 0;
  for (; i < end; i++) {
    const c = block[i];
    if (c < 0x30 || c > 0x37) break;
    x = x * 8 + (c - 0x30);
  }
  for (; i < end; i++) if (block[i] !== 0x20 && block[i] !== 0) return undefined;
  return x;
}

/** A decimal pax value: digits only (optionally a leading `-`), within safe integers. */
function parsePaxInteger(value: string, allowNegative: boolean): number | undefined {
  if (!(allowNegative ? /^-?[0-9]+$/ : /^[0-9]+$/).test(value)) return undefined;
  const n = Number(value);
  return Math.abs(n) > MAX_NUMBER ? undefined : n;
}

/** A pax time, `[-]SECONDS[.FRACTION]`, floored to whole seconds. */
function parsePaxTime(value: string): number | undefined {
  const m = /^(-?)([0-9]+)(?:\.([0-9]*))?$/.exec(value);
  if (!m) return undefined;
  const whole = Number(m[2]);
  if (whole > MAX_NUMBER) return undefined;
  if (m[1] !== "-") return whole;
  const fractional = m[3] !== undefined && /[1-9]/.test(m[3]);
  const n = -whole - (fractional ? 1 : 0);
  return -n > MAX_NUMBER ? undefined : n === 0 ? 0 : n;
}

/** The nanoseconds of a pax mtime value (see {@link TarMetadata.mtimeNsec}). */
function paxMtimeNsec(value: Uint8Array | undefined): number {
  if (value === undefined) return 0;
  const text = byteString(value);
  const dot = text.indexOf(".");
  if (dot < 0) return 0;
  const frac = text.slice(dot + 1);
  const digits = frac.slice(0, 9);
  if (!/^\+?[0-9]+$/.test(digits)) return 0;
  return Number(digits) * 10 ** (9 - Math.min(frac.length, 9));
}

// --- pax records ---------------------------------------------------------------------------------

/** One pax record: the key as a byte string, the value as bytes. */
interface PaxRecord {
  key: string;
  value: Uint8Array;
}

/**
 * Parses pax extended header data: records `LEN KEY=VALUE\n`, where LEN (decimal) counts
 * the whole record in bytes and VALUE may hold any byte. NUL bytes after the last record are
 * accepted (some writers pad with them). `at` is the header's offset, for errors.
 */
function parsePaxRecords(data: Uint8Array, at: number): PaxRecord[] {
  const bad = (pos: number, reason: string): TarError =>
    new TarError(`tar: bad pax header at offset ${at}: the record at byte ${pos} ${reason}`, {
      offset: at,
    });
  const records: PaxRecord[] = [];
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0 && isZero(data.subarray(pos))) break;
    const space = data.indexOf(0x20, pos);
    const lenText = byteString(data.subarray(pos, space < 0 ? data.length : space));
    if (space < 0 || space - pos > 20 || !/^[0-9]+$/.test(lenText)) {
      throw bad(pos, `has no valid length (${JSON.stringify(lenText.slice(0, 20))})`);
    }
    const len = Number(lenText);
    const end = pos + len;
    if (len < space - pos + 4) throw bad(pos, `has a length of ${len}, too short`);
    if (end > data.length) {
      throw bad(pos, `has a length of ${len}, past the end of the data (${data.length} bytes)`);
    }
    if (data[end - 1] !== 0x0a) throw bad(pos, "does not end with a newline");
    const eq = data.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= end - 1) throw bad(pos, "has no '='");
    if (eq === space + 1) throw bad(pos, "has an empty key");
    records.push({
      key: byteString(data.subarray(space + 1, eq)),
      value: data.subarray(eq + 1, end - 1),
    });
    pos = end;
  }
  return records;
}

const XATTR_SCHILY = "SCHILY.xattr.";
const XATTR_LIBARCHIVE = "LIBARCHIVE.xattr.";

/** Whether an empty value of this key deletes it (POSIX) rather than setting an empty value. */
function emptyDeletes(key: string): boolean {
  return !key.startsWith(XATTR_SCHILY) && !key.startsWith(XATTR_LIBARCHIVE);
}

/** Decodes `%XX` sequences (libarchive's URL encoding of xattr names); others stay as they are. */
function urlDecode(s: string): string {
  return s.replace(/%([0-9a-fA-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
}

const B64 = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++) {
  B64["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".charCodeAt(i)] = i;
}

/** Base64 with or without `=` padding (libarchive writes none); undefined when invalid. */
function base64Decode(text: Uint8Array): Uint8Array | undefined {
  let n = text.length;
  while (n > 0 && text[n - 1] === 0x3d) n--;
  if (n % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((n * 3) / 4));
  let acc = 0, bits = 0, o = 0;
  for (let i = 0; i < n; i++) {
    const v = B64[text[i]];
    if (v < 0) return undefined;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

// --- the input -----------------------------------------------------------------------------------

/** Pulls chunks from the input and hands out views of them. */
class ChunkSource {
  #it: AsyncIterator<Uint8Array> | Iterator<Uint8Array>;
  #buf: Uint8Array = EMPTY;
  #pos = 0;
  #done = false;
  /** Archive offset of the next unread byte. */
  offset = 0;

  constructor(input: TarInput) {
    const asyncIt = (input as AsyncIterable<Uint8Array>)[Symbol.asyncIterator];
    this.#it = asyncIt ? asyncIt.call(input) : (input as Iterable<Uint8Array>)[Symbol.iterator]();
  }

  /** Makes sure unread bytes are buffered; false at the end of the input. */
  async #fill(): Promise<boolean> {
    while (this.#pos >= this.#buf.length) {
      if (this.#done) return false;
      const r = await this.#it.next();
      if (r.done) {
        this.#done = true;
        return false;
      }
      if (!(r.value instanceof Uint8Array)) {
        throw new TypeError(`tar input must yield Uint8Array chunks, got ${typeof r.value}`);
      }
      this.#buf = r.value;
      this.#pos = 0;
    }
    return true;
  }

  /** Up to `n` (> 0) bytes as a view into the current chunk; empty at the end of the input. */
  async take(n: number): Promise<Uint8Array> {
    if (this.#pos >= this.#buf.length && !(await this.#fill())) return EMPTY;
    const end = Math.min(this.#buf.length, this.#pos + n);
    const view = this.#buf.subarray(this.#pos, end);
    this.offset += view.length;
    this.#pos = end;
    return view;
  }

  /** Exactly `n` bytes (a view when they lie in one chunk, else a copy); fewer at the end. */
  async read(n: number): Promise<Uint8Array> {
    if (this.#buf.length - this.#pos >= n) {
      const view = this.#buf.subarray(this.#pos, this.#pos + n);
      this.#pos += n;
      this.offset += n;
      return view;
    }
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const part = await this.take(n - got);
      if (part.length === 0) return out.subarray(0, got);
      out.set(part, got);
      got += part.length;
    }
    return out;
  }

  /** Skips `n` bytes; returns how many were skipped (fewer at the end of the input). */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      const part = await this.take(left);
      if (part.length === 0) break;
      left -= part.length;
    }
    return n - left;
  }

  /** Lets the input go (stops a stream) when reading ends early. */
  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    try {
      await this.#it.return?.();
    } catch {
      // the input's own clean-up failure is not the reader's error
    }
  }
}

// --- entries -------------------------------------------------------------------------------------

/** Rounds up to a whole number of blocks. */
function padded(size: number): number {
  return Math.ceil(size / TAR_BLOCK_SIZE) * TAR_BLOCK_SIZE;
}

class Entry implements TarEntry {
  readonly meta: TarMetadata;
  readonly headerBytes: Uint8Array;
  readonly offset: number;
  readonly body: AsyncIterable<Uint8Array>;
  #src: ChunkSource;
  #bodyLeft: number;
  #paddingLeft: number;
  #padding: Uint8Array | undefined;
  #bodyStarted = false;
  #skipped = false;
  /** Set when the reader moves on: the entry can no longer be read. */
  stale = false;

  constructor(src: ChunkSource, meta: TarMetadata, headerBytes: Uint8Array, offset: number) {
    this.#src = src;
    this.meta = meta;
    this.headerBytes = headerBytes;
    this.offset = offset;
    this.#bodyLeft = meta.size;
    this.#paddingLeft = padded(meta.size) - meta.size;
    this.body = { [Symbol.asyncIterator]: () => this.#readChunks() };
  }

  #checkCurrent(): void {
    if (this.stale) {
      throw new Error(`tar entry ${displayPath(this.meta.path)}: read after the reader moved on`);
    }
  }

  #truncated(what: string): TarError {
    return new TarError(
      `tar entry ${displayPath(this.meta.path)}: archive truncated inside the ${what} ` +
        `(end of input at offset ${this.#src.offset})`,
      { path: this.meta.path, offset: this.#src.offset },
    );
  }

  async *#readChunks(): AsyncGenerator<Uint8Array> {
    this.#checkCurrent();
    if (this.#bodyStarted) {
      throw new Error(`tar entry ${displayPath(this.meta.path)}: body is iterable once`);
    }
    this.#bodyStarted = true;
    while (this.#bodyLeft > 0) {
      this.#checkCurrent();
      const chunk = await this.#src.take(this.#bodyLeft);
      if (chunk.length === 0) throw this.#truncated("body");
      this.#bodyLeft -= chunk.length;
      yield chunk;
    }
  }

  async readBody(): Promise<Uint8Array> {
    this.#checkCurrent();
    if (this.#bodyStarted) {
      throw new Error(`tar entry ${displayPath(this.meta.path)}: body is iterable once`);
    }
    this.#bodyStarted = true;
    const n = this.#bodyLeft;
    const bytes = await this.#src.read(n);
    this.#bodyLeft -= bytes.length;
    if (bytes.length < n) throw this.#truncated("body");
    return bytes;
  }

  async readPadding(): Promise<Uint8Array> {
    if (this.#padding) return this.#padding;
    this.#checkCurrent();
    if (this.#skipped) {
      throw new Error(`tar entry ${displayPath(this.meta.path)}: readPadding() after skip()`);
    }
    if (this.#bodyLeft > 0) {
      throw new Error(
        `tar entry ${displayPath(this.meta.path)}: readPadding() before the body was read`,
      );
    }
    const n = this.#paddingLeft;
    const bytes = n === 0 ? EMPTY : await this.#src.read(n);
    this.#paddingLeft -= bytes.length;
    if (bytes.length < n) throw this.#truncated("padding after the body");
    this.#padding = bytes;
    return bytes;
  }

  async skip(): Promise<void> {
    this.#checkCurrent();
    this.#bodyStarted = true;
    if (!this.#padding) this.#skipped = true;
    if (this.#bodyLeft > 0) {
      this.#bodyLeft -= await this.#src.skip(this.#bodyLeft);
      if (this.#bodyLeft > 0) throw this.#truncated("body");
    }
    if (this.#paddingLeft > 0) {
      this.#paddingLeft -= await this.#src.skip(this.#paddingLeft);
      if (this.#paddingLeft > 0) throw this.#truncated("padding after the body");
    }
  }
}

// --- the reader ----------------------------------------------------------------------------------

/** Pax records in force: key (byte string) to value. */
type Records = Map<string, Uint8Array>;

/**
 * Reads a tar archive entry by entry. Iterate it once; after the iteration ends
 * {@link TarReader.trailer} holds the bytes after the last entry.
 */
export class TarReader implements AsyncIterable<TarEntry> {
  #src: ChunkSource;
  #global: Records = new Map();
  #globalSize = 0;
  #trailer: Uint8Array | undefined;
  #started = false;

  /** Reads `input`; nothing is pulled from it until the iteration starts. */
  constructor(input: TarInput) {
    this.#src = new ChunkSource(input);
  }

  /** Bytes consumed from the input so far. */
  get bytesRead(): number {
    return this.#src.offset;
  }

  /**
   * Everything after the last entry: a pending global pax header (one that no entry
   * followed), the end-of-archive zero blocks and any zero padding up to the end of the
   * input. Empty when the input ended right after the last entry. Only available once the
   * iteration has finished.
   */
  get trailer(): Uint8Array {
    if (!this.#trailer) throw new Error("tar trailer: the archive has not been read to the end");
    return this.#trailer;
  }

  /** The entries in archive order; breaking out of the loop lets the input go. */
  [Symbol.asyncIterator](): AsyncIterator<TarEntry> {
    if (this.#started) throw new Error("a TarReader can be iterated once");
    this.#started = true;
    return this.#entries();
  }

  async *#entries(): AsyncGenerator<TarEntry> {
    let finished = false;
    try {
      while (true) {
        const entry = await this.#readHeaders();
        if (!entry) break;
        try {
          yield entry;
          await entry.skip();
        } finally {
          entry.stale = true;
        }
      }
      finished = true;
    } finally {
      if (!finished) await this.#src.close();
    }
  }

  /** Reads the header blocks of the next entry; null (and sets the trailer) at the end. */
  async #readHeaders(): Promise<Entry | null> {
    const src = this.#src;
    const start = src.offset;
    const pieces: Uint8Array[] = [];
    let total = 0;
    const local: Records = new Map();
    let longName: Uint8Array | undefined;
    let longLink: Uint8Array | undefined;
    /** Offset of the first x/L/K header still waiting for its entry. */
    let pendingLocal = -1;

    const keep = (bytes: Uint8Array, at: number) => {
      total += bytes.length;
      if (total > TAR_MAX_ENTRY_HEADER_BYTES) {
        throw new TarError(
          `tar: the headers of the entry at offset ${start} exceed ${TAR_MAX_ENTRY_HEADER_BYTES} bytes`,
          { offset: at },
        );
      }
      pieces.push(bytes);
    };

    while (true) {
      const at = src.offset;
      const block = await src.read(TAR_BLOCK_SIZE);
      if (block.length < TAR_BLOCK_SIZE && !isZero(block)) {
        throw new TarError(
          `tar: archive truncated inside the header at offset ${at} (${block.length} of 512 bytes)`,
          { offset: at },
        );
      }
      if (block.length < TAR_BLOCK_SIZE || block[0] === 0 && isZero(block)) {
        if (pendingLocal >= 0) {
          throw new TarError(
            `tar: the extended header at offset ${pendingLocal} is not followed by an entry`,
            { offset: pendingLocal },
          );
        }
        await this.#readTrailer(pieces, total, block, at);
        return null;
      }
      checkChecksum(block, at);

      const flag = block[O_TYPEFLAG];
      if (flag === 0x78 || flag === 0x67 || flag === 0x4c || flag === 0x4b) { // x g L K
        const size = parseNumeric(block, F_SIZE);
        if (size === undefined || size < 0) {
          throw new TarError(
            `tar: invalid size field in the ${flagText(flag)} header at offset ${at}`,
            { offset: at },
          );
        }
        if (size > TAR_MAX_EXTENDED_HEADER_SIZE) {
          throw new TarError(
            `tar: the ${flagText(flag)} header at offset ${at} has ${size} bytes of data, ` +
              `more than the ${TAR_MAX_EXTENDED_HEADER_SIZE} accepted`,
            { offset: at },
          );
        }
        keep(block, at);
        const dataAt = src.offset;
        const data = await src.read(padded(size));
        if (data.length < padded(size)) {
          throw new TarError(
            `tar: archive truncated inside the ${flagText(flag)} header data at offset ${dataAt}`,
            { offset: src.offset },
          );
        }
        keep(data, dataAt);
        const content = data.subarray(0, size);
        if (flag === 0x4c || flag === 0x4b) {
          const nul = content.indexOf(0);
          const value = nul < 0 ? content : content.subarray(0, nul);
          if (flag === 0x4c) longName = value;
          else longLink = value;
          if (pendingLocal < 0) pendingLocal = at;
          continue;
        }
        const records = parsePaxRecords(content, at);
        if (flag === 0x67) {
          this.#applyGlobal(records, at);
        } else {
          if (pendingLocal < 0) pendingLocal = at;
          for (const { key, value } of records) local.set(key, value);
        }
        continue;
      }

      keep(block, at);
      const meta = this.#metadata(block, at, local, longName, longLink);
      const headerBytes = new Uint8Array(total);
      let o = 0;
      for (const p of pieces) {
        headerBytes.set(p, o);
        o += p.length;
      }
      return new Entry(src, meta, headerBytes, start);
    }
  }

  #applyGlobal(records: PaxRecord[], at: number): void {
    for (const { key, value } of records) {
      const old = this.#global.get(key);
      if (old) this.#globalSize -= key.length + old.length;
      if (value.length === 0 && emptyDeletes(key)) {
        this.#global.delete(key);
        continue;
      }
      const copy = value.slice();
      this.#global.set(key, copy);
      this.#globalSize += key.length + copy.length;
    }
    if (this.#globalSize > TAR_MAX_GLOBAL_RECORDS_SIZE) {
      throw new TarError(
        `tar: the global pax records in force at offset ${at} exceed ${TAR_MAX_GLOBAL_RECORDS_SIZE} bytes`,
        { offset: at },
      );
    }
  }

  /** Reads the end of the archive: zero blocks and zero padding only. */
  async #readTrailer(
    pending: Uint8Array[],
    pendingSize: number,
    first: Uint8Array,
    markerAt: number,
  ): Promise<void> {
    const src = this.#src;
    let zeros = first.length;
    while (true) {
      const at = src.offset;
      const chunk = await src.take(1 << 16);
      if (chunk.length === 0) break;
      if (!isZero(chunk)) {
        const bad = at + chunk.findIndex((b) => b !== 0);
        throw new TarError(
          `tar: unexpected data at offset ${bad}, after the end-of-archive marker at offset ` +
            markerAt,
          { offset: bad },
        );
      }
      zeros += chunk.length;
      if (pendingSize + zeros > TAR_MAX_TRAILER_SIZE) {
        throw new TarError(
          `tar: more than ${TAR_MAX_TRAILER_SIZE} bytes after the end-of-archive marker`,
          { offset: src.offset },
        );
      }
    }
    const trailer = new Uint8Array(pendingSize + zeros);
    let o = 0;
    for (const p of pending) {
      trailer.set(p, o);
      o += p.length;
    }
    this.#trailer = trailer;
  }

  /** Builds an entry's metadata from its header and the pax and GNU records before it. */
  #metadata(
    block: Uint8Array,
    at: number,
    local: Records,
    longName: Uint8Array | undefined,
    longLink: Uint8Array | undefined,
  ): TarMetadata {
    // pax records in force: global ones, overridden (or deleted, by an empty value) by local ones
    let records: Records = this.#global;
    if (local.size > 0) {
      records = new Map(this.#global);
      for (const [key, value] of local) {
        if (value.length === 0 && emptyDeletes(key)) records.delete(key);
        else records.set(key, value);
      }
    }
    const pax = (key: string): string | undefined => {
      const v = records.get(key);
      return v === undefined ? undefined : byteString(v);
    };

    const posix = POSIX_MAGIC.every((b, i) => block[O_MAGIC + i] === b);
    let path = pax("path");
    if (path === undefined) {
      if (longName) path = byteString(longName);
      else {
        const name = cString(block, F_NAME);
        const prefix = posix ? cString(block, F_PREFIX) : "";
        path = prefix ? prefix + "/" + name : name;
      }
    }
    const sparseName = pax("GNU.sparse.name");
    const shown = displayPath(sparseName ?? path);
    const fail = (reason: string): never => {
      throw new TarError(`tar entry ${shown}: ${reason} (header at offset ${at})`, {
        path,
        offset: at,
      });
    };
    if (path.length === 0) fail("empty path");

    const flag = block[O_TYPEFLAG];
    const typeflag = String.fromCharCode(flag);
    if (flag === 0x53 /* S */) fail("sparse files are not supported");
    for (const key of records.keys()) {
      if (key.startsWith("GNU.sparse.")) fail("sparse files are not supported");
    }
    const type = TYPES[typeflag];
    if (!type) fail(`unsupported entry type ${flagText(flag)}`);

    const field = (
      name: string,
      f: readonly [number, number],
      paxKey: string | undefined,
      opts: { max: number; negative?: boolean },
    ): number => {
      const text = paxKey ? pax(paxKey) : undefined;
      let n: number | undefined;
      if (text !== undefined) {
        n = paxKey === "mtime" ? parsePaxTime(text) : parsePaxInteger(text, false);
        if (n === undefined) fail(`invalid pax ${paxKey} ${JSON.stringify(text.slice(0, 40))}`);
      } else {
        n = parseNumeric(block, f);
        if (n === undefined) {
          const raw = byteString(block.subarray(f[0], f[0] + f[1]));
          fail(`invalid ${name} field ${JSON.stringify(raw)}`);
        }
      }
      if (n! < 0 && !opts.negative) fail(`negative ${name} ${n}`);
      if (Math.abs(n!) > opts.max) fail(`${name} ${n} is out of range`);
      return n!;
    };

    const mode = field("mode", F_MODE, undefined, { max: MAX_NUMBER }) & 0o7777;
    const uid = field("uid", F_UID, "uid", { max: MAX_ID });
    const gid = field("gid", F_GID, "gid", { max: MAX_ID });
    const size = field("size", F_SIZE, "size", { max: MAX_NUMBER });
    const mtime = field("mtime", F_MTIME, "mtime", { max: MAX_NUMBER, negative: true });
    const device = type === "chardev" || type === "blockdev";
    const devmajor = device ? field("devmajor", F_DEVMAJOR, "SCHILY.devmajor", { max: MAX_ID }) : 0;
    const devminor = device ? field("devminor", F_DEVMINOR, "SCHILY.devminor", { max: MAX_ID }) : 0;
    if (size > 0 && type !== "regular") fail(`a ${type} entry with a size of ${size}`);

    let linkTarget = "";
    if (type === "hardlink" || type === "symlink") {
      linkTarget = pax("linkpath") ??
        (longLink ? byteString(longLink) : cString(block, F_LINKNAME));
      if (linkTarget.length === 0) fail(`${type} with an empty target`);
    }

    const xattrs: Xattr[] = [];
    const index = new Map<string, number>();
    let libarchive = false;
    for (const key of records.keys()) if (key.startsWith(XATTR_LIBARCHIVE)) libarchive = true;
    for (const [key, value] of records) {
      let name: string, bytes: Uint8Array | undefined;
      if (key.startsWith(XATTR_SCHILY) && !libarchive) {
        name = key.slice(XATTR_SCHILY.length);
        bytes = value;
      } else if (key.startsWith(XATTR_LIBARCHIVE)) {
        name = urlDecode(key.slice(XATTR_LIBARCHIVE.length));
        bytes = base64Decode(value);
        if (!bytes) fail(`invalid base64 value of pax ${displayPath(key)}`);
      } else continue;
      if (name.length === 0) fail(`pax ${displayPath(key)} names no extended attribute`);
      const xattr = { name: stringBytes(name), value: bytes!.slice() };
      const i = index.get(name);
      if (i === undefined) {
        index.set(name, xattrs.length);
        xattrs.push(xattr);
      } else xattrs[i] = xattr;
    }

    return {
      path,
      type: type!,
      typeflag,
      mode,
      uid,
      gid,
      size,
      mtime,
      mtimeNsec: paxMtimeNsec(local.get("mtime")),
      uname: pax("uname") ?? cString(block, F_UNAME),
      gname: pax("gname") ?? cString(block, F_GNAME),
      devmajor,
      devminor,
      linkTarget,
      xattrs,
    };
  }
}

/** Verifies a header's checksum: unsigned or signed byte sum, the field counted as spaces. */
function checkChecksum(block: Uint8Array, at: number): void {
  const stored = parseNumeric(block, F_CHKSUM);
  let unsigned = 0, signed = 0;
  for (let i = 0; i < TAR_BLOCK_SIZE; i++) {
    const b = i >= F_CHKSUM[0] && i < F_CHKSUM[0] + F_CHKSUM[1] ? 0x20 : block[i];
    unsigned += b;
    signed += b < 128 ? b : b - 256;
  }
  if (stored === undefined || block[F_CHKSUM[0]] & 0x80) {
    const raw = byteString(block.subarray(F_CHKSUM[0], F_CHKSUM[0] + F_CHKSUM[1]));
    throw new TarError(
      `tar: invalid header at offset ${at}: checksum field ${JSON.stringify(raw)} is not octal`,
      { offset: at },
    );
  }
  if (stored !== unsigned && stored !== signed) {
    throw new TarError(
      `tar: header checksum mismatch at offset ${at}: stored ${stored.toString(8)}, ` +
        `computed ${unsigned.toString(8)}`,
      { offset: at },
    );
  }
}

/** Starts reading a tar archive; iterate the result for its entries. */
export function readTar(input: TarInput): TarReader {
  return new TarReader(input);
}

/**
 * Splits an entry path (byte string) into its names: leading `/` and `./` are dropped, as
 * are empty and `.` names anywhere (`a//./b/` is `a`, `b`); `/` or `.` give `[]` (the root).
 * Throws a {@link TarError} for a `..` name or a NUL byte. The importer uses it for entry
 * paths and hardlink targets; symlink targets are stored as they are.
 */
export function normalizeEntryPath(path: string): string[] {
  if (path.includes("\0")) {
    throw new TarError(`tar entry ${displayPath(path)}: path contains a NUL byte`, { path });
  }
  const names = path.split("/").filter((n) => n !== "" && n !== ".");
  if (names.includes("..")) {
    throw new TarError(`tar entry ${displayPath(path)}: path contains '..'`, { path });
  }
  return names;
}
