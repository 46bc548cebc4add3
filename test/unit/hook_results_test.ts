/**
 * What cfs accepts back from a hook, pure functions: the tag list (lib/pipeline/tags.ts: the
 * containers/image reference grammar, bootc's reserved names, bootc's tag kept) and the tree
 * (lib/pipeline/tree_check.ts: shapes, a directory reached twice, byte-string names, digests of
 * stored objects, the EROFS limits). test/pull_tags_test.ts checks the reference grammar against
 * skopeo itself; test/hooks_contract_test.ts runs both checks inside `cfs pull`.
 *
 * @module
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  bootcTagOf,
  checkHookTags,
  finalTags,
  MAX_PULL_TAGS,
  referenceProblem,
} from "../../lib/pipeline/tags.ts";
import { checkHookTree, treeDigests } from "../../lib/pipeline/tree_check.ts";
import {
  bytesToName,
  type Directory,
  type FileSystem,
  type Leaf,
  newDirectory,
  utf8ToName,
} from "../../lib/tree.ts";
import { deserialize, serialize } from "node:v8";

const DIGEST = "sha256:" + "5fd17c5d3045".repeat(5) + "abcd";
const BOOTC = bootcTagOf(DIGEST);

Deno.test("referenceProblem: names and tags containers/image takes", () => {
  for (
    const tag of [
      "oem/golden",
      "oem/golden:v1",
      "x:UPPER.case-1",
      "x:_ok",
      "localhost:5000/a/b:v1",
      "Foo.com/x",
      "a__b",
      "a--b",
      "a.b",
      BOOTC,
      "5fd17c5d304530fd2b46b78b56e16e1eea350648a9eb4bbd0ad12a0969732163:v1",
      "a/" + "b".repeat(243), // docker.io/a/... is 255 characters
      "b".repeat(237), // docker.io/library/... is 255 characters
    ]
  ) equal(referenceProblem(tag), undefined, tag);
});

Deno.test("referenceProblem: what it refuses, with the reason", () => {
  const cases: Array<[string, RegExp]> = [
    ["", /empty/],
    ["OEM/golden", /lower case/],
    ["oem/Golden", /lower case/],
    [`a@${DIGEST}`, /digest/],
    ["x:.bad", /not a tag/],
    ["x:" + "v".repeat(129), /not a tag/],
    ["a___b", /not a name component/],
    ["a-", /not a name component/],
    ["a//b", /not a name component/],
    ["a:", /not a tag/],
    ["localhost:50a0/a", /bad port/],
    ["-example.com/a", /not a host name/],
    ["[::1]:5000/a", /not a host name|port/],
    ["a b", /not a name component/],
    ["5fd17c5d304530fd2b46b78b56e16e1eea350648a9eb4bbd0ad12a0969732163", /image ID/],
    ["a/" + "b".repeat(244), /over 255/],
    ["b".repeat(238), /over 255/],
  ];
  for (const [tag, want] of cases) {
    const problem = referenceProblem(tag);
    ok(problem !== undefined && want.test(problem), `${tag.slice(0, 40)}: ${problem}`);
  }
});

Deno.test("checkHookTags: a list of valid tags comes back as a copy", () => {
  const given = ["oem/golden", BOOTC];
  const got = checkHookTags(given, { bootcTag: BOOTC, bootcRequired: true });
  deepEqual(got, given);
  ok(got !== given);
});

Deno.test("checkHookTags: not an array, not strings, too many, invalid, reserved, bootc's gone", () => {
  const opts = { bootcTag: BOOTC, bootcRequired: false };
  throws(() => checkHookTags("oem/golden", opts), /ctx.tags is not an array/);
  throws(() => checkHookTags(["a", 5], opts), /ctx.tags\[1\] is not a string \(5\)/);
  throws(
    () => checkHookTags(Array(MAX_PULL_TAGS + 1).fill("a"), opts),
    /has 1001 tags, the limit is 1000/,
  );
  throws(() => checkHookTags(["Bad"], opts), /ctx.tags\[0\] "Bad" is not a valid tag/);
  throws(
    () => checkHookTags([bootcTagOf("sha256:" + "0".repeat(64))], opts),
    /'localhost\/bootc-' names are bootc's GC roots/,
  );
  // Before fetch there is no manifest: every bootc name is someone else's.
  throws(
    () => checkHookTags([BOOTC], { bootcRequired: false }),
    /'localhost\/bootc-' names are bootc's GC roots/,
  );
  throws(
    () => checkHookTags(["oem/golden"], { bootcTag: BOOTC, bootcRequired: true }),
    /removed localhost\/bootc-sha256:.* from ctx.tags: it is the image's GC root/,
  );
});

Deno.test("finalTags: bootc's first, each tag once", () => {
  deepEqual(finalTags(["a", BOOTC, "b", "a"], BOOTC), [BOOTC, "a", "b"]);
  deepEqual(finalTags([], BOOTC), [BOOTC]);
});

// --- trees ------------------------------------------------------------------------------------

function file(data: string): Leaf {
  return {
    kind: "leaf",
    stat: { mode: 0o644, uid: 0, gid: 0, mtime: 1, xattrs: [] },
    content: { type: "inline", data: new TextEncoder().encode(data) },
  };
}

function external(digest: Uint8Array, size: number): Leaf {
  return {
    kind: "leaf",
    stat: { mode: 0o644, uid: 0, gid: 0, mtime: 1, xattrs: [] },
    content: { type: "external", digest, size },
  };
}

const STORED = new Uint8Array(32).fill(7);
const opts = (stored: Uint8Array[] = [STORED]) => ({
  digestLength: 32,
  hasObject: (d: Uint8Array) => stored.some((s) => bytesToName(s) === bytesToName(d)),
});

/** A small tree as it comes back from a hook: through the structured clone. */
function sample(): FileSystem {
  const root = newDirectory({ mode: 0o755, uid: 0, gid: 0, mtime: 1, xattrs: [] });
  const etc = newDirectory({ mode: 0o755, uid: 0, gid: 0, mtime: 1, xattrs: [] });
  root.entries.set("etc", etc);
  const shared = file("hello");
  etc.entries.set("a", shared);
  etc.entries.set("b", shared); // a hardlink
  etc.entries.set("big", external(STORED, 100));
  etc.entries.set("dev", {
    kind: "leaf",
    stat: { mode: 0o600, uid: 0, gid: 0, mtime: 1, xattrs: [] },
    content: { type: "chardev", rdev: 0x0103n },
  });
  return deserialize(serialize({ root, haveRootStat: true })) as FileSystem;
}

Deno.test("checkHookTree: a cloned tree passes, hardlinks stay one leaf, xattrs get sorted", () => {
  const fs = sample();
  const etc = fs.root.entries.get("etc") as Directory;
  ok(etc.entries.get("a") === etc.entries.get("b"), "the clone keeps the hardlink");
  const a = etc.entries.get("a") as Leaf;
  const enc = new TextEncoder();
  a.stat.xattrs.push({ name: enc.encode("user.z"), value: enc.encode("1") });
  a.stat.xattrs.push({ name: enc.encode("user.a"), value: enc.encode("2") });
  equal(checkHookTree(fs, opts()), fs);
  deepEqual(a.stat.xattrs.map((x) => new TextDecoder().decode(x.name)), ["user.a", "user.z"]);
  // A digest the tree held before need not be asked about.
  const known = treeDigests(sample());
  checkHookTree(sample(), { digestLength: 32, hasObject: () => false, known });
});

Deno.test("checkHookTree: each malformed tree is refused naming the path", () => {
  const cases: Array<[string, (fs: FileSystem) => unknown, RegExp]> = [
    ["not a tree", () => 5, /ctx.tree is not a tree/],
    ["no haveRootStat", (fs) => ({ root: fs.root }), /haveRootStat is not a boolean/],
    [
      "entries not a Map",
      (fs) => {
        (fs.root.entries.get("etc") as Directory).entries = {} as never;
        return fs;
      },
      /ctx.tree: \/etc: entries is not a Map/,
    ],
    [
      "a directory twice",
      (fs) => {
        fs.root.entries.set("again", fs.root.entries.get("etc")!);
        return fs;
      },
      /ctx.tree: \/(again|etc): a directory that is also elsewhere/,
    ],
    [
      "a cycle",
      (fs) => {
        (fs.root.entries.get("etc") as Directory).entries.set("loop", fs.root);
        return fs;
      },
      /ctx.tree: \/etc\/loop: a directory that is also elsewhere/,
    ],
    [
      "a name that is not a byte string",
      (fs) => {
        fs.root.entries.set("caf\u00e9\u2603", file("x"));
        return fs;
      },
      /not a byte string/,
    ],
    [
      "a slash in a name",
      (fs) => {
        fs.root.entries.set("a/b", file("x"));
        return fs;
      },
      /ctx.tree: .*'\/' or NUL/,
    ],
    [
      "an unknown kind",
      (fs) => {
        fs.root.entries.set("x", { kind: "file" } as never);
        return fs;
      },
      /ctx.tree: \/x: neither a directory nor a leaf/,
    ],
    [
      "an unknown content type",
      (fs) => {
        (fs.root.entries.get("etc") as Directory).entries.set("x", {
          ...file("x"),
          content: { type: "hardlink" } as never,
        });
        return fs;
      },
      /ctx.tree: \/etc\/x: unknown content type "hardlink"/,
    ],
    [
      "a string where bytes go",
      (fs) => {
        fs.root.entries.set("x", { ...file(""), content: { type: "inline", data: "hi" } as never });
        return fs;
      },
      /ctx.tree: \/x: content.data is not a Uint8Array/,
    ],
    [
      "a digest of the wrong length",
      (fs) => {
        fs.root.entries.set("x", external(new Uint8Array(64), 1));
        return fs;
      },
      /ctx.tree: \/x: content.digest has 64 bytes, not 32/,
    ],
    [
      "a digest of no stored object",
      (fs) => {
        fs.root.entries.set("x", external(new Uint8Array(32).fill(9), 1));
        return fs;
      },
      /ctx.tree: \/x: content.digest names no object of the repository/,
    ],
    [
      "a mode as text",
      (fs) => {
        (fs.root.entries.get("etc") as Directory).stat.mode = "0755" as never;
        return fs;
      },
      /ctx.tree: \/etc: stat.mode is not a number/,
    ],
    [
      "a repeated xattr",
      (fs) => {
        const enc = new TextEncoder();
        fs.root.stat.xattrs = [
          { name: enc.encode("user.a"), value: enc.encode("1") },
          { name: enc.encode("user.a"), value: enc.encode("2") },
        ];
        return fs;
      },
      /ctx.tree: \/: xattr user.a appears twice/,
    ],
    [
      "a device number as a number",
      (fs) => {
        fs.root.entries.set("d", { ...file(""), content: { type: "blockdev", rdev: 1 } as never });
        return fs;
      },
      /ctx.tree: \/d: content.rdev is not a bigint/,
    ],
    [
      "an EROFS limit (a 256-byte name)",
      (fs) => {
        fs.root.entries.set(utf8ToName("n".repeat(256)), file("x"));
        return fs;
      },
      /ctx.tree: \/n+: file name is 256 bytes, the limit is 255/,
    ],
    [
      "an EROFS limit (a uid over 32 bits)",
      (fs) => {
        fs.root.stat.uid = 2 ** 32;
        return fs;
      },
      /ctx.tree: \/: uid 4294967296 is not a u32/,
    ],
  ];
  for (const [what, make, want] of cases) {
    throws(() => checkHookTree(make(sample()), opts()), want, what);
  }
});
