/**
 * `images/<hex>` -> `../objects/XX/<rest>`: the EROFS images cfs (or another composefs tool)
 * wrote for itself, the only objects that may be mounted; `images/refs/<name>` -> `../<hex>`
 * names them.
 *
 * An image is named as cfsctl 0.9.4 takes names: its id (hex, or `sha256:<hex>` /
 * `sha512:<hex>` as `cfsctl create-image` prints it), `refs/<name>`, or a plain name that is
 * a ref (`images/refs/<name>`).
 *
 * @module
 */
import { TMP_PREFIX } from "./files.ts";
import type { RepoDir } from "./dir.ts";
import { RepositoryError } from "./errors.ts";
import { ObjectId } from "./object_id.ts";
import type { ObjectStore } from "./objects.ts";
import { refEntry, removeRef, setRef, validateRefName, walkRefs } from "./refs.ts";

/** The images of one repository. */
export class ImageStore {
  /** The `images/` directory. */
  readonly dir: string;

  private readonly repoPath: string;

  /** The images of the repository `root`; `requireWritable` guards every write. */
  constructor(
    private readonly root: RepoDir,
    private readonly objects: ObjectStore,
    private readonly requireWritable: () => void,
  ) {
    this.repoPath = root.path;
    this.dir = root.abs("images");
  }

  /**
   * Links the stored image object `id` as `images/<hex>` and, with `name`, names it
   * `images/refs/<name>`. The caller synced since storing it.
   */
  link(id: ObjectId, name?: string): void {
    this.requireWritable();
    if (name !== undefined) validateRefName(name);
    const link = `images/${id.hex}`;
    if (this.root.readLink(link) !== `../objects/${id.objectPath}`) {
      this.root.symlinkAtomic(`../objects/${id.objectPath}`, link);
    }
    if (name !== undefined) setRef(this.root, "images", name, id.hex);
  }

  /** Whether `images/<hex>` links to an existing object. */
  has(id: ObjectId): boolean {
    const target = this.root.readLink(`images/${id.hex}`);
    return target === `../objects/${id.objectPath}` && this.objects.has(id);
  }

  /** Resolves an image name (see the module documentation) to the image's id. */
  resolve(name: string): ObjectId {
    const asId = ObjectId.tryParse(name, this.objects.algorithm);
    if (asId) {
      if (!this.has(asId)) {
        throw new RepositoryError(`no image ${asId.hex} in ${this.repoPath}`, {
          code: "image-not-found",
        });
      }
      return asId;
    }
    const other = ObjectId.tryParse(name);
    if (other) {
      throw new RepositoryError(
        `'${
          name.slice(0, 24)
        }...' is a ${other.algorithm} id; ${this.repoPath} uses ${this.objects.algorithm}`,
      );
    }
    const ref = name.startsWith("refs/") ? name.slice(5) : name;
    validateRefName(ref);
    const refPath = this.root.abs(`images/refs/${ref}`);
    const target = this.root.readLink(`images/refs/${ref}`);
    if (target === undefined) {
      throw new RepositoryError(`no image named '${name}' in ${this.repoPath}`, {
        code: "image-not-found",
      });
    }
    const id = ObjectId.tryParse(refEntry(target), this.objects.algorithm);
    if (!id || !this.has(id)) {
      throw new RepositoryError(`image ref ${refPath} is dangling (points to ${target})`, {
        code: "object-missing",
      });
    }
    return id;
  }

  /** All image ids (`images/<hex>` entries that name an id) and refs. */
  list(): { ids: ObjectId[]; refs: Array<{ name: string; id: ObjectId | undefined }> } {
    const ids: ObjectId[] = [];
    for (const e of this.root.readDir("images")) {
      if (e.name === "refs" || e.name.startsWith(TMP_PREFIX)) continue;
      const id = ObjectId.tryParse(e.name, this.objects.algorithm);
      if (id) ids.push(id);
    }
    const refs = walkRefs(this.root, "images/refs").map(({ name, target }) => ({
      name,
      id: ObjectId.tryParse(refEntry(target), this.objects.algorithm),
    }));
    return { ids, refs };
  }

  /** Removes `images/refs/<name>`; false when there was none. */
  unname(name: string): boolean {
    this.requireWritable();
    return removeRef(this.root, "images", name);
  }

  /** Whether `images/` exists at all. */
  get present(): boolean {
    return this.root.isDirectory("images");
  }
}
