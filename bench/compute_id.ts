/**
 * Benchmark: `cfs compute-id` next to `cfsctl compute-id` (composefs-rs 0.3.0) on the Debian
 * root file system (`debootstrap --variant=minbase bookworm`, 206 MiB, 6.8k entries).
 * Target of the issue: cfs at most 1.5x cfsctl's time.
 *
 * cfsctl 0.3.0's compute-id stores every file larger than 64 bytes in its repository with
 * fs-verity, which this host's kernel lacks; so both tools are measured inside the same QEMU
 * guest (TCG, Debian 6.1 kernel with fs-verity), in one boot, on the same ext4 copy of the tree
 * with a warm page cache, each run as a fresh process timed with busybox `time -v`:
 *
 * - `cfsctl --repo /verity/r compute-id /trees/0`, 3 runs: the first stores every object with
 *   fs-verity, the later ones find the objects there;
 * - `cfs compute-id /trees/0`, 3 runs: hashes only, writes nothing (SHA-256, like cfsctl 0.3.0);
 * - `cfs --repo /verity/cfsrepo create-image /trees/0`, 2 runs, in a secure fsverity-sha256-12
 *   repository: stores the objects with fs-verity, the closest equivalent of cfsctl's first run;
 * - `cfs --version` 3 runs: Deno's start-up and module loading, included in every cfs number.
 *
 * For context it also times `cfs compute-id` on the host (GNU time: wall seconds, peak RSS).
 * Guest numbers are TCG numbers: absolute times are many times the host's; compare the ratios.
 *
 * Run alone: `deno run -A bench/compute_id.ts` (prints a table, then the numbers as JSON).
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { debianRootfs } from "../test/fixtures/debootstrap.ts";
import { outputText, runCfsInGuest, stepSeconds } from "../test/vm/guest_cfs.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const GNU_TIME = "/usr/bin/time";

/** One timed command: wall seconds and peak RSS (MB) of each run, and what it printed. */
export interface TimedRuns {
  command: string;
  seconds: number[];
  peakRssMB: number[];
  /** The first run's stdout, trimmed. */
  output: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length
    ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2)
    : NaN;
};
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** `cfs compute-id` on the host, `runs` times after one warm-up run. */
function hostComputeId(tree: string, runs: number): TimedRuns {
  const seconds: number[] = [];
  const peakRssMB: number[] = [];
  let output = "";
  for (let i = -1; i < runs; i++) {
    const r = spawnSync(GNU_TIME, [
      "-f",
      "TIME %e %M",
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      CLI,
      "compute-id",
      tree,
    ], {
      encoding: "utf8",
      maxBuffer: 1 << 24,
    });
    if (r.status !== 0) {
      throw new Error(`host cfs compute-id failed (${r.status}): ${r.error ?? r.stderr}`);
    }
    const m = /TIME ([0-9.]+) (\d+)\s*$/.exec(r.stderr);
    if (!m) throw new Error(`no GNU time output: ${r.stderr}`);
    if (i < 0) continue; // warm-up: fills the page cache and Deno's caches
    seconds.push(Number(m[1]));
    peakRssMB.push(round(Number(m[2]) / 1024, 1));
    output ||= r.stdout.trim();
  }
  return { command: `cfs compute-id ${tree}`, seconds, peakRssMB, output };
}

/**
 * `deno eval` code that times the phases of `cfs compute-id` (see lib/build.ts) on one tree:
 * the walk alone (no hashing), the walk with hashing, the EROFS writer, the image digest.
 */
const PHASES = `
import { readTree } from "file:///src/lib/treefs.ts";
import { fsverityDigestFileSync } from "file:///src/lib/fsverity/file.ts";
import { fsverityDigest } from "file:///src/lib/fsverity/digest.ts";
import { mkfsErofs } from "file:///src/lib/erofs/writer.ts";
const root = Deno.args[0];
const out = {};
const time = (label, f) => {
  const t0 = performance.now();
  const r = f();
  out[label] = Math.round(performance.now() - t0) / 1000;
  return r;
};
let bytes = 0;
const dummy = new Uint8Array(32);
time("walk", () => readTree(root, { external: (_p, size) => (bytes += size, dummy) }));
const tree = time("walkAndHash", () => readTree(root, { external: (p) => fsverityDigestFileSync(p, "sha256") }));
const image = time("mkfsErofs", () => mkfsErofs(tree));
time("imageDigest", () => fsverityDigest(image, "sha256"));
out.hashedMiB = Math.round(bytes / 2 ** 20);
console.log(JSON.stringify(out));
`;

/** The guest script: `t NAME CMD...` runs CMD under busybox `time -v`. */
const GUEST_SCRIPT = (runs: number) => `
export PHASES=${shellQuote(PHASES)}
t() { _n=$1; shift; time -v -o "$OUT/$_n.time" "$@" > "$OUT/$_n.out" 2> "$OUT/$_n.err"; echo $? > "$OUT/$_n.rc"; }
# warm the page cache: every file of the tree once
rec warm sh -c 'find /trees/0 -type f -exec cat {} + > /dev/null'
mkdir -p /verity/r
for i in $(seq 1 ${runs}); do t cfsctl_compute_id_$i cfsctl --repo /verity/r compute-id /trees/0; done
for i in $(seq 1 ${runs}); do t cfs_version_$i cfs --version; done
for i in $(seq 1 ${runs}); do t cfs_compute_id_$i cfs compute-id /trees/0; done
rec cfs_init cfs init --algorithm fsverity-sha256-12 /verity/cfsrepo
for i in 1 2; do t cfs_create_image_$i cfs --repo /verity/cfsrepo create-image /trees/0; done
# where cfs compute-id's time goes: phases inside one process (after a warm-up run)
for i in 1 2; do (cd /src && rec phases_$i deno eval --quiet --cached-only "$PHASES" /trees/0); done
# user-space fs-verity digests in C (libfsverity/OpenSSL) of the same files, for scale
rec fsverity_digest sh -c 'find /trees/0 -type f -size +64c -print0 | xargs -0 fsverity digest --hash-alg=sha256 > /dev/null'
rec objects_cfsctl sh -c 'ls /verity/r/objects/*/ | grep -c .'
rec objects_cfs sh -c 'ls /verity/cfsrepo/objects/*/ | grep -c .'
df -m /verity > "$OUT/df"
`;

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Parses busybox `time -v` output: wall seconds and max RSS in MB. busybox 1.35 prints
 * `ru_maxrss` (KiB on Linux) as if it were pages, i.e. multiplied by 4 (page size / 1 KiB):
 * `cfs --version` showed 206 MB in the guest where GNU time on the host says 50 MB. The
 * value is divided back here.
 */
function parseBusyboxTime(text: string, name: string): { seconds: number; rssMB: number } {
  // busybox prints "0m 18.26s" (or "1h 2m 03s"), GNU time "0:18.26"
  const wall =
    /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+)[h:] ?)?(\d+)[m:] ?([0-9.]+)s?$/m
      .exec(text);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(text);
  if (!wall || !rss) throw new Error(`${name}: cannot parse busybox time output:\n${text}`);
  const seconds = Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]);
  return { seconds, rssMB: round(Number(rss[1]) / 4 / 1024, 1) };
}

/**
 * Runs the benchmark (one guest boot, about 5-10 minutes under TCG) and returns the numbers:
 * per command the seconds and peak RSS of each run, medians, and the ratios cfs / cfsctl.
 */
export async function benchComputeId(
  opts: { runs?: number; log?: (s: string) => void; smp?: number } = {},
): Promise<Record<string, unknown>> {
  const runs = opts.runs ?? 3;
  const log = opts.log ?? (() => {});
  const tree = await debianRootfs();
  log(`rootfs ${tree}`);

  const host = hostComputeId(tree, runs);
  log(`host cfs compute-id: ${host.seconds.join(", ")} s`);

  const t0 = performance.now();
  const r = await runCfsInGuest({
    script: GUEST_SCRIPT(runs),
    trees: [tree],
    repoDiskMiB: 2048,
    cfsctl: true,
    binaries: ["/usr/bin/fsverity"],
    memoryMiB: 3072,
    smp: opts.smp,
    timeoutMs: 1_800_000,
    log,
  });
  const wallSeconds = (performance.now() - t0) / 1000;
  if (r.exitCode !== 0) throw new Error(`guest script failed (${r.exitCode}):\n${r.log}`);

  const guestRuns = (prefix: string, n: number, command: string): TimedRuns => {
    const seconds: number[] = [];
    const peakRssMB: number[] = [];
    for (let i = 1; i <= n; i++) {
      const name = `${prefix}_${i}`;
      const rc = outputText(r, `${name}.rc`).trim();
      if (rc !== "0") {
        throw new Error(
          `guest ${command} run ${i} failed (exit ${rc}): ${outputText(r, `${name}.err`)}`,
        );
      }
      const t = parseBusyboxTime(outputText(r, `${name}.time`), name);
      seconds.push(t.seconds);
      peakRssMB.push(t.rssMB);
    }
    return { command, seconds, peakRssMB, output: outputText(r, `${prefix}_1.out`).trim() };
  };
  const cfsctl = guestRuns(
    "cfsctl_compute_id",
    runs,
    "cfsctl --repo /verity/r compute-id /trees/0",
  );
  const version = guestRuns("cfs_version", runs, "cfs --version");
  const cfs = guestRuns("cfs_compute_id", runs, "cfs compute-id /trees/0");
  const create = guestRuns(
    "cfs_create_image",
    2,
    "cfs --repo /verity/cfsrepo create-image /trees/0",
  );

  const phases = [1, 2].map((i) => {
    const rc = outputText(r, `phases_${i}.rc`).trim();
    if (rc !== "0") {
      throw new Error(`guest phases run failed (${rc}): ${outputText(r, `phases_${i}.err`)}`);
    }
    return JSON.parse(outputText(r, `phases_${i}.out`)) as Record<string, number>;
  });
  const steps = stepSeconds(r);
  const cfsctlId = cfsctl.output;
  const idsAgree = cfs.output === cfsctlId && create.output === `sha256:${cfsctlId}` &&
    host.output === cfsctlId;
  const cfsMedian = median(cfs.seconds);
  const cfsctlLater = median(cfsctl.seconds.slice(1));
  const startup = median(version.seconds);
  return {
    tree,
    treeMiB: 206,
    host: { cfsComputeId: { ...host, medianSeconds: median(host.seconds) } },
    guest: {
      accel: "tcg",
      cpu: "qemu64",
      smp: opts.smp ?? 1,
      bootSeconds: r.timings.bootSeconds,
      scriptSeconds: r.timings.scriptSeconds,
      qemuWallSeconds: round(r.timings.qemuSeconds, 1),
      cfsctlComputeId: {
        ...cfsctl,
        firstRunStoresObjects: cfsctl.seconds[0],
        laterRunsMedian: cfsctlLater,
      },
      cfsComputeId: { ...cfs, medianSeconds: cfsMedian },
      cfsCreateImage: {
        ...create,
        firstRunStoresObjects: create.seconds[0],
        secondRun: create.seconds[1],
      },
      cfsStartup: { ...version, medianSeconds: startup },
      /** Seconds inside one process (second run): walk, walk + hashing, EROFS writer, image digest. */
      cfsComputeIdPhases: phases[1],
      /** `fsverity digest --hash-alg=sha256` (C, user space) of every file > 64 bytes. */
      fsverityDigestCSeconds: steps.fsverity_digest,
      objects: {
        cfsctl: Number(outputText(r, "objects_cfsctl.out").trim()),
        cfs: Number(outputText(r, "objects_cfs.out").trim()),
      },
    },
    ratios: {
      "cfs compute-id / cfsctl compute-id (objects present)": round(cfsMedian / cfsctlLater),
      "cfs compute-id / cfsctl compute-id (first run, stores)": round(
        cfsMedian / cfsctl.seconds[0],
      ),
      "cfs create-image (first) / cfsctl compute-id (first)": round(
        create.seconds[0] / cfsctl.seconds[0],
      ),
      "cfs compute-id without Deno start-up / cfsctl (objects present)": round(
        (cfsMedian - startup) / cfsctlLater,
      ),
    },
    idsAgree,
    imageId: cfsctlId,
    wallSeconds: round(wallSeconds, 1),
  };
}

/** The table `import.meta.main` prints. */
export function formatTable(res: Record<string, unknown>): string {
  // deno-lint-ignore no-explicit-any
  const g = res.guest as any;
  // deno-lint-ignore no-explicit-any
  const h = (res.host as any).cfsComputeId as TimedRuns & { medianSeconds: number };
  const rows: [string, string, TimedRuns][] = [
    ["guest", "cfsctl compute-id (run 1 stores objects)", g.cfsctlComputeId],
    ["guest", "cfs compute-id", g.cfsComputeId],
    ["guest", "cfs create-image (secure, sha256)", g.cfsCreateImage],
    ["guest", "cfs --version (start-up)", g.cfsStartup],
    ["host", "cfs compute-id", h],
  ];
  const out = [
    `${"where".padEnd(6)} ${"command".padEnd(42)} ${"seconds per run".padEnd(24)} peak RSS MB`,
  ];
  for (const [where, name, t] of rows) {
    out.push(
      `${where.padEnd(6)} ${name.padEnd(42)} ${
        t.seconds.map((s) => s.toFixed(2)).join(" ").padEnd(24)
      } ${t.peakRssMB.join(" ")}`,
    );
  }
  out.push("");
  for (const [k, v] of Object.entries(res.ratios as Record<string, number>)) out.push(`${k}: ${v}`);
  const p = g.cfsComputeIdPhases as Record<string, number>;
  out.push(
    `guest cfs compute-id phases (s): start-up ${g.cfsStartup.medianSeconds}, walk ${p.walk}, ` +
      `hashing ${round(p.walkAndHash - p.walk)} (${p.hashedMiB} MiB), EROFS ${p.mkfsErofs}, ` +
      `image digest ${p.imageDigest}; fsverity digest (C) of the same files: ${g.fsverityDigestCSeconds}`,
  );
  out.push(`image IDs agree (host cfs, guest cfs, guest cfsctl, create-image): ${res.idsAgree}`);
  return out.join("\n");
}

if (import.meta.main) {
  const t0 = performance.now();
  const res = await benchComputeId({
    runs: Number(Deno.args[0] ?? 3),
    smp: Deno.env.get("SMP") ? Number(Deno.env.get("SMP")) : undefined,
    log: (s) => console.error(`[${((performance.now() - t0) / 1000).toFixed(1)}s] ${s}`),
  });
  console.log(formatTable(res));
  console.log(JSON.stringify(res, null, 2));
}
