/**
 * The few libc calls cfs needs that Deno does not offer: paths as raw bytes (file names on
 * Linux are bytes, not UTF-8, and Deno's string paths lose non-UTF-8 names), extended
 * attributes, statx with device numbers, and the fs-verity ioctls.
 *
 * Everything here is a thin, synchronous wrapper: a failing call throws {@link SysError}
 * carrying the errno and the path, so callers can map ENOENT, ENOTTY, ... to their own errors.
 * Flags and struct layouts come from `arch.ts` for the architecture cfs runs on; on one it does
 * not know, the first call throws instead of passing another architecture's values.
 *
 * The `*At` functions work relative to an open directory and never follow a symbolic link in
 * the name they are given (which must be one component): `lib/repository/dir.ts` builds
 * repository paths that cannot be redirected out of the repository from them.
 *
 * @module
 */
import { iow, platform } from "./arch.ts";
import { CfsError } from "../errors.ts";

/** A failed system call: `errno` is the C errno, `path` what it was called on. */
export class SysError extends CfsError {
  /** Creates `CALL PATH: ERRNO (text)`; the code is `sys-<errno>` (`sys-enospc`), or `sys-error`. */
  constructor(readonly call: string, readonly errno: number, readonly path?: string) {
    const symbol = errnoName(errno).split(" ")[0];
    super(`${call}${path !== undefined ? ` ${path}` : ""}: ${errnoName(errno)}`, {
      code: /^E[A-Z0-9]+$/.test(symbol) ? `sys-${symbol.toLowerCase()}` : "sys-error",
    });
    this.name = "SysError";
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM (operation not permitted)",
  2: "ENOENT (no such file or directory)",
  5: "EIO (input/output error)",
  9: "EBADF (bad file descriptor)",
  12: "ENOMEM (out of memory)",
  13: "EACCES (permission denied)",
  17: "EEXIST (file exists)",
  20: "ENOTDIR (not a directory)",
  21: "EISDIR (is a directory)",
  22: "EINVAL (invalid argument)",
  25: "ENOTTY (inappropriate ioctl for device)",
  28: "ENOSPC (no space left on device)",
  34: "ERANGE (result too large)",
  36: "ENAMETOOLONG (file name too long)",
  39: "ENOTEMPTY (directory not empty)",
  16: "EBUSY (device or resource busy)",
  24: "EMFILE (too many open files)",
  30: "EROFS (read-only file system)",
  122: "EDQUOT (disk quota exceeded)",
  40: "ELOOP (too many symbolic links)",
  61: "ENODATA (no data available)",
  74: "EBADMSG (bad message)",
  75: "EOVERFLOW (value too large)",
  18: "EXDEV (invalid cross-device link)",
  95: "EOPNOTSUPP (operation not supported)",
};

/** errno values callers test for. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
  ERANGE: 34,
  ELOOP: 40,
  ENOTEMPTY: 39,
  ENODATA: 61,
  EBADMSG: 74,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
} as const;

/** A readable name for an errno value. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

const symbols = {
  __errno_location: { parameters: [], result: "pointer" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  syncfs: { parameters: ["i32"], result: "i32" },
  fdatasync: { parameters: ["i32"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  fdopendir: { parameters: ["i32"], result: "pointer" },
  mkdirat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  symlinkat: { parameters: ["buffer", "i32", "buffer"], result: "i32" },
  linkat: { parameters: ["i32", "buffer", "i32", "buffer", "i32"], result: "i32" },
  renameat: { parameters: ["i32", "buffer", "i32", "buffer"], result: "i32" },
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  readlinkat: { parameters: ["i32", "buffer", "buffer", "usize"], result: "isize" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  llistxattr: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  lgetxattr: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "isize" },
  lsetxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
  mkdir: { parameters: ["buffer", "u32"], result: "i32" },
  symlink: { parameters: ["buffer", "buffer"], result: "i32" },
  link: { parameters: ["buffer", "buffer"], result: "i32" },
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  chmod: { parameters: ["buffer", "u32"], result: "i32" },
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  ioctl_int: { name: "ioctl", parameters: ["i32", "u64", "i64"], result: "i32" },
} as const;

type Lib = Deno.DynamicLibrary<typeof symbols>["symbols"];
let lib: Lib | undefined;

/** Opens libc on first use, so that importing this module costs nothing. */
function libc(): Lib {
  if (lib === undefined) {
    platform(); // refuses an unknown architecture before any of its calls could misbehave
    lib = Deno.dlopen("libc.so.6", symbols).symbols;
  }
  return lib;
}

/** The open(2) flags of this architecture. */
function flags() {
  return platform().open;
}

function errno(): number {
  const p = libc().__errno_location();
  return new Deno.UnsafePointerView(p!).getInt32(0);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

/** A path as the kernel sees it: bytes. Strings are encoded as UTF-8. */
export type BytePath = Uint8Array | string;

/** NUL-terminated copy of a path for a C call. */
export function cString(path: BytePath): Uint8Array<ArrayBuffer> {
  const bytes = typeof path === "string" ? encoder.encode(path) : path;
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** A path for messages: non-UTF-8 bytes are shown as \xNN. */
export function displayPath(path: BytePath): string {
  if (typeof path === "string") return path;
  let s = "";
  let ok = true;
  try {
    s = new TextDecoder("utf-8", { fatal: true }).decode(path);
  } catch {
    ok = false;
  }
  if (ok) return s;
  return Array.from(
    path,
    (
      b,
    ) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`),
  ).join("");
}

/** Joins a directory path and a name, both bytes. */
export function joinPath(dir: BytePath, name: BytePath): Uint8Array {
  const d = typeof dir === "string" ? encoder.encode(dir) : dir;
  const n = typeof name === "string" ? encoder.encode(name) : name;
  const needSlash = d.length > 0 && d[d.length - 1] !== 0x2f;
  const out = new Uint8Array(d.length + (needSlash ? 1 : 0) + n.length);
  out.set(d);
  if (needSlash) out[d.length] = 0x2f;
  out.set(n, d.length + (needSlash ? 1 : 0));
  return out;
}

function check(call: string, rc: number | bigint, path?: BytePath): number {
  const n = Number(rc);
  if (n < 0) throw new SysError(call, errno(), path === undefined ? undefined : displayPath(path));
  return n;
}

// --- statx -------------------------------------------------------------------------------

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const STATX_BASIC_STATS = 0x7ff;

/** File type bits of st_mode. */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** What statx tells about one inode, as cfs uses it. */
export interface FileStat {
  /** st_mode: type and permission bits. */
  mode: number;
  /** Owner user id. */
  uid: number;
  /** Owner group id. */
  gid: number;
  /** Hard link count. */
  nlink: number;
  /** Inode number. */
  ino: bigint;
  /** Size in bytes. */
  size: number;
  /** Modification time, seconds. */
  mtimeSec: number;
  /** Modification time, nanoseconds. */
  mtimeNsec: number;
  /** glibc's makedev(rdev_major, rdev_minor) */
  rdev: bigint;
  /** Major number of the device holding the file. */
  devMajor: number;
  /** Minor number of the device holding the file. */
  devMinor: number;
  /** Status change time: any write, chmod, chown or link count change moves it. */
  ctimeSec: number;
  /** Status change time, nanoseconds. */
  ctimeNsec: number;
}

/** glibc makedev(): the dev_t encoding that composefs stores for device nodes. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) |
    (mi & 0xffn);
}

/** The major number of a dev_t. */
export function major(dev: bigint): number {
  return Number(((dev >> 32n) & 0xfffff000n) | ((dev >> 8n) & 0xfffn));
}

/** The minor number of a dev_t. */
export function minor(dev: bigint): number {
  return Number(((dev >> 12n) & 0xffffff00n) | (dev & 0xffn));
}

const statxBuf = new Uint8Array(256);
const statxView = new DataView(statxBuf.buffer);

/** lstat(2) semantics (does not follow a final symlink), via statx. */
export function lstat(path: BytePath): FileStat {
  check(
    "statx",
    libc().statx(AT_FDCWD, cString(path), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, statxBuf),
    path,
  );
  return decodeStatx();
}

const AT_EMPTY_PATH = 0x1000;
const EMPTY_PATH = new Uint8Array(1);

/** fstat(2) semantics, via statx with AT_EMPTY_PATH; `path` only names the file in errors. */
export function fstat(fd: number, path?: BytePath): FileStat {
  check("statx", libc().statx(fd, EMPTY_PATH, AT_EMPTY_PATH, STATX_BASIC_STATS, statxBuf), path);
  return decodeStatx();
}

function decodeStatx(): FileStat {
  const v = statxView;
  return {
    nlink: v.getUint32(16, true),
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    mode: v.getUint16(28, true),
    ino: v.getBigUint64(32, true),
    size: Number(v.getBigUint64(40, true)),
    mtimeSec: Number(v.getBigInt64(112, true)),
    mtimeNsec: v.getUint32(120, true),
    rdev: makedev(v.getUint32(128, true), v.getUint32(132, true)),
    devMajor: v.getUint32(136, true),
    devMinor: v.getUint32(140, true),
    ctimeSec: Number(v.getBigInt64(96, true)),
    ctimeNsec: v.getUint32(104, true),
  };
}

// --- directories --------------------------------------------------------------------------

/** What a directory entry is, from its `d_type` (no stat(2) needed). */
export type DirEntryType = "file" | "directory" | "symlink" | "other" | "unknown";

/** One entry of a directory: its name (bytes) and type. */
export interface DirEntry {
  /** The name, as raw bytes. */
  name: Uint8Array;
  /** Its type as the file system reports it (`unknown` where it does not). */
  type: DirEntryType;
}

const DT_TYPES: Record<number, DirEntryType> = { 4: "directory", 8: "file", 10: "symlink" };

/** Reads every entry of an open `DIR*` (not "." and ".."); closes it. */
function readDirStream(dir: Deno.PointerObject): DirEntry[] {
  const l = libc();
  const { reclenOffset, typeOffset, nameOffset } = platform().dirent;
  const out: DirEntry[] = [];
  try {
    for (;;) {
      const ent = l.readdir(dir);
      if (ent === null) break;
      const view = new Deno.UnsafePointerView(ent);
      const reclen = view.getUint16(reclenOffset);
      const dtype = view.getUint8(typeOffset);
      const raw = new Uint8Array(view.getArrayBuffer(reclen - nameOffset, nameOffset));
      const end = raw.indexOf(0);
      const name = raw.slice(0, end < 0 ? raw.length : end);
      if (
        (name.length === 1 && name[0] === 0x2e) ||
        (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)
      ) continue;
      out.push({ name, type: DT_TYPES[dtype] ?? (dtype === 0 ? "unknown" : "other") });
    }
  } finally {
    l.closedir(dir);
  }
  return out;
}

/** The names in a directory (without "." and ".."), as raw bytes, in readdir order. */
export function readDirNames(path: BytePath): Uint8Array[] {
  const dir = libc().opendir(cString(path));
  if (dir === null) throw new SysError("opendir", errno(), displayPath(path));
  return readDirStream(dir).map((e) => e.name);
}

/**
 * The entries of the directory `name` below the open directory `dirfd`, never following a
 * symbolic link at `name` (ELOOP or ENOTDIR then); `path` only names it in errors.
 */
export function readDirAt(dirfd: number, name: BytePath, path?: BytePath): DirEntry[] {
  const fd = openDirAt(dirfd, name, path);
  const dir = libc().fdopendir(fd);
  if (dir === null) {
    const e = errno();
    close(fd);
    throw new SysError("fdopendir", e, displayPath(path ?? name));
  }
  return readDirStream(dir);
}

// --- files ---------------------------------------------------------------------------------

/** open(2) read-only without following a final symlink; returns the fd. */
export function openRead(path: BytePath): number {
  const f = flags();
  return check(
    "open",
    libc().open(cString(path), f.O_RDONLY | f.O_NOFOLLOW | f.O_CLOEXEC, 0),
    path,
  );
}

/** open(2) of a directory (following symlinks: a path the user chose); returns the fd. */
export function openDirectory(path: BytePath): number {
  const f = flags();
  return check(
    "open",
    libc().open(cString(path), f.O_RDONLY | f.O_DIRECTORY | f.O_CLOEXEC, 0),
    path,
  );
}

/** open(2) of a new file for writing (O_CREAT|O_EXCL, never an existing one); returns the fd. */
export function openCreateExclusive(path: BytePath, mode = 0o644): number {
  const f = flags();
  return check(
    "open",
    libc().open(
      cString(path),
      f.O_WRONLY | f.O_CREAT | f.O_EXCL | f.O_NOFOLLOW | f.O_CLOEXEC,
      mode,
    ),
    path,
  );
}

// --- relative to an open directory, never following a link ----------------------------------

/** The directory `name` below `dirfd`, opened without following a symlink there. */
export function openDirAt(dirfd: number, name: BytePath, path?: BytePath): number {
  const f = flags();
  return check(
    "openat",
    libc().openat(dirfd, cString(name), f.O_RDONLY | f.O_DIRECTORY | f.O_NOFOLLOW | f.O_CLOEXEC, 0),
    path ?? name,
  );
}

/** The file `name` below `dirfd`, read-only, without following a symlink there. */
export function openReadAt(dirfd: number, name: BytePath, path?: BytePath): number {
  const f = flags();
  return check(
    "openat",
    libc().openat(dirfd, cString(name), f.O_RDONLY | f.O_NOFOLLOW | f.O_CLOEXEC, 0),
    path ?? name,
  );
}

/** A new file `name` below `dirfd` for writing (never an existing one, never through a link). */
export function createExclusiveAt(
  dirfd: number,
  name: BytePath,
  mode = 0o644,
  path?: BytePath,
): number {
  const f = flags();
  return check(
    "openat",
    libc().openat(
      dirfd,
      cString(name),
      f.O_WRONLY | f.O_CREAT | f.O_EXCL | f.O_NOFOLLOW | f.O_CLOEXEC,
      mode,
    ),
    path ?? name,
  );
}

/** lstat(2) of `name` below `dirfd` (a symlink there is reported, not followed). */
export function lstatAt(dirfd: number, name: BytePath, path?: BytePath): FileStat {
  check(
    "statx",
    libc().statx(dirfd, cString(name), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, statxBuf),
    path ?? name,
  );
  return decodeStatx();
}

/** mkdirat(2). */
export function mkdirAt(dirfd: number, name: BytePath, mode = 0o755, path?: BytePath): void {
  check("mkdirat", libc().mkdirat(dirfd, cString(name), mode), path ?? name);
}

/** symlinkat(2): `name` below `dirfd` pointing at `target`. */
export function symlinkAt(target: BytePath, dirfd: number, name: BytePath, path?: BytePath): void {
  check("symlinkat", libc().symlinkat(cString(target), dirfd, cString(name)), path ?? name);
}

/** linkat(2) of `existing` (a path, not followed if a symlink) to `name` below `dirfd`. */
export function linkFromPathAt(
  existing: BytePath,
  dirfd: number,
  name: BytePath,
  path?: BytePath,
): void {
  check(
    "linkat",
    libc().linkat(AT_FDCWD, cString(existing), dirfd, cString(name), 0),
    path ?? name,
  );
}

/** renameat(2) within or across open directories (links are renamed, not followed). */
export function renameAt(
  fromDir: number,
  from: BytePath,
  toDir: number,
  to: BytePath,
  path?: BytePath,
): void {
  check("renameat", libc().renameat(fromDir, cString(from), toDir, cString(to)), path ?? to);
}

const AT_REMOVEDIR = 0x200;

/** unlinkat(2) of a file or link (`directory`: rmdir of an empty directory). */
export function unlinkAt(dirfd: number, name: BytePath, directory = false, path?: BytePath): void {
  check(
    directory ? "rmdir" : "unlink",
    libc().unlinkat(dirfd, cString(name), directory ? AT_REMOVEDIR : 0),
    path ?? name,
  );
}

/** readlinkat(2): the target of the symlink `name` below `dirfd`, as bytes. */
export function readLinkAt(dirfd: number, name: BytePath, path?: BytePath): Uint8Array {
  const buf = new Uint8Array(4097);
  const n = check(
    "readlink",
    libc().readlinkat(dirfd, cString(name), buf, BigInt(buf.length)),
    path ?? name,
  );
  return buf.slice(0, n);
}

/** Writes all of `data` to `fd` (write(2) until done); errors name `path`. */
export function writeAll(fd: number, data: Uint8Array, path?: BytePath): void {
  const l = libc();
  let buf: Uint8Array<ArrayBuffer> = data.buffer instanceof ArrayBuffer
    ? data as Uint8Array<ArrayBuffer>
    : new Uint8Array(data);
  while (buf.length > 0) {
    const n = check("write", l.write(fd, buf, BigInt(buf.length)), path);
    buf = buf.subarray(n);
  }
}

/** fdatasync(2). */
export function fdatasync(fd: number, path?: BytePath): void {
  check("fdatasync", libc().fdatasync(fd), path);
}

const LOCK_SH = 1, LOCK_EX = 2, LOCK_UN = 8;

/** flock(2): `shared`, `exclusive` (blocks until granted) or `unlock`. */
export function flock(fd: number, how: "shared" | "exclusive" | "unlock", path?: BytePath): void {
  const op = how === "shared" ? LOCK_SH : how === "exclusive" ? LOCK_EX : LOCK_UN;
  check("flock", libc().flock(fd, op), path);
}

/** syncfs(2) of the file system holding the open file `fd`. */
export function syncfs(fd: number, path?: BytePath): void {
  check("syncfs", libc().syncfs(fd), path);
}

/** read(2) into `buf`; returns the count (0 at end of file). */
export function read(fd: number, buf: Uint8Array<ArrayBuffer>, path?: BytePath): number {
  return check("read", libc().read(fd, buf, BigInt(buf.length)), path);
}

/** close(2). */
export function close(fd: number): void {
  libc().close(fd);
}

/**
 * Flushes the whole file system that `path` is on (syncfs(2)): one journal commit for
 * everything written since, instead of one fsync per file.
 */
export function syncFilesystem(path: BytePath): void {
  const fd = openRead(path);
  try {
    check("syncfs", libc().syncfs(fd), path);
  } finally {
    close(fd);
  }
}

/** Reads up to `size` bytes of a file (byte path, not following a final symlink). */
export function readFileBytes(path: BytePath, size: number): Uint8Array {
  const fd = openRead(path);
  try {
    const buf = new Uint8Array(size);
    let off = 0;
    while (off < size) {
      const chunk = new Uint8Array(Math.min(1 << 20, size - off));
      const n = read(fd, chunk, path);
      if (n === 0) break;
      buf.set(chunk.subarray(0, n), off);
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    close(fd);
  }
}

/** readlink(2): a symlink's target, as bytes. */
export function readLink(path: BytePath): Uint8Array {
  const buf = new Uint8Array(4097);
  const n = check("readlink", libc().readlink(cString(path), buf, BigInt(buf.length)), path);
  return buf.slice(0, n);
}

// --- extended attributes -------------------------------------------------------------------

/** All extended attributes of a path (not following a final symlink): name bytes -> value. */
export function listXattrs(path: BytePath): Array<[Uint8Array, Uint8Array]> {
  const l = libc();
  const p = cString(path);
  let size = check("llistxattr", l.llistxattr(p, null, 0n), path);
  if (size === 0) return [];
  let names = new Uint8Array(size);
  for (;;) {
    const rc = Number(l.llistxattr(p, names, BigInt(names.length)));
    if (rc >= 0) {
      size = rc;
      break;
    }
    if (errno() !== Errno.ERANGE) check("llistxattr", -1, path);
    names = new Uint8Array(names.length * 2);
  }
  const out: Array<[Uint8Array, Uint8Array]> = [];
  let start = 0;
  for (let i = 0; i < size; i++) {
    if (names[i] !== 0) continue;
    const name = names.slice(start, i);
    start = i + 1;
    if (name.length === 0) continue;
    out.push([name, getXattr(p, name, path)]);
  }
  return out;
}

function getXattr(cpath: Uint8Array<ArrayBuffer>, name: Uint8Array, path: BytePath): Uint8Array {
  const l = libc();
  const cname = cString(name);
  let buf = new Uint8Array(256);
  for (;;) {
    const rc = Number(l.lgetxattr(cpath, cname, buf, BigInt(buf.length)));
    if (rc >= 0) return buf.slice(0, rc);
    if (errno() !== Errno.ERANGE) check("lgetxattr", -1, path);
    const need = check("lgetxattr", l.lgetxattr(cpath, cname, null, 0n), path);
    buf = new Uint8Array(Math.max(need, buf.length * 2));
  }
}

/** lsetxattr(2). */
export function setXattr(path: BytePath, name: BytePath, value: Uint8Array): void {
  const v = new Uint8Array(value);
  check("lsetxattr", libc().lsetxattr(cString(path), cString(name), v, BigInt(v.length), 0), path);
}

// --- creating things (fixtures, checkouts) --------------------------------------------------

/** mkdir(2). */
export function mkdir(path: BytePath, mode = 0o755): void {
  check("mkdir", libc().mkdir(cString(path), mode), path);
}

/** symlink(2): creates `path` pointing at `target`. */
export function symlink(target: BytePath, path: BytePath): void {
  check("symlink", libc().symlink(cString(target), cString(path)), path);
}

/** link(2): a hard link `path` to `existing`. */
export function link(existing: BytePath, path: BytePath): void {
  check("link", libc().link(cString(existing), cString(path)), path);
}

/** mknod(2) with a full mode (type bits included) and a dev_t. */
export function mknod(path: BytePath, mode: number, dev: bigint = 0n): void {
  check("mknod", libc().mknod(cString(path), mode, dev), path);
}

/** lchown(2). */
export function lchown(path: BytePath, uid: number, gid: number): void {
  check("lchown", libc().lchown(cString(path), uid, gid), path);
}

/** chmod(2) (follows symlinks; symlink modes are fixed on Linux). */
export function chmod(path: BytePath, mode: number): void {
  check("chmod", libc().chmod(cString(path), mode), path);
}

/** Sets atime and mtime (seconds, nanoseconds) without following a final symlink. */
export function lutimes(path: BytePath, sec: number, nsec = 0): void {
  const ts = new Uint8Array(32);
  const v = new DataView(ts.buffer);
  v.setBigInt64(0, BigInt(sec), true);
  v.setBigInt64(8, BigInt(nsec), true);
  v.setBigInt64(16, BigInt(sec), true);
  v.setBigInt64(24, BigInt(nsec), true);
  check("utimensat", libc().utimensat(AT_FDCWD, cString(path), ts, AT_SYMLINK_NOFOLLOW), path);
}

/** Writes a whole file at a byte path (created or truncated) with the given mode. */
export function writeFileBytes(path: BytePath, data: Uint8Array, mode = 0o644): void {
  const f = flags();
  const fd = check(
    "open",
    libc().open(cString(path), f.O_WRONLY | f.O_CREAT | f.O_TRUNC | f.O_CLOEXEC, mode),
    path,
  );
  try {
    writeAll(fd, data, path);
  } finally {
    close(fd);
  }
  chmod(path, mode);
}

// --- ioctl ----------------------------------------------------------------------------------

/** ioctl(2) with a pointer argument; returns 0 or throws with errno. */
export function ioctl(
  fd: number,
  request: bigint,
  arg: Uint8Array<ArrayBuffer>,
  path?: BytePath,
): number {
  return check("ioctl", libc().ioctl(fd, request, arg), path);
}

/** FICLONE: _IOW(0x94, 9, int), for this architecture's ioctl encoding. */
function ficloneRequest(): bigint {
  return iow(platform(), 0x94, 9, 4);
}

/**
 * ioctl(dest, FICLONE, src): makes `destFd`'s file share all of `srcFd`'s extents (a
 * reflink; btrfs, XFS with reflink=1). Throws a {@link SysError}: EOPNOTSUPP where the file
 * system cannot, EXDEV across file systems, EINVAL on some file systems that cannot either.
 */
export function ficlone(destFd: number, srcFd: number, path?: BytePath): void {
  check("ioctl(FICLONE)", libc().ioctl_int(destFd, ficloneRequest(), BigInt(srcFd)), path);
}

/** Decodes bytes as UTF-8 for display, replacing invalid sequences. */
export function lossyString(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
