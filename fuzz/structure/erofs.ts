/**
 * EROFS-aware mutation: the fields of a valid image (composefs header, superblock, every
 * reachable inode's header, xattr headers, shared xattr ids and entries, directory entries),
 * found by walking it with cfs's reader, rewritten one at a time (`fields.ts`); directory
 * entries also get other inodes' numbers (loops, shared directories, a file where a
 * directory was).
 *
 * @module
 */
import * as F from "../../lib/erofs/format.ts";
import { ErofsReader, type RawInode } from "../../lib/erofs/reader.ts";
import type { FieldPoint } from "./fields.ts";

type Width = 1 | 2 | 4 | 8;

function structPoints(
  s: { fields: Record<string, { offset: number; size: number }> },
  base: number,
  label: string,
  skip: readonly string[] = [],
): FieldPoint[] {
  const out: FieldPoint[] = [];
  for (const [name, f] of Object.entries(s.fields)) {
    if (skip.includes(name) || ![1, 2, 4, 8].includes(f.size)) continue;
    out.push({ at: base + f.offset, width: f.size as Width, label: `${label} ${name}` });
  }
  return out;
}

/** The mutable fields of a valid image; [] when `image` does not parse (then only havoc). */
export function erofsPoints(image: Uint8Array): FieldPoint[] {
  let reader: ErofsReader;
  try {
    reader = new ErofsReader(image);
  } catch {
    return [];
  }
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const points: FieldPoint[] = [
    ...structPoints(F.ComposefsHeader, 0, "composefs header"),
    ...structPoints(F.Superblock, F.SUPERBLOCK_OFFSET, "superblock", ["reserved"]),
  ];
  const sb = F.decodeStruct(F.Superblock, dv, F.SUPERBLOCK_OFFSET);
  const metaBase = sb.metaBlkaddr * F.BLOCK_SIZE;
  const nids: number[] = [];
  const dirNids: number[] = [];
  const dirents: number[] = [];
  const queue = [reader.rootNid];
  const seen = new Set<number>();
  while (queue.length > 0 && seen.size < 4000) {
    const nid = queue.shift()!;
    if (seen.has(nid)) continue;
    seen.add(nid);
    let raw: RawInode;
    try {
      raw = reader.inode(nid);
    } catch {
      continue;
    }
    nids.push(nid);
    const off = metaBase + nid * F.INODE_SLOT;
    const s = raw.extended ? F.ExtendedInode : F.CompactInode;
    points.push(...structPoints(s, off, `inode ${nid}`, ["reserved", "reserved2"]));
    const headerSize = s.size;
    const icount = dv.getUint16(off + s.fields.xattrIcount.offset, true);
    if (icount > 0) {
      const xs = off + headerSize;
      const end = xs + F.InodeXattrHeader.size + (icount - 1) * F.XATTR_WORD;
      points.push(
        ...structPoints(F.InodeXattrHeader, xs, `inode ${nid} xattr header`, ["reserved"]),
      );
      const shared = image[xs + F.InodeXattrHeader.fields.sharedCount.offset];
      let p = xs + F.InodeXattrHeader.size;
      for (let i = 0; i < shared && p + 4 <= end; i++, p += 4) {
        points.push({ at: p, width: 4, label: `inode ${nid} shared xattr id ${i}` });
      }
      while (p + F.XattrEntry.size <= end && p + F.XattrEntry.size <= image.length) {
        points.push(...structPoints(F.XattrEntry, p, `inode ${nid} xattr at ${p}`));
        const len = F.XattrEntry.size + image[p] + dv.getUint16(p + 2, true);
        p += F.roundUp(len, F.XATTR_WORD);
      }
    }
    if ((raw.mode & F.S_IFMT) !== F.S_IFDIR) continue;
    dirNids.push(nid);
    // Directory blocks: full blocks from u, the tail inline after the inode (flat inline).
    const blocks: Array<[number, number]> = [];
    const tail = raw.layout === F.DATALAYOUT_FLAT_INLINE ? raw.size % F.BLOCK_SIZE : 0;
    for (let b = 0; b < raw.size - tail; b += F.BLOCK_SIZE) {
      blocks.push([raw.u * F.BLOCK_SIZE + b, Math.min(F.BLOCK_SIZE, raw.size - b)]);
    }
    if (tail > 0) blocks.push([raw.inlineStart, tail]);
    for (const [start, len] of blocks) {
      if (start + F.Dirent.size > image.length || len < F.Dirent.size) continue;
      const count = Math.floor(dv.getUint16(start + F.Dirent.fields.nameoff.offset, true) / 12);
      for (let i = 0; i < count && (i + 1) * 12 <= len; i++) {
        const e = start + i * F.Dirent.size;
        dirents.push(e);
        points.push({
          at: e + F.Dirent.fields.nameoff.offset,
          width: 2,
          label: `dirent at ${e} nameoff`,
        });
        points.push({
          at: e + F.Dirent.fields.fileType.offset,
          width: 1,
          label: `dirent at ${e} type`,
        });
        const child = Number(dv.getBigUint64(e, true));
        if (!seen.has(child)) queue.push(child);
      }
    }
  }
  const nidValues = nids.map(BigInt);
  const dirValues = dirNids.map(BigInt);
  for (const e of dirents) {
    points.push({
      at: e + F.Dirent.fields.nid.offset,
      width: 8,
      label: `dirent at ${e} nid`,
      alternatives: [...nidValues, ...dirValues, ...dirValues],
    });
  }
  const root = points.find((p) => p.label === "superblock rootNid");
  if (root) root.alternatives = nidValues;
  return points;
}
