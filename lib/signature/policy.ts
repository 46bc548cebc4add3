/**
 * containers-policy.json(5): reading and checking a signature policy file as containers/image
 * 5.23 (skopeo 1.9) does, so that a file skopeo refuses is refused here, and one it takes means
 * the same.
 *
 * The file is parsed strictly, as containers/image insists for a security policy: a duplicated
 * or unknown key, a value of the wrong type, a missing `default`, an empty list of requirements,
 * or a scope its transport does not accept make the whole file invalid. Facts that follow from
 * containers/image's Go JSON decoding and are kept here:
 *
 * - `null` where a string is expected leaves the string empty (so `"keyPath": null` in `signedBy`
 *   is "no key source"); `null` where an object or a list is expected is an error, except
 *   `keyPaths`/`keyData`, where it means "absent value" (and so fails the one-key-source rule for
 *   `signedBy`, while `sigstoreSigned` takes it and then fails at evaluation);
 * - `keyData` is standard base64 with padding (line breaks ignored); `"keyData": ""` is an empty
 *   key ring, valid here and rejecting everything at evaluation;
 * - key files are named, not read: containers/image reads them when it evaluates, relative paths
 *   against the working directory; so does cfs (evaluate.ts);
 * - scopes: `docker` and unknown transports accept any scope; `dir`, `oci`, `oci-archive`, `sif`
 *   a clean absolute path other than `/`; `containers-storage` a `[driver@root]` or `[root]`
 *   store spec, optionally followed by a name, `name@digest` or `@id`; `docker-daemon` anything
 *   but a digest; `docker-archive` and `tarball` only `""`. (skopeo 1.9.3 as Debian builds it has
 *   no `atomic` transport and a stub `ostree`: any scope, as for unknown transports.)
 *
 * Where cfs parts from skopeo 1.9.3, deliberately:
 * - the file must be UTF-8 of at most {@link POLICY_SIZE_MAX} bytes, nested at most
 *   {@link POLICY_DEPTH_MAX} levels (no valid policy comes near either);
 * - `sigstoreSigned` also takes the Fulcio and Rekor fields of later containers/image releases
 *   (`fulcio`, `rekorPublicKeyPath`, `rekorPublicKeyData`), checked for shape; such a requirement
 *   is marked `unsupported` and rejects every image at evaluation (cfs verifies offline, with
 *   public keys only), where skopeo 1.9.3 refuses the whole file.
 *
 * Every error is a {@link PolicyError}: one line naming the file and the JSON path of the value
 * at fault, e.g. `$.transports.docker["example.com/app"][0].keyType`.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";
import type { PolicyRequirement, SignaturePolicy, SignedIdentity } from "./types.ts";
import {
  isNameOnly,
  namedReferenceProblem,
  parseNamedReference,
  remapPrefixProblem,
} from "./identity.ts";

/** Largest policy file read (bytes): real policies are a few KiB, key rings inline included. */
export const POLICY_SIZE_MAX = 4 * 1024 * 1024;
/** Deepest JSON nesting accepted: a valid policy never exceeds 6. */
export const POLICY_DEPTH_MAX = 32;
/** The per-user policy, under `$HOME`. */
export const USER_POLICY_PATH = ".config/containers/policy.json";
/** The system policy. */
export const SYSTEM_POLICY_PATH = "/etc/containers/policy.json";

/** A policy file that cannot be read or is malformed (`policy-invalid`, or `policy-not-found`). */
export class PolicyError extends CfsError {
  /** Creates the error; the message names the file (and the key at fault). */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, withCode(options, "policy-invalid"));
    this.name = "PolicyError";
  }
}

// --- strict JSON ---------------------------------------------------------------------------------

/** A parsed JSON value that remembers what a policy needs: key order and duplicates refused. */
type Json =
  | { kind: "object"; entries: [string, Json][] }
  | { kind: "array"; items: Json[] }
  | { kind: "string"; value: string }
  | { kind: "number" }
  | { kind: "boolean" }
  | { kind: "null" };

/** Thrown inside the parser and the checks; becomes a {@link PolicyError} naming the file. */
class Invalid extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`${path}: ${reason}`);
  }
}

/** `path` extended by an object key: `.key` for plain names, `["..."]` otherwise. */
function keyPath(path: string, key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? `${path}.${key}` : `${path}[${short(key)}]`;
}

/** `s` as a JSON string, shortened for a message. */
function short(s: string, max = 100): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}...` : s);
}

/**
 * A JSON parser that refuses duplicate keys and nesting beyond {@link POLICY_DEPTH_MAX}, with
 * positions in its messages. The grammar is RFC 8259's; lone surrogate escapes become U+FFFD,
 * as Go's decoder makes them.
 */
class StrictJson {
  private i = 0;
  constructor(private readonly text: string) {}

  parseDocument(): Json {
    this.space();
    const value = this.value("$", 0);
    this.space();
    if (this.i < this.text.length) this.fail("$", "unexpected data after the JSON value");
    return value;
  }

  private fail(path: string, reason: string): never {
    const line = this.text.slice(0, this.i).split("\n").length;
    throw new Invalid(path, `${reason} (line ${line})`);
  }

  private space(): void {
    while (this.i < this.text.length && " \t\n\r".includes(this.text[this.i])) this.i++;
  }

  private value(path: string, depth: number): Json {
    if (depth > POLICY_DEPTH_MAX) this.fail(path, `nested deeper than ${POLICY_DEPTH_MAX} levels`);
    const c = this.text[this.i];
    if (c === "{") return this.object(path, depth);
    if (c === "[") return this.array(path, depth);
    if (c === '"') return { kind: "string", value: this.string(path) };
    if (c === "-" || (c >= "0" && c <= "9")) return this.number(path);
    for (const [word, kind] of [["true", "boolean"], ["false", "boolean"], ["null", "null"]]) {
      if (this.text.startsWith(word, this.i)) {
        this.i += word.length;
        return { kind } as Json;
      }
    }
    return this.fail(path, c === undefined ? "unexpected end of the file" : "invalid JSON");
  }

  private object(path: string, depth: number): Json {
    this.i++;
    const entries: [string, Json][] = [];
    const seen = new Set<string>();
    this.space();
    if (this.text[this.i] === "}") {
      this.i++;
      return { kind: "object", entries };
    }
    for (;;) {
      this.space();
      if (this.text[this.i] !== '"') this.fail(path, "expected a key (a string)");
      const key = this.string(path);
      if (seen.has(key)) this.fail(path, `duplicate key ${short(key)}`);
      seen.add(key);
      this.space();
      if (this.text[this.i] !== ":") this.fail(keyPath(path, key), "expected ':'");
      this.i++;
      this.space();
      entries.push([key, this.value(keyPath(path, key), depth + 1)]);
      this.space();
      const c = this.text[this.i++];
      if (c === "}") return { kind: "object", entries };
      if (c !== ",") this.fail(path, "expected ',' or '}'");
    }
  }

  private array(path: string, depth: number): Json {
    this.i++;
    const items: Json[] = [];
    this.space();
    if (this.text[this.i] === "]") {
      this.i++;
      return { kind: "array", items };
    }
    for (;;) {
      this.space();
      items.push(this.value(`${path}[${items.length}]`, depth + 1));
      this.space();
      const c = this.text[this.i++];
      if (c === "]") return { kind: "array", items };
      if (c !== ",") this.fail(path, "expected ',' or ']'");
    }
  }

  private number(path: string): Json {
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?/.exec(
      this.text.slice(this.i, this.i + 400),
    );
    if (m === null) this.fail(path, "invalid number");
    this.i += m![0].length;
    return { kind: "number" };
  }

  private string(path: string): string {
    this.i++;
    let out = "";
    for (;;) {
      const start = this.i;
      while (this.i < this.text.length) {
        const code = this.text.charCodeAt(this.i);
        if (code === 0x22 || code === 0x5c || code < 0x20) break;
        this.i++;
      }
      out += this.text.slice(start, this.i);
      if (this.i >= this.text.length) this.fail(path, "unterminated string");
      const c = this.text[this.i];
      if (c === '"') {
        this.i++;
        return out.toWellFormed();
      }
      if (c !== "\\") this.fail(path, "control character in a string");
      const e = this.text[this.i + 1];
      const simple: Record<string, string> = {
        '"': '"',
        "\\": "\\",
        "/": "/",
        b: "\b",
        f: "\f",
        n: "\n",
        r: "\r",
        t: "\t",
      };
      if (e !== undefined && e in simple) {
        out += simple[e];
        this.i += 2;
      } else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(this.text.slice(this.i + 2, this.i + 6))) {
        out += String.fromCharCode(parseInt(this.text.slice(this.i + 2, this.i + 6), 16));
        this.i += 6;
      } else {
        this.fail(path, "invalid escape in a string");
      }
    }
  }
}

// --- the policy's shapes ---------------------------------------------------------------------

const KIND_NAMES: Record<Json["kind"], string> = {
  object: "an object",
  array: "a list",
  string: "a string",
  number: "a number",
  boolean: "a boolean",
  null: "null",
};

function expectObject(v: Json, path: string): [string, Json][] {
  if (v.kind !== "object") throw new Invalid(path, `must be an object, not ${KIND_NAMES[v.kind]}`);
  return v.entries;
}

function expectArray(v: Json, path: string): Json[] {
  if (v.kind !== "array") throw new Invalid(path, `must be a list, not ${KIND_NAMES[v.kind]}`);
  return v.items;
}

/** A string field; `null` is the empty string, as Go's decoder leaves it. */
function expectString(v: Json, path: string): string {
  if (v.kind === "null") return "";
  if (v.kind !== "string") throw new Invalid(path, `must be a string, not ${KIND_NAMES[v.kind]}`);
  return v.value;
}

/**
 * An object's fields against the ones allowed; `required` must all be there. Unknown keys are
 * refused (the policy's strictness: a typo must not silently weaken it).
 */
function fields(
  v: Json,
  path: string,
  allowed: readonly string[],
  required: readonly string[] = [],
): Map<string, Json> {
  const map = new Map<string, Json>();
  for (const [key, value] of expectObject(v, path)) {
    if (!allowed.includes(key)) {
      throw new Invalid(keyPath(path, key), `unknown key (allowed here: ${allowed.join(", ")})`);
    }
    map.set(key, value);
  }
  for (const key of required) {
    if (!map.has(key)) throw new Invalid(keyPath(path, key), "missing");
  }
  return map;
}

/** Go's `filepath.Clean` for `/`-separated paths. */
export function cleanPath(path: string): string {
  if (path === "") return ".";
  const rooted = path.startsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(part);
  }
  const joined = out.join("/");
  if (rooted) return `/${joined}`;
  return joined === "" ? "." : joined;
}

/** Why `scope` is not a clean absolute path other than `/`, or undefined. */
function pathScopeProblem(scope: string): string | undefined {
  if (!scope.startsWith("/")) return "must be an absolute path";
  if (scope === "/") return 'the scope "/" is not allowed; use the transport default ""';
  const cleaned = cleanPath(scope);
  if (cleaned !== scope) return `not a clean path (write ${short(cleaned)})`;
  return undefined;
}

/** go-digest's `Parse` as a check: undefined when `s` is a valid digest. */
function goDigestProblem(s: string): string | undefined {
  const m = /^(sha256|sha384|sha512):([a-f0-9]+)$/.exec(s);
  const lengths: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
  if (m === null || m[2].length !== lengths[m[1]]) return "not a valid digest";
  return undefined;
}

/** Why containers-storage's transport refuses `scope`, or undefined. */
function storageScopeProblem(scope: string): string | undefined {
  if (!scope.startsWith("[")) {
    return "must start with a store spec: [DRIVER@GRAPHROOT] or [GRAPHROOT]";
  }
  const close = scope.indexOf("]");
  if (close < 1) return "unclosed or empty store spec";
  const spec = scope.slice(1, close);
  const rest = scope.slice(close + 1);
  const at = spec.indexOf("@");
  if (at < 0) {
    if (!spec.startsWith("/")) return "the store's graph root must be an absolute path";
  } else {
    const driver = spec.slice(0, at);
    const root = spec.slice(at + 1);
    if (driver === "" || root === "") return "store spec [DRIVER@GRAPHROOT] with an empty part";
    if (!root.startsWith("/")) return "the store's graph root must be an absolute path";
  }
  if (rest === "") return undefined;
  const parts = rest.split("@");
  if (parts.length === 2) {
    const idOk = goDigestProblem(`sha256:${parts[1]}`) === undefined;
    if (!idOk && goDigestProblem(parts[1]) !== undefined) {
      return `${short(parts[1])} is neither a digest nor an image ID`;
    }
  } else if (parts.length >= 3) {
    // containers/image splits at most three ways: NAME@DIGEST@ID, the ID keeping any further '@'.
    const id = parts.slice(2).join("@");
    if (goDigestProblem(parts[1]) !== undefined) return `${short(parts[1])} is not a digest`;
    if (goDigestProblem(`sha256:${id}`) !== undefined) return `${short(id)} is not an image ID`;
  }
  return undefined;
}

/** Why `transport` (as skopeo 1.9.3 is built) refuses `scope` (never `""`), or undefined. */
export function scopeProblem(transport: string, scope: string): string | undefined {
  switch (transport) {
    case "dir":
    case "oci":
    case "oci-archive":
    case "sif":
      return pathScopeProblem(scope);
    case "containers-storage":
      return storageScopeProblem(scope);
    case "docker-daemon":
      return goDigestProblem(scope) === undefined
        ? "a digest cannot be a docker-daemon scope"
        : undefined;
    case "docker-archive":
    case "tarball":
      return `the ${transport} transport has no scopes but the default ""`;
    default:
      // docker (containers/image 5.23 checks nothing there) and transports skopeo 1.9.3 (as
      // Debian builds it) does not know: `atomic` (not built in), `ostree` (a stub), others.
      return undefined;
  }
}

/** Standard base64 with padding; `\r` and `\n` are skipped, as Go's decoder skips them. */
function decodeBase64(text: string, path: string): Uint8Array {
  const s = text.replace(/[\r\n]/g, "");
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
    throw new Invalid(path, "not valid base64 (standard alphabet, with padding)");
  }
  const binary = atob(s);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The `type` of a requirement or identity object (a missing or null type is `""`). */
function typeOf(v: Json, path: string): string {
  const entries = expectObject(v, path);
  const t = entries.find(([k]) => k === "type");
  return t === undefined ? "" : expectString(t[1], keyPath(path, "type"));
}

function parseIdentity(v: Json, path: string): SignedIdentity {
  const type = typeOf(v, path);
  switch (type) {
    case "matchExact":
    case "matchRepoDigestOrExact":
    case "matchRepository":
      fields(v, path, ["type"], ["type"]);
      return { type };
    case "exactReference": {
      const f = fields(v, path, ["type", "dockerReference"], ["type", "dockerReference"]);
      const at = keyPath(path, "dockerReference");
      const ref = expectString(f.get("dockerReference")!, at);
      const problem = namedReferenceProblem(ref);
      if (problem !== undefined) throw new Invalid(at, `${short(ref)}: ${problem}`);
      if (isNameOnly(parseNamedReference(ref))) {
        throw new Invalid(at, `${short(ref)} has neither a tag nor a digest`);
      }
      return { type, dockerReference: ref };
    }
    case "exactRepository": {
      const f = fields(v, path, ["type", "dockerRepository"], ["type", "dockerRepository"]);
      const at = keyPath(path, "dockerRepository");
      const repo = expectString(f.get("dockerRepository")!, at);
      const problem = namedReferenceProblem(repo);
      if (problem !== undefined) throw new Invalid(at, `${short(repo)}: ${problem}`);
      return { type, dockerRepository: repo };
    }
    case "remapIdentity": {
      const names = ["type", "prefix", "signedPrefix"];
      const f = fields(v, path, names, names);
      const prefix = expectString(f.get("prefix")!, keyPath(path, "prefix"));
      const signedPrefix = expectString(f.get("signedPrefix")!, keyPath(path, "signedPrefix"));
      for (const [key, value] of [["prefix", prefix], ["signedPrefix", signedPrefix]]) {
        const problem = remapPrefixProblem(value);
        if (problem !== undefined) throw new Invalid(keyPath(path, key), problem);
      }
      return { type, prefix, signedPrefix };
    }
    default:
      throw new Invalid(
        keyPath(path, "type"),
        `unknown signedIdentity type ${short(type)} (matchExact, matchRepoDigestOrExact, ` +
          "matchRepository, exactReference, exactRepository, remapIdentity)",
      );
  }
}

const KEY_TYPES = ["GPGKeys", "X509Certificates", "signedByGPGKeys", "signedByX509CAs"] as const;

function parseSignedBy(v: Json, path: string): PolicyRequirement {
  const f = fields(v, path, [
    "type",
    "keyType",
    "keyPath",
    "keyPaths",
    "keyData",
    "signedIdentity",
  ]);
  const keyTypeAt = keyPath(path, "keyType");
  const keyTypeValue = f.get("keyType");
  if (keyTypeValue === undefined) throw new Invalid(keyTypeAt, `missing (GPGKeys)`);
  const keyType = expectString(keyTypeValue, keyTypeAt);
  if (!(KEY_TYPES as readonly string[]).includes(keyType)) {
    throw new Invalid(keyTypeAt, `unknown key type ${short(keyType)} (GPGKeys)`);
  }
  const signedIdentity = f.has("signedIdentity")
    ? parseIdentity(f.get("signedIdentity")!, keyPath(path, "signedIdentity"))
    : { type: "matchRepoDigestOrExact" as const };
  const given = ["keyPath", "keyPaths", "keyData"].filter((k) => f.has(k));
  if (given.length !== 1) {
    throw new Invalid(
      path,
      given.length === 0
        ? "exactly one of keyPath, keyPaths, keyData is needed; none is given"
        : `exactly one of keyPath, keyPaths, keyData is needed; ${given.join(" and ")} are given`,
    );
  }
  const base = { type: "signedBy" as const, keyType: keyType as typeof KEY_TYPES[number] };
  const noKey = (key: string) => new Invalid(keyPath(path, key), "empty: no key source");
  switch (given[0]) {
    case "keyPath": {
      const p = expectString(f.get("keyPath")!, keyPath(path, "keyPath"));
      if (p === "") throw noKey("keyPath");
      return { ...base, keyPath: p, signedIdentity };
    }
    case "keyPaths": {
      const at = keyPath(path, "keyPaths");
      const value = f.get("keyPaths")!;
      if (value.kind === "null") throw noKey("keyPaths");
      const paths = expectArray(value, at).map((item, i) => expectString(item, `${at}[${i}]`));
      return { ...base, keyPaths: paths, signedIdentity };
    }
    default: {
      const at = keyPath(path, "keyData");
      const value = f.get("keyData")!;
      if (value.kind === "null") throw noKey("keyData");
      if (value.kind !== "string") {
        throw new Invalid(at, `must be a base64 string, not ${KIND_NAMES[value.kind]}`);
      }
      return { ...base, keyData: decodeBase64(value.value, at), signedIdentity };
    }
  }
}

/** A base64 field that may be null (Go: an absent value). */
function optionalBase64(v: Json, path: string): Uint8Array | undefined {
  if (v.kind === "null") return undefined;
  if (v.kind !== "string") {
    throw new Invalid(path, `must be a base64 string, not ${KIND_NAMES[v.kind]}`);
  }
  return decodeBase64(v.value, path);
}

/** The shape of `fulcio` (later containers/image): CA (path or data), issuer and e-mail. */
function checkFulcio(v: Json, path: string): void {
  const f = fields(v, path, ["caPath", "caData", "oidcIssuer", "subjectEmail"]);
  const ca = ["caPath", "caData"].filter((k) => f.has(k));
  if (ca.length !== 1) throw new Invalid(path, "exactly one of caPath and caData is needed");
  if (f.has("caPath")) expectString(f.get("caPath")!, keyPath(path, "caPath"));
  if (f.has("caData")) optionalBase64(f.get("caData")!, keyPath(path, "caData"));
  for (const key of ["oidcIssuer", "subjectEmail"]) {
    const value = f.get(key);
    if (value === undefined || expectString(value, keyPath(path, key)) === "") {
      throw new Invalid(keyPath(path, key), "missing");
    }
  }
}

function parseSigstoreSigned(v: Json, path: string): PolicyRequirement {
  const f = fields(v, path, [
    "type",
    "keyPath",
    "keyData",
    "fulcio",
    "rekorPublicKeyPath",
    "rekorPublicKeyData",
    "signedIdentity",
  ]);
  const signedIdentity = f.has("signedIdentity")
    ? parseIdentity(f.get("signedIdentity")!, keyPath(path, "signedIdentity"))
    : { type: "matchRepoDigestOrExact" as const };
  const given = ["keyPath", "keyData", "fulcio"].filter((k) => f.has(k));
  if (given.length !== 1) {
    throw new Invalid(
      path,
      given.length === 0
        ? "one of keyPath and keyData is needed; none is given"
        : `only one of keyPath, keyData, fulcio may be given; ${given.join(" and ")} are`,
    );
  }
  const keyPathValue = f.has("keyPath")
    ? expectString(f.get("keyPath")!, keyPath(path, "keyPath"))
    : undefined;
  const keyData = f.has("keyData")
    ? optionalBase64(f.get("keyData")!, keyPath(path, "keyData"))
    : undefined;
  const rekor = ["rekorPublicKeyPath", "rekorPublicKeyData"].filter((k) => f.has(k));
  if (rekor.length > 1) {
    throw new Invalid(path, "only one of rekorPublicKeyPath and rekorPublicKeyData may be given");
  }
  if (f.has("rekorPublicKeyPath")) {
    expectString(f.get("rekorPublicKeyPath")!, keyPath(path, "rekorPublicKeyPath"));
  }
  if (f.has("rekorPublicKeyData")) {
    optionalBase64(f.get("rekorPublicKeyData")!, keyPath(path, "rekorPublicKeyData"));
  }
  let unsupported: string | undefined;
  if (f.has("fulcio")) {
    checkFulcio(f.get("fulcio")!, keyPath(path, "fulcio"));
    if (rekor.length === 0) {
      throw new Invalid(path, "fulcio needs rekorPublicKeyPath or rekorPublicKeyData");
    }
    unsupported = "Fulcio certificates and Rekor are not supported by cfs (no offline check)";
  } else if (rekor.length > 0) {
    unsupported = "Rekor transparency-log checks are not supported by cfs (no offline check)";
  }
  // Go's decoder: a null keyData is an absent value, a null keyPath the empty path (both read
  // as "the file ''" at evaluation, which fails there, as in containers/image).
  return {
    type: "sigstoreSigned",
    ...(keyData !== undefined
      ? { keyData }
      : f.has("fulcio")
      ? {}
      : { keyPath: keyPathValue ?? "" }),
    ...(unsupported !== undefined ? { unsupported } : {}),
    signedIdentity,
  };
}

function parseRequirement(v: Json, path: string): PolicyRequirement {
  if (v.kind !== "object") {
    throw new Invalid(path, `a requirement must be an object, not ${KIND_NAMES[v.kind]}`);
  }
  const type = typeOf(v, path);
  switch (type) {
    case "insecureAcceptAnything":
    case "reject":
      fields(v, path, ["type"], ["type"]);
      return { type };
    case "signedBy":
      return parseSignedBy(v, path);
    case "sigstoreSigned":
      return parseSigstoreSigned(v, path);
    case "signedBaseLayer": {
      const f = fields(v, path, ["type", "baseLayerIdentity"], ["type", "baseLayerIdentity"]);
      parseIdentity(f.get("baseLayerIdentity")!, keyPath(path, "baseLayerIdentity"));
      return { type };
    }
    default:
      throw new Invalid(
        keyPath(path, "type"),
        `unknown requirement type ${short(type)} (insecureAcceptAnything, reject, signedBy, ` +
          "sigstoreSigned, signedBaseLayer)",
      );
  }
}

function parseRequirements(v: Json, path: string): PolicyRequirement[] {
  if (v.kind === "null" || (v.kind === "array" && v.items.length === 0)) {
    throw new Invalid(path, "the list of requirements must not be empty");
  }
  return expectArray(v, path).map((item, i) => parseRequirement(item, `${path}[${i}]`));
}

/**
 * Parses the text of a policy file. `source` names it in errors and in the result. Throws
 * {@link PolicyError} (`policy-invalid`) naming `source` and the JSON path at fault.
 */
export function parsePolicy(text: string, source: string): SignaturePolicy {
  try {
    const root = new StrictJson(text).parseDocument();
    const top = fields(root, "$", ["default", "transports"]);
    const defaultValue = top.get("default");
    if (defaultValue === undefined) throw new Invalid("$.default", "missing (the global default)");
    const defaults = parseRequirements(defaultValue, "$.default");
    // Null-prototype maps: a scope or transport named `__proto__` is just a name.
    const transports: Record<string, Record<string, PolicyRequirement[]>> = Object.create(null);
    const transportsValue = top.get("transports");
    if (transportsValue !== undefined) {
      for (const [name, scopesValue] of expectObject(transportsValue, "$.transports")) {
        const at = keyPath("$.transports", name);
        const scopes: Record<string, PolicyRequirement[]> = Object.create(null);
        for (const [scope, reqs] of expectObject(scopesValue, at)) {
          // Scopes are always written `["..."]`: they are names, whatever they look like.
          const scopeAt = `${at}[${short(scope)}]`;
          if (scope !== "") {
            const problem = scopeProblem(name, scope);
            if (problem !== undefined) {
              throw new Invalid(scopeAt, `invalid ${name} scope: ${problem}`);
            }
          }
          scopes[scope] = parseRequirements(reqs, scopeAt);
        }
        transports[name] = scopes;
      }
    }
    return { source, default: defaults, transports };
  } catch (e) {
    if (e instanceof Invalid) {
      throw new PolicyError(`invalid signature policy ${source}: ${e.message}`);
    }
    throw e;
  }
}

/**
 * Reads and parses a policy file, as skopeo finds it: `path` when given; else
 * `$HOME/.config/containers/policy.json` when it exists; else `/etc/containers/policy.json`.
 * Throws {@link PolicyError}: `policy-not-found` when the file is missing, `policy-invalid` when
 * it cannot be read or parsed.
 */
export async function loadPolicy(path?: string): Promise<SignaturePolicy> {
  const file = path ?? defaultPolicyPath();
  const bytes = await readCapped(file);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new PolicyError(`invalid signature policy ${file}: not UTF-8 text`);
  }
  return parsePolicy(text, file);
}

/** The policy skopeo would use without `--policy`. */
export function defaultPolicyPath(): string {
  const home = homeDirectory();
  if (home !== undefined) {
    const user = `${home.replace(/\/+$/, "")}/${USER_POLICY_PATH}`;
    try {
      Deno.statSync(user);
      return user;
    } catch { /* not there: the system policy */ }
  }
  return SYSTEM_POLICY_PATH;
}

/** `$HOME`, else the user's home directory in /etc/passwd (as containers/storage finds it). */
function homeDirectory(): string | undefined {
  const home = Deno.env.get("HOME");
  if (home) return home;
  try {
    const uid = Deno.uid();
    for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
      const f = line.split(":");
      if (f.length >= 6 && Number(f[2]) === uid) return f[5] || undefined;
    }
  } catch { /* no passwd entry: no user policy */ }
  return undefined;
}

async function readCapped(file: string): Promise<Uint8Array> {
  let handle: Deno.FsFile;
  try {
    handle = await Deno.open(file, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      const hint = file === SYSTEM_POLICY_PATH
        ? ` (nor $HOME/${USER_POLICY_PATH}); give one with --signature-policy`
        : "";
      throw new PolicyError(
        `cannot load the signature policy: ${file}: no such file${hint}`,
        { code: "policy-not-found", cause: e },
      );
    }
    throw new PolicyError(
      `cannot load the signature policy: ${file}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  try {
    const info = await handle.stat();
    if (!info.isFile) throw new PolicyError(`invalid signature policy ${file}: not a regular file`);
    const chunks: Uint8Array[] = [];
    let total = 0;
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await handle.read(buffer);
      if (n === null) break;
      total += n;
      if (total > POLICY_SIZE_MAX) {
        throw new PolicyError(
          `invalid signature policy ${file}: larger than ${POLICY_SIZE_MAX} bytes`,
        );
      }
      chunks.push(buffer.slice(0, n));
    }
    return concatBytes(chunks);
  } catch (e) {
    if (e instanceof PolicyError) throw e;
    throw new PolicyError(
      `cannot load the signature policy: ${file}: ${(e as Error).message}`,
      { cause: e },
    );
  } finally {
    handle.close();
  }
}
