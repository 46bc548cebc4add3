/**
 * Unified storage (`cfs pull --unified`) and reading containers-storage directly
 * (`cfs oci pull containers-storage:...`), against Debian's podman and skopeo (overlay
 * driver, as root here):
 *
 * - the same image pulled directly and through `--unified` gives the same image ID, the
 *   same layer streams (ids, and `cfs cat` bytes whose sha256 equals the diff_id that
 *   `sha256sum` computed when the fixture was built), and podman sees the image in cfs's
 *   storage (`podman --root STORAGE image inspect`);
 * - zerocopy on one file system: objects share their inode with the storage's files
 *   (`find -samefile`), the repository grows by metadata only (`du`, which counts a
 *   hard-linked inode once); on a loop-mounted XFS with reflink=1: objects share the
 *   storage files' extents (`filefrag -v`) and the file system's used space (`df`) grows
 *   by much less than the data;
 * - zerocopy between two file systems fails naming both paths; auto copies there.
 *
 * Images: layouts from the fixture builder, put into a storage with `skopeo copy ...
 * containers-storage:[overlay@ROOT+RUNROOT]NAME` inside `unshare --mount` (the overlay
 * driver's bind mount must not stay behind). Repositories are insecure (no fs-verity).
 *
 * @module
 */
import { deepEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { cfsOk, pullResult, requireTool, run, runCfs } from "./cfs.ts";
import { buildOciImage, type BuiltImage, type LayerSpec } from "./fixtures/oci.ts";
import { storageImageName } from "../lib/pipeline/unified.ts";

const BIG = 8 << 20;

/** Layers a containers-storage can hold (no hard link into a lower layer), with bodies of every size class. */
function layers(): LayerSpec[] {
  const big = new Uint8Array(BIG);
  for (let i = 0; i < big.length; i += 4096) big[i] = (i >> 12) & 0xff;
  return [
    [
      { type: "dir", path: "boot" },
      { type: "dir", path: "sysroot" },
      { type: "dir", path: "etc", mode: 0o755 },
      { type: "file", path: "etc/hostname", content: "one\n" },
      { type: "file", path: "etc/motd", content: "m".repeat(300) },
      { type: "file", path: "usr/lib/big", content: big },
      { type: "file", path: "usr/lib/mid", content: "x".repeat(2 << 20) },
      { type: "file", path: "usr/bin/su", content: "s".repeat(500), mode: 0o4755 },
      { type: "symlink", path: "usr/bin/sh", target: "su" },
    ],
    [
      { type: "whiteout", path: "etc/motd" },
      { type: "file", path: "home/u/notes", content: "n".repeat(1000), uid: 1000, gid: 1000 },
      { type: "hardlink", path: "home/u/notes2", target: "home/u/notes" },
      { type: "file", path: "etc/hostname", content: "two\n".repeat(40), mode: 0o600 },
    ],
  ];
}

function needTools(): void {
  requireTool("podman", "apt-get install podman");
  requireTool("skopeo", "apt-get install skopeo");
  requireTool("unshare", "apt-get install util-linux");
}

async function build(dir: string): Promise<BuiltImage> {
  return await buildOciImage(dir, { tag: "v1", layers: layers(), compression: "gzip" });
}

/** Copies a layout into the store at `root` as `name` (podman is not needed for that). */
async function intoStorage(layout: string, root: string, name: string): Promise<void> {
  const runroot = await Deno.makeTempDir({ prefix: "cfs-test-runroot-" });
  try {
    await run("unshare", [
      "--mount",
      "--propagation",
      "private",
      "skopeo",
      "copy",
      "--quiet",
      `oci:${layout}:v1`,
      `containers-storage:[overlay@${root}+${runroot}]${name}`,
    ]);
  } finally {
    await Deno.remove(runroot, { recursive: true });
  }
}

/** Removes a tree that podman wrote (read-only dirs are fine as root). */
async function removeAll(dir: string): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

async function du(path: string): Promise<number> {
  return Number((await run("du", ["-sk", path])).split("\t")[0]) * 1024;
}

async function newRepo(dir: string): Promise<string> {
  await cfsOk(dir, "init", "--insecure", "--algorithm", "fsverity-sha256-12");
  return dir;
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const h = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return "sha256:" + Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("pull --unified equals the direct pull; podman sees the image; objects are the storage's inodes", async () => {
  needTools();
  const tmp = await Deno.makeTempDir({ prefix: "cfs-unified-" });
  try {
    const built = await build(join(tmp, "img"));
    const ref = `oci:${built.dir}:v1`;
    const direct = join(tmp, "direct");
    const common = [
      "--allow-missing-fsverity",
      "--no-default-hooks",
      "--algorithm",
      "fsverity-sha256-12",
    ];
    const a = pullResult(await cfsOk(direct, "--json", "pull", ...common, ref));

    const repo = join(tmp, "sysroot", "composefs");
    const r = await runCfs(["--repo", repo, "--json", "pull", ...common, "--unified", ref]);
    equal(r.code, 0, r.stderr);
    const lines = r.text.trim().split("\n").map((l) => JSON.parse(l));
    const b = lines.pop().result;
    // The unified stages ran, in order, around the import.
    const stages = lines.filter((e) => e.message === `${e.CFS_STAGE}: start`).map((e) =>
      e.CFS_STAGE
    );
    deepEqual(stages.slice(0, 5), ["open", "storage", "fetch", "import", "label-storage"]);
    ok(lines.some((e) => /not labelled: the image has no SELinux policy/.test(e.message)));

    equal(b.imageId, a.imageId);
    equal(b.manifest, built.manifest.digest);
    equal(b.config, built.config.digest);
    deepEqual(
      b.layers.map((l: { verity: string }) => l.verity),
      a.layers.map((l: { verity: string }) => l.verity),
    );
    for (const [i, layer] of built.layers.entries()) {
      const x = await runCfs(["--repo", direct, "cat", `oci-layer-${layer.diffId}`]);
      const y = await runCfs(["--repo", repo, "cat", `oci-layer-${layer.diffId}`]);
      equal(x.code, 0, x.stderr);
      equal(y.code, 0, y.stderr);
      equal(await sha256(y.stdout), layer.diffId, `layer ${i}`);
      deepEqual(y.stdout, x.stdout);
    }

    // podman sees it in cfs's storage; bootc's compatibility link is there.
    const storage = join(repo, "bootc", "storage");
    const inspect = JSON.parse(
      await run("podman", ["--root", storage, "image", "inspect", built.config.digest.slice(7)]),
    );
    equal(`sha256:${inspect[0].Id}`, built.config.digest);
    equal(await Deno.readLink(join(tmp, "sysroot", "ostree", "bootc")), "../composefs/bootc");

    // zerocopy, one file system: hard links (ext4 has no reflink). The setuid file and the
    // one owned by uid 1000 are copied, by policy.
    const lf = b.localFetch;
    equal(lf.mode, "zerocopy");
    equal(lf.stats.reflinked.objects, 0);
    equal(lf.stats.hardlinked.objects, 4); // motd, big, mid, etc/hostname (0600, root's)
    deepEqual(lf.copied.map((c: { path: string }) => c.path.replace(/.*\/diff\//, "")).sort(), [
      "home/u/notes",
      "usr/bin/su",
    ]);
    const diffOf = async (rel: string) =>
      (await run("sh", ["-c", `ls -d ${storage}/overlay/*/diff/${rel}`])).trim();
    const bigInStorage = await diffOf("usr/lib/big");
    const same = (await run("find", [join(repo, "objects"), "-samefile", bigInStorage])).trim();
    match(same, /objects\/[0-9a-f]{2}\/[0-9a-f]{62}$/);
    const su = (await run("find", [join(repo, "objects"), "-samefile", await diffOf("usr/bin/su")]))
      .trim();
    equal(su, "");

    // Disk: the repository adds metadata only on top of the storage (du counts a shared
    // inode once), while the direct repository holds the data again.
    const storageBytes = await du(storage);
    const repoOnly = (await du(join(tmp, "sysroot"))) - storageBytes;
    const directBytes = await du(direct);
    ok(directBytes > BIG + (2 << 20), `direct repository ${directBytes} bytes`);
    ok(repoOnly < 1 << 20, `unified repository adds ${repoOnly} bytes to the storage`);
    console.log(
      `du: storage ${storageBytes}, unified repo adds ${repoOnly}, direct repo ${directBytes}`,
    );

    // The same pull again: everything present, nothing fetched.
    const again = await runCfs(["--repo", repo, "--json", "pull", ...common, "--unified", ref]);
    equal(again.code, 0, again.stderr);
    equal(pullResult(again.text).imageId, a.imageId);
  } finally {
    await removeAll(tmp);
  }
});

Deno.test("pull --unified names the image itself: a path with upper case, a space and '+' works; a lower-case path gets podman's own name", async () => {
  needTools();
  const tmp = await Deno.makeTempDir({ prefix: "cfs-unified-names-" });
  try {
    // Two images (two ids): each layout's content names it.
    const small = (id: string): LayerSpec[] => [[
      { type: "dir", path: "boot" },
      { type: "dir", path: "sysroot" },
      { type: "file", path: "usr/lib/os-release", content: `ID=${id}\n` + "x".repeat(100) },
    ]];
    const common = ["--allow-missing-fsverity", "--no-default-hooks", "--algorithm"]
      .concat(["fsverity-sha256-12", "--unified"]);
    /** Image names per id in a storage, as podman lists them. */
    const namesIn = async (storage: string) => {
      const out = await run("podman", ["--root", storage, "images", "--format", "json"]);
      return new Map<string, string[]>(
        JSON.parse(out).map((i: { Id: string; Names?: string[] }) => [i.Id, i.Names ?? []]),
      );
    };

    // podman itself refuses this path (the reason cfs names the image).
    const upper = await buildOciImage(join(tmp, "Build Output+1", "Layout"), {
      tag: "v1",
      layers: small("upper"),
    });
    const upperRef = `oci:${upper.dir}:v1`;
    const refused = await runCfs([
      "--repo",
      join(tmp, "plain"),
      "--json",
      "pull",
      ...common,
      upperRef,
    ]);
    equal(refused.code, 0, `cfs pull --unified ${upperRef}: ${refused.text}${refused.stderr}`);
    const name = storageImageName(upperRef)!;
    equal(name, `localhost${tmp}/build-output-1/layout:latest`);
    const names = await namesIn(join(tmp, "plain", "bootc", "storage"));
    deepEqual(names.get(upper.config.digest.slice(7)), [name]);

    // A path podman accepts: the name is the one `podman pull` gives it.
    const lower = await buildOciImage(join(tmp, "lower", "layout"), {
      tag: "v1",
      layers: small("lower"),
    });
    const lowerRef = `oci:${lower.dir}:v1`;
    const scratch = join(tmp, "podman-storage");
    // podman wants a runroot of at most 50 characters.
    const runroot = await Deno.makeTempDir({ prefix: "cfs-rr-" });
    try {
      await run(
        "unshare",
        ["--mount", "--propagation", "private", "podman", "--root", scratch]
          .concat(["--runroot", runroot, "--storage-driver", "overlay", "pull", "-q", lowerRef]),
      );
    } finally {
      await removeAll(runroot);
    }
    const podmans = (await namesIn(scratch)).get(lower.config.digest.slice(7));
    deepEqual(podmans, [storageImageName(lowerRef)]);
    const r = await runCfs(["--repo", join(tmp, "plain"), "--json", "pull", ...common, lowerRef]);
    equal(r.code, 0, r.stderr);
    deepEqual(
      (await namesIn(join(tmp, "plain", "bootc", "storage"))).get(lower.config.digest.slice(7)),
      podmans,
    );
    await cfsOk(join(tmp, "plain"), "fsck");
  } finally {
    await removeAll(tmp);
  }
});

Deno.test("oci pull containers-storage: reads the store directly; zerocopy across file systems fails naming both paths, auto copies", async () => {
  needTools();
  const tmp = await Deno.makeTempDir({ prefix: "cfs-cstor-" });
  const mnt = join(tmp, "tmpfs");
  await Deno.mkdir(mnt);
  await run("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt]);
  try {
    const built = await build(join(tmp, "img"));
    const storage = join(tmp, "storage");
    await intoStorage(built.dir, storage, "localhost/sample:v1");

    // The reference: the layout pulled directly.
    const direct = await newRepo(join(tmp, "direct"));
    await cfsOk(direct, "oci", "pull", `oci:${built.dir}:v1`, "s");
    const want = (await cfsOk(direct, "oci", "compute-id", "s")).trim();

    // Same file system, by short name: hard links; the same image.
    const same = await newRepo(join(tmp, "same"));
    const r = JSON.parse(
      await cfsOk(
        same,
        "--json",
        "oci",
        "pull",
        "--local-fetch=zerocopy",
        "--storage-root",
        storage,
        "containers-storage:sample:v1",
        "s",
      ),
    );
    equal(r.manifest, built.manifest.digest);
    equal(r.localFetch.stats.hardlinked.objects, 4);
    equal((await cfsOk(same, "oci", "compute-id", "s")).trim(), want);

    // Another file system (tmpfs): zerocopy refuses and says which paths.
    const other = await newRepo(join(mnt, "repo"));
    const z = await runCfs([
      "--repo",
      other,
      "oci",
      "pull",
      "--local-fetch=zerocopy",
      "--storage-root",
      storage,
      "containers-storage:localhost/sample:v1",
      "s",
    ]);
    equal(z.code, 1, z.stderr);
    match(
      z.stderr,
      new RegExp(
        `zerocopy: cannot reflink or hardlink ${storage}/overlay/[0-9a-f]{64}/diff/\\S+ to ${other}/objects/`,
      ),
    );
    match(z.stderr, /EXDEV/);
    // Nothing refers to a partial import.
    equal((await runCfs(["--repo", other, "oci", "compute-id", "s"])).code, 1);

    // auto copies.
    const a = JSON.parse(
      await cfsOk(
        other,
        "--json",
        "oci",
        "pull",
        "--local-fetch=auto",
        "--storage-root",
        storage,
        "containers-storage:localhost/sample:v1",
        "s",
      ),
    );
    equal(a.localFetch.stats.hardlinked.objects, 0);
    equal(a.localFetch.stats.copied.objects, 6);
    equal((await cfsOk(other, "oci", "compute-id", "s")).trim(), want);

    // disabled: through skopeo, same result, no local fetch.
    const viaSkopeo = await newRepo(join(tmp, "skopeo"));
    const d = JSON.parse(
      await cfsOk(
        viaSkopeo,
        "--json",
        "oci",
        "pull",
        "--local-fetch=disabled",
        "--storage-root",
        storage,
        "containers-storage:localhost/sample:v1",
        "s",
      ),
    );
    equal(d.localFetch, null);
    equal((await cfsOk(viaSkopeo, "oci", "compute-id", "s")).trim(), want);
    deepEqual(
      d.layers.map((l: { verity: string }) => l.verity),
      r.layers.map((l: { verity: string }) => l.verity),
    );

    // A file changed in the store after the pull: the rebuilt layer's sha256 is not the
    // diff_id, and nothing is stored under the layer's name.
    // (The other layer's etc/motd is its whiteout: a 0:0 character device.)
    const motd = (await run("find", [storage, "-type", "f", "-path", "*/diff/etc/motd"])).trim();
    await Deno.writeTextFile(motd, "M".repeat(300));
    const bad = await newRepo(join(tmp, "bad"));
    const c = await runCfs([
      "--repo",
      bad,
      "oci",
      "pull",
      "--storage-root",
      storage,
      "containers-storage:localhost/sample:v1",
      "s",
    ]);
    equal(c.code, 1);
    match(c.stderr, /layer content has digest sha256:[0-9a-f]{64}, expected sha256:[0-9a-f]{64}/);
    ok(c.stderr.includes(`expected ${built.layers[0].diffId}`), c.stderr);
    equal((await runCfs(["--repo", bad, "cat", `oci-layer-${built.layers[0].diffId}`])).code, 1);
  } finally {
    await run("umount", [mnt]).catch(() => {});
    await removeAll(tmp);
  }
});

Deno.test("zerocopy on XFS with reflink: objects share the storage files' extents, used space grows by metadata", async () => {
  needTools();
  requireTool("mkfs.xfs", "apt-get install xfsprogs");
  requireTool("filefrag", "apt-get install e2fsprogs");
  const tmp = await Deno.makeTempDir({ prefix: "cfs-xfs-" });
  const img = join(tmp, "xfs.img");
  const mnt = join(tmp, "mnt");
  await Deno.mkdir(mnt);
  await run("truncate", ["-s", "400M", img]);
  await run("mkfs.xfs", ["-q", "-m", "reflink=1", img]);
  await run("mount", ["-o", "loop", img, mnt]);
  try {
    const built = await build(join(tmp, "img"));
    const storage = join(mnt, "storage");
    await intoStorage(built.dir, storage, "localhost/sample:v1");
    const repo = await newRepo(join(mnt, "repo"));
    await run("sync", []);
    const used = async () =>
      Number((await run("df", ["-k", "--output=used", mnt])).trim().split("\n")[1]) * 1024;
    const before = await used();
    const r = JSON.parse(
      await cfsOk(
        repo,
        "--json",
        "oci",
        "pull",
        "--local-fetch=zerocopy",
        "--storage-root",
        storage,
        "containers-storage:localhost/sample:v1",
        "s",
      ),
    );
    await run("sync", []);
    const grown = (await used()) - before;
    // Reflinks for everything, setuid and foreign-owned files included (a clone is a new inode).
    equal(r.localFetch.stats.reflinked.objects, 6);
    equal(r.localFetch.stats.hardlinked.objects, 0);
    equal(r.localFetch.stats.copied.objects, 0);
    ok(grown < 1 << 20, `used space grew by ${grown} bytes for ${BIG} bytes of big file`);
    console.log(
      `xfs: used space grew by ${grown} bytes (data: ${r.localFetch.stats.reflinked.bytes} bytes reflinked)`,
    );

    const bigInStorage = (await run("sh", ["-c", `ls -d ${storage}/overlay/*/diff/usr/lib/big`]))
      .trim();
    const objects =
      (await run("find", [join(repo, "objects"), "-type", "f", "-size", `${BIG / 1024}k`])).trim()
        .split("\n");
    equal(objects.length, 1);
    notEqual(
      (await run("stat", ["-c", "%i", objects[0]])).trim(),
      (await run("stat", ["-c", "%i", bigInStorage])).trim(),
    );
    const extents = async (p: string) =>
      (await run("filefrag", ["-v", p])).split("\n").filter((l) => /^\s*\d+:/.test(l)).map((l) =>
        l.split(":").slice(2, 3).join("").trim()
      );
    const e1 = await extents(bigInStorage);
    ok(e1.length > 0);
    deepEqual(await extents(objects[0]), e1);
    match(await run("filefrag", ["-v", objects[0]]), /shared/);
    equal((await cfsOk(repo, "oci", "compute-id", "s")).trim().length, 64);
  } finally {
    await run("umount", [mnt]).catch(() => {});
    await removeAll(tmp);
  }
});
