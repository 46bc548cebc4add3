/**
 * `oci fsck`: checks pulled images end to end, from the tag down to every object: the
 * manifest and config streams hold content whose sha256 is their name, the manifest's
 * digest map points at the config stream that is stored, the config's digest map points
 * at the layer streams that are stored, and each layer stream's content (its objects read
 * and verified) has the config's diff_id as sha256. Problems are collected, not thrown, so
 * one report covers every image.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Repository } from "../repository.ts";
import { parseSplitStream } from "../splitstream.ts";
import { findImage, listTags, readStoredStream } from "./store.ts";
import { fromHex, toHex } from "../fsverity/digest.ts";

/** The result for one image. */
export interface ImageFsckReport {
  /** What was checked (the tag or name given). */
  image: string;
  /** `sha256:...` of the manifest, when the name led to one. */
  manifest?: string;
  /** `sha256:...` of the config. */
  config?: string;
  /** Layer streams whose content was read and hashed. */
  layersChecked: number;
  /** One line per problem; empty when the image is whole. */
  problems: string[];
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Checks one image (a tag or any name {@link findImage} takes). */
export async function fsckImage(repo: Repository, name: string): Promise<ImageFsckReport> {
  const report: ImageFsckReport = { image: name, layersChecked: 0, problems: [] };
  try {
    const img = await findImage(repo, name);
    report.manifest = img.manifestSha256 && `sha256:${img.manifestSha256}`;
    report.config = `sha256:${img.configSha256}`;
    if (img.manifestSha256) {
      const m = await readStoredStream(repo, img.manifestSha256);
      if (sha256Hex(m.content) !== img.manifestSha256) {
        report.problems.push(`manifest stream ${img.manifestSha256}: content has another sha256`);
      }
    }
    const c = await readStoredStream(repo, img.configSha256);
    if (sha256Hex(c.content) !== img.configSha256) {
      report.problems.push(`config stream ${img.configSha256}: content has another sha256`);
    }
    const diffIds = (img.config.rootfs as { diff_ids?: unknown } | undefined)?.diff_ids;
    if (!Array.isArray(diffIds) || !diffIds.every((d) => typeof d === "string")) {
      report.problems.push(`config ${img.configSha256}: rootfs.diff_ids is not a list`);
      return report;
    }
    const layers = img.manifest?.layers;
    if (Array.isArray(layers) && layers.length !== diffIds.length) {
      report.problems.push(
        `manifest ${img.manifestSha256}: ${layers.length} layers, config has ${diffIds.length} diff_ids`,
      );
    }
    for (const diffId of diffIds as string[]) {
      const hex = diffId.startsWith("sha256:") ? diffId.slice(7) : "";
      if (!/^[0-9a-f]{64}$/.test(hex)) {
        report.problems.push(`config ${img.configSha256}: diff_id ${diffId} is not sha256`);
        continue;
      }
      const recorded = c.reader.lookup(fromHex(hex));
      const stored = repo.hasStream(hex);
      if (!stored) {
        report.problems.push(`layer ${diffId}: stream missing`);
        continue;
      }
      if (!recorded || toHex(recorded) !== toHex(stored)) {
        report.problems.push(`layer ${diffId}: stream is not the one the config recorded`);
        continue;
      }
      try {
        const { bytes } = repo.readStream(hex);
        const stream = parseSplitStream(bytes, {
          name: `layer stream ${hex}`,
          objectIdLength: repo.algorithm === "sha512" ? 64 : 32,
        });
        const h = createHash("sha256");
        for await (const chunk of stream.cat((id) => repo.readObject(id))) h.update(chunk);
        if (h.digest("hex") !== hex) {
          report.problems.push(`layer ${diffId}: content has another sha256`);
        }
      } catch (e) {
        report.problems.push(`layer ${diffId}: ${(e as Error).message}`);
      }
      report.layersChecked++;
    }
  } catch (e) {
    report.problems.push((e as Error).message);
  }
  return report;
}

/** Checks every tagged image (a dangling tag is a problem of its own). */
export async function fsckAllImages(repo: Repository): Promise<ImageFsckReport[]> {
  const out: ImageFsckReport[] = [];
  for (const t of listTags(repo)) {
    if (t.manifestSha256 === null) {
      out.push({
        image: t.tag,
        layersChecked: 0,
        problems: ["tag does not point at a sha256 stream"],
      });
    } else {
      out.push(await fsckImage(repo, t.tag));
    }
  }
  return out;
}
