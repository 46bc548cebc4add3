/**
 * Which tags `cfs pull` writes: the rules hooks' `ctx.tags` are held to, pure functions.
 *
 * A tag of a pulled image is also the name other tools are given for it (`skopeo copy
 * containers-storage:NAME`, `podman run NAME`, bootc's own `localhost/bootc-<digest>`), so a
 * tag a hook adds must be what containers/image accepts as a named reference
 * (`docker/reference`, `ParseNormalizedNamed`), written out here from its grammar:
 *
 * ```
 * reference  := name [ ":" tag ]              (no "@digest": a digest is not a tag)
 * name       := [ domain "/" ] component ( "/" component )*
 * domain     := host [ ":" port ]             the first part is a domain when it has a "."
 *                                             or a ":", or is "localhost"
 * host       := label ( "." label )*
 * label      := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
 * component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*   (lower case only)
 * tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 * ```
 *
 * plus its two other refusals: a name over 255 characters once normalized (`docker.io/library/`
 * prefixed where no domain is given), and a reference that is 64 hex digits (an image ID).
 * Newer containers/image releases also take an IPv6 address in brackets as the host; the
 * skopeo of Debian 12 (1.9.3) does not, and neither does cfs. test/pull_tags_test.ts checks
 * these rules against that skopeo.
 * `cfs oci tag` and `cfs oci pull IMAGE NAME` keep composefs-oci's looser rule (lib/oci/store.ts
 * `validateTag`): cfsctl names images `oci:/dir:tag` too.
 *
 * `localhost/bootc-<manifest digest>` is bootc's garbage-collection root for the image: cfs adds
 * it in the `tag` stage and keeps it whatever hooks do; every other `localhost/bootc-` name is
 * reserved (a hook must not make a root that looks like bootc's own for another image).
 *
 * @module
 */

/** bootc's tag prefix: `localhost/bootc-<manifest digest>`. */
export const BOOTC_TAG_PREFIX = "localhost/bootc-";

/** Longest name (before `:tag`) containers/image accepts, once normalized. */
export const NAME_MAX_LENGTH = 255;

/** Most tags one pull may write (a hook that loops is caught before it fills the repository). */
export const MAX_PULL_TAGS = 1000;

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const LABEL = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const PORT = /^[0-9]+$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const IMAGE_ID = /^[a-f0-9]{64}$/;

function checkDomain(domain: string): string | undefined {
  let host = domain;
  const colon = domain.lastIndexOf(":");
  if (colon >= 0) {
    if (!PORT.test(domain.slice(colon + 1))) return `bad port in '${domain}'`;
    host = domain.slice(0, colon);
  }
  if (host === "" || !host.split(".").every((l) => LABEL.test(l))) {
    return `'${host}' is not a host name`;
  }
  return undefined;
}

/**
 * Why `tag` is not a reference containers/image accepts (see the module documentation), or
 * undefined when it is one.
 */
export function referenceProblem(tag: string): string | undefined {
  if (tag === "") return "empty";
  if (IMAGE_ID.test(tag)) return "64 hex digits are an image ID, not a name";
  if (tag.includes("@")) return "a digest reference ('@') is not a tag";
  const slash = tag.lastIndexOf("/");
  const colon = tag.lastIndexOf(":");
  const name = colon > slash ? tag.slice(0, colon) : tag;
  const version = colon > slash ? tag.slice(colon + 1) : undefined;
  if (version !== undefined && !TAG.test(version)) {
    return `':${version.slice(0, 40)}' is not a tag (letters, digits, '_', '.', '-'; ` +
      "at most 128, not starting with '.' or '-')";
  }
  const parts = name.split("/");
  let domain: string | undefined;
  if (parts.length > 1 && (/[.:]/.test(parts[0]) || parts[0] === "localhost")) {
    domain = parts.shift()!;
    const problem = checkDomain(domain);
    if (problem) return problem;
  }
  for (const part of parts) {
    if (part.toLowerCase() !== part) return "the repository name must be lower case";
    if (!COMPONENT.test(part)) {
      return `'${part.slice(0, 60)}' is not a name component (lower-case letters and digits, ` +
        "separated by '.', '_', '__' or dashes)";
    }
  }
  const normalized = domain !== undefined
    ? name
    : `docker.io/${parts.length === 1 ? "library/" : ""}${name}`;
  if (normalized.length > NAME_MAX_LENGTH) {
    return `the name is over ${NAME_MAX_LENGTH} characters`;
  }
  return undefined;
}

/** `localhost/bootc-<manifest digest>`: bootc's tag of an image, its GC root. */
export function bootcTagOf(manifestDigest: string): string {
  return `${BOOTC_TAG_PREFIX}${manifestDigest}`;
}

/** JSON of a value a hook gave, shortened for an error line. */
function shown(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = typeof value;
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Checks the tag list a hook left in `ctx.tags`: an array of at most {@link MAX_PULL_TAGS}
 * strings, each a reference containers/image accepts, none of them a `localhost/bootc-` name
 * other than `bootcTag`; once the `tag` stage has added `bootcTag` (`bootcRequired`), it must
 * still be there. Returns the list (a copy), or throws an `Error` whose message says what is
 * wrong; the runner makes it a hook failure naming the hook.
 */
export function checkHookTags(
  value: unknown,
  options: { bootcTag?: string; bootcRequired: boolean },
): string[] {
  if (!Array.isArray(value)) throw new Error(`ctx.tags is not an array (${shown(value)})`);
  if (value.length > MAX_PULL_TAGS) {
    throw new Error(`ctx.tags has ${value.length} tags, the limit is ${MAX_PULL_TAGS}`);
  }
  const tags: string[] = [];
  for (const [i, tag] of value.entries()) {
    if (typeof tag !== "string") throw new Error(`ctx.tags[${i}] is not a string (${shown(tag)})`);
    if (tag.startsWith(BOOTC_TAG_PREFIX) && tag !== options.bootcTag) {
      throw new Error(
        `ctx.tags[${i}] ${shown(tag)}: '${BOOTC_TAG_PREFIX}' names are bootc's GC roots; ` +
          "cfs adds the image's own",
      );
    }
    const problem = referenceProblem(tag);
    if (problem) throw new Error(`ctx.tags[${i}] ${shown(tag)} is not a valid tag: ${problem}`);
    tags.push(tag);
  }
  if (options.bootcRequired && options.bootcTag && !tags.includes(options.bootcTag)) {
    throw new Error(
      `removed ${options.bootcTag} from ctx.tags: it is the image's GC root, which cfs keeps`,
    );
  }
  return tags;
}

/** The tags a pull writes: bootc's first (its manifest link carries it), then the rest once. */
export function finalTags(tags: readonly string[], bootcTag: string): string[] {
  return [bootcTag, ...new Set(tags.filter((t) => t !== bootcTag))];
}
