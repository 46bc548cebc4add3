/**
 * fs-verity digests of files on disk, in constant memory, about as fast as `fsverity digest`.
 *
 * Why threads: fs-verity needs one hash call per 4 KiB block, and a node:crypto call costs
 * ~0.75 µs beyond the hashing itself, so one thread reaches ~80-100% of the C tool, not more.
 * A large file is therefore cut into 1 MiB ranges that the calling thread and one worker
 * per further core hash (each reads its own ranges, so file data never crosses threads);
 * the calling thread also builds the levels above the leaves, 1/128 (SHA-256) or 1/64
 * (SHA-512) of the work. Files below 32 MiB never start a worker: start-up (a V8 isolate
 * plus Deno's Node compatibility layer, ~30 ms and ~25 MB) costs more than it saves.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";
import {
  BLOCK_SIZE,
  digestSize,
  fsverityDigest,
  FsVerityHasher,
  hashBlocks,
  type VerityAlgorithm,
} from "./digest.ts";
import type { LeafWorkerInit, LeafWorkerRange, LeafWorkerResult } from "./leaf_worker.ts";
import { close, displayPath, errnoName, openRead, read, SysError } from "../sys/libc.ts";

/** Options of {@link fsverityDigestFile}. */
export interface DigestFileOptions {
  /**
   * Worker threads for large files, besides the calling thread, which hashes too; 0 keeps
   * everything on the calling thread. Default: one per further core, at most 7.
   */
  workers?: number;
  /** Files at least this large use workers (if larger than one 1 MiB range). Default 32 MiB. */
  workerThreshold?: number;
}

/** A file could not be read for hashing; the message names it and says why. */
export class FileDigestError extends CfsError {
  constructor(readonly path: string, reason: string, options?: CfsErrorOptions) {
    super(`${path}: ${reason}`, withCode(options, "file-digest-failed"));
    this.name = "FileDigestError";
  }
}

const DEFAULT_WORKER_THRESHOLD = 32 << 20;
/** Read size on the calling thread: large enough that per-read costs vanish. */
const READ_SIZE = 1 << 20;
/** Range per worker request: big reads, yet enough ranges to balance two cores. */
const CHUNK_SIZE = 1 << 20;
/** Ranges in flight per worker, so a worker never waits for the main thread. */
const IN_FLIGHT = 2;
/** How far hashing may run ahead of the tree: 64 ranges keep at most 4 MiB of hashes. */
const MAX_AHEAD = 64;

/**
 * The fs-verity digest of the file at `path` (symlinks followed, like `fsverity
 * digest`). Memory stays constant whatever the file size: one read buffer per thread
 * plus a few ranges' leaf hashes. The file must not change while it is hashed.
 */
export async function fsverityDigestFile(
  path: string,
  alg: VerityAlgorithm,
  opts: DigestFileOptions = {},
): Promise<Uint8Array> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (e) {
    throw ioError(path, e);
  }
  try {
    const stat = await file.stat();
    if (stat.isDirectory) throw new FileDigestError(path, "is a directory");
    const workers = opts.workers ?? Math.min((navigator.hardwareConcurrency || 1) - 1, 7);
    const threshold = Math.max(opts.workerThreshold ?? DEFAULT_WORKER_THRESHOLD, CHUNK_SIZE + 1);
    if (workers > 0 && stat.size >= threshold) {
      return await digestInParallel(file, path, stat.size, alg, workers);
    }
    const hasher = new FsVerityHasher(alg);
    const buf = new Uint8Array(readBufferSize(stat.size));
    for (;;) {
      const n = await readFull(file, buf);
      if (n > 0) hasher.update(buf.subarray(0, n));
      if (n < buf.length) break;
    }
    return hasher.digest();
  } catch (e) {
    throw e instanceof FileDigestError ? e : ioError(path, e);
  } finally {
    file.close();
  }
}

/** Fills `buf` unless EOF comes first; returns the bytes read. */
async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got;
}

/** A buffer just big enough for a small file (so many small files cost little). */
function readBufferSize(size: number): number {
  return Math.max(BLOCK_SIZE, Math.min(READ_SIZE, Math.ceil((size + 1) / BLOCK_SIZE) * BLOCK_SIZE));
}

/**
 * Leaf hashes from the calling thread and `workerCount` workers, upper levels here.
 *
 * Ranges are handed out as each hasher finishes (so a busy core does not stall the
 * others) and their hashes are fed to the tree in file order. No range more than
 * `MAX_AHEAD` past the first unfinished one is started, which bounds memory whatever the
 * file size. A worker that cannot start (its first word is an error event) is dropped and
 * its ranges are hashed here: slower, still right. A range a worker could not read fails
 * the digest.
 */
async function digestInParallel(
  file: Deno.FsFile,
  path: string,
  size: number,
  alg: VerityAlgorithm,
  workerCount: number,
): Promise<Uint8Array> {
  const ranges = Math.ceil(size / CHUNK_SIZE);
  const rangeLength = (id: number) => Math.min(CHUNK_SIZE, size - id * CHUNK_SIZE);
  const hasher = new FsVerityHasher(alg);
  const done = new Map<number, Uint8Array>();
  const retry: number[] = [];
  let next = 0; // next range never handed out
  let fed = 0; // next range to feed to the tree
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const signal = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const take = (): number | undefined => {
    if (retry.length > 0) return retry.pop();
    if (next < ranges && next - fed < MAX_AHEAD) return next++;
    return undefined;
  };
  const complete = (id: number, hashes: Uint8Array) => {
    done.set(id, hashes);
    for (let h = done.get(fed); h !== undefined; h = done.get(fed)) {
      done.delete(fed);
      hasher.updateLeafHashes(h, rangeLength(fed));
      fed++;
    }
    for (const helper of helpers) topUp(helper);
    signal();
  };

  interface Helper {
    worker: Worker;
    pending: Set<number>;
    started: boolean;
  }
  const helpers = new Set<Helper>();
  const topUp = (h: Helper) => {
    while (h.pending.size < IN_FLIGHT && failure === undefined) {
      const id = take();
      if (id === undefined) return;
      h.pending.add(id);
      const msg: LeafWorkerRange = { id, offset: id * CHUNK_SIZE, length: rangeLength(id) };
      h.worker.postMessage(msg);
    }
  };
  for (let i = 0; i < Math.min(workerCount, ranges - 1); i++) {
    const worker = new Worker(new URL("./leaf_worker.ts", import.meta.url), { type: "module" });
    const h: Helper = { worker, pending: new Set(), started: false };
    helpers.add(h);
    const init: LeafWorkerInit = { path, alg, chunkSize: CHUNK_SIZE };
    worker.postMessage(init);
    worker.onerror = (e) => {
      e.preventDefault();
      helpers.delete(h);
      worker.terminate();
      if (h.started) failure ??= new FileDigestError(path, `fs-verity worker failed: ${e.message}`);
      else retry.push(...h.pending);
      signal();
    };
    worker.onmessage = (e: MessageEvent<LeafWorkerResult>) => {
      const r = e.data;
      h.started = true;
      h.pending.delete(r.id);
      if ("error" in r) {
        failure ??= new FileDigestError(path, r.error);
        return signal();
      }
      complete(r.id, r.hashes);
    };
    topUp(h);
  }

  try {
    // This thread hashes ranges too; its awaited reads let the workers' answers in.
    const buf = new Uint8Array(CHUNK_SIZE);
    while (fed < ranges) {
      if (failure !== undefined) throw failure;
      const id = take();
      if (id === undefined) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      const length = rangeLength(id);
      await file.seek(id * CHUNK_SIZE, Deno.SeekMode.Start);
      if ((await readFull(file, buf.subarray(0, length))) < length) {
        throw new FileDigestError(path, "file shrank while it was hashed");
      }
      const hashes = new Uint8Array(Math.ceil(length / BLOCK_SIZE) * digestSize(alg));
      hashBlocks(alg, buf.subarray(0, length), hashes);
      complete(id, hashes);
    }
  } finally {
    for (const h of helpers) h.worker.terminate();
  }
  return hasher.digest();
}

let syncBuffer: Uint8Array<ArrayBuffer> | undefined;

/**
 * The fs-verity digest of a file, read synchronously on the calling thread, for code that
 * walks trees synchronously. A string path follows symlinks; a byte path (a Linux file
 * name that need not be UTF-8) is opened with O_NOFOLLOW, as tree walkers want.
 */
export function fsverityDigestFileSync(
  path: string | Uint8Array,
  alg: VerityAlgorithm,
): Uint8Array {
  const shown = displayPath(path);
  try {
    if (typeof path === "string") {
      using file = Deno.openSync(path);
      return digestReader((b) => file.readSync(b) ?? 0, alg);
    }
    const fd = openRead(path);
    try {
      return digestReader((b) => read(fd, b, path), alg);
    } finally {
      close(fd);
    }
  } catch (e) {
    throw ioError(shown, e);
  }
}

/** Digest of everything `readInto` yields until it returns 0 (EOF). */
function digestReader(
  readInto: (buf: Uint8Array<ArrayBuffer>) => number,
  alg: VerityAlgorithm,
): Uint8Array {
  // One buffer for all calls is safe: nothing else runs until this synchronous loop returns.
  const buf = syncBuffer ??= new Uint8Array(READ_SIZE);
  let got = 0;
  for (;;) {
    const n = readInto(buf.subarray(got));
    if (n === 0) break;
    got += n;
    if (got === buf.length) break;
  }
  if (got < buf.length) return fsverityDigest(buf.subarray(0, got), alg);
  const hasher = new FsVerityHasher(alg);
  hasher.update(buf);
  for (;;) {
    const n = readInto(buf);
    if (n === 0) break;
    hasher.update(buf.subarray(0, n));
  }
  return hasher.digest();
}

/** A one-line, actionable reason for a failed open or read. */
function ioError(path: string, e: unknown): Error {
  if (e instanceof FileDigestError) return e;
  let reason: string;
  if (e instanceof Deno.errors.NotFound) reason = "no such file or directory";
  else if (e instanceof Deno.errors.PermissionDenied) reason = "permission denied";
  else if (e instanceof Deno.errors.IsADirectory) reason = "is a directory";
  else if (e instanceof SysError) reason = errnoName(e.errno);
  else reason = e instanceof Error ? e.message : String(e);
  return new FileDigestError(path, reason, { cause: e });
}
