/**
 * Benchmark: pulling the Debian root file system (`debootstrap --variant=minbase bookworm`,
 * 206 MB, 6.8k entries) as an OCI image, from an OCI layout and from a real registry.
 *
 * Two images, gzip layers, built once with the fixture builders and cached under
 * `bench/data/pull/` (git-ignored; a `.done` marker next to each layout):
 *
 * - `debian-1layer`: the whole tree in one layer;
 * - `debian-10layer`: the tree's files (sorted by path) cut into 10 runs of about equal
 *   bytes, each layer holding its files and their parent directories (hard links to one
 *   file kept in one layer), so both images have the same image ID, which the run checks.
 *
 * Both are pushed to Debian's `docker-registry` on 127.0.0.1 (`skopeo copy`), then, for each
 * image, every tool runs as a fresh process timed by GNU time (`%e %M`: wall seconds, peak
 * RSS), the median of 3 runs when the first takes under 30 s, else that one run:
 *
 * - (a) `skopeo copy docker://... oci:TMP:t` then `umoci unpack --image TMP:t BUNDLE`:
 *   copy, unpack and their sum (the reference the ratios divide by);
 * - (b) `cfsctl oci pull`: not run (cfsctl 0.3.0 needs fs-verity, which this host lacks);
 * - (c) the floor: `gzip -dc` of every layer blob piped into `sha512sum`;
 * - (d) `cfs oci pull oci:DIR:TAG` and `cfs oci pull --tls-verify=false docker://...`, each
 *   into a fresh `cfs init --insecure` repository (Deno's start-up included).
 *
 * Targets of the issue: cfs at most 1.0x of (a), peak RSS under 256 MB.
 *
 * Then, per image, unified vs direct `cfs pull` from the registry (both images have the
 * /boot directory `cfs pull` needs for the bootable image), each into a fresh
 * `<tmp>/sysroot/composefs` that the pull creates (insecure, `--allow-missing-fsverity
 * --no-default-hooks --tls-verify=false`):
 *
 * - (e) `cfs pull docker://...`: direct;
 * - (e) `cfs pull --unified docker://...`: `podman pull` into `<repo>/bootc/storage`
 *   (stage `storage`), then the zero-copy import from it (stage `import`, hard links on
 *   this ext4).
 *
 * For each: wall time and peak RSS (GNU time; podman's RSS counts, as a waited-for child),
 * the stage durations from the `--json` stage-end events (CFS_DURATION_MS), and disk: the
 * growth of the file system's used bytes (`df --output=used -B1`, `sync -f` before each
 * reading; what stays on disk, temporary files excluded; it is the whole file system's, so
 * other writers on it show up in single runs, which the median damps), `du -s -B1` of
 * everything the pull left (repository and storage, a hard-linked inode counted once; for
 * `--unified` also the storage alone), and the bytes the process tree dirtied (GNU time
 * `%O` x 512, i.e. the kernel's write_bytes of cfs and its waited-for children, podman
 * included; files written and deleted again, such as podman's blob copies in /var/tmp,
 * count too).
 *
 * Run alone: `deno run -A bench/pull.ts` (prints the table, then the numbers as JSON).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { debianRootfs } from "../test/fixtures/debootstrap.ts";
import { CommandError, run } from "../test/fixtures/oci.ts";
import {
  type DebianImage as BenchImage,
  ensureDebianImage,
} from "../test/fixtures/debian_image.ts";
import { pushToRegistry, type Registry, startRegistry } from "../test/fixtures/registry.ts";
import { createHash } from "node:crypto";
import { RUNROOT_BASE, unifiedStoragePath } from "../lib/pipeline/unified.ts";
import { STAGE_END } from "../lib/log.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const DATA_DIR = fileURLToPath(new URL("./data/pull/", import.meta.url));
const GNU_TIME = "/usr/bin/time";
/** Keep in step with CFS_V8_FLAGS in the Makefile. */
const V8_FLAGS = ["--v8-flags=--max-semi-space-size=1"];
const TAG = "v1";
/** A first run at least this long is not repeated. */
const REPEAT_UNDER_SECONDS = 30;
const TARGET_RATIO = 1.0;
const TARGET_RSS_MB = 256;
/** One measured run of a command. */
interface Sample {
  seconds: number;
  peakMB: number;
  /** Bytes the process and its waited-for children dirtied (GNU time `%O` x 512). */
  writtenBytes?: number;
  /** The command's standard output. */
  stdout?: string;
}

/** One row of the table. */
export interface PullRow {
  image: string;
  tool: string;
  /** Median wall seconds; undefined when the command failed. */
  wallSeconds?: number;
  /** Highest peak RSS of the runs (MB). */
  peakRssMB?: number;
  /** Every run's wall seconds. */
  runs?: number[];
  /** wallSeconds / (a)'s summed wall seconds. */
  ratio?: number;
  /** Why there is no number. */
  note?: string;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** A command that exited non-zero: its first meaningful stderr line is the table's note. */
class RunFailed extends Error {
  constructor(readonly argv: string[], readonly code: number, readonly stderr: string) {
    const lines = stderr.split("\n").map((l) => l.trim()).filter((l) =>
      l !== "" && !/^Command exited with non-zero status/.test(l)
    );
    super(lines[0] ?? `exit ${code}`);
    this.name = "RunFailed";
  }
}

/** Runs `argv` under GNU time; returns wall seconds and peak RSS, throws {@link RunFailed}. */
async function timed(argv: string[]): Promise<Sample> {
  const timeFile = await Deno.makeTempFile({ prefix: "cfs-bench-time-" });
  try {
    const out = await new Deno.Command(GNU_TIME, {
      args: ["-f", "%e %M %O", "-o", timeFile, ...argv],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new RunFailed(argv, out.code, new TextDecoder().decode(out.stderr));
    }
    const last = (await Deno.readTextFile(timeFile)).trim().split("\n").pop() ?? "";
    const m = /^([0-9.]+) (\d+) (\d+)$/.exec(last);
    if (!m) throw new Error(`no GNU time output for ${argv.join(" ")}: ${last}`);
    return {
      seconds: Number(m[1]),
      peakMB: Number(m[2]) / 1024,
      writtenBytes: Number(m[3]) * 512,
      stdout: new TextDecoder().decode(out.stdout),
    };
  } finally {
    await Deno.remove(timeFile).catch(() => {});
  }
}

/**
 * Runs `once` (which returns one sample per phase, e.g. copy and unpack) once, and twice
 * more when the first run's total is under {@link REPEAT_UNDER_SECONDS}.
 */
async function repeat<T extends Sample>(once: () => Promise<T[]>): Promise<T[][]> {
  const first = await once();
  const runs = [first];
  if (first.reduce((s, x) => s + x.seconds, 0) < REPEAT_UNDER_SECONDS) {
    for (let i = 0; i < 2; i++) runs.push(await once());
  }
  return runs;
}

/** A row from runs of one phase each. */
function rowOf(image: string, tool: string, runs: Sample[]): PullRow {
  const seconds = runs.map((r) => r.seconds);
  return {
    image,
    tool,
    wallSeconds: median(seconds),
    peakRssMB: round(Math.max(...runs.map((r) => r.peakMB)), 1),
    runs: seconds,
  };
}

// --- the tools ----------------------------------------------------------------------------------

/** (a) `skopeo copy` from the registry into a fresh layout, then `umoci unpack` of it. */
async function skopeoUmoci(ref: string): Promise<Sample[]> {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-bench-skopeo-" });
  try {
    const layout = join(tmp, "layout");
    const copy = await timed([
      "skopeo",
      "copy",
      "--quiet",
      "--src-tls-verify=false",
      ref,
      `oci:${layout}:t`,
    ]);
    const unpack = await timed(["umoci", "unpack", "--image", `${layout}:t`, join(tmp, "bundle")]);
    return [copy, unpack];
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** (c) Decompress every layer and hash the tar stream: no tar parsing, no writes. */
async function gunzipFloor(image: BenchImage): Promise<Sample[]> {
  return [
    await timed([
      "bash",
      "-c",
      'set -o pipefail; for f in "$@"; do gzip -dc -- "$f" || exit 1; done | sha512sum > /dev/null',
      "bash",
      ...image.layerBlobs,
    ]),
  ];
}

function cfsArgv(...args: string[]): string[] {
  return [Deno.execPath(), "run", "--allow-all", "--quiet", ...V8_FLAGS, CLI, ...args];
}

/** (d) `cfs oci pull REF` into a fresh insecure repository (init not timed). */
async function cfsPull(ref: string, extra: string[] = []): Promise<Sample[]> {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-bench-repo-" });
  try {
    const repo = join(tmp, "repo");
    await run(cfsArgv("init", "--insecure", repo));
    return [await timed(cfsArgv("--repo", repo, "oci", "pull", ...extra, ref))];
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** `cfs oci compute-id` of the image after one pull from the layout (to check the split). */
async function cfsImageId(image: BenchImage): Promise<string> {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-bench-repo-" });
  try {
    const repo = join(tmp, "repo");
    await run(cfsArgv("init", "--insecure", repo));
    const out = await run(cfsArgv("--repo", repo, "oci", "pull", `oci:${image.dir}:${image.tag}`));
    const sha = /^sha256 ([0-9a-f]{64})$/m.exec(out)?.[1];
    if (!sha) throw new Error(`cfs oci pull printed no config digest: ${out}`);
    return (await run(cfsArgv("--repo", repo, "oci", "compute-id", sha))).trim();
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

// --- unified vs direct `cfs pull` ---------------------------------------------------------------

/** One run of `cfs pull`, direct or `--unified`. */
interface PullRun extends Sample {
  /** Growth of the file system's used bytes (`df`), each reading after `sync -f`. */
  dfBytes: number;
  /** `du -s -B1` of the run's directory: repository and storage, linked inodes once. */
  duBytes: number;
  /** `--unified`: `du -s -B1` of `<repo>/bootc/storage` alone. */
  storageDuBytes?: number;
  /** Stage durations (ms), from the `--json` stage-end events. */
  stageMs: Record<string, number>;
}

/** One row of the unified-vs-direct table: medians of the runs. */
export interface UnifiedRow {
  image: string;
  tool: string;
  /** Median wall seconds; undefined when the command failed. */
  wallSeconds?: number;
  /** Highest peak RSS of the runs (MB; podman's counts, as a waited-for child). */
  peakRssMB?: number;
  /** Every run's wall seconds. */
  runs?: number[];
  /** Median of stage `storage` (podman pull into `<repo>/bootc/storage`), seconds. */
  storageSeconds?: number;
  /** Median of stage `import` (layers into the repository), seconds. */
  importSeconds?: number;
  /** Median growth of the file system's used space (`df`), MB. */
  dfMB?: number;
  /** Median `du` of repository and storage (a hard-linked inode once), MB. */
  duMB?: number;
  /** `--unified`: median `du` of the storage alone, MB. */
  storageDuMB?: number;
  /** Median bytes dirtied by cfs and its children (GNU time `%O` x 512), MB. */
  writtenMB?: number;
  /** Every run's numbers (seconds, bytes, stage milliseconds). */
  detail?: Omit<PullRun, "stdout">[];
  /** Why there is no number. */
  note?: string;
}

async function dfUsed(path: string): Promise<number> {
  await run(["sync", "-f", path]);
  return Number((await run(["df", "--output=used", "-B1", path])).trim().split("\n").pop());
}

async function duBytes(path: string): Promise<number> {
  return Number((await run(["du", "-s", "-B1", path])).split("\t")[0]);
}

/** Stage name -> CFS_DURATION_MS of the stage-end events in `cfs --json pull`'s output. */
function stageDurations(stdout: string): Record<string, number> {
  const out: Record<string, number> = {};
  let result: { durations?: Record<string, number> } | undefined;
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    const e = JSON.parse(line);
    if (e.result) result = e.result;
    else if (e.id === STAGE_END && typeof e.CFS_STAGE === "string") {
      out[e.CFS_STAGE] = Number(e.CFS_DURATION_MS);
    }
  }
  if (!result) throw new Error(`cfs pull printed no result: ${stdout.slice(-300)}`);
  return Object.keys(out).length ? out : { ...result.durations };
}

/**
 * (e) `cfs pull [--unified] REF` into a fresh `<tmp>/sysroot/composefs`, which the pull
 * creates; the tree, and podman's runroot for its storage, are removed afterwards.
 */
async function cfsPullRun(ref: string, unified: boolean): Promise<PullRun[]> {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-bench-unified-" });
  const repo = join(tmp, "sysroot", "composefs");
  const storage = unifiedStoragePath(repo);
  try {
    const before = await dfUsed(tmp);
    const sample = await timed(cfsArgv(
      "--repo",
      repo,
      "--json",
      "pull",
      "--allow-missing-fsverity",
      "--no-default-hooks",
      "--tls-verify=false",
      ...(unified ? ["--unified"] : []),
      ref,
    ));
    const after = await dfUsed(tmp);
    const { stdout, ...rest } = sample;
    return [{
      ...rest,
      dfBytes: after - before,
      duBytes: await duBytes(tmp),
      storageDuBytes: unified ? await duBytes(storage) : undefined,
      stageMs: stageDurations(stdout ?? ""),
    }];
  } finally {
    await Deno.remove(tmp, { recursive: true });
    const runroot = join(
      RUNROOT_BASE,
      createHash("sha256").update(storage).digest("hex").slice(0, 16),
    );
    await Deno.remove(runroot, { recursive: true }).catch(() => {});
  }
}

/** Unified vs direct `cfs pull` of one image from the registry; rows in table order. */
async function benchUnified(
  image: BenchImage,
  registry: Registry,
  log: (s: string) => void,
): Promise<UnifiedRow[]> {
  const remote = `docker://${registry.host}/bench/${image.name}:${image.tag}`;
  const rows: UnifiedRow[] = [];
  const mb = (b: number) => round(b / 1e6, 1);
  const med = (runs: PullRun[], f: (r: PullRun) => number | undefined) => {
    const xs = runs.map(f).filter((x): x is number => x !== undefined && !Number.isNaN(x));
    return xs.length ? median(xs) : undefined;
  };
  for (
    const [tool, unified] of [["(e) cfs pull", false], ["(e) cfs pull --unified", true]] as const
  ) {
    log(`${image.name}: ${tool}`);
    let runs: PullRun[];
    try {
      runs = (await repeat(() => cfsPullRun(remote, unified))).map((r) => r[0]);
    } catch (thrown) {
      const e = thrown instanceof CommandError
        ? new RunFailed(thrown.argv, thrown.code, thrown.stderr)
        : thrown;
      if (!(e instanceof RunFailed)) throw e;
      rows.push({ image: image.name, tool, note: `failed: ${e.message}` });
      log(`${image.name}: ${tool} failed: ${e.message}`);
      continue;
    }
    const ms = (stage: string) => {
      const x = med(runs, (r) => r.stageMs[stage]);
      return x === undefined ? undefined : round(x / 1000);
    };
    const bytes = (f: (r: PullRun) => number | undefined) => {
      const x = med(runs, f);
      return x === undefined ? undefined : mb(x);
    };
    rows.push({
      ...rowOf(image.name, tool, runs),
      storageSeconds: ms("storage"),
      importSeconds: ms("import"),
      dfMB: bytes((r) => r.dfBytes),
      duMB: bytes((r) => r.duBytes),
      storageDuMB: bytes((r) => r.storageDuBytes),
      writtenMB: bytes((r) => r.writtenBytes),
      detail: runs,
    });
  }
  return rows;
}

/** The unified-vs-direct table {@link formatPullTable} appends. */
export function formatUnifiedTable(rows: UnifiedRow[]): string {
  const num = (x: number | undefined, w: number, d = 2) =>
    (x === undefined ? "-" : x.toFixed(d)).padStart(w);
  const out = [
    `${"tool / variant".padEnd(34)} ${"image".padEnd(15)} ${"wall s".padStart(7)} ${
      "peak RSS MB".padStart(11)
    } ${"storage s".padStart(9)} ${"import s".padStart(8)} ${"df MB".padStart(7)} ${
      "du MB".padStart(7)
    } ${"written MB".padStart(10)}   runs (s)`,
  ];
  for (const r of rows) {
    if (r.wallSeconds === undefined) {
      out.push(`${r.tool.padEnd(34)} ${r.image.padEnd(15)} ${r.note ?? ""}`);
      continue;
    }
    out.push(
      `${r.tool.padEnd(34)} ${r.image.padEnd(15)} ${num(r.wallSeconds, 7)} ${
        num(r.peakRssMB, 11, 1)
      } ${num(r.storageSeconds, 9)} ${num(r.importSeconds, 8)} ${num(r.dfMB, 7, 1)} ${
        num(r.duMB, 7, 1)
      } ${num(r.writtenMB, 10, 1)}   ${(r.runs ?? []).map((s) => s.toFixed(2)).join(" ")}`,
    );
  }
  out.push("");
  for (const u of rows.filter((r) => r.tool.endsWith("--unified") && r.wallSeconds)) {
    const d = rows.find((r) => r.image === u.image && r.tool === "(e) cfs pull");
    if (d?.wallSeconds === undefined) continue;
    const ratio = (a?: number, b?: number) =>
      a === undefined || b === undefined || b === 0 ? "-" : `${(a / b).toFixed(2)}x`;
    out.push(
      `  ${u.image}: unified/direct wall ${ratio(u.wallSeconds, d.wallSeconds)}, df ${
        ratio(u.dfMB, d.dfMB)
      }, written ${ratio(u.writtenMB, d.writtenMB)}; unified: storage (podman pull) ${
        u.storageSeconds?.toFixed(2)
      } s + import ${u.importSeconds?.toFixed(2)} s, the storage ${
        u.storageDuMB?.toFixed(1)
      } MB (du) and the repository ${
        u.duMB !== undefined && u.storageDuMB !== undefined
          ? (u.duMB - u.storageDuMB).toFixed(1)
          : "-"
      } MB on top`,
    );
  }
  return out.join("\n");
}

/** Measures one image with every tool; rows in table order. */
async function benchImage(
  image: BenchImage,
  registry: Registry,
  log: (s: string) => void,
): Promise<PullRow[]> {
  const remote = `docker://${registry.host}/bench/${image.name}:${image.tag}`;
  const rows: PullRow[] = [];
  const attempt = async (tool: string, once: () => Promise<Sample[]>) => {
    log(`${image.name}: ${tool}`);
    try {
      return await repeat(once);
    } catch (thrown) {
      const e = thrown instanceof CommandError
        ? new RunFailed(thrown.argv, thrown.code, thrown.stderr)
        : thrown;
      if (!(e instanceof RunFailed)) throw e;
      rows.push({ image: image.name, tool, note: `failed: ${e.message}` });
      log(`${image.name}: ${tool} failed: ${e.message}`);
      return undefined;
    }
  };

  const a = await attempt("(a) skopeo copy + umoci unpack", () => skopeoUmoci(remote));
  if (a) {
    const total = a.map((r) => ({
      seconds: r[0].seconds + r[1].seconds,
      peakMB: Math.max(r[0].peakMB, r[1].peakMB),
    }));
    rows.push(rowOf(image.name, "(a) skopeo copy + umoci unpack", total));
    rows.push(rowOf(image.name, "    skopeo copy", a.map((r) => r[0])));
    rows.push(rowOf(image.name, "    umoci unpack", a.map((r) => r[1])));
  }
  rows.push({
    image: image.name,
    tool: "(b) cfsctl oci pull",
    note: "cfsctl oci pull: not run on this host (no fs-verity)",
  });
  const c = await attempt("(c) floor: gzip -dc | sha512sum", () => gunzipFloor(image));
  if (c) rows.push(rowOf(image.name, "(c) floor: gzip -dc | sha512sum", c.map((r) => r[0])));
  const layout = await attempt("(d) cfs oci pull oci:", () => cfsPull(`oci:${image.dir}:${TAG}`));
  if (layout) rows.push(rowOf(image.name, "(d) cfs oci pull oci:", layout.map((r) => r[0])));
  const docker = await attempt(
    "(d) cfs oci pull docker://",
    () => cfsPull(remote, ["--tls-verify=false"]),
  );
  if (docker) rows.push(rowOf(image.name, "(d) cfs oci pull docker://", docker.map((r) => r[0])));

  const reference = rows.find((r) => r.tool.startsWith("(a)"))?.wallSeconds;
  for (const r of rows) {
    if (reference !== undefined && r.wallSeconds !== undefined) {
      r.ratio = round(r.wallSeconds / reference);
    }
  }
  return rows;
}

/** The table {@link benchPull} prints. */
export function formatPullTable(res: Record<string, unknown>): string {
  const rows = res.rows as PullRow[];
  const out = [
    `${"tool / variant".padEnd(34)} ${"image".padEnd(15)} ${"wall s".padStart(7)} ${
      "peak RSS MB".padStart(11)
    } ${"vs (a)".padStart(7)}   runs (s)`,
  ];
  for (const r of rows) {
    if (r.wallSeconds === undefined) {
      out.push(`${r.tool.padEnd(34)} ${r.image.padEnd(15)} ${r.note ?? ""}`);
      continue;
    }
    out.push(
      `${r.tool.padEnd(34)} ${r.image.padEnd(15)} ${r.wallSeconds.toFixed(2).padStart(7)} ${
        (r.peakRssMB ?? NaN).toFixed(1).padStart(11)
      } ${r.ratio === undefined ? "".padStart(7) : `${r.ratio.toFixed(2)}x`.padStart(7)}   ${
        (r.runs ?? []).map((s) => s.toFixed(2)).join(" ")
      }`,
    );
  }
  out.push("");
  out.push(
    `targets: cfs at most ${TARGET_RATIO.toFixed(1)}x of (a), peak RSS under ${TARGET_RSS_MB} MB`,
  );
  for (const r of rows.filter((r) => r.tool.startsWith("(d)"))) {
    if (r.wallSeconds === undefined) {
      out.push(`  ${r.tool} ${r.image}: no number (${r.note})`);
      continue;
    }
    const time = r.ratio !== undefined && r.ratio <= TARGET_RATIO ? "met" : "MISSED";
    const rss = (r.peakRssMB ?? Infinity) < TARGET_RSS_MB ? "met" : "MISSED";
    out.push(
      `  ${r.tool} ${r.image}: time ${time} (${r.ratio?.toFixed(2)}x), RSS ${rss} (${
        r.peakRssMB?.toFixed(1)
      } MB)`,
    );
  }
  const unified = res.unified as UnifiedRow[] | undefined;
  if (unified?.length) {
    out.push("");
    out.push(
      "cfs pull (bootable image included) from docker-registry, direct vs --unified " +
        "(podman pull into <repo>/bootc/storage, then zero-copy import); storage s / import s = " +
        "stage durations (--json CFS_DURATION_MS); df MB = used-space growth of / (sync'd); " +
        "du MB = repository + storage (linked inodes once); written MB = bytes dirtied by cfs " +
        "and its children (GNU time %O x 512, incl. deleted temporaries); medians",
    );
    out.push(formatUnifiedTable(unified));
  }
  const ids = res.imageIds as Record<string, string>;
  out.push(
    `image IDs (cfs oci compute-id) agree between the images: ${res.idsAgree} (${
      Object.entries(ids).map(([k, v]) => `${k} ${v.slice(0, 16)}...`).join(", ")
    })`,
  );
  return out.join("\n");
}

/**
 * Runs the benchmark: builds (or reuses) the two images, starts a registry, pushes them,
 * measures every tool on each, prints the table and returns the numbers.
 */
export async function benchPull(
  opts: { log?: (s: string) => void } = {},
): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const rootfs = await debianRootfs();
  const images: BenchImage[] = [];
  for (const n of [1, 10]) {
    log(`image debian-${n}layer (built once, then cached in ${DATA_DIR})`);
    images.push(await ensureDebianImage(rootfs, n, DATA_DIR));
  }
  const loadBefore = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  await using registry = await startRegistry();
  for (const image of images) {
    log(`push ${image.name} to ${registry.host}`);
    await pushToRegistry(registry, `oci:${image.dir}:${image.tag}`, `bench/${image.name}:${TAG}`);
  }
  const rows: PullRow[] = [];
  for (const image of images) rows.push(...await benchImage(image, registry, log));
  const unified: UnifiedRow[] = [];
  for (const image of images) unified.push(...await benchUnified(image, registry, log));
  log("image ids");
  const imageIds: Record<string, string> = {};
  for (const image of images) imageIds[image.name] = await cfsImageId(image);
  const loadAfter = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const res: Record<string, unknown> = {
    rootfs,
    images: images.map((i) => ({
      name: i.name,
      dir: i.dir,
      layers: i.layerCount,
      compressedMB: round(i.layerBytes / 1e6, 1),
      layerMB: i.layerSizes.map((b) => round(b / 1e6, 1)),
    })),
    cpus: navigator.hardwareConcurrency,
    loadavg: { before: loadBefore, after: loadAfter },
    rows,
    unified,
    imageIds,
    idsAgree: new Set(Object.values(imageIds)).size === 1,
    wallSeconds: round((performance.now() - t0) / 1000, 1),
  };
  console.log(
    `\noci pull of the Debian rootfs (206 MB, gzip layers), from a layout and from docker-registry on ` +
      `127.0.0.1; median of 3 runs (1 when the first takes ${REPEAT_UNDER_SECONDS} s or more), ` +
      `peak RSS = highest of the runs (GNU time %M); ${navigator.hardwareConcurrency} CPUs, ` +
      `load ${loadBefore} -> ${loadAfter}`,
  );
  console.log(
    images.map((i) =>
      `${i.name}: ${i.layerCount} layer(s), ${round(i.layerBytes / 1e6, 1)} MB gzip` +
      (i.layerCount > 1 ? ` (${i.layerSizes.map((b) => round(b / 1e6, 1)).join(" + ")})` : "")
    ).join("; "),
  );
  console.log(formatPullTable(res));
  console.log(`pull bench took ${res.wallSeconds} s`);
  return res;
}

if (import.meta.main) {
  const t0 = performance.now();
  const res = await benchPull({
    log: (s) => console.error(`[${((performance.now() - t0) / 1000).toFixed(1)}s] ${s}`),
  });
  console.log(JSON.stringify(res, null, 2));
}
