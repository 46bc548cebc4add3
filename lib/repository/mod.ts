/**
 * The composefs repository (composefs-rs 0.9.4's layout and semantics), one concern per
 * module: `meta.ts` (meta.json), `object_id.ts` (the id type), `dir.ts` (every path below the
 * repository, never through a link), `objects.ts`, `streams.ts`, `images.ts`, `refs.ts`,
 * `fsck.ts`, `repair.ts`, `gc.ts`, and the {@link Repository} facade.
 *
 * @module
 */
export { Repository } from "./repository.ts";
export type { InitOptions, OpenOptions, StreamDamage } from "./repository.ts";
export type { RepairReport } from "./repair.ts";
export { RepositoryError } from "./errors.ts";
export { ObjectId, ObjectIdError } from "./object_id.ts";
export {
  type ErofsFormats,
  erofsFormatsOf,
  type ErofsFormatVersion,
  FEATURE_V1_EROFS,
  META_FILE,
  REPO_ALGORITHMS,
  REPO_FORMAT_VERSION,
  type RepoAlgorithm,
  repoAlgorithmOf,
  type RepoMeta,
  verityAlgorithmOf,
} from "./meta.ts";
export {
  hardlinkRefusal,
  type LocalObjectSource,
  LocalStoreContext,
  type ObjectStoreMethod,
} from "./objects.ts";
export { validateRefName } from "./refs.ts";
export { validateContentId } from "./streams.ts";
export { formatFsckReport, formatProblem, type FsckProblem, type FsckReport } from "./fsck.ts";
export type { GcReport } from "./gc.ts";
export type { RepositoryView, StreamRefs } from "./view.ts";
