/**
 * The composefs dumpfile: one line per inode, fields separated by spaces,
 *
 *     PATH SIZE MODE NLINK UID GID RDEV MTIME PAYLOAD CONTENT DIGEST [XATTR=VALUE]...
 *
 * Writing matches composefs-rs 0.9.4's `create-dumpfile` byte for byte:
 *
 * - PATH, PAYLOAD and CONTENT: `\\`, `\n`, `\r` and `\t` by name, other bytes outside `!`..`~`
 *   as `\xNN` (lower-case hex); an empty field is `-` and a field that is just `-` is `\x2d`;
 * - xattr names and values: the same, and `=` as `\x3d` too; empty stays empty, `-` stays `-`;
 * - MODE in octal with the file type bits, MTIME as `SECONDS.NANOSECONDS` (nanoseconds without
 *   leading zeros), DIGEST the object's hex fs-verity digest or `-`;
 * - a hardlink (second and later names of a leaf) is `PATH 0 @120000 - - - - 0.0 TARGET - -`;
 * - entries depth first, a directory before its children, children in byte order.
 *
 * Reading accepts what composefs writes (0.9.4's escapes, and `\xNN` everywhere as 0.3.0
 * wrote) and rejects the rest with the line number and the reason: 0.9.4's limits (PATH_MAX,
 * 1024-byte symlink targets, xattr sizes, nanoseconds below 10^9, rdev only on devices, no
 * hardlinked whiteouts) and what no image can hold.
 *
 * @module
 */
import { CfsError, clipMiddle, MAX_ERROR_LINE } from "./errors.ts";
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

// --- writing ----------------------------------------------------------------------------------

function escapeTable(escapeEquals: boolean): string[] {
  return Array.from({ length: 256 }, (_, c) => {
    if (c === 0x5c) return "\\\\";
    if (c === 0x0a) return "\\n";
    if (c === 0x0d) return "\\r";
    if (c === 0x09) return "\\t";
    if (c < 0x21 || c > 0x7e || (escapeEquals && c === 0x3d)) {
      return `\\x${c.toString(16).padStart(2, "0")}`;
    }
    return String.fromCharCode(c);
  });
}

const FIELD_ESCAPES = escapeTable(false);
const XATTR_ESCAPES = escapeTable(true);

/** The payload of an external file: its object's path below `objects/`, `XX/REST` of the hex. */
function objectPayload(digest: Uint8Array): string {
  const hex = toHex(digest);
  return `${hex.slice(0, 2)}/${hex.slice(2)}`;
}

function escapeWith(table: string[], bytes: Uint8Array): string {
  let s = "";
  for (const c of bytes) s += table[c];
  return s;
}

/**
 * Escapes PATH, PAYLOAD or CONTENT bytes the dumpfile way (module doc): empty is `-`, a lone
 * `-` is `\x2d` so it is not read back as empty.
 */
export function escapeField(bytes: Uint8Array): string {
  if (bytes.length === 0) return "-";
  if (bytes.length === 1 && bytes[0] === 0x2d) return "\\x2d";
  return escapeWith(FIELD_ESCAPES, bytes);
}

/** Escapes an xattr name or value: like {@link escapeField} plus `=`, and empty stays empty. */
export function escapeXattrField(bytes: Uint8Array): string {
  return escapeWith(XATTR_ESCAPES, bytes);
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
  let line = `${escapeField(path)} ${size} ${mode.toString(8)} ${nlink} ${stat.uid} ${stat.gid} ` +
    `${rdev} ${stat.mtime}.${stat.mtimeNsec ?? 0} ` +
    `${escapeField(payload)} ${escapeField(content)} ${digest ?? "-"}`;
  for (const x of stat.xattrs) {
    line += ` ${escapeXattrField(x.name)}=${escapeXattrField(x.value)}`;
  }
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
        enc.encode(objectPayload(c.digest)),
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
 * The dumpfile lines of `fs` (without newlines), in order. A synthetic (hand-built) root first
 * gets the newest mtime in the tree ({@link ensureRootStat}).
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

/** The longest path a dumpfile line may name (Linux PATH_MAX, as composefs-rs checks). */
export const DUMPFILE_PATH_MAX = 4096;

/** The longest symlink target composefs-rs 0.9.4 reads from a dumpfile (XFS's limit). */
export const DUMPFILE_SYMLINK_MAX = 1024;

/** The longest xattr name (Linux XATTR_NAME_MAX). */
export const DUMPFILE_XATTR_NAME_MAX = 255;

/** The largest xattr value, and the most name bytes of all xattrs of one inode (64 KiB - 1). */
export const DUMPFILE_XATTR_SIZE_MAX = 0xffff;

/** A dumpfile that cannot be read: names the line and what is wrong with it. */
export class DumpfileError extends CfsError {
  /**
   * Creates the error; the message reads "<source> line <line>: <reason>", the reason clipped
   * in the middle so that the line stays within {@link MAX_ERROR_LINE} (a reason quotes the
   * offending field, and a field can be a 4096-byte path or a 64 KiB xattr value).
   * @param line the 1-based line number of the offending line.
   * @param reason what is wrong with it.
   * @param source what the text came from, for the message (default "dumpfile").
   */
  constructor(readonly line: number, reason: string, source = "dumpfile") {
    const prefix = `${source} line ${line}: `;
    super(prefix + clipMiddle(reason, Math.max(80, MAX_ERROR_LINE - prefix.length)), {
      code: "dumpfile-invalid",
    });
    this.name = "DumpfileError";
  }
}

/**
 * Undoes {@link escapeField} and {@link escapeXattrField}: `\\`, `\n`, `\r`, `\t` and `\xNN`
 * (either case). `-` alone means empty unless `allowEmpty` is false.
 */
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
const NSEC_PER_SEC = 1_000_000_000;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const FILE_TYPES = [S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK];

/** SECONDS.NANOSECONDS; seconds may be negative (composefs writes them so, from i64). */
function parseMtime(field: string): { mtime: number; mtimeNsec: number } {
  const m = /^(-?[0-9]+)\.([0-9]+)$/.exec(field);
  if (!m) throw new Error(`mtime ${JSON.stringify(field)} is not SECONDS.NANOSECONDS`);
  const mtime = Number(m[1]);
  if (!Number.isSafeInteger(mtime)) throw new Error(`mtime ${field} is out of range`);
  const nsec = Number(m[2]);
  if (nsec >= NSEC_PER_SEC) {
    throw new Error(`mtime ${field}: nanoseconds must be below 1000000000`);
  }
  return { mtime, mtimeNsec: nsec };
}

function parseXattrs(fields: string[]): Xattr[] {
  const xattrs: Xattr[] = [];
  let nameBytes = 0;
  for (const x of fields) {
    if (x === "") continue;
    const eq = x.indexOf("=");
    if (eq <= 0) throw new Error(`xattr ${JSON.stringify(x)} is not NAME=VALUE`);
    const shown = JSON.stringify(x.slice(0, eq));
    const name = unescapeField(x.slice(0, eq), "xattr name", false);
    if (name.includes(0)) throw new Error(`xattr name ${shown} contains a NUL byte`);
    if (name.length > DUMPFILE_XATTR_NAME_MAX) {
      throw new Error(`xattr name ${shown} is longer than ${DUMPFILE_XATTR_NAME_MAX} bytes`);
    }
    nameBytes += name.length;
    if (nameBytes > DUMPFILE_XATTR_SIZE_MAX) {
      throw new Error(`xattr names add up to more than ${DUMPFILE_XATTR_SIZE_MAX} bytes`);
    }
    const value = unescapeField(x.slice(eq + 1), "xattr value", false);
    if (value.length > DUMPFILE_XATTR_SIZE_MAX) {
      throw new Error(`xattr ${shown}: value longer than ${DUMPFILE_XATTR_SIZE_MAX} bytes`);
    }
    xattrs.push({ name, value });
  }
  sortXattrs(xattrs);
  for (let k = 1; k < xattrs.length; k++) {
    if (bytesToName(xattrs[k].name) === bytesToName(xattrs[k - 1].name)) {
      throw new Error(`xattr ${JSON.stringify(bytesToName(xattrs[k].name))} appears twice`);
    }
  }
  return xattrs;
}

/** Checks a path field and returns it as a byte string and its names. */
function parsePath(field: string, what: string): { path: string; parts: string[] } {
  const path = bytesToName(unescapeField(field, what, false));
  const shown = JSON.stringify(field);
  if (!path.startsWith("/")) throw new Error(`${what} ${shown} is not absolute`);
  if (path.length > DUMPFILE_PATH_MAX) {
    throw new Error(`${what} ${shown} is longer than ${DUMPFILE_PATH_MAX} bytes`);
  }
  const parts = path.split("/").filter((p) => p !== "");
  if (parts.some((p) => p === "." || p === "..")) {
    throw new Error(`${what} ${shown} contains . or ..`);
  }
  if (path !== "/" && (path.endsWith("/") || path.includes("//"))) {
    throw new Error(`${what} ${shown} is not canonical`);
  }
  if (path.includes("\0")) throw new Error(`${what} ${shown} contains a NUL byte`);
  if (parts.some((p) => p.length > 255)) {
    throw new Error(`${what} ${shown} has a name longer than 255 bytes`);
  }
  if (parts.length > MAX_DEPTH) {
    throw new Error(`${what} ${shown} is nested deeper than ${MAX_DEPTH} levels`);
  }
  return { path, parts };
}

/**
 * Reads a dumpfile into a tree. `text` is treated as bytes (latin1) so any byte survives.
 * Lines are split as Rust's `str::lines` does (a `\r` before the newline is dropped) and
 * blank lines are skipped, as composefs-rs does.
 */
export function parseDumpfile(text: string, source = "dumpfile"): FileSystem {
  let fs: FileSystem | undefined;
  const byPath = new Map<string, Inode>();
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();

  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim() === "") return;
    try {
      parseLine(line);
    } catch (e) {
      if (e instanceof DumpfileError) throw e;
      throw new DumpfileError(lineNo, (e as Error).message, source);
    }
  });
  if (!fs) {
    throw new DumpfileError(1, "empty dumpfile: it needs at least the root directory", source);
  }
  return fs;

  function parseLine(line: string): void {
    const fields = line.split(" ");
    if (fields.length < 11) {
      throw new Error(`expected at least 11 fields, found ${fields.length}`);
    }
    const { path, parts } = parsePath(fields[0], "path");

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
      if (!/^[0-7]+$/.test(fields[2].slice(1))) {
        throw new Error(`mode ${JSON.stringify(fields[2])} is not octal`);
      }
      if ((parseInt(fields[2].slice(1), 8) & S_IFMT) === S_IFDIR) {
        throw new Error("a hardlink cannot be a directory");
      }
      if (fields[8] === "-") throw new Error("a hardlink needs a target");
      const { path: target } = parsePath(fields[8], "hardlink target");
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
    const nlink = parseUint(fields[3], "nlink", MAX_U32);
    const uid = parseUint(fields[4], "uid", MAX_U32);
    const gid = parseUint(fields[5], "gid", MAX_U32);
    if (!/^[0-9]+$/.test(fields[6])) {
      throw new Error(`rdev ${JSON.stringify(fields[6])} is not a number`);
    }
    const rdev = BigInt(fields[6]);
    if (rdev > 0xffffffffffffffffn) throw new Error(`rdev ${fields[6]} is too large`);
    const { mtime, mtimeNsec } = parseMtime(fields[7]);
    const type = mode & S_IFMT;
    if (!FILE_TYPES.includes(type)) throw new Error(`mode ${fields[2]} has no valid file type`);
    // "-" means empty, except where empty is impossible: cfsctl 0.3.0 wrote a 1-byte file
    // holding "-" and a symlink to "-" that way (0.9.4 writes \x2d, which reads the same).
    const payload = type === S_IFLNK && size === 1 && fields[8] === "-"
      ? enc.encode("-")
      : unescapeField(fields[8], "payload");
    const content = type === S_IFREG && size === 1 && fields[9] === "-"
      ? enc.encode("-")
      : unescapeField(fields[9], "content");
    const digestField = fields[10];
    const xattrs = parseXattrs(fields.slice(11));
    const stat: Stat = { mode: mode & 0o7777, uid, gid, mtime, mtimeNsec, xattrs };

    if (type !== S_IFREG && content.length > 0) {
      throw new Error("only regular files can have inline content");
    }
    if (type !== S_IFREG && digestField !== "-") {
      throw new Error("only regular files can have a digest");
    }
    if (type !== S_IFREG && type !== S_IFLNK && payload.length > 0) {
      throw new Error("only regular files and symlinks can have a payload");
    }
    if (type !== S_IFCHR && type !== S_IFBLK && rdev !== 0n) {
      throw new Error(`only devices can have a device number (rdev ${fields[6]})`);
    }
    if (rdev > 0xffffffffn) throw new Error(`rdev ${fields[6]} does not fit in 32 bits`);
    if (type === S_IFDIR) {
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
      case S_IFREG: {
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
      case S_IFLNK:
        if (payload.length === 0) throw new Error("a symlink needs a target");
        if (payload.length > DUMPFILE_SYMLINK_MAX) {
          throw new Error(
            `symlink target of ${payload.length} bytes is longer than ${DUMPFILE_SYMLINK_MAX}`,
          );
        }
        if (payload.includes(0)) throw new Error("symlink target contains a NUL byte");
        if (payload.length !== size) {
          throw new Error(`size ${size} does not match the ${payload.length}-byte symlink target`);
        }
        leafContent = { type: "symlink", target: payload };
        break;
      case S_IFCHR:
        if (rdev === 0n && nlink > 1) {
          throw new Error(`whiteout ${JSON.stringify(fields[0])} has nlink ${nlink} (at most 1)`);
        }
        leafContent = { type: "chardev", rdev };
        break;
      case S_IFBLK:
        leafContent = { type: "blockdev", rdev };
        break;
      case S_IFIFO:
        leafContent = { type: "fifo" };
        break;
      default:
        leafContent = { type: "socket" };
    }
    const leaf: Leaf = { kind: "leaf", stat, content: leafContent };
    const [parent, name] = parentAndName();
    parent.entries.set(name, leaf);
    byPath.set(path, leaf);
  }
}
