/**
 * `cfs setup-root` on the host: command line parsing, and mounting a repository image with
 * `--mountpoint` (insecure: the host kernel has no fs-verity; the verity checks and the
 * switch into the new root run in the QEMU boot test, test/vm/boot_test.ts).
 *
 * @module
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { cfsOk, run, runCfs } from "./cfs.ts";
import { cmdlineValue, parseComposefsCmdline, splitCmdline } from "../lib/setup_root.ts";

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
