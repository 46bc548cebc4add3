/**
 * A worker that hashes the leaf level of an fs-verity Merkle tree for ranges of one file,
 * so that large files use every core (see `file.ts`; the main thread builds the levels
 * above). It reads each range itself, so file data never crosses threads: only the
 * hashes (1/128 or 1/64 of the data) are sent back, as transferred buffers.
 *
 * Protocol: first `{ path, alg, chunkSize }`, then any number of `{ id, offset, length }`;
 * each range is answered with `{ id, hashes }` or `{ id, error }`.
 *
 * @module
 */
import { BLOCK_SIZE, digestSize, hashBlocks, type VerityAlgorithm } from "./digest.ts";

/** The first message: which file, which hash, the largest range that will be asked. */
export interface LeafWorkerInit {
  path: string;
  alg: VerityAlgorithm;
  chunkSize: number;
}

/** A range of the file to hash; `offset` is block-aligned, `length` ends at a block or EOF. */
export interface LeafWorkerRange {
  id: number;
  offset: number;
  length: number;
}

/** The answer to a range: its leaf hashes, or why it could not be read. */
export type LeafWorkerResult = { id: number; hashes: Uint8Array } | { id: number; error: string };

declare const self: {
  onmessage: ((e: MessageEvent<LeafWorkerInit | LeafWorkerRange>) => void) | null;
  postMessage(message: LeafWorkerResult, transfer?: Transferable[]): void;
};

let file: Deno.FsFile | undefined;
let alg: VerityAlgorithm = "sha256";
let buffer = new Uint8Array(0);
let initError: string | undefined;

self.onmessage = (e) => {
  const msg = e.data;
  if ("path" in msg) {
    alg = msg.alg;
    buffer = new Uint8Array(msg.chunkSize);
    try {
      file = Deno.openSync(msg.path);
    } catch (err) {
      initError = (err as Error).message;
    }
    return;
  }
  try {
    if (file === undefined) throw new Error(initError ?? "no file");
    const data = readRange(file, msg.offset, msg.length);
    const hashes = new Uint8Array(Math.ceil(data.length / BLOCK_SIZE) * digestSize(alg));
    hashBlocks(alg, data, hashes);
    self.postMessage({ id: msg.id, hashes }, [hashes.buffer]);
  } catch (err) {
    self.postMessage({ id: msg.id, error: (err as Error).message });
  }
};

/** Reads exactly `length` bytes at `offset` into the reused buffer. */
function readRange(f: Deno.FsFile, offset: number, length: number): Uint8Array {
  f.seekSync(offset, Deno.SeekMode.Start);
  const view = buffer.subarray(0, length);
  let got = 0;
  while (got < length) {
    const n = f.readSync(view.subarray(got));
    if (n === null || n === 0) {
      throw new Error(`file shrank while hashing (EOF at ${offset + got})`);
    }
    got += n;
  }
  return view;
}
