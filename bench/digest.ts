/**
 * Benchmark: `cfs digest` against `fsverity digest` on a 1 GiB file of random data, for
 * SHA-256 and SHA-512: wall time, throughput and peak RSS, each tool run as a user runs
 * it (a fresh process; for cfs `deno run cli.ts`, so Deno's start-up is included).
 *
 * Peak RSS comes from GNU time (`/usr/bin/time -f %M`, the kernel's ru_maxrss of the
 * process, exact); without it, from polling VmHWM in /proc/PID/status every 5 ms.
 * The file is read once before measuring, so every run reads from the page cache.
 *
 * Run alone: `deno run -A bench/digest.ts [RUNS]` (default 3 runs each, the median kept).
 *
 * @module
 */
import { randomFillSync } from "node:crypto";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const DATA_DIR = fileURLToPath(new URL("./data/", import.meta.url));
const FILE = `${DATA_DIR}random-1GiB.bin`;
const SIZE = 1 << 30;
const GNU_TIME = "/usr/bin/time";
/** Keep in step with CFS_V8_FLAGS in the Makefile. */
const V8_FLAGS = ["--v8-flags=--max-semi-space-size=1"];

/** One tool, one algorithm: the median of the runs. */
export interface DigestRun {
  tool: "fsverity" | "cfs";
  algorithm: "sha256" | "sha512";
  wallSeconds: number;
  mbPerSecond: number;
  peakRssMB: number;
  digest: string;
}

/** The 1 GiB input, made once (written aside, then renamed, so a cut-short run is redone). */
async function ensureInput(): Promise<void> {
  try {
    if ((await Deno.stat(FILE)).size === SIZE) return;
  } catch { /* not made yet */ }
  await Deno.mkdir(DATA_DIR, { recursive: true });
  const tmp = `${FILE}.tmp`;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    const chunk = new Uint8Array(8 << 20);
    for (let off = 0; off < SIZE; off += chunk.length) {
      randomFillSync(chunk);
      let n = 0;
      while (n < chunk.length) n += await f.write(chunk.subarray(n));
    }
  } finally {
    f.close();
  }
  await Deno.rename(tmp, FILE);
}

/** Reads the file once so that no run pays for the disk. */
async function warmPageCache(): Promise<void> {
  const f = await Deno.open(FILE);
  const buf = new Uint8Array(8 << 20);
  while ((await f.read(buf)) !== null) { /* discard */ }
  f.close();
}

async function hasGnuTime(): Promise<boolean> {
  try {
    return (await Deno.stat(GNU_TIME)).isFile;
  } catch {
    return false;
  }
}

/** Runs a command; returns its stdout, wall time and peak RSS (KiB). */
async function measure(
  cmd: string[],
  gnuTime: boolean,
): Promise<{ stdout: string; seconds: number; peakKiB: number }> {
  const rssFile = gnuTime ? await Deno.makeTempFile({ prefix: "cfs-bench-rss-" }) : "";
  const argv = gnuTime ? [GNU_TIME, "-f", "%M", "-o", rssFile, ...cmd] : cmd;
  const t0 = performance.now();
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  let polledKiB = 0;
  let polling: ReturnType<typeof setInterval> | undefined;
  if (!gnuTime) {
    polling = setInterval(() => {
      try {
        const status = Deno.readTextFileSync(`/proc/${child.pid}/status`);
        const m = /VmHWM:\s+(\d+) kB/.exec(status);
        if (m) polledKiB = Math.max(polledKiB, Number(m[1]));
      } catch { /* exited */ }
    }, 5);
  }
  const out = await child.output();
  const seconds = (performance.now() - t0) / 1000;
  if (polling !== undefined) clearInterval(polling);
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd.join(" ")} failed: ${stderr}`);
  let peakKiB = polledKiB;
  if (gnuTime) {
    peakKiB = Number((await Deno.readTextFile(rssFile)).trim().split("\n").pop());
    await Deno.remove(rssFile);
  }
  return { stdout: new TextDecoder().decode(out.stdout), seconds, peakKiB };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Runs the benchmark (each tool and algorithm `runs` times, interleaved so that load
 * from elsewhere hits both alike), prints a table and returns the numbers.
 */
export async function benchDigest(runs = 3): Promise<Record<string, unknown>> {
  await ensureInput();
  await warmPageCache();
  const gnuTime = await hasGnuTime();
  const loadBefore = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const results: DigestRun[] = [];
  for (const algorithm of ["sha256", "sha512"] as const) {
    const commands = {
      fsverity: ["fsverity", "digest", `--hash-alg=${algorithm}`, FILE],
      cfs: [
        Deno.execPath(),
        "run",
        "--allow-all",
        "--quiet",
        // The V8 settings `make binary` compiles into dist/cfs (see the Makefile).
        ...V8_FLAGS,
        CLI,
        "digest",
        "--algorithm",
        algorithm,
        FILE,
      ],
    };
    const samples = {
      fsverity: [] as Array<Awaited<ReturnType<typeof measure>>>,
      cfs: [] as Array<Awaited<ReturnType<typeof measure>>>,
    };
    for (let i = 0; i < runs; i++) {
      for (const tool of ["fsverity", "cfs"] as const) {
        samples[tool].push(await measure(commands[tool], gnuTime));
      }
    }
    for (const tool of ["fsverity", "cfs"] as const) {
      const wallSeconds = median(samples[tool].map((s) => s.seconds));
      results.push({
        tool,
        algorithm,
        wallSeconds,
        mbPerSecond: SIZE / 1e6 / wallSeconds,
        peakRssMB: Math.max(...samples[tool].map((s) => s.peakKiB)) / 1024,
        digest: samples[tool][0].stdout.split(" ")[0],
      });
    }
  }
  const ratios: Record<string, number> = {};
  for (const algorithm of ["sha256", "sha512"]) {
    const f = results.find((r) => r.tool === "fsverity" && r.algorithm === algorithm)!;
    const c = results.find((r) => r.tool === "cfs" && r.algorithm === algorithm)!;
    if (f.digest !== c.digest) {
      throw new Error(`digests differ for ${algorithm}: ${f.digest} vs ${c.digest}`);
    }
    ratios[algorithm] = c.mbPerSecond / f.mbPerSecond;
  }
  const loadAfter = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");

  console.log(
    `fs-verity digest of a 1 GiB random file (page cache), median of ${runs} runs, ${navigator.hardwareConcurrency} CPUs`,
  );
  console.log(
    `peak RSS via ${
      gnuTime ? "GNU time %M (ru_maxrss)" : "/proc VmHWM polling"
    }; load average ${loadBefore} -> ${loadAfter}`,
  );
  console.log("tool      alg      wall s    MB/s   peak RSS MB   vs fsverity");
  for (const r of results) {
    const ratio = r.tool === "cfs" ? `${ratios[r.algorithm].toFixed(2)}x` : "";
    console.log(
      `${r.tool.padEnd(9)} ${r.algorithm.padEnd(7)} ${r.wallSeconds.toFixed(2).padStart(7)} ${
        r.mbPerSecond.toFixed(0).padStart(7)
      } ${r.peakRssMB.toFixed(1).padStart(13)}   ${ratio}`,
    );
  }
  return {
    file: FILE,
    sizeBytes: SIZE,
    runs,
    cpus: navigator.hardwareConcurrency,
    rssMethod: gnuTime ? "gnu-time" : "proc-vmhwm",
    loadavg: { before: loadBefore, after: loadAfter },
    results: results.map(({ digest: _, ...r }) => r),
    throughputRatio: ratios,
  };
}

if (import.meta.main) {
  await benchDigest(Number(Deno.args[0] ?? 3));
}
