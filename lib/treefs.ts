/**
 * Reads a directory on disk into a {@link FileSystem}, the way composefs-rs 0.9.4's
 * `read_filesystem` does: every entry but "." and "..", metadata from lstat (mtime with its
 * nanoseconds), all xattrs, hardlinks found by (device, inode), symlinks not followed, regular
 * files of at most 64 bytes inline and larger ones handed to a callback that stores or just
 * hashes them and returns the digest. The root gets the directory's own metadata (0.9.4 has
 * no synthetic root; `/usr` propagation, if wanted, comes after: lib/tree_transform.ts).
 *
 * Paths are bytes end to end (lib/sys/libc.ts), so non-UTF-8 names survive.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "./errors.ts";
import * as sys from "./sys/libc.ts";
import {
  bytesToName,
  type Directory,
  type FileSystem,
  INLINE_CONTENT_MAX,
  type Leaf,
  type LeafContent,
  MAX_DEPTH,
  newDirectory,
  sortXattrs,
  type Stat,
} from "./tree.ts";

/** Handles a regular file larger than the inline limit; returns its fs-verity digest. */
export type ExternalFileHandler = (path: Uint8Array, size: number) => Uint8Array;

/** Options of {@link readTree}. */
export interface ReadTreeOptions {
  /**
   * Ignored: the root always has the directory's own metadata now (this was cfsctl 0.3.0's
   * `--stat-root`; without it, 0.3.0 made up a root).
   */
  statRoot?: boolean;
  /** Called for each distinct large regular file (once per hardlinked inode). */
  external: ExternalFileHandler;
  /** Called after each inode is read (progress display). */
  onInode?: () => void;
}

/** A file system tree could not be read: names the path and the reason. */
export class TreeReadError extends CfsError {
  /** Creates the error; `options.cause` keeps the underlying system error. */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, withCode(options, "tree-read-failed"));
    this.name = "TreeReadError";
  }
}

function statOf(st: sys.FileStat, path: Uint8Array): Stat {
  const xattrs = sys.listXattrs(path).map(([name, value]) => ({ name, value }));
  return {
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    mtime: st.mtimeSec,
    mtimeNsec: st.mtimeNsec,
    xattrs: sortXattrs(xattrs),
  };
}

/** Reads the tree below `path` (a directory). */
export function readTree(path: string | Uint8Array, options: ReadTreeOptions): FileSystem {
  const root = typeof path === "string" ? new TextEncoder().encode(path) : path;
  const hardlinks = new Map<string, Leaf>();

  const readLeaf = (p: Uint8Array, st: sys.FileStat): Leaf => {
    const key = `${st.devMajor}:${st.devMinor}:${st.ino}`;
    const seen = hardlinks.get(key);
    if (seen) return seen;
    const stat = statOf(st, p);
    let content: LeafContent;
    switch (st.mode & sys.S_IFMT) {
      case sys.S_IFREG:
        content = st.size > INLINE_CONTENT_MAX
          ? { type: "external", digest: options.external(p, st.size), size: st.size }
          : { type: "inline", data: sys.readFileBytes(p, st.size) };
        break;
      case sys.S_IFLNK:
        content = { type: "symlink", target: sys.readLink(p) };
        break;
      case sys.S_IFCHR:
        content = { type: "chardev", rdev: st.rdev };
        break;
      case sys.S_IFBLK:
        content = { type: "blockdev", rdev: st.rdev };
        break;
      case sys.S_IFIFO:
        content = { type: "fifo" };
        break;
      case sys.S_IFSOCK:
        content = { type: "socket" };
        break;
      default:
        throw new TreeReadError(
          `${sys.displayPath(p)}: unknown file type ${(st.mode & sys.S_IFMT).toString(8)}`,
        );
    }
    const leaf: Leaf = { kind: "leaf", stat, content };
    hardlinks.set(key, leaf);
    return leaf;
  };

  const readDir = (p: Uint8Array, dir: Directory, depth: number) => {
    if (depth > MAX_DEPTH) {
      throw new TreeReadError(
        `${sys.displayPath(p)}: directories nested deeper than ${MAX_DEPTH} levels`,
      );
    }
    for (const name of sys.readDirNames(p)) {
      const child = sys.joinPath(p, name);
      const st = sys.lstat(child);
      if ((st.mode & sys.S_IFMT) === sys.S_IFDIR) {
        const sub = newDirectory(statOf(st, child));
        readDir(child, sub, depth + 1);
        dir.entries.set(bytesToName(name), sub);
      } else {
        dir.entries.set(bytesToName(name), readLeaf(child, st));
      }
      options.onInode?.();
    }
  };

  try {
    const rootStat = sys.lstat(root);
    if ((rootStat.mode & sys.S_IFMT) !== sys.S_IFDIR) {
      throw new TreeReadError(`${sys.displayPath(root)}: not a directory`);
    }
    const dir = newDirectory(statOf(rootStat, root));
    readDir(root, dir, 0);
    return { root: dir, haveRootStat: true };
  } catch (e) {
    if (e instanceof TreeReadError) throw e;
    if (e instanceof sys.SysError) {
      throw new TreeReadError(`cannot read tree: ${e.message}`, { cause: e });
    }
    throw e;
  }
}
