/**
 * `oci fsck`: the repository check (repository/fsck.ts) plus composefs-oci 0.9.4's checks of
 * every tagged image (or one): the manifest stream holds bytes whose sha256 is the manifest
 * digest, names its config stream (`config:<digest>`), the config's bytes hash to its digest,
 * the config names a stream for every layer (`<diff_id>`), and each such stream and its object
 * exist. Errors carry 0.9.4's kinds (`fsck: manifest-digest-mismatch: TAG: ...`).
 *
 * @module
 */
import { ObjectId, type Repository } from "../repository/mod.ts";
import type { FsckReport } from "../repository/fsck.ts";
import { CONTENT_TYPE } from "../splitstream/format.ts";
import {
  configContentId,
  layerContentId,
  listTags,
  manifestContentId,
  MEDIA_TYPE_IMAGE_CONFIG,
  readExternalStream,
  resolveTag,
  sha256Digest,
} from "./store.ts";

/** One OCI-level problem: its kind, the image's name and what is wrong. */
export interface OciFsckProblem {
  /** `manifest-read-failed`, `config-digest-mismatch`, `layer-stream-missing`, ... */
  kind: string;
  /** The tag concerned. */
  name: string;
  /** The rest of the message. */
  detail: string;
}

/** The repository report plus the images'. */
export interface OciFsckReport {
  /** The repository-level check. */
  repo: FsckReport;
  /** Tagged images checked. */
  imagesChecked: number;
  /** Images with at least one problem. */
  imagesCorrupted: number;
  /** Every OCI-level problem. */
  errors: OciFsckProblem[];
  /** Both levels clean. */
  ok: boolean;
}

/** `fsck: KIND: NAME: DETAIL`, as cfsctl prints OCI errors. */
export function formatOciProblem(p: OciFsckProblem): string {
  return `fsck: ${p.kind}: ${p.name}${p.detail ? `: ${p.detail}` : ""}`;
}

function checkImage(
  repo: Repository,
  name: string,
  manifestDigest: string,
  errors: OciFsckProblem[],
): void {
  const err = (kind: string, detail: string): void => {
    errors.push({ kind, name, detail });
  };
  let manifest;
  try {
    manifest = readExternalStream(
      repo,
      manifestContentId(manifestDigest),
      CONTENT_TYPE.ociManifest,
    );
  } catch (e) {
    return err("manifest-read-failed", (e as Error).message);
  }
  const actual = sha256Digest(manifest.data);
  if (actual !== manifestDigest) {
    return err("manifest-digest-mismatch", `expected ${manifestDigest}, got ${actual}`);
  }
  let doc: { config?: { digest?: unknown; mediaType?: unknown }; layers?: unknown };
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(manifest.data));
  } catch (e) {
    return err("manifest-parse-failed", (e as Error).message);
  }
  const configDigest = typeof doc?.config?.digest === "string" ? doc.config.digest : "";
  const configId = manifest.namedRefs.get(`config:${configDigest}`);
  if (!configId) return err("config-ref-missing", configDigest);
  let config;
  try {
    config = readExternalStream(
      repo,
      configContentId(configDigest),
      CONTENT_TYPE.ociConfig,
      configId,
    );
  } catch (e) {
    return err("config-read-failed", (e as Error).message);
  }
  const configActual = sha256Digest(config.data);
  if (configActual !== configDigest) {
    return err("config-digest-mismatch", `expected ${configDigest}, got ${configActual}`);
  }
  const container = doc.config?.mediaType === MEDIA_TYPE_IMAGE_CONFIG ||
    doc.config?.mediaType === "application/vnd.docker.container.image.v1+json";
  if (container) {
    let parsed: { rootfs?: { diff_ids?: unknown } };
    try {
      parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(config.data));
    } catch (e) {
      return err("config-parse-failed", (e as Error).message);
    }
    const diffIds = Array.isArray(parsed?.rootfs?.diff_ids) ? parsed.rootfs.diff_ids : [];
    for (const d of diffIds) {
      if (typeof d !== "string") continue;
      const id = config.namedRefs.get(d);
      if (!id) {
        err("layer-ref-missing", d);
        continue;
      }
      if (!/^sha256:[0-9a-f]{64}$/.test(d)) {
        err("layer-check-failed", `${d}: Invalid diff_id`);
        continue;
      }
      if (!repo.hasStream(layerContentId(d))) err("layer-stream-missing", d);
      if (!repo.hasObject(id)) err("layer-object-missing", `${d}: object ${id.hex} is missing`);
    }
  } else {
    const layers = Array.isArray(doc.layers) ? doc.layers as Array<{ digest?: unknown }> : [];
    for (const l of layers) {
      if (typeof l?.digest !== "string") continue;
      const id: ObjectId | undefined = manifest.namedRefs.get(l.digest);
      if (!id) err("artifact-layer-ref-missing", l.digest);
      else if (!repo.hasObject(id)) {
        err("artifact-layer-object-missing", `${l.digest}: object ${id.hex} is missing`);
      }
    }
  }
}

/** Checks the repository and every tagged image, or only `name` (a tag). */
export async function fsckOci(repo: Repository, name?: string): Promise<OciFsckReport> {
  const report: OciFsckReport = {
    repo: await repo.fsck(),
    imagesChecked: 0,
    imagesCorrupted: 0,
    errors: [],
    ok: true,
  };
  const check = (tag: string, manifestDigest: string) => {
    report.imagesChecked++;
    const before = report.errors.length;
    checkImage(repo, tag, manifestDigest, report.errors);
    if (report.errors.length > before) report.imagesCorrupted++;
  };
  if (name !== undefined) {
    try {
      const r = resolveTag(repo, name);
      if (!r) throw new Error(`OCI reference not found: ${name}`);
      check(name, r.manifestDigest);
    } catch (e) {
      report.imagesChecked++;
      report.imagesCorrupted++;
      report.errors.push({ kind: "ref-resolve-failed", name, detail: (e as Error).message });
    }
  } else {
    for (const t of listTags(repo)) check(t.tag, t.manifestDigest);
  }
  report.ok = report.repo.ok && report.errors.length === 0;
  return report;
}
