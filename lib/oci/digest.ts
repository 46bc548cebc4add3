/**
 * OCI content digests (`ALGORITHM:HEX`): parsing, validation and hashing.
 *
 * Only the algorithms the OCI image specification registers are accepted: `sha256`
 * (64 lowercase hex digits) and `sha512` (128). Uppercase hex, other lengths and other
 * algorithms are refused, as go-digest's `Validate` does, so a digest that passes
 * {@link parseDigest} is also safe to use as a file name (`blobs/<alg>/<hex>`).
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import { createHash, type Hash } from "node:crypto";

/** The digest algorithms OCI registers. */
export type DigestAlgorithm = "sha256" | "sha512";

/** Hex length per algorithm. */
export const DIGEST_HEX_LENGTH: Readonly<Record<DigestAlgorithm, number>> = {
  sha256: 64,
  sha512: 128,
};

/** A validated digest, split into its parts. */
export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  /** Lowercase hex. */
  hex: string;
  /** `algorithm:hex`, as given. */
  digest: string;
}

/** A digest string that is malformed or uses an unsupported algorithm. */
export class DigestError extends CfsError {
  /** The text that failed to parse. */
  readonly input: string;

  constructor(input: string, reason: string) {
    super(`invalid digest ${JSON.stringify(clip(input))}: ${reason}`, { code: "digest-invalid" });
    this.name = "DigestError";
    this.input = input;
  }
}

/** The digest grammar of the OCI image spec (algorithm components and encoded part). */
const DIGEST_GRAMMAR = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** Why `text` is not a valid sha256/sha512 digest, or `undefined` when it is. */
export function digestProblem(text: string): string | undefined {
  const m = DIGEST_GRAMMAR.exec(text);
  if (!m) return "expected ALGORITHM:HEX";
  const algorithm = m[1];
  const hex = m[2];
  if (algorithm !== "sha256" && algorithm !== "sha512") {
    return `unsupported algorithm ${JSON.stringify(clip(algorithm))} (sha256 or sha512)`;
  }
  const want = DIGEST_HEX_LENGTH[algorithm];
  if (hex.length !== want) return `${algorithm} needs ${want} hex digits, got ${hex.length}`;
  if (!/^[0-9a-f]+$/.test(hex)) return "the hex part must be lowercase hexadecimal";
  return undefined;
}

/** Parses `sha256:HEX` or `sha512:HEX`; throws {@link DigestError} otherwise. */
export function parseDigest(text: string): ParsedDigest {
  const problem = digestProblem(text);
  if (problem !== undefined) throw new DigestError(text, problem);
  const colon = text.indexOf(":");
  return {
    algorithm: text.slice(0, colon) as DigestAlgorithm,
    hex: text.slice(colon + 1),
    digest: text,
  };
}

/** Whether `text` is a valid sha256 or sha512 digest. */
export function isDigest(text: string): boolean {
  return digestProblem(text) === undefined;
}

/** A streaming hasher for the digest's algorithm (node:crypto). */
export function digestHasher(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

/** The digest of `bytes` (`sha256:...` unless another algorithm is asked for). */
export function digestBytes(bytes: Uint8Array, algorithm: DigestAlgorithm = "sha256"): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
}

/** Shortens long hostile input for error messages. */
export function clip(text: string, max = 200): string {
  return text.length <= max ? text : `${text.slice(0, max)}...(${text.length} chars)`;
}
