/**
 * The EROFS reader (lib/erofs/reader.ts) on images from anywhere: valid images must read
 * back exactly (and re-write to the same bytes), and every damaged image must either still
 * parse (a changed byte can leave a valid image) or be refused with an {@link ErofsError} —
 * never another exception (RangeError, TypeError, ...), never a hang.
 *
 * The mass-mutation campaigns (every prefix, every single-byte flip, seeded random
 * corruption) run in a worker with a deadline, so a reader that loops forever fails the
 * test instead of hanging it. The deadlines (2 minutes) leave room for a loaded 2-core
 * machine: each campaign takes seconds when the machine is idle. Crafted damage (bad magic, block size, layouts, nids out of
 * range, directory loops, name offsets out of order, huge sizes, shared xattr ids out of
 * range, deep nesting) runs here and also checks that the message says what is wrong.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { ErofsError, ErofsReader, readErofs } from "../lib/erofs/reader.ts";
import { mkfsErofs } from "../lib/erofs/writer.ts";
import * as F from "../lib/erofs/format.ts";
import {
  type Directory,
  type FileSystem,
  type Leaf,
  newDirectory,
  newFileSystem,
  type Stat,
} from "../lib/tree.ts";
import { readTree } from "../lib/treefs.ts";
import { fsverityDigestFileSync } from "../lib/fsverity/file.ts";
import { fsverityDigest, toHex } from "../lib/fsverity/digest.ts";
import { link, setXattr, symlink, writeFileBytes } from "../lib/sys/libc.ts";
import { Repository } from "../lib/repository.ts";
import { runCfs } from "./cfs.ts";
import { oracleDumpfile, oracleImageId } from "./erofs_oracle.ts";
import { parseDumpfile } from "../lib/dumpfile.ts";

const enc = new TextEncoder();

// --- valid images ---------------------------------------------------------------------------

function st(extra: Partial<Stat> = {}): Stat {
  return { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, xattrs: [], ...extra };
}

function x(name: string, value: string | Uint8Array): { name: Uint8Array; value: Uint8Array } {
  return { name: enc.encode(name), value: typeof value === "string" ? enc.encode(value) : value };
}

/**
 * Every inode kind, built directly: inline, empty and external files, a hardlink across
 * directories, symlink, devices, fifo, socket; xattrs in several namespaces, one shared by
 * two inodes (the shared table), and one in trusted.overlay.* (escaped on disk).
 */
function smallTree(): FileSystem {
  const fs = newFileSystem();
  const shared = x("user.shared", "same-value");
  const sub = newDirectory(st({ mode: 0o750, uid: 7, gid: 8, xattrs: [shared] }));
  const hello: Leaf = {
    kind: "leaf",
    stat: st({
      xattrs: [
        x("security.selinux", "system_u:object_r:etc_t:s0"),
        x("trusted.overlay.opaque", "y"),
        shared,
      ],
    }),
    content: { type: "inline", data: enc.encode("hello, world\n") },
  };
  fs.root.entries.set("hello", hello);
  fs.root.entries.set("sub", sub);
  sub.entries.set("hardlink", hello);
  sub.entries.set("external", {
    kind: "leaf",
    stat: st({ mode: 0o755 }),
    content: { type: "external", digest: new Uint8Array(32).fill(0xab), size: 123_456 },
  });
  sub.entries.set("empty", {
    kind: "leaf",
    stat: st(),
    content: { type: "inline", data: new Uint8Array(0) },
  });
  sub.entries.set("symlink", {
    kind: "leaf",
    stat: st({ mode: 0o777 }),
    content: { type: "symlink", target: enc.encode("../hello") },
  });
  sub.entries.set("chr", {
    kind: "leaf",
    stat: st({ mode: 0o600 }),
    content: { type: "chardev", rdev: 0x0103n },
  });
  sub.entries.set("blk", {
    kind: "leaf",
    stat: st({ mode: 0o660 }),
    content: { type: "blockdev", rdev: 0x0801n },
  });
  sub.entries.set("fifo", { kind: "leaf", stat: st(), content: { type: "fifo" } });
  sub.entries.set("sock", { kind: "leaf", stat: st({ mode: 0o755 }), content: { type: "socket" } });
  const deeper = newDirectory(st({ mode: 0o700 }));
  deeper.entries.set("f", {
    kind: "leaf",
    stat: st({ xattrs: [x("user.bin", Uint8Array.of(0, 0xff, 0x3d))] }),
    content: { type: "inline", data: new Uint8Array(64).fill(0x5a) },
  });
  sub.entries.set("deeper", deeper);
  return fs;
}

/** A directory whose entries span several 4 KiB blocks, with an sha512 external file. */
function bigDirTree(entries = 400): FileSystem {
  const fs = newFileSystem();
  const big = newDirectory(st({ mode: 0o755 }));
  for (let i = 0; i < entries; i++) {
    const name = `entry-${String(i).padStart(4, "0")}-${"n".repeat(i % 40)}`;
    big.entries.set(name, {
      kind: "leaf",
      stat: st({ mtime: 1_700_000_000 + i }),
      content: { type: "inline", data: enc.encode(`${i}`) },
    });
  }
  big.entries.set("zz-external", {
    kind: "leaf",
    stat: st(),
    content: { type: "external", digest: new Uint8Array(64).fill(0x11), size: 1 << 20 },
  });
  fs.root.entries.set("big", big);
  return fs;
}

/** A tree read from disk with readTree: xattrs, a hardlink, a symlink, an external file. */
function diskTree(dir: string): FileSystem {
  const p = (rel: string) => `${dir}/${rel}`;
  Deno.mkdirSync(p("etc/ssl"), { recursive: true });
  writeFileBytes(p("etc/hostname"), enc.encode("cfs-test\n"));
  writeFileBytes(p("etc/ssl/big.pem"), new Uint8Array(10_000).map((_, i) => (i * 31) & 0xff));
  link(p("etc/hostname"), p("etc/hostname.lnk"));
  symlink("ssl/big.pem", p("etc/cert"));
  setXattr(p("etc/hostname"), "user.origin", enc.encode("test"));
  setXattr(p("etc/ssl"), "user.dir", enc.encode("d"));
  setXattr(p("etc/ssl/big.pem"), "trusted.overlay.custom", enc.encode("escaped"));
  setXattr(p("etc/ssl/big.pem"), "user.dir", enc.encode("d"));
  return readTree(dir, {
    statRoot: true,
    external: (path) => fsverityDigestFileSync(path, "sha256"),
  });
}

/**
 * Whiteouts (character devices 0:0) where V0/V1 escape them: in a subdirectory, in the root
 * under a name of the stub table (`ab`, which then has no stub), beside a directory carrying
 * the same `user.overlay.*` xattrs the escaping adds, and a stub-like one (`cd`: mode 0644,
 * the root's owner and mtime) that V0/V1 leave unescaped. Plus an ACL (the header flag), a
 * `lustre.` xattr (no prefix in V0/V1), an mtime with nanoseconds and one before 1970.
 */
function whiteoutTree(): FileSystem {
  const fs = newFileSystem();
  fs.root.stat = st({ mode: 0o755, mtime: 1_700_000_100, mtimeNsec: 5 });
  fs.haveRootStat = true;
  const whiteout = (extra: Partial<Stat> = {}): Leaf => ({
    kind: "leaf",
    stat: st({ mode: 0o600, ...extra }),
    content: { type: "chardev", rdev: 0n },
  });
  const layer = newDirectory(st({ mode: 0o755, xattrs: [x("user.overlay.opaque", "x")] }));
  layer.entries.set("gone", whiteout({ xattrs: [x("user.note", "was here")] }));
  layer.entries.set("gone-too", whiteout({ mtime: -5 }));
  layer.entries.set("kept", {
    kind: "leaf",
    stat: st({ mtimeNsec: 999_999_999, xattrs: [x("lustre.lov", "stripe")] }),
    content: { type: "inline", data: enc.encode("still here") },
  });
  fs.root.entries.set("layer", layer);
  const plain = newDirectory(st({ xattrs: [x("user.overlay.whiteouts", "")] }));
  plain.entries.set("acl", {
    kind: "leaf",
    stat: st({ xattrs: [x("system.posix_acl_access", Uint8Array.of(2, 0, 0, 0))] }),
    content: { type: "inline", data: enc.encode("acl") },
  });
  fs.root.entries.set("plain", plain);
  fs.root.entries.set("ab", whiteout());
  fs.root.entries.set(
    "cd",
    whiteout({ mode: 0o644, mtime: 1_700_000_100, mtimeNsec: 5 }),
  );
  return fs;
}

/**
 * Builds the test images once (the disk tree in a temp dir that is removed right away): the
 * V2 images (extended inodes only) for crafted damage at known offsets, and V1/V0 images
 * (compact inodes, the stub table, escaping) for the readers of those.
 */
function validImages(): Array<{ name: string; bytes: Uint8Array }> {
  const tmp = Deno.makeTempDirSync({ prefix: "cfs-hostile-erofs-" });
  try {
    return [
      { name: "small", bytes: mkfsErofs(smallTree(), { version: 2 }) },
      { name: "disk", bytes: mkfsErofs(diskTree(tmp), { version: 2 }) },
      { name: "bigdir", bytes: mkfsErofs(bigDirTree(), { version: 2 }) },
      { name: "empty-root", bytes: mkfsErofs(newFileSystem(), { version: 2 }) },
      { name: "small-v1", bytes: mkfsErofs(smallTree(), { version: 1 }) },
      { name: "bigdir-v1", bytes: mkfsErofs(bigDirTree(), { version: 1 }) },
      { name: "empty-root-v1", bytes: mkfsErofs(newFileSystem(), { version: 1 }) },
      { name: "whiteouts-v1", bytes: mkfsErofs(whiteoutTree(), { version: 1 }) },
      { name: "whiteouts-v0", bytes: mkfsErofs(whiteoutTree(), { version: 0 }) },
      { name: "whiteouts-v2", bytes: mkfsErofs(whiteoutTree(), { version: 2 }) },
    ];
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
}

/** The version an image of {@link validImages} was written in, from its name. */
function versionOf(name: string): F.ErofsVersion {
  return name.endsWith("-v1") ? 1 : name.endsWith("-v0") ? 0 : 2;
}

const IMAGES = validImages();
const image = (name: string) => IMAGES.find((i) => i.name === name)!.bytes;

// --- helpers for crafting damage --------------------------------------------------------------

/** Where each inode of a valid image sits: path -> nid, byte offset, inline-data start. */
function locate(img: Uint8Array): Map<string, { nid: number; off: number; inlineStart: number }> {
  const r = new ErofsReader(img);
  assertEquals(
    new DataView(img.buffer, img.byteOffset).getUint32(
      F.SUPERBLOCK_OFFSET + F.Superblock.fields.metaBlkaddr.offset,
      true,
    ),
    0,
    "meta_blkaddr is 0",
  );
  const out = new Map<string, { nid: number; off: number; inlineStart: number }>();
  const walk = (nid: number, path: string) => {
    const raw = r.inode(nid);
    out.set(path, { nid, off: nid * F.INODE_SLOT, inlineStart: raw.inlineStart });
    if ((raw.mode & 0o170000) !== 0o040000) return;
    for (const e of r.dirents(raw)) {
      const name = String.fromCharCode(...e.name);
      walk(e.nid, path === "/" ? `/${name}` : `${path}/${name}`);
    }
  };
  walk(r.rootNid, "/");
  return out;
}

function dv(img: Uint8Array): DataView {
  return new DataView(img.buffer, img.byteOffset, img.byteLength);
}

/** A copy of `base` changed by `edit`. */
function damaged(base: Uint8Array, edit: (img: Uint8Array, v: DataView) => void): Uint8Array {
  const img = base.slice();
  edit(img, dv(img));
  return img;
}

/** The inline dirents of a directory: [entry offset, nid, nameoff, type, name] each. */
function inlineDirents(
  img: Uint8Array,
  inlineStart: number,
): Array<{ at: number; nid: number; nameoff: number; name: string }> {
  const v = dv(img);
  const first = v.getUint16(inlineStart + 8, true);
  const count = first / F.Dirent.size;
  const out = [];
  for (let i = 0; i < count; i++) {
    const at = inlineStart + i * F.Dirent.size;
    const nameoff = v.getUint16(at + 8, true);
    const next = i + 1 < count ? v.getUint16(at + F.Dirent.size + 8, true) : nameoff + 64;
    let name = img.subarray(inlineStart + nameoff, inlineStart + next);
    const nul = name.indexOf(0);
    if (nul >= 0) name = name.subarray(0, nul);
    out.push({
      at,
      nid: Number(v.getBigUint64(at, true)),
      nameoff,
      name: String.fromCharCode(...name),
    });
  }
  return out;
}

/** Asserts that reading `img` fails with an ErofsError whose message matches `message`. */
function assertRejected(img: Uint8Array, message: RegExp, what: string): void {
  let error: unknown;
  try {
    readErofs(img);
  } catch (e) {
    error = e;
  }
  assert(error !== undefined, `${what}: the damaged image was accepted`);
  assert(
    error instanceof ErofsError,
    `${what}: expected ErofsError, got ${(error as Error)?.name}: ${(error as Error)?.message}`,
  );
  assert(
    message.test((error as Error).message),
    `${what}: message ${JSON.stringify((error as Error).message)} does not match ${message}`,
  );
}

/**
 * Hand-built images, for shapes the writer cannot make: a chain of `depth` directories
 * (each an extended inode in a 128-byte slot with its entries inline).
 */
function craftDirChain(depth: number): Uint8Array {
  const slot = 128, base = 1152;
  const nidOf = (i: number) => (base + slot * i) / F.INODE_SLOT;
  const img = new Uint8Array(base + slot * depth);
  const v = dv(img);
  F.encodeStruct(
    F.ComposefsHeader,
    {
      magic: F.COMPOSEFS_MAGIC,
      version: F.COMPOSEFS_HEADER_VERSION,
      composefsVersion: 2,
    },
    v,
    0,
  );
  v.setUint32(F.SUPERBLOCK_OFFSET + F.Superblock.fields.magic.offset, F.EROFS_MAGIC, true);
  img[F.SUPERBLOCK_OFFSET + F.Superblock.fields.blkszbits.offset] = F.BLOCK_BITS;
  v.setUint16(F.SUPERBLOCK_OFFSET + F.Superblock.fields.rootNid.offset, nidOf(0), true);
  v.setBigUint64(F.SUPERBLOCK_OFFSET + F.Superblock.fields.inos.offset, BigInt(depth), true);
  for (let i = 0; i < depth; i++) {
    const entries: Array<[string, number]> = [[".", nidOf(i)], ["..", nidOf(Math.max(0, i - 1))]];
    if (i + 1 < depth) entries.push(["d", nidOf(i + 1)]);
    const off = base + slot * i;
    const data = off + F.ExtendedInode.size;
    let nameoff = entries.length * F.Dirent.size;
    entries.forEach(([name, nid], j) => {
      v.setBigUint64(data + j * F.Dirent.size, BigInt(nid), true);
      v.setUint16(data + j * F.Dirent.size + 8, nameoff, true);
      img[data + j * F.Dirent.size + 10] = F.FileType.directory;
      img.set(enc.encode(name), data + nameoff);
      nameoff += name.length;
    });
    v.setUint16(
      off + F.ExtendedInode.fields.format.offset,
      F.INODE_LAYOUT_EXTENDED | F.DATALAYOUT_FLAT_INLINE,
      true,
    );
    v.setUint16(off + F.ExtendedInode.fields.mode.offset, 0o40755, true);
    v.setBigUint64(off + F.ExtendedInode.fields.size.offset, BigInt(nameoff), true);
    v.setUint32(off + F.ExtendedInode.fields.nlink.offset, 2, true);
  }
  return img;
}

// --- valid images read back -------------------------------------------------------------------

Deno.test("valid images round-trip: mkfsErofs(readErofs(img)) is the same bytes", () => {
  for (const { name, bytes } of IMAGES) {
    const again = mkfsErofs(readErofs(bytes), { version: versionOf(name) });
    strictEqual(again.length, bytes.length, `${name}: length`);
    const diff = bytes.findIndex((b, i) => again[i] !== b);
    strictEqual(diff, -1, `${name}: first differing byte at ${diff}`);
  }
});

Deno.test("a valid image reads back the tree: hardlinks, xattrs, external files, devices", () => {
  const fs = readErofs(image("small"));
  const sub = fs.root.entries.get("sub") as Directory;
  assert(sub.kind === "dir");
  const hello = fs.root.entries.get("hello") as Leaf;
  strictEqual(sub.entries.get("hardlink"), hello, "a hardlink is one Leaf in two directories");
  assertEquals(hello.stat.xattrs.map((a) => new TextDecoder().decode(a.name)), [
    "security.selinux",
    "trusted.overlay.opaque",
    "user.shared",
  ]);
  assertEquals(sub.stat.xattrs.map((a) => new TextDecoder().decode(a.value)), ["same-value"]);
  assertEquals({ mode: sub.stat.mode, uid: sub.stat.uid, gid: sub.stat.gid }, {
    mode: 0o750,
    uid: 7,
    gid: 8,
  });
  const ext = sub.entries.get("external") as Leaf;
  assertEquals(ext.content, {
    type: "external",
    digest: new Uint8Array(32).fill(0xab),
    size: 123_456,
  });
  assertEquals((sub.entries.get("blk") as Leaf).content, { type: "blockdev", rdev: 0x0801n });
  assertEquals((sub.entries.get("symlink") as Leaf).content, {
    type: "symlink",
    target: enc.encode("../hello"),
  });
  assertEquals((sub.entries.get("sock") as Leaf).content, { type: "socket" });
  const big = readErofs(image("bigdir")).root.entries.get("big") as Directory;
  strictEqual(big.entries.size, 401);
  assert(image("bigdir").length > 4 * F.BLOCK_SIZE, "the big directory spans several blocks");
});

/** One line per inode of a tree (path, type, metadata, xattrs, content), for comparisons. */
function listing(fs: FileSystem): string[] {
  const hex = (b: Uint8Array) => [...b].map((c) => c.toString(16).padStart(2, "0")).join("");
  const statLine = (s: Stat) =>
    `${s.mode.toString(8)} ${s.uid}:${s.gid} ${s.mtime}.${s.mtimeNsec ?? 0} ` +
    s.xattrs.map((a) => `${hex(a.name)}=${hex(a.value)}`).join(",");
  const out: string[] = [];
  const walk = (dir: Directory, path: string) => {
    out.push(`${path || "/"} dir ${statLine(dir.stat)}`);
    for (const [name, inode] of [...dir.entries].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (inode.kind === "dir") walk(inode, `${path}/${name}`);
      else {
        const c = inode.content;
        const what = c.type === "inline"
          ? hex(c.data)
          : c.type === "symlink"
          ? hex(c.target)
          : c.type === "external"
          ? `${hex(c.digest)}:${c.size}`
          : c.type === "chardev" || c.type === "blockdev"
          ? String(c.rdev)
          : "";
        out.push(`${path}/${name} ${c.type} ${what} ${statLine(inode.stat)}`);
      }
    }
  };
  walk(fs.root, "");
  return out;
}

Deno.test("V0/V1 images read back the tree that was written: no stub table, whiteouts unescaped, their marks removed", () => {
  const written = whiteoutTree();
  // "cd" looks exactly like a stub (mode 0644, the root's owner and mtime): V0/V1 write it as
  // one, so it reads as one. Everything else comes back.
  written.root.entries.delete("cd");
  for (const v of [0, 1] as const) {
    const img = image(`whiteouts-v${v}`);
    const r = new ErofsReader(img);
    strictEqual(r.version, v);
    const names = r.dirents(r.inode(r.rootNid)).map((e) => String.fromCharCode(...e.name));
    for (const stub of F.WHITEOUT_STUB_NAMES) assert(names.includes(stub), `root lists ${stub}`);
    const back = readErofs(img);
    assertEquals(listing(back), listing(written), `V${v}`);
    assertEquals(
      (back.root.entries.get("ab") as Leaf).content,
      { type: "chardev", rdev: 0n },
      "a whiteout named like a stub (escaped, so not a stub) stays",
    );
    // On disk the whiteouts are regular files, and the inodes compact where they can be.
    const where = locate(img);
    const gone = r.inode(where.get("/layer/gone")!.nid);
    strictEqual(gone.mode & F.S_IFMT, F.S_IFREG, "escaped whiteout is a regular file on disk");
    strictEqual(r.inode(where.get("/plain")!.nid).extended, false, "compact inode");
    const kept = r.inode(where.get("/layer/kept")!.nid);
    assertEquals([kept.extended, kept.mtimeNsec], [true, 999_999_999], "extended for nsec");
    strictEqual(dv(img).getUint32(8, true), F.COMPOSEFS_FLAGS_HAS_ACL, "header ACL flag");
  }
  // V2 escapes nothing and has no stub table: every whiteout is there as written.
  const v2 = readErofs(image("whiteouts-v2"));
  strictEqual(new ErofsReader(image("whiteouts-v2")).version, 2);
  const all = whiteoutTree();
  for (const s of [all.root.stat, ...listLeafStats(all)]) s.mtimeNsec = 0; // V2 keeps seconds
  for (const s of [v2.root.stat, ...listLeafStats(v2)]) s.mtimeNsec = 0;
  assertEquals(listing(v2), listing(all));
});

/** Every leaf's and subdirectory's stat (for normalising mtimes). */
function listLeafStats(fs: FileSystem): Stat[] {
  const out: Stat[] = [];
  const walk = (dir: Directory) => {
    for (const inode of dir.entries.values()) {
      out.push(inode.stat);
      if (inode.kind === "dir") walk(inode);
    }
  };
  walk(fs.root);
  return out;
}

Deno.test("V0/V1: an escaped whiteout with a second link, and a stub turned into a real device, are read as written", () => {
  const img = image("whiteouts-v1");
  const where = locate(img);
  const gone = where.get("/layer/gone")!;
  const linked = damaged(
    img,
    (_, v) => v.setUint16(gone.off + F.CompactInode.fields.nlink.offset, 2, true),
  );
  assertRejected(linked, /whiteout inode .* 2 links/, "escaped whiteout with nlink 2");
  // A stub with a device number is not a stub: it is content.
  const stub = where.get("/5a")!;
  const device = damaged(
    img,
    (_, v) => v.setUint32(stub.off + F.CompactInode.fields.u.offset, 0x0103, true),
  );
  assertEquals(
    (readErofs(device).root.entries.get("5a") as Leaf).content,
    { type: "chardev", rdev: 0x0103n },
  );
});

Deno.test("bad composefs headers are refused: magic, header version, unknown composefs_version", () => {
  const img = image("small-v1");
  const h = F.ComposefsHeader.fields;
  assertRejected(
    damaged(img, (_, v) => v.setUint32(h.magic.offset, 0, true)),
    /composefs header magic/,
    "no composefs header",
  );
  assertRejected(
    damaged(img, (_, v) => v.setUint32(h.version.offset, 2, true)),
    /header version/,
    "header version 2",
  );
  for (const cv of [3, 0xffffffff]) {
    assertRejected(
      damaged(img, (_, v) => v.setUint32(h.composefsVersion.offset, cv, true)),
      /composefs_version/,
      `composefs_version ${cv}`,
    );
  }
});

Deno.test("compact inodes: impossible sizes, data blocks and shared xattr blocks outside the image are refused", () => {
  const img = image("small-v1");
  const where = locate(img);
  const r = new ErofsReader(img);
  const hello = where.get("/hello")!;
  strictEqual(r.inode(hello.nid).extended, false, "the test image has /hello compact");
  const ci = F.CompactInode.fields;
  assertRejected(
    damaged(img, (_, v) => v.setUint32(hello.off + ci.size.offset, 0xffffffff, true)),
    /more than the image|outside/,
    "compact size 2^32-1",
  );
  assertRejected(
    damaged(img, (_, v) => {
      v.setUint16(hello.off, F.DATALAYOUT_FLAT_PLAIN, true);
      v.setUint32(hello.off + ci.u.offset, 0xffffffff, true);
    }),
    /outside/,
    "compact data block 2^32-1",
  );
  assert(r.inode(hello.nid).xattrs.length > 0);
  assertRejected(
    damaged(
      img,
      (_, v) =>
        v.setUint32(
          F.SUPERBLOCK_OFFSET + F.Superblock.fields.xattrBlkaddr.offset,
          0x00ffffff,
          true,
        ),
    ),
    /shared xattr .*outside|outside/,
    "xattr_blkaddr far outside",
  );
});

Deno.test("a valid image where one file has 2000 hardlinks (more entries than 4x the inode count) reads back", () => {
  const fs = newFileSystem();
  const leaf: Leaf = {
    kind: "leaf",
    stat: st(),
    content: { type: "inline", data: enc.encode("x") },
  };
  for (let i = 0; i < 2000; i++) fs.root.entries.set(`link-${i}`, leaf);
  const img = mkfsErofs(fs);
  const back = readErofs(img);
  strictEqual(back.root.entries.size, 2000);
});

Deno.test("the image of a file with 2000 hardlinks, as cfsctl 0.9.4 makes it, reads back", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-hostile-erofs-" });
  try {
    await Deno.mkdir(`${tmp}/tree`);
    await Deno.writeTextFile(`${tmp}/tree/file`, "tiny");
    for (let i = 0; i < 2000; i++) await Deno.link(`${tmp}/tree/file`, `${tmp}/tree/link-${i}`);
    // The same tree on both sides: cfsctl's dumpfile of it.
    const fs = parseDumpfile(await oracleDumpfile(`${tmp}/tree`, "sha256"));
    for (const version of [0, 1, 2] as const) {
      // The image ID is the fs-verity digest of the image: it pins the bytes.
      const theirs = await oracleImageId(`${tmp}/tree`, "sha256", version);
      const img = mkfsErofs(fs, { version });
      strictEqual(
        toHex(fsverityDigest(img, "sha256")),
        theirs.id,
        `V${version}: our image is cfsctl's`,
      );
      const back = readErofs(img);
      strictEqual(back.root.entries.size, 2001);
      const file = back.root.entries.get("file");
      assert([...back.root.entries.values()].every((e) => e === file), "one leaf, 2001 names");
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

// --- crafted damage -----------------------------------------------------------------------------

Deno.test("bad superblocks are refused: too short, bad magic, block size, incompatible features", () => {
  const img = image("small");
  for (const n of [0, 1, 1024, 1151]) {
    assertRejected(img.subarray(0, n), /too short/, `${n}-byte image`);
  }
  assertRejected(
    damaged(img, (_, v) => v.setUint32(F.SUPERBLOCK_OFFSET, 0x12345678, true)),
    /magic/,
    "bad magic",
  );
  for (const bits of [0, 9, 11, 13, 16, 255]) {
    assertRejected(
      damaged(img, (b) => b[F.SUPERBLOCK_OFFSET + F.Superblock.fields.blkszbits.offset] = bits),
      /block size/,
      `block size 2^${bits}`,
    );
  }
  assertRejected(
    damaged(
      img,
      (_, v) =>
        v.setUint32(F.SUPERBLOCK_OFFSET + F.Superblock.fields.featureIncompat.offset, 1, true),
    ),
    /incompatible/,
    "incompat feature",
  );
  assertRejected(
    damaged(
      img,
      (_, v) => v.setUint16(F.SUPERBLOCK_OFFSET + F.Superblock.fields.rootNid.offset, 0xffff, true),
    ),
    /outside/,
    "root nid outside",
  );
  assertRejected(
    damaged(
      img,
      (_, v) =>
        v.setUint32(F.SUPERBLOCK_OFFSET + F.Superblock.fields.metaBlkaddr.offset, 0xffffffff, true),
    ),
    /outside/,
    "meta_blkaddr outside",
  );
});

Deno.test("unknown data layouts are refused", () => {
  const img = image("small");
  const where = locate(img);
  for (const layout of [1, 3, 5, 6, 7]) {
    for (const path of ["/", "/hello", "/sub/external", "/sub/chr"]) {
      const off = where.get(path)!.off;
      assertRejected(
        damaged(img, (_, v) => v.setUint16(off, F.INODE_LAYOUT_EXTENDED | (layout << 1), true)),
        /layout/,
        `${path} with layout ${layout}`,
      );
    }
  }
});

Deno.test("directory entries with nids outside the image are refused", () => {
  const img = image("small");
  const root = locate(img).get("/")!;
  for (
    const nid of [0xffffffffn, 1n << 40n, 1n << 60n, 0xffffffffffffffffn, BigInt(img.length / 32)]
  ) {
    const bad = damaged(img, (b, v) => {
      for (const e of inlineDirents(b, root.inlineStart)) {
        if (e.name === "hello") v.setBigUint64(e.at, nid, true);
      }
    });
    assertRejected(bad, /outside/, `nid ${nid}`);
  }
});

Deno.test("directory loops are refused: a subdirectory entry pointing at the root, or at itself", () => {
  const img = image("small");
  const where = locate(img);
  const root = where.get("/")!;
  const sub = where.get("/sub")!;
  for (const [target, what] of [[root.nid, "root"], [sub.nid, "itself"]] as const) {
    const bad = damaged(img, (b, v) => {
      for (const e of inlineDirents(b, sub.inlineStart)) {
        if (e.name === "fifo") {
          v.setBigUint64(e.at, BigInt(target), true);
          b[e.at + 10] = F.FileType.directory;
        }
      }
    });
    assertRejected(bad, /reachable twice|loop/, `entry pointing at ${what}`);
  }
  // The root listed again under another name in the root itself.
  const bad = damaged(img, (b, v) => {
    for (const e of inlineDirents(b, root.inlineStart)) {
      if (e.name === "hello") v.setBigUint64(e.at, BigInt(root.nid), true);
    }
  });
  assertRejected(bad, /reachable twice|loop/, "root entry pointing at the root");
});

Deno.test("bad name offsets are refused: out of order, past the block, not a multiple of 12, empty names", () => {
  const img = image("small");
  const sub = locate(img).get("/sub")!;
  const ents = inlineDirents(img, sub.inlineStart);
  const at = (i: number) => ents[i].at + 8;
  const cases: Array<[string, (v: DataView) => void, RegExp]> = [
    ["swapped offsets", (v) => {
      const a = v.getUint16(at(3), true), b = v.getUint16(at(4), true);
      v.setUint16(at(3), b, true);
      v.setUint16(at(4), a, true);
    }, /name offset/],
    ["offset before the entries", (v) => v.setUint16(at(2), 4, true), /name offset/],
    [
      "offset past the block",
      (v) => v.setUint16(at(ents.length - 1), 0xfff0, true),
      /name offset|outside/,
    ],
    [
      "first offset not a multiple of 12",
      (v) => v.setUint16(at(0), ents.length * 12 + 1, true),
      /first name offset/,
    ],
    ["first offset 0", (v) => v.setUint16(at(0), 0, true), /first name offset/],
    [
      "empty name",
      (v) => v.setUint16(at(4), v.getUint16(at(5), true), true),
      /empty name|name offset/,
    ],
  ];
  for (const [what, edit, message] of cases) {
    assertRejected(damaged(img, (_, v) => edit(v)), message, what);
  }
  const slash = damaged(img, (b) => b[sub.inlineStart + ents[4].nameoff] = 0x2f);
  assertRejected(slash, /'\/'/, "name containing a slash");
});

Deno.test("huge or impossible sizes are refused", () => {
  const img = image("small");
  const where = locate(img);
  const size = (path: string, n: bigint) =>
    damaged(
      img,
      (_, v) => v.setBigUint64(where.get(path)!.off + F.ExtendedInode.fields.size.offset, n, true),
    );
  assertRejected(
    size("/hello", 0xffffffffffffffffn),
    /impossible size|more than the image/,
    "file size 2^64-1",
  );
  assertRejected(
    size("/hello", 1n << 53n),
    /impossible size|more than the image/,
    "file size 2^53",
  );
  assertRejected(size("/hello", 1n << 40n), /more than the image|outside/, "file size 2^40");
  assertRejected(
    size("/sub/deeper/f", BigInt(img.length - 1)),
    /outside|more than the image/,
    "file size = image size - 1",
  );
  assertRejected(size("/sub", 1n << 40n), /more than the image|outside/, "directory size 2^40");
  assertRejected(
    size("/sub", 5n * 4096n),
    /outside|more than the image|truncated|name offset/,
    "directory size 5 blocks",
  );
  assertRejected(size("/sub/symlink", 5000n), /target length|outside/, "symlink size 5000");
  assertRejected(size("/sub/symlink", 0n), /target length/, "symlink size 0");
  // A plain (block) layout whose block address is far outside.
  const off = where.get("/sub/deeper/f")!.off;
  const plain = damaged(img, (_, v) => {
    v.setUint16(off, F.INODE_LAYOUT_EXTENDED | F.DATALAYOUT_FLAT_PLAIN, true);
    v.setUint32(off + F.ExtendedInode.fields.u.offset, 0xffffffff, true);
  });
  assertRejected(plain, /outside/, "data block 2^32-1");
});

Deno.test("bad xattrs are refused: shared ids out of range, shared count too large, unknown prefix, overlong entry", () => {
  const img = image("small");
  const off = locate(img).get("/hello")!.off;
  const xStart = off + F.ExtendedInode.size;
  const shared = img[xStart + 4];
  assert(shared > 0, "the test image has a shared xattr on /hello");
  for (const id of [0xffffffff, 0x80000000, img.length / 4]) {
    assertRejected(
      damaged(img, (_, v) => v.setUint32(xStart + F.InodeXattrHeader.size, id, true)),
      /shared xattr .*outside|outside/,
      `shared xattr id ${id}`,
    );
  }
  assertRejected(damaged(img, (b) => b[xStart + 4] = 255), /shared xattrs/, "shared count 255");
  const firstLocal = xStart + F.InodeXattrHeader.size + 4 * shared;
  assertRejected(damaged(img, (b) => b[firstLocal + 1] = 200), /prefix/, "unknown name prefix");
  assertRejected(
    damaged(img, (_, v) => v.setUint16(firstLocal + 2, 0xffff, true)),
    /runs past/,
    "value longer than the xattr area",
  );
  assertRejected(
    damaged(img, (b) => b[firstLocal] = 255),
    /runs past/,
    "name longer than the xattr area",
  );
  assertRejected(
    damaged(
      img,
      (_, v) => v.setUint16(off + F.ExtendedInode.fields.xattrIcount.offset, 0xffff, true),
    ),
    /outside|runs past|prefix|shared/,
    "xattr icount 65535",
  );
});

Deno.test("inodes of the wrong kind are refused: root not a directory, no file type, external without digest", () => {
  const img = image("small");
  const where = locate(img);
  const mode = (path: string, m: number) =>
    damaged(
      img,
      (_, v) => v.setUint16(where.get(path)!.off + F.ExtendedInode.fields.mode.offset, m, true),
    );
  assertRejected(mode("/", 0o100644), /root inode is not a directory/, "root is a regular file");
  assertRejected(mode("/sub/fifo", 0o000644), /invalid mode/, "no file type");
  assertRejected(mode("/sub/fifo", 0o170644), /invalid mode/, "file type 0o17");
  // The external file's metacopy xattr renamed: chunked data with no digest.
  const ext = where.get("/sub/external")!;
  const bytes = enc.encode("metacopy");
  const noDigest = damaged(img, (b) => {
    for (let i = ext.off; i < ext.inlineStart; i++) {
      if (bytes.every((c, j) => b[i + j] === c)) b[i] = 0x4d; // "Metacopy"
    }
  });
  assertRejected(noDigest, /metacopy/, "external file without its digest");
  assertRejected(mode("/sub/external", 0o120777), /chunked|target length/, "chunked symlink");
});

Deno.test("deep directory nesting (hand-built chain of 20000 directories) is read or refused with ErofsError", () => {
  for (const depth of [100, 2000, 20_000]) {
    const img = craftDirChain(depth);
    try {
      readErofs(img);
    } catch (e) {
      assert(
        e instanceof ErofsError,
        `depth ${depth}: expected ErofsError, got ${(e as Error).name}: ${(e as Error).message}`,
      );
    }
  }
});

// --- mass mutation, in a worker with a deadline -------------------------------------------------

interface CampaignResult {
  cases: number;
  parsed: number;
  rejected: number;
  others: number;
  failures: string[];
}

const WORKER_SOURCE = `
import { readErofs, ErofsError } from ${
  JSON.stringify(new URL("../lib/erofs/reader.ts", import.meta.url).href)
};
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}
const INTERESTING32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xfff, 0x1000, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];
self.onmessage = ({ data: { mode, images, count, seed } }) => {
  const res = { cases: 0, parsed: 0, rejected: 0, others: 0, failures: [] };
  const attempt = (bytes, what) => {
    res.cases++;
    try {
      readErofs(bytes);
      res.parsed++;
    } catch (e) {
      if (e instanceof ErofsError) { res.rejected++; return; }
      res.others++;
      if (res.failures.length < 15) res.failures.push(what + ": " + (e && e.name) + ": " + (e && e.message));
    }
  };
  if (mode === "prefixes") {
    for (const { name, bytes } of images) {
      const dense = bytes.length <= 16384;
      for (let n = 0; n <= bytes.length; n++) {
        const inBlock = n % 4096;
        if (dense || inBlock < 160 || inBlock > 3936 || n % 29 === 0) attempt(bytes.subarray(0, n), name + " prefix " + n);
      }
    }
  } else if (mode === "flips") {
    for (const { name, bytes, masks } of images) {
      const copy = bytes.slice();
      for (let i = 0; i < bytes.length; i++) {
        for (const m of masks ?? [0x01, 0x80, 0xff]) {
          copy[i] = bytes[i] ^ m;
          attempt(copy, name + " byte " + i + " ^ 0x" + m.toString(16));
        }
        copy[i] = bytes[i];
      }
    }
  } else if (mode === "block-heads") {
    for (const { name, bytes } of images) {
      const copy = bytes.slice();
      for (let i = 0; i < bytes.length; i++) {
        if (i % 4096 >= 240 && i % 97 !== 0) continue;
        copy[i] = bytes[i] ^ 0xff;
        attempt(copy, name + " byte " + i + " ^ 0xff");
        copy[i] = bytes[i];
      }
    }
  } else if (mode === "random") {
    const next = rng(seed);
    for (let c = 0; c < count; c++) {
      const { name, bytes } = images[c % images.length];
      const img = bytes.slice();
      const view = new DataView(img.buffer);
      const edits = 1 + (next() % 8);
      const log = [];
      for (let k = 0; k < edits; k++) {
        const kind = next() % 4;
        const at = next() % img.length;
        if (kind === 0) { img[at] = next() & 0xff; log.push(at + "=" + img[at]); }
        else if (kind === 1 && at + 4 <= img.length) { const val = INTERESTING32[next() % INTERESTING32.length]; view.setUint32(at & ~3, val, true); log.push((at & ~3) + ":u32=" + val); }
        else if (kind === 2 && at + 2 <= img.length) { const val = INTERESTING32[next() % INTERESTING32.length] & 0xffff; view.setUint16(at & ~1, val, true); log.push((at & ~1) + ":u16=" + val); }
        else { const len = 1 + (next() % 32); for (let j = at; j < Math.min(img.length, at + len); j++) img[j] = next() & 0xff; log.push(at + "+" + len + " random"); }
      }
      attempt(img, name + " case " + c + " [" + log.join(", ") + "]");
    }
  }
  self.postMessage(res);
};
`;

/** Runs a mutation campaign in a worker; fails when it takes longer than `seconds`. */
async function campaign(
  mode: string,
  images: Array<{ name: string; bytes: Uint8Array; masks?: number[] }>,
  seconds: number,
  extra: Record<string, number> = {},
): Promise<CampaignResult> {
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await new Promise<CampaignResult>((resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `${mode} campaign did not finish within ${seconds} s: the reader hangs or is far too slow`,
            ),
          ),
        seconds * 1000,
      );
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`worker failed: ${e.message}`));
      };
      worker.postMessage({ mode, images, ...extra });
    });
  } finally {
    clearTimeout(timer);
    worker.terminate();
    URL.revokeObjectURL(url);
  }
}

function assertOnlyErofsErrors(r: CampaignResult, what: string): void {
  assertEquals(
    r.failures,
    [],
    `${what}: ${r.others} of ${r.cases} cases threw something other than ErofsError`,
  );
  strictEqual(r.parsed + r.rejected, r.cases);
}

Deno.test("every prefix of the images parses or throws ErofsError", async () => {
  const images = IMAGES.filter((i) => !i.name.startsWith("empty-root"));
  const r = await campaign("prefixes", images, 120);
  assertOnlyErofsErrors(r, "prefixes");
  const small = images.filter((i) => i.bytes.length <= 16384).reduce(
    (n, i) => n + i.bytes.length + 1,
    0,
  );
  assert(r.cases > small, `${r.cases} cases`);
  assert(r.rejected > 0);
});

Deno.test("every single-byte flip of the small images (V2, V1, V0) parses or throws ErofsError", async () => {
  // V2 images with three masks per byte; the V0/V1 ones (four times larger: the stub table)
  // with one.
  const images = [
    ...IMAGES.filter((i) => ["small", "disk", "empty-root"].includes(i.name)),
    ...IMAGES.filter((i) => ["small-v1", "whiteouts-v0"].includes(i.name)).map((i) => ({
      ...i,
      masks: [0xff],
    })),
  ];
  const r = await campaign("flips", images, 120);
  assertOnlyErofsErrors(r, "flips");
  strictEqual(
    r.cases,
    images.reduce((n, i) => n + ("masks" in i ? 1 : 3) * i.bytes.length, 0),
  );
  assert(r.rejected > 100, `only ${r.rejected} of ${r.cases} flips were refused`);
});

Deno.test("single-byte flips at the head of every block of the multi-block directory image parse or throw ErofsError", async () => {
  const r = await campaign(
    "block-heads",
    IMAGES.filter((i) => i.name === "bigdir" || i.name === "bigdir-v1"),
    120,
  );
  assertOnlyErofsErrors(r, "block heads");
  assert(r.cases > 3000, `${r.cases} cases`);
  assert(r.rejected > 100, `only ${r.rejected} of ${r.cases} flips were refused`);
});

Deno.test("seeded random multi-byte corruption (4000 cases) parses or throws ErofsError", async () => {
  const r = await campaign("random", IMAGES, 120, { count: 4000, seed: 20241125 });
  assertOnlyErofsErrors(r, "random");
  assert(r.rejected > 1000, `only ${r.rejected} of ${r.cases} were refused`);
});

// --- through the CLI -------------------------------------------------------------------------------

function assertOneLineError(r: { code: number; stderr: string }, what: string): void {
  strictEqual(r.code, 1, `${what}: exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split("\n");
  strictEqual(lines.length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
  assert(lines[0].startsWith("cfs: "), `${what}: ${lines[0]}`);
  assert(!/\bat .*:\d+:\d+/.test(r.stderr), `${what}: stack trace on stderr`);
}

Deno.test("cfs dump-files on a repository whose image object was corrupted on disk prints one cfs: line and exits 1", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-hostile-erofs-" });
  try {
    const repo = `${tmp}/repo`;
    await Deno.mkdir(`${tmp}/tree`);
    await Deno.writeTextFile(`${tmp}/tree/small`, "small file");
    await Deno.writeFile(`${tmp}/tree/large`, new Uint8Array(5000).fill(7));
    strictEqual((await runCfs(["init", "--insecure", repo])).code, 0);
    const created = await runCfs([
      "--repo",
      repo,
      "create-image",
      "--no-propagate-usr-to-root",
      `${tmp}/tree`,
      "victim",
    ]);
    strictEqual(created.code, 0, created.stderr);
    const id = created.text.trim().split(":").pop()!;
    const ok = await runCfs(["--repo", repo, "dump-files", "victim"]);
    strictEqual(ok.code, 0, ok.stderr);
    // Flip a byte in the image object, in the inode area.
    const objectPath = await Deno.realPath(`${repo}/images/${id}`);
    const bytes = await Deno.readFile(objectPath);
    bytes[1200] ^= 0xff;
    await Deno.chmod(objectPath, 0o644);
    await Deno.writeFile(objectPath, bytes);
    for (const name of ["victim", id]) {
      const r = await runCfs(["--repo", repo, "dump-files", name]);
      assertOneLineError(r, `dump-files ${name}`);
      assert(/corrupt|does not match/.test(r.stderr), r.stderr);
    }
    assertOneLineError(await runCfs(["--repo", repo, "image-objects", "victim"]), "image-objects");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("cfs dump-files on a committed image that is not valid EROFS prints one cfs: line and exits 1", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-hostile-erofs-" });
  try {
    const repo = `${tmp}/repo`;
    strictEqual(
      (await runCfs(["init", "--insecure", "--algorithm", "fsverity-sha256-12", repo])).code,
      0,
    );
    // Committed under its own digest, so only the EROFS reader can notice.
    const r = Repository.open(repo);
    try {
      r.writeImage(
        damaged(
          image("small"),
          (_, v) =>
            v.setUint16(F.SUPERBLOCK_OFFSET + F.Superblock.fields.rootNid.offset, 0xffff, true),
        ),
        "bad-root",
      );
      r.writeImage(image("small").subarray(0, 1100), "truncated");
    } finally {
      r.close();
    }
    for (const name of ["bad-root", "truncated"]) {
      const out = await runCfs(["--repo", repo, "dump-files", name]);
      assertOneLineError(out, `dump-files ${name}`);
      assert(out.stderr.includes("corrupt EROFS image"), out.stderr);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
