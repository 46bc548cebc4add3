/**
 * `cfs oci pull` from OCI image layouts on the host (insecure sha256 repository), then
 * `cfs oci compute-id` and `cfs oci dump` checked against cfsctl 0.3.0 run on the same
 * image's rootfs unpacked by `umoci unpack` (every file is at most 64 bytes, so cfsctl needs
 * no fs-verity). The layers have no root entry, so the image's root is cfsctl's synthetic
 * root (0555, uid 0, newest mtime): the unpacked rootfs is compared without --stat-root.
 *
 * @module
 */
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { cfsOk, requireTool, run, runCfs } from "./cfs.ts";
import { cfsctl03 } from "./oracles.ts";
import { buildOciImage, type Compression, FIXTURE_MTIME, SAMPLE_LAYERS } from "./fixtures/oci.ts";

const CFSCTL = cfsctl03();

const LAYERS = SAMPLE_LAYERS;

const cfs = cfsOk;

async function build(dir: string, tag: string, compression: Compression[]): Promise<void> {
  await buildOciImage(dir, { layers: LAYERS, tag, compression });
}

Deno.test("oci pull from a layout: ids and dumpfile equal cfsctl on the umoci-unpacked rootfs", async () => {
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
    const m = /^sha256 ([0-9a-f]{64})\nverity ([0-9a-f]{64})\nmanifest sha256:([0-9a-f]{64})\n$/
      .exec(pulled);
    ok(m, `pull output: ${JSON.stringify(pulled)}`);
    const streamsBefore = await listTree(repo);
    // A second pull is a no-op: same output, no new files.
    equal(await cfs(repo, "oci", "pull", `oci:${mixed}:v1`, "mixed"), pulled);
    deepEqual(await listTree(repo), streamsBefore);
    // The stored config reproduces the config blob byte for byte.
    const configBlob = await Deno.readFile(join(mixed, "blobs", "sha256", m[1]));
    const catted = await runCfs(["--repo", repo, "cat", m[1]]);
    deepEqual(catted.stdout, configBlob);
    // So does the manifest, which the tag (streams/refs/oci/mixed) points at.
    const manifestBlob = await Deno.readFile(join(mixed, "blobs", "sha256", m[3]));
    deepEqual((await runCfs(["--repo", repo, "cat", "refs/oci/mixed"])).stdout, manifestBlob);

    await cfs(repo, "oci", "pull", `oci:${gz}:v1`, "gz");

    const idMixed = (await cfs(repo, "oci", "compute-id", "mixed")).trim();
    const idBySha = (await cfs(repo, "oci", "compute-id", m[1])).trim();
    const idGz = (await cfs(repo, "oci", "compute-id", "gz")).trim();
    equal(idBySha, idMixed);
    equal((await cfs(repo, "oci", "compute-id", `sha256:${m[3]}`)).trim(), idMixed);
    const images = JSON.parse(await cfs(repo, "--json", "oci", "images"));
    deepEqual(images.map((i: { tag: string }) => i.tag), ["gz", "mixed"]);
    equal(images[1].manifest, `sha256:${m[3]}`);
    equal(images[1].layers, 3);
    equal(idGz, idMixed);

    // The reference: umoci unpack, then cfsctl on the rootfs.
    const bundle = join(tmp, "bundle");
    await run("umoci", ["unpack", "--image", `${gz}:v1`, bundle]);
    const rootfs = join(bundle, "rootfs");
    const cfsctlRepo = join(tmp, "cfsctl-repo");
    await Deno.mkdir(cfsctlRepo);
    const refId = (await run(CFSCTL, ["--repo", cfsctlRepo, "compute-id", rootfs])).trim();
    const refDump = await run(CFSCTL, ["--repo", cfsctlRepo, "create-dumpfile", rootfs]);
    const dump = await cfs(repo, "oci", "dump", "mixed");
    equal(dump, refDump);
    equal(idMixed, refId, "cfs oci compute-id != cfsctl compute-id of the unpacked rootfs");
    // Whiteouts, the opaque directory and the cross-layer hardlink did what they should.
    ok(!dump.includes("/etc/gone "));
    ok(!dump.includes("/gonedir"));
    ok(!dump.includes("/opq/old"));
    ok(dump.includes("/opq/new "));
    ok(dump.includes("\n/usr/bin/tool2 0 @120000 - - - - 0.0 /usr/bin/tool - -\n"), dump);
    ok(dump.includes("\n/etc/attr 1 100644 1 0 0 0 1700000000.0 - y - user.a=1 user.b=2\n"));

    const fsck = await runCfs(["--repo", repo, "fsck"]);
    equal(fsck.code, 0, fsck.text + fsck.stderr);

    // Another image sharing the first layer: that layer is not imported again.
    const other = join(tmp, "other");
    await buildOciImage(other, { layers: [LAYERS[0]], tag: "v1" });
    const json = JSON.parse(await cfs(repo, "--json", "oci", "pull", `oci:${other}:v1`));
    equal(json.layersImported, 0);
    notEqual((await cfs(repo, "oci", "compute-id", json.sha256)).trim(), idMixed);
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
    // hand), then cfs compute-id (conformance-tested against cfsctl) on the result.
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
    const ref = (await runCfs(["compute-id", rootfs])).text.trim();
    const refDump = (await runCfs(["create-dumpfile", rootfs])).text;
    equal(dump, refDump);
    equal(id, ref);
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
