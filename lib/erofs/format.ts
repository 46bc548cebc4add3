/**
 * The composefs EROFS on-disk format as plain declarations: constants, struct sizes and
 * field offsets. The writer and the reader both work from these; nothing here does I/O.
 *
 * All integers are little-endian. Facts from the Linux EROFS format (fs/erofs/erofs_fs.h)
 * and the composefs header that precedes the superblock.
 *
 * @module
 */

export const BLOCK_BITS = 12;
export const BLOCK_SIZE = 1 << BLOCK_BITS;

/** The composefs header at offset 0: magic, version, flags, composefs_version, 4 unused u32. */
export const COMPOSEFS_MAGIC = 0xd078629a;
export const COMPOSEFS_HEADER_VERSION = 1;
export const COMPOSEFS_VERSION = 2;
export const COMPOSEFS_HEADER_SIZE = 32;

/** The EROFS superblock lives at byte 1024. */
export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 128;
export const EROFS_MAGIC = 0xe0f5e1e2;
export const FEATURE_COMPAT_MTIME = 2;
export const FEATURE_COMPAT_XATTR_FILTER = 4;

/** Superblock field offsets (relative to the superblock). */
export const SB = {
  magic: 0,
  checksum: 4,
  featureCompat: 8,
  blkszbits: 12,
  extslots: 13,
  rootNid: 14,
  inos: 16,
  buildTime: 24,
  buildTimeNsec: 32,
  blocks: 36,
  metaBlkaddr: 40,
  xattrBlkaddr: 44,
  uuid: 48,
  volumeName: 64,
  featureIncompat: 80,
} as const;

/** Inode slots are 32 bytes: an inode's number (nid) is its byte offset / 32. */
export const INODE_SLOT = 32;
export const COMPACT_INODE_SIZE = 32;
export const EXTENDED_INODE_SIZE = 64;

/** i_format bit 0: compact (0) or extended (1) inode. */
export const INODE_LAYOUT_EXTENDED = 1;
/** i_format bits 1-3: how the data is laid out. */
export const DATALAYOUT_MASK = 0b1110;
export const DATALAYOUT_FLAT_PLAIN = 0;
export const DATALAYOUT_FLAT_INLINE = 4;
export const DATALAYOUT_CHUNK_BASED = 8;

/** The `u` field of a chunk-based inode as composefs writes it (chunk format). */
export const CHUNK_FORMAT_COMPOSEFS = 31;
/** A chunk index that points nowhere: the data lives in the overlay's lower layer. */
export const NULL_CHUNK = new Uint8Array([0xff, 0xff, 0xff, 0xff]);

/** Extended inode field offsets. */
export const EI = {
  format: 0,
  xattrIcount: 2,
  mode: 4,
  reserved: 6,
  size: 8,
  u: 16,
  ino: 20,
  uid: 24,
  gid: 28,
  mtime: 32,
  mtimeNsec: 40,
  nlink: 44,
} as const;

/** Compact inode field offsets. */
export const CI = {
  format: 0,
  xattrIcount: 2,
  mode: 4,
  nlink: 6,
  size: 8,
  u: 16,
  ino: 20,
  uid: 24,
  gid: 26,
} as const;

/** The in-inode xattr header: name_filter u32, shared_count u8, 7 reserved bytes. */
export const XATTR_INODE_HEADER_SIZE = 12;
/** Each xattr entry: name_len u8, name_index u8, value_size u16, then name suffix and value. */
export const XATTR_ENTRY_HEADER_SIZE = 4;
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

/** Directory entry header: nid u64, nameoff u16, file_type u8, reserved u8. */
export const DIRENT_SIZE = 12;

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

/** Directories keep at most this many bytes of entries inline after the inode. */
export const MAX_INLINE_DIR = 2048;

/** overlayfs xattrs composefs writes on external files, and the escaping prefix. */
export const OVERLAY_PREFIX = "trusted.overlay.";
export const OVERLAY_ESCAPED_PREFIX = "trusted.overlay.overlay.";
export const OVERLAY_METACOPY = "trusted.overlay.metacopy";
export const OVERLAY_REDIRECT = "trusted.overlay.redirect";

/** Rounds `n` up to a multiple of `align` (a power of two or any positive integer). */
export function roundUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}
