/**
 * Layer import: an uncompressed OCI layer tar into the repository as a splitstream, split
 * exactly as cfsctl 0.3.0 `oci import-layer` splits it (composefs-oci 0.3.0 `tar::split`),
 * so that the stream object, and thus its id, is the same:
 *
 * - every header block (pax `x`/`g`, GNU `L`/`K` and the entry's own) is inline;
 * - the body of a regular file (type flag `0` or NUL) of more than 64 bytes becomes an object,
 *   its padding starts the next inline run; every other body is inline with its padding;
 * - the end-of-archive blocks (the trailer) are inline.
 *
 * One pass, constant memory for any layer size: bodies up to {@link IN_MEMORY_BODY_MAX} are
 * read whole and stored; larger ones stream into the object store while they are hashed for
 * the content sha256. The stream link is made last, after every object is stored and the
 * content's sha256 is checked: an interrupted or refused import leaves only objects (which a
 * later import reuses and gc removes) and no stream.
 *
 * An entry path or hardlink target with a `..` name (or a NUL byte) is refused with a
 * `TarError` ({@link normalizeEntryPath}): no image can be built from such a layer
 * (composefs-rs 0.3.0 refuses it only then; cfsctl's `oci import-layer` stores it).
 *
 * @module
 */
import { normalizeEntryPath, readTar, type TarInput } from "./tar.ts";
import {
  type LocalObjectSource,
  LocalStoreContext,
  type ObjectStoreMethod,
  Repository,
  RepositoryError,
} from "../repository.ts";
import { SplitStreamWriter } from "../splitstream.ts";
import { fromHex, fsverityDigest, FsVerityHasher, toHex } from "../fsverity/digest.ts";

/** Bodies larger than this are streamed into the object store instead of read whole. */
export const IN_MEMORY_BODY_MAX = 1 << 20;
/** Regular-file bodies larger than this become objects (cfsctl 0.3.0's rule). */
export const INLINE_BODY_MAX = 64;

/** Options of {@link importLayer}. */
export interface ImportLayerOptions {
  /** The expected sha256 of the tar (the layer's diff_id); checked at the end. */
  contentSha256?: Uint8Array;
  /** Named ref `streams/refs/<name>` to point at the stream. */
  name?: string;
  /**
   * Regular-file bodies that exist as files (a containers-storage layer's diff directory):
   * their objects are reflinked or hard-linked from those files instead of written
   * ({@link Repository.storeLocalFile}). The tar still streams every byte (it is hashed for
   * the diff_id and the object names), so the stream is the one a plain import writes.
   */
  local?: LocalFetch;
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
  streamId: Uint8Array;
  /** sha256 of the tar. */
  contentSha256: Uint8Array;
  /** External objects the stream refers to (0 when the layer was already present). */
  objects: number;
  /** True when the stream existed and nothing was read. */
  existing: boolean;
}

/** A mismatch between the tar's sha256 and the expected one. */
export class LayerDigestError extends RepositoryError {
  /** Creates the error; the message is one line naming the input. */
  constructor(message: string) {
    super(message);
    this.name = "LayerDigestError";
  }
}

/** Parses a sha256 given as 64 hex digits, optionally prefixed `sha256:`. */
export function parseSha256(text: string): Uint8Array {
  const hex = text.startsWith("sha256:") ? text.slice(7) : text;
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new RepositoryError(`'${text}' is not a sha256 digest (64 lowercase hex digits)`);
  }
  return fromHex(hex);
}

/** Imports a layer tar (uncompressed) as a splitstream; see the module documentation. */
export async function importLayer(
  repo: Repository,
  tar: TarInput,
  opts: ImportLayerOptions = {},
): Promise<ImportLayerResult> {
  const expected = opts.contentSha256;
  if (expected) {
    if (expected.length !== 32) throw new RepositoryError("expected sha256 must be 32 bytes");
    const existing = repo.hasStream(expected);
    if (existing) {
      if (opts.name !== undefined) repo.nameStream(opts.name, expected);
      return { streamId: existing, contentSha256: expected, objects: 0, existing: true };
    }
  }
  const writer = new SplitStreamWriter({
    objectIdLength: repo.algorithm === "sha512" ? 64 : 32,
  });
  let stream: Uint8Array;
  try {
    const reader = readTar(tar);
    for await (const entry of reader) {
      // No composefs image can hold a `..` name (0.3.0's tree refuses it too): refuse the
      // layer now rather than store one that no image can be built from.
      normalizeEntryPath(entry.meta.path);
      if (entry.meta.type === "hardlink") normalizeEntryPath(entry.meta.linkTarget);
      writer.writeInline(entry.headerBytes);
      const { typeflag, size } = entry.meta;
      if ((typeflag === "0" || typeflag === "\0") && size > INLINE_BODY_MAX) {
        let id: Uint8Array;
        const local = opts.local?.bodies.take(entry.meta.path, size);
        if (local && opts.local) {
          // The bytes still stream through (sha256 of the layer, object name); only the
          // object's data is linked instead of written.
          let data: Uint8Array | undefined;
          if (size <= IN_MEMORY_BODY_MAX) {
            data = await entry.readBody();
            writer.hashExternal(data);
            id = fsverityDigest(data, repo.algorithm);
          } else {
            const hasher = new FsVerityHasher(repo.algorithm);
            for await (const chunk of entry.body) {
              writer.hashExternal(chunk);
              hasher.update(chunk);
            }
            id = hasher.digest();
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
          writer.hashExternal(body);
          id = repo.storeBytes(body);
        } else {
          id = await repo.storeStream(
            (async function* () {
              for await (const chunk of entry.body) {
                writer.hashExternal(chunk);
                yield chunk;
              }
            })(),
            size,
          );
        }
        writer.writeExternal(id, await entry.readPadding());
      } else {
        if (size > 0) writer.writeInline(await entry.readBody());
        writer.writeInline(await entry.readPadding());
      }
    }
    writer.writeInline(reader.trailer);
    stream = writer.finish();
  } catch (e) {
    writer.abort();
    throw e;
  }
  const sha = writer.contentSha256;
  if (expected && toHex(expected) !== toHex(sha)) {
    throw new LayerDigestError(
      `layer content has sha256 ${toHex(sha)}, expected ${toHex(expected)}; not imported`,
    );
  }
  const streamId = repo.writeStream(stream, sha, opts.name);
  return { streamId, contentSha256: sha, objects: writer.externalCount, existing: false };
}
