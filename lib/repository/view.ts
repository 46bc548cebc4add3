/**
 * What fsck and gc need of a repository: its stores, and the two format readers they use to
 * follow references (a splitstream's refs, an EROFS image's objects). The facade
 * (`repository.ts`) provides them, so that fsck and gc stay independent of how streams and
 * images are encoded.
 *
 * @module
 */
import type { VerityAlgorithm } from "../fsverity/digest.ts";
import type { RepoDir } from "./dir.ts";
import type { ImageStore } from "./images.ts";
import type { ObjectId } from "./object_id.ts";
import type { ObjectStore } from "./objects.ts";
import type { StreamStore } from "./streams.ts";

/** The references a splitstream holds. */
export interface StreamRefs {
  /** The objects its content is made of. */
  objectRefs: ObjectId[];
  /** Named references to other streams or images (name -> object id). */
  namedRefs: Array<{ name: string; id: ObjectId }>;
  /** Which format the stream is in: `0.9` (composefs-rs 0.8+), or `0.3` (cfsctl 0.3.0). */
  format: "0.9" | "0.3";
  /** The writer's content type (`ocilayer`, ...); 0 for the 0.3 format, which has none. */
  contentType: bigint;
}

/** A repository as fsck and gc see it. */
export interface RepositoryView {
  /** The repository directory's path. */
  readonly path: string;
  /** The repository directory, open: every path below it is resolved through it (dir.ts). */
  readonly root: RepoDir;
  /** The digest algorithm of every object. */
  readonly algorithm: VerityAlgorithm;
  /** Whether objects carry fs-verity. */
  readonly secure: boolean;
  /** `objects/`. */
  readonly objects: ObjectStore;
  /** `streams/`. */
  readonly streams: StreamStore;
  /** `images/`. */
  readonly images: ImageStore;
  /** Parses a stream object's references; rejects when it is not a splitstream. */
  streamRefs(bytes: Uint8Array): Promise<StreamRefs>;
  /** The objects an EROFS image refers to; throws when it is not a valid image. */
  imageObjects(bytes: Uint8Array): ObjectId[];
  /**
   * Like {@link imageObjects}, and also throws when the image holds what the kernel cannot
   * read (a name over 255 bytes, a symlink target over 4095, ...: lib/erofs/limits.ts).
   */
  checkImage(bytes: Uint8Array): ObjectId[];
}
