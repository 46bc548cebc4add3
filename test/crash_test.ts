/**
 * Crash safety of object writes: `cfs create-image` is killed with SIGKILL at several points
 * while it stores a tree with large files. Afterwards the repository must be consistent
 * (`cfs fsck` exits 0; leftovers are only `.tmp-*` files, reported as warnings), `cfs gc`
 * removes the leftovers, and running the same command again gives the same image ID as an
 * uninterrupted run would (the ID cfsctl 0.9.4's `compute-id` prints for the tree).
 */
import { equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runCfs } from "./cfs.ts";
import { cfsctl09Ok } from "./oracles.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

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
    let interrupted = 0;
    for (const delayMs of [150, 400, 700, 1000]) {
      const repo = `${tmp}/repo-${delayMs}`;
      equal((await runCfs(["init", "--insecure", repo])).code, 0);
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", CLI, "--repo", repo, "create-image", tree, "img"],
        stdout: "null",
        stderr: "null",
      }).spawn();
      await new Promise((r) => setTimeout(r, delayMs));
      try {
        child.kill("SIGKILL");
      } catch { /* already finished */ }
      const status = await child.status;
      if (status.signal === "SIGKILL") interrupted++;
      const fsck = await runCfs(["--repo", repo, "--json", "fsck"]);
      equal(fsck.code, 0, `fsck after a kill at ${delayMs} ms: ${fsck.text}${fsck.stderr}`);
      const report = JSON.parse(fsck.text);
      equal(report.ok, true, `fsck after a kill at ${delayMs} ms: ${fsck.text}`);
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
    ok(
      interrupted >= 2,
      `only ${interrupted} of 4 runs were interrupted mid-way: make the tree bigger`,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
