/**
 * Which part of a signature policy applies to an image: its transport's name, its candidate
 * scopes (most specific first) and the docker reference `signedIdentity` compares with, as
 * containers/image's `PolicyConfigurationIdentity` and `PolicyConfigurationNamespaces` give them
 * for each transport; and the lookup that picks the requirements (first scope present, then the
 * transport's `""`, then the global `default`).
 *
 * Per transport (facts of containers/image 5.23):
 *
 * - `docker`: `host/repo:tag` or `host/repo@digest`, then `host/repo`, each parent namespace
 *   down to `host[:port]`, then the host's wildcards without the port, dropping one leading label
 *   at a time: `a.b.example.com` gives `*.b.example.com`, `*.example.com`, `*.com`. The image's
 *   identity for `signedIdentity` is the same `host/repo:tag` or `host/repo@digest`.
 * - `oci`, `oci-archive`: the layout directory (archive file) made absolute and free of links
 *   (`..` is resolved lexically first, then links); the tag is not part of the scope. Then each
 *   parent directory, not `/`. No docker identity.
 * - `dir`: the directory, then its parents (not `/`). No docker identity.
 * - `containers-storage`: `[driver@graphroot]name:tag` (or `name@digest`, `name:tag@digest`,
 *   `...@id`), then `[driver@graphroot]` with the name, with each shorter repository path,
 *   then `[driver@graphroot]`, then `[graphroot]`. The identity is the name (with `:latest` when
 *   it had neither tag nor digest).
 * - `docker-archive` and other transports: no scopes (only the transport default applies).
 *
 * A directory that does not exist yet resolves its parent and keeps the last component, as
 * containers/image does.
 *
 * @module
 */
import { isAbsolute, join } from "node:path";
import { type ImageReference, ImageRefError } from "../oci/reference.ts";
import {
  formatNamedReference,
  type NamedReference,
  parseNamedReference,
  tagNameOnly,
} from "./identity.ts";
import { cleanPath } from "./policy.ts";
import type { PolicyRequirement, SignaturePolicy } from "./types.ts";

/** An image's place in a policy: see the module documentation. */
export interface ImageScopes {
  /** The policy transport name (`docker`, `oci`, `oci-archive`, `dir`, `containers-storage`). */
  readonly transport: string;
  /** The candidate scopes, most specific first (without `""`). */
  readonly scopes: string[];
  /** The image's docker reference for `signedIdentity`, when the transport has one. */
  readonly dockerReference?: string;
}

/** Facts {@link imageScopes} would otherwise find itself (tests, callers that know them). */
export interface ScopeOptions {
  /** The directory relative paths are resolved against; default the process's. */
  cwd?: string;
  /** containers-storage: the store's driver and graph root when the reference names neither. */
  storage?: { driver?: string; root?: string };
}

/** The scopes of a docker reference (containers/image's identity, then namespaces). */
export function dockerScopes(ref: NamedReference): string[] {
  const scopes = [formatNamedReference(ref)];
  let name = ref.name;
  for (;;) {
    scopes.push(name);
    const slash = name.lastIndexOf("/");
    if (slash < 0) break;
    name = name.slice(0, slash);
  }
  const colon = name.indexOf(":");
  let host = colon >= 0 ? name.slice(0, colon) : name;
  for (;;) {
    const dot = host.indexOf(".");
    if (dot < 0) break;
    host = host.slice(dot + 1);
    scopes.push(`*.${host}`);
  }
  return scopes;
}

/**
 * `path` made absolute against `cwd`, cleaned, and with its links resolved (the parent's, when
 * `path` itself does not exist): containers/image's "fully explicit" path. Throws
 * {@link ImageRefError} when it cannot be resolved.
 */
export function resolvePolicyPath(path: string, cwd: string = Deno.cwd()): string {
  const fail = (why: string): never => {
    throw new ImageRefError(path, `cannot resolve the path for the signature policy: ${why}`);
  };
  // Go's filepath.Abs cleans lexically; then the links are resolved (EvalSymlinks).
  const explicit = (p: string): string => {
    const absolute = cleanPath(isAbsolute(p) ? p : `${cwd}/${p}`);
    try {
      return Deno.realPathSync(absolute);
    } catch (e) {
      return fail((e as Error).message);
    }
  };
  const raw = isAbsolute(path) ? path : `${cwd}/${path}`;
  try {
    lstatRaw(raw);
    return explicit(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) return fail((e as Error).message);
  }
  const slash = path.lastIndexOf("/");
  const parent = path.slice(0, slash + 1);
  const file = path.slice(slash + 1);
  const resolvedParent = explicit(parent === "" ? "." : parent);
  if (file === "." || file === "..") fail(`${JSON.stringify(file)} of a missing directory`);
  return cleanPath(`${resolvedParent}/${file}`);
}

/**
 * `lstat` of `raw` as the kernel sees it: Deno cleans paths before the call, so `missing/..`
 * would be found; each directory a `..` steps out of must exist (as a directory) too.
 */
function lstatRaw(raw: string): void {
  const parts = raw.split("/");
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] !== "..") continue;
    const prefix = parts.slice(0, i).join("/") || "/";
    if (!Deno.statSync(prefix).isDirectory) throw new Deno.errors.NotFound(prefix);
  }
  Deno.lstatSync(raw);
}

/**
 * The scopes of a resolved path: itself, then its parents but `/`. (containers/image lists the
 * path again among the namespaces for `oci`, not for `dir`; the lookup order is the same.)
 */
function pathScopes(resolved: string): string[] {
  const scopes = [resolved];
  let path = resolved;
  for (;;) {
    const slash = path.lastIndexOf("/");
    if (slash <= 0) break;
    path = path.slice(0, slash);
    scopes.push(path);
  }
  return scopes;
}

function dedupe(list: string[]): string[] {
  return list.filter((s, i) => list.indexOf(s) === i);
}

/** root's default store (containers/storage's built-in default, as lib/oci/cstorage.ts has it). */
const DEFAULT_STORAGE_ROOT = "/var/lib/containers/storage";

/**
 * The graph root and driver /etc/containers/storage.conf names, if any. (lib/oci/cstorage.ts
 * reads the same file; that module is not imported here, to keep the policy modules light and
 * free of cycles with the sources that use them.)
 */
function storageConf(): { root?: string; driver?: string } {
  let text: string;
  try {
    text = Deno.readTextFileSync("/etc/containers/storage.conf");
  } catch {
    return {};
  }
  const value = (key: string) =>
    new RegExp(`^\\s*${key}\\s*=\\s*"([^"]*)"`, "m").exec(text)?.[1] || undefined;
  return { root: value("graphroot"), driver: value("driver") };
}

/**
 * `[DRIVER@GRAPHROOT+RUNROOT:OPTIONS]NAME` split as containers/image's storage transport
 * splits it (each part optional but the brackets' content; the graph root absolute).
 */
function splitStoreSpec(rest: string): { driver?: string; root?: string; name: string } | string {
  if (!rest.startsWith("[")) return { name: rest };
  const close = rest.indexOf("]");
  if (close < 1) return "store spec without a closing ']' or empty";
  let spec = rest.slice(1, close);
  const name = rest.slice(close + 1);
  let driver: string | undefined;
  const at = spec.indexOf("@");
  if (at >= 0) {
    driver = spec.slice(0, at);
    spec = spec.slice(at + 1);
    if (driver === "" || spec === "") return "store spec [DRIVER@GRAPHROOT] with an empty part";
  }
  const colon = spec.indexOf(":");
  if (colon >= 0) spec = spec.slice(0, colon);
  const plus = spec.indexOf("+");
  const runRoot = plus >= 0 ? spec.slice(plus + 1) : "";
  const root = plus >= 0 ? spec.slice(0, plus) : spec;
  if ((root !== "" && !root.startsWith("/")) || (runRoot !== "" && !runRoot.startsWith("/"))) {
    return "the store's paths must be absolute";
  }
  return { driver, root: root || undefined, name };
}

/** The driver of the store at `root`: the one whose image list exists, overlay first. */
function detectDriver(root: string): string {
  for (const driver of ["overlay", "vfs", "btrfs", "zfs", "devmapper"]) {
    try {
      Deno.statSync(join(root, `${driver}-images`));
      return driver;
    } catch { /* next */ }
  }
  const fromEnv = Deno.env.get("STORAGE_DRIVER");
  return fromEnv || "overlay";
}

/** The id of the one image in the store whose id starts with `prefix`, else undefined. */
function imageIdByPrefix(root: string, driver: string, prefix: string): string | undefined {
  try {
    const images = JSON.parse(
      Deno.readTextFileSync(join(root, `${driver}-images`, "images.json")),
    ) as { id?: unknown }[];
    const hits = images.filter((i) => typeof i.id === "string" && i.id.startsWith(prefix));
    return hits.length === 1 ? hits[0].id as string : undefined;
  } catch {
    return undefined;
  }
}

const FULL_ID = /^[a-f0-9]{64}$/;
const DIGEST = /^(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;

/** containers-storage: see the module documentation. */
function storageScopes(rest: string, options: ScopeOptions): ImageScopes {
  const fail = (why: string): never => {
    throw new ImageRefError(`containers-storage:${rest}`, why);
  };
  const spec = splitStoreSpec(rest);
  if (typeof spec === "string") return fail(spec);
  const conf = spec.root === undefined || spec.driver === undefined ? storageConf() : {};
  const root = spec.root ?? options.storage?.root ?? conf.root ?? DEFAULT_STORAGE_ROOT;
  const driver = spec.driver ?? options.storage?.driver ?? conf.driver ?? detectDriver(root);
  let ref = spec.name;
  let id = "";
  const at = ref.lastIndexOf("@");
  if (at >= 0) {
    const possible = ref.slice(at + 1);
    if (possible === "") fail("empty digest or ID after '@'");
    if (!DIGEST.test(possible)) {
      if (FULL_ID.test(possible)) id = possible;
      else if (possible.length >= 3) id = imageIdByPrefix(root, driver, possible) ?? "";
      if (id === "") fail(`${JSON.stringify(possible)} is not an image ID or a digest`);
      ref = ref.slice(0, at);
    }
  }
  if (id === "" && ref.length >= 3 && !/[@:]/.test(ref)) {
    const found = imageIdByPrefix(root, driver, ref);
    if (found !== undefined) {
      id = found;
      ref = "";
    }
  }
  const named = ref === "" ? undefined : tagNameOnly(parseNamedReference(ref));
  const store = `[${driver}@${root}]`;
  const identity = store + (named ? formatNamedReference(named) : "") + (id ? `@${id}` : "");
  const scopes = [identity];
  if (named !== undefined) {
    if (id !== "") scopes.push(store + formatNamedReference(named));
    if (named.tag !== undefined && named.digest !== undefined) {
      scopes.push(`${store}${named.name}:${named.tag}`);
    }
    const parts = named.name.split("/");
    for (let n = parts.length; n > 0; n--) scopes.push(store + parts.slice(0, n).join("/"));
  }
  scopes.push(store, `[${root}]`);
  return {
    transport: "containers-storage",
    scopes: dedupe(scopes),
    ...(named !== undefined ? { dockerReference: formatNamedReference(named) } : {}),
  };
}

/**
 * The transport, scopes and docker identity of `ref` for the signature policy. Paths are
 * resolved on the file system (links followed); containers-storage reads the store's driver
 * and short image IDs from the store when the reference does not say. Throws
 * {@link ImageRefError} for a reference containers/image could not resolve.
 */
export function imageScopes(ref: ImageReference, options: ScopeOptions = {}): ImageScopes {
  switch (ref.transport) {
    case "docker": {
      const named: NamedReference = {
        name: `${ref.domain}/${ref.repository}`,
        ...(ref.digest !== undefined ? { digest: ref.digest } : { tag: ref.tag ?? "latest" }),
      };
      return {
        transport: "docker",
        scopes: dockerScopes(named),
        dockerReference: formatNamedReference(named),
      };
    }
    case "oci":
    case "oci-archive":
      return {
        transport: ref.transport,
        scopes: pathScopes(resolvePolicyPath(ref.path, options.cwd)),
      };
    case "containers-storage":
      return storageScopes(ref.name, options);
    case "other":
      if (ref.name === "dir") {
        const resolved = resolvePolicyPath(ref.reference, options.cwd);
        return { transport: "dir", scopes: pathScopes(resolved) };
      }
      return { transport: ref.name, scopes: [] };
  }
}

/** The candidate scopes of `ref` (see {@link imageScopes}). */
export function policyScopes(ref: ImageReference, options: ScopeOptions = {}): string[] {
  return imageScopes(ref, options).scopes;
}

/** The requirements that apply, and where they came from. */
export interface ScopedRequirements {
  /** The scope whose requirements apply: `""` for the transport default, undefined for `default`. */
  scope?: string;
  /** The requirements (all must accept). */
  requirements: PolicyRequirement[];
}

/**
 * The requirements `policy` sets for an image of `transport` with `scopes`: those of the first
 * scope the transport's section names, else the section's `""`, else the global `default`.
 */
export function requirementsFor(
  policy: SignaturePolicy,
  transport: string,
  scopes: readonly string[],
): ScopedRequirements {
  if (Object.hasOwn(policy.transports, transport)) {
    const section = policy.transports[transport];
    for (const scope of [...scopes, ""]) {
      if (Object.hasOwn(section, scope)) return { scope, requirements: section[scope] };
    }
  }
  return { requirements: policy.default };
}
