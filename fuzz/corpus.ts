/**
 * The seed inputs the fuzzer mutates, made by real writers: cfs and cfsctl 0.9.4 for EROFS
 * images (V0, V1, V2; SHA-256 and SHA-512), dumpfiles and 0.9.4 splitstreams (layer, config and
 * manifest streams of an `oci pull`, also in the old header layout); the cfs release that
 * wrote cfsctl 0.3.0's formats (commit f8b89b5, from this repository's history, as
 * test/upgrade_test.ts runs it) for 0.3.0 splitstreams; GNU tar (gnu, oldgnu, pax, ustar, v7)
 * and bsdtar (pax with LIBARCHIVE xattrs) for layers; the test fixtures' layouts, umoci and
 * skopeo for OCI layouts (bundled, `bundle.ts`).
 *
 * Built once into `test/.work/fuzz/corpus/<target>/` (a few minutes, mostly cfsctl and the
 * old cfs) and reused while {@link CORPUS_VERSION} is unchanged; `--rebuild-corpus` forces it.
 * The fsck targets use the EROFS and splitstream seeds, `layer-import` the tar seeds.
 *
 * @module
 */
import { basename, join } from "node:path";
import { buildCorpus as buildTrees } from "../test/fixtures/trees.ts";
import {
  buildOciImage,
  buildOciIndex,
  buildUmociImage,
  run,
  SAMPLE_LAYERS,
} from "../test/fixtures/oci.ts";
import { cfsctl09 } from "../test/oracles.ts";
import { readTree } from "../lib/treefs.ts";
import { fsverityDigestFileSync } from "../lib/fsverity/file.ts";
import { mkfsErofs } from "../lib/erofs/writer.ts";
import { writeDumpfile } from "../lib/dumpfile.ts";
import { toPreReprCLayout } from "../lib/splitstream/format.ts";
import { encodeBundle } from "./bundle.ts";
import type { TargetName } from "./targets.ts";

/** Bump when the seeds change, so that cached corpora are rebuilt. */
export const CORPUS_VERSION = "1";

/** Trees of test/fixtures/trees.ts made into images, dumpfiles and tars (small ones). */
const TREES = [
  "single-file",
  "file-types",
  "hardlinks-pair",
  "xattrs-binary",
  "xattrs-shared",
  "names-non-utf8",
  "names-dots",
  "symlinks-long",
  "empty-dirs",
  "deep-100",
  "random-odd-names",
  "boot-minimal",
  "run-empty",
  "mtimes-newest-dir",
];

/** Largest seed kept: bigger inputs slow every execution down for little gain. */
const MAX_SEED = 512 << 10;

/** The seed directory of each target (fsck targets share the format targets' seeds). */
export function seedDir(corpus: string, target: TargetName): string {
  const shared: Partial<Record<TargetName, string>> = {
    "fsck-image": "erofs",
    "fsck-stream": "splitstream",
    "layer-import": "tar",
  };
  const dir = shared[target] ?? target;
  return join(corpus, dir);
}

/** The seeds of `target`, sorted by name (so that a seed's index is stable). */
export async function loadSeeds(
  corpus: string,
  target: TargetName,
): Promise<Map<string, Uint8Array>> {
  const dir = seedDir(corpus, target);
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile) names.push(e.name);
  names.sort();
  const out = new Map<string, Uint8Array>();
  for (const n of names) out.set(n, await Deno.readFile(join(dir, n)));
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs cfsctl 0.9.4; returns stdout. */
async function cfsctl(args: string[]): Promise<string> {
  return await run([cfsctl09(), ...args]);
}

/** Runs this checkout's cfs CLI; returns stdout. */
async function cfs(args: string[]): Promise<string> {
  const cli = new URL("../cli.ts", import.meta.url).pathname;
  return await run([Deno.execPath(), "run", "--allow-all", "--quiet", cli, ...args]);
}

/**
 * Makes the corpus at `dir` unless a complete one of {@link CORPUS_VERSION} is there; returns
 * the number of seeds per directory. `log` reports progress.
 */
export async function ensureCorpus(
  dir: string,
  log: (line: string) => void,
  rebuild = false,
): Promise<Record<string, number>> {
  const stamp = join(dir, "VERSION");
  if (
    !rebuild && await exists(stamp) && (await Deno.readTextFile(stamp)).trim() === CORPUS_VERSION
  ) {
    return await counts(dir);
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const work = join(dir, ".work");
  await Deno.mkdir(work, { recursive: true });
  const put = async (target: string, name: string, bytes: Uint8Array) => {
    if (bytes.length > MAX_SEED || bytes.length === 0) return;
    await Deno.mkdir(join(dir, target), { recursive: true });
    await Deno.writeFile(join(dir, target, name), bytes);
  };

  log("fuzz corpus: trees");
  const trees = await buildTrees(join(work, "trees"), TREES);

  log("fuzz corpus: EROFS images and dumpfiles (cfs and cfsctl 0.9.4)");
  for (const hash of ["sha256", "sha512"] as const) {
    const repo = join(work, `cfsctl-${hash}`);
    await cfsctl(["init", "--insecure", "--algorithm", `fsverity-${hash}-12`, repo]);
    for (const t of trees) {
      const external = (p: Uint8Array) => fsverityDigestFileSync(p, hash);
      for (const version of [0, 1, 2] as const) {
        const fs = readTree(t.path, { external });
        await put("erofs", `cfs-${t.name}-v${version}-${hash}.img`, mkfsErofs(fs, { version }));
        try {
          const out = await cfsctl([
            "--repo",
            repo,
            "--erofs-version",
            String(version),
            "create-image",
            "--no-propagate-usr-to-root",
            t.path,
          ]);
          const id = out.trim().split(":").pop()!;
          await put(
            "erofs",
            `cfsctl-${t.name}-v${version}-${hash}.img`,
            await Deno.readFile(join(repo, "images", id)),
          );
        } catch (e) {
          log(
            `  cfsctl create-image ${t.name} V${version}: ${(e as Error).message.split("\n")[0]}`,
          );
        }
      }
      const fs = readTree(t.path, { external });
      await put("dumpfile", `cfs-${t.name}-${hash}.dump`, latin1(writeDumpfile(fs)));
      try {
        const dump = await new Deno.Command(cfsctl09(), {
          args: [
            "--no-repo",
            "--hash",
            hash,
            "create-dumpfile",
            "--no-propagate-usr-to-root",
            t.path,
          ],
          stdout: "piped",
          stderr: "null",
        }).output();
        if (dump.success) await put("dumpfile", `cfsctl-${t.name}-${hash}.dump`, dump.stdout);
      } catch { /* reported by the missing seed */ }
    }
  }

  log("fuzz corpus: tar layers (GNU tar, bsdtar, the OCI fixtures)");
  for (const t of trees) {
    for (const format of ["gnu", "oldgnu", "pax", "ustar", "v7"]) {
      const out = join(work, `${t.name}.${format}.tar`);
      const args = ["tar", "--format", format, "-C", t.path, "-cf", out, "."];
      if (format === "pax") args.splice(1, 0, "--xattrs", "--xattrs-include=*");
      try {
        await run(args);
        await put("tar", `gnutar-${format}-${t.name}.tar`, await Deno.readFile(out));
      } catch { /* v7 and ustar refuse long names and some types: no seed then */ }
    }
    const out = join(work, `${t.name}.bsdtar.tar`);
    try {
      await run(["bsdtar", "--xattrs", "--format", "pax", "-C", t.path, "-cf", out, "."]);
      await put("tar", `bsdtar-pax-${t.name}.tar`, await Deno.readFile(out));
    } catch { /* no seed */ }
  }
  const sample = join(work, "sample");
  const image = await buildOciImage(sample, {
    tag: "v1",
    layers: SAMPLE_LAYERS,
    compression: "none",
  });
  for (const [i, layer] of image.layers.entries()) {
    await put("tar", `fixture-sample-layer${i}.tar`, await Deno.readFile(layer.tarPath));
  }

  log("fuzz corpus: OCI layouts");
  const gz = join(work, "sample-gzip");
  await buildOciImage(gz, {
    tag: "v1",
    layers: SAMPLE_LAYERS,
    compression: ["gzip", "zstd", "none"],
  });
  const multi = join(work, "multi");
  await buildOciIndex(multi, {
    tag: "v1",
    images: [
      { layers: [SAMPLE_LAYERS[0]], platform: { os: "linux", architecture: "amd64" } },
      {
        layers: [SAMPLE_LAYERS[1]],
        platform: { os: "linux", architecture: "arm64", variant: "v8" },
      },
      { layers: [SAMPLE_LAYERS[2]], platform: { os: "linux", architecture: "arm", variant: "v7" } },
    ],
  });
  const umoci = join(work, "umoci");
  await buildUmociImage(umoci, "v1", trees.find((t) => t.name === "single-file")!.path);
  const copied = join(work, "skopeo");
  await run(["skopeo", "copy", "--quiet", `oci:${gz}:v1`, `oci:${copied}:latest`]);
  for (const layout of [sample, gz, multi, umoci, copied]) {
    await put("oci-layout", `${basename(layout)}.bundle`, await layoutBundle(layout));
  }

  log("fuzz corpus: 0.9.4 splitstreams (cfs and cfsctl 0.9.4 oci pull)");
  for (const hash of ["sha256", "sha512"] as const) {
    const ours = join(work, `cfs-repo-${hash}`);
    await cfs(["--repo", ours, "init", "--insecure", "--algorithm", `fsverity-${hash}-12`]);
    await cfs(["--repo", ours, "oci", "pull", `oci:${gz}:v1`, "t"]);
    await cfs(["--repo", ours, "oci", "pull", `oci:${multi}:v1`, "m"]);
    const theirs = join(work, `cfsctl-${hash}`);
    await cfsctl(["--repo", theirs, "oci", "pull", `oci:${gz}:v1`, "t"]);
    for (const [who, repo] of [["cfs", ours], ["cfsctl", theirs]]) {
      for await (const e of Deno.readDir(join(repo, "streams"))) {
        if (!e.isSymlink) continue;
        const bytes = await Deno.readFile(join(repo, "streams", e.name));
        const kind = e.name.split("-").slice(0, 2).join("-");
        const short = e.name.slice(-12);
        await put("splitstream", `${who}-${hash}-${kind}-${short}.ss`, bytes);
        if (kind === "oci-config" || short.endsWith("0") || short.endsWith("8")) {
          await put(
            "splitstream",
            `${who}-${hash}-${kind}-${short}-pre-repr-c.ss`,
            toPreReprCLayout(bytes),
          );
        }
      }
    }
  }

  log("fuzz corpus: 0.3.0 splitstreams (cfs f8b89b5)");
  const old = join(work, "old-cfs");
  await Deno.mkdir(old);
  const root = new URL("..", import.meta.url).pathname;
  await run(["sh", "-c", `git -C '${root}' archive f8b89b5 | tar -x -C '${old}'`]);
  const legacyRepo = join(work, "legacy-repo");
  const oldCfs = (args: string[]) =>
    run([Deno.execPath(), "run", "--allow-all", "--quiet", join(old, "cli.ts"), ...args], {
      cwd: old,
    });
  await oldCfs(["--repo", legacyRepo, "init", "--insecure"]);
  await oldCfs(["--repo", legacyRepo, "oci", "pull", `oci:${gz}:v1`, "t"]);
  for await (const e of Deno.readDir(join(legacyRepo, "streams"))) {
    if (!e.isSymlink) continue;
    await put(
      "splitstream",
      `legacy-0.3-${e.name.slice(0, 12)}.ss`,
      await Deno.readFile(join(legacyRepo, "streams", e.name)),
    );
  }

  await Deno.remove(work, { recursive: true });
  await Deno.writeTextFile(stamp, CORPUS_VERSION + "\n");
  return await counts(dir);
}

function latin1(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** An OCI layout's JSON files (oci-layout, index.json, JSON blobs) as one bundle. */
async function layoutBundle(layout: string): Promise<Uint8Array> {
  const files = [
    { name: "oci-layout", data: await Deno.readFile(join(layout, "oci-layout")) },
    { name: "index.json", data: await Deno.readFile(join(layout, "index.json")) },
  ];
  for await (const e of Deno.readDir(join(layout, "blobs", "sha256"))) {
    const data = await Deno.readFile(join(layout, "blobs", "sha256", e.name));
    if (data.length > 64 << 10 || data[0] !== 0x7b) continue; // layers stay out
    files.push({ name: `blobs/sha256/${e.name}`, data });
  }
  files.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return encodeBundle(files);
}

async function counts(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for await (const e of Deno.readDir(dir)) {
    if (!e.isDirectory || e.name.startsWith(".")) continue;
    let n = 0;
    for await (const _ of Deno.readDir(join(dir, e.name))) n++;
    out[e.name] = n;
  }
  return out;
}
