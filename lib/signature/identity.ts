/**
 * Docker references as the signature policy reads them, and `signedIdentity` matching.
 *
 * A policy compares three kinds of reference: the image's own (the pull's `docker://` name), the
 * one a signature claims (`critical.identity.docker-reference`), and the ones a policy names
 * (`exactReference`, `exactRepository`, `remapIdentity`). containers/image parses all of them
 * with the docker/reference grammar in its "normalized" form, which differs from the pull's own
 * parser (lib/oci/reference.ts) in ways that matter here:
 *
 * - a reference may carry a tag AND a digest (`name:tag@sha256:...`); it is not refused, and it
 *   counts as tagged when matching;
 * - a name with neither stays "name only" (no `:latest` is added): a signature claiming only a
 *   repository (as cosign writes them) matches only `matchRepository`/`exactRepository`;
 * - no IPv6 hosts, any port digits, digests of sha256/sha384/sha512 only, tags `[\w][\w.-]{0,127}`,
 *   the whole name (host included) at most 255 characters, the repository path lower case;
 *   a first component that has no `.` or `:` and is not `localhost` is a Docker Hub path
 *   (`docker.io/`, plus `library/` for a single component; `index.docker.io` is `docker.io`).
 *
 * Matching never throws: a reference that does not parse simply does not match, as in
 * containers/image; {@link parseNamedReference} is the one that throws, with the reason.
 *
 * @module
 */
import { ImageRefError } from "../oci/reference.ts";
import type { SignedIdentity } from "./types.ts";

/** A docker reference as docker/reference holds it: a name, and a tag and/or a digest. */
export interface NamedReference {
  /** The full repository name, e.g. `docker.io/library/busybox`, `host:5000/ns/repo`. */
  readonly name: string;
  /** The tag, when given. */
  readonly tag?: string;
  /** The digest (`sha256:...`), when given. */
  readonly digest?: string;
}

// The grammar, written so that no pattern can backtrack badly on hostile input: the separators
// of a path component each start with a character a component cannot, and inputs are capped.
const NAME_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*(?::[0-9]+)?`;
const NAME = `(?:${DOMAIN}/)?${NAME_COMPONENT}(?:/${NAME_COMPONENT})*`;
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
const REFERENCE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const DOMAIN_ONLY = new RegExp(`^${DOMAIN}$`);
const DOMAIN_PREFIX = new RegExp(`^${DOMAIN}/`);
const NAME_ONLY = new RegExp(`^${NAME}$`);
const IDENTIFIER = /^[a-f0-9]{64}$/;

/** Longest name (host included), as docker/reference enforces. */
const NAME_TOTAL_LENGTH_MAX = 255;
/**
 * Longer input cannot be a valid reference (a 255-character name, a 128-character tag and a
 * sha512 digest fit well within it), so it is refused before any pattern runs.
 */
const INPUT_MAX = 1024;

/** Digest algorithms go-digest accepts in containers/image, with their hex lengths. */
const DIGEST_HEX_LENGTH: Readonly<Record<string, number>> = {
  sha256: 64,
  sha384: 96,
  sha512: 128,
};

/** Why `digest` is not one go-digest accepts, or undefined when it is. */
function digestProblem(digest: string): string | undefined {
  const colon = digest.indexOf(":");
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) return `unsupported digest algorithm ${JSON.stringify(algorithm)}`;
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    return `invalid ${algorithm} digest (${length} lower-case hexadecimal digits)`;
  }
  return undefined;
}

/** `s`, quoted and shortened for a message. */
function quote(s: string, max = 120): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}...` : s);
}

/**
 * Parses `s` as docker/reference's `ParseNormalizedNamed` does (see the module documentation).
 * Throws {@link ImageRefError} naming the input and the rule it breaks.
 */
export function parseNamedReference(s: string): NamedReference {
  const parsed = parseOrReason(s);
  if (typeof parsed === "string") throw new ImageRefError(s, parsed);
  return parsed;
}

/** Why `s` is not a docker reference (as {@link parseNamedReference} reads it), or undefined. */
export function namedReferenceProblem(s: string): string | undefined {
  const parsed = parseOrReason(s);
  return typeof parsed === "string" ? parsed : undefined;
}

/** The parsed reference, or the reason it is not one. */
function parseOrReason(s: string): NamedReference | string {
  if (typeof s !== "string") return "not a string";
  if (s.length > INPUT_MAX) return `longer than ${INPUT_MAX} characters`;
  if (IDENTIFIER.test(s)) return "a 64-digit hexadecimal string is an image ID, not a name";
  // Split off the registry the way the Docker CLI does.
  let domain = "docker.io";
  let remainder = s;
  const slash = s.indexOf("/");
  if (slash >= 0) {
    const first = s.slice(0, slash);
    if (/[.:]/.test(first) || first === "localhost") {
      domain = first;
      remainder = s.slice(slash + 1);
    }
  }
  if (domain === "index.docker.io") domain = "docker.io";
  if (domain === "docker.io" && !remainder.includes("/")) remainder = `library/${remainder}`;
  const colon = remainder.indexOf(":");
  const repository = colon >= 0 ? remainder.slice(0, colon) : remainder;
  if (repository.toLowerCase() !== repository) return "repository name must be lowercase";
  const m = REFERENCE.exec(`${domain}/${remainder}`);
  if (m === null) return "invalid reference format";
  const [, name, tag, digest] = m;
  if (name.length > NAME_TOTAL_LENGTH_MAX) {
    return `repository name longer than ${NAME_TOTAL_LENGTH_MAX} characters`;
  }
  if (digest !== undefined) {
    const problem = digestProblem(digest);
    if (problem !== undefined) return problem;
  }
  return {
    name,
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined ? { digest } : {}),
  };
}

/** The reference as containers/image prints it: `name[:tag][@digest]`. */
export function formatNamedReference(ref: NamedReference): string {
  return ref.name + (ref.tag !== undefined ? `:${ref.tag}` : "") +
    (ref.digest !== undefined ? `@${ref.digest}` : "");
}

/** True when `ref` has neither a tag nor a digest. */
export function isNameOnly(ref: NamedReference): boolean {
  return ref.tag === undefined && ref.digest === undefined;
}

/** `ref` with `:latest` added when it has neither a tag nor a digest (docker/reference's rule). */
export function tagNameOnly(ref: NamedReference): NamedReference {
  return isNameOnly(ref) ? { name: ref.name, tag: "latest" } : ref;
}

/**
 * Why `s` cannot be a `remapIdentity` prefix (`prefix` or `signedPrefix`), or undefined when it
 * can: a `host[:port]`, or a repository name that starts with a host (no tag, no digest). As in
 * containers/image, a first component that merely looks like a host (`ns/repo`) passes here and
 * then simply never matches.
 */
export function remapPrefixProblem(s: string): string | undefined {
  if (
    s.length <= INPUT_MAX && (DOMAIN_ONLY.test(s) || (NAME_ONLY.test(s) && DOMAIN_PREFIX.test(s)))
  ) {
    return undefined;
  }
  return `${quote(s)} is neither a host[:port] nor a repository name starting with a host`;
}

/** Parses, or undefined when `s` is not a reference (matching treats that as no match). */
function tryParse(s: string | undefined): NamedReference | undefined {
  if (s === undefined) return undefined;
  const parsed = parseOrReason(s);
  return typeof parsed === "string" ? undefined : parsed;
}

/** `matchRepoDigestOrExact` on parsed values: the tag must match exactly, a digest the repository. */
function repoDigestOrExact(intended: NamedReference, signed: NamedReference): boolean {
  if (isNameOnly(signed)) return false;
  if (intended.tag !== undefined) {
    return formatNamedReference(signed) === formatNamedReference(intended);
  }
  if (intended.digest !== undefined) return signed.name === intended.name;
  return false;
}

/** Both given and equal in full (neither name-only). */
function exactlyEqual(a: NamedReference | undefined, b: NamedReference | undefined): boolean {
  if (a === undefined || b === undefined || isNameOnly(a) || isNameOnly(b)) return false;
  return formatNamedReference(a) === formatNamedReference(b);
}

/**
 * The image's reference with `prefix` replaced by `signedPrefix` when its name is `prefix` or
 * starts with `prefix/`; unchanged otherwise; undefined when the result is not a canonical
 * reference (then nothing matches).
 */
export function remapReference(
  ref: NamedReference,
  prefix: string,
  signedPrefix: string,
): NamedReference | undefined {
  const name = ref.name;
  const matches = name === prefix || (name.startsWith(prefix) && name[prefix.length] === "/");
  if (!matches) return ref;
  const full = formatNamedReference(ref);
  const remapped = signedPrefix + full.slice(prefix.length);
  const parsed = tryParse(remapped);
  // containers/image re-parses strictly: the result must already be in its normalized form.
  if (parsed === undefined || formatNamedReference(parsed) !== remapped) return undefined;
  return parsed;
}

/**
 * Whether a signature claiming `signatureRef` satisfies `identity` for an image whose own docker
 * reference is `imageRef` (undefined when its transport has none: then only `exactReference`
 * and `exactRepository` can match). Never throws; unparsable references do not match.
 */
export function matchesIdentity(
  identity: SignedIdentity,
  imageRef: string | undefined,
  signatureRef: string,
): boolean {
  const signed = tryParse(signatureRef);
  if (signed === undefined) return false;
  switch (identity.type) {
    case "matchExact":
      return exactlyEqual(tryParse(imageRef), signed);
    case "matchRepoDigestOrExact": {
      const intended = tryParse(imageRef);
      return intended !== undefined && repoDigestOrExact(intended, signed);
    }
    case "matchRepository": {
      const intended = tryParse(imageRef);
      return intended !== undefined && signed.name === intended.name;
    }
    case "exactReference":
      return exactlyEqual(tryParse(identity.dockerReference), signed);
    case "exactRepository": {
      const wanted = tryParse(identity.dockerRepository);
      return wanted !== undefined && signed.name === wanted.name;
    }
    case "remapIdentity": {
      const intended = tryParse(imageRef);
      if (intended === undefined) return false;
      const remapped = remapReference(intended, identity.prefix, identity.signedPrefix);
      return remapped !== undefined && repoDigestOrExact(remapped, signed);
    }
    default:
      return false;
  }
}

/** A short description of `identity` for messages, e.g. `exactRepository example.com/app`. */
export function describeIdentity(identity: SignedIdentity): string {
  switch (identity.type) {
    case "exactReference":
      return `exactReference ${identity.dockerReference}`;
    case "exactRepository":
      return `exactRepository ${identity.dockerRepository}`;
    case "remapIdentity":
      return `remapIdentity ${identity.prefix} -> ${identity.signedPrefix}`;
    default:
      return identity.type;
  }
}
