/**
 * Where an image's signatures come from, as containers/image 5.23 fetches them for
 * `docker://` (`docker/docker_image_src.go`), unverified:
 *
 * 1. **Lookaside** (registries.d `lookaside`, registries_d.ts): `BASE/REPO@sha256=HEX/signature-1`,
 *    `signature-2`, ... until the first one that does not exist. REPO is the repository path
 *    without the registry (`library/busybox`), the digest is the manifest's (the top-level one:
 *    an index's when the image has one). `file://` reads the file (a missing file ends the list,
 *    any other failure is an error); `http://` and `https://` GET it (404 ends the list, any
 *    other status other than 200 is an error; redirects followed; no registry credentials are
 *    sent). Each blob is at most {@link MAX_SIGNATURE_SIZE} (containers/image's limit) and is
 *    either a bare OpenPGP message (a simple signature) or the newer framing: a 0 byte, a
 *    format name (`simple-signing` or `sigstore-json`), a newline and the data. An empty or
 *    unrecognized blob is an error, not a missing signature.
 * 2. **Sigstore attachments**, when registries.d's `use-sigstore-attachments` is true for the
 *    image: the manifest tagged `sha256-HEX.sig` in the same repository (absent: no
 *    attachments), which must be an OCI image manifest; every layer is one attachment, its
 *    blob (at most {@link MAX_SIGNATURE_SIZE}, size and digest checked) the payload and its
 *    annotations the signature. Layers of other media types are returned too (the policy
 *    counts them as non-signature attachments).
 *
 * A failure to fetch is a {@link SignatureSourceError} (or the registry client's
 * `RegistryError`): the pull fails, as containers/image's does, rather than being rejected.
 *
 * Where cfs differs: it has no client for the `X-Registry-Supports-Signatures` API extension
 * (OpenShift's integrated registry), which containers/image prefers to lookaside when a
 * registry announces it; it stops after {@link MAX_LOOKASIDE_SIGNATURES} lookaside signatures
 * (containers/image has no limit); any 404 for the attachment manifest means "none"
 * (containers/image also requires the registry's error to say "manifest unknown"); and the
 * lookaside over HTTPS always verifies certificates.
 *
 * OCI layouts (`oci:`, `oci-archive:`): containers/image 5.23 reads no signatures from them
 * (its OCI source returns none), so there is no reader for them here; a policy that requires
 * signatures rejects such images, as skopeo does.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, clipMiddle, withCode } from "../errors.ts";
import { MEDIA_TYPE_OCI_MANIFEST } from "../oci/layout.ts";
import type { DockerReference } from "../oci/reference.ts";
import { type RegistryClient, RegistryError } from "../oci/registry.ts";
import { DEFAULT_REQUEST_TIMEOUT_MS } from "../oci/transfer.ts";
import { lookasideFor, type RegistriesD, useSigstoreAttachments } from "./registries_d.ts";
import type { ImageSignature } from "./types.ts";

/** Largest signature blob read (containers/image's `MaxSignatureBodySize`, 4 MiB). */
export const MAX_SIGNATURE_SIZE = 4 * 1024 * 1024;
/** Most lookaside signatures read for one image. */
export const MAX_LOOKASIDE_SIGNATURES = 1000;

/** Signatures that cannot be fetched: one line naming the URL, file or tag. */
export class SignatureSourceError extends CfsError {
  /** `message`: what failed and where. */
  constructor(message: string, options?: CfsErrorOptions) {
    super(
      clipMiddle(message.replace(/\s+/g, " ").trim()),
      withCode(options, "signature-source-failed"),
    );
    this.name = "SignatureSourceError";
  }
}

/** Options of {@link dockerSignatures}. */
export interface DockerSignatureOptions {
  /** The image's registry client (its credentials, limits and retries serve the attachments). */
  client: RegistryClient;
  /** The image reference pulled (its tag or digest selects the registries.d scope). */
  reference: DockerReference;
  /** The top-level manifest digest the signatures are stored under (`sha256:HEX`). */
  manifestDigest: string;
  /** The registries.d configuration (registries_d.ts `loadRegistriesD`). */
  registriesD: RegistriesD;
  /** Time limit for each lookaside HTTP request, headers and body; default 30 s. */
  requestTimeoutMs?: number;
}

/**
 * The signatures of a `docker://` image: its lookaside signatures in order, then its sigstore
 * attachments when enabled (module documentation). Throws {@link SignatureSourceError} or
 * `RegistryError` when they cannot be fetched.
 */
export async function dockerSignatures(opts: DockerSignatureOptions): Promise<ImageSignature[]> {
  const { reference, manifestDigest, registriesD } = opts;
  const match = /^sha256:([0-9a-f]{64})$/.exec(manifestDigest);
  if (match === null) {
    throw new SignatureSourceError(
      `signatures are stored by sha256 manifest digest, not ${JSON.stringify(manifestDigest)}`,
    );
  }
  const signatures: ImageSignature[] = [];
  const base = lookasideFor(registriesD, reference);
  for (let n = 1;; n++) {
    if (n > MAX_LOOKASIDE_SIGNATURES) {
      throw new SignatureSourceError(
        `more than ${MAX_LOOKASIDE_SIGNATURES} lookaside signatures for ` +
          `${reference.domain}/${reference.repository}@${manifestDigest} under ${redact(base)}`,
      );
    }
    const location = lookasideSignatureLocation(base, reference, manifestDigest, n);
    const blob = await readLookaside(location, opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
    if (blob === null) break;
    signatures.push(signatureFromBlob(blob, location.origin));
  }
  if (useSigstoreAttachments(registriesD, reference)) {
    signatures.push(...await sigstoreAttachments(opts.client, reference, manifestDigest));
  }
  return signatures;
}

/** Where a lookaside signature is: a file path or an HTTP(S) URL, and how to name it. */
export type LookasideLocation =
  | { kind: "file"; path: string; origin: string }
  | { kind: "http"; url: URL; origin: string };

/**
 * The `n`th (from 1) lookaside signature of `manifestDigest` under the lookaside `base`:
 * `BASE/REPO@sha256=HEX/signature-N` (containers/image appends to the URL's path, so a query
 * string stays a query string and `file://` URLs are read at their decoded path). Throws
 * {@link SignatureSourceError} for a base that is not a `file`, `http` or `https` URL.
 */
export function lookasideSignatureLocation(
  base: string,
  reference: DockerReference,
  manifestDigest: string,
  n: number,
): LookasideLocation {
  const [algorithm, hex] = manifestDigest.split(":");
  const suffix = `/${reference.repository}@${algorithm}=${hex}/signature-${n}`;
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new SignatureSourceError(
      `lookaside ${JSON.stringify(redact(base))} is not a URL (registries.d wants file://, ` +
        "http:// or https://)",
    );
  }
  if (url.protocol === "file:") {
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      throw new SignatureSourceError(`lookaside ${JSON.stringify(base)}: malformed % escape`);
    }
    return { kind: "file", path: path + suffix, origin: path + suffix };
  }
  if (url.protocol === "http:" || url.protocol === "https:") {
    url.pathname = url.pathname + suffix;
    return { kind: "http", url, origin: redact(url.href) };
  }
  throw new SignatureSourceError(
    `unsupported scheme ${JSON.stringify(url.protocol)} for reading signatures from ` +
      redact(base),
  );
}

/** A URL with its password hidden, for messages (as Go's `URL.Redacted`). */
function redact(text: string): string {
  try {
    const url = new URL(text);
    if (url.password !== "") url.password = "xxxxx";
    return url.href;
  } catch {
    return text;
  }
}

/** One lookaside blob, or null when it does not exist. */
async function readLookaside(
  location: LookasideLocation,
  timeoutMs: number,
): Promise<Uint8Array | null> {
  if (location.kind === "file") return await readLookasideFile(location.path);
  return await readLookasideHttp(location.url, location.origin, timeoutMs);
}

async function readLookasideFile(path: string): Promise<Uint8Array | null> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new SignatureSourceError(`reading signature ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    const info = await file.stat();
    if (!info.isFile) throw new SignatureSourceError(`reading signature ${path}: not a file`);
    const buffer = new Uint8Array(MAX_SIGNATURE_SIZE + 1);
    let filled = 0;
    while (filled < buffer.length) {
      const n = await file.read(buffer.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    if (filled > MAX_SIGNATURE_SIZE) {
      throw new SignatureSourceError(
        `signature ${path} is larger than the ${MAX_SIGNATURE_SIZE}-byte limit`,
      );
    }
    return buffer.slice(0, filled);
  } catch (e) {
    if (e instanceof SignatureSourceError) throw e;
    throw new SignatureSourceError(`reading signature ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    file.close();
  }
}

const TIMED_OUT: unique symbol = Symbol("timed out");

/** `promise` or {@link TIMED_OUT} once `at` (a `performance.now()` time) has passed. */
async function before<T>(promise: Promise<T>, at: number): Promise<T | typeof TIMED_OUT> {
  promise.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<typeof TIMED_OUT>((resolve) => {
        timer = setTimeout(() => resolve(TIMED_OUT), Math.max(0, at - performance.now()));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * GET a lookaside signature within `timeoutMs` (headers and body together; the timer races
 * each read, as the registry client does): the body, null for 404, else an error.
 */
async function readLookasideHttp(
  url: URL,
  origin: string,
  timeoutMs: number,
): Promise<Uint8Array | null> {
  const deadline = performance.now() + timeoutMs;
  const aborter = new AbortController();
  const fail = (what: string, cause?: unknown): never => {
    aborter.abort();
    throw new SignatureSourceError(`reading signature from ${origin}: ${what}`, { cause });
  };
  let response: Response | typeof TIMED_OUT;
  try {
    response = await before(
      fetch(url, { redirect: "follow", signal: aborter.signal, headers: { "user-agent": "cfs" } }),
      deadline,
    );
  } catch (e) {
    return fail(describe(e), e);
  }
  if (response === TIMED_OUT) return fail(`no answer within ${timeoutMs} ms`);
  if (response.status === 404) {
    await before(response.body?.cancel().catch(() => {}) ?? Promise.resolve(), deadline);
    aborter.abort();
    return null;
  }
  if (response.status !== 200) {
    await before(response.body?.cancel().catch(() => {}) ?? Promise.resolve(), deadline);
    return fail(
      `status ${response.status}${response.statusText ? ` (${response.statusText})` : ""}`,
    );
  }
  const length = Number(response.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(length) && length > MAX_SIGNATURE_SIZE) {
    return fail(`${length} bytes (Content-Length), over the ${MAX_SIGNATURE_SIZE}-byte limit`);
  }
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const result = await before(reader.read(), deadline);
      if (result === TIMED_OUT) {
        return fail(`the body did not arrive within ${timeoutMs} ms (${total} bytes arrived)`);
      }
      if (result.done) break;
      total += result.value.byteLength;
      if (total > MAX_SIGNATURE_SIZE) {
        return fail(`more than the ${MAX_SIGNATURE_SIZE}-byte limit`);
      }
      chunks.push(result.value);
    }
  } catch (e) {
    if (e instanceof SignatureSourceError) throw e;
    return fail(`connection lost after ${total} bytes (${describe(e)})`, e);
  } finally {
    reader.releaseLock();
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

function describe(e: unknown): string {
  const parts: string[] = [];
  let current: unknown = e;
  for (let i = 0; i < 4 && current instanceof Error; i++) {
    parts.push(current.message);
    current = current.cause;
  }
  return parts.join(": ") || String(e);
}

/** First bytes of an OpenPGP compressed-data, one-pass-signature or signature packet. */
const OPENPGP_FIRST_BYTES = new Set([
  0xa0,
  0xa1,
  0xa2,
  0xa3,
  0xc8, // compressed data (old and new packet formats)
  // one-pass signature; 0x3d (not 0x93) is containers/image's list, kept so the same blobs pass
  0x90,
  0x91,
  0x92,
  0x3d,
  0xc4,
  0x88,
  0x89,
  0x8a,
  0x8b,
  0xc2, // signature
]);

/**
 * A lookaside blob as a signature: a bare OpenPGP message, or `\0FORMAT\nDATA` with FORMAT
 * `simple-signing` or `sigstore-json` (containers/image's `signature.FromBlob`). Throws
 * {@link SignatureSourceError} naming `origin` for anything else.
 */
export function signatureFromBlob(blob: Uint8Array, origin: string): ImageSignature {
  const fail = (what: string): never => {
    throw new SignatureSourceError(`parsing signature ${origin}: ${what}`);
  };
  if (blob.length === 0) return fail("empty signature blob");
  if (OPENPGP_FIRST_BYTES.has(blob[0])) return { kind: "simple", bytes: blob, origin };
  if (blob[0] !== 0) {
    return fail(
      `unrecognized signature format, starting with byte 0x${
        blob[0].toString(16).padStart(2, "0")
      }`,
    );
  }
  const newline = blob.indexOf(0x0a, 1);
  if (newline === -1) return fail("invalid signature format, missing newline");
  const format = blob.subarray(1, newline);
  for (const b of format) {
    if (b < 32 || b >= 0x7f) {
      return fail(`invalid signature format, non-ASCII byte 0x${b.toString(16)}`);
    }
  }
  const name = new TextDecoder().decode(format);
  const data = blob.slice(newline + 1);
  if (name === "simple-signing") return { kind: "simple", bytes: data, origin };
  if (name === "sigstore-json") return sigstoreFromJson(data, origin);
  return fail(`unrecognized signature format ${JSON.stringify(name)}`);
}

/** `{"mimeType", "payload" (base64), "annotations"}`, the `sigstore-json` framing's data. */
function sigstoreFromJson(data: Uint8Array, origin: string): ImageSignature {
  const fail = (what: string): never => {
    throw new SignatureSourceError(`parsing signature ${origin}: ${what}`);
  };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(data));
  } catch (e) {
    return fail(`sigstore-json is not JSON: ${(e as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return fail("sigstore-json is not a JSON object");
  }
  const o = json as Record<string, unknown>;
  const mediaType = o.mimeType ?? null;
  if (mediaType !== null && typeof mediaType !== "string") fail('"mimeType" is not a string');
  const payload = o.payload ?? null;
  if (payload !== null && (typeof payload !== "string" || !BASE64.test(payload))) {
    fail('"payload" is not base64');
  }
  const annotations = o.annotations ?? null;
  if (annotations !== null) {
    if (typeof annotations !== "object" || Array.isArray(annotations)) {
      fail('"annotations" is not an object');
    }
    for (const v of Object.values(annotations as object)) {
      if (typeof v !== "string") fail('"annotations" has a value that is not a string');
    }
  }
  return {
    kind: "sigstore",
    payload: new Uint8Array(Buffer.from((payload as string | null) ?? "", "base64")),
    annotations: { ...(annotations as Record<string, string> | null) },
    mediaType: (mediaType as string | null) ?? "",
    origin,
  };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The tag sigstore attachments of `manifestDigest` are stored under: `sha256-HEX.sig`. */
export function sigstoreAttachmentTag(manifestDigest: string): string {
  return `${manifestDigest.replace(":", "-")}.sig`;
}

/** Every layer of the attachment manifest, with its blob (module documentation). */
async function sigstoreAttachments(
  client: RegistryClient,
  reference: DockerReference,
  manifestDigest: string,
): Promise<ImageSignature[]> {
  const tag = sigstoreAttachmentTag(manifestDigest);
  const where = `${reference.domain}/${reference.repository}:${tag}`;
  let fetched;
  try {
    fetched = await client.fetchManifest(reference.repository, tag);
  } catch (e) {
    if (e instanceof RegistryError && e.kind === "not-found") return [];
    throw e;
  }
  if (fetched.mediaType !== MEDIA_TYPE_OCI_MANIFEST || fetched.document.kind !== "manifest") {
    throw new SignatureSourceError(
      `sigstore attachment manifest ${where}: media type ${fetched.mediaType}, not ` +
        MEDIA_TYPE_OCI_MANIFEST,
    );
  }
  const out: ImageSignature[] = [];
  for (const [i, layer] of fetched.document.manifest.layers.entries()) {
    const origin = `${where} layer ${i + 1} (${layer.digest})`;
    if (layer.size > MAX_SIGNATURE_SIZE) {
      throw new SignatureSourceError(
        `sigstore attachment ${origin}: ${layer.size} bytes, over the ${MAX_SIGNATURE_SIZE}-byte ` +
          "limit",
      );
    }
    const stream = await client.openBlob(reference.repository, layer);
    const payload = new Uint8Array(layer.size);
    let filled = 0;
    for await (const chunk of stream) {
      payload.set(chunk, filled); // the verifier refuses more than layer.size bytes
      filled += chunk.byteLength;
    }
    out.push({
      kind: "sigstore",
      payload,
      annotations: { ...layer.annotations },
      mediaType: layer.mediaType,
      origin,
    });
  }
  return out;
}
