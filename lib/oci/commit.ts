/**
 * The EROFS images of a stored container image, made and recorded as composefs-oci 0.9.4's
 * `ensure_oci_composefs_erofs` does it at the end of every pull:
 *
 * 1. the image's file system: its layers merged ({@link createFilesystem}), then the OCI
 *    transform (`/usr`'s metadata on `/`, `/run` emptied, xattrs filtered);
 * 2. one image per EROFS format the repository writes (`meta.json` `erofs_formats`: the
 *    default and any extra), each committed as `images/<id>`;
 * 3. with `bootable`, the boot transform applied to the same tree and one bootable image per
 *    format;
 * 4. the config stream rewritten with named refs to those images (`composefs.image` for V2,
 *    `composefs.image.v1` for V1, `composefs.image.boot[.v1][.xattrs=<mode>]`; refs to boot
 *    images of other xattr modes are kept), which is what keeps them from gc; then the
 *    manifest stream rewritten to the new config stream, and the tag pointed at it.
 *
 * A V0 repository cannot hold OCI images: 0.9.4 finds no slot for a V0 image and refuses;
 * so does cfs.
 *
 * @module
 */
import type { FileSystem } from "../tree.ts";
import { mkfsErofs } from "../erofs/writer.ts";
import type { XattrFiltering } from "../tree_transform.ts";
import { transformForBoot } from "../boot/transform.ts";
import { findBootEntries } from "../boot/entries.ts";
import { finishOciTree } from "./layer_tree.ts";
import { ObjectId, Repository, RepositoryError } from "../repository/mod.ts";
import type { ErofsFormatVersion } from "../repository/meta.ts";
import { createFilesystem, type ParsedLayers } from "./image.ts";
import {
  bootImageRefKey,
  type ConfigImages,
  OciImage,
  type StoredConfig,
  writeConfigStream,
  writeManifestStream,
} from "./store.ts";

/** The EROFS formats `repo` writes, default first. */
export function repoFormats(repo: Repository): ErofsFormatVersion[] {
  const f = repo.erofsFormats;
  return [f.default, ...f.extra];
}

/**
 * The merged, OCI-transformed file system of a stored container image (step 1), with the
 * xattr filtering `xattrs` (default `allowlist-only`).
 */
export async function ociFilesystem(
  repo: Repository,
  image: OciImage | StoredConfig,
  xattrs?: XattrFiltering,
  parsed?: ParsedLayers,
): Promise<FileSystem> {
  if (image instanceof OciImage && !image.isContainerImage) {
    throw new RepositoryError(`${image.manifestDigest} is an artifact, not a container image`);
  }
  const fs = await createFilesystem(repo, image, parsed);
  const name = image instanceof OciImage ? image.manifestDigest : image.configDigest;
  finishOciTree(fs, name, (c) => repo.readObject(c.digest), { xattrs });
  return fs;
}

/**
 * The boot transform of a stored image's tree, in place, as composefs-boot 0.9.4 does it: the
 * boot entries are read first (a malformed one stops it, before `/boot` is emptied), then
 * `/boot` and `/sysroot` are emptied and the tree relabelled from its own SELinux policy.
 */
export function bootTransform(repo: Repository, fs: FileSystem): void {
  const read = (c: { digest: Uint8Array }) => repo.readObject(c.digest);
  findBootEntries(fs, read);
  transformForBoot(fs, read);
}

/** Writes `fs` once per format of the repository (step 2/3); returns id per format. */
export function writeImages(
  repo: Repository,
  fs: FileSystem,
  versions: readonly ErofsFormatVersion[] = repoFormats(repo),
): Map<ErofsFormatVersion, ObjectId> {
  if (versions[0] === 0) {
    throw new RepositoryError(
      `${repo.path}: an EROFS format V0 repository cannot hold OCI images (composefs-rs 0.9.4 ` +
        "refuses too); use a V1 or V2 repository",
    );
  }
  const out = new Map<ErofsFormatVersion, ObjectId>();
  for (const v of versions) out.set(v, repo.writeImage(mkfsErofs(fs, { version: v })));
  return out;
}

/** What {@link linkImages} records on the config. */
export interface LinkImagesOptions {
  /** New plain images by format; undefined keeps the config's current ones. */
  plain?: Map<ErofsFormatVersion, ObjectId>;
  /** New bootable images by format, made with `xattrs`. */
  boot?: Map<ErofsFormatVersion, ObjectId>;
  /** The xattr mode the boot images were made with (their key). */
  xattrs?: XattrFiltering;
  /** Tag to point at the rewritten manifest. */
  tag?: string;
}

/**
 * Step 4: rewrites the config stream with the image refs (the other refs kept), then the
 * manifest stream, and tags it. Returns the new manifest stream id.
 */
export async function linkImages(
  repo: Repository,
  image: OciImage,
  options: LinkImagesOptions,
): Promise<ObjectId> {
  const images: ConfigImages = {
    v2: image.images.v2,
    v1: image.images.v1,
    boot: new Map(image.images.boot),
  };
  if (options.plain) {
    images.v2 = options.plain.get(2);
    images.v1 = options.plain.get(1);
  }
  for (const [v, id] of options.boot ?? []) {
    if (v === 0) continue;
    images.boot.set(bootImageRefKey(v, options.xattrs ?? "allowlist-only"), id);
  }
  const config = await writeConfigStream(
    repo,
    image.configJson,
    image.diffIds,
    image.layers,
    images,
  );
  return await writeManifestStream(
    repo,
    image.manifestJson,
    image.manifestDigest,
    image.configDigest,
    config.id,
    image.diffIds.map((d) => [d, image.layers.get(d)!] as [string, ObjectId]),
    options.tag,
  );
}

/** Options of {@link commitOciImages}. */
export interface CommitOciImagesOptions {
  /** Also make the bootable images. */
  bootable?: boolean;
  /** Xattr filtering of the OCI transform; default `allowlist-only`. */
  xattrs?: XattrFiltering;
  /** Tag to point at the rewritten manifest. */
  tag?: string;
  /** Layers' tree entries from their import (a pull): not read back from their streams. */
  parsed?: ParsedLayers;
}

/** What {@link commitOciImages} made. */
export interface CommittedImages {
  /** The plain image of the repository's default format. */
  image: ObjectId;
  /** The bootable image of the default format, with `bootable`. */
  bootImage?: ObjectId;
  /** All plain images by format. */
  images: Map<ErofsFormatVersion, ObjectId>;
  /** All bootable images by format. */
  bootImages: Map<ErofsFormatVersion, ObjectId>;
  /** The rewritten manifest stream's id. */
  manifestId: ObjectId;
}

/**
 * Steps 1 to 4 for the container image whose manifest is `manifestDigest`; undefined for an
 * artifact (nothing to make; the caller tags it as it is).
 */
export async function commitOciImages(
  repo: Repository,
  manifestDigest: string,
  manifestId: ObjectId | undefined,
  options: CommitOciImagesOptions = {},
): Promise<CommittedImages | undefined> {
  const image = OciImage.open(repo, manifestDigest, manifestId);
  if (!image.isContainerImage) return undefined;
  const fs = await ociFilesystem(repo, image, options.xattrs, options.parsed);
  const images = writeImages(repo, fs);
  let bootImages = new Map<ErofsFormatVersion, ObjectId>();
  if (options.bootable) {
    bootTransform(repo, fs);
    bootImages = writeImages(repo, fs);
  }
  const newManifestId = await linkImages(repo, image, {
    plain: images,
    boot: options.bootable ? bootImages : undefined,
    xattrs: options.xattrs,
    tag: options.tag,
  });
  const def = repoFormats(repo)[0];
  return {
    image: images.get(def)!,
    bootImage: bootImages.get(def),
    images,
    bootImages,
    manifestId: newManifestId,
  };
}
