/**
 * Pulling an image from an OCI image layout (`oci:DIR[:TAG]`) into the repository, stored as
 * composefs-oci 0.3.0 `pull` stores it:
 *
 * - every layer as a splitstream named by its diff_id (`streams/<diff_id hex>`, no ref), via
 *   {@link importLayer}; layers already present are not read again;
 * - the config as a splitstream of its exact bytes (one inline fragment) whose digest map
 *   maps each layer's diff_id to the layer stream's object id, named by the config's sha256
 *   (`streams/<config sha256 hex>`), with `streams/refs/NAME` when a name is given;
 * - a config already present is kept as it is (its layers are then not checked again).
 *
 * The manifest is not stored (0.3.0 does not store it either).
 *
 * @module
 */
import { OciLayout } from "./layout.ts";
import { parseImageReference } from "./reference.ts";
import { importLayer, parseSha256 } from "./import.ts";
import { type DigestMapEntry, SplitStreamWriter } from "../splitstream.ts";
import { Repository, RepositoryError } from "../repository.ts";

/** What {@link pullOciLayout} stored. */
export interface PullResult {
  /** sha256 of the config JSON (the config stream's name). */
  configSha256: Uint8Array;
  /** The config stream's object id. */
  configStreamId: Uint8Array;
  /** How many layers were imported (0 when everything was present). */
  layersImported: number;
  /** True when the config stream already existed. */
  existing: boolean;
}

/** Pulls `ref` (`oci:DIR[:TAG]`) into `repo`; see the module documentation. */
export async function pullOciLayout(
  repo: Repository,
  ref: string,
  name?: string,
): Promise<PullResult> {
  const parsed = parseImageReference(ref);
  if (parsed.transport !== "oci") {
    throw new RepositoryError(
      `'${ref}': only oci:DIR[:TAG] image layouts can be pulled so far`,
    );
  }
  const layout = await OciLayout.open(parsed.path);
  const image = await layout.resolve({ tag: parsed.tag });
  const configSha256 = parseSha256(image.configDescriptor.digest);

  const present = repo.hasStream(configSha256);
  if (present) {
    if (name !== undefined) repo.nameStream(name, configSha256);
    return { configSha256, configStreamId: present, layersImported: 0, existing: true };
  }

  const map: DigestMapEntry[] = [];
  let layersImported = 0;
  for (const layer of image.layers) {
    const diffId = parseSha256(layer.diffId);
    let streamId = repo.hasStream(diffId);
    if (!streamId) {
      const r = await importLayer(repo, await layout.openLayer(layer), { contentSha256: diffId });
      streamId = r.streamId;
      if (!r.existing) layersImported++;
    }
    map.push({ body: diffId, verity: streamId });
  }

  const writer = new SplitStreamWriter({
    objectIdLength: repo.algorithm === "sha512" ? 64 : 32,
    digestMap: map,
    expectedSha256: configSha256,
  });
  let bytes: Uint8Array;
  try {
    writer.writeInline(image.configBytes);
    bytes = writer.finish();
  } catch (e) {
    writer.abort();
    throw e;
  }
  const configStreamId = repo.writeStream(bytes, configSha256, name);
  return { configSha256, configStreamId, layersImported, existing: false };
}
