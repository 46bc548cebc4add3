/**
 * The proof that a pulled image boots from its composefs image: a bootable OCI image built
 * here (test/fixtures/vm_image.ts: Debian's kernel and modules, busybox, and cfs as the
 * initramfs drop-in) is pushed to a local docker-registry, pulled by `cfs pull` into a fresh
 * repository, and booted in QEMU (TCG) from an ext4 disk made with `-O verity`. In the guest,
 * `cfs setup-root` enables fs-verity on the image and its objects, checks every digest, mounts
 * EROFS + overlayfs and switches into it; the image's /sbin/init prints the names in `/` and
 * the sha256 of every file, which must equal those made on the host from `umoci unpack` of the
 * same image (no object directories 00..ff in `/`).
 *
 * Two formats boot: the V1 image of a default repository (composefs-rs 0.9.4's default) with
 * `composefs.digest=v1-sha512-12:<id>`, which the guest's Linux 6.1 (no data-only lower
 * layers) mounts as it is under `lowerdir=IMAGE:OBJECTS`, its whiteout stubs hiding the
 * object directories; and, through `cfs --erofs-version 2 vm-test`, the V2 image of a V2
 * repository with `composefs=<id>`, which setup-root rewrites as V1 for that overlay.
 *
 * Negative boots (V1), each on a fresh disk: one flipped byte in a file object, a wrong id
 * (with an image planted under that name, so the measured digest must catch it), a missing
 * object. Each must stop in the initramfs with the reason on the console.
 *
 * Run by `make vm-test` (not by `make test`); prints the boot times.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { requireTool, run, runCfs } from "../cfs.ts";
import { pushToRegistry, REGISTRY_BINARY, startRegistry } from "../fixtures/registry.ts";
import {
  BOOTED_MARKER,
  buildVmImage,
  hostChecksums,
  LINK_PREFIX,
  ROOT_LIST_PREFIX,
  SUM_PREFIX,
  SUMS_END,
} from "../fixtures/vm_image.ts";
import { vmBoot, type VmBootOptions, type VmBootResult } from "../../lib/vm/boot.ts";
import { readErofs } from "../../lib/erofs/reader.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const log = (s: string) => console.error(`  [boot] ${s}`);
/**
 * Longest boot (QEMU start to the expected line) a test accepts: TCG on 2 shared cores boots in
 * about 25 s when quiet and 60-120 s at load 10 (measured); a slower boot means something hangs.
 */
const BOOT_BOUND_S = 240;

/** The repository path of an object inside the disk's file system. */
function objectOnDisk(hex: string): string {
  return `/composefs/objects/${hex.slice(0, 2)}/${hex.slice(2)}`;
}

async function debugfs(disk: string, request: string, write = false): Promise<string> {
  return await run("debugfs", [...(write ? ["-w"] : []), "-R", request, disk]);
}

/** Flips one byte of a file inside an ext4 image, at `offset` within the file. */
async function flipByte(disk: string, path: string, offset: number): Promise<void> {
  const block = Number((await debugfs(disk, `bmap ${path} ${Math.floor(offset / 4096)}`)).trim());
  ok(block > 0, `bmap ${path}: ${block}`);
  const pos = block * 4096 + (offset % 4096);
  const f = await Deno.open(disk, { read: true, write: true });
  try {
    const b = new Uint8Array(1);
    await f.seek(pos, Deno.SeekMode.Start);
    await f.read(b);
    b[0] ^= 0xff;
    await f.seek(pos, Deno.SeekMode.Start);
    await f.write(b);
  } finally {
    f.close();
  }
}

async function fsverityDigest(file: string): Promise<string> {
  const out = await run("fsverity", ["digest", "--hash-alg=sha512", file]);
  return out.split(" ")[0].replace(/^sha512:/, "");
}

function report(name: string, r: VmBootResult): void {
  const t = r.times;
  console.error(
    `  [boot] ${name}: ${r.ok ? "booted" : `failed: ${r.reason}`}; pull ${t.pull.toFixed(1)} s, ` +
      `disk ${t.disk.toFixed(1)} s, ${
        t.boot !== undefined ? `boot ${t.boot.toFixed(1)} s, ` : ""
      }qemu ${t.qemu.toFixed(1)} s`,
  );
}

Deno.test("vm boot: a pulled image boots from composefs with fs-verity; damage stops the boot", async (t) => {
  requireTool(REGISTRY_BINARY, "apt-get install docker-registry");
  for (const [tool, pkg] of [["skopeo", "skopeo"], ["umoci", "umoci"], ["fsverity", "fsverity"]]) {
    requireTool(tool, `apt-get install ${pkg}`);
  }
  requireTool("qemu-system-x86_64", "apt-get install qemu-system-x86");
  requireTool("debugfs", "apt-get install e2fsprogs");
  const tmp = await Deno.makeTempDir({ prefix: "cfs-vm-boot-" });
  await using registry = await startRegistry();
  let passed = false;
  try {
    const t0 = performance.now();
    const layout = join(tmp, "img");
    const img = await buildVmImage(layout, "v1");
    const ref = await pushToRegistry(registry, `oci:${layout}:v1`, "cfs/vm-boot:v1");
    log(
      `image built and pushed in ${((performance.now() - t0) / 1000).toFixed(1)} s ` +
        `(initramfs ${(img.initramfsBytes / 2 ** 20).toFixed(0)} MiB)`,
    );
    const base: Omit<VmBootOptions, "runDir"> = {
      image: ref,
      source: { tlsVerify: false },
      // TCG on 2 shared cores: about 25 s quiet, 60-120 s at load 10 (measured); the bound is
      // there to end a hung guest, not to time a healthy one.
      timeoutMs: 300_000,
      until: SUMS_END,
      log,
    };

    // Host reference: umoci's unpack of the same image.
    const bundle = join(tmp, "bundle");
    await run("umoci", ["unpack", "--image", `${layout}:v1`, bundle]);
    const host = await hostChecksums(join(bundle, "rootfs"));
    ok(host.sums.length > 20, `${host.sums.length} files`);
    const randomObject = await fsverityDigest(join(bundle, "rootfs", img.files.random));

    const top = [...Deno.readDirSync(join(bundle, "rootfs"))].map((e) => e.name).sort();
    /**
     * The guest's lists equal the host's, `/` holds exactly the image's top-level names (no
     * object directory shows through), the root is the composefs overlay of `imageId`, and
     * setup-root sealed the objects itself.
     */
    const checkGuest = (lines: string[], imageId: string, imageRoot: string[]) => {
      const sums = lines.filter((l) => l.startsWith(SUM_PREFIX)).map((l) =>
        l.slice(SUM_PREFIX.length)
      );
      const links = lines.filter((l) => l.startsWith(LINK_PREFIX)).map((l) =>
        l.slice(LINK_PREFIX.length)
      );
      deepEqual(sums, host.sums);
      deepEqual(links, host.links);
      const end = lines.find((l) => l.startsWith(SUMS_END))!;
      equal(Number(end.split(" ")[1]), host.sums.length);
      const root = lines.find((l) => l.startsWith("CFS-ROOT "));
      ok(root?.includes(`composefs:${imageId} / overlay`), root);
      const objects = lines.find((l) => l.includes("objects verified (fs-verity enabled on"));
      ok(objects && !objects.includes("enabled on 0 of"), objects);
      ok(lines.some((l) => l.startsWith(BOOTED_MARKER)));
      const listed = lines.find((l) => l.startsWith(ROOT_LIST_PREFIX))!
        .slice(ROOT_LIST_PREFIX.length).trim().split(" ").sort();
      deepEqual(listed, imageRoot);
      deepEqual(listed, top);
    };
    const imageRoot = async (runDir: string, id: string) => {
      const image = readErofs(
        await Deno.readFile(join(runDir, "root", "composefs", "images", id)),
      );
      return [...image.root.entries.keys()].sort();
    };
    /** The guest kernel (Debian 12's 6.1) has no data-only lower layers: the fallback. */
    const fallbackLine = (lines: string[]) =>
      lines.find((l) => l.startsWith("cfs setup-root: fallback: "));

    await t.step(
      "boots the V1 image (composefs.digest=v1-...); the guest's files equal umoci unpack's",
      async () => {
        const r = await vmBoot({ ...base, runDir: join(tmp, "ok") });
        report("V1 image", r);
        ok(r.ok, `${r.reason}\n${r.lines.slice(-40).join("\n")}`);
        equal(r.erofsVersion, 1);
        equal(r.karg, `composefs.digest=v1-sha512-12:${r.imageId}`);
        ok(r.cmdline.split(" ").includes(r.karg), r.cmdline);
        ok(
          r.lines.some((l) => l.includes(`image ${r.imageId} from composefs.digest=`)),
          "setup-root took composefs.digest=",
        );
        checkGuest(r.lines, r.imageId, await imageRoot(join(tmp, "ok"), r.imageId));
        // The V1 image as it is: its whiteout stubs for 00..ff hide the object directories.
        const fallback = fallbackLine(r.lines);
        ok(fallback?.includes("mounted as it is"), fallback);
        // The default --expect: the login prompt getty shows (no newline after it).
        ok(/cfs-vm login: *$/.test(r.lines.at(-1) ?? ""), r.lines.at(-1));
        equal(r.pulled, true);
        ok(r.times.boot! < BOOT_BOUND_S, `boot took ${r.times.boot} s`);
      },
    );

    await t.step(
      "cfs initramfs's drop-in boots the V2 image cfs pull put in a repository (no re-pull)",
      async () => {
        // As a user would: a V2 repository, cfs pull, a drop-in for the kernel, vm-test by tag.
        const repo = join(tmp, "repo");
        const init = await runCfs(["init", "--insecure", "--erofs-version", "2", repo]);
        equal(init.code, 0, init.stderr);
        const pull = await runCfs(["--repo", repo, "pull", `oci:${layout}:v1`]);
        equal(pull.code, 0, pull.stderr);
        // The tag cfs pull writes, from skopeo's digest of the manifest.
        const digest = JSON.parse(await run("skopeo", ["inspect", `oci:${layout}:v1`])).Digest;
        const dropin = join(tmp, "dropin.img");
        const made = await runCfs(["initramfs", "--kernel", img.kernelVersion, "-o", dropin]);
        equal(made.code, 0, made.stderr);
        const work = join(tmp, "cli");
        const r = await runCfs([
          "--json",
          "--repo",
          repo,
          "vm-test",
          "--work",
          work,
          "--until",
          SUMS_END,
          "--timeout",
          "300",
          "--initramfs",
          dropin,
          `localhost/bootc-${digest}`,
        ]);
        equal(r.code, 0, r.stderr);
        const out = JSON.parse(r.text);
        equal(out.ok, true);
        equal(out.pulled, false);
        equal(out.repo, repo);
        equal(out.initramfs, dropin);
        equal(out.erofsVersion, 2);
        equal(out.karg, `composefs=${out.imageId}`);
        const lines = (await Deno.readTextFile(out.consoleLog)).split("\n").map((l) =>
          l.replace(/\r$/, "")
        );
        ok(lines.some((l) => l.includes(`image ${out.imageId} from composefs=`)));
        // The disk's repository holds what the boot needs, copied from the repository.
        checkGuest(lines, out.imageId, await imageRoot(work, out.imageId));
        // A V2 image has no stubs: setup-root mounts it rewritten as V1.
        const fallback = fallbackLine(lines);
        const stubs = 256 - top.filter((n) => /^[0-9a-f]{2}$/.test(n)).length;
        ok(fallback?.includes(`derived V1 image, ${stubs} whiteouts`), fallback);
        log(
          `cfs vm-test (V2, repository, cfs initramfs drop-in): boot ${
            out.times.boot.toFixed(1)
          } s, total ${out.times.total.toFixed(1)} s`,
        );
        ok(out.times.boot < BOOT_BOUND_S, `boot took ${out.times.boot} s`);
      },
    );

    await t.step("vm-test removes its work directory after a failure and on Ctrl-C", async () => {
      const workDir = (stderr: string) => {
        const m = /work directory (\S+) \(removed at the end/.exec(stderr);
        ok(m, stderr);
        return m![1];
      };
      const bad = await runCfs([
        "vm-test",
        "--expect",
        "NEVER",
        "--timeout",
        "15",
        `oci:${layout}:v1`,
      ]);
      equal(bad.code, 1, bad.stderr);
      ok(bad.text.includes("FAILED: timed out after 15 s without 'NEVER'"), bad.text);
      equal(existsSync(workDir(bad.stderr)), false, "work directory left after a failure");

      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-all", "--quiet", CLI, "vm-test", `oci:${layout}:v1`],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let stderr = "";
      const dec = new TextDecoder();
      const reader = child.stderr.getReader();
      while (!stderr.includes("booting (")) {
        const { value, done } = await reader.read();
        if (done) break;
        stderr += dec.decode(value);
      }
      ok(stderr.includes("booting ("), stderr);
      const dir = workDir(stderr);
      ok(existsSync(join(dir, "disk.img")), "the disk is there while it boots");
      child.kill("SIGINT");
      const [status] = await Promise.all([
        child.status,
        (async () => {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            stderr += dec.decode(value);
          }
        })(),
        child.stdout.cancel(),
      ]);
      equal(status.code, 130, stderr);
      ok(stderr.includes("interrupted; work directory removed"), stderr);
      equal(existsSync(dir), false, "work directory left after Ctrl-C");
    });

    await t.step("one flipped byte in a file object: setup-root refuses it", async () => {
      const r = await vmBoot({
        ...base,
        runDir: join(tmp, "flip"),
        damageDisk: (disk) => flipByte(disk, objectOnDisk(randomObject), 300_000),
      });
      report("flipped byte", r);
      equal(r.ok, false);
      ok(!r.lines.some((l) => l.startsWith(BOOTED_MARKER)), "must not reach /sbin/init");
      ok(
        r.reason?.includes(`objects/${randomObject.slice(0, 2)}/${randomObject.slice(2)}`) &&
          r.reason.includes("not its name"),
        r.reason,
      );
    });

    await t.step("a wrong image id in composefs.digest=: the measured digest differs", async () => {
      const wrongOf = (id: string) => id.slice(0, -1) + (id.endsWith("0") ? "1" : "0");
      const r = await vmBoot({
        ...base,
        runDir: join(tmp, "wrong-id"),
        karg: (karg, id) => karg.replace(id, wrongOf(id)),
        // The real image planted under the wrong name: only measuring it can tell.
        damageDisk: (disk, { imageId }) =>
          debugfs(
            disk,
            `symlink /composefs/images/${wrongOf(imageId)} ../objects/${imageId.slice(0, 2)}/${
              imageId.slice(2)
            }`,
            true,
          ).then(() => {}),
      });
      report("wrong id", r);
      equal(r.ok, false);
      ok(!r.lines.some((l) => l.startsWith(BOOTED_MARKER)), "must not reach /sbin/init");
      ok(r.reason?.includes(`image ${wrongOf(r.imageId)}: fs-verity digest`), r.reason);
      ok(r.reason?.includes(`is ${r.imageId}`), r.reason);
    });

    await t.step("a missing object: setup-root names it", async () => {
      const r = await vmBoot({
        ...base,
        runDir: join(tmp, "missing"),
        damageDisk: (disk) =>
          debugfs(disk, `rm ${objectOnDisk(randomObject)}`, true).then(() => {}),
      });
      report("missing object", r);
      equal(r.ok, false);
      ok(r.reason?.includes(`object ${randomObject} is missing`), r.reason);
    });
    passed = true;
  } finally {
    if (passed || Deno.env.get("KEEP") !== "1") await Deno.remove(tmp, { recursive: true });
    else log(`kept ${tmp}`);
  }
});
