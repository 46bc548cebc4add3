/**
 * Runs cfs itself (`deno run cli.ts`) inside a QEMU guest whose kernel has fs-verity
 * (Debian's 6.1 kernel, CONFIG_FS_VERITY=y), so that secure repositories, FS_IOC_ENABLE_VERITY
 * and FS_IOC_MEASURE_VERITY can be tested for real on a host kernel without fs-verity.
 *
 * What the guest gets:
 *
 * - an initramfs with static busybox, the Deno executable (the ELF behind
 *   `.tools/node_modules/.bin/deno`) with its shared libraries, optionally the oracles
 *   (cfsctl 0.3.0 as `cfsctl` and `cfsctl03`, composefs-ctl 0.9.4's cfsctl as `cfsctl09`) and
 *   more host executables (`fsverity`, `debugfs`, ...), and the kernel modules of
 *   {@link GUEST_CFS_MODULES}; it is cached under `test/.work/vm` by its inputs;
 * - the project checkout, read-only over 9p, at `/src`; `cfs` on PATH is a wrapper around
 *   `deno run -A /src/cli.ts` with `DENO_DIR=/deno`, which holds a copy of the checkout's
 *   `.deno/npm` (the npm cache with zod: the guest has no network) from the initramfs, and
 *   is writable (Deno's transpile and code caches);
 * - `/verity`: a fresh ext4 disk made with `mkfs.ext4 -O verity -b 4096`;
 * - `/trees/<i>`: the given host trees, `cp -a` copies on a read-only ext4 disk (see
 *   `buildTreesImage`: 9p would drop `trusted.*`/`security.*` xattrs);
 * - `/plain` (optional): an ext4 disk without the verity feature;
 * - `$OUT` (`/share/out`): a writable 9p directory; every file written below it comes back
 *   in {@link GuestCfsResult.outputs}.
 * - with {@link GuestCfsOptions.network}: QEMU's user-mode network on `eth0` (virtio-net),
 *   configured before the script runs: the guest is 10.0.2.15/24 and reaches the host as
 *   10.0.2.2, where the host's 127.0.0.1 services answer (a test registry on 127.0.0.1:PORT is
 *   `10.0.2.2:PORT`). There is no DNS: use addresses.
 *
 * `$VERITY_DEV`, `$TREES_DEV` and `$PLAIN_DEV` name the block devices (e.g. to unmount `/verity`
 * and change bytes underneath a file system).
 *
 * The script runs with `set -u` under busybox ash, as root, with `now` (seconds of uptime, for
 * timings) and `rec NAME CMD...` (runs CMD, writes `$OUT/NAME.out`, `.err`, `.rc` and a
 * `NAME START END` line to `$OUT/times`) defined. The guest powers off when it ends.
 *
 * Measured on this host (TCG, 1 vCPU, qemu64; `-cpu max` and Skylake were 20-35 % slower):
 * QEMU start to the script takes 6 s of wall time (3.0 s of guest uptime; the 123 MiB
 * initramfs with Deno costs little). Every `cfs` call pays Deno's start-up under TCG:
 * `deno eval 0` 0.85 s, `cfs --version` 4.1 s the first time in a boot (transpiling, empty
 * code cache) and 2.0 s after that (0.05 s on the host); `--v8-flags=--jitless` is not needed
 * and no faster (2.0 s). A read-only DENO_DIR on the 9p share works but costs 3.5 s per call
 * (no code cache), a 9p copy of the npm cache 1.5 s per boot: hence the initramfs copy.
 * `cfs init`, `create-image` of a small tree, `fsck`, `image-objects` take 2-2.7 s each.
 * TCG shares the host's two cores: with other work running (load 3-13) every cfs call took
 * 10-40 s instead (a `deno bundle` of cli.ts was no faster), while a native `cfsctl09` call
 * stays under a second; tests therefore keep their cfs calls few and give generous timeouts.

 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  bootQemu,
  buildInitramfs,
  busyboxInit,
  findGuestKernel,
  guestCommandLine,
  hashInputs,
  type InitramfsEntry,
  missingCommands,
  NINEP_OPTIONS,
  requireCommand,
  tailFile,
} from "./qemu.ts";
import { buildTreesImage, findCfsctl, GUEST_MODULES, treeStats } from "./cfsctl_oracle.ts";
import { cfsctl09 } from "../oracles.ts";
import { denoElf } from "../../lib/vm/dropin.ts";

/** The project checkout (shared read-only with the guest as `/src`). */
export const PROJECT_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));
const DEFAULT_WORK_ROOT = fileURLToPath(new URL("../.work/vm", import.meta.url));
/** Bump when the initramfs layout or init changes (part of the cache key). */
const INITRAMFS_VERSION = "guest-cfs-2";
const MARKER = "GUEST-CFS";

/**
 * The oracle's modules plus `sha512_generic`: Debian builds CONFIG_CRYPTO_SHA512 as a module
 * and the busybox guest has no modprobe to autoload it, so without it FS_IOC_ENABLE_VERITY
 * with SHA-512 fails with ENOPKG. (SHA-256 is built in.)
 */
export const GUEST_CFS_MODULES: string[] = [...GUEST_MODULES, "sha512_generic"];

/**
 * The virtio NIC's driver, for {@link GuestCfsOptions.network} (Debian builds it as a module;
 * the module resolver adds what it needs: failover and net_failover, virtio, virtio_ring).
 */
export const GUEST_NET_MODULES: string[] = ["virtio_net"];

/** QEMU arguments of the guest's user-mode network (slirp; the host is 10.0.2.2). */
const NETWORK_QEMU_ARGS = ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"];

/** The guest's static configuration of that network (busybox `ip`; slirp's default addresses). */
const NETWORK_SETUP = [
  "ip link set lo up",
  "ip link set eth0 up",
  "ip addr add 10.0.2.15/24 dev eth0",
  "ip route add default via 10.0.2.2",
];

/** Input of {@link runCfsInGuest}. */
export interface GuestCfsOptions {
  /**
   * busybox ash code run as root after every mount. `cfs ARGS` runs our CLI, `cfsctl03` and
   * `cfsctl09` are there when {@link cfsctl} and {@link cfsctl09} are set; `$OUT` is the output directory; `now` and `rec` are defined
   * (see the module doc). Its exit status is {@link GuestCfsResult.exitCode}.
   */
  script: string;
  /** Host directory trees, copied to `/trees/0`, `/trees/1`, ... (read-only ext4). */
  trees?: string[];
  /** Size of the verity-enabled ext4 scratch disk at `/verity`; default 512 MiB (sparse). */
  repoDiskMiB?: number;
  /** When set, an ext4 disk of this size *without* the verity feature is mounted at `/plain`. */
  plainDiskMiB?: number;
  /**
   * Put cfsctl 0.3.0 into the guest as `cfsctl` and `cfsctl03` (`true`: `$CFSCTL_0_3`, see
   * test/oracles.ts; a string: that binary). It is the oracle for repositories in the old
   * format, and needs fs-verity for everything it stores.
   */
  cfsctl?: boolean | string;
  /**
   * Put composefs-ctl 0.9.4's cfsctl into the guest as `cfsctl09` (`true`: `$CFSCTL_0_9`; a
   * string: that binary): the oracle of the current format, on secure repositories.
   */
  cfsctl09?: boolean | string;
  /** More host executables to put into the guest at the same path, with their libraries. */
  binaries?: string[];
  /**
   * Give the guest QEMU's user-mode network (see the module doc): the host's 127.0.0.1
   * services are at 10.0.2.2. Default off (no NIC, no network modules).
   */
  network?: boolean;
  /** Kill QEMU after this long; default 300 s. The guest's own watchdog fires 30 s later. */
  timeoutMs?: number;
  /** Guest RAM in MiB; default 2048. */
  memoryMiB?: number;
  /** vCPUs; default 1 (measured fastest under TCG on this 2-core host). */
  smp?: number;
  /** QEMU `-cpu`; default `qemu64` (faster under TCG than `max`). */
  cpu?: string;
  /** Extra flags for `deno run` in the `cfs` wrapper, e.g. `--v8-flags=--jitless`. */
  denoFlags?: string[];
  /** Progress messages. */
  log?: (s: string) => void;
  /** Keep the run directory (disk images, console log, outputs) and log its path. */
  keepWorkDir?: boolean;
  /** Where run directories and cached initramfs archives go; default `test/.work/vm`. */
  workRoot?: string;
}

/** Output of {@link runCfsInGuest}. */
export interface GuestCfsResult {
  /** The script's exit status, null when it did not finish (timeout, guest failure). */
  exitCode: number | null;
  /** The guest serial console (kernel messages are quiet; status lines start `GUEST-CFS-`). */
  console: string;
  /** The script's stdout and stderr, interleaved. */
  log: string;
  /** Every file below `$OUT`, by path relative to it (`/` separated). */
  outputs: Map<string, Uint8Array>;
  /** Wall and guest timings in seconds. */
  timings: {
    /** Host wall time of the QEMU process. */
    qemuSeconds: number;
    /** Guest uptime when the script started (boot, module loading, mounts). */
    bootSeconds?: number;
    /** Guest uptime spent in the script. */
    scriptSeconds?: number;
    /** Host wall time spent on the disk images before the boot. */
    prepareSeconds: number;
  };
  /** The run directory (removed unless `keepWorkDir` or the run failed). */
  runDir: string;
}

/** The real Deno executable of this checkout (not the npm `.bin` symlink). */
export function findDenoBinary(): string {
  try {
    return denoElf([path.join(PROJECT_ROOT, ".tools/node_modules/.bin/deno"), Deno.execPath()]);
  } catch (e) {
    throw new Error(`${(e as Error).message} (run make deno)`);
  }
}

/** Throws one error naming every missing host prerequisite of {@link runCfsInGuest}. */
export function checkGuestPrerequisites(
  opts: { cfsctl?: boolean | string; cfsctl09?: boolean | string; binaries?: string[] } = {},
) {
  const missing = missingCommands([
    ["qemu-system-x86_64", "apt-get install qemu-system-x86"],
    ["busybox", "apt-get install busybox-static"],
    ["mkfs.ext4", "apt-get install e2fsprogs"],
    ["unshare", "util-linux"],
    ["ldd", "libc-bin"],
  ]);
  const attempt = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      missing.push((e as Error).message);
    }
  };
  attempt(findGuestKernel);
  attempt(findDenoBinary);
  if (opts.cfsctl) {
    attempt(() => findCfsctl(typeof opts.cfsctl === "string" ? opts.cfsctl : undefined));
  }
  if (opts.cfsctl09) attempt(() => findCfsctl09(opts.cfsctl09));
  for (const b of opts.binaries ?? []) {
    if (!fs.existsSync(b)) missing.push(`${b} not found`);
  }
  if (!fs.existsSync(path.join(PROJECT_ROOT, ".deno/npm"))) {
    missing.push(`${PROJECT_ROOT}.deno/npm missing (run make check once to fill the npm cache)`);
  }
  if (process.getuid?.() !== 0) missing.push("must run as root (QEMU 9p passthrough, loop mounts)");
  if (missing.length) throw new Error(`guest prerequisites missing:\n  ${missing.join("\n  ")}`);
}

/** composefs-ctl 0.9.4's cfsctl: `explicit` when a path, else `$CFSCTL_0_9`; throws when absent. */
function findCfsctl09(explicit: boolean | string | undefined): string {
  if (typeof explicit !== "string") return cfsctl09();
  if (!fs.existsSync(explicit)) throw new Error(`cfsctl 0.9.4 not found at ${explicit}`);
  return explicit;
}

/** The guest's /init: mounts the 9p share, runs the generated `/share/guest.sh`. */
const INIT = busyboxInit({
  marker: MARKER,
  mounts: [{ source: "share", target: "/share", type: "9p", options: NINEP_OPTIONS }],
  run: "sh /share/guest.sh > /share/guest.log 2>&1",
});

/** Builds (or reuses) the initramfs for a set of binaries; returns its path. */
export function guestInitramfs(
  opts: {
    cfsctl?: boolean | string;
    cfsctl09?: boolean | string;
    binaries?: string[];
    network?: boolean;
    workRoot?: string;
    log?: (s: string) => void;
  } = {},
): { path: string; kernel: string } {
  const kernel = findGuestKernel();
  const busybox = requireCommand("busybox", "apt-get install busybox-static");
  const deno = findDenoBinary();
  const cfsctl = opts.cfsctl
    ? findCfsctl(typeof opts.cfsctl === "string" ? opts.cfsctl : undefined)
    : undefined;
  const ctl09 = opts.cfsctl09 ? findCfsctl09(opts.cfsctl09) : undefined;
  const extra = [...new Set(opts.binaries ?? [])].sort();
  const npm = npmCacheEntries();
  const modules = opts.network ? [...GUEST_CFS_MODULES, ...GUEST_NET_MODULES] : GUEST_CFS_MODULES;
  // The Deno binary is 95 MiB: key it by identity, not content.
  const st = fs.statSync(deno);
  const key = hashInputs([
    INITRAMFS_VERSION,
    INIT,
    kernel.kernelVersion,
    modules.join(","),
    `deno:${deno}:${st.size}:${st.mtimeMs}:${st.ino}`,
    { file: busybox },
    ...(cfsctl ? [{ file: cfsctl }] : []),
    ...(ctl09 ? ["cfsctl09", { file: ctl09 }] : []),
    ...extra.flatMap((b) => [b, { file: b }]),
    npm.key,
  ]).slice(0, 20);
  const out = path.join(opts.workRoot ?? DEFAULT_WORK_ROOT, `initramfs-cfs-${key}.cpio`);
  if (!fs.existsSync(out)) {
    const t0 = performance.now();
    buildInitramfs({
      init: INIT,
      binaries: [
        { source: busybox, path: "/bin/busybox" },
        { source: deno, path: "/usr/bin/deno" },
        ...(cfsctl ? [{ source: cfsctl, path: "/usr/bin/cfsctl" }] : []),
        ...(ctl09 ? [{ source: ctl09, path: "/usr/bin/cfsctl09" }] : []),
        ...extra,
      ],
      modules: {
        kernelVersion: kernel.kernelVersion,
        names: modules,
        modulesDir: kernel.modulesDir,
      },
      files: npm.entries,
      out,
    });
    opts.log?.(`built initramfs ${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return { path: out, kernel: kernel.vmlinuz };
}

/**
 * The checkout's npm cache (`.deno/npm`, where zod lives) as initramfs entries below
 * `/deno/npm`, and a key that changes with its listing (paths, sizes, mtimes). Copying it from
 * the 9p share at boot took 1.5 s of guest time (840 small files); in the initramfs it is free,
 * and the guest's DENO_DIR `/deno` is writable (the initramfs root is a tmpfs).
 */
function npmCacheEntries(): { entries: InitramfsEntry[]; key: string } {
  const root = path.join(PROJECT_ROOT, ".deno/npm");
  const entries: InitramfsEntry[] = [];
  const listing: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (
      const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
        a.name < b.name ? -1 : 1
      )
    ) {
      const p = path.join(dir, e.name);
      const r = `${rel}/${e.name}`;
      if (e.isDirectory()) {
        entries.push({ path: `/deno/npm${r}`, dir: true });
        walk(p, r);
      } else if (e.isSymbolicLink()) {
        const target = fs.readlinkSync(p);
        entries.push({ path: `/deno/npm${r}`, symlink: target });
        listing.push(`l ${r} ${target}`);
      } else if (e.isFile()) {
        const st = fs.statSync(p);
        entries.push({ path: `/deno/npm${r}`, source: p });
        listing.push(`f ${r} ${st.size} ${st.mtimeMs}`);
      }
    }
  };
  walk(root, "");
  return { entries, key: hashInputs(listing) };
}

function run(cmd: string, args: string[], what: string): void {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    throw new Error(
      `${what} failed (${cmd} exit ${r.status ?? r.signal}): ${r.error ?? ""}${r.stderr}`,
    );
  }
}

/** Creates an empty ext4 image (sparse) with 4 KiB blocks, with or without `verity`. */
export function makeExt4Image(image: string, mib: number, verity: boolean, label: string): void {
  fs.writeFileSync(image, "");
  fs.truncateSync(image, mib * 2 ** 20);
  run("mkfs.ext4", [
    "-q",
    "-F",
    "-b",
    "4096", // fs-verity on Linux 6.1 needs block size == page size
    "-O",
    verity ? "verity,^has_journal" : "^has_journal",
    "-L",
    label,
    image,
  ], `mkfs.ext4 (${label})`);
}

/** Shell prelude of the guest script: mounts, environment, the `cfs` wrapper, helpers. */
function guestScript(o: {
  script: string;
  disks: { dev: string; target: string; ro: boolean }[];
  denoFlags: string[];
  network: boolean;
}): string {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const lines = [
    "set -u",
    `fail() { echo "${MARKER}-FAIL: $*" > /dev/console; exit 97; }`,
    "mkdir -p /src && mount -t 9p -o " + q(`${NINEP_OPTIONS},ro`) +
    " src /src || fail 'mount /src'",
  ];
  for (const d of o.disks) {
    const name = d.target.slice(1).toUpperCase();
    lines.push(`export ${name}_DEV=${d.dev}`);
    lines.push(
      `mkdir -p ${d.target} && mount -t ext4${
        d.ro ? " -o ro" : ""
      } ${d.dev} ${d.target} || fail 'mount ${d.dev}'`,
    );
  }
  if (o.network) lines.push(`{ ${NETWORK_SETUP.join(" && ")}; } || fail 'network setup'`);
  lines.push(
    // DENO_DIR: the npm cache came in the initramfs; Deno writes its other caches next to it.
    "export DENO_DIR=/deno HOME=/tmp TMPDIR=/tmp NO_COLOR=1 DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1",
    "export OUT=/share/out",
    'mkdir -p "$OUT"',
    "cat > /usr/bin/cfs <<'EOF'",
    "#!/bin/sh",
    `exec /usr/bin/deno run -A --quiet --no-remote --cached-only ${
      o.denoFlags.map(q).join(" ")
    } /src/cli.ts "$@"`,
    "EOF",
    "chmod 755 /usr/bin/cfs",
    // cfsctl 0.3.0 under the name that says which one it is, beside cfsctl09.
    "[ -x /usr/bin/cfsctl ] && ln -sf cfsctl /usr/bin/cfsctl03",
    "now() { cut -d' ' -f1 /proc/uptime; }",
    "# rec NAME CMD...: CMD's stdout, stderr, exit code into $OUT/NAME.{out,err,rc}; timing into $OUT/times",
    'rec() { _n=$1; shift; _t0=$(now); "$@" > "$OUT/$_n.out" 2> "$OUT/$_n.err"; _rc=$?; ' +
      'echo $_rc > "$OUT/$_n.rc"; echo "$_n $_t0 $(now)" >> "$OUT/times"; return $_rc; }',
    `echo "${MARKER}-SCRIPT $(now)" > /dev/console`,
    "(",
    o.script,
    ")",
    "rc=$?",
    "echo $rc > /share/script.rc",
    `echo "${MARKER}-SCRIPT-END $rc $(now)" > /dev/console`,
    "sync",
    ...o.disks.slice().reverse().map((d) => `umount ${d.target} 2>/dev/null`),
    "umount /src",
    "",
  );
  return lines.join("\n");
}

function readOutputs(
  dir: string,
  prefix = "",
  out = new Map<string, Uint8Array>(),
): Map<string, Uint8Array> {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) readOutputs(p, rel, out);
    else if (e.isFile()) out.set(rel, fs.readFileSync(p));
  }
  return out;
}

/**
 * Boots one guest, runs `script` there (see {@link GuestCfsOptions.script}) and returns its
 * exit status, log, console and output files. Throws (with the console tail) only when the
 * script never got to run or never finished; a failing script is reported by `exitCode`.
 * Nothing stays behind: QEMU is killed on timeout, loop mounts live in private namespaces, and
 * the run directory is removed unless `keepWorkDir` (or kept, without disk images, on failure).
 */
export async function runCfsInGuest(o: GuestCfsOptions): Promise<GuestCfsResult> {
  const log = o.log ?? (() => {});
  checkGuestPrerequisites(o);
  const workRoot = o.workRoot ?? DEFAULT_WORK_ROOT;
  fs.mkdirSync(workRoot, { recursive: true });
  const initrd = guestInitramfs({
    cfsctl: o.cfsctl,
    cfsctl09: o.cfsctl09,
    binaries: o.binaries,
    network: o.network,
    workRoot,
    log,
  });
  const runDir = fs.mkdtempSync(path.join(workRoot, "cfs-run-"));
  const share = path.join(runDir, "share");
  fs.mkdirSync(path.join(share, "out"), { recursive: true });
  const consoleLog = path.join(runDir, "console.log");
  const images: string[] = [];
  let ok = false;
  try {
    const t0 = performance.now();
    const drives: { file: string; readonly?: boolean }[] = [];
    const disks: { dev: string; target: string; ro: boolean }[] = [];
    const dev = () => `/dev/vd${String.fromCharCode(97 + drives.length)}`;
    const verityImg = path.join(runDir, "verity.img");
    makeExt4Image(verityImg, o.repoDiskMiB ?? 512, true, "cfsverity");
    images.push(verityImg);
    disks.push({ dev: dev(), target: "/verity", ro: false });
    drives.push({ file: verityImg });
    if (o.trees?.length) {
      const trees = o.trees.map((t) => fs.realpathSync(t));
      const treesImg = path.join(runDir, "trees.img");
      images.push(treesImg);
      buildTreesImage(treesImg, trees, trees.map(treeStats));
      disks.push({ dev: dev(), target: "/trees", ro: true });
      drives.push({ file: treesImg, readonly: true });
    }
    if (o.plainDiskMiB) {
      const plainImg = path.join(runDir, "plain.img");
      makeExt4Image(plainImg, o.plainDiskMiB, false, "cfsplain");
      images.push(plainImg);
      disks.push({ dev: dev(), target: "/plain", ro: false });
      drives.push({ file: plainImg });
    }
    fs.writeFileSync(
      path.join(share, "guest.sh"),
      guestScript({
        script: o.script,
        disks,
        denoFlags: o.denoFlags ?? [],
        network: o.network ?? false,
      }),
    );
    const prepareSeconds = (performance.now() - t0) / 1000;
    log(`disk images in ${prepareSeconds.toFixed(1)} s`);

    const timeoutMs = o.timeoutMs ?? 300_000;
    const tBoot = performance.now();
    let bootSeconds: number | undefined;
    let scriptStart: number | undefined;
    let scriptEnd: number | undefined;
    const res = await bootQemu({
      kernel: initrd.kernel,
      initrd: initrd.path,
      append: guestCommandLine(timeoutMs),
      memoryMiB: o.memoryMiB ?? 2048,
      smp: o.smp,
      cpu: o.cpu,
      accel: "tcg",
      drives,
      extraArgs: o.network ? NETWORK_QEMU_ARGS : undefined,
      virtfs: [
        { path: share, tag: "share" },
        { path: PROJECT_ROOT, tag: "src", readonly: true },
      ],
      timeoutMs,
      consoleLog,
      onConsoleLine: (l) => {
        const m = l.match(new RegExp(`^${MARKER}-(SCRIPT|SCRIPT-END \\d+) ([0-9.]+)`));
        if (m) {
          if (m[1] === "SCRIPT") bootSeconds = scriptStart = Number(m[2]);
          else scriptEnd = Number(m[2]);
        }
        if (l.startsWith(MARKER)) {
          log(`guest: ${l} (${((performance.now() - tBoot) / 1000).toFixed(1)} s)`);
        }
      },
    });
    const rcText = fs.existsSync(path.join(share, "script.rc"))
      ? fs.readFileSync(path.join(share, "script.rc"), "utf8").trim()
      : "";
    const result: GuestCfsResult = {
      exitCode: rcText === "" ? null : Number(rcText),
      console: fs.readFileSync(consoleLog, "utf8"),
      log: fs.existsSync(path.join(share, "guest.log"))
        ? fs.readFileSync(path.join(share, "guest.log"), "utf8")
        : "",
      outputs: readOutputs(path.join(share, "out")),
      timings: {
        qemuSeconds: res.elapsedMs / 1000,
        bootSeconds,
        scriptSeconds: scriptStart !== undefined && scriptEnd !== undefined
          ? scriptEnd - scriptStart
          : undefined,
        prepareSeconds,
      },
      runDir,
    };
    log(`qemu exited ${res.exitCode ?? res.signal} after ${(res.elapsedMs / 1000).toFixed(1)} s`);
    if (result.exitCode === null) {
      const why = res.timedOut
        ? `timed out after ${timeoutMs} ms`
        : `ended (${res.exitCode ?? res.signal})`;
      throw new Error(
        `guest ${why} before the script finished; run dir ${runDir}\n` +
          (res.stderr ? `qemu stderr: ${res.stderr.trim()}\n` : "") +
          `--- guest console (tail) ---\n${tailFile(consoleLog, 60)}\n` +
          `--- guest.log (tail) ---\n${tailFile(path.join(share, "guest.log"), 30)}`,
      );
    }
    ok = true;
    return result;
  } finally {
    if (o.keepWorkDir) log(`kept run dir ${runDir}`);
    else if (ok) fs.rmSync(runDir, { recursive: true, force: true });
    else for (const i of images) fs.rmSync(i, { force: true });
  }
}

/** Text of an output file ("" when absent). */
export function outputText(r: GuestCfsResult, name: string): string {
  const b = r.outputs.get(name);
  return b ? new TextDecoder().decode(b) : "";
}

/** Guest seconds of each `rec` step, from `$OUT/times`. */
export function stepSeconds(r: GuestCfsResult): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of outputText(r, "times").split("\n")) {
    const [n, a, b] = line.split(" ");
    if (n && a && b) out[n] = Math.round((Number(b) - Number(a)) * 1000) / 1000;
  }
  return out;
}

if (import.meta.main) {
  // deno run -A test/vm/guest_cfs.ts 'SCRIPT' [TREE...]: runs SCRIPT in the guest, prints the log.
  const t0 = performance.now();
  const [script = "rec version cfs --version; cat $OUT/version.out", ...trees] = Deno.args;
  const r = await runCfsInGuest({
    script,
    trees,
    log: (s) => console.error(`[${((performance.now() - t0) / 1000).toFixed(1)}s] ${s}`),
    keepWorkDir: Deno.env.get("KEEP") === "1",
    denoFlags: Deno.env.get("DENO_FLAGS")?.split(" ").filter(Boolean),
  });
  console.log(r.log);
  console.log(JSON.stringify({ exitCode: r.exitCode, timings: r.timings, steps: stepSeconds(r) }));
}
