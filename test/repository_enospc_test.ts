/**
 * A full disk (issue 11, point 9b): every write error names the file it was writing, and a
 * failed write leaves the repository as it was (no staging file, fsck clean). A real tmpfs of
 * 1 MiB holds the repository (`mount -t tmpfs -o size=1m`: needs root, as `make test` runs).
 *
 * @module
 */
import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { run, runCfs } from "./cfs.ts";
import { buildOciImage } from "./fixtures/oci.ts";

/** Deterministic pseudo-random bytes (incompressible, so tmpfs holds every byte). */
function bytes(seed: number, n: number): Uint8Array {
  let s = seed >>> 0;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

/** Runs `fn` with a 1 MiB tmpfs mounted at a fresh directory, unmounted afterwards. */
async function withTinyTmpfs(fn: (mnt: string, work: string) => Promise<void>): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "cfs-enospc-test-" });
  const mnt = join(work, "mnt");
  await Deno.mkdir(mnt);
  await run("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]);
  try {
    await fn(mnt, work);
  } finally {
    await run("umount", [mnt]);
    await Deno.remove(work, { recursive: true });
  }
}

/** The one error line of a failed cfs run, and its code (from `--json`). */
function errorOf(r: { code: number; stderr: string }): string {
  strictEqual(r.code, 1, r.stderr);
  const lines = r.stderr.trimEnd().split("\n").filter((l) => l.startsWith("cfs: "));
  strictEqual(lines.length, 1, r.stderr);
  return lines[0];
}

/** Everything below `dir` whose name is a staging or temporary name. */
function leftovers(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of Deno.readDirSync(d)) {
      if (e.name.startsWith(".tmp-")) out.push(join(d, e.name));
      if (e.isDirectory) walk(join(d, e.name));
    }
  };
  walk(dir);
  return out;
}

Deno.test("ENOSPC: create-image and oci pull into a full repository fail naming the file being written, and leave it as it was", async () => {
  await withTinyTmpfs(async (mnt, work) => {
    const repo = join(mnt, "repo");
    strictEqual((await runCfs(["init", "--insecure", repo])).code, 0);
    const tree = join(work, "tree");
    await Deno.mkdir(join(tree, "usr"), { recursive: true });
    await Deno.writeFile(join(tree, "usr", "big"), bytes(1, 2 << 20));

    const line = errorOf(await runCfs(["--repo", repo, "create-image", tree, "img"]));
    ok(/ENOSPC/.test(line), line);
    ok(line.includes(join(repo, "objects", ".tmp-object-")), `names the file: ${line}`);
    const json = await runCfs(["--repo", repo, "--json", "create-image", tree, "img"]);
    strictEqual(JSON.parse(json.text.trim().split("\n").pop()!).error.code, "sys-enospc");
    strictEqual(leftovers(repo).length, 0, `leftovers: ${leftovers(repo)}`);
    const fsck = await runCfs(["--repo", repo, "fsck"]);
    strictEqual(fsck.code, 0, fsck.text);

    await buildOciImage(join(work, "oci"), {
      tag: "v1",
      layers: [[{ type: "dir", path: "usr" }, {
        type: "file",
        path: "usr/big",
        content: bytes(2, 2 << 20),
      }]],
    });
    const pull = errorOf(
      await runCfs(["--repo", repo, "oci", "pull", `oci:${join(work, "oci")}:v1`, "img"]),
    );
    ok(/ENOSPC/.test(pull), pull);
    ok(pull.includes(join(repo, "objects", ".tmp-object-")), `names the file: ${pull}`);
    strictEqual(leftovers(repo).length, 0, `leftovers: ${leftovers(repo)}`);
    const after = await runCfs(["--repo", repo, "fsck"]);
    strictEqual(after.code, 0, after.text);
    strictEqual((await runCfs(["--repo", repo, "gc"])).code, 0);
  });
});

Deno.test("ENOSPC: init on a full file system names meta.json's temporary file and leaves nothing", async () => {
  await withTinyTmpfs(async (mnt) => {
    // Fill the file system to the last byte.
    const filler = await Deno.open(join(mnt, "filler"), { write: true, create: true });
    const chunk = new Uint8Array(64 << 10);
    try {
      for (;;) await filler.write(chunk);
    } catch { /* full */ }
    filler.close();
    const repo = join(mnt, "repo");
    const line = errorOf(await runCfs(["init", "--insecure", repo]));
    ok(/ENOSPC|No space left/.test(line), line);
    ok(line.includes(repo), `names the path: ${line}`);
    strictEqual(
      [...Deno.readDirSync(mnt)].map((e) => e.name).join(),
      "filler",
      "nothing left behind",
    );
  });
});
