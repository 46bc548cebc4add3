/**
 * How the tar entries of an image's layers become one file system tree, as composefs-oci
 * 0.9.4 builds it (`process_entry` for each entry of each layer in order, then
 * `transform_for_oci`). Pure: the caller reads the layer streams and hands over entries.
 *
 * Per entry (`process_entry`):
 *
 * - an entry naming the root (`/`, `./`, ``) must be a directory and only replaces the root's
 *   stat;
 * - the parent directory of every other entry must exist already (else an error);
 * - `.wh.NAME` removes NAME from its directory, `.wh..wh..opq` empties its directory (the
 *   whiteout entry itself is not added);
 * - a directory over an existing directory replaces only its stat (children kept); anything
 *   else replaces what was there;
 * - a hardlink shares the (existing, non-directory) target's inode, across layers too; its
 *   target is resolved before anything else, even for a whiteout;
 * - stat: permission bits, uid, gid and mtime as the tar reader resolved them (pax `uid`,
 *   `gid`, `mtime` override the header), the mtime's nanoseconds from a fractional pax
 *   `mtime`, xattrs from pax records.
 *
 * The root starts with an "uninitialized" stat (mode 0, owner 0, mtime 0) and, once every
 * layer is in, {@link finishOciTree} applies the container-root transform
 * (lib/tree_transform.ts): the root takes `/usr`'s metadata, `/run` is emptied, xattrs are
 * filtered. 0.9.4 always does this for OCI images, so an image without `/usr` cannot be
 * built; `propagateUsrToRoot: false` is a cfs extra that skips it.
 *
 * @module
 */
import { type CfsErrorOptions, clipMiddle, withCode } from "../errors.ts";
import {
  type Directory,
  type FileSystem,
  type Inode,
  type LeafContent,
  newDirectory,
  sortXattrs,
  type Stat,
  TreeError,
} from "../tree.ts";
import { transformForOci, type XattrFiltering } from "../tree_transform.ts";
import { transformForBoot } from "../boot/transform.ts";
import type { ReadExternal } from "../boot/selinux.ts";
import type { TarMetadata } from "./tar.ts";
import { findBootEntries } from "../boot/entries.ts";

/** A layer entry that cannot be applied, or an image tree that cannot be finished. */
export class OciTreeError extends TreeError {
  /**
   * Creates the error; the message names the entry or the image, clipped in the middle to
   * `MAX_ERROR_LINE` (entry paths come from the layer and can be thousands of bytes long).
   */
  constructor(message: string, options?: CfsErrorOptions) {
    super(clipMiddle(message), withCode(options, "oci-tree-invalid"));
    this.name = "OciTreeError";
  }
}

/** What one tar entry adds. */
export type OciEntryItem =
  | { kind: "directory" }
  | { kind: "leaf"; content: LeafContent }
  | { kind: "hardlink"; target: string };

/** One tar entry, resolved: path and hardlink target as byte strings, as stored in the tar. */
export interface OciEntry {
  /** The entry's path as stored (leading `/` or `./` optional). */
  path: string;
  /** Its metadata. */
  stat: Stat;
  /** What it is. */
  item: OciEntryItem;
}

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** The stat an image's root has until a root entry or `/usr` gives it one (0.9.4's). */
export function uninitializedStat(): Stat {
  return { mode: 0, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, xattrs: [] };
}

/** An empty tree to apply layers to: the root has {@link uninitializedStat}. */
export function newOciFileSystem(): FileSystem {
  return { root: newDirectory(uninitializedStat()), haveRootStat: true };
}

/** The stat of a tar entry as 0.9.4 takes it (see the module doc). */
export function ociEntryStat(meta: TarMetadata): Stat {
  return {
    mode: meta.mode,
    uid: meta.uid,
    gid: meta.gid,
    mtime: meta.mtime,
    mtimeNsec: meta.mtimeNsec,
    xattrs: sortXattrs(meta.xattrs.map((x) => ({ name: x.name.slice(), value: x.value.slice() }))),
  };
}

/** The names of a tar path (leading `/`, `.` and empty names dropped); `..` is refused. */
export function entryNames(path: string): string[] {
  const names = path.split("/").filter((n) => n !== "" && n !== ".");
  if (names.includes("..")) {
    throw new OciTreeError(`tar entry ${JSON.stringify(path)}: path contains '..'`);
  }
  return names;
}

function getDirectory(root: Directory, names: string[], path: string): Directory {
  let dir = root;
  for (const n of names) {
    const next = dir.entries.get(n);
    if (next === undefined) {
      throw new OciTreeError(`layer entry ${JSON.stringify(path)}: ${JSON.stringify(n)} not found`);
    }
    if (next.kind !== "dir") {
      throw new OciTreeError(
        `layer entry ${JSON.stringify(path)}: ${JSON.stringify(n)} is not a directory`,
      );
    }
    dir = next;
  }
  return dir;
}

/** Applies one tar entry to `fs` (module doc; 0.9.4 `process_entry`). */
export function applyOciEntry(fs: FileSystem, entry: OciEntry): void {
  const names = entryNames(entry.path);
  const shown = JSON.stringify(entry.path);
  if (names.length === 0) {
    if (entry.item.kind !== "directory") {
      throw new OciTreeError(`layer entry ${shown}: the root must be a directory`);
    }
    fs.root.stat = entry.stat;
    fs.haveRootStat = true;
    return;
  }
  let inode: Inode;
  switch (entry.item.kind) {
    case "directory":
      inode = newDirectory(entry.stat);
      break;
    case "leaf":
      inode = { kind: "leaf", stat: entry.stat, content: entry.item.content };
      break;
    case "hardlink": {
      const target = entry.item.target;
      const t = entryNames(target);
      if (t.length === 0) throw new OciTreeError(`hardlink ${shown} to the root`);
      const dir = getDirectory(fs.root, t.slice(0, -1), target);
      const found = dir.entries.get(t[t.length - 1]);
      if (found === undefined) {
        throw new OciTreeError(`hardlink ${shown}: target ${JSON.stringify(target)} not found`);
      }
      if (found.kind === "dir") {
        throw new OciTreeError(
          `hardlink ${shown}: target ${JSON.stringify(target)} is a directory`,
        );
      }
      inode = found;
      break;
    }
  }
  const filename = names[names.length - 1];
  const dir = getDirectory(fs.root, names.slice(0, -1), entry.path);
  if (filename.startsWith(WHITEOUT)) {
    if (filename === OPAQUE) dir.entries.clear();
    else dir.entries.delete(filename.slice(WHITEOUT.length));
    return;
  }
  const old = dir.entries.get(filename);
  if (inode.kind === "dir" && old?.kind === "dir") old.stat = inode.stat;
  else dir.entries.set(filename, inode);
}

/** Options of {@link finishOciTree}: cfsctl's `--xattrs` and `--bootable`, and a cfs extra. */
export interface OciTreeOptions {
  /** Which xattrs the container-root transform keeps (default `allowlist-only`). */
  xattrs?: XattrFiltering;
  /**
   * Apply the container-root transform (default true, the only choice 0.9.4 offers; false
   * keeps the layers' root entry, or the uninitialized root, and every xattr).
   */
  propagateUsrToRoot?: boolean;
  /** Make the tree bootable: boot entries checked, then the boot transform. */
  bootable?: boolean;
}

/**
 * Finishes the tree of an image once every layer is applied: the container-root transform,
 * then, for `bootable`, the boot transform with the SELinux policy read from the tree.
 * @param name the image, for error messages.
 * @param read reads files stored as objects (boot entries, policy files).
 */
export function finishOciTree(
  fs: FileSystem,
  name: string,
  read: ReadExternal,
  options: OciTreeOptions = {},
): void {
  if (options.propagateUsrToRoot ?? true) {
    try {
      transformForOci(fs, { xattrs: options.xattrs });
    } catch (e) {
      if (!(e instanceof TreeError)) throw e;
      throw new OciTreeError(`image ${name}: ${e.message}`, { cause: e });
    }
  }
  if (options.bootable) {
    findBootEntries(fs, read);
    transformForBoot(fs, read);
  }
}
