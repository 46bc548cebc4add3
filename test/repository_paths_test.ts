/**
 * Repository paths cannot be redirected (issue 11, points 3 and 9a): a symbolic link planted
 * where a repository has a directory (`objects/`, `objects/XX/`, `images/`, `images/refs/`,
 * `streams/`, `streams/refs/`) leads no command out of the repository. For each kind, the real
 * directory is moved outside the repository (with bait that a command following the link
 * would delete or overwrite: unreferenced object names, dangling links) and a canary file, and
 * the link put in its place; then `gc`, `fsck`, `create-image` and `oci pull` run through the
 * CLI. Nothing outside may change (every file, link and its content compared), a command that
 * fails does so in one line with the code `repository-symlink` naming the link, fsck reports
 * the link, and once the directory is back, fsck is clean.
 *
 * Also: links the repository holds on purpose whose targets lead out (an image link to a fifo,
 * a ref to `../../../etc`) are reported by fsck and never opened: a fifo would stall a reader.
 *
 * @module
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { requireTool, ROOT, run, runCfs } from "./cfs.ts";
import { buildOciImage } from "./fixtures/oci.ts";

/** Deterministic pseudo-random bytes. */
function bytes(seed: number, n: number): Uint8Array {
  let s = seed >>> 0;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

/** Every entry below `dir` (links not followed): type, size, content hash or link target. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const e of [...Deno.readDirSync(d)].sort((a, b) => a.name < b.name ? -1 : 1)) {
      const p = join(d, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      const st = Deno.lstatSync(p);
      if (st.isSymlink) out[r] = `link ${Deno.readLinkSync(p)}`;
      else if (st.isDirectory) {
        out[r] = "dir";
        walk(p, r);
      } else if (st.isFile) {
        const h = createHash("sha256").update(Deno.readFileSync(p)).digest("hex");
        out[r] = `file ${st.size} ${h} ${st.mtime?.getTime()}`;
      } else out[r] = "other";
    }
  };
  walk(dir, "");
  return out;
}

/** `cfs --json --repo REPO ARGS` with a time limit (a command that hangs fails the test). */
async function cfsJson(repo: string, args: string[], seconds = 120) {
  const r = await runCfsWithin(["--json", "--repo", repo, ...args], seconds);
  let code: string | undefined;
  if (r.code !== 0) {
    const last = r.text.trim().split("\n").pop() ?? "";
    try {
      code = JSON.parse(last).error?.code;
    } catch { /* not an error line */ }
  }
  return { ...r, errorCode: code };
}

/** `cfs ARGS`, killed after `seconds` (then the test fails naming the command). */
async function runCfsWithin(args: string[], seconds: number) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", join(ROOT, "cli.ts"), ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    signal: AbortSignal.timeout(seconds * 1000),
  }).output();
  if (out.signal === "SIGTERM") {
    throw new Error(`cfs ${args.join(" ")}: still running after ${seconds} s`);
  }
  return {
    code: out.code,
    text: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** `fsverity digest --hash-alg=sha512 FILE`: the object id of that content (hex). */
async function verityDigest(path: string): Promise<string> {
  requireTool("fsverity", "apt-get install fsverity");
  const out = await run("fsverity", ["digest", "--hash-alg=sha512", path]);
  return /^sha512:([0-9a-f]{128}) /.exec(out)![1];
}

interface Setup {
  dir: string;
  repo: string;
  /** A second tree whose large file's object lands in objects/<prefix>/. */
  tree2: string;
  /** An OCI layout whose image holds that same file. */
  oci2: string;
  /** The objects/XX directory the second tree and image write into. */
  prefix: string;
}

/** A repository with an image ("keep") and a pulled OCI image (tag "first"). */
async function setup(dir: string): Promise<Setup> {
  const repo = join(dir, "repo");
  const tree1 = join(dir, "tree1"), tree2 = join(dir, "tree2");
  await Deno.mkdir(join(tree1, "usr"), { recursive: true });
  await Deno.mkdir(join(tree2, "usr"), { recursive: true });
  await Deno.writeFile(join(tree1, "big1"), bytes(1, 10_000));
  await Deno.writeFile(join(tree2, "big2"), bytes(2, 20_000));
  const prefix = (await verityDigest(join(tree2, "big2"))).slice(0, 2);
  strictEqual((await runCfs(["init", "--insecure", repo])).code, 0);
  strictEqual((await runCfs(["--repo", repo, "create-image", tree1, "keep"])).code, 0);
  await buildOciImage(join(dir, "oci1"), {
    tag: "v1",
    layers: [[{ type: "dir", path: "usr" }, {
      type: "file",
      path: "usr/big3",
      content: bytes(3, 30_000),
    }]],
  });
  const pulled = await runCfs([
    "--repo",
    repo,
    "oci",
    "pull",
    `oci:${join(dir, "oci1")}:v1`,
    "first",
  ]);
  strictEqual(pulled.code, 0, pulled.stderr);
  const oci2 = join(dir, "oci2");
  await buildOciImage(oci2, {
    tag: "v1",
    layers: [[{ type: "dir", path: "usr" }, {
      type: "file",
      path: "usr/big2",
      content: bytes(2, 20_000),
    }]],
  });
  return { dir, repo, tree2, oci2, prefix };
}

/** The repository directories a link may replace, and the bait each gets outside. */
const KINDS: Array<{ what: string; rel: (s: Setup) => string; bait: (out: string) => void }> = [
  {
    what: "objects",
    rel: () => "objects",
    bait: (out) => {
      Deno.mkdirSync(join(out, "ab"), { recursive: true });
      Deno.writeFileSync(join(out, "ab", "c".repeat(126)), bytes(9, 100));
    },
  },
  {
    what: "objects/XX",
    rel: (s) => `objects/${s.prefix}`,
    bait: (out) => Deno.writeFileSync(join(out, "d".repeat(126)), bytes(9, 100)),
  },
  {
    what: "images",
    rel: () => "images",
    bait: (out) => Deno.symlinkSync(`../objects/ee/${"e".repeat(126)}`, join(out, "e".repeat(128))),
  },
  {
    what: "images/refs",
    rel: () => "images/refs",
    bait: (out) => Deno.symlinkSync(`../${"f".repeat(128)}`, join(out, "bait")),
  },
  {
    what: "streams",
    rel: () => "streams",
    bait: (out) => Deno.symlinkSync(`../objects/ee/${"e".repeat(126)}`, join(out, "bait")),
  },
  {
    what: "streams/refs",
    rel: () => "streams/refs",
    bait: (out) => Deno.symlinkSync("../nothing-here", join(out, "bait")),
  },
];

for (const kind of KINDS) {
  Deno.test(`a symlinked ${kind.what} leads gc, fsck, create-image and oci pull nowhere outside the repository`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "cfs-paths-test-" });
    try {
      const s = await setup(dir);
      const rel = kind.rel(s);
      const inRepo = join(s.repo, rel);
      const outside = join(dir, "outside");
      // The real directory goes outside (or a fresh one, when the repository has none yet).
      try {
        Deno.renameSync(inRepo, outside);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        Deno.mkdirSync(outside);
      }
      Deno.writeTextFileSync(join(outside, "canary"), "do not touch");
      kind.bait(outside);
      Deno.symlinkSync(outside, inRepo);
      const before = snapshot(outside);

      const results: Record<string, Awaited<ReturnType<typeof cfsJson>>> = {
        gc: await cfsJson(s.repo, ["gc"]),
        fsck: await cfsJson(s.repo, ["fsck"]),
        "create-image": await cfsJson(s.repo, ["create-image", s.tree2, "second"]),
        "oci pull": await cfsJson(s.repo, ["oci", "pull", `oci:${s.oci2}:v1`, "second"]),
      };
      deepStrictEqual(snapshot(outside), before, `${kind.what}: something outside changed`);

      for (const [command, r] of Object.entries(results)) {
        if (command === "fsck") continue;
        if (r.code !== 0) {
          strictEqual(r.errorCode, "repository-symlink", `${command}: ${r.text} ${r.stderr}`);
          ok(r.text.includes(inRepo), `${command}: the error names ${inRepo}: ${r.text}`);
        }
      }
      // What must fail: whatever needs the linked directory.
      const mustFail: Record<string, string[]> = {
        objects: ["gc", "create-image", "oci pull"],
        "objects/XX": ["create-image", "oci pull"],
        images: ["gc", "create-image", "oci pull"],
        "images/refs": ["gc", "create-image"],
        streams: ["gc", "oci pull"],
        "streams/refs": ["gc", "oci pull"],
      };
      for (const command of mustFail[kind.what]) {
        ok(results[command].code !== 0, `${kind.what}: ${command} succeeded`);
      }
      // fsck reports the link as an error, by path.
      const fsck = JSON.parse(results.fsck.text);
      strictEqual(fsck.ok, false, `${kind.what}: fsck passed`);
      ok(
        fsck.problems.some((p: { kind: string; path: string }) =>
          p.kind === "unexpected-file-type" && p.path === rel
        ),
        `${kind.what}: ${JSON.stringify(fsck.problems)}`,
      );
      const text = await runCfs(["--repo", s.repo, "fsck"]);
      strictEqual(text.code, 1);
      ok(text.text.includes(`fsck: unexpected-file-type: ${rel}: symbolic link`), text.text);

      // With the directory back, the repository is as consistent as before.
      Deno.removeSync(inRepo);
      Deno.removeSync(join(outside, "canary"));
      Deno.renameSync(outside, inRepo);
      const after = await runCfs(["--repo", s.repo, "--json", "fsck"]);
      const report = JSON.parse(after.text);
      const baitErrors = report.problems.filter((p: { path: string }) =>
        !/[cdef]{126}|bait/.test(p.path)
      );
      deepStrictEqual(baitErrors, [], `${kind.what}: fsck after restoring`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("fsck reports links whose targets lead out of the repository and never opens them (a fifo would stall it)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cfs-paths-test-" });
  try {
    const s = await setup(dir);
    const fifo = join(dir, "fifo");
    await run("mkfifo", [fifo]);
    const hex = "ab".repeat(64);
    Deno.symlinkSync(fifo, join(s.repo, "images", hex));
    Deno.symlinkSync(`../../../../${fifo.slice(1)}`, join(s.repo, "streams", "oci-blob-x"));
    Deno.symlinkSync("../../../etc", join(s.repo, "streams", "refs", "x"));
    Deno.symlinkSync(fifo, join(s.repo, "images", "refs", "y"));
    const objDir = (await Array.fromAsync(Deno.readDir(join(s.repo, "objects"))))
      .find((e) => e.isDirectory)!.name;
    const objLink = `objects/${objDir}/${"1".repeat(126)}`;
    Deno.symlinkSync(fifo, join(s.repo, objLink));

    const r = await cfsJson(s.repo, ["fsck"], 60);
    strictEqual(r.code, 0, r.stderr);
    const report = JSON.parse(r.text);
    const kinds = Object.fromEntries(
      report.problems.map((p: { path: string; kind: string }) => [p.path, p.kind]),
    );
    deepStrictEqual(kinds, {
      [`images/${hex}`]: "image-invalid",
      "streams/oci-blob-x": "stream-open-failed",
      "streams/refs/x": "symlink-outside-repository",
      "images/refs/y": "symlink-outside-repository",
      [objLink]: "object-open-failed",
    });
    for (const p of report.problems) {
      ok(/leads out of the repository; not followed/.test(p.detail), JSON.stringify(p));
    }
    // The refs to the outside are not roots and are not pruned: gc leaves them to the user.
    const gc = await cfsJson(s.repo, ["gc", "--dry-run"], 60);
    strictEqual(gc.code, 0, gc.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gc removes only names a composefs tool could have written: staging files and unreferenced objects, nothing else", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cfs-paths-test-" });
  try {
    const s = await setup(dir);
    const objects = join(s.repo, "objects");
    const prefix = [...Deno.readDirSync(objects)].find((e) => e.isDirectory)!.name;
    const keep = [
      join(objects, prefix, "README"),
      join(objects, ".tmp-notours"),
      join(objects, prefix, ".tmp-x"),
      join(objects, "zz", "a".repeat(126)),
      join(s.repo, "images", ".tmp-notes"),
    ];
    Deno.mkdirSync(join(objects, "zz"));
    for (const p of keep) Deno.writeTextFileSync(p, "user data");
    Deno.mkdirSync(join(objects, ".tmp-object-0123456789abcdef"));
    Deno.writeTextFileSync(join(objects, ".tmp-object-0123456789abcdef", "f"), "user data");
    keep.push(join(objects, ".tmp-object-0123456789abcdef", "f"));
    // Control: what gc does remove, a staging file and an unreferenced object.
    const staging = join(objects, ".tmp-object-fedcba9876543210");
    Deno.writeTextFileSync(staging, "partial");
    const orphan = join(objects, prefix, "b".repeat(126));
    Deno.writeTextFileSync(orphan, "unreferenced");

    const gc = await cfsJson(s.repo, ["gc"]);
    strictEqual(gc.code, 0, gc.stderr);
    for (const p of keep) strictEqual(Deno.readTextFileSync(p), "user data", p);
    ok(!(await exists(staging)), "the staging file is removed");
    ok(!(await exists(orphan)), "the unreferenced object is removed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
