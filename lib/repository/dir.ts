/**
 * Every path below a repository is opened through {@link RepoDir}: relative to the repository
 * directory, which is opened once, one component at a time with `O_NOFOLLOW | O_DIRECTORY`, and
 * the last component with `*at()` calls that do not follow a link either. A symbolic link
 * planted where the repository has a directory (`objects/`, `objects/XX/`, `images/`,
 * `streams/refs/`, ...) therefore cannot lead a write, a read or a removal out of the
 * repository: the operation fails with a {@link RepositoryError} of code `repository-symlink`
 * that names the link and its target. Links the repository holds on purpose (`images/<hex>`,
 * `streams/<name>`, refs) are read with readlink and resolved by
 * {@link RepoDir.resolveLink}, lexically and inside the repository only.
 *
 * The repository path itself is the user's choice and may be a symlink (a moved
 * `/sysroot/composefs`): only what lies below it is held to this rule. composefs-rs 0.9.4
 * follows links below the repository; cfs does not, on purpose.
 *
 * Relative paths here are `/`-separated names without empty, `.` or `..` components.
 *
 * @module
 */
import { join } from "node:path";
import * as sys from "../sys/libc.ts";
import { RepositoryError } from "./errors.ts";
import { randomSuffix, TMP_PREFIX } from "./files.ts";

/** A directory entry as {@link RepoDir.readDir} lists it. */
export interface RepoDirEntry {
  /** Its name. */
  name: string;
  /** True for a directory (a symlink to one is a symlink). */
  isDirectory: boolean;
  /** True for a regular file. */
  isFile: boolean;
  /** True for a symbolic link. */
  isSymlink: boolean;
}

/** Where a link chain inside the repository ends; see {@link RepoDir.resolveLink}. */
export type LinkResolution =
  | { kind: "inside"; path: string }
  | { kind: "missing"; path: string }
  | { kind: "outside"; target: string }
  | { kind: "error"; message: string };

/** True when `e` says that a name does not exist. */
export function isNotFound(e: unknown): boolean {
  return e instanceof sys.SysError && e.errno === sys.Errno.ENOENT;
}

/** The components of a relative path, checked. */
function components(rel: string): string[] {
  const parts = rel.split("/");
  if (rel === "" || parts.some((p) => p === "" || p === "." || p === ".." || p.includes("\0"))) {
    throw new RepositoryError(`internal: '${rel}' is not a path inside a repository`, {
      code: "repository-error",
    });
  }
  return parts;
}

/** Directories whose descriptors are kept open: the object store, hit once per object. */
const CACHED_DIR = /^objects(\/[0-9a-f]{2})?$/;

/** The repository directory, open; every path below it resolved without following links. */
export class RepoDir {
  /** Descriptors of directories opened before, by relative path (see {@link CACHED_DIR}). */
  private readonly cache = new Map<string, number>();
  /** The same descriptors, to tell them from ones to close. */
  private readonly cachedFds = new Set<number>();

  #fd: number;

  private constructor(
    /** The repository path as given (for messages). */
    readonly path: string,
    fd: number,
  ) {
    this.#fd = fd;
  }

  /** Opens the directory at `path` (which may itself be a symlink: the user named it). */
  static open(path: string): RepoDir {
    return new RepoDir(path, sys.openDirectory(path));
  }

  /**
   * The descriptor of the repository directory. After {@link close} any use is an error: the
   * number may have been reused for another directory by then.
   */
  get fd(): number {
    if (this.#fd < 0) {
      throw new RepositoryError(`${this.path}: repository used after it was closed`, {
        code: "repository-error",
      });
    }
    return this.#fd;
  }

  /** Closes the directory and every cached descriptor (once; later calls do nothing). */
  close(): void {
    if (this.#fd < 0) return;
    for (const fd of this.cache.values()) sys.close(fd);
    this.cache.clear();
    this.cachedFds.clear();
    sys.close(this.#fd);
    this.#fd = -1;
  }

  /** The absolute path of `rel`, for messages and for tools that take paths. */
  abs(rel: string): string {
    return join(this.path, rel);
  }

  /**
   * Opens the directory `rel` (creating missing components with `create`), walking from the
   * repository one component at a time without following links. The caller closes the
   * returned descriptor with {@link release}.
   */
  private openDir(rel: string, create: boolean): number {
    if (rel === "") return this.fd;
    const cached = this.cache.get(rel);
    if (cached !== undefined) return cached;
    const parts = components(rel);
    let fd = this.fd;
    let at = "";
    try {
      for (const part of parts) {
        const next = at === "" ? part : `${at}/${part}`;
        const hit = this.cache.get(next);
        let child: number;
        if (hit !== undefined) {
          child = hit;
        } else {
          child = this.openChildDir(fd, part, next, create);
          if (CACHED_DIR.test(next)) {
            this.cache.set(next, child);
            this.cachedFds.add(child);
          }
        }
        this.release(fd);
        fd = child;
        at = next;
      }
    } catch (e) {
      this.release(fd);
      throw e;
    }
    return fd;
  }

  /** Closes a descriptor from {@link openDir} unless it is the repository's or a cached one. */
  private release(fd: number): void {
    if (fd !== this.#fd && !this.cachedFds.has(fd)) sys.close(fd);
  }

  /** One step of {@link openDir}: the directory `name` below `dirfd` (`rel` for messages). */
  private openChildDir(dirfd: number, name: string, rel: string, create: boolean): number {
    try {
      return sys.openDirAt(dirfd, name, this.abs(rel));
    } catch (e) {
      if (!(e instanceof sys.SysError)) throw e;
      if (e.errno === sys.Errno.ENOENT && create) {
        try {
          sys.mkdirAt(dirfd, name, 0o755, this.abs(rel));
        } catch (m) {
          if (!(m instanceof sys.SysError && m.errno === sys.Errno.EEXIST)) throw m;
        }
        return this.openChildDir(dirfd, name, rel, false);
      }
      if (e.errno === sys.Errno.ELOOP || e.errno === sys.Errno.ENOTDIR) {
        throw this.notADirectory(dirfd, name, rel, e);
      }
      throw e;
    }
  }

  /** The error for a repository directory that is a symlink or not a directory at all. */
  private notADirectory(dirfd: number, name: string, rel: string, cause: unknown): Error {
    let st: sys.FileStat;
    try {
      st = sys.lstatAt(dirfd, name, this.abs(rel));
    } catch {
      return cause as Error;
    }
    if ((st.mode & sys.S_IFMT) === sys.S_IFLNK) {
      let target = "?";
      try {
        target = sys.lossyString(sys.readLinkAt(dirfd, name));
      } catch { /* keep "?" */ }
      return new RepositoryError(
        `${this.abs(rel)} is a symbolic link (to ${target}): cfs does not follow links inside a ` +
          "repository, so that nothing outside it is read, written or removed; make it a " +
          "directory (a bind mount, if the data must live elsewhere)",
        { code: "repository-symlink", cause },
      );
    }
    return new RepositoryError(`${this.abs(rel)}: not a directory`, {
      code: "repository-invalid",
      cause,
    });
  }

  /**
   * Runs `fn` with the directory holding `rel` (opened as {@link openDir} opens it) and the
   * last component's name.
   */
  private at<T>(rel: string, create: boolean, fn: (dirfd: number, name: string) => T): T {
    const parts = components(rel);
    const name = parts.pop()!;
    const dirfd = this.openDir(parts.join("/"), create);
    try {
      return fn(dirfd, name);
    } finally {
      this.release(dirfd);
    }
  }

  // --- reading ------------------------------------------------------------------------------

  /** lstat of `rel`, or undefined when it does not exist (a symlink on the way is an error). */
  lstat(rel: string): sys.FileStat | undefined {
    try {
      return this.at(rel, false, (d, n) => sys.lstatAt(d, n, this.abs(rel)));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** Whether `rel` exists (a link counts as what it is, not what it points at). */
  exists(rel: string): boolean {
    return this.lstat(rel) !== undefined;
  }

  /** Whether `rel` is a directory (not a link to one). */
  isDirectory(rel: string): boolean {
    const st = this.lstat(rel);
    return st !== undefined && (st.mode & sys.S_IFMT) === sys.S_IFDIR;
  }

  /** The target of the symlink `rel`, or undefined when there is none (or no symlink). */
  readLink(rel: string): string | undefined {
    try {
      return sys.lossyString(this.at(rel, false, (d, n) => sys.readLinkAt(d, n, this.abs(rel))));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      if (e instanceof sys.SysError && e.errno === sys.Errno.EINVAL) return undefined;
      throw e;
    }
  }

  /** Opens the file `rel` read-only (a symlink there fails with ELOOP); caller closes. */
  openRead(rel: string): number {
    return this.at(rel, false, (d, n) => sys.openReadAt(d, n, this.abs(rel)));
  }

  /** Reads the regular file `rel` whole (never through a link). */
  readFile(rel: string): Uint8Array {
    const fd = this.openRead(rel);
    try {
      return readAllFd(fd, this.abs(rel));
    } finally {
      sys.close(fd);
    }
  }

  /**
   * The entries of the directory `rel`, sorted by name; [] when it does not exist. A symlink
   * at `rel` (or on the way) is an error, not followed.
   */
  readDir(rel: string): RepoDirEntry[] {
    let raw: sys.DirEntry[];
    try {
      raw = rel === "" ? sys.readDirAt(this.fd, ".", this.path) : this.at(rel, false, (d, n) => {
        try {
          return sys.readDirAt(d, n, this.abs(rel));
        } catch (e) {
          if (
            e instanceof sys.SysError &&
            (e.errno === sys.Errno.ELOOP || e.errno === sys.Errno.ENOTDIR)
          ) throw this.notADirectory(d, n, rel, e);
          throw e;
        }
      });
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
    const out = raw.map((e) => {
      const name = sys.lossyString(e.name);
      let type = e.type;
      if (type === "unknown") {
        const st = this.lstat(rel === "" ? name : `${rel}/${name}`);
        const fmt = st ? st.mode & sys.S_IFMT : 0;
        type = fmt === sys.S_IFDIR
          ? "directory"
          : fmt === sys.S_IFREG
          ? "file"
          : fmt === sys.S_IFLNK
          ? "symlink"
          : "other";
      }
      return {
        name,
        isDirectory: type === "directory",
        isFile: type === "file",
        isSymlink: type === "symlink",
      };
    });
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Follows the symlink `rel` (and any link it leads to, at most 40) inside the repository:
   * each target is resolved lexically against the directory of its link, and an absolute
   * target or one that climbs above the repository is `outside` and never followed. Returns
   * where the chain ends: an existing non-link (`inside`), a missing name (`missing`), or an
   * `error` (a loop, a symlinked directory on the way).
   */
  resolveLink(rel: string): LinkResolution {
    let current = rel;
    for (let hop = 0; hop < 40; hop++) {
      let st: sys.FileStat | undefined;
      try {
        st = this.lstat(current);
      } catch (e) {
        return { kind: "error", message: (e as Error).message };
      }
      if (st === undefined) return { kind: "missing", path: current };
      if ((st.mode & sys.S_IFMT) !== sys.S_IFLNK) return { kind: "inside", path: current };
      const target = this.readLink(current) ?? "";
      const next = resolveInside(current, target);
      if (next === undefined) return { kind: "outside", target };
      if (next === "") return { kind: "inside", path: "" }; // the repository directory
      current = next;
    }
    return { kind: "error", message: `too many levels of symbolic links from ${rel}` };
  }

  // --- writing ------------------------------------------------------------------------------

  /**
   * The descriptor of the object store's directory `rel` (`objects` or `objects/XX`), made when
   * missing and kept open until {@link close}: for calls that take a directory descriptor. Do
   * not close it.
   */
  heldDir(rel: string): number {
    if (!CACHED_DIR.test(rel)) {
      throw new RepositoryError(`internal: '${rel}' is not a directory kept open`, {
        code: "repository-error",
      });
    }
    return this.openDir(rel, true);
  }

  /** Makes the directory `rel` and every missing one above it (none of them a link). */
  mkdirs(rel: string): void {
    this.release(this.openDir(rel, true));
  }

  /** Creates the new file `rel` for writing (never an existing one); caller closes the fd. */
  createExclusive(rel: string, mode = 0o644): number {
    return this.at(rel, true, (d, n) => sys.createExclusiveAt(d, n, mode, this.abs(rel)));
  }

  /** Renames `from` to `to` (both relative; directories above `to` are made). */
  rename(from: string, to: string): void {
    this.at(from, false, (fd, fn) => {
      this.at(to, true, (td, tn) => sys.renameAt(fd, fn, td, tn, this.abs(to)));
    });
  }

  /** Removes the file or link `rel` (never what a link points at). False when it was gone. */
  unlink(rel: string): boolean {
    try {
      this.at(rel, false, (d, n) => sys.unlinkAt(d, n, false, this.abs(rel)));
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /** Removes the directory `rel` when it is empty; false when it is not (or is gone). */
  rmdirIfEmpty(rel: string): boolean {
    try {
      this.at(rel, false, (d, n) => sys.unlinkAt(d, n, true, this.abs(rel)));
      return true;
    } catch (e) {
      if (
        e instanceof sys.SysError &&
        [sys.Errno.ENOENT, sys.Errno.ENOTEMPTY, sys.Errno.EEXIST, sys.Errno.ENOTDIR].includes(
          e.errno as 2,
        )
      ) return false;
      throw e;
    }
  }

  /** Hard-links the file at the absolute path `source` (not followed) as `rel`. */
  linkFrom(source: sys.BytePath, rel: string): void {
    this.at(rel, true, (d, n) => sys.linkFromPathAt(source, d, n, this.abs(rel)));
  }

  /** Creates or replaces the symlink `rel` -> `target` atomically (temporary name, rename). */
  symlinkAtomic(target: string, rel: string): void {
    this.at(rel, true, (d, n) => {
      const tmp = `${TMP_PREFIX}${randomSuffix()}`;
      sys.symlinkAt(target, d, tmp, this.abs(rel));
      try {
        sys.renameAt(d, tmp, d, n, this.abs(rel));
      } catch (e) {
        try {
          sys.unlinkAt(d, tmp);
        } catch { /* best effort */ }
        throw e;
      }
    });
  }

  /**
   * Writes `data` to `rel` atomically: a temporary file in the same directory, written,
   * fdatasync'ed and renamed over `rel`. Write errors name the file.
   */
  writeFileAtomic(rel: string, data: Uint8Array, mode = 0o644): void {
    this.at(rel, true, (d, n) => {
      const tmp = `${TMP_PREFIX}${randomSuffix()}`;
      const tmpPath = join(this.abs(rel), "..", tmp);
      const fd = sys.createExclusiveAt(d, tmp, mode, tmpPath);
      let open = true;
      try {
        sys.writeAll(fd, data, tmpPath);
        sys.fdatasync(fd, tmpPath);
        open = false;
        sys.close(fd);
        sys.renameAt(d, tmp, d, n, this.abs(rel));
      } catch (e) {
        if (open) sys.close(fd);
        try {
          sys.unlinkAt(d, tmp);
        } catch { /* best effort */ }
        throw e;
      }
    });
  }

  /** Takes (`shared`, `exclusive`) or drops the advisory lock on the repository directory. */
  lock(how: "shared" | "exclusive" | "unlock"): void {
    sys.flock(this.fd, how, this.path);
  }

  /** Flushes the repository's file system (syncfs(2)). */
  sync(): void {
    sys.syncfs(this.fd, this.path);
  }
}

/** System calls that change the repository: their failures are the repository's. */
const WRITE_CALLS = new Set([
  "openat",
  "write",
  "fdatasync",
  "renameat",
  "mkdirat",
  "linkat",
  "symlinkat",
  "unlink",
  "rmdir",
  "ioctl(FICLONE)",
]);

/**
 * A failed write to the repository (ENOSPC, EDQUOT, EIO, ...) as a {@link RepositoryError}
 * that keeps the system error's message (call, file, errno) and code (`sys-enospc`), so that
 * a caller reading files elsewhere (a tree, a layer) does not take it for its own read error.
 * Anything else is returned as it is.
 */
export function repositoryWriteError(e: unknown): unknown {
  if (!(e instanceof sys.SysError) || !WRITE_CALLS.has(e.call)) return e;
  return new RepositoryError(`cannot write to the repository: ${e.message}`, {
    code: e.code,
    cause: e,
  });
}

/** Reads an open file to its end; errors name `path`. */
export function readAllFd(fd: number, path: string): Uint8Array {
  const size = sys.fstat(fd, path).size;
  let buf = new Uint8Array(Math.max(size, 4096));
  let off = 0;
  for (;;) {
    if (off === buf.length) {
      const bigger = new Uint8Array(buf.length * 2);
      bigger.set(buf);
      buf = bigger;
    }
    const n = sys.read(fd, buf.subarray(off, Math.min(buf.length, off + (1 << 24))), path);
    if (n === 0) break;
    off += n;
  }
  return buf.subarray(0, off);
}

/**
 * Where the link `linkRel` -> `target` leads, as a path relative to the repository ("" for the
 * repository directory itself), or undefined when it leads out (an absolute target, or `..`
 * above the repository).
 */
export function resolveInside(linkRel: string, target: string): string | undefined {
  if (target === "" || target.startsWith("/")) return undefined;
  const parts = linkRel.split("/");
  parts.pop();
  for (const p of target.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else parts.push(p);
  }
  return parts.join("/");
}
