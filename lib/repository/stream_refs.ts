/**
 * The references of a stream object, whichever splitstream format it is in: composefs-rs
 * 0.8+'s (magic `SplitStream`, both header layouts; read without decompressing the chunks) or
 * cfsctl 0.3.0's (a digest map, whose entries count as named references named by the sha256
 * hex; the chunks are decompressed to find the objects). gc and fsck follow these.
 *
 * @module
 */
import { toHex, type VerityAlgorithm } from "../fsverity/digest.ts";
import { detectSplitStreamFormat } from "../splitstream/format.ts";
import { SplitStreamReader } from "../splitstream/reader.ts";
import { LegacySplitStreamReader } from "../splitstream/legacy.ts";
import { ObjectId } from "./object_id.ts";
import type { StreamRefs } from "./view.ts";

/** Reads a stream object's references; rejects when the bytes are not a splitstream. */
export async function readStreamRefs(
  bytes: Uint8Array,
  algorithm: VerityAlgorithm,
): Promise<StreamRefs> {
  const format = detectSplitStreamFormat(bytes.subarray(0, 64));
  if (format !== "legacy-0.3") {
    const r = SplitStreamReader.open(bytes, { algorithm, name: "stream" });
    return {
      format: "0.9",
      contentType: r.contentType,
      objectRefs: r.objectRefs.map((d) => ObjectId.fromBytes(d)),
      namedRefs: [...r.namedRefs].map(([name, id]) => ({ name, id: ObjectId.fromBytes(id) })),
    };
  }
  const legacy = await LegacySplitStreamReader.open(bytes, { algorithm, name: "stream" });
  const objects = new Map<string, ObjectId>();
  for await (const c of legacy.chunks()) {
    if (c.kind === "external") objects.set(toHex(c.id), ObjectId.fromBytes(c.id));
  }
  return {
    format: "0.3",
    contentType: 0n,
    objectRefs: [...objects.values()],
    namedRefs: legacy.digestMap.map((e) => ({
      name: toHex(e.body),
      id: ObjectId.fromBytes(e.verity),
    })),
  };
}
