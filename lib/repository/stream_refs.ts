/**
 * The references of a stream object, whichever splitstream format it is in: composefs-rs
 * 0.8+'s (magic `SplitStream`, both header layouts) or cfsctl 0.3.0's (a digest map; its
 * entries count as named references named by the sha256 hex). gc and fsck follow these.
 *
 * @module
 */
import type { VerityAlgorithm } from "../fsverity/digest.ts";
import { toHex } from "../fsverity/digest.ts";
import { parseSplitStream } from "../splitstream.ts";
import { detectSplitStreamFormat } from "../splitstream/format.ts";
import { SplitStreamReader } from "../splitstream/reader.ts";
import { ObjectId } from "./object_id.ts";
import type { StreamRefs } from "./view.ts";

/** Reads a stream object's references; throws when the bytes are not a splitstream. */
export function readStreamRefs(bytes: Uint8Array, algorithm: VerityAlgorithm): StreamRefs {
  const format = detectSplitStreamFormat(bytes.subarray(0, 64));
  if (format === "current" || format === "pre-repr-c") {
    const r = SplitStreamReader.open(bytes, { algorithm, name: "stream" });
    return {
      format: "0.9",
      contentType: r.contentType,
      objectRefs: r.objectRefs.map((d) => ObjectId.fromBytes(d)),
      namedRefs: [...r.namedRefs].map(([name, id]) => ({ name, id: ObjectId.fromBytes(id) })),
    };
  }
  const size = algorithm === "sha512" ? 64 : 32;
  const legacy = parseSplitStream(bytes, { name: "stream", objectIdLength: size });
  return {
    format: "0.3",
    contentType: 0n,
    objectRefs: [...legacy.objectRefs()].map((d) => ObjectId.fromBytes(d)),
    namedRefs: [...legacy.digestMap()].map((e) => ({
      name: toHex(e.body),
      id: ObjectId.fromBytes(e.verity),
    })),
  };
}
