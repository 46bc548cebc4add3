/**
 * The in-memory file system tree that every image is made from: directories, inline and
 * external regular files, symlinks, devices, fifos and sockets, with hardlinks expressed as
 * one {@link Leaf} object reachable from several directory entries.
 *
 * Names are raw bytes (Linux file names need not be UTF-8). To keep them usable as `Map`
 * keys they are held as "byte strings": one UTF-16 code unit per byte (0-255), so that
 * ordinary string comparison is byte order, the order composefs sorts entries in.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "./errors.ts";

/** Files of at most this many bytes are stored inside the image; larger ones as objects. */
export const INLINE_CONTENT_MAX = 64;

/**
 * The deepest directory nesting cfs accepts from any input (disk, image, dumpfile). Trees are
 * walked recursively; a root file system is a few dozen levels deep. Deeper input is refused
 * with an error rather than crashing on the call stack.
 */
export const MAX_DEPTH = 1024;

/** One extended attribute; names and values are bytes. */
export interface Xattr {
  /** The full name, namespace prefix included (`user.`, `trusted.`, `security.`, ...). */
  name: Uint8Array;
  /** The value, possibly empty. */
  value: Uint8Array;
}

/** The metadata composefs keeps for every inode. */
export interface Stat {
  /** Permission bits only (st_mode & 0o7777); the type comes from the content. */
  mode: number;
  /** Owner user id. */
  uid: number;
  /** Owner group id. */
  gid: number;
  /** Whole seconds since the epoch (may be negative). */
  mtime: number;
  /**
   * The nanoseconds of the mtime, 0..999999999; absent means 0. composefs-rs 0.9.4 keeps them
   * (dumpfile `SEC.NSEC`, extended EROFS inodes of format V1); older trees and V2 images drop
   * them.
   */
  mtimeNsec?: number;
  /** Sorted by name bytes (see {@link sortXattrs}); names are unique. */
  xattrs: Xattr[];
}

/** What a non-directory inode holds. */
export type LeafContent =
  | { type: "inline"; data: Uint8Array }
  | { type: "external"; digest: Uint8Array; size: number }
  | { type: "symlink"; target: Uint8Array }
  | { type: "chardev"; rdev: bigint }
  | { type: "blockdev"; rdev: bigint }
  | { type: "fifo" }
  | { type: "socket" };

/** A non-directory inode. The same object in several directories is a hardlink. */
export interface Leaf {
  /** Tells a leaf from a {@link Directory}. */
  kind: "leaf";
  /** Its metadata, shared by every name that links to it. */
  stat: Stat;
  /** The file type and what it holds (data, digest, target, device number). */
  content: LeafContent;
}

/** A directory: entries keyed by byte-string name (see module doc). */
export interface Directory {
  /** Tells a directory from a {@link Leaf}. */
  kind: "dir";
  /** Its metadata. */
  stat: Stat;
  /**
   * Children by byte-string name, without "." and "..". Map order is not meaningful:
   * writers sort (see {@link sortedEntries}).
   */
  entries: Map<string, Inode>;
}

/** Any node of the tree: a directory or a non-directory leaf. */
export type Inode = Directory | Leaf;

/** A whole tree: the root directory, and whether its stat came from a real directory. */
export interface FileSystem {
  /** The root directory, "/" of the image. */
  root: Directory;
  /**
   * False when the root's metadata is synthetic: then {@link ensureRootStat} sets its mtime to
   * the newest mtime in the tree (cfsctl 0.3.0's default). composefs-rs 0.9.4 has no synthetic
   * root: every tree cfs reads (directory, OCI layers, dumpfile, image) has a real root stat;
   * only trees built by hand with {@link newFileSystem} start without one.
   */
  haveRootStat: boolean;
}

/** The stat of a directory whose metadata is not known: root-owned, mode 0555, mtime 0. */
export function defaultDirStat(): Stat {
  return { mode: 0o555, uid: 0, gid: 0, mtime: 0, xattrs: [] };
}

/** A new empty directory. */
export function newDirectory(stat: Stat = defaultDirStat()): Directory {
  return { kind: "dir", stat, entries: new Map() };
}

/** An empty tree with a synthetic root. */
export function newFileSystem(): FileSystem {
  return { root: newDirectory(), haveRootStat: false };
}

// --- byte strings ---------------------------------------------------------------------------

/** Bytes to a byte string (one char per byte). */
export function bytesToName(bytes: Uint8Array): string {
  // Short strings (names, digests, most xattrs) are the hot case: a plain loop avoids the
  // argument-spreading allocation; long ones go 8 KiB at a time through fromCharCode.
  if (bytes.length <= 128) {
    let s = "";
    for (let i = 0; i < bytes.length; i++) s += CHARS[bytes[i]];
    return s;
  }
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  }
  return s;
}

const CHARS = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i));

/** A byte string back to bytes. */
export function nameToBytes(name: string): Uint8Array {
  const out = new Uint8Array(name.length);
  for (let i = 0; i < name.length; i++) out[i] = name.charCodeAt(i);
  return out;
}

const utf8 = new TextEncoder();

/** A UTF-8 JS string (as typed by a user) to a byte string. */
export function utf8ToName(s: string): string {
  return bytesToName(utf8.encode(s));
}

/** Compares two byte arrays lexicographically (shorter prefix first), like Rust's `Ord`. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** Sorts xattrs by name bytes in place, as composefs keeps them. */
export function sortXattrs(xattrs: Xattr[]): Xattr[] {
  return xattrs.sort((a, b) => compareBytes(a.name, b.name));
}

/** A directory's entries in byte order of their names. */
export function sortedEntries(dir: Directory): Array<[string, Inode]> {
  return [...dir.entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

// --- queries -----------------------------------------------------------------------------------

/**
 * How many directory entries refer to each leaf: a leaf's link count inside the tree
 * (composefs counts links within the image, not the source file system's st_nlink).
 */
export function countLinks(fs: FileSystem): Map<Leaf, number> {
  const counts = new Map<Leaf, number>();
  const walk = (dir: Directory) => {
    for (const inode of dir.entries.values()) {
      if (inode.kind === "dir") walk(inode);
      else counts.set(inode, (counts.get(inode) ?? 0) + 1);
    }
  };
  walk(fs.root);
  return counts;
}

/** A directory's link count: 2 plus one per subdirectory. */
export function dirNlink(dir: Directory): number {
  let n = 2;
  for (const inode of dir.entries.values()) if (inode.kind === "dir") n++;
  return n;
}

/** The newest mtime (whole seconds) of a directory and everything below it. */
export function newestMtime(dir: Directory): number {
  let newest = dir.stat.mtime;
  for (const inode of dir.entries.values()) {
    const m = inode.kind === "dir" ? newestMtime(inode) : inode.stat.mtime;
    if (m > newest) newest = m;
  }
  return newest;
}

/**
 * Gives a synthetic root the newest mtime in the tree, once (cfsctl 0.3.0's rule for trees
 * without root metadata; only hand-built trees are still synthetic, see {@link FileSystem}).
 */
export function ensureRootStat(fs: FileSystem): void {
  if (!fs.haveRootStat) {
    fs.root.stat.mtime = newestMtime(fs.root);
    fs.root.stat.mtimeNsec = 0;
    fs.haveRootStat = true;
  }
}

/**
 * Calls `fn` once for every stat of the tree: each directory's, and each leaf's once however
 * many names link to it (a hardlinked leaf has one stat).
 */
export function forEachStat(fs: FileSystem, fn: (stat: Stat) => void): void {
  const seen = new Set<Leaf>();
  const walk = (dir: Directory) => {
    fn(dir.stat);
    for (const inode of dir.entries.values()) {
      if (inode.kind === "dir") walk(inode);
      else if (!seen.has(inode)) {
        seen.add(inode);
        fn(inode.stat);
      }
    }
  };
  walk(fs.root);
}

/** A copy of `stat` that shares nothing mutable with it (xattr bytes are copied too). */
export function cloneStat(stat: Stat): Stat {
  return {
    ...stat,
    xattrs: stat.xattrs.map((x) => ({ name: x.name.slice(), value: x.value.slice() })),
  };
}

/**
 * A deep copy of `fs` that shares nothing mutable with it: hardlinks stay hardlinks (one
 * leaf copy per leaf), contents are shared (they are never changed in place).
 */
export function cloneTree(fs: FileSystem): FileSystem {
  const leaves = new Map<Leaf, Leaf>();
  const dir = (d: Directory): Directory => {
    const out: Directory = { kind: "dir", stat: cloneStat(d.stat), entries: new Map() };
    for (const [name, inode] of d.entries) {
      if (inode.kind === "dir") out.entries.set(name, dir(inode));
      else {
        let copy = leaves.get(inode);
        if (copy === undefined) {
          copy = { kind: "leaf", stat: cloneStat(inode.stat), content: inode.content };
          leaves.set(inode, copy);
        }
        out.entries.set(name, copy);
      }
    }
    return out;
  };
  return { root: dir(fs.root), haveRootStat: fs.haveRootStat };
}

/**
 * The subdirectory `name` of `dir`, or undefined when there is no such entry; throws a
 * {@link TreeError} when the entry is not a directory. The messages are composefs-rs's
 * (`Directory entry "usr" does not exist`), which cfs's users may know from cfsctl.
 */
export function childDirectory(dir: Directory, name: string): Directory | undefined {
  const inode = dir.entries.get(name);
  if (inode === undefined) return undefined;
  if (inode.kind !== "dir") {
    throw new TreeError(`Directory entry ${JSON.stringify(name)} is not a subdirectory`);
  }
  return inode;
}

/** Like {@link childDirectory}, but a missing entry is an error too. */
export function requireDirectory(dir: Directory, name: string): Directory {
  const child = childDirectory(dir, name);
  if (child === undefined) {
    throw new TreeError(`Directory entry ${JSON.stringify(name)} does not exist`);
  }
  return child;
}

/** Problems with paths inside a tree. */
export class TreeError extends CfsError {
  /** Creates the error; `message` names the path and the problem. */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, withCode(options, "tree-invalid"));
    this.name = "TreeError";
  }
}

/** Splits a path (byte string, `/`-separated, leading `/` optional) into names. */
export function pathComponents(path: string): string[] {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) {
    throw new TreeError(`invalid path ${JSON.stringify(path)}: '..' is not allowed`);
  }
  return parts;
}

/** Looks up an inode by path; undefined when any component is missing. */
export function lookup(fs: FileSystem, path: string): Inode | undefined {
  let cur: Inode = fs.root;
  for (const name of pathComponents(path)) {
    if (cur.kind !== "dir") {
      throw new TreeError(
        `${JSON.stringify(path)}: ${JSON.stringify(name)} is below a non-directory`,
      );
    }
    const next = cur.entries.get(name);
    if (next === undefined) return undefined;
    cur = next;
  }
  return cur;
}

/** The file type letter composefs and SELinux use: '-' 'd' 'l' 'c' 'b' 'p' 's'. */
export function typeLetter(inode: Inode): string {
  if (inode.kind === "dir") return "d";
  switch (inode.content.type) {
    case "inline":
    case "external":
      return "-";
    case "symlink":
      return "l";
    case "chardev":
      return "c";
    case "blockdev":
      return "b";
    case "fifo":
      return "p";
    case "socket":
      return "s";
  }
}

/** S_IFMT bits of an inode. */
export function ifmt(inode: Inode): number {
  if (inode.kind === "dir") return 0o040000;
  switch (inode.content.type) {
    case "inline":
    case "external":
      return 0o100000;
    case "symlink":
      return 0o120000;
    case "chardev":
      return 0o020000;
    case "blockdev":
      return 0o060000;
    case "fifo":
      return 0o010000;
    case "socket":
      return 0o140000;
  }
}

/** The size composefs records: content length for files and symlinks, 0 otherwise. */
export function leafSize(content: LeafContent): number {
  switch (content.type) {
    case "inline":
      return content.data.length;
    case "external":
      return content.size;
    case "symlink":
      return content.target.length;
    default:
      return 0;
  }
}
