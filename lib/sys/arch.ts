/**
 * The platform facts cfs's system calls depend on, per CPU architecture, in one place: open(2)
 * flags, the ioctl number encoding, and the layouts of the structs libc hands back. Linux keeps
 * most of them in `asm-generic` headers shared by x86-64 and arm64, but not all: arm64 moves
 * `O_DIRECTORY` and `O_NOFOLLOW` (its `O_NOFOLLOW` value is x86-64's `O_LARGEFILE`), so a value
 * copied from one architecture can silently mean something else on the other. Only the
 * architectures below are known; anything else is refused before a system call is made.
 *
 * Where each value comes from (Linux 6.1 UAPI headers and glibc 2.36, which Debian 12 ships):
 *
 * - open flags: x86-64 uses `include/uapi/asm-generic/fcntl.h` as it is
 *   (`arch/x86/include/uapi/asm/fcntl.h` only includes it); arm64 overrides four of them in
 *   `arch/arm64/include/uapi/asm/fcntl.h` (`O_DIRECTORY 040000`, `O_NOFOLLOW 0100000`,
 *   `O_DIRECT 0200000`, `O_LARGEFILE 0400000`) before including the generic file. glibc's
 *   `sysdeps/unix/sysv/linux/aarch64/bits/fcntl.h` agrees.
 * - ioctl numbers: both use `include/uapi/asm-generic/ioctl.h` (8 bits number, 8 bits type,
 *   14 bits size, 2 bits direction; `_IOC_WRITE` 1, `_IOC_READ` 2). Architectures with other
 *   encodings (powerpc, mips, sparc: 13-bit sizes, 3 direction bits) are not in the table.
 * - `AT_*` flags (`include/uapi/linux/fcntl.h`) and errno values
 *   (`include/uapi/asm-generic/errno-base.h`, `errno.h`) are the same on both.
 * - `struct statx` (`include/uapi/linux/stat.h`) has fixed-width fields: one layout everywhere.
 * - glibc's `struct dirent` (`sysdeps/unix/sysv/linux/bits/dirent.h`) on LP64: `d_ino` u64 at 0,
 *   `d_off` i64 at 8, `d_reclen` u16 at 16, `d_type` u8 at 18, `d_name` at 19, on both.
 * - `struct timespec` on LP64: two 64-bit fields, on both.
 *
 * @module
 */
import { CfsError } from "../errors.ts";

/** The CPU architectures cfs knows the constants of, as `Deno.build.arch` names them. */
export type KnownArch = "x86_64" | "aarch64";

/** Per-architecture constants; see the module documentation for their sources. */
export interface ArchConstants {
  /** Which architecture these are for. */
  arch: KnownArch;
  /** open(2) flags, as the kernel and glibc define them there. */
  open: {
    O_RDONLY: number;
    O_WRONLY: number;
    O_RDWR: number;
    O_CREAT: number;
    O_EXCL: number;
    O_TRUNC: number;
    O_DIRECTORY: number;
    O_NOFOLLOW: number;
    O_CLOEXEC: number;
    /** The kernel's value (glibc defines O_LARGEFILE as 0 on LP64): listed to show the trap. */
    O_LARGEFILE_KERNEL: number;
  };
  /** The `_IOC()` encoding: field widths and direction values. */
  ioc: {
    nrBits: number;
    typeBits: number;
    sizeBits: number;
    none: number;
    write: number;
    read: number;
  };
  /** glibc's `struct dirent`: where the record length, the type and the name are. */
  dirent: { reclenOffset: number; typeOffset: number; nameOffset: number };
}

const GENERIC_IOC = { nrBits: 8, typeBits: 8, sizeBits: 14, none: 0, write: 1, read: 2 };
const LP64_DIRENT = { reclenOffset: 16, typeOffset: 18, nameOffset: 19 };

/** The constants of every known architecture. */
export const ARCH_TABLE: Readonly<Record<KnownArch, ArchConstants>> = {
  x86_64: {
    arch: "x86_64",
    open: {
      O_RDONLY: 0,
      O_WRONLY: 0o1,
      O_RDWR: 0o2,
      O_CREAT: 0o100,
      O_EXCL: 0o200,
      O_TRUNC: 0o1000,
      O_DIRECTORY: 0o200000,
      O_NOFOLLOW: 0o400000,
      O_CLOEXEC: 0o2000000,
      O_LARGEFILE_KERNEL: 0o100000,
    },
    ioc: GENERIC_IOC,
    dirent: LP64_DIRENT,
  },
  aarch64: {
    arch: "aarch64",
    open: {
      O_RDONLY: 0,
      O_WRONLY: 0o1,
      O_RDWR: 0o2,
      O_CREAT: 0o100,
      O_EXCL: 0o200,
      O_TRUNC: 0o1000,
      O_DIRECTORY: 0o40000,
      O_NOFOLLOW: 0o100000,
      O_CLOEXEC: 0o2000000,
      O_LARGEFILE_KERNEL: 0o400000,
    },
    ioc: GENERIC_IOC,
    dirent: LP64_DIRENT,
  },
};

/** This platform is not one whose constants cfs knows. */
export class UnsupportedPlatformError extends CfsError {
  /** Creates the error naming the platform; its code is `unsupported-platform`. */
  constructor(os: string, arch: string) {
    super(
      `cfs runs on Linux on ${Object.keys(ARCH_TABLE).join(" or ")}; this is ${os} on ${arch}, ` +
        "whose system call constants (open flags, ioctl numbers, struct layouts) cfs does not know",
      { code: "unsupported-platform" },
    );
    this.name = "UnsupportedPlatformError";
  }
}

/** The constants of `arch` on `os`; throws {@link UnsupportedPlatformError} for any other. */
export function archConstants(os: string, arch: string): ArchConstants {
  if (os !== "linux" || !Object.hasOwn(ARCH_TABLE, arch)) {
    throw new UnsupportedPlatformError(os, arch);
  }
  return ARCH_TABLE[arch as KnownArch];
}

let current: ArchConstants | undefined;

/** The constants of the platform cfs runs on (checked on first use, then cached). */
export function platform(): ArchConstants {
  return current ??= archConstants(Deno.build.os, Deno.build.arch);
}

/**
 * `_IOC(dir, type, nr, size)` of `<asm-generic/ioctl.h>` with an architecture's field widths:
 * the request number of an ioctl. `dir` is a combination of the table's `none`, `read`, `write`.
 */
export function ioc(c: ArchConstants, dir: number, type: number, nr: number, size: number): bigint {
  const { nrBits, typeBits, sizeBits } = c.ioc;
  if (size >= 1 << sizeBits) throw new RangeError(`ioctl argument size ${size} does not fit`);
  const typeShift = nrBits;
  const sizeShift = typeShift + typeBits;
  const dirShift = sizeShift + sizeBits;
  return (BigInt(dir) << BigInt(dirShift)) | (BigInt(size) << BigInt(sizeShift)) |
    (BigInt(type) << BigInt(typeShift)) | BigInt(nr);
}

/** `_IOW(type, nr, size)`: the caller writes an argument of `size` bytes. */
export function iow(c: ArchConstants, type: number, nr: number, size: number): bigint {
  return ioc(c, c.ioc.write, type, nr, size);
}

/** `_IOWR(type, nr, size)`: an argument of `size` bytes goes in and comes back. */
export function iowr(c: ArchConstants, type: number, nr: number, size: number): bigint {
  return ioc(c, c.ioc.write | c.ioc.read, type, nr, size);
}
