/**
 * `meta.json`, the repository's metadata, as composefs-rs 0.9.4 writes and reads it:
 *
 * ```json
 * {
 *   "version": 1,
 *   "algorithm": "fsverity-sha512-12",
 *   "features": {
 *     "compatible": [],
 *     "read-only-compatible": ["v1_erofs"],
 *     "incompatible": []
 *   },
 *   "erofs_formats": { "default": 1 }
 * }
 * ```
 *
 * - `version` above {@link REPO_FORMAT_VERSION}: refused.
 * - Feature flags follow ext4's model: unknown `incompatible` ones refuse the repository,
 *   unknown `read-only-compatible` ones make it read-only, unknown `compatible` ones are
 *   ignored. The one flag 0.9.4 knows is `v1_erofs` (read-only-compatible): the repository's
 *   images are EROFS format V1, so that tools older than V1 do not write V2 images into it.
 * - `erofs_formats` (`{"default": N, "extra": [M, ...]}`, `extra` omitted when empty) is the
 *   authoritative EROFS format configuration. A file without it (every repository written
 *   before it existed: cfsctl 0.7/0.8, and cfs before it learned 0.9) means V1 when the
 *   `v1_erofs` flag is there, V2 otherwise; an explicit `{"default": 2}` reads the same way.
 *
 * Pure: text in, values out; reading and writing the file is `repository.ts`'s.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";
import { z } from "zod";
import type { VerityAlgorithm } from "../fsverity/digest.ts";

/** The repository format version we write and understand. */
export const REPO_FORMAT_VERSION = 1;
/** The name of the repository's metadata file, in its top directory. */
export const META_FILE = "meta.json";
/** The read-only-compatible feature flag of repositories whose images are EROFS V1. */
export const FEATURE_V1_EROFS = "v1_erofs";

/** `fsverity-<hash>-<lg blocksize>` as meta.json names it. */
export type RepoAlgorithm = "fsverity-sha256-12" | "fsverity-sha512-12";
/** Every {@link RepoAlgorithm}, the default (SHA-512, as `cfsctl init`) first. */
export const REPO_ALGORITHMS: readonly RepoAlgorithm[] = [
  "fsverity-sha512-12",
  "fsverity-sha256-12",
];

/** An EROFS image format version: 0 and 1 (C mkcomposefs compatible), 2 (legacy composefs-rs). */
export type ErofsFormatVersion = 0 | 1 | 2;

/** Which EROFS formats a repository writes: `default` (the one refs name) plus `extra`. */
export interface ErofsFormats {
  /** The primary format: the image `commit` returns and named refs point at. */
  default: ErofsFormatVersion;
  /** Further formats written alongside, sorted, without `default`. */
  extra: ErofsFormatVersion[];
}

/** Feature flags known to this cfs, by tier (composefs-rs 0.9.4's set). */
const KNOWN = {
  compatible: [] as string[],
  "read-only-compatible": [FEATURE_V1_EROFS],
  incompatible: [] as string[],
};

/**
 * meta.json's content after validation (absent feature lists read as empty). Spelled out
 * rather than inferred from the zod schema so that the public type does not expose zod.
 */
export interface RepoMeta {
  /** The repository format version; newer than {@link REPO_FORMAT_VERSION} is refused. */
  version: number;
  /** The fs-verity algorithm that names every object and image. */
  algorithm: RepoAlgorithm;
  /** Feature flags, by how an implementation that does not know one must react. */
  features: {
    /** Safe to ignore. */
    compatible: string[];
    /** Unknown ones still allow reading but forbid writing. */
    "read-only-compatible": string[];
    /** Unknown ones make the repository unusable: opening it fails. */
    incompatible: string[];
  };
  /** The `erofs_formats` field as written, when the file has one. */
  erofsFormats?: ErofsFormats;
}

/** A meta.json that cannot be used; the message names the file and the field. */
export class MetaError extends CfsError {
  /** Creates the error with a one-line message; `code` defaults to `meta-invalid`. */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, withCode(options, "meta-invalid"));
    this.name = "MetaError";
  }
}

const Version = z.union([z.literal(0), z.literal(1), z.literal(2)]);

const MetaSchema = z.object({
  version: z.number().int().nonnegative(),
  algorithm: z.enum(["fsverity-sha256-12", "fsverity-sha512-12"]),
  features: z.object({
    compatible: z.array(z.string()).default([]),
    "read-only-compatible": z.array(z.string()).default([]),
    incompatible: z.array(z.string()).default([]),
  }).default({ compatible: [], "read-only-compatible": [], incompatible: [] }),
  erofs_formats: z.object({
    default: Version,
    extra: z.array(Version).default([]),
  }).optional(),
});

/** The hash behind a repository algorithm name. */
export function verityAlgorithmOf(alg: RepoAlgorithm): VerityAlgorithm {
  return alg === "fsverity-sha512-12" ? "sha512" : "sha256";
}

/** The repository algorithm name of a hash. */
export function repoAlgorithmOf(alg: VerityAlgorithm): RepoAlgorithm {
  return alg === "sha512" ? "fsverity-sha512-12" : "fsverity-sha256-12";
}

/** Sorted, de-duplicated `extra` without the default, as 0.9.4 keeps it (a set). */
function normalizeFormats(f: { default: ErofsFormatVersion; extra?: ErofsFormatVersion[] }) {
  const extra = [...new Set(f.extra ?? [])].filter((v) => v !== f.default).sort();
  return { default: f.default, extra };
}

/**
 * Metadata for a new repository, as `cfsctl init` writes it: `erofs_formats` always, and
 * the `v1_erofs` flag when the default format is V1.
 */
export function newMeta(
  algorithm: RepoAlgorithm,
  formats: { default: ErofsFormatVersion; extra?: ErofsFormatVersion[] } = { default: 1 },
): RepoMeta {
  const f = normalizeFormats(formats);
  return {
    version: REPO_FORMAT_VERSION,
    algorithm,
    features: {
      compatible: [],
      "read-only-compatible": f.default === 1 ? [FEATURE_V1_EROFS] : [],
      incompatible: [],
    },
    erofsFormats: f,
  };
}

/**
 * Metadata for an old-format repository being upgraded (no meta.json: cfsctl before 0.7): what
 * composefs-rs 0.9.4's `open_upgrade` writes, which is a new repository's metadata with the
 * default EROFS format (V1 and its flag; measured with cfsctl 0.9.4, whose source comment says
 * V2 but whose code writes V1).
 */
export function legacyMeta(algorithm: RepoAlgorithm): RepoMeta {
  return newMeta(algorithm, { default: 1 });
}

/** The EROFS formats a repository writes; see the module documentation for old files. */
export function erofsFormatsOf(meta: RepoMeta): ErofsFormats {
  const f = meta.erofsFormats;
  if (f && !(f.default === 2 && f.extra.length === 0)) return f;
  if (meta.features["read-only-compatible"].includes(FEATURE_V1_EROFS)) {
    return { default: 1, extra: [] };
  }
  return { default: 2, extra: [] };
}

/**
 * Parses and validates meta.json's text. Refuses a newer format version and unknown
 * incompatible features; `path` names the file in errors.
 */
export function parseMeta(text: string, path: string): RepoMeta {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new MetaError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const parsed = MetaSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new MetaError(`${path}: ${issue.path.join(".") || "(top level)"}: ${issue.message}`);
  }
  const m = parsed.data;
  if (m.version > REPO_FORMAT_VERSION) {
    throw new MetaError(
      `${path}: repository format version ${m.version} is newer than this cfs understands ` +
        `(${REPO_FORMAT_VERSION})`,
    );
  }
  const unknown = m.features.incompatible.filter((f) => !KNOWN.incompatible.includes(f));
  if (unknown.length > 0) {
    throw new MetaError(`${path}: repository requires unknown features: ${unknown.join(", ")}`, {
      code: "meta-unsupported",
    });
  }
  return {
    version: m.version,
    algorithm: m.algorithm,
    features: m.features,
    erofsFormats: m.erofs_formats ? normalizeFormats(m.erofs_formats) : undefined,
  };
}

/** Read-only-compatible flags this cfs does not know: any of them forbid writing. */
export function unknownReadOnlyFeatures(meta: RepoMeta): string[] {
  return meta.features["read-only-compatible"].filter((f) =>
    !KNOWN["read-only-compatible"].includes(f)
  );
}

/**
 * meta.json's bytes, as composefs-rs writes them (serde_json pretty printing: two-space
 * indent, fields in this order, `extra` omitted when empty, a final newline).
 */
export function formatMeta(meta: RepoMeta): Uint8Array {
  const out: Record<string, unknown> = {
    version: meta.version,
    algorithm: meta.algorithm,
    features: {
      compatible: meta.features.compatible,
      "read-only-compatible": meta.features["read-only-compatible"],
      incompatible: meta.features.incompatible,
    },
  };
  if (meta.erofsFormats) {
    out.erofs_formats = meta.erofsFormats.extra.length
      ? { default: meta.erofsFormats.default, extra: meta.erofsFormats.extra }
      : { default: meta.erofsFormats.default };
  }
  return new TextEncoder().encode(JSON.stringify(out, null, 2) + "\n");
}
