/**
 * The composefs repository: one small facade over the parts that each own one concern, in
 * composefs-rs 0.9.4's layout (`lib/repository/*`, see `mod.ts`):
 *
 *     meta.json                       metadata (meta.ts)
 *     objects/XX/<rest of hex digest> content named by its fs-verity digest (objects.ts)
 *     images/<hex>, images/refs/      EROFS images we wrote, and their names (images.ts)
 *     streams/<content id>, refs/     splitstreams by name, and the roots (streams.ts)
 *
 * plus fsck.ts and gc.ts, which see the repository through {@link RepositoryView}.
 *
 * A repository is *secure* when `meta.json` itself has fs-verity enabled: then every object
 * gets fs-verity and is measured on read. Otherwise it is *insecure* (for file systems
 * without fs-verity): digests are computed in user space. Opening takes a shared lock on the
 * directory; gc takes it exclusively, so it never deletes under another open repository.
 *
 * Opening an old-format repository (`objects/` without `meta.json`, as cfsctl 0.3.0 and 0.6
 * leave them) for writing upgrades it as composefs-rs 0.9.4's `open_upgrade` does: the
 * algorithm is inferred from an object's name, security from whether it has fs-verity, and
 * `meta.json` is written. What is stored in the old formats (streams) is upgraded by the
 * layer that knows it (`lib/oci/upgrade.ts`).
 *
 * @module
 */
import { join } from "node:path";
import type { VerityAlgorithm } from "../fsverity/digest.ts";
import { enableVerity, measureVerity, VerityError } from "../fsverity/ioctl.ts";
import * as sys from "../sys/libc.ts";
import { collectObjects, readErofs } from "../erofs/reader.ts";
import { checkErofsLimits } from "../erofs/limits.ts";
import { countLinks } from "../tree.ts";
import { exists } from "./files.ts";
import { isNotFound, RepoDir } from "./dir.ts";
import { RepositoryError } from "./errors.ts";
import {
  type ErofsFormats,
  erofsFormatsOf,
  type ErofsFormatVersion,
  formatMeta,
  legacyMeta,
  META_FILE,
  MetaError,
  newMeta,
  parseMeta,
  type RepoAlgorithm,
  type RepoMeta,
  unknownReadOnlyFeatures,
  verityAlgorithmOf,
} from "./meta.ts";
import { ObjectId } from "./object_id.ts";
import {
  type LocalObjectSource,
  LocalStoreContext,
  ObjectStore,
  type ObjectStoreMethod,
} from "./objects.ts";
import { ImageStore } from "./images.ts";
import { StreamStore } from "./streams.ts";
import { removeRef, validateRefName } from "./refs.ts";
import { checkRepository, type FsckReport } from "./fsck.ts";
import { collectGarbage, type GcReport } from "./gc.ts";
import { type RepairReport, repairRepository } from "./repair.ts";
import type { RepositoryView, StreamRefs } from "./view.ts";
import { readStreamRefs } from "./stream_refs.ts";

/** What {@link Repository.streamDamage} found. */
export interface StreamDamage {
  /** True when the stream and everything it refers to is there (and sound, when hashed). */
  ok: boolean;
  /** The stream itself: `missing` (no such stream), `damaged` (its object), or `ok`. */
  stream: "ok" | "missing" | "damaged";
  /** Objects it refers to that are not stored. */
  missing: ObjectId[];
  /** Objects that are stored but damaged (the stream's own object included). */
  damaged: ObjectId[];
}

/** Options for {@link Repository.open}. */
export interface OpenOptions {
  /** Write meta.json into an old-format repository (objects/ but no meta.json). Default true. */
  upgrade?: boolean;
  /** Algorithm to assume for an old-format repository without objects; default sha256. */
  legacyAlgorithm?: RepoAlgorithm;
}

/** Options for {@link Repository.init}. */
export interface InitOptions {
  /** The digest algorithm; default `fsverity-sha512-12`, as `cfsctl init`. */
  algorithm?: RepoAlgorithm;
  /** No fs-verity (file systems without it); default false. */
  insecure?: boolean;
  /** The EROFS format of the repository's images; default 1, as composefs-rs 0.9.4. */
  erofsVersion?: ErofsFormatVersion;
  /** Further EROFS formats written alongside the default (bootc's dual V1 + V2). */
  extraErofsVersions?: ErofsFormatVersion[];
}

/** An open repository. */
export class Repository implements RepositoryView {
  /** `objects/`. */
  readonly objects: ObjectStore;
  /** `streams/`. */
  readonly streams: StreamStore;
  /** `images/`. */
  readonly images: ImageStore;

  private constructor(
    /** The repository directory, open: every path below it is resolved through it. */
    readonly root: RepoDir,
    /** Its validated meta.json. */
    readonly meta: RepoMeta,
    /** Whether objects carry fs-verity. */
    readonly secure: boolean,
    /** True when open() wrote meta.json into an old-format repository. */
    readonly upgraded: boolean,
  ) {
    const guard = () => this.requireWritable();
    this.objects = new ObjectStore(root, verityAlgorithmOf(meta.algorithm), secure, guard);
    this.streams = new StreamStore(root, this.objects, guard);
    this.images = new ImageStore(root, this.objects, guard);
  }

  /** The repository directory's path. */
  get path(): string {
    return this.root.path;
  }

  /** The digest algorithm of every object here. */
  get algorithm(): VerityAlgorithm {
    return verityAlgorithmOf(this.meta.algorithm);
  }

  /** The EROFS formats this repository writes (default and extra). */
  get erofsFormats(): ErofsFormats {
    return erofsFormatsOf(this.meta);
  }

  /** The repository's default EROFS format, the one its image names point at. */
  get erofsVersion(): ErofsFormatVersion {
    return this.erofsFormats.default;
  }

  /**
   * Creates a repository at `path` (and the directories up to it), or opens it when it
   * exists with the same configuration (as `cfsctl init` is idempotent); a different
   * algorithm or EROFS format is an error. A failure leaves nothing behind.
   */
  static init(path: string, options: InitOptions = {}): Repository {
    const algorithm = options.algorithm ?? "fsverity-sha512-12";
    const meta = newMeta(algorithm, {
      default: options.erofsVersion ?? 1,
      extra: options.extraErofsVersions,
    });
    const metaPath = join(path, META_FILE);
    if (exists(metaPath)) {
      const repo = Repository.open(path);
      const have = repo.erofsFormats;
      const want = erofsFormatsOf(meta);
      if (
        repo.meta.algorithm !== algorithm || have.default !== want.default ||
        have.extra.join() !== want.extra.join()
      ) {
        repo.close();
        throw new RepositoryError(
          `${path}: already a repository (algorithm ${repo.meta.algorithm}, EROFS version ` +
            `${have.default}); cannot re-initialize with algorithm ${algorithm}, EROFS version ` +
            `${want.default}`,
          { code: "repository-exists" },
        );
      }
      return repo;
    }
    const created: string[] = [];
    try {
      if (!exists(path)) {
        const missing: string[] = [];
        for (let p = path; !exists(p); p = join(p, "..")) missing.unshift(p);
        for (const p of missing) {
          Deno.mkdirSync(p, { mode: p === path ? 0o700 : 0o755 });
          created.push(p);
        }
      } else if (!Deno.statSync(path).isDirectory) {
        throw new RepositoryError(`${path}: exists and is not a directory`, {
          code: "repository-invalid",
        });
      }
      const dir = RepoDir.open(path);
      try {
        dir.writeFileAtomic(META_FILE, formatMeta(meta));
        created.push(metaPath);
        if (!options.insecure) enableMetaVerity(dir, algorithm);
      } finally {
        dir.close();
      }
    } catch (e) {
      for (const p of created.reverse()) {
        try {
          Deno.removeSync(p);
        } catch { /* best effort: leave nothing half-made */ }
      }
      if (e instanceof RepositoryError || e instanceof VerityError) throw e;
      throw new RepositoryError(`cannot create repository at ${path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    return Repository.open(path);
  }

  /**
   * Opens the repository at `path`, creating it when there is none (neither `meta.json` nor
   * an old-format `objects/`), as composefs-rs `ensure_path` does. A new one needs fs-verity
   * unless `allowInsecure`, in which case a file system without fs-verity gets an insecure
   * repository (bootc's `--allow-missing-fsverity`).
   */
  static openOrCreate(
    path: string,
    options: InitOptions & { allowInsecure?: boolean } = {},
  ): { repo: Repository; created: boolean } {
    if (exists(join(path, META_FILE)) || exists(join(path, "objects"))) {
      return { repo: Repository.open(path), created: false };
    }
    try {
      return { repo: Repository.init(path, { ...options, insecure: false }), created: true };
    } catch (e) {
      if (!(e instanceof VerityError && e.unsupported && options.allowInsecure)) throw e;
      return { repo: Repository.init(path, { ...options, insecure: true }), created: true };
    }
  }

  /** Opens an existing repository (shared lock held until {@link close}). */
  static open(path: string, options: OpenOptions = {}): Repository {
    let root: RepoDir;
    try {
      root = RepoDir.open(path);
    } catch (e) {
      if (isNotFound(e)) {
        throw new RepositoryError(
          `${path}: no repository here (create one with 'cfs init ${path}')`,
          { code: "repository-not-found", cause: e },
        );
      }
      if (e instanceof sys.SysError && e.errno === sys.Errno.ENOTDIR) {
        throw new RepositoryError(`${path}: not a directory`, {
          code: "repository-invalid",
          cause: e,
        });
      }
      throw e;
    }
    try {
      const repo = Repository.openDir(root, options);
      root.lock("shared");
      return repo;
    } catch (e) {
      root.close();
      throw e;
    }
  }

  /** {@link open} once the directory is open: meta.json, or the upgrade of an old format. */
  private static openDir(root: RepoDir, options: OpenOptions): Repository {
    const path = root.path;
    const metaPath = root.abs(META_FILE);
    let meta: RepoMeta;
    let secure: boolean;
    let upgraded = false;
    const metaStat = root.lstat(META_FILE);
    if (metaStat !== undefined) {
      if ((metaStat.mode & sys.S_IFMT) === sys.S_IFLNK) {
        throw new RepositoryError(
          `${metaPath} is a symbolic link: cfs does not follow links inside a repository`,
          { code: "repository-symlink" },
        );
      }
      try {
        meta = parseMeta(new TextDecoder().decode(root.readFile(META_FILE)), metaPath);
      } catch (e) {
        if (e instanceof MetaError) {
          throw new RepositoryError(e.message, { cause: e, code: e.code });
        }
        throw new RepositoryError(`${metaPath}: cannot read: ${(e as Error).message}`, {
          cause: e,
          code: "meta-invalid",
        });
      }
      secure = probeSecure(root, META_FILE, verityAlgorithmOf(meta.algorithm));
    } else if (root.exists("objects")) {
      const sample = firstObject(root);
      const algorithm = (sample ? algorithmOfObjectName(sample) : undefined) ??
        options.legacyAlgorithm ?? "fsverity-sha256-12";
      meta = legacyMeta(algorithm);
      secure = sample !== undefined && probeSecure(root, sample, verityAlgorithmOf(algorithm));
      if (options.upgrade !== false) {
        root.writeFileAtomic(META_FILE, formatMeta(meta));
        if (secure) enableMetaVerity(root, meta.algorithm);
        upgraded = true;
      }
    } else {
      throw new RepositoryError(
        `${path}: not a composefs repository (no ${META_FILE}; create one with 'cfs init ${path}')`,
        { code: "repository-not-found" },
      );
    }
    return new Repository(root, meta, secure, upgraded);
  }

  /** Whether writes are allowed (unknown read-only-compatible features forbid them). */
  get writable(): boolean {
    return unknownReadOnlyFeatures(this.meta).length === 0;
  }

  /** Throws unless {@link writable}: guards every operation that writes. */
  requireWritable(): void {
    if (!this.writable) {
      throw new RepositoryError(
        `${this.path}: repository has features this cfs cannot write ` +
          `(${unknownReadOnlyFeatures(this.meta).join(", ")}); it is read-only here`,
        { code: "repository-read-only" },
      );
    }
  }

  /**
   * Converts the advisory lock (flock) on the repository directory: shared while the
   * repository is open, exclusive while gc runs.
   */
  private lock(exclusive: boolean): void {
    this.root.lock(exclusive ? "exclusive" : "shared");
  }

  /** Releases the lock and closes the repository directory; the repository is unusable after. */
  close(): void {
    this.root.close();
  }

  // --- format readers fsck and gc follow references with ------------------------------------

  /** A stream object's references (splitstream 0.9 format, or cfsctl 0.3.0's). */
  streamRefs(bytes: Uint8Array): Promise<StreamRefs> {
    return readStreamRefs(bytes, this.algorithm);
  }

  /** The objects an EROFS image refers to. */
  imageObjects(bytes: Uint8Array): ObjectId[] {
    return collectObjects(readErofs(bytes)).map((d) => ObjectId.fromBytes(d));
  }

  /**
   * The objects an EROFS image refers to, after checking its tree against the limits every
   * image cfs writes must meet (lib/erofs/limits.ts): an image written by hand or by an older
   * cfs may hold a name, a symlink target or an xattr the kernel cannot read. Throws an
   * {@link ErofsLimitError} naming the entry.
   */
  checkImage(bytes: Uint8Array): ObjectId[] {
    const fs = readErofs(bytes);
    checkErofsLimits(fs, countLinks(fs));
    return collectObjects(fs).map((d) => ObjectId.fromBytes(d));
  }

  // --- objects ------------------------------------------------------------------------------

  /** Absolute path of an object. */
  objectPath(digest: Uint8Array | ObjectId): string {
    return this.objects.path(this.objects.idOf(digest));
  }

  /** Whether the object exists. */
  hasObject(digest: Uint8Array | ObjectId): boolean {
    return this.objects.has(this.objects.idOf(digest));
  }

  /** Stores bytes as an object; returns its id. */
  storeBytes(data: Uint8Array): ObjectId {
    return this.objects.storeBytes(data);
  }

  /** Stores a file (path) as an object; see {@link ObjectStore.storeFile}. */
  storeFile(source: Uint8Array | string, expectedSize?: number): ObjectId {
    return this.objects.storeFile(source, expectedSize);
  }

  /** Stores an object from streamed chunks; see {@link ObjectStore.storeStream}. */
  storeStream(chunks: AsyncIterable<Uint8Array>, size?: number): Promise<ObjectId> {
    return this.objects.storeStream(chunks, size);
  }

  /** Makes an object from a local file without copying where possible. */
  storeLocalFile(
    source: LocalObjectSource,
    digest: Uint8Array | ObjectId,
    options: { zerocopy?: boolean; data?: Uint8Array; context?: LocalStoreContext } = {},
  ): ObjectStoreMethod {
    return this.objects.storeLocalFile(source, this.objects.idOf(digest), options);
  }

  /** Reads an object whole, checking it against its id. */
  readObject(digest: Uint8Array | ObjectId): Uint8Array {
    return this.objects.read(this.objects.idOf(digest));
  }

  /**
   * Makes everything written so far durable: one syncfs(2). Every stream and image link is
   * made only after this, so no name that refers to objects can outlive their content.
   */
  sync(): void {
    this.root.sync();
  }

  // --- images -------------------------------------------------------------------------------

  /** Commits an EROFS image: object, `images/<hex>` link, and optionally a ref. Returns the id. */
  writeImage(image: Uint8Array, name?: string): ObjectId {
    if (name !== undefined) validateRefName(name);
    const id = this.objects.storeBytes(image);
    this.sync();
    this.images.link(id, name);
    return id;
  }

  /** Resolves an image name (id, `sha512:<hex>`, `refs/NAME` or NAME) to its id. */
  resolveImage(name: string): ObjectId {
    return this.images.resolve(name);
  }

  /** Reads an image by name, verified against its id. */
  readImage(name: string): { id: ObjectId; bytes: Uint8Array } {
    const id = this.resolveImage(name);
    return { id, bytes: this.objects.read(id) };
  }

  /** All image ids and refs. */
  listImages(): { ids: ObjectId[]; refs: Array<{ name: string; id: ObjectId | undefined }> } {
    return this.images.list();
  }

  // --- streams ------------------------------------------------------------------------------

  /**
   * Commits a splitstream: stores its bytes, syncs, links `streams/<contentId>` to it
   * (replacing an older version, as composefs-rs does) and, with `ref`, names it
   * `streams/refs/<ref>`. Returns the stream's object id.
   */
  writeStream(streamBytes: Uint8Array, contentId: string, ref?: string): ObjectId {
    const id = this.objects.storeBytes(streamBytes);
    this.sync();
    this.streams.link(contentId, id, ref);
    return id;
  }

  /** The stream object's id when `streams/<contentId>` links to an existing object. */
  hasStream(contentId: string): ObjectId | undefined {
    return this.streams.has(contentId);
  }

  /** Points `streams/refs/<ref>` at the existing stream `contentId`. */
  nameStream(contentId: string, ref: string): void {
    this.streams.name(contentId, ref);
  }

  /** Refs below `streams/refs/` (below `prefix/` when given): name and content id. */
  listStreamRefs(prefix?: string): Array<{ name: string; contentId: string }> {
    return this.streams.listRefs(prefix);
  }

  /** The content id a stream ref points at, or undefined. */
  streamRefTarget(ref: string): string | undefined {
    return this.streams.refTarget(ref);
  }

  /** Removes `<category>/refs/<name>`; false when there was none. Objects stay until gc. */
  removeRef(category: "images" | "streams", name: string): boolean {
    this.requireWritable();
    return removeRef(this.root, category, name);
  }

  /**
   * What is wrong with the stored stream `contentId`: its own object (read and verified) and
   * every object its content and named refs refer to, `missing` or, with `hash`, `damaged`
   * (read whole and hashed; without `hash`, only existence is checked, which is cheap).
   * `stream` is `missing` when there is no such stream.
   */
  async streamDamage(
    contentId: string,
    options: { hash?: boolean } = {},
  ): Promise<StreamDamage> {
    const id = this.streams.has(contentId);
    const out: StreamDamage = { ok: false, stream: "missing", missing: [], damaged: [] };
    if (!id) return out;
    let refs: StreamRefs;
    try {
      refs = await this.streamRefs(this.objects.read(id));
    } catch {
      out.stream = "damaged";
      out.damaged.push(id);
      return out;
    }
    out.stream = "ok";
    const seen = new Set<string>();
    for (const o of [...refs.objectRefs, ...refs.namedRefs.map((n) => n.id)]) {
      if (seen.has(o.hex)) continue;
      seen.add(o.hex);
      const state = this.objects.check(o, options.hash ?? false);
      if (state === "missing") out.missing.push(o);
      else if (state === "damaged") out.damaged.push(o);
    }
    out.ok = out.missing.length === 0 && out.damaged.length === 0;
    return out;
  }

  /** Reads a stream (`refs/NAME` or a content id) whole, verified against its id. */
  readStream(name: string): { contentId: string; id: ObjectId; bytes: Uint8Array } {
    const { contentId, id } = this.streams.resolve(name);
    return { contentId, id, bytes: this.objects.read(id) };
  }

  // --- fsck and gc ---------------------------------------------------------------------------

  /** Checks every object, stream, image and ref; read-only. */
  fsck(): Promise<FsckReport> {
    return checkRepository(this);
  }

  /**
   * `fsck --repair`: removes damaged objects and what would then point at nothing (repair.ts),
   * under the exclusive lock. Returns what was removed and fsck's reports before and after.
   */
  async repair(): Promise<RepairReport> {
    this.requireWritable();
    this.lock(true);
    try {
      return await repairRepository(this);
    } finally {
      this.lock(false);
    }
  }

  /**
   * Removes what no ref (or extra root) keeps alive; composefs-rs 0.9.4's semantics (gc.ts).
   * Holds the exclusive lock while it works.
   */
  async gc(options: { dryRun?: boolean; roots?: readonly string[] } = {}): Promise<GcReport> {
    if (!options.dryRun) this.requireWritable();
    this.lock(!options.dryRun);
    try {
      return await collectGarbage(this, options);
    } finally {
      this.lock(false);
    }
  }
}

/**
 * Whether `rel` (meta.json, or an object of an old-format repository) has fs-verity. "Not
 * enabled" and "not supported here" mean an insecure repository; any other failure is an
 * error rather than a silent downgrade.
 */
function probeSecure(root: RepoDir, rel: string, algorithm: VerityAlgorithm): boolean {
  const file = root.abs(rel);
  const fd = root.openRead(rel);
  try {
    return measureVerity(fd, algorithm, file) !== null;
  } catch (e) {
    if (e instanceof VerityError && e.unsupported) return false;
    throw new RepositoryError(
      `${file}: cannot tell whether the repository is secure: ${(e as Error).message}`,
      { cause: e },
    );
  } finally {
    sys.close(fd);
  }
}

/** Enables fs-verity on meta.json: what makes a repository secure. */
function enableMetaVerity(root: RepoDir, algorithm: RepoAlgorithm): void {
  const fd = root.openRead(META_FILE);
  try {
    enableVerity(fd, verityAlgorithmOf(algorithm), root.abs(META_FILE));
  } finally {
    sys.close(fd);
  }
}

/** Some object file of an old-format repository (relative path), if it has any. */
function firstObject(root: RepoDir): string | undefined {
  for (const sub of root.readDir("objects")) {
    if (!sub.isDirectory || !/^[0-9a-f]{2}$/.test(sub.name)) continue;
    for (const obj of root.readDir(`objects/${sub.name}`)) {
      if (obj.isFile && /^[0-9a-f]+$/.test(obj.name)) return `objects/${sub.name}/${obj.name}`;
    }
  }
  return undefined;
}

/** The algorithm an object's name implies: 62 hex digits after XX/ for SHA-256, 126 for SHA-512. */
function algorithmOfObjectName(path: string): RepoAlgorithm | undefined {
  const name = path.split("/").pop()!;
  if (name.length === 62) return "fsverity-sha256-12";
  if (name.length === 126) return "fsverity-sha512-12";
  return undefined;
}
