/**
 * Registry credentials and authentication challenges, as containers-image reads them.
 *
 * ```ts
 * const found = await findCredentials("127.0.0.1:5000", "cfs/test");
 * // { username, password, source: "/run/user/0/containers/auth.json" } or undefined
 * const [challenge] = parseWwwAuthenticate('Bearer realm="https://auth/token",service="reg"');
 * ```
 *
 * Auth files are searched in containers-image's order: `$REGISTRY_AUTH_FILE` alone when
 * it is set; otherwise `$XDG_RUNTIME_DIR/containers/auth.json`,
 * `~/.config/containers/auth.json` and `~/.docker/config.json`, the first file holding an
 * entry for the registry wins. A file that does not exist is skipped; a file that exists
 * but is not valid JSON, or an entry whose `auth` is not base64 of `user:password`, is an
 * {@link AuthFileError} naming the file (a typo should not silently mean "anonymous").
 *
 * Entries are keyed `HOST[:PORT]` or, more specific, `HOST[:PORT]/NAMESPACE[/...]`; the
 * longest key that is the registry or a path prefix of the repository wins. Docker's
 * legacy keys (`https://HOST/v1/`, `http://HOST`) are normalised to `HOST` (in every
 * file, as containers-image does for `config.json`). `docker.io` also matches Docker's
 * `index.docker.io` keys. Only `auth` (base64 `user:password`) is read: credential
 * helpers (`credHelpers`, `credsStore`) and identity tokens are not supported.
 *
 * This module reads files and parses headers; it makes no network requests (the token
 * request is in registry.ts).
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";
import { join } from "node:path";
import { clip } from "./digest.ts";

/** A user name and password for a registry. */
export interface Credentials {
  /** The user name (before the first `:` of the decoded `auth`). */
  username: string;
  /** The password (everything after that `:`). */
  password: string;
}

/** Credentials and the file they were read from. */
export interface FoundCredentials extends Credentials {
  /** The auth file the entry came from (or "options" when given directly). */
  source: string;
}

/** An auth file that exists but cannot be used; the message names the file. */
export class AuthFileError extends CfsError {
  /** The auth file. */
  readonly path: string;

  /** The message is `auth file PATH: REASON`. */
  constructor(path: string, reason: string, options?: CfsErrorOptions) {
    super(`auth file ${path}: ${reason}`, withCode(options, "auth-file-invalid"));
    this.name = "AuthFileError";
    this.path = path;
  }
}

/** The environment variables the search reads (defaults to `Deno.env`). */
export interface AuthEnvironment {
  /** When set, the only auth file read. */
  REGISTRY_AUTH_FILE?: string;
  /** Holds `containers/auth.json` (podman's default). */
  XDG_RUNTIME_DIR?: string;
  /** Holds `.config/containers/auth.json` and `.docker/config.json`. */
  HOME?: string;
}

function currentEnvironment(): AuthEnvironment {
  return {
    REGISTRY_AUTH_FILE: Deno.env.get("REGISTRY_AUTH_FILE"),
    XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR"),
    HOME: Deno.env.get("HOME"),
  };
}

/**
 * The auth files to search, in order: `[$REGISTRY_AUTH_FILE]` when set (non-empty), else
 * the containers and Docker defaults that the environment allows.
 */
export function authFilePaths(env: AuthEnvironment = currentEnvironment()): string[] {
  if (env.REGISTRY_AUTH_FILE) return [env.REGISTRY_AUTH_FILE];
  const paths: string[] = [];
  if (env.XDG_RUNTIME_DIR) paths.push(join(env.XDG_RUNTIME_DIR, "containers", "auth.json"));
  if (env.HOME) {
    paths.push(join(env.HOME, ".config", "containers", "auth.json"));
    paths.push(join(env.HOME, ".docker", "config.json"));
  }
  return paths;
}

/** Largest auth file read (they hold a few lines per registry). */
const MAX_AUTH_FILE_SIZE = 1024 * 1024;

/**
 * Normalises an auth file key: strips `http://` / `https://` and, for a bare registry,
 * Docker's `/v1/` or `/v2/` suffix; `index.docker.io` and `registry-1.docker.io` become
 * `docker.io`.
 */
export function normalizeAuthKey(key: string): string {
  let k = key.trim();
  const hadScheme = /^https?:\/\//.test(k);
  k = k.replace(/^https?:\/\//, "");
  if (hadScheme) k = k.replace(/\/v[12]\/?$/, "");
  k = k.replace(/\/+$/, "");
  const slash = k.indexOf("/");
  const host = slash < 0 ? k : k.slice(0, slash);
  const rest = slash < 0 ? "" : k.slice(slash);
  const normalHost = host === "index.docker.io" || host === "registry-1.docker.io"
    ? "docker.io"
    : host;
  return normalHost + rest;
}

/**
 * The entry of a parsed auth file for `host` and `repository`: the longest key that is
 * `host` or `host/` + a path prefix of `repository`. Undefined when there is none.
 * Throws {@link AuthFileError} for an entry that is there but malformed.
 */
export function credentialsFromAuthFile(
  json: unknown,
  path: string,
  host: string,
  repository?: string,
): Credentials | undefined {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new AuthFileError(path, "not a JSON object");
  }
  const auths = (json as Record<string, unknown>).auths;
  if (auths === undefined) return undefined;
  if (typeof auths !== "object" || auths === null || Array.isArray(auths)) {
    throw new AuthFileError(path, '"auths" is not an object');
  }
  const wanted = normalizeAuthKey(host);
  const candidates = [wanted];
  if (repository !== undefined) {
    const parts = repository.split("/");
    for (let i = parts.length; i >= 1; i--) {
      candidates.unshift(`${wanted}/${parts.slice(0, i).join("/")}`);
    }
    candidates.sort((a, b) => b.length - a.length);
  }
  const byKey = new Map<string, [string, unknown]>();
  for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
    const normal = normalizeAuthKey(key);
    // An exact (already normal) key wins over a legacy spelling of the same registry.
    if (!byKey.has(normal) || normal === key) byKey.set(normal, [key, value]);
  }
  for (const candidate of candidates) {
    const hit = byKey.get(candidate);
    if (hit === undefined) continue;
    const [key, entry] = hit;
    return decodeEntry(path, key, entry);
  }
  return undefined;
}

function decodeEntry(path: string, key: string, entry: unknown): Credentials | undefined {
  const where = `entry ${JSON.stringify(clip(key, 100))}`;
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    throw new AuthFileError(path, `${where} is not an object`);
  }
  const auth = (entry as Record<string, unknown>).auth;
  if (auth === undefined || auth === "") return undefined;
  if (typeof auth !== "string") throw new AuthFileError(path, `${where}: "auth" is not a string`);
  let decoded: string;
  try {
    const binary = atob(auth.trim());
    decoded = new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(binary, (c) => c.charCodeAt(0)),
    );
  } catch (e) {
    throw new AuthFileError(path, `${where}: "auth" is not base64 of UTF-8 text`, { cause: e });
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) {
    throw new AuthFileError(path, `${where}: "auth" must be base64 of "user:password"`);
  }
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Searches the auth files ({@link authFilePaths}) for credentials for `host` (and,
 * optionally, the more specific `host/repository` keys). Undefined when no file has an
 * entry. Throws {@link AuthFileError} for an existing file that cannot be used.
 */
export async function findCredentials(
  host: string,
  repository?: string,
  options: { paths?: string[]; env?: AuthEnvironment } = {},
): Promise<FoundCredentials | undefined> {
  const paths = options.paths ?? authFilePaths(options.env);
  for (const path of paths) {
    const json = await readAuthFile(path);
    if (json === undefined) continue;
    const found = credentialsFromAuthFile(json, path, host, repository);
    if (found !== undefined) return { ...found, source: path };
  }
  return undefined;
}

async function readAuthFile(path: string): Promise<unknown> {
  let bytes: Uint8Array;
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new AuthFileError(path, "not a regular file");
    if (info.size > MAX_AUTH_FILE_SIZE) {
      throw new AuthFileError(path, `${info.size} bytes, over the ${MAX_AUTH_FILE_SIZE} limit`);
    }
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof AuthFileError) throw e;
    throw new AuthFileError(path, `cannot read: ${(e as Error).message}`, { cause: e });
  }
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new AuthFileError(path, `not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** `Authorization` header value for HTTP basic authentication. */
export function basicAuthorization(credentials: Credentials): string {
  const bytes = new TextEncoder().encode(`${credentials.username}:${credentials.password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

// --- WWW-Authenticate -------------------------------------------------------------------------

/** One challenge of a `WWW-Authenticate` header: scheme (lowercase) and parameters. */
export interface AuthChallenge {
  /** `basic`, `bearer`, ... (lowercase). */
  scheme: string;
  /** Parameter names in lowercase (`realm`, `service`, `scope`, `error`). */
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` header (RFC 7235): one or more challenges, each a scheme
 * followed by `name=value` or `name="quoted value"` parameters, separated by commas.
 * Token68 forms are kept as the parameter `""`. Malformed text ends the parse; what was
 * understood so far is returned.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < n && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(header[i])) i++;
    return header.slice(start, i);
  };
  let current: AuthChallenge | undefined;
  while (i < n) {
    skipSpace();
    if (header[i] === ",") {
      i++;
      continue;
    }
    const start = i;
    const name = token();
    if (name === "") break;
    skipSpace();
    if (header[i] === "=" && current !== undefined) {
      i++;
      skipSpace();
      let value: string;
      if (header[i] === '"') {
        i++;
        value = "";
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i++];
        }
        i++;
      } else {
        const end = header.slice(i).search(/[\s,]/);
        value = end < 0 ? header.slice(i) : header.slice(i, i + end);
        i += value.length;
      }
      current.params[name.toLowerCase()] = value;
      continue;
    }
    if (header[i] === "=" && current === undefined) break;
    // A new scheme (a token not followed by "=").
    i = start + name.length;
    current = { scheme: name.toLowerCase(), params: {} };
    challenges.push(current);
    skipSpace();
    // token68 (e.g. "Negotiate abc=="): a value without a name.
    const rest = /^[A-Za-z0-9._~+/-]+=*(?=\s*(,|$))/.exec(header.slice(i));
    if (rest && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+\s*=[^=]/.test(header.slice(i))) {
      current.params[""] = rest[0];
      i += rest[0].length;
    }
  }
  return challenges;
}
