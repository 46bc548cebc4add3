/**
 * Named references: `images/refs/<name>` and `streams/refs/<name>`, relative symlinks to a
 * first-level entry of their category (`../<hex>` for an image, `../../oci-manifest-...` for
 * a tag below `refs/oci/`). They are the GC roots. Names are relative paths whose components
 * are not empty, `.`, `..` or a temporary name; composefs-rs makes the intermediate
 * directories and replaces an existing link atomically, and so does cfs.
 *
 * @module
 */
import type { RepoDir } from "./dir.ts";
import { isTemporaryLinkName, TMP_PREFIX } from "./files.ts";
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
export function setRef(dir: RepoDir, category: RefCategory, name: string, entry: string): void {
  validateRefName(name);
  dir.symlinkAtomic(refLinkTarget(name, entry), `${category}/refs/${name}`);
}

/** One ref found by {@link walkRefs}. */
export interface RefEntry {
  /** The ref's name below `refs/` (`oci/x%2Fy:1`). */
  name: string;
  /** The link's target as written. */
  target: string;
  /** The link's path relative to the repository. */
  path: string;
}

/**
 * Every symlink below the repository directory `rel` (recursively, sorted; directories that
 * are links are not entered), named relative to it after `prefix`.
 */
export function walkRefs(dir: RepoDir, rel: string, prefix = ""): RefEntry[] {
  const out: RefEntry[] = [];
  for (const e of dir.readDir(rel)) {
    const p = `${rel}/${e.name}`;
    const name = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.name.startsWith(TMP_PREFIX)) continue; // an interrupted ref update, not a ref
    if (e.isDirectory) out.push(...walkRefs(dir, p, name));
    else if (e.isSymlink) out.push({ name, target: dir.readLink(p) ?? "", path: p });
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
export function removeRef(dir: RepoDir, category: RefCategory, name: string): boolean {
  validateRefName(name);
  const base = `${category}/refs`;
  const refPath = `${base}/${name}`;
  const st = dir.lstat(refPath);
  if (st === undefined) return false;
  if ((st.mode & 0o170000) !== 0o120000) {
    throw new RepositoryError(`${dir.abs(refPath)} is not a ref (not a symbolic link)`, {
      code: "repository-invalid",
    });
  }
  dir.unlink(refPath);
  const parts = name.split("/");
  for (parts.pop(); parts.length > 0; parts.pop()) {
    if (!dir.rmdirIfEmpty(`${base}/${parts.join("/")}`)) break;
  }
  return true;
}

/**
 * Temporary links left in images/, streams/ and their refs/ by interrupted updates (symlinks
 * with the names of {@link isTemporaryLinkName}), as paths relative to the repository.
 */
export function leftoverTemporaryLinks(dir: RepoDir): string[] {
  const out: string[] = [];
  const scan = (rel: string, recurse: boolean) => {
    for (const e of dir.readDir(rel)) {
      const p = `${rel}/${e.name}`;
      if (e.isSymlink && isTemporaryLinkName(e.name)) out.push(p);
      else if (recurse && e.isDirectory && !e.name.startsWith(TMP_PREFIX)) scan(p, true);
    }
  };
  for (const category of ["images", "streams"]) {
    scan(category, false);
    scan(`${category}/refs`, true);
  }
  return out;
}
