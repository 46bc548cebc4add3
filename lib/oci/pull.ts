/**
 * Pulling an image into the repository from any source (source.ts), stored as
 * composefs-oci 0.3.0 `pull` stores it, plus the manifest and tags (store.ts):
 *
 * 1. every layer as a splitstream named by its diff_id (`streams/<diff_id hex>`), via
 *    {@link importLayer}; a layer already present is not fetched again;
 * 2. the config as a splitstream of its exact bytes whose digest map maps each layer's
 *    diff_id to the layer stream's object id (`streams/<config sha256 hex>`), with the
 *    0.3.0-style ref `streams/refs/NAME` when `configRef` is given;
 * 3. the manifest as a splitstream of its exact bytes whose digest map points at the config
 *    stream (`streams/<manifest sha256 hex>`);
 * 4. the tag, when given: `streams/refs/oci/<encoded tag>` -> the manifest stream.
 *
 * Each step links its stream only after everything it refers to is stored, so an
 * interrupted or refused pull leaves objects (reused by the next pull, removed by gc) and
 * complete streams, never a stream that points at something missing.
 *
 * @module
 */
import { type ImageSource, openImageSource, type SourceOptions } from "./source.ts";
import type { TarInput } from "./tar.ts";
import {
  importLayer,
  type LocalBodies,
  type LocalFetchStats,
  newLocalFetchStats,
  parseSha256,
} from "./import.ts";
import { tagImage, writeManifestStream } from "./store.ts";
import { type DigestMapEntry, SplitStreamWriter } from "../splitstream.ts";
import { LocalStoreContext, Repository, RepositoryError } from "../repository.ts";
import { toHex } from "../fsverity/digest.ts";

/** Options of {@link pullImage}. */
export interface PullOptions extends SourceOptions {
  /** Tag to point at the manifest (`streams/refs/oci/<encoded>`). */
  tag?: string;
  /** 0.3.0-style stream ref `streams/refs/<configRef>` to the config stream. */
  configRef?: string;
  /** Called as layers start and finish. */
  onLayer?: (event: LayerEvent) => void;
  /** Hears of every compressed byte read, per layer (progress displays). */
  onBytes?: (layerIndex: number, n: number) => void;
  /** Stops the pull (between chunks of a layer) when aborted. */
  signal?: AbortSignal;
}

/** Progress of one layer. */
export interface LayerEvent {
  /** Position in the manifest (0-based) and count. */
  index: number;
  /** How many layers the image has. */
  count: number;
  /** The compressed blob's digest. */
  digest: string;
  /** The uncompressed tar's digest (config `rootfs.diff_ids`). */
  diffId: string;
  /** Compressed size from the manifest. */
  size: number;
  /** `present`: already stored, not fetched; `start`/`done`: around its import. */
  state: "present" | "start" | "done";
}

/** One layer of a pulled image. */
export interface PulledLayer {
  /** The compressed blob's digest. */
  digest: string;
  /** The uncompressed tar's digest. */
  diffId: string;
  /** The layer's media type (its compression). */
  mediaType: string;
  /** The compressed blob's size. */
  size: number;
  /** The layer stream's object id. */
  verity: Uint8Array;
  /** True when this pull imported it (false: it was already present). */
  imported: boolean;
}

/** What {@link pullImage} stored. */
export interface PullResult {
  /** `sha256:...` of the manifest. */
  manifestDigest: string;
  /** The manifest stream's object id. */
  manifestVerity: Uint8Array;
  /** `sha256:...` of the config. */
  configDigest: string;
  /** sha256 of the config JSON (the config stream's name). */
  configSha256: Uint8Array;
  /** The config stream's object id. */
  configStreamId: Uint8Array;
  /** The layers in manifest order. */
  layers: PulledLayer[];
  /** How many layers were imported (0 when everything was present). */
  layersImported: number;
  /**
   * For a source with local bodies (containers-storage read directly): objects per method
   * (reflinked, hardlinked, copied, present) and the files copied instead of linked, why.
   */
  localFetch?: {
    mode: "auto" | "zerocopy";
    stats: LocalFetchStats;
    copied: Array<{ path: string; reason: string }>;
  };
  /** True when the config stream already existed. */
  existing: boolean;
}

/** Pulls `ref` into `repo`; see the module documentation. */
export async function pullImage(
  repo: Repository,
  ref: string,
  options: PullOptions = {},
): Promise<PullResult> {
  const source = await openImageSource(ref, options);
  try {
    return await pullFromSource(repo, source, options);
  } finally {
    await source.close();
  }
}

/** Wraps a layer's chunks so that the import stops at the next chunk once `signal` aborts. */
async function* abortable(
  input: TarInput,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of input) {
    signal.throwIfAborted();
    yield chunk;
  }
}

/**
 * Stores the image of an opened source (which the caller closes); see the module
 * documentation. With `options.signal`, an abort stops the import between chunks: what
 * was stored stays (objects, complete layer streams), nothing refers to a partial layer.
 */
export async function pullFromSource(
  repo: Repository,
  source: ImageSource,
  options: PullOptions = {},
): Promise<PullResult> {
  const ref = source.reference;
  const image = source.image;
  const manifestDigest = image.manifestDescriptor.digest;
  const configDigest = image.configDescriptor.digest;
  if (!manifestDigest.startsWith("sha256:") || !configDigest.startsWith("sha256:")) {
    throw new RepositoryError(
      `'${ref}': manifest ${manifestDigest} / config ${configDigest}: only sha256 digests ` +
        "can be stored (streams are named by sha256)",
    );
  }
  const manifestSha256 = parseSha256(manifestDigest);
  const configSha256 = parseSha256(configDigest);

  const layers: PulledLayer[] = [];
  const map: DigestMapEntry[] = [];
  let layersImported = 0;
  let configStreamId = repo.hasStream(configSha256);
  const existing = configStreamId !== undefined;
  const localMode = options.localFetch === "zerocopy" ? "zerocopy" : "auto";
  const local = options.localFetch === "disabled" ? undefined : {
    zerocopy: localMode === "zerocopy",
    context: new LocalStoreContext(),
    stats: newLocalFetchStats(),
  };
  let usedLocal = false;
  for (const [index, layer] of image.layers.entries()) {
    const diffId = parseSha256(layer.diffId);
    const event = {
      index,
      count: image.layers.length,
      digest: layer.digest,
      diffId: layer.diffId,
      size: layer.size,
    };
    let streamId = repo.hasStream(diffId);
    let imported = false;
    if (!streamId) {
      options.onLayer?.({ ...event, state: "start" });
      options.signal?.throwIfAborted();
      const onBytes = options.onBytes;
      let tar: TarInput = await source.openLayer(
        layer,
        onBytes ? (n) => onBytes(index, n) : undefined,
      );
      const bodies = typeof (tar as Partial<LocalBodies>).take === "function"
        ? tar as unknown as LocalBodies
        : undefined;
      if (options.signal) tar = abortable(tar, options.signal);
      if (bodies && local) usedLocal = true;
      const r = await importLayer(repo, tar, {
        contentSha256: diffId,
        local: bodies && local ? { bodies, ...local } : undefined,
      });
      streamId = r.streamId;
      imported = !r.existing;
      if (imported) layersImported++;
      options.onLayer?.({ ...event, state: "done" });
    } else {
      options.onLayer?.({ ...event, state: "present" });
    }
    layers.push({
      digest: layer.digest,
      diffId: layer.diffId,
      mediaType: layer.mediaType,
      size: layer.size,
      verity: streamId,
      imported,
    });
    map.push({ body: diffId, verity: streamId });
  }

  if (configStreamId === undefined) {
    const writer = new SplitStreamWriter({
      objectIdLength: repo.algorithm === "sha512" ? 64 : 32,
      digestMap: map,
      expectedSha256: configSha256,
    });
    let bytes: Uint8Array;
    try {
      writer.writeInline(image.configBytes);
      bytes = writer.finish();
    } catch (e) {
      writer.abort();
      throw e;
    }
    configStreamId = repo.writeStream(bytes, configSha256, options.configRef);
  } else if (options.configRef !== undefined) {
    repo.nameStream(options.configRef, configSha256);
  }
  const manifestVerity = repo.hasStream(manifestSha256) ??
    writeManifestStream(repo, image.manifestBytes, manifestSha256, configSha256, configStreamId);
  if (options.tag !== undefined) tagImage(repo, options.tag, toHex(manifestSha256));
  return {
    manifestDigest,
    manifestVerity,
    configDigest,
    configSha256,
    configStreamId,
    layers,
    layersImported,
    existing,
    localFetch: usedLocal && local
      ? { mode: localMode, stats: local.stats, copied: local.context.copied }
      : undefined,
  };
}
