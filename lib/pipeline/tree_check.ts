/**
 * The tree a hook hands back: hooks run in their own process (hook_process.ts), so `ctx.tree`
 * crosses it twice, as a structured clone (node:v8 serialization: Maps, Uint8Arrays, bigints,
 * and shared objects stay shared, so hardlinks stay hardlinks). What comes back is whatever
 * the hook left, so before cfs writes an image from it the whole value is checked to be a
 * {@link FileSystem}: the shapes of lib/tree.ts, each directory reached once (no cycle, no
 * hardlinked directory), file names that are byte strings, object digests of the repository's
 * algorithm that name stored objects (a hook cannot store objects, only reuse them), xattrs
 * sorted (they are sorted here; a repeated name is an error), then the EROFS limits every image
 * is held to (lib/erofs/limits.ts).
 *
 * @module
 */
import { checkErofsLimits, displayPath } from "../erofs/limits.ts";
import {
  bytesToName,
  compareBytes,
  countLinks,
  type Directory,
  type FileSystem,
  MAX_DEPTH,
  type Stat,
} from "../tree.ts";

/** What {@link checkHookTree} needs to know about the repository. */
export interface TreeCheckOptions {
  /** Bytes of an object digest (32 for sha256, 64 for sha512). */
  digestLength: number;
  /** Whether an object is stored; asked once per digest the tree did not hold before. */
  hasObject(digest: Uint8Array): boolean;
  /** Digests (byte strings) known to be stored: those of the tree the hook was given. */
  known?: ReadonlySet<string>;
}

/** The external digests of a tree, as byte strings (for {@link TreeCheckOptions.known}). */
export function treeDigests(fs: FileSystem): Set<string> {
  const out = new Set<string>();
  const walk = (dir: Directory) => {
    for (const inode of dir.entries.values()) {
      if (inode.kind === "dir") walk(inode);
      else if (inode.content.type === "external") out.add(bytesToName(inode.content.digest));
    }
  };
  walk(fs.root);
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function fail(path: string, problem: string): never {
  throw new Error(`ctx.tree: ${displayPath(path || "/")}: ${problem}`);
}

function checkStat(v: unknown, path: string): void {
  if (!isObject(v)) fail(path, "stat is not an object");
  for (const key of ["mode", "uid", "gid", "mtime"] as const) {
    if (typeof v[key] !== "number") fail(path, `stat.${key} is not a number`);
  }
  if (v.mtimeNsec !== undefined && typeof v.mtimeNsec !== "number") {
    fail(path, "stat.mtimeNsec is not a number");
  }
  if (!Array.isArray(v.xattrs)) fail(path, "stat.xattrs is not an array");
  for (const x of v.xattrs as unknown[]) {
    if (!isObject(x) || !(x.name instanceof Uint8Array) || !(x.value instanceof Uint8Array)) {
      fail(path, "an xattr is not { name: Uint8Array, value: Uint8Array }");
    }
  }
  const xattrs = (v as unknown as Stat).xattrs;
  xattrs.sort((a, b) => compareBytes(a.name, b.name));
  for (let i = 1; i < xattrs.length; i++) {
    if (compareBytes(xattrs[i - 1].name, xattrs[i].name) === 0) {
      fail(path, `xattr ${displayPath(bytesToName(xattrs[i].name))} appears twice`);
    }
  }
}

function checkLeafContent(v: unknown, path: string, options: TreeCheckOptions): void {
  if (!isObject(v)) fail(path, "content is not an object");
  const bytes = (key: string) => {
    if (!(v[key] instanceof Uint8Array)) fail(path, `content.${key} is not a Uint8Array`);
  };
  switch (v.type) {
    case "inline":
      bytes("data");
      break;
    case "symlink":
      bytes("target");
      break;
    case "external": {
      bytes("digest");
      const digest = v.digest as Uint8Array;
      if (digest.length !== options.digestLength) {
        fail(path, `content.digest has ${digest.length} bytes, not ${options.digestLength}`);
      }
      if (typeof v.size !== "number") fail(path, "content.size is not a number");
      if (!options.known?.has(bytesToName(digest)) && !options.hasObject(digest)) {
        fail(path, "content.digest names no object of the repository");
      }
      break;
    }
    case "chardev":
    case "blockdev":
      if (typeof v.rdev !== "bigint") fail(path, "content.rdev is not a bigint");
      break;
    case "fifo":
    case "socket":
      break;
    default:
      fail(path, `unknown content type ${JSON.stringify(String(v.type)).slice(0, 40)}`);
  }
}

/**
 * Checks that `value`, what a hook left in `ctx.tree`, is a tree cfs can write (see the module
 * documentation) and returns it; throws an `Error` naming the first problem's path otherwise.
 * Xattrs are sorted in place.
 */
export function checkHookTree(value: unknown, options: TreeCheckOptions): FileSystem {
  if (!isObject(value)) throw new Error("ctx.tree is not a tree ({ root, haveRootStat })");
  if (typeof value.haveRootStat !== "boolean") {
    throw new Error("ctx.tree.haveRootStat is not a boolean");
  }
  const dirs = new Set<unknown>();
  const leaves = new Set<unknown>();
  const walk = (dir: unknown, path: string, depth: number) => {
    if (!isObject(dir) || dir.kind !== "dir") fail(path, "not a directory ({ kind: 'dir' })");
    if (dirs.has(dir)) fail(path, "a directory that is also elsewhere in the tree");
    if (depth > MAX_DEPTH) fail(path, `directories nested deeper than ${MAX_DEPTH} levels`);
    dirs.add(dir);
    checkStat(dir.stat, path);
    if (!(dir.entries instanceof Map)) fail(path, "entries is not a Map");
    for (const [name, inode] of dir.entries as Map<unknown, unknown>) {
      if (typeof name !== "string") fail(path, "an entry name is not a string");
      // Names are byte strings: one character per byte.
      for (let i = 0; i < name.length; i++) {
        if (name.charCodeAt(i) > 0xff) {
          fail(
            `${path}/${name}`,
            "a name is not a byte string (one character per byte, 0-255: use utf8ToName)",
          );
        }
      }
      const child = `${path}/${name}`;
      if (isObject(inode) && inode.kind === "dir") walk(inode, child, depth + 1);
      else if (isObject(inode) && inode.kind === "leaf") {
        if (leaves.has(inode)) continue;
        leaves.add(inode);
        checkStat(inode.stat, child);
        checkLeafContent(inode.content, child, options);
      } else fail(child, "neither a directory nor a leaf ({ kind: 'dir' | 'leaf' })");
    }
  };
  walk(value.root, "", 0);
  const fs = value as unknown as FileSystem;
  try {
    checkErofsLimits(fs, countLinks(fs));
  } catch (e) {
    throw new Error(`ctx.tree: ${(e as Error).message.replace(/^cannot write EROFS image: /, "")}`);
  }
  return fs;
}
