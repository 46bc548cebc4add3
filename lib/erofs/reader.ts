/**
 * Parses a composefs EROFS image back into a {@link FileSystem}. Every offset and length
 * read from the image is checked against the image's size before use, directories must form
 * a tree (no loops, no directory hardlinks), and any violation is an {@link ErofsError}
 * naming what is wrong: the image may come from anywhere.
 *
 * External files are recognised by their `trusted.overlay.metacopy` xattr (the digest);
 * composefs's own overlay xattrs are dropped and escaped `trusted.overlay.overlay.*` names
 * are unescaped, so the tree is what was written.
 *
 * @module
 */
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
export class ErofsError extends Error {
  /** Creates the error; the message gets the prefix "corrupt EROFS image: ". */
  constructor(message: string) {
    super(`corrupt EROFS image: ${message}`);
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
  /** Shared and inline xattrs in image order, names with their prefix expanded. */
  xattrs: Xattr[];
  /** Image offset just past the inode header and its xattr area: where inline data begins. */
  inlineStart: number;
}

const enc = new TextEncoder();
const PREFIX_BYTES = F.XATTR_PREFIXES.map((p) => enc.encode(p));
const METACOPY = bytesToName(enc.encode(F.OVERLAY_METACOPY));
const REDIRECT = bytesToName(enc.encode(F.OVERLAY_REDIRECT));
const OVERLAY = F.OVERLAY_PREFIX;
const ESCAPED = F.OVERLAY_ESCAPED_PREFIX;

/** Reads images; one instance per image. */
export class ErofsReader {
  private readonly view: DataView;
  private readonly metaBase: number;
  private readonly xattrBase: number;
  /** The root directory's inode number, from the superblock. */
  readonly rootNid: number;
  /** The inode count the superblock records. */
  readonly inodeCount: number;

  /**
   * Checks the superblock (magic, 4 KiB blocks, no incompatible features) of `image`.
   * @throws {ErofsError} when the image is too short or the superblock is unusable.
   */
  constructor(private readonly image: Uint8Array) {
    this.view = new DataView(image.buffer, image.byteOffset, image.byteLength);
    if (image.length < F.SUPERBLOCK_OFFSET + F.SUPERBLOCK_SIZE) {
      throw new ErofsError(`${image.length} bytes is too short for a superblock`);
    }
    const sb = F.SUPERBLOCK_OFFSET;
    if (this.view.getUint32(sb + F.SB.magic, true) !== F.EROFS_MAGIC) {
      throw new ErofsError("bad superblock magic");
    }
    const blkszbits = image[sb + F.SB.blkszbits];
    if (blkszbits !== F.BLOCK_BITS) throw new ErofsError(`unsupported block size 2^${blkszbits}`);
    const incompat = this.view.getUint32(sb + F.SB.featureIncompat, true);
    if (incompat !== 0) {
      throw new ErofsError(`unsupported incompatible features 0x${incompat.toString(16)}`);
    }
    this.rootNid = this.view.getUint16(sb + F.SB.rootNid, true);
    this.inodeCount = Number(this.view.getBigUint64(sb + F.SB.inos, true));
    this.metaBase = this.view.getUint32(sb + F.SB.metaBlkaddr, true) * F.BLOCK_SIZE;
    this.xattrBase = this.view.getUint32(sb + F.SB.xattrBlkaddr, true) * F.BLOCK_SIZE;
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
    this.need(off, F.COMPACT_INODE_SIZE, `inode ${nid}`);
    const v = this.view;
    const format = v.getUint16(off, true);
    const extended = (format & F.INODE_LAYOUT_EXTENDED) !== 0;
    const layout = format & F.DATALAYOUT_MASK;
    if (
      layout !== F.DATALAYOUT_FLAT_PLAIN && layout !== F.DATALAYOUT_FLAT_INLINE &&
      layout !== F.DATALAYOUT_CHUNK_BASED
    ) {
      throw new ErofsError(`inode ${nid} has unsupported data layout ${layout >> 1}`);
    }
    const icount = v.getUint16(off + 2, true);
    const mode = v.getUint16(off + 4, true);
    let size: number,
      u: number,
      nlink: number,
      uid: number,
      gid: number,
      mtime: number,
      headerSize: number;
    if (extended) {
      this.need(off, F.EXTENDED_INODE_SIZE, `inode ${nid}`);
      const size64 = v.getBigUint64(off + F.EI.size, true);
      if (size64 > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new ErofsError(`inode ${nid} has impossible size ${size64}`);
      }
      size = Number(size64);
      u = v.getUint32(off + F.EI.u, true);
      uid = v.getUint32(off + F.EI.uid, true);
      gid = v.getUint32(off + F.EI.gid, true);
      mtime = Number(v.getBigInt64(off + F.EI.mtime, true));
      nlink = v.getUint32(off + F.EI.nlink, true);
      headerSize = F.EXTENDED_INODE_SIZE;
    } else {
      size = v.getUint32(off + F.CI.size, true);
      u = v.getUint32(off + F.CI.u, true);
      uid = v.getUint16(off + F.CI.uid, true);
      gid = v.getUint16(off + F.CI.gid, true);
      mtime = Number(v.getBigInt64(F.SUPERBLOCK_OFFSET + F.SB.buildTime, true));
      nlink = v.getUint16(off + F.CI.nlink, true);
      headerSize = F.COMPACT_INODE_SIZE;
    }
    const xattrStart = off + headerSize;
    const xattrSize = icount === 0 ? 0 : F.XATTR_INODE_HEADER_SIZE + (icount - 1) * 4;
    const xattrs = icount === 0 ? [] : this.xattrs(nid, xattrStart, xattrSize);
    return {
      nid,
      layout,
      mode,
      size,
      u,
      nlink,
      uid,
      gid,
      mtime,
      xattrs,
      inlineStart: xattrStart + xattrSize,
    };
  }

  /**
   * Decodes the xattr entry at `offset`, which must end by `end`; returns it with its
   * size rounded up to 4 bytes (the step to the next entry).
   */
  private xattrEntry(offset: number, end: number, what: string): [Xattr, number] {
    this.need(offset, F.XATTR_ENTRY_HEADER_SIZE, what);
    const nameLen = this.image[offset];
    const index = this.image[offset + 1];
    const valueLen = this.view.getUint16(offset + 2, true);
    if (index >= PREFIX_BYTES.length) {
      throw new ErofsError(`${what} has unknown name prefix ${index}`);
    }
    const total = F.XATTR_ENTRY_HEADER_SIZE + nameLen + valueLen;
    if (offset + total > end) throw new ErofsError(`${what} runs past the end of its xattr area`);
    const suffix = this.bytes(offset + 4, nameLen, what);
    const prefix = PREFIX_BYTES[index];
    const name = new Uint8Array(prefix.length + nameLen);
    name.set(prefix);
    name.set(suffix, prefix.length);
    const value = this.bytes(offset + 4 + nameLen, valueLen, what).slice();
    return [{ name, value }, F.roundUp(total, 4)];
  }

  /** All xattrs of inode `nid` from its xattr area (`size` bytes at `start`): shared ones first. */
  private xattrs(nid: number, start: number, size: number): Xattr[] {
    this.need(start, size, `xattrs of inode ${nid}`);
    const end = start + size;
    const shared = this.image[start + 4];
    if (F.XATTR_INODE_HEADER_SIZE + shared * 4 > size) {
      throw new ErofsError(`inode ${nid} claims ${shared} shared xattrs in a ${size}-byte area`);
    }
    const out: Xattr[] = [];
    for (let i = 0; i < shared; i++) {
      const id = this.view.getUint32(start + F.XATTR_INODE_HEADER_SIZE + 4 * i, true);
      const at = this.xattrBase + id * 4;
      const [x] = this.xattrEntry(at, this.image.length, `shared xattr ${id} of inode ${nid}`);
      out.push(x);
    }
    let p = start + F.XATTR_INODE_HEADER_SIZE + shared * 4;
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
    for (let block = 0; block < data.length; block += F.BLOCK_SIZE) {
      const blockLen = Math.min(F.BLOCK_SIZE, data.length - block);
      if (blockLen < F.DIRENT_SIZE) {
        throw new ErofsError(`directory inode ${raw.nid} has a truncated block`);
      }
      const first = dv.getUint16(block + 8, true);
      if (first % F.DIRENT_SIZE !== 0 || first === 0 || first > blockLen) {
        throw new ErofsError(`directory inode ${raw.nid} has a bad first name offset ${first}`);
      }
      const count = first / F.DIRENT_SIZE;
      for (let i = 0; i < count; i++) {
        const e = block + i * F.DIRENT_SIZE;
        const nid = Number(dv.getBigUint64(e, true));
        const nameoff = dv.getUint16(e + 8, true);
        const fileType = data[e + 10];
        const nextoff = i + 1 < count ? dv.getUint16(e + F.DIRENT_SIZE + 8, true) : blockLen;
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

  /** The whole tree. */
  readTree(): FileSystem {
    const leaves = new Map<number, Leaf>();
    const dirsSeen = new Set<number>();

    const toStat = (raw: RawInode): [Stat, Uint8Array | undefined] => {
      let metacopy: Uint8Array | undefined;
      const xattrs: Xattr[] = [];
      for (const x of raw.xattrs) {
        const name = bytesToName(x.name);
        if (name === METACOPY) {
          metacopy = x.value;
          continue;
        }
        if (name === REDIRECT) continue;
        if (name.startsWith(ESCAPED)) {
          const unescaped = new Uint8Array(OVERLAY.length + x.name.length - ESCAPED.length);
          unescaped.set(enc.encode(OVERLAY));
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
        xattrs: sortXattrs(xattrs),
      }, metacopy];
    };

    const leafContent = (raw: RawInode, metacopy: Uint8Array | undefined): LeafContent => {
      switch (raw.mode & 0o170000) {
        case 0o100000:
          if (raw.layout === F.DATALAYOUT_CHUNK_BASED) {
            if (
              !metacopy || metacopy.length < 4 || metacopy[1] !== metacopy.length ||
              metacopy.length - 4 !== (metacopy[3] === 1 ? 32 : metacopy[3] === 2 ? 64 : -1)
            ) {
              throw new ErofsError(
                `regular file inode ${raw.nid} has chunked data but no valid trusted.overlay.metacopy digest`,
              );
            }
            return { type: "external", digest: metacopy.slice(4), size: raw.size };
          }
          return { type: "inline", data: this.data(raw).slice() };
        case 0o120000: {
          if (raw.size === 0 || raw.size > 4095) {
            throw new ErofsError(`symlink inode ${raw.nid} has target length ${raw.size}`);
          }
          return { type: "symlink", target: this.data(raw).slice() };
        }
        case 0o020000:
          return { type: "chardev", rdev: BigInt(raw.u) };
        case 0o060000:
          return { type: "blockdev", rdev: BigInt(raw.u) };
        case 0o010000:
          return { type: "fifo" };
        case 0o140000:
          return { type: "socket" };
        default:
          throw new ErofsError(`inode ${raw.nid} has invalid mode ${raw.mode.toString(8)}`);
      }
    };

    const readDir = (raw: RawInode, stat: Stat, depth: number): Directory => {
      if (depth > MAX_DEPTH) {
        throw new ErofsError(`directories nested deeper than ${MAX_DEPTH} levels`);
      }
      if (dirsSeen.has(raw.nid)) {
        throw new ErofsError(
          `directory inode ${raw.nid} is reachable twice (loop or directory hardlink)`,
        );
      }
      dirsSeen.add(raw.nid);
      const dir = newDirectory(stat);
      for (const e of this.dirents(raw)) {
        const key = bytesToName(e.name);
        if (dir.entries.has(key)) {
          throw new ErofsError(`directory inode ${raw.nid} lists ${JSON.stringify(key)} twice`);
        }
        dir.entries.set(key, readInode(e.nid, depth + 1));
      }
      return dir;
    };

    const readInode = (nid: number, depth: number): Inode => {
      const known = leaves.get(nid);
      if (known) return known;
      const raw = this.inode(nid);
      const [stat, metacopy] = toStat(raw);
      if ((raw.mode & 0o170000) === 0o040000) return readDir(raw, stat, depth);
      const leaf: Leaf = { kind: "leaf", stat, content: leafContent(raw, metacopy) };
      leaves.set(nid, leaf);
      return leaf;
    };

    const rootRaw = this.inode(this.rootNid);
    if ((rootRaw.mode & 0o170000) !== 0o040000) {
      throw new ErofsError("the root inode is not a directory");
    }
    const [rootStat] = toStat(rootRaw);
    return { root: readDir(rootRaw, rootStat, 0), haveRootStat: true };
  }
}

/** Parses a whole image into a tree. */
export function readErofs(image: Uint8Array): FileSystem {
  return new ErofsReader(image).readTree();
}

/** The digests of all external objects an image refers to (hex, deduplicated). */
export function collectObjects(fs: FileSystem): Uint8Array[] {
  const seen = new Map<string, Uint8Array>();
  const walk = (dir: Directory) => {
    for (const inode of dir.entries.values()) {
      if (inode.kind === "dir") walk(inode);
      else if (inode.content.type === "external") {
        seen.set(bytesToName(inode.content.digest), inode.content.digest);
      }
    }
  };
  walk(fs.root);
  return [...seen.values()];
}
