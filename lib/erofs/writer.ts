/**
 * Writes a {@link FileSystem} as a composefs EROFS image, byte for byte what composefs-rs 0.9.4
 * (`mkfs_erofs_versioned`) writes for the same tree in each format version (see
 * {@link ErofsVersion}), so that image IDs agree.
 *
 * Every layout choice shows in the bytes, so each is made as the reference makes it:
 *
 * - **Order.** V2 numbers inodes depth first (a directory before its children, children in
 *   byte order of their names); V0/V1 breadth first, as libcomposefs does, with a hardlinked
 *   leaf numbered where its first name in depth-first order is.
 * - **Inode form.** V2 writes every inode extended (64 bytes). V0/V1 write a compact one (32
 *   bytes) when the mtime is the tree's oldest (kept once, in the superblock's build time) and
 *   ids, link count and size fit its 16/32-bit fields.
 * - **Whiteouts (V0/V1).** The root gets a character device 0:0 named `00`..`ff` for each such
 *   name it lacks (the stub table overlayfs needs over the object store). A whiteout of the
 *   tree itself is escaped: written as an empty regular file marked with
 *   `trusted.overlay.overlay.whiteout` and `user.overlay.whiteout`, and its directory marked
 *   with `...whiteouts` (and, in V1, opaque), so that overlayfs shows it instead of acting on
 *   it. The root is marked `trusted.overlay.opaque=y`.
 * - **Xattrs.** The tree's `trusted.overlay.*` names are escaped to
 *   `trusted.overlay.overlay.*` (in every version). An xattr (name and value) used by more
 *   than one inode moves to a shared table: V2 orders it by prefix index, suffix and value,
 *   V0/V1 by full name, then value length, then value, written in descending order. V0/V1
 *   also sort each inode's own entries by full name and store `lustre.*` without a prefix.
 * - **Data.** Directory entries go inline after the inode when they fit in 2048 bytes; V0/V1
 *   move a long symlink target or an inline file's large tail to a data block. Inline data
 *   never crosses a block boundary: each version pads before the inode by its own rule.
 *
 * Two passes over the same code: the first only measures (where each inode, shared xattr and
 * data block lands), the second writes with those offsets known. Pure: a tree in, bytes out.
 * Trees the format cannot hold are refused first ({@link ErofsLimitError}, `limits.ts`).
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
import {
  checkErofsLimits,
  displayPath,
  ErofsLimitError,
  SHARED_XATTRS_PER_INODE_MAX,
  XATTR_AREA_MAX,
} from "./limits.ts";

/** One xattr as stored: prefix index, name suffix, value. */
interface EntryXattr {
  prefix: number;
  suffix: Uint8Array;
  value: Uint8Array;
  /** The full name as a byte string (what V0/V1 sort by). */
  full: string;
  /** The value as a byte string. */
  val: string;
  /** Identity for sharing: equal keys are the same name and value. */
  key: string;
}

interface DirEnt {
  name: Uint8Array;
  /** The name as a byte string, for sorting. */
  key: string;
  /** Index of the inode, or -1 until a deferred hardlink is resolved (V0/V1). */
  inode: number;
  /** The leaf, for resolving a deferred hardlink. */
  leaf?: Leaf;
  fileType: number;
}

interface DirLayout {
  blocks: DirEnt[][];
  inline: DirEnt[];
  size: number;
  nlink: number;
}

interface LeafLayout {
  content: LeafContent;
  nlink: number;
  /** V0/V1: data blocks after the metadata (a large inline file, a long symlink target). */
  dataBlocks: number;
  /** Bytes after the inode and its xattrs: inline data, symlink target or chunk addresses. */
  tail: number;
}

interface InodeRec {
  /** The tree's inode (for naming it in errors). */
  inode: Inode;
  stat: Stat;
  /** The type its directory entries carry (an escaped whiteout is a regular file). */
  fileType: number;
  escapedWhiteout: boolean;
  shared: number[];
  local: EntryXattr[];
  filter: number;
  dir?: DirLayout;
  leaf?: LeafLayout;
}

const enc = new TextEncoder();
const PREFIX_BYTES = F.XATTR_PREFIXES.map((p) => enc.encode(p));
const OVERLAY_PREFIX = enc.encode(F.OVERLAY_PREFIX);
const OVERLAY_ESCAPED = enc.encode(F.OVERLAY_ESCAPED_PREFIX);
const METACOPY = enc.encode(F.OVERLAY_METACOPY);
const REDIRECT = enc.encode(F.OVERLAY_REDIRECT);
const EMPTY = new Uint8Array(0);
const DOT = enc.encode(".");
const DOTDOT = enc.encode("..");
const SELINUX = F.SECURITY_SELINUX;

/**
 * `bytesToName` for xattr names and values, as one flat string from one native call. Measured
 * on the Debian rootfs (V1): building these keys a character at a time makes ropes that the
 * sharing map then flattens, and their garbage; this halved the time of collecting the inodes
 * and of sharing xattrs.
 */
function byteString(bytes: Uint8Array): string {
  if (bytes.length > 8192) return bytesToName(bytes);
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

function startsWith(a: Uint8Array, p: Uint8Array): boolean {
  if (a.length < p.length) return false;
  for (let i = 0; i < p.length; i++) if (a[i] !== p[i]) return false;
  return true;
}

/** The overlayfs metacopy xattr value: version 0, length, flags 0, algorithm, digest. */
export function overlayMetacopy(digest: Uint8Array): Uint8Array {
  const out = new Uint8Array(F.OverlayMetacopy.size + digest.length);
  F.encodeStruct(
    F.OverlayMetacopy,
    {
      version: 0,
      len: out.length,
      flags: 0,
      digestAlgo: digestAlgorithmId(digest),
    },
    new DataView(out.buffer),
    0,
  );
  out.set(digest, F.OverlayMetacopy.size);
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

/** `/XX/rest-of-hex` as bytes, written digit by digit (no intermediate strings). */
function redirectValue(digest: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + 2 * digest.length);
  out[0] = out[3] = 0x2f; // "/"
  for (let i = 0, o = 1; i < digest.length; i++) {
    out[o++] = HEX_DIGITS[digest[i] >> 4];
    out[o++] = HEX_DIGITS[digest[i] & 15];
    if (o === 3) o++; // after the first byte's two digits comes the second "/"
  }
  return out;
}

const HEX_DIGITS = enc.encode("0123456789abcdef");

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

function isWhiteout(content: LeafContent): boolean {
  return content.type === "chardev" && content.rdev === 0n;
}

/** log2 of the chunk size V0/V1 give an external file: as few chunks as possible, >= 1 block. */
function chunkBits(size: number): number {
  let bits = size > 1 ? (size - 1).toString(2).length : 1;
  if (bits < F.BLOCK_BITS) bits = F.BLOCK_BITS;
  if (bits - F.BLOCK_BITS > F.CHUNK_FORMAT_BLKBITS_MASK) {
    bits = F.CHUNK_FORMAT_BLKBITS_MASK + F.BLOCK_BITS;
  }
  return bits;
}

function chunkCount(size: number): number {
  return Math.ceil(size / 2 ** chunkBits(size));
}

/** Orders mtimes as composefs-rs does: seconds as unsigned 64-bit (negatives last), then ns. */
function compareMtime(aSec: number, aNsec: number, bSec: number, bNsec: number): number {
  if (aSec !== bSec) {
    if ((aSec < 0) !== (bSec < 0)) return aSec < 0 ? 1 : -1;
    return aSec - bSec;
  }
  return aNsec - bNsec;
}

// --- collecting inodes ----------------------------------------------------------------------

/** What one image is being written as. */
interface WriteContext {
  version: F.ErofsVersion;
  /** V0/V1 (libcomposefs's layout) rather than V2. */
  compact: boolean;
}

class InodeCollector {
  readonly inodes: InodeRec[] = [];
  private readonly hardlinks = new Map<Leaf, number>();

  constructor(
    private readonly ctx: WriteContext,
    private readonly links: ReadonlyMap<Leaf, number>,
    private readonly overlayXattrs: ReadonlyMap<Inode, readonly Xattr[]>,
    private readonly root: Directory,
    /** The root's entries in name order (V0/V1: with the whiteout stubs). */
    private readonly rootEntries: Array<[string, Inode]>,
  ) {}

  /** Sorted entries of directories already sorted once (V0/V1 walk the tree twice). */
  private readonly sorted = new Map<Directory, Array<[string, Inode]>>();

  private entriesOf(dir: Directory): Array<[string, Inode]> {
    if (dir === this.root) return this.rootEntries;
    let entries = this.sorted.get(dir);
    if (!entries) {
      entries = sortedEntries(dir);
      if (this.ctx.compact) this.sorted.set(dir, entries);
    }
    return entries;
  }

  /** Adds an xattr: picks the longest-index matching prefix, updates the name filter. */
  addXattr(rec: InodeRec, name: Uint8Array, value: Uint8Array): void {
    for (let idx = PREFIX_BYTES.length - 1; idx >= 0; idx--) {
      // libcomposefs has no `lustre.` prefix: V0/V1 keep such names whole (index 0).
      if (idx === F.XATTR_INDEX_LUSTRE && this.ctx.compact) continue;
      const prefix = PREFIX_BYTES[idx];
      if (!startsWith(name, prefix)) continue;
      const suffix = name.subarray(prefix.length);
      const seed = (F.XATTR_FILTER_SEED + idx) >>> 0;
      rec.filter = (rec.filter | (1 << (xxh32(suffix, seed) % 32))) >>> 0;
      const full = byteString(name);
      const val = byteString(value);
      rec.local.push({ prefix: idx, suffix, value, full, val, key: `${full}\u0100${val}` });
      return;
    }
  }

  private push(inode: Inode, stat: Stat, fileType: number, content?: LeafContent): number {
    const rec: InodeRec = {
      inode,
      stat,
      fileType,
      escapedWhiteout: false,
      shared: [],
      local: [],
      filter: 0,
    };
    if (content?.type === "external") {
      this.addXattr(rec, METACOPY, overlayMetacopy(content.digest));
      this.addXattr(rec, REDIRECT, redirectValue(content.digest));
    }
    // Written as given, for overlayfs itself (not escaped like the tree's own xattrs).
    for (const x of this.overlayXattrs.get(inode) ?? []) this.addXattr(rec, x.name, x.value);
    for (const x of stat.xattrs) {
      if (startsWith(x.name, OVERLAY_PREFIX)) {
        const escaped = new Uint8Array(
          OVERLAY_ESCAPED.length + x.name.length - OVERLAY_PREFIX.length,
        );
        escaped.set(OVERLAY_ESCAPED);
        escaped.set(x.name.subarray(OVERLAY_PREFIX.length), OVERLAY_ESCAPED.length);
        this.addXattr(rec, escaped, x.value);
      } else {
        this.addXattr(rec, x.name, x.value);
      }
    }
    this.inodes.push(rec);
    return this.inodes.length - 1;
  }

  private leafLayout(content: LeafContent, nlink: number): LeafLayout {
    let dataBlocks = 0, tail = 0;
    if (this.ctx.compact) {
      if (content.type === "inline" && content.data.length > 0) {
        dataBlocks = Math.floor(content.data.length / F.BLOCK_SIZE);
        tail = content.data.length % F.BLOCK_SIZE;
        // A tail over half a block gets a block of its own.
        if (tail > F.BLOCK_SIZE / 2) {
          dataBlocks++;
          tail = 0;
        }
      } else if (content.type === "symlink") {
        tail = content.target.length; // may move to a block (fixupDataBlocks)
      } else if (content.type === "external" && content.size > 0) {
        tail = chunkCount(content.size) * F.ChunkAddress.size;
      }
    } else if (content.type === "inline") {
      tail = content.data.length;
    } else if (content.type === "external") {
      tail = F.ChunkAddress.size; // one chunk that points nowhere
    }
    return { content, nlink, dataBlocks, tail };
  }

  leaf(leaf: Leaf): number {
    const nlink = this.links.get(leaf) ?? 1;
    if (nlink > 1) {
      const seen = this.hardlinks.get(leaf);
      if (seen !== undefined) return seen;
    }
    const idx = this.push(leaf, leaf.stat, leafFileType(leaf.content), leaf.content);
    this.inodes[idx].leaf = this.leafLayout(leaf.content, nlink);
    if (nlink > 1) this.hardlinks.set(leaf, idx);
    return idx;
  }

  /** V2: depth first, a directory's inode before its children's. */
  dfs(dir: Directory, parent: number): number {
    const me = this.push(dir, dir.stat, F.FileType.directory);
    const entries: DirEnt[] = [
      { name: DOT, key: ".", inode: me, fileType: F.FileType.directory },
      { name: DOTDOT, key: "..", inode: parent, fileType: F.FileType.directory },
    ];
    for (const [name, inode] of this.entriesOf(dir)) {
      const child = inode.kind === "dir" ? this.dfs(inode, me) : this.leaf(inode);
      entries.push({
        name: nameToBytes(name),
        key: name,
        inode: child,
        fileType: this.inodes[child].fileType,
      });
    }
    this.inodes[me].dir = layoutDirectory(sortEntries(entries));
    return me;
  }

  /**
   * V0/V1: breadth first, as libcomposefs numbers inodes. A hardlinked leaf gets its number
   * where its first name in depth-first order is (libcomposefs reads the tree from a dumpfile
   * in that order, and only a leaf's first name is the "original"); names met before that are
   * resolved afterwards.
   */
  bfs(root: Directory): void {
    const canonical = new Map<Leaf, Directory>();
    const findCanonical = (dir: Directory) => {
      for (const [, inode] of this.entriesOf(dir)) {
        if (inode.kind === "dir") findCanonical(inode);
        else if ((this.links.get(inode) ?? 1) > 1 && !canonical.has(inode)) {
          canonical.set(inode, dir);
        }
      }
    };
    let hardlinks = false;
    for (const n of this.links.values()) {
      if (n > 1) {
        hardlinks = true;
        break;
      }
    }
    if (hardlinks) findCanonical(root);

    const rootIdx = this.push(root, root.stat, F.FileType.directory);
    const queue: Array<[Directory, number, number]> = [[root, rootIdx, rootIdx]];
    const dirs: Array<[number, DirEnt[]]> = [];
    for (let q = 0; q < queue.length; q++) {
      const [dir, parent, me] = queue[q];
      const entries: DirEnt[] = [
        { name: DOT, key: ".", inode: me, fileType: F.FileType.directory },
        { name: DOTDOT, key: "..", inode: parent, fileType: F.FileType.directory },
      ];
      let hasWhiteout = false;
      for (const [name, inode] of this.entriesOf(dir)) {
        if (inode.kind === "dir") {
          const child = this.push(inode, inode.stat, F.FileType.directory);
          queue.push([inode, me, child]);
          entries.push({
            name: nameToBytes(name),
            key: name,
            inode: child,
            fileType: F.FileType.directory,
          });
          continue;
        }
        const isCanonical = (this.links.get(inode) ?? 1) > 1 ? canonical.get(inode) === dir : true;
        const child = isCanonical ? this.leaf(inode) : this.hardlinks.get(inode) ?? -1;
        if (
          isCanonical && isWhiteout(inode.content) &&
          !(me === rootIdx && isStubLike(name, inode.stat, root.stat))
        ) {
          const rec = this.inodes[child];
          if (!rec.escapedWhiteout) {
            rec.escapedWhiteout = true;
            rec.fileType = F.FileType.regular;
            this.addXattr(rec, enc.encode(F.OVERLAY_ESCAPED_WHITEOUT), EMPTY);
            this.addXattr(rec, enc.encode(F.USER_OVERLAY_WHITEOUT), EMPTY);
            hasWhiteout = true;
          }
        }
        entries.push({
          name: nameToBytes(name),
          key: name,
          inode: child,
          leaf: inode,
          fileType: child >= 0 ? this.inodes[child].fileType : F.FileType.regular,
        });
      }
      if (hasWhiteout) {
        const rec = this.inodes[me];
        this.addXattr(rec, enc.encode(F.OVERLAY_ESCAPED_WHITEOUTS), EMPTY);
        this.addXattr(rec, enc.encode(F.USER_OVERLAY_WHITEOUTS), EMPTY);
        if (this.ctx.version === 1) {
          this.addXattr(rec, enc.encode(F.OVERLAY_ESCAPED_OPAQUE), enc.encode("x"));
          this.addXattr(rec, enc.encode(F.USER_OVERLAY_OPAQUE), enc.encode("x"));
        }
      }
      dirs.push([me, sortEntries(entries)]);
    }
    for (const [me, entries] of dirs) {
      for (const e of entries) {
        if (e.inode < 0) {
          e.inode = this.hardlinks.get(e.leaf!)!;
          e.fileType = this.inodes[e.inode].fileType;
        }
      }
      this.inodes[me].dir = layoutDirectory(entries);
    }
  }
}

/**
 * Whether a root entry looks exactly like a whiteout stub libcomposefs adds (two lower-case
 * hex digits, mode 0644, the root's owner, group and mtime, and only the root's SELinux
 * label): such a whiteout is left as it is rather than escaped.
 */
function isStubLike(name: string, stat: Stat, rootStat: Stat): boolean {
  if (name.length !== 2 || !/^[0-9a-f]{2}$/.test(name)) return false;
  if (
    stat.mode !== 0o644 || stat.uid !== rootStat.uid || stat.gid !== rootStat.gid ||
    stat.mtime !== rootStat.mtime || (stat.mtimeNsec ?? 0) !== (rootStat.mtimeNsec ?? 0)
  ) return false;
  const rootLabel = rootStat.xattrs.find((x) => bytesToName(x.name) === SELINUX);
  if (!rootLabel) return stat.xattrs.length === 0;
  return stat.xattrs.length === 1 && bytesToName(stat.xattrs[0].name) === SELINUX &&
    compareBytes(stat.xattrs[0].value, rootLabel.value) === 0;
}

/** The root's entries with the V0/V1 whiteout stubs added for the names it lacks. */
function rootEntriesWithStubs(root: Directory): Array<[string, Inode]> {
  const label = root.stat.xattrs.find((x) => bytesToName(x.name) === SELINUX);
  const entries = [...root.entries];
  for (const name of F.WHITEOUT_STUB_NAMES) {
    if (root.entries.has(name)) continue;
    const stub: Leaf = {
      kind: "leaf",
      stat: {
        mode: 0o644,
        uid: root.stat.uid,
        gid: root.stat.gid,
        mtime: root.stat.mtime,
        mtimeNsec: root.stat.mtimeNsec ?? 0,
        xattrs: label ? [{ name: label.name, value: label.value }] : [],
      },
      content: { type: "chardev", rdev: 0n },
    };
    entries.push([name, stub]);
  }
  return entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function sortEntries(entries: DirEnt[]): DirEnt[] {
  return entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Splits entries into full 4 KiB blocks and an inline tail of at most 2048 bytes. */
function layoutDirectory(entries: DirEnt[]): DirLayout {
  const blocks: DirEnt[][] = [];
  let rest: DirEnt[] = [];
  let nBytes = 0;
  let nlink = 0;
  for (const e of entries) {
    const size = F.Dirent.size + e.name.length;
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

/** V0/V1 order of xattrs: full name, then value length, then value (libcomposefs's order). */
function compareFullKey(a: EntryXattr, b: EntryXattr): number {
  if (a.full !== b.full) return a.full < b.full ? -1 : 1;
  if (a.value.length !== b.value.length) return a.value.length - b.value.length;
  return a.val < b.val ? -1 : a.val > b.val ? 1 : 0;
}

/** V2 order of xattrs: prefix index, suffix, value. */
function compareIndexed(a: EntryXattr, b: EntryXattr): number {
  return a.prefix - b.prefix || compareBytes(a.suffix, b.suffix) || compareBytes(a.value, b.value);
}

/**
 * Moves every xattr (name and value) used by more than one inode into the shared table and
 * returns the table in on-disk order; each inode's `shared` lists indexes into it.
 */
function shareXattrs(inodes: InodeRec[], compact: boolean): EntryXattr[] {
  if (compact) { for (const rec of inodes) rec.local.sort(compareFullKey); }
  const counts = new Map<string, { x: EntryXattr; n: number }>();
  for (const rec of inodes) {
    for (const x of rec.local) {
      const c = counts.get(x.key);
      if (c) c.n++;
      else counts.set(x.key, { x, n: 1 });
    }
  }
  const shared = [...counts.values()].filter((c) => c.n > 1).map((c) => c.x);
  if (compact) shared.sort((a, b) => compareFullKey(b, a)); // libcomposefs writes descending
  else shared.sort(compareIndexed);
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
  inodesEnd: number;
  xattrs: number[];
  blocks: number[];
  end: number;
}

/** The measuring pass and the writing pass share this interface. */
interface Output {
  readonly len: number;
  bytes(b: Uint8Array): void;
  zeros(n: number): void;
  u32(v: number): void;
  struct<S extends readonly (readonly [string, F.FieldKind])[]>(
    s: F.Struct<S>,
    values: Partial<F.StructValues<S>>,
  ): void;
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
  u32() {
    this.len += 4;
  }
  struct<S extends readonly (readonly [string, F.FieldKind])[]>(s: F.Struct<S>) {
    this.len += s.size;
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
  u32(v: number) {
    this.view.setUint32(this.len, v >>> 0, true);
    this.len += 4;
  }
  struct<S extends readonly (readonly [string, F.FieldKind])[]>(
    s: F.Struct<S>,
    values: Partial<F.StructValues<S>>,
  ) {
    F.encodeStruct(s, values, this.view, this.len);
    this.len += s.size;
  }
  pad(align: number) {
    this.len = F.roundUp(this.len, align);
  }
}

/** Everything decided before the two passes. */
interface Prepared {
  ctx: WriteContext;
  inodes: InodeRec[];
  shared: EntryXattr[];
  /** The oldest mtime (V0/V1: the build time, and the mtime of every compact inode). */
  minSec: number;
  minNsec: number;
  headerFlags: number;
}

function writeXattr(out: Output, x: EntryXattr): void {
  out.struct(F.XattrEntry, {
    nameLen: x.suffix.length,
    nameIndex: x.prefix,
    valueSize: x.value.length,
  });
  out.bytes(x.suffix);
  out.bytes(x.value);
  out.pad(F.XATTR_WORD);
}

/** Size of an inode's xattr area, computed from its contents (same in both passes). */
function xattrAreaSize(rec: InodeRec): number {
  if (rec.filter === 0) return 0;
  let n = F.InodeXattrHeader.size + F.XATTR_WORD * rec.shared.length;
  for (const x of rec.local) {
    n += F.roundUp(F.XattrEntry.size + x.suffix.length + x.value.length, F.XATTR_WORD);
  }
  return n;
}

/** The id of shared xattr `idx`: V0/V1 count from the xattr block, V2 from the image start. */
function sharedXattrId(idx: number, layout: Layout | null, compact: boolean): number {
  if (!layout) return 0;
  const at = layout.xattrs[idx];
  if (!compact) return at / F.XATTR_WORD;
  const blockStart = layout.inodesEnd - (layout.inodesEnd % F.BLOCK_SIZE);
  return (at - blockStart) / F.XATTR_WORD;
}

function writeInodeXattrs(out: Output, rec: InodeRec, p: Prepared, layout: Layout | null): void {
  if (rec.filter === 0) return;
  out.struct(F.InodeXattrHeader, { nameFilter: ~rec.filter >>> 0, sharedCount: rec.shared.length });
  for (const idx of rec.shared) out.u32(sharedXattrId(idx, layout, p.ctx.compact));
  for (const x of rec.local) writeXattr(out, x);
}

function writeDirBlock(out: Output, entries: DirEnt[], layout: Layout | null): void {
  let nameoff = F.Dirent.size * entries.length;
  for (const e of entries) {
    out.struct(F.Dirent, {
      nid: BigInt(layout ? layout.inodes[e.inode] / F.INODE_SLOT : 0),
      nameoff,
      fileType: e.fileType,
    });
    nameoff += e.name.length;
  }
  for (const e of entries) out.bytes(e.name);
}

interface InodeMeta {
  layout: number;
  u: number;
  size: number;
  nlink: number;
}

function inodeMeta(rec: InodeRec, blockOffset: number, compact: boolean): InodeMeta {
  const blkaddr = blockOffset / F.BLOCK_SIZE;
  const dir = rec.dir;
  if (dir) {
    const layout = dir.inline.length === 0 ? F.DATALAYOUT_FLAT_PLAIN : F.DATALAYOUT_FLAT_INLINE;
    const u = dir.inline.length > 0 && dir.blocks.length === 0 ? 0 : blkaddr;
    return { layout, u, size: dir.size, nlink: dir.nlink };
  }
  const { content, nlink, dataBlocks, tail } = rec.leaf!;
  switch (content.type) {
    case "inline": {
      const size = content.data.length;
      if (size === 0) return { layout: F.DATALAYOUT_FLAT_PLAIN, u: 0, size, nlink };
      if (dataBlocks > 0) {
        const layout = tail > 0 ? F.DATALAYOUT_FLAT_INLINE : F.DATALAYOUT_FLAT_PLAIN;
        return { layout, u: blkaddr, size, nlink };
      }
      return { layout: F.DATALAYOUT_FLAT_INLINE, u: 0, size, nlink };
    }
    case "external": {
      const format = compact ? chunkBits(content.size) - F.BLOCK_BITS : F.CHUNK_FORMAT_V2;
      const u = dataBlocks > 0 ? ((blkaddr & 0xffff0000) | format) >>> 0 : format;
      return { layout: F.DATALAYOUT_CHUNK_BASED, u, size: content.size, nlink };
    }
    case "chardev":
    case "blockdev":
      return { layout: F.DATALAYOUT_FLAT_PLAIN, u: Number(content.rdev), size: 0, nlink };
    case "fifo":
    case "socket":
      return { layout: F.DATALAYOUT_FLAT_PLAIN, u: 0, size: 0, nlink };
    case "symlink": {
      const size = content.target.length;
      if (dataBlocks > 0) return { layout: F.DATALAYOUT_FLAT_PLAIN, u: blkaddr, size, nlink };
      return { layout: F.DATALAYOUT_FLAT_INLINE, u: 0, size, nlink };
    }
  }
}

/** V0/V1: whether the 32-byte form can hold the inode. */
function fitsCompact(stat: Stat, p: Prepared, size: number, nlink: number): boolean {
  return stat.mtime === p.minSec && (stat.mtimeNsec ?? 0) === p.minNsec && nlink <= 0xffff &&
    stat.uid <= 0xffff && stat.gid <= 0xffff && size <= 0xffffffff;
}

/** Bytes from `pos` to the next block boundary; 0 when `pos` is on one. */
function toBoundary(pos: number): number {
  const r = pos % F.BLOCK_SIZE;
  return r === 0 ? 0 : F.BLOCK_SIZE - r;
}

/** The padding before an inode that keeps its tail (inline data) inside one block. */
function padBeforeInode(
  out: Output,
  rec: InodeRec,
  m: InodeMeta,
  headerSize: number,
  xattrSize: number,
  compact: boolean,
): void {
  const pos = out.len;
  const metaSize = headerSize + xattrSize;
  const leaf = rec.leaf;
  if (!compact) {
    if (m.layout !== F.DATALAYOUT_FLAT_INLINE) return;
    // V2: if the tail would end in another block than the metadata, start a new block.
    const inlineStart = pos + metaSize;
    const inlineEnd = inlineStart + (m.size % F.BLOCK_SIZE);
    if (Math.floor((inlineStart - 1) / F.BLOCK_SIZE) !== Math.floor(inlineEnd / F.BLOCK_SIZE)) {
      out.zeros(F.BLOCK_SIZE - ((inlineStart - 1) % F.BLOCK_SIZE));
      out.pad(F.INODE_SLOT);
    }
    return;
  }
  const symlink = rec.fileType === F.FileType.symlink;
  if (symlink && m.layout === F.DATALAYOUT_FLAT_PLAIN) {
    // A target moved to a data block still aligns the inode as if it were inline.
    const end = pos + metaSize + m.size - 1;
    if (Math.floor(pos / F.BLOCK_SIZE) !== Math.floor(end / F.BLOCK_SIZE)) {
      out.zeros(toBoundary(pos));
    }
  }
  if (m.layout === F.DATALAYOUT_CHUNK_BASED && leaf) {
    if (leaf.tail === 0 && leaf.dataBlocks > 0) {
      out.zeros(toBoundary(pos));
    } else if (leaf.tail > 0) {
      const rem = toBoundary(pos + metaSize);
      if (rem > 0 && rem < leaf.tail) out.zeros(F.roundUp(rem, F.INODE_SLOT));
    }
  }
  if (m.layout === F.DATALAYOUT_FLAT_INLINE) {
    const inlineSize = m.size % F.BLOCK_SIZE;
    if (symlink) {
      // The inode, its xattrs and the target all in one block (kernels before 6.12 need it).
      if ((pos % F.BLOCK_SIZE) + metaSize + inlineSize > F.BLOCK_SIZE) out.zeros(toBoundary(pos));
    } else {
      const rem = toBoundary(pos + metaSize);
      if (rem > 0 && rem < inlineSize) out.zeros(F.roundUp(rem, F.INODE_SLOT));
    }
  }
}

function writeInode(
  out: Output,
  rec: InodeRec,
  idx: number,
  p: Prepared,
  layout: Layout | null,
  notes: Layout,
): void {
  const compact = p.ctx.compact;
  const m = inodeMeta(rec, layout ? layout.blocks[idx] : 0, compact);
  const xattrSize = xattrAreaSize(rec);
  const small = compact && fitsCompact(rec.stat, p, m.size, m.nlink);
  const headerSize = small ? F.CompactInode.size : F.ExtendedInode.size;

  out.pad(F.INODE_SLOT);
  padBeforeInode(out, rec, m, headerSize, xattrSize, compact);

  notes.inodes.push(out.len);
  const xattrIcount = xattrSize === 0
    ? 0
    : 1 + (xattrSize - F.InodeXattrHeader.size) / F.XATTR_WORD;
  const mode = (F.S_IF_OF_FILE_TYPE[rec.fileType] | rec.stat.mode) & 0xffff;
  if (small) {
    out.struct(F.CompactInode, {
      format: m.layout,
      xattrIcount,
      mode,
      nlink: m.nlink,
      size: m.size,
      u: m.u,
      ino: idx,
      uid: rec.stat.uid,
      gid: rec.stat.gid,
    });
  } else {
    out.struct(F.ExtendedInode, {
      format: F.INODE_LAYOUT_EXTENDED | m.layout,
      xattrIcount,
      mode,
      size: BigInt(m.size),
      u: m.u,
      // libcomposefs numbers inodes in order; composefs-rs's V2 uses the nid.
      ino: compact ? idx : out.len / F.INODE_SLOT,
      uid: rec.stat.uid,
      gid: rec.stat.gid,
      mtime: BigInt(rec.stat.mtime),
      mtimeNsec: compact ? rec.stat.mtimeNsec ?? 0 : 0,
      nlink: m.nlink,
    });
  }

  writeInodeXattrs(out, rec, p, layout);

  if (rec.dir) {
    writeDirBlock(out, rec.dir.inline, layout);
  } else {
    const { content: c, tail, dataBlocks } = rec.leaf!;
    if (c.type === "inline") out.bytes(c.data.subarray(c.data.length - tail));
    else if (c.type === "external") {
      for (let i = 0; i < tail / F.ChunkAddress.size; i++) out.u32(F.NULL_CHUNK_ADDRESS);
    } else if (c.type === "symlink" && dataBlocks === 0) out.bytes(c.target);
  }
  out.pad(F.INODE_SLOT);
}

function writeDataBlocks(out: Output, rec: InodeRec, layout: Layout | null): void {
  for (const block of rec.dir?.blocks ?? []) {
    writeDirBlock(out, block, layout);
    out.pad(F.BLOCK_SIZE);
  }
  const leaf = rec.leaf;
  if (!leaf || leaf.dataBlocks === 0) return;
  const c = leaf.content;
  if (c.type === "inline") {
    for (let i = 0; i < leaf.dataBlocks; i++) {
      const start = i * F.BLOCK_SIZE;
      if (start < c.data.length) out.bytes(c.data.subarray(start, start + F.BLOCK_SIZE));
      out.pad(F.BLOCK_SIZE);
    }
  } else if (c.type === "symlink") {
    out.bytes(c.target.subarray(0, F.BLOCK_SIZE));
    out.pad(F.BLOCK_SIZE);
  } else if (c.type === "external") {
    for (let i = 0; i < F.MAX_NONINLINE_CHUNKS; i++) out.u32(F.NULL_CHUNK_ADDRESS);
  }
}

function writeImage(out: Output, p: Prepared, layout: Layout | null): Layout {
  const notes: Layout = { inodes: [], inodesEnd: 0, xattrs: [], blocks: [], end: 0 };
  const { ctx, inodes, shared } = p;

  out.struct(F.ComposefsHeader, {
    magic: F.COMPOSEFS_MAGIC,
    version: F.COMPOSEFS_HEADER_VERSION,
    flags: p.headerFlags,
    composefsVersion: F.composefsVersionOf(ctx.version),
  });
  out.pad(F.SUPERBLOCK_OFFSET);

  out.struct(F.Superblock, {
    magic: F.EROFS_MAGIC,
    featureCompat: F.FEATURE_COMPAT_MTIME | F.FEATURE_COMPAT_XATTR_FILTER,
    blkszbits: F.BLOCK_BITS,
    rootNid: layout ? layout.inodes[0] / F.INODE_SLOT : 0,
    inos: BigInt(inodes.length),
    buildTime: ctx.compact ? BigInt(p.minSec) : 0n,
    buildTimeNsec: ctx.compact ? p.minNsec : 0,
    blocks: layout ? layout.end / F.BLOCK_SIZE : 0,
    xattrBlkaddr: ctx.compact && layout ? Math.floor(layout.inodesEnd / F.BLOCK_SIZE) : 0,
  });

  inodes.forEach((rec, idx) => writeInode(out, rec, idx, p, layout, notes));
  out.pad(F.INODE_SLOT);
  notes.inodesEnd = out.len;

  for (const x of shared) {
    notes.xattrs.push(out.len);
    writeXattr(out, x);
  }

  out.pad(F.BLOCK_SIZE);
  for (const rec of inodes) {
    notes.blocks.push(out.len);
    writeDataBlocks(out, rec, layout);
  }
  notes.end = out.len;
  return notes;
}

/**
 * V0/V1: a symlink target that would fill the metadata's block moves to a data block of its
 * own, and so do chunk addresses that would not fit after the inode. Needs the final xattr
 * sizes (after sharing) and the oldest mtime (compact or extended inode).
 */
function fixupDataBlocks(p: Prepared): void {
  for (const rec of p.inodes) {
    const leaf = rec.leaf;
    if (!leaf || leaf.tail === 0) continue;
    if (leaf.content.type === "symlink") {
      const header = fitsCompact(rec.stat, p, leaf.tail, leaf.nlink)
        ? F.CompactInode.size
        : F.ExtendedInode.size;
      if (header + xattrAreaSize(rec) + leaf.tail >= F.BLOCK_SIZE) {
        leaf.dataBlocks++;
        leaf.tail = 0;
      }
    } else if (leaf.content.type === "external") {
      if (leaf.tail + (xattrAreaSize(rec) % F.INODE_SLOT) > F.BLOCK_SIZE) {
        leaf.dataBlocks = 1;
        leaf.tail = 0;
      }
    }
  }
}

/** The path of `inode` in `fs`, for errors (a search: only called when something is wrong). */
function pathOf(fs: FileSystem, target: Inode): string {
  if (target === fs.root) return "/";
  const walk = (dir: Directory, path: string): string | undefined => {
    for (const [name, inode] of dir.entries) {
      if (inode === target) return `${path}/${name}`;
      if (inode.kind === "dir") {
        const found = walk(inode, `${path}/${name}`);
        if (found) return found;
      }
    }
    return undefined;
  };
  return walk(fs.root, "") ?? "(not in the tree)";
}

/** The xattr limits that depend on which xattrs ended up shared. */
function checkXattrAreas(fs: FileSystem, inodes: InodeRec[]): void {
  for (const rec of inodes) {
    if (rec.shared.length > SHARED_XATTRS_PER_INODE_MAX) {
      throw new ErofsLimitError(
        displayPath(pathOf(fs, rec.inode)),
        "xattr-count",
        `${rec.shared.length} shared xattrs, the limit is ${SHARED_XATTRS_PER_INODE_MAX}`,
      );
    }
    const size = xattrAreaSize(rec);
    if (size > XATTR_AREA_MAX) {
      throw new ErofsLimitError(
        displayPath(pathOf(fs, rec.inode)),
        "xattr-area",
        `xattrs take ${size} bytes in the inode, the limit is ${XATTR_AREA_MAX}`,
      );
    }
  }
}

function prepare(
  fs: FileSystem,
  ctx: WriteContext,
  links: ReadonlyMap<Leaf, number>,
  overlayXattrs: ReadonlyMap<Inode, readonly Xattr[]>,
): Prepared {
  const rootEntries = ctx.compact ? rootEntriesWithStubs(fs.root) : sortedEntries(fs.root);
  const collector = new InodeCollector(ctx, links, overlayXattrs, fs.root, rootEntries);
  if (ctx.compact) collector.bfs(fs.root);
  else collector.dfs(fs.root, 0);
  const inodes = collector.inodes;

  let headerFlags = 0;
  if (ctx.compact) {
    // Added after escaping, so it stays an overlayfs xattr: the image's root is opaque.
    collector.addXattr(inodes[0], enc.encode(F.OVERLAY_OPAQUE), enc.encode("y"));
    const acl = inodes.some((rec) =>
      rec.local.some((x) =>
        x.prefix === F.XATTR_INDEX_POSIX_ACL_ACCESS || x.prefix === F.XATTR_INDEX_POSIX_ACL_DEFAULT
      )
    );
    if (acl) headerFlags |= F.COMPOSEFS_FLAGS_HAS_ACL;
  }

  const shared = shareXattrs(inodes, ctx.compact);
  checkXattrAreas(fs, inodes);

  let minSec = 0, minNsec = 0;
  inodes.forEach((rec, i) => {
    const sec = rec.stat.mtime, nsec = rec.stat.mtimeNsec ?? 0;
    if (i === 0 || compareMtime(sec, nsec, minSec, minNsec) < 0) {
      minSec = sec;
      minNsec = nsec;
    }
  });
  const p: Prepared = { ctx, inodes, shared, minSec, minNsec, headerFlags };
  if (ctx.compact) fixupDataBlocks(p);
  return p;
}

/** Options of {@link mkfsErofs}. */
export interface MkfsOptions {
  /** The format version to write; {@link F.DEFAULT_EROFS_VERSION} (1) when not given. */
  version?: F.ErofsVersion;
  /** How many entries refer to each leaf; computed when not given. */
  links?: Map<Leaf, number>;
  /**
   * Xattrs added to some inodes and written as they are: a `trusted.overlay.*` name here is
   * not escaped (the tree's own ones are, see the module documentation), so overlayfs acts on
   * it. `cfs setup-root` marks directories opaque this way in the image it derives for the
   * fallback overlay; composefs images themselves carry none.
   */
  overlayXattrs?: ReadonlyMap<Inode, readonly Xattr[]>;
}

/**
 * The composefs EROFS image of `fs` in format `options.version` (default V1). Like the
 * reference, a synthetic root first gets the newest mtime in the tree ({@link ensureRootStat});
 * that mutates `fs`, nothing else does (V0/V1's whiteout stubs are not added to `fs`).
 *
 * The second argument may also be the link counts (the older signature
 * `mkfsErofs(fs, links, options)`).
 *
 * @throws {ErofsLimitError} when the tree holds something the format cannot (limits.ts).
 */
export function mkfsErofs(
  fs: FileSystem,
  linksOrOptions?: Map<Leaf, number> | MkfsOptions,
  options: MkfsOptions = {},
): Uint8Array {
  const opts: MkfsOptions = linksOrOptions instanceof Map
    ? { ...options, links: linksOrOptions }
    : { ...options, ...linksOrOptions };
  const version = opts.version ?? F.DEFAULT_EROFS_VERSION;
  if (version !== 0 && version !== 1 && version !== 2) {
    throw new Error(`unknown EROFS format version ${version} (0, 1 or 2)`);
  }
  ensureRootStat(fs);
  const links = opts.links ?? countLinks(fs);
  checkErofsLimits(fs, links);
  const ctx: WriteContext = { version, compact: F.isCompactLayout(version) };
  const p = prepare(fs, ctx, links, opts.overlayXattrs ?? new Map());
  const layout = writeImage(new Measure(), p, null);
  const out = new Write(layout.end);
  writeImage(out, p, layout);
  return out.buf;
}
