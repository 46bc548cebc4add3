/**
 * containers-registries.d(5): where an image's signatures live (`lookaside` URLs) and whether
 * its registry's sigstore attachments are read, per registry, namespace, repository or image.
 *
 * ```yaml
 * default-docker:
 *   lookaside: file:///var/lib/containers/sigstore
 * docker:
 *   registry.example.com/team:
 *     lookaside: https://sigs.example.com/team
 *     use-sigstore-attachments: true
 * ```
 *
 * Semantics are containers/image 5.23's (`docker/registries_d.go`):
 * - the directory: `--registries.d DIR`, else `$HOME/.config/containers/registries.d` when it
 *   exists, else `/etc/containers/registries.d`; a directory that does not exist is an empty
 *   configuration. Every file whose name ends in `.yaml` is read (not `.yml`), in name order;
 * - files merge: `default-docker` may be given by one file only, and each `docker` scope by one
 *   file only (even when the two would agree); otherwise an error naming both files;
 * - a section's keys: `lookaside` (for reading; `sigstore` is its older name, used when
 *   `lookaside` is empty), `lookaside-staging` and `sigstore-staging` (for writing: read here,
 *   never used by a pull), `use-sigstore-attachments`. Keys match case-insensitively, as Go's
 *   JSON decoding does (an exact match wins); unknown keys are ignored;
 * - for an image, the candidate scopes are tried most specific first (the image with its tag
 *   or digest, its repository, each parent namespace, the registry, then `*.domain` wildcards
 *   of the registry's host name), then `default-docker`: the first *that sets the value* wins,
 *   so a scope with no `lookaside` passes the choice on to its parents;
 * - nothing configured: the built-in lookaside `file:///var/lib/containers/sigstore` for root,
 *   `file://$HOME/.local/share/containers/sigstore` for other users; no sigstore attachments.
 *
 * YAML is read as YAML 1.1 (Go's yaml.v2: `yes`/`on` are booleans). Stricter than Go (one clear
 * error instead): a lookaside URL given as a number or boolean (Go would turn it into a
 * string), files over {@link MAX_REGISTRIES_D_FILE_SIZE}, more than 100 alias expansions, and
 * more than one YAML document in a file.
 *
 * @module
 */
import { join } from "node:path";
import type * as Yaml from "yaml";
import { CfsError, type CfsErrorOptions, clipMiddle, withCode } from "../errors.ts";
import type { DockerReference } from "../oci/reference.ts";

/** A registries.d directory or file that cannot be used: one line naming the file. */
export class RegistriesDError extends CfsError {
  /** The file (or directory) at fault. */
  readonly path: string;

  /** `message` is prefixed with the path. */
  constructor(path: string, message: string, options?: CfsErrorOptions) {
    super(
      clipMiddle(`registries.d ${path}: ${message.replace(/\s+/g, " ").trim()}`),
      withCode(options, "registries-d-invalid"),
    );
    this.name = "RegistriesDError";
    this.path = path;
  }
}

/** Largest registries.d file read (a configuration of a few lines; 1 MiB is generous). */
export const MAX_REGISTRIES_D_FILE_SIZE = 1024 * 1024;

/** The system directory containers/image reads when the user has none. */
export const SYSTEM_REGISTRIES_D = "/etc/containers/registries.d";

/** One configuration section (a `docker` scope's value, or `default-docker`). */
export interface RegistriesDSection {
  /** `lookaside`: the URL signatures are read from ("" when not set). */
  lookaside: string;
  /** `lookaside-staging` ("" when not set); for writers, unused by pulls. */
  lookasideStaging: string;
  /** `sigstore`: the older name of `lookaside` ("" when not set). */
  sigstore: string;
  /** `sigstore-staging`: the older name of `lookaside-staging` ("" when not set). */
  sigstoreStaging: string;
  /** `use-sigstore-attachments`; undefined when not set (then a parent scope decides). */
  useSigstoreAttachments?: boolean;
  /** The file that defined the section. */
  source: string;
}

/** A registries.d directory, its files merged. */
export interface RegistriesD {
  /** The directory read. */
  dir: string;
  /** `default-docker`, when a file has one. */
  defaultDocker?: RegistriesDSection;
  /** `docker` scopes → sections. */
  docker: ReadonlyMap<string, RegistriesDSection>;
}

/**
 * The directory containers/image would read: `dir` when given, else the user's
 * `$HOME/.config/containers/registries.d` when it exists, else {@link SYSTEM_REGISTRIES_D}.
 */
export async function registriesDPath(dir?: string): Promise<string> {
  if (dir !== undefined && dir !== "") return dir;
  const home = Deno.env.get("HOME");
  if (home) {
    const user = join(home, ".config/containers/registries.d");
    try {
      await Deno.stat(user);
      return user;
    } catch {
      // not there: the system directory
    }
  }
  return SYSTEM_REGISTRIES_D;
}

/**
 * The YAML parser, imported on first use: loading it costs ~80 ms (measured), which commands
 * that read no registries.d file need not pay. The literal specifier keeps it in the binary.
 */
let yaml: typeof Yaml | undefined;

/** Imports the YAML parser that {@link parseRegistriesDFile} needs (once). */
export async function loadYamlParser(): Promise<void> {
  yaml ??= await import("yaml");
}

/**
 * Reads and merges every `*.yaml` of a registries.d directory (default: {@link registriesDPath}).
 * Throws {@link RegistriesDError} naming the file for an unreadable or malformed file and for a
 * scope defined twice.
 */
export async function loadRegistriesD(dir?: string): Promise<RegistriesD> {
  const path = await registriesDPath(dir);
  let names: string[];
  try {
    names = [];
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { dir: path, docker: new Map() };
    throw new RegistriesDError(path, `cannot read the directory: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const files: { path: string; text: string }[] = [];
  for (const name of names.filter((n) => n.endsWith(".yaml")).sort()) {
    const file = join(path, name);
    files.push({ path: file, text: await readConfigFile(file) });
  }
  if (files.length > 0) await loadYamlParser();
  return mergeRegistriesD(path, files);
}

/** A file's text, size-capped and UTF-8. */
async function readConfigFile(file: string): Promise<string> {
  let handle: Deno.FsFile | undefined;
  try {
    handle = await Deno.open(file);
    const info = await handle.stat();
    if (!info.isFile) throw new RegistriesDError(file, "not a regular file");
    if (info.size > MAX_REGISTRIES_D_FILE_SIZE) {
      throw new RegistriesDError(
        file,
        `${info.size} bytes, over the ${MAX_REGISTRIES_D_FILE_SIZE}-byte limit`,
      );
    }
    const buffer = new Uint8Array(MAX_REGISTRIES_D_FILE_SIZE + 1);
    let filled = 0;
    while (filled < buffer.length) {
      const n = await handle.read(buffer.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    if (filled > MAX_REGISTRIES_D_FILE_SIZE) {
      throw new RegistriesDError(file, `over the ${MAX_REGISTRIES_D_FILE_SIZE}-byte limit`);
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(0, filled));
    } catch {
      throw new RegistriesDError(file, "not UTF-8 text");
    }
  } catch (e) {
    if (e instanceof RegistriesDError) throw e;
    throw new RegistriesDError(file, `cannot read: ${(e as Error).message}`, { cause: e });
  } finally {
    handle?.close();
  }
}

/**
 * Merges parsed files (pure: `files` in the order to merge, each with its path and text).
 * Throws {@link RegistriesDError} as {@link loadRegistriesD}.
 */
export function mergeRegistriesD(
  dir: string,
  files: readonly { path: string; text: string }[],
): RegistriesD {
  let defaultDocker: RegistriesDSection | undefined;
  const docker = new Map<string, RegistriesDSection>();
  for (const file of files) {
    const parsed = parseRegistriesDFile(file.path, file.text);
    if (parsed.defaultDocker !== undefined) {
      if (defaultDocker !== undefined) {
        throw new RegistriesDError(
          file.path,
          `"default-docker" is defined both in ${defaultDocker.source} and here`,
        );
      }
      defaultDocker = parsed.defaultDocker;
    }
    for (const [scope, section] of parsed.docker) {
      const earlier = docker.get(scope);
      if (earlier !== undefined) {
        throw new RegistriesDError(
          file.path,
          `"docker" scope ${JSON.stringify(scope)} is defined both in ${earlier.source} and here`,
        );
      }
      docker.set(scope, section);
    }
  }
  return { dir, defaultDocker, docker };
}

/** Fields of a file's top level and of a section: YAML key → what it sets. */
const TOP_KEYS = ["default-docker", "docker"] as const;
const SECTION_KEYS = [
  "lookaside",
  "lookaside-staging",
  "sigstore",
  "sigstore-staging",
  "use-sigstore-attachments",
] as const;

/**
 * The mapping's entries whose keys name one of `fields`, matched as Go's JSON decoding does:
 * an exact match, else a case-insensitive one; a later key for the same field wins. Other keys
 * are ignored.
 */
function fieldsOf<K extends string>(
  mapping: Record<string, unknown>,
  fields: readonly K[],
): Map<K, unknown> {
  const out = new Map<K, unknown>();
  for (const [key, value] of Object.entries(mapping)) {
    const field = fields.find((f) => f === key) ??
      fields.find((f) => f.toLowerCase() === key.toLowerCase());
    if (field !== undefined) out.set(field, value);
  }
  return out;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date) && !(value instanceof Uint8Array);
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a sequence";
  if (isMapping(value)) return "a mapping";
  return `a ${typeof value}`;
}

/**
 * Parses one registries.d file (pure; {@link loadYamlParser} must have run). Throws
 * {@link RegistriesDError} naming `path` for YAML that does not parse and for values of the
 * wrong type.
 */
export function parseRegistriesDFile(
  path: string,
  text: string,
): { defaultDocker?: RegistriesDSection; docker: Map<string, RegistriesDSection> } {
  if (yaml === undefined) throw new Error("internal: parseRegistriesDFile before loadYamlParser");
  let root: unknown;
  try {
    const docs = yaml.parseAllDocuments(text, {
      version: "1.1",
      uniqueKeys: true,
      prettyErrors: false,
    });
    if (!Array.isArray(docs)) throw new Error("not a YAML stream");
    if (docs.length > 1) throw new Error("more than one YAML document");
    const doc = docs[0];
    if (doc === undefined) {
      root = null;
    } else {
      if (doc.errors.length > 0) throw doc.errors[0];
      root = doc.toJS({ maxAliasCount: 100 });
    }
  } catch (e) {
    throw new RegistriesDError(path, `not valid YAML: ${(e as Error).message}`, { cause: e });
  }
  const docker = new Map<string, RegistriesDSection>();
  if (root === null || root === undefined) return { docker };
  if (!isMapping(root)) {
    throw new RegistriesDError(path, `the top level is ${kindOf(root)}, not a mapping`);
  }
  const top = fieldsOf(root, TOP_KEYS);
  let defaultDocker: RegistriesDSection | undefined;
  const dd = top.get("default-docker");
  if (dd !== undefined && dd !== null) defaultDocker = section(path, dd, `"default-docker"`);
  const scopes = top.get("docker");
  if (scopes !== undefined && scopes !== null) {
    if (!isMapping(scopes)) {
      throw new RegistriesDError(path, `"docker" is ${kindOf(scopes)}, not a mapping`);
    }
    for (const [scope, value] of Object.entries(scopes)) {
      docker.set(scope, section(path, value, `"docker" scope ${JSON.stringify(scope)}`));
    }
  }
  return { defaultDocker, docker };
}

/** One section's values; `null` is an empty section, as in Go. */
function section(path: string, value: unknown, where: string): RegistriesDSection {
  const out: RegistriesDSection = {
    lookaside: "",
    lookasideStaging: "",
    sigstore: "",
    sigstoreStaging: "",
    source: path,
  };
  if (value === null) return out;
  if (!isMapping(value)) {
    throw new RegistriesDError(path, `${where} is ${kindOf(value)}, not a mapping`);
  }
  const str = (key: string, v: unknown): string => {
    if (v === null) return "";
    if (typeof v !== "string") {
      throw new RegistriesDError(path, `${where}: "${key}" is ${kindOf(v)}, not a string`);
    }
    return v;
  };
  for (const [key, v] of fieldsOf(value, SECTION_KEYS)) {
    switch (key) {
      case "lookaside":
        out.lookaside = str(key, v);
        break;
      case "lookaside-staging":
        out.lookasideStaging = str(key, v);
        break;
      case "sigstore":
        out.sigstore = str(key, v);
        break;
      case "sigstore-staging":
        out.sigstoreStaging = str(key, v);
        break;
      case "use-sigstore-attachments":
        if (v === null) {
          out.useSigstoreAttachments = undefined;
        } else if (typeof v === "boolean") {
          out.useSigstoreAttachments = v;
        } else {
          throw new RegistriesDError(
            path,
            `${where}: "use-sigstore-attachments" is ${kindOf(v)}, not a boolean`,
          );
        }
        break;
    }
  }
  return out;
}

/**
 * An image's candidate registries.d scopes, most specific first: the image
 * (`host/repo:tag` or `host/repo@digest`), the repository, each parent namespace, the
 * registry (`host[:port]`), then `*.domain` wildcards of the host name without its port, as
 * containers/image's docker policy configuration names them (scope.ts gives the policy the
 * same list).
 */
export function dockerScopes(ref: DockerReference): string[] {
  const name = `${ref.domain}/${ref.repository}`;
  const scopes = [
    ref.digest !== undefined ? `${name}@${ref.digest}` : `${name}:${ref.tag ?? "latest"}`,
  ];
  let prefix = name;
  while (true) {
    scopes.push(prefix);
    const slash = prefix.lastIndexOf("/");
    if (slash === -1) break;
    prefix = prefix.slice(0, slash);
  }
  const colon = prefix.indexOf(":");
  let host = colon === -1 ? prefix : prefix.slice(0, colon);
  while (true) {
    const dot = host.indexOf(".");
    if (dot === -1) break;
    host = host.slice(dot + 1);
    scopes.push(`*.${host}`);
  }
  return scopes;
}

/** The sections that apply to `ref`, most specific first, `default-docker` last. */
function sectionsFor(config: RegistriesD, ref: DockerReference): RegistriesDSection[] {
  const out: RegistriesDSection[] = [];
  for (const scope of dockerScopes(ref)) {
    const section = config.docker.get(scope);
    if (section !== undefined) out.push(section);
  }
  if (config.defaultDocker !== undefined) out.push(config.defaultDocker);
  return out;
}

/**
 * The lookaside base URL for reading `ref`'s signatures: the first applicable section's
 * `lookaside` (or its older name `sigstore`), else the built-in default (module
 * documentation). The repository path and digest are added by the reader (sources.ts).
 */
export function lookasideFor(config: RegistriesD, ref: DockerReference): string {
  for (const section of sectionsFor(config, ref)) {
    if (section.lookaside !== "") return section.lookaside;
    if (section.sigstore !== "") return section.sigstore;
  }
  return builtinLookaside();
}

/** containers/image's lookaside when none is configured (root, or another user's). */
export function builtinLookaside(): string {
  if (Deno.uid() === 0) return "file:///var/lib/containers/sigstore";
  const home = Deno.env.get("HOME") ?? "";
  return new URL(`file://${join(home, ".local/share/containers/sigstore")}`).href;
}

/** Whether `ref`'s sigstore attachments are read: the first section that says, else false. */
export function useSigstoreAttachments(config: RegistriesD, ref: DockerReference): boolean {
  for (const section of sectionsFor(config, ref)) {
    if (section.useSigstoreAttachments !== undefined) return section.useSigstoreAttachments;
  }
  return false;
}
