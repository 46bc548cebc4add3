/**
 * `cfs pull` (the seed's pull) end to end against a real registry: a kernel-bootable image
 * (busybox + the host's Debian kernel in `/usr/lib/modules/KVER`, test/fixtures/bootable.ts)
 * is pushed with skopeo, pulled into a repository that does not exist yet, tagged
 * `localhost/bootc-<manifest digest>`, written as the bootable EROFS, and its boot entry
 * found. The kernel and initramfs read back from the repository's objects are
 * byte-identical to the files put into the image (compared with `sha256sum`), and the
 * image id equals cfsctl 0.9.4's `compute-id --bootable` of the rootfs unpacked by umoci.
 *
 * The host has no fs-verity, so the repository is created insecure with
 * `--allow-missing-fsverity`; without it the pull must fail cleanly. Real fs-verity is
 * covered by the VM tests.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { cfsOk, pathExists, pullResult, requireTool, run, runCfs } from "./cfs.ts";
import { buildBootableImage } from "./fixtures/bootable.ts";
import { buildOciImage } from "./fixtures/oci.ts";
import { pushToRegistry, REGISTRY_BINARY, startRegistry } from "./fixtures/registry.ts";
import { cfsctl09Ok } from "./oracles.ts";

/**
 * The error lines of a run: `cfs pull` also reports progress on stderr (layers, image,
 * tags; stage events only with -v), and ends a failure with one `cfs: ...` line.
 */
function errorLines(stderr: string): string[] {
  ok(!stderr.includes("    at "), `no stack trace: ${stderr}`);
  return stderr.trim().split("\n").filter((l) => l.startsWith("cfs: ") || l.startsWith("error: "));
}

async function sha256(path: string): Promise<string> {
  return (await run("sha256sum", [path])).split(" ")[0];
}

Deno.test("cfs pull: registry -> new repository -> bootc tag, bootable image, boot entry", async () => {
  requireTool(REGISTRY_BINARY, "apt-get install docker-registry");
  requireTool("skopeo", "apt-get install skopeo");
  requireTool("umoci", "apt-get install umoci");
  const tmp = await Deno.makeTempDir({ prefix: "cfs-seed-pull-" });
  await using registry = await startRegistry();
  try {
    const layout = join(tmp, "img");
    const boot = await buildBootableImage(layout, "v1");
    const ref = await pushToRegistry(registry, `oci:${layout}:v1`, "cfs/bootable:v1");
    const repo = join(tmp, "new", "repo");

    // Without --allow-missing-fsverity a secure repository is required: refused, nothing left.
    const refused = await runCfs(["--repo", repo, "pull", "--tls-verify=false", ref]);
    equal(refused.code, 1);
    equal(errorLines(refused.stderr).length, 1, refused.stderr);
    ok(!(await pathExists(join(tmp, "new"))), "no repository directory left behind");

    const r = pullResult(
      await cfsOk(repo, "--json", "pull", "--tls-verify=false", "--allow-missing-fsverity", ref),
    );
    equal(r.created, true);
    equal(r.secure, false);
    const manifestDigest =
      (await run("skopeo", ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", ref]))
        .trim();
    equal(r.manifest, manifestDigest);
    equal(r.tag, `localhost/bootc-${manifestDigest}`);
    equal(r.layersImported, 2);

    // The boot entry: the vmlinuz form, with the kernel and initramfs as repository objects.
    equal(r.bootEntries.length, 1, JSON.stringify(r.bootEntries));
    const e = r.bootEntries[0];
    equal(e.kind, "bls");
    equal(e.kernelVersion, boot.kernelVersion);
    equal(e.kernel.path, `/usr/lib/modules/${boot.kernelVersion}/vmlinuz`);
    equal(e.initramfs[0].path, `/usr/lib/modules/${boot.kernelVersion}/initramfs.img`);
    const object = (id: string) => join(repo, "objects", id.slice(0, 2), id.slice(2));
    equal(await sha256(object(e.kernel.objectId)), await sha256(boot.kernelPath));
    equal(await sha256(object(e.initramfs[0].objectId)), await sha256(boot.initramfsPath));
    deepEqual(JSON.parse(await cfsOk(repo, "--json", "boot-entries", r.tag)), r.bootEntries);

    // The bootable image id (V1, the new repository's format), against cfsctl 0.9.4's
    // compute-id --bootable of the umoci-unpacked rootfs; so is the plain image's.
    const bundle = join(tmp, "bundle");
    await run("umoci", ["unpack", "--image", `${layout}:v1`, bundle]);
    const rootfs = join(bundle, "rootfs");
    const oracle = async (...flags: string[]) =>
      (await cfsctl09Ok(["--no-repo", "--hash", "sha512", "compute-id", ...flags, rootfs])).trim();
    equal(r.imageId, await oracle("--bootable"));
    const inspect = JSON.parse(await cfsOk(repo, "--json", "oci", "inspect", r.tag));
    equal(inspect.composefs_boot_erofs, r.imageId);
    equal(inspect.composefs_erofs, await oracle());
    deepEqual(inspect.tags, [r.tag]);

    // Again: nothing fetched, same image; the repository is clean. What is garbage is what
    // composefs-oci 0.9.4 leaves too (cfsctl gc after cfsctl oci pull removes 2 objects): the
    // config and manifest streams as first written, before the images were linked into them.
    const again = pullResult(
      await cfsOk(repo, "--json", "pull", "--tls-verify=false", "--allow-missing-fsverity", ref),
    );
    equal(again.created, false);
    equal(again.layersImported, 0);
    equal(again.imageId, r.imageId);
    equal((await runCfs(["--repo", repo, "fsck"])).code, 0);
    const gc = JSON.parse(await cfsOk(repo, "--json", "gc", "--dry-run"));
    deepEqual(
      [gc.objectsRemoved, gc.imagesPruned, gc.streamsPruned],
      [2, 0, 0],
      JSON.stringify(gc),
    );
    for (const live of [again.manifestVerity, again.configVerity, r.imageId, e.kernel.objectId]) {
      ok(!gc.removedObjects.includes(live), `gc would remove live object ${live}`);
    }
    await cfsOk(repo, "gc");
    equal((await runCfs(["--repo", repo, "fsck"])).code, 0);
    deepEqual(JSON.parse(await cfsOk(repo, "--json", "boot-entries", r.tag)), r.bootEntries);

    // Text output: a short summary (tags and entries whole, ids cut to 12 digits), and with
    // -v every value whole, one per line.
    const text = await cfsOk(repo, "pull", "--tls-verify=false", ref);
    ok(text.includes(`\ntag       localhost/bootc-${manifestDigest}\n`), text);
    ok(text.includes(`\ncomposefs ${r.imageId.slice(0, 12)} `), text);
    ok(text.includes(`\nentry     bls ${boot.kernelVersion} /usr/lib/modules/`), text);
    ok(!text.includes(r.imageId), `the summary cuts the image id: ${text}`);
    const verbose = await cfsOk(repo, "-v", "pull", "--tls-verify=false", ref);
    ok(verbose.includes(`tag localhost/bootc-${manifestDigest}\n`), verbose);
    ok(verbose.includes(`image ${r.imageId}\n`), verbose);
    ok(verbose.includes(`entry bls ${boot.kernelVersion} /usr/lib/modules/`), verbose);

    // An image that cannot be made bootable (/usr but no /boot): one line, and no tag for it.
    const plain = await buildOciImage(join(tmp, "plain"), {
      tag: "v1",
      layers: [[{ type: "dir", path: "usr" }, { type: "file", path: "etc/x", content: "x" }]],
    });
    const bad = await runCfs(["--repo", repo, "pull", `oci:${plain.dir}:v1`]);
    equal(bad.code, 1);
    equal(errorLines(bad.stderr).length, 1, bad.stderr);
    ok(bad.stderr.includes("/boot"), bad.stderr);
    deepEqual(
      JSON.parse(await cfsOk(repo, "--json", "oci", "images")).images.map((i: { name: string }) =>
        i.name
      ),
      [r.tag],
    );
    equal((await runCfs(["--repo", repo, "fsck"])).code, 0);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
