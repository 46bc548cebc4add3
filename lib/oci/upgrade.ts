/**
 * Upgrading a repository's OCI content to composefs-rs 0.9.4's, before every `cfs pull` (as
 * bootc calls `upgrade_repo` before every pull). Two steps:
 *
 * **1. Streams in cfsctl 0.3.0's format** (repositories written by cfsctl 0.3.0 and by cfs
 * releases before 0.9 support): there, every stream is `streams/<sha256 of its content>` in
 * the 0.3.0 splitstream format (no magic, a digest map instead of named refs); cfs added
 * manifests and tags `streams/refs/oci/<tag>` -> `../../<manifest hex>`, and image refs
 * `images/refs/oci-config-sha256:<hex>[.boot]`; cfsctl 0.3.0's `oci pull IMAGE NAME` made
 * `streams/refs/NAME` -> `../<config hex>`. Each such stream is classified by its content and
 * rewritten in the current format under its 0.9.4 name, chunk for chunk (no object is read
 * again): a manifest (`oci-manifest-sha256:<hex>`, named refs to config and layers), a config
 * (`oci-config-...`, named refs to its layers), anything else a layer (`oci-layer-...`). Every
 * ref is pointed at the new name (tags keep their names), the old links and cfs's old image
 * refs go, and gc collects the old stream objects.
 *
 * **2. Images** (0.9.4 `upgrade_repo`): every tagged container image that has no image of the
 * repository's default EROFS format gets its images made and linked (commit.ts), which is
 * what repositories written before images were made at pull time need.
 *
 * Both steps are idempotent; a repository already current is only read.
 *
 * @module
 */
import { LegacySplitStreamReader as LegacyReader } from "../splitstream/legacy.ts";
import { detectSplitStreamFormat } from "../splitstream/format.ts";
import { SplitStreamWriter } from "../splitstream/writer.ts";
import { CONTENT_TYPE } from "../splitstream/format.ts";
import { ObjectId, Repository, RepositoryError } from "../repository/mod.ts";
import { concatBytes } from "../bytes.ts";
import { commitOciImages } from "./commit.ts";
import {
  configContentId,
  layerContentId,
  listTags,
  manifestContentId,
  OciImage,
  sha256Digest,
  writeConfigStream,
  writeManifestStream,
} from "./store.ts";

/** What {@link upgradeRepository} did. */
export interface UpgradeReport {
  /** Streams rewritten from cfsctl 0.3.0's format, by kind. */
  converted: { manifests: number; configs: number; layers: number };
  /** Refs pointed at the new stream names. */
  refsMoved: number;
  /** Images that got their EROFS images (0.9.4 `upgrade_repo`'s `upgraded`). */
  upgraded: number;
  /** Images that had them already. */
  alreadyCurrent: number;
  /** Tagged artifacts (nothing to make). */
  skippedNonContainer: number;
}

const HEX64 = /^[0-9a-f]{64}$/;
const JSON_MAX = 4 << 20;

interface Legacy {
  hex: string;
  id: ObjectId;
  reader: LegacyReader;
}

/** The names of streams still in cfsctl 0.3.0's format (named by the sha256 hex). */
function legacyStreamNames(repo: Repository): Array<{ hex: string; id: ObjectId }> {
  const out: Array<{ hex: string; id: ObjectId }> = [];
  for (const s of repo.streams.list()) {
    if (!HEX64.test(s.contentId) || !s.id || !repo.hasObject(s.id)) continue;
    const head = new Uint8Array(64);
    const f = Deno.openSync(repo.objectPath(s.id));
    let n: number | null;
    try {
      n = f.readSync(head);
    } finally {
      f.close();
    }
    if (detectSplitStreamFormat(head.subarray(0, n ?? 0)) === "legacy-0.3") {
      out.push({ hex: s.contentId, id: s.id });
    }
  }
  return out;
}

/** The streams still in cfsctl 0.3.0's format, opened, by the sha256 hex they are named after. */
async function legacyStreams(repo: Repository): Promise<Map<string, Legacy>> {
  const out = new Map<string, Legacy>();
  for (const { hex, id } of legacyStreamNames(repo)) {
    const reader = await LegacyReader.open(repo.readObject(id), {
      name: `stream ${hex}`,
      algorithm: repo.algorithm,
    });
    out.set(hex, { hex, id, reader });
  }
  return out;
}

/** The content of a small legacy stream (a JSON document), objects read and verified. */
async function smallContent(repo: Repository, s: Legacy): Promise<Uint8Array | undefined> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of s.reader.cat((id) => repo.readObject(id))) {
    parts.push(chunk);
    total += chunk.length;
    if (total > JSON_MAX) return undefined;
  }
  return concatBytes(parts);
}

function jsonObject(bytes: Uint8Array | undefined): Record<string, unknown> | undefined {
  if (!bytes || bytes.length === 0 || bytes[0] !== 0x7b /* { */) return undefined;
  try {
    const v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The first inline bytes of a legacy stream: a tar starts with a header, JSON with `{`. */
async function startsLikeJson(s: Legacy): Promise<boolean> {
  for await (const f of s.reader.chunks()) {
    if (f.kind !== "inline") return false;
    if (f.data.length > 0) return f.data[0] === 0x7b;
  }
  return false;
}

/** Rewrites a legacy layer stream chunk for chunk as `oci-layer-sha256:<hex>`. */
async function convertLayer(repo: Repository, s: Legacy): Promise<ObjectId> {
  const contentId = layerContentId(`sha256:${s.hex}`);
  const have = repo.hasStream(contentId);
  if (have) return have;
  const writer = new SplitStreamWriter({
    algorithm: repo.algorithm,
    contentType: CONTENT_TYPE.ociLayer,
  });
  let bytes: Uint8Array;
  try {
    for await (const f of s.reader.chunks()) {
      if (f.kind === "inline") writer.writeInline(f.data);
      else {
        const id = ObjectId.fromBytes(f.id);
        await writer.writeExternal(f.id, Deno.statSync(repo.objectPath(id)).size);
      }
    }
    bytes = await writer.finish();
  } catch (e) {
    writer.abort();
    throw e;
  }
  return repo.writeStream(bytes, contentId);
}

/** Step 1 of the module documentation. */
async function convertLegacyStreams(repo: Repository, report: UpgradeReport): Promise<void> {
  const legacy = await legacyStreams(repo);
  if (legacy.size === 0) return;
  repo.requireWritable();
  const newName = new Map<string, string>(); // legacy hex -> new content id
  const layerIds = new Map<string, ObjectId>(); // diff_id -> new layer stream id
  const configIds = new Map<string, ObjectId>(); // config digest -> new config stream id
  const docs = new Map<string, Record<string, unknown>>();
  const raw = new Map<string, Uint8Array>();
  for (const s of legacy.values()) {
    if (!(await startsLikeJson(s))) continue;
    const bytes = await smallContent(repo, s);
    const doc = jsonObject(bytes);
    if (doc && bytes && sha256Digest(bytes) === `sha256:${s.hex}`) {
      docs.set(s.hex, doc);
      raw.set(s.hex, bytes);
    }
  }
  const isManifest = (d: Record<string, unknown>) =>
    typeof d.config === "object" && Array.isArray(d.layers);
  const isConfig = (d: Record<string, unknown>) => typeof d.rootfs === "object";
  // Layers: everything that is not a JSON document.
  for (const s of legacy.values()) {
    if (docs.has(s.hex)) continue;
    layerIds.set(`sha256:${s.hex}`, await convertLayer(repo, s));
    newName.set(s.hex, layerContentId(`sha256:${s.hex}`));
    report.converted.layers++;
  }
  // Configs: named refs to their layers (which must be among the converted or current ones).
  const diffIdsOf = (d: Record<string, unknown>): string[] => {
    const ids = (d.rootfs as { diff_ids?: unknown }).diff_ids;
    return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === "string") : [];
  };
  for (const [hex, doc] of docs) {
    if (!isConfig(doc) || isManifest(doc)) continue;
    const digest = `sha256:${hex}`;
    const layers = new Map<string, ObjectId>();
    for (const d of diffIdsOf(doc)) {
      const id = layerIds.get(d) ?? repo.hasStream(layerContentId(d));
      if (!id) throw new RepositoryError(`upgrade: config ${digest} needs layer ${d}, not stored`);
      layers.set(d, id);
    }
    const existing = repo.hasStream(configContentId(digest));
    configIds.set(
      digest,
      existing ?? (await writeConfigStream(repo, raw.get(hex)!, diffIdsOf(doc), layers)).id,
    );
    newName.set(hex, configContentId(digest));
    report.converted.configs++;
  }
  // Manifests: named refs to config and layers.
  for (const [hex, doc] of docs) {
    if (!isManifest(doc)) continue;
    const digest = `sha256:${hex}`;
    const configDigest = (doc.config as { digest?: unknown }).digest;
    if (typeof configDigest !== "string") continue;
    const configId = configIds.get(configDigest) ?? repo.hasStream(configContentId(configDigest));
    const config = docs.get(configDigest.replace(/^sha256:/, ""));
    if (!configId || !config) {
      throw new RepositoryError(`upgrade: manifest ${digest} needs config ${configDigest}`);
    }
    const layers = diffIdsOf(config).map((d) =>
      [d, layerIds.get(d) ?? repo.hasStream(layerContentId(d))!] as [string, ObjectId]
    );
    if (!repo.hasStream(manifestContentId(digest))) {
      await writeManifestStream(repo, raw.get(hex)!, digest, configDigest, configId, layers);
    }
    newName.set(hex, manifestContentId(digest));
    report.converted.manifests++;
  }
  // Every ref to a legacy stream now names its new stream.
  for (const r of repo.listStreamRefs()) {
    const target = newName.get(r.contentId);
    if (target === undefined) continue;
    repo.nameStream(target, r.name);
    report.refsMoved++;
  }
  // The old links and cfs's old image refs go; gc collects what only they kept.
  for (const hex of newName.keys()) {
    try {
      Deno.removeSync(`${repo.streams.dir}/${hex}`);
    } catch { /* already gone */ }
  }
  for (const r of repo.listImages().refs) {
    if (/^oci-config-sha256:[0-9a-f]{64}(\.boot)?$/.test(r.name)) repo.removeRef("images", r.name);
  }
}

function emptyReport(): UpgradeReport {
  return {
    converted: { manifests: 0, configs: 0, layers: 0 },
    refsMoved: 0,
    upgraded: 0,
    alreadyCurrent: 0,
    skippedNonContainer: 0,
  };
}

/**
 * Step 1 alone: rewrites streams still in cfsctl 0.3.0's format (a no-op, reading only, when
 * there are none). `cfs oci pull` runs this; `cfs pull` runs {@link upgradeRepository}.
 */
export async function convertLegacyRepository(repo: Repository): Promise<UpgradeReport> {
  const report = emptyReport();
  await convertLegacyStreams(repo, report);
  return report;
}

/**
 * Brings the repository's OCI content to composefs-rs 0.9.4's format (see the module
 * documentation). `onImage` hears of each image being upgraded (progress).
 */
export async function upgradeRepository(
  repo: Repository,
  onImage?: (tag: string) => void,
): Promise<UpgradeReport> {
  const report = emptyReport();
  await convertLegacyStreams(repo, report);
  const done = new Set<string>();
  for (const { tag, manifestDigest } of listTags(repo)) {
    let image: OciImage;
    try {
      image = OciImage.open(repo, manifestDigest);
    } catch (e) {
      throw new RepositoryError(`upgrade: opening image ${tag}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (!image.isContainerImage) {
      report.skippedNonContainer++;
      continue;
    }
    if (image.imageRef(repo.erofsVersion) || done.has(manifestDigest)) {
      report.alreadyCurrent++;
      continue;
    }
    onImage?.(tag);
    await commitOciImages(repo, manifestDigest, image.manifestId, { tag });
    done.add(manifestDigest);
    report.upgraded++;
  }
  return report;
}

/** Whether the repository holds anything {@link upgradeRepository} would change (read-only). */
export function needsUpgrade(repo: Repository): boolean {
  if (legacyStreamNames(repo).length > 0) return true;
  for (const { manifestDigest } of listTags(repo)) {
    try {
      const image = OciImage.open(repo, manifestDigest);
      if (image.isContainerImage && !image.imageRef(repo.erofsVersion)) return true;
    } catch {
      return true;
    }
  }
  return false;
}
