/**
 * `streams/<content id>` -> `../objects/XX/<rest>`: splitstreams by the name their writer
 * gives them (composefs-oci: `oci-layer-<diff_id>`, `oci-config-<digest>`,
 * `oci-manifest-<digest>`, `oci-blob-<digest>`), and `streams/refs/<name>` ->
 * `../…/<content id>`, the roots that keep them.
 *
 * The stream's bytes are an ordinary object; what makes them a stream is the link, which is
 * made only after a sync, so a link never names a stream whose objects a crash could lose.
 * This module knows links and names only; the splitstream format is `lib/splitstream`.
 *
 * @module
 */
import { TMP_PREFIX } from "./files.ts";
import type { RepoDir } from "./dir.ts";
import { RepositoryError } from "./errors.ts";
import { ObjectId } from "./object_id.ts";
import type { ObjectStore } from "./objects.ts";
import { refEntry, removeRef, setRef, validateRefName, walkRefs } from "./refs.ts";

/** The longest content id accepted (it is a file name). */
export const CONTENT_ID_MAX = 255;

/** Checks a stream's content id: one file name, not `refs`, not a temporary name. */
export function validateContentId(contentId: string): void {
  if (
    contentId === "" || contentId === "." || contentId === ".." || contentId === "refs" ||
    contentId.includes("/") || contentId.includes("\0") || contentId.startsWith(TMP_PREFIX) ||
    new TextEncoder().encode(contentId).length > CONTENT_ID_MAX
  ) {
    throw new RepositoryError(`invalid stream name '${contentId.slice(0, 80)}'`);
  }
}

/** A first-level entry of `streams/`. */
export interface StreamEntry {
  /** Its name (the content id). */
  contentId: string;
  /** The object its link names, undefined when the link is not `../objects/XX/<rest>`. */
  id?: ObjectId;
  /** The link target as written ("" when the entry is not a symlink). */
  target: string;
  /** False when the entry is not a symbolic link at all. */
  isSymlink: boolean;
}

/** The streams of one repository. */
export class StreamStore {
  /** The `streams/` directory. */
  readonly dir: string;

  private readonly repoPath: string;

  /** The streams of the repository `root`; `requireWritable` guards every write. */
  constructor(
    private readonly root: RepoDir,
    private readonly objects: ObjectStore,
    private readonly requireWritable: () => void,
  ) {
    this.repoPath = root.path;
    this.dir = root.abs("streams");
  }

  /** The stream object's id when `streams/<contentId>` links to an existing object. */
  has(contentId: string): ObjectId | undefined {
    try {
      validateContentId(contentId);
    } catch {
      return undefined;
    }
    const target = this.root.readLink(`streams/${contentId}`);
    if (target === undefined) return undefined;
    const id = ObjectId.fromObjectPath(target, this.objects.algorithm);
    // Only the form composefs writes is a stream; the object is looked up by its id below
    // objects/, so the link itself is never followed.
    if (!id || target !== `../objects/${id.objectPath}`) return undefined;
    return this.objects.has(id) ? id : undefined;
  }

  /**
   * Links `streams/<contentId>` to the stored object `id` (replacing an older link, as
   * composefs-rs does when it rewrites a config or manifest stream), and when `ref` is given
   * `streams/refs/<ref>` to it. The caller synced the repository since storing `id` and
   * everything it refers to.
   */
  link(contentId: string, id: ObjectId, ref?: string): void {
    this.requireWritable();
    validateContentId(contentId);
    if (ref !== undefined) validateRefName(ref);
    if (!this.objects.has(id)) {
      throw new RepositoryError(`stream ${contentId}: object ${id.hex} is not stored`);
    }
    this.root.symlinkAtomic(`../objects/${id.objectPath}`, `streams/${contentId}`);
    if (ref !== undefined) setRef(this.root, "streams", ref, contentId);
  }

  /** Points `streams/refs/<ref>` at the existing stream `contentId`. */
  name(contentId: string, ref: string): void {
    this.requireWritable();
    if (!this.has(contentId)) {
      throw new RepositoryError(`no stream ${contentId} in ${this.repoPath}`, {
        code: "stream-not-found",
      });
    }
    setRef(this.root, "streams", ref, contentId);
  }

  /** Removes `streams/refs/<ref>`; false when there was none. */
  unname(ref: string): boolean {
    this.requireWritable();
    return removeRef(this.root, "streams", ref);
  }

  /** The content id `streams/refs/<ref>` points at, undefined when there is no such ref. */
  refTarget(ref: string): string | undefined {
    validateRefName(ref);
    const target = this.root.readLink(`streams/refs/${ref}`);
    return target === undefined ? undefined : refEntry(target);
  }

  /** Refs below `streams/refs/` (below `prefix/` when given): name and content id. */
  listRefs(prefix?: string): Array<{ name: string; contentId: string }> {
    if (prefix !== undefined) validateRefName(prefix);
    const base = "streams/refs";
    return walkRefs(this.root, prefix === undefined ? base : `${base}/${prefix}`, prefix ?? "")
      .map((r) => ({ name: r.name, contentId: refEntry(r.target) }));
  }

  /** Every first-level entry of `streams/` except `refs` and temporary links, sorted. */
  list(): StreamEntry[] {
    return this.root.readDir("streams")
      .filter((e) => e.name !== "refs" && !e.name.startsWith(TMP_PREFIX))
      .map((e) => {
        if (!e.isSymlink) return { contentId: e.name, target: "", isSymlink: false };
        const target = this.root.readLink(`streams/${e.name}`) ?? "";
        return {
          contentId: e.name,
          target,
          isSymlink: true,
          id: ObjectId.fromObjectPath(target, this.objects.algorithm),
        };
      });
  }

  /**
   * Resolves a stream name as cfsctl `cat` takes it: `refs/NAME` (a named ref) or a content
   * id; returns the content id and the object id.
   */
  resolve(name: string): { contentId: string; id: ObjectId } {
    let contentId = name;
    if (name.startsWith("refs/")) {
      const ref = name.slice(5);
      const target = this.refTarget(ref);
      if (target === undefined) {
        throw new RepositoryError(`no stream named '${name}' in ${this.repoPath}`, {
          code: "stream-not-found",
        });
      }
      contentId = target;
    }
    const id = this.has(contentId);
    if (!id) {
      let present = false;
      try {
        validateContentId(contentId);
        present = this.root.exists(`streams/${contentId}`);
      } catch { /* not a stream name */ }
      throw new RepositoryError(
        present
          ? `stream ${contentId} in ${this.repoPath} is broken (its object is missing)`
          : `no stream '${name}' in ${this.repoPath}`,
        { code: present ? "object-missing" : "stream-not-found" },
      );
    }
    return { contentId, id };
  }
}
