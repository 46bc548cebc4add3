/**
 * The cfs initramfs drop-in, behind `cfs initramfs`, `cfs vm-test` and `make vm-test`: an
 * initramfs whose `/init` (busybox ash, PID 1) loads the kernel modules, runs
 * `cfs setup-root` and `switch_root`s into the composed root; and the same cfs as a dracut
 * module directory for distributions whose initramfs dracut makes.
 *
 * cfs goes in as what it is where it runs ({@link cfsPayload}):
 *
 * - a `deno compile`d cfs (`make binary`, or `--cfs-binary FILE`) is copied as `/usr/bin/cfs`;
 * - otherwise the `deno` executable plus cfs bundled into one JavaScript file
 *   (`/usr/lib/cfs/cfs.js`: the bundle cfs itself runs from, or `deno bundle cli.ts` with the
 *   checkout's own deno.json, so it works from any directory), and `/usr/bin/cfs`, a script
 *   that runs it with Deno. npm packages are inside the bundle: no npm cache, no network.
 *
 * Either way the initramfs runs `cfs setup-root` by that one name.
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
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";

/** Prefix of the drop-in `/init`'s console lines. */
export const DROPIN_MARKER = "cfs-initramfs";

/** The drop-in could not be written (code `initramfs-failed`): names the input at fault. */
export class DropinError extends CfsError {
  /** Creates the error. */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, withCode(options, "initramfs-failed"));
    this.name = "DropinError";
  }
}

/**
 * Kernel modules setup-root needs on Debian's kernel (all `=m` there): the virtio disk,
 * ext4 (with crc32c for its checksums), loop devices for the EROFS image, erofs, overlay,
 * and sha512 (Debian builds it as a module; fs-verity with SHA-512 fails with ENOPKG without
 * it, and busybox has no modprobe to autoload it). Those a kernel has built in
 * (`modules.builtin`) are left out.
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

/** The checkout's entry point and configuration (when cfs runs from source). */
const CLI = new URL("../../cli.ts", import.meta.url);
const CONFIG = new URL("../../deno.json", import.meta.url);

/**
 * Whether this module runs from its own source file. In a bundle every module's
 * `import.meta.url` is the bundle's; in a compiled binary `Deno.build.standalone` is set.
 */
function fromSource(): boolean {
  return !Deno.build.standalone && import.meta.url.endsWith("/lib/vm/dropin.ts");
}

/**
 * Bundles cfs into one JavaScript file with `deno bundle --platform deno` (Deno 2.4 and
 * later; it fetches esbuild from npm the first time), with the checkout's deno.json named
 * explicitly: Deno looks for a configuration from the working directory, and without one
 * the bare imports (`dax`, `zod`, ...) do not resolve. Throws with Deno's message on failure.
 */
export async function bundleCfs(out: string, deno = Deno.execPath()): Promise<void> {
  if (CLI.protocol !== "file:" || !fs.existsSync(fileURLToPath(CLI))) {
    throw new DropinError(`cannot bundle cfs: ${CLI.href} is not a source file`);
  }
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const cli = fileURLToPath(CLI);
  const r = await new Deno.Command(deno, {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "deno",
      "--config",
      fileURLToPath(CONFIG),
      "-o",
      out,
      cli,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (r.code !== 0) {
    const why = new TextDecoder().decode(r.stderr).trim().split("\n")
      .filter((l) => l.trim() && !/^\s*(\d+:|Stack backtrace)/.test(l)).slice(0, 3).join(" ");
    throw new DropinError(`deno bundle ${cli} failed: ${why}`);
  }
}

/** What carries cfs into an initramfs; see the module documentation. */
export type CfsPayload =
  /** A `deno compile`d cfs. */
  | { kind: "binary"; binary: string }
  /** Deno's ELF executable and cfs bundled into one file. */
  | { kind: "bundle"; deno: string; bundle: string };

/** Input of {@link cfsPayload}. */
export interface CfsPayloadOptions {
  /** A compiled cfs to carry (`make binary`'s `dist/cfs`); default: this one, if compiled. */
  binary?: string;
  /** The Deno executable for a bundle; default this process's (the ELF behind a wrapper). */
  deno?: string;
  /** Where a new bundle is written when cfs runs from source. */
  workDir: string;
}

/**
 * The cfs to carry: `binary` if given; this process's executable when it is a compiled cfs;
 * else Deno with the bundle this process runs from, or with a new bundle of the checkout.
 */
export async function cfsPayload(o: CfsPayloadOptions): Promise<CfsPayload> {
  if (o.binary !== undefined) {
    if (!isElf(o.binary)) throw new DropinError(`${o.binary}: not an ELF executable`);
    return { kind: "binary", binary: o.binary };
  }
  if (Deno.build.standalone) return { kind: "binary", binary: Deno.execPath() };
  const deno = o.deno !== undefined ? denoElf([o.deno]) : denoElf();
  if (!fromSource()) return { kind: "bundle", deno, bundle: fileURLToPath(import.meta.url) };
  const bundle = path.join(o.workDir, "cfs.js");
  await bundleCfs(bundle, deno);
  return { kind: "bundle", deno, bundle };
}

/** Where the bundle goes in an initramfs (and in a dracut module's install). */
export const BUNDLE_PATH = "/usr/lib/cfs/cfs.js";

/**
 * `/usr/bin/cfs` of a bundle payload: Deno runs the bundle with every permission, no
 * configuration file, no remote imports and no prompts; Deno's cache goes to `/run` (an
 * initramfs may have no writable home).
 */
export function bundleLauncher(deno = "/usr/bin/deno", bundle = BUNDLE_PATH): string {
  return `#!/bin/sh
# cfs: Deno running cfs bundled into one file (written by 'cfs initramfs').
export DENO_DIR="\${DENO_DIR:-/run/cfs/deno}" DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1
exec ${deno} run --allow-all --quiet --no-config --no-remote --no-prompt ${bundle} "$@"
`;
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
export PATH=/usr/bin:/bin:/sbin:/usr/sbin HOME=/tmp TMPDIR=/tmp NO_COLOR=1
up() { cut -d' ' -f1 /proc/uptime; }
die() { echo "${m}: FAILED $*"; poweroff -f; sleep 60; }
echo "${m}: start $(up)"
for k in /modules/*.ko; do [ -e "$k" ] || continue; insmod "$k" || die "insmod $k"; done
echo "${m}: setup-root $(up)"
/usr/bin/cfs setup-root
rc=$?
[ $rc -eq 0 ] || die "setup-root exit $rc"
echo "${m}: switch_root $(up)"
exec switch_root /sysroot ${init}
`;
}

/** Modules of a kernel tree: the files to load (in order) and the names it has built in. */
export interface DropinModules {
  /** Module files, dependencies first (from `modules.dep`). */
  names: string[];
  /** Names left out because the kernel has them built in (`modules.builtin`). */
  builtin: string[];
}

const modName = (p: string) => path.basename(p).replace(/\.ko(\.(xz|zst|gz))?$/, "");
const norm = (n: string) => n.replaceAll("-", "_");

/**
 * Splits `names` into modules the tree at `modulesDir` has as files and those built into its
 * kernel; a name that is neither is a {@link DropinError} naming it and the tree.
 */
export function dropinModules(modulesDir: string, names = DROPIN_MODULES): DropinModules {
  const read = (f: string) => {
    try {
      return fs.readFileSync(path.join(modulesDir, f), "utf8");
    } catch (e) {
      throw new DropinError(
        `${modulesDir}: no kernel module tree (${f}: ${(e as Error).message.split("\n")[0]})`,
      );
    }
  };
  const dep = new Set(
    read("modules.dep").split("\n").map((l) => l.slice(0, l.indexOf(":"))).filter(Boolean)
      .map((m) => norm(modName(m))),
  );
  let builtinText = "";
  try {
    builtinText = fs.readFileSync(path.join(modulesDir, "modules.builtin"), "utf8");
  } catch { /* a tree without it has nothing built in that we know of */ }
  const builtinSet = new Set(builtinText.split("\n").filter(Boolean).map((m) => norm(modName(m))));
  const out: DropinModules = { names: [], builtin: [] };
  for (const n of names) {
    if (dep.has(norm(n))) out.names.push(n);
    else if (builtinSet.has(norm(n))) out.builtin.push(n);
    else {throw new DropinError(
        `kernel module ${n} is neither in ${modulesDir}/modules.dep nor built in`,
      );}
  }
  return out;
}

/** Input of {@link buildDropinInitramfs}. */
export interface DropinOptions {
  /** Output file (an uncompressed newc cpio). */
  out: string;
  /** Kernel release of the modules (their tree's default path, `/lib/modules/<release>`). */
  kernelVersion: string;
  /** Module tree (with `modules.dep`); default `/lib/modules/<kernelVersion>`. */
  modulesDir?: string;
  /** Static busybox; default `/bin/busybox`. */
  busybox?: string;
  /** cfs to carry ({@link cfsPayload}). */
  payload: CfsPayload;
  /** Module names; default {@link DROPIN_MODULES}. */
  modules?: string[];
  /** The program `switch_root` starts; default `/sbin/init`. */
  init?: string;
}

/** What {@link buildDropinInitramfs} wrote. */
export interface DropinResult extends InitramfsResult {
  /** How cfs went in. */
  payload: CfsPayload["kind"];
  /** Module names left out as built into the kernel. */
  builtin: string[];
}

/** Writes the drop-in initramfs; see the module documentation. */
export function buildDropinInitramfs(o: DropinOptions): DropinResult {
  const modulesDir = o.modulesDir ?? `/lib/modules/${o.kernelVersion}`;
  const mods = dropinModules(modulesDir, o.modules ?? DROPIN_MODULES);
  const busybox = o.busybox ?? "/bin/busybox";
  if (!isElf(busybox)) {
    throw new DropinError(`${busybox}: no static busybox (apt-get install busybox-static)`);
  }
  const p = o.payload;
  const r = buildInitramfs({
    init: dropinInit(o.init),
    binaries: [
      { source: busybox, path: "/bin/busybox" },
      p.kind === "binary"
        ? { source: p.binary, path: "/usr/bin/cfs" }
        : { source: p.deno, path: "/usr/bin/deno" },
    ],
    files: p.kind === "binary" ? [] : [
      { path: BUNDLE_PATH, source: p.bundle, mode: 0o644 },
      { path: "/usr/bin/cfs", data: bundleLauncher(), mode: 0o755 },
    ],
    modules: { kernelVersion: o.kernelVersion, names: mods.names, modulesDir },
    out: o.out,
  });
  return { ...r, payload: p.kind, builtin: mods.builtin };
}

/** Kernel modules the dracut module installs (dracut adds the storage drivers itself). */
export const DRACUT_MODULES = ["erofs", "overlay", "loop", "sha512_generic"];

/**
 * The files of a dracut module directory (name -> content; `payload` files are copied by
 * {@link writeDracutModule}). `module-setup.sh` is included only on request (`check` returns
 * 255: `dracut --add cfs`, or `add_dracutmodules+=" cfs "`), installs cfs, the kernel modules
 * and a `pre-pivot` hook: dracut has mounted the root device on `$NEWROOT` then, and
 * `cfs setup-root --sysroot $NEWROOT` puts the composefs image there before the switch.
 * Hooks are sourced by dracut's init, so the hook ends with `die` on failure, never `exit`.
 */
export function dracutModuleFiles(kind: CfsPayload["kind"]): Record<string, string> {
  const installCfs = kind === "binary" ? `    inst_binary "$moddir/cfs" /usr/bin/cfs` : [
    `    inst_binary "$moddir/deno" /usr/bin/deno`,
    `    inst_simple "$moddir/cfs.js" ${BUNDLE_PATH}`,
    `    inst_script "$moddir/cfs-launcher" /usr/bin/cfs`,
  ].join("\n");
  return {
    "module-setup.sh": `#!/bin/bash
# dracut module "cfs" (written by 'cfs initramfs --dracut'): mounts the composefs image named
# by composefs.digest= or composefs= on the kernel command line as the root, with cfs
# setup-root, before dracut switches to it. Install this directory as
# /usr/lib/dracut/modules.d/90cfs and add it with 'dracut --add cfs'.

# Only on request: nothing on the host tells dracut that the root is a composefs image.
check() {
    return 255
}

depends() {
    echo base
    return 0
}

installkernel() {
    hostonly='' instmods ${DRACUT_MODULES.join(" ")}
}

install() {
${installCfs}
    inst_hook pre-pivot 50 "$moddir/cfs-setup-root.sh"
}
`,
    "cfs-setup-root.sh": `#!/bin/sh
# dracut pre-pivot hook (sourced by dracut's init): the root device is mounted on $NEWROOT;
# cfs setup-root mounts the composefs image there (the device moves to $NEWROOT/sysroot).
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh
if getarg composefs.digest= >/dev/null || getarg composefs= >/dev/null; then
    info "cfs: setup-root on \${NEWROOT:-/sysroot}"
    /usr/bin/cfs setup-root --sysroot "\${NEWROOT:-/sysroot}" ||
        die "cfs setup-root failed (exit $?): the composefs root is not mounted"
fi
`,
    ...(kind === "bundle" ? { "cfs-launcher": bundleLauncher("/usr/bin/deno", BUNDLE_PATH) } : {}),
  };
}

/** Writes a dracut module directory for `payload` into `dir`; returns the names written. */
export function writeDracutModule(dir: string, payload: CfsPayload): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, text] of Object.entries(dracutModuleFiles(payload.kind))) {
    fs.writeFileSync(path.join(dir, name), text, { mode: 0o755 });
    fs.chmodSync(path.join(dir, name), 0o755);
    written.push(name);
  }
  const copy = (from: string, name: string, mode: number) => {
    fs.copyFileSync(from, path.join(dir, name));
    fs.chmodSync(path.join(dir, name), mode);
    written.push(name);
  };
  if (payload.kind === "binary") copy(payload.binary, "cfs", 0o755);
  else {
    copy(payload.deno, "deno", 0o755);
    copy(payload.bundle, "cfs.js", 0o644);
  }
  return written.sort();
}

function isElf(file: string): boolean {
  try {
    const fd = fs.openSync(fs.realpathSync(file), "r");
    const head = new Uint8Array(4);
    try {
      fs.readSync(fd, head, 0, 4, 0);
    } finally {
      fs.closeSync(fd);
    }
    return head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
  } catch {
    return false;
  }
}

/** The real Deno ELF behind `path` (npm installs `.bin/deno` as a symlink or a wrapper). */
export function denoElf(candidates: string[] = [Deno.execPath()]): string {
  for (const c of candidates) {
    try {
      const real = fs.realpathSync(c);
      if (isElf(real)) return real;
    } catch {
      // next
    }
  }
  throw new DropinError(`no Deno ELF executable among ${candidates.join(", ")}`);
}
