/**
 * From a directory on disk to a composefs image: read the tree (storing or only hashing the
 * large files), apply the boot transform when asked, write the EROFS bytes. This is what
 * `compute-id`, `create-dumpfile` and `create-image` share.
 *
 * @module
 */
import { type FileSystem } from "./tree.ts";
import { readTree } from "./treefs.ts";
import { transformForBoot } from "./boot/transform.ts";
import { mkfsErofs } from "./erofs/writer.ts";
import { fsverityDigest, toHex, type VerityAlgorithm } from "./fsverity/digest.ts";
import { fsverityDigestFileSync } from "./fsverity/file.ts";
import type { Repository } from "./repository.ts";
import * as sys from "./sys/libc.ts";

/** Options of {@link treeFromPath}. */
export interface TreeFromPathOptions {
  /** Digest algorithm for external files; taken from `repo` when one is given. */
  algorithm?: VerityAlgorithm;
  /** Store large files here; without a repository they are only hashed. */
  repo?: Repository;
  /** Apply the boot transform (cfsctl --bootable). */
  bootable?: boolean;
  /** Use the root directory's own metadata (cfsctl --stat-root). */
  statRoot?: boolean;
  /** Called after each inode is read (progress display). */
  onInode?: () => void;
}

/** Reads `path` into a tree ready for {@link mkfsErofs} or the dumpfile writer. */
export function treeFromPath(path: string, options: TreeFromPathOptions = {}): FileSystem {
  const repo = options.repo;
  const algorithm = repo?.algorithm ?? options.algorithm ?? "sha256";
  const sources = new Map<string, Uint8Array>();
  const fs = readTree(path, {
    statRoot: options.statRoot,
    onInode: options.onInode,
    external: (p, size) => {
      const digest = repo ? repo.storeFile(p, size) : fsverityDigestFileSync(p, algorithm);
      sources.set(toHex(digest), p);
      return digest;
    },
  });
  if (options.bootable) {
    transformForBoot(fs, (c) => {
      const src = sources.get(toHex(c.digest));
      if (src) return sys.readFileBytes(src, c.size);
      if (repo) return repo.readObject(c.digest);
      throw new Error(`cannot read object ${toHex(c.digest)}`);
    });
  }
  return fs;
}

/** The image ID: the fs-verity digest of the EROFS image of `fs`. */
export function computeImageId(fs: FileSystem, algorithm: VerityAlgorithm): Uint8Array {
  return fsverityDigest(mkfsErofs(fs), algorithm);
}
