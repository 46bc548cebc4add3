/**
 * The JSON payload both signature formats sign, and how strictly it is read.
 *
 * A simple-signing signature (GPG) and a sigstore signature carry the same document:
 *
 * ```json
 * {"critical": {"type": "atomic container signature",
 *               "image": {"docker-manifest-digest": "sha256:..."},
 *               "identity": {"docker-reference": "host/repo:tag"}},
 *  "optional": {"creator": "...", "timestamp": 1700000000}}
 * ```
 *
 * with `type` `cosign container image signature` for sigstore. containers/image reads it
 * "paranoidly", and so does cfs, because a lax reader is where two implementations start to
 * disagree about what a signature says:
 * - the document and `critical`, `image`, `identity` are objects with exactly their keys: a key
 *   missing, unknown or given twice is refused (so a signer's future critical field is never
 *   silently ignored);
 * - `optional` must be there (an object; sigstore payloads may also have `null`, as cosign
 *   writes it); any keys, but `creator` must be a string and `timestamp` an integral number;
 * - nothing may follow the document; any JSON value inside `optional` is accepted, but a
 *   number too large for a double is refused (Go's decoder refuses it too).
 *
 * Go's `encoding/json` semantics are kept where they decide acceptance: a JSON `null` given for
 * a string field reads as the empty string (a digest or reference that then matches nothing),
 * invalid UTF-8 in strings becomes U+FFFD, a byte order mark is an error, and nesting deeper
 * than 10000 levels is refused.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, clipMiddle, withCode } from "../errors.ts";
import type { SignatureClaims } from "./types.ts";

/**
 * A signature that cannot be accepted: not signed, signed by an unknown, expired or revoked key,
 * tampered with, or a payload that is not what it must be. One line; the policy evaluation
 * turns it into the rejection reason of the requirement that tried it.
 */
export class SignatureError extends CfsError {
  /** `message`: one line saying why (the caller adds which signature). */
  constructor(message: string, options?: CfsErrorOptions) {
    super(clipMiddle(message.replace(/\s+/g, " ").trim()), withCode(options, "signature-invalid"));
    this.name = "SignatureError";
  }
}

/** `critical.type` of a simple-signing (GPG) payload. */
export const SIMPLE_SIGNATURE_TYPE = "atomic container signature";
/** `critical.type` of a sigstore payload. */
export const SIGSTORE_SIGNATURE_TYPE = "cosign container image signature";

/** Go's `encoding/json` nesting limit. */
const MAX_DEPTH = 10000;

/** A parsed JSON value, objects keeping every key in order (duplicates included). */
export type JsonNode =
  | { kind: "object"; entries: [string, JsonNode][] }
  | { kind: "array"; items: JsonNode[] }
  | { kind: "string"; value: string }
  | { kind: "number"; value: number }
  | { kind: "boolean"; value: boolean }
  | { kind: "null" };

/**
 * Parses one JSON document (surrounding white space allowed, nothing else after it), keeping
 * duplicate keys so that the caller can refuse them. Throws {@link SignatureError}.
 */
export function parseJsonDocument(bytes: Uint8Array): JsonNode {
  // No BOM stripping (Go does not skip one); invalid UTF-8 becomes U+FFFD, as in Go.
  const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
  const parser = new JsonParser(text);
  parser.skipSpace();
  const value = parser.value();
  parser.skipSpace();
  if (parser.pos !== text.length) {
    throw new SignatureError("unexpected data after the JSON object");
  }
  return value;
}

class JsonParser {
  pos = 0;
  constructor(readonly text: string) {}

  fail(what: string): never {
    throw new SignatureError(`invalid JSON at offset ${this.pos}: ${what}`);
  }

  skipSpace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.pos++;
    }
  }

  /** One value; containers are kept on an explicit stack, so depth costs no call stack. */
  value(): JsonNode {
    const t = this.text;
    const stack: { node: JsonNode & { kind: "object" | "array" }; key: string }[] = [];
    while (true) {
      this.skipSpace();
      let node: JsonNode;
      const c = t[this.pos];
      if (c === "{" || c === "[") {
        if (stack.length >= MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
        this.pos++;
        this.skipSpace();
        const container: JsonNode & { kind: "object" | "array" } = c === "{"
          ? { kind: "object", entries: [] }
          : { kind: "array", items: [] };
        const close = c === "{" ? "}" : "]";
        if (t[this.pos] === close) {
          this.pos++;
          node = container;
        } else {
          stack.push({ node: container, key: c === "{" ? this.key() : "" });
          continue;
        }
      } else {
        node = this.scalar();
      }
      // Hand the finished value to its container, closing containers that end here.
      while (true) {
        const top = stack[stack.length - 1];
        if (top === undefined) return node;
        if (top.node.kind === "object") top.node.entries.push([top.key, node]);
        else top.node.items.push(node);
        this.skipSpace();
        if (t[this.pos] === ",") {
          this.pos++;
          if (top.node.kind === "object") top.key = this.key();
          break;
        }
        if (t[this.pos] === (top.node.kind === "object" ? "}" : "]")) {
          this.pos++;
          stack.pop();
          node = top.node;
          continue;
        }
        this.fail(top.node.kind === "object" ? "expected ',' or '}'" : "expected ',' or ']'");
      }
    }
  }

  /** An object key and its ':'. */
  key(): string {
    this.skipSpace();
    if (this.text[this.pos] !== '"') this.fail("expected a string key");
    const key = this.string();
    this.skipSpace();
    if (this.text[this.pos] !== ":") this.fail("expected ':'");
    this.pos++;
    return key;
  }

  /** A string, number, `true`, `false` or `null`. */
  scalar(): JsonNode {
    const t = this.text;
    const c = t[this.pos];
    if (c === '"') return { kind: "string", value: this.string() };
    for (const [word, node] of LITERALS) {
      if (t.startsWith(word, this.pos)) {
        this.pos += word.length;
        return node;
      }
    }
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(t);
    if (m === null) this.fail(c === undefined ? "unexpected end" : "unexpected character");
    this.pos += m[0].length;
    const value = Number(m[0]);
    // Go decodes every number as a float64 and refuses one out of its range.
    if (!Number.isFinite(value)) this.fail(`number ${m[0].slice(0, 40)} out of range`);
    return { kind: "number", value };
  }

  string(): string {
    const t = this.text;
    const start = this.pos;
    this.pos++;
    let plain = true;
    while (true) {
      const c = t.charCodeAt(this.pos);
      if (Number.isNaN(c)) this.fail("unterminated string");
      if (c < 0x20) this.fail("control character in a string");
      if (c === 0x22) break;
      if (c === 0x5c) {
        plain = false;
        const e = t[this.pos + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(t.slice(this.pos + 2, this.pos + 6))) {
            this.fail("invalid \\u escape");
          }
          this.pos += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) this.fail("invalid escape");
        this.pos += 2;
        continue;
      }
      this.pos++;
    }
    this.pos++;
    const raw = t.slice(start, this.pos);
    return plain ? raw.slice(1, -1) : JSON.parse(raw);
  }
}

const LITERALS: [string, JsonNode][] = [
  ["true", { kind: "boolean", value: true }],
  ["false", { kind: "boolean", value: false }],
  ["null", { kind: "null" }],
];
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/** What a JSON node is, in a message. */
function describe(node: JsonNode): string {
  return node.kind === "object" ? "an object" : node.kind === "array" ? "an array" : node.kind;
}

/**
 * The members of an object that must have exactly `keys`: refuses another type, a duplicate,
 * an unknown or a missing key. `where` names the object in messages.
 */
function exactObject(
  node: JsonNode,
  keys: readonly string[],
  where: string,
): Map<string, JsonNode> {
  const members = anyObject(node, where);
  for (const key of members.keys()) {
    if (!keys.includes(key)) {
      throw new SignatureError(`${where}: unknown key ${JSON.stringify(clip(key))}`);
    }
  }
  for (const key of keys) {
    if (!members.has(key)) {
      throw new SignatureError(`${where}: key ${JSON.stringify(key)} missing`);
    }
  }
  return members;
}

/** The members of an object with any keys, each at most once. */
function anyObject(node: JsonNode, where: string): Map<string, JsonNode> {
  if (node.kind !== "object") {
    throw new SignatureError(`${where}: a JSON object expected, got ${describe(node)}`);
  }
  const members = new Map<string, JsonNode>();
  for (const [key, value] of node.entries) {
    if (members.has(key)) {
      throw new SignatureError(`${where}: duplicate key ${JSON.stringify(clip(key))}`);
    }
    members.set(key, value);
  }
  return members;
}

/** A string field as Go reads one: a string, or `null` for the empty string. */
function goString(node: JsonNode, where: string): string {
  if (node.kind === "string") return node.value;
  if (node.kind === "null") return "";
  throw new SignatureError(`${where}: a string expected, got ${describe(node)}`);
}

function clip(text: string): string {
  return text.length <= 100 ? text : `${text.slice(0, 100)}...`;
}

/** Options of {@link parsePayload}: which format's payload it is. */
export interface PayloadFormat {
  /** The `critical.type` the format requires. */
  type: string;
  /** Whether `"optional": null` is allowed (sigstore: cosign writes it). */
  optionalMayBeNull: boolean;
  /** The format's name, for messages (`simple signing payload`, `sigstore payload`). */
  name: string;
}

/**
 * Reads a signature payload as containers/image does (see the module documentation) and
 * returns its two claims. Throws {@link SignatureError} naming the field at fault.
 */
export function parsePayload(bytes: Uint8Array, format: PayloadFormat): SignatureClaims {
  const name = format.name;
  const top = exactObject(parseJsonDocument(bytes), ["critical", "optional"], name);
  const optional = top.get("optional")!;
  if (!(format.optionalMayBeNull && optional.kind === "null")) {
    const members = anyObject(optional, `${name} "optional"`);
    const creator = members.get("creator");
    if (creator !== undefined) goString(creator, `${name} "optional.creator"`);
    const timestamp = members.get("timestamp");
    if (timestamp !== undefined && timestamp.kind !== "null") {
      if (timestamp.kind !== "number") {
        throw new SignatureError(
          `${name} "optional.timestamp": a number expected, got ${describe(timestamp)}`,
        );
      }
      const t = timestamp.value;
      // An int64 in Go: integral, and within its range (2^63 itself is not).
      if (!Number.isInteger(t) || t >= 2 ** 63 || t < -(2 ** 63)) {
        throw new SignatureError(`${name} "optional.timestamp" is not an integer`);
      }
    }
  }
  const critical = exactObject(
    top.get("critical")!,
    ["type", "image", "identity"],
    `${name} "critical"`,
  );
  const type = goString(critical.get("type")!, `${name} "critical.type"`);
  if (type !== format.type) {
    throw new SignatureError(
      `${name}: unrecognized signature type ${JSON.stringify(clip(type))} (expected ` +
        `${JSON.stringify(format.type)})`,
    );
  }
  const image = exactObject(
    critical.get("image")!,
    ["docker-manifest-digest"],
    `${name} "critical.image"`,
  );
  const identity = exactObject(
    critical.get("identity")!,
    ["docker-reference"],
    `${name} "critical.identity"`,
  );
  return {
    manifestDigest: goString(
      image.get("docker-manifest-digest")!,
      `${name} "critical.image.docker-manifest-digest"`,
    ),
    dockerReference: goString(
      identity.get("docker-reference")!,
      `${name} "critical.identity.docker-reference"`,
    ),
  };
}
