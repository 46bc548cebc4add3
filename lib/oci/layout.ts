/**
 * OCI image layouts (`oci:DIR[:TAG]`): `oci-layout`, `index.json`, `blobs/<alg>/<hex>`.
 *
 * ```ts
 * const layout = await OciLayout.open("/srv/image");
 * const image = await layout.resolve({ tag: "v1", platform: parsePlatform("linux/arm64") });
 * for (const layer of image.layers) {
 *   const tar = await layout.openLayer(layer);   // decompressed, digest + diff_id checked
 * }
 * ```
 *
 * Every JSON document (index, manifest, config) is size-checked before it is read: the
 * descriptor's size and the file's size must both be at most {@link MAX_JSON_BLOB_SIZE}
 * and agree, so a 1 GiB "manifest" is refused without reading a byte of it. Then its
 * digest is checked, it is parsed as JSON and validated with zod, and its media type must
 * be what the referring descriptor says. Blob paths come only from validated digests
 * (`sha256`/`sha512`, lowercase hex of the exact length), and a blob must be a regular
 * file (not a symlink), so no digest can reach outside `blobs/`.
 *
 * Tag selection follows containers-image: with a tag, the descriptors in `index.json`
 * whose `org.opencontainers.image.ref.name` is that tag; without one, the only
 * descriptor. An image index (or Docker manifest list) is resolved by platform, the
 * host's (`linux/amd64` here) unless another is asked for.
 *
 * Errors: {@link OciLayoutError} for a missing or malformed layout or document (naming
 * the layout and the blob); {@link BlobError} (from blob.ts) for content that does not
 * match its descriptor.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, clipMiddle, withCode } from "../errors.ts";
import { join } from "node:path";
import { z } from "zod";
import { BlobError, layerCompression, verifyBlob } from "./blob.ts";
import { verifiedLayerFile } from "./layer_file.ts";
import { clip, digestBytes, digestProblem, parseDigest } from "./digest.ts";

// --- media types ------------------------------------------------------------------------------

export const MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const MEDIA_TYPE_OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const MEDIA_TYPE_DOCKER_MANIFEST_LIST =
  "application/vnd.docker.distribution.manifest.list.v2+json";
export const MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const MEDIA_TYPE_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";

/** Media types of an image index / manifest list. */
export const INDEX_MEDIA_TYPES: readonly string[] = [
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_DOCKER_MANIFEST_LIST,
];
/** Media types of an image manifest. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MEDIA_TYPE_OCI_MANIFEST,
  MEDIA_TYPE_DOCKER_MANIFEST,
];
/** Media types of an image config. */
export const CONFIG_MEDIA_TYPES: readonly string[] = [
  MEDIA_TYPE_OCI_CONFIG,
  MEDIA_TYPE_DOCKER_CONFIG,
];

/** The annotation that names an image in `index.json`. */
export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";
/** Largest index, manifest or config read (4 MiB, as containers-image and registries use). */
export const MAX_JSON_BLOB_SIZE = 4 * 1024 * 1024;
/** Deepest chain of nested indexes followed. */
export const MAX_INDEX_DEPTH = 4;

// --- schemas ----------------------------------------------------------------------------------

const digestSchema = z.string().check((ctx) => {
  const problem = digestProblem(ctx.value);
  if (problem !== undefined) {
    ctx.issues.push({ code: "custom", message: `invalid digest: ${problem}`, input: ctx.value });
  }
});

const annotationsSchema = z.record(z.string(), z.string());

/** os/architecture[/variant] of an image. */
export const platformSchema = z.object({
  architecture: z.string().min(1),
  os: z.string().min(1),
  "os.version": z.string().optional(),
  "os.features": z.array(z.string()).optional(),
  variant: z.string().optional(),
  features: z.array(z.string()).optional(),
});

/** An OCI content descriptor. */
export const descriptorSchema = z.object({
  mediaType: z.string().min(1).max(255),
  digest: digestSchema,
  size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  urls: z.array(z.string()).optional(),
  annotations: annotationsSchema.optional(),
  platform: platformSchema.optional(),
  artifactType: z.string().optional(),
});

/** An image index (`index.json`, OCI index, Docker manifest list). */
export const imageIndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  annotations: annotationsSchema.optional(),
});

/** An image manifest (OCI or Docker schema 2). */
export const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: annotationsSchema.optional(),
});

/** The parts of an image config cfs reads; other fields are kept in the raw bytes. */
export const imageConfigSchema = z.object({
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  rootfs: z.object({
    type: z.literal("layers"),
    diff_ids: z.array(digestSchema),
  }),
  config: z.record(z.string(), z.unknown()).nullable().optional(),
  created: z.string().optional(),
});

/** os/architecture[/variant] of an image (the OCI `platform` object; {@link platformSchema}). */
export interface Platform {
  /** The CPU architecture in Go terms (`amd64`, `arm64`, ...); not empty. */
  architecture: string;
  /** The operating system in Go terms (`linux`, `windows`, ...); not empty. */
  os: string;
  /** The OS version (used by Windows images). */
  "os.version"?: string;
  /** Required OS features (used by Windows images). */
  "os.features"?: string[];
  /** The CPU variant, e.g. `v7` for arm or `v8` for arm64. */
  variant?: string;
  /** Reserved by the OCI spec; kept as given. */
  features?: string[];
}

/** An OCI content descriptor: what a blob is, its digest and its size ({@link descriptorSchema}). */
export interface Descriptor {
  /** The media type of the referenced content; 1 to 255 characters. */
  mediaType: string;
  /** The content's digest, a valid lowercase `sha256:`/`sha512:` digest. */
  digest: string;
  /** The content's size in bytes, a non-negative safe integer. */
  size: number;
  /** Other places the content may be fetched from (not used by cfs). */
  urls?: string[];
  /** Arbitrary metadata, e.g. `org.opencontainers.image.ref.name` in `index.json`. */
  annotations?: Record<string, string>;
  /** The platform of the image a manifest describes (in an image index). */
  platform?: Platform;
  /** The artifact type of an artifact manifest (not used by cfs). */
  artifactType?: string;
}

/** An image index (`index.json`, OCI index, Docker manifest list; {@link imageIndexSchema}). */
export interface ImageIndex {
  /** Always 2. */
  schemaVersion: 2;
  /** The index's own media type, when it states one; must agree with its descriptor's. */
  mediaType?: string;
  /** The manifests (or nested indexes) it lists. */
  manifests: Descriptor[];
  /** Arbitrary metadata. */
  annotations?: Record<string, string>;
}

/** An image manifest (OCI or Docker schema 2; {@link imageManifestSchema}). */
export interface ImageManifest {
  /** Always 2. */
  schemaVersion: 2;
  /** The manifest's own media type, when it states one; must agree with its descriptor's. */
  mediaType?: string;
  /** The artifact type of an artifact manifest (not used by cfs). */
  artifactType?: string;
  /** The image config's descriptor. */
  config: Descriptor;
  /** The layers, base first. */
  layers: Descriptor[];
  /** The manifest this one refers to (OCI referrers; not used by cfs). */
  subject?: Descriptor;
  /** Arbitrary metadata. */
  annotations?: Record<string, string>;
}

/**
 * The parts of an image config cfs reads ({@link imageConfigSchema}); other fields are
 * kept in the raw bytes.
 */
export interface ImageConfig {
  /** The CPU architecture the image's binaries are for. */
  architecture: string;
  /** The operating system the image is for. */
  os: string;
  /** The CPU variant, when there is one. */
  variant?: string;
  /** The layers' uncompressed digests. */
  rootfs: {
    /** Always `layers`. */
    type: "layers";
    /** The digest of each layer's uncompressed tar, in manifest order. */
    diff_ids: string[];
  };
  /** The runtime config (`Cmd`, `Env`, `Labels`, ...), unvalidated; may be null. */
  config?: Record<string, unknown> | null;
  /** When the image was created (RFC 3339), as given. */
  created?: string;
}

/** True when `A` and `B` have the same keys and are assignable to each other. */
type Same<A, B> = [A, keyof A] extends [B, keyof B]
  ? ([B, keyof B] extends [A, keyof A] ? true : false)
  : false;
/** Compiles only for `true`. */
type Assert<T extends true> = T;
// Compile-time check that the interfaces above are exactly the schemas' parsed types.
type _SchemaTypesMatch = [
  Assert<Same<Platform, z.infer<typeof platformSchema>>>,
  Assert<Same<Descriptor, z.infer<typeof descriptorSchema>>>,
  Assert<Same<ImageIndex, z.infer<typeof imageIndexSchema>>>,
  Assert<Same<ImageManifest, z.infer<typeof imageManifestSchema>>>,
  Assert<Same<ImageConfig, z.infer<typeof imageConfigSchema>>>,
  Assert<Same<ImageConfig["rootfs"], z.infer<typeof imageConfigSchema>["rootfs"]>>,
];

/** A layer of a resolved image: its descriptor and its diff_id from the config. */
export interface LayerDescriptor extends Descriptor {
  /** The digest of the uncompressed tar (config `rootfs.diff_ids[i]`). */
  diffId: string;
}

/** An image found in a layout: the documents, as parsed and as stored. */
export interface ResolvedImage {
  /** The manifest's descriptor (from `index.json` or the selected index entry). */
  manifestDescriptor: Descriptor;
  /** The image manifest, validated. */
  manifest: ImageManifest;
  /** The manifest's bytes exactly as stored (their sha256 is the manifest digest). */
  manifestBytes: Uint8Array;
  /** The config's descriptor (`manifest.config`). */
  configDescriptor: Descriptor;
  /** The image config, validated (the fields cfs reads). */
  config: ImageConfig;
  /** The config's bytes exactly as stored (their digest is the config digest). */
  configBytes: Uint8Array;
  /** The layers, base first, each with its diff_id from the config. */
  layers: LayerDescriptor[];
  /** The digests of the indexes passed through to reach the manifest, outermost first. */
  indexDigests: string[];
}

/** A layout or one of its documents that is missing, malformed or unsupported. */
export class OciLayoutError extends CfsError {
  /** The layout directory. */
  readonly dir: string;
  /** The blob concerned, when there is one. */
  readonly digest?: string;

  /**
   * `message` is prefixed with `OCI layout DIR: ` and clipped in the middle to
   * `MAX_ERROR_LINE` (it can quote a document's values); `options.digest` names the blob.
   */
  constructor(dir: string, message: string, options?: CfsErrorOptions & { digest?: string }) {
    super(clipMiddle(`OCI layout ${dir}: ${message}`), withCode(options, "oci-layout-invalid"));
    this.name = "OciLayoutError";
    this.dir = dir;
    this.digest = options?.digest;
  }
}

// --- platforms --------------------------------------------------------------------------------

const ARCH_ALIASES: Record<string, string> = {
  x86_64: "amd64",
  "x86-64": "amd64",
  aarch64: "arm64",
  armhf: "arm",
  armel: "arm",
  i386: "386",
  i686: "386",
};

/** The platform this process runs on, in OCI terms (`linux/amd64` on x86-64 Linux). */
export function hostPlatform(): Platform {
  return { os: Deno.build.os, architecture: ARCH_ALIASES[Deno.build.arch] ?? Deno.build.arch };
}

/**
 * Parses `OS/ARCH[/VARIANT]` (as `--platform` takes it), normalising architecture
 * aliases (`x86_64` -> `amd64`, `aarch64` -> `arm64`). Throws a `TypeError` naming the
 * input when it does not have two or three non-empty lowercase parts.
 */
export function parsePlatform(text: string): Platform {
  const parts = text.split("/");
  if (
    parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9][a-z0-9._-]*$/.test(p))
  ) {
    throw new TypeError(
      `invalid platform ${JSON.stringify(clip(text, 80))}: expected OS/ARCH[/VARIANT], ` +
        "e.g. linux/amd64 or linux/arm64/v8",
    );
  }
  const [os, arch, variant] = parts;
  const platform: Platform = { os, architecture: ARCH_ALIASES[arch] ?? arch };
  if (variant !== undefined) platform.variant = variant;
  return platform;
}

/** `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, ...(p.variant ? [p.variant] : [])].join("/");
}

function normalVariant(p: Platform): string | undefined {
  const arch = ARCH_ALIASES[p.architecture] ?? p.architecture;
  if (arch === "arm64" && (p.variant === undefined || p.variant === "v8")) return undefined;
  return p.variant || undefined;
}

/**
 * Whether `have` satisfies `want`: same OS and architecture, and the same variant when
 * `want` names one (`arm64` and `arm64/v8` are the same).
 */
export function platformMatches(want: Platform, have: Platform): boolean {
  const arch = (a: string) => ARCH_ALIASES[a] ?? a;
  if (want.os !== have.os || arch(want.architecture) !== arch(have.architecture)) return false;
  if (want.variant === undefined) return true;
  return normalVariant(want) === normalVariant(have);
}

function variantNumber(p: Platform): number | undefined {
  const arm64 = (ARCH_ALIASES[p.architecture] ?? p.architecture) === "arm64";
  const variant = normalVariant(p) ?? (arm64 ? "v8" : undefined);
  const m = variant === undefined ? null : /^v(\d+)/.exec(variant);
  return m ? Number(m[1]) : undefined;
}

/**
 * The entry of `manifests` for `platform`: the first that matches exactly (variant
 * included, {@link platformMatches}); else, when `platform` names a variant `vN`, the
 * entry of the same OS and architecture with the highest variant below N or with no
 * variant (an arm64/v9 machine runs arm64/v8 images). Undefined when none fits.
 */
export function selectPlatform(
  manifests: readonly Descriptor[],
  platform: Platform,
): Descriptor | undefined {
  const withPlatform = manifests.filter((m) => m.platform !== undefined);
  const exact = withPlatform.find((m) => platformMatches(platform, m.platform!));
  if (exact !== undefined || platform.variant === undefined) return exact;
  const want = variantNumber(platform);
  if (want === undefined) return undefined;
  let best: Descriptor | undefined;
  let bestN = -1;
  for (const m of withPlatform) {
    if (!platformMatches({ os: platform.os, architecture: platform.architecture }, m.platform!)) {
      continue;
    }
    const n = variantNumber(m.platform!) ?? 0;
    if (n <= want && n > bestN) {
      best = m;
      bestN = n;
    }
  }
  return best;
}

// --- the layout -------------------------------------------------------------------------------

/** Options for {@link OciLayout.resolve}. */
export interface ResolveOptions {
  /** The `org.opencontainers.image.ref.name`; undefined: the only image in the layout. */
  tag?: string;
  /** The platform to pick from an image index; default {@link hostPlatform}. */
  platform?: Platform;
}

/** An opened OCI image layout directory. */
export class OciLayout {
  /** The layout directory, as given. */
  readonly dir: string;
  /** `index.json`, validated. */
  readonly index: ImageIndex;

  private constructor(dir: string, index: ImageIndex) {
    this.dir = dir;
    this.index = index;
  }

  /** Checks `oci-layout` and reads `index.json`. Throws {@link OciLayoutError}. */
  static async open(dir: string): Promise<OciLayout> {
    const layoutFile = await readSmallFile(dir, join(dir, "oci-layout"), "oci-layout");
    if (layoutFile === undefined) {
      throw new OciLayoutError(dir, "not an OCI image layout (no oci-layout file)");
    }
    const version = parseJson(
      dir,
      layoutFile,
      "oci-layout",
      z.object({
        imageLayoutVersion: z.string(),
      }),
    );
    if (version.imageLayoutVersion !== "1.0.0") {
      throw new OciLayoutError(
        dir,
        `unsupported imageLayoutVersion ${JSON.stringify(clip(version.imageLayoutVersion, 40))}`,
      );
    }
    const indexFile = await readSmallFile(dir, join(dir, "index.json"), "index.json");
    if (indexFile === undefined) throw new OciLayoutError(dir, "no index.json");
    const index = parseJson(dir, indexFile, "index.json", imageIndexSchema);
    return new OciLayout(dir, index);
  }

  /** The tags (`org.opencontainers.image.ref.name`) in `index.json`, in order. */
  tags(): string[] {
    return this.index.manifests.flatMap((m) => {
      const name = m.annotations?.[REF_NAME_ANNOTATION];
      return name === undefined ? [] : [name];
    });
  }

  /**
   * The path of a blob. Throws {@link OciLayoutError} for a digest that is not a valid
   * sha256/sha512 digest (so the path never leaves `blobs/`).
   */
  blobPath(digest: string): string {
    let parsed;
    try {
      parsed = parseDigest(digest);
    } catch (e) {
      throw new OciLayoutError(this.dir, (e as Error).message, { cause: e, digest });
    }
    return join(this.dir, "blobs", parsed.algorithm, parsed.hex);
  }

  /**
   * Reads a JSON document (at most {@link MAX_JSON_BLOB_SIZE}, checked before reading),
   * verifies its digest, parses and validates it. `what` names it in errors.
   */
  private async readJsonBlob<T extends z.ZodType>(
    descriptor: Descriptor,
    schema: T,
    what: string,
  ): Promise<{ value: z.infer<T>; bytes: Uint8Array }> {
    const { digest, size } = descriptor;
    const label = `${what} ${digest}`;
    if (size > MAX_JSON_BLOB_SIZE) {
      throw new OciLayoutError(
        this.dir,
        `${label}: declared size ${size} exceeds the ${MAX_JSON_BLOB_SIZE}-byte limit; not read`,
        { digest },
      );
    }
    const path = this.blobPath(digest);
    const info = await this.statBlob(path, label, digest);
    if (info.size > MAX_JSON_BLOB_SIZE) {
      throw new OciLayoutError(
        this.dir,
        `${label}: file is ${info.size} bytes, over the ${MAX_JSON_BLOB_SIZE}-byte limit; not read`,
        { digest },
      );
    }
    if (info.size !== size) {
      throw new BlobError(
        digest,
        info.size < size ? "truncated" : "too-large",
        `${label}: file is ${info.size} bytes, the descriptor says ${size}`,
      );
    }
    const bytes = await Deno.readFile(path);
    if (bytes.length !== size) {
      throw new BlobError(digest, "truncated", `${label}: changed while being read`);
    }
    const algorithm = digest.slice(0, digest.indexOf(":")) as "sha256" | "sha512";
    const actual = digestBytes(bytes, algorithm);
    if (actual !== digest) {
      throw new BlobError(digest, "digest-mismatch", `${label}: content has digest ${actual}`);
    }
    return { value: parseJson(this.dir, bytes, label, schema, digest), bytes };
  }

  /**
   * Finds the image for `options.tag` (or the only one), follows image indexes by
   * platform, and reads and checks manifest and config.
   */
  async resolve(options: ResolveOptions = {}): Promise<ResolvedImage> {
    const platform = options.platform ?? hostPlatform();
    const entries = this.index.manifests;
    let candidates: Descriptor[];
    if (options.tag !== undefined) {
      candidates = entries.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] === options.tag);
      if (candidates.length === 0) {
        throw new OciLayoutError(
          this.dir,
          `no image tagged ${JSON.stringify(clip(options.tag, 100))} ` +
            `(tags: ${listed(this.tags().map((t) => JSON.stringify(clip(t, 60))))})`,
        );
      }
    } else {
      candidates = entries;
      if (candidates.length === 0) throw new OciLayoutError(this.dir, "index.json lists no images");
    }
    let descriptor: Descriptor;
    if (candidates.length === 1) {
      descriptor = candidates[0];
    } else if (candidates.every((m) => m.platform !== undefined)) {
      descriptor = this.pickPlatform(candidates, platform, "index.json");
    } else {
      throw new OciLayoutError(
        this.dir,
        options.tag === undefined
          ? `${candidates.length} images in the layout; name one with oci:DIR:TAG ` +
            `(tags: ${listed(this.tags().map((t) => JSON.stringify(clip(t, 60))))})`
          : `${candidates.length} images tagged ${JSON.stringify(clip(options.tag, 100))}`,
      );
    }

    const indexDigests: string[] = [];
    for (let depth = 0;; depth++) {
      if (MANIFEST_MEDIA_TYPES.includes(descriptor.mediaType)) break;
      if (!INDEX_MEDIA_TYPES.includes(descriptor.mediaType)) {
        throw new OciLayoutError(
          this.dir,
          `${descriptor.digest}: media type ${JSON.stringify(clip(descriptor.mediaType, 100))} ` +
            "is neither an image manifest nor an image index",
          { digest: descriptor.digest },
        );
      }
      if (depth >= MAX_INDEX_DEPTH) {
        throw new OciLayoutError(
          this.dir,
          `image indexes nested deeper than ${MAX_INDEX_DEPTH}`,
          { digest: descriptor.digest },
        );
      }
      const { value: index } = await this.readJsonBlob(descriptor, imageIndexSchema, "image index");
      this.checkMediaType(descriptor, index.mediaType, "image index");
      indexDigests.push(descriptor.digest);
      descriptor = this.pickPlatform(index.manifests, platform, `image index ${descriptor.digest}`);
    }

    const { value: manifest, bytes: manifestBytes } = await this.readJsonBlob(
      descriptor,
      imageManifestSchema,
      "image manifest",
    );
    this.checkMediaType(descriptor, manifest.mediaType, "image manifest");
    const configDescriptor = manifest.config;
    if (!CONFIG_MEDIA_TYPES.includes(configDescriptor.mediaType)) {
      throw new OciLayoutError(
        this.dir,
        `image manifest ${descriptor.digest}: config media type ` +
          `${
            JSON.stringify(clip(configDescriptor.mediaType, 100))
          } is not a container image config`,
        { digest: descriptor.digest },
      );
    }
    for (const layer of manifest.layers) {
      if (layerCompression(layer.mediaType) === undefined) {
        throw new OciLayoutError(
          this.dir,
          `image manifest ${descriptor.digest}: layer ${layer.digest} has unsupported media type ` +
            JSON.stringify(clip(layer.mediaType, 100)),
          { digest: descriptor.digest },
        );
      }
    }
    const { value: config, bytes: configBytes } = await this.readJsonBlob(
      configDescriptor,
      imageConfigSchema,
      "image config",
    );
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length) {
      throw new OciLayoutError(
        this.dir,
        `image config ${configDescriptor.digest} lists ${diffIds.length} diff_ids for ` +
          `${manifest.layers.length} layers in manifest ${descriptor.digest}`,
        { digest: configDescriptor.digest },
      );
    }
    const layers = manifest.layers.map((layer, i) => ({ ...layer, diffId: diffIds[i] }));
    return {
      manifestDescriptor: descriptor,
      manifest,
      manifestBytes,
      configDescriptor,
      config,
      configBytes,
      layers,
      indexDigests,
    };
  }

  /**
   * A blob's bytes as a stream checked against the descriptor (size first, from the
   * file; then size and digest while streaming).
   */
  async openBlob(
    descriptor: Pick<Descriptor, "digest" | "size">,
  ): Promise<ReadableStream<Uint8Array>> {
    const path = this.blobPath(descriptor.digest);
    const label = `blob ${descriptor.digest}`;
    const info = await this.statBlob(path, label, descriptor.digest);
    if (info.size !== descriptor.size) {
      throw new BlobError(
        descriptor.digest,
        info.size < descriptor.size ? "truncated" : "too-large",
        `${label}: file is ${info.size} bytes, the descriptor says ${descriptor.size}`,
      );
    }
    const file = await Deno.open(path);
    return verifyBlob(file.readable, descriptor, "blob");
  }

  /** A layer's uncompressed tar: compressed digest, size and diff_id checked as it streams. */
  async openLayer(
    layer: LayerDescriptor,
    onCompressedBytes?: (n: number) => void,
  ): Promise<ReadableStream<Uint8Array>> {
    const path = this.blobPath(layer.digest);
    const label = `layer ${layer.digest}`;
    const info = await this.statBlob(path, label, layer.digest);
    if (info.size !== layer.size) {
      throw new BlobError(
        layer.digest,
        info.size < layer.size ? "truncated" : "too-large",
        `${label}: file is ${info.size} bytes, the descriptor says ${layer.size}`,
      );
    }
    const file = await Deno.open(path);
    try {
      return verifiedLayerFile(file, path, layer, layer.diffId, { onCompressedBytes });
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /**
   * The entry of `manifests` for `platform` ({@link selectPlatform}); throws
   * {@link OciLayoutError} listing the available platforms when none fits.
   */
  private pickPlatform(manifests: Descriptor[], platform: Platform, where: string): Descriptor {
    const found = selectPlatform(manifests, platform);
    if (found === undefined) {
      const have = manifests.filter((m) => m.platform).map((m) => formatPlatform(m.platform!));
      throw new OciLayoutError(
        this.dir,
        `${where}: no image for platform ${formatPlatform(platform)} ` +
          `(available: ${listed(have.map((p) => clip(p, 60)))})`,
      );
    }
    return found;
  }

  /**
   * Throws {@link OciLayoutError} when a document states a media type (`inDocument`)
   * other than its descriptor's, so a manifest cannot pass as an index or the reverse.
   */
  private checkMediaType(descriptor: Descriptor, inDocument: string | undefined, what: string) {
    if (inDocument !== undefined && inDocument !== descriptor.mediaType) {
      throw new OciLayoutError(
        this.dir,
        `${what} ${descriptor.digest}: media type ${JSON.stringify(clip(inDocument, 100))} ` +
          `differs from the descriptor's ${JSON.stringify(clip(descriptor.mediaType, 100))}`,
        { digest: descriptor.digest },
      );
    }
  }

  /**
   * `lstat` of a blob file; throws {@link OciLayoutError} when it is missing or not a
   * regular file (a symlink is refused, so a blob cannot point outside `blobs/`).
   */
  private async statBlob(path: string, label: string, digest: string): Promise<Deno.FileInfo> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new OciLayoutError(this.dir, `${label}: missing (${path})`, { digest, cause: e });
      }
      throw e;
    }
    if (!info.isFile) {
      throw new OciLayoutError(this.dir, `${label}: not a regular file (${path})`, { digest });
    }
    return info;
  }
}

/**
 * Items for a message: the first 8 joined by commas, then how many there are in all ("none"
 * for no items), so that an index listing thousands of images still gives a short error.
 */
function listed(items: readonly string[]): string {
  if (items.length === 0) return "none";
  const shown = items.slice(0, 8).join(", ");
  return items.length > 8 ? `${shown}, ... (${items.length} in all)` : shown;
}

/** Reads a file of at most {@link MAX_JSON_BLOB_SIZE}; undefined when it does not exist. */
async function readSmallFile(
  dir: string,
  path: string,
  what: string,
): Promise<Uint8Array | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new OciLayoutError(dir, `${what}: ${(e as Error).message}`, { cause: e });
  }
  if (!info.isFile) throw new OciLayoutError(dir, `${what} is not a regular file`);
  if (info.size > MAX_JSON_BLOB_SIZE) {
    throw new OciLayoutError(
      dir,
      `${what} is ${info.size} bytes, over the ${MAX_JSON_BLOB_SIZE}-byte limit; not read`,
    );
  }
  return await Deno.readFile(path);
}

function parseJson<T extends z.ZodType>(
  dir: string,
  bytes: Uint8Array,
  what: string,
  schema: T,
  digest?: string,
): z.infer<T> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new OciLayoutError(dir, `${what} is not JSON: ${(e as Error).message}`, {
      cause: e,
      digest,
    });
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const at = issue.path.length ? ` at ${issue.path.join(".")}` : "";
    throw new OciLayoutError(dir, `${what} is malformed${at}: ${issue.message}`, {
      cause: result.error,
      digest,
    });
  }
  return result.data;
}
