/**
 * Garbage collection with composefs-rs 0.9.4's semantics, so that cfs and cfsctl keep and
 * remove the same things in a shared repository:
 *
 * 1. Roots: every ref below `images/refs/` (the image is live and so is every object it
 *    refers to), every ref below `streams/refs/`, and the caller's extra roots (first-level
 *    names in `images/` or `streams/`).
 * 2. A live stream keeps its own object, the objects its content refers to, and the object
 *    of every named reference it holds; a named reference whose object is itself a stream
 *    (found by object id among `streams/`' links) is walked too. That is how a tag keeps its
 *    manifest, config, layers and the config's EROFS images (`composefs.image*` refs) alive.
 * 3. Every object below `objects/XX/` that is not live is removed. Names that cannot be an
 *    object (not hex of this repository's length) are left alone: gc only deletes what a
 *    composefs tool could have written. Staging files of interrupted writes go too, but only
 *    regular files with a staging name (`files.ts`, {@link isStagingName}), and temporary
 *    links only as symlinks with a temporary link's name.
 * 4. Links that now point nowhere are pruned: first-level entries of `images/` and
 *    `streams/`, and refs below their `refs/`. A link whose target leads out of the repository
 *    is neither followed nor removed (fsck reports it).
 *
 * Everything is decided before anything is deleted: a live stream or image that cannot be
 * read stops gc with an error and nothing removed. Every path is opened through `dir.ts`, so a
 * directory of the repository replaced by a symbolic link stops gc (code `repository-symlink`)
 * instead of leading it to delete files elsewhere; an `objects/XX` that is a link is skipped.
 *
 * @module
 */
import { isStagingName, TMP_PREFIX } from "./files.ts";
import { resolveInside } from "./dir.ts";
import { RepositoryError } from "./errors.ts";
import { ObjectId } from "./object_id.ts";
import { leftoverTemporaryLinks, walkRefs } from "./refs.ts";
import type { RepositoryView } from "./view.ts";

/** What gc removed (or would remove, with `dryRun`), counted as cfsctl counts it. */
export interface GcReport {
  /** True when nothing was removed: the figures say what would have been. */
  dryRun: boolean;
  /** Unreferenced objects removed. */
  objectsRemoved: number;
  /** Their total size in bytes. */
  objectsBytes: number;
  /** Broken links removed in `images/` (first level and refs). */
  imagesPruned: number;
  /** Broken links removed in `streams/` (first level and refs). */
  streamsPruned: number;
  /** Hex ids of the removed objects, sorted. */
  removedObjects: string[];
  /** Paths of temporary files and links of interrupted writes that were removed. */
  removedTemporary: string[];
  /** Objects kept (live). */
  keptObjects: number;
}

/** Collects the live object set: see the module documentation, points 1 and 2. */
export async function liveObjects(
  repo: RepositoryView,
  extraRoots: readonly string[] = [],
): Promise<Set<string>> {
  const live = new Set<string>();
  const streamByObject = new Map<string, string>();
  const allStreams = repo.streams.list();
  for (const s of allStreams) if (s.id) streamByObject.set(s.id.hex, s.contentId);

  const imageRoots: ObjectId[] = [];
  for (const r of repo.images.list().refs) {
    if (r.id) imageRoots.push(r.id);
  }
  const streamRoots: string[] = repo.streams.listRefs().map((r) => r.contentId);
  for (const root of extraRoots) {
    const asImage = ObjectId.tryParse(root, repo.algorithm);
    if (asImage && repo.images.has(asImage)) imageRoots.push(asImage);
    else if (allStreams.some((s) => s.contentId === root)) streamRoots.push(root);
    else throw new RepositoryError(`gc root '${root}' is neither an image nor a stream`);
  }

  for (const id of imageRoots) {
    if (!repo.objects.has(id)) continue; // a dangling ref: pruned below
    live.add(id.hex);
    let bytes: Uint8Array;
    try {
      bytes = repo.objects.read(id);
      for (const o of repo.imageObjects(bytes)) live.add(o.hex);
    } catch (e) {
      throw new RepositoryError(
        `gc: live image ${id.hex} cannot be read (${(e as Error).message}); nothing removed`,
        { cause: e },
      );
    }
  }

  const walked = new Set<string>();
  const walk = async (contentId: string): Promise<void> => {
    if (walked.has(contentId)) return;
    walked.add(contentId);
    const id = repo.streams.has(contentId);
    if (!id) return; // dangling: pruned below
    live.add(id.hex);
    let refs;
    try {
      refs = await repo.streamRefs(repo.objects.read(id));
    } catch (e) {
      throw new RepositoryError(
        `gc: live stream ${contentId} cannot be read (${(e as Error).message}); nothing removed`,
        { cause: e },
      );
    }
    for (const o of refs.objectRefs) live.add(o.hex);
    for (const n of refs.namedRefs) {
      live.add(n.id.hex);
      const next = streamByObject.get(n.id.hex);
      if (next !== undefined) await walk(next);
    }
  };
  for (const root of streamRoots) await walk(root);
  return live;
}

/** Removes what is not live; see the module documentation. The caller holds the exclusive lock. */
export async function collectGarbage(
  repo: RepositoryView,
  options: { dryRun?: boolean; roots?: readonly string[] } = {},
): Promise<GcReport> {
  const dryRun = options.dryRun ?? false;
  const live = await liveObjects(repo, options.roots ?? []);
  const report: GcReport = {
    dryRun,
    objectsRemoved: 0,
    objectsBytes: 0,
    imagesPruned: 0,
    streamsPruned: 0,
    removedObjects: [],
    removedTemporary: [],
    keptObjects: 0,
  };
  const hexLen = repo.algorithm === "sha512" ? 128 : 64;
  const objectName = new RegExp(`^[0-9a-f]{${hexLen - 2}}$`);
  const root = repo.root;
  const removedSet = new Set<string>();
  const remove = (rel: string) => {
    if (!dryRun) root.unlink(rel);
  };
  const objectDirs: string[] = [];
  for (const sub of root.readDir("objects")) {
    const subRel = `objects/${sub.name}`;
    if (sub.isFile && isStagingName(sub.name)) {
      report.removedTemporary.push(root.abs(subRel));
      remove(subRel);
      continue;
    }
    // Only real directories: an objects/XX that is a symlink is not entered (fsck reports it).
    if (sub.isDirectory && /^[0-9a-f]{2}$/.test(sub.name)) objectDirs.push(sub.name);
  }
  for (const sub of objectDirs) {
    const subRel = `objects/${sub}`;
    for (const obj of root.readDir(subRel)) {
      const rel = `${subRel}/${obj.name}`;
      if (obj.isFile && isStagingName(obj.name)) {
        report.removedTemporary.push(root.abs(rel));
        remove(rel);
        continue;
      }
      if (!objectName.test(obj.name) || !(obj.isFile || obj.isSymlink)) continue;
      const hex = sub + obj.name;
      if (live.has(hex)) {
        report.keptObjects++;
        continue;
      }
      report.objectsBytes += root.lstat(rel)?.size ?? 0;
      report.objectsRemoved++;
      report.removedObjects.push(hex);
      removedSet.add(hex);
      remove(rel);
    }
  }
  for (const rel of leftoverTemporaryLinks(root)) {
    report.removedTemporary.push(root.abs(rel));
    remove(rel);
  }
  // Whether the entry a link names directly is gone (its target is not followed further). A
  // target out of the repository, or one that cannot be looked up, counts as present: gc
  // removes nothing it cannot see.
  const targetGone = (rel: string, target: string): boolean => {
    const next = resolveInside(rel, target);
    if (next === undefined || next === "") return false;
    try {
      return !root.exists(next);
    } catch {
      return false;
    }
  };
  // Dangling links: an entry whose object is gone. A dry run counts only those dangling now,
  // as composefs-rs's does (it removes nothing, so no link is left dangling by it).
  const gone = (rel: string): boolean => {
    const target = root.readLink(rel);
    if (target === undefined) return false;
    const id = ObjectId.fromObjectPath(target, repo.algorithm);
    if (
      !dryRun && id && removedSet.has(id.hex) &&
      resolveInside(rel, target) === `objects/${id.objectPath}`
    ) {
      return true;
    }
    return targetGone(rel, target);
  };
  for (const category of ["images", "streams"] as const) {
    const prunedEntries = new Set<string>();
    for (const e of root.readDir(category)) {
      if (e.name === "refs" || e.name.startsWith(TMP_PREFIX) || !e.isSymlink) continue;
      const rel = `${category}/${e.name}`;
      if (gone(rel)) {
        prunedEntries.add(e.name);
        if (category === "images") report.imagesPruned++;
        else report.streamsPruned++;
        remove(rel);
      }
    }
    for (const r of walkRefs(root, `${category}/refs`)) {
      const next = resolveInside(r.path, r.target);
      const entry = next !== undefined && next.startsWith(`${category}/`) &&
          !next.slice(category.length + 1).includes("/")
        ? next.slice(category.length + 1)
        : undefined;
      const dangling = (!dryRun && entry !== undefined && prunedEntries.has(entry)) ||
        targetGone(r.path, r.target);
      if (dangling) {
        if (category === "images") report.imagesPruned++;
        else report.streamsPruned++;
        remove(r.path);
      }
    }
  }
  report.removedObjects.sort();
  return report;
}
