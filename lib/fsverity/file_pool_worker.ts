/**
 * The worker of `file_pool.ts`: takes files from the head of the shared queue (only those whose
 * path it has received), hashes them and writes each digest and its status into shared memory,
 * then counts it done and wakes the calling thread.
 *
 * Messages, in order: `{ alg, control, chunkSize }` first, then `{ chunk }` (a result chunk, before
 * any path whose slot is in it) and `{ paths }` (the next paths of the queue) as they come.
 *
 * @module
 */
import { digestSize, type VerityAlgorithm } from "./digest.ts";
import { fsverityDigestFileSync } from "./file.ts";

/** What the pool sends. */
export type PoolWorkerMessage =
  | { alg: VerityAlgorithm; control: Int32Array; chunkSize: number }
  | { chunk: Uint8Array }
  | { paths: Uint8Array[] };

declare const self: { onmessage: ((e: MessageEvent<PoolWorkerMessage>) => void) | null };

const HEAD = 0, WORKER_DONE = 1;
const DONE = 1, FAILED = 2;

let alg: VerityAlgorithm = "sha256";
let ds = 32;
let chunkSize = 1;
let control: Int32Array | undefined;
const chunks: Uint8Array[] = [];
const paths: Uint8Array[] = [];

self.onmessage = (e) => {
  const m = e.data;
  if ("alg" in m) {
    alg = m.alg;
    ds = digestSize(alg);
    control = m.control;
    chunkSize = m.chunkSize;
  } else if ("chunk" in m) {
    chunks.push(m.chunk);
  } else {
    paths.push(...m.paths);
    work(control!);
  }
};

/** Takes and hashes files until the queue's head is past the paths received. */
function work(ctl: Int32Array): void {
  for (;;) {
    const i = Atomics.load(ctl, HEAD);
    if (i >= paths.length) return;
    if (Atomics.compareExchange(ctl, HEAD, i, i + 1) !== i) continue;
    const chunk = chunks[Math.floor(i / chunkSize)];
    const slot = i % chunkSize;
    try {
      chunk.set(fsverityDigestFileSync(paths[i], alg), slot * ds);
      chunk[chunkSize * ds + slot] = DONE;
    } catch {
      chunk[chunkSize * ds + slot] = FAILED; // hashed again by the pool, which names the error
    }
    Atomics.add(ctl, WORKER_DONE, 1);
    Atomics.notify(ctl, WORKER_DONE);
  }
}
