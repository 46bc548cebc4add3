/**
 * Reading images from a containers-storage (podman, buildah, CRI-O) without podman, as
 * composefs-rs `cstorage` does: the store's metadata files, each layer's tar-split data and
 * its extracted files together give back each layer tar byte for byte, so an image can be
 * imported from the store, and its file bodies reflinked or hard-linked into the repository
 * (import.ts {@link LocalBodies}) instead of copied.
 *
 * The store (`overlay` or `vfs` driver; the facts below are containers/storage's):
 *
 * - `<driver>-images/images.json`: the images (`id` = the config digest's hex, `digest` =
 *   the manifest digest, `names`, `layer` = the top layer's id). Their documents are files
 *   in `<driver>-images/<id>/`: `manifest`, and the config under `=` + base64 of
 *   `sha256:<id>` (names that are not plain are base64-encoded).
 * - `<driver>-layers/layers.json`: the layers (`id`, `parent`, `diff-digest` = the diff_id).
 * - `<driver>-layers/<id>.tar-split.gz`: gzip of JSON lines, one per piece of the layer tar
 *   in order: `{"type":2,"payload":BASE64}` raw bytes (headers, padding, the end blocks),
 *   `{"type":1,"name":NAME,"size":N,"crc64":...}` the body of entry NAME, whose bytes are
 *   the file NAME in the layer's directory (`name_raw`, base64, when NAME is not UTF-8).
 * - the layer's files: `overlay/<id>/diff/` (its own changes), `vfs/dir/<id>/` (the whole
 *   tree up to it).
 *
 * The rebuilt tar is checked like any other: its sha256 must be the layer's diff_id
 * (importLayer), so a store whose files were changed after the pull is refused, never
 * imported wrong. Layers whose body files are missing from their own directory (a tar that
 * hard-links into a lower layer, which containers/storage cannot extract anyway) fail.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { type LayerDescriptor, type ResolvedImage } from "./layout.ts";
import { imageConfigSchema, imageManifestSchema } from "./layout.ts";
import type { ImageSource } from "./source.ts";
import type { LocalBodies } from "./import.ts";
import { normalizeEntryPath } from "./tar.ts";
import type { LocalObjectSource } from "../repository.ts";
import * as sys from "../sys/libc.ts";

/** The default store of root's podman (containers/storage's built-in default). */
export const DEFAULT_STORAGE_ROOT = "/var/lib/containers/storage";

/** Storage drivers whose layers cfs can read. */
export type StorageDriver = "overlay" | "vfs";

/** A store or image that cannot be read; `unavailable` when the store itself is missing. */
export class ContainersStorageError extends CfsError {
  /** Creates the error; `unavailable`: no readable store there (a fallback may apply). */
  constructor(message: string, readonly unavailable = false, options?: CfsErrorOptions) {
    super(
      message,
      withCode(
        options,
        unavailable ? "containers-storage-unavailable" : "containers-storage-error",
      ),
    );
    this.name = "ContainersStorageError";
  }
}

/** An image as images.json lists it. */
export interface StorageImage {
  id: string;
  digest?: string;
  digests?: string[];
  names?: string[];
  layer?: string;
}

/** A layer as layers.json lists it. */
export interface StorageLayer {
  id: string;
  parent?: string;
  "diff-digest"?: string;
  "diff-size"?: number;
}

/**
 * `containers-storage:[DRIVER@ROOT+RUNROOT]NAME` split into the store spec and the image
 * name (containers/image's syntax; `[ROOT]` alone is accepted too).
 */
export function parseStorageReference(
  rest: string,
): { driver?: string; root?: string; name: string } {
  if (!rest.startsWith("[")) return { name: rest };
  const end = rest.indexOf("]");
  if (end < 0) throw new ContainersStorageError(`containers-storage:${rest}: unclosed '['`);
  const spec = rest.slice(1, end);
  const name = rest.slice(end + 1);
  const at = spec.indexOf("@");
  const driver = at >= 0 ? spec.slice(0, at) : undefined;
  const paths = at >= 0 ? spec.slice(at + 1) : spec;
  const root = paths.split("+")[0] || undefined;
  return { driver, root, name };
}

/** The graph root and driver of /etc/containers/storage.conf, when it names them. */
function storageConf(): { root?: string; driver?: string } {
  let text: string;
  try {
    text = Deno.readTextFileSync("/etc/containers/storage.conf");
  } catch {
    return {};
  }
  const value = (key: string) => {
    const m = text.match(new RegExp(`^\\s*${key}\\s*=\\s*"([^"]*)"`, "m"));
    return m?.[1] || undefined;
  };
  return { root: value("graphroot"), driver: value("driver") };
}

/** The store `containers-storage:NAME` means here: storage.conf's graphroot, else the default. */
export function defaultStorageRoot(): string {
  return storageConf().root ?? DEFAULT_STORAGE_ROOT;
}

const decoder = new TextDecoder();

function readJson<T>(path: string, what: string): T {
  try {
    return JSON.parse(Deno.readTextFileSync(path)) as T;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [] as T;
    throw new ContainersStorageError(`${path}: cannot read ${what}: ${(e as Error).message}`);
  }
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A containers-storage on disk, read without podman. */
export class ContainersStorage {
  private constructor(readonly root: string, readonly driver: StorageDriver) {}

  /**
   * Opens the store at `root` with `driver` (else the one whose metadata exists, overlay
   * first). Throws {@link ContainersStorageError} (`unavailable`) when there is none.
   */
  static open(root: string, driver?: string): ContainersStorage {
    const candidates = driver ? [driver] : ["overlay", "vfs"];
    for (const d of candidates) {
      if (d !== "overlay" && d !== "vfs") {
        throw new ContainersStorageError(
          `containers-storage ${root}: driver ${JSON.stringify(d)} is not readable by cfs ` +
            "(overlay and vfs are)",
          true,
        );
      }
      try {
        Deno.statSync(join(root, `${d}-images`, "images.json"));
        return new ContainersStorage(root, d);
      } catch { /* next */ }
    }
    throw new ContainersStorageError(
      `containers-storage ${root}: no ${candidates.join(" or ")} image store there`,
      true,
    );
  }

  /** The images of images.json. */
  images(): StorageImage[] {
    return readJson(join(this.root, `${this.driver}-images`, "images.json"), "the image list");
  }

  /** The layers of layers.json, by id. */
  layers(): Map<string, StorageLayer> {
    const list = readJson<StorageLayer[]>(
      join(this.root, `${this.driver}-layers`, "layers.json"),
      "the layer list",
    );
    return new Map(list.map((l) => [l.id, l]));
  }

  /**
   * The image `name` names: its id (or a unique prefix of 3+ hex digits, or `sha256:ID`), its
   * manifest digest (`NAME@sha256:...` or `sha256:...`), or one of its names, as written
   * or completed as podman does (`localhost/` or `docker.io/library/`, `:latest`).
   */
  findImage(name: string): StorageImage {
    const images = this.images();
    const bare = name.startsWith("sha256:") ? name.slice(7) : name;
    const byId = images.filter((i) => i.id === bare);
    if (byId.length === 1) return byId[0];
    const at = name.lastIndexOf("@");
    const digest = at >= 0 ? name.slice(at + 1) : name.startsWith("sha256:") ? name : undefined;
    if (digest !== undefined) {
      const hits = images.filter((i) => i.digest === digest || i.digests?.includes(digest));
      if (hits.length >= 1) return hits[0];
    }
    const wanted = new Set<string>();
    const base = at >= 0 ? name.slice(0, at) : name;
    const tagged = /:[^/]+$/.test(base) ? base : `${base}:latest`;
    for (const n of [base, tagged]) {
      wanted.add(n);
      const first = n.split("/")[0];
      if (
        !n.includes("/") || !(first.includes(".") || first.includes(":") || first === "localhost")
      ) {
        wanted.add(`localhost/${n}`);
        wanted.add(`docker.io/${n.includes("/") ? "" : "library/"}${n}`);
      }
    }
    const byName = images.filter((i) => i.names?.some((n) => wanted.has(n)));
    if (byName.length >= 1) return byName[0];
    if (/^[0-9a-f]{3,63}$/.test(bare)) {
      const prefixed = images.filter((i) => i.id.startsWith(bare));
      if (prefixed.length === 1) return prefixed[0];
    }
    throw new ContainersStorageError(
      `containers-storage ${this.root}: no image ${JSON.stringify(name)}`,
    );
  }

  /** The file holding an image's document `key` (containers/storage's big-data naming). */
  private bigDataPath(image: StorageImage, key: string): string {
    const plain = /^[A-Za-z0-9._-]+$/.test(key) && !key.startsWith("=");
    const file = plain ? key : "=" + btoa(key);
    return join(this.root, `${this.driver}-images`, image.id, file);
  }

  /** Manifest, config and layers of `image`, every digest checked. */
  resolve(image: StorageImage): ResolvedImage & { storageLayers: StorageLayer[] } {
    const where = `containers-storage ${this.root}: image ${image.id.slice(0, 12)}`;
    const read = (key: string) => {
      try {
        return Deno.readFileSync(this.bigDataPath(image, key));
      } catch (e) {
        throw new ContainersStorageError(
          `${where}: cannot read its ${key}: ${(e as Error).message}`,
        );
      }
    };
    const manifestBytes = read("manifest");
    const manifestDigest = `sha256:${sha256Hex(manifestBytes)}`;
    const manifest = imageManifestSchema.parse(JSON.parse(decoder.decode(manifestBytes)));
    const configDigest = `sha256:${image.id}`;
    const configBytes = read(configDigest);
    if (
      `sha256:${sha256Hex(configBytes)}` !== configDigest || manifest.config.digest !== configDigest
    ) {
      throw new ContainersStorageError(
        `${where}: its config does not match the image id / the manifest's config digest`,
      );
    }
    const config = imageConfigSchema.parse(JSON.parse(decoder.decode(configBytes)));
    const all = this.layers();
    const chain: StorageLayer[] = [];
    for (let id = image.layer; id !== undefined && id !== "";) {
      const layer = all.get(id);
      if (!layer) throw new ContainersStorageError(`${where}: layer ${id} is missing`);
      chain.unshift(layer);
      id = layer.parent;
      if (chain.length > 1000) throw new ContainersStorageError(`${where}: layer chain loops`);
    }
    const diffIds = config.rootfs.diff_ids;
    if (chain.length !== diffIds.length || manifest.layers.length !== diffIds.length) {
      throw new ContainersStorageError(
        `${where}: ${chain.length} layers in the store, ${diffIds.length} diff_ids in the ` +
          `config, ${manifest.layers.length} in the manifest`,
      );
    }
    chain.forEach((l, i) => {
      if (l["diff-digest"] !== diffIds[i]) {
        throw new ContainersStorageError(
          `${where}: layer ${l.id} has diff ${l["diff-digest"]}, the config says ${diffIds[i]}`,
        );
      }
    });
    const layers = manifest.layers.map((d, i) => ({ ...d, diffId: diffIds[i] }));
    return {
      manifestDescriptor: {
        mediaType: manifest.mediaType ?? "application/vnd.oci.image.manifest.v1+json",
        digest: manifestDigest,
        size: manifestBytes.length,
      },
      manifest,
      manifestBytes,
      configDescriptor: manifest.config,
      config,
      configBytes,
      layers,
      indexDigests: [],
      storageLayers: chain,
    };
  }

  /** The directory holding a layer's files. */
  layerDir(layer: StorageLayer): string {
    return this.driver === "overlay"
      ? join(this.root, "overlay", layer.id, "diff")
      : join(this.root, "vfs", "dir", layer.id);
  }

  /** The layer's tar, rebuilt from its tar-split data and files; see {@link StorageLayerTar}. */
  openLayer(layer: StorageLayer, onBytes?: (n: number) => void): StorageLayerTar {
    return new StorageLayerTar(
      join(this.root, `${this.driver}-layers`, `${layer.id}.tar-split.gz`),
      this.layerDir(layer),
      onBytes,
    );
  }
}

/** One piece of a tar-split file. */
interface TarSplitEntry {
  type: number;
  name?: string;
  name_raw?: string;
  size?: number;
  payload?: string | null;
}

/** Base64 to bytes. */
function fromBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Bytes to a byte string (one char per byte, as tar.ts paths). */
function byteString(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return s;
}

const encoder = new TextEncoder();

/** The entries of a tar-split file, streamed (gunzip, split at newlines). */
async function* readTarSplit(path: string): AsyncGenerator<TarSplitEntry> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (e) {
    throw new ContainersStorageError(
      `${path}: cannot read the layer's tar-split data: ${(e as Error).message}`,
    );
  }
  const lines = file.readable.pipeThrough(new DecompressionStream("gzip")).pipeThrough(
    new TextDecoderStream(),
  );
  let rest = "";
  for await (const text of lines) {
    rest += text;
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      if (line.trim() !== "") yield JSON.parse(line);
    }
  }
  if (rest.trim() !== "") yield JSON.parse(rest);
}

const TYPE_FILE = 1;
const TYPE_SEGMENT = 2;
/** Bodies up to this size are inline in a splitstream: no file is kept open for them. */
const INLINE_BODY_MAX = 64;
const READ_CHUNK = 1 << 20;

/** A body file opened ahead of its bytes. */
interface OpenBody {
  name: string;
  size: number;
  source: LocalObjectSource;
}

/**
 * A layer tar rebuilt from a store: iterate it for the bytes; as {@link LocalBodies}, it
 * hands the importer the open file behind each body. Each file is opened when the header
 * before it streams (one tar-split entry of look-ahead), so the importer can ask for it
 * before reading the body; files are closed once the next one is asked for, and all of
 * them when the iteration ends.
 */
export class StorageLayerTar implements AsyncIterable<Uint8Array>, LocalBodies {
  #queue: OpenBody[] = [];
  #taken: OpenBody[] = [];
  #open = new Set<OpenBody>();

  /** `onBytes` hears of every byte yielded. */
  constructor(
    readonly tarSplitPath: string,
    readonly dir: string,
    readonly onBytes?: (n: number) => void,
  ) {}

  #close(body: OpenBody): void {
    if (this.#open.delete(body)) sys.close(body.source.fd);
  }

  #openBody(entry: TarSplitEntry): OpenBody {
    const raw = entry.name_raw !== undefined
      ? fromBase64(entry.name_raw)
      : encoder.encode(entry.name ?? "");
    const name = byteString(raw);
    const rel = normalizeEntryPath(name).join("/");
    const path = sys.joinPath(this.dir, stringToBytes(rel));
    let fd: number;
    try {
      fd = sys.openRead(path);
    } catch (e) {
      throw new ContainersStorageError(
        `${sys.displayPath(path)}: cannot open the body of layer entry ${JSON.stringify(rel)}: ` +
          (e as Error).message,
      );
    }
    const body = {
      name: rel,
      size: entry.size ?? 0,
      source: { path, fd, stat: sys.fstat(fd, path) },
    };
    this.#open.add(body);
    if (body.size > INLINE_BODY_MAX) this.#queue.push(body);
    return body;
  }

  /** See {@link LocalBodies.take}. */
  take(path: string, size: number): LocalObjectSource | undefined {
    for (const t of this.#taken) this.#close(t);
    this.#taken = [];
    const want = normalizeEntryPath(path).join("/");
    while (this.#queue.length > 0) {
      const head = this.#queue.shift()!;
      this.#taken.push(head);
      if (head.name === want && head.size === size) return head.source;
    }
    return undefined;
  }

  /** The tar's bytes. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    const it = readTarSplit(this.tarSplitPath)[Symbol.asyncIterator]();
    let ahead: OpenBody | undefined;
    try {
      let next = await it.next();
      while (!next.done) {
        const entry = next.value;
        next = await it.next();
        if (entry.type === TYPE_SEGMENT) {
          const following = next.done ? undefined : next.value;
          if (following?.type === TYPE_FILE && (following.size ?? 0) > 0) {
            ahead = this.#openBody(following);
          }
          if (entry.payload) {
            const bytes = fromBase64(entry.payload);
            this.onBytes?.(bytes.length);
            yield bytes;
          }
        } else if (entry.type === TYPE_FILE) {
          const size = entry.size ?? 0;
          if (size === 0) continue;
          const body = ahead ?? this.#openBody(entry);
          ahead = undefined;
          let left = size;
          while (left > 0) {
            const chunk = new Uint8Array(Math.min(READ_CHUNK, left));
            const n = sys.read(body.source.fd, chunk, body.source.path);
            if (n === 0) break;
            left -= n;
            this.onBytes?.(n);
            yield n === chunk.length ? chunk : chunk.subarray(0, n);
          }
          if (left !== 0 || sys.read(body.source.fd, new Uint8Array(1), body.source.path) !== 0) {
            throw new ContainersStorageError(
              `${sys.displayPath(body.source.path)}: not the ${size} bytes the layer's tar-split ` +
                "data records (changed after the pull?)",
            );
          }
          if (size <= INLINE_BODY_MAX) this.#close(body);
        } else {
          throw new ContainersStorageError(
            `${this.tarSplitPath}: unknown tar-split entry type ${entry.type}`,
          );
        }
      }
    } finally {
      for (const o of [...this.#open]) this.#close(o);
      this.#queue = [];
      this.#taken = [];
    }
  }
}

function stringToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Options of {@link openStorageSource}. */
export interface StorageSourceOptions {
  /** The store; default: the reference's `[...]` spec, else storage.conf, else the default. */
  storageRoot?: string;
}

/**
 * An {@link ImageSource} for `containers-storage:[SPEC]NAME` read straight from the store.
 * Its layers are {@link StorageLayerTar}s (local bodies for a zero-copy import).
 */
export function openStorageSource(
  reference: string,
  rest: string,
  options: StorageSourceOptions = {},
): ImageSource & { storage: ContainersStorage } {
  const spec = parseStorageReference(rest);
  const root = options.storageRoot ?? spec.root ?? defaultStorageRoot();
  const storage = ContainersStorage.open(root, spec.driver ?? storageConf().driver);
  const image = storage.findImage(spec.name);
  const resolved = storage.resolve(image);
  const byDiffId = new Map(resolved.storageLayers.map((l) => [l["diff-digest"]!, l]));
  return {
    reference,
    image: resolved,
    storage,
    openLayer: (layer: LayerDescriptor, onBytes?: (n: number) => void) => {
      const stored = byDiffId.get(layer.diffId);
      if (!stored) {
        throw new ContainersStorageError(`${root}: no layer with diff ${layer.diffId}`);
      }
      return Promise.resolve(storage.openLayer(stored, onBytes));
    },
    close: () => Promise.resolve(),
  };
}
