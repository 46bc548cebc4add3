/**
 * The seed's pull (bootc's `pull_composefs_repo`), in order:
 *
 * 1. **open**: open the repository, creating it when missing (fs-verity required unless
 *    `allowMissingFsverity`, then an insecure one where the file system lacks it);
 *    an old-format (cfsctl 0.3.0) repository is upgraded by opening it;
 * 2. **fetch + import**: {@link pullImage} (every digest checked, layers already present not
 *    fetched);
 * 3. **image**: the merged file system, its boot entries found (before `/boot` is emptied),
 *    then the boot transform and the bootable EROFS, recorded as the config's
 *    `composefs.image.boot` image ref (store.ts);
 * 4. **tag**: `localhost/bootc-<manifest digest>`, the GC root bootc uses, written last so
 *    that an image which cannot be built (a layer entry under a symlink, a missing
 *    hardlink target, no `/boot`) leaves no tag;
 * 5. **boot**: the boot entries found in step 3.
 *
 * Each step writes only after the previous one is complete, so a failure at any point
 * leaves a consistent repository (objects for reuse; no half-written stream, tag or image).
 * The hook-driven pipeline (issue 4) splits these steps into stages.
 *
 * @module
 */
import { join } from "node:path";
import { Repository } from "../repository.ts";
import { VerityError } from "../fsverity/ioctl.ts";
import type { RepoAlgorithm } from "../repository.ts";
import { pullImage, type PullOptions, type PullResult } from "../oci/pull.ts";
import { bootcTag, configImageRef, tagImage } from "../oci/store.ts";
import { createFilesystem } from "../oci/image.ts";
import { type BootEntry, findBootEntries } from "../boot/entries.ts";
import { transformForBoot } from "../boot/transform.ts";
import { mkfsErofs } from "../erofs/writer.ts";
import { toHex } from "../fsverity/digest.ts";

/** Options of {@link seedPull}. */
export interface SeedPullOptions extends Omit<PullOptions, "tag" | "configRef"> {
  /** The repository directory. */
  repoPath: string;
  /** Algorithm for a new repository; default fsverity-sha512-12 (bootc's). */
  algorithm?: RepoAlgorithm;
  /** Create an insecure repository where the file system has no fs-verity. */
  allowMissingFsverity?: boolean;
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

/** Opens `path`, creating the repository when there is none. */
export function openOrCreate(
  path: string,
  algorithm: RepoAlgorithm | undefined,
  allowMissingFsverity: boolean,
): { repo: Repository; created: boolean } {
  let isRepo = false;
  try {
    Deno.statSync(join(path, "meta.json"));
    isRepo = true;
  } catch {
    try {
      isRepo = Deno.statSync(join(path, "objects")).isDirectory;
    } catch { /* neither: create */ }
  }
  if (isRepo) return { repo: Repository.open(path), created: false };
  try {
    return { repo: Repository.init(path, { algorithm }), created: true };
  } catch (e) {
    if (!(e instanceof VerityError && e.unsupported && allowMissingFsverity)) throw e;
    return { repo: Repository.init(path, { algorithm, insecure: true }), created: true };
  }
}

/** Runs the seed's pull; see the module documentation. */
export async function seedPull(ref: string, options: SeedPullOptions): Promise<SeedPullResult> {
  const { repo, created } = openOrCreate(
    options.repoPath,
    options.algorithm,
    options.allowMissingFsverity ?? false,
  );
  try {
    const pull = await pullImage(repo, ref, options);
    const configHex = toHex(pull.configSha256);
    const fs = await createFilesystem(repo, configHex);
    const read = (c: { digest: Uint8Array }) => repo.readObject(c.digest);
    const entries = findBootEntries(fs, read);
    transformForBoot(fs, read);
    const id = repo.writeImage(mkfsErofs(fs), configImageRef(configHex, true));
    // The tag last: an image that cannot be built leaves no GC root behind (its streams
    // and objects stay for a retry and go at the next gc).
    const tag = bootcTag(pull.manifestDigest);
    tagImage(repo, tag, pull.manifestDigest.slice(7));
    return {
      created,
      upgraded: repo.upgraded,
      secure: repo.secure,
      pull,
      tag,
      imageId: toHex(id),
      entries,
    };
  } finally {
    repo.close();
  }
}
