/**
 * The registry fixture: Debian's docker-registry on 127.0.0.1, fixtures pushed with
 * `skopeo copy`, seen by `skopeo inspect`, and the registry stopped afterwards.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { buildOciImage, buildOciIndex, skopeoInspect, skopeoInspectRaw } from "./fixtures/oci.ts";
import { pushToRegistry, startRegistry } from "./fixtures/registry.ts";

const NO_TLS = ["--tls-verify=false"];

Deno.test({
  name: "registry fixture: start, push a multi-layer image and a two-platform index, inspect, stop",
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "cfs-registry-test-" });
    const registry = await startRegistry();
    try {
      ok(/^http:\/\/127\.0\.0\.1:\d+$/.test(registry.url), registry.url);
      const v2 = await fetch(`${registry.url}/v2/`);
      equal(v2.status, 200);
      await v2.body?.cancel();

      const built = await buildOciImage(join(tmp, "img"), {
        tag: "v1",
        compression: ["gzip", "zstd"],
        layers: [
          [{ type: "file", path: "etc/motd", content: "hi\n", xattrs: { "user.a": "1" } }],
          [{ type: "whiteout", path: "etc/motd" }, { type: "file", path: "b", content: "b" }],
        ],
      });
      const dest = await pushToRegistry(registry, `oci:${built.dir}:v1`, "cfs/test:v1");
      equal(dest, `docker://${registry.host}/cfs/test:v1`);
      const remote = await skopeoInspect(dest, NO_TLS);
      // skopeo copies OCI manifests with zstd layers unchanged: same digests.
      equal(remote.Digest, built.manifest.digest);
      deepEqual(remote.Layers, built.layers.map((l) => l.digest));
      const byDigest = await skopeoInspect(
        `docker://${registry.host}/cfs/test@${built.manifest.digest}`,
        NO_TLS,
      );
      equal(byDigest.Digest, built.manifest.digest);

      const index = await buildOciIndex(join(tmp, "multi"), {
        tag: "m",
        images: [
          {
            platform: { os: "linux", architecture: "amd64" },
            layers: [[{ type: "file", path: "arch", content: "amd64" }]],
          },
          {
            platform: { os: "linux", architecture: "arm64", variant: "v8" },
            layers: [[{ type: "file", path: "arch", content: "arm64" }]],
          },
        ],
      });
      const multi = await pushToRegistry(registry, `oci:${index.dir}:m`, "cfs/multi:m", {
        all: true,
      });
      const raw = JSON.parse(await skopeoInspectRaw(multi, NO_TLS));
      equal(raw.mediaType, "application/vnd.oci.image.index.v1+json");
      deepEqual(
        raw.manifests.map((m: any) => [m.digest, m.platform.architecture]),
        [[index.images[0].manifest.digest, "amd64"], [index.images[1].manifest.digest, "arm64"]],
      );
      const arm = await skopeoInspect(multi, [...NO_TLS, "--override-arch", "arm64"]);
      deepEqual(arm.Layers, index.images[1].layers.map((l) => l.digest));

      await rejects(
        skopeoInspect(`docker://${registry.host}/cfs/missing:v1`, NO_TLS),
        /manifest unknown|not found|name unknown/i,
      );
    } finally {
      await registry.stop();
      await Deno.remove(tmp, { recursive: true });
    }
    // Stopped: the port no longer answers and the storage is gone.
    await rejects(fetch(`${registry.url}/v2/`, { signal: AbortSignal.timeout(2000) }));
    await rejects(Deno.stat(registry.storage), Deno.errors.NotFound);
    await registry.stop(); // idempotent
  },
});

Deno.test({
  name: "registry fixture: `await using` stops it when the test body throws",
  async fn() {
    let url = "";
    await rejects(
      (async () => {
        await using registry = await startRegistry();
        url = registry.url;
        throw new Error("test failure");
      })(),
      /test failure/,
    );
    await rejects(fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) }));
  },
});
