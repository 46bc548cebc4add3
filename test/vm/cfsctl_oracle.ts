/**
 * Runs the reference CLI `cfsctl` (composefs-rs) inside a QEMU guest, where fs-verity works,
 * on a batch of host directory trees: one VM boot for the whole batch.
 *
 * Why a VM: `cfsctl compute-id`, `create-dumpfile` and `create-image` store every regular file
 * larger than 64 bytes into their repository with fs-verity enabled (and `create-image` always
 * stores the image so); the host kernel has no CONFIG_FS_VERITY. Debian's guest kernel does.
 *
 * How the trees get into the guest: QEMU's 9p server (passthrough) forwards only `user.*` and
 * POSIX ACL xattrs (`trusted.*` and `security.*` fail with EOPNOTSUPP in the guest), and
 * `mkfs.ext4 -d` of e2fsprogs 1.47.0 loses nanoseconds and wraps mtimes past 2038. So each
 * tree is copied with `cp -a` (all xattrs, device nodes, fifos, sockets, hardlinks, owners,
 * modes, ns mtimes) into a fresh ext4 image loop-mounted on the host (in a private mount
 * namespace, so nothing stays mounted), which the guest mounts read-only. The only difference
 * a guest `stat` shows is `st_nlink` of a file hardlinked from outside its tree (cfsctl counts
 * links inside the tree itself). cfsctl's repository is a second ext4 image with the `verity`
 * feature. Commands, outputs and the images travel through a 9p share (our own files only).
 *
 * Host needs (as root): qemu-system-x86_64, a Debian kernel `/boot/vmlinuz-*` with its
 * modules, busybox (static), mkfs.ext4, cp, unshare, mount with loop devices, and cfsctl.
 *
 * @module
 */
import { cfsctl03, ORACLE_HINTS } from "../oracles.ts";
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
  missingCommands,
  NINEP_OPTIONS,
  requireCommand,
  tailFile,
} from "./qemu.ts";

/** One tree to run cfsctl on. */
export interface OracleJob {
  /** Host path of a directory tree (symlinks to it are resolved). */
  tree: string;
  /** Pass `--stat-root` to every command (take the root directory's metadata as is). */
  statRoot?: boolean;
  /**
   * Also run the `--bootable` variants; default true. They fail (recorded in `errors`) when the
   * tree has no /boot; `false` saves about 0.5 s per small tree under TCG.
   */
  bootable?: boolean;
}

/** What cfsctl produced for one {@link OracleJob}. */
export interface OracleResult {
  tree: string;
  /** `cfsctl compute-id TREE` (hex), "" if it failed (see `errors`). */
  computeId: string;
  /** `cfsctl compute-id --bootable TREE`, if it succeeded. */
  computeIdBootable?: string;
  /** `cfsctl create-dumpfile TREE`: stdout bytes (empty if it failed). */
  dumpfile: Uint8Array;
  dumpfileBootable?: Uint8Array;
  /** The EROFS image `cfsctl create-image TREE` committed (`images/<id>` in its repository). */
  image: Uint8Array;
  /** The image id `create-image` printed (hex, without `sha256:`), "" if it failed. */
  imageId: string;
  imageBootable?: Uint8Array;
  imageIdBootable?: string;
  /**
   * One entry per failing command: `"<command> [--bootable]: exit <n>: <stderr>"`. The bootable
   * variants fail for trees without a /boot directory; that is expected and recorded here.
   */
  errors: string[];
  /** Guest wall time of each command in seconds, keyed like `create-image --bootable`. */
  seconds: Record<string, number>;
}

/** Options of {@link runCfsctlOracle}. */
export interface OracleOptions {
  /** Kill the VM after this long; default 120 s + 1 s per MiB of tree data + 10 s per tree. */
  timeoutMs?: number;
  /** Progress messages (phases, timings, guest progress lines). */
  log?: (s: string) => void;
  /** cfsctl 0.3.0 binary; default `$CFSCTL_0_3` (test/oracles.ts). */
  cfsctl?: string;
  /** Guest vCPUs; default 1 (measured faster than 2 under TCG on a 2-core host). */
  smp?: number;
  /**
   * QEMU `-cpu` model; default `qemu64`: measured faster under TCG than `max` (the rootfs batch
   * took 46 s instead of 58 s), whose AVX code paths TCG emulates slowly.
   */
  cpu?: string;
  /** Guest RAM in MiB; default 2048. */
  memoryMiB?: number;
  /** Keep the run directory (images, console log, outputs) and log its path. */
  keepWorkDir?: boolean;
  /** Where run directories and the cached initramfs go; default `test/.work/vm`. */
  workRoot?: string;
}

const DEFAULT_WORK_ROOT = fileURLToPath(new URL("../.work/vm", import.meta.url));
/** Bump when the initramfs layout or init script changes (part of the cache key). */
const INITRAMFS_VERSION = "cfsctl-oracle-2";

/** Kernel modules the guest needs (dependencies are added from modules.dep). */
export const GUEST_MODULES = [
  "virtio_pci",
  "virtio_blk",
  "9pnet_virtio",
  "9p",
  "crc32c_generic", // ext4/jbd2 metadata checksums (would be autoloaded through modprobe)
  "ext4",
];

/** The guest's /init: mounts the share, the trees (ro) and the repository, runs the batch. */
const INIT = busyboxInit({
  marker: "CFS-ORACLE",
  mounts: [
    { source: "share", target: "/share", type: "9p", options: NINEP_OPTIONS },
    { source: "/dev/vdb", target: "/trees", type: "ext4", options: "ro" },
    { source: "/dev/vda", target: "/repo", type: "ext4" },
  ],
  run: "sh /share/batch.sh > /share/batch.log 2>&1",
});

/** Shell functions of the batch script; a job line per tree follows. */
const BATCH_HEAD = `set -u
now() { cut -d' ' -f1 /proc/uptime; }
# run DIR NAME ARGS...: cfsctl ARGS with stdout/stderr/exit code/timing into DIR/NAME.*
run() {
  d=$1; n=$2; shift 2
  t0=$(now)
  cfsctl --repo /repo "$@" > "$d/$n.out" 2> "$d/$n.err"
  echo $? > "$d/$n.rc"
  echo "$n $t0 $(now)" >> "$d/times"
}
# job INDEX TOTAL BOOTABLE(0|1) EXTRA-FLAGS...
job() {
  i=$1; total=$2; withboot=$3; shift 3
  d=/share/out/$i; t=/trees/$i
  mkdir -p "$d"
  echo "CFS-ORACLE-JOB $i/$total $(now)" > /dev/console
  for b in "" --bootable; do
    if [ -n "$b" ] && [ "$withboot" = 0 ]; then continue; fi
    s=\${b:+-bootable}
    run "$d" "compute-id$s" compute-id $b "$@" "$t"
    run "$d" "create-dumpfile$s" create-dumpfile $b "$@" "$t"
    run "$d" "create-image$s" create-image $b "$@" "$t"
    if [ "$(cat "$d/create-image$s.rc")" = 0 ]; then
      id=$(tr -d ' \\n' < "$d/create-image$s.out"); id=\${id#sha256:}
      cat "/repo/images/$id" > "$d/create-image$s.img" ||
        echo "oracle: cannot read /repo/images/$id" >> "$d/create-image$s.err"
    fi
  done
  echo done > "$d/done"
}
`;

/** Locates cfsctl 0.3.0 (`explicit`, else `$CFSCTL_0_3`, see test/oracles.ts); throws with an install hint. */
export function findCfsctl(explicit?: string): string {
  if (explicit) {
    if (!fs.existsSync(explicit)) throw new Error(`cfsctl not found at ${explicit} (${ORACLE_HINTS["0.3"]})`);
    return explicit;
  }
  return cfsctl03();
}

/** Checks every host tool the oracle needs; throws one error naming all that are missing. */
export function checkOraclePrerequisites(cfsctl?: string): void {
  const missing = missingCommands([
    ["qemu-system-x86_64", "apt-get install qemu-system-x86"],
    ["busybox", "apt-get install busybox-static"],
    ["mkfs.ext4", "apt-get install e2fsprogs"],
    ["unshare", "util-linux"],
    ["mount", "mount"],
    ["cp", "coreutils"],
    ["ldd", "libc-bin"],
  ]);
  try {
    findCfsctl(cfsctl);
  } catch (e) {
    missing.push((e as Error).message);
  }
  try {
    findGuestKernel();
  } catch (e) {
    missing.push((e as Error).message);
  }
  if (process.getuid?.() !== 0) missing.push("must run as root (loop mount, cp -a of owners)");
  if (missing.length) {
    throw new Error(`cfsctl oracle prerequisites missing:\n  ${missing.join("\n  ")}`);
  }
}

/** Returns (building and caching when needed) the oracle's initramfs. */
export function oracleInitramfs(
  opts: { cfsctl?: string; workRoot?: string; log?: (s: string) => void } = {},
): { path: string; kernel: string; kernelVersion: string } {
  const cfsctl = findCfsctl(opts.cfsctl);
  const kernel = findGuestKernel();
  const busybox = requireCommand("busybox", "apt-get install busybox-static");
  const key = hashInputs([
    INITRAMFS_VERSION,
    INIT,
    kernel.kernelVersion,
    GUEST_MODULES.join(","),
    { file: cfsctl },
    { file: busybox },
  ]).slice(0, 20);
  const out = path.join(opts.workRoot ?? DEFAULT_WORK_ROOT, `initramfs-${key}.cpio`);
  if (!fs.existsSync(out)) {
    const t0 = performance.now();
    buildInitramfs({
      init: INIT,
      binaries: [
        { source: busybox, path: "/bin/busybox" },
        { source: cfsctl, path: "/bin/cfsctl" },
      ],
      modules: {
        kernelVersion: kernel.kernelVersion,
        names: GUEST_MODULES,
        modulesDir: kernel.modulesDir,
      },
      out,
    });
    opts.log?.(`built initramfs ${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return { path: out, kernel: kernel.vmlinuz, kernelVersion: kernel.kernelVersion };
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

/** Creates the (empty, verity-enabled) ext4 image that holds cfsctl's repository. */
export function buildRepoImage(image: string, stats: TreeStats[]): void {
  const bytes = stats.reduce((n, s) => n + s.bytes, 0);
  const entries = stats.reduce((n, s) => n + s.entries, 0);
  // Objects (deduplicated file contents, fs-verity Merkle trees) and up to two images per tree.
  const size = Math.max(1024, Math.ceil((bytes * 3 + 512 * 2 ** 20) / 2 ** 20));
  fs.writeFileSync(image, "");
  fs.truncateSync(image, size * 2 ** 20);
  run("mkfs.ext4", [
    "-q",
    "-F",
    "-b",
    "4096", // fs-verity on Linux 6.1 needs block size == page size
    "-N",
    String(entries * 2 + 16384),
    "-O",
    "verity,^has_journal",
    "-L",
    "cfsrepo",
    image,
  ], "mkfs.ext4 (repository image)");
}

function readIf(p: string): Uint8Array | undefined {
  try {
    return fs.readFileSync(p);
  } catch {
    return undefined;
  }
}

function readText(p: string): string | undefined {
  const b = readIf(p);
  return b === undefined ? undefined : new TextDecoder().decode(b);
}

/**
 * Runs `cfsctl compute-id`, `create-dumpfile` and `create-image` (and their `--bootable`
 * variants) on every tree in one QEMU guest boot, with a fresh repository for the batch.
 * Results are in the order of `jobs`. Throws (with the tail of the guest console) if the guest
 * does not finish every job; a failing cfsctl command is not an error (see `errors`).
 */
export async function runCfsctlOracle(
  jobs: OracleJob[],
  opts: OracleOptions = {},
): Promise<OracleResult[]> {
  if (!jobs.length) return [];
  const log = opts.log ?? (() => {});
  checkOraclePrerequisites(opts.cfsctl);
  const workRoot = opts.workRoot ?? DEFAULT_WORK_ROOT;
  fs.mkdirSync(workRoot, { recursive: true });
  const initrd = oracleInitramfs({ cfsctl: opts.cfsctl, workRoot, log });

  const trees = jobs.map((j) => {
    const real = fs.realpathSync(j.tree);
    if (!fs.statSync(real).isDirectory()) throw new Error(`not a directory: ${j.tree}`);
    return real;
  });
  const runDir = fs.mkdtempSync(path.join(workRoot, "run-"));
  const share = path.join(runDir, "share");
  const outDir = path.join(share, "out");
  fs.mkdirSync(outDir, { recursive: true });
  const consoleLog = path.join(runDir, "console.log");
  const treesImg = path.join(runDir, "trees.img");
  const repoImg = path.join(runDir, "repo.img");
  let ok = false;
  try {
    let t = performance.now();
    const stats = trees.map(treeStats);
    buildTreesImage(treesImg, trees, stats);
    buildRepoImage(repoImg, stats);
    const mib = stats.reduce((n, s) => n + s.bytes, 0) / 2 ** 20;
    log(
      `disk images for ${jobs.length} trees (${mib.toFixed(1)} MiB) in ${
        ((performance.now() - t) / 1000).toFixed(1)
      } s`,
    );

    const lines = [BATCH_HEAD];
    jobs.forEach((j, i) => {
      lines.push(
        `job ${i} ${jobs.length} ${j.bootable === false ? 0 : 1}${
          j.statRoot ? " --stat-root" : ""
        }`,
      );
    });
    lines.push("echo all-done > /share/out/done", "");
    fs.writeFileSync(path.join(share, "batch.sh"), lines.join("\n"));

    // Measured (TCG, 1 vCPU): ~5 s boot, ~1.2 s per small tree, ~40 s for a 206 MiB rootfs.
    const timeoutMs = opts.timeoutMs ?? 120_000 + Math.ceil(mib * 1000) + 10_000 * jobs.length;
    t = performance.now();
    let bootedAt: number | undefined;
    const res = await bootQemu({
      kernel: initrd.kernel,
      initrd: initrd.path,
      append: guestCommandLine(timeoutMs),
      memoryMiB: opts.memoryMiB ?? 2048,
      smp: opts.smp,
      cpu: opts.cpu,
      drives: [{ file: repoImg }, { file: treesImg, readonly: true }],
      virtfs: [{ path: share, tag: "share" }],
      timeoutMs,
      consoleLog,
      onConsoleLine: (l) => {
        if (!l.startsWith("CFS-ORACLE")) return;
        if (l.startsWith("CFS-ORACLE-BOOTED")) bootedAt = performance.now();
        log(`guest: ${l} (${((performance.now() - t) / 1000).toFixed(1)} s)`);
      },
    });
    log(
      `qemu exited ${res.exitCode ?? res.signal} after ${(res.elapsedMs / 1000).toFixed(1)} s` +
        (bootedAt ? ` (boot ${((bootedAt - t) / 1000).toFixed(1)} s)` : ""),
    );
    if (!fs.existsSync(path.join(outDir, "done"))) {
      const why = res.timedOut
        ? `timed out after ${timeoutMs} ms`
        : `exited ${res.exitCode ?? res.signal} before finishing`;
      throw new Error(
        `cfsctl oracle VM ${why}; run dir ${runDir}\n` +
          (res.stderr ? `qemu stderr: ${res.stderr.trim()}\n` : "") +
          `--- guest console (tail) ---\n${tailFile(consoleLog, 60)}\n` +
          `--- batch.log (tail) ---\n${tailFile(path.join(share, "batch.log"), 20)}`,
      );
    }
    const results = jobs.map((j, i) =>
      collect(j.tree, path.join(outDir, String(i)), j.bootable !== false)
    );
    ok = true;
    return results;
  } finally {
    if (opts.keepWorkDir) log(`kept run dir ${runDir}`);
    else if (ok) fs.rmSync(runDir, { recursive: true, force: true });
    else {
      // keep logs and outputs for inspection, drop the big images
      fs.rmSync(treesImg, { force: true });
      fs.rmSync(repoImg, { force: true });
    }
  }
}

function collect(tree: string, d: string, withBoot: boolean): OracleResult {
  if (!fs.existsSync(path.join(d, "done"))) {
    throw new Error(`cfsctl oracle: no output for ${tree} in ${d}`);
  }
  const errors: string[] = [];
  const seconds: Record<string, number> = {};
  for (const line of (readText(path.join(d, "times")) ?? "").split("\n")) {
    const [n, a, b] = line.split(" ");
    if (n && a && b) {
      seconds[n.replace(/-bootable$/, " --bootable")] = Math.round((+b - +a) * 100) / 100;
    }
  }
  const get = (cmd: string, bootable: boolean) => {
    const n = cmd + (bootable ? "-bootable" : "");
    const rc = (readText(path.join(d, `${n}.rc`)) ?? "").trim();
    const out = readIf(path.join(d, `${n}.out`)) ?? new Uint8Array();
    const err = readText(path.join(d, `${n}.err`)) ?? "";
    if (rc !== "0") {
      errors.push(`${cmd}${bootable ? " --bootable" : ""}: exit ${rc || "?"}: ${err.trim()}`);
      return undefined;
    }
    return { out, img: readIf(path.join(d, `${n}.img`)) };
  };
  const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
  const r: OracleResult = {
    tree,
    computeId: "",
    dumpfile: new Uint8Array(),
    image: new Uint8Array(),
    imageId: "",
    errors,
    seconds,
  };
  for (const bootable of withBoot ? [false, true] : [false]) {
    const id = get("compute-id", bootable);
    const dump = get("create-dumpfile", bootable);
    const img = get("create-image", bootable);
    const imageId = img ? text(img.out).replace(/^sha256:/, "") : undefined;
    if (img && !img.img) {
      errors.push(`create-image${bootable ? " --bootable" : ""}: image file not copied out`);
    }
    if (!bootable) {
      r.computeId = id ? text(id.out) : "";
      r.dumpfile = dump?.out ?? new Uint8Array();
      r.image = img?.img ?? new Uint8Array();
      r.imageId = imageId ?? "";
    } else {
      if (id) r.computeIdBootable = text(id.out);
      if (dump) r.dumpfileBootable = dump.out;
      if (img?.img) r.imageBootable = img.img;
      if (imageId !== undefined) r.imageIdBootable = imageId;
    }
  }
  return r;
}

if (import.meta.main) {
  // deno run -A test/vm/cfsctl_oracle.ts TREE... : prints a summary per tree.
  const t0 = performance.now();
  const results = await runCfsctlOracle(Deno.args.map((tree) => ({ tree })), {
    log: (s) => console.error(`[${((performance.now() - t0) / 1000).toFixed(1)}s] ${s}`),
    keepWorkDir: Deno.env.get("KEEP") === "1",
  });
  for (const r of results) {
    console.log(JSON.stringify({
      tree: r.tree,
      computeId: r.computeId,
      computeIdBootable: r.computeIdBootable,
      imageId: r.imageId,
      dumpfileBytes: r.dumpfile.length,
      imageBytes: r.image.length,
      imageBootableBytes: r.imageBootable?.length,
      errors: r.errors,
      seconds: r.seconds,
    }));
  }
}
