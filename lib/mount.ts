/**
 * Mounting a composefs image from the repository with the kernel's EROFS and overlayfs:
 * the image is mounted read-only from a loop device on a private temporary directory, an
 * overlay is mounted at the mount point with that EROFS as its only layer and `objects/`
 * as its data-only layer (`lowerdir=IMAGE::OBJECTS`, `metacopy=on`, `redirect_dir=on`),
 * then the EROFS mount is detached (`umount -l`): the overlay keeps it alive, and nothing
 * is left behind to clean up when the overlay is unmounted. In a secure repository the
 * overlay also gets `verity=require`, so the kernel checks every object's fs-verity digest
 * against the one the image records.
 *
 * Needs root (mount(2)). Uses the `mount`/`umount` programs through dax; their stderr is
 * carried in the one-line error.
 *
 * @module
 */
import { CfsError } from "./errors.ts";
import { dax$ } from "./dax.ts";
import { join } from "node:path";
import type { Repository } from "./repository.ts";

/** A mount that failed. */
export class MountError extends CfsError {
  /** Creates the error; the message is one line naming the input. */
  constructor(message: string) {
    super(message, { code: "mount-failed" });
    this.name = "MountError";
  }
}

async function runMount(args: string[], what: string): Promise<void> {
  const $ = await dax$();
  const r = await $`${args}`.stdout("null").stderr("piped").noThrow();
  if (r.code !== 0) {
    throw new MountError(`${what}: ${r.stderr.trim().split("\n").pop() ?? `exit ${r.code}`}`);
  }
}

/** Mounts image `idHex` of `repo` at `mountpoint`; see the module documentation. */
export async function mountImage(
  repo: Repository,
  idHex: string,
  mountpoint: string,
): Promise<void> {
  const image = join(repo.path, "images", idHex);
  const lower = await Deno.makeTempDir({ prefix: "cfs-erofs-" });
  try {
    await runMount(
      ["mount", "-t", "erofs", "-o", "loop,ro", image, lower],
      `cannot mount image ${idHex}`,
    );
    try {
      const opts = [
        "ro",
        "metacopy=on",
        "redirect_dir=on",
        `lowerdir=${lower}::${join(repo.path, "objects")}`,
      ];
      if (repo.secure) opts.push("verity=require");
      await runMount(
        ["mount", "-t", "overlay", "-o", opts.join(","), "composefs", mountpoint],
        `cannot mount image ${idHex} on ${mountpoint}`,
      );
    } finally {
      await runMount(["umount", "-l", lower], `cannot detach ${lower}`);
    }
  } finally {
    await Deno.remove(lower).catch(() => {});
  }
}
