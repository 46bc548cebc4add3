/**
 * Generic building blocks for running short-lived QEMU guests in tests:
 *
 * - {@link buildInitramfs}: writes a `newc` cpio archive (uncompressed; the kernel accepts it as
 *   is) from host files, inline data, host executables together with their shared libraries,
 *   and Linux kernel modules resolved with their dependencies from `modules.dep`.
 * - {@link bootQemu}: boots `qemu-system-x86_64` under TCG with a kernel + initrd, virtio disks
 *   and 9p shares, captures the serial console into a file, and enforces a timeout (QEMU is
 *   killed on timeout, and whenever the call ends with QEMU still running).
 * - {@link busyboxInit}: an `/init` script for a busybox initramfs: mounts, module loading,
 *   one command, status lines on the console, power-off, and a guest-side watchdog.
 * - {@link findGuestKernel}, {@link resolveModules}, {@link sharedLibraries},
 *   {@link tailFile}, {@link hashInputs}, {@link requireCommand}: helpers.
 *
 * Typical use (see `test/vm/cfsctl_oracle.ts`): build an initramfs from `/bin/busybox` (Debian's
 * `busybox-static`), the program to run and the modules `virtio_pci`, `virtio_blk`,
 * `9pnet_virtio`, `9p`, `crc32c_generic`, `ext4` of Debian's `linux-image-amd64`; boot it with
 * `console=ttyS0 panic=-1 quiet`; exchange files through a `-virtfs` share. Under TCG on a
 * 2-core host that boots to the init's command in about 2.5 s of guest time (5 s wall).
 *
 * Caveat: QEMU's 9p server (security_model=passthrough, QEMU 7.2) forwards only `user.*` and
 * POSIX ACL xattrs; reading `trusted.*` or `security.*` through it fails with EOPNOTSUPP in the
 * guest. Pass trees whose xattrs matter on an ext4 disk image instead (see `test/vm/cfsctl_oracle.ts`).
 *
 * Nothing here needs anything but `node:*` modules and the host tools `qemu-system-x86_64`
 * (`qemu-system-x86`), `ldd` (libc-bin), and `xz`/`zstd` only for compressed modules.
 *
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { gunzipSync } from "node:zlib";

// ---------------------------------------------------------------------------------------------
// initramfs (cpio newc)
// ---------------------------------------------------------------------------------------------

/** One entry of an initramfs. Parent directories are created automatically (mode 0755). */
export type InitramfsEntry =
  /** A regular file copied from the host (`source`) or given inline (`data`). */
  | {
    path: string;
    source?: string;
    data?: Uint8Array | string;
    /** Permission bits; default: those of `source`, else 0644. */
    mode?: number;
  }
  /** A directory. */
  | { path: string; dir: true; mode?: number }
  /** A symbolic link. */
  | { path: string; symlink: string }
  /** A character or block device node. */
  | { path: string; device: "c" | "b"; major: number; minor: number; mode?: number };

/** Kernel modules to put into the initramfs. */
export interface InitramfsModules {
  /** Kernel release, e.g. `6.1.0-56-amd64` (the directory name under `/lib/modules`). */
  kernelVersion: string;
  /** Module names as in `modprobe` (`-`/`_` are equivalent); dependencies are added. */
  names: string[];
  /** Root of the module tree; default `/lib/modules/<kernelVersion>`. */
  modulesDir?: string;
  /** Directory inside the archive; default `/modules`. */
  archiveDir?: string;
}

/** Input of {@link buildInitramfs}. */
export interface InitramfsSpec {
  /** Content of `/init` (made executable), e.g. a `#!/bin/busybox sh` script. */
  init: string;
  /** Extra entries. */
  files?: InitramfsEntry[];
  /**
   * Host executables to add at the same path (or `{ source, path }` to rename), each with the
   * shared libraries and program interpreter that `ldd` lists for it (kept at their host paths).
   */
  binaries?: (string | { source: string; path: string })[];
  /**
   * Kernel modules. They are written (decompressed) as `<archiveDir>/NNN-<name>.ko`, numbered in
   * dependency order, so that the init script can load them with
   * `for m in /modules/*.ko; do insmod "$m"; done`.
   */
  modules?: InitramfsModules;
  /** If given, the archive is also written to this file (atomically). */
  out?: string;
}

/** Output of {@link buildInitramfs}. */
export interface InitramfsResult {
  /** The cpio archive. */
  bytes: Uint8Array;
  /** `spec.out`, if given. */
  path?: string;
  /** Archive paths of the modules, in load order. */
  modules: string[];
}

const enc = new TextEncoder();

function toBytes(d: Uint8Array | string): Uint8Array {
  return typeof d === "string" ? enc.encode(d) : d;
}

/** Reads a kernel module file, decompressing `.ko.xz`, `.ko.zst` and `.ko.gz`. */
function readModule(file: string): Uint8Array {
  if (file.endsWith(".ko")) return fs.readFileSync(file);
  if (file.endsWith(".gz")) return gunzipSync(fs.readFileSync(file));
  const tool = file.endsWith(".xz") ? "xz" : file.endsWith(".zst") ? "zstd" : null;
  if (!tool) throw new Error(`unknown module compression: ${file}`);
  const r = spawnSync(tool, ["-dc", file], { maxBuffer: 1 << 30 });
  if (r.status !== 0) {
    throw new Error(`${tool} -dc ${file} failed: ${r.error ?? r.stderr?.toString()}`);
  }
  return r.stdout;
}

/**
 * Resolves module names to module files (absolute paths) in load order, dependencies first,
 * using `modules.dep` (and `modules.alias`-free name matching: `-` and `_` are equivalent).
 * Throws when a name is not found (e.g. because it is built into the kernel: check
 * `/lib/modules/<kver>/modules.builtin` and leave such names out).
 */
export function resolveModules(
  kernelVersion: string,
  names: string[],
  modulesDir = `/lib/modules/${kernelVersion}`,
): string[] {
  const depText = fs.readFileSync(path.join(modulesDir, "modules.dep"), "utf8");
  const deps = new Map<string, string[]>(); // relative module path -> deps
  const byName = new Map<string, string>(); // normalized name -> relative path
  for (const line of depText.split("\n")) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const mod = line.slice(0, i).trim();
    deps.set(mod, line.slice(i + 1).trim().split(/\s+/).filter(Boolean));
    byName.set(normModName(mod), mod);
  }
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (mod: string) => {
    if (seen.has(mod)) return;
    seen.add(mod);
    // modules.dep lists all (transitive) dependencies; visit each for a correct order.
    for (const d of deps.get(mod) ?? []) visit(d);
    order.push(mod);
  };
  for (const n of names) {
    const mod = byName.get(normModName(n));
    if (!mod) throw new Error(`kernel module ${n} not found in ${modulesDir}/modules.dep`);
    visit(mod);
  }
  return order.map((m) => path.join(modulesDir, m));
}

function normModName(p: string): string {
  return path.basename(p).replace(/\.ko(\.(xz|zst|gz))?$/, "").replaceAll("-", "_");
}

/**
 * The shared objects (including the program interpreter) that `ldd` lists for a dynamically
 * linked host executable, as absolute host paths. Empty for a static executable.
 */
export function sharedLibraries(binary: string): string[] {
  const r = spawnSync("ldd", [binary], { encoding: "utf8" });
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (/not a dynamic executable|statically linked/.test(out)) return [];
  if (r.status !== 0) throw new Error(`ldd ${binary} failed: ${r.error ?? out}`);
  const libs: string[] = [];
  for (const line of out.split("\n")) {
    const m = line.match(/=>\s*(\/\S+)/) ?? line.match(/^\s*(\/\S+)\s+\(/);
    if (m) libs.push(m[1]);
    else if (/=>\s*not found/.test(line)) throw new Error(`ldd ${binary}: ${line.trim()}`);
  }
  return libs;
}

/**
 * Builds an initramfs: a `newc` cpio archive, uncompressed, every entry owned by root with
 * mtime 0 (the archive only depends on its inputs). `/init` is the given script (mode 0755).
 */
export function buildInitramfs(spec: InitramfsSpec): InitramfsResult {
  const entries = new Map<string, CpioEntry>();
  const addDirs = (p: string) => {
    const parts = p.split("/").filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const d = "/" + parts.slice(0, i).join("/");
      if (!entries.has(d)) entries.set(d, { mode: 0o040755, data: new Uint8Array() });
    }
  };
  const add = (p: string, e: CpioEntry) => {
    if (!p.startsWith("/")) p = "/" + p;
    addDirs(p);
    entries.set(p, e);
  };
  const addHostFile = (source: string, p: string, mode?: number) => {
    const st = fs.statSync(source); // follows symlinks: libraries are often symlinks
    add(p, { mode: 0o100000 | ((mode ?? st.mode) & 0o7777), data: fs.readFileSync(source) });
  };

  for (const b of spec.binaries ?? []) {
    const { source, path: p } = typeof b === "string" ? { source: b, path: b } : b;
    addHostFile(source, p);
    for (const lib of sharedLibraries(source)) {
      if (!entries.has(lib)) addHostFile(lib, lib);
    }
  }

  const modules: string[] = [];
  if (spec.modules) {
    const m = spec.modules;
    const dir = m.archiveDir ?? "/modules";
    const files = resolveModules(m.kernelVersion, m.names, m.modulesDir);
    files.forEach((f, i) => {
      const p = `${dir}/${String(i).padStart(3, "0")}-${normModName(f)}.ko`;
      add(p, { mode: 0o100644, data: readModule(f) });
      modules.push(p);
    });
  }

  for (const f of spec.files ?? []) {
    if ("dir" in f) add(f.path, { mode: 0o040000 | (f.mode ?? 0o755), data: new Uint8Array() });
    else if ("symlink" in f) add(f.path, { mode: 0o120777, data: enc.encode(f.symlink) });
    else if ("device" in f) {
      add(f.path, {
        mode: (f.device === "c" ? 0o020000 : 0o060000) | (f.mode ?? 0o600),
        data: new Uint8Array(),
        rdevMajor: f.major,
        rdevMinor: f.minor,
      });
    } else if (f.source !== undefined) addHostFile(f.source, f.path, f.mode);
    else add(f.path, { mode: 0o100000 | (f.mode ?? 0o644), data: toBytes(f.data ?? "") });
  }
  add("/init", { mode: 0o100755, data: enc.encode(spec.init) });

  const bytes = writeCpio(entries);
  if (spec.out) {
    fs.mkdirSync(path.dirname(spec.out), { recursive: true });
    const tmp = `${spec.out}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, spec.out);
  }
  return { bytes, path: spec.out, modules };
}

interface CpioEntry {
  mode: number;
  data: Uint8Array;
  rdevMajor?: number;
  rdevMinor?: number;
}

function writeCpio(entries: Map<string, CpioEntry>): Uint8Array {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const push = (b: Uint8Array) => {
    chunks.push(b);
    size += b.length;
    const pad = (4 - (b.length % 4)) % 4;
    if (pad) {
      chunks.push(new Uint8Array(pad));
      size += pad;
    }
  };
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  let ino = 1;
  const one = (name: string, e: CpioEntry) => {
    const nameBytes = enc.encode(name + "\0");
    const isDir = (e.mode & 0o170000) === 0o040000;
    const header = "070701" + [
      ino++, // ino
      e.mode,
      0, // uid
      0, // gid
      isDir ? 2 : 1, // nlink
      0, // mtime
      e.data.length,
      0, // devmajor
      0, // devminor
      e.rdevMajor ?? 0,
      e.rdevMinor ?? 0,
      nameBytes.length,
      0, // check
    ].map(hex).join("");
    // header (110 bytes) + name is padded to a multiple of 4 as a whole
    const hn = new Uint8Array(110 + nameBytes.length);
    hn.set(enc.encode(header), 0);
    hn.set(nameBytes, 110);
    push(hn);
    if (e.data.length) push(e.data);
  };
  // Sorted: parents always come before their children.
  for (const name of [...entries.keys()].sort()) one(name.slice(1), entries.get(name)!);
  one("TRAILER!!!", { mode: 0, data: new Uint8Array() });
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** A mount done by {@link busyboxInit}'s script. */
export interface GuestMount {
  /** Device or 9p mount tag, e.g. `/dev/vda` or `share`. */
  source: string;
  /** Mount point (created). */
  target: string;
  /** File system type, e.g. `ext4`, `9p`, `tmpfs`. */
  type: string;
  /** `-o` options; for 9p use {@link NINEP_OPTIONS}. */
  options?: string;
}

/** Mount options for a QEMU `-virtfs` share in the guest. */
export const NINEP_OPTIONS = "trans=virtio,version=9p2000.L,msize=512000";

/** Input of {@link busyboxInit}. */
export interface BusyboxInitOptions {
  /** Shell code (busybox ash) run after the mounts; its exit status is printed. */
  run: string;
  /** Mounts, in order, after the modules are loaded. */
  mounts?: GuestMount[];
  /** Prefix of the console status lines; default `GUEST`. */
  marker?: string;
  /** `insmod` each `/modules/*.ko` in name order (see {@link InitramfsSpec.modules}); default on */
  loadModules?: boolean;
}

/**
 * An `/init` script for an initramfs that holds `/bin/busybox` (static): mounts proc, sysfs,
 * devtmpfs and a tmpfs on /tmp, installs the busybox applets, loads the modules, does the
 * mounts, runs `run`, unmounts in reverse order and powers off (`poweroff -f`, which ends QEMU).
 *
 * Status lines on the console (ttyS0): `<marker>-BOOTED <uptime>` before `run`,
 * `<marker>-EXIT <status> <uptime>` after it, `<marker>-FAIL <what>` (plus the tail of dmesg)
 * when a module or mount fails. A kernel command line parameter `guest_timeout=<seconds>`
 * starts a watchdog that powers the guest off after that many seconds, so that a guest whose
 * host process died cannot run forever.
 */
export function busyboxInit(o: BusyboxInitOptions): string {
  const m = o.marker ?? "GUEST";
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const mounts = o.mounts ?? [];
  const lines = [
    "#!/bin/busybox sh",
    "/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin",
    "/bin/busybox --install -s",
    "mount -t proc proc /proc",
    "mount -t sysfs sys /sys",
    "mount -t devtmpfs dev /dev",
    "mount -t tmpfs tmp /tmp",
    "export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/tmp",
    `fail() { echo "${m}-FAIL: $*"; dmesg | tail -n 40; poweroff -f; sleep 60; }`,
    "for a in $(cat /proc/cmdline); do",
    "  case $a in guest_timeout=*) wd=${a#guest_timeout=};; esac",
    "done",
    `if [ -n "\${wd:-}" ]; then (sleep "$wd"; echo "${m}-WATCHDOG after $wd s"; poweroff -f) & fi`,
  ];
  if (o.loadModules ?? true) {
    lines.push(
      `for k in /modules/*.ko; do [ -e "$k" ] || continue; insmod "$k" || fail "insmod $k"; done`,
    );
  }
  for (const mt of mounts) {
    const opt = mt.options ? ` -o ${q(mt.options)}` : "";
    lines.push(
      `mkdir -p ${q(mt.target)} && mount -t ${q(mt.type)}${opt} ${q(mt.source)} ${q(mt.target)} ` +
        `|| fail ${q(`mount ${mt.source} on ${mt.target}`)}`,
    );
  }
  lines.push(
    `echo "${m}-BOOTED $(cut -d' ' -f1 /proc/uptime)"`,
    "(",
    o.run,
    ")",
    `echo "${m}-EXIT $? $(cut -d' ' -f1 /proc/uptime)"`,
    ...mounts.slice().reverse().map((mt) => `umount ${q(mt.target)} 2>/dev/null`),
    "sync",
    "poweroff -f",
    "",
  );
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// QEMU
// ---------------------------------------------------------------------------------------------

/** A virtio block device. */
export interface QemuDrive {
  /** Host image file. */
  file: string;
  /** Default `raw`. */
  format?: "raw" | "qcow2";
  readonly?: boolean;
  /** Optional serial; the guest sees it as `/dev/disk/by-id/virtio-<serial>` (with udev). */
  serial?: string;
  /** QEMU `cache=` mode; default `unsafe` (no flushes: scratch disks of a throwaway VM). */
  cache?: "none" | "writeback" | "unsafe" | "directsync" | "writethrough";
}

/** A 9p share (`-virtfs`), mounted in the guest with
 * `mount -t 9p -o trans=virtio,version=9p2000.L,msize=... <tag> <dir>`. */
export interface QemuVirtfs {
  /** Host directory. */
  path: string;
  /** `mount_tag` the guest uses as the device name. */
  tag: string;
  readonly?: boolean;
  /**
   * Default `passthrough`: files are created/read with the guest's credentials, ownership,
   * modes, device nodes and all xattrs as on the host (needs QEMU to run as root).
   */
  securityModel?: "passthrough" | "mapped-xattr" | "mapped-file" | "none";
  /**
   * How inode numbers of files on different host file systems below `path` are kept apart;
   * default `remap` (unique inode numbers in the guest, hardlinks preserved).
   */
  multidevs?: "remap" | "forbid" | "warn";
}

/** Input of {@link bootQemu}. */
/**
 * The kernel command line our busybox guests use: serial console, reboot-free panic, and
 * `guest_timeout` so that the guest powers itself off 30 s after the host would have
 * killed it (a QEMU orphaned by a dead test process still stops).
 */
export function guestCommandLine(timeoutMs: number): string {
  return `console=ttyS0 panic=-1 quiet guest_timeout=${Math.ceil(timeoutMs / 1000) + 30}`;
}

export interface QemuOptions {
  /** Guest kernel image (bzImage). */
  kernel: string;
  /** Initramfs (cpio, optionally compressed with a method the kernel knows). */
  initrd: string;
  /** Kernel command line; `console=ttyS0` is needed for the console log. */
  append?: string;
  /** Guest RAM in MiB; default 2048. */
  memoryMiB?: number;
  /**
   * Virtual CPUs; default 1. Measured on this 2-core host: the cfsctl oracle's rootfs run
   * took 58 s with 1 vCPU and 92 s with 2 (multi-threaded TCG contends with the host).
   */
  smp?: number;
  /** `-cpu` model; default `qemu64` (measured 20-35 % faster under TCG than `max`). */
  cpu?: string;
  /** `-accel`; default `tcg` (on this kind of host KVM hangs). */
  accel?: string;
  drives?: QemuDrive[];
  virtfs?: QemuVirtfs[];
  /** Kill QEMU after this many ms; default 600000. */
  timeoutMs?: number;
  /** File that receives the guest serial console (ttyS0); it is truncated first. */
  consoleLog: string;
  /** Further QEMU arguments. */
  extraArgs?: string[];
  /** QEMU binary; default `qemu-system-x86_64`. */
  qemuBinary?: string;
  /** Called with each console line as it is written (polling; for progress output). */
  onConsoleLine?: (line: string) => void;
  /**
   * Called with the console's last, unfinished line whenever it changed (a prompt such as
   * `login: ` ends without a newline).
   */
  onConsolePartial?: (text: string) => void;
  /** Kills QEMU (SIGKILL) when it aborts: the caller saw what it waited for, or Ctrl-C. */
  signal?: AbortSignal;
}

/** Output of {@link bootQemu}. QEMU exits 0 after a guest `poweroff -f`; with `-no-reboot`
 * and `panic=-1` a guest panic ends QEMU as well (also with 0: check your own success marker). */
export interface QemuResult {
  /** Exit code of QEMU, null when killed by a signal. */
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Wall time from spawn to exit. */
  elapsedMs: number;
  /** The console log file. */
  consoleLog: string;
  /** QEMU's own stderr (warnings, errors about the command line). */
  stderr: string;
  /** The full command line that was run. */
  argv: string[];
}

/** Builds the QEMU command line for {@link bootQemu} (exported for logging/debugging). */
export function qemuArgs(o: QemuOptions): string[] {
  const args = [
    "-accel",
    o.accel ?? "tcg",
    "-cpu",
    o.cpu ?? "qemu64",
    "-m",
    String(o.memoryMiB ?? 2048),
    "-smp",
    String(o.smp ?? 1),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    "-serial",
    `file:${o.consoleLog}`,
    "-kernel",
    o.kernel,
    "-initrd",
    o.initrd,
    "-append",
    o.append ?? "console=ttyS0 panic=-1",
  ];
  (o.drives ?? []).forEach((d, i) => {
    const opts = [
      `file=${qemuEscape(d.file)}`,
      `format=${d.format ?? "raw"}`,
      "if=virtio",
      `cache=${d.cache ?? "unsafe"}`,
      `index=${i}`,
    ];
    if (d.readonly) opts.push("readonly=on");
    if (d.serial) opts.push(`serial=${d.serial}`);
    args.push("-drive", opts.join(","));
  });
  for (const v of o.virtfs ?? []) {
    const opts = [
      "local",
      `path=${qemuEscape(v.path)}`,
      `mount_tag=${v.tag}`,
      `security_model=${v.securityModel ?? "passthrough"}`,
      `multidevs=${v.multidevs ?? "remap"}`,
    ];
    if (v.readonly) opts.push("readonly=on");
    args.push("-virtfs", opts.join(","));
  }
  args.push(...(o.extraArgs ?? []));
  return args;
}

/** QEMU option values escape `,` by doubling it. */
function qemuEscape(s: string): string {
  return s.replaceAll(",", ",,");
}

/**
 * Boots QEMU and waits until it exits or `timeoutMs` passes (then it is killed with SIGKILL and
 * `timedOut` is true). Never throws for a guest failure: inspect the result and the console log
 * (see {@link tailFile}). Throws if QEMU cannot be started.
 */
export async function bootQemu(o: QemuOptions): Promise<QemuResult> {
  const bin = o.qemuBinary ?? "qemu-system-x86_64";
  const argv = qemuArgs(o);
  fs.mkdirSync(path.dirname(o.consoleLog), { recursive: true });
  fs.writeFileSync(o.consoleLog, "");
  const t0 = performance.now();
  const child = spawn(bin, argv, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (s: string) => {
    if (stderr.length < 1 << 20) stderr += s;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, o.timeoutMs ?? 600_000);
  let pollTimer: ReturnType<typeof setInterval> | undefined;
  let consoleOffset = 0;
  let partial = "";
  const poll = () => {
    if (!o.onConsoleLine) return;
    let fd: number | undefined;
    try {
      fd = fs.openSync(o.consoleLog, "r");
      const size = fs.fstatSync(fd).size;
      if (size <= consoleOffset) return;
      const buf = Buffer.alloc(size - consoleOffset);
      fs.readSync(fd, buf, 0, buf.length, consoleOffset);
      consoleOffset = size;
      const lines = (partial + buf.toString("utf8")).split(/\r?\n/);
      partial = lines.pop() ?? "";
      for (const l of lines) o.onConsoleLine(l);
      if (partial) o.onConsolePartial?.(partial);
    } catch {
      // the log may not exist yet
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  };
  if (o.onConsoleLine) pollTimer = setInterval(poll, 250);
  const kill = () => child.kill("SIGKILL");
  if (o.signal?.aborted) kill();
  o.signal?.addEventListener("abort", kill);
  try {
    const { code, signal } = await new Promise<
      { code: number | null; signal: NodeJS.Signals | null }
    >((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code, signal) => resolve({ code, signal }));
    });
    return {
      exitCode: code,
      signal,
      timedOut,
      elapsedMs: performance.now() - t0,
      consoleLog: o.consoleLog,
      stderr,
      argv: [bin, ...argv],
    };
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener("abort", kill);
    if (pollTimer) clearInterval(pollTimer);
    poll();
    if (partial && o.onConsoleLine) o.onConsoleLine(partial);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/** The last `maxLines` lines of a text file ("" if it cannot be read). */
export function tailFile(file: string, maxLines = 60): string {
  try {
    const text = fs.readFileSync(file, "utf8");
    return text.split(/\r?\n/).slice(-maxLines).join("\n");
  } catch {
    return "";
  }
}

/** A Debian guest kernel on the host: `/boot/vmlinuz-<kver>` with `/lib/modules/<kver>`. */
export interface GuestKernel {
  kernelVersion: string;
  vmlinuz: string;
  modulesDir: string;
}

/**
 * Finds the newest `/boot/vmlinuz-*` that has a module tree (Debian's `linux-image-amd64`).
 * Throws with an installation hint if there is none or the image is not readable.
 */
export function findGuestKernel(bootDir = "/boot", modulesRoot = "/lib/modules"): GuestKernel {
  let names: string[] = [];
  try {
    names = fs.readdirSync(bootDir).filter((n) => n.startsWith("vmlinuz-"));
  } catch {
    // fall through
  }
  const candidates = names
    .map((n) => n.slice("vmlinuz-".length))
    .filter((k) => fs.existsSync(path.join(modulesRoot, k, "modules.dep")))
    .sort(compareVersions)
    .reverse();
  if (!candidates.length) {
    throw new Error(
      `no guest kernel: need ${bootDir}/vmlinuz-<kver> and ${modulesRoot}/<kver>/modules.dep ` +
        "(apt-get install linux-image-amd64)",
    );
  }
  const k = candidates[0];
  const vmlinuz = path.join(bootDir, `vmlinuz-${k}`);
  fs.accessSync(vmlinuz, fs.constants.R_OK);
  return { kernelVersion: k, vmlinuz, modulesDir: path.join(modulesRoot, k) };
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/), pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? "", y = pb[i] ?? "";
    const nx = Number(x), ny = Number(y);
    const c = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
    if (c) return c;
  }
  return 0;
}

/** Hex SHA-256 of some files' contents and strings (e.g. a cache key). */
export function hashInputs(parts: ({ file: string } | string)[]): string {
  const h = createHash("sha256");
  for (const p of parts) {
    if (typeof p === "string") h.update(`s${p.length}:${p}`);
    else {
      const d = fs.readFileSync(p.file);
      h.update(`f${d.length}:`);
      h.update(d);
    }
  }
  return h.digest("hex");
}

/** Throws a helpful error if a host command is not on PATH. */
export function requireCommand(cmd: string, hint: string): string {
  const r = spawnSync("sh", ["-c", `command -v "$1"`, "sh", cmd], { encoding: "utf8" });
  const p = r.stdout?.trim();
  if (r.status !== 0 || !p) throw new Error(`${cmd} not found on PATH (${hint})`);
  return p;
}

/** The {@link requireCommand} messages of every `[command, install hint]` that is missing. */
export function missingCommands(need: Array<[string, string]>): string[] {
  const missing: string[] = [];
  for (const [cmd, hint] of need) {
    try {
      requireCommand(cmd, hint);
    } catch (e) {
      missing.push((e as Error).message);
    }
  }
  return missing;
}
