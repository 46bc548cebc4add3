/**
 * Named references: `images/refs/<name>` and `streams/refs/<name>`, relative symlinks to a
 * first-level entry of their category (`../<hex>` for an image, `../../oci-manifest-...` for
 * a tag below `refs/oci/`). They are the GC roots. Names are relative paths whose components
 * are not empty, `.`, `..` or a temporary name; composefs-rs makes the intermediate
 * directories and replaces an existing link atomically, and so does cfs.
 *
 * @module
 */
import { join } from "node:path";
import { exists, sortedDir, symlinkAtomic, TMP_PREFIX } from "./files.ts";
import { RepositoryError } from "./errors.ts";

/** The two categories that hold links to objects and refs to those links. */
export type RefCategory = "images" | "streams";

/** Ref names are relative paths without empty, `.`, `..` or temporary components. */
export function validateRefName(name: string): void {
  const parts = name.split("/");
  if (
    name === "" || name.includes("\0") ||
    parts.some((p) => p === "" || p === "." || p === ".." || p.startsWith(TMP_PREFIX))
  ) {
    throw new RepositoryError(
      `invalid ref name '${name}': use a relative path without empty, '.' or '..' components`,
    );
  }
}

/**
 * The target of the link `<category>/refs/<name>` to the first-level entry `entry`: one `..`
 * per directory between the link and the category directory.
 */
export function refLinkTarget(name: string, entry: string): string {
  return `${"../".repeat(name.split("/").length)}${entry}`;
}

/** Points `<category>/refs/<name>` at `<category>/<entry>` (made or replaced atomically). */
export function setRef(repoPath: string, category: RefCategory, name: string, entry: string): void {
  validateRefName(name);
  const refPath = join(repoPath, category, "refs", name);
  Deno.mkdirSync(join(refPath, ".."), { recursive: true });
  symlinkAtomic(refLinkTarget(name, entry), refPath);
}

/** One ref found by {@link walkRefs}. */
export interface RefEntry {
  /** The ref's name below `refs/` (`oci/x%2Fy:1`). */
  name: string;
  /** The link's target as written. */
  target: string;
  /** The link's absolute path. */
  path: string;
}

/** Every symlink below `dir` (recursively, sorted), named relative to `dir` after `prefix`. */
export function walkRefs(dir: string, prefix = ""): RefEntry[] {
  const out: RefEntry[] = [];
  for (const e of sortedDir(dir)) {
    const p = join(dir, e.name);
    const name = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.name.startsWith(TMP_PREFIX)) continue; // an interrupted ref update, not a ref
    if (e.isDirectory) out.push(...walkRefs(p, name));
    else if (e.isSymlink) out.push({ name, target: Deno.readLinkSync(p), path: p });
  }
  return out;
}

/** The last path component of a link target: the first-level entry a ref points at. */
export function refEntry(target: string): string {
  return target.split("/").pop() ?? "";
}

/**
 * Removes `<category>/refs/<name>` and the directories above it that become empty. False when
 * there was no such ref; an error when something other than a symlink is there.
 */
export function removeRef(repoPath: string, category: RefCategory, name: string): boolean {
  validateRefName(name);
  const base = join(repoPath, category, "refs");
  const refPath = join(base, name);
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(refPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
  if (!st.isSymlink) throw new RepositoryError(`${refPath} is not a ref (not a symbolic link)`);
  Deno.removeSync(refPath);
  for (let dir = join(refPath, ".."); dir.length > base.length; dir = join(dir, "..")) {
    try {
      Deno.removeSync(dir);
    } catch {
      break;
    }
  }
  return true;
}

/** `.tmp-*` symlinks left in images/, streams/ and their refs/ by interrupted updates. */
export function leftoverTemporaryLinks(repoPath: string): string[] {
  const out: string[] = [];
  const scan = (dir: string, recurse: boolean) => {
    if (!exists(dir)) return;
    for (const e of sortedDir(dir)) {
      const p = join(dir, e.name);
      if (e.name.startsWith(TMP_PREFIX)) out.push(p);
      else if (recurse && e.isDirectory) scan(p, true);
    }
  };
  for (const category of ["images", "streams"]) {
    scan(join(repoPath, category), false);
    scan(join(repoPath, category, "refs"), true);
  }
  return out;
}
