/**
 * Small file-system steps every part of the repository uses: existence checks, atomic file
 * and symlink replacement, sorted directory listings, temporary names.
 *
 * Temporary names: objects are staged as `objects/.tmp-object-<random>` (composefs-rs 0.9.4
 * names its fallback temporary files so, and its gc and fsck only look inside
 * `objects/XX/`, so a file left by a crash never breaks them); links and meta.json as
 * `.tmp-<random>` next to their final name.
 *
 * @module
 */
import { join } from "node:path";

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

/** True when `path` is a directory (following symlinks). */
export function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** 16 random hex digits. */
export function randomSuffix(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Writes `data` to `path` atomically (temporary file in the same directory, fsync, rename). */
export function writeFileAtomic(path: string, data: Uint8Array, mode = 0o644): void {
  const tmp = join(path, "..", `${TMP_PREFIX}${randomSuffix()}`);
  const f = Deno.openSync(tmp, { write: true, createNew: true, mode });
  try {
    let off = 0;
    while (off < data.length) off += f.writeSync(data.subarray(off));
    f.syncDataSync();
  } catch (e) {
    f.close();
    Deno.removeSync(tmp);
    throw e;
  }
  f.close();
  Deno.renameSync(tmp, path);
}

/** Creates or replaces the symlink `path` -> `target` atomically. */
export function symlinkAtomic(target: string, path: string): void {
  const tmp = join(path, "..", `${TMP_PREFIX}${randomSuffix()}`);
  Deno.symlinkSync(target, tmp);
  try {
    Deno.renameSync(tmp, path);
  } catch (e) {
    Deno.removeSync(tmp);
    throw e;
  }
}

/** Reads a symlink's target, or undefined when there is no symlink at `path`. */
export function readLinkOrUndefined(path: string): string | undefined {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return undefined;
  }
}

/** A directory's entries sorted by name (byte order for ASCII names), [] when it is missing. */
export function sortedDir(path: string): Deno.DirEntry[] {
  if (!exists(path)) return [];
  return [...Deno.readDirSync(path)].sort((
    a,
    b,
  ) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
