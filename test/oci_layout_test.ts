/**
 * Reading OCI image layouts built by test/fixtures/oci.ts (GNU tar, gzip, zstd,
 * sha256sum, umoci). Expected digests come from `sha256sum` and `skopeo inspect`.
 */
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  BlobError,
  blobVerifier,
  decompress,
  layerCompression,
  verifiedLayer,
  verifyBlob,
} from "../lib/oci/blob.ts";
import {
  hostPlatform,
  MAX_JSON_BLOB_SIZE,
  OciLayout,
  OciLayoutError,
  parsePlatform,
} from "../lib/oci/layout.ts";
import {
  addToIndexJson,
  type BlobInfo,
  buildOciImage,
  buildOciIndex,
  buildUmociImage,
  type LayerSpec,
  run,
  sha256sum,
  skopeoInspect,
  skopeoInspectConfig,
  umociStat,
} from "./fixtures/oci.ts";

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cfs-oci-layout-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A crafted JSON (or not) blob written with its sha256 from sha256sum. */
async function writeRawBlob(dir: string, bytes: Uint8Array | string, mediaType: string) {
  const tmp = join(dir, "raw.tmp");
  await Deno.writeFile(tmp, typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes);
  const digest = await sha256sum(tmp);
  const size = (await Deno.stat(tmp)).size;
  const path = join(dir, "blobs/sha256", digest.slice(7));
  await Deno.rename(tmp, path);
  return { mediaType, digest, size, path } satisfies BlobInfo;
}

const LAYERS: LayerSpec[] = [
  [
    {
      type: "file",
      path: "etc/motd",
      content: "hello\n",
      xattrs: { "user.greeting": "hi", "trusted.overlay.custom": "x" },
    },
    { type: "dir", path: "opt/app", mode: 0o750, xattrs: { "user.dir": "d" } },
    { type: "file", path: "opt/app/data", content: "d".repeat(5000), mode: 0o600 },
    { type: "file", path: "usr/bin/tool", content: "#!/bin/sh\n", mode: 0o755 },
    { type: "hardlink", path: "usr/bin/tool2", target: "usr/bin/tool" },
    { type: "symlink", path: "bin", target: "usr/bin" },
  ],
  [
    { type: "whiteout", path: "etc/motd" },
    { type: "opaque", path: "opt/app" },
    { type: "file", path: "opt/app/new", content: "new" },
    // A link to a file of the layer below.
    { type: "hardlink", path: "usr/bin/tool3", target: "usr/bin/tool" },
  ],
  [{ type: "file", path: "etc/motd", content: "back\n" }, { type: "fifo", path: "run/fifo" }],
];

Deno.test("a multi-layer image (gzip, zstd, none) reads as skopeo sees it; layers and diff_ids verify", async () => {
  await withTmp(async (tmp) => {
    const dir = join(tmp, "layout");
    const built = await buildOciImage(dir, {
      tag: "v1",
      layers: LAYERS,
      compression: ["gzip", "zstd", "none"],
    });
    const inspect = await skopeoInspect(`oci:${dir}:v1`);
    const skopeoConfig = await skopeoInspectConfig(`oci:${dir}:v1`);

    const layout = await OciLayout.open(dir);
    deepEqual(layout.tags(), ["v1"]);
    const image = await layout.resolve({ tag: "v1" });
    equal(image.manifestDescriptor.digest, inspect.Digest);
    deepEqual(image.layers.map((l) => l.digest), inspect.Layers);
    deepEqual(image.layers.map((l) => l.diffId), skopeoConfig.rootfs.diff_ids);
    deepEqual(image.layers.map((l) => l.mediaType), [
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.oci.image.layer.v1.tar",
    ]);
    equal(image.config.architecture, "amd64");
    equal(image.configDescriptor.digest, built.config.digest);
    equal(`sha256:${await sha256Hex(image.manifestBytes)}`, inspect.Digest);
    deepEqual(image.indexDigests, []);

    for (const [i, layer] of image.layers.entries()) {
      const tar = await collect(await layout.openLayer(layer));
      deepEqual(tar, await Deno.readFile(built.layers[i].tarPath), `layer ${i}`);
      equal(`sha256:${await sha256Hex(tar)}`, await sha256sum(built.layers[i].tarPath));
    }
    // The second layer holds a link to a file of the first one, and the whiteouts.
    const listing = await run(["tar", "-tvf", built.layers[1].tarPath]);
    ok(/^h.* usr\/bin\/tool3 link to usr\/bin\/tool$/m.test(listing), listing);
    ok(!/^-.* usr\/bin\/tool$/m.test(listing), listing);
    ok(listing.includes("etc/.wh.motd") && listing.includes("opt/app/.wh..wh..opq"), listing);
    // xattrs travel as pax records.
    for (
      const key of [
        "SCHILY.xattr.user.greeting=hi",
        "SCHILY.xattr.trusted.overlay.custom=x",
        "SCHILY.xattr.user.dir=d",
      ]
    ) {
      ok(await paxHas(built.layers[0].tarPath, key), key);
    }
  });
});

async function paxHas(tarPath: string, key: string): Promise<boolean> {
  const bytes = await Deno.readFile(tarPath);
  return new TextDecoder("latin1").decode(bytes).includes(key);
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("tags: the only image without a tag; a tag among several; unknown tags listed", async () => {
  await withTmp(async (tmp) => {
    const dir = join(tmp, "layout");
    const a = await buildOciImage(dir, {
      tag: "a",
      layers: [[{ type: "file", path: "a", content: "a" }]],
    });
    equal(
      (await (await OciLayout.open(dir)).resolve()).manifestDescriptor.digest,
      a.manifest.digest,
    );
    const b = await buildOciImage(dir, {
      tag: "b",
      layers: [[{ type: "file", path: "b", content: "b" }]],
    });
    const layout = await OciLayout.open(dir);
    deepEqual(layout.tags(), ["a", "b"]);
    equal((await layout.resolve({ tag: "b" })).manifestDescriptor.digest, b.manifest.digest);
    equal((await skopeoInspect(`oci:${dir}:b`)).Digest, b.manifest.digest);
    await rejects(layout.resolve(), /2 images in the layout; name one .*tags: "a", "b"/);
    await rejects(layout.resolve({ tag: "zz" }), /no image tagged "zz" \(tags: "a", "b"\)/);
  });
});

Deno.test("platform selection from a two-platform image index", async () => {
  await withTmp(async (tmp) => {
    const dir = join(tmp, "layout");
    const built = await buildOciIndex(dir, {
      tag: "multi",
      images: [
        {
          platform: { os: "linux", architecture: "amd64" },
          layers: [[{ type: "file", path: "arch", content: "amd64\n" }]],
        },
        {
          platform: { os: "linux", architecture: "arm64", variant: "v8" },
          layers: [[{ type: "file", path: "arch", content: "arm64\n" }]],
          compression: "zstd",
        },
      ],
    });
    const layout = await OciLayout.open(dir);
    deepEqual(hostPlatform(), { os: "linux", architecture: "amd64" });
    const amd = await layout.resolve({ tag: "multi" });
    const skopeoAmd = await skopeoInspect(`oci:${dir}:multi`, ["--override-arch", "amd64"]);
    deepEqual(amd.layers.map((l) => l.digest), skopeoAmd.Layers);
    equal(amd.config.architecture, "amd64");
    equal(amd.manifestDescriptor.digest, built.images[0].manifest.digest);
    deepEqual(amd.indexDigests, [built.index.digest]);

    const skopeoArm = await skopeoInspect(`oci:${dir}:multi`, ["--override-arch", "arm64"]);
    equal(skopeoArm.Architecture, "arm64");
    for (const p of ["linux/arm64", "linux/arm64/v8", "linux/aarch64"]) {
      const arm = await layout.resolve({ tag: "multi", platform: parsePlatform(p) });
      deepEqual(arm.layers.map((l) => l.digest), skopeoArm.Layers, p);
      equal(arm.manifestDescriptor.digest, built.images[1].manifest.digest);
      const tar = await collect(await layout.openLayer(arm.layers[0]));
      deepEqual(tar, await Deno.readFile(built.images[1].layers[0].tarPath));
    }
    await rejects(
      layout.resolve({ tag: "multi", platform: parsePlatform("linux/s390x") }),
      /no image for platform linux\/s390x \(available: linux\/amd64, linux\/arm64\/v8\)/,
    );
    // An arm64/v9 machine runs the arm64/v8 image; an arm/v7 one finds none.
    equal(
      (await layout.resolve({ tag: "multi", platform: parsePlatform("linux/arm64/v9") }))
        .manifestDescriptor.digest,
      built.images[1].manifest.digest,
    );
    await rejects(
      layout.resolve({ tag: "multi", platform: parsePlatform("linux/arm/v7") }),
      /no image for platform linux\/arm\/v7/,
    );
    throws(() => parsePlatform("linux"), /invalid platform "linux"/);
    throws(() => parsePlatform("linux/amd64/v1/x"), TypeError);
    throws(() => parsePlatform("Linux/AMD64"), TypeError);
  });
});

Deno.test("an image made by umoci (init/new/unpack/repack) reads and verifies", async () => {
  await withTmp(async (tmp) => {
    const rootfs = join(tmp, "rootfs");
    await Deno.mkdir(join(rootfs, "etc"), { recursive: true });
    await Deno.writeTextFile(join(rootfs, "etc/hostname"), "umoci\n");
    const dir = join(tmp, "layout");
    await buildUmociImage(dir, "u1", rootfs);
    const stat = await umociStat(dir, "u1");
    const layout = await OciLayout.open(dir);
    const image = await layout.resolve({ tag: "u1" });
    equal(image.manifestDescriptor.digest, (await skopeoInspect(`oci:${dir}:u1`)).Digest);
    const diffIds = stat.history.filter((h: any) => h.layer).map((h: any) => h.diff_id);
    deepEqual(image.layers.map((l) => l.diffId), diffIds);
    for (const layer of image.layers) await collect(await layout.openLayer(layer));
  });
});

Deno.test("blob digest mismatch: a flipped byte in a layer fails with the digest named", async () => {
  await withTmp(async (tmp) => {
    const dir = join(tmp, "layout");
    const built = await buildOciImage(dir, { tag: "t", layers: [LAYERS[0]], compression: "none" });
    const layout = await OciLayout.open(dir);
    const image = await layout.resolve({ tag: "t" });
    const path = built.layers[0].path;
    const bytes = await Deno.readFile(path);
    bytes[600] ^= 1; // inside the first entry's header or data, same size
    await Deno.writeFile(path, bytes);
    await rejects(collect(await layout.openLayer(image.layers[0])), (e: unknown) => {
      ok(e instanceof BlobError);
      equal(e.problem, "digest-mismatch");
      equal(e.digest, built.layers[0].digest);
      ok(e.message.includes(built.layers[0].digest));
      return true;
    });
  });
});

Deno.test("truncated and oversized blobs fail before streaming (file size vs descriptor)", async () => {
  await withTmp(async (tmp) => {
    const dir = join(tmp, "layout");
    const built = await buildOciImage(dir, { tag: "t", layers: [LAYERS[0]], compression: "gzip" });
    const layout = await OciLayout.open(dir);
    const image = await layout.resolve({ tag: "t" });
    const layer = image.layers[0];
    await Deno.truncate(built.layers[0].path, layer.size - 10);
    await rejects(layout.openLayer(layer), (e: unknown) => {
      ok(e instanceof BlobError);
      equal(e.problem, "truncated");
      ok(e.message.includes(`${layer.size - 10} bytes, the descriptor says ${layer.size}`));
      return true;
    });
    await rejects(
      layout.openBlob({ digest: layer.digest, size: 1 }),
      /too-large|descriptor says 1/,
    );
  });
});

Deno.test("streaming verification: truncated, too long (stops early), wrong digest, sha512", async () => {
  const data = new TextEncoder().encode("some blob content");
  const digest = `sha256:${await sha256Hex(data)}`;
  deepEqual(
    await collect(verifyBlob(ReadableStream.from([data]), { digest, size: data.length })),
    data,
  );

  await rejects(
    collect(verifyBlob(ReadableStream.from([data.slice(0, 5)]), { digest, size: data.length })),
    /truncated, 5 of the declared 17 bytes/,
  );
  await rejects(
    collect(
      verifyBlob(ReadableStream.from([data]), { digest: `sha256:${"0".repeat(64)}`, size: 17 }),
    ),
    /content has digest sha256:/,
  );

  // A "blob" that would be 1 GiB: the verifier fails at the first chunk past the size.
  let pulled = 0;
  const lying = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled * 65536 >= 1 << 30) return controller.close();
      pulled++;
      controller.enqueue(new Uint8Array(65536));
    },
  }, { highWaterMark: 0 });
  await rejects(collect(verifyBlob(lying, { digest, size: 100_000 })), (e: unknown) => {
    ok(e instanceof BlobError);
    equal(e.problem, "too-large");
    ok(e.message.includes("more than the declared 100000 bytes"));
    return true;
  });
  ok(pulled <= 4, `read ${pulled} chunks of a lying blob`);

  const sha512 = (await run(["sh", "-c", "printf %s 'some blob content' | sha512sum"])).slice(
    0,
    128,
  );
  await collect(verifyBlob(ReadableStream.from([data]), { digest: `sha512:${sha512}`, size: 17 }));
  throws(() => blobVerifier({ digest: "sha256:abc", size: 1 }), /needs 64 hex digits/);
  throws(() => blobVerifier({ digest, size: -1 }), /invalid declared size/);
});

Deno.test("layer decompression by media type; diff_id checked; zstd truncation caught by diff_id", async () => {
  equal(layerCompression("application/vnd.oci.image.layer.v1.tar+zstd"), "zstd");
  equal(layerCompression("application/vnd.docker.image.rootfs.diff.tar.gzip"), "gzip");
  equal(layerCompression("application/vnd.oci.image.layer.v1.tar"), "none");
  equal(layerCompression("application/json"), undefined);
  equal(layerCompression("toString"), undefined);

  await withTmp(async (tmp) => {
    const tar = join(tmp, "x.tar");
    await Deno.writeFile(join(tmp, "f"), new Uint8Array(300_000).map((_, i) => i * 7));
    await run(["tar", "-C", tmp, "-cf", tar, "f"]);
    const diffId = await sha256sum(tar);
    await run(["zstd", "-q", tar, "-o", `${tar}.zst`]);
    await run(["sh", "-c", 'gzip -n -c "$1" > "$1.gz"', "sh", tar]);
    const expected = await Deno.readFile(tar);
    for (
      const [file, mediaType] of [
        [`${tar}.zst`, "application/vnd.oci.image.layer.v1.tar+zstd"],
        [`${tar}.gz`, "application/vnd.docker.image.rootfs.diff.tar.gzip"],
        [tar, "application/vnd.oci.image.layer.v1.tar"],
      ]
    ) {
      const blob = { mediaType, digest: await sha256sum(file), size: (await Deno.stat(file)).size };
      const out = await collect(verifiedLayer((await Deno.open(file)).readable, blob, diffId));
      deepEqual(out, expected, mediaType);
      // A wrong diff_id is reported at the end of the stream.
      await rejects(
        collect(verifiedLayer((await Deno.open(file)).readable, blob, `sha256:${"1".repeat(64)}`)),
        /diff_id sha256:1{64}: content has digest/,
      );
    }
    // A zstd frame cut short: node:zlib's zstd decoder ends without an error, the diff_id
    // check catches it. The blob's own digest is made to match, to test only the diff_id.
    const zst = await Deno.readFile(`${tar}.zst`);
    const cut = join(tmp, "cut.zst");
    await Deno.writeFile(cut, zst.slice(0, zst.length - 100));
    const cutBlob = {
      mediaType: "application/vnd.oci.image.layer.v1.tar+zstd",
      digest: await sha256sum(cut),
      size: zst.length - 100,
    };
    await rejects(
      collect(verifiedLayer((await Deno.open(cut)).readable, cutBlob, diffId)),
      (e: unknown) => {
        ok(e instanceof BlobError && /diff_id/.test(e.message), String(e));
        return true;
      },
    );
    // A gzip stream cut short fails in the decompressor.
    const gz = await Deno.readFile(`${tar}.gz`);
    await rejects(
      collect(decompress(ReadableStream.from([gz.slice(0, gz.length - 20)]), "gzip", "sha256:x")),
      /cannot gzip-decompress/,
    );
    // Garbage that is not gzip at all.
    await rejects(
      collect(
        decompress(ReadableStream.from([new TextEncoder().encode("not gzip")]), "gzip", "sha256:y"),
      ),
      (e: unknown) =>
        e instanceof BlobError && e.problem === "decompress" && e.digest === "sha256:y",
    );
    // A bad compressed digest wins over a decompression error in a layer stream.
    const junk = gzipSync(new Uint8Array(10));
    await rejects(
      collect(verifiedLayer(ReadableStream.from([junk]), {
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        digest: `sha256:${"2".repeat(64)}`,
        size: junk.length,
      }, diffId)),
      /layer sha256:2{64}: content has digest/,
    );
    throws(
      () =>
        verifiedLayer(ReadableStream.from([junk]), {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: `sha256:${"2".repeat(64)}`,
          size: junk.length,
        }, diffId),
      /unsupported media type/,
    );
  });
});

/** A layout with one image, whose manifest descriptor in index.json is replaced by `blob`. */
async function layoutWithManifest(tmp: string, blob: (dir: string) => Promise<BlobInfo>) {
  const dir = join(tmp, "layout");
  await buildOciImage(dir, { layers: [[{ type: "file", path: "a", content: "a" }]] });
  await Deno.remove(join(dir, "index.json"));
  const info = await blob(dir);
  await addToIndexJson(dir, info, "bad");
  return { dir, info };
}

Deno.test("a manifest that is not JSON is refused, naming the blob", async () => {
  await withTmp(async (tmp) => {
    const { dir, info } = await layoutWithManifest(
      tmp,
      (dir) => writeRawBlob(dir, "{ not json", "application/vnd.oci.image.manifest.v1+json"),
    );
    const layout = await OciLayout.open(dir);
    await rejects(layout.resolve({ tag: "bad" }), (e: unknown) => {
      ok(e instanceof OciLayoutError, String(e));
      equal(e.digest, info.digest);
      ok(e.message.includes(`image manifest ${info.digest} is not JSON`), e.message);
      return true;
    });
  });
});

Deno.test("wrong media types are refused: manifest vs descriptor, non-manifest descriptor, config, layer", async () => {
  await withTmp(async (tmp) => {
    const dir = join(tmp, "layout");
    const built = await buildOciImage(dir, {
      layers: [[{ type: "file", path: "a", content: "a" }]],
    });
    const manifest = JSON.parse(await Deno.readTextFile(built.manifest.path));
    const variants: [string, unknown, string, RegExp][] = [
      [
        "document says index",
        { ...manifest, mediaType: "application/vnd.oci.image.index.v1+json" },
        "application/vnd.oci.image.manifest.v1+json",
        /media type "application\/vnd.oci.image.index.v1\+json" differs from the descriptor's/,
      ],
      [
        "descriptor is not a manifest",
        manifest,
        "application/vnd.oci.image.layer.v1.tar",
        /is neither an image manifest nor an image index/,
      ],
      [
        "config is not an image config",
        {
          ...manifest,
          config: { ...manifest.config, mediaType: "application/vnd.cncf.helm.config.v1+json" },
        },
        "application/vnd.oci.image.manifest.v1+json",
        /config media type "application\/vnd.cncf.helm.config.v1\+json" is not a container image config/,
      ],
      [
        "layer of unknown type",
        { ...manifest, layers: [{ ...manifest.layers[0], mediaType: "application/octet-stream" }] },
        "application/vnd.oci.image.manifest.v1+json",
        /has unsupported media type "application\/octet-stream"/,
      ],
      [
        "negative size",
        { ...manifest, layers: [{ ...manifest.layers[0], size: -1 }] },
        "application/vnd.oci.image.manifest.v1+json",
        /malformed at layers.0.size/,
      ],
      [
        "bad layer digest",
        { ...manifest, layers: [{ ...manifest.layers[0], digest: "sha256:../../../etc/passwd" }] },
        "application/vnd.oci.image.manifest.v1+json",
        /malformed at layers.0.digest: invalid digest/,
      ],
      [
        "schemaVersion 1",
        { ...manifest, schemaVersion: 1 },
        "application/vnd.oci.image.manifest.v1+json",
        /malformed at schemaVersion/,
      ],
    ];
    for (const [name, doc, mediaType, pattern] of variants) {
      const blob = await writeRawBlob(dir, JSON.stringify(doc), mediaType);
      await addToIndexJson(dir, blob, "bad");
      const layout = await OciLayout.open(dir);
      await rejects(layout.resolve({ tag: "bad" }), (e: unknown) => {
        ok(e instanceof OciLayoutError, `${name}: ${e}`);
        ok(pattern.test(e.message), `${name}: ${e.message}`);
        ok(e.message.includes(blob.digest), `${name} names the blob: ${e.message}`);
        return true;
      });
    }
  });
});

Deno.test("a 1 GiB manifest is refused before reading it (descriptor size and file size)", async () => {
  await withTmp(async (tmp) => {
    const GiB = 1 << 30;
    const fake = `sha256:${"f".repeat(64)}`;
    const { dir } = await layoutWithManifest(tmp, async (dir) => {
      const path = join(dir, "blobs/sha256", "f".repeat(64));
      await run(["truncate", "-s", "1G", path]); // sparse
      return {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: fake,
        size: GiB,
        path,
      };
    });
    const layout = await OciLayout.open(dir);
    const start = performance.now();
    await rejects(
      layout.resolve({ tag: "bad" }),
      /image manifest sha256:f{64}: declared size 1073741824 exceeds the 4194304-byte limit; not read/,
    );
    // The descriptor lies (small size): the file size check refuses it.
    await addToIndexJson(dir, {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: fake,
      size: 100,
      path: "",
    }, "bad");
    await rejects(
      (await OciLayout.open(dir)).resolve({ tag: "bad" }),
      /file is 1073741824 bytes, over the 4194304-byte limit; not read/,
    );
    ok(performance.now() - start < 1000, "refused without reading");
    equal(MAX_JSON_BLOB_SIZE, 4 * 1024 * 1024);
  });
});

Deno.test("layout files: missing oci-layout, bad version, index.json not JSON, huge index.json", async () => {
  await withTmp(async (dir) => {
    await rejects(
      OciLayout.open(dir),
      /OCI layout .*: not an OCI image layout \(no oci-layout file\)/,
    );
    await Deno.writeTextFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"2.0.0"}');
    await rejects(OciLayout.open(dir), /unsupported imageLayoutVersion "2.0.0"/);
    await Deno.writeTextFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    await rejects(OciLayout.open(dir), /no index.json/);
    await Deno.writeTextFile(join(dir, "index.json"), "[");
    await rejects(OciLayout.open(dir), /index.json is not JSON/);
    await Deno.writeTextFile(join(dir, "index.json"), '{"schemaVersion":2,"manifests":[{}]}');
    await rejects(OciLayout.open(dir), /index.json is malformed at manifests.0/);
    await run(["truncate", "-s", "5M", join(dir, "index.json")]);
    await rejects(OciLayout.open(dir), /index.json is 5242880 bytes, over the 4194304-byte limit/);
    await Deno.writeTextFile(join(dir, "index.json"), '{"schemaVersion":2,"manifests":[]}');
    await rejects((await OciLayout.open(dir)).resolve(), /index.json lists no images/);
  });
});

Deno.test("blob paths: crafted digests cannot leave blobs/, symlinks are not followed", async () => {
  await withTmp(async (tmp) => {
    const dir = join(tmp, "layout");
    const built = await buildOciImage(dir, {
      tag: "t",
      layers: [[{ type: "file", path: "a", content: "a" }]],
    });
    const layout = await OciLayout.open(dir);
    equal(layout.blobPath(built.config.digest), built.config.path);
    for (
      const d of [
        "sha256:../../../../etc/passwd",
        `sha256/../../${"a".repeat(64)}`,
        `sha256:${"a".repeat(63)}/`,
        `../sha256:${"a".repeat(64)}`,
        `sha256:${"A".repeat(64)}`,
      ]
    ) {
      throws(() => layout.blobPath(d), OciLayoutError, d);
      await rejects(layout.openBlob({ digest: d, size: 1 }), OciLayoutError, d);
    }
    // A blob that is a symlink (to a real file with the right content) is refused.
    const config = await Deno.readFile(built.config.path);
    await Deno.writeFile(join(tmp, "elsewhere"), config);
    await Deno.remove(built.config.path);
    await Deno.symlink(join(tmp, "elsewhere"), built.config.path);
    await rejects(
      layout.resolve({ tag: "t" }),
      /image config sha256:[0-9a-f]{64}: not a regular file/,
    );
    await Deno.remove(built.config.path);
    await rejects(layout.resolve({ tag: "t" }), /image config sha256:[0-9a-f]{64}: missing/);
  });
});

Deno.test("config with diff_ids that do not match the layers is refused", async () => {
  await withTmp(async (tmp) => {
    const dir = join(tmp, "layout");
    const built = await buildOciImage(dir, {
      layers: [[{ type: "file", path: "a", content: "a" }]],
    });
    const manifest = JSON.parse(await Deno.readTextFile(built.manifest.path));
    const config = JSON.parse(await Deno.readTextFile(built.config.path));
    config.rootfs.diff_ids.push(config.rootfs.diff_ids[0]);
    const configBlob = await writeRawBlob(
      dir,
      JSON.stringify(config),
      "application/vnd.oci.image.config.v1+json",
    );
    const m = await writeRawBlob(
      dir,
      JSON.stringify({
        ...manifest,
        config: { ...manifest.config, digest: configBlob.digest, size: configBlob.size },
      }),
      "application/vnd.oci.image.manifest.v1+json",
    );
    await addToIndexJson(dir, m, "bad");
    await rejects(
      (await OciLayout.open(dir)).resolve({ tag: "bad" }),
      /lists 2 diff_ids for 1 layers/,
    );
  });
});
