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
  type MkfsOptions,
  objectPathname,
  overlayMetacopy,
} from "./lib/erofs/writer.ts";
export {
  DEFAULT_EROFS_VERSION,
  EROFS_VERSIONS,
  type ErofsVersion,
  parseErofsVersion,
} from "./lib/erofs/format.ts";
export { checkErofsLimits, type ErofsLimit, ErofsLimitError } from "./lib/erofs/limits.ts";
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
  escapeXattrField,
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
export type { BytePath, FileStat } from "./lib/sys/libc.ts";
export {
  type ErofsFormats,
  type ErofsFormatVersion,
  type FsckProblem,
  type FsckReport,
  type GcReport,
  type InitOptions,
  type LocalObjectSource,
  LocalStoreContext,
  ObjectId,
  ObjectIdError,
  type ObjectStoreMethod,
  type OpenOptions,
  type RepairReport,
  REPO_FORMAT_VERSION,
  type RepoAlgorithm,
  type RepoMeta,
  Repository,
  RepositoryError,
  type RepositoryView,
  type StreamDamage,
  type StreamRefs,
} from "./lib/repository/mod.ts";
export { ObjectStore, ObjectWrites } from "./lib/repository/objects.ts";
export { type StreamEntry, StreamStore } from "./lib/repository/streams.ts";
export { ImageStore } from "./lib/repository/images.ts";
export {
  computeImageId,
  erofsImage,
  TreeBuildError,
  treeFromPath,
  type TreeFromPathOptions,
} from "./lib/build.ts";
export {
  canonicalizeRun,
  CONTAINER_XATTR_ALLOWLIST,
  copyRootMetadataFromUsr,
  DEFAULT_XATTR_FILTERING,
  filterXattrs,
  keepsXattr,
  type OciTransformOptions,
  parseXattrFiltering,
  transformForOci,
  XATTR_FILTERINGS,
  type XattrFiltering,
} from "./lib/tree_transform.ts";
export {
  BootTransformError,
  emptyToplevelDirs,
  transformForBoot,
  transformForBootFromDir,
} from "./lib/boot/transform.ts";
export { composefsKarg, type KargOptions } from "./lib/boot/karg.ts";
export {
  applyOciEntry,
  finishOciTree,
  newOciFileSystem,
  type OciEntry,
  type OciEntryItem,
  ociEntryStat,
  OciTreeError,
  type OciTreeOptions,
} from "./lib/oci/layer_tree.ts";
export {
  diskPolicyFiles,
  FileContexts,
  loadImagePolicy,
  loadPolicy,
  type PolicyFiles,
  type ReadExternal,
  relabelFromPolicy,
  relabelTree,
  type Rule,
  SelinuxPolicyError,
  stripSelinuxLabels,
  treePolicyFiles,
} from "./lib/boot/selinux.ts";
export {
  type BlsEntry,
  type BootEntry,
  BootEntryError,
  bootEntryToJson,
  type BootFile,
  findBootEntries,
  type UkiEntry,
} from "./lib/boot/entries.ts";
export {
  type ContainersStorageReference,
  type DockerReference,
  type ImageReference,
  ImageRefError,
  type OciArchiveReference,
  type OciLayoutReference,
  type OtherTransportReference,
  parseImageReference,
} from "./lib/oci/reference.ts";
export {
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type LayerDescriptor,
  OciLayout,
  OciLayoutError,
  parsePlatform,
  type Platform,
  type ResolvedImage,
  type ResolveOptions,
} from "./lib/oci/layout.ts";
export { type Credentials } from "./lib/oci/auth.ts";
export {
  type ImageSource,
  type LocalFetchMode,
  openImageSource,
  type SourceOptions,
} from "./lib/oci/source.ts";
export {
  type CheckedSource,
  enforceSignaturePolicy,
  type SignaturePolicyOptions,
  SignatureRejected,
} from "./lib/signature/check.ts";
export {
  loadPolicy as loadSignaturePolicy,
  parsePolicy as parseSignaturePolicy,
  PolicyError,
} from "./lib/signature/policy.ts";
export {
  evaluatePolicy,
  formatDecision,
  type SignatureVerifier,
} from "./lib/signature/evaluate.ts";
export type {
  ImageSignature,
  ImageToCheck,
  PolicyDecision,
  PolicyRequirement,
  RequirementResult,
  SignatureClaims,
  SignaturePolicy,
  SignedIdentity,
} from "./lib/signature/types.ts";
export {
  type LayerEvent,
  type PulledLayer,
  pullImage,
  type PullOptions,
  type PullResult,
} from "./lib/oci/pull.ts";
export {
  importLayer,
  type ImportLayerOptions,
  type ImportLayerResult,
  LayerDigestError,
  type LocalBodies,
  type LocalFetch,
  type LocalFetchStats,
} from "./lib/oci/import.ts";
export {
  bootcTag,
  bootImageRefKey,
  type ConfigImages,
  decodeTag,
  encodeTag,
  imageRefKey,
  listTags,
  OciImage,
  openConfig,
  openImage,
  openImageOrConfig,
  type StoredConfig,
  TagError,
  tagImage,
  tagsOf,
  untagImage,
  type XattrMode,
} from "./lib/oci/store.ts";
export { createFilesystem, layerEntry, OciImageError, type ParsedLayers } from "./lib/oci/image.ts";
export {
  commitOciImages,
  type CommitOciImagesOptions,
  type CommittedImages,
  ociFilesystem,
  writeImages,
} from "./lib/oci/commit.ts";
export { needsUpgrade, type UpgradeReport, upgradeRepository } from "./lib/oci/upgrade.ts";
export {
  formatOciProblem,
  fsckOci,
  type OciFsckProblem,
  type OciFsckReport,
} from "./lib/oci/fsck.ts";
export {
  type FetchedManifest,
  RegistryClient,
  type RegistryClientOptions,
  RegistryError,
  type RegistryErrorKind,
  type RegistryImage,
  type RegistryResolveOptions,
} from "./lib/oci/registry.ts";
export {
  readTar,
  type TarEntry,
  type TarEntryType,
  TarError,
  type TarInput,
  type TarMetadata,
  TarReader,
} from "./lib/oci/tar.ts";
export { MountError, mountImage } from "./lib/mount.ts";
export { seedPull, type SeedPullOptions, type SeedPullResult } from "./lib/pipeline/seed.ts";
export {
  DEFAULT_HOOK_TIMEOUT_MS,
  HookFailure,
  PipelineInterrupted,
  type PipelineOptions,
  type PipelineResult,
  runPullPipeline,
} from "./lib/pipeline/run.ts";
export {
  type HookInfo,
  HookLoadError,
  type HookSources,
  type LoadedHook,
  loadHook,
  loadHooks,
  type LoadOptions,
} from "./lib/pipeline/hooks.ts";
export {
  type CallFailureKind,
  type CallOptions,
  type CallResult,
  HookCallError,
  HookProcess,
} from "./lib/pipeline/hook_process.ts";
export type { CallContext, FailureKind, RepositoryInfo } from "./lib/pipeline/hook_protocol.ts";
export type {
  Hook,
  HookCommand,
  HookCommandResult,
  HookContext,
  HookDocument,
  HookFunction,
  HookLayer,
  HookLogger,
  HookPhase,
  HookRepository,
  HookShell,
  HookShellArg,
  HookSignatureDecision,
  HookTree,
  StageName,
} from "./hooks/types.ts";
export {
  createLogger,
  Field,
  type Fields,
  type FieldValue,
  type LogEvent,
  Logger,
  type LoggerOptions,
  type LogLevel,
  type LogSink,
  MESSAGE_IDS,
  type Progress,
} from "./lib/log.ts";
export {
  type CfsConfig,
  ConfigError,
  type FetchConfig,
  loadConfig,
  parseConfig,
  type RegistryConfig,
} from "./lib/config.ts";
export {
  CfsError,
  type CfsErrorOptions,
  clipMiddle,
  errorCode,
  errorExitCode,
  MAX_ERROR_LINE,
} from "./lib/errors.ts";
export { type TransferOptions } from "./lib/oci/transfer.ts";
export { type LinkResolution, RepoDir, type RepoDirEntry } from "./lib/repository/dir.ts";
