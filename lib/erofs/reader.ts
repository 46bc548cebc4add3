/**
 * Parses a composefs EROFS image of any format version (V0, V1, V2; see {@link ErofsVersion})
 * back into the {@link FileSystem} that was written. Every offset and length read from the
 * image is checked against the image's size before use, directories must form a tree (no
 * loops, no directory hardlinks), and any violation is an {@link ErofsError} naming what is
 * wrong: the image may come from anywhere.
 *
 * What the writer added is taken away again:
 *
 * - External files are recognised by their `trusted.overlay.metacopy` xattr (the digest);
 *   composefs's own `trusted.overlay.*` xattrs are dropped and escaped
 *   `trusted.overlay.overlay.*` names are unescaped.
 * - V0/V1: the whiteout stubs (character devices 0:0 named `00`..`ff` in the root) are not
 *   content and are left out. An escaped whiteout (an empty regular file marked
 *   `trusted.overlay.overlay.whiteout`) is a character device 0:0 again, without the marks,
 *   and its directory loses the marks the writer put on it (`...whiteouts`, and in V1 the
 *   opaque ones). Unlike composefs-rs 0.9.4's reader, marks are only taken away where the
 *   writer put them, so a tree's own `user.overlay.*` xattrs survive, and an escaped whiteout
 *   named like a stub is kept. One thing no reader can tell apart: a whiteout in the root
 *   that looks exactly like a stub (same name, mode 0644, the root's owner and mtime) is
 *   read as a stub; writing the tree again gives the same bytes.
 *
 * Compact inodes take their mtime from the superblock's build time.
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import {
  bytesToName,
  type Directory,
  type FileSystem,
  type Inode,
  type Leaf,
  type LeafContent,
  MAX_DEPTH,
  newDirectory,
  sortXattrs,
  type Stat,
  type Xattr,
} from "../tree.ts";
import * as F from "./format.ts";

/** A malformed or unsupported image. */
export class ErofsError extends CfsError {
  /** Creates the error; the message gets the prefix "corrupt EROFS image: ". */
  constructor(message: string) {
    super(`corrupt EROFS image: ${message}`, { code: "erofs-corrupt" });
    this.name = "ErofsError";
  }
}

/**
 * An inode as stored in the image, compact (32-byte) or extended (64-byte) header alike,
 * before it is turned into tree form: see {@link ErofsReader.inode}.
 */
export interface RawInode {
  /** The inode number: its slot (32 bytes each) counted from the metadata start block. */
  nid: number;
  /** Whether the header is the 64-byte extended form. */
  extended: boolean;
  /**
   * The data layout bits of `i_format` (masked, not shifted): flat plain, flat inline
   * (tail packed after the inode), or chunk based, which composefs uses for external files.
   */
  layout: number;
  /** The full `i_mode`: file type and permission bits. */
  mode: number;
  /** `i_size`: content length of files and symlinks, dirent bytes of directories. */
  size: number;
  /**
   * The `i_u` union: first data block (flat layouts), device number (device inodes) or
   * chunk format (chunk based).
   */
  u: number;
  /** Link count as recorded in the image. */
  nlink: number;
  /** Owner user id. */
  uid: number;
  /** Owner group id. */
  gid: number;
  /** Seconds since the epoch; compact inodes have none and take the superblock's build time. */
  mtime: number;
  /** Nanoseconds of the mtime (the superblock's for compact inodes; V2 writes 0). */
  mtimeNsec: number;
  /** Shared and inline xattrs in image order, names with their prefix expanded. */
  xattrs: Xattr[];
  /** Image offset just past the inode header and its xattr area: where inline data begins. */
  inlineStart: number;
}

const enc = new TextEncoder();
const PREFIX_BYTES = F.XATTR_PREFIXES.map((p) => enc.encode(p));
const METACOPY = F.OVERLAY_METACOPY;
const REDIRECT = F.OVERLAY_REDIRECT;
const OVERLAY = F.OVERLAY_PREFIX;
const ESCAPED = F.OVERLAY_ESCAPED_PREFIX;
const OVERLAY_BYTES = enc.encode(OVERLAY);

/** (name, value) marks the V0/V1 writer puts on an escaped whiteout. */
const WHITEOUT_MARKS: ReadonlyArray<readonly [string, string]> = [
  [F.OVERLAY_ESCAPED_WHITEOUT, ""],
  [F.USER_OVERLAY_WHITEOUT, ""],
];
/** (name, value) marks on a directory holding escaped whiteouts, by version. */
const DIR_MARKS: Readonly<Record<number, ReadonlyArray<readonly [string, string]>>> = {
  0: [[F.OVERLAY_ESCAPED_WHITEOUTS, ""], [F.USER_OVERLAY_WHITEOUTS, ""]],
  1: [
    [F.OVERLAY_ESCAPED_WHITEOUTS, ""],
    [F.USER_OVERLAY_WHITEOUTS, ""],
    [F.OVERLAY_ESCAPED_OPAQUE, "x"],
    [F.USER_OVERLAY_OPAQUE, "x"],
  ],
};

// Field offsets from the struct declarations, for the per-inode hot path.
const CI_FORMAT = F.CompactInode.fields.format.offset;
const CI_MODE = F.CompactInode.fields.mode.offset;
const CI_NLINK = F.CompactInode.fields.nlink.offset;
const CI_SIZE = F.CompactInode.fields.size.offset;
const CI_U = F.CompactInode.fields.u.offset;
const CI_UID = F.CompactInode.fields.uid.offset;
const CI_GID = F.CompactInode.fields.gid.offset;
const CI_XATTR_ICOUNT = F.CompactInode.fields.xattrIcount.offset;
const EI_SIZE = F.ExtendedInode.fields.size.offset;
const EI_U = F.ExtendedInode.fields.u.offset;
const EI_UID = F.ExtendedInode.fields.uid.offset;
const EI_GID = F.ExtendedInode.fields.gid.offset;
const EI_MTIME = F.ExtendedInode.fields.mtime.offset;
const EI_MTIME_NSEC = F.ExtendedInode.fields.mtimeNsec.offset;
const EI_NLINK = F.ExtendedInode.fields.nlink.offset;
const EI_XATTR_ICOUNT = F.ExtendedInode.fields.xattrIcount.offset;
const XE_NAME_LEN = F.XattrEntry.fields.nameLen.offset;
const XE_NAME_INDEX = F.XattrEntry.fields.nameIndex.offset;
const XE_VALUE_SIZE = F.XattrEntry.fields.valueSize.offset;
const XH_SHARED_COUNT = F.InodeXattrHeader.fields.sharedCount.offset;
const DIRENT_NID = F.Dirent.fields.nid.offset;
if (CI_MODE !== F.ExtendedInode.fields.mode.offset) throw new Error("i_mode offsets differ");
const NO_MARKS: string[] = [];
const DIRENT_NAMEOFF = F.Dirent.fields.nameoff.offset;
const DIRENT_FILE_TYPE = F.Dirent.fields.fileType.offset;

/** Reads images; one instance per image. */
export class ErofsReader {
  private readonly view: DataView;
  private readonly metaBase: number;
  private readonly xattrBase: number;
  private readonly buildTime: number;
  private readonly buildTimeNsec: number;
  /** The format version, from the composefs header's `composefs_version`. */
  readonly version: F.ErofsVersion;
  /** The root directory's inode number, from the superblock. */
  readonly rootNid: number;
  /** The inode count the superblock records. */
  readonly inodeCount: number;

  /**
   * Checks the composefs header (magic, a known version) and the superblock (magic, 4 KiB
   * blocks, no incompatible features) of `image`.
   * @throws {ErofsError} when the image is too short or either is unusable.
   */
  constructor(private readonly image: Uint8Array) {
    this.view = new DataView(image.buffer, image.byteOffset, image.byteLength);
    if (image.length < F.SUPERBLOCK_OFFSET + F.Superblock.size) {
      throw new ErofsError(`${image.length} bytes is too short for a superblock`);
    }
    const header = F.decodeStruct(F.ComposefsHeader, this.view, 0);
    if (header.magic !== F.COMPOSEFS_MAGIC) {
      throw new ErofsError("bad composefs header magic (not a composefs image)");
    }
    if (header.version !== F.COMPOSEFS_HEADER_VERSION) {
      throw new ErofsError(`unsupported composefs header version ${header.version}`);
    }
    const cv = header.composefsVersion;
    if (cv !== 0 && cv !== 1 && cv !== 2) {
      throw new ErofsError(`unknown composefs_version ${cv} (0, 1 or 2)`);
    }
    this.version = cv;
    const sb = F.decodeStruct(F.Superblock, this.view, F.SUPERBLOCK_OFFSET);
    if (sb.magic !== F.EROFS_MAGIC) throw new ErofsError("bad superblock magic");
    if (sb.blkszbits !== F.BLOCK_BITS) {
      throw new ErofsError(`unsupported block size 2^${sb.blkszbits}`);
    }
    if (sb.featureIncompat !== 0) {
      throw new ErofsError(
        `unsupported incompatible features 0x${sb.featureIncompat.toString(16)}`,
      );
    }
    this.rootNid = sb.rootNid;
    this.inodeCount = Number(sb.inos);
    this.metaBase = sb.metaBlkaddr * F.BLOCK_SIZE;
    this.xattrBase = sb.xattrBlkaddr * F.BLOCK_SIZE;
    this.buildTime = Number(BigInt.asIntN(64, sb.buildTime));
    this.buildTimeNsec = sb.buildTimeNsec;
  }

  /** Throws unless `length` bytes at `offset` lie inside the image; `what` names them. */
  private need(offset: number, length: number, what: string): void {
    if (
      !Number.isSafeInteger(offset) || offset < 0 || length < 0 ||
      offset + length > this.image.length
    ) {
      throw new ErofsError(
        `${what} at offset ${offset} (+${length}) lies outside the ${this.image.length}-byte image`,
      );
    }
  }

  /** The `length` bytes at `offset` (a view, not a copy), bounds-checked like {@link need}. */
  private bytes(offset: number, length: number, what: string): Uint8Array {
    this.need(offset, length, what);
    return this.image.subarray(offset, offset + length);
  }

  /** Reads the inode with number `nid`. */
  inode(nid: number): RawInode {
    const off = this.metaBase + nid * F.INODE_SLOT;
    this.need(off, F.CompactInode.size, `inode ${nid}`);
    const format = this.view.getUint16(off + CI_FORMAT, true);
    const extended = (format & F.INODE_LAYOUT_EXTENDED) !== 0;
    const layout = format & F.DATALAYOUT_MASK;
    if (
      layout !== F.DATALAYOUT_FLAT_PLAIN && layout !== F.DATALAYOUT_FLAT_INLINE &&
      layout !== F.DATALAYOUT_CHUNK_BASED
    ) {
      throw new ErofsError(`inode ${nid} has unsupported data layout ${layout >> 1}`);
    }
    const v = this.view;
    let size: number, u: number, nlink: number, uid: number, gid: number;
    let mtime: number, mtimeNsec: number, icount: number, headerSize: number;
    if (extended) {
      this.need(off, F.ExtendedInode.size, `inode ${nid}`);
      const size64 = v.getBigUint64(off + EI_SIZE, true);
      if (size64 > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new ErofsError(`inode ${nid} has impossible size ${size64}`);
      }
      size = Number(size64);
      u = v.getUint32(off + EI_U, true);
      uid = v.getUint32(off + EI_UID, true);
      gid = v.getUint32(off + EI_GID, true);
      mtime = Number(v.getBigInt64(off + EI_MTIME, true));
      mtimeNsec = v.getUint32(off + EI_MTIME_NSEC, true);
      nlink = v.getUint32(off + EI_NLINK, true);
      icount = v.getUint16(off + EI_XATTR_ICOUNT, true);
      headerSize = F.ExtendedInode.size;
    } else {
      size = v.getUint32(off + CI_SIZE, true);
      u = v.getUint32(off + CI_U, true);
      uid = v.getUint16(off + CI_UID, true);
      gid = v.getUint16(off + CI_GID, true);
      mtime = this.buildTime;
      mtimeNsec = this.buildTimeNsec;
      nlink = v.getUint16(off + CI_NLINK, true);
      icount = v.getUint16(off + CI_XATTR_ICOUNT, true);
      headerSize = F.CompactInode.size;
    }
    // The tree keeps times as JavaScript numbers: a time it cannot hold exactly, or nanoseconds
    // that are not a fraction of a second, would be read as another time than the image has.
    if (!Number.isSafeInteger(mtime)) {
      throw new ErofsError(`inode ${nid} has an mtime outside ±2^53 seconds`);
    }
    if (mtimeNsec > 999_999_999) {
      throw new ErofsError(`inode ${nid} has mtime nanoseconds ${mtimeNsec} (at most 999999999)`);
    }
    // The mode sits at the same offset in both forms.
    const mode = v.getUint16(off + CI_MODE, true);
    const xattrStart = off + headerSize;
    const xattrSize = icount === 0 ? 0 : F.InodeXattrHeader.size + (icount - 1) * F.XATTR_WORD;
    const xattrs = icount === 0 ? [] : this.xattrs(nid, xattrStart, xattrSize);
    return {
      nid,
      extended,
      layout,
      mode,
      size,
      u,
      nlink,
      uid,
      gid,
      mtime,
      mtimeNsec,
      xattrs,
      inlineStart: xattrStart + xattrSize,
    };
  }

  /**
   * Decodes the xattr entry at `offset`, which must end by `end`; returns it with its
   * size rounded up to 4 bytes (the step to the next entry).
   */
  private xattrEntry(offset: number, end: number, what: string): [Xattr, number] {
    this.need(offset, F.XattrEntry.size, what);
    const nameLen = this.image[offset + XE_NAME_LEN];
    const nameIndex = this.image[offset + XE_NAME_INDEX];
    const valueSize = this.view.getUint16(offset + XE_VALUE_SIZE, true);
    if (nameIndex >= PREFIX_BYTES.length) {
      throw new ErofsError(`${what} has unknown name prefix ${nameIndex}`);
    }
    const total = F.XattrEntry.size + nameLen + valueSize;
    if (offset + total > end) throw new ErofsError(`${what} runs past the end of its xattr area`);
    const suffix = this.bytes(offset + F.XattrEntry.size, nameLen, what);
    const prefix = PREFIX_BYTES[nameIndex];
    const name = new Uint8Array(prefix.length + nameLen);
    name.set(prefix);
    name.set(suffix, prefix.length);
    const value = this.bytes(offset + F.XattrEntry.size + nameLen, valueSize, what).slice();
    return [{ name, value }, F.roundUp(total, F.XATTR_WORD)];
  }

  /** All xattrs of inode `nid` from its xattr area (`size` bytes at `start`): shared ones first. */
  private xattrs(nid: number, start: number, size: number): Xattr[] {
    this.need(start, size, `xattrs of inode ${nid}`);
    const end = start + size;
    const shared = this.image[start + XH_SHARED_COUNT];
    if (F.InodeXattrHeader.size + shared * F.XATTR_WORD > size) {
      throw new ErofsError(`inode ${nid} claims ${shared} shared xattrs in a ${size}-byte area`);
    }
    const out: Xattr[] = [];
    for (let i = 0; i < shared; i++) {
      const id = this.view.getUint32(start + F.InodeXattrHeader.size + F.XATTR_WORD * i, true);
      const at = this.xattrBase + id * F.XATTR_WORD;
      const [x] = this.xattrEntry(at, this.image.length, `shared xattr ${id} of inode ${nid}`);
      out.push(x);
    }
    let p = start + F.InodeXattrHeader.size + shared * F.XATTR_WORD;
    while (p < end) {
      const [x, len] = this.xattrEntry(p, end, `xattr of inode ${nid}`);
      out.push(x);
      p += len;
    }
    return out;
  }

  /** The data of a flat (plain or inline) inode: blocks from `u`, tail after the inode. */
  data(raw: RawInode): Uint8Array {
    const { size, layout } = raw;
    if (layout === F.DATALAYOUT_CHUNK_BASED) {
      throw new ErofsError(`inode ${raw.nid} has chunked data, not stored in the image`);
    }
    if (size > this.image.length) {
      throw new ErofsError(`inode ${raw.nid} claims ${size} bytes, more than the image`);
    }
    const blockStart = raw.u * F.BLOCK_SIZE;
    if (layout === F.DATALAYOUT_FLAT_PLAIN) {
      if (size === 0) return new Uint8Array(0);
      return this.bytes(blockStart, size, `data of inode ${raw.nid}`);
    }
    const tail = size % F.BLOCK_SIZE;
    const full = size - tail;
    const out = new Uint8Array(size);
    if (full > 0) out.set(this.bytes(blockStart, full, `data blocks of inode ${raw.nid}`));
    out.set(this.bytes(raw.inlineStart, tail, `inline data of inode ${raw.nid}`), full);
    return out;
  }

  /** Directory entries (name bytes, nid, type), without "." and "..". */
  dirents(raw: RawInode): Array<{ name: Uint8Array; nid: number; fileType: number }> {
    const data = this.data(raw);
    const out: Array<{ name: Uint8Array; nid: number; fileType: number }> = [];
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const step = F.Dirent.size;
    for (let block = 0; block < data.length; block += F.BLOCK_SIZE) {
      const blockLen = Math.min(F.BLOCK_SIZE, data.length - block);
      if (blockLen < step) {
        throw new ErofsError(`directory inode ${raw.nid} has a truncated block`);
      }
      const first = dv.getUint16(block + DIRENT_NAMEOFF, true);
      if (first % step !== 0 || first === 0 || first > blockLen) {
        throw new ErofsError(`directory inode ${raw.nid} has a bad first name offset ${first}`);
      }
      const count = first / step;
      for (let i = 0; i < count; i++) {
        const e = block + i * step;
        const nid = Number(dv.getBigUint64(e + DIRENT_NID, true));
        const nameoff = dv.getUint16(e + DIRENT_NAMEOFF, true);
        const fileType = data[e + DIRENT_FILE_TYPE];
        const nextoff = i + 1 < count ? dv.getUint16(e + step + DIRENT_NAMEOFF, true) : blockLen;
        if (nameoff < first || nextoff < nameoff || nextoff > blockLen) {
          throw new ErofsError(`directory inode ${raw.nid} has bad name offsets`);
        }
        let name = data.subarray(block + nameoff, block + nextoff);
        if (i + 1 === count) {
          const nul = name.indexOf(0);
          if (nul >= 0) name = name.subarray(0, nul);
        }
        if (name.length === 0) throw new ErofsError(`directory inode ${raw.nid} has an empty name`);
        if (name.includes(0x2f) || name.includes(0)) {
          throw new ErofsError(`directory inode ${raw.nid} has a name containing '/' or NUL`);
        }
        if (
          (name.length === 1 && name[0] === 0x2e) ||
          (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)
        ) continue;
        out.push({ name: name.slice(), nid, fileType });
      }
    }
    return out;
  }

  /** Whether `raw` is a V0/V1 escaped whiteout: an empty regular file marked as one. */
  private isEscapedWhiteout(raw: RawInode): boolean {
    return F.isCompactLayout(this.version) && (raw.mode & F.S_IFMT) === F.S_IFREG &&
      raw.size === 0 && raw.layout !== F.DATALAYOUT_CHUNK_BASED &&
      raw.xattrs.some((x) => bytesToName(x.name) === F.OVERLAY_ESCAPED_WHITEOUT);
  }

  /** Whether root entry `name` (inode `raw`) is one of the V0/V1 whiteout stubs. */
  private isStub(name: string, raw: RawInode): boolean {
    return F.isCompactLayout(this.version) && (raw.mode & F.S_IFMT) === F.S_IFCHR &&
      raw.u === 0 && /^[0-9a-f]{2}$/.test(name);
  }

  /** The whole tree. */
  readTree(): FileSystem {
    const leaves = new Map<number, Leaf>();
    const dirsSeen = new Set<number>();

    /**
     * The tree's stat of `raw`: composefs's own overlay xattrs dropped (the metacopy digest
     * returned), escaped names unescaped, and one of each of `marks` (name, value) taken away.
     */
    const toStat = (
      raw: RawInode,
      marks: ReadonlyArray<readonly [string, string]> = [],
    ): [Stat, Uint8Array | undefined] => {
      let metacopy: Uint8Array | undefined;
      const pending = marks.length === 0 ? NO_MARKS : marks.map(([n, v]) => `${n}=${v}`);
      const xattrs: Xattr[] = [];
      for (const x of raw.xattrs) {
        const name = bytesToName(x.name);
        if (pending.length > 0) {
          const at = pending.indexOf(`${name}=${bytesToName(x.value)}`);
          if (at >= 0) {
            pending.splice(at, 1);
            continue;
          }
        }
        if (name === METACOPY) {
          metacopy = x.value;
          continue;
        }
        if (name === REDIRECT) continue;
        if (name.startsWith(ESCAPED)) {
          const unescaped = new Uint8Array(OVERLAY.length + x.name.length - ESCAPED.length);
          unescaped.set(OVERLAY_BYTES);
          unescaped.set(x.name.subarray(ESCAPED.length), OVERLAY.length);
          xattrs.push({ name: unescaped, value: x.value });
          continue;
        }
        if (name.startsWith(OVERLAY)) continue;
        xattrs.push(x);
      }
      return [{
        mode: raw.mode & 0o7777,
        uid: raw.uid,
        gid: raw.gid,
        mtime: raw.mtime,
        mtimeNsec: raw.mtimeNsec,
        xattrs: sortXattrs(xattrs),
      }, metacopy];
    };

    const leafContent = (raw: RawInode, metacopy: Uint8Array | undefined): LeafContent => {
      switch (raw.mode & F.S_IFMT) {
        case F.S_IFREG:
          if (raw.layout === F.DATALAYOUT_CHUNK_BASED) {
            if (!metacopy || !validMetacopy(metacopy)) {
              throw new ErofsError(
                `regular file inode ${raw.nid} has chunked data but no valid trusted.overlay.metacopy digest`,
              );
            }
            return {
              type: "external",
              digest: metacopy.slice(F.OverlayMetacopy.size),
              size: raw.size,
            };
          }
          return { type: "inline", data: this.data(raw).slice() };
        case F.S_IFLNK: {
          if (raw.size === 0 || raw.size > 4095) {
            throw new ErofsError(`symlink inode ${raw.nid} has target length ${raw.size}`);
          }
          return { type: "symlink", target: this.data(raw).slice() };
        }
        case F.S_IFCHR:
          return { type: "chardev", rdev: BigInt(raw.u) };
        case F.S_IFBLK:
          return { type: "blockdev", rdev: BigInt(raw.u) };
        case F.S_IFIFO:
          return { type: "fifo" };
        case F.S_IFSOCK:
          return { type: "socket" };
        default:
          throw new ErofsError(`inode ${raw.nid} has invalid mode ${raw.mode.toString(8)}`);
      }
    };

    const readDir = (raw: RawInode, depth: number): Directory => {
      if (depth > MAX_DEPTH) {
        throw new ErofsError(`directories nested deeper than ${MAX_DEPTH} levels`);
      }
      if (dirsSeen.has(raw.nid)) {
        throw new ErofsError(
          `directory inode ${raw.nid} is reachable twice (loop or directory hardlink)`,
        );
      }
      dirsSeen.add(raw.nid);
      const isRoot = depth === 0;
      const dir = newDirectory();
      let escapedWhiteouts = 0;
      for (const e of this.dirents(raw)) {
        const key = bytesToName(e.name);
        if (dir.entries.has(key)) {
          throw new ErofsError(`directory inode ${raw.nid} lists ${JSON.stringify(key)} twice`);
        }
        const known = leaves.get(e.nid);
        if (known) {
          dir.entries.set(key, known);
          continue;
        }
        const child = this.inode(e.nid);
        if (isRoot && this.isStub(key, child)) continue;
        if ((child.mode & F.S_IFMT) === F.S_IFDIR) {
          dir.entries.set(key, readDir(child, depth + 1));
          continue;
        }
        let leaf: Leaf;
        if (this.isEscapedWhiteout(child)) {
          if (child.nlink > 1) {
            throw new ErofsError(`whiteout inode ${child.nid} has ${child.nlink} links`);
          }
          escapedWhiteouts++;
          const [stat] = toStat(child, WHITEOUT_MARKS);
          leaf = { kind: "leaf", stat, content: { type: "chardev", rdev: 0n } };
        } else {
          const [stat, metacopy] = toStat(child);
          leaf = { kind: "leaf", stat, content: leafContent(child, metacopy) };
        }
        leaves.set(e.nid, leaf);
        dir.entries.set(key, leaf);
      }
      [dir.stat] = toStat(raw, escapedWhiteouts > 0 ? DIR_MARKS[this.version] : []);
      return dir;
    };

    const rootRaw = this.inode(this.rootNid);
    if ((rootRaw.mode & F.S_IFMT) !== F.S_IFDIR) {
      throw new ErofsError("the root inode is not a directory");
    }
    return { root: readDir(rootRaw, 0), haveRootStat: true };
  }
}

/** A well-formed `trusted.overlay.metacopy` value carrying a SHA-256 or SHA-512 digest. */
function validMetacopy(value: Uint8Array): boolean {
  if (value.length < F.OverlayMetacopy.size) return false;
  const m = F.decodeStruct(
    F.OverlayMetacopy,
    new DataView(value.buffer, value.byteOffset, value.byteLength),
    0,
  );
  const digestLen = m.digestAlgo === 1 ? 32 : m.digestAlgo === 2 ? 64 : -1;
  return m.version === 0 && m.flags === 0 && m.len === value.length &&
    value.length - F.OverlayMetacopy.size === digestLen;
}

/** Parses a whole image into a tree. */
export function readErofs(image: Uint8Array): FileSystem {
  return new ErofsReader(image).readTree();
}

/** The digests of all external objects an image refers to (hex, deduplicated). */
export function collectObjects(fs: FileSystem): Uint8Array[] {
  const seen = new Map<string, Uint8Array>();
  const walk = (dir: Directory) => {
    for (const inode of dir.entries.values() as Iterable<Inode>) {
      if (inode.kind === "dir") walk(inode);
      else if (inode.content.type === "external") {
        seen.set(bytesToName(inode.content.digest), inode.content.digest);
      }
    }
  };
  walk(fs.root);
  return [...seen.values()];
}
