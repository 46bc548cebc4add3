/**
 * Layer import through the CLI, on the host (insecure repository): `cfs oci import-layer`
 * splits a tar from stdin into a splitstream `oci-layer-<diff_id>` (composefs-oci 0.9.4's
 * name) whose object id is the one cfsctl 0.9.4 gets for the same tar, `cfs cat`
 * reproduces it byte for byte, a second import is a no-op, a wrong expected sha256 imports
 * nothing (fsck stays clean), gc keeps what the ref reaches and removes it once the ref is
 * gone.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { runCfs } from "./cfs.ts";
import { cfsctl09, cfsctl09Ok } from "./oracles.ts";
import { Repository } from "../lib/repository.ts";
import { importLayer } from "../lib/oci/import.ts";
import { writeExternalStream } from "../lib/oci/store.ts";
import { CONTENT_TYPE } from "../lib/splitstream/format.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const ROOTFS = fileURLToPath(new URL("./.work/debian-rootfs", import.meta.url));

/** Runs `cmd ARGS < stdinFile` through a shell (runCfs has no file stdin). */
function withStdin(
  cmd: string[],
  stdinFile: string,
): { code: number; out: string; err: string } {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const line = `${cmd.map(q).join(" ")} < ${q(stdinFile)}`;
  const r = new Deno.Command("sh", { args: ["-c", line], stdout: "piped", stderr: "piped" })
    .outputSync();
  return {
    code: r.code,
    out: new TextDecoder().decode(r.stdout),
    err: new TextDecoder().decode(r.stderr),
  };
}

/** Runs `cfs ARGS < stdinFile`. */
function cfsWithStdin(
  args: string[],
  stdinFile: string,
): { code: number; out: string; err: string } {
  return withStdin([Deno.execPath(), "run", "-A", "--quiet", CLI, ...args], stdinFile);
}

function sha256File(file: string): string {
  return execFileSync("sha256sum", [file]).toString().split(" ")[0];
}

function objectFiles(repo: string): string[] {
  const out: string[] = [];
  const dir = path.join(repo, "objects");
  if (!fs.existsSync(dir)) return out;
  for (const sub of fs.readdirSync(dir)) {
    for (const o of fs.readdirSync(path.join(dir, sub))) out.push(sub + o);
  }
  return out.sort();
}

function makeTree(root: string) {
  fs.mkdirSync(path.join(root, "d/sub"), { recursive: true });
  const w = (p: string, data: string | Uint8Array) => fs.writeFileSync(path.join(root, p), data);
  w("d/64", "4".repeat(64));
  w("d/65", "6".repeat(65));
  w("d/512", "5".repeat(512));
  w("d/513", "3".repeat(513));
  w("d/empty", "");
  const big = new Uint8Array(3_000_001); // above IN_MEMORY_BODY_MAX: streamed into the store
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919 + (i >> 11)) & 0xff;
  w("d/sub/big", big);
  w("d/sub/mid", big.subarray(0, 100_000));
  w("d/" + "long-name-".repeat(15), "a file with a name longer than 100 bytes, so PAX path\n");
  fs.linkSync(path.join(root, "d/65"), path.join(root, "d/hardlink-to-65"));
  fs.symlinkSync("d/513", path.join(root, "symlink"));
  execFileSync("setfattr", ["-n", "user.small", "-v", "x", path.join(root, "d/65")]);
  execFileSync("setfattr", ["-n", "user.big", "-v", "v".repeat(300), path.join(root, "d/sub/big")]);
}

/** The entries of `streams/` (none when it does not exist yet: init writes only meta.json). */
function streamEntries(repo: string): string[] {
  const dir = path.join(repo, "streams");
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

async function checkLayer(dir: string, tar: string, name: string) {
  const repo = path.join(dir, `repo-${name.replaceAll("/", "_")}`);
  const init = await runCfs(["init", "--insecure", "--algorithm", "fsverity-sha256-12", repo]);
  equal(init.code, 0, init.stderr);
  const sha = sha256File(tar);
  const diffId = `sha256:${sha}`;
  const stream = `oci-layer-${diffId}`;

  // A wrong expected sha256: one-line error, no stream, fsck clean (only reusable objects).
  const wrong = `sha256:${"0".repeat(64)}`;
  const bad = cfsWithStdin(["--repo", repo, "oci", "import-layer", wrong, name], tar);
  equal(bad.code, 1);
  equal(bad.err.trim().split("\n").length, 1, bad.err);
  ok(bad.err.includes(wrong) && bad.err.includes(sha), bad.err);
  ok(!streamEntries(repo).some((e) => e.startsWith("oci-layer-")), streamEntries(repo).join());
  ok(!fs.existsSync(path.join(repo, "streams/refs", name)));
  const fsck0 = await runCfs(["--repo", repo, "fsck"]);
  equal(fsck0.code, 0, fsck0.text);
  const leftover = objectFiles(repo);

  const t0 = performance.now();
  const imp = cfsWithStdin(["--repo", repo, "oci", "import-layer", diffId, name], tar);
  const ms = performance.now() - t0;
  equal(imp.code, 0, imp.err);
  const id = imp.out.trim();
  ok(/^sha256:[0-9a-f]{64}$/.test(id), id);
  const objs = objectFiles(repo);
  console.log(
    `${name}: ${fs.statSync(tar).size} bytes, ${objs.length} objects, ${ms.toFixed(0)} ms`,
  );
  ok(leftover.every((o) => objs.includes(o)), "the refused import's objects were reused");
  equal(
    fs.readlinkSync(path.join(repo, "streams", stream)),
    `../objects/${id.slice(7, 9)}/${id.slice(9)}`,
  );
  equal(
    fs.readlinkSync(path.join(repo, "streams/refs", name)),
    `${"../".repeat(name.split("/").length)}${stream}`,
  );
  // cfsctl 0.9.4 stores the same tar as the same stream object, with the same objects.
  const oracleRepo = path.join(dir, `cfsctl-${name.replaceAll("/", "_")}`);
  await cfsctl09Ok([
    "--repo",
    oracleRepo,
    "init",
    "--insecure",
    "--algorithm",
    "fsverity-sha256-12",
  ]);
  const oracle = withStdin([
    cfsctl09(),
    "--repo",
    oracleRepo,
    "oci",
    "import-layer",
    diffId,
    name,
  ], tar);
  equal(oracle.code, 0, oracle.err);
  equal(id, oracle.out.trim(), "cfsctl 0.9.4's stream id");
  deepEqual(objectFiles(oracleRepo), objs);

  // cat reproduces the tar, by ref and by the stream's name.
  for (const n of [`refs/${name}`, stream]) {
    const cat = path.join(dir, `${name.replaceAll("/", "_")}.cat`);
    const r = new Deno.Command("sh", {
      args: [
        "-c",
        `"$0" run -A --quiet "$1" --repo "$2" cat "$3" > "$4"`,
        Deno.execPath(),
        CLI,
        repo,
        n,
        cat,
      ],
    }).outputSync();
    equal(r.code, 0, new TextDecoder().decode(r.stderr));
    equal(sha256File(cat), sha, `cfs cat ${n}`);
    fs.rmSync(cat);
  }

  // Importing again is a no-op: same id, no new objects.
  const again = cfsWithStdin(["--repo", repo, "oci", "import-layer", diffId, name], tar);
  equal(again.code, 0, again.err);
  equal(again.out.trim(), id);
  deepEqual(objectFiles(repo), objs);

  const fsck = await runCfs(["--repo", repo, "fsck"]);
  equal(fsck.code, 0, fsck.text);
  ok(fsck.text.includes("streams: 1/1 ok"), fsck.text);

  // gc keeps all that the ref reaches ...
  const gc1 = await runCfs(["--repo", repo, "--json", "gc"]);
  equal(gc1.code, 0, gc1.stderr);
  const rep1 = JSON.parse(gc1.text);
  deepEqual([rep1.objectsRemoved, rep1.streamsPruned], [0, 0]);
  deepEqual(objectFiles(repo), objs);
  // ... and removes everything once the ref is gone.
  fs.rmSync(path.join(repo, "streams/refs", name));
  const gc2 = await runCfs(["--repo", repo, "--json", "gc"]);
  equal(gc2.code, 0, gc2.stderr);
  const rep2 = JSON.parse(gc2.text);
  deepEqual([rep2.objectsRemoved, rep2.streamsPruned], [objs.length, 1]);
  deepEqual(objectFiles(repo), []);
  deepEqual(streamEntries(repo), ["refs"]);
  const fsck2 = await runCfs(["--repo", repo, "fsck"]);
  equal(fsck2.code, 0, fsck2.text);
}

Deno.test("oci import-layer / cat / gc / fsck on a GNU tar PAX layer", async () => {
  const dir = fs.mkdtempSync("/tmp/cfs-layer-");
  try {
    makeTree(path.join(dir, "tree"));
    const tar = path.join(dir, "small.tar");
    execFileSync("tar", [
      "--format=posix",
      "--xattrs",
      "--xattrs-include=*",
      "--sort=name",
      "-C",
      path.join(dir, "tree"),
      "-cf",
      tar,
      ".",
    ]);
    await checkLayer(dir, tar, "small");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("oci import-layer of the Debian rootfs tar round-trips through cfs cat", async () => {
  ok(fs.existsSync(path.join(ROOTFS, "usr")), `${ROOTFS} missing (made by the test fixtures)`);
  const dir = fs.mkdtempSync("/tmp/cfs-layer-");
  try {
    const tar = path.join(dir, "rootfs.tar");
    execFileSync("tar", ["-C", ROOTFS, "-cf", tar, "."]);
    await checkLayer(dir, tar, "oci/rootfs");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("library: importLayer stores regular bodies over 64 bytes as objects; a named ref keeps the layer alive through gc", async () => {
  const dir = fs.mkdtempSync("/tmp/cfs-layer-");
  try {
    makeTree(path.join(dir, "tree"));
    const tar = path.join(dir, "l.tar");
    execFileSync("tar", ["--format=posix", "-C", path.join(dir, "tree"), "-cf", tar, "."]);
    const bytes = fs.readFileSync(tar);
    const repo = Repository.init(path.join(dir, "r"), {
      insecure: true,
      algorithm: "fsverity-sha256-12",
    });
    try {
      const diffId = `sha256:${sha256File(tar)}`;
      const chunks = [bytes.subarray(0, 1000), bytes.subarray(1000)];
      const r = await importLayer(repo, chunks, { diffId });
      // 65, 512, 513, big, mid (64 and the long-named file's 54 bytes are inline; the
      // hardlink has no body).
      equal(r.objects, 5);
      equal(r.existing, false);
      equal(repo.hasStream(`oci-layer-${diffId}`)?.hex, r.streamId.hex);
      equal((await repo.streamRefs(repo.readObject(r.streamId))).objectRefs.length, 5);
      // A second import reads nothing.
      const again = await importLayer(repo, [new Uint8Array()], { diffId });
      deepEqual([again.existing, again.streamId.hex], [true, r.streamId.hex]);
      // A stream naming the layer (as a config names its layers) keeps it alive through gc.
      await writeExternalStream(
        repo,
        "test-holder",
        CONTENT_TYPE.ociConfig,
        new TextEncoder().encode("{}"),
        [[diffId, r.streamId]],
        "holder",
      );
      const before = objectFiles(repo.path);
      const g = await repo.gc();
      deepEqual([g.objectsRemoved, g.streamsPruned], [0, 0]);
      deepEqual(objectFiles(repo.path), before);
      ok((await repo.fsck()).ok);
      repo.removeRef("streams", "holder");
      const g2 = await repo.gc();
      equal(g2.objectsRemoved, before.length);
      deepEqual(objectFiles(repo.path), []);
    } finally {
      repo.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
