/**
 * The composefs dumpfile: one line per inode, fields separated by spaces,
 *
 *     PATH SIZE MODE NLINK UID GID RDEV MTIME PAYLOAD CONTENT DIGEST [XATTR=VALUE]...
 *
 * Bytes outside `!`..`~`, and `=` and `\`, are written as `\xNN`; an empty field is `-`.
 * A hardlink is `PATH 0 @120000 - - - - 0.0 TARGET - -`. Entries come depth first, a
 * directory before its children, children in byte order. Writing matches cfsctl's
 * `create-dumpfile` byte for byte; reading accepts what composefs writes and rejects the
 * rest with the line number and the reason.
 *
 * @module
 */
import { fromHex, toHex } from "./fsverity/digest.ts";
import {
  bytesToName,
  countLinks,
  type Directory,
  dirNlink,
  ensureRootStat,
  type FileSystem,
  ifmt,
  INLINE_CONTENT_MAX,
  type Inode,
  type Leaf,
  type LeafContent,
  leafSize,
  MAX_DEPTH,
  nameToBytes,
  newDirectory,
  sortedEntries,
  sortXattrs,
  type Stat,
  type Xattr,
} from "./tree.ts";
import { objectPathname } from "./erofs/writer.ts";

// --- writing ----------------------------------------------------------------------------------

const HEX = Array.from({ length: 256 }, (_, i) => `\\x${i.toString(16).padStart(2, "0")}`);

/** Escapes bytes the dumpfile way; empty becomes "-". */
export function escapeField(bytes: Uint8Array): string {
  if (bytes.length === 0) return "-";
  let s = "";
  for (const c of bytes) {
    s += c < 0x21 || c === 0x3d || c === 0x5c || c > 0x7e ? HEX[c] : String.fromCharCode(c);
  }
  return s;
}

function entryLine(
  path: Uint8Array,
  stat: Stat,
  mode: number,
  size: number,
  nlink: number,
  rdev: bigint,
  payload: Uint8Array,
  content: Uint8Array,
  digest: string | null,
): string {
  let line =
    `${escapeField(path)} ${size} ${
      mode.toString(8)
    } ${nlink} ${stat.uid} ${stat.gid} ${rdev} ${stat.mtime}.0 ` +
    `${escapeField(payload)} ${escapeField(content)} ${digest ?? "-"}`;
  for (const x of stat.xattrs) line += ` ${escapeField(x.name)}=${escapeField(x.value)}`;
  return line;
}

const EMPTY = new Uint8Array(0);
const enc = new TextEncoder();

function leafLine(path: Uint8Array, leaf: Leaf, nlink: number): string {
  const c = leaf.content;
  const mode = ifmt(leaf) | leaf.stat.mode;
  const size = leafSize(c);
  switch (c.type) {
    case "inline":
      return entryLine(path, leaf.stat, mode, size, nlink, 0n, EMPTY, c.data, null);
    case "external":
      return entryLine(
        path,
        leaf.stat,
        mode,
        size,
        nlink,
        0n,
        enc.encode(objectPathname(c.digest)),
        EMPTY,
        toHex(c.digest),
      );
    case "symlink":
      return entryLine(path, leaf.stat, mode, size, nlink, 0n, c.target, EMPTY, null);
    case "chardev":
    case "blockdev":
      return entryLine(path, leaf.stat, mode, 0, nlink, c.rdev, EMPTY, EMPTY, null);
    default:
      return entryLine(path, leaf.stat, mode, 0, nlink, 0n, EMPTY, EMPTY, null);
  }
}

function joinBytes(dir: Uint8Array, name: string): Uint8Array {
  const n = nameToBytes(name);
  const slash = dir.length === 1 ? 0 : 1; // the root is "/"
  const out = new Uint8Array(dir.length + slash + n.length);
  out.set(dir);
  if (slash) out[dir.length] = 0x2f;
  out.set(n, dir.length + slash);
  return out;
}

/**
 * The dumpfile lines of `fs` (without newlines), in order. A synthetic root first gets the
 * newest mtime in the tree, as cfsctl does.
 */
export function* dumpfileLines(fs: FileSystem): Generator<string> {
  ensureRootStat(fs);
  const links = countLinks(fs);
  const firstPath = new Map<Leaf, Uint8Array>();
  function* walk(path: Uint8Array, dir: Directory): Generator<string> {
    yield dumpfileLine(path, dir, 0);
    for (const [name, inode] of sortedEntries(dir)) {
      const p = joinBytes(path, name);
      if (inode.kind === "dir") {
        yield* walk(p, inode);
        continue;
      }
      const nlink = links.get(inode) ?? 1;
      const target = nlink > 1 ? firstPath.get(inode) : undefined;
      if (target !== undefined) {
        yield `${escapeField(p)} 0 @120000 - - - - 0.0 ${escapeField(target)} - -`;
        continue;
      }
      if (nlink > 1) firstPath.set(inode, p);
      yield leafLine(p, inode, nlink);
    }
  }
  yield* walk(new Uint8Array([0x2f]), fs.root);
}

/** The whole dumpfile as text (newline after every line). */
export function writeDumpfile(fs: FileSystem): string {
  let out = "";
  for (const line of dumpfileLines(fs)) out += line + "\n";
  return out;
}

/**
 * The dumpfile line of one inode at `path` (a directory's link count is derived from its
 * entries; `nlink` is used for leaves only).
 */
export function dumpfileLine(path: Uint8Array, inode: Inode, nlink: number): string {
  if (inode.kind === "dir") {
    return entryLine(
      path,
      inode.stat,
      0o040000 | inode.stat.mode,
      0,
      dirNlink(inode),
      0n,
      EMPTY,
      EMPTY,
      null,
    );
  }
  return leafLine(path, inode, nlink);
}

// --- reading ----------------------------------------------------------------------------------

/** A dumpfile that cannot be read: names the line and what is wrong with it. */
export class DumpfileError extends Error {
  /**
   * Creates the error; the message reads "<source> line <line>: <reason>".
   * @param line the 1-based line number of the offending line.
   * @param reason what is wrong with it.
   * @param source what the text came from, for the message (default "dumpfile").
   */
  constructor(readonly line: number, reason: string, source = "dumpfile") {
    super(`${source} line ${line}: ${reason}`);
    this.name = "DumpfileError";
  }
}

/** Undoes {@link escapeField}; also accepts `\\`, `\n`, `\r`, `\t` as composefs does. */
export function unescapeField(field: string, what: string, allowEmpty = true): Uint8Array {
  if (field === "-" && allowEmpty) return EMPTY;
  const out: number[] = [];
  for (let i = 0; i < field.length; i++) {
    const c = field.charCodeAt(i);
    if (c > 0xff) throw new Error(`${what}: character ${JSON.stringify(field[i])} is not a byte`);
    if (c !== 0x5c) {
      out.push(c);
      continue;
    }
    const e = field[++i];
    if (e === "\\") out.push(0x5c);
    else if (e === "n") out.push(0x0a);
    else if (e === "r") out.push(0x0d);
    else if (e === "t") out.push(0x09);
    else if (e === "x") {
      const hex = field.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new Error(`${what}: bad escape \\x${hex}`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else throw new Error(`${what}: bad escape \\${e ?? "(end of field)"}`);
  }
  return new Uint8Array(out);
}

function parseUint(field: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^[0-9]+$/.test(field)) throw new Error(`${what} ${JSON.stringify(field)} is not a number`);
  const n = Number(field);
  if (n > max) throw new Error(`${what} ${field} is too large`);
  return n;
}

const MAX_U32 = 0xffffffff;

/** Reads a dumpfile into a tree. `text` is treated as bytes (latin1) so any byte survives. */
export function parseDumpfile(text: string, source = "dumpfile"): FileSystem {
  let fs: FileSystem | undefined;
  const byPath = new Map<string, Inode>();
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  if (lines.length === 0) {
    throw new DumpfileError(1, "empty dumpfile: it needs at least the root directory", source);
  }

  lines.forEach((line, i) => {
    const lineNo = i + 1;
    try {
      const fields = line.split(" ");
      if (fields.length < 11) {
        throw new Error(`expected at least 11 fields, found ${fields.length}`);
      }
      const path = bytesToName(unescapeField(fields[0], "path", false));
      if (!path.startsWith("/")) {
        throw new Error(`path ${JSON.stringify(fields[0])} is not absolute`);
      }
      const parts = path.split("/").filter((p) => p !== "");
      if (parts.some((p) => p === "." || p === "..")) {
        throw new Error(`path ${JSON.stringify(fields[0])} contains . or ..`);
      }
      if (path !== "/" && (path.endsWith("/") || path.includes("//"))) {
        throw new Error(`path ${JSON.stringify(fields[0])} is not canonical`);
      }
      if (path.includes("\0")) {
        throw new Error(`path ${JSON.stringify(fields[0])} contains a NUL byte`);
      }
      if (parts.some((p) => p.length > 255)) {
        throw new Error(`path ${JSON.stringify(fields[0])} has a name longer than 255 bytes`);
      }
      if (parts.length > MAX_DEPTH) {
        throw new Error(
          `path ${JSON.stringify(fields[0])} is nested deeper than ${MAX_DEPTH} levels`,
        );
      }

      const parentAndName = (): [Directory, string] => {
        if (!fs) throw new Error("the first entry must be the root directory /");
        if (parts.length === 0) throw new Error("the root directory appears twice");
        const name = parts[parts.length - 1];
        const parentPath = "/" + parts.slice(0, -1).join("/");
        const parent = byPath.get(parentPath);
        if (parent === undefined) {
          throw new Error(`parent directory ${JSON.stringify(parentPath)} does not exist (yet)`);
        }
        if (parent.kind !== "dir") {
          throw new Error(`parent ${JSON.stringify(parentPath)} is not a directory`);
        }
        if (parent.entries.has(name)) {
          throw new Error(`duplicate entry ${JSON.stringify(fields[0])}`);
        }
        return [parent, name];
      };

      if (fields[2].startsWith("@")) {
        const target = bytesToName(unescapeField(fields[8], "hardlink target", false));
        const inode = byPath.get(target);
        if (inode === undefined) {
          throw new Error(`hardlink target ${JSON.stringify(fields[8])} does not exist (yet)`);
        }
        if (inode.kind === "dir") {
          throw new Error(`hardlink target ${JSON.stringify(fields[8])} is a directory`);
        }
        const [parent, name] = parentAndName();
        parent.entries.set(name, inode);
        byPath.set(path, inode);
        return;
      }

      const size = parseUint(fields[1], "size");
      if (!/^[0-7]+$/.test(fields[2])) {
        throw new Error(`mode ${JSON.stringify(fields[2])} is not octal`);
      }
      const mode = parseInt(fields[2], 8);
      if (mode > 0o177777) throw new Error(`mode ${fields[2]} is too large`);
      parseUint(fields[3], "nlink", MAX_U32);
      const uid = parseUint(fields[4], "uid", MAX_U32);
      const gid = parseUint(fields[5], "gid", MAX_U32);
      if (!/^[0-9]+$/.test(fields[6])) {
        throw new Error(`rdev ${JSON.stringify(fields[6])} is not a number`);
      }
      const rdev = BigInt(fields[6]);
      if (rdev > 0xffffffffffffffffn) throw new Error(`rdev ${fields[6]} is too large`);
      const m = /^(-?[0-9]+)\.([0-9]+)$/.exec(fields[7]);
      if (!m) throw new Error(`mtime ${JSON.stringify(fields[7])} is not SECONDS.NANOSECONDS`);
      const mtime = Number(m[1]);
      if (!Number.isSafeInteger(mtime)) throw new Error(`mtime ${fields[7]} is out of range`);
      // "-" means empty, except where empty is impossible: a 1-byte file whose content is
      // "-" and a symlink to "-" are written that way by composefs (the format is ambiguous).
      const type = mode & 0o170000;
      if (![0o040000, 0o100000, 0o120000, 0o020000, 0o060000, 0o010000, 0o140000].includes(type)) {
        throw new Error(`mode ${fields[2]} has no valid file type`);
      }
      const payload = type === 0o120000 && size === 1 && fields[8] === "-"
        ? enc.encode("-")
        : unescapeField(fields[8], "payload");
      const content = type === 0o100000 && size === 1 && fields[9] === "-"
        ? enc.encode("-")
        : unescapeField(fields[9], "content");
      const digestField = fields[10];
      const xattrs: Xattr[] = [];
      for (const x of fields.slice(11)) {
        if (x === "") continue;
        const eq = x.indexOf("=");
        if (eq <= 0) throw new Error(`xattr ${JSON.stringify(x)} is not NAME=VALUE`);
        const name = unescapeField(x.slice(0, eq), "xattr name", false);
        if (name.includes(0)) {
          throw new Error(`xattr name ${JSON.stringify(x.slice(0, eq))} contains a NUL byte`);
        }
        if (name.length > 255) {
          throw new Error(`xattr name ${JSON.stringify(x.slice(0, eq))} is longer than 255 bytes`);
        }
        xattrs.push({ name, value: unescapeField(x.slice(eq + 1), "xattr value") });
      }
      sortXattrs(xattrs);
      for (let k = 1; k < xattrs.length; k++) {
        if (bytesToName(xattrs[k].name) === bytesToName(xattrs[k - 1].name)) {
          throw new Error(`xattr ${JSON.stringify(bytesToName(xattrs[k].name))} appears twice`);
        }
      }
      const stat: Stat = { mode: mode & 0o7777, uid, gid, mtime, xattrs };

      if (rdev > 0xffffffffn) throw new Error(`rdev ${fields[6]} does not fit in 32 bits`);
      if (type !== 0o100000 && content.length > 0) {
        throw new Error("only regular files can have inline content");
      }
      if (type !== 0o100000 && digestField !== "-") {
        throw new Error("only regular files can have a digest");
      }
      if (type !== 0o100000 && type !== 0o120000 && payload.length > 0) {
        throw new Error("only regular files and symlinks can have a payload");
      }
      if (type === 0o040000) {
        const dir = newDirectory(stat);
        if (path === "/") {
          if (fs) throw new Error("the root directory appears twice");
          fs = { root: dir, haveRootStat: true };
        } else {
          const [parent, name] = parentAndName();
          parent.entries.set(name, dir);
        }
        byPath.set(path, dir);
        return;
      }
      if (path === "/") throw new Error("the root must be a directory");
      let leafContent: LeafContent;
      switch (type) {
        case 0o100000: {
          if (digestField !== "-" || payload.length > 0) {
            const hex = digestField !== "-"
              ? digestField
              : new TextDecoder().decode(payload).replace("/", "");
            if (!/^([0-9a-f]{64}|[0-9a-f]{128})$/.test(hex)) {
              throw new Error(`digest ${JSON.stringify(hex)} is not a sha256 or sha512 hex digest`);
            }
            if (content.length > 0) {
              throw new Error("a file cannot have both inline content and a digest");
            }
            leafContent = { type: "external", digest: fromHex(hex), size };
          } else {
            if (content.length !== size) {
              throw new Error(
                `size ${size} does not match the ${content.length} bytes of inline content`,
              );
            }
            if (size > INLINE_CONTENT_MAX) {
              throw new Error(
                `inline content of ${size} bytes is over the ${INLINE_CONTENT_MAX}-byte limit (larger files need a digest)`,
              );
            }
            leafContent = { type: "inline", data: content };
          }
          break;
        }
        case 0o120000:
          if (payload.length === 0) throw new Error("a symlink needs a target");
          if (payload.length > 4095) {
            throw new Error(`symlink target of ${payload.length} bytes is longer than 4095`);
          }
          if (payload.includes(0)) throw new Error("symlink target contains a NUL byte");
          if (payload.length !== size) {
            throw new Error(
              `size ${size} does not match the ${payload.length}-byte symlink target`,
            );
          }
          leafContent = { type: "symlink", target: payload };
          break;
        case 0o020000:
          leafContent = { type: "chardev", rdev };
          break;
        case 0o060000:
          leafContent = { type: "blockdev", rdev };
          break;
        case 0o010000:
          leafContent = { type: "fifo" };
          break;
        case 0o140000:
          leafContent = { type: "socket" };
          break;
        default:
          throw new Error(`mode ${fields[2]} has no valid file type`);
      }
      const leaf: Leaf = { kind: "leaf", stat, content: leafContent };
      const [parent, name] = parentAndName();
      parent.entries.set(name, leaf);
      byPath.set(path, leaf);
    } catch (e) {
      if (e instanceof DumpfileError) throw e;
      throw new DumpfileError(lineNo, (e as Error).message, source);
    }
  });
  return fs!;
}
