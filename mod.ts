/**
 * cfs as a library: the formats and the repository, for programs that build composefs
 * images without the CLI. Re-exports only.
 *
 * @module
 */
export * from "./lib/tree.ts";
export {
  type ExternalFileHandler,
  readTree,
  type ReadTreeOptions,
  TreeReadError,
} from "./lib/treefs.ts";
export {
  digestAlgorithmId,
  mkfsErofs,
  objectPathname,
  overlayMetacopy,
} from "./lib/erofs/writer.ts";
export {
  collectObjects,
  ErofsError,
  ErofsReader,
  type RawInode,
  readErofs,
} from "./lib/erofs/reader.ts";
export {
  DumpfileError,
  dumpfileLine,
  dumpfileLines,
  escapeField,
  parseDumpfile,
  unescapeField,
  writeDumpfile,
} from "./lib/dumpfile.ts";
export {
  algorithmId,
  digestSize,
  fromHex,
  fsverityDigest,
  FsVerityHasher,
  toHex,
  type VerityAlgorithm,
} from "./lib/fsverity/digest.ts";
export {
  type DigestFileOptions,
  fsverityDigestFile,
  fsverityDigestFileSync,
} from "./lib/fsverity/file.ts";
export { enableVerity, measureVerity, VerityError } from "./lib/fsverity/ioctl.ts";
export {
  type FsckReport,
  type GcReport,
  type OpenOptions,
  REPO_FORMAT_VERSION,
  type RepoAlgorithm,
  type RepoMeta,
  Repository,
  RepositoryError,
} from "./lib/repository.ts";
export { computeImageId, treeFromPath, type TreeFromPathOptions } from "./lib/build.ts";
export { BootTransformError, transformForBoot } from "./lib/boot/transform.ts";
export {
  FileContexts,
  loadImagePolicy,
  type ReadExternal,
  relabelTree,
  type Rule,
  SelinuxPolicyError,
} from "./lib/boot/selinux.ts";
