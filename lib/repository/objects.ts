/**
 * `objects/XX/<rest>`: content named by its fs-verity digest.
 *
 * A new object is staged as `objects/.tmp-object-<random>` (composefs-rs 0.9.4's name for
 * its own staging files, which its gc and fsck never look at), written while it is hashed,
 * given fs-verity in a secure repository (enabled and measured), and renamed to its name; a
 * killed process never leaves an object name with partial content. Objects are not fsynced
 * one by one: {@link ObjectStore.sync} (syncfs) runs before anything that names objects is
 * linked, as composefs-rs batches it.
 *
 * Reading checks the content against the name: by fs-verity measurement in a secure
 * repository (the kernel checks every block read), by hashing in an insecure one.
 *
 * @module
 */
import { fsverityDigest, FsVerityHasher, toHex, type VerityAlgorithm } from "../fsverity/digest.ts";
import { fsverityDigestFileSync } from "../fsverity/file.ts";
import { enableVerity, measureVerity } from "../fsverity/ioctl.ts";
import * as sys from "../sys/libc.ts";
import * as aio from "../sys/async_io.ts";
import { randomSuffix, TMP_OBJECT_PREFIX } from "./files.ts";
import { isNotFound, type RepoDir, repositoryWriteError } from "./dir.ts";
import { RepositoryError } from "./errors.ts";
import { ObjectId } from "./object_id.ts";

/** Files up to this size are stored from memory (one read); larger ones are streamed. */
const STORE_IN_MEMORY_MAX = 4 << 20;

/** How an object came to be: composefs-rs `ObjectStoreMethod`. */
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

function changedWhileReading(
  source: Uint8Array | string,
  got: number,
  expected: number,
): RepositoryError {
  return new RepositoryError(
    `${sys.displayPath(source)}: changed while being read (${got} bytes, expected ${expected})`,
  );
}

/** The object store of one repository. */
export class ObjectStore {
  /** The `objects/` directory. */
  readonly dir: string;

  /** The store of the repository `root`; `requireWritable` guards every write. */
  constructor(
    private readonly root: RepoDir,
    /** The digest algorithm naming every object. */
    readonly algorithm: VerityAlgorithm,
    /** fs-verity enabled on every object (else digests are computed in user space). */
    readonly secure: boolean,
    /** Throws when the repository may not be written. */
    private readonly requireWritable: () => void,
  ) {
    this.dir = root.abs("objects");
  }

  /** Absolute path of an object (for messages and tools; cfs opens objects by {@link rel}). */
  path(id: ObjectId): string {
    return this.root.abs(this.rel(id));
  }

  /** An object's path relative to the repository: `objects/XX/<rest>`. */
  rel(id: ObjectId): string {
    return `objects/${id.objectPath}`;
  }

  /** An id of this repository's algorithm made from digest bytes (size checked). */
  idOf(digest: Uint8Array | ObjectId): ObjectId {
    const id = digest instanceof ObjectId ? digest : ObjectId.fromBytes(digest);
    if (id.algorithm !== this.algorithm) {
      throw new RepositoryError(
        `object id ${
          id.hex.slice(0, 16)
        }... is ${id.algorithm}; this repository uses ${this.algorithm}`,
      );
    }
    return id;
  }

  /** Whether the object exists. */
  has(id: ObjectId): boolean {
    return this.root.exists(this.rel(id));
  }

  /**
   * Opens a new staging file `objects/.tmp-object-<random>`: its relative path, its absolute
   * one (every write error names it) and a descriptor open for writing.
   */
  private openTemp(): { rel: string; path: string; fd: number } {
    this.requireWritable();
    const rel = `objects/${TMP_OBJECT_PREFIX}${randomSuffix()}`;
    try {
      return { rel, path: this.root.abs(rel), fd: this.root.createExclusive(rel) };
    } catch (e) {
      throw repositoryWriteError(e);
    }
  }

  /** Removes a staging file after a failure (it may be gone already). */
  private dropTemp(rel: string): void {
    try {
      this.root.unlink(rel);
    } catch { /* best effort: gc removes staging files */ }
  }

  /**
   * Moves a finished staging file to its object name (or drops it when the object exists):
   * in a secure repository verity is enabled and measured first.
   */
  private commitTemp(tmp: string, id: ObjectId): void {
    const final = this.path(id);
    const tmpPath = this.root.abs(tmp);
    try {
      if (this.has(id)) {
        this.root.unlink(tmp);
        return;
      }
      if (this.secure) {
        const fd = this.root.openRead(tmp);
        try {
          enableVerity(fd, this.algorithm, tmpPath);
          const measured = measureVerity(fd, this.algorithm, tmpPath);
          if (measured === null || toHex(measured) !== id.hex) {
            throw new RepositoryError(
              `${final}: measured fs-verity digest does not match the computed one`,
            );
          }
        } finally {
          sys.close(fd);
        }
      }
      this.root.rename(tmp, this.rel(id));
    } catch (e) {
      this.dropTemp(tmp);
      throw repositoryWriteError(e);
    }
  }

  /**
   * A writer that stores objects on other threads while the caller goes on (a layer import):
   * see {@link ObjectWrites}. At most `inFlight` objects are being written at once.
   */
  parallelWrites(inFlight: number = OBJECT_WRITES_IN_FLIGHT): ObjectWrites {
    this.requireWritable();
    return new ObjectWrites(this, this.root, inFlight);
  }

  /** Stores bytes as an object; returns its id. An existing object is reused. */
  storeBytes(data: Uint8Array): ObjectId {
    const id = ObjectId.fromBytes(fsverityDigest(data, this.algorithm));
    if (this.has(id)) return id;
    const { rel, path, fd } = this.openTemp();
    try {
      sys.writeAll(fd, data, path);
    } catch (e) {
      sys.close(fd);
      this.dropTemp(rel);
      throw repositoryWriteError(e);
    }
    sys.close(fd);
    this.commitTemp(rel, id);
    return id;
  }

  /**
   * Stores a file (byte path) as an object. Small files are read once into memory. Large
   * ones are hashed in a first streaming pass, and only when the object is new copied in a
   * second pass (from the page cache) that hashes again, so a file that changes in between
   * is refused instead of being stored under the wrong name. Constant memory for any size.
   */
  storeFile(source: Uint8Array | string, expectedSize?: number): ObjectId {
    this.requireWritable();
    const size = expectedSize ?? sys.lstat(source).size;
    if (size <= STORE_IN_MEMORY_MAX) {
      const data = sys.readFileBytes(source, size + 1);
      if (data.length !== size) throw changedWhileReading(source, data.length, size);
      return this.storeBytes(data);
    }
    const id = ObjectId.fromBytes(fsverityDigestFileSync(source, this.algorithm));
    if (this.has(id)) return id;
    const { rel: tmp, path: tmpPath, fd: out } = this.openTemp();
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
          sys.writeAll(out, chunk, tmpPath);
          total += n;
        }
      } finally {
        sys.close(fd);
      }
    } catch (e) {
      sys.close(out);
      this.dropTemp(tmp);
      throw repositoryWriteError(e);
    }
    sys.close(out);
    if (total !== size || toHex(hasher.digest()) !== id.hex) {
      this.dropTemp(tmp);
      throw changedWhileReading(source, total, size);
    }
    this.commitTemp(tmp, id);
    return id;
  }

  /**
   * Stores an object from chunks that arrive over time (a tar body as it streams), in
   * constant memory: written to a staging file while hashed, then committed. With `size`, a
   * different length fails and nothing is stored. The chunks are not kept.
   */
  async storeStream(chunks: AsyncIterable<Uint8Array>, size?: number): Promise<ObjectId> {
    const { rel: tmp, path: tmpPath, fd } = this.openTemp();
    const hasher = new FsVerityHasher(this.algorithm);
    let total = 0;
    try {
      for await (const chunk of chunks) {
        hasher.update(chunk);
        sys.writeAll(fd, chunk, tmpPath);
        total += chunk.length;
      }
      if (size !== undefined && total !== size) {
        throw new RepositoryError(`object stream of ${total} bytes, expected ${size}`);
      }
    } catch (e) {
      sys.close(fd);
      this.dropTemp(tmp);
      throw repositoryWriteError(e);
    }
    sys.close(fd);
    const id = ObjectId.fromBytes(hasher.digest());
    this.commitTemp(tmp, id);
    return id;
  }

  /**
   * Makes `id` an object from a file outside the repository whose content is the object's
   * (a containers-storage layer file) without copying its data where the file systems allow,
   * as composefs-rs `ensure_object_from_file` does: a reflink (FICLONE into a staging file),
   * else a hard link of the file itself, else (unless `zerocopy`) a copy. The caller computed
   * `id` from the bytes it read through `source.fd`; `source.stat` was taken before that
   * read, and a file whose status changed since (a write moves ctime) is refused rather than
   * stored under a wrong name. Hard links only where {@link hardlinkRefusal} allows.
   */
  storeLocalFile(
    source: LocalObjectSource,
    id: ObjectId,
    options: { zerocopy?: boolean; data?: Uint8Array; context?: LocalStoreContext } = {},
  ): ObjectStoreMethod {
    this.requireWritable();
    this.idOf(id);
    if (this.has(id)) return "present";
    const context = options.context ?? new LocalStoreContext();
    const final = this.path(id);
    const finalRel = this.rel(id);
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
      const { rel: tmp, path: tmpPath, fd } = this.openTemp();
      let cloned = false;
      try {
        sys.ficlone(fd, source.fd, tmpPath);
        cloned = true;
      } catch (e) {
        const errno = e instanceof sys.SysError ? e.errno : -1;
        if (![sys.Errno.EOPNOTSUPP, sys.Errno.EXDEV, sys.Errno.EINVAL].includes(errno as 95)) {
          sys.close(fd);
          this.dropTemp(tmp);
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
          this.dropTemp(tmp);
          throw e;
        }
        this.commitTemp(tmp, id);
        return "reflinked";
      }
      this.dropTemp(tmp);
    }
    let linkError: string;
    const refusal = hardlinkRefusal(source, this.secure);
    if (refusal === undefined) {
      unchanged();
      try {
        if (this.secure) {
          enableVerity(source.fd, this.algorithm, display);
          const measured = measureVerity(source.fd, this.algorithm, display);
          if (measured === null || toHex(measured) !== id.hex) {
            throw new RepositoryError(
              `${display}: measured fs-verity digest does not match the computed one`,
            );
          }
        }
        this.root.linkFrom(source.path, finalRel);
        const linked = this.root.lstat(finalRel)!;
        const src = sys.fstat(source.fd, source.path);
        if (
          linked.ino !== src.ino || linked.devMajor !== src.devMajor ||
          linked.devMinor !== src.devMinor
        ) {
          this.root.unlink(finalRel);
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
    if (!stored.equals(id)) {
      throw new RepositoryError(`${display}: changed while being imported; not stored`);
    }
    context.copied.push({ path: display, reason: linkError });
    return "copied";
  }

  /**
   * Whether the object is stored as a regular file (`missing` when it is not there,
   * `damaged` when something else is) and, with `hash`, whether its content matches its name
   * (read whole; in a secure repository the kernel also checks every block).
   */
  check(id: ObjectId, hash: boolean): "ok" | "missing" | "damaged" {
    const st = this.root.lstat(this.rel(id));
    if (st === undefined) return "missing";
    if ((st.mode & sys.S_IFMT) !== sys.S_IFREG) return "damaged";
    if (!hash) return "ok";
    try {
      return this.measureFile(this.rel(id)) === id.hex ? "ok" : "damaged";
    } catch {
      return "damaged";
    }
  }

  /**
   * Removes the object `id` (a damaged one: content that does not match its name can never be
   * right, and a later store writes it anew). False when it was not there.
   */
  remove(id: ObjectId): boolean {
    this.requireWritable();
    return this.root.unlink(this.rel(id));
  }

  /** Reads an object whole, checking it against its id. */
  read(id: ObjectId): Uint8Array {
    this.idOf(id);
    const path = this.path(id);
    let data: Uint8Array;
    try {
      data = this.root.readFile(this.rel(id));
    } catch (e) {
      if (isNotFound(e)) {
        throw new RepositoryError(`object ${id.hex} is missing from ${this.root.path}`, {
          cause: e,
          code: "object-missing",
        });
      }
      const hint = this.secure
        ? " (with fs-verity, an I/O error means the data on disk is corrupt)"
        : "";
      throw new RepositoryError(`${path}: cannot read object: ${(e as Error).message}${hint}`, {
        cause: e,
      });
    }
    this.verify(this.rel(id), id, data);
    return data;
  }

  /**
   * Checks an object read from `rel` against its name: secure repositories by fs-verity
   * measurement (the kernel checked the data as it was read), others by hashing `data`.
   */
  private verify(rel: string, id: ObjectId, data: Uint8Array): void {
    const path = this.root.abs(rel);
    if (this.secure) {
      const fd = this.root.openRead(rel);
      try {
        const measured = measureVerity(fd, this.algorithm, path);
        if (measured === null) {
          throw new RepositoryError(
            `${path}: fs-verity is not enabled on this object of a secure repository`,
            { code: "object-corrupt" },
          );
        }
        if (toHex(measured) !== id.hex) {
          throw new RepositoryError(
            `${path}: fs-verity digest ${toHex(measured)} does not match its name`,
            { code: "object-corrupt" },
          );
        }
      } finally {
        sys.close(fd);
      }
    } else if (toHex(fsverityDigest(data, this.algorithm)) !== id.hex) {
      throw new RepositoryError(`${path}: content does not match its name (corrupt object)`, {
        code: "object-corrupt",
      });
    }
  }

  /**
   * Whether the kernel gives a measurement of the file `rel` (relative to the repository) in
   * this repository's algorithm: fsck's test for `object-verity-missing` in a secure
   * repository (composefs-rs 0.9.4 counts any failure to measure as missing fs-verity, and
   * then reads nothing).
   */
  hasVerity(rel: string): boolean {
    let fd: number;
    try {
      fd = this.root.openRead(rel);
    } catch {
      return false;
    }
    try {
      return measureVerity(fd, this.algorithm, this.root.abs(rel)) !== null;
    } catch {
      return false;
    } finally {
      sys.close(fd);
    }
  }

  /**
   * The hex digest of an object file's content, computed by reading all of it. In a secure
   * repository the fs-verity measurement must match too: the measurement alone only reports
   * the stored root hash, while reading makes the kernel check every block (EIO if corrupt).
   */
  measureFile(rel: string): string {
    const path = this.root.abs(rel);
    const hasher = new FsVerityHasher(this.algorithm);
    const f = this.root.openRead(rel);
    try {
      const buf = new Uint8Array(1 << 20);
      for (;;) {
        let n: number;
        try {
          n = sys.read(f, buf, path);
        } catch (e) {
          const why = this.secure ? ": the data does not match its fs-verity digest" : "";
          throw new Error(`read error (${(e as Error).message})${why}`);
        }
        if (n === 0) break;
        hasher.update(buf.subarray(0, n));
      }
    } finally {
      sys.close(f);
    }
    const computed = toHex(hasher.digest());
    if (this.secure) {
      const fd = this.root.openRead(rel);
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
}

/** Objects {@link ObjectWrites} writes at once by default: measured, see the README. */
export const OBJECT_WRITES_IN_FLIGHT = 8;

/** Most bytes of one streamed object handed to write(2) and not yet written. */
const STREAM_BYTES_IN_FLIGHT = 8 << 20;

/**
 * Stores objects with their system calls on other threads (lib/sys/async_io.ts), so that the
 * kernel's file creation overlaps the caller's parsing and hashing, as composefs-rs's pull
 * overlaps them. Each object is an unnamed O_TMPFILE in `objects/`, written, given fs-verity
 * in a secure repository, then linked to its name: a crash at any point leaves no name and no
 * staging file. Where the file system has no O_TMPFILE, objects are stored as
 * {@link ObjectStore.storeBytes} and {@link ObjectStore.storeStream} store them.
 *
 * ```ts
 * const writes = store.parallelWrites();
 * const id = await writes.store(bytes);   // hashed now; written later
 * await writes.drain();                   // every object written and linked, or the first error
 * ```
 *
 * {@link store} returns the id before the object is on disk: nothing that names it may be
 * synced or linked before {@link drain} resolves. A failed write is reported by the next call
 * (and by {@link drain}). After a failure of its own, the caller must {@link settle} before it
 * lets go, so that no call still runs once it has returned.
 */
export class ObjectWrites {
  #inFlight = 0;
  #waiting: Array<() => void> = [];
  #running = new Set<Promise<void>>();
  #failed: { error: unknown } | undefined;
  #tmpfile = true;
  #objectsFd: number;
  #label: string;

  /** Use {@link ObjectStore.parallelWrites}. */
  constructor(
    private readonly objects: ObjectStore,
    private readonly root: RepoDir,
    private readonly max: number,
  ) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`in flight: ${max}`);
    this.#objectsFd = root.heldDir("objects");
    this.#label = `${objects.dir}/${TMP_OBJECT_PREFIX}<O_TMPFILE>`;
  }

  /**
   * Hashes `data` (here, now) and starts storing it as an object; returns its id once the
   * write has started (after waiting while too many are in flight). `data` must not change
   * until {@link drain}.
   */
  async store(data: Uint8Array): Promise<ObjectId> {
    await this.#room();
    const id = ObjectId.fromBytes(fsverityDigest(data, this.objects.algorithm));
    if (!this.#tmpfile) return this.objects.storeBytes(data);
    const dirfd = this.root.heldDir(`objects/${id.hex.slice(0, 2)}`);
    if (aio.existsAt(dirfd, id.hex.slice(2), this.objects.path(id))) return id;
    this.#run(async () => {
      const fd = await this.#open();
      if (fd === undefined) {
        this.objects.storeBytes(data);
        return;
      }
      await this.#finish(fd, async () => {
        await aio.writeAll(fd, data, this.#label);
        return id;
      });
    });
    return id;
  }

  /**
   * Stores `size` bytes arriving as `chunks` (a large tar body) as one object, in constant
   * memory: the chunks are hashed here and written on other threads as they come (at most
   * 8 MiB waiting). Resolves with the id once the object is written and linked. The chunks
   * must not change once handed over.
   */
  async storeStream(chunks: AsyncIterable<Uint8Array>, size: number): Promise<ObjectId> {
    await this.#room();
    this.#inFlight++;
    try {
      const fd = this.#tmpfile ? await this.#open() : undefined;
      if (fd === undefined) return await this.objects.storeStream(chunks, size);
      return await this.#finish(fd, async () => {
        const hasher = new FsVerityHasher(this.objects.algorithm);
        let total = 0;
        let queued = 0;
        let written: Promise<void> = Promise.resolve();
        try {
          for await (const chunk of chunks) {
            hasher.update(chunk);
            total += chunk.length;
            queued += chunk.length;
            written = written.then(async () => {
              await aio.writeAll(fd, chunk, this.#label);
              queued -= chunk.length;
            });
            written.catch(() => {}); // observed below; never an unhandled rejection
            if (queued > STREAM_BYTES_IN_FLIGHT) await written;
          }
        } catch (e) {
          // No write may still run on fd when it is closed (the number could be reused).
          await written.catch(() => {});
          throw e;
        }
        await written;
        if (total !== size) {
          throw new RepositoryError(`object stream of ${total} bytes, expected ${size}`);
        }
        return ObjectId.fromBytes(hasher.digest());
      });
    } finally {
      this.#inFlight--;
      this.#wake();
    }
  }

  /** Waits until every object started is written and linked; throws the first failure. */
  async drain(): Promise<void> {
    await this.settle();
    if (this.#failed) throw this.#failed.error;
  }

  /** Waits until no call is running, whatever their outcome. */
  async settle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  /** Opens an O_TMPFILE in `objects/`; undefined (and never again) where there is none. */
  async #open(): Promise<number | undefined> {
    try {
      return await aio.openTmpfile(this.#objectsFd, this.objects.dir);
    } catch (e) {
      if (
        e instanceof sys.SysError &&
        [sys.Errno.EOPNOTSUPP, sys.Errno.EISDIR, sys.Errno.EINVAL].includes(e.errno as 95)
      ) {
        this.#tmpfile = false;
        return undefined;
      }
      throw repositoryWriteError(e);
    }
  }

  /**
   * Fills the unnamed file `fd` (`fill` writes it and returns its id), gives it fs-verity in a
   * secure repository, links it to its name and closes it (in any case). An object that
   * appeared meanwhile is kept and this copy dropped.
   */
  async #finish(fd: number, fill: () => Promise<ObjectId>): Promise<ObjectId> {
    let open = fd;
    try {
      const id = await fill();
      const final = this.objects.path(id);
      if (this.objects.secure) {
        // fs-verity needs a file no one has open for writing: reopen it read-only.
        const ro = aio.reopenReadOnly(fd, this.#label);
        sys.close(fd);
        open = ro;
        enableVerity(ro, this.objects.algorithm, this.#label);
        const measured = measureVerity(ro, this.objects.algorithm, this.#label);
        if (measured === null || toHex(measured) !== id.hex) {
          throw new RepositoryError(
            `${final}: measured fs-verity digest does not match the computed one`,
          );
        }
      }
      const dirfd = this.root.heldDir(`objects/${id.hex.slice(0, 2)}`);
      await aio.linkTmpfile(open, dirfd, id.hex.slice(2), final);
      return id;
    } catch (e) {
      throw repositoryWriteError(e);
    } finally {
      sys.close(open);
    }
  }

  #run(task: () => Promise<void>): void {
    this.#inFlight++;
    const p: Promise<void> = task()
      .catch((e) => {
        this.#failed ??= { error: e };
      })
      .finally(() => {
        this.#inFlight--;
        this.#running.delete(p);
        this.#wake();
      });
    this.#running.add(p);
  }

  #wake(): void {
    this.#waiting.shift()?.();
  }

  #throwIfFailed(): void {
    if (this.#failed) throw this.#failed.error;
  }

  async #room(): Promise<void> {
    this.#throwIfFailed();
    while (this.#inFlight >= this.max) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
      this.#throwIfFailed();
    }
  }
}
