/**
 * The cfs initramfs drop-in: an initramfs whose `/init` (busybox ash, PID 1) loads the kernel
 * modules, runs `cfs setup-root` and `switch_root`s into the composed root.
 *
 * cfs runs there as the `deno` executable plus cfs bundled into one JavaScript file
 * (`deno bundle cli.ts`, npm packages included: no npm cache, no network), started as
 * `deno run -A /cfs/cfs.js setup-root`. A `deno compile`d binary would replace both once the
 * denort runtime is available where cfs is built (see `make binary`).
 *
 * Console lines of `/init` start with {@link DROPIN_MARKER}; a failed setup-root prints
 * cfs's one-line error (`cfs: ...`) and then `<marker>: FAILED setup-root exit N`, and powers
 * the machine off.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { buildInitramfs, type InitramfsResult } from "./qemu.ts";

/** Prefix of the drop-in `/init`'s console lines. */
export const DROPIN_MARKER = "cfs-initramfs";

/**
 * Kernel modules setup-root needs on Debian's kernel (all `=m` there): the virtio disk,
 * ext4 (with crc32c for its checksums), loop devices for the EROFS image, erofs, overlay,
 * and sha512 (Debian builds it as a module; fs-verity with SHA-512 fails with ENOPKG without
 * it, and busybox has no modprobe to autoload it).
 */
export const DROPIN_MODULES: string[] = [
  "virtio_pci",
  "virtio_blk",
  "crc32c_generic",
  "ext4",
  "loop",
  "erofs",
  "overlay",
  "sha512_generic",
];

/** The checkout's entry point (`cli.ts`). */
const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));

/**
 * Bundles cfs into one JavaScript file with `deno bundle --platform deno` (Deno 2.4 and
 * later; it fetches esbuild from npm the first time). Throws with Deno's message on failure.
 */
export async function bundleCfs(out: string, deno = Deno.execPath()): Promise<void> {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const r = await new Deno.Command(deno, {
    args: ["bundle", "--quiet", "--platform", "deno", "-o", out, CLI],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (r.code !== 0) {
    throw new Error(`deno bundle ${CLI} failed: ${new TextDecoder().decode(r.stderr).trim()}`);
  }
}

/** The drop-in's `/init`. `init` is the program to switch to (default `/sbin/init`). */
export function dropinInit(init = "/sbin/init"): string {
  const m = DROPIN_MARKER;
  return `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /sysroot /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/tmp TMPDIR=/tmp DENO_DIR=/tmp/deno NO_COLOR=1
export DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1
up() { cut -d' ' -f1 /proc/uptime; }
die() { echo "${m}: FAILED $*"; poweroff -f; sleep 60; }
echo "${m}: start $(up)"
for k in /modules/*.ko; do [ -e "$k" ] || continue; insmod "$k" || die "insmod $k"; done
echo "${m}: setup-root $(up)"
/usr/bin/deno run -A --quiet --no-remote /cfs/cfs.js setup-root
rc=$?
[ $rc -eq 0 ] || die "setup-root exit $rc"
echo "${m}: switch_root $(up)"
exec switch_root /sysroot ${init}
`;
}

/** Input of {@link buildDropinInitramfs}. */
export interface DropinOptions {
  /** Output file (an uncompressed newc cpio). */
  out: string;
  /** Kernel release of the modules. */
  kernelVersion: string;
  /** Module tree (with `modules.dep`); default `/lib/modules/<kernelVersion>`. */
  modulesDir?: string;
  /** Static busybox; default `/bin/busybox`. */
  busybox?: string;
  /** The Deno ELF executable to carry. */
  deno: string;
  /** cfs bundled by {@link bundleCfs}. */
  bundle: string;
  /** Module names; default {@link DROPIN_MODULES}. */
  modules?: string[];
}

/** Writes the drop-in initramfs; see the module documentation. */
export function buildDropinInitramfs(o: DropinOptions): InitramfsResult {
  return buildInitramfs({
    init: dropinInit(),
    binaries: [
      { source: o.busybox ?? "/bin/busybox", path: "/bin/busybox" },
      { source: o.deno, path: "/usr/bin/deno" },
    ],
    files: [{ path: "/cfs/cfs.js", source: o.bundle, mode: 0o644 }],
    modules: {
      kernelVersion: o.kernelVersion,
      names: o.modules ?? DROPIN_MODULES,
      modulesDir: o.modulesDir,
    },
    out: o.out,
  });
}

/** The real Deno ELF behind `path` (npm installs `.bin/deno` as a symlink or a wrapper). */
export function denoElf(candidates: string[] = [Deno.execPath()]): string {
  for (const c of candidates) {
    try {
      const real = fs.realpathSync(c);
      const fd = fs.openSync(real, "r");
      const head = new Uint8Array(4);
      try {
        fs.readSync(fd, head, 0, 4, 0);
      } finally {
        fs.closeSync(fd);
      }
      if (head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) return real;
    } catch {
      // next
    }
  }
  throw new Error(`no Deno ELF executable among ${candidates.join(", ")}`);
}
