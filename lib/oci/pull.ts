/**
 * Pulling an image into the repository from any source (source.ts), stored as composefs-oci
 * 0.9.4's `pull` stores it (store.ts has the layout):
 *
 * 1. every layer as `streams/oci-layer-<diff_id>` ({@link importLayer}); a layer already
 *    present is not fetched again, unless an object its stream refers to is missing or (with
 *    `verify: "hash"`) damaged: then the damaged objects are removed and the layer is fetched
 *    and imported again, which stores exactly what was lost (see {@link PullOptions.verify});
 * 2. the config as `streams/oci-config-<digest>`: its exact bytes and a named ref per layer
 *    (an existing config stream is reused: it must name every layer);
 * 3. the manifest as `streams/oci-manifest-<digest>`: its exact bytes, `config:<digest>` and
 *    the layers (an existing one is reused);
 * 4. unless `images: false`, the EROFS images made and linked from the config, the manifest
 *    rewritten and tagged (commit.ts, 0.9.4's `ensure_oci_composefs_erofs`); an artifact
 *    (a manifest whose config is not an image config) is tagged as it is.
 *
 * Each step links its stream only after everything it refers to is stored and synced, so an
 * interrupted or refused pull leaves objects (reused by the next pull, removed by gc) and
 * complete streams, never a stream that points at something missing, and no tag.
 *
 * @module
 */
import { type ImageSource, openImageSource, type SourceOptions } from "./source.ts";
import { VERIFIED_DIFF_ID } from "./blob.ts";
import type { TarInput } from "./tar.ts";
import type { OciEntry } from "./layer_tree.ts";
import type { ParsedLayers } from "./image.ts";
import {
  importLayer,
  type LocalBodies,
  type LocalFetchStats,
  newLocalFetchStats,
} from "./import.ts";
import {
  configContentId,
  manifestContentId,
  readExternalStream,
  tagImage,
  validateTag,
  writeConfigStream,
  writeManifestStream,
} from "./store.ts";
import { CONTENT_TYPE } from "../splitstream/format.ts";
import { commitOciImages } from "./commit.ts";
import type { XattrFiltering } from "../tree_transform.ts";
import { LocalStoreContext, ObjectId, Repository, RepositoryError } from "../repository/mod.ts";

/** Options of {@link pullImage}. */
export interface PullOptions extends SourceOptions {
  /** Tag to point at the manifest (`streams/refs/oci/<encoded>`). */
  tag?: string;
  /** Make and link the EROFS images (default true); false stops after step 3. */
  images?: boolean;
  /**
   * Keep the tree entries of the layers imported now ({@link PullResult.parsed}), for a caller
   * that makes the file system itself (default: false; with `images` they are used inside).
   */
  keepEntries?: boolean;
  /** Also make the bootable images (`cfsctl oci pull --bootable`). */
  bootable?: boolean;
  /** Xattr filtering of the images' OCI transform; default `allowlist-only`. */
  xattrs?: XattrFiltering;
  /** Called as layers start and finish. */
  onLayer?: (event: LayerEvent) => void;
  /** Hears of every compressed byte read, per layer (progress displays). */
  onBytes?: (layerIndex: number, n: number) => void;
  /** Stops the pull (between chunks of a layer) when aborted. */
  signal?: AbortSignal;
  /**
   * How a layer already stored is trusted; a layer that fails is fetched and imported again.
   * `exists` (the default): every object its stream refers to must exist, one lstat each.
   * `hash`: each is also read and hashed, which finds damaged bytes in an insecure repository
   * (in a secure one the kernel refuses them on read anyway). Measured on the Debian rootfs
   * (one 204 MB layer, 5107 objects, SHA-512, 2 cores under load 4): `exists` 80 ms, `hash`
   * 2.0 to 2.3 s, the whole re-pull of that image when present 0.9 s. Hashing would triple
   * every re-pull, so it is not the default: `cfs fsck --repair` finds damaged bytes and
   * removes them, and the next pull (existence check) fetches them again.
   */
  verify?: "exists" | "hash";
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
  verity: ObjectId;
  /** True when this pull imported it (false: it was already present). */
  imported: boolean;
  /**
   * Set when the layer was stored but incomplete and was fetched again: how many of its
   * objects were missing, and how many damaged (removed before the import).
   */
  refetched?: { missing: number; damaged: number };
  /** Objects the import stored or found (0 when the layer was present). */
  objects: number;
  /** Bytes kept inline in the layer stream. */
  inlineBytes: number;
}

/** What {@link pullImage} stored. */
export interface PullResult {
  /** `sha256:...` of the manifest. */
  manifestDigest: string;
  /** The manifest stream's object id (after the images were linked: the rewritten one). */
  manifestVerity: ObjectId;
  /** `sha256:...` of the config. */
  configDigest: string;
  /** The config stream's object id (after the images were linked: the rewritten one). */
  configVerity: ObjectId;
  /** The layers in manifest order. */
  layers: PulledLayer[];
  /** How many layers were imported (0 when everything was present). */
  layersImported: number;
  /** The plain image of the repository's default EROFS format, when made. */
  image?: ObjectId;
  /** The bootable image of the default format, when made. */
  bootImage?: ObjectId;
  /** True for an artifact (no images). */
  artifact: boolean;
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
  /** With `keepEntries`: the tree entries of the layers imported now, for createFilesystem. */
  parsed?: ParsedLayers;
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
async function* abortable(input: TarInput, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  for await (const chunk of input) {
    signal.throwIfAborted();
    yield chunk;
  }
}

const SHA256 = /^sha256:[0-9a-f]{64}$/;

/** Layers imported at once: one per core, as composefs-rs does, at least 2. */
export const LAYER_IMPORTS_AT_ONCE = Math.max(2, navigator.hardwareConcurrency || 1);

/**
 * Stores the image of an opened source (which the caller closes); see the module
 * documentation. With `options.signal`, an abort stops the import between chunks.
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
  if (!SHA256.test(manifestDigest) || !SHA256.test(configDigest)) {
    throw new RepositoryError(
      `'${ref}': manifest ${manifestDigest} / config ${configDigest}: only sha256 digests ` +
        "can be stored",
    );
  }
  if (options.tag !== undefined) validateTag(options.tag);
  repo.requireWritable();

  let layersImported = 0;
  const localMode = options.localFetch === "zerocopy" ? "zerocopy" : "auto";
  const local = options.localFetch === "disabled" ? undefined : {
    zerocopy: localMode === "zerocopy",
    context: new LocalStoreContext(),
    stats: newLocalFetchStats(),
  };
  let usedLocal = false;
  const count = image.layers.length;
  for (const layer of image.layers) {
    if (!SHA256.test(layer.diffId)) {
      throw new RepositoryError(`'${ref}': layer diff_id ${layer.diffId} is not sha256`);
    }
  }
  /** One import per diff_id (a manifest may list a layer twice), started at most once. */
  const imports = new Map<string, Promise<PulledLayer>>();
  /**
   * Tree entries of the layers imported now, kept for the image's file system: reading the
   * new streams back cost ~0.3-0.6 s of a 7-9 s pull of the bench's 206 MB image (a 6768-entry
   * tar parsed again, external sizes from stat; measured, issue 13). Stored layers are read.
   */
  const parsed = new Map<string, OciEntry[]>();
  const wantEntries = options.images !== false || options.keepEntries === true;
  const importOne = async (index: number): Promise<PulledLayer> => {
    const layer = image.layers[index];
    const event = { index, count, digest: layer.digest, diffId: layer.diffId, size: layer.size };
    const layerStream = `oci-layer-${layer.diffId}`;
    let streamId = repo.hasStream(layerStream);
    let refetched: PulledLayer["refetched"];
    if (streamId) {
      // A stored layer is trusted only whole: a lost or damaged object is fetched again.
      const damage = await repo.streamDamage(layerStream, { hash: options.verify === "hash" });
      if (!damage.ok) {
        for (const id of damage.damaged) repo.objects.remove(id);
        refetched = { missing: damage.missing.length, damaged: damage.damaged.length };
        streamId = undefined;
      }
    }
    const pulled = {
      digest: layer.digest,
      diffId: layer.diffId,
      mediaType: layer.mediaType,
      size: layer.size,
      refetched,
      imported: false,
      objects: 0,
      inlineBytes: 0,
    };
    if (streamId) {
      options.onLayer?.({ ...event, state: "present" });
      return { ...pulled, verity: streamId };
    }
    options.onLayer?.({ ...event, state: "start" });
    signal.throwIfAborted();
    const onBytes = options.onBytes;
    let tar: TarInput = await source.openLayer(
      layer,
      onBytes ? (n) => onBytes(index, n) : undefined,
    );
    const bodies = typeof (tar as Partial<LocalBodies>).take === "function"
      ? tar as unknown as LocalBodies
      : undefined;
    const diffIdVerified =
      (tar as { [VERIFIED_DIFF_ID]?: string })[VERIFIED_DIFF_ID] === layer.diffId;
    tar = abortable(tar, signal);
    if (bodies && local) usedLocal = true;
    const r = await importLayer(repo, tar, {
      diffId: layer.diffId,
      local: bodies && local ? { bodies, ...local } : undefined,
      replace: refetched !== undefined,
      diffIdVerified,
      entries: wantEntries,
    });
    if (r.entries) parsed.set(layer.diffId, r.entries);
    if (!r.existing) layersImported++;
    options.onLayer?.({ ...event, state: "done" });
    return {
      ...pulled,
      verity: r.streamId,
      imported: !r.existing,
      objects: r.objects,
      inlineBytes: r.inlineBytes,
    };
  };
  // Layers import side by side, as composefs-rs imports them (the largest first, as many at
  // once as there are cores): while one waits for the kernel or its decompressor, another
  // parses. A failure stops the others (between chunks) before the pull returns.
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const order = image.layers.map((_, i) => i).sort((a, b) =>
    image.layers[b].size - image.layers[a].size || a - b
  );
  const started: Promise<unknown>[] = [];
  const lanes = Math.max(1, Math.min(LAYER_IMPORTS_AT_ONCE, count));
  let next = 0;
  const lane = async () => {
    while (next < order.length) {
      const index = order[next++];
      const diffId = image.layers[index].diffId;
      let p = imports.get(diffId);
      if (p === undefined) {
        p = importOne(index);
        imports.set(diffId, p);
      }
      started.push(p);
      await p;
    }
  };
  try {
    await Promise.all(Array.from({ length: lanes }, lane));
  } catch (e) {
    stop.abort(e);
    await Promise.allSettled(started);
    throw e;
  }
  const layers: PulledLayer[] = [];
  const seen = new Set<string>();
  for (const [index, layer] of image.layers.entries()) {
    const result = await imports.get(layer.diffId)!;
    if (seen.has(layer.diffId)) {
      // A repeated layer was stored by its first occurrence.
      options.onLayer?.({
        index,
        count,
        digest: layer.digest,
        diffId: layer.diffId,
        size: layer.size,
        state: "present",
      });
      layers.push({ ...result, imported: false, objects: 0, inlineBytes: 0 });
    } else {
      layers.push(result);
    }
    seen.add(layer.diffId);
  }
  const layerMap = new Map(layers.map((l) => [l.diffId, l.verity]));
  const diffIds = image.layers.map((l) => l.diffId);

  // The config: reuse a stored one (it must name every layer), else write it.
  let configVerity = repo.hasStream(configContentId(configDigest));
  const existing = configVerity !== undefined;
  if (configVerity) {
    const stored = readExternalStream(
      repo,
      configContentId(configDigest),
      CONTENT_TYPE.ociConfig,
      configVerity,
    );
    for (const d of diffIds) {
      if (!stored.namedRefs.has(d)) {
        throw new RepositoryError(`stored config ${configDigest} has no layer ref for ${d}`);
      }
    }
  } else {
    configVerity = (await writeConfigStream(repo, image.configBytes, diffIds, layerMap)).id;
  }
  let manifestVerity = repo.hasStream(manifestContentId(manifestDigest)) ??
    await writeManifestStream(
      repo,
      image.manifestBytes,
      manifestDigest,
      configDigest,
      configVerity,
      diffIds.map((d) => [d, layerMap.get(d)!] as [string, ObjectId]),
    );

  let imageId: ObjectId | undefined;
  let bootImage: ObjectId | undefined;
  let artifact = false;
  if (options.images !== false) {
    const committed = await commitOciImages(repo, manifestDigest, manifestVerity, {
      bootable: options.bootable,
      xattrs: options.xattrs,
      tag: options.tag,
      parsed,
    });
    if (committed) {
      manifestVerity = committed.manifestId;
      imageId = committed.image;
      bootImage = committed.bootImage;
      const m = readExternalStream(
        repo,
        manifestContentId(manifestDigest),
        CONTENT_TYPE.ociManifest,
        manifestVerity,
      );
      configVerity = m.namedRefs.get(`config:${configDigest}`) ?? configVerity;
    } else {
      artifact = true;
      if (options.tag !== undefined) tagImage(repo, options.tag, manifestDigest);
    }
  } else if (options.tag !== undefined) {
    tagImage(repo, options.tag, manifestDigest);
  }
  return {
    manifestDigest,
    manifestVerity,
    configDigest,
    configVerity,
    layers,
    layersImported,
    image: imageId,
    bootImage,
    artifact,
    existing,
    localFetch: usedLocal && local
      ? { mode: localMode, stats: local.stats, copied: local.context.copied }
      : undefined,
    parsed: options.keepEntries ? parsed : undefined,
  };
}
