/**
 * fs-verity digests of many files, hashed on a second core while the calling thread goes on
 * (walking a directory tree, say), and still synchronous to the caller: {@link
 * FileDigestPool.digest} returns the array the digest will be in, {@link FileDigestPool.finish}
 * fills every one of them before it returns.
 *
 * How: the files form one queue in shared memory. A worker (`file_pool_worker.ts`) takes files
 * from its head and writes their digests into shared memory; the calling thread takes files
 * from the head too whenever more than {@link BACKLOG_BYTES} are waiting (so neither core idles
 * while the other has work), and at `finish()` takes everything left, then waits (Atomics.wait)
 * only for the files the worker is hashing at that moment. Each file is taken once, by a
 * compare-and-swap on the head index.
 *
 * Nothing depends on the worker: one that cannot start (`deno compile` without
 * `--include lib/fsverity/file_pool_worker.ts`, no second core, a small tree that never starts
 * it) just leaves every file to the calling thread, and a file the worker cannot read is hashed
 * again here so the error names it as the single-threaded path would.
 *
 * @module
 */
import { digestSize, type VerityAlgorithm } from "./digest.ts";
import { fsverityDigestFileSync } from "./file.ts";
import type { PoolWorkerMessage } from "./file_pool_worker.ts";

/** Options of {@link FileDigestPool}. */
export interface FileDigestPoolOptions {
  /** Start a worker (default: when the machine has more than one core). */
  worker?: boolean;
  /** Bytes queued before the worker starts (default 8 MiB: small trees never start one). */
  workerAfter?: number;
}

/** Queue length (bytes of files not yet taken) above which the calling thread takes files too. */
const BACKLOG_BYTES = 4 << 20;
/** Paths sent to the worker per message. */
const PATH_BATCH = 32;
/** Slots per shared result chunk. */
const CHUNK = 1024;
/** Control words: head of the queue, files the worker finished. */
const HEAD = 0, WORKER_DONE = 1;
/** Status of a slot, after its digest: 0 not done by the worker, 1 done, 2 failed. */
const DONE = 1;
/** With no progress from the worker for this long, the files it holds are hashed here. */
const STALL_MS = 60_000;

interface Entry {
  path: Uint8Array;
  out: Uint8Array;
  /** Hashed by the calling thread. */
  here: boolean;
}

/** A queue of files to digest; see the module doc. Not reentrant; one per tree walk. */
export class FileDigestPool {
  readonly #alg: VerityAlgorithm;
  readonly #ds: number;
  readonly #entries: Entry[] = [];
  /** Sum of the sizes of entries [0, i), for i = 0..length. */
  readonly #sizeBefore: number[] = [0];
  readonly #control = new Int32Array(new SharedArrayBuffer(8));
  /** Per chunk: CHUNK digests, then CHUNK status bytes. */
  readonly #chunks: Uint8Array[] = [];
  #batch: Uint8Array[] = [];
  #worker: Worker | undefined;
  #workerWanted: boolean;
  readonly #workerAfter: number;
  #hereCount = 0;

  /** A pool for `alg` digests. */
  constructor(alg: VerityAlgorithm, options: FileDigestPoolOptions = {}) {
    this.#alg = alg;
    this.#ds = digestSize(alg);
    this.#workerWanted = options.worker ?? (navigator.hardwareConcurrency ?? 1) > 1;
    this.#workerAfter = options.workerAfter ?? 8 << 20;
  }

  /**
   * Queues the file at `path` (bytes, opened with O_NOFOLLOW) of `size` bytes; returns the array
   * its digest will be in once {@link finish} has returned (zeros until then).
   */
  digest(path: Uint8Array, size: number): Uint8Array {
    const i = this.#entries.length;
    const out = new Uint8Array(this.#ds);
    if (i % CHUNK === 0) this.#addChunk();
    this.#entries.push({ path, out, here: false });
    this.#sizeBefore.push(this.#sizeBefore[i] + size);
    this.#batch.push(path);
    if (
      this.#worker === undefined && this.#workerWanted &&
      this.#sizeBefore[i + 1] >= this.#workerAfter
    ) {
      this.#startWorker();
    }
    if (this.#batch.length >= PATH_BATCH) this.#flush();
    while (
      this.#sizeBefore[this.#entries.length] - this.#sizeBefore[this.#head()] > BACKLOG_BYTES
    ) {
      if (!this.#takeOne()) break;
    }
    return out;
  }

  /** Digests every queued file into its array; throws the first file's error. */
  finish(): void {
    this.#flush();
    while (this.#takeOne());
    const n = this.#entries.length;
    const workerShare = n - this.#hereCount;
    let seen = Atomics.load(this.#control, WORKER_DONE);
    let since = Date.now();
    while (seen < workerShare) {
      Atomics.wait(this.#control, WORKER_DONE, seen, 100);
      const now = Atomics.load(this.#control, WORKER_DONE);
      if (now !== seen) {
        seen = now;
        since = Date.now();
      } else if (Date.now() - since > STALL_MS) {
        break; // the worker is stuck: what it holds is hashed below
      }
    }
    this.close();
    for (let i = 0; i < n; i++) {
      const e = this.#entries[i];
      if (e.here) continue;
      const chunk = this.#chunks[Math.floor(i / CHUNK)];
      const slot = i % CHUNK;
      if (chunk[CHUNK * this.#ds + slot] === DONE) {
        e.out.set(chunk.subarray(slot * this.#ds, (slot + 1) * this.#ds));
      } else {
        e.out.set(fsverityDigestFileSync(e.path, this.#alg)); // failed there: the error, named
      }
    }
  }

  /** How many files each side has hashed so far (final after {@link finish}): for tests. */
  get counts(): { here: number; worker: number } {
    return { here: this.#hereCount, worker: Atomics.load(this.#control, WORKER_DONE) };
  }

  /** Stops the worker (finish() does; call it when a walk is abandoned). */
  close(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    this.#workerWanted = false;
  }

  #head(): number {
    return Atomics.load(this.#control, HEAD);
  }

  /** Takes the file at the head of the queue and hashes it here; false when there is none. */
  #takeOne(): boolean {
    for (;;) {
      const i = this.#head();
      if (i >= this.#entries.length) return false;
      if (Atomics.compareExchange(this.#control, HEAD, i, i + 1) !== i) continue;
      const e = this.#entries[i];
      e.out.set(fsverityDigestFileSync(e.path, this.#alg));
      e.here = true;
      this.#hereCount++;
      return true;
    }
  }

  #addChunk(): void {
    const chunk = new Uint8Array(new SharedArrayBuffer(CHUNK * (this.#ds + 1)));
    this.#chunks.push(chunk);
    this.#post({ chunk });
  }

  #flush(): void {
    if (this.#batch.length === 0) return;
    this.#post({ paths: this.#batch });
    this.#batch = [];
  }

  #post(message: PoolWorkerMessage): void {
    this.#worker?.postMessage(message);
  }

  #startWorker(): void {
    try {
      const worker = new Worker(new URL("./file_pool_worker.ts", import.meta.url), {
        type: "module",
      });
      // A worker that fails (to start or later) takes no more files: the rest are hashed here.
      worker.onerror = (e) => {
        e.preventDefault();
        this.close();
      };
      const all = this.#entries.slice(0, this.#entries.length - this.#batch.length);
      const messages: PoolWorkerMessage[] = [
        { alg: this.#alg, control: this.#control, chunkSize: CHUNK },
        ...this.#chunks.map((chunk) => ({ chunk })),
        { paths: all.map((e) => e.path) },
      ];
      for (const m of messages) worker.postMessage(m);
      this.#worker = worker;
    } catch {
      this.#workerWanted = false;
    }
  }
}
