/**
 * The composefs repository on disk, in the layout composefs-rs uses:
 *
 *     meta.json                       {"version": 1, "algorithm": "fsverity-sha512-12", "features": {...}}
 *     objects/XX/<rest of hex digest> content, named by its fs-verity digest
 *     images/<hex>                    -> ../objects/XX/<rest>   (EROFS images we wrote)
 *     images/refs/<name>              -> ../<hex>               (GC roots)
 *     streams/<name>, streams/refs/   the same for splitstreams
 *
 * A repository is *secure* when `meta.json` itself has fs-verity enabled: then every object
 * gets fs-verity and is measured on read. Otherwise it is *insecure* (for file systems
 * without fs-verity, like this project's test hosts): digests are computed in user space.
 *
 * Writes are crash-safe: content goes to a temporary file in the object's directory,
 * (secure: gets verity,) and is renamed to its final name, so a killed process never leaves
 * an object name with partial content; symlinks are made under a temporary name and renamed
 * over. Durability against power loss is batched as composefs-rs does it: objects are not
 * fsynced one by one, but the file system is synced ({@link Repository.sync}) before any
 * stream or image link is made, so nothing that names objects can outlive them. This
 * module owns every path below the repository.
 *
 * @module
 */
import { z } from "zod";
import { join } from "node:path";
import {
  fromHex,
  fsverityDigest,
  FsVerityHasher,
  toHex,
  type VerityAlgorithm,
} from "./fsverity/digest.ts";
import { fsverityDigestFileSync } from "./fsverity/file.ts";
import { enableVerity, measureVerity, VerityError } from "./fsverity/ioctl.ts";
import * as sys from "./sys/libc.ts";
import { collectObjects, readErofs } from "./erofs/reader.ts";
import { parseSplitStream } from "./splitstream.ts";

/** The repository format version we write and understand. */
export const REPO_FORMAT_VERSION = 1;
/** The name of the repository's metadata file, in its top directory. */
export const META_FILE = "meta.json";
const TMP_PREFIX = ".tmp-";
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** `fsverity-<hash>-<lg blocksize>` as meta.json names it. */
export type RepoAlgorithm = "fsverity-sha256-12" | "fsverity-sha512-12";
/** Every {@link RepoAlgorithm}, the default (SHA-512) first. */
export const REPO_ALGORITHMS: readonly RepoAlgorithm[] = [
  "fsverity-sha512-12",
  "fsverity-sha256-12",
];

/** Feature flags we know (none yet): unknown incompatible ones make us refuse the repository. */
const KNOWN_INCOMPAT: readonly string[] = [];
const KNOWN_RO_COMPAT: readonly string[] = [];

const MetaSchema = z.object({
  version: z.number().int().nonnegative(),
  algorithm: z.enum(["fsverity-sha256-12", "fsverity-sha512-12"]),
  features: z.object({
    compatible: z.array(z.string()).default([]),
    "read-only-compatible": z.array(z.string()).default([]),
    incompatible: z.array(z.string()).default([]),
  }).default({ compatible: [], "read-only-compatible": [], incompatible: [] }),
});

/**
 * meta.json's content as {@link Repository} holds it after validation (absent feature
 * lists read as empty). Spelled out rather than `z.infer<typeof MetaSchema>` so that
 * the public type does not expose zod; `readMeta` returning the parsed data as this type
 * keeps the two in step.
 */
export interface RepoMeta {
  /** The repository format version; versions newer than {@link REPO_FORMAT_VERSION} are refused. */
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
}

/** Anything wrong with a repository or a request to it; the message names the path. */
export class RepositoryError extends Error {
  /** Creates the error; `options.cause` keeps the underlying error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RepositoryError";
  }
}

/** The hash behind a repository algorithm name. */
export function verityAlgorithmOf(alg: RepoAlgorithm): VerityAlgorithm {
  return alg === "fsverity-sha512-12" ? "sha512" : "sha256";
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

function randomSuffix(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Writes `data` to `path` atomically (temporary file in the same directory, fsync, rename). */
function writeFileAtomic(path: string, data: Uint8Array): void {
  const tmp = join(path, "..", `${TMP_PREFIX}${randomSuffix()}`);
  const f = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o644 });
  try {
    let off = 0;
    while (off < data.length) off += f.writeSync(data.subarray(off));
    f.syncDataSync();
  } finally {
    f.close();
  }
  Deno.renameSync(tmp, path);
}

/** Creates or replaces a symlink atomically. */
function symlinkAtomic(target: string, path: string): void {
  const tmp = join(path, "..", `${TMP_PREFIX}${randomSuffix()}`);
  Deno.symlinkSync(target, tmp);
  Deno.renameSync(tmp, path);
}

/** Files up to this size are stored from memory (one read); larger ones are streamed. */
const STORE_IN_MEMORY_MAX = 4 << 20;

function changedWhileReading(
  source: Uint8Array | string,
  got: number,
  expected: number,
): RepositoryError {
  return new RepositoryError(
    `${sys.displayPath(source)}: changed while being read (${got} bytes, expected ${expected})`,
  );
}

/** How {@link Repository.storeLocalFile} made an object. */
export type ObjectStoreMethod = "reflinked" | "hardlinked" | "copied" | "present";

/** A file outside the repository, open for reading, whose content is an object's. */
export interface LocalObjectSource {
  /** Its path (for link(2) and messages). */
  path: Uint8Array | string;
  /** A read-only descriptor of it (FICLONE source, fs-verity, identity checks). */
  fd: number;
  /** Its status when opened, before its content was read. */
  stat: sys.FileStat;
}

/**
 * What one import learns while it stores local files: the device pairs where FICLONE failed
 * (not tried again, as composefs-rs `ImportContext`), and the files that were copied.
 */
export class LocalStoreContext {
  /** `major:minor` of source devices where reflinking into this repository failed: why. */
  readonly reflinkUnsupported: Map<string, string> = new Map();
  /** Files copied instead of linked, with the reason. */
  readonly copied: Array<{ path: string; reason: string }> = [];
}

/**
 * Why a file must not be hard-linked into `objects/` (shared inode: the object would keep
 * its mode, owner and xattrs), or undefined when it may be: setuid/setgid and file
 * capabilities never; in an insecure repository (no fs-verity to freeze the content) only
 * root-owned files without group/other write permission.
 */
export function hardlinkRefusal(source: LocalObjectSource, secure: boolean): string | undefined {
  const { mode, uid } = source.stat;
  if ((mode & sys.S_IFMT) !== sys.S_IFREG) return "not a regular file";
  if (mode & 0o6000) return "setuid/setgid file (would become reachable under objects/)";
  if (
    sys.listXattrs(source.path).some(([name]) => sys.lossyString(name) === "security.capability")
  ) {
    return "file capabilities (would become reachable under objects/)";
  }
  if (!secure && (uid !== 0 || (mode & 0o022) !== 0)) {
    return "writable by a non-root user, and no fs-verity to freeze it";
  }
  return undefined;
}

/** What `fsck` found: every problem names the entry. */
export interface FsckReport {
  /** True when there are no problems (warnings do not count). */
  ok: boolean;
  /** Object files checked: every one is read whole and hashed. */
  objects: number;
  /** `images/` links that point to an existing object; each such image is parsed. */
  images: number;
  /** `streams/` links that point to an existing object. */
  streams: number;
  /** Refs found below `images/refs/` and `streams/refs/`. */
  refs: number;
  /** Corruption and inconsistencies: the path concerned and what is wrong with it. */
  problems: Array<{ path: string; problem: string }>;
  /** Harmless leftovers of interrupted writes (temporary files and links) that gc removes. */
  warnings: Array<{ path: string; problem: string }>;
}

/** What `gc` removed (or would remove, with dryRun). */
export interface GcReport {
  /** True when nothing was removed: the lists say what would have been. */
  dryRun: boolean;
  /** Hex ids of the unreachable images whose `images/<hex>` link went. */
  removedImages: string[];
  /** Image refs removed with the OCI config that owned them ({@link OCI_CONFIG_IMAGE_REF}). */
  removedImageRefs: string[];
  /** sha256 hex names of the unreachable streams whose `streams/<hex>` link went. */
  removedStreams: string[];
  /** Hex digests of the objects no live image uses (unreachable images' own objects too). */
  removedObjects: string[];
  /** Paths of leftover temporary files and links from interrupted writes. */
  removedTemporary: string[];
  /** Total size of the files removed below `objects/`. */
  freedBytes: number;
  /** Objects still in use: live images and the objects they refer to. */
  keptObjects: number;
}

/** Options for {@link Repository.open}. */
export interface OpenOptions {
  /** Write meta.json into an old-format repository (objects/ but no meta.json). Default true. */
  upgrade?: boolean;
  /** Algorithm to assume for an old-format repository without objects; default sha256 (cfsctl 0.3.0). */
  legacyAlgorithm?: RepoAlgorithm;
}

/** An open repository. */
export class Repository {
  private lockFile?: Deno.FsFile;

  private constructor(
    readonly path: string,
    readonly meta: RepoMeta,
    readonly secure: boolean,
    /** True when open() wrote meta.json into an old-format repository. */
    readonly upgraded: boolean,
  ) {}

  /** The digest algorithm of every object here. */
  get algorithm(): VerityAlgorithm {
    return verityAlgorithmOf(this.meta.algorithm);
  }

  /** Creates a repository at `path` (and the directory if needed). */
  static init(
    path: string,
    options: { algorithm?: RepoAlgorithm; insecure?: boolean } = {},
  ): Repository {
    const algorithm = options.algorithm ?? "fsverity-sha512-12";
    const metaPath = join(path, META_FILE);
    if (exists(metaPath)) {
      const repo = Repository.open(path);
      if (repo.meta.algorithm !== algorithm) {
        throw new RepositoryError(
          `${path}: already a repository with algorithm ${repo.meta.algorithm}, not ${algorithm}`,
        );
      }
      return repo;
    }
    const created: string[] = [];
    try {
      if (!exists(path)) {
        // Create missing ancestors one by one so that a failure can remove exactly those.
        const missing: string[] = [];
        for (let p = path; !exists(p); p = join(p, "..")) missing.unshift(p);
        for (const p of missing) {
          Deno.mkdirSync(p);
          created.push(p);
        }
      } else if (!Deno.statSync(path).isDirectory) {
        throw new RepositoryError(`${path}: exists and is not a directory`);
      }
      const meta: RepoMeta = {
        version: REPO_FORMAT_VERSION,
        algorithm,
        features: { compatible: [], "read-only-compatible": [], incompatible: [] },
      };
      writeFileAtomic(metaPath, new TextEncoder().encode(JSON.stringify(meta, null, 2) + "\n"));
      created.push(metaPath);
      if (!options.insecure) {
        const fd = sys.openRead(metaPath);
        try {
          enableVerity(fd, verityAlgorithmOf(algorithm), metaPath);
        } finally {
          sys.close(fd);
        }
      }
      for (const dir of ["objects", "images", "images/refs", "streams", "streams/refs"]) {
        const p = join(path, dir);
        if (!exists(p)) {
          Deno.mkdirSync(p);
          created.push(p);
        }
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
   * an old-format `objects/`). A new one needs fs-verity unless `allowInsecure`, in which
   * case a file system without fs-verity gets an insecure repository (bootc's
   * `--allow-missing-fsverity`).
   */
  static openOrCreate(
    path: string,
    options: { algorithm?: RepoAlgorithm; allowInsecure?: boolean } = {},
  ): { repo: Repository; created: boolean } {
    if (exists(join(path, META_FILE)) || isDirectory(join(path, "objects"))) {
      return { repo: Repository.open(path), created: false };
    }
    try {
      return { repo: Repository.init(path, { algorithm: options.algorithm }), created: true };
    } catch (e) {
      if (!(e instanceof VerityError && e.unsupported && options.allowInsecure)) throw e;
      return {
        repo: Repository.init(path, { algorithm: options.algorithm, insecure: true }),
        created: true,
      };
    }
  }

  /** Opens an existing repository (shared lock held until {@link close}). */
  static open(path: string, options: OpenOptions = {}): Repository {
    let st: Deno.FileInfo;
    try {
      st = Deno.statSync(path);
    } catch {
      throw new RepositoryError(`${path}: no repository here (create one with 'cfs init ${path}')`);
    }
    if (!st.isDirectory) throw new RepositoryError(`${path}: not a directory`);
    const metaPath = join(path, META_FILE);
    let meta: RepoMeta;
    let secure: boolean;
    let upgraded = false;
    if (exists(metaPath)) {
      meta = Repository.readMeta(metaPath);
      secure = Repository.probeSecure(metaPath, meta);
    } else if (exists(join(path, "objects"))) {
      // An old-format repository (cfsctl 0.3.0): the algorithm shows in the object names,
      // security in whether its objects have fs-verity.
      const objects = join(path, "objects");
      const sample = firstObject(objects);
      meta = {
        version: REPO_FORMAT_VERSION,
        algorithm: (sample ? algorithmOfObjectName(sample) : undefined) ??
          options.legacyAlgorithm ??
          "fsverity-sha256-12",
        features: { compatible: [], "read-only-compatible": [], incompatible: [] },
      };
      secure = sample !== undefined && Repository.probeSecure(sample, meta);
      if (options.upgrade !== false) {
        writeFileAtomic(metaPath, new TextEncoder().encode(JSON.stringify(meta, null, 2) + "\n"));
        if (secure) {
          const fd = sys.openRead(metaPath);
          try {
            enableVerity(fd, verityAlgorithmOf(meta.algorithm), metaPath);
          } finally {
            sys.close(fd);
          }
        }
        upgraded = true;
      }
    } else {
      throw new RepositoryError(
        `${path}: not a composefs repository (no ${META_FILE}; create one with 'cfs init ${path}')`,
      );
    }
    const repo = new Repository(path, meta, secure, upgraded);
    repo.lock(false);
    return repo;
  }

  /** Reads and validates meta.json; refuses newer format versions and unknown incompatible features. */
  private static readMeta(metaPath: string): RepoMeta {
    let raw: unknown;
    try {
      raw = JSON.parse(Deno.readTextFileSync(metaPath));
    } catch (e) {
      throw new RepositoryError(`${metaPath}: not valid JSON (${(e as Error).message})`);
    }
    const parsed = MetaSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new RepositoryError(
        `${metaPath}: ${issue.path.join(".") || "(top level)"}: ${issue.message}`,
      );
    }
    const meta = parsed.data;
    if (meta.version > REPO_FORMAT_VERSION) {
      throw new RepositoryError(
        `${metaPath}: repository format version ${meta.version} is newer than this cfs understands (${REPO_FORMAT_VERSION})`,
      );
    }
    const unknown = meta.features.incompatible.filter((f) => !KNOWN_INCOMPAT.includes(f));
    if (unknown.length > 0) {
      throw new RepositoryError(
        `${metaPath}: repository requires unknown features: ${unknown.join(", ")}`,
      );
    }
    return meta;
  }

  /**
   * Whether `file` (meta.json, or an object of an old-format repository) has fs-verity.
   * "Not enabled" and "not supported here" mean an insecure repository; any other failure
   * is an error rather than a silent downgrade.
   */
  private static probeSecure(file: string, meta: RepoMeta): boolean {
    const fd = sys.openRead(file);
    try {
      return measureVerity(fd, verityAlgorithmOf(meta.algorithm), file) !== null;
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

  /** Whether writes are allowed (unknown read-only-compatible features forbid them). */
  get writable(): boolean {
    return this.meta.features["read-only-compatible"].every((f) => KNOWN_RO_COMPAT.includes(f));
  }

  /** Throws unless `writable`: guards every operation that writes. */
  private requireWritable(): void {
    if (!this.writable) {
      throw new RepositoryError(
        `${this.path}: repository has features this cfs cannot write; it is read-only here`,
      );
    }
  }

  /**
   * Takes (or converts) the advisory lock on the repository directory: shared while the
   * repository is open, exclusive while gc runs, so gc waits until no other holder of a
   * shared lock (another open repository) is left and cannot delete under it.
   */
  private lock(exclusive: boolean): void {
    this.lockFile ??= Deno.openSync(this.path, { read: true });
    this.lockFile.lockSync(exclusive);
  }

  /** Releases the lock. */
  close(): void {
    this.lockFile?.close();
    this.lockFile = undefined;
  }

  // --- objects ------------------------------------------------------------------------------

  /** Absolute path of an object. */
  objectPath(digest: Uint8Array): string {
    const hex = toHex(digest);
    return join(this.path, "objects", hex.slice(0, 2), hex.slice(2));
  }

  /** Throws unless `digest` has this repository's digest size (32 or 64 bytes). */
  private checkDigestSize(digest: Uint8Array): void {
    const want = this.algorithm === "sha512" ? 64 : 32;
    if (digest.length !== want) {
      throw new RepositoryError(
        `digest of ${digest.length} bytes does not fit this ${this.meta.algorithm} repository`,
      );
    }
  }

  /** Whether the object exists. */
  hasObject(digest: Uint8Array): boolean {
    return exists(this.objectPath(digest));
  }

  /**
   * Moves a finished temporary file to its object name (or drops it when the object
   * exists already): in a secure repository verity is enabled and measured first.
   */
  private commitTemp(tmp: string, digest: Uint8Array): void {
    const final = this.objectPath(digest);
    try {
      if (exists(final)) {
        Deno.removeSync(tmp);
        return;
      }
      if (this.secure) {
        const fd = sys.openRead(tmp);
        try {
          enableVerity(fd, this.algorithm, tmp);
          const measured = measureVerity(fd, this.algorithm, tmp);
          if (measured === null || toHex(measured) !== toHex(digest)) {
            throw new RepositoryError(
              `${final}: measured fs-verity digest does not match the computed one`,
            );
          }
        } finally {
          sys.close(fd);
        }
      }
      Deno.renameSync(tmp, final);
    } catch (e) {
      try {
        Deno.removeSync(tmp);
      } catch { /* already gone */ }
      throw e;
    }
  }

  /**
   * Creates a new temporary file in `objects/<digestHexPrefix>/`, the directory of the
   * object it will become, so that the final rename stays within one directory.
   */
  private openTemp(digestHexPrefix: string): { path: string; file: Deno.FsFile } {
    this.requireWritable();
    const dir = join(this.path, "objects", digestHexPrefix);
    Deno.mkdirSync(dir, { recursive: true });
    const path = join(dir, `${TMP_PREFIX}${randomSuffix()}`);
    return { path, file: Deno.openSync(path, { write: true, createNew: true, mode: 0o644 }) };
  }

  /** Stores bytes as an object; returns the digest. Existing objects are reused. */
  storeBytes(data: Uint8Array): Uint8Array {
    const digest = fsverityDigest(data, this.algorithm);
    if (this.hasObject(digest)) return digest;
    const { path, file } = this.openTemp(toHex(digest).slice(0, 2));
    try {
      let off = 0;
      while (off < data.length) off += file.writeSync(data.subarray(off));
    } catch (e) {
      file.close();
      Deno.removeSync(path);
      throw e;
    }
    file.close();
    this.commitTemp(path, digest);
    return digest;
  }

  /**
   * Stores a file (byte path) as an object; returns the digest. Small files are read once
   * into memory. Large ones are hashed in a first streaming pass, and only when the object
   * is new copied in a second pass (from the page cache) that hashes again, so a file that
   * changes in between is refused instead of being stored under the wrong name. Constant
   * memory for any size; nothing is written for content the repository already has.
   */
  storeFile(source: Uint8Array | string, expectedSize?: number): Uint8Array {
    this.requireWritable();
    const size = expectedSize ?? sys.lstat(source).size;
    if (size <= STORE_IN_MEMORY_MAX) {
      const data = sys.readFileBytes(source, size + 1);
      if (data.length !== size) throw changedWhileReading(source, data.length, size);
      return this.storeBytes(data);
    }
    const digest = fsverityDigestFileSync(source, this.algorithm);
    if (this.hasObject(digest)) return digest;
    const hex = toHex(digest);
    const { path: tmp, file: out } = this.openTemp(hex.slice(0, 2));
    const hasher = new FsVerityHasher(this.algorithm);
    let total = 0;
    try {
      const fd = sys.openRead(source);
      try {
        const buf = new Uint8Array(1 << 20);
        for (;;) {
          const n = sys.read(fd, buf, source);
          if (n === 0) break;
          const chunk = buf.subarray(0, n);
          hasher.update(chunk);
          let off = 0;
          while (off < n) off += out.writeSync(chunk.subarray(off));
          total += n;
        }
      } finally {
        sys.close(fd);
      }
      out.close();
    } catch (e) {
      out.close();
      Deno.removeSync(tmp);
      throw e;
    }
    if (total !== size || toHex(hasher.digest()) !== hex) {
      Deno.removeSync(tmp);
      throw changedWhileReading(source, total, size);
    }
    this.commitTemp(tmp, digest);
    return digest;
  }

  /**
   * Stores an object from chunks that arrive over time (a tar body as it streams), in
   * constant memory: written to a temporary file in `objects/` while hashed, synced, then
   * committed like {@link storeFile} (verity enabled and measured when secure, renamed to its
   * name; an existing object is kept and the copy dropped). With `size`, a different length
   * fails and nothing is stored. The chunks are not kept.
   */
  async storeStream(chunks: AsyncIterable<Uint8Array>, size?: number): Promise<Uint8Array> {
    this.requireWritable();
    const dir = join(this.path, "objects");
    Deno.mkdirSync(dir, { recursive: true });
    const tmp = join(dir, `${TMP_PREFIX}${randomSuffix()}`);
    const file = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o644 });
    const hasher = new FsVerityHasher(this.algorithm);
    let total = 0;
    try {
      for await (const chunk of chunks) {
        hasher.update(chunk);
        let off = 0;
        while (off < chunk.length) off += file.writeSync(chunk.subarray(off));
        total += chunk.length;
      }
      if (size !== undefined && total !== size) {
        throw new RepositoryError(`object stream of ${total} bytes, expected ${size}`);
      }
    } catch (e) {
      file.close();
      try {
        Deno.removeSync(tmp);
      } catch { /* already gone */ }
      throw e;
    }
    file.close();
    const digest = hasher.digest();
    Deno.mkdirSync(join(dir, toHex(digest).slice(0, 2)), { recursive: true });
    this.commitTemp(tmp, digest);
    return digest;
  }

  /**
   * Makes `digest` an object from a file outside the repository whose content is the
   * object's content (a containers-storage layer file), without copying its data where the
   * file systems allow, as composefs-rs `ensure_object_from_file` does: a reflink (FICLONE
   * into a temporary file, committed like any object), else a hard link of the file itself,
   * else (unless `zerocopy`) a copy. The caller computed `digest` from the bytes it read
   * through `source.fd`; `source.stat` was taken before that read, and a file whose status
   * changed since (a write moves ctime) is refused rather than stored under a wrong name.
   *
   * A hard link shares the inode, so the object keeps the file's mode, owner and xattrs and
   * stays writable by whoever could write the file. It is only made when that is harmless
   * ({@link hardlinkRefusal}): never for setuid/setgid or file-capability files (they would
   * become reachable under `objects/`), and in an insecure repository only for root-owned
   * files no one else can write (a secure one enables fs-verity on the file first, which
   * makes it immutable, as composefs-rs does). Refused files are copied, in `zerocopy` mode
   * too: `zerocopy` fails only when the file systems cannot do without a copy (neither
   * FICLONE nor link(2) works), and then names both paths.
   */
  storeLocalFile(
    source: LocalObjectSource,
    digest: Uint8Array,
    options: { zerocopy?: boolean; data?: Uint8Array; context?: LocalStoreContext } = {},
  ): ObjectStoreMethod {
    this.requireWritable();
    this.checkDigestSize(digest);
    if (this.hasObject(digest)) return "present";
    const context = options.context ?? new LocalStoreContext();
    const final = this.objectPath(digest);
    const dir = join(final, "..");
    Deno.mkdirSync(dir, { recursive: true });
    const display = sys.displayPath(source.path);
    const unchanged = () => {
      const now = sys.fstat(source.fd, source.path);
      if (
        now.ctimeSec !== source.stat.ctimeSec || now.ctimeNsec !== source.stat.ctimeNsec ||
        now.size !== source.stat.size
      ) {
        throw new RepositoryError(`${display}: changed while being imported; not stored`);
      }
    };
    const devPair = `${source.stat.devMajor}:${source.stat.devMinor}`;
    let reflinkError = context.reflinkUnsupported.get(devPair) ?? "";
    if (!context.reflinkUnsupported.has(devPair)) {
      const tmp = join(dir, `${TMP_PREFIX}${randomSuffix()}`);
      const fd = sys.openCreateExclusive(tmp);
      let cloned = false;
      try {
        sys.ficlone(fd, source.fd, tmp);
        cloned = true;
      } catch (e) {
        const errno = e instanceof sys.SysError ? e.errno : -1;
        if (![sys.Errno.EOPNOTSUPP, sys.Errno.EXDEV, sys.Errno.EINVAL].includes(errno as 95)) {
          sys.close(fd);
          Deno.removeSync(tmp);
          throw e;
        }
        reflinkError = (e as Error).message;
        context.reflinkUnsupported.set(devPair, reflinkError);
      }
      sys.close(fd);
      if (cloned) {
        try {
          unchanged();
        } catch (e) {
          Deno.removeSync(tmp);
          throw e;
        }
        this.commitTemp(tmp, digest);
        return "reflinked";
      }
      Deno.removeSync(tmp);
    }
    let linkError: string;
    const refusal = hardlinkRefusal(source, this.secure);
    if (refusal === undefined) {
      unchanged();
      try {
        if (this.secure) {
          enableVerity(source.fd, this.algorithm, display);
          const measured = measureVerity(source.fd, this.algorithm, display);
          if (measured === null || toHex(measured) !== toHex(digest)) {
            throw new RepositoryError(
              `${display}: measured fs-verity digest does not match the computed one`,
            );
          }
        }
        sys.link(source.path, final);
        const linked = sys.lstat(final);
        const src = sys.fstat(source.fd, source.path);
        if (
          linked.ino !== src.ino || linked.devMajor !== src.devMajor ||
          linked.devMinor !== src.devMinor
        ) {
          Deno.removeSync(final);
          throw new RepositoryError(`${display}: replaced while being imported; not stored`);
        }
        return "hardlinked";
      } catch (e) {
        if (e instanceof sys.SysError && e.errno === sys.Errno.EEXIST) return "present";
        if (e instanceof RepositoryError) throw e;
        linkError = (e as Error).message;
      }
    } else {
      linkError = refusal;
    }
    if (options.zerocopy && refusal === undefined) {
      throw new RepositoryError(
        `zerocopy: cannot reflink or hardlink ${display} to ${final} (reflink: ${reflinkError}; ` +
          `hardlink: ${linkError}); are both on one file system? --local-fetch=auto copies`,
      );
    }
    const stored = options.data !== undefined
      ? this.storeBytes(options.data)
      : this.storeFile(source.path, source.stat.size);
    if (toHex(stored) !== toHex(digest)) {
      throw new RepositoryError(`${display}: changed while being imported; not stored`);
    }
    context.copied.push({ path: display, reason: linkError });
    return "copied";
  }

  /**
   * Makes everything written so far durable: one syncfs(2) of the repository's file system.
   * Objects are not synced one by one (thousands of journal commits per layer were most of
   * a pull's time); instead every stream and image link is made only after this, so no
   * name that refers to objects can survive a crash that their content did not. An object
   * itself may be lost or empty after a power cut, which fsck reports and gc removes.
   */
  sync(): void {
    sys.syncFilesystem(this.path);
  }

  /** Reads an object whole, checking its digest (fs-verity measurement when secure). */
  readObject(digest: Uint8Array): Uint8Array {
    this.checkDigestSize(digest);
    const path = this.objectPath(digest);
    let data: Uint8Array;
    try {
      data = Deno.readFileSync(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new RepositoryError(`object ${toHex(digest)} is missing from ${this.path}`, {
          cause: e,
        });
      }
      const hint = this.secure
        ? " (with fs-verity, an I/O error means the data on disk is corrupt)"
        : "";
      throw new RepositoryError(`${path}: cannot read object: ${(e as Error).message}${hint}`, {
        cause: e,
      });
    }
    this.verifyObject(path, digest, data);
    return data;
  }

  /**
   * Checks an object read from `path` against its name: secure repositories by fs-verity
   * measurement (the kernel checked the data as it was read), others by hashing `data`.
   */
  private verifyObject(path: string, digest: Uint8Array, data: Uint8Array): void {
    if (this.secure) {
      const fd = sys.openRead(path);
      try {
        const measured = measureVerity(fd, this.algorithm, path);
        if (measured === null) {
          throw new RepositoryError(
            `${path}: fs-verity is not enabled on this object of a secure repository`,
          );
        }
        if (toHex(measured) !== toHex(digest)) {
          throw new RepositoryError(
            `${path}: fs-verity digest ${toHex(measured)} does not match its name`,
          );
        }
      } finally {
        sys.close(fd);
      }
    } else if (toHex(fsverityDigest(data, this.algorithm)) !== toHex(digest)) {
      throw new RepositoryError(`${path}: content does not match its name (corrupt object)`);
    }
  }

  // --- images -------------------------------------------------------------------------------

  /** Commits an EROFS image: object, `images/<hex>` link, and optionally a ref. Returns the id. */
  writeImage(image: Uint8Array, name?: string): Uint8Array {
    if (name !== undefined) validateRefName(name);
    const digest = this.storeBytes(image);
    const hex = toHex(digest);
    const imagesDir = join(this.path, "images");
    Deno.mkdirSync(imagesDir, { recursive: true });
    const link = join(imagesDir, hex);
    this.sync();
    if (!exists(link)) symlinkAtomic(`../objects/${hex.slice(0, 2)}/${hex.slice(2)}`, link);
    if (name !== undefined) this.setRef("images", name, hex);
    return digest;
  }

  /** Points `<category>/refs/<name>` at `<category>/<target>` (relative link, atomically replaced). */
  private setRef(category: "images" | "streams", name: string, target: string): void {
    const refPath = join(this.path, category, "refs", name);
    Deno.mkdirSync(join(refPath, ".."), { recursive: true });
    const depth = name.split("/").length;
    symlinkAtomic(`${"../".repeat(depth)}${target}`, refPath);
  }

  /** Resolves an image name (hex id or ref name) to its hex id. */
  resolveImage(name: string): string {
    const hexLen = this.algorithm === "sha512" ? 128 : 64;
    if (new RegExp(`^[0-9a-f]{${hexLen}}$`).test(name)) {
      if (!exists(join(this.path, "images", name))) {
        throw new RepositoryError(`no image ${name} in ${this.path}`);
      }
      return name;
    }
    const ref = name.startsWith("refs/") ? name.slice(5) : name;
    validateRefName(ref);
    const refPath = join(this.path, "images", "refs", ref);
    let target: string;
    try {
      target = Deno.readLinkSync(refPath);
    } catch {
      throw new RepositoryError(`no image named '${name}' in ${this.path}`);
    }
    const hex = target.split("/").pop() ?? "";
    if (!new RegExp(`^[0-9a-f]{${hexLen}}$`).test(hex) || !exists(join(this.path, "images", hex))) {
      throw new RepositoryError(`image ref ${refPath} is dangling (points to ${target})`);
    }
    return hex;
  }

  /** Reads an image by name, verified against its id. */
  readImage(name: string): { id: string; bytes: Uint8Array } {
    const id = this.resolveImage(name);
    return { id, bytes: this.readObject(fromHex(id)) };
  }

  /** All image ids (`images/<hex>`) and refs (`name -> id`). */
  listImages(): { ids: string[]; refs: Array<{ name: string; id: string | null }> } {
    const ids: string[] = [];
    const dir = join(this.path, "images");
    if (exists(dir)) {
      for (const e of Deno.readDirSync(dir)) {
        if (e.name !== "refs" && !e.name.startsWith(TMP_PREFIX)) ids.push(e.name);
      }
    }
    const refs = walkRefs(join(dir, "refs")).map(({ name, target }) => ({
      name,
      id: target.split("/").pop() ?? null,
    }));
    return { ids: ids.sort(), refs };
  }

  // --- streams ------------------------------------------------------------------------------

  /**
   * Commits a splitstream as cfsctl 0.3.0 lays it out: the stream object, the link
   * `streams/<sha256 hex of the content>` -> `../objects/XX/<rest>`, and optionally the named
   * ref `streams/refs/<name>` -> `../` per component of `name` + the sha256 hex. Links are made
   * atomically; an existing `streams/<hex>` link is kept. Returns the stream's object id
   * (the one the link points to).
   */
  writeStream(streamBytes: Uint8Array, contentSha256: Uint8Array, name?: string): Uint8Array {
    if (contentSha256.length !== 32) {
      throw new RepositoryError(
        `stream content sha256 must be 32 bytes, not ${contentSha256.length}`,
      );
    }
    if (name !== undefined) validateRefName(name);
    const stored = this.storeBytes(streamBytes);
    this.sync();
    const hex = toHex(contentSha256);
    const dir = join(this.path, "streams");
    Deno.mkdirSync(dir, { recursive: true });
    const id = this.hasStream(contentSha256) ?? (() => {
      const idHex = toHex(stored);
      symlinkAtomic(`../objects/${idHex.slice(0, 2)}/${idHex.slice(2)}`, join(dir, hex));
      return stored;
    })();
    if (name !== undefined) this.setRef("streams", name, hex);
    return id;
  }

  /** Points the named ref `streams/refs/<name>` at the existing stream `contentSha256`. */
  nameStream(name: string, contentSha256: Uint8Array): void {
    validateRefName(name);
    if (!this.hasStream(contentSha256)) {
      throw new RepositoryError(`no stream ${toHex(contentSha256)} in ${this.path}`);
    }
    this.setRef("streams", name, toHex(contentSha256));
  }

  /** Named refs under `streams/refs/` (below `prefix/` when given): name and target sha256. */
  listStreamRefs(prefix?: string): Array<{ name: string; sha256: string | null }> {
    if (prefix !== undefined) validateRefName(prefix);
    const base = join(this.path, "streams", "refs");
    return walkRefs(prefix === undefined ? base : join(base, prefix), prefix ?? "").map((r) => {
      const hex = r.target.split("/").pop() ?? "";
      return { name: r.name, sha256: SHA256_HEX.test(hex) ? hex : null };
    });
  }

  /** The sha256 hex a named stream ref points at, or undefined when there is no such ref. */
  streamRefTarget(name: string): string | undefined {
    validateRefName(name);
    let target: string;
    try {
      target = Deno.readLinkSync(join(this.path, "streams", "refs", name));
    } catch {
      return undefined;
    }
    const hex = target.split("/").pop() ?? "";
    return SHA256_HEX.test(hex) ? hex : undefined;
  }

  /**
   * Removes the ref `<category>/refs/<name>` and the directories above it that become
   * empty. Returns false when there was no such ref. Objects stay until gc.
   */
  removeRef(category: "images" | "streams", name: string): boolean {
    validateRefName(name);
    const base = join(this.path, category, "refs");
    const refPath = join(base, name);
    try {
      if (!Deno.lstatSync(refPath).isSymlink) {
        throw new RepositoryError(`${refPath} is not a ref (not a symbolic link)`);
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
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

  /** The stream object id when `streams/<sha256 hex>` links to an existing object. */
  hasStream(contentSha256: Uint8Array | string): Uint8Array | undefined {
    const hex = typeof contentSha256 === "string" ? contentSha256 : toHex(contentSha256);
    if (!SHA256_HEX.test(hex)) return undefined;
    let target: string;
    try {
      target = Deno.readLinkSync(join(this.path, "streams", hex));
    } catch {
      return undefined;
    }
    const m = /^\.\.\/objects\/([0-9a-f]{2})\/([0-9a-f]+)$/.exec(target);
    if (!m || (m[1] + m[2]).length !== (this.algorithm === "sha512" ? 128 : 64)) return undefined;
    const id = fromHex(m[1] + m[2]);
    return this.hasObject(id) ? id : undefined;
  }

  /**
   * Reads a stream by name as cfsctl names streams: `refs/NAME` (a named ref) or the sha256 hex
   * of its content. The object is verified against its id.
   */
  readStream(nameOrSha: string): { sha256: string; id: Uint8Array; bytes: Uint8Array } {
    let hex: string;
    if (SHA256_HEX.test(nameOrSha)) {
      hex = nameOrSha;
    } else if (nameOrSha.startsWith("refs/")) {
      const ref = nameOrSha.slice(5);
      validateRefName(ref);
      const refPath = join(this.path, "streams", "refs", ref);
      let target: string;
      try {
        target = Deno.readLinkSync(refPath);
      } catch {
        throw new RepositoryError(`no stream named '${nameOrSha}' in ${this.path}`);
      }
      hex = target.split("/").pop() ?? "";
      if (!SHA256_HEX.test(hex)) {
        throw new RepositoryError(`stream ref ${refPath} points to ${target}, not a sha256`);
      }
    } else {
      throw new RepositoryError(
        `no stream '${nameOrSha}': name a stream as refs/NAME or by the sha256 of its content`,
      );
    }
    const id = this.hasStream(hex);
    if (!id) throw new RepositoryError(`no stream ${hex} in ${this.path}`);
    return { sha256: hex, id, bytes: this.readObject(id) };
  }

  // --- fsck and gc ---------------------------------------------------------------------------

  /** Checks every object (re-measured), image and ref; read-only. */
  fsck(): FsckReport {
    const report: FsckReport = {
      ok: true,
      objects: 0,
      images: 0,
      streams: 0,
      refs: 0,
      problems: [],
      warnings: [],
    };
    const problem = (path: string, p: string) => report.problems.push({ path, problem: p });
    const hexLen = this.algorithm === "sha512" ? 128 : 64;
    const objectsDir = join(this.path, "objects");
    if (exists(objectsDir)) {
      for (const sub of sortedDir(objectsDir)) {
        const subPath = join(objectsDir, sub.name);
        if (sub.name.startsWith(TMP_PREFIX)) {
          report.warnings.push({
            path: subPath,
            problem: "leftover temporary file (removed by gc)",
          });
          continue;
        }
        if (!sub.isDirectory || !/^[0-9a-f]{2}$/.test(sub.name)) {
          problem(subPath, "unexpected entry in objects/ (expected directories 00..ff)");
          continue;
        }
        for (const obj of sortedDir(subPath)) {
          const objPath = join(subPath, obj.name);
          if (obj.name.startsWith(TMP_PREFIX)) {
            report.warnings.push({
              path: objPath,
              problem: "leftover temporary file (removed by gc)",
            });
            continue;
          }
          if (!obj.isFile) {
            problem(
              objPath,
              obj.isSymlink ? "object is a symlink" : "object is not a regular file",
            );
            continue;
          }
          if (!new RegExp(`^[0-9a-f]{${hexLen - 2}}$`).test(obj.name)) {
            problem(objPath, `object name is not a ${hexLen}-digit hex digest`);
            continue;
          }
          report.objects++;
          const expected = sub.name + obj.name;
          try {
            const actual = this.measureObjectFile(objPath);
            if (actual !== expected) {
              problem(objPath, `content digest ${actual} does not match the object's name`);
            }
          } catch (e) {
            problem(objPath, (e as Error).message);
          }
        }
      }
    }
    for (const category of ["images", "streams"] as const) {
      const dir = join(this.path, category);
      if (!exists(dir)) continue;
      for (const e of sortedDir(dir)) {
        const p = join(dir, e.name);
        if (e.name === "refs") continue;
        if (e.name.startsWith(TMP_PREFIX)) {
          report.warnings.push({ path: p, problem: "leftover temporary file (removed by gc)" });
          continue;
        }
        if (!e.isSymlink) {
          problem(p, `${category}/ entry is not a symlink`);
          continue;
        }
        const target = Deno.readLinkSync(p);
        const m = /^\.\.\/objects\/([0-9a-f]{2})\/([0-9a-f]+)$/.exec(target);
        if (!m) {
          problem(p, `symlink target ${target} is not ../objects/XX/...`);
          continue;
        }
        if (!exists(join(dir, target))) {
          problem(p, `dangling symlink: object ${m[1]}${m[2]} is missing`);
          continue;
        }
        if (category === "images") {
          report.images++;
          if (m[1] + m[2] !== e.name) {
            problem(p, `image link name does not match its object ${m[1]}${m[2]}`);
            continue;
          }
          try {
            const tree = readErofs(Deno.readFileSync(p));
            for (const digest of collectObjects(tree)) {
              if (!this.hasObject(digest)) {
                problem(p, `image refers to missing object ${toHex(digest)}`);
              }
            }
          } catch (err) {
            problem(p, (err as Error).message);
          }
        } else {
          report.streams++;
          try {
            const stream = parseSplitStream(Deno.readFileSync(p), {
              name: p,
              objectIdLength: this.algorithm === "sha512" ? 64 : 32,
            });
            const missing = new Set<string>();
            for (const id of stream.objectRefs()) {
              if (!this.hasObject(id)) missing.add(toHex(id));
            }
            for (const m of missing) problem(p, `stream refers to missing object ${m}`);
          } catch (err) {
            problem(p, `stream cannot be read: ${(err as Error).message}`);
          }
        }
      }
      for (const { name, target, path } of walkRefs(join(dir, "refs"))) {
        report.refs++;
        if (!exists(join(path, "..", target))) problem(path, `dangling ref: ${name} -> ${target}`);
      }
    }
    for (const p of leftoverTemporaryLinks(this.path)) {
      if (!report.warnings.some((w) => w.path === p)) {
        report.warnings.push({ path: p, problem: "leftover temporary link (removed by gc)" });
      }
    }
    report.ok = report.problems.length === 0;
    return report;
  }

  /**
   * The hex digest of an object file's content, computed by reading all of it. In a secure
   * repository the fs-verity measurement must match too: the measurement alone only reports
   * the stored root hash, while reading makes the kernel check every block (a corrupt block
   * fails with EIO).
   */
  private measureObjectFile(path: string): string {
    const hasher = new FsVerityHasher(this.algorithm);
    const f = Deno.openSync(path, { read: true });
    try {
      const buf = new Uint8Array(1 << 20);
      for (;;) {
        let n: number | null;
        try {
          n = f.readSync(buf);
        } catch (e) {
          const why = this.secure ? ": the data does not match its fs-verity digest" : "";
          throw new Error(`read error (${(e as Error).message})${why}`);
        }
        if (n === null || n === 0) break;
        hasher.update(buf.subarray(0, n));
      }
    } finally {
      f.close();
    }
    const computed = toHex(hasher.digest());
    if (this.secure) {
      const fd = sys.openRead(path);
      try {
        const m = measureVerity(fd, this.algorithm, path);
        if (m === null) {
          throw new Error("fs-verity is not enabled on this object of a secure repository");
        }
        if (toHex(m) !== computed) {
          throw new Error(`fs-verity measures ${toHex(m)} but the content hashes to ${computed}`);
        }
      } finally {
        sys.close(fd);
      }
    }
    return computed;
  }

  /**
   * Removes images not reachable from a ref (or `roots`), objects not reachable from a live
   * image, and leftover temporary files. Holds the exclusive lock while it works.
   */
  gc(options: { dryRun?: boolean; roots?: string[] } = {}): GcReport {
    const dryRun = options.dryRun ?? false;
    const streamsDir = join(this.path, "streams");
    this.lock(true);
    try {
      const liveObjects = new Set<string>();
      const report: GcReport = {
        dryRun,
        removedImages: [],
        removedImageRefs: [],
        removedStreams: [],
        removedObjects: [],
        removedTemporary: [],
        freedBytes: 0,
        keptObjects: 0,
      };
      // Streams: live when a ref under streams/refs names them, or a live stream's digest map
      // does (an OCI config's layers); a live stream keeps its object, the objects it refers
      // to, and the stream objects of its digest map (transitively). Unreferenced streams are
      // garbage (cfsctl semantics).
      const liveStreams = new Set<string>();
      const parsedStreams = new Set<string>();
      const idLength = this.algorithm === "sha512" ? 64 : 32;
      const keepStreamObject = (id: Uint8Array) => {
        const idHex = toHex(id);
        liveObjects.add(idHex);
        if (parsedStreams.has(idHex)) return;
        parsedStreams.add(idHex);
        const stream = parseSplitStream(this.readObject(id), {
          name: `stream object ${idHex}`,
          objectIdLength: idLength,
        });
        for (const e of stream.digestMap()) {
          keepStream(toHex(e.body));
          keepStreamObject(e.verity);
        }
        for (const ref of stream.objectRefs()) liveObjects.add(toHex(ref));
      };
      const keepStream = (hex: string) => {
        if (liveStreams.has(hex)) return;
        liveStreams.add(hex);
        const id = this.hasStream(hex);
        if (id) keepStreamObject(id);
      };
      for (const { target } of walkRefs(join(streamsDir, "refs"))) {
        const hex = target.split("/").pop() ?? "";
        if (SHA256_HEX.test(hex)) keepStream(hex);
      }
      // Images: every ref is a root, except the image refs an OCI config owns
      // (`oci-config-sha256:<hex>` and its `.boot` variant, composefs-oci's composefs.image
      // and composefs.image.boot): those live exactly as long as that config stream does.
      const liveImages = new Set<string>();
      const deadImageRefs: string[] = [];
      for (const r of this.listImages().refs) {
        const owner = OCI_CONFIG_IMAGE_REF.exec(r.name);
        if (owner && !liveStreams.has(owner[1])) deadImageRefs.push(r.name);
        else if (r.id) liveImages.add(r.id);
      }
      for (const root of options.roots ?? []) liveImages.add(this.resolveImage(root));
      // Decide everything first (reading every live image), then delete: a corrupt live image
      // stops gc before anything is removed.
      const ids = this.listImages().ids;
      for (const id of ids) {
        if (!liveImages.has(id)) continue;
        liveObjects.add(id);
        const tree = readErofs(this.readObject(fromHex(id)));
        for (const d of collectObjects(tree)) liveObjects.add(toHex(d));
      }
      for (const name of deadImageRefs) {
        report.removedImageRefs.push(name);
        if (!dryRun) this.removeRef("images", name);
      }
      const streamNames = exists(streamsDir)
        ? sortedDir(streamsDir).map((e) => e.name).filter((n) =>
          n !== "refs" && !n.startsWith(TMP_PREFIX)
        )
        : [];
      for (const id of ids) {
        if (liveImages.has(id)) continue;
        report.removedImages.push(id);
        if (!dryRun) Deno.removeSync(join(this.path, "images", id));
      }
      for (const name of streamNames) {
        if (liveStreams.has(name)) continue;
        report.removedStreams.push(name);
        if (!dryRun) Deno.removeSync(join(streamsDir, name));
      }
      for (const p of leftoverTemporaryLinks(this.path)) {
        report.removedTemporary.push(p);
        if (!dryRun) Deno.removeSync(p);
      }
      const objectsDir = join(this.path, "objects");
      if (exists(objectsDir)) {
        for (const sub of sortedDir(objectsDir)) {
          const subPath = join(objectsDir, sub.name);
          if (sub.name.startsWith(TMP_PREFIX)) {
            report.removedTemporary.push(subPath);
            if (!dryRun) Deno.removeSync(subPath);
            continue;
          }
          if (!sub.isDirectory) continue;
          for (const obj of sortedDir(subPath)) {
            const p = join(subPath, obj.name);
            if (!obj.name.startsWith(TMP_PREFIX) && liveObjects.has(sub.name + obj.name)) {
              report.keptObjects++;
              continue;
            }
            report.freedBytes += Deno.lstatSync(p).size;
            (obj.name.startsWith(TMP_PREFIX) ? report.removedTemporary : report.removedObjects)
              .push(obj.name.startsWith(TMP_PREFIX) ? p : sub.name + obj.name);
            if (!dryRun) Deno.removeSync(p);
          }
        }
      }
      return report;
    } finally {
      this.lock(false);
    }
  }
}

/**
 * Image refs owned by an OCI config stream (`images/refs/oci-config-sha256:<hex>[.boot]`):
 * cfs's place for composefs-oci's `composefs.image` / `composefs.image.boot` named refs,
 * which the 0.3.0 splitstream format has no field for. gc keeps them while the config lives.
 */
export const OCI_CONFIG_IMAGE_REF = /^oci-config-sha256:([0-9a-f]{64})(?:\.boot)?$/;

/** Ref names are relative paths without empty, "." or ".." components. */
export function validateRefName(name: string): void {
  const parts = name.split("/");
  if (
    name === "" ||
    parts.some((p) => p === "" || p === "." || p === ".." || p.startsWith(TMP_PREFIX))
  ) {
    throw new RepositoryError(
      `invalid ref name '${name}': use a relative path without empty, '.' or '..' components`,
    );
  }
}

function sortedDir(path: string): Deno.DirEntry[] {
  return [...Deno.readDirSync(path)].sort((
    a,
    b,
  ) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function walkRefs(dir: string, prefix = ""): Array<{ name: string; target: string; path: string }> {
  if (!exists(dir)) return [];
  const out: Array<{ name: string; target: string; path: string }> = [];
  for (const e of sortedDir(dir)) {
    const p = join(dir, e.name);
    const name = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.name.startsWith(TMP_PREFIX)) continue; // an interrupted ref update, not a ref
    if (e.isDirectory) out.push(...walkRefs(p, name));
    else if (e.isSymlink) out.push({ name, target: Deno.readLinkSync(p), path: p });
  }
  return out;
}

/** `.tmp-*` symlinks left in images/, streams/ and their refs/ by interrupted updates. */
function leftoverTemporaryLinks(repo: string): string[] {
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
    scan(join(repo, category), false);
    scan(join(repo, category, "refs"), true);
  }
  return out;
}

/** Some object file of an old-format repository (path), if it has any. */
function firstObject(objectsDir: string): string | undefined {
  for (const sub of sortedDir(objectsDir)) {
    if (!sub.isDirectory || !/^[0-9a-f]{2}$/.test(sub.name)) continue;
    for (const obj of sortedDir(join(objectsDir, sub.name))) {
      if (obj.isFile && /^[0-9a-f]+$/.test(obj.name)) return join(objectsDir, sub.name, obj.name);
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
