/**
 * `cfs setup-root` on the host: the kernel arguments composefs-rs 0.9.4 writes (made by its
 * `cfsctl compute-karg`, the oracle) and how setup-root chooses among them, and mounting
 * images that cfsctl 0.9.4 wrote into its own repositories, V1 (the default) and V2, with
 * `--mountpoint` (insecure: the host kernel has no fs-verity; the verity checks and the switch
 * into the new root run in the QEMU boot test, test/vm/boot_test.ts).
 *
 * The host kernel has data-only lower layers; the fallback overlay that Debian 12's 6.1 needs
 * (`lowerdir=IMAGE:OBJECTS`) is tested here too with `forceFallback`: a V1 image mounts as it
 * is (its whiteout stubs hide `objects/00..ff`), a V2 image is rewritten as V1 (for a tree
 * with whole-second mtimes, the very image cfsctl writes as V1), and a root directory named
 * like an object directory makes even a V1 image derived, with that directory opaque.
 *
 * @module
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { run, runCfs } from "./cfs.ts";
import { cfsctl09Ok } from "./oracles.ts";
import {
  type CmdlineImage,
  cmdlineValue,
  composefsCandidates,
  fallbackImage,
  parseComposefsCmdline,
  setupRoot,
  type SetupRootResult,
  splitCmdline,
} from "../lib/setup_root.ts";
import { readErofs } from "../lib/erofs/reader.ts";
import { writeDumpfile } from "../lib/dumpfile.ts";

const H64 = "ab".repeat(32);
const H128 = "cd".repeat(64);
const sorted = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

/**
 * A small bootable tree (`/usr`, `/boot`, `/sysroot`, a file stored as an object, an inline
 * one, a symlink). `objectNamed`: also a root directory `00` and a root file `ab`, names of
 * object directories.
 */
async function makeTree(dir: string, objectNamed = false) {
  const files: Record<string, Uint8Array> = {
    "usr/bin/tool": crypto.getRandomValues(new Uint8Array(60000)),
    "etc/big": crypto.getRandomValues(new Uint8Array(65536)),
    "etc/small": new TextEncoder().encode("inline\n"),
  };
  if (objectNamed) {
    files["00/big"] = crypto.getRandomValues(new Uint8Array(5000));
    files["00/sub/small"] = new TextEncoder().encode("in 00\n");
    files["ab"] = new TextEncoder().encode("a file named ab\n");
  }
  for (const d of ["usr/bin", "etc", "boot", "sysroot", ...(objectNamed ? ["00/sub"] : [])]) {
    await Deno.mkdir(join(dir, d), { recursive: true });
  }
  for (const [path, data] of Object.entries(files)) await Deno.writeFile(join(dir, path), data);
  await Deno.symlink("usr/bin", join(dir, "bin"));
  // Whole seconds: a V2 image keeps no nanoseconds, so only then is the V1 image derived from
  // it the V1 image of the tree.
  await run("find", [dir, "-exec", "touch", "-h", "-d", "@1700000000", "{}", "+"]);
  return { files, rootNames: sorted(dir) };
}

/** The karg and image id cfsctl 0.9.4 computes for `tree` with `flags` (global flags). */
async function oracleKarg(tree: string, flags: string[]) {
  const karg = (await cfsctl09Ok([...flags, "--no-repo", "compute-karg", tree])).trim();
  const id = (await cfsctl09Ok([
    ...flags.filter((f) => f !== "--insecure"),
    "--no-repo",
    "compute-id",
    "--bootable",
    tree,
  ])).trim();
  return { karg, id };
}

Deno.test("setup-root: parses every kernel argument cfsctl 0.9.4 compute-karg writes", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-karg-" });
  try {
    const tree = join(tmp, "tree");
    await makeTree(tree);
    for (const hash of ["sha512", "sha256"] as const) {
      for (const version of [1, 2] as const) {
        for (const insecure of [false, true]) {
          const flags = [
            "--hash",
            hash,
            "--erofs-version",
            String(version),
            ...(insecure ? ["--insecure"] : []),
          ];
          const { karg, id } = await oracleKarg(tree, flags);
          const want: CmdlineImage = { id, insecure, algorithm: hash, version, karg };
          const cmdline = `BOOT_IMAGE=/vmlinuz root=UUID=x ${karg} rw quiet`;
          deepEqual(parseComposefsCmdline(cmdline), want, flags.join(" "));
          deepEqual(parseComposefsCmdline(cmdline, hash), want, flags.join(" "));
          // The form follows the format: composefs.digest=v1-... for V1, composefs= for V2.
          ok(karg.startsWith(version === 1 ? "composefs.digest=" : "composefs="), karg);
        }
      }
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("setup-root: which kernel argument wins, and malformed ones", () => {
  deepEqual(splitCmdline(' a  b="x y" c\n'), ["a", 'b="x y"', "c"]);
  equal(cmdlineValue(`quiet root=/dev/vda composefs=${H64}`, "root"), "/dev/vda");
  equal(cmdlineValue("quiet", "root"), undefined);
  const ids = (c: CmdlineImage[]) => c.map((x) => `${x.version}:${x.algorithm}:${x.id}`);

  // composefs.digest= wins over composefs=, wherever each is.
  const both = `composefs=${H128} composefs.digest=v1-sha512-12:${"ef".repeat(64)}`;
  equal(parseComposefsCmdline(both).id, "ef".repeat(64));
  // Several: those of the repository's algorithm, in order; composefs= only without any.
  const several = `composefs.digest=v1-sha256-12:${H64} composefs.digest=v2-sha512-12:${H128} ` +
    `composefs.digest=?v1-sha512-12:${"ef".repeat(64)} composefs=${"12".repeat(64)}`;
  deepEqual(ids(composefsCandidates(several, "sha512")), [
    `2:sha512:${H128}`,
    `1:sha512:${"ef".repeat(64)}`,
  ]);
  deepEqual(ids(composefsCandidates(several, "sha256")), [`1:sha256:${H64}`]);
  equal(composefsCandidates(several).length, 3);
  deepEqual(
    ids(composefsCandidates(`composefs.digest=v1-sha256-12:${H64} composefs=?${H128}`, "sha512")),
    [`2:sha512:${H128}`],
  );
  throws(
    () => composefsCandidates(`composefs.digest=v1-sha256-12:${H64}`, "sha512"),
    /no sha512 image on the kernel command line .*only composefs.digest=v1-sha256-12:/,
  );
  // The insecure marker right after '='; hex of either case, read as lower case.
  deepEqual(parseComposefsCmdline(`composefs.digest=?v1-sha256-12:${H64.toUpperCase()}`), {
    id: H64,
    insecure: true,
    algorithm: "sha256",
    version: 1,
    karg: `composefs.digest=?v1-sha256-12:${H64.toUpperCase()}`,
  });
  equal(parseComposefsCmdline(`composefs=?${H128}`).insecure, true);
  // Only the first composefs= counts, and it is not read when a composefs.digest= applies.
  equal(parseComposefsCmdline(`composefs=${H64} composefs=${H128}`).id, H64);
  equal(parseComposefsCmdline(`composefs=junk composefs.digest=v2-sha256-12:${H64}`).id, H64);

  const bad: [string, RegExp][] = [
    ["root=/dev/vda", /: no composefs.digest= or composefs= on the kernel command line$/],
    [`composefs.digest=v3-sha256-12:${H64}`, /unsupported format version 'v3' \(v1 or v2\)/],
    [`composefs.digest=v1-sha1-12:${H64}`, /unsupported hash 'sha1'/],
    [`composefs.digest=v1-sha256-8:${H64}`, /unsupported block size '8'/],
    [`composefs.digest=v1-sha512-99:${H128}`, /unsupported block size '99'/],
    [`composefs.digest=${H64}`, /expected \[\?\]v1\|v2-sha256\|sha512-12:<hex digest>/],
    [`composefs.digest=v1:${H64}`, /expected/],
    [`composefs.digest=v1-sha256-12:notahex`, /'notahex' is not a hex digest/],
    [`composefs.digest=v1-sha512-12:${H64}`, /has 64 hex digits, a sha512 digest has 128/],
    [`composefs.digest=?v1-sha256-12:?${H64}`, /is not a hex digest/],
    [`composefs=${H64}0`, /: composefs=.*: not an image id \(64 or 128 hex digits/],
    [`composefs=sha512:${H128}`, /not an image id/],
    [`composefs=??${H64}`, /not an image id/],
  ];
  for (const [cmdline, re] of bad) throws(() => parseComposefsCmdline(cmdline), re, cmdline);
  // A malformed composefs.digest= fails even next to a good one (the whole line is checked).
  throws(
    () => parseComposefsCmdline(`composefs.digest=v1-sha512-12:${H128} composefs.digest=v9-x`),
    /composefs.digest=v9-x: expected/,
  );
  // composefs= read with the repository's algorithm.
  throws(
    () => parseComposefsCmdline(`composefs=${H64}`, "sha512"),
    /: composefs=ab.*: the digest has 64 hex digits, a sha512 digest has 128$/,
  );
});

/** A repository written by cfsctl 0.9.4 with the bootable image of a tree. */
async function oracleRepo(tmp: string, name: string, version: 1 | 2, objectNamed = false) {
  const tree = join(tmp, `${name}-tree`);
  const { files, rootNames } = await makeTree(tree, objectNamed);
  const sysroot = join(tmp, `${name}-sysroot`);
  const repo = join(sysroot, "composefs");
  await cfsctl09Ok(["--repo", repo, "init", "--insecure", "--erofs-version", String(version)]);
  const id = (await cfsctl09Ok(["--repo", repo, "create-image", "--bootable", tree])).trim()
    .replace(/^sha512:/, "");
  const { karg } = await oracleKarg(tree, ["--insecure", "--erofs-version", String(version)]);
  ok(karg.endsWith(id), `${karg} names ${id}`);
  const objects = (await cfsctl09Ok(["--repo", repo, "image-objects", id])).trim().split("\n")
    .length;
  return { tree, files, rootNames, sysroot, repo, id, karg, objects };
}

/** Object directories whose names are also in the tree's root (whatever the digests). */
async function plantObjectDirs(repo: string) {
  for (const d of ["00", "ab"]) {
    await Deno.mkdir(join(repo, "objects", d), { recursive: true });
    await Deno.writeTextFile(join(repo, "objects", d, "planted"), "an object file\n");
  }
}

/** The tree's files read back through the mounted root, and `/` exactly the tree's root. */
async function checkRoot(
  mnt: string,
  t: { files: Record<string, Uint8Array>; rootNames: string[] },
) {
  deepEqual(sorted(mnt), t.rootNames);
  for (const [path, data] of Object.entries(t.files)) {
    deepEqual(await Deno.readFile(join(mnt, path)), data, path);
  }
  equal(Deno.readLinkSync(join(mnt, "bin")), "usr/bin");
  deepEqual(sorted(join(mnt, "boot")), []);
}

/** setupRoot with `--mountpoint` in a fresh directory; runs `check` and unmounts. */
async function mounted(
  tmp: string,
  o: Parameters<typeof setupRoot>[0],
  check: (r: SetupRootResult, mnt: string, log: string[]) => Promise<void>,
) {
  const mnt = await Deno.makeTempDir({ dir: tmp, prefix: "mnt-" });
  const log: string[] = [];
  const r = await setupRoot({ ...o, mountpoint: mnt, log: (l) => log.push(l) });
  try {
    await check(r, mnt, log);
  } finally {
    await run("umount", [mnt]);
  }
}

/** The error of a `--json` run: the last stdout line, `{"error": {code, message, exitCode}}`. */
function jsonError(stdout: string): { code: string; message: string; exitCode: number } {
  const line = stdout.trim().split("\n").pop() ?? "";
  const parsed = JSON.parse(line);
  ok(parsed.error !== undefined, `no JSON error line in ${JSON.stringify(stdout)}`);
  return parsed.error;
}

Deno.test("setup-root mounts cfsctl 0.9.4's V1 image: data-only, and as it is in the fallback", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-setup-root-v1-" });
  try {
    const t = await oracleRepo(tmp, "v1", 1);
    const mnt = join(tmp, "mnt");
    await Deno.mkdir(mnt);
    const cli = (cmdline: string) =>
      runCfs([
        "--json",
        "setup-root",
        "--sysroot",
        t.sysroot,
        "--cmdline",
        cmdline,
        "--mountpoint",
        mnt,
      ]);

    // A secure boot of an insecure repository on a kernel without fs-verity: one line.
    const refused = await cli(t.karg.replace("=?", "="));
    equal(refused.code, 1);
    // With --json the error is the JSON line on stdout, and its code is what a script matches.
    const refusedError = jsonError(refused.text);
    ok(
      /: the file system has no fs-verity \(a '\?' after/.test(refusedError.message),
      refused.text,
    );
    const absent = `composefs.digest=?v1-sha512-12:${"0".repeat(128)}`;
    const wrong = await cli(`${absent} composefs=${t.id}`);
    equal(wrong.code, 1);
    equal(
      jsonError(wrong.text).message,
      `no image ${"0".repeat(128)} in ${t.repo} (named by ${absent})`,
    );
    const malformed = await cli(`composefs.digest=?v1-sha512-13:${t.id}`);
    equal(malformed.code, 1);
    ok(jsonError(malformed.text).message.includes("unsupported block size '13'"), malformed.text);
    deepEqual(
      [refusedError.code, jsonError(wrong.text).code, jsonError(malformed.text).code],
      ["setup-root-failed", "setup-root-failed", "setup-root-failed"],
    );

    // The first candidate whose image exists: the missing one is passed over.
    const r = await cli(`quiet ${absent} ${t.karg} rw`);
    equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.text);
    try {
      deepEqual(
        [out.id, out.karg, out.erofsVersion, out.insecure, out.overlay, out.objects],
        [t.id, t.karg, 1, true, "data-only", t.objects],
      );
      ok(out.overlayOptions.includes(`::${join(t.repo, "objects")}`), out.overlayOptions);
      await checkRoot(mnt, t);
    } finally {
      await run("umount", [mnt]);
    }

    // The fallback (Linux before 6.5): the V1 image as it is, its stubs hide objects/00..ff.
    await mounted(
      tmp,
      { cmdline: t.karg, sysroot: t.sysroot, forceFallback: true },
      async (r, m, log) => {
        equal(r.overlay, "fallback");
        equal(r.derived, false);
        ok(
          r.overlayOptions.includes(`lowerdir=`) &&
            r.overlayOptions.endsWith(`:${join(t.repo, "objects")}`),
          r.overlayOptions,
        );
        ok(log.some((l) => l.includes("mounted as it is")), log.join("\n"));
        await checkRoot(m, t);
      },
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("setup-root mounts cfsctl 0.9.4's V2 image; the fallback rewrites it as cfsctl's V1", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-setup-root-v2-" });
  try {
    const t = await oracleRepo(tmp, "v2", 2);
    ok(t.karg.startsWith("composefs=?"), t.karg);
    const v2 = await Deno.readFile(join(t.repo, "images", t.id));
    const v1 = await cfsctl09Ok([
      "--erofs-version",
      "1",
      "--no-repo",
      "compute-id",
      "--bootable",
      t.tree,
    ]);

    // The derived image is cfsctl's own V1 image of the tree, byte for byte (its digest).
    const derived = fallbackImage(v2);
    ok(derived.image !== null);
    deepEqual([derived.whiteouts, derived.opaque], [256, []]);
    const file = join(tmp, "derived.erofs");
    await Deno.writeFile(file, derived.image!);
    equal(
      (await run("fsverity", ["digest", "--hash-alg=sha512", "--compact", file])).trim(),
      v1.trim().replace(/^sha512:/, ""),
    );
    // A V1 image of such a tree needs nothing.
    equal(fallbackImage(derived.image!).image, null);

    await mounted(tmp, { cmdline: `quiet ${t.karg}`, sysroot: t.sysroot }, async (r, m) => {
      deepEqual([r.erofsVersion, r.overlay, r.derived], [2, "data-only", undefined]);
      await checkRoot(m, t);
    });
    await mounted(
      tmp,
      { cmdline: t.karg, sysroot: t.sysroot, forceFallback: true },
      async (r, m, log) => {
        deepEqual([r.overlay, r.derived, r.whiteouts, r.opaque], ["fallback", true, 256, []]);
        ok(
          log.some((l) => l.startsWith("fallback: derived V1 image, 256 whiteouts")),
          log.join("\n"),
        );
        await checkRoot(m, t);
        // The derived image's file is gone from /run (the loop device holds it).
        const left = [...Deno.readDirSync("/run/cfs-setup-root")].map((e) => e.name);
        ok(!left.some((n) => n.startsWith(`fallback-${t.id.slice(0, 16)}`)), `${left}`);
      },
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("fallback: a root directory named like an object directory is made opaque", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-fallback-" });
  const mounts: string[] = [];
  try {
    const t = await oracleRepo(tmp, "named", 1, true);
    await plantObjectDirs(t.repo);
    const image = await Deno.readFile(join(t.repo, "images", t.id));
    const derived = fallbackImage(image);
    // 00 is a directory (merged with objects/00 unless opaque); ab is a file and hides
    // objects/ab itself; the other 254 names are V1 stubs already.
    deepEqual([derived.whiteouts, derived.opaque], [254, ["00"]]);
    // The same tree, nothing else changed (the reader drops the unescaped opaque mark).
    equal(writeDumpfile(readErofs(derived.image!)), writeDumpfile(readErofs(image)));

    // Control: the image as it is in the fallback overlay merges objects/00 into /00.
    const objects = join(t.repo, "objects");
    const at = async (dir: string, args: string[]) => {
      await Deno.mkdir(dir, { recursive: true });
      await run("mount", [...args, dir]);
      mounts.push(dir);
    };
    await at(join(tmp, "img"), ["-t", "erofs", "-o", "loop,ro", join(t.repo, "images", t.id)]);
    await at(join(tmp, "plain"), [
      "-t",
      "overlay",
      "-o",
      `ro,metacopy=on,redirect_dir=on,lowerdir=${join(tmp, "img")}:${objects}`,
      "cfs-test",
    ]);
    ok(sorted(join(tmp, "plain", "00")).includes("planted"));
    deepEqual(sorted(join(tmp, "plain")), t.rootNames); // the stubs hide the other 254

    await mounted(
      tmp,
      { cmdline: t.karg, sysroot: t.sysroot, forceFallback: true },
      async (r, m) => {
        deepEqual([r.overlay, r.derived, r.whiteouts, r.opaque], ["fallback", true, 254, ["00"]]);
        await checkRoot(m, t);
        deepEqual(sorted(join(m, "00")), ["big", "sub"]);
        equal(await Deno.readTextFile(join(m, "ab")), "a file named ab\n");
      },
    );
  } finally {
    for (const m of mounts.reverse()) await run("umount", [m]).catch(() => {});
    await Deno.remove(tmp, { recursive: true });
  }
});
