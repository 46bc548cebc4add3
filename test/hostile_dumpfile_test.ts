/**
 * The dumpfile reader and writer (lib/dumpfile.ts): what composefs-ctl 0.9.4's `cfsctl
 * create-dumpfile` writes must read back and write out again to the same text (the expected
 * text comes from cfsctl, not from our writer), the parsed tree must give cfsctl's image IDs,
 * and every malformed dumpfile must be refused with a {@link DumpfileError} naming the line.
 *
 * The trees hold files of at most 64 bytes (cfsctl's dumpfile then needs no object store).
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import {
  DumpfileError,
  escapeField,
  escapeXattrField,
  parseDumpfile,
  unescapeField,
  writeDumpfile,
} from "../lib/dumpfile.ts";
import { mkfsErofs } from "../lib/erofs/writer.ts";
import { CfsError } from "../lib/errors.ts";
import { readErofs } from "../lib/erofs/reader.ts";
import { toHex } from "../lib/fsverity/digest.ts";
import { computeImageId } from "../lib/build.ts";
import { type Directory, type Leaf } from "../lib/tree.ts";
import { CAP_NET_BIND_SERVICE, nm, TreeBuilder } from "./fixtures/trees.ts";
import { runCfsctl09 } from "./oracles.ts";

/** Bytes as a string of one char per byte (how parseDumpfile takes its input). */
function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return s;
}

/** cfsctl 0.9.4's stdout for `cfsctl --no-repo ARGS`, as a byte string; throws on failure. */
async function cfsctl(args: string[]): Promise<string> {
  const r = await runCfsctl09(["--no-repo", ...args]);
  if (r.code !== 0) throw new Error(`cfsctl ${args.join(" ")} failed: ${r.stderr.trim()}`);
  return latin1(r.stdout);
}

// --- trees (files of at most 64 bytes) ---------------------------------------------------------

/** Every file kind, hardlinks across directories, xattrs in every namespace. */
function kindsTree(root: string): void {
  const b = new TreeBuilder(root, "dumpfile-kinds", { nsecChance: 0.5 });
  b.dir("usr", { mode: 0o711, uid: 3, xattrs: { "user.usr": "u", "trusted.usr": "t" } });
  b.file("empty", "");
  b.file("one", "x");
  b.file("sixty-three", 63);
  b.file("sixty-four", 64, { mode: 0o600, uid: 1000, gid: 1000 });
  b.file("etc/hostname", "host\n", {
    xattrs: { "user.origin": "test", "security.selinux": "system_u:object_r:etc_t:s0" },
  });
  b.file("etc/binary", Uint8Array.of(0, 1, 2, 0x20, 0x3d, 0x5c, 0x7f, 0x80, 0xff, 0x0a));
  b.hardlink("etc/hostname.hard", "etc/hostname");
  b.hardlink("other/deep/hostname.hard2", "etc/hostname");
  b.symlink("sym-rel", "etc/hostname");
  b.symlink("sym-abs", "/usr/lib/os-release");
  b.symlink("sym-long", "t".repeat(1000));
  b.symlink("sym-odd", nm("space here\ttab=eq\\", 0xff));
  b.fifo("fifo", { mode: 0o640 });
  b.socket("socket");
  b.chr("null", 1, 3, { mode: 0o666 });
  b.blk("sda1", 8, 1);
  b.chr("big-dev", 4095, 1048575);
  b.file("cap", "#!/bin/true\n", {
    mode: 0o755,
    xattrs: [["security.capability", CAP_NET_BIND_SERVICE]],
  });
  b.file("overlay", "o", {
    xattrs: {
      "trusted.overlay.opaque": "y",
      "trusted.overlay.redirect": "/x",
      "trusted.other": "z",
    },
  });
  b.file("xattr-values", "v", {
    xattrs: [["user.space", "a b"], ["user.eq", "k=v"], ["user.nl", "line\nbreak"], [
      "user.bin",
      Uint8Array.of(0, 0xff),
    ], ["user.empty", ""]],
  });
  b.dir("etc", { mode: 0o755, xattrs: { "user.dir": "yes" } });
  b.dir("sticky", { mode: 0o1777 });
  b.finish();
}

/** Odd names: every escaped byte, non-UTF-8, 255 bytes, names that look like fields. */
function namesTree(root: string): void {
  const b = new TreeBuilder(root, "dumpfile-names");
  b.dir("usr");
  b.file(nm("with space"), "1");
  b.file(nm("dash"), "-");
  b.symlink(nm("to-dash"), "-");
  b.file(nm("eq"), "=", { xattrs: [["user.=", "="], ["user.dash", "-"], ["user.e", ""]] });
  b.file(nm("new\nline"), "2");
  b.file(nm("tab\there"), "3");
  b.file(nm("back\\slash"), "4");
  b.file(nm("eq=uals"), "5");
  b.file(nm("bad", 0xff, 0xfe, "utf8"), "6");
  b.file(nm("ctrl", 0x01, 0x7f), "7");
  b.file(nm("\u00e9t\u00e9 \u{1f600}"), "8");
  b.file("n".repeat(255), "9");
  b.file("-", "dash-named");
  b.file("@120000", "at");
  b.dir(nm("dir with space"));
  b.file(nm("dir with space/inner", 0x80), "x");
  b.finish();
}

/** Modes, owners and mtimes at their edges, and a small seeded random tree. */
function edgesTree(root: string): void {
  const b = new TreeBuilder(root, "dumpfile-edges");
  b.dir("usr", { mtime: 1700000000, nsec: 999999999 });
  b.file("setuid", "s", { mode: 0o4755 });
  b.file("setgid", "g", { mode: 0o2755 });
  b.file("mode-zero", "z", { mode: 0 });
  b.file("all-bits", "a", { mode: 0o7777 });
  b.file("uid-max", "u", { uid: 4294967294, gid: 4294967294 });
  b.file("nobody", "n", { uid: 65534, gid: 65534 });
  b.file("epoch", "e", { mtime: 0 });
  b.file("y2038", "y", { mtime: 2 ** 31 });
  b.file("y2106", "y", { mtime: 2 ** 32 + 5 });
  b.file("before-epoch", "b", { mtime: -5 });
  b.file("y1901", "b", { mtime: -(2 ** 31) });
  const rng = b.rng;
  for (let i = 0; i < 40; i++) {
    const dir = `r${rng.int(0, 4)}/s${rng.int(0, 3)}`;
    const name = `${dir}/f${i}`;
    const kind = rng.int(0, 4);
    if (kind === 0) {
      b.file(name, rng.int(0, 65), {
        mode: rng.pick([0o644, 0o600, 0o755]),
        uid: rng.int(0, 3000),
      });
    } else if (kind === 1) b.symlink(name, `../t${rng.int(0, 1000)}`);
    else if (kind === 2) b.fifo(name);
    else {b.file(name, rng.bytes(rng.int(0, 65)), {
        xattrs: { [`user.k${rng.int(0, 3)}`]: `v${rng.int(0, 3)}` },
      });}
  }
  b.finish();
}

const TREES: Array<{ name: string; build: (root: string) => void }> = [
  { name: "kinds", build: kindsTree },
  { name: "names", build: namesTree },
  { name: "edges", build: edgesTree },
];

// --- cfsctl's dumpfiles read back -----------------------------------------------------------------

const FLAG_SETS = [[], ["--no-propagate-usr-to-root"], ["--xattrs", "keep-user-xattrs"]];

for (const tree of TREES) {
  for (const flags of FLAG_SETS) {
    Deno.test(`cfsctl create-dumpfile ${flags.join(" ")} of tree '${tree.name}' reads back, writes out the same text and gives cfsctl's image ids`, async () => {
      const tmp = await Deno.makeTempDir({ prefix: "cfs-dumpfile-" });
      try {
        const root = `${tmp}/tree`;
        tree.build(root);
        const expected = await cfsctl(["--hash", "sha256", "create-dumpfile", ...flags, root]);
        assert(expected.split("\n").length > 5, "cfsctl wrote a dumpfile");
        strictEqual(writeDumpfile(parseDumpfile(expected)), expected);
        // The parsed tree is the one cfsctl made its images from: the image IDs agree.
        for (const version of [0, 1, 2] as const) {
          const id = (await cfsctl([
            "--hash",
            "sha256",
            "--erofs-version",
            String(version),
            "compute-id",
            ...flags,
            root,
          ])).trim();
          strictEqual(
            toHex(computeImageId(parseDumpfile(expected), "sha256", version)),
            id,
            `image ID (V${version}) of the parsed tree`,
          );
        }
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    });
  }
}

Deno.test("cfsctl's dumpfile of a 1-byte file containing '-' and a symlink to '-' reads back", async () => {
  // 0.9.4 writes a field that is just "-" as \x2d ("-" alone means empty); cfsctl 0.3.0
  // wrote "-" and the size (1) told them apart, which the reader still accepts.
  const tmp = await Deno.makeTempDir({ prefix: "cfs-dumpfile-" });
  try {
    const b = new TreeBuilder(`${tmp}/tree`, "dash");
    b.file("dash", "-");
    b.symlink("to-dash", "-");
    b.finish();
    const expected = await cfsctl(["create-dumpfile", "--no-propagate-usr-to-root", `${tmp}/tree`]);
    assert(expected.includes("/dash 1 100644 1 0 0 0 "), expected);
    assert(/\/dash 1 100644 1 0 0 0 [0-9]+\.[0-9]+ - \\x2d -\n/.test(expected), expected);
    const fs = parseDumpfile(expected);
    assertEquals((fs.root.entries.get("dash") as Leaf).content, {
      type: "inline",
      data: new TextEncoder().encode("-"),
    });
    assertEquals((fs.root.entries.get("to-dash") as Leaf).content, {
      type: "symlink",
      target: new TextEncoder().encode("-"),
    });
    strictEqual(writeDumpfile(fs), expected);
    // 0.3.0's spelling of the same entries.
    const old = expected.replaceAll(" \\x2d ", " - ");
    assert(old !== expected);
    assertEquals(writeDumpfile(parseDumpfile(old)), expected);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a hardlinked file reads back as one Leaf in both directories", () => {
  const fs = parseDumpfile([
    "/ 0 40755 3 0 0 0 5.0 - - -",
    "/a 0 40755 2 0 0 0 5.0 - - -",
    "/a/f 2 100644 2 0 0 0 5.0 - hi -",
    "/b 0 @120000 - - - - 0.0 /a/f - -",
  ].join("\n"));
  strictEqual(fs.root.entries.get("b"), (fs.root.entries.get("a") as Directory).entries.get("f"));
});

Deno.test("parseDumpfile keeps xattrs sorted by name, as the tree requires, whatever order the file lists them in", () => {
  const fs = parseDumpfile("/ 0 40755 2 0 0 0 0.0 - - - user.b=2 security.x=3 user.a=1\n");
  assertEquals(fs.root.stat.xattrs.map((x) => latin1(x.name)), ["security.x", "user.a", "user.b"]);
  strictEqual(writeDumpfile(fs), "/ 0 40755 2 0 0 0 0.0 - - - security.x=3 user.a=1 user.b=2\n");
});

Deno.test("escapeField and unescapeField are inverse on every byte", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assertEquals(unescapeField(escapeField(all), "test"), all);
  assertEquals(unescapeField(escapeXattrField(all), "test"), all);
  assertEquals(
    unescapeField("a\\\\b\\n\\r\\t\\x41\\x4a\\x4A", "test"),
    new TextEncoder().encode("a\\b\n\r\tAJJ"),
  );
  strictEqual(escapeField(new Uint8Array(0)), "-");
});

Deno.test("fields are escaped as composefs-rs 0.9.4 escapes them", () => {
  const enc = new TextEncoder();
  strictEqual(escapeField(enc.encode("a\nb\tc\rd\\e f=g")), "a\\nb\\tc\\rd\\\\e\\x20f=g");
  strictEqual(escapeField(enc.encode("-")), "\\x2d");
  strictEqual(escapeField(enc.encode("--")), "--");
  strictEqual(escapeField(Uint8Array.of(0, 0x7f, 0x80, 0xff)), "\\x00\\x7f\\x80\\xff");
  strictEqual(escapeXattrField(enc.encode("k=v\n")), "k\\x3dv\\n");
  strictEqual(escapeXattrField(enc.encode("-")), "-");
  strictEqual(escapeXattrField(new Uint8Array(0)), "");
});

Deno.test("mtime nanoseconds read and write back as SECONDS.NANOSECONDS", () => {
  const text = "/ 0 40755 2 0 0 0 1700000000.5 - - -\n/f 0 100644 1 0 0 0 -3.999999999 - - -\n";
  const fs = parseDumpfile(text);
  strictEqual(fs.root.stat.mtimeNsec, 5);
  strictEqual((fs.root.entries.get("f") as Leaf).stat.mtimeNsec, 999999999);
  strictEqual(writeDumpfile(fs), text);
});

Deno.test("CRLF line ends and blank lines are accepted, as composefs-rs reads them", () => {
  const fs = parseDumpfile(
    "\n/ 0 40755 2 0 0 0 1.0 - - -\r\n\n  \n/f 1 100644 1 0 0 0 1.0 - x -\r\n",
  );
  strictEqual(writeDumpfile(fs), "/ 0 40755 2 0 0 0 1.0 - - -\n/f 1 100644 1 0 0 0 1.0 - x -\n");
});

// --- hostile input ---------------------------------------------------------------------------------

const ROOT = "/ 0 40755 3 0 0 0 1700000000.0 - - -";
const BASE = [
  ROOT,
  "/dir 0 40755 2 0 0 0 1700000000.0 - - -",
  "/dir/file 5 100644 2 0 0 0 1700000000.0 - hello - user.a=1",
  "/link 0 @120000 - - - - 0.0 /dir/file - -",
];
const HEX64 = "ab".repeat(32);

/** A dumpfile: BASE with `line` inserted as line `at` (1-based; default: appended). */
function withLine(line: string, at = BASE.length + 1): string {
  const lines = [...BASE];
  lines.splice(at - 1, 0, line);
  return lines.join("\n") + "\n";
}

/** Asserts a DumpfileError at `line` whose message matches `message`. */
function assertDumpfileError(text: string, line: number, message: RegExp, what: string): void {
  let error: unknown;
  try {
    parseDumpfile(text);
  } catch (e) {
    error = e;
  }
  assert(error !== undefined, `${what}: accepted`);
  assert(
    error instanceof DumpfileError,
    `${what}: expected DumpfileError, got ${(error as Error).name}: ${(error as Error).message}`,
  );
  strictEqual(error.line, line, `${what}: line number (message: ${error.message})`);
  assert(
    error.message.includes(`line ${line}`),
    `${what}: message ${JSON.stringify(error.message)} lacks "line ${line}"`,
  );
  assert(
    message.test(error.message),
    `${what}: message ${JSON.stringify(error.message)} does not match ${message}`,
  );
}

Deno.test("the base dumpfile of the hostile cases is valid", () => {
  const text = BASE.join("\n") + "\n";
  strictEqual(writeDumpfile(parseDumpfile(text)), text);
});

/** [what, dumpfile text, line, message] */
const HOSTILE: Array<[string, string, number, RegExp]> = [
  ["empty input", "", 1, /empty/],
  ["only a newline", "\n", 1, /empty/],
  // escapes
  ["\\x at the end of a path", withLine("/bad\\x 1 100644 1 0 0 0 0.0 - a -"), 5, /escape/],
  ["\\x with one hex digit", withLine("/bad\\x4 1 100644 1 0 0 0 0.0 - a -"), 5, /escape/],
  ["\\xZZ in content", withLine("/bad 1 100644 1 0 0 0 0.0 - \\xZZ -"), 5, /escape/],
  ["\\q in a symlink target", withLine("/bad 1 120777 1 0 0 0 0.0 \\q - -"), 5, /escape/],
  [
    "trailing backslash in an xattr value",
    withLine("/bad 1 100644 1 0 0 0 0.0 - a - user.x=abc\\"),
    5,
    /escape/,
  ],
  [
    "bad escape in an xattr name",
    withLine("/bad 1 100644 1 0 0 0 0.0 - a - user.\\xg1=abc"),
    5,
    /escape/,
  ],
  ["bad escape in the root line", "/ 0 40755 2 0 0 0 0.0 - - - user.a=\\y\n", 1, /escape/],
  [
    "non-byte character in a path",
    withLine("/\u20ac 1 100644 1 0 0 0 0.0 - a -", 3),
    3,
    /not a byte/,
  ],
  [
    "non-byte character in content",
    withLine("/bad 1 100644 1 0 0 0 0.0 - \u{1f600} -"),
    5,
    /not a byte/,
  ],
  [
    "non-byte character in an xattr",
    withLine("/bad 1 100644 1 0 0 0 0.0 - a - user.x=\u0100"),
    5,
    /not a byte/,
  ],
  // fields
  ["too few fields", withLine("/bad 1 100644 1 0 0 0 0.0 - a"), 5, /fields/],
  ["too few fields in the root", "/ 0 40755 2 0 0 0 0.0 - -\n", 1, /fields/],
  ["non-octal mode", withLine("/bad 1 100689 1 0 0 0 0.0 - a -", 2), 2, /octal/],
  ["mode that is a word", withLine("/bad 1 file 1 0 0 0 0.0 - a -"), 5, /octal/],
  ["mode without file type", withLine("/bad 1 644 1 0 0 0 0.0 - a -"), 5, /file type/],
  [
    "mode with an invalid file type",
    withLine("/bad 1 170644 1 0 0 0 0.0 - a -"),
    5,
    /file type|too large/,
  ],
  [
    "size larger than the inline content",
    withLine("/bad 6 100644 1 0 0 0 0.0 - hello -"),
    5,
    /size/,
  ],
  [
    "size smaller than the inline content",
    withLine("/bad 4 100644 1 0 0 0 0.0 - hello -"),
    5,
    /size/,
  ],
  ["size that is not a number", withLine("/bad x 100644 1 0 0 0 0.0 - a -"), 5, /size/],
  ["negative size", withLine("/bad -1 100644 1 0 0 0 0.0 - a -"), 5, /size/],
  ["mtime without '.'", withLine("/bad 1 100644 1 0 0 0 1700000000 - a -"), 5, /mtime/],
  ["mtime with two dots", withLine("/bad 1 100644 1 0 0 0 1.2.3 - a -"), 5, /mtime/],
  ["uid 2^32", withLine("/bad 1 100644 1 4294967296 0 0 0.0 - a -"), 5, /uid/],
  ["gid 2^40", withLine("/bad 1 100644 1 0 1099511627776 0 0.0 - a -"), 5, /gid/],
  ["negative uid", withLine("/bad 1 100644 1 -1 0 0 0.0 - a -"), 5, /uid/],
  ["nlink 2^32", withLine("/bad 1 100644 4294967296 0 0 0 0.0 - a -"), 5, /nlink/],
  ["rdev 2^64", withLine("/bad 0 20644 1 0 0 18446744073709551616 0.0 - - -"), 5, /rdev/],
  ["rdev that is not a number", withLine("/bad 0 20644 1 0 0 0x10 0.0 - - -"), 5, /rdev/],
  // paths
  ["relative path", withLine("dir/bad 1 100644 1 0 0 0 0.0 - a -"), 5, /absolute/],
  ["relative path '-'", withLine("- 1 100644 1 0 0 0 0.0 - a -"), 5, /absolute/],
  [".. component", withLine("/dir/../bad 1 100644 1 0 0 0 0.0 - a -"), 5, /\.\./],
  ["'..' as the last component", withLine("/dir/.. 0 40755 2 0 0 0 0.0 - - -"), 5, /\.\./],
  [". component", withLine("/./bad 1 100644 1 0 0 0 0.0 - a -"), 5, /\./],
  ["double slash", withLine("/dir//bad 1 100644 1 0 0 0 0.0 - a -"), 5, /canonical/],
  ["trailing slash", withLine("/dir/ 0 40755 2 0 0 0 0.0 - - -"), 5, /canonical|duplicate/],
  // structure
  ["duplicate entry", withLine("/dir/file 1 100644 1 0 0 0 0.0 - a -"), 5, /duplicate/],
  ["duplicate directory", withLine("/dir 0 40755 2 0 0 0 0.0 - - -"), 5, /duplicate/],
  ["child before its parent", withLine("/later/child 1 100644 1 0 0 0 0.0 - a -", 2), 2, /parent/],
  ["child of a file", withLine("/dir/file/child 1 100644 1 0 0 0 0.0 - a -"), 5, /not a directory/],
  [
    "hardlink to a missing target",
    withLine("/bad 0 @120000 - - - - 0.0 /nothing - -"),
    5,
    /hardlink target/,
  ],
  [
    "hardlink to a later entry",
    withLine("/bad 0 @120000 - - - - 0.0 /dir/file - -", 3),
    3,
    /hardlink target/,
  ],
  ["hardlink to a directory", withLine("/bad 0 @120000 - - - - 0.0 /dir - -"), 5, /directory/],
  ["hardlink to the root", withLine("/bad 0 @120000 - - - - 0.0 / - -"), 5, /directory/],
  ["hardlink without a target", withLine("/bad 0 @120000 - - - - 0.0 - - -"), 5, /hardlink/],
  ["root that is not a directory", "/ 0 100644 1 0 0 0 0.0 - - -\n", 1, /root/],
  ["root that is a symlink", "/ 1 120777 1 0 0 0 0.0 x - -\n", 1, /root/],
  ["two roots", withLine(ROOT), 5, /root/],
  ["first entry not the root", "/dir 0 40755 2 0 0 0 0.0 - - -\n" + ROOT + "\n", 1, /root/],
  // content and digests
  [
    "digest of 63 hex digits",
    withLine(`/big 100 100644 1 0 0 0 0.0 ab/${HEX64.slice(3)} - ${HEX64.slice(1)}`),
    5,
    /digest/,
  ],
  [
    "digest of 66 hex digits",
    withLine(`/big 100 100644 1 0 0 0 0.0 ab/${HEX64.slice(2)}ab - ${HEX64}ab`),
    5,
    /digest/,
  ],
  [
    "digest of 96 hex digits",
    withLine(`/big 100 100644 1 0 0 0 0.0 - - ${"cd".repeat(48)}`),
    5,
    /digest/,
  ],
  [
    "digest that is not hex",
    withLine(`/big 100 100644 1 0 0 0 0.0 - - ${"zz".repeat(32)}`),
    5,
    /digest/,
  ],
  [
    "payload that is not an object path",
    withLine("/big 100 100644 1 0 0 0 0.0 ab/cd - -"),
    5,
    /digest/,
  ],
  [
    "inline content and a digest",
    withLine(`/big 5 100644 1 0 0 0 0.0 - hello ${HEX64}`),
    5,
    /both/,
  ],
  ["symlink without a target", withLine("/sym 0 120777 1 0 0 0 0.0 - - -"), 5, /target/],
  [
    "symlink target of 1025 bytes (0.9.4's limit is 1024)",
    withLine(`/sym 1025 120777 1 0 0 0 0.0 ${"t".repeat(1025)} - -`),
    5,
    /1024/,
  ],
  ["nanoseconds of 10^9", withLine("/bad 1 100644 1 0 0 0 5.1000000000 - a -"), 5, /nanoseconds/],
  ["rdev on a regular file", withLine("/bad 1 100644 1 0 0 7 0.0 - a -"), 5, /rdev/],
  ["rdev on a directory", withLine("/d2 0 40755 2 0 0 1 0.0 - - -"), 5, /rdev/],
  ["rdev on a symlink", withLine("/s 1 120777 1 0 0 1 0.0 x - -"), 5, /rdev/],
  ["hardlinked whiteout", withLine("/wh 0 20000 2 0 0 0 0.0 - - -"), 5, /whiteout/],
  [
    "hardlink with a directory mode",
    withLine("/bad 0 @40755 - - - - 0.0 /dir/file - -"),
    5,
    /directory/,
  ],
  [
    "xattr value of 65536 bytes",
    withLine(`/bad 1 100644 1 0 0 0 0.0 - a - user.x=${"v".repeat(65536)}`),
    5,
    /65535/,
  ],
  [
    "xattr names of more than 65535 bytes",
    withLine(
      `/bad 1 100644 1 0 0 0 0.0 - a - ${
        Array.from({ length: 260 }, (_, i) => `user.${String(i).padStart(250, "0")}=1`).join(" ")
      }`,
    ),
    5,
    /65535/,
  ],
  [
    "path longer than PATH_MAX",
    withLine(`/${"d/".repeat(2048)}x 1 100644 1 0 0 0 0.0 - a -`),
    5,
    /4096/,
  ],
  ["xattr without '='", withLine("/bad 1 100644 1 0 0 0 0.0 - a - user.x"), 5, /NAME=VALUE/],
  [
    "xattr with an empty name",
    withLine("/bad 1 100644 1 0 0 0 0.0 - a - =value"),
    5,
    /NAME=VALUE|name/,
  ],
];

/** Checks every case and reports all that fail at once. */
function assertAllRefused(cases: Array<[string, string, number, RegExp]>): void {
  const failures: string[] = [];
  for (const [what, text, line, message] of cases) {
    try {
      assertDumpfileError(text, line, message, what);
    } catch (e) {
      failures.push((e as Error).message.split("\n")[0]);
    }
  }
  assertEquals(failures, []);
}

Deno.test("malformed dumpfiles are refused with a DumpfileError naming the line", () => {
  assertAllRefused(HOSTILE);
});

Deno.test("a DumpfileError carries the source name given to parseDumpfile", () => {
  try {
    parseDumpfile("garbage\n", "image.dump");
    assert(false, "accepted");
  } catch (e) {
    assert(e instanceof DumpfileError);
    strictEqual(e.message.split(":")[0], "image.dump line 1");
  }
});

/**
 * Dumpfiles the parser must refuse because what they describe cannot be written as an image,
 * or would silently become a different one: a hardlink replacing the root, NUL bytes in
 * names and targets (composefs-rs refuses them too; our image reader refuses such a name),
 * an xattr name twice on one inode, a device number EROFS cannot store (the writer keeps
 * only the low 32 bits).
 */
const UNREPRESENTABLE: Array<[string, string, number, RegExp]> = [
  ["hardlink at the root path", withLine("/ 0 @120000 - - - - 0.0 /dir/file - -"), 5, /root/],
  ["NUL byte in a file name", withLine("/bad\\x00name 1 100644 1 0 0 0 0.0 - a -"), 5, /NUL/],
  ["NUL byte in a symlink target", withLine("/sym 3 120777 1 0 0 0 0.0 a\\x00b - -"), 5, /NUL/],
  [
    "duplicate xattr name",
    withLine("/bad 1 100644 1 0 0 0 0.0 - a - user.x=1 user.x=2"),
    5,
    /xattr/,
  ],
  [
    "rdev 2^32 (EROFS stores 32 bits)",
    withLine("/dev 0 20644 1 0 0 4294967296 0.0 - - -"),
    5,
    /rdev/,
  ],
];

Deno.test("dumpfiles describing what no image can hold are refused with a DumpfileError naming the line", () => {
  assertAllRefused(UNREPRESENTABLE);
});

Deno.test("whatever parseDumpfile accepts, writeDumpfile and mkfsErofs can write and the image reads back", () => {
  const failures: string[] = [];
  for (const [what, text] of [...HOSTILE, ...UNREPRESENTABLE]) {
    let fs;
    try {
      fs = parseDumpfile(text);
    } catch (e) {
      // A refusal is an error of cfs's own (with a code); anything else is a crash.
      if (!(e instanceof CfsError)) failures.push(`${what}: parse crashed: ${e}`);
      continue;
    }
    try {
      const dump = writeDumpfile(fs);
      const back = readErofs(mkfsErofs(parseDumpfile(dump)));
      strictEqual(writeDumpfile(back), dump);
    } catch (e) {
      failures.push(
        `${what}: accepted, then ${(e as Error).name}: ${(e as Error).message.split("\n")[0]}`,
      );
    }
  }
  assertEquals(failures, []);
});
