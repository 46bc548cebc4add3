/**
 * `cfs pull` (the seed's pull) end to end against a real registry: a kernel-bootable image
 * (busybox + the host's Debian kernel in `/usr/lib/modules/KVER`, test/fixtures/bootable.ts)
 * is pushed with skopeo, pulled into a repository that does not exist yet, tagged
 * `localhost/bootc-<manifest digest>`, written as the bootable EROFS, and its boot entry
 * found. The kernel and initramfs read back from the repository's objects are
 * byte-identical to the files put into the image (compared with `sha256sum`), and the
 * image id equals `cfs compute-id --bootable` of the rootfs unpacked by umoci (that command
 * is conformance-tested against cfsctl).
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

    // The bootable image id, against cfs compute-id --bootable of the umoci-unpacked rootfs.
    const bundle = join(tmp, "bundle");
    await run("umoci", ["unpack", "--image", `${layout}:v1`, bundle]);
    const ref512 = (await runCfs([
      "compute-id",
      "--bootable",
      "--algorithm",
      "sha512",
      join(bundle, "rootfs"),
    ])).text.trim();
    equal(r.imageId, ref512);
    const inspect = JSON.parse(await cfsOk(repo, "--json", "oci", "inspect", r.tag));
    equal(inspect.images["composefs.image.boot"], r.imageId);
    deepEqual(inspect.tags, [r.tag]);

    // Again: nothing fetched, same image; the repository is clean and nothing is garbage.
    const again = pullResult(
      await cfsOk(repo, "--json", "pull", "--tls-verify=false", "--allow-missing-fsverity", ref),
    );
    equal(again.created, false);
    equal(again.layersImported, 0);
    equal(again.imageId, r.imageId);
    equal((await runCfs(["--repo", repo, "fsck"])).code, 0);
    const gc = JSON.parse(await cfsOk(repo, "--json", "gc", "--dry-run"));
    deepEqual([gc.removedImages, gc.removedStreams, gc.removedObjects], [[], [], []]);

    // Text output names everything a script or a person needs.
    const text = await cfsOk(repo, "pull", "--tls-verify=false", ref);
    ok(text.includes(`tag localhost/bootc-${manifestDigest}\n`), text);
    ok(text.includes(`image ${r.imageId}\n`), text);
    ok(text.includes(`entry bls ${boot.kernelVersion} /usr/lib/modules/`), text);

    // An image that cannot be made bootable (no /boot): one line, and no tag for it.
    const plain = await buildOciImage(join(tmp, "plain"), {
      tag: "v1",
      layers: [[{ type: "file", path: "etc/x", content: "x" }]],
    });
    const bad = await runCfs(["--repo", repo, "pull", `oci:${plain.dir}:v1`]);
    equal(bad.code, 1);
    equal(errorLines(bad.stderr).length, 1, bad.stderr);
    ok(bad.stderr.includes("/boot"), bad.stderr);
    deepEqual(
      JSON.parse(await cfsOk(repo, "--json", "oci", "images")).map((i: { tag: string }) => i.tag),
      [r.tag],
    );
    equal((await runCfs(["--repo", repo, "fsck"])).code, 0);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
