/**
 * The kernel side of fs-verity: FS_IOC_ENABLE_VERITY seals a file (it becomes read-only
 * and every read is checked against its Merkle tree) and FS_IOC_MEASURE_VERITY returns
 * the digest the kernel computed, which equals `fsverityDigest` of the content for the
 * parameters cfs uses (4 KiB blocks, no salt).
 *
 * The structs, as in <linux/fsverity.h>:
 *
 * ```
 * struct fsverity_enable_arg {   // 128 bytes
 *   u32 version;                 //   0  = 1
 *   u32 hash_algorithm;          //   4  FS_VERITY_HASH_ALG_SHA256 = 1, _SHA512 = 2
 *   u32 block_size;              //   8  = 4096
 *   u32 salt_size;               //  12  = 0
 *   u64 salt_ptr;                //  16  = 0
 *   u32 sig_size;                //  24  = 0
 *   u32 __reserved1;             //  28
 *   u64 sig_ptr;                 //  32  = 0
 *   u64 __reserved2[11];         //  40
 * };
 * struct fsverity_digest {
 *   u16 digest_algorithm;        //   0  out
 *   u16 digest_size;             //   2  in: capacity of digest[], out: its length
 *   u8  digest[];                //   4
 * };
 * ```
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";
import { algorithmId, BLOCK_SIZE, digestSize, type VerityAlgorithm } from "./digest.ts";
import { Errno, errnoName, ioctl, SysError } from "../sys/libc.ts";
import { type ArchConstants, iow, iowr, platform } from "../sys/arch.ts";

const ENABLE_ARG_SIZE = 128;
/** `sizeof(struct fsverity_digest)`: the header only, the digest is a flexible array. */
const DIGEST_HEADER_SIZE = 4;

/**
 * The request numbers of the fs-verity ioctls for an architecture's `_IOC` encoding, as
 * <linux/fsverity.h> defines them: `FS_IOC_ENABLE_VERITY` is `_IOW('f', 133, struct
 * fsverity_enable_arg)`, `FS_IOC_MEASURE_VERITY` is `_IOWR('f', 134, struct fsverity_digest)`
 * (0x40806685 and 0xc0046686 with the generic encoding of x86-64 and arm64).
 */
export function verityIoctls(c: ArchConstants): { enable: bigint; measure: bigint } {
  const f = "f".charCodeAt(0);
  return { enable: iow(c, f, 133, ENABLE_ARG_SIZE), measure: iowr(c, f, 134, DIGEST_HEADER_SIZE) };
}

const MAX_DIGEST_SIZE = 64;
const ETXTBSY = 26;
const EROFS = 30;
const ENOPKG = 65;

/**
 * fs-verity could not be enabled or measured. `unsupported` is true when the file
 * system (or the kernel) has no fs-verity at all, which a caller may turn into a fallback.
 */
export class VerityError extends CfsError {
  /**
   * Creates the error; the message reads "<path>: <message>".
   * @param path the file concerned, which the message starts with.
   * @param message what failed.
   * @param unsupported true when fs-verity is unavailable there, not merely failing.
   * @param options `cause`: the underlying system error; `code` (default `verity-unsupported`
   *   when `unsupported`, else `verity-failed`).
   */
  constructor(
    readonly path: string,
    message: string,
    readonly unsupported = false,
    options?: CfsErrorOptions,
  ) {
    super(
      `${path}: ${message}`,
      withCode(options, unsupported ? "verity-unsupported" : "verity-failed"),
    );
    this.name = "VerityError";
  }
}

/** What a user should read for an errno from these ioctls. */
function verityError(path: string, op: string, e: unknown): Error {
  if (!(e instanceof SysError)) return e as Error;
  switch (e.errno) {
    case Errno.ENOTTY:
    case Errno.EOPNOTSUPP:
      return new VerityError(
        path,
        "the file system does not support fs-verity; use an insecure repository (cfs init --insecure)",
        true,
        { cause: e },
      );
    case ETXTBSY:
      return new VerityError(path, `cannot ${op}: the file is open for writing`, false, {
        cause: e,
      });
    case EROFS:
      return new VerityError(path, `cannot ${op}: read-only file system`, false, { cause: e });
    case ENOPKG:
      return new VerityError(path, `cannot ${op}: the kernel lacks the hash algorithm`, false, {
        cause: e,
      });
    default:
      return new VerityError(path, `cannot ${op}: ${errnoName(e.errno)}`, false, { cause: e });
  }
}

/**
 * Enables fs-verity on the file open (read-only, with no writers) as `fd`, with `alg`,
 * 4 KiB blocks and no salt or signature. A file that has verity already is left alone
 * (EEXIST is not an error): measure it to learn which digest it has. `path` is only for
 * messages. Throws {@link VerityError}.
 */
export function enableVerity(fd: number, alg: VerityAlgorithm, path: string): void {
  const arg = new Uint8Array(ENABLE_ARG_SIZE);
  const v = new DataView(arg.buffer);
  v.setUint32(0, 1, true);
  v.setUint32(4, algorithmId(alg), true);
  v.setUint32(8, BLOCK_SIZE, true);
  try {
    ioctl(fd, verityIoctls(platform()).enable, arg, path);
  } catch (e) {
    if (e instanceof SysError && e.errno === Errno.EEXIST) return;
    throw verityError(path, "enable fs-verity", e);
  }
}

/**
 * The fs-verity digest the kernel holds for the file open as `fd`, or null when verity
 * is not enabled on it (ENODATA). A file sealed with another hash algorithm than `alg`
 * is an error, since its digest could never match a name computed with `alg`.
 * Throws {@link VerityError}; `path` is only for messages.
 */
export function measureVerity(fd: number, alg: VerityAlgorithm, path: string): Uint8Array | null {
  const arg = new Uint8Array(4 + MAX_DIGEST_SIZE);
  const v = new DataView(arg.buffer);
  v.setUint16(2, MAX_DIGEST_SIZE, true);
  try {
    ioctl(fd, verityIoctls(platform()).measure, arg, path);
  } catch (e) {
    if (e instanceof SysError && e.errno === Errno.ENODATA) return null;
    throw verityError(path, "measure fs-verity", e);
  }
  const algorithm = v.getUint16(0, true);
  const size = v.getUint16(2, true);
  if (algorithm !== algorithmId(alg) || size !== digestSize(alg)) {
    throw new VerityError(path, `fs-verity uses hash algorithm ${algorithm}, not ${alg}`);
  }
  return arg.slice(4, 4 + size);
}
