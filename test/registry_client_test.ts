/**
 * The OCI distribution client (lib/oci/registry.ts, lib/oci/auth.ts):
 * - against a real registry (Debian's docker-registry, images pushed with skopeo), every
 *   digest compared with what skopeo and sha256sum report;
 * - against fake registries served here (Deno.serve on 127.0.0.1) for authentication and
 *   every failure: each must be a one-line error, never a hang.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  buildOciImage,
  buildOciIndex,
  run,
  sha256sum,
  skopeoInspect,
  skopeoInspectConfig,
  skopeoInspectRaw,
} from "./fixtures/oci.ts";
import { pushToRegistry, type Registry, startRegistry } from "./fixtures/registry.ts";
import { RegistryClient, RegistryError } from "../lib/oci/registry.ts";
import { BlobError } from "../lib/oci/blob.ts";
import { parseDockerReference } from "../lib/oci/reference.ts";
import { parsePlatform } from "../lib/oci/layout.ts";
import {
  AuthFileError,
  credentialsFromAuthFile,
  findCredentials,
  parseWwwAuthenticate,
} from "../lib/oci/auth.ts";

const NO_TLS = ["--tls-verify=false"];

// --- helpers ------------------------------------------------------------------------------------

/** Fails the test instead of hanging: `promise` must settle within `ms`. */
async function within<T>(promise: Promise<T>, ms = 15_000, what = "operation"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a stream to its end (so the verifiers give their verdict). */
async function drain(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream) {
    chunks.push(chunk);
    total += chunk.byteLength;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Expects `promise` to reject with a one-line error of `type` matching `pattern`. */
async function rejectsOneLine(
  promise: Promise<unknown>,
  type: typeof RegistryError | typeof BlobError,
  pattern: RegExp,
  check?: (e: any) => void,
): Promise<void> {
  await rejects(within(promise), (e: any) => {
    ok(e instanceof type, `expected ${type.name}, got ${e?.name}: ${e?.message}`);
    ok(!e.message.includes("\n"), `not one line: ${JSON.stringify(e.message)}`);
    ok(pattern.test(e.message), `${JSON.stringify(e.message)} does not match ${pattern}`);
    if (Deno.env.get("CFS_TEST_SHOW_ERRORS")) console.log(`  ${e.name}: ${e.message}`);
    check?.(e);
    return true;
  });
}

/** `skopeo inspect --raw REF | sha256sum`. */
async function rawDigest(ref: string): Promise<string> {
  const out = await run([
    "sh",
    "-c",
    'skopeo inspect --raw --tls-verify=false "$1" | sha256sum',
    "sh",
    ref,
  ]);
  return `sha256:${out.slice(0, 64)}`;
}

function reference(registry: { host: string }, name: string) {
  return parseDockerReference(`${registry.host}/${name}`);
}

// --- against a real registry --------------------------------------------------------------------

Deno.test({
  name: "registry client: pull by tag and by digest from docker-registry; digests match skopeo's",
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "cfs-registry-client-" });
    await using registry = await startRegistry();
    try {
      const built = await buildOciImage(join(tmp, "img"), {
        tag: "v1",
        compression: ["gzip", "zstd", "none"],
        layers: [
          [{ type: "file", path: "etc/motd", content: "hello\n".repeat(100) }],
          [{ type: "file", path: "usr/bin/tool", content: "x".repeat(5000), mode: 0o755 }],
          [{ type: "whiteout", path: "etc/motd" }],
        ],
      });
      const dest = await pushToRegistry(registry, `oci:${built.dir}:v1`, "cfs/test:v1");
      const inspect = await skopeoInspect(dest, NO_TLS);
      const skopeoConfig = await skopeoInspectConfig(dest, NO_TLS);
      const raw = JSON.parse(await skopeoInspectRaw(dest, NO_TLS));
      const manifestDigest = await rawDigest(dest);
      equal(manifestDigest, inspect.Digest);
      // skopeo gzips the uncompressed layer on its way to the registry: the manifest is
      // rewritten, the diff_ids stay.
      equal(raw.layers[2].mediaType, "application/vnd.oci.image.layer.v1.tar+gzip");

      const client = new RegistryClient(registry.host, { tlsVerify: false });
      equal(client.baseUrl, registry.url);
      for (const ref of [`cfs/test:v1`, `cfs/test@${manifestDigest}`]) {
        const image = await within(client.resolve(reference(registry, ref)));
        equal(image.manifestDescriptor.digest, manifestDigest, ref);
        equal(await sha256OfBytes(image.manifestBytes, tmp), manifestDigest);
        equal(image.configDescriptor.digest, raw.config.digest);
        equal(await sha256OfBytes(image.configBytes, tmp), raw.config.digest);
        deepEqual(image.layers.map((l) => l.digest), inspect.Layers);
        deepEqual(image.layers.map((l) => l.diffId), skopeoConfig.rootfs.diff_ids);
        deepEqual(image.layers.map((l) => l.diffId), built.layers.map((l) => l.diffId));
        deepEqual(image.indexDigests, []);
        // Every layer streams, verified; the uncompressed tar's sha256sum is the diff_id.
        for (const [i, layer] of image.layers.entries()) {
          const tar = await drain(await client.openLayer(image.repository, layer));
          equal(await sha256OfBytes(tar, tmp), built.layers[i].diffId);
          const blob = await drain(await client.openBlob(image.repository, layer));
          equal(await sha256OfBytes(blob, tmp), inspect.Layers[i]);
        }
      }

      await rejectsOneLine(
        client.resolve(reference(registry, "cfs/test:v2")),
        RegistryError,
        new RegExp(`^registry ${registry.host}: manifest unknown: cfs/test:v2`),
        (e) => equal(e.status, 404),
      );
      await rejectsOneLine(
        client.resolve(reference(registry, "cfs/nothing:v1")),
        RegistryError,
        /manifest unknown: cfs\/nothing:v1/,
      );
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name: "registry client: a Docker schema 2 manifest (skopeo --format v2s2) pulls the same way",
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "cfs-registry-client-" });
    await using registry = await startRegistry();
    try {
      const built = await buildOciImage(join(tmp, "img"), {
        tag: "v1",
        compression: "gzip",
        layers: [[{ type: "file", path: "a", content: "a".repeat(300) }]],
      });
      const dest = `docker://${registry.host}/cfs/docker:v1`;
      await run([
        "skopeo",
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        `oci:${built.dir}:v1`,
        dest,
      ]);
      const raw = JSON.parse(await skopeoInspectRaw(dest, NO_TLS));
      equal(raw.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
      const skopeoConfig = await skopeoInspectConfig(dest, NO_TLS);
      const client = new RegistryClient(registry.host, { tlsVerify: false });
      const image = await within(client.resolve(reference(registry, "cfs/docker:v1")));
      equal(image.manifestDescriptor.digest, await rawDigest(dest));
      equal(image.manifestDescriptor.mediaType, raw.mediaType);
      equal(image.configDescriptor.digest, raw.config.digest);
      deepEqual(image.layers.map((l) => l.digest), raw.layers.map((l: any) => l.digest));
      deepEqual(image.layers.map((l) => l.diffId), skopeoConfig.rootfs.diff_ids);
      const tar = await drain(await client.openLayer(image.repository, image.layers[0]));
      equal(await sha256OfBytes(tar, tmp), built.layers[0].diffId);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name: "registry client: a two-platform index resolves to linux/amd64 and to linux/arm64",
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "cfs-registry-client-" });
    await using registry: Registry = await startRegistry();
    try {
      const index = await buildOciIndex(join(tmp, "multi"), {
        tag: "m",
        images: [
          {
            platform: { os: "linux", architecture: "amd64" },
            layers: [[{ type: "file", path: "arch", content: "amd64" }]],
          },
          {
            platform: { os: "linux", architecture: "arm64", variant: "v8" },
            compression: "zstd",
            layers: [[{ type: "file", path: "arch", content: "arm64" }]],
          },
        ],
      });
      const dest = await pushToRegistry(registry, `oci:${index.dir}:m`, "cfs/multi:m", {
        all: true,
      });
      const indexDigest = await rawDigest(dest);
      equal(indexDigest, index.index.digest);
      // skopeo inspect's Digest is the index's; the per-platform manifests come from the
      // raw index as skopeo fetches it.
      const rawIndex = JSON.parse(await skopeoInspectRaw(dest, NO_TLS));
      const entry = (arch: string) =>
        rawIndex.manifests.find((m: any) => m.platform.architecture === arch).digest;
      const amd = await skopeoInspect(dest, [...NO_TLS, "--override-arch", "amd64"]);
      const arm = await skopeoInspect(dest, [...NO_TLS, "--override-arch", "arm64"]);
      equal(amd.Digest, indexDigest);

      const client = new RegistryClient(registry.host, { tlsVerify: false });
      const ref = reference(registry, "cfs/multi:m");
      for (
        const [platform, expected, built] of [
          ["linux/amd64", amd, index.images[0]],
          ["linux/arm64", arm, index.images[1]],
        ] as const
      ) {
        const image = await within(client.resolve(ref, { platform: parsePlatform(platform) }));
        deepEqual(image.indexDigests, [indexDigest], platform);
        const manifestDigest = entry(platform.split("/")[1]);
        equal(image.manifestDescriptor.digest, manifestDigest, platform);
        equal(image.manifestDescriptor.digest, built.manifest.digest, platform);
        equal(
          await rawDigest(`docker://${registry.host}/cfs/multi@${manifestDigest}`),
          manifestDigest,
        );
        equal(image.config.architecture, expected.Architecture);
        deepEqual(image.layers.map((l) => l.digest), expected.Layers);
        const tar = await drain(await client.openLayer(image.repository, image.layers[0]));
        equal(await sha256OfBytes(tar, tmp), built.layers[0].diffId);
      }
      // The host's platform by default (these tests run on x86-64).
      if (Deno.build.arch === "x86_64") {
        const image = await within(client.resolve(ref));
        equal(image.manifestDescriptor.digest, entry("amd64"));
      }
      // By the index's digest, too.
      const byDigest = await within(
        client.resolve(reference(registry, `cfs/multi@${indexDigest}`), {
          platform: parsePlatform("linux/arm64/v8"),
        }),
      );
      equal(byDigest.manifestDescriptor.digest, entry("arm64"));
      await rejectsOneLine(
        client.resolve(ref, { platform: parsePlatform("linux/s390x") }),
        RegistryError,
        /no image for platform linux\/s390x \(available: linux\/amd64, linux\/arm64\/v8\)/,
      );
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

/** sha256sum of bytes written to a file (the oracle is the sha256sum tool, not our code). */
async function sha256OfBytes(bytes: Uint8Array, dir: string): Promise<string> {
  const path = join(dir, "bytes.tmp");
  await Deno.writeFile(path, bytes);
  try {
    return await sha256sum(path);
  } finally {
    await Deno.remove(path);
  }
}

// --- fake registries ----------------------------------------------------------------------------

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
const TAR = "application/vnd.oci.image.layer.v1.tar";

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** A one-layer image (uncompressed layer of random bytes) served by fake registries. */
interface FakeImage {
  manifest: Uint8Array<ArrayBuffer>;
  manifestDigest: string;
  config: Uint8Array<ArrayBuffer>;
  configDigest: string;
  layer: Uint8Array<ArrayBuffer>;
  layerDigest: string;
}

function fakeImage(layerSize = 300_000): FakeImage {
  const layer = new Uint8Array(layerSize);
  for (let at = 0; at < layerSize; at += 65536) {
    crypto.getRandomValues(layer.subarray(at, Math.min(at + 65536, layerSize)));
  }
  const layerDigest = sha256(layer);
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [layerDigest] },
  }));
  const configDigest = sha256(config);
  const manifest = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
    layers: [{ mediaType: TAR, digest: layerDigest, size: layer.length }],
  }));
  return {
    manifest,
    manifestDigest: sha256(manifest),
    config,
    configDigest,
    layer,
    layerDigest,
  };
}

type Handler = (request: Request, url: URL) => Response | Promise<Response> | undefined;

interface FakeRegistry extends AsyncDisposable {
  host: string;
  port: number;
  /** Every request seen: method, path and Authorization header. */
  requests: { path: string; authorization: string | null }[];
}

/**
 * Serves `image` as `cfs/test:v1` (and by digest) on 127.0.0.1; `handle` answers first
 * when it returns a response.
 */
function fakeRegistry(image: FakeImage, handle: Handler = () => undefined): FakeRegistry {
  const requests: FakeRegistry["requests"] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const url = new URL(request.url);
      requests.push({ path: url.pathname, authorization: request.headers.get("authorization") });
      const answer = await handle(request, url);
      if (answer !== undefined) return answer;
      return serveImage(image, url);
    },
  );
  const port = server.addr.port;
  return {
    host: `127.0.0.1:${port}`,
    port,
    requests,
    async [Symbol.asyncDispose]() {
      await within(server.shutdown(), 10_000, "fake registry shutdown");
    },
  };
}

function serveImage(image: FakeImage, url: URL): Response {
  const path = url.pathname;
  if (path === "/v2/") return new Response("{}");
  if (
    path === "/v2/cfs/test/manifests/v1" ||
    path === `/v2/cfs/test/manifests/${image.manifestDigest}`
  ) {
    return new Response(image.manifest, {
      headers: { "content-type": OCI_MANIFEST, "docker-content-digest": image.manifestDigest },
    });
  }
  if (path === `/v2/cfs/test/blobs/${image.configDigest}`) return new Response(image.config);
  if (path === `/v2/cfs/test/blobs/${image.layerDigest}`) return new Response(image.layer);
  return Response.json(
    { errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] },
    { status: 404 },
  );
}

function fakeRef(fake: FakeRegistry, name = "cfs/test:v1") {
  return parseDockerReference(`${fake.host}/${name}`);
}

const FAST = { tlsVerify: false, requestTimeoutMs: 5_000, idleTimeoutMs: 2_000, retryDelayMs: 50 };

async function pullAll(client: RegistryClient, ref = "", fake?: FakeRegistry): Promise<void> {
  const image = await client.resolve(fakeRef(fake!, ref || undefined));
  for (const layer of image.layers) await drain(await client.openLayer(image.repository, layer));
}

/** Runs `fn` with REGISTRY_AUTH_FILE pointing to a temporary file holding `json`. */
async function withAuthFile(json: unknown, fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cfs-auth-" });
  const path = join(dir, "auth.json");
  await Deno.writeTextFile(path, JSON.stringify(json));
  const before = Deno.env.get("REGISTRY_AUTH_FILE");
  Deno.env.set("REGISTRY_AUTH_FILE", path);
  try {
    await fn(path);
  } finally {
    if (before === undefined) Deno.env.delete("REGISTRY_AUTH_FILE");
    else Deno.env.set("REGISTRY_AUTH_FILE", before);
    await Deno.remove(dir, { recursive: true });
  }
}

function basicHeader(user: string, password: string): string {
  return `Basic ${btoa(`${user}:${password}`)}`;
}

Deno.test("registry client: 401 Basic without credentials, with credentials, with wrong ones", async () => {
  const image = fakeImage();
  await using fake = fakeRegistry(image, (request) => {
    if (request.headers.get("authorization") === basicHeader("alice", "s3cret")) return undefined;
    return new Response("unauthorized", {
      status: 401,
      headers: { "www-authenticate": 'Basic realm="fake registry"' },
    });
  });
  // No entry for this registry in the auth file.
  await withAuthFile({ auths: { "example.org": { auth: btoa("x:y") } } }, async (path) => {
    const client = new RegistryClient(fake.host, FAST);
    await rejectsOneLine(
      pullAll(client, "", fake),
      RegistryError,
      new RegExp(
        `^registry ${fake.host}: authentication required for cfs/test \\(HTTP 401: basic ` +
          `authentication; no credentials for ${fake.host} in ${path}\\)$`,
      ),
      (e) => {
        equal(e.status, 401);
        equal(e.kind, "auth");
      },
    );
  });
  // The right credentials: the whole image pulls, every request after the first authorized.
  await withAuthFile({ auths: { [fake.host]: { auth: btoa("alice:s3cret") } } }, async () => {
    const client = new RegistryClient(fake.host, FAST);
    fake.requests.length = 0;
    await within(pullAll(client, "", fake));
    equal(fake.requests[0].authorization, null);
    ok(fake.requests.slice(1).every((r) => r.authorization === basicHeader("alice", "s3cret")));
    equal(fake.requests.length, 4); // 401, manifest, config, layer: the header is remembered
  });
  // Wrong password.
  await withAuthFile({ auths: { [fake.host]: { auth: btoa("alice:wrong") } } }, async (path) => {
    const client = new RegistryClient(fake.host, FAST);
    await rejectsOneLine(
      pullAll(client, "", fake),
      RegistryError,
      new RegExp(`authentication required for cfs/test \\(HTTP 401: the credentials from ${path}`),
    );
  });
});

Deno.test("registry client: 401 Bearer -> token endpoint (with basic credentials) -> success", async () => {
  const image = fakeImage();
  let tokenRequests: URL[] = [];
  let tokenField = "token";
  await using fake = fakeRegistry(image, (request, url) => {
    if (url.pathname === "/token") {
      tokenRequests.push(url);
      if (request.headers.get("authorization") !== basicHeader("bob", "pw")) {
        return new Response("no", { status: 401 });
      }
      return Response.json({ [tokenField]: "tok-123", expires_in: 300 });
    }
    if (request.headers.get("authorization") === "Bearer tok-123") return undefined;
    return new Response(JSON.stringify({ errors: [{ code: "UNAUTHORIZED" }] }), {
      status: 401,
      headers: {
        "www-authenticate": `Bearer realm="http://${fake.host}/token",service="fake-service",` +
          `scope="repository:cfs/test:pull"`,
      },
    });
  });
  for (const field of ["token", "access_token"]) {
    tokenField = field;
    tokenRequests = [];
    await withAuthFile({ auths: { [fake.host]: { auth: btoa("bob:pw") } } }, async () => {
      const client = new RegistryClient(fake.host, FAST);
      await within(pullAll(client, "", fake));
      equal(tokenRequests.length, 1, "one token for the repository");
      equal(tokenRequests[0].searchParams.get("service"), "fake-service");
      equal(tokenRequests[0].searchParams.get("scope"), "repository:cfs/test:pull");
    });
  }
  // No credentials: the token service refuses, and the error says so.
  await withAuthFile({ auths: {} }, async () => {
    const client = new RegistryClient(fake.host, FAST);
    await rejectsOneLine(
      pullAll(client, "", fake),
      RegistryError,
      /authentication required for cfs\/test \(HTTP 401: token service http:\/\/127\.0\.0\.1:\d+\/token refused an anonymous token; no credentials/,
    );
  });
});

Deno.test("registry client: 404, 403 and 500 give one-line errors with the status", async () => {
  const image = fakeImage();
  await using fake = fakeRegistry(image, (_request, url) => {
    if (url.pathname.endsWith("/manifests/forbidden")) {
      return new Response("denied", { status: 403 });
    }
    if (url.pathname.endsWith("/manifests/broken")) {
      return new Response("database on fire\nstack trace line 2\n" + "x".repeat(10_000), {
        status: 500,
      });
    }
    if (url.pathname.endsWith("/manifests/forever500")) {
      // An error body that never ends must not hang the client.
      return new Response(endless(), { status: 503 });
    }
    return undefined;
  });
  const client = new RegistryClient(fake.host, FAST);
  await rejectsOneLine(
    client.resolve(fakeRef(fake, "cfs/test:v9")),
    RegistryError,
    new RegExp(
      `^registry ${fake.host}: manifest unknown: cfs/test:v9 \\(MANIFEST_UNKNOWN: manifest unknown\\)$`,
    ),
    (e) => {
      equal(e.status, 404);
      equal(e.kind, "not-found");
    },
  );
  await rejectsOneLine(
    client.resolve(fakeRef(fake, "cfs/test:forbidden")),
    RegistryError,
    /authentication required for cfs\/test \(HTTP 403: no credentials .*; denied\)$/,
    (e) => equal(e.status, 403),
  );
  await rejectsOneLine(
    client.resolve(fakeRef(fake, "cfs/test:broken")),
    RegistryError,
    /HTTP 500 Internal Server Error for manifest cfs\/test:broken: database on fire stack trace line 2 x+\.\.\. \(gave up after 4 attempts\)$/,
    (e) => {
      equal(e.status, 500);
      equal(e.kind, "server");
      equal(e.code, "registry-server");
    },
  );
  await rejectsOneLine(
    client.resolve(fakeRef(fake, "cfs/test:forever500")),
    RegistryError,
    /HTTP 503 Service Unavailable for manifest cfs\/test:forever500/,
  );
  // A missing blob.
  const missing = `sha256:${"0".repeat(64)}`;
  await rejectsOneLine(
    client.openBlob("cfs/test", { digest: missing, size: 10 }),
    RegistryError,
    new RegExp(`blob unknown: cfs/test@${missing}`),
  );
});

/**
 * A TCP server on 127.0.0.1 that answers every connection with `head` and `body` as raw
 * bytes and then closes it (an HTTP server dying mid-response).
 */
function rawHttpServer(head: string, body: Uint8Array): AsyncDisposable & { host: string } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const serving = (async () => {
    for await (const conn of listener) {
      try {
        const buffer = new Uint8Array(65536);
        let request = "";
        while (!request.includes("\r\n\r\n")) {
          const n = await conn.read(buffer);
          if (n === null) break;
          request += new TextDecoder().decode(buffer.subarray(0, n));
        }
        await conn.write(new TextEncoder().encode(head));
        for (let at = 0; at < body.length;) at += await conn.write(body.subarray(at));
      } catch {
        // the client went away
      } finally {
        conn.close();
      }
    }
  })();
  return {
    host: `127.0.0.1:${port}`,
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving.catch(() => {});
    },
  };
}

/** An endless stream of 64 KiB chunks (stops when cancelled). */
function endless(): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(65536).fill(0x20);
  return new ReadableStream({
    pull(controller) {
      controller.enqueue(chunk);
    },
  });
}

Deno.test("registry client: connection refused names host and port", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const client = new RegistryClient(`127.0.0.1:${port}`, FAST);
  await rejectsOneLine(
    client.resolve(parseDockerReference(`127.0.0.1:${port}/cfs/test:v1`)),
    RegistryError,
    new RegExp(
      `^registry 127\\.0\\.0\\.1:${port}: cannot connect to 127\\.0\\.0\\.1:${port}: connection refused ` +
        "\\(gave up after 4 attempts\\)$",
    ),
    (e) => {
      equal(e.kind, "connection");
      equal(e.code, "registry-connection");
      equal(e.status, undefined);
    },
  );
});

Deno.test("registry client: manifest digest mismatches, wrong media type, >4 MiB manifests", async () => {
  const image = fakeImage();
  const other = fakeImage(10);
  const forever = `sha256:${"1".repeat(64)}`;
  await using fake = fakeRegistry(image, (_request, url) => {
    const path = url.pathname;
    if (path === `/v2/cfs/test/manifests/${image.manifestDigest}`) {
      // Pulled by digest, served other bytes.
      return new Response(other.manifest, { headers: { "content-type": OCI_MANIFEST } });
    }
    if (path === "/v2/cfs/test/manifests/lying") {
      return new Response(image.manifest, {
        headers: { "content-type": OCI_MANIFEST, "docker-content-digest": other.manifestDigest },
      });
    }
    if (path === "/v2/cfs/test/manifests/schema1") {
      return new Response(JSON.stringify({ schemaVersion: 1, name: "cfs/test", fsLayers: [] }), {
        headers: { "content-type": "application/vnd.docker.distribution.manifest.v1+prettyjws" },
      });
    }
    if (path === "/v2/cfs/test/manifests/typo") {
      const doc = JSON.parse(new TextDecoder().decode(image.manifest));
      doc.mediaType = "application/vnd.oci.image.manifest.v1+jsonx";
      return new Response(JSON.stringify(doc), { headers: { "content-type": OCI_MANIFEST } });
    }
    if (path === "/v2/cfs/test/manifests/notjson") {
      return new Response("<html>hello</html>", { headers: { "content-type": OCI_MANIFEST } });
    }
    if (path === "/v2/cfs/test/manifests/huge" || path === `/v2/cfs/test/manifests/${forever}`) {
      return new Response(endless(), { headers: { "content-type": OCI_MANIFEST } });
    }
    if (path === "/v2/cfs/test/manifests/declared-huge") {
      return new Response(new Uint8Array(5 * 1024 * 1024), {
        headers: { "content-type": OCI_MANIFEST },
      });
    }
    return undefined;
  });
  const client = new RegistryClient(fake.host, FAST);
  await rejectsOneLine(
    client.resolve(fakeRef(fake, `cfs/test@${image.manifestDigest}`)),
    RegistryError,
    new RegExp(
      `^registry ${fake.host}: manifest cfs/test@${image.manifestDigest}: content has digest ` +
        `${other.manifestDigest}$`,
    ),
    (e) => equal(e.kind, "digest-mismatch"),
  );
  await rejectsOneLine(
    client.resolve(fakeRef(fake, "cfs/test:lying")),
    RegistryError,
    new RegExp(`content has digest ${image.manifestDigest}, the registry's Docker-Content-Digest`),
  );
  await rejectsOneLine(
    client.resolve(fakeRef(fake, "cfs/test:schema1")),
    RegistryError,
    /manifest cfs\/test:schema1: unsupported media type "application\/vnd\.docker\.distribution\.manifest\.v1\+prettyjws"/,
    (e) => equal(e.kind, "media-type"),
  );
  await rejectsOneLine(
    client.resolve(fakeRef(fake, "cfs/test:typo")),
    RegistryError,
    /unsupported media type "application\/vnd\.oci\.image\.manifest\.v1\+jsonx"/,
  );
  await rejectsOneLine(
    client.resolve(fakeRef(fake, "cfs/test:notjson")),
    RegistryError,
    /manifest cfs\/test:notjson is not JSON/,
  );
  for (const ref of ["cfs/test:huge", `cfs/test@${forever}`]) {
    await rejectsOneLine(
      client.resolve(fakeRef(fake, ref)),
      RegistryError,
      /: more than the 4194304-byte limit; stopped reading$/,
      (e) => equal(e.kind, "too-large"),
    );
  }
  await rejectsOneLine(
    client.resolve(fakeRef(fake, "cfs/test:declared-huge")),
    RegistryError,
    /manifest cfs\/test:declared-huge: 5242880 bytes \(Content-Length\), over the 4194304-byte limit; not read$/,
  );
});

Deno.test("registry client: a blob cut off mid-stream, a stalled blob, a blob with the wrong digest", async () => {
  const image = fakeImage();
  let mode: "stall" | "wrong" | "short" = "stall";
  const half = image.layer.subarray(0, 100_000);
  await using fake = fakeRegistry(image, (_request, url) => {
    if (url.pathname !== `/v2/cfs/test/blobs/${image.layerDigest}`) return undefined;
    if (mode === "stall") {
      return new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue(half); // then nothing, forever
          },
        }),
      );
    }
    if (mode === "short") return new Response(half);
    const wrong = image.layer.slice();
    wrong[1000] ^= 1;
    return new Response(wrong);
  });
  const client = new RegistryClient(fake.host, FAST);
  const resolved = await within(client.resolve(fakeRef(fake)));
  const layer = resolved.layers[0];

  // Content-Length promises the whole layer; the server closes the connection after a
  // third of it.
  await using cut = rawHttpServer(
    `HTTP/1.1 200 OK\r\ncontent-length: ${image.layer.length}\r\n\r\n`,
    half,
  );
  await rejectsOneLine(
    new RegistryClient(cut.host, FAST).openLayer("cfs/test", layer).then(drain),
    RegistryError,
    new RegExp(
      `^registry ${cut.host}: connection lost while reading blob ${image.layerDigest} of ` +
        `cfs/test after 100000 of 300000 bytes \\(.+\\) \\(gave up after 4 attempts\\)$`,
    ),
    (e) => equal(e.code, "registry-connection"),
  );
  mode = "stall";
  await rejectsOneLine(
    new RegistryClient(fake.host, { ...FAST, retries: 1 }).openBlob("cfs/test", layer).then(drain),
    RegistryError,
    new RegExp(
      `no data for 2 s while reading blob ${image.layerDigest} of cfs/test after 100000 of ` +
        "300000 bytes \\(gave up after 2 attempts\\)$",
    ),
    (e) => equal(e.code, "registry-timeout"),
  );
  mode = "short";
  await rejectsOneLine(
    client.openBlob("cfs/test", layer).then(drain),
    BlobError,
    new RegExp(`blob ${image.layerDigest}: the registry serves 100000 bytes \\(Content-Length\\)`),
  );
  mode = "wrong";
  await rejectsOneLine(
    client.openLayer("cfs/test", layer).then(drain),
    BlobError,
    new RegExp(`^layer ${image.layerDigest}: content has digest sha256:[0-9a-f]{64}$`),
    (e) => equal(e.problem, "digest-mismatch"),
  );
});

// --- retries and time limits (issue 11) -----------------------------------------------------------

/** Queued answers per path: the first request gets the first, and so on; then the image's. */
function scripted(answers: Record<string, (() => Response)[]>) {
  const seen: { path: string; range: string | null; at: number }[] = [];
  const handler: Handler = (request, url) => {
    seen.push({ path: url.pathname, range: request.headers.get("range"), at: performance.now() });
    return answers[url.pathname]?.shift()?.();
  };
  return { handler, seen: (path: string) => seen.filter((s) => s.path === path) };
}

/** `bytes`, then a failed connection (`error`), a clean early end (`close`) or silence. */
function cutAfter(
  bytes: Uint8Array,
  cut: number,
  then: "error" | "close" | "stall",
): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    async pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(bytes.slice(0, cut));
        return;
      }
      if (then === "stall") return await new Promise(() => {}); // never again
      await new Promise((r) => setTimeout(r, 20));
      if (then === "close") controller.close();
      else controller.error(new Error("fake registry: cutting the connection on purpose"));
    },
  });
}

/** `bytes` from `from` on, `chunk` bytes every `everyMs`. */
function dripping(bytes: Uint8Array, from: number, chunk: number, everyMs: number) {
  let at = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (at === 0) {
        at = from;
        controller.enqueue(bytes.slice(0, from));
        return;
      }
      if (at >= bytes.length) return controller.close();
      await new Promise((r) => timer = setTimeout(r, everyMs));
      controller.enqueue(bytes.slice(at, at + chunk));
      at += chunk;
    },
    cancel() {
      clearTimeout(timer);
    },
  });
}

/** A 206 answer for `Range: bytes=N-` of `bytes`. */
function partial(bytes: Uint8Array, range: string | null): Response {
  const from = Number(/^bytes=(\d+)-$/.exec(range ?? "")?.[1]);
  ok(Number.isSafeInteger(from), `a Range header: ${range}`);
  return new Response(bytes.slice(from), {
    status: 206,
    headers: { "content-range": `bytes ${from}-${bytes.length - 1}/${bytes.length}` },
  });
}

Deno.test("registry client: 5xx and 429 are retried (429 after its Retry-After); 4xx are not", async () => {
  const image = fakeImage();
  const manifestPath = "/v2/cfs/test/manifests/v1";
  const blobPath = `/v2/cfs/test/blobs/${image.layerDigest}`;
  const configPath = `/v2/cfs/test/blobs/${image.configDigest}`;
  const script = scripted({
    [manifestPath]: [() => new Response("database on fire", { status: 500 })],
    [configPath]: [() => new Response("", { status: 502 })],
    [blobPath]: [() => new Response("slow down", { status: 429, headers: { "retry-after": "1" } })],
  });
  await using fake = fakeRegistry(image, script.handler);
  const client = new RegistryClient(fake.host, FAST);
  const resolved = await within(client.resolve(fakeRef(fake)));
  equal(script.seen(manifestPath).length, 2, "the manifest was asked for again after a 500");
  equal(script.seen(configPath).length, 2, "the config was asked for again after a 502");
  const tar = await within(drain(await client.openLayer("cfs/test", resolved.layers[0])));
  equal(sha256(tar), image.layerDigest);
  const [first, second] = script.seen(blobPath);
  ok(second !== undefined, "the blob was asked for again after a 429");
  // FAST's backoff is 50 ms: the wait is the registry's Retry-After (1 s).
  ok(second.at - first.at >= 950, `waited ${second.at - first.at} ms, not Retry-After's 1 s`);

  // Not retried: 404, 400, and anything with retries 0.
  const bad = scripted({
    [`/v2/cfs/test/manifests/bad`]: [() => new Response("no", { status: 400 })],
    [manifestPath]: [() => new Response("", { status: 503 })],
  });
  await using fake2 = fakeRegistry(image, bad.handler);
  const client2 = new RegistryClient(fake2.host, FAST);
  await rejectsOneLine(
    client2.resolve(fakeRef(fake2, "cfs/test:bad")),
    RegistryError,
    /HTTP 400 Bad Request for manifest cfs\/test:bad: no$/,
    (e) => equal(e.code, "registry-http"),
  );
  equal(bad.seen("/v2/cfs/test/manifests/bad").length, 1, "a 400 is not asked again");
  await rejectsOneLine(
    client2.openBlob("cfs/test", { digest: `sha256:${"0".repeat(64)}`, size: 1 }),
    RegistryError,
    /blob unknown/,
    (e) => equal(e.code, "registry-not-found"),
  );
  equal(bad.seen(`/v2/cfs/test/blobs/sha256:${"0".repeat(64)}`).length, 1, "404 not asked again");
  await rejectsOneLine(
    new RegistryClient(fake2.host, { ...FAST, retries: 0 }).resolve(fakeRef(fake2)),
    RegistryError,
    /HTTP 503 Service Unavailable for manifest cfs\/test:v1$/,
    (e) => equal(e.code, "registry-server"),
  );
  equal(bad.seen(manifestPath).length, 1, "retries 0: asked once");
});

Deno.test("registry client: retries run out: the last failure's code, the attempts counted, backoff doubling", async () => {
  const image = fakeImage();
  const blobPath = `/v2/cfs/test/blobs/${image.layerDigest}`;
  const script = scripted({
    [blobPath]: Array(10).fill(() => new Response("still broken", { status: 500 })),
  });
  await using fake = fakeRegistry(image, script.handler);
  const client = new RegistryClient(fake.host, { ...FAST, retries: 2, retryDelayMs: 100 });
  const layer = { digest: image.layerDigest, size: image.layer.length };
  await rejectsOneLine(
    client.openBlob("cfs/test", layer),
    RegistryError,
    new RegExp(
      `^registry ${fake.host}: HTTP 500 Internal Server Error for blob ` +
        `cfs/test@${image.layerDigest}: still broken \\(gave up after 3 attempts\\)$`,
    ),
    (e) => {
      equal(e.code, "registry-server");
      equal(e.status, 500);
    },
  );
  const seen = script.seen(blobPath);
  equal(seen.length, 3, "1 attempt + 2 retries");
  ok(seen[1].at - seen[0].at >= 95, `first backoff ${seen[1].at - seen[0].at} ms`);
  ok(seen[2].at - seen[1].at >= 195, `second backoff ${seen[2].at - seen[1].at} ms (doubled)`);

  // An overall deadline that comes before the next wait ends the retries at once.
  const started = performance.now();
  await rejectsOneLine(
    new RegistryClient(fake.host, { ...FAST, retryDelayMs: 3000, timeoutMs: 1000 })
      .openBlob("cfs/test", layer),
    RegistryError,
    /still broken \(not retried: the overall time limit of 1 s ends first\)$/,
    (e) => equal(e.code, "registry-server"),
  );
  ok(performance.now() - started < 2500, "did not wait the backoff");
});

Deno.test("registry client: a blob cut mid-way resumes with Range (206) or starts again (200)", async () => {
  const image = fakeImage();
  const blobPath = `/v2/cfs/test/blobs/${image.layerDigest}`;
  const length = { "content-length": String(image.layer.length) };
  for (
    const [mode, cut, second] of [
      ["206, connection reset", "error", "206"],
      ["206, clean early end without a length", "close", "206"],
      ["200 (Range ignored), connection reset", "error", "200"],
    ] as const
  ) {
    let servedAfterCut = 0;
    const script = scripted({
      [blobPath]: [
        () =>
          new Response(cutAfter(image.layer, 100_000, cut), {
            headers: cut === "error" ? length : {},
          }),
      ],
    });
    await using fake = fakeRegistry(image, (request, url) => {
      const answer = script.handler(request, url);
      if (answer !== undefined || url.pathname !== blobPath) return answer;
      const range = request.headers.get("range");
      const r = second === "206" ? partial(image.layer, range) : new Response(image.layer);
      servedAfterCut = second === "206" ? image.layer.length - 100_000 : image.layer.length;
      return r;
    });
    const client = new RegistryClient(fake.host, FAST);
    const resolved = await within(client.resolve(fakeRef(fake)));
    const tar = await within(drain(await client.openLayer("cfs/test", resolved.layers[0])));
    equal(tar.length, image.layer.length, mode);
    equal(sha256(tar), image.layerDigest, `${mode}: digest over the whole blob`);
    deepEqual(script.seen(blobPath).map((s) => s.range), [null, "bytes=100000-"], mode);
    equal(servedAfterCut, second === "206" ? 200_000 : 300_000, mode);
  }

  // A 206 for another range than asked is refused (not stitched in).
  const wrong = scripted({
    [blobPath]: [
      () => new Response(cutAfter(image.layer, 100_000, "error"), { headers: length }),
      () =>
        new Response(image.layer.slice(50_000), {
          status: 206,
          headers: { "content-range": `bytes 50000-299999/300000` },
        }),
    ],
  });
  await using fake = fakeRegistry(image, wrong.handler);
  await rejectsOneLine(
    new RegistryClient(fake.host, FAST)
      .openBlob("cfs/test", { digest: image.layerDigest, size: image.layer.length })
      .then(drain),
    RegistryError,
    /asked for bytes 100000-299999, the registry answered Content-Range "bytes 50000-299999\/300000"$/,
    (e) => equal(e.code, "registry-invalid"),
  );
});

Deno.test("registry client: a stalled blob, a dripping blob and the overall deadline end in time", async () => {
  const image = fakeImage(40_000);
  const blobPath = `/v2/cfs/test/blobs/${image.layerDigest}`;
  let body: () => ReadableStream<Uint8Array> = () => cutAfter(image.layer, 10_000, "stall");
  await using fake = fakeRegistry(image, (_request, url) => {
    if (url.pathname === blobPath) return new Response(body());
    return undefined;
  });
  const layer = { digest: image.layerDigest, size: image.layer.length };
  const slow = { ...FAST, idleTimeoutMs: 1000, retries: 0 };
  const timed = async (client: RegistryClient) => {
    const started = performance.now();
    const bytes = await drain(await client.openBlob("cfs/test", layer));
    return { bytes, ms: performance.now() - started };
  };
  const timedOut = async (client: RegistryClient, pattern: RegExp, atLeast: number) => {
    const started = performance.now();
    await rejectsOneLine(
      timed(client),
      RegistryError,
      pattern,
      (e) => equal(e.code, "registry-timeout"),
    );
    const ms = performance.now() - started;
    ok(ms >= atLeast - 50 && ms < atLeast + 4000, `failed after ${ms} ms, expected ~${atLeast}`);
  };

  // Silence after 10000 bytes: one idle window.
  await timedOut(
    new RegistryClient(fake.host, slow),
    new RegExp(
      `no data for 1 s while reading blob ${image.layerDigest} of cfs/test after 10000 of 40000 bytes$`,
    ),
    1000,
  );
  // A byte every 100 ms: ~10 bytes a second, under 1 KiB/s.
  body = () => dripping(image.layer, 10_000, 1, 100);
  await timedOut(
    new RegistryClient(fake.host, slow),
    /only \d+ bytes in 1 s \(at least 1024 needed: 1024 bytes\/s\) while reading blob .* after 100\d\d of 40000 bytes$/,
    1000,
  );
  // Slow but steady (15 KB/s, 2 s in all) is no stall.
  body = () => dripping(image.layer, 10_000, 1500, 100);
  const steady = await timed(new RegistryClient(fake.host, slow));
  equal(sha256(steady.bytes), image.layerDigest);
  ok(steady.ms > 1500, `the steady blob took ${steady.ms} ms, longer than a window`);
  // minBytesPerSecond 0: the drip is progress enough (1 byte per 100 ms, window 1 s)...
  // ... and the overall deadline still ends it.
  body = () => dripping(image.layer, 10_000, 1, 100);
  await timedOut(
    new RegistryClient(fake.host, { ...slow, minBytesPerSecond: 0, timeoutMs: 2500, retries: 3 }),
    /the overall time limit of 2\.5 s ran out while reading blob .* of cfs\/test after 10\d\d\d of 40000 bytes$/,
    2500,
  );
});

Deno.test("registry client: a stalled body is caught after the response is garbage-collected", async () => {
  // Deno's fetch stops hearing the AbortSignal of a response whose Request was collected; the
  // client must not depend on it (issue 11: `cfs pull` waited forever on a stalled layer).
  const dir = await Deno.makeTempDir({ prefix: "cfs-registry-gc-" });
  try {
    const script = join(dir, "stall.ts");
    await Deno.writeTextFile(
      script,
      `
      import { RegistryClient } from ${
        JSON.stringify(new URL("../lib/oci/registry.ts", import.meta.url).href)
      };
      const blob = new Uint8Array(300000);
      const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () =>
        new Response(new ReadableStream({ start(c) { c.enqueue(blob.slice(0, 100000)); } })));
      const client = new RegistryClient("127.0.0.1:" + server.addr.port,
        { tlsVerify: false, idleTimeoutMs: 2000, retries: 0 });
      const stream = await client.openBlob("cfs/test", { digest: "sha256:" + "a".repeat(64), size: 300000 });
      setTimeout(() => { for (let i = 0; i < 5; i++) (globalThis as any).gc(); }, 500);
      try { for await (const _ of stream); console.log("no error"); }
      catch (e) { console.log((e as any).code); }
      Deno.exit(0);
      `,
    );
    const started = performance.now();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        "--v8-flags=--expose-gc",
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const out = await child.output();
    clearTimeout(timer);
    equal(
      new TextDecoder().decode(out.stdout).trim(),
      "registry-timeout",
      new TextDecoder().decode(out.stderr),
    );
    ok(performance.now() - started < 15_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("registry client: blob redirects are followed; Authorization stays at the registry", async () => {
  const image = fakeImage();
  await using storage = fakeRegistry(image, (_request, url) => {
    if (url.pathname === "/storage/layer") return new Response(image.layer);
    return new Response("no", { status: 404 });
  });
  await using fake = fakeRegistry(image, (request, url) => {
    if (request.headers.get("authorization") !== basicHeader("u", "p")) {
      return new Response("", { status: 401, headers: { "www-authenticate": "Basic" } });
    }
    if (url.pathname === `/v2/cfs/test/blobs/${image.layerDigest}`) {
      return new Response(null, {
        status: 307,
        headers: { location: `http://${storage.host}/storage/layer?sig=1` },
      });
    }
    return undefined;
  });
  const client = new RegistryClient(fake.host, {
    ...FAST,
    credentials: { username: "u", password: "p" },
  });
  await within(pullAll(client, "", fake));
  deepEqual(storage.requests, [{ path: "/storage/layer", authorization: null }]);
});

Deno.test("auth: WWW-Authenticate parsing and auth file lookup", () => {
  deepEqual(
    parseWwwAuthenticate(
      'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"',
    ),
    [{
      scheme: "bearer",
      params: {
        realm: "https://auth.example/token",
        service: "registry.example",
        scope: "repository:a/b:pull",
      },
    }],
  );
  deepEqual(parseWwwAuthenticate('Basic realm="x", Bearer realm=https://t/x,error=invalid_token'), [
    { scheme: "basic", params: { realm: "x" } },
    { scheme: "bearer", params: { realm: "https://t/x", error: "invalid_token" } },
  ]);
  deepEqual(parseWwwAuthenticate("Basic"), [{ scheme: "basic", params: {} }]);
  const file = {
    auths: {
      "https://index.docker.io/v1/": { auth: btoa("hub:1") },
      "quay.io": { auth: btoa("quay:2") },
      "quay.io/team": { auth: btoa("team:3") },
      "127.0.0.1:5000": { auth: btoa("local:pa:ss") },
    },
  };
  deepEqual(credentialsFromAuthFile(file, "f", "docker.io", "library/busybox"), {
    username: "hub",
    password: "1",
  });
  deepEqual(credentialsFromAuthFile(file, "f", "quay.io", "team/app")?.username, "team");
  deepEqual(credentialsFromAuthFile(file, "f", "quay.io", "other/app")?.username, "quay");
  deepEqual(credentialsFromAuthFile(file, "f", "127.0.0.1:5000", "x"), {
    username: "local",
    password: "pa:ss",
  });
  equal(credentialsFromAuthFile(file, "f", "127.0.0.1:5001", "x"), undefined);
});

Deno.test("auth: REGISTRY_AUTH_FILE alone is read; a malformed one is an error naming it", async () => {
  await withAuthFile({ auths: { "127.0.0.1:1234": { auth: btoa("a:b") } } }, async (path) => {
    deepEqual(await findCredentials("127.0.0.1:1234", "x/y"), {
      username: "a",
      password: "b",
      source: path,
    });
    equal(await findCredentials("127.0.0.1:4321", "x/y"), undefined);
  });
  await withAuthFile({ auths: { "127.0.0.1:1234": { auth: "!!notbase64" } } }, async (path) => {
    await rejects(findCredentials("127.0.0.1:1234"), (e: any) => {
      ok(e instanceof AuthFileError);
      equal(
        e.message,
        `auth file ${path}: entry "127.0.0.1:1234": "auth" is not base64 of UTF-8 text`,
      );
      return true;
    });
  });
  const dir = await Deno.makeTempDir({ prefix: "cfs-auth-" });
  try {
    const path = join(dir, "auth.json");
    await Deno.writeTextFile(path, "{ not json");
    await rejects(
      findCredentials("h", undefined, { paths: [path] }),
      /^AuthFileError: auth file .*auth\.json: not valid JSON/,
    );
    // A missing file is skipped: the next one in the search order is read.
    const second = join(dir, "second.json");
    await Deno.writeTextFile(second, JSON.stringify({ auths: { h: { auth: btoa("u:p") } } }));
    equal(
      (await findCredentials("h", undefined, { paths: [join(dir, "none"), second] }))?.source,
      second,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
