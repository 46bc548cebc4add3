/**
 * A layer blob file's verified tar, read and decompressed on a second core: the worker
 * (`layer_worker.ts`) reads the file, hashes the compressed bytes, inflates them and hashes
 * the tar, the same {@link verifiedLayer} pipeline the calling thread would run, and moves
 * the tar's chunks here without copying them.
 *
 * Why: in a pull from an OCI layout the calling thread also parses the tar, hashes every
 * file for fs-verity and starts the object writes, and it was the bottleneck (issue 13's
 * profile: inflate 0.55 s, the two SHA-256s 0.17 s, reads and stream plumbing, of ~4.5 s on
 * that thread for the 206 MB Debian layer).
 *
 * The checks and their errors are {@link verifiedLayer}'s: a {@link BlobError} from the
 * worker is raised here with its digest, problem, code and message, a file system error as
 * the same `Deno.errors` class. Where no worker can start (one core; a compiled binary
 * without `--include lib/oci/layer_worker.ts`), the layer is read on the calling thread, as
 * before.
 *
 * The worker opens the blob by its path again: it must find the very file the calling thread
 * opened after checking it ({@link openSameFile}: device and inode compared), so that a
 * layout whose blob is replaced meanwhile (by a link, say) is refused, not read.
 *
 * @module
 */
import { BlobError, checkLayer, type LayerBlob, VERIFIED_DIFF_ID, verifiedLayer } from "./blob.ts";
import type {
  LayerWorkerError,
  LayerWorkerIn,
  LayerWorkerOpen,
  LayerWorkerOut,
} from "./layer_worker.ts";

/** Acknowledge consumed chunks in groups (one message per group). */
const ACK_EVERY = 8;

/**
 * Blobs smaller than this are read on the calling thread: a worker costs ~0.1 s of CPU to
 * start and ~20 MB, more than it saves on a small layer (measured, issue 13: the Debian rootfs
 * as 10 layers of ~9 MB, paired against no worker: wall 1.05x, user 1.33x, peak +40 MB; as one
 * 92 MB layer: wall 0.97x, user 1.07x, peak +20 MB).
 */
export const LAYER_WORKER_MIN_BYTES = 32 << 20;

/** Options of {@link verifiedLayerFile}. */
export interface LayerFileOptions {
  /** Hears of every compressed byte read (progress displays). */
  onCompressedBytes?: (n: number) => void;
  /** Blobs of at least this many bytes are read by a worker; default {@link LAYER_WORKER_MIN_BYTES}. */
  workerMinBytes?: number;
}

/** Which file: what {@link openSameFile} compares. */
export interface FileIdentity {
  dev: number;
  ino: number | null;
}

/**
 * Opens `path` for reading and checks that it is the file `same` (device and inode), else
 * closes it and throws a {@link BlobError} (`changed`) naming `digest`.
 */
export async function openSameFile(
  path: string,
  same: FileIdentity,
  digest: string,
): Promise<Deno.FsFile> {
  const file = await Deno.open(path);
  const info = await file.stat();
  if (info.dev !== same.dev || info.ino !== same.ino) {
    file.close();
    throw new BlobError(digest, "changed", `layer ${digest}: ${path} was replaced while read`);
  }
  return file;
}

/**
 * The verified tar of the layer blob `file`, open at `path` (checked to be the blob, of the
 * right size): `verifiedLayer(file.readable, layer, diffId, onCompressedBytes)`, read on a
 * second core when the machine has one and the blob is large (then `file` is closed here and
 * the worker opens `path`, which must still be that file).
 * A media type or digest that is not a layer's is refused at once, as by verifiedLayer (then
 * `file` is the caller's to close). Read it to its end: the checks end it.
 */
export function verifiedLayerFile(
  file: Deno.FsFile,
  path: string,
  layer: LayerBlob,
  diffId: string,
  options: LayerFileOptions = {},
): ReadableStream<Uint8Array> & { [VERIFIED_DIFF_ID]: string } {
  const { onCompressedBytes } = options;
  const worker = (navigator.hardwareConcurrency ?? 1) > 1 &&
    layer.size >= (options.workerMinBytes ?? LAYER_WORKER_MIN_BYTES);
  if (!worker) return verifiedLayer(file.readable, layer, diffId, onCompressedBytes);
  // What verifiedLayer refuses at once is refused here, on this thread, now.
  checkLayer(layer, diffId);
  const { dev, ino } = file.statSync();
  file.close();
  const open = { path, layer, diffId, same: { dev, ino } };
  const local = async function* (): AsyncGenerator<Uint8Array> {
    const again = await openSameFile(path, open.same, layer.digest);
    yield* verifiedLayer(again.readable, layer, diffId, onCompressedBytes);
  };
  const tar = ReadableStream.from(inWorker(open, onCompressedBytes, local));
  return Object.assign(tar, { [VERIFIED_DIFF_ID]: diffId });
}

async function* inWorker(
  open: LayerWorkerOpen,
  onCompressedBytes: ((n: number) => void) | undefined,
  local: () => AsyncGenerator<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  let worker: Worker;
  try {
    worker = new Worker(new URL("./layer_worker.ts", import.meta.url), { type: "module" });
  } catch {
    yield* local();
    return;
  }
  const queue: LayerWorkerOut[] = [];
  let failed: { error: unknown } | undefined;
  let notify: (() => void) | undefined;
  let heard = false;
  worker.onmessage = (e: MessageEvent<LayerWorkerOut>) => {
    heard = true;
    queue.push(e.data);
    notify?.();
  };
  worker.onerror = (e) => {
    e.preventDefault();
    failed = { error: e.error ?? new Error(e.message) };
    notify?.();
  };
  const send = (m: LayerWorkerIn) => worker.postMessage(m);
  try {
    send({ open });
    let unacked = 0;
    for (;;) {
      while (queue.length === 0 && failed === undefined) {
        await new Promise<void>((resolve) => notify = resolve);
        notify = undefined;
      }
      const m = queue.shift();
      if (m === undefined) {
        // The worker itself failed (it could not load): before any output, read here.
        if (!heard) {
          worker.terminate();
          yield* local();
          return;
        }
        throw failed!.error;
      }
      if ("error" in m) throw workerError(m.error);
      if (m.bytes > 0) onCompressedBytes?.(m.bytes);
      if ("end" in m) return;
      yield m.chunk;
      if (++unacked >= ACK_EVERY) {
        send({ ack: unacked });
        unacked = 0;
      }
    }
  } finally {
    worker.terminate();
  }
}

/** The worker's error as the class it was there: a BlobError, a `Deno.errors` one, or an Error. */
function workerError({ blob, deno, message }: LayerWorkerError): Error {
  if (blob) return new BlobError(blob.digest, blob.problem, message, { code: blob.code });
  const DenoError = deno === undefined
    ? undefined
    : (Deno.errors as unknown as Record<string, ErrorConstructor | undefined>)[deno];
  return DenoError ? new DenoError(message) : new Error(message);
}
