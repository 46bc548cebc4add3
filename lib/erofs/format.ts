/**
 * The composefs EROFS on-disk format, declared once for the writer and the reader: constants,
 * the three format versions, and every on-disk struct as a table of fields (name, offset,
 * width) with one table-driven encoder and decoder. Nothing here does I/O.
 *
 * All integers are little-endian. Facts from the Linux EROFS format (fs/erofs/erofs_fs.h),
 * the composefs header that precedes the superblock, and composefs-rs 0.9.4
 * (`composefs/src/erofs/format.rs`), whose three format versions cfs writes and reads.
 *
 * @module
 */

// --- format versions ------------------------------------------------------------------------

/**
 * The composefs image format versions of composefs-rs 0.9.4:
 *
 * - **0**: libcomposefs's plain `mkcomposefs` layout: compact inodes where they fit, inodes
 *   in breadth-first order, the 256 overlay whiteout stubs `/00`..`/ff` in the root,
 *   whiteout and overlay-xattr escaping, `build_time` = the oldest mtime, shared xattrs
 *   ordered by full name; header `composefs_version` 0.
 * - **1**: the same layout with header `composefs_version` 1 (`mkcomposefs --min-version=1`),
 *   whose directories with whiteouts are also marked opaque. composefs-rs 0.9.4's default.
 * - **2**: composefs-rs's original layout: extended inodes only, depth-first order, no stub
 *   table, no whiteout escaping, `build_time` 0; header `composefs_version` 2.
 */
export type ErofsVersion = 0 | 1 | 2;

/** The version written when none is asked for: 1, as composefs-rs 0.9.4 (`cfsctl init`). */
export const DEFAULT_EROFS_VERSION: ErofsVersion = 1;

/** Every version, oldest first. */
export const EROFS_VERSIONS: readonly ErofsVersion[] = [0, 1, 2];

/**
 * Whether `version` uses libcomposefs's layout (V0 and V1, "epoch 1" in composefs-rs) rather
 * than composefs-rs's original one (V2). The two differ in nearly every layout decision;
 * V0 and V1 differ only in the header and in marking whiteout directories opaque.
 */
export function isCompactLayout(version: ErofsVersion): boolean {
  return version !== 2;
}

/** Parses "0", "1" or "2"; undefined for anything else. */
export function parseErofsVersion(text: string): ErofsVersion | undefined {
  return text === "0" ? 0 : text === "1" ? 1 : text === "2" ? 2 : undefined;
}

// --- structs --------------------------------------------------------------------------------

/** How one field is stored: an unsigned integer of 1, 2, 4 or 8 bytes, or raw bytes. */
export type FieldKind = "u8" | "u16" | "u32" | "u64" | { bytes: number };

/** One field of a {@link Struct}: where it lives and how wide it is. */
export interface Field {
  /** Byte offset from the start of the struct. */
  readonly offset: number;
  /** Width in bytes. */
  readonly size: number;
  /** Storage kind. */
  readonly kind: FieldKind;
}

/** The value type of a field of kind `K`: bigint for u64, number for smaller, bytes. */
export type FieldValue<K> = K extends "u64" ? bigint : K extends "u8" | "u16" | "u32" ? number
: Uint8Array;

/** Decoded values of a struct with field list `S`: numbers, bigints for u64, bytes. */
export type StructValues<S extends readonly (readonly [string, FieldKind])[]> = {
  [E in S[number] as E[0]]: FieldValue<E[1]>;
};

/** A packed on-disk struct: its name, total size and fields in declaration order. */
export interface Struct<S extends readonly (readonly [string, FieldKind])[]> {
  /** The struct's name, for messages. */
  readonly name: string;
  /** Total size in bytes (the sum of the field widths: these structs have no padding). */
  readonly size: number;
  /** Each field by name. */
  readonly fields: { readonly [E in S[number] as E[0]]: Field };
  /** Field names with their layout, in order. */
  readonly order: ReadonlyArray<readonly [string, Field]>;
  /** Writes the given fields at `offset` of `view` (see {@link encodeStruct}). */
  readonly encode: (view: DataView, offset: number, values: Partial<StructValues<S>>) => void;
  /** Reads every field at `offset` of `view` (see {@link decodeStruct}). */
  readonly decode: (view: DataView, offset: number) => StructValues<S>;
}

function widthOf(kind: FieldKind): number {
  return kind === "u8"
    ? 1
    : kind === "u16"
    ? 2
    : kind === "u32"
    ? 4
    : kind === "u64"
    ? 8
    : kind.bytes;
}

/** One field's store statement: `x` holds the value, `at` the struct's offset. */
function storeStatement(f: Field): string {
  const at = `at + ${f.offset}`;
  switch (f.kind) {
    case "u8":
      return `view.setUint8(${at}, x & 0xff);`;
    case "u16":
      return `view.setUint16(${at}, x & 0xffff, true);`;
    case "u32":
      return `view.setUint32(${at}, x >>> 0, true);`;
    case "u64":
      return `view.setBigUint64(${at}, BigInt.asUintN(64, x), true);`;
    default:
      return `new Uint8Array(view.buffer, view.byteOffset + ${at}, ${f.size}).set(x.subarray(0, ${f.size}));`;
  }
}

/** One field's load expression. */
function loadExpression(f: Field): string {
  const at = `at + ${f.offset}`;
  switch (f.kind) {
    case "u8":
      return `view.getUint8(${at})`;
    case "u16":
      return `view.getUint16(${at}, true)`;
    case "u32":
      return `view.getUint32(${at}, true)`;
    case "u64":
      return `view.getBigUint64(${at}, true)`;
    default:
      return `new Uint8Array(view.buffer, view.byteOffset + ${at}, ${f.size})`;
  }
}

/**
 * Declares a packed struct from its fields in order; offsets follow from the widths, and the
 * total must equal `size` (a check on the declaration itself).
 *
 * The encoder and decoder are generated once from the field table (straight-line code with
 * plain property access): the writer encodes a header for every inode and directory entry,
 * and a loop that looks fields up by name made it several times slower.
 */
export function defineStruct<const S extends readonly (readonly [string, FieldKind])[]>(
  name: string,
  size: number,
  spec: S,
): Struct<S> {
  const fields: Record<string, Field> = {};
  const order: Array<readonly [string, Field]> = [];
  let offset = 0;
  for (const [field, kind] of spec) {
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(field)) throw new Error(`bad field name ${field}`);
    const f: Field = { offset, size: widthOf(kind), kind };
    fields[field] = f;
    order.push([field, f]);
    offset += f.size;
  }
  if (offset !== size) throw new Error(`struct ${name} is ${offset} bytes, declared ${size}`);
  const encode = new Function(
    "view",
    "at",
    "v",
    `"use strict"; let x;\n` +
      order.map(([n, f]) => `x = v.${n}; if (x !== undefined) ${storeStatement(f)}`).join("\n"),
  ) as Struct<S>["encode"];
  const decode = new Function(
    "view",
    "at",
    `"use strict"; return {\n` +
      order.map(([n, f]) => `${n}: ${loadExpression(f)},`).join("\n") + "\n};",
  ) as Struct<S>["decode"];
  return { name, size, fields: fields as Struct<S>["fields"], order, encode, decode };
}

/**
 * Writes `values` as struct `s` at `offset` of `view`; fields not given are left as they are
 * (callers encode into zeroed buffers, so they are zero). Integers are stored modulo their
 * width, as a C cast would: callers check ranges before encoding (see `limits.ts`).
 */
export function encodeStruct<S extends readonly (readonly [string, FieldKind])[]>(
  s: Struct<S>,
  values: Partial<StructValues<S>>,
  view: DataView,
  offset: number,
): void {
  s.encode(view, offset, values);
}

/** Reads struct `s` at `offset` of `view`; the caller has checked that it lies inside. */
export function decodeStruct<S extends readonly (readonly [string, FieldKind])[]>(
  s: Struct<S>,
  view: DataView,
  offset: number,
): StructValues<S> {
  return s.decode(view, offset);
}

// --- blocks ---------------------------------------------------------------------------------

/** composefs images use 4 KiB blocks. */
export const BLOCK_BITS = 12;
/** 4096. */
export const BLOCK_SIZE = 1 << BLOCK_BITS;

// --- the composefs header -------------------------------------------------------------------

/** The fields of {@link ComposefsHeader}, in order: name and width. */
export const COMPOSEFS_HEADER_FIELDS = [
  ["magic", "u32"],
  /** The header's own version: always {@link COMPOSEFS_HEADER_VERSION}. */
  ["version", "u32"],
  /** {@link COMPOSEFS_FLAGS_HAS_ACL} or 0. */
  ["flags", "u32"],
  /** 0, 1 or 2: the {@link ErofsVersion} (V0 may also say 1, see the writer). */
  ["composefsVersion", "u32"],
  ["unused", { bytes: 16 }],
] as const;
/** The composefs header at offset 0, before the EROFS superblock. */
export const ComposefsHeader: Struct<typeof COMPOSEFS_HEADER_FIELDS> = defineStruct(
  "composefs header",
  32,
  COMPOSEFS_HEADER_FIELDS,
);

/** `magic` of the composefs header. */
export const COMPOSEFS_MAGIC = 0xd078629a;
/** `version` of the composefs header. */
export const COMPOSEFS_HEADER_VERSION = 1;
/** Header flag: some inode carries a POSIX ACL xattr (set by V0 and V1 only). */
export const COMPOSEFS_FLAGS_HAS_ACL = 1;

/** The header's `composefs_version` for each format version. */
export function composefsVersionOf(version: ErofsVersion): number {
  return version;
}

// --- the superblock -------------------------------------------------------------------------

/** The EROFS superblock lives at byte 1024. */
export const SUPERBLOCK_OFFSET = 1024;

/** The fields of {@link Superblock}, in order: name and width. */
export const SUPERBLOCK_FIELDS = [
  ["magic", "u32"],
  ["checksum", "u32"],
  ["featureCompat", "u32"],
  ["blkszbits", "u8"],
  ["extslots", "u8"],
  ["rootNid", "u16"],
  ["inos", "u64"],
  /** Seconds: V0/V1 put the oldest mtime here; compact inodes take their mtime from it. */
  ["buildTime", "u64"],
  ["buildTimeNsec", "u32"],
  ["blocks", "u32"],
  ["metaBlkaddr", "u32"],
  /** Block of the shared xattr table (V0/V1); 0 in V2, whose ids count from the start. */
  ["xattrBlkaddr", "u32"],
  ["uuid", { bytes: 16 }],
  ["volumeName", { bytes: 16 }],
  ["featureIncompat", "u32"],
  ["availableComprAlgs", "u16"],
  ["extraDevices", "u16"],
  ["devtSlotoff", "u16"],
  ["dirblkbits", "u8"],
  ["xattrPrefixCount", "u8"],
  ["xattrPrefixStart", "u32"],
  ["packedNid", "u64"],
  ["xattrFilterReserved", "u8"],
  ["reserved", { bytes: 23 }],
] as const;
/** The EROFS superblock (`struct erofs_super_block`). */
export const Superblock: Struct<typeof SUPERBLOCK_FIELDS> = defineStruct(
  "superblock",
  128,
  SUPERBLOCK_FIELDS,
);

/** `magic` of the superblock. */
export const EROFS_MAGIC = 0xe0f5e1e2;
/** feature_compat: superblock checksum (composefs never sets it). */
export const FEATURE_COMPAT_SB_CHKSUM = 1;
/** feature_compat: inodes carry mtimes. */
export const FEATURE_COMPAT_MTIME = 2;
/** feature_compat: xattr name bloom filter in each inode. */
export const FEATURE_COMPAT_XATTR_FILTER = 4;

// --- inodes ---------------------------------------------------------------------------------

/** Inode slots are 32 bytes: an inode's number (nid) is its byte offset / 32. */
export const INODE_SLOT = 32;

/** The fields of {@link CompactInode}, in order: name and width. */
export const COMPACT_INODE_FIELDS = [
  ["format", "u16"],
  ["xattrIcount", "u16"],
  ["mode", "u16"],
  ["nlink", "u16"],
  ["size", "u32"],
  ["reserved", "u32"],
  /** First data block, device number or chunk format, by data layout. */
  ["u", "u32"],
  ["ino", "u32"],
  ["uid", "u16"],
  ["gid", "u16"],
  ["reserved2", { bytes: 4 }],
] as const;
/** The 32-byte compact inode: no mtime (the superblock's build time), 16-bit ids and links. */
export const CompactInode: Struct<typeof COMPACT_INODE_FIELDS> = defineStruct(
  "compact inode",
  32,
  COMPACT_INODE_FIELDS,
);

/** The fields of {@link ExtendedInode}, in order: name and width. */
export const EXTENDED_INODE_FIELDS = [
  ["format", "u16"],
  ["xattrIcount", "u16"],
  ["mode", "u16"],
  ["reserved", "u16"],
  ["size", "u64"],
  ["u", "u32"],
  ["ino", "u32"],
  ["uid", "u32"],
  ["gid", "u32"],
  ["mtime", "u64"],
  ["mtimeNsec", "u32"],
  ["nlink", "u32"],
  ["reserved2", { bytes: 16 }],
] as const;
/** The 64-byte extended inode. */
export const ExtendedInode: Struct<typeof EXTENDED_INODE_FIELDS> = defineStruct(
  "extended inode",
  64,
  EXTENDED_INODE_FIELDS,
);

/** i_format bit 0: compact (0) or extended (1) inode. */
export const INODE_LAYOUT_EXTENDED = 1;
/** i_format bits 1-3: how the data is laid out. */
export const DATALAYOUT_MASK = 0b1110;
/** Data in whole blocks from block `u`. */
export const DATALAYOUT_FLAT_PLAIN = 0;
/** Whole blocks from block `u`, the tail packed right after the inode and its xattrs. */
export const DATALAYOUT_FLAT_INLINE = 4;
/** Chunk indexes after the inode; composefs uses it for files whose data is elsewhere. */
export const DATALAYOUT_CHUNK_BASED = 8;

/** `u` of a chunk-based V2 inode: one chunk of 2^(12+31) bytes. */
export const CHUNK_FORMAT_V2 = 31;
/** The chunk-format bits of `u` that hold log2(chunk size) - 12. */
export const CHUNK_FORMAT_BLKBITS_MASK = 0x1f;

/** The fields of {@link ChunkAddress}, in order: name and width. */
export const CHUNK_ADDRESS_FIELDS = [["blkaddr", "u32"]] as const;
/** A chunk's block address (4 bytes each after a chunk-based inode). */
export const ChunkAddress: Struct<typeof CHUNK_ADDRESS_FIELDS> = defineStruct(
  "chunk address",
  4,
  CHUNK_ADDRESS_FIELDS,
);
/** A chunk address that points nowhere: the data lives in overlayfs's lower layer. */
export const NULL_CHUNK_ADDRESS = 0xffffffff;
/** V0/V1 move chunk addresses to a data block of this many entries when they do not fit. */
export const MAX_NONINLINE_CHUNKS = 1024;

/** The file type bits of `mode`. */
export const S_IFMT = 0o170000;
/** File type: socket. */
export const S_IFSOCK = 0o140000;
/** File type: symbolic link. */
export const S_IFLNK = 0o120000;
/** File type: regular file. */
export const S_IFREG = 0o100000;
/** File type: block device. */
export const S_IFBLK = 0o060000;
/** File type: directory. */
export const S_IFDIR = 0o040000;
/** File type: character device. */
export const S_IFCHR = 0o020000;
/** File type: fifo. */
export const S_IFIFO = 0o010000;

// --- xattrs ---------------------------------------------------------------------------------

/** The fields of {@link InodeXattrHeader}, in order: name and width. */
export const INODE_XATTR_HEADER_FIELDS = [
  /** Bloom filter of the names, inverted: a set bit means "no xattr hashes here". */
  ["nameFilter", "u32"],
  ["sharedCount", "u8"],
  ["reserved", { bytes: 7 }],
] as const;
/** The header of an inode's xattr area; the shared ids (u32 each) and entries follow. */
export const InodeXattrHeader: Struct<typeof INODE_XATTR_HEADER_FIELDS> = defineStruct(
  "inode xattr header",
  12,
  INODE_XATTR_HEADER_FIELDS,
);

/** The fields of {@link XattrEntry}, in order: name and width. */
export const XATTR_ENTRY_FIELDS = [
  ["nameLen", "u8"],
  ["nameIndex", "u8"],
  ["valueSize", "u16"],
] as const;
/** One xattr entry; the name suffix and the value follow, padded to 4 bytes. */
export const XattrEntry: Struct<typeof XATTR_ENTRY_FIELDS> = defineStruct(
  "xattr entry",
  4,
  XATTR_ENTRY_FIELDS,
);

/** Xattr entries and shared ids are counted in 4-byte words. */
export const XATTR_WORD = 4;
/** Seed of the xattr name filter hash (xxh32 of the suffix, seed + prefix index). */
export const XATTR_FILTER_SEED = 0x25bbe08f;

/** Name prefixes by index, as EROFS numbers them (index 0 = no prefix). */
export const XATTR_PREFIXES: readonly string[] = [
  "",
  "user.",
  "system.posix_acl_access",
  "system.posix_acl_default",
  "trusted.",
  "lustre.",
  "security.",
];
/** Prefix index of `system.posix_acl_access`: its presence sets the header's ACL flag. */
export const XATTR_INDEX_POSIX_ACL_ACCESS = 2;
/** Prefix index of `system.posix_acl_default`. */
export const XATTR_INDEX_POSIX_ACL_DEFAULT = 3;
/** Prefix index of `lustre.`, which libcomposefs (and so V0/V1) does not use. */
export const XATTR_INDEX_LUSTRE = 5;

/** overlayfs's own xattrs: the tree's are escaped (see {@link OVERLAY_ESCAPED_PREFIX}). */
export const OVERLAY_PREFIX = "trusted.overlay.";
/** What the tree's `trusted.overlay.*` names become on disk (overlayfs shows them unescaped). */
export const OVERLAY_ESCAPED_PREFIX = "trusted.overlay.overlay.";
/** On an external file: its fs-verity digest ({@link OverlayMetacopy}). */
export const OVERLAY_METACOPY = "trusted.overlay.metacopy";
/** On an external file: `/XX/REST`, its object's path below the object directory. */
export const OVERLAY_REDIRECT = "trusted.overlay.redirect";
/** V0/V1: the root directory is marked opaque (value "y"), unescaped. */
export const OVERLAY_OPAQUE = "trusted.overlay.opaque";
/** V0/V1 whiteout escaping: on each escaped whiteout (value ""), already escaped. */
export const OVERLAY_ESCAPED_WHITEOUT = "trusted.overlay.overlay.whiteout";
/** V0/V1 whiteout escaping: on each escaped whiteout too (value ""), for userxattr mounts. */
export const USER_OVERLAY_WHITEOUT = "user.overlay.whiteout";
/** V0/V1 whiteout escaping: on the directory holding escaped whiteouts (value ""). */
export const OVERLAY_ESCAPED_WHITEOUTS = "trusted.overlay.overlay.whiteouts";
/** V0/V1 whiteout escaping: on that directory too (value ""), for userxattr mounts. */
export const USER_OVERLAY_WHITEOUTS = "user.overlay.whiteouts";
/** V1 whiteout escaping: that directory is also opaque (value "x"). */
export const OVERLAY_ESCAPED_OPAQUE = "trusted.overlay.overlay.opaque";
/** V1 whiteout escaping: opaque for userxattr mounts too (value "x"). */
export const USER_OVERLAY_OPAQUE = "user.overlay.opaque";
/** The root's SELinux label is the one xattr the whiteout stubs inherit. */
export const SECURITY_SELINUX = "security.selinux";

/** The fields of {@link OverlayMetacopy}, in order: name and width. */
export const OVERLAY_METACOPY_FIELDS = [
  ["version", "u8"],
  ["len", "u8"],
  ["flags", "u8"],
  /** fs-verity algorithm: 1 SHA-256, 2 SHA-512. */
  ["digestAlgo", "u8"],
] as const;
/**
 * The `trusted.overlay.metacopy` value (`struct ovl_metacopy`): these four bytes, then the
 * fs-verity digest; `len` is the whole value's length.
 */
export const OverlayMetacopy: Struct<typeof OVERLAY_METACOPY_FIELDS> = defineStruct(
  "overlay metacopy",
  4,
  OVERLAY_METACOPY_FIELDS,
);

// --- directories ----------------------------------------------------------------------------

/** The fields of {@link Dirent}, in order: name and width. */
export const DIRENT_FIELDS = [
  ["nid", "u64"],
  ["nameoff", "u16"],
  ["fileType", "u8"],
  ["reserved", "u8"],
] as const;
/** A directory entry header; names follow all headers of a block, unterminated. */
export const Dirent: Struct<typeof DIRENT_FIELDS> = defineStruct(
  "directory entry",
  12,
  DIRENT_FIELDS,
);

/** Directory entry file types. */
export const FileType = {
  unknown: 0,
  regular: 1,
  directory: 2,
  chardev: 3,
  blockdev: 4,
  fifo: 5,
  socket: 6,
  symlink: 7,
} as const;

/** S_IFMT bits of each directory entry file type. */
export const S_IF_OF_FILE_TYPE: Readonly<Record<number, number>> = {
  [FileType.regular]: S_IFREG,
  [FileType.directory]: S_IFDIR,
  [FileType.chardev]: S_IFCHR,
  [FileType.blockdev]: S_IFBLK,
  [FileType.fifo]: S_IFIFO,
  [FileType.socket]: S_IFSOCK,
  [FileType.symlink]: S_IFLNK,
};

/** Directories keep at most this many bytes of entries inline after the inode. */
export const MAX_INLINE_DIR = 2048;

/** V0/V1: the root holds a whiteout stub (chardev 0:0) for each of these names it lacks. */
export const WHITEOUT_STUB_NAMES: readonly string[] = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

/** Rounds `n` up to a multiple of `align` (a positive integer). */
export function roundUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}
