/**
 * Conformance with composefs-ctl 0.9.4 (`cfsctl`, the generation bootc uses), run on this
 * host: for every tree of the corpus (test/fixtures/trees.ts) and a real Debian root file
 * system (debootstrap --variant=minbase), cfs must print the same dumpfile and the same image
 * IDs as `cfsctl --no-repo create-dumpfile | compute-id`, for
 *
 *     sha256, sha512  x  EROFS V0, V1, V2  x  with/without /usr propagation  x  --bootable or not
 *
 * and refuse exactly the trees cfsctl refuses (no /usr to propagate, no /sysroot to empty, a
 * hardlinked whiteout, ...). Also `--xattrs keep-user-xattrs`, `compute-karg` and
 * `create-image` (into insecure repositories, both sides), on fewer combinations.
 *
 * Our side goes through the library calls the CLI makes (`treeFromPath` = read, then
 * `finishTree`; `writeDumpfile`, `computeImageId`): each tree is read and hashed once per
 * algorithm, then a copy is finished per option combination and written in the three EROFS
 * versions. The CLI itself is checked on the Debian rootfs, for compute-karg and create-image.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { buildCorpus } from "./fixtures/trees.ts";
import { debianRootfs } from "./fixtures/debootstrap.ts";
import { cfsctl09Ok, type OracleRun, runCfsctl09 } from "./oracles.ts";
import { computeImageId, finishTree, treeFromPath } from "../lib/build.ts";
import { cloneTree, type FileSystem } from "../lib/tree.ts";
import { writeDumpfile } from "../lib/dumpfile.ts";
import { toHex, type VerityAlgorithm } from "../lib/fsverity/digest.ts";
import { composefsKarg } from "../lib/boot/karg.ts";
import type { ErofsVersion } from "../lib/erofs/format.ts";
import type { XattrFiltering } from "../lib/tree_transform.ts";
import { runCfs } from "./cfs.ts";
import { CfsError } from "../lib/errors.ts";

const ALGORITHMS: VerityAlgorithm[] = ["sha256", "sha512"];
const VERSIONS: ErofsVersion[] = [0, 1, 2];

interface Variant {
  propagate: boolean;
  bootable: boolean;
  xattrs?: XattrFiltering;
}

const VARIANTS: Variant[] = [
  { propagate: true, bootable: false },
  { propagate: false, bootable: false },
  { propagate: true, bootable: true },
  { propagate: false, bootable: true },
];

function variantFlags(v: Variant): string[] {
  return [
    ...(v.bootable ? ["--bootable"] : []),
    ...(v.propagate ? [] : ["--no-propagate-usr-to-root"]),
    ...(v.xattrs ? ["--xattrs", v.xattrs] : []),
  ];
}

function label(tree: string, alg: VerityAlgorithm, v: Variant, version?: ErofsVersion): string {
  const flags = variantFlags(v).join(" ");
  return `${tree} ${alg}${version === undefined ? "" : ` V${version}`}${flags ? " " + flags : ""}`;
}

/**
 * A copy of the Debian rootfs at `dest` made bootable for 0.9.4, which needs `/sysroot`:
 * every file hardlinked (`cp -al`, same inodes, so same metadata and xattrs), directories
 * copied with their metadata, plus an empty `/sysroot`.
 */
async function withSysroot(rootfs: string, dest: string): Promise<string> {
  const cp = await new Deno.Command("cp", { args: ["-al", rootfs, dest], stderr: "piped" })
    .output();
  if (cp.code !== 0) throw new Error(`cp -al failed: ${new TextDecoder().decode(cp.stderr)}`);
  await Deno.mkdir(`${dest}/sysroot`, { mode: 0o755 });
  return dest;
}

/** Runs `fn` over `items` with at most `limit` at a time (the machine has two cores). */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const latin1 = new TextDecoder("latin1");

/** cfsctl's dumpfile and image IDs (by version) of one tree and combination. */
interface Reference {
  dump: OracleRun;
  ids: Map<ErofsVersion, OracleRun>;
}

async function reference(path: string, alg: VerityAlgorithm, v: Variant): Promise<Reference> {
  const dump = await runCfsctl09([
    "--no-repo",
    "--hash",
    alg,
    "create-dumpfile",
    ...variantFlags(v),
    path,
  ]);
  const ids = new Map<ErofsVersion, OracleRun>();
  // compute-id loads the tree exactly as create-dumpfile does: when that refuses, so does
  // compute-id (compare() then checks that cfs refuses too).
  if (dump.code !== 0) return { dump, ids };
  for (const version of VERSIONS) {
    ids.set(
      version,
      await runCfsctl09([
        "--no-repo",
        "--hash",
        alg,
        "--erofs-version",
        String(version),
        "compute-id",
        ...variantFlags(v),
        path,
      ]),
    );
  }
  return { dump, ids };
}

/** Counts of what was compared. */
interface Tally {
  dumpfiles: number;
  ids: number;
  refusedBoth: number;
  failures: string[];
}

/**
 * Compares cfs with one cfsctl reference; appends to `tally`. `base` is the tree read from
 * `path` without transforms (or the error reading it gave).
 */
function compare(
  tally: Tally,
  name: string,
  path: string,
  base: FileSystem | Error,
  alg: VerityAlgorithm,
  v: Variant,
  ref: Reference,
): void {
  let fs: FileSystem;
  try {
    if (base instanceof Error) throw base;
    fs = cloneTree(base);
    finishTree(fs, path, {
      bootable: v.bootable,
      propagateUsrToRoot: v.propagate,
      xattrs: v.xattrs,
    });
  } catch (e) {
    if (ref.dump.code === 0) {
      tally.failures.push(`${label(name, alg, v)}: cfs refused (${(e as Error).message})`);
    } else if (!(e instanceof CfsError)) {
      // Both refuse, but cfs by a crash rather than an error of its own: not agreement.
      tally.failures.push(`${label(name, alg, v)}: cfs crashed: ${e}`);
    } else tally.refusedBoth++;
    return;
  }
  if (ref.dump.code !== 0) {
    tally.failures.push(
      `${label(name, alg, v)}: cfsctl refused (${ref.dump.stderr.trim()}) but cfs did not`,
    );
    return;
  }
  const dump = writeDumpfile(fs);
  if (dump !== latin1.decode(ref.dump.stdout)) {
    tally.failures.push(`${label(name, alg, v)}: dumpfile differs${firstLineDiff(dump, ref)}`);
  } else tally.dumpfiles++;
  for (const version of VERSIONS) {
    const r = ref.ids.get(version)!;
    let id: string | undefined;
    let error: string | undefined;
    try {
      id = toHex(computeImageId(fs, alg, version));
    } catch (e) {
      error = (e as Error).message;
      if (!(e instanceof CfsError)) {
        tally.failures.push(`${label(name, alg, v, version)}: cfs crashed: ${e}`);
        continue;
      }
    }
    const what = label(name, alg, v, version);
    if (r.code !== 0) {
      if (error === undefined) {
        tally.failures.push(`${what}: cfsctl refused (${r.stderr.trim()}) but cfs wrote ${id}`);
      } else tally.refusedBoth++;
    } else if (error !== undefined) {
      tally.failures.push(`${what}: cfs failed: ${error}`);
    } else if (id !== r.text.trim()) {
      tally.failures.push(`${what}: image id ${id} != cfsctl ${r.text.trim()}`);
    } else tally.ids++;
  }
}

/** Reads `path` without transforms, hashing large files with `alg`; the error if it fails. */
function readBase(path: string, alg: VerityAlgorithm): FileSystem | Error {
  try {
    return treeFromPath(path, { algorithm: alg, propagateUsrToRoot: false });
  } catch (e) {
    return e as Error;
  }
}

function firstLineDiff(ours: string, ref: Reference): string {
  const a = ours.split("\n");
  const b = latin1.decode(ref.dump.stdout).split("\n");
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      return `: line ${i + 1}\n    cfs:    ${a[i]?.slice(0, 300)}\n    cfsctl: ${
        b[i]?.slice(0, 300)
      }`;
    }
  }
  return "";
}

Deno.test({
  name: "conformance: dumpfiles and image ids (V0/V1/V2, sha256/sha512, /usr propagation, " +
    "--bootable) equal cfsctl 0.9.4's on the corpus and a Debian rootfs",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "cfs-conformance-" });
    try {
      const corpus = await buildCorpus(`${tmp}/corpus`);
      ok(corpus.length >= 90, `corpus has ${corpus.length} trees`);
      const rootfs = await debianRootfs();
      const bootableRootfs = await withSysroot(rootfs, `${tmp}/debian-rootfs-sysroot`);
      const plain = VARIANTS.filter((v) => !v.bootable);
      const trees = [
        ...corpus.map((t) => ({ name: t.name, path: t.path, variants: VARIANTS })),
        { name: "debian-rootfs", path: rootfs, variants: plain },
        {
          name: "debian-rootfs+sysroot",
          path: bootableRootfs,
          variants: VARIANTS.filter((v) => v.bootable),
        },
      ];
      const tally: Tally = { dumpfiles: 0, ids: 0, refusedBoth: 0, failures: [] };
      const jobs = trees.flatMap((t) => ALGORITHMS.map((alg) => ({ ...t, alg })));
      const keepUser: Variant = { propagate: true, bootable: false, xattrs: "keep-user-xattrs" };
      const t0 = performance.now();
      await pool(jobs, 1, async (job) => {
        const variants = job.alg === "sha512" && !job.name.startsWith("debian-rootfs")
          ? [...job.variants, keepUser]
          : job.variants;
        const refs = await pool(variants, 2, (v) => reference(job.path, job.alg, v));
        const base = readBase(job.path, job.alg);
        variants.forEach((v, i) => compare(tally, job.name, job.path, base, job.alg, v, refs[i]));
      });
      console.log(
        `conformance: ${tally.dumpfiles} dumpfiles and ${tally.ids} image ids equal cfsctl's, ` +
          `${tally.refusedBoth} refused by both, ${tally.failures.length} failures ` +
          `(${trees.length} trees, ${((performance.now() - t0) / 1000).toFixed(0)} s)`,
      );
      deepEqual(tally.failures, []);
      ok(tally.ids > 1000, `only ${tally.ids} image ids compared`);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name: "conformance: the cfs CLI prints cfsctl 0.9.4's compute-id, create-dumpfile and " +
    "compute-karg for the Debian rootfs",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const rootfs = await debianRootfs();
    const tmp = await Deno.makeTempDir({ prefix: "cfs-conformance-cli-" });
    try {
      await cliMatchesCfsctl(rootfs, await withSysroot(rootfs, `${tmp}/rootfs`));
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

/** The CLI checks on the Debian rootfs (`bootable`: its copy with /sysroot). */
async function cliMatchesCfsctl(rootfs: string, bootable: string): Promise<void> {
  // Without /sysroot, --bootable and compute-karg are refused by both, naming it.
  for (const args of [["compute-id", "--bootable", rootfs], ["compute-karg", rootfs]]) {
    const want = await runCfsctl09(["--no-repo", ...args]);
    ok(want.code !== 0 && want.stderr.includes("sysroot"), want.stderr);
    const got = await runCfs(["--no-repo", ...args]);
    equal(got.code, 1, got.stderr);
    ok(got.stderr.includes("/sysroot") && got.stderr.trim().split("\n").length === 1, got.stderr);
  }
  for (
    const args of [
      ["compute-id", rootfs],
      ["--hash", "sha256", "--erofs-version", "2", "compute-id", "--bootable", bootable],
      ["compute-karg", bootable],
      ["--hash", "sha256", "--erofs-version", "2", "compute-karg", bootable],
      ["--erofs-version", "0", "compute-karg", "--no-propagate-usr-to-root", bootable],
    ]
  ) {
    const want = await cfsctl09Ok(["--no-repo", ...args]);
    const got = await runCfs(["--no-repo", ...args]);
    equal(got.code, 0, got.stderr);
    equal(got.text, want, `cfs ${args.join(" ")}`);
  }
  // cfsctl's --insecure is a hidden global flag; cfs takes it after the command.
  const want = await cfsctl09Ok(["--no-repo", "--insecure", "compute-karg", bootable]);
  const got = await runCfs(["compute-karg", "--insecure", "--no-repo", bootable]);
  equal(got.text, want);
  ok(want.startsWith("composefs.digest=?v1-sha512-12:"), want);
  const dump = await runCfsctl09(["--no-repo", "create-dumpfile", "--bootable", bootable]);
  equal(dump.code, 0, dump.stderr);
  const ours = await runCfs(["create-dumpfile", "--bootable", "--hash", "sha512", bootable]);
  equal(ours.code, 0, ours.stderr);
  ok(
    ours.stdout.length === dump.stdout.length && ours.stdout.every((b, i) => b === dump.stdout[i]),
    "create-dumpfile --bootable of the Debian rootfs",
  );
}

Deno.test({
  name: "conformance: compute-karg of every bootable corpus tree equals cfsctl 0.9.4's",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "cfs-karg-" });
    try {
      const corpus = (await buildCorpus(`${tmp}/corpus`)).filter((t) => t.bootable);
      let compared = 0, refused = 0;
      const failures: string[] = [];
      const jobs = corpus.flatMap((t) =>
        [[0, "sha512"], [1, "sha256"], [2, "sha512"]].map(([version, alg]) => ({
          t,
          version: version as ErofsVersion,
          alg: alg as VerityAlgorithm,
        }))
      );
      await pool(jobs, 2, async ({ t, version, alg }) => {
        const r = await runCfsctl09([
          "--no-repo",
          "--hash",
          alg,
          "--erofs-version",
          String(version),
          "compute-karg",
          t.path,
        ]);
        let karg: string | undefined;
        try {
          const fs = treeFromPath(t.path, { algorithm: alg, bootable: true });
          karg = composefsKarg(computeImageId(fs, alg, version), { algorithm: alg, version });
        } catch (e) {
          // A refusal (compared below) is an error of cfs's own; anything else is a crash.
          if (!(e instanceof CfsError)) failures.push(`${t.name} V${version} ${alg}: ${e}`);
        }
        if (r.code !== 0 && karg === undefined) refused++;
        else if (karg !== r.text.trim()) {
          failures.push(`${t.name} V${version} ${alg}: ${karg} != ${r.text.trim() || r.stderr}`);
        } else compared++;
      });
      console.log(`compute-karg: ${compared} equal, ${refused} refused by both`);
      deepEqual(failures, []);
      ok(compared > 50);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

const CREATE_IMAGE_TREES = [
  "usr-propagation",
  "xattrs-filtering",
  "run-contents",
  "boot-bls",
  "boot-selinux-basic",
  "boot-selinux-hardlinks",
  "boot-no-sysroot",
  "empty",
];

Deno.test({
  name: "conformance: cfs create-image prints what cfsctl 0.9.4 create-image prints " +
    "(insecure repositories, with and without --bootable)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "cfs-create-image-" });
    try {
      const corpus = await buildCorpus(`${tmp}/corpus`, CREATE_IMAGE_TREES);
      let compared = 0, refused = 0;
      for (const alg of ALGORITHMS) {
        const theirs = `${tmp}/cfsctl-${alg}`;
        const ours = `${tmp}/cfs-${alg}`;
        await cfsctl09Ok([
          "--repo",
          theirs,
          "init",
          "--insecure",
          "--algorithm",
          `fsverity-${alg}-12`,
        ]);
        const init = await runCfs([
          "init",
          "--insecure",
          "--algorithm",
          `fsverity-${alg}-12`,
          ours,
        ]);
        equal(init.code, 0, init.stderr);
        for (const t of corpus) {
          for (const flags of [[], ["--bootable"]]) {
            const want = await runCfsctl09(["--repo", theirs, "create-image", ...flags, t.path]);
            const got = await runCfs(["--repo", ours, "create-image", ...flags, t.path]);
            const what = `${t.name} ${alg} ${flags.join(" ")}`;
            if (want.code !== 0) {
              ok(got.code !== 0, `${what}: cfsctl refused (${want.stderr.trim()}), cfs did not`);
              // Refused on purpose: an error with a code of cfs's own, not a crash (checked once
              // per tree: the refusal does not depend on the algorithm).
              if (alg === ALGORITHMS[0]) {
                const json = await runCfs([
                  "--json",
                  "--repo",
                  ours,
                  "create-image",
                  ...flags,
                  t.path,
                ]);
                const error = JSON.parse(json.text.trim().split("\n").pop() || "{}").error;
                ok(error?.code !== undefined, `${what}: no JSON error: ${json.text}`);
                ok(error.code !== "internal", `${what}: cfs crashed: ${json.text}`);
              }
              refused++;
              continue;
            }
            equal(got.code, 0, `${what}: ${got.stderr}`);
            equal(got.text, want.text, what);
            compared++;
          }
        }
      }
      console.log(`create-image: ${compared} equal, ${refused} refused by both`);
      ok(compared >= 20);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
