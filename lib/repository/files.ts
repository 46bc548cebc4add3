/**
 * Names and small helpers every part of the repository shares. File system access below the
 * repository goes through `dir.ts` (relative, never following links); what is here works on
 * the repository path itself, before the repository directory exists or is open.
 *
 * Temporary names: objects are staged as `objects/.tmp-object-<random>` (composefs-rs 0.9.4
 * names its fallback temporary files so, and its gc and fsck only look inside
 * `objects/XX/`, so a file left by a crash never breaks them); links and meta.json as
 * `.tmp-<random>` next to their final name.
 *
 * @module
 */

/** Prefix of every temporary name cfs makes in a repository. */
export const TMP_PREFIX = ".tmp-";
/** Prefix of staged object files, directly in `objects/`. */
export const TMP_OBJECT_PREFIX = ".tmp-object-";

/** True when `path` exists (without following a final symlink). */
export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** 16 random hex digits. */
export function randomSuffix(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/**
 * Whether `name` (directly in `objects/`, or in `objects/XX/` where earlier cfs releases staged)
 * is a staging file a composefs tool could have left: cfs's `.tmp-object-<16 hex>` (and
 * `.tmp-<16 hex>` of earlier releases), composefs-rs 0.9.4's `.tmp-object-<12 alphanumerics>`.
 * gc removes only these, never another name.
 */
export function isStagingName(name: string): boolean {
  return /^\.tmp-(object-)?[0-9a-f]{16}$/.test(name) || /^\.tmp-object-[0-9A-Za-z]{12}$/.test(name);
}

/**
 * Whether `name` in `images/`, `streams/` or below their `refs/` is the temporary link of an
 * interrupted atomic replacement: cfs's `.tmp-<16 hex>`, composefs-rs 0.9.4's
 * `.symlink-<12 alphanumerics>`.
 */
export function isTemporaryLinkName(name: string): boolean {
  return /^\.tmp-[0-9a-f]{16}$/.test(name) || /^\.symlink-[0-9A-Za-z]{12}$/.test(name);
}
