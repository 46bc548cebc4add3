/**
 * The boot transform cfsctl applies with `--bootable` (composefs-boot 0.3.0
 * `transform_for_boot`): `/boot` must exist; its contents are dropped and its mtime set to
 * 0 (boot resources live outside the image), then the tree is relabelled from its own
 * SELinux policy, when it has one.
 *
 * @module
 */
import { type FileSystem, TreeError } from "../tree.ts";
import { relabelFromImagePolicy } from "./selinux.ts";

/** Thrown when a tree cannot be made bootable. */
export class BootTransformError extends Error {
  /** Creates the error; `message` says why the tree cannot be made bootable. */
  constructor(message: string) {
    super(message);
    this.name = "BootTransformError";
  }
}

/**
 * Makes `fs` the bootable variant, in place.
 * @param readFile reads a regular file of the tree (inline or from the object store),
 *   used to load the SELinux policy files.
 */
export function transformForBoot(
  fs: FileSystem,
  readFile: (content: { type: "external"; digest: Uint8Array; size: number }) => Uint8Array,
): void {
  const boot = fs.root.entries.get("boot");
  if (boot === undefined) {
    throw new BootTransformError(`cannot make the image bootable: the tree has no /boot directory`);
  }
  if (boot.kind !== "dir") {
    throw new BootTransformError(`cannot make the image bootable: /boot is not a directory`);
  }
  boot.stat.mtime = 0;
  boot.entries.clear();
  try {
    relabelFromImagePolicy(fs, readFile);
  } catch (e) {
    if (e instanceof TreeError) {
      throw new BootTransformError(`cannot make the image bootable: ${e.message}`);
    }
    throw e;
  }
}
