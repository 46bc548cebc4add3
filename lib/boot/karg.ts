/**
 * The kernel argument that names a composefs image to boot, as composefs-boot 0.9.4 writes
 * it (`ComposefsCmdline::to_cmdline_arg`): the EROFS format decides the form, since an
 * initramfs that only knows `composefs=` images (format V2) must not pick a V1 one.
 *
 * - formats 0 and 1: `composefs.digest=v1-<hash>-12:<hex>` (`v1` names the format family, the
 *   algorithm is spelled as in `meta.json`'s `fsverity-<hash>-12`);
 * - format 2: `composefs=<hex>` (the algorithm follows from the digest length).
 *
 * A `?` right after `=` makes fs-verity optional at boot (development only).
 *
 * @module
 */
import type { ErofsVersion } from "../erofs/format.ts";
import { toHex, type VerityAlgorithm } from "../fsverity/digest.ts";

/** Options of {@link composefsKarg}. */
export interface KargOptions {
  /** The digest's algorithm. */
  algorithm: VerityAlgorithm;
  /** The image's EROFS format version. */
  version: ErofsVersion;
  /** Boot without fs-verity checks (`?` after `=`). */
  insecure?: boolean;
}

/** The kernel argument for the image whose fs-verity digest is `id` (module doc). */
export function composefsKarg(id: Uint8Array, options: KargOptions): string {
  const q = options.insecure ? "?" : "";
  if (options.version === 2) return `composefs=${q}${toHex(id)}`;
  return `composefs.digest=${q}v1-${options.algorithm}-12:${toHex(id)}`;
}
