/**
 * The name of everything in a repository: an object's fs-verity digest. One value type so that
 * code does not juggle hex strings and byte arrays side by side: it knows its algorithm (from
 * its length), its hex form, its place below `objects/` and the `sha512:<hex>` form cfsctl
 * prints (`create-image`, `oci import-layer`).
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import { digestSize, fromHex, toHex, type VerityAlgorithm } from "../fsverity/digest.ts";

/** Text that is not an object id; the message names it. */
export class ObjectIdError extends CfsError {
  /** Creates the error with a one-line message. */
  constructor(message: string) {
    super(message, { code: "object-id-invalid" });
    this.name = "ObjectIdError";
  }
}

const HEX = /^[0-9a-f]+$/;

/** An fs-verity digest naming an object (32 bytes for SHA-256, 64 for SHA-512). */
export class ObjectId {
  #hex?: string;

  private constructor(
    /** The digest bytes (never modified: callers get this array, so treat it as frozen). */
    readonly bytes: Uint8Array,
    /** The hash the digest was made with. */
    readonly algorithm: VerityAlgorithm,
  ) {}

  /** Wraps digest bytes; the length decides the algorithm. */
  static fromBytes(bytes: Uint8Array): ObjectId {
    if (bytes.length === 32) return new ObjectId(bytes, "sha256");
    if (bytes.length === 64) return new ObjectId(bytes, "sha512");
    throw new ObjectIdError(`an object id has 32 or 64 bytes, not ${bytes.length}`);
  }

  /**
   * Parses `<hex>` (64 or 128 lower-case digits) or cfsctl's `sha256:<hex>` / `sha512:<hex>`.
   * With `algorithm`, an id of the other algorithm is refused.
   */
  static parse(text: string, algorithm?: VerityAlgorithm): ObjectId {
    let hex = text;
    let named: VerityAlgorithm | undefined;
    const colon = text.indexOf(":");
    if (colon >= 0) {
      const prefix = text.slice(0, colon);
      if (prefix !== "sha256" && prefix !== "sha512") {
        throw new ObjectIdError(`'${clip(text)}' is not an object id (sha256:HEX or sha512:HEX)`);
      }
      named = prefix;
      hex = text.slice(colon + 1);
    }
    if (!HEX.test(hex) || (hex.length !== 64 && hex.length !== 128)) {
      throw new ObjectIdError(
        `'${clip(text)}' is not an object id (64 or 128 lower-case hex digits)`,
      );
    }
    const id = ObjectId.fromBytes(fromHex(hex));
    if (named && named !== id.algorithm) {
      throw new ObjectIdError(`'${clip(text)}': ${hex.length} hex digits are not a ${named} id`);
    }
    if (algorithm && algorithm !== id.algorithm) {
      throw new ObjectIdError(
        `'${clip(text)}' is a ${id.algorithm} id; this repository uses ${algorithm}`,
      );
    }
    return id;
  }

  /** Like {@link parse}, but undefined instead of an error. */
  static tryParse(text: string, algorithm?: VerityAlgorithm): ObjectId | undefined {
    try {
      return ObjectId.parse(text, algorithm);
    } catch {
      return undefined;
    }
  }

  /**
   * The id at the end of a link target `.../objects/XX/<rest>` (or `XX/<rest>`), as composefs
   * writes `streams/` and `images/` links; undefined when the target does not end that way.
   */
  static fromObjectPath(target: string, algorithm?: VerityAlgorithm): ObjectId | undefined {
    const m = /(?:^|\/)([0-9a-f]{2})\/([0-9a-f]{62}|[0-9a-f]{126})$/.exec(target);
    if (!m) return undefined;
    const id = ObjectId.fromBytes(fromHex(m[1] + m[2]));
    return algorithm && id.algorithm !== algorithm ? undefined : id;
  }

  /** Lower-case hex of the digest. */
  get hex(): string {
    return this.#hex ??= toHex(this.bytes);
  }

  /** `XX/<rest>`: the object's path below `objects/`. */
  get objectPath(): string {
    return `${this.hex.slice(0, 2)}/${this.hex.slice(2)}`;
  }

  /** `sha256:<hex>` / `sha512:<hex>`, as cfsctl prints ids of what it stored. */
  get prefixed(): string {
    return `${this.algorithm}:${this.hex}`;
  }

  /** Same digest. */
  equals(other: ObjectId | undefined): boolean {
    return other !== undefined && other.hex === this.hex;
  }

  /** The hex form (for messages and Map keys). */
  toString(): string {
    return this.hex;
  }
}

/** The digest length in bytes for an algorithm (re-exported for callers that size buffers). */
export function objectIdSize(algorithm: VerityAlgorithm): number {
  return digestSize(algorithm);
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
