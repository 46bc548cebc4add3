/**
 * How OCI images are kept in a repository, exactly as composefs-oci 0.9.4 keeps them, so that
 * cfs and cfsctl read and write the same repositories:
 *
 * ```text
 * streams/oci-layer-<diff_id>      a layer tar as a splitstream (content type `ocilayer`)
 * streams/oci-config-<digest>      config JSON as one external object (`ociconfg`); named refs:
 *                                  <diff_id> -> layer stream, for each layer;
 *                                  composefs.image (V2) / composefs.image.v1 (V1) -> EROFS image;
 *                                  composefs.image.boot[.v1][.xattrs=<mode>] -> bootable image
 * streams/oci-manifest-<digest>    manifest JSON as one external object (`ocimanif`); named refs:
 *                                  config:<config digest> -> config stream, <diff_id> -> layers
 * streams/refs/oci/<encoded tag>   -> ../../oci-manifest-<digest>: a tag, the GC root
 * ```
 *
 * Tags are percent-encoded into one file name (`%` -> `%25`, `/` -> `%2F`), so
 * `localhost/bootc-sha256:...` is one link. A tag must not start with `@`, which names a
 * digest (`@sha256:...`).
 *
 * The JSON documents are stored as objects of their exact bytes (their sha256 is their OCI
 * digest, and fs-verity can be enabled on them); the stream around each carries the links
 * that keep what the document refers to alive. Adding an image to a config rewrites the config
 * stream (its id changes), and so the manifest stream and the tag (composefs-oci's
 * `rewrite_manifest`); the old streams become garbage.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { ObjectId, Repository, RepositoryError } from "../repository/mod.ts";
import { SplitStreamWriter } from "../splitstream/writer.ts";
import { CONTENT_TYPE, detectSplitStreamFormat } from "../splitstream/format.ts";
import { SplitStreamReader } from "../splitstream/reader.ts";
import type { ErofsFormatVersion } from "../repository/meta.ts";

/** The directory below `streams/refs/` that holds tags. */
export const OCI_TAG_DIR = "oci";
/** The longest tag accepted (encoded, it must still fit a file name). */
export const TAG_MAX_LENGTH = 200;

/** Named ref of a config stream to its EROFS image, format V2. */
export const IMAGE_REF_KEY = "composefs.image";
/** Named ref of a config stream to its EROFS image, format V1 (and V0). */
export const IMAGE_REF_KEY_V1 = "composefs.image.v1";
/** Named ref of a config stream to its bootable EROFS image, format V2. */
export const BOOT_IMAGE_REF_KEY = "composefs.image.boot";
/** Named ref of a config stream to its bootable EROFS image, format V1. */
export const BOOT_IMAGE_REF_KEY_V1 = "composefs.image.boot.v1";

/** The xattr filtering modes of composefs-rs 0.9.4 (`XattrFiltering`), by their CLI names. */
export type XattrMode = "allowlist-only" | "keep-user-xattrs";

/** A tag that cannot be stored. */
export class TagError extends RepositoryError {
  /** Creates the error; the message is one line naming the input. */
  constructor(message: string) {
    super(message, { code: "tag-invalid" });
    this.name = "TagError";
  }
}

/** `%` -> `%25`, `/` -> `%2F`: a tag as one file name under `streams/refs/oci/`. */
export function encodeTag(tag: string): string {
  return tag.replaceAll("%", "%25").replaceAll("/", "%2F");
}

/** The inverse of {@link encodeTag}, in one pass (`%252F` is `%2F`, not `/`). */
export function decodeTag(encoded: string): string {
  return encoded.replace(/%(2F|25)/g, (_, h) => (h === "2F" ? "/" : "%"));
}

/**
 * Checks a tag: not empty, not starting with `@` (composefs-oci reserves it for digests), no
 * NUL or newline, not `.`/`..`, at most {@link TAG_MAX_LENGTH} characters.
 */
export function validateTag(tag: string): void {
  if (tag === "" || tag === "." || tag === "..") throw new TagError(`invalid tag '${tag}'`);
  if (tag.startsWith("@")) {
    throw new TagError(`invalid tag '${tag}': a leading '@' is reserved for digest references`);
  }
  if (/[\0\n]/.test(tag)) {
    throw new TagError(`invalid tag ${JSON.stringify(tag)}: control character`);
  }
  if (tag.length > TAG_MAX_LENGTH) {
    throw new TagError(`invalid tag '${tag.slice(0, 40)}...': over ${TAG_MAX_LENGTH} characters`);
  }
}

/** The tag bootc gives an image it pulled: `localhost/bootc-<manifest digest>`. */
export function bootcTag(manifestDigest: string): string {
  return `localhost/bootc-${manifestDigest}`;
}

/** `streams/<this>` of a layer. */
export function layerContentId(diffId: string): string {
  return `oci-layer-${diffId}`;
}
/** `streams/<this>` of a config. */
export function configContentId(digest: string): string {
  return `oci-config-${digest}`;
}
/** `streams/<this>` of a manifest. */
export function manifestContentId(digest: string): string {
  return `oci-manifest-${digest}`;
}
/** The stream ref of a tag: `oci/<encoded tag>`. */
export function tagRef(tag: string): string {
  return `${OCI_TAG_DIR}/${encodeTag(tag)}`;
}

/** `sha256:<hex>` of bytes. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Whether a format version is stored under the V1 keys (V0 and V1 share the layout). */
function isEpoch1(version: ErofsFormatVersion): boolean {
  return version !== 2;
}

/** The named-ref key of a config's (non-bootable) image of format `version`. */
export function imageRefKey(version: ErofsFormatVersion): string {
  return isEpoch1(version) ? IMAGE_REF_KEY_V1 : IMAGE_REF_KEY;
}

/**
 * The named-ref key of a config's bootable image of format `version` built with xattr mode
 * `mode`: the plain keys for the default mode (`allowlist-only`), else `.xattrs=<mode>` added.
 */
export function bootImageRefKey(
  version: ErofsFormatVersion,
  mode: XattrMode = "allowlist-only",
): string {
  const base = isEpoch1(version) ? BOOT_IMAGE_REF_KEY_V1 : BOOT_IMAGE_REF_KEY;
  return mode === "allowlist-only" ? base : `${base}.xattrs=${mode}`;
}

/** What a boot image key says: its format family and xattr mode. */
export function parseBootImageRefKey(key: string): { version: 1 | 2; mode: string } {
  const version = key.startsWith(BOOT_IMAGE_REF_KEY_V1) ? 1 : 2;
  const i = key.indexOf(".xattrs=");
  return { version, mode: i < 0 ? "allowlist-only" : key.slice(i + 8) };
}

/** One stream holding a JSON document as an external object, read back. */
export interface ExternalStream {
  /** The stream object's id. */
  id: ObjectId;
  /** The document's exact bytes. */
  data: Uint8Array;
  /** The stream's named refs. */
  namedRefs: Map<string, ObjectId>;
}

/**
 * Reads a stream made of one external object (a manifest, config or blob) of the expected
 * content type: by its content id, or by its object id when `verity` is given (then the
 * content id is not consulted, as composefs-oci opens a config through the manifest's ref).
 */
export function readExternalStream(
  repo: Repository,
  contentId: string,
  expectedContentType: bigint,
  verity?: ObjectId,
): ExternalStream {
  const id = verity ?? repo.hasStream(contentId);
  if (!id) {
    throw new RepositoryError(`no stream ${contentId} in ${repo.path}`, {
      code: "stream-not-found",
    });
  }
  const bytes = repo.readObject(id);
  if (detectSplitStreamFormat(bytes.subarray(0, 64)) === "legacy-0.3") {
    throw new RepositoryError(
      `stream ${contentId} is in cfsctl 0.3.0's format; cfs pull (or cfs oci pull) upgrades it`,
    );
  }
  const reader = SplitStreamReader.open(bytes, {
    name: `stream ${contentId}`,
    algorithm: repo.algorithm,
    contentType: expectedContentType,
  });
  if (reader.objectRefs.length !== 1) {
    throw new RepositoryError(
      `stream ${contentId}: expected exactly 1 external object, found ${reader.objectRefs.length}`,
    );
  }
  const namedRefs = new Map<string, ObjectId>();
  for (const [name, ref] of reader.namedRefs) namedRefs.set(name, ObjectId.fromBytes(ref));
  return { id, data: repo.readObject(ObjectId.fromBytes(reader.objectRefs[0])), namedRefs };
}

/**
 * Writes a JSON document as a stream of one external object with `namedRefs` (in the order
 * given: the writer sorts them by name) and links it as `streams/<contentId>` (replacing an
 * older version), with the optional stream ref. Returns the stream's object id.
 */
export async function writeExternalStream(
  repo: Repository,
  contentId: string,
  contentType: bigint,
  data: Uint8Array,
  namedRefs: Iterable<[string, ObjectId]>,
  ref?: string,
): Promise<ObjectId> {
  const writer = new SplitStreamWriter({ algorithm: repo.algorithm, contentType });
  let bytes: Uint8Array;
  try {
    for (const [name, id] of namedRefs) writer.addNamedRef(name, id.bytes);
    const object = repo.storeBytes(data);
    await writer.writeExternal(object.bytes, data.length);
    bytes = await writer.finish();
  } catch (e) {
    writer.abort();
    throw e;
  }
  return repo.writeStream(bytes, contentId, ref);
}

/** The images a config stream records, besides its layers. */
export interface ConfigImages {
  /** `composefs.image`: the V2 image. */
  v2?: ObjectId;
  /** `composefs.image.v1`: the V1 image. */
  v1?: ObjectId;
  /** Bootable images by their key (`composefs.image.boot...`). */
  boot: Map<string, ObjectId>;
}

/**
 * Writes a config stream (`oci-config-<sha256 of configJson>`): the config's exact bytes,
 * a named ref per layer (config `rootfs.diff_ids` order, `layers` must have them all), and
 * the image refs. Returns the config's digest and the stream's id.
 */
export async function writeConfigStream(
  repo: Repository,
  configJson: Uint8Array,
  diffIds: readonly string[],
  layers: ReadonlyMap<string, ObjectId>,
  images: ConfigImages = { boot: new Map() },
): Promise<{ digest: string; id: ObjectId }> {
  const digest = sha256Digest(configJson);
  const refs: Array<[string, ObjectId]> = [];
  for (const diffId of diffIds) {
    const id = layers.get(diffId);
    if (!id) throw new RepositoryError(`config ${digest}: no layer stream for ${diffId}`);
    refs.push([diffId, id]);
  }
  if (images.v2) refs.push([IMAGE_REF_KEY, images.v2]);
  if (images.v1) refs.push([IMAGE_REF_KEY_V1, images.v1]);
  for (const [key, id] of images.boot) refs.push([key, id]);
  const id = await writeExternalStream(
    repo,
    configContentId(digest),
    CONTENT_TYPE.ociConfig,
    configJson,
    refs,
  );
  return { digest, id };
}

/**
 * Writes (or rewrites) a manifest stream (`oci-manifest-<digest>`): the manifest's exact
 * bytes, `config:<config digest>` -> the config stream, a named ref per layer, and points
 * `tag` at it when given. Returns the stream's id.
 */
export async function writeManifestStream(
  repo: Repository,
  manifestJson: Uint8Array,
  manifestDigest: string,
  configDigest: string,
  configId: ObjectId,
  layers: Iterable<[string, ObjectId]>,
  tag?: string,
): Promise<ObjectId> {
  const computed = sha256Digest(manifestJson);
  if (computed !== manifestDigest) {
    throw new RepositoryError(
      `manifest digest mismatch: expected ${manifestDigest}, got ${computed}`,
    );
  }
  if (tag !== undefined) validateTag(tag);
  const refs: Array<[string, ObjectId]> = [[`config:${configDigest}`, configId], ...layers];
  return await writeExternalStream(
    repo,
    manifestContentId(manifestDigest),
    CONTENT_TYPE.ociManifest,
    manifestJson,
    refs,
    tag === undefined ? undefined : tagRef(tag),
  );
}

/** Points `tag` at the stored manifest `manifestDigest`; replaces an older target. */
export function tagImage(repo: Repository, tag: string, manifestDigest: string): void {
  validateTag(tag);
  repo.nameStream(manifestContentId(manifestDigest), tagRef(tag));
}

/** Removes a tag; false when there was none. The image stays until gc. */
export function untagImage(repo: Repository, tag: string): boolean {
  validateTag(tag);
  return repo.removeRef("streams", tagRef(tag));
}

/** Every tag and the manifest digest it points at, sorted by tag (composefs-oci `list_refs`). */
export function listTags(repo: Repository): Array<{ tag: string; manifestDigest: string }> {
  const out: Array<{ tag: string; manifestDigest: string }> = [];
  for (const r of repo.listStreamRefs(OCI_TAG_DIR)) {
    const encoded = r.name.slice(OCI_TAG_DIR.length + 1);
    if (encoded.includes("/") || !r.contentId.startsWith("oci-manifest-")) continue;
    out.push({
      tag: decodeTag(encoded),
      manifestDigest: r.contentId.slice("oci-manifest-".length),
    });
  }
  return out.sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
}

/** The tags pointing at a manifest, sorted. */
export function tagsOf(repo: Repository, manifestDigest: string): string[] {
  return listTags(repo).filter((t) => t.manifestDigest === manifestDigest).map((t) => t.tag);
}

/** Resolves a tag to its manifest digest and manifest stream id (composefs-oci `resolve_ref`). */
export function resolveTag(
  repo: Repository,
  tag: string,
): { manifestDigest: string; manifestId: ObjectId } | undefined {
  validateTag(tag);
  const contentId = repo.streamRefTarget(tagRef(tag));
  if (contentId === undefined) return undefined;
  if (!contentId.startsWith("oci-manifest-")) {
    throw new RepositoryError(`tag '${tag}' points to ${contentId}, not a manifest`);
  }
  const manifestId = repo.hasStream(contentId);
  if (!manifestId) {
    throw new RepositoryError(`tag '${tag}': manifest stream ${contentId} is missing`);
  }
  return { manifestDigest: contentId.slice("oci-manifest-".length), manifestId };
}

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new RepositoryError(`${what} is not JSON`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new RepositoryError(`${what} is not a JSON object`);
  }
  return v as Record<string, unknown>;
}

/** The OCI image config media type: anything else is an artifact. */
export const MEDIA_TYPE_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";

/**
 * An OCI image (or artifact) stored in a repository: composefs-oci's `OciImage`. Opened by
 * manifest digest; when the manifest stream's id is not given, the manifest's bytes are
 * checked against the digest.
 */
export class OciImage {
  private constructor(
    /** `sha256:...` of the manifest. */
    readonly manifestDigest: string,
    /** The manifest stream's object id. */
    readonly manifestId: ObjectId,
    /** The manifest's exact bytes. */
    readonly manifestJson: Uint8Array,
    /** The parsed manifest. */
    readonly manifest: Record<string, unknown>,
    /** `sha256:...` of the config. */
    readonly configDigest: string,
    /** The config stream's object id. */
    readonly configId: ObjectId,
    /** The config's exact bytes. */
    readonly configJson: Uint8Array,
    /** The parsed config (also for artifacts, whose config may be anything JSON). */
    readonly config: Record<string, unknown>,
    /** diff_id (artifacts: blob digest) -> layer stream id, in config order. */
    readonly layers: Map<string, ObjectId>,
    /** The config's image refs. */
    readonly images: ConfigImages,
  ) {}

  /** Opens the image whose manifest is `manifestDigest` (see the class documentation). */
  static open(repo: Repository, manifestDigest: string, manifestId?: ObjectId): OciImage {
    const contentId = manifestContentId(manifestDigest);
    const m = readExternalStream(repo, contentId, CONTENT_TYPE.ociManifest, manifestId);
    if (!manifestId && sha256Digest(m.data) !== manifestDigest) {
      throw new RepositoryError(
        `manifest integrity failed: expected ${manifestDigest}, got ${sha256Digest(m.data)}`,
      );
    }
    const manifest = parseJson(m.data, `manifest ${manifestDigest}`);
    const configDesc = manifest.config as { digest?: unknown; mediaType?: unknown } | undefined;
    const configDigest = typeof configDesc?.digest === "string" ? configDesc.digest : "";
    if (!/^sha256:[0-9a-f]{64}$/.test(configDigest)) {
      throw new RepositoryError(`manifest ${manifestDigest}: config digest is not sha256`);
    }
    const configId = m.namedRefs.get(`config:${configDigest}`);
    if (!configId) {
      throw new RepositoryError(`manifest ${manifestDigest}: missing config reference`);
    }
    const c = readExternalStream(
      repo,
      configContentId(configDigest),
      CONTENT_TYPE.ociConfig,
      configId,
    );
    const config = parseJson(c.data, `config ${configDigest}`);
    const container = configDesc?.mediaType === MEDIA_TYPE_IMAGE_CONFIG ||
      configDesc?.mediaType === DOCKER_CONFIG;
    const layers = new Map<string, ObjectId>();
    const images: ConfigImages = { boot: new Map() };
    if (container) {
      const diffIds = (config.rootfs as { diff_ids?: unknown } | undefined)?.diff_ids;
      const ids = Array.isArray(diffIds) ? diffIds.filter((d) => typeof d === "string") : [];
      for (const d of ids as string[]) {
        const id = c.namedRefs.get(d);
        if (id) layers.set(d, id);
      }
      for (const [k, id] of c.namedRefs) {
        if (k === IMAGE_REF_KEY) images.v2 = id;
        else if (k === IMAGE_REF_KEY_V1) images.v1 = id;
        else if (k.startsWith(BOOT_IMAGE_REF_KEY)) images.boot.set(k, id);
      }
    } else {
      const descs = Array.isArray(manifest.layers) ? manifest.layers : [];
      for (const d of descs as Array<{ digest?: unknown }>) {
        if (typeof d?.digest !== "string") continue;
        const id = m.namedRefs.get(d.digest);
        if (id) layers.set(d.digest, id);
      }
    }
    const resolvedId = manifestId ?? m.id;
    return new OciImage(
      manifestDigest,
      resolvedId,
      m.data,
      manifest,
      configDigest,
      configId,
      c.data,
      config,
      layers,
      images,
    );
  }

  /** Whether this is a container image (its config is an image config), not an artifact. */
  get isContainerImage(): boolean {
    const mt = (this.manifest.config as { mediaType?: unknown } | undefined)?.mediaType;
    return mt === MEDIA_TYPE_IMAGE_CONFIG || mt === DOCKER_CONFIG;
  }

  /** The config's `rootfs.diff_ids` (container images), [] otherwise. */
  get diffIds(): string[] {
    const d = (this.config.rootfs as { diff_ids?: unknown } | undefined)?.diff_ids;
    return Array.isArray(d) ? d.filter((x): x is string => typeof x === "string") : [];
  }

  /** The manifest's layer descriptors. */
  get layerDescriptors(): Array<Record<string, unknown>> {
    const l = this.manifest.layers;
    return Array.isArray(l) ? l as Array<Record<string, unknown>> : [];
  }

  /** The image of format `version` (V0 and V1 share the V1 key), if generated. */
  imageRef(version: ErofsFormatVersion): ObjectId | undefined {
    return isEpoch1(version) ? this.images.v1 : this.images.v2;
  }

  /** The bootable image of format `version` built with `mode`, if generated. */
  bootImageRef(
    version: ErofsFormatVersion,
    mode: XattrMode = "allowlist-only",
  ): ObjectId | undefined {
    return this.images.boot.get(bootImageRefKey(version, mode));
  }

  /** `architecture` of the config ("" for artifacts). */
  get architecture(): string {
    return this.isContainerImage && typeof this.config.architecture === "string"
      ? this.config.architecture
      : "";
  }

  /** `os` of the config ("" for artifacts). */
  get os(): string {
    return this.isContainerImage && typeof this.config.os === "string" ? this.config.os : "";
  }

  /** `created` of the config, if any. */
  get created(): string | undefined {
    return this.isContainerImage && typeof this.config.created === "string"
      ? this.config.created
      : undefined;
  }
}

/**
 * A stored config on its own, without a manifest: what `cfsctl oci compute-id|dump` read when
 * given a config digest (`@sha256:<config digest>`), and what a cfsctl 0.3.0 `oci pull IMAGE
 * NAME` left behind (`streams/refs/NAME` -> the config stream; 0.3.0 stored no manifests).
 */
export interface StoredConfig {
  /** `sha256:...` of the config. */
  configDigest: string;
  /** The config stream's object id. */
  configId: ObjectId;
  /** The config's `rootfs.diff_ids`. */
  diffIds: string[];
  /** diff_id -> layer stream id, from the config stream's named refs. */
  layers: Map<string, ObjectId>;
}

/** Opens the config stream `oci-config-<digest>`; its bytes must hash to the digest. */
export function openConfig(
  repo: Repository,
  configDigest: string,
  verity?: ObjectId,
): StoredConfig {
  const c = readExternalStream(
    repo,
    configContentId(configDigest),
    CONTENT_TYPE.ociConfig,
    verity,
  );
  if (sha256Digest(c.data) !== configDigest) {
    throw new RepositoryError(
      `config integrity failed: expected ${configDigest}, got ${sha256Digest(c.data)}`,
    );
  }
  const config = parseJson(c.data, `config ${configDigest}`);
  const ids = (config.rootfs as { diff_ids?: unknown } | undefined)?.diff_ids;
  const diffIds = Array.isArray(ids) ? ids.filter((d): d is string => typeof d === "string") : [];
  const layers = new Map<string, ObjectId>();
  for (const d of diffIds) {
    const id = c.namedRefs.get(d);
    if (id) layers.set(d, id);
  }
  return { configDigest, configId: c.id, diffIds, layers };
}

/**
 * The image or config a file-system command reads (`oci compute-id`, `oci dump`): as cfsctl
 * 0.9.4 resolves them, `@sha256:<hex>` names a config digest (and cfs falls back to a manifest
 * digest) and a tag names an image; cfs also takes `refs/NAME`, a stream ref to a manifest or a
 * config (cfsctl 0.3.0's names), and what {@link openImage} takes.
 */
export function openImageOrConfig(repo: Repository, name: string): OciImage | StoredConfig {
  if (name.startsWith("@")) {
    const digest = name.slice(1);
    if (/^sha256:[0-9a-f]{64}$/.test(digest) && repo.hasStream(configContentId(digest))) {
      return openConfig(repo, digest);
    }
  }
  if (name.startsWith("refs/")) {
    const target = repo.streamRefTarget(name.slice(5));
    if (target?.startsWith("oci-config-")) return openConfig(repo, target.slice(11));
    if (target?.startsWith("oci-manifest-")) return OciImage.open(repo, target.slice(13));
    throw new RepositoryError(
      target === undefined
        ? `no stream named '${name}' in ${repo.path}`
        : `'${name}' names ${target}, not an image manifest or config`,
    );
  }
  return openImage(repo, name);
}

/**
 * Opens an image by the names cfsctl 0.9.4 takes (`@sha256:<hex>`: a manifest digest; any
 * other text: a tag), plus cfs's own: `sha256:<hex>` and a bare 64-digit hex (a manifest
 * digest, or a config digest some tag's image has), and a unique prefix of at least
 * 3 hex digits of either (bare, after `sha256:` or `@`), as podman takes short image IDs.
 */
export function openImage(repo: Repository, name: string): OciImage {
  let digest: string | undefined;
  if (name.startsWith("@")) {
    digest = name.slice(1);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) {
      if (!/^@(?:sha256:)?[0-9a-f]{3,63}$/.test(name)) {
        throw new RepositoryError(`invalid OCI digest after '@': '${digest.slice(0, 80)}'`);
      }
      digest = undefined; // a prefix, resolved below
    }
  } else if (/^(sha256:)?[0-9a-f]{64}$/.test(name)) {
    digest = name.startsWith("sha256:") ? name : `sha256:${name}`;
  }
  if (digest !== undefined) {
    if (repo.hasStream(manifestContentId(digest))) return OciImage.open(repo, digest);
    if (!name.startsWith("@")) {
      for (const t of listTags(repo)) {
        try {
          const img = OciImage.open(repo, t.manifestDigest);
          if (img.configDigest === digest) return img;
        } catch { /* a broken tag is fsck's business */ }
      }
    }
    throw new RepositoryError(`no image with digest ${digest} in ${repo.path}`, {
      code: "image-not-found",
    });
  }
  const prefix = /^@?(?:sha256:)?([0-9a-f]{3,63})$/.exec(name)?.[1];
  // A name that is not a valid tag (`sha256:abc`, `@abc`) can only be a digest prefix.
  const r = prefix !== undefined && /^@|:/.test(name) ? undefined : resolveTag(repo, name);
  if (r) return OciImage.open(repo, r.manifestDigest, r.manifestId);
  if (prefix !== undefined) return openByDigestPrefix(repo, prefix, name);
  throw new RepositoryError(`no image tagged '${name}' in ${repo.path}`, {
    code: "image-not-found",
  });
}

/**
 * Whether hex `prefix` starts an image's manifest or config digest (`sha256:HEX`): the test
 * behind short image IDs.
 */
export function matchesDigestPrefix(prefix: string, ...digests: string[]): boolean {
  return /^[0-9a-f]+$/.test(prefix) && digests.some((d) => d.startsWith(`sha256:${prefix}`));
}

/**
 * The tagged image whose manifest digest (or config digest) starts with `prefix` (hex), as
 * podman takes a short image ID: a tag of that name wins (the caller looks first), several
 * images are refused naming them, none is "no image with digest".
 */
function openByDigestPrefix(repo: Repository, prefix: string, name: string): OciImage {
  const images: Array<{ tag: string; img: OciImage }> = [];
  for (const t of listTags(repo)) {
    try {
      images.push({ tag: t.tag, img: OciImage.open(repo, t.manifestDigest) });
    } catch { /* a broken tag is fsck's business */ }
  }
  const digest = pickByDigestPrefix(
    prefix,
    name,
    repo.path,
    images.map(({ tag, img }) => ({
      tag,
      manifestDigest: img.manifestDigest,
      configDigest: img.configDigest,
    })),
  );
  return images.find((i) => i.img.manifestDigest === digest)!.img;
}

/**
 * The manifest digest of the one image whose manifest or config digest starts with hex
 * `prefix`, among `images` (tags with their digests); a {@link RepositoryError} otherwise:
 * `image-not-found` ("no image with digest …"), or `image-ambiguous` naming the candidates.
 */
export function pickByDigestPrefix(
  prefix: string,
  name: string,
  repoPath: string,
  images: ReadonlyArray<{ tag: string; manifestDigest: string; configDigest: string }>,
): string {
  const found = new Map<string, string[]>();
  for (const i of images) {
    if (!matchesDigestPrefix(prefix, i.manifestDigest, i.configDigest)) continue;
    found.set(i.manifestDigest, [...found.get(i.manifestDigest) ?? [], i.tag]);
  }
  if (found.size === 1) return [...found.keys()][0];
  if (found.size === 0) {
    throw new RepositoryError(
      `no image with digest sha256:${prefix}… in ${repoPath}` +
        (/^@|:/.test(name) ? "" : ` (and no tag '${name}')`),
      { code: "image-not-found" },
    );
  }
  const candidates = [...found.entries()].map(([d, tags]) =>
    `${d.slice(0, 7 + 16)}… (${tags.slice(0, 2).join(", ")})`
  );
  throw new RepositoryError(
    `digest prefix '${prefix}' names ${found.size} images: ${candidates.join(", ")}; ` +
      "give more digits",
    { code: "image-ambiguous" },
  );
}
