/**
 * OCI-layout-aware mutation of a bundle (`../bundle.ts`): one member (`index.json`,
 * `oci-layout` or a blob) is changed, as JSON (a value replaced by one of another type, a huge
 * number, a long string, a nested array thousands deep, a digest that is malformed or names
 * nothing, another media type; a key removed or added; an array emptied or repeated) or as
 * bytes; then, most of the time, the changed blob is renamed after its new digest and every
 * descriptor that named it is updated (digest and size), so the layout gets past digest
 * checks and the change reaches the schema, media type and platform logic.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type BundleFile, decodeBundle, encodeBundle } from "../bundle.ts";
import { havoc, type Mutated } from "../mutate.ts";
import type { Rng } from "../rng.ts";

const MEDIA_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.config.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.container.image.v1+json",
  "application/vnd.oci.image.layer.v1.tar+gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd",
  "application/octet-stream",
  "",
  "x".repeat(300),
];

const DIGESTS = [
  "sha256:" + "0".repeat(64),
  "sha512:" + "1".repeat(128),
  "sha256:" + "A".repeat(64),
  "sha256:" + "0".repeat(63),
  "sha256:../../../etc/passwd",
  "md5:d41d8cd98f00b204e9800998ecf8427e",
  "sha384:" + "0".repeat(96),
  "sha256:",
  "",
];

function values(rng: Rng): unknown {
  switch (rng.int(14)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 1.5, 1e308, 9007199254740993, 2 ** 32, -0]);
    case 3:
      return rng.pick(["", "x", "linux", "amd64", "arm64", "v8", "v7", "latest"]);
    case 4:
      return "y".repeat(rng.small(1 << 16));
    case 5:
      return [];
    case 6:
      return {};
    case 7:
      return rng.pick(DIGESTS);
    case 8:
      return rng.pick(MEDIA_TYPES);
    case 9:
      return {
        architecture: rng.pick(["amd64", "arm64", ""]),
        os: rng.pick(["linux", ""]),
        variant: rng.pick(["v8", "v9", "v7", ""]),
      };
    case 10:
      return {
        "org.opencontainers.image.ref.name": rng.pick(["v1", "", "latest", "x".repeat(200)]),
      };
    case 11:
      return {
        mediaType: rng.pick(MEDIA_TYPES),
        digest: rng.pick(DIGESTS),
        size: rng.pick([0, 1, -1, 4 << 20, 2 ** 53]),
      };
    case 12:
      return { type: "layers", diff_ids: [rng.pick(DIGESTS)] };
    default:
      return "\u0000\ud800";
  }
}

type Json = unknown;

/** Every (parent, key) slot of a JSON value, depth first, down to depth 64. */
function slots(
  v: Json,
  out: Array<[Record<string, Json> | Json[], string | number]> = [],
  depth = 0,
) {
  if (depth > 64 || out.length > 100_000) return out;
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      out.push([v, i]);
      slots(x, out, depth + 1);
    });
  } else if (v !== null && typeof v === "object") {
    for (const k of Object.keys(v)) {
      out.push([v as Record<string, Json>, k]);
      slots((v as Record<string, Json>)[k], out, depth + 1);
    }
  }
  return out;
}

const NESTED = "__FUZZ_NESTED__";

function mutateJson(rng: Rng, doc: Json): { text: string; how: string } {
  const all = slots(doc);
  let how = "";
  if (all.length === 0 || rng.chance(0.05)) {
    doc = values(rng);
    how = "document replaced";
  } else {
    const [parent, key] = rng.pick(all);
    const op = rng.weighted([6, 2, 2, 1, 1]);
    if (op === 0) {
      (parent as Record<string, Json>)[key as string] = values(rng);
      how = `${String(key)} replaced`;
    } else if (op === 1) {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete (parent as Record<string, Json>)[key as string];
      how = `${String(key)} removed`;
    } else if (op === 2 && !Array.isArray(parent)) {
      const k = rng.pick([
        "mediaType",
        "digest",
        "size",
        "platform",
        "manifests",
        "layers",
        "config",
        "rootfs",
        "__proto__",
        "schemaVersion",
        "annotations",
      ]);
      (parent as Record<string, Json>)[k] = values(rng);
      how = `${k} added`;
    } else if (op === 3 && Array.isArray(parent)) {
      const n = rng.pick([2, 100, 5000]);
      const copy = parent[key as number];
      parent.splice(key as number, 0, ...Array(n).fill(copy));
      how = `array element repeated ${n} times`;
    } else {
      (parent as Record<string, Json>)[key as string] = NESTED;
      how = `${String(key)} nested thousands deep`;
    }
  }
  let text = JSON.stringify(doc, null, rng.chance(0.3) ? 2 : undefined) ?? "null";
  const depth = rng.pick([1000, 5000, 100000]);
  text = text.replace(JSON.stringify(NESTED), "[".repeat(depth) + "]".repeat(depth));
  return { text, how };
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Points every descriptor naming `oldDigest` at `newDigest` of `size` bytes, in place. */
function relink(
  files: BundleFile[],
  mutated: BundleFile,
  oldDigest: string,
  newDigest: string,
  size: number,
): void {
  for (const f of files) {
    if (f === mutated || (!f.name.endsWith(".json") && !f.name.startsWith("blobs/"))) continue;
    let doc: Json;
    try {
      doc = JSON.parse(new TextDecoder().decode(f.data));
    } catch {
      continue;
    }
    let changed = false;
    for (const [parent, key] of slots(doc)) {
      const v = (parent as Record<string, Json>)[key as string] as Record<string, Json>;
      if (v && typeof v === "object" && v.digest === oldDigest) {
        v.digest = newDigest;
        v.size = size;
        changed = true;
      }
    }
    if (changed) f.data = new TextEncoder().encode(JSON.stringify(doc));
  }
}

/** One layout-aware mutation of a bundle input; undefined when it is not a bundle. */
export function mutateOciBundle(
  rng: Rng,
  seed: Uint8Array,
  others: readonly Uint8Array[],
): Mutated | undefined {
  let files: BundleFile[];
  try {
    files = decodeBundle(seed);
  } catch {
    return undefined;
  }
  if (files.length === 0) return undefined;
  const weights = files.map((f) => f.name === "oci-layout" ? 1 : 4);
  const f = files[rng.weighted(weights)];
  let how: string;
  if (rng.chance(0.7)) {
    let doc: Json;
    try {
      doc = JSON.parse(new TextDecoder().decode(f.data));
    } catch {
      doc = null;
    }
    const m = mutateJson(rng, doc);
    f.data = new TextEncoder().encode(m.text);
    how = `${f.name}: ${m.how}`;
  } else {
    const peers = others.flatMap((o) => {
      try {
        return decodeBundle(o).map((x) => x.data);
      } catch {
        return [];
      }
    });
    const m = havoc(rng, f.data, peers, 4);
    f.data = m.bytes;
    how = `${f.name}: ${m.how}`;
  }
  const blob = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(f.name);
  if (blob && rng.chance(0.85)) {
    const hex = sha256(f.data);
    relink(files, f, `sha256:${blob[1]}`, `sha256:${hex}`, f.data.length);
    f.name = `blobs/sha256/${hex}`;
    how += " (digest and descriptors updated)";
  } else if (f.name === "index.json" || !blob) {
    // nothing refers to index.json or oci-layout
  } else how += " (descriptors left stale)";
  if (rng.chance(0.05)) {
    files.splice(rng.int(files.length), 1);
    how += "; a member dropped";
  }
  return { bytes: encodeBundle(files), how };
}
