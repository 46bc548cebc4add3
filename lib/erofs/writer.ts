/**
 * Writes a {@link FileSystem} as a composefs EROFS image, byte for byte what composefs-rs
 * (`cfsctl` 0.3.0, `mkfs_erofs`) writes for the same tree, so that image IDs agree.
 *
 * The layout is decided the way the reference decides it, because every choice shows in
 * the bytes: inodes in depth-first order (a directory before its children, children in byte
 * order of their names), every inode in the 64-byte extended form, xattrs used by more than
 * one inode moved to a shared table, directory entries inline after the inode when they fit
 * in 2048 bytes, and padding so that inline data never crosses a 4 KiB block boundary.
 *
 * Two passes over the same code: the first only measures (where each inode, shared xattr
 * and directory block lands), the second writes with those offsets known. Pure: a tree in,
 * bytes out.
 *
 * @module
 */
import { xxh32 } from "../hash/xxh32.ts";
import { toHex } from "../fsverity/digest.ts";
import {
  bytesToName,
  compareBytes,
  countLinks,
  type Directory,
  ensureRootStat,
  type FileSystem,
  type Inode,
  type Leaf,
  type LeafContent,
  nameToBytes,
  sortedEntries,
  type Stat,
  type Xattr,
} from "../tree.ts";
import * as F from "./format.ts";

/** One xattr as stored: prefix index, name suffix, value. */
interface EntryXattr {
  prefix: number;
  suffix: Uint8Array;
  value: Uint8Array;
  /** Identity for sharing: equal keys are the same (prefix, suffix, value). */
  key: string;
}

interface DirEnt {
  name: Uint8Array;
  inode: number;
  fileType: number;
}

interface DirLayout {
  blocks: DirEnt[][];
  inline: DirEnt[];
  size: number;
  nlink: number;
}

interface InodeRec {
  stat: Stat;
  fileType: number;
  shared: number[];
  local: EntryXattr[];
  filter: number;
  dir?: DirLayout;
  leaf?: { content: LeafContent; nlink: number };
}

function xattrKey(prefix: number, suffix: Uint8Array, value: Uint8Array): string {
  // U+0100 cannot occur in a byte string, so it separates the parts unambiguously.
  return `${prefix}\u0100${bytesToName(suffix)}\u0100${bytesToName(value)}`;
}

const PREFIX_BYTES = F.XATTR_PREFIXES.map((p) => new TextEncoder().encode(p));

function startsWith(a: Uint8Array, p: Uint8Array): boolean {
  if (a.length < p.length) return false;
  for (let i = 0; i < p.length; i++) if (a[i] !== p[i]) return false;
  return true;
}

/** Adds an xattr to an inode: picks the longest-index matching prefix, updates the filter. */
function addXattr(rec: InodeRec, name: Uint8Array, value: Uint8Array): void {
  for (let idx = PREFIX_BYTES.length - 1; idx >= 0; idx--) {
    const prefix = PREFIX_BYTES[idx];
    if (!startsWith(name, prefix)) continue;
    const suffix = name.subarray(prefix.length);
    rec.filter = (rec.filter | (1 << (xxh32(suffix, (F.XATTR_FILTER_SEED + idx) >>> 0) % 32))) >>>
      0;
    rec.local.push({ prefix: idx, suffix, value, key: xattrKey(idx, suffix, value) });
    return;
  }
}

const enc = new TextEncoder();
const OVERLAY_PREFIX = enc.encode(F.OVERLAY_PREFIX);
const OVERLAY_ESCAPED = enc.encode(F.OVERLAY_ESCAPED_PREFIX);
const METACOPY = enc.encode(F.OVERLAY_METACOPY);
const REDIRECT = enc.encode(F.OVERLAY_REDIRECT);

/** The overlayfs metacopy xattr value: version 0, length, flags 0, algorithm, digest. */
export function overlayMetacopy(digest: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + digest.length);
  out[0] = 0;
  out[1] = out.length;
  out[2] = 0;
  out[3] = digestAlgorithmId(digest);
  out.set(digest, 4);
  return out;
}

/** fs-verity algorithm number of a digest, by its length (32: SHA-256 = 1, 64: SHA-512 = 2). */
export function digestAlgorithmId(digest: Uint8Array): number {
  if (digest.length === 32) return 1;
  if (digest.length === 64) return 2;
  throw new Error(`unsupported digest length ${digest.length}`);
}

/** `XX/rest-of-hex`: where an object lives below `objects/`. */
export function objectPathname(digest: Uint8Array): string {
  const hex = toHex(digest);
  return `${hex.slice(0, 2)}/${hex.slice(2)}`;
}

function leafFileType(content: LeafContent): number {
  switch (content.type) {
    case "inline":
    case "external":
      return F.FileType.regular;
    case "symlink":
      return F.FileType.symlink;
    case "chardev":
      return F.FileType.chardev;
    case "blockdev":
      return F.FileType.blockdev;
    case "fifo":
      return F.FileType.fifo;
    case "socket":
      return F.FileType.socket;
  }
}

const S_IF: Record<number, number> = {
  [F.FileType.regular]: 0o100000,
  [F.FileType.directory]: 0o040000,
  [F.FileType.chardev]: 0o020000,
  [F.FileType.blockdev]: 0o060000,
  [F.FileType.fifo]: 0o010000,
  [F.FileType.socket]: 0o140000,
  [F.FileType.symlink]: 0o120000,
};

// --- collecting inodes --------------------------------------------------------------------

class InodeCollector {
  readonly inodes: InodeRec[] = [];
  private readonly hardlinks = new Map<Leaf, number>();
  constructor(
    private readonly links: Map<Leaf, number>,
    private readonly overlayXattrs: ReadonlyMap<Inode, readonly Xattr[]>,
  ) {}

  private push(inode: Inode, stat: Stat, fileType: number, content?: LeafContent): number {
    const rec: InodeRec = { stat, fileType, shared: [], local: [], filter: 0 };
    if (content?.type === "external") {
      addXattr(rec, METACOPY, overlayMetacopy(content.digest));
      addXattr(rec, REDIRECT, enc.encode(`/${objectPathname(content.digest)}`));
    }
    // Written as given, for overlayfs itself (not escaped like the tree's own xattrs).
    for (const x of this.overlayXattrs.get(inode) ?? []) addXattr(rec, x.name, x.value);
    for (const x of stat.xattrs) {
      if (startsWith(x.name, OVERLAY_PREFIX)) {
        const escaped = new Uint8Array(
          OVERLAY_ESCAPED.length + x.name.length - OVERLAY_PREFIX.length,
        );
        escaped.set(OVERLAY_ESCAPED);
        escaped.set(x.name.subarray(OVERLAY_PREFIX.length), OVERLAY_ESCAPED.length);
        addXattr(rec, escaped, x.value);
      } else {
        addXattr(rec, x.name, x.value);
      }
    }
    this.inodes.push(rec);
    return this.inodes.length - 1;
  }

  private leaf(leaf: Leaf): number {
    const nlink = this.links.get(leaf) ?? 1;
    if (nlink > 1) {
      const seen = this.hardlinks.get(leaf);
      if (seen !== undefined) return seen;
    }
    const idx = this.push(leaf, leaf.stat, leafFileType(leaf.content), leaf.content);
    this.inodes[idx].leaf = { content: leaf.content, nlink };
    if (nlink > 1) this.hardlinks.set(leaf, idx);
    return idx;
  }

  dir(dir: Directory, parent: number): number {
    // The directory's inode comes before its children's (the root must get the first nid).
    const me = this.push(dir, dir.stat, F.FileType.directory);
    const entries: DirEnt[] = [];
    for (const [name, inode] of sortedEntries(dir)) {
      const child = inode.kind === "dir" ? this.dir(inode, me) : this.leaf(inode as Leaf);
      entries.push({
        name: nameToBytes(name),
        inode: child,
        fileType: this.inodes[child].fileType,
      });
    }
    insertSorted(entries, { name: enc.encode("."), inode: me, fileType: F.FileType.directory });
    insertSorted(entries, {
      name: enc.encode(".."),
      inode: parent,
      fileType: F.FileType.directory,
    });
    this.inodes[me].dir = layoutDirectory(entries);
    return me;
  }
}

function insertSorted(entries: DirEnt[], entry: DirEnt): void {
  let lo = 0, hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareBytes(entries[mid].name, entry.name) < 0) lo = mid + 1;
    else hi = mid;
  }
  entries.splice(lo, 0, entry);
}

/** Splits entries into full 4 KiB blocks and an inline tail of at most 2048 bytes. */
function layoutDirectory(entries: DirEnt[]): DirLayout {
  const blocks: DirEnt[][] = [];
  let rest: DirEnt[] = [];
  let nBytes = 0;
  let nlink = 0;
  for (const e of entries) {
    const size = F.DIRENT_SIZE + e.name.length;
    if (e.fileType === F.FileType.directory) nlink++;
    nBytes += size;
    if (nBytes <= F.BLOCK_SIZE) {
      rest.push(e);
    } else {
      blocks.push(rest);
      rest = [e];
      nBytes = size;
    }
  }
  if (nBytes > F.MAX_INLINE_DIR) {
    blocks.push(rest);
    rest = [];
    nBytes = 0;
  }
  return { blocks, inline: rest, size: F.BLOCK_SIZE * blocks.length + nBytes, nlink };
}

/** Moves every (prefix, name, value) used by more than one inode into the shared table. */
function shareXattrs(inodes: InodeRec[]): EntryXattr[] {
  const counts = new Map<string, { x: EntryXattr; n: number }>();
  for (const rec of inodes) {
    for (const x of rec.local) {
      const c = counts.get(x.key);
      if (c) c.n++;
      else counts.set(x.key, { x, n: 1 });
    }
  }
  const shared = [...counts.values()].filter((c) => c.n > 1).map((c) => c.x);
  shared.sort((a, b) =>
    a.prefix - b.prefix || compareBytes(a.suffix, b.suffix) || compareBytes(a.value, b.value)
  );
  const index = new Map(shared.map((x, i) => [x.key, i]));
  for (const rec of inodes) {
    const local: EntryXattr[] = [];
    for (const x of rec.local) {
      const i = index.get(x.key);
      if (i === undefined) local.push(x);
      else rec.shared.push(i);
    }
    rec.local = local;
  }
  return shared;
}

// --- output ---------------------------------------------------------------------------------

/** Where things landed, learnt in the measuring pass. */
interface Layout {
  inodes: number[];
  xattrs: number[];
  blocks: number[];
  end: number;
}

/** The measuring pass and the writing pass share this interface. */
interface Output {
  readonly len: number;
  bytes(b: Uint8Array): void;
  zeros(n: number): void;
  u8(v: number): void;
  u16(v: number): void;
  u32(v: number): void;
  u64(v: bigint): void;
  pad(align: number): void;
}

class Measure implements Output {
  len = 0;
  bytes(b: Uint8Array) {
    this.len += b.length;
  }
  zeros(n: number) {
    this.len += n;
  }
  u8() {
    this.len += 1;
  }
  u16() {
    this.len += 2;
  }
  u32() {
    this.len += 4;
  }
  u64() {
    this.len += 8;
  }
  pad(align: number) {
    this.len = F.roundUp(this.len, align);
  }
}

class Write implements Output {
  len = 0;
  readonly buf: Uint8Array;
  private readonly view: DataView;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  bytes(b: Uint8Array) {
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  zeros(n: number) {
    this.len += n; // the buffer starts zeroed
  }
  u8(v: number) {
    this.buf[this.len++] = v;
  }
  u16(v: number) {
    this.view.setUint16(this.len, v, true);
    this.len += 2;
  }
  u32(v: number) {
    this.view.setUint32(this.len, v >>> 0, true);
    this.len += 4;
  }
  u64(v: bigint) {
    this.view.setBigUint64(this.len, BigInt.asUintN(64, v), true);
    this.len += 8;
  }
  pad(align: number) {
    this.len = F.roundUp(this.len, align);
  }
}

function writeXattr(out: Output, x: EntryXattr): void {
  out.u8(x.suffix.length);
  out.u8(x.prefix);
  out.u16(x.value.length);
  out.bytes(x.suffix);
  out.bytes(x.value);
  out.pad(4);
}

/** Size of an inode's xattr area, computed from its contents (same in both passes). */
function xattrAreaSize(rec: InodeRec): number {
  if (rec.filter === 0) return 0;
  let n = F.XATTR_INODE_HEADER_SIZE + 4 * rec.shared.length;
  for (const x of rec.local) {
    n += F.roundUp(F.XATTR_ENTRY_HEADER_SIZE + x.suffix.length + x.value.length, 4);
  }
  return n;
}

function writeInodeXattrs(out: Output, rec: InodeRec, layout: Layout | null): void {
  if (rec.filter === 0) return;
  out.u32(~rec.filter >>> 0);
  out.u8(rec.shared.length);
  out.zeros(7);
  for (const idx of rec.shared) out.u32(layout ? layout.xattrs[idx] / 4 : 0);
  for (const x of rec.local) writeXattr(out, x);
}

function writeDirBlock(out: Output, entries: DirEnt[], layout: Layout | null): void {
  let nameofs = F.DIRENT_SIZE * entries.length;
  for (const e of entries) {
    out.u64(BigInt(layout ? layout.inodes[e.inode] / F.INODE_SLOT : 0));
    out.u16(nameofs);
    out.u8(e.fileType);
    out.u8(0);
    nameofs += e.name.length;
  }
  for (const e of entries) out.bytes(e.name);
}

/** (data layout, u, size, nlink) of an inode. */
function inodeMeta(rec: InodeRec, blockOffset: number): [number, number, bigint, number] {
  const dir = rec.dir;
  if (dir) {
    if (dir.inline.length === 0) {
      return [F.DATALAYOUT_FLAT_PLAIN, blockOffset / F.BLOCK_SIZE, BigInt(dir.size), dir.nlink];
    }
    if (dir.blocks.length > 0) {
      return [F.DATALAYOUT_FLAT_INLINE, blockOffset / F.BLOCK_SIZE, BigInt(dir.size), dir.nlink];
    }
    return [F.DATALAYOUT_FLAT_INLINE, 0, BigInt(dir.size), dir.nlink];
  }
  const { content, nlink } = rec.leaf!;
  switch (content.type) {
    case "inline":
      return [
        content.data.length === 0 ? F.DATALAYOUT_FLAT_PLAIN : F.DATALAYOUT_FLAT_INLINE,
        0,
        BigInt(content.data.length),
        nlink,
      ];
    case "external":
      return [F.DATALAYOUT_CHUNK_BASED, F.CHUNK_FORMAT_COMPOSEFS, BigInt(content.size), nlink];
    case "chardev":
    case "blockdev":
      return [F.DATALAYOUT_FLAT_PLAIN, Number(BigInt.asUintN(32, content.rdev)), 0n, nlink];
    case "fifo":
    case "socket":
      return [F.DATALAYOUT_FLAT_PLAIN, 0, 0n, nlink];
    case "symlink":
      return [F.DATALAYOUT_FLAT_INLINE, 0, BigInt(content.target.length), nlink];
  }
}

function writeInode(
  out: Output,
  rec: InodeRec,
  idx: number,
  layout: Layout | null,
  notes: Layout,
): void {
  const [datalayout, u, size, nlink] = inodeMeta(rec, layout ? layout.blocks[idx] : 0);
  const xattrSize = xattrAreaSize(rec);

  out.pad(F.INODE_SLOT);
  if (datalayout === F.DATALAYOUT_FLAT_INLINE) {
    // Inline data must not cross a block boundary: if it would, pad up to the next block.
    const inlineStart = out.len + F.EXTENDED_INODE_SIZE + xattrSize;
    const endOfMetadata = inlineStart - 1;
    const inlineEnd = inlineStart + Number(size % BigInt(F.BLOCK_SIZE));
    if (Math.floor(endOfMetadata / F.BLOCK_SIZE) !== Math.floor(inlineEnd / F.BLOCK_SIZE)) {
      out.zeros(F.BLOCK_SIZE - (endOfMetadata % F.BLOCK_SIZE));
      out.pad(F.INODE_SLOT);
    }
  }

  notes.inodes.push(out.len);
  const ino = out.len / F.INODE_SLOT;
  out.u16(F.INODE_LAYOUT_EXTENDED | datalayout);
  out.u16(xattrSize === 0 ? 0 : 1 + (xattrSize - F.XATTR_INODE_HEADER_SIZE) / 4);
  out.u16((S_IF[rec.fileType] | rec.stat.mode) & 0xffff);
  out.u16(0);
  out.u64(size);
  out.u32(u);
  out.u32(ino);
  out.u32(rec.stat.uid);
  out.u32(rec.stat.gid);
  out.u64(BigInt(rec.stat.mtime));
  out.u32(0);
  out.u32(nlink);
  out.zeros(16);

  writeInodeXattrs(out, rec, layout);

  if (rec.dir) {
    writeDirBlock(out, rec.dir.inline, layout);
  } else {
    const c = rec.leaf!.content;
    if (c.type === "inline") out.bytes(c.data);
    else if (c.type === "external") out.bytes(F.NULL_CHUNK);
    else if (c.type === "symlink") out.bytes(c.target);
  }
  out.pad(F.INODE_SLOT);
}

function writeImage(
  out: Output,
  inodes: InodeRec[],
  shared: EntryXattr[],
  layout: Layout | null,
): Layout {
  const notes: Layout = { inodes: [], xattrs: [], blocks: [], end: 0 };

  // composefs header
  out.u32(F.COMPOSEFS_MAGIC);
  out.u32(F.COMPOSEFS_HEADER_VERSION);
  out.u32(0);
  out.u32(F.COMPOSEFS_VERSION);
  out.zeros(16);
  out.pad(F.SUPERBLOCK_OFFSET);

  // superblock
  out.u32(F.EROFS_MAGIC);
  out.u32(0); // checksum
  out.u32(F.FEATURE_COMPAT_MTIME | F.FEATURE_COMPAT_XATTR_FILTER);
  out.u8(F.BLOCK_BITS);
  out.u8(0); // extslots
  out.u16(layout ? layout.inodes[0] / F.INODE_SLOT : 0);
  out.u64(BigInt(inodes.length));
  out.u64(0n); // build_time
  out.u32(0); // build_time_nsec
  out.u32(layout ? layout.end / F.BLOCK_SIZE : 0);
  out.zeros(F.SUPERBLOCK_SIZE - 40);

  inodes.forEach((rec, idx) => writeInode(out, rec, idx, layout, notes));

  for (const x of shared) {
    notes.xattrs.push(out.len);
    writeXattr(out, x);
  }

  out.pad(F.BLOCK_SIZE);
  for (const rec of inodes) {
    notes.blocks.push(out.len);
    for (const block of rec.dir?.blocks ?? []) {
      writeDirBlock(out, block, layout);
      out.pad(F.BLOCK_SIZE);
    }
  }
  notes.end = out.len;
  return notes;
}

/** Extras of {@link mkfsErofs} that are not part of a tree. */
export interface MkfsOptions {
  /**
   * Xattrs added to some inodes and written as they are: a `trusted.overlay.*` name here is
   * not escaped (the tree's own ones are, see the module documentation), so overlayfs acts on
   * it. `cfs setup-root` marks directories opaque this way in the image it derives for the
   * fallback overlay; composefs images themselves carry none.
   */
  overlayXattrs?: ReadonlyMap<Inode, readonly Xattr[]>;
}

/**
 * The composefs EROFS image of `fs`. Like the reference, a synthetic root first gets the
 * newest mtime in the tree ({@link ensureRootStat}); that mutates `fs`.
 *
 * @param links how many entries refer to each leaf; computed when not given.
 */
export function mkfsErofs(
  fs: FileSystem,
  links: Map<Leaf, number> = countLinks(fs),
  options: MkfsOptions = {},
): Uint8Array {
  ensureRootStat(fs);
  const collector = new InodeCollector(links, options.overlayXattrs ?? new Map());
  collector.dir(fs.root, 0);
  const inodes = collector.inodes;
  const shared = shareXattrs(inodes);
  const layout = writeImage(new Measure(), inodes, shared, null);
  const out = new Write(layout.end);
  writeImage(out, inodes, shared, layout);
  return out.buf;
}
