/**
 * What a tree must satisfy before it is written as a composefs EROFS image, checked once up
 * front so that no image the kernel (or cfs's own reader) cannot read is ever written.
 *
 * composefs-rs 0.9.4 refuses one kind of tree in its writer (`ValidatedFileSystem`): a
 * whiteout (character device 0:0) with more than one link. Its dumpfile parser refuses more
 * (xattr names over 255 bytes, values over 65535, more than 65535 bytes of xattr names on
 * one inode, inline content over 512 bytes); trees read from disk cannot exceed the kernel's
 * own limits. Where 0.9.4's writer would instead truncate a field silently (a name length
 * into a u8, a value size into a u16, a device number into a u32) or write what the kernel
 * cannot look up (names over 255 bytes), cfs refuses: each limit is below, with the field
 * that holds it.
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
  MAX_DEPTH,
  type Stat,
} from "../tree.ts";

/** Longest file name: EROFS_NAME_LEN (the kernel looks up no longer name). */
export const NAME_MAX = 255;
/** Longest symlink target: PATH_MAX less the terminating NUL, the kernel's bound. */
export const SYMLINK_TARGET_MAX = 4095;
/** Longest xattr name, prefix included: XATTR_NAME_MAX (the entry keeps a u8 length). */
export const XATTR_NAME_MAX = 255;
/** Largest xattr value: the entry's u16 `value_size`. */
export const XATTR_VALUE_MAX = 0xffff;
/** Most bytes of xattr names on one inode, as composefs-rs 0.9.4's dumpfile parser allows. */
export const XATTR_NAMES_TOTAL_MAX = 0xffff;
/** Most shared xattrs one inode refers to: the xattr header's u8 `shared_count`. */
export const SHARED_XATTRS_PER_INODE_MAX = 255;
/** Largest xattr area of one inode: the inode's u16 `xattr_icount` counts 4-byte words. */
export const XATTR_AREA_MAX: number = 12 + 4 * (0xffff - 1);
/**
 * Largest inline file: composefs-rs 0.9.4's MAX_INLINE_CONTENT, the most its dumpfile parser
 * and its reader of V2 images (which keep the whole file after the inode) accept.
 */
export const INLINE_FILE_MAX = 512;
/** Largest device number: the inode's u32 `u` field. */
export const RDEV_MAX = 0xffffffff;
/** Largest uid or gid: the extended inode's u32 fields. */
export const ID_MAX = 0xffffffff;
/** Nanoseconds of an mtime are below one second. */
export const MTIME_NSEC_MAX = 999_999_999;

/** The limits {@link ErofsLimitError} names. */
export type ErofsLimit =
  | "name"
  | "name-length"
  | "symlink-target"
  | "xattr-name"
  | "xattr-value"
  | "xattr-names-total"
  | "xattr-count"
  | "xattr-area"
  | "inline-size"
  | "rdev"
  | "id"
  | "mode"
  | "mtime"
  | "depth"
  | "whiteout-nlink";

/** A tree that cannot be written as a composefs EROFS image; `path` names the inode. */
export class ErofsLimitError extends CfsError {
  /**
   * Creates the error; the message names the path and what is wrong.
   * @param path the offending inode's path in the image ("/" for the root), as text
   * @param limit which limit it breaks
   * @param detail what is wrong, for the message
   */
  constructor(path: string, limit: ErofsLimit, detail: string) {
    super(`cannot write EROFS image: ${path}: ${detail}`, { code: "erofs-limit" });
    this.name = "ErofsLimitError";
    this.path = path;
    this.limit = limit;
  }
  /** The offending inode's path in the image ("/" for the root), as text. */
  readonly path: string;
  /** Which limit it breaks. */
  readonly limit: ErofsLimit;
}

/** A byte-string path as text: printable ASCII as is, other bytes as \xNN. */
export function displayPath(path: string): string {
  let out = "";
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    out += c >= 0x20 && c < 0x7f && c !== 0x5c ? path[i] : `\\x${c.toString(16).padStart(2, "0")}`;
  }
  return out;
}

function checkStat(stat: Stat, path: () => string): void {
  const fail = (limit: ErofsLimit, detail: string): never => {
    throw new ErofsLimitError(displayPath(path()), limit, detail);
  };
  if (!Number.isInteger(stat.mode) || stat.mode < 0 || stat.mode > 0o7777) {
    fail("mode", `mode ${stat.mode} has bits outside 0o7777`);
  }
  for (const [what, id] of [["uid", stat.uid], ["gid", stat.gid]] as const) {
    if (!Number.isInteger(id) || id < 0 || id > ID_MAX) fail("id", `${what} ${id} is not a u32`);
  }
  if (!Number.isSafeInteger(stat.mtime)) fail("mtime", `mtime ${stat.mtime} is not an integer`);
  const nsec = stat.mtimeNsec ?? 0;
  if (!Number.isInteger(nsec) || nsec < 0 || nsec > MTIME_NSEC_MAX) {
    fail("mtime", `mtime nanoseconds ${nsec} are outside 0..${MTIME_NSEC_MAX}`);
  }
  let total = 0;
  for (const x of stat.xattrs) {
    if (x.name.length === 0) fail("xattr-name", "an xattr has an empty name");
    if (x.name.length > XATTR_NAME_MAX) {
      fail(
        "xattr-name",
        `xattr name ${
          displayPath(bytesToName(x.name.subarray(0, 40)))
        }... is ${x.name.length} bytes, the limit is ${XATTR_NAME_MAX}`,
      );
    }
    if (x.value.length > XATTR_VALUE_MAX) {
      fail(
        "xattr-value",
        `xattr ${
          displayPath(bytesToName(x.name))
        } has a ${x.value.length}-byte value, the limit is ${XATTR_VALUE_MAX}`,
      );
    }
    total += x.name.length;
  }
  if (total > XATTR_NAMES_TOTAL_MAX) {
    fail(
      "xattr-names-total",
      `xattr names total ${total} bytes, the limit is ${XATTR_NAMES_TOTAL_MAX}`,
    );
  }
}

function checkLeaf(leaf: Leaf, nlink: number, path: () => string): void {
  checkStat(leaf.stat, path);
  const fail = (limit: ErofsLimit, detail: string): never => {
    throw new ErofsLimitError(displayPath(path()), limit, detail);
  };
  const c = leaf.content;
  switch (c.type) {
    case "symlink":
      if (c.target.length === 0) fail("symlink-target", "symlink with an empty target");
      if (c.target.length > SYMLINK_TARGET_MAX) {
        fail(
          "symlink-target",
          `symlink target is ${c.target.length} bytes, the limit is ${SYMLINK_TARGET_MAX}`,
        );
      }
      break;
    case "inline":
      if (c.data.length > INLINE_FILE_MAX) {
        fail(
          "inline-size",
          `inline file of ${c.data.length} bytes, the limit is ${INLINE_FILE_MAX}`,
        );
      }
      break;
    case "external":
      if (!Number.isSafeInteger(c.size) || c.size < 0) {
        fail("inline-size", `external file size ${c.size} is not a byte count`);
      }
      break;
    case "chardev":
    case "blockdev":
      if (c.rdev < 0n || c.rdev > BigInt(RDEV_MAX)) {
        fail("rdev", `device number ${c.rdev} does not fit in 32 bits`);
      }
      if (c.type === "chardev" && c.rdev === 0n && nlink > 1) {
        fail("whiteout-nlink", `a whiteout (character device 0:0) with ${nlink} links`);
      }
      break;
  }
}

function checkName(name: string, path: () => string): void {
  const fail = (limit: ErofsLimit, detail: string): never => {
    throw new ErofsLimitError(displayPath(path()), limit, detail);
  };
  if (name.length === 0 || name === "." || name === "..") {
    fail("name", `invalid file name ${JSON.stringify(name)}`);
  }
  if (name.includes("/") || name.includes("\0")) fail("name", "file name contains '/' or NUL");
  if (name.length > NAME_MAX) {
    fail("name-length", `file name is ${name.length} bytes, the limit is ${NAME_MAX}`);
  }
}

/**
 * Checks every inode of `fs` against the limits above, depth first in name order, and throws
 * an {@link ErofsLimitError} naming the first offending path.
 *
 * @param links how many entries refer to each leaf (hardlinked whiteouts are refused)
 */
export function checkErofsLimits(fs: FileSystem, links: ReadonlyMap<Leaf, number>): void {
  const seen = new Set<Leaf>();
  const walk = (dir: Directory, path: string, depth: number) => {
    checkStat(dir.stat, () => path || "/");
    if (depth > MAX_DEPTH) {
      throw new ErofsLimitError(
        displayPath(path),
        "depth",
        `directories nested deeper than ${MAX_DEPTH} levels`,
      );
    }
    for (const [name, inode] of dir.entries as Map<string, Inode>) {
      const childPath = () => `${path}/${name}`;
      checkName(name, childPath);
      if (inode.kind === "dir") {
        walk(inode, childPath(), depth + 1);
      } else if (!seen.has(inode)) {
        seen.add(inode);
        checkLeaf(inode, links.get(inode) ?? 1, childPath);
      }
    }
  };
  walk(fs.root, "", 0);
}
