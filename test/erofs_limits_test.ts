/**
 * Trees the EROFS writer must refuse (lib/erofs/limits.ts), one limit at a time: just inside
 * each limit the image is written (and reads back), just past it the writer throws an
 * {@link ErofsLimitError} naming the path and the limit, for every format version. Where
 * cfsctl 0.9.4 has the same limit (a hardlinked whiteout) it must refuse the same tree; a tree
 * at every limit at once is written byte for byte as cfsctl 0.9.4 writes it.
 *
 * @module
 */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { mkfsErofs } from "../lib/erofs/writer.ts";
import { readErofs } from "../lib/erofs/reader.ts";
import {
  ErofsLimitError,
  INLINE_FILE_MAX,
  NAME_MAX,
  SHARED_XATTRS_PER_INODE_MAX,
  SYMLINK_TARGET_MAX,
  XATTR_NAME_MAX,
  XATTR_VALUE_MAX,
} from "../lib/erofs/limits.ts";
import { EROFS_VERSIONS } from "../lib/erofs/format.ts";
import { parseDumpfile } from "../lib/dumpfile.ts";
import type { Directory, FileSystem, Inode, Leaf, LeafContent, Stat, Xattr } from "../lib/tree.ts";
import { oracleMkcomposefs, treeListing } from "./erofs_oracle.ts";
import { runCfsctl09 } from "./oracles.ts";

const enc = new TextEncoder();

function st(extra: Partial<Stat> = {}): Stat {
  return { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, xattrs: [], ...extra };
}

function leaf(content: LeafContent, stat: Partial<Stat> = {}): Leaf {
  return { kind: "leaf", stat: st(stat), content };
}

/** A tree with `entries` in a subdirectory `/d` (so paths in errors have two levels). */
function treeWith(entries: Record<string, Inode>): FileSystem {
  const d: Directory = { kind: "dir", stat: st({ mode: 0o755 }), entries: new Map() };
  for (const [name, inode] of Object.entries(entries)) d.entries.set(name, inode);
  const root: Directory = { kind: "dir", stat: st({ mode: 0o755 }), entries: new Map() };
  root.entries.set("d", d);
  return { root, haveRootStat: true };
}

function xattr(name: string, value: Uint8Array | string = ""): Xattr {
  return { name: enc.encode(name), value: typeof value === "string" ? enc.encode(value) : value };
}

/** Asserts every version writes `ok` (and reads it back) and refuses `bad` as `limit` at `path`. */
function checkLimit(
  what: string,
  good: () => FileSystem,
  bad: () => FileSystem,
  limit: string,
  path: string,
): void {
  for (const version of EROFS_VERSIONS) {
    const img = mkfsErofs(good(), { version });
    readErofs(img);
    const error = (() => {
      try {
        mkfsErofs(bad(), { version });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    ok(
      error instanceof ErofsLimitError,
      `${what} V${version}: expected ErofsLimitError, got ${error}`,
    );
    strictEqual(error.limit, limit, `${what} V${version}`);
    strictEqual(error.path, path, `${what} V${version}`);
    ok(error.message.startsWith(`cannot write EROFS image: ${path}: `), error.message);
  }
}

Deno.test("file names: 255 bytes are written, 256 refused; '/', NUL, '.', '..' and empty names refused", () => {
  const file = () => leaf({ type: "inline", data: enc.encode("x") });
  checkLimit(
    "name length",
    () => treeWith({ ["n".repeat(NAME_MAX)]: file() }),
    () => treeWith({ ["n".repeat(NAME_MAX + 1)]: file() }),
    "name-length",
    `/d/${"n".repeat(NAME_MAX + 1)}`,
  );
  for (const name of ["a/b", "a\0b", ".", "..", ""]) {
    throws(() => mkfsErofs(treeWith({ [name]: file() })), ErofsLimitError, JSON.stringify(name));
  }
});

Deno.test("symlink targets: 4095 bytes are written, 4096 and empty ones refused", () => {
  const link = (n: number) => leaf({ type: "symlink", target: enc.encode("t".repeat(n)) });
  checkLimit(
    "symlink",
    () => treeWith({ l: link(SYMLINK_TARGET_MAX) }),
    () => treeWith({ l: link(SYMLINK_TARGET_MAX + 1) }),
    "symlink-target",
    "/d/l",
  );
  throws(() => mkfsErofs(treeWith({ l: link(0) })), /empty target/);
});

Deno.test("xattrs: names up to 255 bytes and values up to 65535 are written; longer ones refused", () => {
  const withXattr = (x: Xattr) => treeWith({ f: leaf({ type: "fifo" }, { xattrs: [x] }) });
  const name = (n: number) => "user." + "x".repeat(n - 5);
  checkLimit(
    "xattr name",
    () => withXattr(xattr(name(XATTR_NAME_MAX))),
    () => withXattr(xattr(name(XATTR_NAME_MAX + 1))),
    "xattr-name",
    "/d/f",
  );
  checkLimit(
    "xattr value",
    () => withXattr(xattr("user.v", new Uint8Array(XATTR_VALUE_MAX).fill(7))),
    () => withXattr(xattr("user.v", new Uint8Array(XATTR_VALUE_MAX + 1))),
    "xattr-value",
    "/d/f",
  );
  throws(() => mkfsErofs(withXattr(xattr(""))), /empty name/);
});

Deno.test("xattrs of one inode: more than 65535 bytes of names, an area over the u16 word count, more than 255 shared are refused", () => {
  const many = (n: number, nameLen: number) =>
    Array.from(
      { length: n },
      (_, i) => xattr(`user.${String(i).padStart(5, "0")}${"n".repeat(nameLen - 10)}`),
    );
  // 257 names of 255 bytes are exactly 65535 bytes, the most; 258 are too many.
  readErofs(mkfsErofs(treeWith({ f: leaf({ type: "fifo" }, { xattrs: many(257, 255) }) })));
  throws(
    () => mkfsErofs(treeWith({ f: leaf({ type: "fifo" }, { xattrs: many(258, 255) }) })),
    (e: unknown) => e instanceof ErofsLimitError && e.limit === "xattr-names-total",
  );
  const big = (i: number) => xattr(`user.big${i}`, new Uint8Array(XATTR_VALUE_MAX).fill(i));
  throws(
    () => mkfsErofs(treeWith({ f: leaf({ type: "fifo" }, { xattrs: [0, 1, 2, 3, 4].map(big) }) })),
    (e: unknown) => e instanceof ErofsLimitError && e.limit === "xattr-area" && e.path === "/d/f",
  );
  // Shared xattrs: the same 255 (then 256) xattrs on two inodes, so all are shared.
  for (const [n, refused] of [[SHARED_XATTRS_PER_INODE_MAX, false], [256, true]] as const) {
    const xs = many(n, 12);
    const tree = () =>
      treeWith({
        a: leaf({ type: "fifo" }, { xattrs: xs }),
        b: leaf({ type: "fifo" }, { xattrs: xs }),
      });
    for (const version of EROFS_VERSIONS) {
      if (refused) {
        throws(
          () => mkfsErofs(tree(), { version }),
          (e: unknown) => e instanceof ErofsLimitError && e.limit === "xattr-count",
        );
      } else {
        const back = readErofs(mkfsErofs(tree(), { version }));
        strictEqual((back.root.entries.get("d") as Directory).entries.size, 2);
      }
    }
  }
});

Deno.test("device numbers, ids, modes, nanoseconds, inline size: the largest values are written, one more refused", () => {
  checkLimit(
    "rdev",
    () => treeWith({ c: leaf({ type: "chardev", rdev: 0xffffffffn }) }),
    () => treeWith({ c: leaf({ type: "chardev", rdev: 0x100000000n }) }),
    "rdev",
    "/d/c",
  );
  checkLimit(
    "uid",
    () => treeWith({ f: leaf({ type: "fifo" }, { uid: 0xffffffff }) }),
    () => treeWith({ f: leaf({ type: "fifo" }, { uid: 0x100000000 }) }),
    "id",
    "/d/f",
  );
  checkLimit(
    "mode",
    () => treeWith({ f: leaf({ type: "fifo" }, { mode: 0o7777 }) }),
    () => treeWith({ f: leaf({ type: "fifo" }, { mode: 0o10000 }) }),
    "mode",
    "/d/f",
  );
  checkLimit(
    "nanoseconds",
    () => treeWith({ f: leaf({ type: "fifo" }, { mtimeNsec: 999_999_999 }) }),
    () => treeWith({ f: leaf({ type: "fifo" }, { mtimeNsec: 1_000_000_000 }) }),
    "mtime",
    "/d/f",
  );
  checkLimit(
    "inline file",
    () => treeWith({ f: leaf({ type: "inline", data: new Uint8Array(INLINE_FILE_MAX).fill(1) }) }),
    () => treeWith({ f: leaf({ type: "inline", data: new Uint8Array(INLINE_FILE_MAX + 1) }) }),
    "inline-size",
    "/d/f",
  );
  // The root is named "/".
  const root = treeWith({});
  root.root.stat.uid = -1;
  throws(() => mkfsErofs(root), (e: unknown) => e instanceof ErofsLimitError && e.path === "/");
});

Deno.test("a whiteout with two links is refused, as cfsctl 0.9.4 refuses it", async () => {
  const w = leaf({ type: "chardev", rdev: 0n });
  for (const version of EROFS_VERSIONS) {
    throws(
      () => mkfsErofs(treeWith({ w, "w-link": w }), { version }),
      (e: unknown) =>
        e instanceof ErofsLimitError && e.limit === "whiteout-nlink" && e.path === "/d/w",
    );
  }
  // A hardlinked character device that is not 0:0 is fine.
  const c = leaf({ type: "chardev", rdev: 0x0103n });
  readErofs(mkfsErofs(treeWith({ c, "c-link": c })));
  // cfsctl 0.9.4, on the same tree on disk.
  const tmp = await Deno.makeTempDir({ prefix: "cfs-erofs-limits-" });
  try {
    const mknod = await new Deno.Command("mknod", { args: [`${tmp}/w`, "c", "0", "0"] }).output();
    strictEqual(mknod.code, 0);
    await Deno.link(`${tmp}/w`, `${tmp}/w-link`);
    for (const version of EROFS_VERSIONS) {
      const r = await runCfsctl09([
        "--no-repo",
        "--hash",
        "sha256",
        "--erofs-version",
        String(version),
        "compute-id",
        "--no-propagate-usr-to-root",
        tmp,
      ]);
      ok(r.code !== 0 && /whiteout inode has nlink > 1/.test(r.stderr), `V${version}: ${r.stderr}`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a tree at several limits at once (255-byte names and xattr names, 65535-byte values, u32 ids and devices, 0o7777, nanoseconds, a 512-byte inline file) is written byte for byte as cfsctl 0.9.4 writes it", async () => {
  const long = "n".repeat(255);
  const xname = "user." + "x".repeat(250);
  const value = Array.from(
    { length: 0xffff },
    (_, i) => `\\x${(i & 0xff).toString(16).padStart(2, "0")}`,
  )
    .join("");
  const dump = [
    `/ 0 40755 3 0 0 0 1700000000.999999999 - - -`,
    `/${long} 0 40755 2 4294967295 4294967295 0 1700000001.0 - - - ${xname}=${value}`,
    `/${long}/${long} 0 27777 1 0 0 4294967295 0.1 - - -`,
    `/${long}/f 3 107777 1 65535 65536 0 1700000000.999999999 - abc - user.a=1`,
    "",
  ].join("\n");
  const fs = parseDumpfile(dump);
  // A 512-byte inline file (the most composefs-rs takes; cfs's dumpfile parser stops at 64).
  const big = Uint8Array.from({ length: INLINE_FILE_MAX }, (_, i) => (i * 7) & 0xff);
  const bigLine = `/${long}/big ${big.length} 100644 1 0 0 0 1700000002.0 - ${
    [...big].map((c) => `\\x${c.toString(16).padStart(2, "0")}`).join("")
  } -`;
  (fs.root.entries.get(long) as Directory).entries.set(
    "big",
    leaf({ type: "inline", data: big }, {
      mtime: 1_700_000_002,
      mtimeNsec: 0,
    }),
  );
  const tmp = await Deno.makeTempDir({ prefix: "cfs-erofs-limits-" });
  try {
    for (const version of [0, 1] as const) {
      const ours = mkfsErofs(fs, { version });
      const theirs = await oracleMkcomposefs(`${dump}${bigLine}\n`, version, tmp);
      deepStrictEqual(ours, theirs, `V${version}`);
      deepStrictEqual(treeListing(readErofs(theirs)), treeListing(fs));
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
