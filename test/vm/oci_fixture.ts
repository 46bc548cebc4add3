/**
 * The OCI image the QEMU tests pull: the 3-layer whiteout/hardlink fixture of
 * test/fixtures/oci.ts (`SAMPLE_LAYERS`) plus one layer with what bootc's pull needs to make a
 * bootable image (`/boot`, `/sysroot`; `/usr` is there already) and files above 64 bytes, so
 * that the image has external objects, which are what fs-verity is about. Layers alternate
 * gzip and zstd.
 *
 * @module
 */
import { buildOciImage, type BuiltImage, type LayerSpec, SAMPLE_LAYERS } from "../fixtures/oci.ts";
import { cfsctl09Ok } from "../oracles.ts";

/** The layer that makes SAMPLE_LAYERS bootable and gives it external objects. */
export const BOOT_LAYER: LayerSpec = [
  { type: "dir", path: "boot" },
  { type: "dir", path: "sysroot" },
  { type: "file", path: "boot/vmlinuz", content: "k".repeat(3000) },
  { type: "file", path: "usr/share/big", content: "b".repeat(300000) },
  { type: "file", path: "usr/share/65", content: "c".repeat(65) },
];

/**
 * Builds the image as the OCI layout `dir`, tagged `v1`. The uncompressed layer tars (kept
 * beside the layout by the builder) are removed: guests do not need them.
 */
export async function buildGuestImage(dir: string): Promise<BuiltImage> {
  const img = await buildOciImage(dir, {
    tag: "v1",
    compression: ["gzip", "zstd", "gzip", "zstd"],
    layers: [...SAMPLE_LAYERS, BOOT_LAYER],
  });
  await Deno.remove(`${dir}.work`, { recursive: true });
  return img;
}

/** cfsctl 0.9.4's image ids of an image: plain and bootable (`oci compute-id`). */
export interface OracleImageIds {
  plain: string;
  bootable: string;
}

/**
 * The expected image ids of the layout `dir` (tag `v1`): cfsctl 0.9.4 pulls it into a fresh
 * insecure repository `repo` on this host (ids do not depend on fs-verity being enforced) with
 * the given algorithm and the default EROFS format (V1), and computes them.
 */
export async function oracleImageIds(
  dir: string,
  repo: string,
  algorithm: "fsverity-sha256-12" | "fsverity-sha512-12",
): Promise<OracleImageIds> {
  await cfsctl09Ok(["init", "--insecure", "--algorithm", algorithm, repo]);
  await cfsctl09Ok(["--repo", repo, "oci", "pull", `oci:${dir}:v1`, "fresh"]);
  const id = async (...flags: string[]) =>
    (await cfsctl09Ok(["--repo", repo, "oci", "compute-id", ...flags, "fresh"])).trim();
  return { plain: await id(), bootable: await id("--bootable") };
}
