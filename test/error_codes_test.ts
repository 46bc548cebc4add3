/**
 * Stable error codes through the CLI, for real failures: each case runs `cfs` as a user would,
 * once as text (the error as the last line on stderr, `cfs: ...`, nothing on stdout) and once
 * with `--json` (the last stdout line is `{"error": {code, message, exitCode}}`, nothing on
 * stderr), and checks the code and the exit code; where the failure touches a repository, the
 * repository is left as it was (same files, `cfs fsck` clean). Also: an error line stays bounded
 * when the input behind it (a path 1100 directories deep) is longer than the bound.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { runCfs, type RunResult } from "./cfs.ts";
import { MAX_ERROR_LINE } from "../lib/errors.ts";
import { buildOciImage } from "./fixtures/oci.ts";

interface JsonError {
  code: string;
  message: string;
  exitCode: number;
}

/**
 * Runs `cfs ARGS` twice, as text and as `cfs --json ARGS`, and asserts both report `code` with
 * `exitCode` in their form; returns the JSON error.
 */
async function expectError(
  args: string[],
  code: string,
  exitCode: number,
  options: { stdin?: Uint8Array } = {},
): Promise<JsonError> {
  const what = `cfs ${args.join(" ")}`;
  const text: RunResult = await runCfs(args, options);
  equal(text.code, exitCode, `${what}: exit code (stderr: ${text.stderr})`);
  equal(text.text, "", `${what}: stdout`);
  // A usage error is followed by the usage text; anything else is the last line (a pull logs
  // its progress before).
  const errLines = text.stderr.trimEnd().split("\n");
  const line = code === "usage" ? errLines[0] : errLines[errLines.length - 1];
  ok(line.startsWith("cfs: "), `${what}: ${text.stderr}`);

  const json = await runCfs(["--json", ...args], options);
  equal(json.code, exitCode, `${what} --json: exit code (stdout: ${json.text})`);
  equal(json.stderr, "", `${what} --json: stderr`);
  const lines = json.text.trim().split("\n");
  const parsed = JSON.parse(lines[lines.length - 1]);
  deepEqual(Object.keys(parsed), ["error"], json.text);
  deepEqual(Object.keys(parsed.error).sort(), ["code", "exitCode", "message"], json.text);
  equal(parsed.error.code, code, `${what}: ${parsed.error.message}`);
  equal(parsed.error.exitCode, exitCode);
  // The same message both ways: the JSON form is not a different text.
  equal(`cfs: ${parsed.error.message}`, line);
  return parsed.error;
}

/** Every file below `dir` with its bytes (symlinks as their targets), for before/after checks. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(join(dir, rel))) {
      const p = join(rel, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.isSymlink) out[p] = `-> ${await Deno.readLink(join(dir, p))}`;
      else out[p] = btoa(String.fromCharCode(...await Deno.readFile(join(dir, p))));
    }
  };
  await walk("");
  return out;
}

async function initRepo(repo: string): Promise<void> {
  const r = await runCfs(["init", "--insecure", "--algorithm", "fsverity-sha256-12", repo]);
  equal(r.code, 0, r.stderr);
}

async function fsckClean(repo: string): Promise<void> {
  const r = await runCfs(["--repo", repo, "fsck"]);
  equal(r.code, 0, `fsck: ${r.text}${r.stderr}`);
}

Deno.test("error codes: no repository at the path is repository-not-found", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-codes-" });
  try {
    const missing = join(tmp, "none");
    const e = await expectError(["--repo", missing, "images"], "repository-not-found", 1);
    ok(e.message.includes(missing), e.message);
    await Deno.mkdir(missing);
    await expectError(["--repo", missing, "oci", "images"], "repository-not-found", 1);
    deepEqual(await snapshot(missing), {}, "opening wrote nothing");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("error codes: a malformed meta.json is meta-invalid, unknown features meta-unsupported", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-codes-" });
  try {
    const repo = join(tmp, "repo");
    await initRepo(repo);
    const meta = join(repo, "meta.json");
    const good = await Deno.readTextFile(meta);
    await Deno.writeTextFile(meta, good.replace(/"version": *1/, '"version": "one"'));
    let before = await snapshot(repo);
    const e = await expectError(["--repo", repo, "oci", "images"], "meta-invalid", 1);
    ok(e.message.includes(meta), e.message);
    deepEqual(await snapshot(repo), before);

    const parsed = JSON.parse(good);
    parsed.features.incompatible = ["from-the-future"];
    await Deno.writeTextFile(meta, JSON.stringify(parsed));
    before = await snapshot(repo);
    const u = await expectError(["--repo", repo, "images"], "meta-unsupported", 1);
    ok(u.message.includes("from-the-future"), u.message);
    deepEqual(await snapshot(repo), before);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("error codes: wrong arguments are usage errors with exit code 2", async () => {
  await expectError(["no-such-command"], "usage", 2);
  await expectError(["images", "--no-such-flag"], "usage", 2);
  await expectError(["--hash", "md5", "images"], "usage", 2);
});

Deno.test("error codes: a layer that is not its diff_id is layer-digest-mismatch; nothing is kept", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-codes-" });
  try {
    const repo = join(tmp, "repo");
    await initRepo(repo);
    const src = join(tmp, "src");
    await Deno.mkdir(src);
    await Deno.writeTextFile(join(src, "file"), "x".repeat(5000));
    const tar = await new Deno.Command("tar", {
      args: ["-C", src, "-cf", "-", "."],
      stdout: "piped",
    })
      .output();
    equal(tar.code, 0);
    const wrong = `sha256:${"0".repeat(64)}`;
    const e = await expectError(
      ["--repo", repo, "oci", "import-layer", wrong, "layer"],
      "layer-digest-mismatch",
      1,
      { stdin: tar.stdout },
    );
    ok(e.message.includes(wrong), e.message);
    await fsckClean(repo);
    const streams = await snapshot(repo).then((s) =>
      Object.keys(s).filter((p) => p.startsWith("streams/"))
    );
    deepEqual(streams, []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("error codes: image-not-found, tag-invalid, image-ref-invalid", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-codes-" });
  try {
    const repo = join(tmp, "repo");
    await initRepo(repo);
    const built = await buildOciImage(join(tmp, "layout"), {
      tag: "v1",
      layers: [[{ type: "file", path: "usr/hello", content: "hello\n".repeat(20) }]],
    });
    const pulled = await runCfs(["--repo", repo, "oci", "pull", `oci:${built.dir}:v1`, "one"]);
    equal(pulled.code, 0, pulled.stderr);
    const before = await snapshot(repo);
    await expectError(["--repo", repo, "oci", "inspect", "nothing-here"], "image-not-found", 1);
    await expectError(["--repo", repo, "oci", "untag", "nothing-here"], "image-not-found", 1);
    await expectError(["--repo", repo, "image-objects", "refs/nothing"], "image-not-found", 1);
    for (const tag of ["@latest", ".."]) {
      await expectError(
        ["--repo", repo, "oci", "tag", built.manifest.digest, tag],
        "tag-invalid",
        1,
      );
    }
    await expectError(
      ["--repo", repo, "oci", "pull", "docker://UPPER.example/Name:tag"],
      "image-ref-invalid",
      1,
    );
    deepEqual(await snapshot(repo), before);
    await fsckClean(repo);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("error codes: a hook that throws is hook-failed with exit code 3", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-codes-" });
  try {
    const hook = join(tmp, "fail.ts");
    await Deno.writeTextFile(
      hook,
      `export default { name: "refuser", before: { open: () => { throw new Error("no, thanks"); } } };\n`,
    );
    const repo = join(tmp, "repo");
    const e = await expectError(
      [
        "--repo",
        repo,
        "pull",
        "--allow-missing-fsverity",
        "--no-default-hooks",
        "--hook",
        hook,
        `oci:${join(tmp, "never-read")}`,
      ],
      "hook-failed",
      3,
    );
    ok(e.message.includes("refuser") && e.message.includes("no, thanks"), e.message);
    await Deno.writeTextFile(hook, "export default 42;\n");
    await expectError(
      ["--repo", repo, "pull", "--no-default-hooks", "--hook", hook, "oci:/nowhere"],
      "hook-load-failed",
      3,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("error lines stay bounded: a tree 1100 directories deep gives a short line naming both ends", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-codes-" });
  try {
    // 1100 levels (past MAX_DEPTH, 1024): the path in the error is over 2 KB.
    await Deno.mkdir(join(tmp, ...Array(1100).fill("d")), { recursive: true });
    const args = ["--no-repo", "compute-id", "--no-propagate-usr-to-root", tmp];
    const text = await runCfs(args);
    equal(text.code, 1, text.stderr);
    const line = text.stderr.trimEnd();
    equal(line.split("\n").length, 1);
    ok(line.length <= "cfs: ".length + MAX_ERROR_LINE, `${line.length} characters`);
    // Both ends survive: where the path starts, and why it failed.
    ok(line.startsWith(`cfs: ${tmp}/d/d/d/`), line.slice(0, 200));
    ok(line.includes(" characters]... "), line);
    ok(/nested deeper than \d+ levels$/.test(line), line.slice(-200));
    const json = await runCfs(["--json", ...args]);
    equal(json.code, 1);
    const e = JSON.parse(json.text).error;
    equal(e.code, "tree-read-failed");
    equal(`cfs: ${e.message}`, line);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
