/**
 * Hostile input for `cfs oci pull`: a fake registry (Deno.serve on 127.0.0.1) that lies,
 * truncates, drops connections and refuses; OCI layouts whose layer tars are written here
 * byte by byte (paths with `..`, absolute paths, symlinks to write through, hardlinks to
 * nothing, sparse entries, truncated archives); and repositories that are not ones.
 *
 * Every refused pull must exit 1 with exactly one line on stderr that names what was
 * refused (digest, path or reference) and no stack trace; afterwards `cfs fsck` is clean
 * and `cfs oci images --json` shows no tag: nothing half-written.
 *
 * composefs-oci 0.9.4 (the reference) makes the image at pull time: a layer it can store but
 * not build an image from (`create_filesystem` -> `process_entry`) fails the pull after the
 * layer, config and manifest streams are stored, without a tag. Each hostile layout is also
 * pulled by cfsctl 0.9.4 into a repository of its own, and the test checks that it agrees:
 * refused (and where: while importing, or when making the image) or accepted (then with the
 * same dumpfile). cfs refuses no later than cfsctl, with one line naming the entry, and
 * nothing is ever written outside the repository.
 *
 * @module
 */
import { concatBytes } from "../lib/bytes.ts";
import { deepEqual, equal, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { pathExists, runCfs, type RunResult } from "./cfs.ts";
import { addToIndexJson, buildOciImage, type BuiltImage } from "./fixtures/oci.ts";
import { runCfsctl09 } from "./oracles.ts";

// --- helpers ------------------------------------------------------------------------------------

const enc = new TextEncoder();
const TAG = "hostile";
const MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE = "application/vnd.oci.image.config.v1+json";
const TAR_TYPE = "application/vnd.oci.image.layer.v1.tar";

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** An environment with no usable registry credentials (host auth files are not read). */
function noAuthEnv(tmp: string): Record<string, string> {
  return { REGISTRY_AUTH_FILE: join(tmp, "no-such-auth.json") };
}

async function newRepo(tmp: string, name: string): Promise<string> {
  const repo = join(tmp, name);
  const r = await runCfs(["init", "--insecure", "--algorithm", "fsverity-sha256-12", repo]);
  equal(r.code, 0, `init: ${r.stderr}`);
  return repo;
}

/** The progress lines `cfs oci pull` writes to stderr (not a terminal) as layers import. */
const PROGRESS_LINE = /^layer \d+\/\d+ (imported|already present)$/;

/**
 * A refusal: exit 1, one line on stderr starting `cfs: ` (the last; before it only the
 * progress lines of layers that were imported), no stack trace, and the line contains one of
 * `names`. Returns the line.
 */
function assertOneLineError(r: RunResult, names: string[], what: string): string {
  equal(r.code, 1, `${what}: expected exit 1, got ${r.code}; stderr: ${r.stderr}`);
  ok(r.stderr.endsWith("\n"), `${what}: ${JSON.stringify(r.stderr)}`);
  const lines = r.stderr.slice(0, -1).split("\n");
  const line = lines.pop()!;
  ok(
    /^cfs: [^\n]+$/.test(line) && lines.every((l) => PROGRESS_LINE.test(l)),
    `${what}: not exactly one error line: ${JSON.stringify(r.stderr)}`,
  );
  ok(!r.stderr.includes("    at "), `${what}: stack trace: ${r.stderr}`);
  ok(
    names.some((n) => line.includes(n)),
    `${what}: ${JSON.stringify(line)} names none of ${JSON.stringify(names)}`,
  );
  if (Deno.env.get("CFS_TEST_SHOW_ERRORS")) console.log(`    ${what}: ${line}`);
  return line;
}

/** The stream names an image's digests could be stored under (composefs-oci 0.9.4). */
function streamNames(digest: string): string[] {
  return ["oci-layer-", "oci-config-", "oci-manifest-"].map((p) => p + digest);
}

/** Nothing tagged and fsck clean after a failed pull. */
async function assertNoTag(repo: string, what: string): Promise<void> {
  const fsck = await runCfs(["--repo", repo, "fsck"]);
  equal(fsck.code, 0, `${what}: fsck after the failed pull: ${fsck.text}${fsck.stderr}`);
  const images = await runCfs(["--repo", repo, "--json", "oci", "images"]);
  equal(images.code, 0, `${what}: oci images: ${images.stderr}`);
  deepEqual(JSON.parse(images.text), { images: [] }, `${what}: a tag was written: ${images.text}`);
  ok(!(await pathExists(join(repo, "streams", "refs", "oci", TAG))), `${what}: tag ref exists`);
}

/**
 * Nothing half-written: fsck clean, no tag, and no stream for the given digests (layer,
 * config or manifest: `streams/oci-*-<digest>`).
 */
async function assertNothingStored(repo: string, digests: string[], what: string): Promise<void> {
  await assertNoTag(repo, what);
  for (const name of digests.flatMap(streamNames)) {
    ok(!(await pathExists(join(repo, "streams", name))), `${what}: stream ${name} was written`);
  }
}

// --- a fake registry ----------------------------------------------------------------------------

/** How the fake registry answers; undefined: the normal answer. */
interface Misbehaviour {
  /** Replaces the answer to any request under `/v2/test/img/`. */
  any?: (req: Request) => Response | undefined;
  /** Replaces the answer to `GET /v2/test/img/manifests/REF`. */
  manifest?: (ref: string) => Response | undefined;
  /** Replaces the answer to `GET /v2/test/img/blobs/DIGEST`. */
  blob?: (digest: string, req: Request) => Response | undefined;
}

interface FakeRegistry extends AsyncDisposable {
  host: string;
  /** What the registry serves: manifest for tag v1 and blobs by digest. */
  manifest: Uint8Array<ArrayBuffer>;
  blobs: Map<string, Uint8Array<ArrayBuffer>>;
  misbehave: Misbehaviour;
  /** Requests seen (method and path). */
  log: string[];
  /** Requests seen, with their `Range` header and when (performance.now()). */
  requests: { path: string; range: string | null; at: number }[];
}

function startFakeRegistry(
  manifest: Uint8Array<ArrayBuffer>,
  blobs: Map<string, Uint8Array<ArrayBuffer>>,
): FakeRegistry {
  const state = {
    misbehave: {} as Misbehaviour,
    manifest,
    blobs,
    log: [] as string[],
    requests: [] as FakeRegistry["requests"],
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => {
      const url = new URL(req.url);
      state.log.push(`${req.method} ${url.pathname}`);
      state.requests.push({
        path: url.pathname,
        range: req.headers.get("range"),
        at: performance.now(),
      });
      if (url.pathname === "/v2/" || url.pathname === "/v2") {
        return Response.json({});
      }
      const prefix = "/v2/test/img/";
      if (!url.pathname.startsWith(prefix)) return new Response("no such repo", { status: 404 });
      const special = state.misbehave.any?.(req);
      if (special) return special;
      const rest = url.pathname.slice(prefix.length);
      if (rest.startsWith("manifests/")) {
        const ref = decodeURIComponent(rest.slice("manifests/".length));
        const m = state.misbehave.manifest?.(ref);
        if (m) return m;
        const digest = sha256(state.manifest);
        if (ref !== "v1" && ref !== digest) return manifestUnknown();
        return new Response(state.manifest, {
          headers: { "content-type": MANIFEST_TYPE, "docker-content-digest": digest },
        });
      }
      if (rest.startsWith("blobs/")) {
        const digest = decodeURIComponent(rest.slice("blobs/".length));
        const b = state.misbehave.blob?.(digest, req);
        if (b) return b;
        const bytes = state.blobs.get(digest);
        if (!bytes) return new Response('{"errors":[{"code":"BLOB_UNKNOWN"}]}', { status: 404 });
        return new Response(bytes, {
          headers: { "content-type": "application/octet-stream", "docker-content-digest": digest },
        });
      }
      return new Response("not found", { status: 404 });
    },
  );
  const host = `127.0.0.1:${server.addr.port}`;
  return {
    host,
    get manifest() {
      return state.manifest;
    },
    set manifest(m: Uint8Array<ArrayBuffer>) {
      state.manifest = m;
    },
    blobs,
    get misbehave() {
      return state.misbehave;
    },
    set misbehave(m: Misbehaviour) {
      state.misbehave = m;
    },
    log: state.log,
    requests: state.requests,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

function manifestUnknown(): Response {
  return new Response(
    '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}',
    { status: 404, headers: { "content-type": "application/json" } },
  );
}

/** A body that sends `bytes.subarray(0, cut)` and then ends (`error`: aborts instead). */
function cutBody(bytes: Uint8Array, cut: number, mode: "close" | "error"): ReadableStream {
  let sent = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(bytes.slice(0, cut));
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
      if (mode === "close") controller.close();
      else controller.error(new Error("fake registry: dropping the connection on purpose"));
    },
  });
}

/** Zeros, `chunk` bytes every 100 ms, forever (until the client goes away). */
function slowZeros(chunk = 64 * 1024): { body: ReadableStream<Uint8Array>; sent: () => number } {
  let sent = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      await new Promise<void>((r) => timer = setTimeout(r, 100));
      sent += chunk;
      controller.enqueue(new Uint8Array(chunk));
    },
    cancel() {
      clearTimeout(timer);
    },
  });
  return { body, sent: () => sent };
}

// --- hand-written tars --------------------------------------------------------------------------

/** One entry of a hand-written ustar archive. */
interface RawEntry {
  name: string;
  /** Type flag: "0" file, "1" hardlink, "2" symlink, "5" directory, "S" GNU sparse, ... */
  type?: string;
  body?: Uint8Array | string;
  linkname?: string;
  mode?: number;
  /** Header `size` field, when it must differ from the body's length. */
  size?: number;
  /** Extra header bytes at given offsets (e.g. the GNU sparse map). */
  patch?: [number, Uint8Array][];
  /** "ustar\000" (POSIX, default) or "ustar  \0" (GNU). */
  gnu?: boolean;
}

function octal(value: number, width: number): Uint8Array {
  return enc.encode(value.toString(8).padStart(width - 1, "0") + "\0");
}

/** A 512-byte ustar header with a correct checksum (names must fit 100 bytes). */
function tarHeader(e: RawEntry, size: number): Uint8Array {
  const h = new Uint8Array(512);
  const name = enc.encode(e.name);
  if (name.length > 100) throw new Error(`name too long for the test's tar writer: ${e.name}`);
  h.set(name, 0);
  h.set(octal(e.mode ?? (e.type === "5" ? 0o755 : 0o644), 8), 100);
  h.set(octal(0, 8), 108);
  h.set(octal(0, 8), 116);
  h.set(octal(e.size ?? size, 12), 124);
  h.set(octal(1700000000, 12), 136);
  h[156] = (e.type ?? "0").charCodeAt(0);
  if (e.linkname) h.set(enc.encode(e.linkname), 157);
  if (e.gnu) h.set(enc.encode("ustar  \0"), 257);
  else h.set(enc.encode("ustar\u000000"), 257);
  h.set(enc.encode("root"), 265);
  h.set(enc.encode("root"), 297);
  for (const [at, bytes] of e.patch ?? []) h.set(bytes, at);
  // Checksum: the byte sum with the checksum field counted as eight spaces; six octal
  // digits, NUL, space.
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return h;
}

/** A ustar archive of `entries` with the two zero blocks at the end. */
function rawTar(entries: RawEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const body = typeof e.body === "string" ? enc.encode(e.body) : e.body ?? new Uint8Array();
    parts.push(tarHeader(e, body.length), body);
    if (body.length % 512) parts.push(new Uint8Array(512 - (body.length % 512)));
  }
  parts.push(new Uint8Array(1024));
  return concatBytes(parts);
}

/** What {@link writeRawLayout} wrote. */
interface RawImage {
  manifest: string;
  config: string;
  layers: string[];
}

/**
 * An OCI layout at `dir` tagged `v1`: uncompressed layers from the given bytes, their
 * sha256 as digest and diff_id (or `diffIds` when given).
 */
async function writeRawLayout(
  dir: string,
  layers: Uint8Array[],
  diffIds?: string[],
): Promise<RawImage> {
  await Deno.mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  await Deno.writeTextFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  const put = async (bytes: Uint8Array) => {
    const digest = sha256(bytes);
    await Deno.writeFile(join(dir, "blobs", "sha256", digest.slice(7)), bytes);
    return digest;
  };
  const layerDigests: string[] = [];
  for (const l of layers) layerDigests.push(await put(l));
  const config = enc.encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: {},
    rootfs: { type: "layers", diff_ids: diffIds ?? layerDigests },
  }));
  const configDigest = await put(config);
  const manifest = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST_TYPE,
    config: { mediaType: CONFIG_TYPE, digest: configDigest, size: config.length },
    layers: layers.map((l, i) => ({
      mediaType: TAR_TYPE,
      digest: layerDigests[i],
      size: l.length,
    })),
  }));
  const manifestDigest = await put(manifest);
  await addToIndexJson(dir, {
    mediaType: MANIFEST_TYPE,
    digest: manifestDigest,
    size: manifest.length,
    path: "",
  }, "v1");
  return { manifest: manifestDigest, config: configDigest, layers: layerDigests };
}

// --- 1. a misbehaving registry ------------------------------------------------------------------

/** 256 KiB that gzip cannot shrink, so that the layer blob is large enough to cut. */
function noise(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/** The image the fake registries serve: one gzip layer with /usr, 256 KiB of noise, a file. */
async function servedImage(dir: string) {
  const built: BuiltImage = await buildOciImage(dir, {
    tag: "v1",
    compression: "gzip",
    layers: [[
      { type: "dir", path: "usr" },
      { type: "file", path: "data/noise", content: noise(256 * 1024) },
      { type: "file", path: "etc/hostname", content: "hostile\n" },
    ]],
  });
  const manifestBytes = await Deno.readFile(built.manifest.path);
  const configBytes = await Deno.readFile(built.config.path);
  const layer = built.layers[0];
  const layerBytes = await Deno.readFile(layer.path);
  const blobs = new Map<string, Uint8Array<ArrayBuffer>>([
    [built.config.digest, configBytes],
    [layer.digest, layerBytes],
  ]);
  return { built, manifestBytes, configBytes, layer, layerBytes, blobs };
}

/** A configuration file in `dir` with `fetch` settings (default: a 50 ms first backoff). */
async function fastRetries(
  dir: string,
  config: Record<string, unknown> = { fetch: { retryDelay: 0.05 } },
): Promise<string> {
  const path = join(dir, `config-${crypto.randomUUID()}.json`);
  await Deno.writeTextFile(path, JSON.stringify(config));
  return path;
}

Deno.test({
  name:
    "hostile registry: lies, truncation, drops, refusals and huge manifests are one-line errors",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const tmp = await Deno.makeTempDir({ prefix: "cfs-oci-hostile-registry-" });
    try {
      const { built, manifestBytes, configBytes, layer, layerBytes, blobs } = await servedImage(
        join(tmp, "img"),
      );
      await using registry = startFakeRegistry(manifestBytes, blobs);
      const host = registry.host;
      const ref = `docker://${host}/test/img:v1`;
      // Failures are retried (3 times by default): with 50 ms backoff, not seconds.
      const env = { ...noAuthEnv(tmp), CFS_CONFIG: await fastRetries(tmp) };
      const prefix = `cfs: registry ${host}: `;

      // Sanity: the fake registry serves a pullable image.
      {
        const repo = await newRepo(tmp, "repo-ok");
        const r = await runCfs(["--repo", repo, "oci", "pull", "--tls-verify=false", ref, "ok"], {
          env,
        });
        equal(r.code, 0, `pull from the well-behaved fake registry: ${r.stderr}`);
        ok(r.text.includes(`manifest ${built.manifest.digest}`), r.text);
      }

      interface Case {
        name: string;
        misbehave: Misbehaviour;
        /** Served instead of the built manifest (with its config blob added). */
        manifest?: Uint8Array<ArrayBuffer>;
        /** The error line must contain one of these. */
        names: string[];
        /** Must the line start with `cfs: registry HOST: `? (else: it names a digest) */
        registryPrefix?: boolean;
        /** Longest run time (ms). */
        maxMs?: number;
      }

      // diff_id mismatch: a config listing another diff_id, and a manifest pointing at it.
      const wrongDiffId = sha256(enc.encode("not the layer's tar"));
      const badConfig = enc.encode(
        new TextDecoder().decode(configBytes).replace(layer.diffId, wrongDiffId),
      );
      ok(sha256(badConfig) !== built.config.digest);
      const badConfigManifest = enc.encode(
        new TextDecoder().decode(manifestBytes)
          .replace(built.config.digest, sha256(badConfig))
          .replace(`"size":${configBytes.length}`, `"size":${badConfig.length}`),
      );
      blobs.set(sha256(badConfig), badConfig);

      // Blob digest mismatch: the same gzip stream with another mtime in its header: same
      // length, same tar inside, other digest.
      const otherLayer = layerBytes.slice();
      otherLayer[4] ^= 0x5a;
      ok(sha256(otherLayer) !== layer.digest);

      const layerOnly = (f: () => Response) => (d: string) => d === layer.digest ? f() : undefined;
      const anyManifest = (f: () => Response) => () => f();

      const cases: Case[] = [
        {
          name: "layer blob digest mismatch (same length, other bytes)",
          misbehave: { blob: layerOnly(() => new Response(otherLayer)) },
          names: [layer.digest],
        },
        {
          name: "diff_id mismatch (config and manifest consistent)",
          manifest: badConfigManifest,
          misbehave: {},
          names: [wrongDiffId, layer.digest],
        },
        {
          name: "truncated blob (Content-Length N, fewer bytes, then the end)",
          misbehave: {
            blob: layerOnly(() =>
              new Response(cutBody(layerBytes, layerBytes.length >> 1, "close"), {
                headers: { "content-length": String(layerBytes.length) },
              })
            ),
          },
          names: [layer.digest],
        },
        {
          name: "connection dropped mid-blob",
          misbehave: {
            blob: layerOnly(() => new Response(cutBody(layerBytes, 100_000, "error"))),
          },
          names: [layer.digest],
        },
        {
          name: "401 without a challenge",
          misbehave: { any: () => new Response("go away", { status: 401 }) },
          names: ["test/img", "401"],
          registryPrefix: true,
        },
        {
          name: "401 with a Basic challenge, no credentials",
          misbehave: {
            any: (req) =>
              req.headers.has("authorization")
                ? new Response("bad credentials", { status: 403 })
                : new Response("login", {
                  status: 401,
                  headers: { "www-authenticate": 'Basic realm="fake"' },
                }),
          },
          names: ["test/img"],
          registryPrefix: true,
        },
        {
          name: "404 for the manifest",
          misbehave: { manifest: () => manifestUnknown() },
          names: ["test/img:v1"],
          registryPrefix: true,
        },
        {
          name: "500 for the layer blob",
          misbehave: {
            blob: layerOnly(() => new Response("internal error", { status: 500 })),
          },
          names: [layer.digest],
          registryPrefix: true,
        },
        {
          name: "500 for the config blob",
          misbehave: {
            blob: (d) =>
              d === built.config.digest ? new Response("oops", { status: 500 }) : undefined,
          },
          names: [built.config.digest],
          registryPrefix: true,
        },
        {
          name: "manifest that is not JSON",
          misbehave: {
            manifest: anyManifest(() =>
              new Response("<html>this is not a manifest</html>", {
                headers: { "content-type": MANIFEST_TYPE },
              })
            ),
          },
          names: ["test/img:v1"],
          registryPrefix: true,
        },
        {
          name: "manifest with the wrong media type",
          misbehave: {
            manifest: anyManifest(() => {
              const m = new TextDecoder().decode(manifestBytes).replace(
                MANIFEST_TYPE,
                "application/vnd.example.not-a-manifest+json",
              );
              return new Response(m, {
                headers: { "content-type": "application/vnd.example.not-a-manifest+json" },
              });
            }),
          },
          names: ["test/img:v1"],
          registryPrefix: true,
        },
        {
          name: "a 1 GiB manifest streamed slowly (Content-Length 1073741824)",
          misbehave: {
            manifest: anyManifest(() =>
              new Response(slowZeros().body, {
                headers: { "content-type": MANIFEST_TYPE, "content-length": "1073741824" },
              })
            ),
          },
          names: ["test/img:v1"],
          registryPrefix: true,
          maxMs: 10_000,
        },
        {
          name: "a manifest streamed slowly without a length, past 4 MiB",
          misbehave: {
            manifest: anyManifest(() =>
              new Response(slowZeros(512 * 1024).body, {
                headers: { "content-type": MANIFEST_TYPE },
              })
            ),
          },
          names: ["test/img:v1"],
          registryPrefix: true,
          maxMs: 10_000,
        },
      ];

      for (const [i, c] of cases.entries()) {
        await t.step(c.name, async () => {
          const repo = await newRepo(tmp, `repo-${i}`);
          registry.manifest = c.manifest ?? manifestBytes;
          registry.misbehave = c.misbehave;
          try {
            const started = performance.now();
            const r = await runCfs(
              ["--repo", repo, "oci", "pull", "--tls-verify=false", ref, TAG],
              { env },
            );
            const ms = performance.now() - started;
            const line = assertOneLineError(r, c.names, c.name);
            if (c.registryPrefix) {
              ok(line.startsWith(prefix), `${c.name}: ${line} does not start with ${prefix}`);
            } else {
              ok(
                line.startsWith(prefix) || /sha256:[0-9a-f]{64}/.test(line),
                `${c.name}: ${line} names neither the registry nor a digest`,
              );
            }
            if (c.maxMs !== undefined) ok(ms < c.maxMs, `${c.name}: took ${ms.toFixed(0)} ms`);
            await assertNothingStored(
              repo,
              [
                sha256(registry.manifest),
                built.config.digest,
                sha256(badConfig),
                layer.diffId,
                wrongDiffId,
              ],
              c.name,
            );
          } finally {
            registry.misbehave = {};
            registry.manifest = manifestBytes;
          }
        });
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

// --- 1b. a registry that stalls, drips, fails for a while or cuts blobs ---------------------------

/** `bytes.subarray(0, cut)`, then silence until the client goes away. */
function stallAfter(bytes: Uint8Array, cut: number): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent) return await new Promise<void>(() => {});
      sent = true;
      controller.enqueue(bytes.slice(0, cut));
    },
  });
}

/** `bytes.subarray(0, from)`, then one byte every `everyMs` (the slow drip, faster). */
function dripAfter(bytes: Uint8Array, from: number, everyMs: number): ReadableStream<Uint8Array> {
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
      controller.enqueue(bytes.slice(at, at + 1));
      at++;
    },
    cancel() {
      clearTimeout(timer);
    },
  });
}

/** The `{"error": ...}` line of a `cfs --json` run that failed. */
function jsonError(r: RunResult, what: string): { code: string; message: string } {
  equal(r.code, 1, `${what}: expected exit 1, got ${r.code}: ${r.text}${r.stderr}`);
  const lines = r.text.trim().split("\n");
  const error = JSON.parse(lines[lines.length - 1]).error;
  ok(error !== undefined, `${what}: no error object: ${r.text}`);
  return error;
}

Deno.test({
  name:
    "hostile registry: stalls and drips end in time, 5xx/429/cuts are retried (cuts resumed), " +
    "failures leave no tag",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const tmp = await Deno.makeTempDir({ prefix: "cfs-oci-hostile-transfer-" });
    try {
      const { built, manifestBytes, layer, layerBytes, blobs } = await servedImage(
        join(tmp, "img"),
      );
      await using registry = startFakeRegistry(manifestBytes, blobs);
      const host = registry.host;
      const ref = `docker://${host}/test/img:v1`;
      const env = { ...noAuthEnv(tmp), CFS_CONFIG: await fastRetries(tmp) };
      const half = layerBytes.length >> 1;
      const blobPath = `/v2/test/img/blobs/${layer.digest}`;
      const blobRequests = () => registry.requests.filter((r) => r.path === blobPath);
      /** Answers the layer blob with `answers[i]` for its i-th request, then normally. */
      const layerAnswers = (...answers: ((req: Request) => Response)[]) => {
        let i = 0;
        return {
          blob: (d: string, req: Request) =>
            d === layer.digest && i < answers.length ? answers[i++](req) : undefined,
        };
      };
      const withLength = (body: ReadableStream<Uint8Array>) =>
        new Response(body, { headers: { "content-length": String(layerBytes.length) } });

      // The reference: the image id of a pull from the well-behaved registry.
      const cleanRepo = await newRepo(tmp, "repo-clean");
      const clean = await runCfs(
        ["--repo", cleanRepo, "oci", "pull", "--tls-verify=false", ref, TAG],
        { env },
      );
      equal(clean.code, 0, clean.stderr);
      const imageId = async (repo: string) => {
        const r = await runCfs(["--repo", repo, "oci", "compute-id", TAG]);
        equal(r.code, 0, r.stderr);
        return r.text.trim();
      };
      const expectedId = await imageId(cleanRepo);

      interface Failing {
        name: string;
        misbehave: () => Misbehaviour;
        args: string[];
        /** Extra environment (a config file). */
        env?: Record<string, string>;
        code: string;
        /** The line must contain each of these. */
        says: (string | RegExp)[];
        /** When it must have failed: at least and at most (ms). */
        within: [number, number];
        /** How many times the layer blob was asked for. */
        blobRequests?: number;
      }
      const failing: Failing[] = [
        {
          name: "stall mid-body (--idle-timeout 1, --retries 0)",
          misbehave: () => layerAnswers(() => withLength(stallAfter(layerBytes, half))),
          args: ["--idle-timeout", "1", "--retries", "0"],
          code: "registry-timeout",
          says: [
            `registry ${host}: no data for 1 s while reading blob ${layer.digest}`,
            `after ${half} of ${layerBytes.length} bytes`,
          ],
          within: [1000, 8000],
          blobRequests: 1,
        },
        {
          name: "stall mid-body, retried once with Range, stalls again",
          misbehave: () =>
            layerAnswers(
              () => withLength(stallAfter(layerBytes, half)),
              () => withLength(stallAfter(layerBytes, half)),
            ),
          args: ["--idle-timeout", "500ms", "--retries", "1"],
          code: "registry-timeout",
          says: [`blob ${layer.digest}`, "(gave up after 2 attempts)"],
          within: [1000, 8000],
          blobRequests: 2,
        },
        {
          name: "stall mid-body, idle timeout from the registry's entry in the config file",
          misbehave: () => layerAnswers(() => withLength(stallAfter(layerBytes, half))),
          args: [],
          env: {
            CFS_CONFIG: "", // set below: needs the registry's host
          },
          code: "registry-timeout",
          says: [`no data for 1 s while reading blob ${layer.digest}`],
          within: [1000, 8000],
        },
        {
          name: "slow drip: one byte every 200 ms after half the layer",
          misbehave: () => layerAnswers(() => withLength(dripAfter(layerBytes, half, 200))),
          args: ["--idle-timeout", "1", "--retries", "0"],
          code: "registry-timeout",
          says: [/only \d+ bytes in 1 s \(at least 1024 needed: 1024 bytes\/s\)/, layer.digest],
          within: [1000, 8000],
        },
        {
          name: "overall --timeout under a stall the idle timeout would wait out",
          misbehave: () => layerAnswers(() => withLength(stallAfter(layerBytes, half))),
          args: ["--timeout", "1.5", "--idle-timeout", "60"],
          code: "registry-timeout",
          says: [`the overall time limit of 1.5 s ran out while reading blob ${layer.digest}`],
          within: [1500, 8000],
        },
        {
          name: "retries run out: 500 for every request of the layer (--retries 2)",
          misbehave: () => ({
            blob: (d) =>
              d === layer.digest ? new Response("still broken", { status: 500 }) : undefined,
          }),
          args: ["--retries", "2"],
          code: "registry-server",
          says: [
            `HTTP 500 Internal Server Error for blob test/img@${layer.digest}`,
            "(gave up after 3 attempts)",
          ],
          within: [0, 8000],
          blobRequests: 3,
        },
      ];
      // The config file case: the registry's entry (1 s) wins over the global `fetch` (60 s).
      failing[2].env = {
        CFS_CONFIG: await fastRetries(tmp, {
          fetch: { idleTimeout: 60, retryDelay: 0.05 },
          registries: { [host]: { idleTimeout: 1, retries: 0 } },
        }),
      };

      for (const [i, c] of failing.entries()) {
        await t.step(c.name, async () => {
          for (const json of [false, true]) {
            const repo = await newRepo(tmp, `repo-fail-${i}-${json}`);
            registry.misbehave = c.misbehave();
            registry.requests.length = 0;
            try {
              const started = performance.now();
              const r = await runCfs(
                [
                  "--repo",
                  repo,
                  ...(json ? ["--json"] : []),
                  "oci",
                  "pull",
                  "--tls-verify=false",
                  ...c.args,
                  ref,
                  TAG,
                ],
                { env: { ...env, ...c.env } },
              );
              const ms = performance.now() - started;
              const line = json
                ? `cfs: ${jsonError(r, c.name).message}`
                : assertOneLineError(r, [layer.digest], c.name);
              if (json) equal(jsonError(r, c.name).code, c.code, `${c.name}: ${line}`);
              for (const s of c.says) {
                ok(
                  typeof s === "string" ? line.includes(s) : s.test(line),
                  `${c.name}: ${line} does not say ${s}`,
                );
              }
              ok(
                ms >= c.within[0] && ms < c.within[1],
                `${c.name}: failed after ${ms.toFixed(0)} ms, not within ${c.within}`,
              );
              if (c.blobRequests !== undefined) {
                equal(blobRequests().length, c.blobRequests, `${c.name}: blob requests`);
              }
              await assertNothingStored(repo, [sha256(manifestBytes), built.config.digest], c.name);
            } finally {
              registry.misbehave = {};
            }
          }
        });
      }

      interface Recovering {
        name: string;
        misbehave: () => Misbehaviour;
        /** Checks the layer blob's requests. */
        check: (requests: FakeRegistry["requests"]) => void;
      }
      const rangeAnswer = (req: Request) => {
        const from = Number(/^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "")?.[1]);
        ok(Number.isSafeInteger(from) && from > 0, `Range: ${req.headers.get("range")}`);
        return new Response(layerBytes.slice(from), {
          status: 206,
          headers: {
            "content-range": `bytes ${from}-${layerBytes.length - 1}/${layerBytes.length}`,
          },
        });
      };
      const recovering: Recovering[] = [
        {
          name: "500 once, then fine",
          misbehave: () => layerAnswers(() => new Response("oops", { status: 500 })),
          check: (rs) => deepEqual(rs.map((r) => r.range), [null, null]),
        },
        {
          name: "429 with Retry-After: 1, then fine",
          misbehave: () =>
            layerAnswers(() =>
              new Response("slow down", { status: 429, headers: { "retry-after": "1" } })
            ),
          check: (rs) => {
            equal(rs.length, 2);
            // The configured backoff is 50 ms: the wait is the registry's.
            ok(rs[1].at - rs[0].at >= 950, `waited ${(rs[1].at - rs[0].at).toFixed(0)} ms`);
          },
        },
        {
          name: "connection cut mid-blob, resumed with Range (206)",
          misbehave: () =>
            layerAnswers(() => withLength(cutBody(layerBytes, half, "error")), rangeAnswer),
          check: (rs) => deepEqual(rs.map((r) => r.range), [null, `bytes=${half}-`]),
        },
        {
          name: "connection cut mid-blob, registry without Range support (200): started again",
          misbehave: () =>
            layerAnswers(
              () => withLength(cutBody(layerBytes, half, "error")),
              () => new Response(layerBytes),
            ),
          check: (rs) => deepEqual(rs.map((r) => r.range), [null, `bytes=${half}-`]),
        },
        {
          name: "stall mid-blob, then resumed with Range",
          misbehave: () =>
            layerAnswers(() => withLength(stallAfter(layerBytes, half)), rangeAnswer),
          check: (rs) => deepEqual(rs.map((r) => r.range), [null, `bytes=${half}-`]),
        },
      ];
      for (const [i, c] of recovering.entries()) {
        await t.step(c.name, async () => {
          const repo = await newRepo(tmp, `repo-ok-${i}`);
          registry.misbehave = c.misbehave();
          registry.requests.length = 0;
          try {
            const r = await runCfs(
              [
                "--repo",
                repo,
                "oci",
                "pull",
                "--tls-verify=false",
                "--idle-timeout",
                "1",
                ref,
                TAG,
              ],
              { env },
            );
            equal(r.code, 0, `${c.name}: ${r.stderr}`);
            c.check(blobRequests());
            equal(await imageId(repo), expectedId, `${c.name}: the image of the clean pull`);
            const fsck = await runCfs(["--repo", repo, "fsck"]);
            equal(fsck.code, 0, `${c.name}: fsck: ${fsck.text}${fsck.stderr}`);
          } finally {
            registry.misbehave = {};
          }
        });
      }

      await t.step("cfs pull (the bootc pipeline): a stalled layer ends in time", async () => {
        const repo = join(tmp, "repo-bootc");
        registry.misbehave = layerAnswers(() => withLength(stallAfter(layerBytes, half)));
        try {
          const started = performance.now();
          const r = await runCfs([
            "--repo",
            repo,
            "--json",
            "pull",
            "--allow-missing-fsverity",
            "--no-default-hooks",
            "--tls-verify=false",
            "--idle-timeout",
            "1",
            "--retries",
            "0",
            ref,
          ], { env });
          const ms = performance.now() - started;
          const error = jsonError(r, "cfs pull");
          equal(error.code, "registry-timeout", error.message);
          ok(error.message.includes(`blob ${layer.digest}`), error.message);
          ok(ms < 8000, `cfs pull failed after ${ms.toFixed(0)} ms`);
          await assertNoTag(repo, "cfs pull");
        } finally {
          registry.misbehave = {};
        }
      });
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

// --- 2. hostile layer tars in layouts -----------------------------------------------------------

Deno.test({
  name: "hostile layouts: escaping paths, write-through symlinks, bad links, sparse, truncated",
  async fn(t) {
    const tmp = await Deno.makeTempDir({ prefix: "cfs-oci-hostile-layout-" });
    // A directory outside the test's tree that a symlink could point into.
    const outside = await Deno.makeTempDir({ prefix: "cfs-oci-hostile-outside-" });
    const marker = `cfs-hostile-${crypto.randomUUID()}`;
    const passwd = await Deno.stat("/etc/passwd");
    try {
      /** Nothing named `marker` anywhere a hostile entry could have aimed at. */
      const assertNoEscape = async (what: string) => {
        for (const p of ["/", "/etc", "/tmp", tmp, join(tmp, ".."), outside]) {
          ok(!(await pathExists(join(p, marker))), `${what}: ${join(p, marker)} was written`);
        }
        deepEqual((await Deno.readDir(outside)[Symbol.asyncIterator]().next()).done, true);
        const now = await Deno.stat("/etc/passwd");
        equal(now.size, passwd.size, `${what}: /etc/passwd changed`);
        equal(now.mtime?.getTime(), passwd.mtime?.getTime(), `${what}: /etc/passwd changed`);
      };

      /** Where a pull is refused: `import` (nothing stored), `image` (layers stored, no tag). */
      type Outcome = "import" | "image" | "accept";

      interface Case {
        name: string;
        layers: Uint8Array[];
        diffIds?: string[];
        /** What the line must name. */
        names: string[];
        /** What cfs does. */
        refusedAt: Outcome;
        /** What cfsctl 0.9.4 does (checked): cfs refuses no later than it. */
        cfsctl: Outcome;
        /** For `accept`: a line `oci dump` must contain. */
        dumpHas?: string;
        /** Leave out the base layer with /usr (composefs-rs 0.9.4 takes the root from it). */
        noUsr?: boolean;
      }

      const truncatedFull = rawTar([{ name: "big", body: "x".repeat(3000) }]);
      const truncated = truncatedFull.slice(0, 512 + 1500);
      const usrLayer = rawTar([{ name: "usr/", type: "5" }]);

      const cases: Case[] = [
        // cfs refuses a `..` component while importing (README); composefs-oci 0.9.4 stores
        // the layer and refuses when it makes the image ("Invalid filename").
        {
          name: "entry ../x",
          layers: [rawTar([{ name: `../${marker}`, body: "escape\n" }])],
          names: [`../${marker}`],
          refusedAt: "import",
          cfsctl: "image",
        },
        {
          name: "entry a/../../x",
          layers: [rawTar([
            { name: "a/", type: "5" },
            { name: `a/../../${marker}`, body: "escape\n" },
          ])],
          names: [`a/../../${marker}`],
          refusedAt: "import",
          cfsctl: "image",
        },
        {
          name: "hardlink to ../../etc/passwd",
          layers: [rawTar([{ name: "hl", type: "1", linkname: "../../etc/passwd" }])],
          names: ["../../etc/passwd"],
          refusedAt: "import",
          cfsctl: "image",
        },
        // An absolute name is a name in the image (composefs-oci and GNU tar strip the
        // leading `/`): `/etc/x` under an `etc` directory of the layer is accepted and lands
        // in the image's /etc, never the host's.
        {
          name: "absolute entry /etc/x (with etc/ in the layer)",
          layers: [rawTar([
            { name: "etc/", type: "5" },
            { name: `/etc/${marker}`, body: "escape\n" },
          ])],
          names: [],
          refusedAt: "accept",
          cfsctl: "accept",
          dumpHas: `\n/etc/${marker} `,
        },
        // Without the parent directory, the image cannot be made (the parent is not found).
        {
          name: "absolute entry /etc/x (no etc/)",
          layers: [rawTar([{ name: `/etc/${marker}`, body: "escape\n" }])],
          names: [`/etc/${marker}`],
          refusedAt: "image",
          cfsctl: "image",
        },
        // Nothing is extracted to disk at pull: the layer is stored as a splitstream. The
        // symlink stays a symlink; the entry through it fails when the image is made ("link"
        // is not a directory).
        {
          name: "symlink out of the tree, then a file written through it",
          layers: [rawTar([
            { name: "link", type: "2", linkname: "../../../../etc/passwd" },
            { name: `link/${marker}`, body: "through the link\n" },
          ])],
          names: [`link/${marker}`],
          refusedAt: "image",
          cfsctl: "image",
        },
        {
          name: "symlink to a directory outside, then a file written through it",
          layers: [rawTar([
            { name: "out", type: "2", linkname: `${"../".repeat(12)}${outside.slice(1)}` },
            { name: `out/${marker}`, body: "through the link\n" },
          ])],
          names: [`out/${marker}`],
          refusedAt: "image",
          cfsctl: "image",
        },
        // A hardlink may point into a lower layer, so a layer alone cannot tell: the
        // missing target is found when the image is made.
        {
          name: "hardlink to a missing target",
          layers: [rawTar([{ name: "hl", type: "1", linkname: `nothere-${marker}` }])],
          names: [`nothere-${marker}`],
          refusedAt: "image",
          cfsctl: "image",
        },
        // No /usr: composefs-rs 0.9.4 has nothing to take the root's metadata from.
        {
          name: "no /usr",
          layers: [rawTar([{ name: "f", body: "f\n" }])],
          names: ["usr"],
          refusedAt: "image",
          cfsctl: "image",
          noUsr: true,
        },
        {
          name: "GNU sparse entry (type S)",
          layers: [rawTar([{
            name: "sparse",
            type: "S",
            gnu: true,
            body: "data",
            // sparse[0] = {offset 0, numbytes 4}; isextended 0; realsize 4096.
            patch: [[386, octal(0, 12)], [398, octal(4, 12)], [483, octal(4096, 12)]],
          }])],
          names: ["sparse"],
          refusedAt: "import",
          cfsctl: "import",
        },
        {
          name: "truncated tar (cut mid-body), digest and diff_id of the cut bytes",
          layers: [truncated],
          names: ["big", sha256(truncated)],
          refusedAt: "import",
          cfsctl: "import",
        },
        // A whiteout for a path that does not exist: removing a missing name is no error in
        // composefs-oci (`process_entry`), so the image holds the other file and no whiteout.
        {
          name: "whiteout for a path that does not exist",
          layers: [
            rawTar([{ name: "kept", body: "kept\n" }]),
            rawTar([{ name: ".wh.nothere", body: "" }]),
          ],
          names: [],
          refusedAt: "accept",
          cfsctl: "accept",
          dumpHas: "\n/kept ",
        },
      ];

      /** What cfsctl 0.9.4 does with the layout: its outcome and, when it accepts, the dump. */
      const oracle = async (dir: string, hostile: string): Promise<[Outcome, string]> => {
        const repo = join(dir, "cfsctl-repo");
        const init = await runCfsctl09([
          "--repo",
          repo,
          "init",
          "--insecure",
          "--algorithm",
          "fsverity-sha256-12",
        ]);
        equal(init.code, 0, init.stderr);
        const r = await runCfsctl09(["--repo", repo, "oci", "pull", `oci:${dir}:v1`, TAG]);
        const tagged = await pathExists(join(repo, "streams", "refs", "oci", TAG));
        if (r.code === 0) {
          ok(tagged, "cfsctl succeeded without a tag");
          const dump = await runCfsctl09(["--repo", repo, "oci", "dump", TAG]);
          equal(dump.code, 0, dump.stderr);
          return ["accept", dump.text];
        }
        ok(!tagged, "cfsctl failed but tagged the image");
        const stored = await pathExists(join(repo, "streams", `oci-layer-${hostile}`));
        return [stored ? "image" : "import", ""];
      };

      for (const [i, c] of cases.entries()) {
        await t.step(c.name, async () => {
          const repo = await newRepo(tmp, `repo-${i}`);
          const dir = join(tmp, `layout-${i}`);
          const layers = c.noUsr ? c.layers : [usrLayer, ...c.layers];
          const image = await writeRawLayout(dir, layers, c.diffIds);
          const hostile = image.layers[image.layers.length - 1];
          const [expected, expectedDump] = await oracle(dir, hostile);
          equal(expected, c.cfsctl, `${c.name}: what cfsctl 0.9.4 does`);
          const r = await runCfs(["--repo", repo, "oci", "pull", `oci:${dir}:v1`, TAG]);
          await assertNoEscape(c.name);
          if (c.refusedAt === "import") {
            assertOneLineError(r, c.names, c.name);
            await assertNothingStored(repo, [image.manifest, image.config, hostile], c.name);
            return;
          }
          if (c.refusedAt === "image") {
            assertOneLineError(r, c.names, c.name);
            await assertNoTag(repo, c.name);
            ok(await pathExists(join(repo, "streams", `oci-layer-${hostile}`)), "layer stored");
            return;
          }
          equal(r.code, 0, `${c.name}: pull: ${r.stderr}`);
          const dump = await runCfs(["--repo", repo, "oci", "dump", TAG]);
          await assertNoEscape(c.name);
          equal(dump.code, 0, `${c.name}: dump: ${dump.stderr}`);
          if (c.dumpHas) ok(dump.text.includes(c.dumpHas), dump.text);
          equal(dump.text, expectedDump, `${c.name}: cfsctl 0.9.4's dump`);
          const fsck = await runCfs(["--repo", repo, "fsck"]);
          equal(fsck.code, 0, `${c.name}: fsck: ${fsck.text}${fsck.stderr}`);
          const images = JSON.parse(
            (await runCfs(["--repo", repo, "--json", "oci", "images"])).text,
          );
          deepEqual(images.images.map((i: { name: string }) => i.name), [TAG]);
        });
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
      await Deno.remove(outside, { recursive: true });
    }
  },
});

// --- 3. repositories that are not ----------------------------------------------------------------

Deno.test("hostile repository: not a repository, not writable: one line naming the path", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-oci-hostile-repo-" });
  try {
    const layout = join(tmp, "layout");
    await writeRawLayout(layout, [
      rawTar([{ name: "usr/", type: "5" }, { name: "f", body: "f\n" }]),
    ]);
    const ref = `oci:${layout}:v1`;

    await t.step("a regular file", async () => {
      const path = join(tmp, "a-file");
      await Deno.writeTextFile(path, "not a repository\n");
      const r = await runCfs(["--repo", path, "oci", "pull", ref, TAG]);
      assertOneLineError(r, [path], "regular file as the repository");
      equal(await Deno.readTextFile(path), "not a repository\n");
    });

    await t.step("a directory that is not a repository", async () => {
      const path = join(tmp, "not-a-repo");
      await Deno.mkdir(path);
      await Deno.writeTextFile(join(path, "README"), "hello\n");
      const r = await runCfs(["--repo", path, "oci", "pull", ref, TAG]);
      assertOneLineError(r, [path], "plain directory as the repository");
      deepEqual(
        (await Array.fromAsync(Deno.readDir(path))).map((e) => e.name),
        ["README"],
        "the directory was written to",
      );
    });

    await t.step("a path that does not exist", async () => {
      const path = join(tmp, "missing", "repo");
      const r = await runCfs(["--repo", path, "oci", "pull", ref, TAG]);
      assertOneLineError(r, [path], "missing repository");
      ok(!(await pathExists(path)));
    });

    await t.step("a repository that is not writable", async () => {
      const repo = await newRepo(tmp, "read-only");
      // Root ignores permission bits, so make the directories immutable (ext4 and others);
      // as a user, take away the write bits.
      // composefs-rs 0.9.4's init writes only meta.json: the directories come with the first write.
      const dirs = [repo, join(repo, "objects"), join(repo, "streams")].filter((d) => {
        try {
          return Deno.statSync(d).isDirectory;
        } catch {
          return false;
        }
      });
      const root = Deno.uid() === 0;
      const immutable = async (on: boolean) => {
        for (const d of dirs) {
          const out = await new Deno.Command("chattr", {
            args: [on ? "+i" : "-i", d],
            stderr: "piped",
          }).output();
          if (!out.success && on) {
            throw new Error(`chattr +i ${d}: ${new TextDecoder().decode(out.stderr)}`);
          }
        }
      };
      if (root) await immutable(true);
      else for (const d of dirs) await Deno.chmod(d, 0o555);
      try {
        const r = await runCfs(["--repo", repo, "oci", "pull", ref, TAG]);
        assertOneLineError(r, [repo], "read-only repository");
      } finally {
        if (root) await immutable(false);
        else for (const d of dirs) await Deno.chmod(d, 0o755);
      }
      await assertNothingStored(repo, [], "read-only repository");
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
