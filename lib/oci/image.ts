/**
 * The file system of a pulled OCI image, built as composefs-oci 0.3.0 `create_filesystem`
 * builds it: the config stream's layers (config `rootfs.diff_ids` order, each found through
 * the config stream's digest map) are read as tars and applied one entry at a time
 * (`process_entry`):
 *
 * - an entry naming the root (`/`, `./`) must be a directory and only sets the root's stat;
 * - the parent directory of every other entry must exist already (else an error);
 * - `.wh.NAME` removes NAME from its directory, `.wh..wh..opq` empties its directory;
 * - a directory over an existing directory replaces only its stat (children kept); anything
 *   else replaces what was there;
 * - a hardlink shares the (existing, non-directory) target's inode, across layers too;
 * - stat: mode from the tar, uid, gid and mtime from the header's own fields (pax `uid`,
 *   `gid`, `mtime` are not applied, as in 0.3.0), xattrs from pax `SCHILY.xattr.*` records;
 * - regular files stored as external objects in the layer stream keep that object id; the
 *   others are inline.
 *
 * Without a root entry in any layer, the root is root-owned 0555 and takes the newest mtime
 * of the tree when the image is written (cfsctl's synthetic root, {@link ensureRootStat}).
 *
 * @module
 */
import { readTar } from "./tar.ts";
import { ObjectId, Repository, RepositoryError } from "../repository/mod.ts";
import { SplitStreamReader } from "../splitstream/reader.ts";
import { CONTENT_TYPE } from "../splitstream/format.ts";
import type { OciImage } from "./store.ts";
import {
  type Directory,
  type FileSystem,
  INLINE_CONTENT_MAX,
  type Inode,
  type Leaf,
  type LeafContent,
  newDirectory,
  newFileSystem,
  sortXattrs,
  type Stat,
} from "../tree.ts";

/** A layer or config that cannot be turned into a file system. */
export class OciImageError extends RepositoryError {
  /** Creates the error; the message is one line naming the input. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "OciImageError";
  }
}

const ZEROS = new Uint8Array(1 << 20);
const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** A layer stream's content as chunks: inline bytes, and external objects by id. */
export type LayerChunk = { kind: "inline"; data: Uint8Array } | { kind: "external"; id: Uint8Array };

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

/** A numeric ustar header field as the Rust `tar` crate reads it (octal or base-256). */
function headerNumber(block: Uint8Array, off: number, len: number, what: string): number {
  const field = block.subarray(off, off + len);
  if (field[0] & 0x80) {
    let v = 0n;
    for (const b of field.subarray(Math.max(0, len - 8))) v = (v << 8n) | BigInt(b);
    if (len >= 8) v &= (1n << 64n) - 1n;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new OciImageError(`tar ${what} too large`);
    return Number(v);
  }
  let end = field.indexOf(0);
  if (end < 0) end = len;
  const text = String.fromCharCode(...field.subarray(0, end)).trim();
  if (!/^[0-7]+$/.test(text)) {
    throw new OciImageError(`tar header: invalid ${what} field ${JSON.stringify(text)}`);
  }
  return parseInt(text, 8);
}

/** A tar path as 0.3.0 sees it: its names after a leading `/` (`.` and empty names dropped). */
function pathNames(path: string): string[] {
  const names = path.split("/").filter((n) => n !== "" && n !== ".");
  if (names.includes("..")) {
    throw new OciImageError(`tar entry ${JSON.stringify(path)}: path contains '..'`);
  }
  return names;
}

function getDirectory(root: Directory, names: string[], path: string): Directory {
  let dir = root;
  for (const n of names) {
    const next = dir.entries.get(n);
    if (next === undefined) {
      throw new OciImageError(
        `layer entry ${JSON.stringify(path)}: ${JSON.stringify(n)} not found`,
      );
    }
    if (next.kind !== "dir") {
      throw new OciImageError(
        `layer entry ${JSON.stringify(path)}: ${JSON.stringify(n)} is not a directory`,
      );
    }
    dir = next;
  }
  return dir;
}

/** Applies the layer stream `layer` to `fs` (0.3.0 `process_entry` for each tar entry). */
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
    const header = entry.headerBytes.subarray(entry.headerBytes.length - 512);
    const bodyOffset = entry.offset + entry.headerBytes.length;
    const stat: Stat = {
      mode: m.mode,
      uid: headerNumber(header, 108, 8, "uid"),
      gid: headerNumber(header, 116, 8, "gid"),
      mtime: headerNumber(header, 136, 12, "mtime"),
      xattrs: sortXattrs(m.xattrs.map((x) => ({ name: x.name.slice(), value: x.value.slice() }))),
    };
    const names = pathNames(m.path);
    const external = externals.get(bodyOffset);
    if (external && m.size > 0) externals.delete(bodyOffset);
    if (external && m.size > 0 && m.type !== "regular") {
      throw new OciImageError(`layer entry ${JSON.stringify(m.path)}: unsupported external body`);
    }
    if (names.length === 0) {
      if (m.type !== "directory") {
        throw new OciImageError(
          `layer entry ${JSON.stringify(m.path)}: the root must be a directory`,
        );
      }
      fs.root.stat = stat;
      fs.haveRootStat = true;
      continue;
    }

    let inode: Inode;
    switch (m.type) {
      case "directory":
        inode = newDirectory(stat);
        break;
      case "hardlink": {
        const t = pathNames(m.linkTarget);
        if (t.length === 0) {
          throw new OciImageError(`hardlink ${JSON.stringify(m.path)} to the root`);
        }
        const dir = getDirectory(fs.root, t.slice(0, -1), m.linkTarget);
        const target = dir.entries.get(t[t.length - 1]);
        if (target === undefined) {
          throw new OciImageError(
            `hardlink ${JSON.stringify(m.path)}: target ${JSON.stringify(m.linkTarget)} not found`,
          );
        }
        if (target.kind === "dir") {
          throw new OciImageError(
            `hardlink ${JSON.stringify(m.path)}: target ${
              JSON.stringify(m.linkTarget)
            } is a directory`,
          );
        }
        inode = target;
        break;
      }
      default: {
        let content: LeafContent;
        switch (m.type) {
          case "regular":
            if (external && m.size > 0) {
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
              content = { type: "inline", data: (await entry.readBody()).slice() };
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
        inode = { kind: "leaf", stat, content } satisfies Leaf;
      }
    }

    const filename = names[names.length - 1];
    const dir = getDirectory(fs.root, names.slice(0, -1), m.path);
    if (filename.startsWith(WHITEOUT)) {
      if (filename === OPAQUE) dir.entries.clear();
      else dir.entries.delete(filename.slice(WHITEOUT.length));
    } else {
      const old = dir.entries.get(filename);
      if (inode.kind === "dir" && old?.kind === "dir") old.stat = inode.stat;
      else dir.entries.set(filename, inode);
    }
  }
}

/**
 * The file system of a stored container image: its layers (config `rootfs.diff_ids` order,
 * each found through the config stream's named ref) applied one after the other, as
 * composefs-oci 0.9.4 `create_filesystem` does.
 */
export async function createFilesystem(repo: Repository, image: OciImage): Promise<FileSystem> {
  const fs = newFileSystem();
  for (const diffId of image.diffIds) {
    const id = image.layers.get(diffId);
    if (!id) {
      throw new OciImageError(
        `config ${image.configDigest}: no named ref to the layer stream of ${diffId}`,
      );
    }
    await applyLayer(repo, fs, await readLayerChunks(repo, id));
  }
  return fs;
}
