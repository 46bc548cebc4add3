/**
 * `cfs setup-root` on the host: command line parsing, and mounting a repository image with
 * `--mountpoint` (insecure: the host kernel has no fs-verity; the verity checks and the
 * switch into the new root run in the QEMU boot test, test/vm/boot_test.ts). The fallback
 * overlay (`lowerdir=IMAGE:OBJECTS`, for kernels without data-only lower layers) is tested
 * here too, on the host kernel: its derived image with whiteouts for `00`..`ff`.
 *
 * @module
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { cfsOk, run, runCfs } from "./cfs.ts";
import {
  cmdlineValue,
  fallbackImage,
  OBJECT_DIRS,
  parseComposefsCmdline,
  setupRoot,
  splitCmdline,
} from "../lib/setup_root.ts";
import { readErofs } from "../lib/erofs/reader.ts";
import { mkfsErofs } from "../lib/erofs/writer.ts";

const H64 = "ab".repeat(32);
const H128 = "cd".repeat(64);

Deno.test("setup-root: kernel command line words and composefs= ids", () => {
  deepEqual(splitCmdline(' a  b="x y" c\n'), ["a", 'b="x y"', "c"]);
  equal(cmdlineValue(`quiet root=/dev/vda composefs=${H64}`, "root"), "/dev/vda");
  equal(cmdlineValue("quiet", "root"), undefined);
  deepEqual(parseComposefsCmdline(`x composefs=${H64} y`), {
    id: H64,
    insecure: false,
    algorithm: "sha256",
  });
  deepEqual(parseComposefsCmdline(`composefs=?${H128}`), {
    id: H128,
    insecure: true,
    algorithm: "sha512",
  });
  throws(() => parseComposefsCmdline("root=/dev/vda"), /no composefs=/);
  throws(() => parseComposefsCmdline(`composefs=${H64}0`), /not an image id/);
  throws(() => parseComposefsCmdline(`composefs=sha512:${H128}`), /not an image id/);
  throws(() => parseComposefsCmdline(`composefs=${H64.toUpperCase()}`), /not an image id/);
});

Deno.test("setup-root --mountpoint mounts the composefs image (insecure, host kernel)", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-setup-root-" });
  try {
    const tree = join(tmp, "tree");
    await Deno.mkdir(join(tree, "etc"), { recursive: true });
    const big = crypto.getRandomValues(new Uint8Array(65536));
    await Deno.writeFile(join(tree, "etc", "big"), big);
    await Deno.writeTextFile(join(tree, "etc", "small"), "inline\n");
    const sysroot = join(tmp, "sysroot");
    const repo = join(sysroot, "composefs");
    await cfsOk(repo, "init", "--insecure", repo);
    const id = (await cfsOk(repo, "create-image", tree)).trim().replace(/^sha512:/, "");
    const mnt = join(tmp, "mnt");
    await Deno.mkdir(mnt);

    // Secure boot of an insecure repository on a kernel without fs-verity: refused, one line.
    const refused = await runCfs([
      "setup-root",
      "--sysroot",
      sysroot,
      "--cmdline",
      `composefs=${id}`,
      "--mountpoint",
      mnt,
    ]);
    equal(refused.code, 1);
    ok(refused.stderr.includes("has no fs-verity"), refused.stderr);

    const wrong = await runCfs([
      "setup-root",
      "--sysroot",
      sysroot,
      "--cmdline",
      `composefs=?${"0".repeat(128)}`,
      "--mountpoint",
      mnt,
    ]);
    equal(wrong.code, 1);
    ok(wrong.stderr.includes(`no image ${"0".repeat(128)}`), wrong.stderr);

    const r = JSON.parse(
      await cfsOk(
        repo,
        "--json",
        "setup-root",
        "--sysroot",
        sysroot,
        "--cmdline",
        `quiet composefs=?${id}`,
        "--mountpoint",
        mnt,
      ),
    );
    try {
      equal(r.id, id);
      equal(r.objects, 1);
      equal(r.overlay, "data-only"); // the host kernel (6.18) has data-only lower layers
      deepEqual([...Deno.readDirSync(mnt)].map((e) => e.name), ["etc"]);
      equal(
        (await run("sha256sum", [join(mnt, "etc", "big")])).split(" ")[0],
        (await run("sha256sum", [join(tree, "etc", "big")])).split(" ")[0],
      );
      equal(await Deno.readTextFile(join(mnt, "etc", "small")), "inline\n");
    } finally {
      await run("umount", [mnt]);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/** A small tree with a real `/00` directory and a real `/ab` file, and its repository. */
async function fallbackFixture(tmp: string) {
  const tree = join(tmp, "tree");
  for (const d of ["etc", "usr/bin", "00/sub"]) {
    await Deno.mkdir(join(tree, d), { recursive: true });
  }
  const files: Record<string, Uint8Array> = {
    "etc/big": crypto.getRandomValues(new Uint8Array(65536)),
    "etc/small": new TextEncoder().encode("inline\n"),
    "usr/bin/tool": crypto.getRandomValues(new Uint8Array(10000)),
    "00/big": crypto.getRandomValues(new Uint8Array(5000)),
    "00/sub/small": new TextEncoder().encode("in 00\n"),
    "ab": new TextEncoder().encode("a file named ab\n"),
  };
  for (const [path, data] of Object.entries(files)) await Deno.writeFile(join(tree, path), data);
  await Deno.symlink("usr/bin", join(tree, "bin"));
  const sysroot = join(tmp, "sysroot");
  const repo = join(sysroot, "composefs");
  await cfsOk(repo, "init", "--insecure", repo);
  const id = (await cfsOk(repo, "create-image", tree)).trim().replace(/^sha512:/, "");
  // Object directories whose names are also in the image's root (whatever the digests).
  for (const d of ["00", "ab"]) {
    await Deno.mkdir(join(repo, "objects", d), { recursive: true });
    await Deno.writeTextFile(join(repo, "objects", d, "planted"), "an object file\n");
  }
  const rootNames = [...Deno.readDirSync(tree)].map((e) => e.name).sort();
  return { tree, sysroot, repo, id, files, rootNames };
}

const sorted = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

/** The tree's files read back through the mounted root. */
async function checkFiles(mnt: string, files: Record<string, Uint8Array>) {
  for (const [path, data] of Object.entries(files)) {
    deepEqual(await Deno.readFile(join(mnt, path)), data, path);
  }
  equal(Deno.readLinkSync(join(mnt, "bin")), "usr/bin");
  deepEqual(sorted(join(mnt, "00")), ["big", "sub"]);
}

Deno.test("fallback image: whiteouts hide objects/00..ff under lowerdir=IMAGE:OBJECTS", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-fallback-" });
  const mounts: string[] = [];
  const mountAt = async (dir: string, args: string[]) => {
    await Deno.mkdir(dir, { recursive: true });
    await run("mount", [...args, dir]);
    mounts.push(dir);
  };
  try {
    const f = await fallbackFixture(tmp);
    const original = await Deno.readFile(join(f.repo, "images", f.id));
    const derived = fallbackImage(original);
    equal(derived.whiteouts, 254); // 00 and ab are in the image's root
    deepEqual(derived.opaque, ["00"]); // a directory; ab is a file and hides objects/ab itself

    // The derived tree: the original plus 254 whiteouts (chardev 0:0, 0644, root's owner).
    const back = readErofs(derived.image);
    const rootStat = back.root.stat;
    for (const name of OBJECT_DIRS) {
      const e = back.root.entries.get(name)!;
      if (name === "00" || name === "ab") continue;
      equal(e.kind, "leaf", name);
      if (e.kind !== "leaf") continue;
      deepEqual(e.content, { type: "chardev", rdev: 0n });
      deepEqual([e.stat.mode, e.stat.uid, e.stat.gid, e.stat.mtime, e.stat.xattrs.length], [
        0o644,
        rootStat.uid,
        rootStat.gid,
        rootStat.mtime,
        0,
      ]);
    }
    // Nothing else changed: without the whiteouts (the reader drops the unescaped opaque
    // mark) the tree writes the original image again, byte for byte.
    for (const name of OBJECT_DIRS) {
      const e = back.root.entries.get(name)!;
      if (e.kind === "leaf" && e.content.type === "chardev") back.root.entries.delete(name);
    }
    ok(
      mkfsErofs(back).every((b, i) => b === original[i]) &&
        mkfsErofs(back).length === original.length,
    );

    const objects = join(f.repo, "objects");
    const opts = "ro,metacopy=on,redirect_dir=on";
    // Control: the repository's image in the fallback overlay shows the object directories.
    await mountAt(join(tmp, "orig"), [
      "-t",
      "erofs",
      "-o",
      "loop,ro",
      join(f.repo, "images", f.id),
    ]);
    await mountAt(join(tmp, "plain"), [
      "-t",
      "overlay",
      "-o",
      `${opts},lowerdir=${join(tmp, "orig")}:${objects}`,
      "cfs-test",
    ]);
    const plain = sorted(join(tmp, "plain"));
    ok(plain.some((n) => /^[0-9a-f]{2}$/.test(n) && n !== "00" && n !== "ab"), `${plain}`);
    ok(sorted(join(tmp, "plain", "00")).includes("planted"));

    // The derived image: `/` is exactly the tree's root, files read through the redirects.
    const file = join(tmp, "derived.erofs");
    await Deno.writeFile(file, derived.image);
    await mountAt(join(tmp, "derived"), ["-t", "erofs", "-o", "loop,ro", file]);
    const mnt = join(tmp, "mnt");
    await mountAt(mnt, [
      "-t",
      "overlay",
      "-o",
      `${opts},lowerdir=${join(tmp, "derived")}:${objects}`,
      "cfs-test",
    ]);
    deepEqual(sorted(mnt), f.rootNames);
    await checkFiles(mnt, f.files);
  } finally {
    for (const m of mounts.reverse()) await run("umount", [m]).catch(() => {});
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("setup-root with the fallback overlay mounts the derived image", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-fallback-root-" });
  try {
    const f = await fallbackFixture(tmp);
    const mnt = join(tmp, "mnt");
    await Deno.mkdir(mnt);
    const lines: string[] = [];
    const r = await setupRoot({
      cmdline: `composefs=?${f.id}`,
      sysroot: f.sysroot,
      mountpoint: mnt,
      forceFallback: true,
      log: (l) => lines.push(l),
    });
    try {
      equal(r.overlay, "fallback");
      equal(r.whiteouts, 254);
      deepEqual(r.opaque, ["00"]);
      ok(r.overlayOptions.includes(`:${join(f.repo, "objects")}`), r.overlayOptions);
      ok(lines.some((l) => l.startsWith("fallback image: 254 whiteouts")), lines.join("\n"));
      deepEqual(sorted(mnt), f.rootNames);
      await checkFiles(mnt, f.files);
      // The derived image's file is gone from /run (the loop device holds it).
      const left = [...Deno.readDirSync("/run/cfs-setup-root")].map((e) => e.name);
      ok(
        !left.some((n) => n.includes(f.id.slice(0, 16)) && n !== `root-${f.id.slice(0, 16)}`),
        `${left}`,
      );
    } finally {
      await run("umount", [mnt]);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
