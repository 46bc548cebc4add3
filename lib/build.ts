/**
 * From a directory on disk to a composefs image, as composefs-rs 0.9.4's `compute-id`,
 * `create-dumpfile`, `compute-karg` and `create-image` do it:
 *
 * 1. read the tree (large files stored in the repository, or only hashed);
 * 2. unless told not to, transform it as a container root (lib/tree_transform.ts: the root
 *    takes `/usr`'s metadata, `/run` is emptied, xattrs are filtered);
 * 3. for `--bootable`, the boot transform (lib/boot/transform.ts), with the SELinux policy
 *    from the repository copy when the files were stored, else from the directory on disk;
 * 4. write the EROFS image in the requested format version.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "./errors.ts";
import { type FileSystem, TreeError } from "./tree.ts";
import { readTree } from "./treefs.ts";
import { transformForOci, type XattrFiltering } from "./tree_transform.ts";
import { transformForBoot, transformForBootFromDir } from "./boot/transform.ts";
import { findBootEntries } from "./boot/entries.ts";
import { mkfsErofs } from "./erofs/writer.ts";
import { DEFAULT_EROFS_VERSION, type ErofsVersion } from "./erofs/format.ts";
import { fsverityDigest, type VerityAlgorithm } from "./fsverity/digest.ts";
import { FileDigestPool } from "./fsverity/file_pool.ts";
import type { Repository } from "./repository.ts";

/** Options of {@link treeFromPath}. */
export interface TreeFromPathOptions {
  /** Digest algorithm for external files (default sha256); `repo`'s when one is given. */
  algorithm?: VerityAlgorithm;
  /** Store large files here; without a repository they are only hashed. */
  repo?: Repository;
  /** Apply the boot transform (cfsctl --bootable). */
  bootable?: boolean;
  /**
   * Transform the tree as a container root: the root takes `/usr`'s metadata, `/run` is
   * emptied, xattrs are filtered (default true; cfsctl `--no-propagate-usr-to-root` is false).
   */
  propagateUsrToRoot?: boolean;
  /** Which xattrs the container-root transform keeps (cfsctl `--xattrs`). */
  xattrs?: XattrFiltering;
  /**
   * cfsctl 0.3.0's `--stat-root` (take the root directory's metadata as it is): in 0.9.4's
   * terms, `propagateUsrToRoot: false`. Kept for old callers.
   */
  statRoot?: boolean;
  /** Called after each inode is read (progress display). */
  onInode?: () => void;
}

/** A tree could not be made into an image: names the directory it came from and why. */
export class TreeBuildError extends CfsError {
  /** Creates the error; `message` names the directory. */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, withCode(options, "tree-build-failed"));
    this.name = "TreeBuildError";
  }
}

/** The transforms of {@link finishTree}: what cfsctl's flags ask for. */
export type TreeTransformOptions = Pick<
  TreeFromPathOptions,
  "repo" | "bootable" | "propagateUsrToRoot" | "xattrs" | "statRoot"
>;

/**
 * Reads `path` into a tree ready for the EROFS writer or the dumpfile writer, transformed as
 * the options ask (module doc).
 */
export function treeFromPath(path: string, options: TreeFromPathOptions = {}): FileSystem {
  const repo = options.repo;
  const algorithm = repo?.algorithm ?? options.algorithm ?? "sha256";
  // Without a repository, files are only hashed: on a second core while this thread walks
  // (lib/fsverity/file_pool.ts); every digest is in the tree when the pool has finished.
  const pool = repo ? undefined : new FileDigestPool(algorithm);
  try {
    const fs = readTree(path, {
      onInode: options.onInode,
      external: (p, size) => repo ? repo.storeFile(p, size).bytes : pool!.digest(p, size),
    });
    pool?.finish();
    finishTree(fs, path, options);
    return fs;
  } finally {
    pool?.close();
  }
}

/**
 * Steps 2 and 3 of the module doc on `fs`, read from `path` (in place): the container-root
 * transform unless `propagateUsrToRoot` is false, then the boot transform for `bootable`
 * (policy and boot entries from `repo` when the files were stored there, else from `path`).
 */
export function finishTree(fs: FileSystem, path: string, options: TreeTransformOptions): void {
  const repo = options.repo;
  const propagate = (options.propagateUsrToRoot ?? true) && !options.statRoot;
  if (propagate) {
    try {
      transformForOci(fs, { xattrs: options.xattrs });
    } catch (e) {
      if (!(e instanceof TreeError)) throw e;
      const hint = /"usr" does not exist/.test(e.message)
        ? " (--no-propagate-usr-to-root keeps the root's own metadata)"
        : "";
      throw new TreeBuildError(`${path}: ${e.message}${hint}`, { cause: e });
    }
  }
  if (options.bootable) {
    if (repo) {
      const read = (c: { digest: Uint8Array }) => repo.readObject(c.digest);
      // As cfsctl create-image: the boot entries are looked for (and refused when
      // malformed) before /boot is emptied.
      findBootEntries(fs, read);
      transformForBoot(fs, read);
    } else {
      transformForBootFromDir(fs, path);
    }
  }
}

/** The EROFS image of `fs` in format `version` (default: 0.9.4's default, V1). */
export function erofsImage(
  fs: FileSystem,
  version: ErofsVersion = DEFAULT_EROFS_VERSION,
): Uint8Array {
  return mkfsErofs(fs, undefined, { version });
}

/** The image ID: the fs-verity digest of the EROFS image of `fs` in format `version`. */
export function computeImageId(
  fs: FileSystem,
  algorithm: VerityAlgorithm,
  version: ErofsVersion = DEFAULT_EROFS_VERSION,
): Uint8Array {
  return fsverityDigest(erofsImage(fs, version), algorithm);
}
