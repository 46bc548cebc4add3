/**
 * The boot transform composefs-boot 0.9.4 applies for `--bootable` images
 * (`BootOps::transform_for_boot`): `/usr`, `/boot` and `/sysroot` must all be directories;
 * `/boot` and `/sysroot` are emptied and take `/usr`'s mtime (boot resources live outside
 * the image, and `/sysroot` only holds the host's deployments in ostree-container layouts),
 * then the tree is relabelled from its own SELinux policy, or stripped of every label when it
 * has none (lib/boot/selinux.ts).
 *
 * Two ways to find the policy files, as 0.9.4 has them: in the tree itself (a repository or
 * OCI image: {@link transformForBoot}), or in the directory on disk the tree was read from
 * when its large files were only hashed, not stored ({@link transformForBootFromDir}).
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";
import { type Directory, type FileSystem, TreeError } from "../tree.ts";
import {
  diskPolicyFiles,
  type PolicyFiles,
  type ReadExternal,
  relabelFromPolicy,
  SelinuxPolicyError,
  treePolicyFiles,
} from "./selinux.ts";

/** Thrown when a tree cannot be made bootable. */
export class BootTransformError extends CfsError {
  /** Creates the error; `message` says why the tree cannot be made bootable. */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, withCode(options, "boot-transform-failed"));
    this.name = "BootTransformError";
  }
}

/** The top-level directories the transform empties; both must exist. */
export const EMPTIED_TOPLEVEL_DIRS: readonly string[] = ["boot", "sysroot"];

function toplevel(fs: FileSystem, name: string): Directory {
  const inode = fs.root.entries.get(name);
  if (inode === undefined) {
    throw new BootTransformError(
      `cannot make the image bootable: the tree has no /${name} directory`,
    );
  }
  if (inode.kind !== "dir") {
    throw new BootTransformError(`cannot make the image bootable: /${name} is not a directory`);
  }
  return inode;
}

/** Empties `/boot` and `/sysroot` and gives them `/usr`'s mtime; throws when one is missing. */
export function emptyToplevelDirs(fs: FileSystem): void {
  const usr = toplevel(fs, "usr").stat;
  for (const name of EMPTIED_TOPLEVEL_DIRS) {
    const dir = toplevel(fs, name);
    dir.stat.mtime = usr.mtime;
    dir.stat.mtimeNsec = usr.mtimeNsec ?? 0;
    dir.entries.clear();
  }
}

function relabel(fs: FileSystem, files: () => PolicyFiles | undefined): void {
  try {
    relabelFromPolicy(fs, files());
  } catch (e) {
    if (e instanceof TreeError || e instanceof SelinuxPolicyError) {
      throw new BootTransformError(`cannot make the image bootable: ${e.message}`, { cause: e });
    }
    throw e;
  }
}

/**
 * Makes `fs` the bootable variant, in place, with the SELinux policy found in the tree.
 * @param readFile reads a regular file of the tree stored as an object (policy files).
 */
export function transformForBoot(fs: FileSystem, readFile: ReadExternal): void {
  emptyToplevelDirs(fs);
  relabel(fs, () => treePolicyFiles(fs, readFile));
}

/**
 * Makes `fs` (read from the directory `root`) the bootable variant, in place, with the
 * SELinux policy read from `root` on disk (0.9.4 `transform_for_boot_from_dir`).
 */
export function transformForBootFromDir(fs: FileSystem, root: string): void {
  emptyToplevelDirs(fs);
  relabel(fs, () => diskPolicyFiles(root));
}
