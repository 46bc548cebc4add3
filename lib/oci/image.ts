/**
 * The file system of a pulled OCI image, as composefs-oci 0.9.4 `create_filesystem` builds
 * it: the layer streams (config `rootfs.diff_ids` order, each found through the config
 * stream's named ref) are read as tars and each entry is applied with
 * {@link applyOciEntry} (lib/oci/layer_tree.ts: whiteouts, opaque directories, hardlinks,
 * directory merging, stat with pax uid/gid/mtime and nanoseconds). Regular files stored as
 * external objects in the layer stream keep that object id; the others are inline.
 *
 * The root starts with 0.9.4's uninitialized stat (mode 0); the container-root transform
 * that gives it `/usr`'s metadata comes after (lib/oci/commit.ts, lib/tree_transform.ts).
 *
 * @module
 */
import { type CfsErrorOptions, withCode } from "../errors.ts";
import { readTar, type TarMetadata } from "./tar.ts";
import { ObjectId, Repository, RepositoryError } from "../repository/mod.ts";
import { SplitStreamReader } from "../splitstream/reader.ts";
import { CONTENT_TYPE } from "../splitstream/format.ts";
import type { OciImage } from "./store.ts";
import { type FileSystem, INLINE_CONTENT_MAX, type LeafContent } from "../tree.ts";
import {
  applyOciEntry,
  newOciFileSystem,
  type OciEntry,
  type OciEntryItem,
  ociEntryStat,
  OciTreeError,
} from "./layer_tree.ts";

/** A layer or config that cannot be turned into a file system. */
export class OciImageError extends RepositoryError {
  /** Creates the error; the message is one line naming the input. */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, withCode(options, "oci-image-invalid"));
    this.name = "OciImageError";
  }
}

const ZEROS = new Uint8Array(1 << 20);

/** A layer stream's content as chunks: inline bytes, and external objects by id. */
export type LayerChunk = { kind: "inline"; data: Uint8Array } | {
  kind: "external";
  id: Uint8Array;
};

/**
 * The chunks of the layer stream whose object is `id` (content type `ocilayer`), read whole
 * (a layer stream holds tar headers and small files; large bodies stay objects).
 */
export async function readLayerChunks(repo: Repository, id: ObjectId): Promise<LayerChunk[]> {
  const reader = SplitStreamReader.open(repo.readObject(id), {
    name: `layer stream ${id.hex}`,
    algorithm: repo.algorithm,
    contentType: CONTENT_TYPE.ociLayer,
  });
  const out: LayerChunk[] = [];
  for await (const c of reader.chunks()) {
    if (c.kind === "inline") out.push({ kind: "inline", data: c.data });
    else out.push({ kind: "external", id: c.id });
  }
  return out;
}

/** glibc makedev(): the dev_t encoding composefs stores for device nodes. */
function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) |
    (mi & 0xffn);
}

/** Applies the layer stream `layer` to `fs` (0.9.4 `process_entry` for each tar entry). */
export async function applyLayer(
  repo: Repository,
  fs: FileSystem,
  layer: readonly LayerChunk[],
): Promise<void> {
  // External fragments by the content offset their bytes start at: a tar body starting
  // there is that object. Found in a first pass, since the tar reader hands out an entry
  // before it pulls the body's bytes.
  const externals = new Map<number, Uint8Array>();
  const sizes: number[] = [];
  let offset = 0;
  for (const f of layer) {
    if (f.kind === "inline") {
      offset += f.data.length;
    } else {
      const size = Deno.statSync(repo.objectPath(ObjectId.fromBytes(f.id))).size;
      externals.set(offset, f.id);
      sizes.push(size);
      offset += size;
    }
  }
  // The stream's content, with zeros for external bodies (only their ids are used).
  async function* content(): AsyncGenerator<Uint8Array> {
    let next = 0;
    for (const f of layer) {
      if (f.kind === "inline") {
        yield f.data;
      } else {
        let left = sizes[next++];
        while (left > 0) {
          const n = Math.min(left, ZEROS.length);
          left -= n;
          yield ZEROS.subarray(0, n);
        }
      }
    }
  }

  for await (const entry of readTar(content())) {
    const m = entry.meta;
    const bodyOffset = entry.offset + entry.headerBytes.length;
    // An entry without a body (size 0) never starts an external chunk's bytes.
    const external = m.size > 0 ? externals.get(bodyOffset) : undefined;
    if (external) {
      externals.delete(bodyOffset);
      if (m.type !== "regular") {
        throw new OciImageError(
          `layer entry ${JSON.stringify(m.path)}: unsupported external body`,
        );
      }
    }
    const body = m.type === "regular" && !external && m.size <= INLINE_CONTENT_MAX
      ? await entry.readBody()
      : undefined;
    applyLayerEntry(fs, layerEntry(m, external, body));
  }
}

/**
 * The tree entry of the tar entry `m` (0.9.4 `process_entry`): `external` is the object id a
 * regular file's body was stored as (sizes above {@link INLINE_CONTENT_MAX}), `body` the bytes
 * of a smaller one (copied here). A layer import builds these as it reads the tar
 * (lib/oci/import.ts), so that a pull need not read its layer streams back.
 */
export function layerEntry(
  m: TarMetadata,
  external: Uint8Array | undefined,
  body: Uint8Array | undefined,
): OciEntry {
  let item: OciEntryItem;
  switch (m.type) {
    case "directory":
      item = { kind: "directory" };
      break;
    case "hardlink":
      item = { kind: "hardlink", target: m.linkTarget };
      break;
    default: {
      let content: LeafContent;
      switch (m.type) {
        case "regular":
          if (external) {
            if (m.size <= INLINE_CONTENT_MAX) {
              throw new OciImageError(
                `layer stream stored a small (${m.size} byte) file external: ${m.path}`,
              );
            }
            content = { type: "external", digest: external, size: m.size };
          } else {
            if (m.size > INLINE_CONTENT_MAX) {
              throw new OciImageError(
                `layer stream stored a large (${m.size} byte) file inline: ${m.path}`,
              );
            }
            content = { type: "inline", data: (body ?? new Uint8Array(0)).slice() };
          }
          break;
        case "symlink":
          content = {
            type: "symlink",
            target: Uint8Array.from(m.linkTarget, (c) => c.charCodeAt(0)),
          };
          break;
        case "chardev":
          content = { type: "chardev", rdev: makedev(m.devmajor, m.devminor) };
          break;
        case "blockdev":
          content = { type: "blockdev", rdev: makedev(m.devmajor, m.devminor) };
          break;
        case "fifo":
          content = { type: "fifo" };
          break;
        default:
          throw new OciImageError(`layer entry ${JSON.stringify(m.path)}: unsupported type`);
      }
      item = { kind: "leaf", content };
    }
  }
  return { path: m.path, stat: ociEntryStat(m), item };
}

/** {@link applyOciEntry}, its tree errors as {@link OciImageError}. */
function applyLayerEntry(fs: FileSystem, entry: OciEntry): void {
  try {
    applyOciEntry(fs, entry);
  } catch (e) {
    if (e instanceof OciTreeError) throw new OciImageError(e.message, { cause: e });
    throw e;
  }
}

/**
 * Layers' tree entries built while they were imported, by diff_id (a pull hands them to
 * {@link createFilesystem}): the same entries reading their streams back gives.
 */
export type ParsedLayers = ReadonlyMap<string, readonly OciEntry[]>;

/**
 * The file system of a stored container image: its layers (config `rootfs.diff_ids` order,
 * each found through the config stream's named ref) applied one after the other, as
 * composefs-oci 0.9.4 `create_filesystem` does. A layer in `parsed` is applied from those
 * entries instead of its stream.
 */
export async function createFilesystem(
  repo: Repository,
  image: Pick<OciImage, "diffIds" | "layers" | "configDigest">,
  parsed?: ParsedLayers,
): Promise<FileSystem> {
  const fs = newOciFileSystem();
  for (const diffId of image.diffIds) {
    const id = image.layers.get(diffId);
    if (!id) {
      throw new OciImageError(
        `config ${image.configDigest}: no named ref to the layer stream of ${diffId}`,
      );
    }
    const entries = parsed?.get(diffId);
    if (entries !== undefined) {
      for (const entry of entries) applyLayerEntry(fs, entry);
      continue;
    }
    await applyLayer(repo, fs, await readLayerChunks(repo, id));
  }
  return fs;
}
