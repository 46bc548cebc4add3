/**
 * The worker of `layer_file.ts`: reads one layer blob file, checks its size and digest,
 * decompresses it and checks the tar against the diff_id ({@link verifiedLayer}, the same
 * code the calling thread would run), and hands the tar's chunks to the calling thread by
 * transfer (no copy), at most {@link AHEAD} chunks ahead of what it has acknowledged.
 *
 * Messages in: `{ open }` once, then `{ ack: n }` as the calling thread consumes chunks.
 * Messages out: `{ chunk, bytes }` (a tar chunk; `bytes` compressed bytes read since the last
 * message), then `{ end, bytes }` after every check passed, or `{ error }` (a
 * {@link BlobError}'s fields, or another error's message).
 *
 * @module
 */
import { BlobError, type LayerBlob, verifiedLayer } from "./blob.ts";
import { type FileIdentity, openSameFile } from "./layer_file.ts";

/** The layer to read. */
export interface LayerWorkerOpen {
  path: string;
  layer: LayerBlob;
  diffId: string;
  /** The file the calling thread checked and opened: `path` must still be it. */
  same: FileIdentity;
}

/** What the calling thread sends. */
export type LayerWorkerIn = { open: LayerWorkerOpen } | { ack: number };

/** An error, as plain fields (an Error's class does not cross threads). */
export interface LayerWorkerError {
  blob?: { digest: string; problem: BlobError["problem"]; code: string };
  /** The `Deno.errors` class's name, for a file system error. */
  deno?: string;
  message: string;
}

/** What the worker sends. */
export type LayerWorkerOut =
  | { chunk: Uint8Array; bytes: number }
  | { end: true; bytes: number }
  | { error: LayerWorkerError };

/** Chunks (of ~256 KiB) sent and not yet acknowledged, at most: ~8 MiB of tar in flight. */
const AHEAD = 32;

declare const self: {
  onmessage: ((e: MessageEvent<LayerWorkerIn>) => void) | null;
  postMessage(message: LayerWorkerOut, transfer?: Transferable[]): void;
};

let acked = 0;
let wake: (() => void) | undefined;

self.onmessage = (e) => {
  const m = e.data;
  if ("ack" in m) {
    acked += m.ack;
    wake?.();
    return;
  }
  run(m.open).catch((err) => self.postMessage({ error: describe(err) }));
};

async function run({ path, layer, diffId, same }: LayerWorkerOpen): Promise<void> {
  const file = await openSameFile(path, same, layer.digest);
  let bytes = 0;
  let sent = 0;
  const tar = verifiedLayer(file.readable, layer, diffId, (n) => {
    bytes += n;
  });
  for await (const chunk of tar) {
    // A chunk that is a whole buffer is the decompressor's no more (it allocates a new one
    // when one fills): it moves to the other thread as it is; a part of one is copied.
    const own = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength &&
        chunk.buffer instanceof ArrayBuffer
      ? chunk
      : chunk.slice();
    self.postMessage({ chunk: own, bytes }, [own.buffer as ArrayBuffer]);
    bytes = 0;
    sent++;
    while (sent - acked > AHEAD) {
      await new Promise<void>((resolve) => wake = resolve);
      wake = undefined;
    }
  }
  self.postMessage({ end: true, bytes });
}

function describe(err: unknown): LayerWorkerError {
  if (err instanceof BlobError) {
    return {
      blob: { digest: err.digest, problem: err.problem, code: err.code },
      message: err.message,
    };
  }
  if (err instanceof Error && Object.values(Deno.errors).some((C) => err instanceof C)) {
    return { deno: err.name, message: err.message };
  }
  return { message: err instanceof Error ? err.message : String(err) };
}
