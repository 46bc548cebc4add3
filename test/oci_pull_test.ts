/**
 * `cfs oci pull` from OCI image layouts on the host (insecure sha256 repository), then
 * `cfs oci compute-id` and `cfs oci dump` checked against composefs-ctl 0.9.4's `cfsctl
 * compute-id` / `create-dumpfile` run on the same image's rootfs unpacked by `umoci unpack`.
 * cfsctl 0.9.4 applies the container-root transform to a directory as composefs-oci applies it
 * to layers (the root's metadata from /usr, /run emptied, xattrs filtered), so an unpacked
 * rootfs and the pulled layers must give the same image.
 *
 * @module
 */
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { cfsOk, requireTool, run, runCfs } from "./cfs.ts";
import { cfsctl09Ok } from "./oracles.ts";
import { buildOciImage, type Compression, FIXTURE_MTIME, SAMPLE_LAYERS } from "./fixtures/oci.ts";

const LAYERS = SAMPLE_LAYERS;

const cfs = cfsOk;

/** cfsctl 0.9.4 on a directory, without a repository, sha256 as the repositories here. */
function oracle(command: string, path: string, ...flags: string[]): Promise<string> {
  return cfsctl09Ok(["--no-repo", "--hash", "sha256", command, ...flags, path]);
}

async function build(dir: string, tag: string, compression: Compression[]): Promise<void> {
  await buildOciImage(dir, { layers: LAYERS, tag, compression });
}

/** `cfs oci pull` and `cfsctl oci pull` print these lines; the objects line differs. */
const PULL_OUTPUT =
  /^manifest sha256:([0-9a-f]{64})\nconfig {3}sha256:([0-9a-f]{64})\nverity {3}([0-9a-f]{64})\ntagged {3}(.*)\nobjects {2}.*\n$/;

Deno.test("oci pull from a layout: ids and dumpfile equal cfsctl 0.9.4 on the umoci-unpacked rootfs", async () => {
  requireTool("umoci", "apt-get install umoci");
  requireTool("tar", "apt-get install tar");
  const tmp = await Deno.makeTempDir({ prefix: "cfs-oci-pull-" });
  try {
    const repo = join(tmp, "repo");
    await cfs(repo, "init", "--insecure", "--algorithm", "fsverity-sha256-12");
    // gzip + zstd (what cfs pulls) and all-gzip (what umoci can unpack): same tars.
    const mixed = join(tmp, "mixed");
    const gz = join(tmp, "gz");
    await build(mixed, "v1", ["gzip", "zstd", "gzip"]);
    await build(gz, "v1", ["gzip", "gzip", "gzip"]);

    const pulled = await cfs(repo, "oci", "pull", `oci:${mixed}:v1`, "mixed");
    const m = PULL_OUTPUT.exec(pulled);
    ok(m, `pull output: ${JSON.stringify(pulled)}`);
    const [manifestHex, configHex, manifestVerity] = [m[1], m[2], m[3]];
    equal(m[4], "mixed");
    // The manifest's digest is its blob's sha256 (sha256sum: the layout names blobs by it).
    const manifestBlob = await Deno.readFile(join(mixed, "blobs", "sha256", manifestHex));
    equal(
      (await run("sha256sum", [join(mixed, "blobs", "sha256", manifestHex)])).slice(0, 64),
      manifestHex,
    );
    const streamsBefore = await listTree(repo);
    // A second pull stores nothing new: same image, no new files.
    const again = await cfs(repo, "oci", "pull", `oci:${mixed}:v1`, "mixed");
    equal(again.split("\n").slice(0, 4).join("\n"), pulled.split("\n").slice(0, 4).join("\n"));
    deepEqual(await listTree(repo), streamsBefore);
    // The stored config reproduces the config blob byte for byte.
    const configBlob = await Deno.readFile(join(mixed, "blobs", "sha256", configHex));
    const catted = await runCfs(["--repo", repo, "cat", `oci-config-sha256:${configHex}`]);
    equal(catted.code, 0, catted.stderr);
    deepEqual(catted.stdout, configBlob);
    // So does the manifest, which the tag (streams/refs/oci/mixed) points at.
    deepEqual((await runCfs(["--repo", repo, "cat", "refs/oci/mixed"])).stdout, manifestBlob);
    equal(
      await Deno.readLink(join(repo, "streams", "refs", "oci", "mixed")),
      `../../oci-manifest-sha256:${manifestHex}`,
    );

    // Without NAME the image reference itself is the tag (cfsctl's behaviour).
    const byRef = await cfs(repo, "oci", "pull", `oci:${gz}:v1`);
    equal(PULL_OUTPUT.exec(byRef)?.[4], `oci:${gz}:v1`, byRef);
    await cfs(repo, "oci", "tag", `sha256:${PULL_OUTPUT.exec(byRef)![1]}`, "gz");

    const idMixed = (await cfs(repo, "oci", "compute-id", "mixed")).trim();
    const idByConfig = (await cfs(repo, "oci", "compute-id", configHex)).trim();
    const idGz = (await cfs(repo, "oci", "compute-id", "gz")).trim();
    equal(idByConfig, idMixed);
    equal((await cfs(repo, "oci", "compute-id", `@sha256:${manifestHex}`)).trim(), idMixed);
    const { images } = JSON.parse(await cfs(repo, "--json", "oci", "images"));
    deepEqual(images.map((i: { name: string }) => i.name), ["gz", "mixed", `oci:${gz}:v1`]);
    equal(images[1].manifest_digest, `sha256:${manifestHex}`);
    equal(images[1].layer_count, 3);
    equal(idGz, idMixed);
    // The pull made the image (V1, the repository's default) and linked it from the config.
    const inspect = JSON.parse(await cfs(repo, "oci", "inspect", "mixed"));
    equal(inspect.composefs_erofs, idMixed);
    ok(await Deno.lstat(join(repo, "images", idMixed)));
    equal(inspect.manifest, new TextDecoder().decode(manifestBlob));
    ok(manifestVerity.length === 64);

    // The reference: umoci unpack, then cfsctl 0.9.4 on the rootfs.
    const bundle = join(tmp, "bundle");
    await run("umoci", ["unpack", "--image", `${gz}:v1`, bundle]);
    const rootfs = join(bundle, "rootfs");
    const refId = (await oracle("compute-id", rootfs)).trim();
    const refDump = await oracle("create-dumpfile", rootfs);
    const dump = await cfs(repo, "oci", "dump", "mixed");
    equal(dump, refDump);
    equal(idMixed, refId, "cfs oci compute-id != cfsctl compute-id of the unpacked rootfs");
    // With user xattrs kept, both still agree.
    const keep = ["--xattrs", "keep-user-xattrs"];
    const dumpKeep = await cfs(repo, "oci", "dump", ...keep, "mixed");
    equal(dumpKeep, await oracle("create-dumpfile", rootfs, ...keep));
    equal(
      (await cfs(repo, "oci", "compute-id", ...keep, "mixed")).trim(),
      (await oracle("compute-id", rootfs, ...keep)).trim(),
    );
    // Whiteouts, the opaque directory and the cross-layer hardlink did what they should.
    ok(!dump.includes("/etc/gone "));
    ok(!dump.includes("/gonedir"));
    ok(!dump.includes("/opq/old"));
    ok(dump.includes("/opq/new "));
    ok(!dump.includes("/run/fifo"), "/run is emptied");
    ok(/\n\/usr\/bin\/tool2 0 @120000 - - - - 0\.0 \/usr\/bin\/tool - -\n/.test(dump), dump);
    ok(dump.includes("\n/etc/attr 1 100644 1 0 0 0 1700000000.0 - y -\n"), "user xattrs dropped");
    ok(dumpKeep.includes("\n/etc/attr 1 100644 1 0 0 0 1700000000.0 - y - user.a=1 user.b=2\n"));

    const fsck = await runCfs(["--repo", repo, "fsck"]);
    equal(fsck.code, 0, fsck.text + fsck.stderr);

    // Another image sharing the first layer: that layer is not imported again.
    const other = join(tmp, "other");
    await buildOciImage(other, { layers: [LAYERS[0]], tag: "v1" });
    const json = JSON.parse(await cfs(repo, "--json", "oci", "pull", `oci:${other}:v1`));
    equal(json.layersImported, 0);
    notEqual((await cfs(repo, "oci", "compute-id", `@${json.manifest}`)).trim(), idMixed);
    equal((await runCfs(["--repo", repo, "fsck"])).code, 0);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

async function listTree(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(dir, rel))) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    out.push(p);
    if (e.isDirectory) out.push(...await listTree(dir, p));
  }
  return out.sort();
}

Deno.test("oci pull: files over 64 bytes are external objects with the right ids", async () => {
  requireTool("tar", "apt-get install tar");
  const tmp = await Deno.makeTempDir({ prefix: "cfs-oci-pull-big-" });
  try {
    const repo = join(tmp, "repo");
    await cfs(repo, "init", "--insecure", "--algorithm", "fsverity-sha256-12");
    const big = (n: number, c: string) => c.repeat(n);
    const layout = join(tmp, "big");
    const built = await buildOciImage(layout, {
      tag: "v1",
      compression: ["gzip", "zstd"],
      layers: [
        [
          { type: "dir", path: "usr" },
          { type: "file", path: "d/65", content: big(65, "a") },
          { type: "file", path: "d/64", content: big(64, "b") },
          { type: "file", path: "d/5000", content: big(5000, "c") },
          { type: "file", path: "d/gone", content: big(300, "d") },
        ],
        [
          { type: "whiteout", path: "d/gone" },
          { type: "file", path: "d/200000", content: big(200000, "e") },
          { type: "hardlink", path: "d/link", target: "d/5000" },
        ],
      ],
    });
    await cfs(repo, "oci", "pull", `oci:${layout}:v1`, "big");
    const id = (await cfs(repo, "oci", "compute-id", "big")).trim();
    const dump = await cfs(repo, "oci", "dump", "big");
    // Reference: the same layers as tars extracted in order by GNU tar (whiteouts applied by
    // hand), then cfsctl 0.9.4 compute-id on the result.
    const rootfs = join(tmp, "rootfs");
    await Deno.mkdir(rootfs);
    for (const layer of built.layers) {
      await run("tar", ["-xpf", layer.tarPath, "--xattrs", "--xattrs-include=*", "-C", rootfs]);
      const whiteouts: string[] = [];
      for await (const p of walk(rootfs)) {
        if (p.split("/").pop()!.startsWith(".wh.")) whiteouts.push(p);
      }
      for (const p of whiteouts) {
        const base = p.split("/").pop()!;
        await Deno.remove(join(p, "..", base.slice(4)), { recursive: true });
        await Deno.remove(p);
      }
    }
    // Removing whiteouts touched directories: back to the fixture's mtime, as in the tars.
    await run("find", [
      rootfs,
      "-type",
      "d",
      "-exec",
      "touch",
      "-d",
      `@${FIXTURE_MTIME}`,
      "{}",
      "+",
    ]);
    const ref = (await oracle("compute-id", rootfs)).trim();
    const refDump = await oracle("create-dumpfile", rootfs);
    equal(dump, refDump);
    equal(id, ref);
    // Files over 64 bytes are external: their object is the content's fs-verity digest.
    const objects = (await cfs(repo, "image-objects", id)).trim().split("\n").sort();
    const want = (await run("fsverity", [
      "digest",
      "--hash-alg=sha256",
      join(rootfs, "d", "65"),
      join(rootfs, "d", "5000"),
      join(rootfs, "d", "200000"),
    ])).trim().split("\n").map((l) => l.split(" ")[0]).sort();
    deepEqual(objects, want);
    ok(dump.includes("/d/5000 5000 100644 2 0 0 0 1700000000.0 "));
    ok(dump.includes("/d/64 64 100644 1 0 0 0 1700000000.0 - bbbb"));
    const fsck = await runCfs(["--repo", repo, "fsck"]);
    equal(fsck.code, 0, fsck.text + fsck.stderr);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    yield p;
    if (e.isDirectory && !e.isSymlink) yield* walk(p);
  }
}
