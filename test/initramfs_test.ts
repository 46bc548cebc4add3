/**
 * `cfs initramfs` as a user runs it, from a directory outside the checkout: the drop-in's
 * files and kernel modules (the module set checked against kmod's `modinfo` dependency lists,
 * the archive read by libarchive's bsdtar), cfs inside it running on its own (chroot: no
 * checkout, no npm cache, no network), the bundle starting a hook's process, and the dracut
 * module built into an initramfs by Debian's dracut itself. The boots are in test/vm/boot_test.ts.
 *
 * About 45 s: the bundle (8 s), dracut (20 s), the rest a few seconds each.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import * as fs from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { requireTool, run } from "./cfs.ts";
import { findGuestKernel } from "../lib/vm/qemu.ts";
import { DROPIN_MODULES } from "../lib/vm/dropin.ts";
import { buildOciImage } from "./fixtures/oci.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

/** `cfs ARGS` run from `cwd` (outside the checkout). */
async function cfsIn(cwd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", CLI, ...args],
    cwd,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("cfs initramfs: a drop-in and a dracut module, from any directory", async (t) => {
  for (const [tool, pkg] of [["bsdtar", "libarchive-tools"], ["modinfo", "kmod"]]) {
    requireTool(tool, `apt-get install ${pkg}`);
  }
  requireTool("dracut", "apt-get install dracut-core");
  const kernel = findGuestKernel();
  const tmp = await Deno.makeTempDir({ prefix: "cfs-initramfs-" });
  try {
    const out = join(tmp, "dropin.img");
    const dracutDir = join(tmp, "90cfs");
    const r = await cfsIn(tmp, [
      "--json",
      "initramfs",
      "--kernel",
      kernel.kernelVersion,
      "-o",
      out,
      "--dracut",
      dracutDir,
    ]);
    equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.text);
    equal(result.payload, "bundle");
    equal(result.bytes, fs.statSync(out).size);
    const root = join(tmp, "root");
    fs.mkdirSync(root);
    await run("bsdtar", ["-xf", out, "-C", root]);

    await t.step("the archive: init, busybox, deno + bundle + launcher, libraries", async () => {
      const list = (await run("bsdtar", ["-tf", out])).split("\n").filter(Boolean);
      for (
        const p of ["init", "bin/busybox", "usr/bin/cfs", "usr/bin/deno", "usr/lib/cfs/cfs.js"]
      ) {
        ok(list.includes(p), `${p} missing from ${list.join(" ")}`);
      }
      ok(list.some((p) => p.startsWith("lib64/ld-linux")), "the program interpreter");
      const init = fs.readFileSync(join(root, "init"), "utf8");
      ok(init.includes("/usr/bin/cfs setup-root"), init);
      ok(init.includes("exec switch_root /sysroot /sbin/init"), init);
    });

    await t.step("the modules and their dependencies (modinfo's), dependencies first", async () => {
      // kmod's modinfo reads each module's own dependency list (its .modinfo section).
      const depends = async (m: string) =>
        (await run("modinfo", ["-k", kernel.kernelVersion, "-F", "depends", m])).trim()
          .split(",").filter(Boolean).map((d) => d.replaceAll("-", "_"));
      const want = new Set<string>();
      const visit = async (m: string) => {
        if (want.has(m)) return;
        want.add(m);
        for (const d of await depends(m)) await visit(d);
      };
      for (const m of DROPIN_MODULES) await visit(m);
      const got: string[] = result.modules.map((m: string) =>
        basename(m).replace(/^\d+-/, "").replace(/\.ko$/, "").replaceAll("-", "_")
      );
      deepEqual(new Set(got), want);
      // Dependencies first: each module's `depends` (modinfo) come earlier.
      for (const [i, m] of got.entries()) {
        const deps = await depends(m);
        for (const d of deps) ok(got.indexOf(d) >= 0 && got.indexOf(d) < i, `${d} before ${m}`);
      }
    });

    await t.step("cfs in the drop-in runs on its own (chroot, no network, no cache)", async () => {
      const inRoot = async (args: string[]) =>
        // A mount namespace of its own: /proc (Deno needs /proc/self/exe) as /init mounts it.
        await new Deno.Command("/usr/bin/unshare", {
          args: [
            "--mount",
            "--propagation",
            "private",
            "/usr/sbin/chroot",
            root,
            "/bin/sh",
            "-c",
            'mkdir -p /proc && mount -t proc proc /proc && exec /usr/bin/cfs "$@"',
            "sh",
            ...args,
          ],
          env: { PATH: "/usr/bin:/bin" },
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }).output();
      // As /init does first: busybox's applets (the launcher is a /bin/sh script).
      await run("/usr/sbin/chroot", [root, "/bin/busybox", "--install", "-s"]);
      fs.mkdirSync(join(root, "run"), { recursive: true });
      fs.mkdirSync(join(root, "tmp"), { recursive: true });
      const v = await inRoot(["--version"]);
      equal(
        new TextDecoder().decode(v.stdout).trim(),
        "cfs 0.1.0",
        new TextDecoder().decode(v.stderr),
      );
      // setup-root's own one-line error for a command line without an image.
      const s = await inRoot(["setup-root", "--cmdline", "root=/dev/vda console=ttyS0"]);
      equal(s.code, 1);
      const err = new TextDecoder().decode(s.stderr).trim();
      ok(/^cfs: .*composefs/.test(err) && !err.includes("\n"), err);
    });

    await t.step("the bundle starts a hook's process (cfs pull --hook)", async () => {
      const layout = join(tmp, "img");
      const tree = join(tmp, "tree");
      for (const d of ["usr/bin", "boot", "sysroot"]) {
        fs.mkdirSync(join(tree, d), { recursive: true });
      }
      fs.writeFileSync(join(tree, "usr/bin/hello"), "#!/bin/sh\necho hello\n".repeat(20));
      await buildOciImage(layout, { tag: "v1", layers: [{ dir: tree }] });
      const hook = join(tmp, "tag.ts");
      fs.writeFileSync(
        hook,
        `export default { name: "bundled", before: { tag: (ctx) => { ` +
          `ctx.tags.push("oem/from-bundle"); } } };\n`,
      );
      const repo = join(tmp, "repo");
      const p = await new Deno.Command(join(root, "usr/bin/deno"), {
        args: [
          "run",
          "--allow-all",
          "--quiet",
          "--no-config",
          "--no-remote",
          join(root, "usr/lib/cfs/cfs.js"),
          "--repo",
          repo,
          "--json",
          "pull",
          "--no-default-hooks",
          "--allow-missing-fsverity",
          "--hook",
          hook,
          `oci:${layout}:v1`,
        ],
        cwd: tmp,
        env: { DENO_DIR: join(tmp, "empty-deno-dir") },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(p.stdout);
      equal(p.code, 0, new TextDecoder().decode(p.stderr) + text);
      const last = JSON.parse(text.trim().split("\n").at(-1)!);
      ok(JSON.stringify(last).includes("oem/from-bundle"), JSON.stringify(last));
    });

    await t.step("the drop-in from the installed bundle carries that bundle", async () => {
      const again = join(tmp, "again.img");
      const p = await new Deno.Command(join(root, "usr/bin/deno"), {
        args: [
          "run",
          "--allow-all",
          "--quiet",
          "--no-config",
          join(root, "usr/lib/cfs/cfs.js"),
          "initramfs",
          "--kernel",
          kernel.kernelVersion,
          "-o",
          again,
        ],
        cwd: tmp,
        stdout: "piped",
        stderr: "piped",
      }).output();
      equal(p.code, 0, new TextDecoder().decode(p.stderr));
      const x = join(tmp, "again");
      fs.mkdirSync(x);
      await run("bsdtar", ["-xf", again, "-C", x, "usr/lib/cfs/cfs.js"]);
      deepEqual(
        fs.readFileSync(join(x, "usr/lib/cfs/cfs.js")),
        fs.readFileSync(join(root, "usr/lib/cfs/cfs.js")),
      );
    });

    await t.step("the dracut module: shell syntax, and dracut builds it in", async () => {
      const files = fs.readdirSync(dracutDir).sort();
      deepEqual(files, ["cfs-launcher", "cfs-setup-root.sh", "cfs.js", "deno", "module-setup.sh"]);
      await run("bash", ["-n", join(dracutDir, "module-setup.sh")]);
      await run("sh", ["-n", join(dracutDir, "cfs-setup-root.sh")]);
      await run("sh", ["-n", join(dracutDir, "cfs-launcher")]);
      // Debian's dracut with this module added to a copy of its module tree.
      const base = join(tmp, "dracut-base");
      await run("cp", ["-as", "/usr/lib/dracut/.", base]);
      await run("cp", ["-r", dracutDir, join(base, "modules.d/90cfs")]);
      const conf = join(tmp, "dracut-conf");
      fs.mkdirSync(conf);
      const img = join(tmp, "dracut.img");
      const d = await new Deno.Command("dracut", {
        args: [
          "--no-hostonly",
          "--no-compress",
          "--force",
          "--conf",
          "/dev/null",
          "--confdir",
          conf,
          "-m",
          "base cfs",
          "--kver",
          kernel.kernelVersion,
          img,
        ],
        env: { dracutbasedir: base },
        stdout: "piped",
        stderr: "piped",
      }).output();
      equal(d.code, 0, new TextDecoder().decode(d.stderr));
      const list = (await run("bsdtar", ["-tf", img])).split("\n");
      for (
        const p of [
          "usr/bin/cfs",
          "usr/bin/deno",
          "usr/lib/cfs/cfs.js",
          "usr/lib/dracut/hooks/pre-pivot/50-cfs-setup-root.sh",
        ]
      ) {
        ok(list.includes(p), `${p} not in dracut's initramfs`);
      }
      for (const m of ["erofs", "overlay", "loop"]) {
        ok(list.some((p) => new RegExp(`/${m}\\.ko`).test(p)), `${m}.ko not in dracut's initramfs`);
      }
    });

    await t.step("bad input: one line naming it", async () => {
      const none = await cfsIn(tmp, [
        "--json",
        "initramfs",
        "--modules-dir",
        join(tmp, "nope"),
        "-o",
        join(tmp, "x.img"),
      ]);
      equal(none.code, 1);
      const e = JSON.parse(none.text).error;
      equal(e.code, "initramfs-failed");
      ok(e.message.includes(join(tmp, "nope")), e.message);
      const mod = await cfsIn(tmp, [
        "--json",
        "initramfs",
        "--kernel",
        kernel.kernelVersion,
        "--module",
        "no_such_module",
        "-o",
        join(tmp, "y.img"),
      ]);
      equal(JSON.parse(mod.text).error.code, "initramfs-failed");
      ok(JSON.parse(mod.text).error.message.includes("no_such_module"), mod.text);
      const nothing = await cfsIn(tmp, ["initramfs", "--kernel", kernel.kernelVersion]);
      equal(nothing.code, 2);
      ok(nothing.stderr.includes("nothing to write"), nothing.stderr);
      ok(!fs.existsSync(join(tmp, "x.img")) && !fs.existsSync(join(tmp, "y.img")));
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
