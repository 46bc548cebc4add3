/**
 * The parts of the QEMU tier that are about getting things into the guest and finding the old
 * oracle: cfsctl 0.3.0's location, the guest's kernel modules, and the read-only ext4 disk that
 * carries host trees into the guest (test/vm/guest_cfs.ts boots the guest and runs cfs, cfsctl
 * 0.3.0 and cfsctl 0.9.4 there).
 *
 * cfsctl 0.3.0 is only the oracle for repositories in the old format now (cfsctl 0.9.4 runs on
 * this host for everything else, see test/oracles.ts). It stores every file above 64 bytes
 * with fs-verity enabled and this host's kernel has no CONFIG_FS_VERITY, so it runs in the
 * guest (Debian's kernel has it), on an ext4 file system with the `verity` feature.
 *
 * How trees get into the guest: QEMU's 9p server (passthrough) forwards only `user.*` and POSIX
 * ACL xattrs (`trusted.*` and `security.*` fail with EOPNOTSUPP in the guest), and
 * `mkfs.ext4 -d` of e2fsprogs 1.47.0 loses nanoseconds and wraps mtimes past 2038. So each tree
 * is copied with `cp -a` (all xattrs, device nodes, fifos, sockets, hardlinks, owners, modes, ns
 * mtimes) into a fresh ext4 image loop-mounted on the host (in a private mount namespace, so
 * nothing stays mounted), which the guest mounts read-only. The only difference a guest `stat`
 * shows is `st_nlink` of a file hardlinked from outside its tree.
 *
 * Host needs (as root): mkfs.ext4, cp, unshare, mount with loop devices, du.
 *
 * @module
 */
import { cfsctl03, ORACLE_HINTS } from "../oracles.ts";
import * as fs from "node:fs";
import { spawnSync } from "node:child_process";

/** Kernel modules the guest needs (dependencies are added from modules.dep). */
export const GUEST_MODULES = [
  "virtio_pci",
  "virtio_blk",
  "9pnet_virtio",
  "9p",
  "crc32c_generic", // ext4/jbd2 metadata checksums (would be autoloaded through modprobe)
  "ext4",
];

/** Locates cfsctl 0.3.0 (`explicit`, else `$CFSCTL_0_3`, see test/oracles.ts); throws with an install hint. */
export function findCfsctl(explicit?: string): string {
  if (explicit) {
    if (!fs.existsSync(explicit)) {
      throw new Error(`cfsctl not found at ${explicit} (${ORACLE_HINTS["0.3"]})`);
    }
    return explicit;
  }
  return cfsctl03();
}

/** Size estimate of a tree, for sizing the disk images. */
export interface TreeStats {
  bytes: number;
  entries: number;
}

/** Apparent bytes plus 4 KiB per entry, and the entry count, of a tree (`du`, no symlinks). */
export function treeStats(root: string): TreeStats {
  const du = (flag: string) => {
    const r = spawnSync("du", ["-s", "-B1", flag, "--", root], { encoding: "utf8" });
    const n = Number(r.stdout?.split(/\s/)[0]);
    if (r.status !== 0 || !Number.isFinite(n)) {
      throw new Error(`du ${flag} ${root} failed: ${r.stderr}`);
    }
    return n;
  };
  const entries = du("--inodes");
  return { bytes: du("--apparent-size") + 4096 * entries, entries };
}

function run(cmd: string, args: string[], what: string): void {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    throw new Error(
      `${what} failed (${cmd} exit ${r.status ?? r.signal}): ${r.error ?? ""}${r.stderr}`,
    );
  }
}

/**
 * Builds the read-only trees disk: an ext4 image whose directory `/<i>` is `cp -a` of
 * `trees[i]`. The loop mount lives in a private mount namespace (`unshare -m`), so it goes away
 * with the process even if it is killed.
 */
export function buildTreesImage(image: string, trees: string[], stats: TreeStats[]): void {
  const bytes = stats.reduce((n, s) => n + s.bytes, 0);
  const entries = stats.reduce((n, s) => n + s.entries, 0);
  const size = Math.ceil((bytes * 1.25 + 256 * 2 ** 20) / 2 ** 20); // MiB, sparse
  const mnt = image + ".mnt";
  fs.mkdirSync(mnt, { recursive: true });
  fs.writeFileSync(image, "");
  fs.truncateSync(image, size * 2 ** 20);
  run("mkfs.ext4", [
    "-q",
    "-F",
    "-b",
    "4096",
    "-I",
    "256", // room for ns timestamps (1901..2446) and in-inode xattrs
    "-N",
    String(entries + 4096),
    "-O",
    "^has_journal,ea_inode", // ea_inode: xattr values larger than a block
    "-E",
    "root_owner=0:0",
    "-L",
    "cfstrees",
    image,
  ], "mkfs.ext4 (trees image)");
  const script = `set -e
img=$1; mnt=$2; shift 2
mount -o loop "$img" "$mnt"
i=0
for t in "$@"; do
  cp -a -- "$t" "$mnt/$i"
  i=$((i + 1))
done
umount "$mnt"
`;
  try {
    run("unshare", [
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      script,
      "sh",
      image,
      mnt,
      ...trees,
    ], "copying the trees into the ext4 image");
  } finally {
    fs.rmSync(mnt, { recursive: true, force: true });
  }
}
