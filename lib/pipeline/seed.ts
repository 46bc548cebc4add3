/**
 * The seed's pull (bootc's `pull_composefs_repo`) for library users: {@link runPullPipeline}
 * without hooks and without log output. Open (create when missing, upgrade when old),
 * fetch and import, the bootable EROFS with its boot entries found before `/boot` is
 * emptied, and the `localhost/bootc-<manifest digest>` tag written last, so that a failure
 * at any point leaves a consistent repository.
 *
 * @module
 */
import type { RepoAlgorithm } from "../repository.ts";
import type { SourceOptions } from "../oci/source.ts";
import type { PullResult } from "../oci/pull.ts";
import type { BootEntry } from "../boot/entries.ts";
import { Logger } from "../log.ts";
import { runPullPipeline } from "./run.ts";

/** Options of {@link seedPull}. */
export interface SeedPullOptions extends SourceOptions {
  /** The repository directory. */
  repoPath: string;
  /** Algorithm for a new repository; default fsverity-sha512-12 (bootc's). */
  algorithm?: RepoAlgorithm;
  /** Create an insecure repository where the file system has no fs-verity. */
  allowMissingFsverity?: boolean;
  /** Stops the pull (a consistent repository stays). */
  signal?: AbortSignal;
}

/** What {@link seedPull} did. */
export interface SeedPullResult {
  /** True when the repository was created by this pull. */
  created: boolean;
  /** True when an old-format repository was upgraded. */
  upgraded: boolean;
  /** True when the repository requires fs-verity. */
  secure: boolean;
  /** What the pull stored. */
  pull: PullResult;
  /** The tag written (`localhost/bootc-<manifest digest>`). */
  tag: string;
  /** The bootable image's id (hex). */
  imageId: string;
  /** The image's boot entries (found before the boot transform emptied `/boot`). */
  entries: BootEntry[];
}

/** Runs the seed's pull; see the module documentation. */
export async function seedPull(ref: string, options: SeedPullOptions): Promise<SeedPullResult> {
  const r = await runPullPipeline({ ...options, reference: ref, log: new Logger([]) });
  return {
    created: r.created,
    upgraded: r.upgraded,
    secure: r.secure,
    pull: r.pull,
    tag: r.tags[0],
    imageId: r.imageId,
    entries: r.entries,
  };
}
