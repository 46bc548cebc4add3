/**
 * Image references in containers-image syntax (`TRANSPORT:REFERENCE`), parsed without
 * touching the file system or the network.
 *
 * ```ts
 * parseImageReference("oci:/srv/layout:v1");         // { transport: "oci", path: "/srv/layout", tag: "v1" }
 * parseImageReference("docker://busybox");           // docker.io/library/busybox:latest
 * parseImageReference("docker://127.0.0.1:5000/a/b@sha256:...");
 * parseImageReference("containers-storage:quay.io/x/y:1");
 * parseImageReference("docker-archive:/tmp/x.tar");  // { transport: "other", ... } for skopeo
 * ```
 *
 * Rules, as containers/image applies them (facts from its `oci/internal` and
 * `docker/reference` packages, checked against skopeo 1.9):
 * - `oci:` and `oci-archive:` split at the FIRST `:`: `PATH[:NAME]`. A path therefore
 *   cannot contain `:` (containers/image refuses such paths too). NAME, when present, is
 *   matched against the `org.opencontainers.image.ref.name` annotation and must match
 *   `component(/component)*` with `component = [A-Za-z0-9]+((-|.|_|:|@|+|--)[A-Za-z0-9]+)*`.
 *   An empty NAME means "the only image in the layout".
 * - `docker://` requires the `//`. `NAME[:TAG][@DIGEST]`: the first path component is a
 *   registry host only when it contains `.` or `:` or is `localhost`; otherwise the
 *   registry is `docker.io`, and a one-component name gets `library/`. `index.docker.io`
 *   is normalised to `docker.io`. Repository paths are lowercase; tags match
 *   `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a name is at most 255 characters; a tag and a
 *   digest together are refused ("not supported", as containers/image says); neither
 *   means `:latest`.
 *
 * Where cfs is stricter than containers/image (each a clear error instead of a later
 * failure): an empty `oci:` path (containers/image reads the current directory; write
 * `oci:.`), digests other than sha256/sha512 (go-digest also knows sha384), registry
 * ports outside 1..65535, control characters anywhere, and leading or trailing white
 * space around the whole reference.
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import { clip, digestProblem } from "./digest.ts";

/** `oci:PATH[:NAME]`: an OCI image layout directory. */
export interface OciLayoutReference {
  /** Discriminant: an OCI image layout directory. */
  transport: "oci";
  /** The layout directory, as written (not resolved). */
  path: string;
  /** The `org.opencontainers.image.ref.name` to select; undefined: the only image. */
  tag: string | undefined;
}

/** `oci-archive:FILE[:NAME]`: a tar archive of an OCI image layout. */
export interface OciArchiveReference {
  /** Discriminant: a tar archive of an OCI image layout. */
  transport: "oci-archive";
  /** The archive file, as written (not resolved). */
  path: string;
  /** The `org.opencontainers.image.ref.name` to select; undefined: the only image. */
  tag: string | undefined;
}

/** `docker://[HOST[:PORT]/]NAME[:TAG|@DIGEST]`: an image in a registry. */
export interface DockerReference {
  /** Discriminant: an image in a registry. */
  transport: "docker";
  /** The registry, `docker.io` for Docker Hub; `host`, `host:port` or `[ipv6]:port`. */
  domain: string;
  /** The repository path in that registry, e.g. `library/busybox`. */
  repository: string;
  /** The tag; `latest` when neither a tag nor a digest was given; undefined with a digest. */
  tag: string | undefined;
  /** The manifest digest when pinned (`sha256:...`); then `tag` is undefined. */
  digest: string | undefined;
}

/** `containers-storage:[[STORE-SPEC]]NAME[@ID]`: handed to skopeo as written. */
export interface ContainersStorageReference {
  /** Discriminant: an image in containers-storage (podman, buildah), read through skopeo. */
  transport: "containers-storage";
  /** Everything after `containers-storage:`. */
  name: string;
}

/** Any other containers-image transport (`dir:`, `docker-archive:`, ...): for skopeo. */
export interface OtherTransportReference {
  /** Discriminant: a transport cfs hands to skopeo as written; `name` says which. */
  transport: "other";
  /** The transport's name, e.g. `docker-archive`. */
  name: string;
  /** Everything after `TRANSPORT:`. */
  reference: string;
}

/** A parsed image reference. */
export type ImageReference =
  | OciLayoutReference
  | OciArchiveReference
  | DockerReference
  | ContainersStorageReference
  | OtherTransportReference;

/** Transports containers-image knows that cfs passes through to skopeo. */
export const OTHER_TRANSPORTS: readonly string[] = [
  "dir",
  "docker-archive",
  "docker-daemon",
  "ostree",
  "sif",
  "tarball",
];

/** The Docker Hub domain in normalised references. */
export const DOCKER_HUB_DOMAIN = "docker.io";
/** The tag a reference without tag and digest gets. */
export const DEFAULT_TAG = "latest";
/** Longest repository name (domain + `/` + path), as distribution/reference enforces. */
export const NAME_TOTAL_LENGTH_MAX = 255;

/** An image reference that cannot be parsed; the message names the input. */
export class ImageRefError extends CfsError {
  /** The reference as given. */
  readonly input: string;

  /** Creates the error for `input`, saying why it is not a reference. */
  constructor(input: string, reason: string) {
    super(`invalid image reference ${JSON.stringify(clip(input))}: ${reason}`, {
      code: "image-ref-invalid",
    });
    this.name = "ImageRefError";
    this.input = input;
  }
}

// --- grammar --------------------------------------------------------------------------------------

const ALNUM = "[A-Za-z0-9]+";
/** containers-image `oci/internal` refRegexp: what may follow `oci:PATH:`. */
const OCI_NAME = new RegExp(
  `^${ALNUM}(?:(?:[-._:@+]|--)${ALNUM})*(?:/${ALNUM}(?:(?:[-._:@+]|--)${ALNUM})*)*$`,
);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_NAME =
  /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*$/;
const IPV6_HOST = /^\[[a-fA-F0-9:]+\]$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HEX64 = /^[a-f0-9]{64}$/;
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

// --- parsing --------------------------------------------------------------------------------------

/**
 * Parses `TRANSPORT:REFERENCE`. Throws {@link ImageRefError} naming the input and the
 * rule it breaks.
 */
export function parseImageReference(input: string): ImageReference {
  const fail = (reason: string): never => {
    throw new ImageRefError(input, reason);
  };
  if (input === "") fail("empty");
  if (input.trim() !== input) fail("leading or trailing white space");
  if (CONTROL.test(input)) fail("contains a control character");
  const colon = input.indexOf(":");
  if (colon < 0) {
    if (/^[a-z0-9.-]+\.[a-z]+\/\S+$/i.test(input) || input.startsWith("localhost/")) {
      fail(`no transport; for a registry image write docker://${clip(input, 80)}`);
    }
    fail("no transport; write e.g. docker://NAME, oci:DIR[:TAG] or containers-storage:NAME");
  }
  const transport = input.slice(0, colon);
  const rest = input.slice(colon + 1);
  switch (transport) {
    case "oci":
    case "oci-archive": {
      const [path, tag] = splitOciReference(rest, fail);
      return { transport, path, tag };
    }
    case "docker": {
      if (!rest.startsWith("//")) fail("docker: the reference must start with //");
      return parseDockerName(rest.slice(2), fail);
    }
    case "containers-storage": {
      if (rest === "") fail("containers-storage: needs an image name");
      if (/\s/.test(rest)) fail("containers-storage: white space in the name");
      return { transport, name: rest };
    }
    default: {
      if (!OTHER_TRANSPORTS.includes(transport)) {
        // `quay.io/org/name:tag`, `localhost:5000/name`: a registry name without its transport.
        if (/^[a-z0-9.-]+(?::\d+)?\/[^\s]+$/i.test(input) || /^\d+\//.test(rest)) {
          return fail(`no transport; for a registry image write docker://${clip(input, 80)}`);
        }
        return fail(
          `unknown transport ${JSON.stringify(clip(transport, 40))} (known: oci, oci-archive, ` +
            `docker, containers-storage, ${OTHER_TRANSPORTS.join(", ")})`,
        );
      }
      if (rest === "") fail(`${transport}: needs a reference after the transport`);
      return { transport: "other", name: transport, reference: rest };
    }
  }
}

function splitOciReference(
  rest: string,
  fail: (reason: string) => never,
): [string, string | undefined] {
  const colon = rest.indexOf(":");
  const path = colon < 0 ? rest : rest.slice(0, colon);
  const name = colon < 0 ? "" : rest.slice(colon + 1);
  if (path === "") fail("no layout path (write oci:. for the current directory)");
  if (name === "") return [path, undefined];
  if (!OCI_NAME.test(name)) {
    fail(
      `invalid image name ${JSON.stringify(clip(name, 80))} after the path ` +
        "(letters, digits and - . _ : @ + between them, / between components)",
    );
  }
  return [path, name];
}

/**
 * Parses a docker-style name `[HOST[:PORT]/]PATH[:TAG][@DIGEST]` (what follows
 * `docker://`), normalised as containers-image does. Throws {@link ImageRefError}.
 */
export function parseDockerReference(name: string): DockerReference {
  return parseDockerName(name, (reason) => {
    throw new ImageRefError(name, reason);
  });
}

function parseDockerName(s: string, fail: (reason: string) => never): DockerReference {
  if (s === "") fail("empty image name");
  if (/\s/.test(s)) fail("white space in the image name");
  if (CONTROL.test(s)) fail("contains a control character");
  if (HEX64.test(s)) fail("a 64-digit hexadecimal string is an image ID, not a name");

  let digest: string | undefined;
  let named = s;
  const at = s.indexOf("@");
  if (at >= 0) {
    digest = s.slice(at + 1);
    named = s.slice(0, at);
    const problem = digestProblem(digest);
    if (problem !== undefined) fail(`bad digest ${JSON.stringify(clip(digest, 80))}: ${problem}`);
  }

  let tag: string | undefined;
  const lastSlash = named.lastIndexOf("/");
  const lastColon = named.lastIndexOf(":");
  if (lastColon > lastSlash) {
    tag = named.slice(lastColon + 1);
    named = named.slice(0, lastColon);
    if (tag.length > 128) fail(`tag longer than 128 characters (${tag.length})`);
    if (!TAG.test(tag)) {
      fail(
        `invalid tag ${JSON.stringify(clip(tag, 80))} ` +
          "(letters, digits, _ . -; not starting with . or -)",
      );
    }
  }
  if (named === "") fail("no repository name");

  let domain = DOCKER_HUB_DOMAIN;
  let repository = named;
  const slash = named.indexOf("/");
  if (slash >= 0) {
    const first = named.slice(0, slash);
    if (/[.:]/.test(first) || first === "localhost") {
      domain = first;
      repository = named.slice(slash + 1);
      checkDomain(domain, fail);
    }
  }
  if (domain === "index.docker.io") domain = DOCKER_HUB_DOMAIN;
  if (domain === DOCKER_HUB_DOMAIN && !repository.includes("/")) {
    repository = `library/${repository}`;
  }
  if (repository.toLowerCase() !== repository) fail("repository name must be lowercase");
  for (const component of repository.split("/")) {
    if (!PATH_COMPONENT.test(component)) {
      fail(
        `invalid repository path component ${JSON.stringify(clip(component, 80))} ` +
          "(lowercase letters and digits, separated by . _ __ or dashes)",
      );
    }
  }
  const full = `${domain}/${repository}`;
  if (full.length > NAME_TOTAL_LENGTH_MAX) {
    fail(`repository name longer than ${NAME_TOTAL_LENGTH_MAX} characters (${full.length})`);
  }
  if (tag !== undefined && digest !== undefined) {
    fail("a tag and a digest together are not supported; give one of them");
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return { transport: "docker", domain, repository, tag, digest };
}

function checkDomain(domain: string, fail: (reason: string) => never): void {
  const bad = (): never => fail(`invalid registry host ${JSON.stringify(clip(domain, 80))}`);
  let host: string;
  let port: string | undefined;
  if (domain.startsWith("[")) {
    const close = domain.indexOf("]");
    if (close < 0) bad();
    host = domain.slice(0, close + 1);
    const after = domain.slice(close + 1);
    if (after !== "") {
      if (!after.startsWith(":")) bad();
      port = after.slice(1);
    }
    if (!IPV6_HOST.test(host)) bad();
  } else {
    const colon = domain.indexOf(":");
    host = colon < 0 ? domain : domain.slice(0, colon);
    port = colon < 0 ? undefined : domain.slice(colon + 1);
    if (!DOMAIN_NAME.test(host)) bad();
  }
  if (port !== undefined) {
    if (!/^[0-9]+$/.test(port)) fail(`invalid registry port ${JSON.stringify(clip(port, 20))}`);
    const n = Number(port);
    if (n < 1 || n > 65535) fail(`registry port ${clip(port, 20)} out of range 1..65535`);
  }
}

// --- formatting -----------------------------------------------------------------------------------

/** `DOMAIN/REPOSITORY`, e.g. `docker.io/library/busybox`. */
export function dockerRepositoryName(ref: DockerReference): string {
  return `${ref.domain}/${ref.repository}`;
}

/** The normalised reference in containers-image syntax (what skopeo accepts). */
export function formatImageReference(ref: ImageReference): string {
  switch (ref.transport) {
    case "oci":
    case "oci-archive":
      return ref.tag === undefined
        ? `${ref.transport}:${ref.path}`
        : `${ref.transport}:${ref.path}:${ref.tag}`;
    case "docker": {
      const suffix = ref.digest !== undefined ? `@${ref.digest}` : `:${ref.tag ?? DEFAULT_TAG}`;
      return `docker://${dockerRepositoryName(ref)}${suffix}`;
    }
    case "containers-storage":
      return `containers-storage:${ref.name}`;
    case "other":
      return `${ref.name}:${ref.reference}`;
  }
}
