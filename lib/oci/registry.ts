/**
 * An OCI distribution client, pull side only: manifests, image indexes, config and
 * layer blobs from `docker://HOST[:PORT]/NAME[:TAG|@DIGEST]`.
 *
 * ```ts
 * const ref = parseDockerReference("127.0.0.1:5000/cfs/test:v1");
 * const client = new RegistryClient(ref.domain, { tlsVerify: false });
 * const image = await client.resolve(ref, { platform: parsePlatform("linux/arm64") });
 * for (const layer of image.layers) {
 *   const tar = await client.openLayer(image.repository, layer); // digest, size, diff_id checked
 * }
 * ```
 *
 * What is checked, and how it fails:
 * - Manifests are asked for with `Accept` listing the OCI index and manifest and the
 *   Docker manifest list and schema 2 manifest. A response larger than
 *   {@link MAX_JSON_BLOB_SIZE} (4 MiB) is refused from its `Content-Length` without
 *   reading it, and reading stops as soon as more arrives (a registry that streams
 *   forever is cut off). The bytes' digest must equal the requested digest (pull by
 *   digest, and every index entry followed) or, pulling by tag, the `Docker-Content-Digest`
 *   header when the registry sends one. The media type (the document's `mediaType`, else
 *   `Content-Type`) must be one of the four; the document is validated with layout.ts's
 *   zod schemas. An index is resolved by platform ({@link selectPlatform}, the host's
 *   unless another is asked for).
 * - Blobs stream (`GET /v2/NAME/blobs/DIGEST`, redirects followed, `Authorization`
 *   dropped when a redirect leaves the registry's origin) through blob.ts's verifiers:
 *   size and digest of the blob, and for layers the diff_id of the decompressed tar.
 *   Content that does not match is a {@link BlobError}; a connection that drops or stalls
 *   mid-blob is a {@link RegistryError} naming the blob and how many bytes arrived.
 * - HTTP and protocol failures are {@link RegistryError}s: one line starting
 *   `registry HOST: `, with the HTTP status when there was one, and a stable code
 *   (`registry-<kind>`).
 *
 * Time limits and retries (transfer.ts has the rules): every request has a time limit for its
 * headers, a manifest, config or token one for its whole body, and a blob body must keep
 * making progress (an idle window and a minimum speed); an optional overall deadline bounds
 * the whole client. 5xx, 429 (after its `Retry-After`), connection failures and time-outs are
 * tried again a bounded number of times with backoff; a blob cut mid-way resumes with `Range`
 * from the first byte not yet delivered when the registry answers 206, and otherwise starts
 * again, skipping what was delivered. Either way the digest is checked over the whole blob.
 * The timers race each read rather than abort `fetch` through its signal: once a response's
 * `Request` is garbage, Deno's fetch no longer hears that signal, and a stalled body read
 * waited forever (issue 11: a pull still waiting after 190 s with a 60 s idle timeout).
 *
 * Transport: HTTPS with certificate verification by default. `tlsVerify: false` means
 * plain HTTP, for a local registry: containers' `--tls-verify=false` likewise allows
 * HTTP (containers-image tries HTTPS without verification first, then HTTP; cfs goes
 * straight to HTTP, and has no "HTTPS without verification" mode).
 *
 * Authentication: anonymous first; on `401` the `WWW-Authenticate` challenge decides.
 * `Basic`: retried with the credentials from the auth files (auth.ts). `Bearer realm=...,
 * service=...`: a token is fetched from the realm (`GET realm?service=S&scope=
 * repository:NAME:pull`, with basic credentials when known) and the request retried with
 * `Authorization: Bearer TOKEN`. Tokens and basic headers are kept per repository for
 * the client's lifetime (no expiry handling: a client is meant for one pull).
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";
import { type Credentials, findCredentials, type FoundCredentials } from "./auth.ts";
import { authFilePaths, basicAuthorization, parseWwwAuthenticate } from "./auth.ts";
import { BlobError, layerCompression, verifiedLayer, verifyBlob } from "./blob.ts";
import { clip, type DigestAlgorithm, digestBytes, digestProblem } from "./digest.ts";
import {
  CONFIG_MEDIA_TYPES,
  type Descriptor,
  formatPlatform,
  hostPlatform,
  type ImageConfig,
  imageConfigSchema,
  type ImageIndex,
  imageIndexSchema,
  type ImageManifest,
  imageManifestSchema,
  INDEX_MEDIA_TYPES,
  type LayerDescriptor,
  MANIFEST_MEDIA_TYPES,
  MAX_INDEX_DEPTH,
  MAX_JSON_BLOB_SIZE,
  type Platform,
  type ResolvedImage,
  selectPlatform,
} from "./layout.ts";
import { type DockerReference, parseDockerReference } from "./reference.ts";
import {
  formatDuration,
  parseContentRange,
  parseRetryAfter,
  ProgressMeter,
  RESUME_PROGRESS_BYTES,
  retryableStatus,
  retryDelay,
  type TransferOptions,
  type TransferPolicy,
  transferPolicy,
} from "./transfer.ts";
import type { z } from "zod";

/** The `Accept` header for manifests: every manifest and index type cfs reads. */
export const MANIFEST_ACCEPT: string = [
  ...INDEX_MEDIA_TYPES,
  ...MANIFEST_MEDIA_TYPES,
].join(", ");

export { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS } from "./transfer.ts";
/** Most redirects followed for one request. */
export const MAX_REDIRECTS = 10;
/** Docker Hub's API endpoint (the `docker.io` domain of references). */
export const DOCKER_HUB_REGISTRY = "registry-1.docker.io";

/** What kind of failure a {@link RegistryError} is. */
export type RegistryErrorKind =
  | "auth" // 401/403, or a token that cannot be obtained
  | "not-found" // 404
  | "server" // 5xx
  | "http" // any other unexpected status
  | "connection" // cannot connect, or the connection dropped
  | "timeout" // no answer, or a stalled stream
  | "too-large" // a manifest or config over the 4 MiB limit
  | "digest-mismatch" // a manifest whose bytes do not have the expected digest
  | "media-type" // a manifest, config or layer of an unsupported media type
  | "invalid" // a document that is not JSON or not a valid manifest/index/config
  | "platform"; // no image for the platform in an index

/** Options of a {@link RegistryError}. */
export interface RegistryErrorOptions extends CfsErrorOptions {
  /** The HTTP status, when the failure was an HTTP response. */
  status?: number;
  /** Whether asking again may help; default from kind and status (see {@link RegistryError}). */
  retryable?: boolean;
  /** How long the registry asked to wait before asking again (`Retry-After`, ms). */
  retryAfterMs?: number;
}

/**
 * A registry request that failed: one line, starting `registry HOST: `. `retryable` is true by
 * default for connection failures, time-outs, 5xx but 501 and 505, and 429.
 */
export class RegistryError extends CfsError {
  /** The registry as named in the reference (`HOST[:PORT]`). */
  readonly host: string;
  /** What failed: authentication, a status, the connection, the content, ... */
  readonly kind: RegistryErrorKind;
  /** The HTTP status, when the failure was an HTTP response. */
  readonly status?: number;
  /** Whether the client may ask again (transfer.ts has the rules). */
  readonly retryable: boolean;
  /** What `Retry-After` asked for (ms), when the answer had one. */
  readonly retryAfterMs?: number;

  /** `message` is prefixed with `registry HOST: ` and made one line; the code is `registry-<kind>`. */
  constructor(
    host: string,
    kind: RegistryErrorKind,
    message: string,
    options?: RegistryErrorOptions,
  ) {
    super(`registry ${host}: ${oneLine(message)}`, withCode(options, `registry-${kind}`));
    this.name = "RegistryError";
    this.host = host;
    this.kind = kind;
    this.status = options?.status;
    this.retryable = options?.retryable ??
      (kind === "connection" || kind === "timeout" ||
        (options?.status !== undefined && retryableStatus(options.status)));
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** Options for a {@link RegistryClient}: transport, credentials, limits and retries. */
export interface RegistryClientOptions extends TransferOptions {
  /**
   * `true` (default): HTTPS with certificate verification. `false`: plain HTTP, for a
   * local registry (as `--tls-verify=false`).
   */
  tlsVerify?: boolean;
  /** Credentials to use instead of searching the auth files. */
  credentials?: Credentials;
  /** Auth files to search instead of {@link authFilePaths}'s list. */
  authFiles?: string[];
  /** `User-Agent` header. */
  userAgent?: string;
  /** Hears of each retry: one line saying what failed and how long the client waits. */
  onRetry?: (message: string) => void;
}

/** A manifest or index as fetched: exact bytes, digest, media type and parsed document. */
export interface FetchedManifest {
  /** The bytes exactly as served (their digest is {@link digest}). */
  bytes: Uint8Array;
  /** `sha256:...` of {@link bytes} (or the requested digest's algorithm). */
  digest: string;
  /** One of the four manifest/index media types. */
  mediaType: string;
  /** The validated document. */
  document: { kind: "index"; index: ImageIndex } | { kind: "manifest"; manifest: ImageManifest };
}

/** An image resolved in a registry: {@link ResolvedImage} plus where it came from. */
export interface RegistryImage extends ResolvedImage {
  /** The reference resolved. */
  reference: DockerReference;
  /** The repository path in the registry (e.g. `cfs/test`). */
  repository: string;
}

/** Options for {@link RegistryClient.resolve}. */
export interface RegistryResolveOptions {
  /** The platform to pick from an image index; default {@link hostPlatform}. */
  platform?: Platform;
}

/**
 * When a piece of work must be done by: a time on `performance.now()`'s clock, and whether
 * it is the client's overall deadline (then the failure is final) or the work's own limit.
 */
interface Budget {
  /** `performance.now()` by which the work must be done. */
  at: number;
  /** The work's own limit (ms), for messages. */
  ms: number;
  /** True when the overall deadline comes before the work's own limit. */
  overall: boolean;
}

/** What {@link raceTimer} resolves with when the time runs out first. */
const TIMED_OUT: unique symbol = Symbol("timed out");

/**
 * `promise`'s outcome, or {@link TIMED_OUT} after `ms`. The promise keeps running (the caller
 * cancels what it belongs to); a late rejection is not left unhandled.
 */
async function raceTimer<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  promise.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), Math.max(0, ms));
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Failures of one piece of work so far, for the retry count. */
interface RetryState {
  /** Failures counted against the retry limit. */
  failures: number;
  /** Failures in all (for the final message). */
  attempts: number;
  /** Blob bytes delivered since the last failure (progress resets the count). */
  sinceFailure: number;
}

function retryState(): RetryState {
  return { failures: 0, attempts: 0, sinceFailure: 0 };
}

/** A client for one registry (`HOST[:PORT]` as in image references). */
export class RegistryClient {
  /** The registry as named in references (`docker.io`, `127.0.0.1:5000`). */
  readonly host: string;
  /** `https://HOST[:PORT]` (or `http://` with `tlsVerify: false`). */
  readonly baseUrl: string;
  readonly #options: RegistryClientOptions;
  readonly #policy: TransferPolicy;
  /** `performance.now()` of the overall deadline; Infinity when there is none. */
  readonly #deadlineAt: number;
  /** Responses -> the controller that aborts their connection. */
  readonly #aborters = new WeakMap<Response, AbortController>();
  /** repository -> Authorization header value that worked (or was obtained) for it. */
  readonly #authorizations = new Map<string, string>();
  /** repository -> credentials lookup (null: none found). */
  readonly #credentials = new Map<string, Promise<FoundCredentials | null>>();

  /**
   * A client for `host` (`HOST[:PORT]` as in references; `docker.io` is Docker Hub). The
   * overall deadline (`timeoutMs`) starts now. Throws a `RangeError` for a limit out of range.
   */
  constructor(host: string, options: RegistryClientOptions = {}) {
    this.host = host;
    this.#options = options;
    this.#policy = transferPolicy(options);
    this.#deadlineAt = this.#policy.timeoutMs === undefined
      ? Infinity
      : performance.now() + this.#policy.timeoutMs;
    const endpoint = host === "docker.io" ? DOCKER_HUB_REGISTRY : host;
    this.baseUrl = `${options.tlsVerify === false ? "http" : "https"}://${endpoint}`;
  }

  /**
   * A client for a reference's registry: a {@link DockerReference}, or the text after
   * `docker://` (parsed with {@link parseDockerReference}).
   */
  static forReference(
    ref: DockerReference | string,
    options: RegistryClientOptions = {},
  ): { client: RegistryClient; reference: DockerReference } {
    const reference = typeof ref === "string" ? parseDockerReference(ref) : ref;
    return { client: new RegistryClient(reference.domain, options), reference };
  }

  // --- manifests ------------------------------------------------------------------------------

  /**
   * Fetches a manifest or index by tag or digest, checks its size, digest and media
   * type, and validates it. `expected` (an index entry) adds: the digest is that
   * descriptor's, and so are size and media type.
   */
  async fetchManifest(
    repository: string,
    reference: string,
    expected?: Pick<Descriptor, "digest" | "size" | "mediaType">,
  ): Promise<FetchedManifest> {
    const byDigest = reference.includes(":");
    if (byDigest) this.#checkDigest(reference, `manifest ${repository}@${reference}`);
    const label = `manifest ${repository}${byDigest ? "@" : ":"}${reference}`;
    if (expected !== undefined && expected.size > MAX_JSON_BLOB_SIZE) {
      throw new RegistryError(
        this.host,
        "too-large",
        `${label}: declared size ${expected.size} exceeds the ${MAX_JSON_BLOB_SIZE}-byte limit; ` +
          "not read",
      );
    }
    const { response, bytes } = await this.#retrying(async () => {
      const budget = this.#budget(this.#policy.requestTimeoutMs);
      const response = await this.#get(
        repository,
        `manifests/${reference}`,
        MANIFEST_ACCEPT,
        budget,
      );
      if (response.status !== 200) {
        throw await this.#statusError(response, repository, "manifest", reference);
      }
      return { response, bytes: await this.#readLimited(response, label, budget) };
    });

    // Digest.
    let digest: string;
    if (byDigest) {
      const algorithm = reference.slice(0, reference.indexOf(":")) as DigestAlgorithm;
      digest = digestBytes(bytes, algorithm);
      if (digest !== reference) {
        throw new RegistryError(
          this.host,
          "digest-mismatch",
          `${label}: content has digest ${digest}`,
        );
      }
    } else {
      const header = response.headers.get("docker-content-digest")?.trim();
      if (header !== undefined && digestProblem(header) === undefined) {
        const algorithm = header.slice(0, header.indexOf(":")) as DigestAlgorithm;
        digest = digestBytes(bytes, algorithm);
        if (digest !== header) {
          throw new RegistryError(
            this.host,
            "digest-mismatch",
            `${label}: content has digest ${digest}, the registry's Docker-Content-Digest ` +
              `says ${header}`,
          );
        }
      } else {
        digest = digestBytes(bytes);
      }
    }
    if (expected !== undefined && bytes.length !== expected.size) {
      throw new RegistryError(
        this.host,
        "digest-mismatch",
        `${label}: ${bytes.length} bytes, the index says ${expected.size}`,
      );
    }

    // Media type and schema.
    const json = this.#parseJson(bytes, label);
    const declared = typeof json === "object" && json !== null && !Array.isArray(json)
      ? (json as Record<string, unknown>).mediaType
      : undefined;
    const contentType = response.headers.get("content-type")?.split(";")[0].trim()
      .toLowerCase();
    const known = [...INDEX_MEDIA_TYPES, ...MANIFEST_MEDIA_TYPES];
    if (declared !== undefined && typeof declared !== "string") {
      throw new RegistryError(this.host, "invalid", `${label}: "mediaType" is not a string`);
    }
    const mediaType = declared ?? contentType ?? "";
    if (!known.includes(mediaType)) {
      throw new RegistryError(
        this.host,
        "media-type",
        `${label}: unsupported media type ${JSON.stringify(clip(mediaType, 100))} ` +
          "(expected an OCI image index or manifest, or a Docker manifest list or schema 2 " +
          "manifest)",
      );
    }
    if (
      declared !== undefined && contentType !== undefined && known.includes(contentType) &&
      contentType !== declared
    ) {
      throw new RegistryError(
        this.host,
        "media-type",
        `${label}: served as ${contentType} but its mediaType is ${declared}`,
      );
    }
    if (expected !== undefined && mediaType !== expected.mediaType) {
      throw new RegistryError(
        this.host,
        "media-type",
        `${label}: media type ${mediaType} differs from the index entry's ` +
          JSON.stringify(clip(expected.mediaType, 100)),
      );
    }
    const document: FetchedManifest["document"] = INDEX_MEDIA_TYPES.includes(mediaType)
      ? { kind: "index", index: this.#validate(json, imageIndexSchema, label) }
      : { kind: "manifest", manifest: this.#validate(json, imageManifestSchema, label) };
    return { bytes, digest, mediaType, document };
  }

  /**
   * Resolves a reference to one image: fetches the manifest (following an index by
   * platform), checks it, fetches and checks the config, and pairs layers with diff_ids.
   * Blobs are not fetched: {@link openLayer} streams them.
   */
  async resolve(
    ref: DockerReference,
    options: RegistryResolveOptions = {},
  ): Promise<RegistryImage> {
    if (ref.domain !== this.host) {
      throw new TypeError(`reference for ${ref.domain} given to the client for ${this.host}`);
    }
    const platform = options.platform ?? hostPlatform();
    const repository = ref.repository;
    const reference = ref.digest ?? ref.tag ?? "latest";
    let fetched = await this.fetchManifest(repository, reference);
    let descriptor: Descriptor = {
      mediaType: fetched.mediaType,
      digest: fetched.digest,
      size: fetched.bytes.length,
    };
    const indexDigests: string[] = [];
    for (let depth = 0; fetched.document.kind === "index"; depth++) {
      if (depth >= MAX_INDEX_DEPTH) {
        throw new RegistryError(
          this.host,
          "invalid",
          `${repository}: image indexes nested deeper than ${MAX_INDEX_DEPTH}`,
        );
      }
      const index = fetched.document.index;
      indexDigests.push(fetched.digest);
      const entry = selectPlatform(index.manifests, platform);
      if (entry === undefined) {
        const have = index.manifests.filter((m) => m.platform).map((m) =>
          formatPlatform(m.platform!)
        );
        throw new RegistryError(
          this.host,
          "platform",
          `${repository}${ref.digest ? "@" : ":"}${reference}: no image for platform ` +
            `${formatPlatform(platform)} (available: ${have.join(", ") || "none"})`,
        );
      }
      if (![...INDEX_MEDIA_TYPES, ...MANIFEST_MEDIA_TYPES].includes(entry.mediaType)) {
        throw new RegistryError(
          this.host,
          "media-type",
          `image index ${fetched.digest}: entry ${entry.digest} has unsupported media type ` +
            JSON.stringify(clip(entry.mediaType, 100)),
        );
      }
      fetched = await this.fetchManifest(repository, entry.digest, entry);
      descriptor = entry;
    }
    const manifest = fetched.document.manifest;
    const label = `image manifest ${fetched.digest}`;
    const configDescriptor = manifest.config;
    if (!CONFIG_MEDIA_TYPES.includes(configDescriptor.mediaType)) {
      throw new RegistryError(
        this.host,
        "media-type",
        `${label}: config media type ${JSON.stringify(clip(configDescriptor.mediaType, 100))} ` +
          "is not a container image config",
      );
    }
    for (const layer of manifest.layers) {
      if (layerCompression(layer.mediaType) === undefined) {
        throw new RegistryError(
          this.host,
          "media-type",
          `${label}: layer ${layer.digest} has unsupported media type ` +
            JSON.stringify(clip(layer.mediaType, 100)),
        );
      }
    }
    const { value: config, bytes: configBytes } = await this.#readConfig(
      repository,
      configDescriptor,
    );
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length) {
      throw new RegistryError(
        this.host,
        "invalid",
        `image config ${configDescriptor.digest} lists ${diffIds.length} diff_ids for ` +
          `${manifest.layers.length} layers in manifest ${fetched.digest}`,
      );
    }
    return {
      reference: ref,
      repository,
      manifestDescriptor: descriptor,
      manifest,
      manifestBytes: fetched.bytes,
      configDescriptor,
      config,
      configBytes,
      layers: manifest.layers.map((layer, i) => ({ ...layer, diffId: diffIds[i] })),
      indexDigests,
    };
  }

  // --- blobs ----------------------------------------------------------------------------------

  /**
   * A blob's bytes as a stream, checked against the descriptor while it streams (size,
   * then digest at the end: read it to its end). Errors: {@link RegistryError} for the
   * request and a dropped or stalled connection, {@link BlobError} for wrong content.
   */
  async openBlob(
    repository: string,
    descriptor: Pick<Descriptor, "digest" | "size">,
  ): Promise<ReadableStream<Uint8Array>> {
    const raw = await this.#openRawBlob(repository, descriptor);
    return verifyBlob(raw, descriptor, "blob");
  }

  /**
   * A layer's uncompressed tar: the compressed blob's size and digest and the tar's
   * diff_id are checked while it streams (blob.ts {@link verifiedLayer}).
   */
  async openLayer(
    repository: string,
    layer: LayerDescriptor,
    onCompressedBytes?: (n: number) => void,
  ): Promise<ReadableStream<Uint8Array>> {
    if (layerCompression(layer.mediaType) === undefined) {
      throw new BlobError(
        layer.digest,
        "media-type",
        `layer ${layer.digest}: unsupported media type ${
          JSON.stringify(clip(layer.mediaType, 100))
        }`,
      );
    }
    const raw = await this.#openRawBlob(repository, layer);
    return verifiedLayer(raw, layer, layer.diffId, onCompressedBytes);
  }

  async #readConfig(
    repository: string,
    descriptor: Descriptor,
  ): Promise<{ value: ImageConfig; bytes: Uint8Array }> {
    const label = `image config ${descriptor.digest}`;
    if (descriptor.size > MAX_JSON_BLOB_SIZE) {
      throw new RegistryError(
        this.host,
        "too-large",
        `${label}: declared size ${descriptor.size} exceeds the ${MAX_JSON_BLOB_SIZE}-byte ` +
          "limit; not read",
      );
    }
    const stream = await this.openBlob(repository, descriptor);
    const bytes = new Uint8Array(descriptor.size);
    let filled = 0;
    for await (const chunk of stream) {
      bytes.set(chunk, filled); // the verifier refuses more than descriptor.size bytes
      filled += chunk.byteLength;
    }
    const json = this.#parseJson(bytes, label);
    return { value: this.#validate(json, imageConfigSchema, label), bytes };
  }

  /**
   * The blob's bytes as the registry serves them, retried and resumed as the module
   * documentation says; the caller checks size and digest (the verifiers of blob.ts).
   */
  async #openRawBlob(
    repository: string,
    descriptor: Pick<Descriptor, "digest" | "size">,
  ): Promise<ReadableStream<Uint8Array>> {
    const { digest, size } = descriptor;
    this.#checkDigest(digest, `blob ${repository}@${digest}`);
    const state = retryState();
    let response = await this.#retrying(
      () => this.#requestBlob(repository, digest, size, 0),
      state,
    );
    let reader = response.body?.getReader();
    /** Bytes handed on; the next byte handed on is the blob's byte `delivered`. */
    let delivered = 0;
    /** Blob offset of the current response's next byte (a restart repeats delivered bytes). */
    let offset = 0;
    const meter = new ProgressMeter(this.#policy.idleTimeoutMs, this.#policy.minBytesPerSecond);
    const where = () => `blob ${digest} of ${repository} after ${delivered} of ${size} bytes`;
    let cancelled = false;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        while (true) {
          try {
            const chunk = reader === undefined
              ? null
              : await this.#readBlobChunk(reader, meter, where);
            if (chunk === null) {
              if (delivered >= size) {
                controller.close();
                return;
              }
              // The body ended early (no Content-Length, or a server that lied about it).
              throw new RegistryError(
                this.host,
                "connection",
                `connection closed while reading ${where()}`,
              );
            }
            const start = offset;
            offset += chunk.byteLength;
            if (offset <= delivered) continue; // a restart's bytes already handed on
            const fresh = start < delivered ? chunk.subarray(delivered - start) : chunk;
            delivered += fresh.byteLength;
            state.sinceFailure += fresh.byteLength;
            controller.enqueue(fresh);
            return;
          } catch (e) {
            if (reader !== undefined) await this.#discard(response, reader);
            reader = undefined;
            if (delivered >= size && e instanceof RegistryError && e.retryable) {
              // Every byte is here (the verifiers judge them); the end was not.
              controller.close();
              return;
            }
            await this.#afterFailure(e, state);
            response = await this.#retrying(
              () => this.#requestBlob(repository, digest, size, delivered),
              state,
            );
            if (cancelled) return await this.#discard(response); // the reader went away meanwhile
            offset = response.status === 206 ? delivered : 0;
            reader = response.body?.getReader();
            meter.reset();
          }
        }
      },
      cancel: async () => {
        cancelled = true;
        if (reader !== undefined) await this.#discard(response, reader);
      },
    }, { highWaterMark: 0 });
  }

  /**
   * GET a blob, from byte `from` on (`Range`) when `from` > 0. Resolves with a 200 (the whole
   * blob, Content-Length checked) or, for a range, a 206 whose Content-Range starts at `from`.
   */
  async #requestBlob(
    repository: string,
    digest: string,
    size: number,
    from: number,
  ): Promise<Response> {
    const budget = this.#budget(this.#policy.requestTimeoutMs);
    // Ranges count bytes as sent: no transfer encoding may change them.
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (from > 0) headers.range = `bytes=${from}-`;
    const response = await this.#get(repository, `blobs/${digest}`, "*/*", budget, headers);
    if (response.status === 206 && from > 0) {
      const header = response.headers.get("content-range");
      const range = parseContentRange(header);
      if (
        range === undefined || range.start !== from || range.end !== size - 1 ||
        (range.total !== undefined && range.total !== size)
      ) {
        await this.#discard(response);
        throw new RegistryError(
          this.host,
          "invalid",
          `blob ${digest} of ${repository}: asked for bytes ${from}-${size - 1}, the registry ` +
            `answered Content-Range ${JSON.stringify(clip(header ?? "(none)", 100))}`,
          { status: 206 },
        );
      }
      return response;
    }
    if (response.status !== 200) {
      throw await this.#statusError(response, repository, "blob", digest);
    }
    const length = response.headers.get("content-length");
    if (length !== null && response.headers.get("content-encoding") === null) {
      const n = Number(length);
      if (Number.isSafeInteger(n) && n !== size) {
        await this.#discard(response);
        throw new BlobError(
          digest,
          n < size ? "truncated" : "too-large",
          `blob ${digest}: the registry serves ${n} bytes (Content-Length), the descriptor ` +
            `says ${size}`,
        );
      }
    }
    return response;
  }

  /**
   * The next chunk of a blob body, null at its end. Waits as long as the idle window and the
   * overall deadline allow; a window short of its bytes is a `timeout` error, a read that
   * fails a `connection` one (both retryable), the deadline a final `timeout`.
   */
  async #readBlobChunk(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    meter: ProgressMeter,
    where: () => string,
  ): Promise<Uint8Array | null> {
    const pending = reader.read();
    while (true) {
      const overall = this.#deadlineAt - performance.now();
      const started = performance.now();
      let result: ReadableStreamReadResult<Uint8Array> | typeof TIMED_OUT;
      try {
        result = await raceTimer(pending, Math.min(meter.remainingMs(), overall));
      } catch (e) {
        throw new RegistryError(
          this.host,
          "connection",
          `connection lost while reading ${where()} (${describeCause(e)})`,
          { cause: e },
        );
      }
      if (result === TIMED_OUT && performance.now() >= this.#deadlineAt) {
        throw this.#overallTimeout(`while reading ${where()}`);
      }
      const bytes = result === TIMED_OUT || result.done ? 0 : result.value.byteLength;
      const stalled = meter.waited(performance.now() - started, bytes);
      if (stalled !== undefined) {
        const window = formatDuration(stalled.windowMs);
        throw new RegistryError(
          this.host,
          "timeout",
          stalled.bytes === 0
            ? `no data for ${window} while reading ${where()}`
            : `only ${stalled.bytes} bytes in ${window} (at least ${stalled.needed} needed: ` +
              `${this.#policy.minBytesPerSecond} bytes/s) while reading ${where()}`,
        );
      }
      if (result === TIMED_OUT) continue; // the window ended with enough bytes: a new one
      return result.done ? null : result.value;
    }
  }

  // --- time limits and retries ---------------------------------------------------------------

  /** A budget of `ms` from now, cut short by the overall deadline. */
  #budget(ms: number): Budget {
    const own = performance.now() + ms;
    return own < this.#deadlineAt
      ? { at: own, ms, overall: false }
      : { at: this.#deadlineAt, ms, overall: true };
  }

  /** The final error when the overall deadline has passed; `what` says during what. */
  #overallTimeout(what: string): RegistryError {
    return new RegistryError(
      this.host,
      "timeout",
      `the overall time limit of ${formatDuration(this.#policy.timeoutMs ?? 0)} ran out ${what}`,
      { retryable: false },
    );
  }

  /** The timeout error for a budget that ran out: the overall one, or the work's own. */
  #budgetTimeout(budget: Budget, what: string): RegistryError {
    return budget.overall ? this.#overallTimeout(what) : new RegistryError(
      this.host,
      "timeout",
      `no answer within ${formatDuration(budget.ms)} ${what}`,
    );
  }

  /** Runs `work` until it succeeds or {@link #afterFailure} gives up. */
  async #retrying<T>(work: () => Promise<T>, state: RetryState = retryState()): Promise<T> {
    while (true) {
      try {
        return await work();
      } catch (e) {
        await this.#afterFailure(e, state);
      }
    }
  }

  /**
   * After a failed attempt: rethrows what is not worth retrying, throws the error marked with
   * the attempt count once the retries are used up (or the deadline leaves no time to wait),
   * else waits the backoff (or the registry's `Retry-After`) and returns.
   */
  async #afterFailure(e: unknown, state: RetryState): Promise<void> {
    if (!(e instanceof RegistryError) || !e.retryable) throw e;
    if (state.sinceFailure >= RESUME_PROGRESS_BYTES) state.failures = 0;
    state.sinceFailure = 0;
    state.attempts++;
    const detail = e.message.slice(`registry ${this.host}: `.length);
    const giveUp = (why: string) =>
      new RegistryError(this.host, e.kind, `${detail} (${why})`, {
        status: e.status,
        retryable: false,
        cause: e,
      });
    if (state.failures >= this.#policy.retries) {
      throw state.attempts === 1 ? e : giveUp(`gave up after ${state.attempts} attempts`);
    }
    state.failures++;
    const delay = retryDelay(state.failures, this.#policy.retryDelayMs, e.retryAfterMs);
    if (performance.now() + delay >= this.#deadlineAt) {
      throw giveUp(
        `not retried: the overall time limit of ${
          formatDuration(this.#policy.timeoutMs ?? 0)
        } ends first`,
      );
    }
    this.#options.onRetry?.(
      `registry ${this.host}: ${detail}; retrying in ${formatDuration(delay)} ` +
        `(retry ${state.failures} of ${this.#policy.retries})`,
    );
    await new Promise((resolve) => setTimeout(resolve, delay));
  }

  /** Lets go of a response: cancels its body (or `reader`) and aborts its connection. */
  async #discard(
    response: Response,
    reader?: ReadableStreamDefaultReader<Uint8Array>,
  ): Promise<void> {
    await raceTimer((reader ?? response.body)?.cancel().catch(() => {}) ?? Promise.resolve(), 1000);
    this.#aborters.get(response)?.abort();
  }

  // --- HTTP -----------------------------------------------------------------------------------

  /**
   * GET `/v2/REPOSITORY/PATH`, answering one 401 challenge and following redirects
   * (without `Authorization` once the origin changes). The response may have any status.
   * `headers` are sent with every request of the chain.
   */
  async #get(
    repository: string,
    path: string,
    accept: string,
    budget: Budget,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    let url = new URL(`${this.baseUrl}/v2/${repository}/${path}`);
    const origin = url.origin;
    let authorization = this.#authorizations.get(repository);
    let challenged = false;
    for (let redirects = 0;;) {
      const sameOrigin = url.origin === origin;
      const response = await this.#send(
        url,
        { ...headers, accept },
        sameOrigin ? authorization : undefined,
        budget,
      );
      if (response.status === 401 && sameOrigin && !challenged) {
        const header = response.headers.get("www-authenticate") ?? "";
        await this.#discard(response);
        challenged = true;
        authorization = await this.#authorize(repository, header, budget, response.status);
        continue;
      }
      if ([301, 302, 303, 307, 308].includes(response.status)) {
        const location = response.headers.get("location");
        await this.#discard(response);
        if (location === null) {
          throw new RegistryError(
            this.host,
            "http",
            `HTTP ${response.status} without a Location header for GET ${url.pathname}`,
            { status: response.status, retryable: false },
          );
        }
        if (++redirects > MAX_REDIRECTS) {
          throw new RegistryError(
            this.host,
            "http",
            `more than ${MAX_REDIRECTS} redirects for GET ${
              new URL(`${this.baseUrl}/v2/${repository}/${path}`).pathname
            }`,
            { status: response.status, retryable: false },
          );
        }
        const next = new URL(location, url);
        if (next.protocol !== "https:" && next.protocol !== "http:") {
          throw new RegistryError(
            this.host,
            "http",
            `redirect to an unsupported URL scheme ${JSON.stringify(clip(next.protocol, 20))}`,
            { status: response.status, retryable: false },
          );
        }
        url = next;
        continue;
      }
      if (response.ok && sameOrigin && authorization !== undefined) {
        this.#authorizations.set(repository, authorization);
      }
      return response;
    }
  }

  /** One GET with the client's `User-Agent` and `authorization` (see {@link #fetchWithin}). */
  async #send(
    url: URL,
    headers: Record<string, string>,
    authorization: string | undefined,
    budget: Budget,
  ): Promise<Response> {
    const all = new Headers({ ...headers, "user-agent": this.#options.userAgent ?? "cfs" });
    if (authorization !== undefined) all.set("authorization", authorization);
    return await this.#fetchWithin(url, all, "manual", budget);
  }

  /**
   * `fetch` whose response headers must arrive within `budget`; a connection failure is a
   * `connection` error, no answer in time a `timeout` one. The response's connection can be
   * aborted later through {@link #discard}.
   */
  async #fetchWithin(
    url: URL,
    headers: Headers,
    redirect: RequestRedirect,
    budget: Budget,
  ): Promise<Response> {
    const aborter = new AbortController();
    let result: Response | typeof TIMED_OUT;
    try {
      result = await raceTimer(
        fetch(url, { headers, redirect, signal: aborter.signal }),
        budget.at - performance.now(),
      );
    } catch (e) {
      throw this.#fetchError(e, url);
    }
    if (result === TIMED_OUT) {
      aborter.abort();
      throw this.#budgetTimeout(budget, `from ${target(url)} for GET ${url.pathname}`);
    }
    this.#aborters.set(result, aborter);
    return result;
  }

  #fetchError(e: unknown, url: URL): RegistryError {
    const text = describeCause(e);
    const reason = /connection refused/i.test(text)
      ? "connection refused"
      : /dns error|failed to lookup|name or service not known/i.test(text)
      ? "host name not found"
      : url.protocol === "https:" &&
          /InvalidContentType|corrupt message|wrong version number|record/i.test(text)
      ? `TLS failure: it answers in plain HTTP, not TLS (${clip(text, 120)}); ` +
        "for a registry without TLS use --tls-verify=false"
      : /certificate|tls|ssl|handshake/i.test(text)
      ? `TLS failure (${clip(text, 200)}); for a local registry without TLS use --tls-verify=false`
      : clip(text, 200);
    // A name that does not resolve or a certificate that is refused stays so.
    const retryable = !/^(host name not found|TLS failure)/.test(reason);
    return new RegistryError(
      this.host,
      "connection",
      `cannot connect to ${target(url)}: ${reason}`,
      {
        cause: e,
        retryable,
      },
    );
  }

  /** The Authorization header for a 401's challenge; throws an auth error when none. */
  async #authorize(
    repository: string,
    header: string,
    budget: Budget,
    status: number,
  ): Promise<string> {
    const challenges = parseWwwAuthenticate(header);
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    const credentials = await this.#findCredentials(repository);
    if (bearer !== undefined) {
      return `Bearer ${await this.#fetchToken(repository, bearer.params, credentials, budget)}`;
    }
    if (basic !== undefined) {
      if (credentials === null) {
        throw this.#authError(repository, status, "basic authentication; " + this.#noCredentials());
      }
      return basicAuthorization(credentials);
    }
    throw this.#authError(
      repository,
      status,
      header === ""
        ? "no WWW-Authenticate challenge"
        : `unsupported challenge ${JSON.stringify(clip(header, 100))}`,
    );
  }

  async #findCredentials(repository: string): Promise<FoundCredentials | null> {
    if (this.#options.credentials !== undefined) {
      return { ...this.#options.credentials, source: "options" };
    }
    let found = this.#credentials.get(repository);
    if (found === undefined) {
      found = findCredentials(this.host, repository, { paths: this.#options.authFiles }).then(
        (c) => c ?? null,
      );
      this.#credentials.set(repository, found);
    }
    return await found;
  }

  #noCredentials(): string {
    const files = this.#options.authFiles ?? authFilePaths();
    return `no credentials for ${this.host} in ${files.join(", ") || "any auth file"}`;
  }

  async #fetchToken(
    repository: string,
    params: Record<string, string>,
    credentials: FoundCredentials | null,
    budget: Budget,
  ): Promise<string> {
    const realm = params.realm;
    let url: URL;
    try {
      url = new URL(realm ?? "");
      if (url.protocol !== "https:" && url.protocol !== "http:") throw new TypeError("scheme");
    } catch {
      throw this.#authError(
        repository,
        401,
        `bearer challenge with an unusable realm ${JSON.stringify(clip(realm ?? "", 100))}`,
      );
    }
    if (params.service !== undefined) url.searchParams.set("service", params.service);
    url.searchParams.set("scope", `repository:${repository}:pull`);
    const headers = new Headers({ "user-agent": this.#options.userAgent ?? "cfs" });
    if (credentials !== null) headers.set("authorization", basicAuthorization(credentials));
    const where = `token service ${url.origin}${url.pathname}`;
    let response: Response;
    try {
      response = await this.#fetchWithin(url, headers, "follow", budget);
    } catch (e) {
      if (!(e instanceof RegistryError)) throw e;
      throw new RegistryError(
        this.host,
        e.kind,
        `${where}: ${e.message.slice(`registry ${this.host}: `.length)}`,
        { cause: e, retryable: e.retryable },
      );
    }
    if (response.status === 401 || response.status === 403) {
      await this.#discard(response);
      throw this.#authError(
        repository,
        response.status,
        credentials === null
          ? `${where} refused an anonymous token; ${this.#noCredentials()}`
          : `${where} refused the credentials from ${credentials.source}`,
      );
    }
    if (response.status !== 200) {
      const snippet = await this.#bodySnippet(response);
      throw new RegistryError(
        this.host,
        response.status >= 500 ? "server" : "auth",
        `${where}: HTTP ${response.status}${snippet ? `: ${snippet}` : ""}`,
        { status: response.status, retryAfterMs: retryAfter(response) },
      );
    }
    const bytes = await this.#readLimited(response, where, budget);
    let token: unknown;
    try {
      const json = JSON.parse(new TextDecoder().decode(bytes));
      token = json?.token ?? json?.access_token;
    } catch {
      // reported below
    }
    if (typeof token !== "string" || token === "" || /[\r\n]/.test(token)) {
      throw this.#authError(repository, 401, `${where} answered without a usable token`);
    }
    return token;
  }

  #authError(repository: string, status: number, detail: string): RegistryError {
    return new RegistryError(
      this.host,
      "auth",
      `authentication required for ${repository} (HTTP ${status}: ${detail})`,
      { status },
    );
  }

  /** The error for a response that is not 200. */
  async #statusError(
    response: Response,
    repository: string,
    what: "manifest" | "blob",
    reference: string,
  ): Promise<RegistryError> {
    const status = response.status;
    const snippet = await this.#bodySnippet(response);
    const name = `${repository}${reference.includes(":") ? "@" : ":"}${reference}`;
    const detail = snippet ? ` (${snippet})` : "";
    if (status === 401 || status === 403) {
      const credentials = await this.#findCredentials(repository);
      const sent = this.#authorizations.has(repository) || credentials !== null;
      return this.#authError(
        repository,
        status,
        (sent
          ? credentials !== null
            ? `the credentials from ${credentials.source} were refused`
            : "the token was refused"
          : this.#noCredentials()) + (snippet ? `; ${snippet}` : ""),
      );
    }
    if (status === 404) {
      return new RegistryError(this.host, "not-found", `${what} unknown: ${name}${detail}`, {
        status,
      });
    }
    return new RegistryError(
      this.host,
      status >= 500 ? "server" : "http",
      `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ""} for ${what} ` +
        `${name}${snippet ? `: ${snippet}` : ""}`,
      { status, retryAfterMs: retryAfter(response) },
    );
  }

  /**
   * At most 2 KiB of an error body, as one short line (distribution's errors decoded); what
   * arrives within {@link SNIPPET_TIMEOUT_MS}.
   */
  async #bodySnippet(response: Response): Promise<string> {
    if (response.body === null) return "";
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    const until = Math.min(performance.now() + SNIPPET_TIMEOUT_MS, this.#deadlineAt);
    try {
      while (total < 2048) {
        const result = await raceTimer(reader.read(), until - performance.now());
        if (result === TIMED_OUT || result.done) break;
        chunks.push(result.value);
        total += result.value.byteLength;
      }
    } catch {
      // a snippet is best effort
    } finally {
      await this.#discard(response, reader);
    }
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.byteLength;
    }
    const text = new TextDecoder().decode(bytes.subarray(0, 2048));
    try {
      const json = JSON.parse(text);
      if (Array.isArray(json?.errors) && json.errors.length > 0) {
        return shorten(
          oneLine(
            json.errors.map((e: any) =>
              [e?.code, e?.message].filter((x) => typeof x === "string").join(": ")
            ).join("; "),
          ),
        );
      }
    } catch {
      // not JSON
    }
    return shorten(oneLine(text));
  }

  /** Reads a whole body of at most {@link MAX_JSON_BLOB_SIZE}, refusing more. */
  async #readLimited(response: Response, label: string, budget: Budget): Promise<Uint8Array> {
    const limit = MAX_JSON_BLOB_SIZE;
    const length = Number(response.headers.get("content-length") ?? "NaN");
    if (Number.isFinite(length) && length > limit) {
      await this.#discard(response);
      throw new RegistryError(
        this.host,
        "too-large",
        `${label}: ${length} bytes (Content-Length), over the ${limit}-byte limit; not read`,
      );
    }
    if (response.body === null) return new Uint8Array(0);
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      while (true) {
        const result = await raceTimer(reader.read(), budget.at - performance.now());
        if (result === TIMED_OUT) {
          throw this.#budgetTimeout(budget, `for ${label} (${total} bytes arrived)`);
        }
        if (result.done) break;
        total += result.value.byteLength;
        if (total > limit) {
          throw new RegistryError(
            this.host,
            "too-large",
            `${label}: more than the ${limit}-byte limit; stopped reading`,
          );
        }
        chunks.push(result.value);
      }
    } catch (e) {
      await this.#discard(response, reader);
      if (e instanceof RegistryError) throw e;
      throw new RegistryError(
        this.host,
        "connection",
        `${label}: connection lost after ${total} bytes (${describeCause(e)})`,
        { cause: e },
      );
    }
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.byteLength;
    }
    return bytes;
  }

  #checkDigest(digest: string, label: string): void {
    const problem = digestProblem(digest);
    if (problem !== undefined) {
      throw new RegistryError(
        this.host,
        "invalid",
        `${label}: invalid digest ${JSON.stringify(clip(digest, 100))}: ${problem}`,
      );
    }
  }

  #parseJson(bytes: Uint8Array, label: string): unknown {
    try {
      return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (e) {
      throw new RegistryError(
        this.host,
        "invalid",
        `${label} is not JSON: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
  }

  #validate<T extends z.ZodType>(json: unknown, schema: T, label: string): z.infer<T> {
    const result = schema.safeParse(json);
    if (!result.success) {
      const issue = result.error.issues[0];
      const at = issue.path.length ? ` at ${issue.path.join(".")}` : "";
      throw new RegistryError(
        this.host,
        "invalid",
        `${label} is malformed${at}: ${issue.message}`,
        {
          cause: result.error,
        },
      );
    }
    return result.data;
  }
}

/** How long an error body may take to arrive, for its snippet in the message. */
const SNIPPET_TIMEOUT_MS = 5000;

/** A response's `Retry-After`, in ms (transfer.ts {@link parseRetryAfter}). */
function retryAfter(response: Response): number | undefined {
  return parseRetryAfter(response.headers.get("retry-after"));
}

/** `HOST:PORT` of a URL, the port spelled out. */
function target(url: URL): string {
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return `${url.hostname}:${port}`;
}

/** The messages along an error's cause chain, joined (fetch hides the OS error there). */
function describeCause(e: unknown): string {
  const parts: string[] = [];
  let current: unknown = e;
  for (let i = 0; i < 5 && current !== undefined && current !== null; i++) {
    if (current instanceof Error) {
      parts.push(current.message);
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.join(": ");
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

/** At most 200 characters of an error body, "..." marking a cut. */
function shorten(text: string): string {
  return text.length <= 200 ? text : `${text.slice(0, 200)}...`;
}
