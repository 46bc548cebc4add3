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
import { concatBytes } from "../bytes.ts";
import { parseSha256 } from "./import.ts";
import { parseSplitStream, type SplitStreamReader } from "../splitstream.ts";
import { Repository, RepositoryError } from "../repository.ts";
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
import { mkfsErofs } from "../erofs/writer.ts";
import { fsverityDigest, toHex } from "../fsverity/digest.ts";
import { transformForBoot } from "../boot/transform.ts";
import { configImageRef } from "./store.ts";

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

function openStream(
  repo: Repository,
  name: string,
): { sha256: string; id: Uint8Array; reader: SplitStreamReader } {
  const { sha256, id, bytes } = repo.readStream(name);
  const reader = parseSplitStream(bytes, {
    name: `stream ${sha256}`,
    objectIdLength: repo.algorithm === "sha512" ? 64 : 32,
  });
  return { sha256, id, reader };
}

/** The config JSON of a config stream (`refs/NAME` or its sha256) and its stream reader. */
export async function openConfig(
  repo: Repository,
  name: string,
): Promise<{ config: { rootfs?: { diff_ids?: unknown } }; reader: SplitStreamReader }> {
  const { sha256, reader } = openStream(repo, name);
  const parts: Uint8Array[] = [];
  for await (const chunk of reader.cat((id) => repo.readObject(id))) parts.push(chunk);
  const bytes = concatBytes(parts);
  try {
    return { config: JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)), reader };
  } catch (e) {
    throw new OciImageError(`config stream ${sha256} is not a JSON image config`, { cause: e });
  }
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
  layer: SplitStreamReader,
): Promise<void> {
  // External fragments by the content offset their bytes start at: a tar body starting
  // there is that object. Found in a first pass, since the tar reader hands out an entry
  // before it pulls the body's bytes.
  const externals = new Map<number, Uint8Array>();
  const sizes: number[] = [];
  let offset = 0;
  for (const f of layer.fragments()) {
    if (f.kind === "inline") {
      offset += f.data.length;
    } else {
      const size = Deno.statSync(repo.objectPath(f.id)).size;
      externals.set(offset, f.id);
      sizes.push(size);
      offset += size;
    }
  }
  // The stream's content, with zeros for external bodies (only their ids are used).
  async function* content(): AsyncGenerator<Uint8Array> {
    let next = 0;
    for (const f of layer.fragments()) {
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
 * The file system of the image whose config stream is `configName` (`refs/NAME` or the
 * config's sha256), as 0.3.0 `create_filesystem` makes it.
 */
export async function createFilesystem(repo: Repository, configName: string): Promise<FileSystem> {
  const { config, reader } = await openConfig(repo, configName);
  const diffIds = config.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || !diffIds.every((d) => typeof d === "string")) {
    throw new OciImageError(`config ${configName}: rootfs.diff_ids is not a list of digests`);
  }
  const fs = newFileSystem();
  for (const diffId of diffIds as string[]) {
    const sha = parseSha256(diffId);
    const verity = reader.lookup(sha);
    if (!verity) {
      throw new OciImageError(`config ${configName}: no layer stream for ${diffId} in its map`);
    }
    const layer = openStream(repo, toHex(sha));
    const id = layer.id;
    if (toHex(id) !== toHex(verity)) {
      throw new OciImageError(
        `layer stream ${toHex(sha)} is object ${toHex(id)}, the config expects ${toHex(verity)}`,
      );
    }
    await applyLayer(repo, fs, layer.reader);
  }
  return fs;
}

/** The image id of `fs` in `repo`'s algorithm (sets a synthetic root's mtime, as cfsctl). */
export function imageId(repo: Repository, fs: FileSystem): Uint8Array {
  return fsverityDigest(mkfsErofs(fs), repo.algorithm);
}

/**
 * The file system of the pulled image whose config stream is `configSha256`, made bootable
 * (composefs-boot 0.3.0 `transform_for_boot`: `/boot` emptied, SELinux relabel from the
 * image's own policy) when `bootable`.
 */
export async function imageFilesystem(
  repo: Repository,
  configSha256: string,
  bootable = false,
): Promise<FileSystem> {
  const fs = await createFilesystem(repo, configSha256);
  if (bootable) transformForBoot(fs, (c) => repo.readObject(c.digest));
  return fs;
}

/**
 * Writes the image's EROFS into the repository and records it as the config's image
 * (`images/refs/oci-config-sha256:<hex>`, `.boot` for the bootable variant; store.ts).
 * Returns the image id.
 */
export async function commitOciImage(
  repo: Repository,
  configSha256: string,
  bootable = false,
): Promise<Uint8Array> {
  const fs = await imageFilesystem(repo, configSha256, bootable);
  return repo.writeImage(mkfsErofs(fs), configImageRef(configSha256, bootable));
}
