/**
 * Upgrading a repository written by cfs before it spoke composefs-rs 0.9 (the release at
 * commit f8b89b5, which wrote cfsctl 0.3.0's formats: streams named by sha256, a digest map
 * instead of named refs, tags to manifest streams by sha256, `images/refs/oci-config-...`
 * image refs). That release is taken from this repository's own history (`git archive`) and
 * run as it was; then today's cfs opens the repository and:
 *
 * - `cfs pull` upgrades it in place: every tag survives and resolves, the named image ref
 *   survives, no stream in the old format is left;
 * - cfsctl 0.9.4 (the oracle) then reads it: `oci images --json` and `oci compute-id` agree
 *   with cfs, and each image id equals what cfsctl computes for the same image pulled fresh
 *   into a repository of the same EROFS format; `fsck` is clean for both tools, before and
 *   after gc by either;
 * - a second `cfs pull` finds nothing left to upgrade.
 *
 * Repositories made by cfsctl 0.3.0 itself need fs-verity: test/vm/ covers them.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { ROOT, runCfs } from "./cfs.ts";
import { cfsctl09Ok, runCfsctl09 } from "./oracles.ts";
import { buildOciImage, SAMPLE_LAYERS } from "./fixtures/oci.ts";
import { buildBootableImage } from "./fixtures/bootable.ts";

/** The last commit whose cfs wrote cfsctl 0.3.0's repository formats. */
const OLD_CFS_COMMIT = "f8b89b5";

async function sh(cmd: string, cwd?: string): Promise<string> {
  const out = await new Deno.Command("sh", {
    args: ["-c", cmd],
    cwd,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Runs the old cfs (`OLD/cli.ts`) with `args`; throws on failure. */
async function oldCfs(old: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", join(old, "cli.ts"), ...args],
    cwd: old,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`old cfs ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

async function cfs(repo: string, ...args: string[]): Promise<string> {
  const r = await runCfs(["--repo", repo, ...args]);
  if (r.code !== 0) throw new Error(`cfs ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.text;
}

async function streamNames(repo: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(join(repo, "streams"))) names.push(e.name);
  return names.sort();
}

Deno.test({
  name: "upgrade: a repository written by cfs before 0.9 support keeps its tags and images",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "cfs-upgrade-" });
    try {
      const old = join(work, "old-cfs");
      await Deno.mkdir(old);
      await sh(`git -C '${ROOT}' archive ${OLD_CFS_COMMIT} | tar -x -C '${old}'`);
      const sample = join(work, "sample");
      await buildOciImage(sample, { tag: "v1", layers: SAMPLE_LAYERS, compression: "gzip" });
      const boot = join(work, "bootable");
      await buildBootableImage(boot, "v1");
      const tree = join(work, "tree");
      await Deno.mkdir(join(tree, "usr/share"), { recursive: true });
      await Deno.writeTextFile(join(tree, "usr/share/big"), "x".repeat(5000));
      await Deno.writeTextFile(join(tree, "small"), "hello\n");

      // The old cfs writes a repository: a tagged OCI pull, bootc's pull, a named image.
      const repo = join(work, "repo");
      await oldCfs(old, "--repo", repo, "init", "--insecure");
      await oldCfs(old, "--repo", repo, "oci", "pull", `oci:${sample}:v1`, "mytag");
      await oldCfs(old, "--repo", repo, "pull", `oci:${boot}:v1`);
      await oldCfs(old, "--repo", repo, "create-image", tree, "myimage");
      const before = await streamNames(repo);
      ok(before.some((n) => /^[0-9a-f]{64}$/.test(n)), "the old cfs names streams by sha256");
      const oldTags = JSON.parse(await oldCfs(old, "--repo", repo, "--json", "oci", "images"))
        .map((r: { tag: string }) => r.tag).sort();
      ok(oldTags.includes("mytag") && oldTags.length === 2, `old tags: ${oldTags}`);

      // Today's cfs pulls into it: the repository is upgraded first.
      const pulled = await runCfs(["--repo", repo, "--json", "pull", `oci:${boot}:v1`]);
      equal(pulled.code, 0, `cfs pull: ${pulled.stderr}`);
      const result = JSON.parse(pulled.text.trim().split("\n").pop()!).result;
      ok(
        result.upgrade.converted.layers >= 4,
        `layers converted: ${JSON.stringify(result.upgrade)}`,
      );
      equal(result.upgrade.converted.manifests, 2);
      equal(result.upgrade.converted.configs, 2);
      ok(
        !(await streamNames(repo)).some((n) => /^[0-9a-f]{64}$/.test(n)),
        "no stream in the old format is left",
      );

      // Every old tag survives, and cfsctl 0.9.4 sees the same images.
      // cfsctl 0.9.4 lists tags in readdir order (collect_refs), which on ext4 changes as refs
      // are replaced; cfs sorts them by name. The same entries must be there, in any order.
      const ours = JSON.parse(await cfs(repo, "oci", "images", "--json"));
      const theirs = JSON.parse(await cfsctl09Ok(["--repo", repo, "oci", "images", "--json"]));
      const byName = (a: { name: string }, b: { name: string }) => a.name < b.name ? -1 : 1;
      theirs.images.sort(byName);
      deepEqual(ours, theirs, "oci images --json (cfsctl's sorted by name)");
      deepEqual(ours.images.map((i: { name: string }) => i.name).sort(), oldTags);

      // The repository keeps its EROFS format: the old cfs wrote meta.json without
      // erofs_formats, which composefs-rs reads as V2. A fresh cfsctl pull of each image into a
      // V2 repository gives the ids the upgraded one must have.
      const fresh = join(work, "fresh");
      await cfsctl09Ok(["--repo", fresh, "init", "--insecure", "--erofs-version", "2"]);
      for (const [tag, ref] of [["mytag", `oci:${sample}:v1`], [oldTags[0], `oci:${boot}:v1`]]) {
        await cfsctl09Ok(["--repo", fresh, "oci", "pull", ref, "fresh"]);
        const expected = (await cfsctl09Ok(["--repo", fresh, "oci", "compute-id", "fresh"]))
          .trim();
        equal(
          (await cfs(repo, "oci", "compute-id", tag)).trim(),
          expected,
          `cfs compute-id ${tag}`,
        );
        equal(
          (await cfsctl09Ok(["--repo", repo, "oci", "compute-id", tag])).trim(),
          expected,
          `cfsctl compute-id ${tag}`,
        );
        const inspect = JSON.parse(await cfsctl09Ok(["--repo", repo, "oci", "inspect", tag]));
        ok(inspect.composefs_erofs, `${tag}: the upgrade linked an EROFS image`);
      }

      // The named image survives and reads the same through both tools.
      equal(
        await cfs(repo, "dump-files", "myimage", "/small"),
        await cfsctl09Ok(["--repo", repo, "dump-files", "myimage", "/small"]),
      );

      // fsck clean for both, and after gc by either tool.
      for (const step of ["upgraded", "after cfs gc", "after cfsctl gc"]) {
        if (step === "after cfs gc") await cfs(repo, "gc");
        if (step === "after cfsctl gc") await cfsctl09Ok(["--repo", repo, "gc"]);
        const a = await runCfs(["--repo", repo, "oci", "fsck"]);
        equal(a.code, 0, `${step}: cfs oci fsck: ${a.text}`);
        const b = await runCfsctl09(["--repo", repo, "oci", "fsck"]);
        equal(b.code, 0, `${step}: cfsctl oci fsck: ${b.text}${b.stderr}`);
        ok(!a.text.includes("legacy-stream"), `${step}: no legacy stream warning`);
      }
      deepEqual(
        JSON.parse(await cfs(repo, "oci", "images", "--json")).images.map(
          (i: { name: string }) => i.name,
        ).sort(),
        oldTags,
        "tags after gc",
      );

      // Nothing left to upgrade the next time.
      const again = await runCfs(["--repo", repo, "--json", "pull", `oci:${boot}:v1`]);
      equal(again.code, 0, again.stderr);
      const u = JSON.parse(again.text.trim().split("\n").pop()!).result.upgrade;
      deepEqual(u.converted, { manifests: 0, configs: 0, layers: 0 });
      equal(u.upgraded, 0);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});
