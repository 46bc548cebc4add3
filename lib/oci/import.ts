/**
 * Layer import: an uncompressed OCI layer tar into the repository as the splitstream
 * `streams/oci-layer-<diff_id>` (content type `ocilayer`), split as composefs-oci 0.9.4's
 * `tar::split_async` splits it, so that the stream object (and its id) is the same:
 *
 * - every header block (pax `x`/`g`, GNU `L`/`K` and the entry's own) is inline;
 * - the body of a regular file (type `0`, NUL or `7`) of more than 64 bytes becomes an object
 *   and its padding goes inline after it; every other body is inline with its padding;
 * - the end-of-archive blocks and whatever follows them (record padding) are inline.
 *
 * Adjacent inline bytes form one chunk (the writer coalesces them). One pass, constant
 * memory for any layer size: bodies up to {@link IN_MEMORY_BODY_MAX} are read whole and
 * stored; larger ones stream into the object store while they are hashed. The tar's sha256 is
 * computed on the way and must equal the diff_id; the stream is linked last, after every
 * object is stored and the digest checked, so an interrupted or refused import leaves only
 * objects (reused by a later import, removed by gc) and no stream.
 *
 * An entry path or hardlink target with a `..` name (or a NUL byte) is refused with a
 * `TarError` ({@link normalizeEntryPath}): no image can be built from such a layer.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { normalizeEntryPath, readTar, type TarInput } from "./tar.ts";
import {
  type LocalObjectSource,
  LocalStoreContext,
  ObjectId,
  type ObjectStoreMethod,
  Repository,
  RepositoryError,
} from "../repository/mod.ts";
import { SplitStreamWriter } from "../splitstream/writer.ts";
import { CONTENT_TYPE } from "../splitstream/format.ts";
import { fsverityDigest, FsVerityHasher } from "../fsverity/digest.ts";
import { layerContentId } from "./store.ts";
import { layerEntry } from "./image.ts";
import type { OciEntry } from "./layer_tree.ts";

/** Bodies larger than this are streamed into the object store instead of read whole. */
export const IN_MEMORY_BODY_MAX = 1 << 20;
/** Regular-file bodies larger than this become objects (composefs `INLINE_CONTENT_MAX_V0`). */
export const INLINE_BODY_MAX = 64;

/** Options of {@link importLayer}. */
export interface ImportLayerOptions {
  /** The layer's diff_id (`sha256:<hex>`): the stream's name, checked against the tar. */
  diffId: string;
  /** Named ref `streams/refs/<name>` to point at the stream. */
  name?: string;
  /**
   * Import even when the stream exists (its objects were found missing or damaged, and the
   * damaged ones removed): objects still stored are found present, the others written, and
   * the stream linked again.
   */
  replace?: boolean;
  /**
   * Regular-file bodies that exist as files (a containers-storage layer's diff directory):
   * their objects are reflinked or hard-linked from those files instead of written. The tar
   * still streams every byte (it is hashed for the diff_id and the object names), so the
   * stream is the one a plain import writes.
   */
  local?: LocalFetch;
  /**
   * The input itself checks that the tar is `diffId` and fails at its end otherwise (a stream
   * from `verifiedLayer`): the tar is not hashed a second time here. The stream is linked only
   * after the input ended, so a refused tar still leaves no stream.
   */
  diffIdVerified?: boolean;
  /**
   * Also return the layer's tree entries ({@link ImportLayerResult.entries}), built from the
   * tar as it is read, so that the image's file system can be made without reading the new
   * stream back (a pull's last step). Not for a layer that was already stored.
   */
  entries?: boolean;
}

/**
 * Where an import can find bodies as files: `take` is asked, once per regular-file body of
 * more than {@link INLINE_BODY_MAX} bytes and in tar order, for the open file holding the
 * body of entry `path` (byte string) of `size` bytes; undefined when it has none.
 */
export interface LocalBodies {
  /** The open file with the body of entry `path` (`size` bytes), or undefined. */
  take(path: string, size: number): LocalObjectSource | undefined;
}

/** Local bodies and how to use them (composefs-rs `LocalFetchOpt` auto / zerocopy). */
export interface LocalFetch {
  /** Where the bodies are. */
  bodies: LocalBodies;
  /** Fail instead of copying when neither reflink nor hard link works. */
  zerocopy: boolean;
  /** Shared by all layers of one pull; counts what was done. */
  context: LocalStoreContext;
  /** Objects per method and their bytes, summed over layers. */
  stats: LocalFetchStats;
}

/** What a local fetch did with each object. */
export type LocalFetchStats = Record<ObjectStoreMethod, { objects: number; bytes: number }>;

/** Zeroed {@link LocalFetchStats}. */
export function newLocalFetchStats(): LocalFetchStats {
  return {
    reflinked: { objects: 0, bytes: 0 },
    hardlinked: { objects: 0, bytes: 0 },
    copied: { objects: 0, bytes: 0 },
    present: { objects: 0, bytes: 0 },
  };
}

/** What {@link importLayer} did. */
export interface ImportLayerResult {
  /** The stream object's id. */
  streamId: ObjectId;
  /** External objects the stream refers to (0 when the layer was already present). */
  objects: number;
  /** Bytes stored inline in the stream. */
  inlineBytes: number;
  /** True when the stream existed and nothing was read. */
  existing: boolean;
  /** The tree entries, in tar order, with {@link ImportLayerOptions.entries} (not when `existing`). */
  entries?: OciEntry[];
}

/** A mismatch between the tar's sha256 and the diff_id. */
export class LayerDigestError extends RepositoryError {
  /** Creates the error; the message is one line naming the input. */
  constructor(message: string) {
    super(message, { code: "layer-digest-mismatch" });
    this.name = "LayerDigestError";
  }
}

/** Checks a `sha256:<hex>` digest (lower-case, 64 digits); returns it. */
export function checkSha256Digest(text: string, what = "digest"): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(text)) {
    throw new RepositoryError(`${what} '${text.slice(0, 80)}' is not sha256:<64 hex digits>`);
  }
  return text;
}

/** Imports a layer tar (uncompressed) as a splitstream; see the module documentation. */
export async function importLayer(
  repo: Repository,
  tar: TarInput,
  opts: ImportLayerOptions,
): Promise<ImportLayerResult> {
  const diffId = checkSha256Digest(opts.diffId, "diff_id");
  const contentId = layerContentId(diffId);
  const existing = opts.replace ? undefined : repo.hasStream(contentId);
  if (existing) {
    if (opts.name !== undefined) repo.nameStream(contentId, opts.name);
    return { streamId: existing, objects: 0, inlineBytes: 0, existing: true };
  }
  repo.requireWritable();
  const writer = new SplitStreamWriter({
    algorithm: repo.algorithm,
    contentType: CONTENT_TYPE.ociLayer,
  });
  const writes = repo.objects.parallelWrites();
  const sha = opts.diffIdVerified ? undefined : createHash("sha256");
  let inlineBytes = 0;
  let externals = 0;
  const entries: OciEntry[] | undefined = opts.entries ? [] : undefined;
  const inline = (b: Uint8Array) => {
    if (b.length === 0) return;
    sha?.update(b);
    inlineBytes += b.length;
    writer.writeInline(b);
  };
  let stream: Uint8Array;
  try {
    const reader = readTar(tar);
    for await (const entry of reader) {
      normalizeEntryPath(entry.meta.path);
      if (entry.meta.type === "hardlink") normalizeEntryPath(entry.meta.linkTarget);
      inline(entry.headerBytes);
      const { typeflag, size } = entry.meta;
      const isFile = typeflag === "0" || typeflag === "\0" || typeflag === "7";
      if (isFile && size > INLINE_BODY_MAX) {
        let id: ObjectId;
        const local = opts.local?.bodies.take(entry.meta.path, size);
        if (local && opts.local) {
          // The bytes still stream through (sha256 of the layer, object name); only the
          // object's data is linked instead of written.
          let data: Uint8Array | undefined;
          if (size <= IN_MEMORY_BODY_MAX) {
            data = await entry.readBody();
            sha?.update(data);
            id = ObjectId.fromBytes(fsverityDigest(data, repo.algorithm));
          } else {
            const hasher = new FsVerityHasher(repo.algorithm);
            for await (const chunk of entry.body) {
              sha?.update(chunk);
              hasher.update(chunk);
            }
            id = ObjectId.fromBytes(hasher.digest());
          }
          const method = repo.storeLocalFile(local, id, {
            zerocopy: opts.local.zerocopy,
            data,
            context: opts.local.context,
          });
          opts.local.stats[method].objects++;
          opts.local.stats[method].bytes += size;
        } else if (size <= IN_MEMORY_BODY_MAX) {
          const body = await entry.readBody();
          sha?.update(body);
          id = await writes.store(body);
        } else {
          id = await writes.storeStream(
            (async function* () {
              for await (const chunk of entry.body) {
                sha?.update(chunk);
                yield chunk;
              }
            })(),
            size,
          );
        }
        await writer.writeExternal(id.bytes, size);
        externals++;
        entries?.push(layerEntry(entry.meta, id.bytes, undefined));
        inline(await entry.readPadding());
      } else {
        const body = size > 0 ? await entry.readBody() : undefined;
        if (body) inline(body);
        entries?.push(layerEntry(entry.meta, undefined, isFile ? body : undefined));
        inline(await entry.readPadding());
      }
    }
    inline(reader.trailer);
    stream = await writer.finish();
    await writes.drain();
  } catch (e) {
    writer.abort();
    await writes.settle();
    throw e;
  }
  const actual = sha ? `sha256:${sha.digest("hex")}` : diffId;
  if (actual !== diffId) {
    throw new LayerDigestError(
      `layer content has digest ${actual}, expected ${diffId}; not imported`,
    );
  }
  const streamId = repo.writeStream(stream, contentId, opts.name);
  return { streamId, objects: externals, inlineBytes, existing: false, entries };
}
