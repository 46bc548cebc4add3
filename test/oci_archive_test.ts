/**
 * `oci-archive:` failures (issue 11, 9c): an archive that is missing, a directory, not a tar,
 * truncated (plain and gzip), not an OCI layout, or missing a layer blob. Each is one line that
 * names the archive (never the temporary directory it was unpacked into) and says why in
 * words a user can act on (not tar's closing `Error is not recoverable`), with the code
 * `oci-archive-invalid`; the repository is left fsck-clean without a tag, no temporary
 * directory is left behind, and `cfs pull` logs tar's whole stderr (COMMAND_FAILED).
 *
 * The archives are real: a layout written by the fixtures, packed with GNU tar, and cut or
 * compressed with `head` and `gzip`.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { runCfs, type RunResult } from "./cfs.ts";
import { run } from "./fixtures/oci.ts";
import { buildOciImage } from "./fixtures/oci.ts";

const TAG = "archived";

async function newRepo(tmp: string, name: string): Promise<string> {
  const repo = join(tmp, name);
  const r = await runCfs(["init", "--insecure", "--algorithm", "fsverity-sha256-12", repo]);
  equal(r.code, 0, r.stderr);
  return repo;
}

/** Names of the entries of `dir`. */
async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("oci-archive: failures name the archive and say why; nothing is left behind", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-archive-test-" });
  // The children's temporary directories go here, so that leftovers can be seen.
  const childTmp = join(tmp, "tmp");
  await Deno.mkdir(childTmp);
  const env = { TMPDIR: childTmp };
  try {
    const built = await buildOciImage(join(tmp, "layout"), {
      tag: "v1",
      compression: "gzip",
      layers: [[
        { type: "dir", path: "usr" },
        { type: "file", path: "etc/hostname", content: "archived\n" },
        // Noise gzip cannot shrink: the layer blob is most of the archive, so its middle is in
        // the middle of a member.
        {
          type: "file",
          path: "data/noise",
          content: crypto.getRandomValues(new Uint8Array(65536)),
        },
        {
          type: "file",
          path: "data/noise2",
          content: crypto.getRandomValues(new Uint8Array(65536)),
        },
        {
          type: "file",
          path: "data/noise3",
          content: crypto.getRandomValues(new Uint8Array(65536)),
        },
      ]],
    });
    const archives = join(tmp, "archives");
    await Deno.mkdir(archives);
    const good = join(archives, "good.tar");
    await run(["tar", "-cf", good, "-C", built.dir, "."]);
    const size = (await Deno.stat(good)).size;
    const truncated = join(archives, "truncated.tar");
    await run(["sh", "-c", `head -c ${size >> 1} "$1" > "$2"`, "sh", good, truncated]);
    const truncatedGz = join(archives, "truncated.tar.gz");
    await run(["sh", "-c", `gzip -c "$1" | head -c 2000 > "$2"`, "sh", good, truncatedGz]);
    const junk = join(archives, "junk.tar");
    await Deno.writeFile(junk, crypto.getRandomValues(new Uint8Array(4096)));
    const notLayout = join(archives, "not-a-layout.tar");
    await run(["tar", "-cf", notLayout, "-C", built.dir, "index.json"]);
    const noLayer = join(archives, "no-layer.tar");
    const layerBlob = `blobs/sha256/${built.layers[0].digest.slice(7)}`;
    await run(["tar", "-cf", noLayer, "-C", built.dir, "--exclude", `./${layerBlob}`, "."]);
    const missing = join(archives, "missing.tar");

    await t.step(
      "the whole archive pulls (the cases below differ only in what breaks)",
      async () => {
        const repo = await newRepo(tmp, "repo-good");
        const r = await runCfs(["--repo", repo, "oci", "pull", `oci-archive:${good}:v1`, TAG], {
          env,
        });
        equal(r.code, 0, r.stderr);
        deepEqual(await entries(childTmp), [], "temporary directories left");
      },
    );

    const cases: { name: string; archive: string; says: string }[] = [
      { name: "missing", archive: missing, says: "no such file" },
      { name: "a directory", archive: archives, says: "is a directory, not an archive" },
      { name: "not a tar", archive: junk, says: "cannot unpack: not a tar archive" },
      {
        name: "truncated",
        archive: truncated,
        says: "cannot unpack: the archive is truncated (unexpected end of file)",
      },
      {
        name: "truncated gzip",
        archive: truncatedGz,
        says: "cannot unpack: the compressed archive is truncated",
      },
      {
        name: "not an OCI layout",
        archive: notLayout,
        says: "not an OCI image layout (no oci-layout file)",
      },
      { name: "a layer blob missing", archive: noLayer, says: built.layers[0].digest },
    ];
    for (const [i, c] of cases.entries()) {
      await t.step(c.name, async () => {
        const repo = await newRepo(tmp, `repo-${i}`);
        const ref = `oci-archive:${c.archive}:v1`;
        const text: RunResult = await runCfs(["--repo", repo, "oci", "pull", ref, TAG], { env });
        equal(text.code, 1, `${c.name}: ${text.stderr}`);
        const line = text.stderr.trimEnd().split("\n").pop()!;
        ok(line.startsWith(`cfs: oci-archive ${c.archive}: `), `${c.name}: ${line}`);
        ok(line.includes(c.says), `${c.name}: ${line} does not say ${c.says}`);
        ok(!line.includes(childTmp) && !line.includes("cfs-oci-archive-"), `${c.name}: ${line}`);
        ok(!text.stderr.includes("    at "), `${c.name}: a stack trace: ${text.stderr}`);
        const json = await runCfs(["--repo", repo, "--json", "oci", "pull", ref, TAG], { env });
        const lines = json.text.trim().split("\n");
        equal(JSON.parse(lines[lines.length - 1]).error.code, "oci-archive-invalid", json.text);

        const fsck = await runCfs(["--repo", repo, "fsck"]);
        equal(fsck.code, 0, `${c.name}: fsck: ${fsck.text}${fsck.stderr}`);
        const images = await runCfs(["--repo", repo, "--json", "oci", "images"]);
        deepEqual(JSON.parse(images.text), { images: [] }, `${c.name}: a tag was written`);
        deepEqual(await entries(childTmp), [], `${c.name}: temporary directories left`);
      });
    }

    await t.step("cfs pull logs all of tar's stderr with the one-line error", async () => {
      const r = await runCfs([
        "--repo",
        join(tmp, "repo-bootc"),
        "--json",
        "pull",
        "--allow-missing-fsverity",
        "--no-default-hooks",
        `oci-archive:${truncated}:v1`,
      ], { env });
      equal(r.code, 1, r.text);
      const events = r.text.trim().split("\n").map((l) => JSON.parse(l));
      const failed = events.find((e) => e.id === "e9fd004d5fa08e36fc23146dd335d1ee");
      ok(failed !== undefined, `no COMMAND_FAILED event: ${r.text}`);
      ok(/tar: Unexpected EOF in archive\n/.test(failed.CFS_OUTPUT), failed.CFS_OUTPUT);
      ok(/Error is not recoverable/.test(failed.CFS_OUTPUT), "the whole stderr, summary too");
      equal(events[events.length - 1].error.code, "oci-archive-invalid");
      deepEqual(await entries(childTmp), [], "temporary directories left");
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
