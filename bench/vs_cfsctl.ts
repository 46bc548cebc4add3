/**
 * Benchmark: cfs next to cfsctl 0.9.4 (composefs-ctl, test/oracles.ts) on the same input, on
 * this host, in paired runs (cfs, cfsctl, cfs, cfsctl, ...), each a fresh process timed with
 * GNU time (wall, user, sys seconds, peak RSS):
 *
 * - `compute-id` of the Debian rootfs (test/fixtures/debootstrap.ts; 206 MiB, 6.8k entries):
 *   `cfs compute-id` vs `cfsctl --no-repo compute-id`, both SHA-512 and EROFS V1 (their
 *   defaults), which hash only;
 * - `create-image` of the same rootfs: `init --insecure` + `create-image PATH` into a fresh
 *   repository each run (every file copied into objects/, then the image written);
 * - `oci pull` of the Debian rootfs as a 1-layer and a 10-layer gzip OCI layout
 *   (test/fixtures/debian_image.ts): `init --insecure` + `oci pull oci:DIR:v1 img` into a fresh
 *   repository each run;
 * - the seed's job on the 1-layer image plus a layer with `/sysroot` (which a bootable image
 *   needs): `cfs pull` (no hooks) against `cfsctl oci pull --bootable`, both after
 *   `init --insecure`, the bootable image ids compared.
 *
 * Both tools must produce the same result, or the numbers are meaningless: the image ids
 * (compute-id output; the pulled image's `composefs_erofs` from `oci inspect`) are compared and
 * a mismatch is an error. Prints medians and the cfs / cfsctl ratio of each figure.
 *
 * Run alone: `deno run -A bench/vs_cfsctl.ts [RUNS]` (default 3 pairs).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { debianRootfs } from "../test/fixtures/debootstrap.ts";
import { ensureDebianImage } from "../test/fixtures/debian_image.ts";
import { cfsctl09 } from "../test/oracles.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const DATA_DIR = fileURLToPath(new URL("./data/pull/", import.meta.url));
const GNU_TIME = "/usr/bin/time";
/** Keep in step with CFS_V8_FLAGS in the Makefile. */
const V8_FLAGS = ["--v8-flags=--max-semi-space-size=1"];

/** One run: seconds and peak RSS, and what the command printed. */
interface Sample {
  wall: number;
  user: number;
  sys: number;
  rssMB: number;
  stdout: string;
}

/** Medians of one tool on one task. */
export interface ToolFigures {
  wall: number;
  user: number;
  sys: number;
  rssMB: number;
  runs: number;
}

/** One task: both tools' medians and the ratios. */
export interface VsRow {
  task: string;
  cfs: ToolFigures;
  cfsctl: ToolFigures;
  /** cfs / cfsctl, wall time. */
  ratio: number;
  /** The result both produced (image id). */
  result: string;
}

async function timed(argv: string[], shell = false): Promise<Sample> {
  const cmd = shell ? ["sh", "-c", argv[0]] : argv;
  const out = await new Deno.Command(GNU_TIME, {
    args: ["-f", "TIME %e %U %S %M", ...cmd],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd.join(" ")} failed: ${err.trim().slice(-2000)}`);
  const m = /TIME ([0-9.]+) ([0-9.]+) ([0-9.]+) (\d+)\s*$/.exec(err);
  if (!m) throw new Error(`no GNU time output: ${err.slice(-500)}`);
  return {
    wall: Number(m[1]),
    user: Number(m[2]),
    sys: Number(m[3]),
    rssMB: Math.round(Number(m[4]) / 102.4) / 10,
    stdout: new TextDecoder().decode(out.stdout),
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

function figures(samples: Sample[]): ToolFigures {
  return {
    wall: round(median(samples.map((s) => s.wall))),
    user: round(median(samples.map((s) => s.user))),
    sys: round(median(samples.map((s) => s.sys))),
    rssMB: round(median(samples.map((s) => s.rssMB)), 1),
    runs: samples.length,
  };
}

function cfsArgv(...args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", "--quiet", ...V8_FLAGS, CLI, ...args];
}

function shq(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** Runs `a` and `b` alternately `runs` times each, after one warm-up of each. */
async function paired(
  runs: number,
  a: () => Promise<Sample>,
  b: () => Promise<Sample>,
): Promise<[Sample[], Sample[]]> {
  await a();
  await b();
  const as: Sample[] = [];
  const bs: Sample[] = [];
  for (let i = 0; i < runs; i++) {
    as.push(await a());
    bs.push(await b());
  }
  return [as, bs];
}

/** The bench; see the module documentation. */
export async function benchVsCfsctl(runs = 3, log = console.log): Promise<VsRow[]> {
  const cfsctl = cfsctl09();
  const rootfs = await debianRootfs();
  const rows: VsRow[] = [];

  log(`compute-id of ${rootfs} (${runs} paired runs)`);
  const [c, r] = await paired(
    runs,
    () => timed(cfsArgv("compute-id", rootfs)),
    () => timed([cfsctl, "--no-repo", "compute-id", rootfs]),
  );
  const idC = c[0].stdout.trim();
  const idR = r[0].stdout.trim();
  if (idC !== idR) throw new Error(`compute-id differs: cfs ${idC}, cfsctl ${idR}`);
  rows.push(row("compute-id, Debian rootfs", c, r, idC));

  const work = await Deno.makeTempDir({ prefix: "cfs-bench-" });
  try {
    log(`create-image of ${rootfs} (${runs} paired runs, fresh repository each)`);
    let m = 0;
    const create = (tool: "cfs" | "cfsctl") => async () => {
      const repo = join(work, `create-${tool}-${m++}`);
      const bin = tool === "cfs" ? cfsArgv().map(shq).join(" ") : shq(cfsctl);
      const s = await timed([
        `${bin} --repo ${shq(repo)} init --insecure >/dev/null && ` +
        `${bin} --repo ${shq(repo)} create-image ${shq(rootfs)}`,
      ], true);
      await Deno.remove(repo, { recursive: true });
      return s;
    };
    const [cc, cr] = await paired(runs, create("cfs"), create("cfsctl"));
    const created = (s: Sample) => s.stdout.trim().split("\n").pop()!;
    if (created(cc[0]) !== created(cr[0])) {
      throw new Error(`create-image differs: cfs ${created(cc[0])}, cfsctl ${created(cr[0])}`);
    }
    rows.push(row("init + create-image, Debian rootfs", cc, cr, created(cc[0])));

    for (const layers of [1, 10]) {
      const image = await ensureDebianImage(rootfs, layers, DATA_DIR);
      const ref = `oci:${image.dir}:${image.tag}`;
      log(`oci pull of ${image.name} (${runs} paired runs, fresh repository each)`);
      let n = 0;
      const pull = (tool: "cfs" | "cfsctl") => async () => {
        const repo = join(work, `${tool}-${n++}`);
        const bin = tool === "cfs" ? cfsArgv().map(shq).join(" ") : shq(cfsctl);
        const s = await timed([
          `${bin} --repo ${shq(repo)} init --insecure >/dev/null && ` +
          `${bin} --repo ${shq(repo)} oci pull ${shq(ref)} img >/dev/null 2>&1 && ` +
          `${shq(cfsctl)} --repo ${shq(repo)} oci inspect img`,
        ], true);
        await Deno.remove(repo, { recursive: true });
        return s;
      };
      const [pc, pr] = await paired(runs, pull("cfs"), pull("cfsctl"));
      const erofs = (s: Sample) => JSON.parse(s.stdout).composefs_erofs as string;
      if (erofs(pc[0]) !== erofs(pr[0])) {
        throw new Error(`pulled image differs: cfs ${erofs(pc[0])}, cfsctl ${erofs(pr[0])}`);
      }
      rows.push(row(`oci pull (init + pull), ${image.name}`, pc, pr, erofs(pc[0])));
    }

    // The seed's job: `cfs pull` (the bootable image; no hooks) against `cfsctl oci pull
    // --bootable`, on the 1-layer image plus a layer with the /sysroot both need.
    const boot = await ensureDebianImage(rootfs, 1, DATA_DIR, { sysroot: true });
    const bootRef = `oci:${boot.dir}:${boot.tag}`;
    log(`cfs pull / cfsctl oci pull --bootable of ${boot.name} (${runs} paired runs)`);
    let b = 0;
    const bootPull = (tool: "cfs" | "cfsctl") => async () => {
      const repo = join(work, `boot-${tool}-${b++}`);
      const init = tool === "cfs" ? cfsArgv().map(shq).join(" ") : shq(cfsctl);
      const pull = tool === "cfs"
        ? `${init} --repo ${shq(repo)} pull -q --allow-missing-fsverity --no-default-hooks ` +
          `${shq(bootRef)} 2>/dev/null`
        : `${shq(cfsctl)} --repo ${shq(repo)} oci pull --bootable ${shq(bootRef)} img ` +
          `>/dev/null 2>&1 && ${shq(cfsctl)} --repo ${shq(repo)} oci inspect img`;
      const s = await timed(
        [`${init} --repo ${shq(repo)} init --insecure >/dev/null && ${pull}`],
        true,
      );
      await Deno.remove(repo, { recursive: true });
      return s;
    };
    const [bc, br] = await paired(runs, bootPull("cfs"), bootPull("cfsctl"));
    const bootC = bc[0].stdout.trim().split("\n").pop()!;
    const bootR = JSON.parse(br[0].stdout).composefs_boot_erofs as string;
    if (bootC !== bootR) throw new Error(`bootable image differs: cfs ${bootC}, cfsctl ${bootR}`);
    rows.push(row(`cfs pull / cfsctl oci pull --bootable, ${boot.name}`, bc, br, bootC));
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  return rows;
}

function row(task: string, c: Sample[], r: Sample[], result: string): VsRow {
  const cfs = figures(c);
  const cfsctl = figures(r);
  return { task, cfs, cfsctl, ratio: round(cfs.wall / cfsctl.wall), result };
}

/** The rows as a Markdown table. */
export function formatVsTable(rows: VsRow[]): string {
  const lines = [
    "| work | cfs wall (user, sys) | cfsctl 0.9.4 wall (user, sys) | ratio | peak RSS cfs / cfsctl |",
    "|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const f = (t: ToolFigures) => `${t.wall} s (${t.user}, ${t.sys})`;
    lines.push(
      `| ${r.task} | ${f(r.cfs)} | ${f(r.cfsctl)} | **${r.ratio}x** | ` +
        `${r.cfs.rssMB} MB / ${r.cfsctl.rssMB} MB |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const rows = await benchVsCfsctl(Number(Deno.args[0] ?? 3));
  console.log(formatVsTable(rows));
  console.log(JSON.stringify(rows, null, 2));
}
