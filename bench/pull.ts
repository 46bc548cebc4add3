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
 * Run alone: `deno run -A bench/pull.ts` (prints the table, then the numbers as JSON).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { debianRootfs } from "../test/fixtures/debootstrap.ts";
import { buildOciImage, type BuiltImage, CommandError, run } from "../test/fixtures/oci.ts";
import { pushToRegistry, type Registry, startRegistry } from "../test/fixtures/registry.ts";

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
/** Recorded in each image's marker; a layout built by another version is built again. */
const IMAGE_RECIPE = 2;

/** One benchmark image: its layout, tag, and the layer blobs (for the floor). */
interface BenchImage {
  name: string;
  layerCount: number;
  dir: string;
  tag: string;
  layerBlobs: string[];
  layerBytes: number;
  /** Compressed size of each layer. */
  layerSizes: number[];
}

/** One measured run of a command. */
interface Sample {
  seconds: number;
  peakMB: number;
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
      args: ["-f", "%e %M", "-o", timeFile, ...argv],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new RunFailed(argv, out.code, new TextDecoder().decode(out.stderr));
    }
    const last = (await Deno.readTextFile(timeFile)).trim().split("\n").pop() ?? "";
    const m = /^([0-9.]+) (\d+)$/.exec(last);
    if (!m) throw new Error(`no GNU time output for ${argv.join(" ")}: ${last}`);
    return { seconds: Number(m[1]), peakMB: Number(m[2]) / 1024 };
  } finally {
    await Deno.remove(timeFile).catch(() => {});
  }
}

/**
 * Runs `once` (which returns one sample per phase, e.g. copy and unpack) once, and twice
 * more when the first run's total is under {@link REPEAT_UNDER_SECONDS}.
 */
async function repeat(once: () => Promise<Sample[]>): Promise<Sample[][]> {
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

// --- the images ---------------------------------------------------------------------------------

/**
 * Every non-directory entry and every empty directory of `root`, sorted, with its size and,
 * for files with more than one link, its inode.
 */
async function leafEntries(
  root: string,
): Promise<{ path: string; size: number; inode?: number }[]> {
  const out: { path: string; size: number; inode?: number }[] = [];
  const walk = async (rel: string) => {
    const names: string[] = [];
    for await (const e of Deno.readDir(join(root, rel))) names.push(e.name);
    names.sort();
    if (names.length === 0 && rel !== "") out.push({ path: rel, size: 0 });
    for (const name of names) {
      const path = rel === "" ? name : `${rel}/${name}`;
      const info = await Deno.lstat(join(root, path));
      if (info.isDirectory) await walk(path);
      else if (!info.isFile) out.push({ path, size: 0 });
      else {out.push({
          path,
          size: info.size,
          inode: (info.nlink ?? 1) > 1 ? info.ino! : undefined,
        });}
    }
  };
  await walk("");
  return out;
}

/**
 * Makes `count` directories under `work`, hard-linked copies (`cp -al --parents`, which
 * also copies the parent directories' modes and owners) of consecutive runs of `rootfs`'s
 * entries with about equal bytes each. Layered in order, they give back `rootfs`.
 */
async function splitTree(rootfs: string, work: string, count: number): Promise<string[]> {
  const entries = await leafEntries(rootfs);
  const seen = new Set<number>();
  let total = 0;
  for (const e of entries) {
    if (e.inode !== undefined && seen.has(e.inode)) continue;
    if (e.inode !== undefined) seen.add(e.inode);
    total += e.size;
  }
  const parts: string[][] = Array.from({ length: count }, () => []);
  // Each part takes entries until it holds its share of the bytes not yet placed, so a
  // file bigger than a tenth of the tree does not leave a later part empty. Hard links to
  // one file go to the part of its first name, so that they stay links in one layer.
  const partOfInode = new Map<number, number>();
  let k = 0;
  let placed = 0;
  let inPart = 0;
  for (const e of entries) {
    if (e.inode !== undefined) {
      const first = partOfInode.get(e.inode);
      if (first !== undefined) {
        parts[first].push(e.path);
        continue;
      }
      partOfInode.set(e.inode, k);
    }
    parts[k].push(e.path);
    inPart += e.size;
    if (k < count - 1 && inPart >= (total - placed) / (count - k)) {
      placed += inPart;
      inPart = 0;
      k++;
    }
  }
  const dirs: string[] = [];
  for (const [k, paths] of parts.entries()) {
    const dir = join(work, `part-${k}`);
    await Deno.mkdir(dir, { recursive: true });
    const list = join(work, `part-${k}.list`);
    await Deno.writeTextFile(list, paths.map((p) => `${p}\0`).join(""));
    await run(["sh", "-c", 'xargs -0 -a "$1" cp -al --parents -t "$2" --', "sh", list, dir], {
      cwd: rootfs,
    });
    await Deno.remove(list);
    dirs.push(dir);
  }
  return dirs;
}

/**
 * The layout of an image of the Debian rootfs in `layerCount` gzip layers, built on first use
 * and reused while its marker exists and names {@link IMAGE_RECIPE} (otherwise built again
 * from scratch).
 */
async function ensureImage(rootfs: string, layerCount: number): Promise<BenchImage> {
  const name = `debian-${layerCount}layer`;
  const dir = join(DATA_DIR, name);
  const marker = `${dir}.done`;
  let built: Pick<BuiltImage, "layers"> & { recipe?: number } | undefined;
  try {
    built = JSON.parse(await Deno.readTextFile(marker));
  } catch { /* not built yet */ }
  if (built?.recipe !== IMAGE_RECIPE) {
    await Deno.remove(marker).catch(() => {});
    for (const p of [dir, `${dir}.work`, `${dir}.split`]) {
      await Deno.remove(p, { recursive: true }).catch(() => {});
    }
    await Deno.mkdir(DATA_DIR, { recursive: true });
    const parts = layerCount === 1 ? [rootfs] : await splitTree(rootfs, `${dir}.split`, layerCount);
    const image = await buildOciImage(dir, {
      tag: TAG,
      layers: parts.map((p) => ({ dir: p })),
      compression: "gzip",
    });
    // The uncompressed tars and the hard-linked parts are only needed while building.
    await Deno.remove(`${dir}.work`, { recursive: true });
    await Deno.remove(`${dir}.split`, { recursive: true }).catch(() => {});
    built = {
      recipe: IMAGE_RECIPE,
      layers: image.layers.map(({ tarPath: _, ...l }) => ({ ...l, tarPath: "" })),
    };
    await Deno.writeTextFile(marker, JSON.stringify(built));
  }
  return {
    name,
    layerCount,
    dir,
    tag: TAG,
    // From the digest, not the recorded path: the cache may have been built in another checkout.
    layerBlobs: built.layers.map((l) => join(dir, "blobs", "sha256", l.digest.slice(7))),
    layerBytes: built.layers.reduce((s, l) => s + l.size, 0),
    layerSizes: built.layers.map((l) => l.size),
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
    images.push(await ensureImage(rootfs, n));
  }
  const loadBefore = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  await using registry = await startRegistry();
  for (const image of images) {
    log(`push ${image.name} to ${registry.host}`);
    await pushToRegistry(registry, `oci:${image.dir}:${image.tag}`, `bench/${image.name}:${TAG}`);
  }
  const rows: PullRow[] = [];
  for (const image of images) rows.push(...await benchImage(image, registry, log));
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
