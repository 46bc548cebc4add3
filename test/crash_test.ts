/**
 * Crash safety of object writes: `cfs create-image` is killed with SIGKILL at several points
 * while it stores a tree with large files: once 10%, 35%, 60% and 75% of the tree's bytes are in
 * `objects/` (stored, or staged where staging files are visible), watched on disk rather than
 * guessed from a delay, so that each kill lands mid-way on a busy machine as on an idle one (and
 * the test fails if the command ends first). Afterwards the repository must be consistent
 * (`cfs fsck` exits 0; leftovers are only `.tmp-*` files, reported as warnings), `cfs gc`
 * removes the leftovers, and running the same command again gives the same image ID as an
 * uninterrupted run would (the ID cfsctl 0.9.4's `compute-id` prints for the tree).
 */
import { equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runCfs } from "./cfs.ts";
import { cfsctl09Ok } from "./oracles.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

/** The bytes of the large files {@link makeTree} writes (the small ones add 28 KB). */
const TREE_BYTES = 6 * 24 << 20;

/** Bytes of the files below `repo/objects` (stored objects and staging files alike). */
async function bytesInObjects(repo: string): Promise<number> {
  let total = 0;
  const walk = async (dir: string) => {
    try {
      for await (const e of Deno.readDir(dir)) {
        const p = `${dir}/${e.name}`;
        if (e.isDirectory) await walk(p);
        else if (e.isFile) total += (await Deno.lstat(p)).size;
      }
    } catch (e) {
      // Renamed or linked away between the listing and the stat: counted on the next round.
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  };
  await walk(`${repo}/objects`);
  return total;
}

/** Large files and many small ones; `/usr` is there because composefs-rs 0.9.4 takes the root's
 * metadata from it. */
async function makeTree(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/big`, { recursive: true });
  await Deno.mkdir(`${dir}/usr`);
  const chunk = new Uint8Array(1 << 20);
  for (let f = 0; f < 6; f++) {
    const file = await Deno.open(`${dir}/big/file-${f}`, { write: true, create: true });
    for (let i = 0; i < 24; i++) {
      chunk.fill((f * 31 + i) & 0xff);
      chunk[0] = i;
      await file.write(chunk);
    }
    file.close();
  }
  for (let i = 0; i < 200; i++) {
    await Deno.writeTextFile(`${dir}/small-${i}`, `file ${i} `.repeat(20));
  }
}

Deno.test("SIGKILL during create-image leaves a consistent repository; the rerun gives the same image", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-crash-" });
  try {
    const tree = `${tmp}/tree`;
    await makeTree(tree);
    // The repositories are sha512 (init's default); so is the oracle without a repository.
    const expected = (await cfsctl09Ok(["--no-repo", "--hash", "sha512", "compute-id", tree]))
      .trim();
    for (const percent of [10, 35, 60, 75]) {
      const repo = `${tmp}/repo-${percent}`;
      equal((await runCfs(["init", "--insecure", repo])).code, 0);
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", CLI, "--repo", repo, "create-image", tree, "img"],
        stdout: "null",
        stderr: "null",
      }).spawn();
      let exited = false;
      const status = child.status.finally(() => exited = true);
      // Bounded: a create-image that stalls fails the test here rather than hanging it.
      const deadline = Date.now() + 120_000;
      let written = 0;
      while (!exited && Date.now() < deadline) {
        written = await bytesInObjects(repo);
        if (written >= (percent / 100) * TREE_BYTES) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      if (!exited) child.kill("SIGKILL");
      const { signal } = await status;
      equal(
        signal,
        "SIGKILL",
        `create-image ended before ${percent}% of the tree was written (${written} bytes)`,
      );
      const fsck = await runCfs(["--repo", repo, "--json", "fsck"]);
      const at = `${percent}% (${written} bytes)`;
      equal(fsck.code, 0, `fsck after a kill at ${at}: ${fsck.text}${fsck.stderr}`);
      const report = JSON.parse(fsck.text);
      equal(report.ok, true, `fsck after a kill at ${at}: ${fsck.text}`);
      for (const w of report.warnings) {
        ok(/\.tmp-/.test(w.path), `unexpected warning ${JSON.stringify(w)}`);
      }
      const gc = await runCfs(["--repo", repo, "gc"]);
      equal(gc.code, 0, gc.stderr);
      const after = JSON.parse((await runCfs(["--repo", repo, "--json", "fsck"])).text);
      equal(after.ok, true, JSON.stringify(after.errors));
      equal(after.warnings.length, 0, JSON.stringify(after.warnings));
      const rerun = await runCfs(["--repo", repo, "create-image", tree, "img"]);
      equal(rerun.code, 0, rerun.stderr);
      equal(rerun.text.trim(), `sha512:${expected}`);
      equal((await runCfs(["--repo", repo, "fsck"])).code, 0);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
