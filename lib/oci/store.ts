/**
 * How a pulled image is kept in the repository, beyond the layer and config streams that
 * cfsctl 0.3.0 writes (see pull.ts):
 *
 * ```text
 * streams/<manifest sha256>        manifest bytes; digest map: config sha256 -> config stream
 * streams/<config sha256>          config bytes; digest map: diff_id -> layer stream (0.3.0)
 * streams/<diff_id>                layer tar as a splitstream (0.3.0)
 * streams/refs/oci/<encoded tag>   -> ../../<manifest sha256>      a tag: a GC root
 * images/refs/oci-config-sha256:<hex>[.boot]                       the config's EROFS images
 * ```
 *
 * Tags and their percent-encoding (`%` -> `%25`, `/` -> `%2F`, so that
 * `localhost/bootc-sha256:...` is one file) follow composefs-oci's `refs/oci/` model; the
 * streams they point at stay in the 0.3.0 splitstream format, whose digest map links
 * manifest -> config -> layers for gc. composefs-oci records a config's images as named refs
 * inside the config stream; the 0.3.0 format has no such field, so cfs keeps them as image
 * refs named after the config, which gc drops together with the config
 * ({@link OCI_CONFIG_IMAGE_REF}).
 *
 * @module
 */
import { OCI_CONFIG_IMAGE_REF, Repository, RepositoryError } from "../repository.ts";
import { parseSplitStream, type SplitStreamReader } from "../splitstream.ts";
import { type DigestMapEntry, SplitStreamWriter } from "../splitstream.ts";
import { fromHex, toHex } from "../fsverity/digest.ts";
import { concatBytes } from "../bytes.ts";

export { OCI_CONFIG_IMAGE_REF };

/** The directory below `streams/refs/` that holds tags. */
export const OCI_TAG_DIR = "oci";

/** The longest tag accepted (encoded, it must still fit a file name). */
export const TAG_MAX_LENGTH = 200;

/** A tag that cannot be stored. */
export class TagError extends RepositoryError {
  /** Creates the error; the message is one line naming the input. */
  constructor(message: string) {
    super(message);
    this.name = "TagError";
  }
}

/** `%` -> `%25`, `/` -> `%2F`: a tag as one file name under `streams/refs/oci/`. */
export function encodeTag(tag: string): string {
  return tag.replaceAll("%", "%25").replaceAll("/", "%2F");
}

/** The inverse of {@link encodeTag}, in one pass (`%252F` is `%2F`, not `/`). */
export function decodeTag(encoded: string): string {
  return encoded.replace(/%(2F|25)/g, (_, h) => (h === "2F" ? "/" : "%"));
}

/** Checks a tag: not empty, no NUL or newline, not `.`/`..`, at most {@link TAG_MAX_LENGTH}. */
export function validateTag(tag: string): void {
  if (tag === "" || tag === "." || tag === "..") throw new TagError(`invalid tag '${tag}'`);
  if (/[\0\n]/.test(tag)) {
    throw new TagError(`invalid tag ${JSON.stringify(tag)}: control character`);
  }
  if (tag.length > TAG_MAX_LENGTH) {
    throw new TagError(`invalid tag '${tag.slice(0, 40)}...': over ${TAG_MAX_LENGTH} characters`);
  }
}

/** The tag bootc gives an image it pulled: `localhost/bootc-<manifest digest>`. */
export function bootcTag(manifestDigest: string): string {
  return `localhost/bootc-${manifestDigest}`;
}

/** The image ref of a config's EROFS image (`boot`: the bootable variant). */
export function configImageRef(configSha256: string, boot = false): string {
  return `oci-config-sha256:${configSha256}${boot ? ".boot" : ""}`;
}

function idLength(repo: Repository): 32 | 64 {
  return repo.algorithm === "sha512" ? 64 : 32;
}

/**
 * Stores the manifest as a splitstream of its exact bytes, its digest map pointing at the
 * config stream. Returns the stream's object id.
 */
export function writeManifestStream(
  repo: Repository,
  manifestBytes: Uint8Array,
  manifestSha256: Uint8Array,
  configSha256: Uint8Array,
  configStreamId: Uint8Array,
): Uint8Array {
  const map: DigestMapEntry[] = [{ body: configSha256, verity: configStreamId }];
  const writer = new SplitStreamWriter({
    objectIdLength: idLength(repo),
    digestMap: map,
    expectedSha256: manifestSha256,
  });
  let bytes: Uint8Array;
  try {
    writer.writeInline(manifestBytes);
    bytes = writer.finish();
  } catch (e) {
    writer.abort();
    throw e;
  }
  return repo.writeStream(bytes, manifestSha256);
}

/** Points tag `tag` at the stored manifest `manifestSha256` (hex); replaces an old target. */
export function tagImage(repo: Repository, tag: string, manifestSha256: string): void {
  validateTag(tag);
  repo.nameStream(`${OCI_TAG_DIR}/${encodeTag(tag)}`, fromHex(manifestSha256));
}

/** Removes a tag; false when there was none. The image stays until gc. */
export function untagImage(repo: Repository, tag: string): boolean {
  validateTag(tag);
  return repo.removeRef("streams", `${OCI_TAG_DIR}/${encodeTag(tag)}`);
}

/** Every tag and the manifest sha256 it points at, sorted by tag. */
export function listTags(repo: Repository): Array<{ tag: string; manifestSha256: string | null }> {
  return repo.listStreamRefs(OCI_TAG_DIR)
    .filter((r) => !r.name.slice(OCI_TAG_DIR.length + 1).includes("/"))
    .map((r) => ({
      tag: decodeTag(r.name.slice(OCI_TAG_DIR.length + 1)),
      manifestSha256: r.sha256,
    }))
    .sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
}

/**
 * The tags pointing at a manifest (sha256 hex), sorted. Reads every tag: asked for only
 * where it is shown (`oci inspect`), not by every lookup.
 */
export function tagsOf(repo: Repository, manifestSha256: string): string[] {
  return listTags(repo).filter((t) => t.manifestSha256 === manifestSha256).map((t) => t.tag);
}

/** A stored stream read whole: its name, object id, reader and content bytes. */
export interface StoredStream {
  /** The stream's name: the sha256 hex of its content. */
  sha256: string;
  /** The stream object's id. */
  id: Uint8Array;
  /** The parsed stream (digest map, references). */
  reader: SplitStreamReader;
  /** The content, objects included. */
  content: Uint8Array;
}

/** Reads a stream (sha256 hex or `refs/NAME`) and its content (objects read and verified). */
export async function readStoredStream(repo: Repository, name: string): Promise<StoredStream> {
  const { sha256, id, bytes } = repo.readStream(name);
  const reader = parseSplitStream(bytes, {
    name: `stream ${sha256}`,
    objectIdLength: idLength(repo),
  });
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of reader.cat((oid) => repo.readObject(oid))) {
    parts.push(chunk);
    total += chunk.length;
    if (total > 4 << 20) {
      throw new RepositoryError(`stream ${sha256} is over 4 MiB: not a JSON document`);
    }
  }
  return { sha256, id, reader, content: concatBytes(parts) };
}

/** A pulled image found by name. */
export interface StoredImage {
  /** The manifest's sha256 hex; undefined when the name led straight to a config. */
  manifestSha256?: string;
  /** The manifest stream's object id. */
  manifestId?: Uint8Array;
  /** The manifest JSON. */
  manifest?: Record<string, unknown>;
  /** The config's sha256 hex (its stream's name). */
  configSha256: string;
  /** The config stream's object id. */
  configId: Uint8Array;
  /** The config JSON. */
  config: Record<string, unknown>;
}

function parseJsonObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new RepositoryError(`${what} is not JSON`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new RepositoryError(`${what} is not a JSON object`);
  }
  return v as Record<string, unknown>;
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Finds a pulled image by: a tag; `sha256:HEX` or `HEX` of its manifest or config;
 * `refs/NAME` (a stream ref, as cfsctl 0.3.0 `oci pull IMAGE NAME` makes for configs).
 */
export async function findImage(repo: Repository, name: string): Promise<StoredImage> {
  let streamName: string;
  const hex = name.startsWith("sha256:") ? name.slice(7) : name;
  if (HEX64.test(hex)) {
    streamName = hex;
  } else if (name.startsWith("refs/")) {
    streamName = name;
  } else {
    validateTag(name);
    const target = repo.streamRefTarget(`${OCI_TAG_DIR}/${encodeTag(name)}`);
    if (target === undefined) {
      throw new RepositoryError(`no image tagged '${name}' in ${repo.path}`);
    }
    streamName = target;
  }
  const first = await readStoredStream(repo, streamName);
  const doc = parseJsonObject(first.content, `stream ${first.sha256}`);
  if (typeof doc.config === "object" && Array.isArray(doc.layers)) {
    const desc = doc.config as { digest?: unknown };
    const configHex = typeof desc.digest === "string" && desc.digest.startsWith("sha256:")
      ? desc.digest.slice(7)
      : "";
    if (!HEX64.test(configHex)) {
      throw new RepositoryError(`manifest ${first.sha256}: config digest is not sha256`);
    }
    const expected = first.reader.lookup(fromHex(configHex));
    const config = await readStoredStream(repo, configHex);
    if (!expected || toHex(expected) !== toHex(config.id)) {
      throw new RepositoryError(
        `manifest ${first.sha256}: config stream ${configHex} is not the one it recorded`,
      );
    }
    return {
      manifestSha256: first.sha256,
      manifestId: first.id,
      manifest: doc,
      configSha256: configHex,
      configId: config.id,
      config: parseJsonObject(config.content, `config ${configHex}`),
    };
  }
  if (typeof doc.rootfs === "object") {
    return { configSha256: first.sha256, configId: first.id, config: doc };
  }
  throw new RepositoryError(`stream ${first.sha256} is neither an image manifest nor a config`);
}
