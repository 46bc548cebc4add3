/**
 * The system calls that store an object, run on other threads: `openat(O_TMPFILE)`, `write`
 * and `linkat` as FFI symbols marked `nonblocking`, which Deno runs on its blocking-task
 * threads and answers with a promise. The calling thread goes on parsing and hashing while the
 * kernel creates, fills and links files.
 *
 * Why: creating a file is the kernel's slowest step of a pull. Measured on this host (ext4,
 * 5000 files of 40 KB, load from other work): one create-write-link after the other took
 * 17-24 s of wall time for 5-6 s of system time (the rest is waiting on the journal and the
 * disk), four at a time 6.6-8 s. composefs-rs overlaps these calls the same way (one blocking
 * task per object, as many as there are cores).
 *
 * errno is per thread, and the call ran on another one: when a call fails, it is made once
 * more here, synchronously, and that call's errno is reported (or its success used). The
 * calls repeated are ones whose failure leaves nothing behind (an open or a link that did not
 * happen, a write that wrote nothing), so repeating them is safe.
 *
 * Memory handed to a call (the data of a write) must stay unchanged and referenced until its
 * promise settles; the callers keep it.
 *
 * @module
 */
import { platform } from "./arch.ts";
import { cString, Errno, SysError } from "./libc.ts";

const AT_FDCWD = -100;
const AT_SYMLINK_FOLLOW = 0x400;
const AT_SYMLINK_NOFOLLOW = 0x100;
/** `__O_TMPFILE` of `asm-generic/fcntl.h` (the same on x86-64 and arm64); O_TMPFILE adds O_DIRECTORY. */
const O_TMPFILE_BIT = 0o20000000;
const STATX_TYPE = 0x1;

const blocking = {
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32", nonblocking: true },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
  linkat: {
    parameters: ["i32", "buffer", "i32", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const;

const direct = {
  __errno_location: { parameters: [], result: "pointer" },
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  linkat: { parameters: ["i32", "buffer", "i32", "buffer", "i32"], result: "i32" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
} as const;

type Libs = {
  nb: Deno.DynamicLibrary<typeof blocking>["symbols"];
  now: Deno.DynamicLibrary<typeof direct>["symbols"];
};
let libs: Libs | undefined;

/** Opens libc on first use (after the platform check), so that importing costs nothing. */
function libc(): Libs {
  if (libs === undefined) {
    platform();
    libs = {
      nb: Deno.dlopen("libc.so.6", blocking).symbols,
      now: Deno.dlopen("libc.so.6", direct).symbols,
    };
  }
  return libs;
}

function errno(): number {
  return new Deno.UnsafePointerView(libc().now.__errno_location()!).getInt32(0);
}

const DOT = cString(".");
const statxBuf = new Uint8Array(256);

function tmpfileFlags(): number {
  const f = platform().open;
  return O_TMPFILE_BIT | f.O_DIRECTORY | f.O_WRONLY | f.O_CLOEXEC;
}

/**
 * A new unnamed regular file (O_TMPFILE) in the directory `dirfd`, open for writing, made on
 * another thread: it has no name until {@link linkTmpfile} gives it one, so a crash leaves
 * nothing. `path` names the directory in errors. Fails with a {@link SysError} (EOPNOTSUPP or
 * EISDIR where the file system has no O_TMPFILE).
 */
export async function openTmpfile(dirfd: number, path: string, mode = 0o644): Promise<number> {
  const fd = await libc().nb.openat(dirfd, DOT, tmpfileFlags(), mode);
  if (fd >= 0) return fd;
  const again = libc().now.openat(dirfd, DOT, tmpfileFlags(), mode);
  if (again >= 0) return again;
  throw new SysError("openat", errno(), path);
}

/** Writes all of `data` to `fd` on another thread (write(2) until done); errors name `path`. */
export async function writeAll(fd: number, data: Uint8Array, path: string): Promise<void> {
  let buf: Uint8Array<ArrayBuffer> = data.buffer instanceof ArrayBuffer
    ? data as Uint8Array<ArrayBuffer>
    : new Uint8Array(data);
  const { nb, now } = libc();
  while (buf.length > 0) {
    let n = Number(await nb.write(fd, buf, BigInt(buf.length)));
    if (n < 0) {
      n = Number(now.write(fd, buf, BigInt(buf.length)));
      if (n < 0) throw new SysError("write", errno(), path);
    }
    buf = buf.subarray(n);
  }
}

/**
 * Gives the unnamed file `fd` (from {@link openTmpfile}) the name `name` in the directory
 * `dirfd`, on another thread (linkat of `/proc/self/fd/N`, as composefs-rs does; the file
 * must not have been opened with O_EXCL). False when `name` exists already (the file stays
 * unnamed and goes away when closed). `path` names the link in errors.
 */
export async function linkTmpfile(
  fd: number,
  dirfd: number,
  name: string,
  path: string,
): Promise<boolean> {
  const from = cString(`/proc/self/fd/${fd}`);
  const to = cString(name);
  if (await libc().nb.linkat(AT_FDCWD, from, dirfd, to, AT_SYMLINK_FOLLOW) === 0) return true;
  if (libc().now.linkat(AT_FDCWD, from, dirfd, to, AT_SYMLINK_FOLLOW) === 0) return true;
  const e = errno();
  if (e === Errno.EEXIST) return false;
  throw new SysError("linkat", e, path);
}

/**
 * A read-only descriptor of the file open as `fd` (an unnamed one too), on this thread: open(2)
 * of `/proc/self/fd/N`. fs-verity can be enabled only on a file no one has open for writing.
 */
export function reopenReadOnly(fd: number, path: string): number {
  const f = platform().open;
  const ro = libc().now.openat(
    AT_FDCWD,
    cString(`/proc/self/fd/${fd}`),
    f.O_RDONLY | f.O_CLOEXEC,
    0,
  );
  if (ro >= 0) return ro;
  throw new SysError("open", errno(), path);
}

/**
 * Whether `name` exists in the directory `dirfd` (not following a link), on this thread. A
 * missing name costs no exception (this runs once per object); other errors are thrown.
 */
export function existsAt(dirfd: number, name: string, path: string): boolean {
  if (libc().now.statx(dirfd, cString(name), AT_SYMLINK_NOFOLLOW, STATX_TYPE, statxBuf) === 0) {
    return true;
  }
  const e = errno();
  if (e === Errno.ENOENT) return false;
  throw new SysError("statx", e, path);
}
