/**
 * `cfs oci pull` from every source against a real registry (Debian's docker-registry on
 * 127.0.0.1, images pushed with skopeo), an oci-archive and a skopeo-only transport
 * (`dir:`), plus the image bookkeeping around it: tags, images, inspect, fsck, gc, mount.
 *
 * The reference for "the right file system" is the same image pulled from its OCI layout,
 * whose image id oci_pull_test.ts checks against cfsctl 0.9.4 on the umoci-unpacked rootfs.
 * Digests compared here come from the fixture builder (sha256sum), skopeo or `fsverity
 * digest`; gc and fsck are also run by cfsctl 0.9.4 on the same repository, which must agree.
 *
 * @module
 */
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { cfsOk, pathExists, requireTool, run, runCfs } from "./cfs.ts";
import { buildOciImage, buildOciIndex, SAMPLE_LAYERS, skopeoInspect } from "./fixtures/oci.ts";
import { pushToRegistry, REGISTRY_BINARY, startRegistry } from "./fixtures/registry.ts";
import { cfsctl09Ok, runCfsctl09 } from "./oracles.ts";

const cfs = cfsOk;

async function newRepo(dir: string): Promise<string> {
  await cfs(dir, "init", "--insecure", "--algorithm", "fsverity-sha256-12");
  return dir;
}

function needTools(): void {
  requireTool(REGISTRY_BINARY, "apt-get install docker-registry");
  requireTool("skopeo", "apt-get install skopeo");
}

Deno.test("oci pull from a registry by tag and by digest equals the pull from the layout", async () => {
  needTools();
  const tmp = await Deno.makeTempDir({ prefix: "cfs-reg-pull-" });
  await using registry = await startRegistry();
  try {
    const built = await buildOciImage(join(tmp, "img"), {
      tag: "v1",
      layers: SAMPLE_LAYERS,
      compression: ["gzip", "zstd", "gzip"],
    });
    const ref = await pushToRegistry(registry, `oci:${built.dir}:v1`, "cfs/sample:v1");
    equal((await skopeoInspect(ref, ["--tls-verify=false"])).Digest, built.manifest.digest);

    const a = await newRepo(join(tmp, "a"));
    await cfs(a, "oci", "pull", `oci:${built.dir}:v1`, "sample");
    const want = (await cfs(a, "oci", "compute-id", "sample")).trim();

    const b = await newRepo(join(tmp, "b"));
    const byTag = JSON.parse(
      await cfs(b, "--json", "oci", "pull", "--tls-verify=false", ref, "sample"),
    );
    equal(byTag.manifest, built.manifest.digest);
    equal(byTag.config, built.config.digest);
    equal(byTag.layersImported, 3);
    deepEqual(
      byTag.layers.map((l: { diffId: string }) => l.diffId),
      built.layers.map((l) => l.diffId),
    );
    equal((await cfs(b, "oci", "compute-id", "sample")).trim(), want);

    // By digest, into the same repository: nothing new is fetched.
    const pinned = `docker://${registry.host}/cfs/sample@${built.manifest.digest}`;
    const byDigest = JSON.parse(
      await cfs(b, "--json", "oci", "pull", "--tls-verify=false", pinned, "pinned"),
    );
    equal(byDigest.layersImported, 0);
    equal(byDigest.manifestVerity, byTag.manifestVerity);
    // Streams are the same objects whichever source they came from.
    const inspectA = JSON.parse(await cfs(a, "--json", "oci", "inspect", "sample"));
    const inspectB = JSON.parse(await cfs(b, "--json", "oci", "inspect", "pinned"));
    equal(inspectA.layers.length, 3);
    deepEqual(inspectB.layers, inspectA.layers);
    ok(/^[0-9a-f]{64}$/.test(inspectA.config_verity), inspectA.config_verity);
    equal(inspectB.config_verity, inspectA.config_verity);
    equal(inspectB.manifest_verity, inspectA.manifest_verity);
    equal(inspectB.manifest_verity, byTag.manifestVerity);
    equal(inspectB.composefs_erofs, want);
    deepEqual(inspectB.tags, ["pinned", "sample"]);

    // A fresh repository pulled by digest gets the same id too.
    const c = await newRepo(join(tmp, "c"));
    await cfs(c, "oci", "pull", "--tls-verify=false", pinned);
    equal((await cfs(c, "oci", "compute-id", built.manifest.digest)).trim(), want);
    equal((await runCfs(["--repo", b, "fsck"])).code, 0);
    const ofsck = JSON.parse(await cfs(b, "--json", "oci", "fsck"));
    ok(ofsck.ok, JSON.stringify(ofsck));
    equal(ofsck.images_checked, 2);
    // cfsctl 0.9.4 finds the repository and both tags sound too.
    await cfsctl09Ok(["--repo", b, "oci", "fsck"]);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

Deno.test("oci pull of a two-platform index picks the platform asked for", async () => {
  needTools();
  const tmp = await Deno.makeTempDir({ prefix: "cfs-reg-index-" });
  await using registry = await startRegistry();
  try {
    const built = await buildOciIndex(join(tmp, "idx"), {
      tag: "v1",
      images: [
        {
          platform: { os: "linux", architecture: "amd64" },
          layers: [[{ type: "dir", path: "usr" }, {
            type: "file",
            path: "arch",
            content: "amd64\n",
          }]],
        },
        {
          platform: { os: "linux", architecture: "arm64", variant: "v8" },
          compression: "zstd",
          layers: [[{ type: "dir", path: "usr" }, {
            type: "file",
            path: "arch",
            content: "arm64\n",
          }]],
        },
      ],
    });
    const ref = await pushToRegistry(registry, `oci:${built.dir}:v1`, "cfs/multi:v1", {
      all: true,
    });
    const repo = await newRepo(join(tmp, "repo"));
    const arm = JSON.parse(
      await cfs(
        repo,
        "--json",
        "oci",
        "pull",
        "--tls-verify=false",
        "--platform",
        "linux/arm64/v8",
        ref,
        "arm",
      ),
    );
    equal(arm.manifest, built.images[1].manifest.digest);
    equal(arm.config, built.images[1].config.digest);
    const amd = JSON.parse(
      await cfs(
        repo,
        "--json",
        "oci",
        "pull",
        "--tls-verify=false",
        "--platform",
        "linux/amd64",
        ref,
        "amd",
      ),
    );
    equal(amd.manifest, built.images[0].manifest.digest);
    ok((await cfs(repo, "oci", "dump", "arm")).includes("/arch 6 100644 1 0 0 0 "));
    const { images } = JSON.parse(await cfs(repo, "--json", "oci", "images"));
    deepEqual(
      images.map((i: { name: string; os: string; architecture: string }) => [
        i.name,
        `${i.os}/${i.architecture}`,
      ]),
      [["amd", "linux/amd64"], ["arm", "linux/arm64"]],
    );
    equal(JSON.parse(await cfs(repo, "oci", "inspect", "--config", "arm")).variant, "v8");
    const none = await runCfs([
      "--repo",
      repo,
      "oci",
      "pull",
      "--tls-verify=false",
      "--platform",
      "linux/s390x",
      ref,
    ]);
    equal(none.code, 1);
    ok(/no image for platform linux\/s390x/.test(none.stderr), none.stderr);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

Deno.test("oci pull from oci-archive: and from skopeo's dir: transport", async () => {
  requireTool("skopeo", "apt-get install skopeo");
  const tmp = await Deno.makeTempDir({ prefix: "cfs-archive-pull-" });
  try {
    const built = await buildOciImage(join(tmp, "img"), { tag: "v1", layers: SAMPLE_LAYERS });
    const repo = await newRepo(join(tmp, "repo"));
    await cfs(repo, "oci", "pull", `oci:${built.dir}:v1`, "layout");
    const want = (await cfs(repo, "oci", "compute-id", "layout")).trim();

    const archive = join(tmp, "img.tar");
    await run("tar", ["-cf", archive, "-C", built.dir, "."]);
    const r = JSON.parse(
      await cfs(repo, "--json", "oci", "pull", `oci-archive:${archive}:v1`, "archive"),
    );
    equal(r.manifest, built.manifest.digest);
    equal((await cfs(repo, "oci", "compute-id", "archive")).trim(), want);

    // dir: is a transport only skopeo knows; the layers come back the same (same diff_ids).
    const dirCopy = join(tmp, "dircopy");
    await run("skopeo", ["copy", "--quiet", `oci:${built.dir}:v1`, `dir:${dirCopy}`]);
    const d = JSON.parse(await cfs(repo, "--json", "oci", "pull", `dir:${dirCopy}`, "dir"));
    equal(d.layersImported, 0);
    equal((await cfs(repo, "oci", "compute-id", "dir")).trim(), want);

    const missing = await runCfs(["--repo", repo, "oci", "pull", `dir:${tmp}/nothere`]);
    equal(missing.code, 1);
    equal(missing.stderr.trim().split("\n").length, 1, missing.stderr);
    ok(missing.stderr.includes(`dir:${tmp}/nothere`), missing.stderr);
    // The temporary layouts are gone.
    const leftovers = [...Deno.readDirSync(Deno.env.get("TMPDIR") ?? "/tmp")]
      .filter((e) => e.name.startsWith("cfs-skopeo-") || e.name.startsWith("cfs-oci-archive-"));
    deepEqual(leftovers, []);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

Deno.test("tags are gc roots: untag and gc remove the image's streams, images and objects", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-tags-gc-" });
  try {
    const big = "x".repeat(5000);
    const usr = { type: "dir", path: "usr" } as const;
    const one = await buildOciImage(join(tmp, "one"), {
      tag: "v1",
      layers: [[usr, { type: "file", path: "a", content: big + "1" }]],
    });
    const two = await buildOciImage(join(tmp, "two"), {
      tag: "v1",
      layers: [[usr, { type: "file", path: "b", content: big + "2" }]],
    });
    const repo = await newRepo(join(tmp, "repo"));
    await cfs(repo, "oci", "pull", `oci:${one.dir}:v1`, "one");
    await cfs(repo, "oci", "pull", `oci:${two.dir}:v1`, "localhost/two:latest");
    await cfs(repo, "oci", "tag", "one", "one-again");
    // Percent-encoding: the slash in the tag is one file name.
    ok(Deno.lstatSync(join(repo, "streams/refs/oci/localhost%2Ftwo:latest")).isSymlink);
    const idTwo = (await cfs(repo, "oci", "create-image", "localhost/two:latest")).trim();
    const idOne = (await cfs(repo, "oci", "create-image", "one")).trim();
    notEqual(idOne, idTwo);

    // A pull leaves the config and manifest streams it wrote before linking the images: gc
    // removes those (composefs-oci 0.9.4 leaves them too), and then nothing is garbage while
    // the images are tagged.
    const first = JSON.parse(await cfs(repo, "--json", "gc"));
    equal(first.objectsRemoved, 4, JSON.stringify(first));
    const dry = JSON.parse(await cfs(repo, "--json", "gc", "--dry-run"));
    deepEqual([dry.objectsRemoved, dry.imagesPruned, dry.streamsPruned], [0, 0, 0]);
    equal((await cfs(repo, "oci", "compute-id", "localhost/two:latest")).trim(), idTwo);

    await cfs(repo, "oci", "untag", "localhost/two:latest");
    // cfsctl 0.9.4 would remove as many objects and bytes as cfs (its dry run counts no links
    // to prune: they break only once the objects are gone).
    const cfsctlDry = await cfsctl09Ok(["--repo", repo, "gc", "--dry-run"]);
    const objectsLine = (text: string) => text.split("\n").find((l) => l.startsWith("Objects:"));
    equal(objectsLine(await cfs(repo, "gc", "--dry-run")), objectsLine(cfsctlDry));
    const gc = JSON.parse(await cfs(repo, "--json", "gc"));
    // "two"'s objects: the 5001-byte file, the config and manifest documents (each an object
    // named by the fs-verity digest of its blob, from `fsverity digest`), the image, and the
    // layer, config and manifest stream objects; their links are pruned.
    const file = join(tmp, "b");
    await Deno.writeTextFile(file, big + "2");
    const digests = (await run("fsverity", [
      "digest",
      "--compact",
      file,
      two.config.path,
      two.manifest.path,
    ])).trim().split("\n");
    equal(gc.objectsRemoved, 7, JSON.stringify(gc));
    for (const d of [...digests, idTwo]) {
      ok(gc.removedObjects.includes(d), `${d} not in ${JSON.stringify(gc.removedObjects)}`);
    }
    deepEqual([gc.imagesPruned, gc.streamsPruned], [1, 3]);
    ok(cfsctlDry.includes(`Objects: 7 removed (${gc.objectsBytes} bytes)`), cfsctlDry);
    for (
      const name of [
        `oci-manifest-${two.manifest.digest}`,
        `oci-config-${two.config.digest}`,
        `oci-layer-${two.layers[0].diffId}`,
      ]
    ) {
      ok(!(await pathExists(join(repo, "streams", name))), `${name} is gone`);
    }
    ok(!(await pathExists(join(repo, "images", idTwo))));
    deepEqual(
      JSON.parse(await cfs(repo, "--json", "oci", "images")).images.map((i: { name: string }) =>
        i.name
      ),
      ["one", "one-again"],
    );
    // "one" is still whole, and untagging it once leaves the other tag holding it.
    await cfs(repo, "oci", "untag", "one");
    equal(JSON.parse(await cfs(repo, "--json", "gc")).objectsRemoved, 0);
    equal((await cfs(repo, "oci", "create-image", "one-again")).trim(), idOne);
    equal((await runCfs(["--repo", repo, "fsck"])).code, 0);
    await cfsctl09Ok(["--repo", repo, "fsck"]);
    const missing = await runCfs(["--repo", repo, "oci", "untag", "one"]);
    equal(missing.code, 1);
    ok(missing.stderr.includes("no image tagged 'one'"), missing.stderr);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

Deno.test("oci fsck finds a corrupted layer object and names it", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-oci-fsck-" });
  try {
    const built = await buildOciImage(join(tmp, "img"), {
      tag: "v1",
      layers: [[{ type: "dir", path: "usr" }, {
        type: "file",
        path: "big",
        content: "y".repeat(10000),
      }]],
    });
    const repo = await newRepo(join(tmp, "repo"));
    await cfs(repo, "oci", "pull", `oci:${built.dir}:v1`, "img");
    equal(JSON.parse(await cfs(repo, "--json", "oci", "fsck", "img")).ok, true);
    // The object of the 10000-byte file: its fs-verity digest, from `fsverity digest`.
    const file = join(tmp, "big");
    await Deno.writeTextFile(file, "y".repeat(10000));
    const digest = (await run("fsverity", ["digest", "--compact", file])).trim();
    const obj = join(repo, "objects", digest.slice(0, 2), digest.slice(2));
    const bytes = await Deno.readFile(obj);
    bytes[5000] ^= 1;
    await Deno.chmod(obj, 0o644);
    await Deno.writeFile(obj, bytes);
    const r = await runCfs(["--repo", repo, "oci", "fsck"]);
    equal(r.code, 1);
    const path = `objects/${digest.slice(0, 2)}/${digest.slice(2)}`;
    ok(r.text.includes(`fsck: object-digest-mismatch: ${path}`), r.text);
    // cfsctl 0.9.4 fails on the same repository and names the same object.
    const oracle = await runCfsctl09(["--repo", repo, "oci", "fsck"]);
    notEqual(oracle.code, 0);
    ok(oracle.text.includes(path), oracle.text + oracle.stderr);
    equal(JSON.parse(await cfs(repo, "--json", "oci", "fsck")).ok, false);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

Deno.test("oci mount shows the merged image through the kernel's EROFS and overlayfs", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-oci-mount-" });
  const mnt = join(tmp, "mnt");
  await Deno.mkdir(mnt);
  let mounted = false;
  try {
    const built = await buildOciImage(join(tmp, "img"), { tag: "v1", layers: SAMPLE_LAYERS });
    const repo = await newRepo(join(tmp, "repo"));
    await cfs(repo, "oci", "pull", `oci:${built.dir}:v1`, "img");
    await cfs(repo, "oci", "mount", "img", mnt);
    mounted = true;
    equal(await Deno.readTextFile(join(mnt, "etc/hostname")), "two\n");
    equal(await Deno.readTextFile(join(mnt, "opq/new")), "new\n");
    ok(!(await pathExists(join(mnt, "etc/gone"))));
    ok(!(await pathExists(join(mnt, "opq/old1"))));
    equal(
      (await Deno.stat(join(mnt, "usr/bin/tool2"))).ino,
      (await Deno.stat(join(mnt, "usr/bin/tool"))).ino,
    );
    equal((await Deno.stat(join(mnt, "etc/hostname"))).mode! & 0o7777, 0o600);
    // The top-level mount takes the image by id (oci mount committed it).
    const id = JSON.parse(await cfs(repo, "--json", "oci", "inspect", "img")).composefs_erofs;
    ok(/^[0-9a-f]{64}$/.test(id), id);
    const mnt2 = join(tmp, "mnt2");
    await Deno.mkdir(mnt2);
    await cfs(repo, "mount", id, mnt2);
    try {
      equal(await Deno.readTextFile(join(mnt2, "opq/new")), "new\n");
    } finally {
      await run("umount", [mnt2]);
    }
  } finally {
    if (mounted) await run("umount", [mnt]).catch(() => {});
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
