/**
 * The repository on disk (lib/repository/) and its commands: init, open (and the upgrade
 * of an old-format repository), objects named by their fs-verity digest (checked with
 * Debian's `fsverity digest`, not our own code), fsck naming every bad entry, gc removing
 * exactly what nothing refers to, and crash leftovers.
 *
 * composefs-ctl 0.9.4's `cfsctl` is the reference for what is on disk and what fsck and gc
 * report: it initializes and upgrades repositories side by side with cfs (same meta.json),
 * and runs fsck and gc on the very repositories cfs made and damaged (same counters, same
 * errors, same objects to remove).
 *
 * This host has no fs-verity, so repositories are made with `--insecure`; making a secure
 * one must fail cleanly.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { type RepoAlgorithm, Repository, RepositoryError } from "../lib/repository.ts";
import { fsverityDigest, toHex } from "../lib/fsverity/digest.ts";
import { mkfsErofs } from "../lib/erofs/writer.ts";
import { readTree } from "../lib/treefs.ts";
import { requireTool, run, runCfs } from "./cfs.ts";
import { cfsctl09Ok, runCfsctl09 } from "./oracles.ts";

const ALGORITHMS: RepoAlgorithm[] = ["fsverity-sha256-12", "fsverity-sha512-12"];
const HASH = { "fsverity-sha256-12": "sha256", "fsverity-sha512-12": "sha512" } as const;

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
async function withTemp(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cfs-repo-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Opens, runs, closes (the lock is released even when `fn` throws). */
async function withRepoAsync<T>(path: string, fn: (repo: Repository) => Promise<T>): Promise<T> {
  const repo = Repository.open(path);
  try {
    return await fn(repo);
  } finally {
    repo.close();
  }
}

function withRepo<T>(path: string, fn: (repo: Repository) => T): T {
  const repo = Repository.open(path);
  try {
    return fn(repo);
  } finally {
    repo.close();
  }
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

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

/** Every regular file below `objects/` as `XX/rest` names (temporary files included). */
function objectFiles(repo: string): string[] {
  const out: string[] = [];
  const dir = join(repo, "objects");
  if (!exists(dir)) return out; // init writes only meta.json
  for (const sub of Deno.readDirSync(dir)) {
    if (!sub.isDirectory) {
      out.push(sub.name);
      continue;
    }
    for (const e of Deno.readDirSync(join(dir, sub.name))) out.push(`${sub.name}/${e.name}`);
  }
  return out.sort();
}

/** `fsverity digest --hash-alg=ALG` of files: hex digests in argument order. */
async function fsverityTool(alg: "sha256" | "sha512", paths: string[]): Promise<string[]> {
  requireTool("fsverity", "apt-get install fsverity");
  const out = await run("fsverity", ["digest", `--hash-alg=${alg}`, ...paths]);
  return out.trim().split("\n").map((line, i) => {
    const m = /^(sha256|sha512):([0-9a-f]+) (.*)$/.exec(line);
    if (!m) throw new Error(`unexpected fsverity output ${JSON.stringify(line)}`);
    strictEqual(m[3], paths[i]);
    return m[2];
  });
}

function assertOneLineError(r: { code: number; stderr: string }, what: string, code = 1): string {
  strictEqual(r.code, code, `${what}: exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split("\n");
  strictEqual(lines.length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
  assert(lines[0].startsWith("cfs: "), `${what}: ${lines[0]}`);
  return lines[0];
}

function assertThrowsRepo(fn: () => unknown, message: RegExp, what: string): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  assert(error !== undefined, `${what}: no error`);
  assert(
    error instanceof RepositoryError,
    `${what}: expected RepositoryError, got ${(error as Error).name}: ${(error as Error).message}`,
  );
  assert(
    message.test(error.message),
    `${what}: ${JSON.stringify(error.message)} does not match ${message}`,
  );
}

/**
 * Two trees sharing one large file; each has its own large file and a small one, and a /usr
 * (composefs-rs 0.9.4 takes the root directory's metadata from it).
 */
async function makeTrees(dir: string): Promise<{ a: string; b: string }> {
  const a = join(dir, "tree-a"), b = join(dir, "tree-b");
  await Deno.mkdir(join(a, "sub"), { recursive: true });
  await Deno.mkdir(join(a, "usr"));
  await Deno.mkdir(join(b, "usr"), { recursive: true });
  await Deno.writeTextFile(join(a, "small"), "small file a");
  await Deno.writeFile(join(a, "sub", "only-a"), bytes(1, 20_000));
  await Deno.writeFile(join(a, "shared"), bytes(3, 10_000));
  await Deno.writeTextFile(join(b, "small"), "small file b");
  await Deno.writeFile(join(b, "only-b"), bytes(2, 30_000));
  await Deno.writeFile(join(b, "shared"), bytes(3, 10_000));
  return { a, b };
}

/** `cfs init --insecure` + create-image of both trees (a as ref "keep", b without a ref). */
async function populated(
  dir: string,
  algorithm: RepoAlgorithm = "fsverity-sha512-12",
): Promise<{ repo: string; idA: string; idB: string }> {
  const repo = join(dir, "repo");
  const { a, b } = await makeTrees(dir);
  const init = await runCfs(["init", "--insecure", "--algorithm", algorithm, repo]);
  strictEqual(init.code, 0, init.stderr);
  const ca = await runCfs(["--repo", repo, "create-image", a, "keep"]);
  strictEqual(ca.code, 0, ca.stderr);
  const cb = await runCfs(["--repo", repo, "create-image", b]);
  strictEqual(cb.code, 0, cb.stderr);
  return { repo, idA: ca.text.trim().split(":")[1], idB: cb.text.trim().split(":")[1] };
}

async function imageObjects(repo: string, name: string): Promise<string[]> {
  const r = await runCfs(["--repo", repo, "image-objects", name]);
  strictEqual(r.code, 0, r.stderr);
  return r.text.trim().split("\n").filter((l) => l).map((l) => l.split(":")[1]);
}

const asObjectName = (hex: string) => `${hex.slice(0, 2)}/${hex.slice(2)}`;

/** cfs's fsck JSON without cfs's additions (problems, warnings): cfsctl's fields. */
// deno-lint-ignore no-explicit-any
function cfsctlFields(report: any): Record<string, unknown> {
  const { problems: _p, warnings: _w, ...rest } = report;
  return rest;
}

/**
 * An fsck error line without its detail: `fsck: KIND: PATH`. The detail is the message of
 * the failing step, worded by each implementation (composefs-rs prints Rust's error texts,
 * such as "Invalid string length" for a bad object name).
 */
function withoutDetail(line: string): string {
  return /^(\s*- )?fsck: [a-z-]+: [^:]+/.exec(line)?.[0] ?? line;
}

/**
 * `cfs fsck` and cfsctl 0.9.4's `fsck` on the same repository: the same JSON report (every
 * counter; errors by kind and path, compared as sets: the tools walk directories in different
 * orders), the same text lines, and both fail or both pass. Returns cfs's JSON report.
 */
// deno-lint-ignore no-explicit-any
async function fsckAgrees(repo: string, what: string): Promise<any> {
  const ours = await runCfs(["--repo", repo, "fsck", "--json"]);
  strictEqual(ours.code, 0, `${what}: cfs fsck --json: ${ours.stderr}`);
  const report = JSON.parse(ours.text);
  const theirs = await runCfsctl09(["--repo", repo, "fsck", "--json"]);
  strictEqual(theirs.code, 0, `${what}: cfsctl fsck --json: ${theirs.stderr}`);
  const reference = JSON.parse(theirs.text);
  const sorted = (r: Record<string, unknown>) => ({
    ...r,
    errors: (r.errors as string[]).map(withoutDetail).sort(),
  });
  assertEquals(sorted(cfsctlFields(report)), sorted(reference), `${what}: fsck --json`);
  const text = await runCfs(["--repo", repo, "fsck"]);
  const refText = await runCfsctl09(["--repo", repo, "fsck"]);
  strictEqual(text.code === 0, refText.code === 0, `${what}: exit ${text.code}/${refText.code}`);
  strictEqual(text.code, report.ok ? 0 : 1, `${what}: cfs fsck exit code`);
  const lines = (t: string) =>
    t.split("\n").filter((l) => l && !l.startsWith("warning: ")).map(withoutDetail).sort();
  assertEquals(lines(text.text), lines(refText.text), `${what}: fsck text`);
  return report;
}

/** The `Objects: N removed (B bytes)` line cfs and cfsctl 0.9.4 print for `gc --dry-run`. */
async function gcDryRunAgrees(repo: string, what: string): Promise<string> {
  const line = (t: string) => t.split("\n").find((l) => l.startsWith("Objects: ")) ?? t;
  const ours = line(await cfsOk(repo, "gc", "--dry-run"));
  strictEqual(ours, line(await cfsctl09Ok(["--repo", repo, "gc", "--dry-run"])), what);
  return ours;
}

/** Runs `cfs --repo REPO ARGS`, asserting exit 0. */
async function cfsOk(repo: string, ...args: string[]): Promise<string> {
  const r = await runCfs(["--repo", repo, ...args]);
  strictEqual(r.code, 0, `cfs ${args.join(" ")}: ${r.stderr}`);
  return r.text;
}

// --- init -----------------------------------------------------------------------------------------

for (const algorithm of ALGORITHMS) {
  Deno.test(`init --insecure --algorithm ${algorithm} writes the meta.json cfsctl 0.9.4 writes`, async () => {
    await withTemp(async (dir) => {
      const path = join(dir, "new", "repo");
      const r = await runCfs(["init", "--insecure", "--algorithm", algorithm, path]);
      strictEqual(r.code, 0, r.stderr);
      const meta = JSON.parse(await Deno.readTextFile(join(path, "meta.json")));
      strictEqual(meta.version, 1);
      strictEqual(meta.algorithm, algorithm);
      // The reference, made by cfsctl: the same document, the same directory (meta.json
      // alone: objects/, images/ and streams/ come with the first write), the same mode.
      const ref = join(dir, "cfsctl", "repo");
      await cfsctl09Ok(["init", "--insecure", "--algorithm", algorithm, ref]);
      assertEquals(meta, JSON.parse(await Deno.readTextFile(join(ref, "meta.json"))));
      assertEquals(
        [...Deno.readDirSync(path)].map((e) => e.name),
        [...Deno.readDirSync(ref)].map((e) => e.name),
      );
      strictEqual(Deno.statSync(path).mode! & 0o777, Deno.statSync(ref).mode! & 0o777);
      withRepo(path, (repo) => {
        strictEqual(repo.meta.algorithm, algorithm);
        strictEqual(repo.algorithm, HASH[algorithm]);
        strictEqual(repo.secure, false);
        strictEqual(repo.upgraded, false);
        strictEqual(repo.erofsVersion, 1);
      });
      // cfsctl opens what cfs made, and the other way round.
      await cfsctl09Ok(["--repo", path, "fsck"]);
      strictEqual((await runCfs(["--repo", ref, "fsck"])).code, 0);
      // The same through the library, and a second init of the same kind is harmless.
      const lib = join(dir, "lib");
      Repository.init(lib, { algorithm, insecure: true }).close();
      assertEquals(JSON.parse(await Deno.readTextFile(join(lib, "meta.json"))), meta);
      Repository.init(lib, { algorithm, insecure: true }).close();
      const other = algorithm === "fsverity-sha256-12"
        ? "fsverity-sha512-12"
        : "fsverity-sha256-12";
      assertThrowsRepo(
        () => Repository.init(lib, { algorithm: other, insecure: true }),
        /already a repository/,
        "init with the other algorithm",
      );
    });
  });
}

Deno.test("init without --insecure on a file system without fs-verity fails in one line and leaves nothing behind", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "secure");
    const r = await runCfs(["init", path]);
    const line = assertOneLineError(r, "init (new directory)");
    assert(line.includes(path), `names the path: ${line}`);
    assert(line.includes("--insecure"), `suggests --insecure: ${line}`);
    strictEqual(exists(path), false, "the directory it created is gone");
    // An existing empty directory stays, and stays empty.
    const existing = join(dir, "existing");
    await Deno.mkdir(existing);
    const r2 = await runCfs(["init", "--algorithm", "fsverity-sha256-12", existing]);
    assertOneLineError(r2, "init (existing directory)");
    assertEquals([...Deno.readDirSync(existing)], []);
    // A nested path: none of the parents it made stay either.
    const nested = join(dir, "a", "b", "c");
    assertOneLineError(await runCfs(["init", nested]), "init (nested)");
    strictEqual(exists(join(dir, "a")), false, "no parent directories left behind");
  });
});

Deno.test("init refuses a path that is a file", async () => {
  await withTemp(async (dir) => {
    const file = join(dir, "file");
    await Deno.writeTextFile(file, "x");
    const line = assertOneLineError(await runCfs(["init", "--insecure", file]), "init on a file");
    assert(line.includes(file), line);
    strictEqual(await Deno.readTextFile(file), "x");
  });
});

// --- open -----------------------------------------------------------------------------------------

Deno.test("open of a directory that is not a repository fails clearly", async () => {
  await withTemp(async (dir) => {
    assertThrowsRepo(() => Repository.open(dir), /not a composefs repository/, "empty directory");
    assertThrowsRepo(
      () => Repository.open(join(dir, "missing")),
      /no repository/,
      "missing directory",
    );
    for (const command of [["fsck"], ["gc"], ["image-objects", "x"], ["dump-files", "x"]]) {
      const line = assertOneLineError(await runCfs(["--repo", dir, ...command]), command[0]);
      assert(line.includes(dir), line);
    }
    strictEqual(exists(join(dir, "meta.json")), false, "opening wrote nothing");
  });
});

Deno.test("a bad meta.json is refused with a message naming meta.json", async () => {
  await withTemp(async (dir) => {
    const repo = join(dir, "repo");
    Repository.init(repo, { insecure: true }).close();
    const meta = join(repo, "meta.json");
    const cases: Array<[string, string, RegExp]> = [
      ["bad JSON", "{ not json", /not valid JSON/],
      ["empty file", "", /not valid JSON/],
      ["an array", "[]", /meta\.json/],
      [
        "version 99",
        JSON.stringify({ version: 99, algorithm: "fsverity-sha512-12" }),
        /version 99/,
      ],
      [
        "version as a string",
        JSON.stringify({ version: "1", algorithm: "fsverity-sha512-12" }),
        /version/,
      ],
      [
        "unknown incompatible feature",
        JSON.stringify({
          version: 1,
          algorithm: "fsverity-sha512-12",
          features: { incompatible: ["zstd-objects"] },
        }),
        /zstd-objects/,
      ],
      ["wrong algorithm", JSON.stringify({ version: 1, algorithm: "sha512" }), /algorithm/],
      [
        "algorithm with another block size",
        JSON.stringify({ version: 1, algorithm: "fsverity-sha256-16" }),
        /algorithm/,
      ],
      ["no algorithm", JSON.stringify({ version: 1 }), /algorithm/],
    ];
    for (const [what, text, message] of cases) {
      await Deno.writeTextFile(meta, text);
      assertThrowsRepo(() => Repository.open(repo), message, what);
      assertThrowsRepo(() => Repository.open(repo), /meta\.json/, what);
      const line = assertOneLineError(await runCfs(["--repo", repo, "fsck"]), `fsck with ${what}`);
      assert(line.includes("meta.json"), `${what}: ${line}`);
      // cfsctl 0.9.4 refuses every one of them too.
      const ref = await runCfsctl09(["--repo", repo, "fsck"]);
      assert(ref.code !== 0, `${what}: cfsctl 0.9.4 accepted it: ${ref.text}`);
    }
  });
});

/**
 * What cfsctl 0.3.0 leaves (it cannot write into a repository on this host: it enables
 * fs-verity on every object, so the layout is made by hand): objects/ holding an image (the
 * legacy composefs-rs format, V2) named by its fs-verity digest as Debian's `fsverity digest`
 * computes it, an `images/` link and a ref, no meta.json. (cfsctl 0.3.0's own image of the
 * tree differs from composefs-rs 0.9.4's V2 in its bytes; the upgrade does not look at them.)
 */
async function oldFormatRepository(dir: string, repo: string): Promise<string> {
  const tree = join(dir, "tree");
  await Deno.mkdir(tree, { recursive: true });
  await Deno.writeTextFile(join(tree, "hello"), "hello\n");
  await Deno.symlink("hello", join(tree, "link"));
  await Deno.mkdir(repo);
  const image = mkfsErofs(readTree(tree, { external: () => new Uint8Array(32) }), { version: 2 });
  const file = join(dir, "image.erofs");
  await Deno.writeFile(file, image);
  const [id] = await fsverityTool("sha256", [file]);
  await Deno.mkdir(join(repo, "objects", id.slice(0, 2)), { recursive: true });
  await Deno.writeFile(join(repo, "objects", id.slice(0, 2), id.slice(2)), image);
  await Deno.mkdir(join(repo, "images", "refs"), { recursive: true });
  await Deno.symlink(`../objects/${asObjectName(id)}`, join(repo, "images", id));
  await Deno.symlink(`../${id}`, join(repo, "images", "refs", "old-image"));
  strictEqual(id.slice(2).length, 62);
  strictEqual(exists(join(repo, "meta.json")), false);
  return id;
}

Deno.test("an old-format repository (objects/, no meta.json, as cfsctl 0.3.0 leaves it) is upgraded on open as cfsctl 0.9.4 upgrades it", async () => {
  await withTemp(async (dir) => {
    const repo = join(dir, "old");
    const id = await oldFormatRepository(dir, repo);
    // The reference: cfsctl 0.9.4 opening a copy of it.
    const copy = join(dir, "copy");
    await run("cp", ["-a", repo, copy]);
    await cfsctl09Ok(["--repo", copy, "images"]);

    withRepo(repo, (r) => {
      strictEqual(r.upgraded, true);
      strictEqual(r.meta.algorithm, "fsverity-sha256-12");
      strictEqual(r.readImage("old-image").id.hex, id);
    });
    const meta = JSON.parse(await Deno.readTextFile(join(repo, "meta.json")));
    assertEquals(meta, JSON.parse(await Deno.readTextFile(join(copy, "meta.json"))));
    strictEqual(meta.algorithm, "fsverity-sha256-12");
    await fsckAgrees(repo, "upgraded repository");
    const dump = await runCfs(["--repo", repo, "dump-files", "old-image"]);
    strictEqual(dump.code, 0, dump.stderr);
    assert(dump.text.includes("/hello 6 100644"), dump.text);
  });
});

Deno.test("an old-format repository is upgraded through the CLI too (cfs gc), as cfsctl 0.9.4 upgrades it", async () => {
  await withTemp(async (dir) => {
    const repo = join(dir, "old");
    await oldFormatRepository(dir, repo);
    const copy = join(dir, "copy");
    await run("cp", ["-a", repo, copy]);
    await cfsctl09Ok(["--repo", copy, "gc"]);
    const r = await runCfs(["--repo", repo, "gc"]);
    strictEqual(r.code, 0, r.stderr);
    assertEquals(
      JSON.parse(await Deno.readTextFile(join(repo, "meta.json"))),
      JSON.parse(await Deno.readTextFile(join(copy, "meta.json"))),
    );
    assertEquals(objectFiles(repo), objectFiles(copy), "gc kept the same objects");
  });
});

// --- objects --------------------------------------------------------------------------------------

for (const algorithm of ALGORITHMS) {
  Deno.test(`storeBytes and storeFile (${algorithm}) name objects by the digest 'fsverity digest' computes, and dedupe`, async () => {
    await withTemp(async (dir) => {
      const path = join(dir, "repo");
      Repository.init(path, { algorithm, insecure: true }).close();
      const sizes = [0, 1, 64, 65, 4095, 4096, 4097, 100_000, (1 << 20) + 1];
      const digests = withRepo(path, (repo) => {
        const out: string[] = [];
        for (const [i, n] of sizes.entries()) {
          const data = bytes(100 + i, n);
          const d1 = repo.storeBytes(data).hex;
          const d2 = repo.storeBytes(data.slice()).hex;
          strictEqual(d2, d1, `storeBytes of ${n} bytes twice`);
          const src = join(dir, `src-${i}`);
          Deno.writeFileSync(src, data);
          strictEqual(repo.storeFile(src).hex, d1, `storeFile of ${n} bytes`);
          strictEqual(
            repo.storeFile(new TextEncoder().encode(src), n).hex,
            d1,
            `storeFile (byte path) of ${n} bytes`,
          );
          assert(repo.hasObject(repo.storeBytes(data)));
          assertEquals(repo.readObject(repo.storeBytes(data)), data);
          out.push(d1);
        }
        return out;
      });
      const files = objectFiles(path);
      assertEquals(
        files,
        [...new Set(digests)].map(asObjectName).sort(),
        "one object per distinct content, no temporary files",
      );
      const measured = await fsverityTool(
        HASH[algorithm],
        files.map((f) => join(path, "objects", f)),
      );
      assertEquals(measured, files.map((f) => f.replace("/", "")), "names are fs-verity digests");
      strictEqual(digests[0].length, algorithm === "fsverity-sha256-12" ? 64 : 128);
      // cfsctl 0.9.4 finds every object sound.
      await fsckAgrees(path, `objects (${algorithm})`);
    });
  });
}

Deno.test("storeFile of a file whose size changed refuses it and leaves no temporary file", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "repo");
    Repository.init(path, { insecure: true }).close();
    const src = join(dir, "src");
    await Deno.writeFile(src, bytes(1, 5000));
    withRepo(
      path,
      (repo) => assertThrowsRepo(() => repo.storeFile(src, 4000), /changed/, "size mismatch"),
    );
    assertEquals(objectFiles(path), []);
  });
});

Deno.test("readObject refuses an object whose content does not match its name", async () => {
  await withTemp((dir) => {
    const path = join(dir, "repo");
    Repository.init(path, { insecure: true }).close();
    withRepo(path, (repo) => {
      const d = repo.storeBytes(bytes(9, 9000));
      const p = repo.objectPath(d);
      const data = Deno.readFileSync(p);
      data[4500] ^= 1;
      Deno.writeFileSync(p, data);
      assertThrowsRepo(() => repo.readObject(d), /does not match/, "corrupt object");
      assertThrowsRepo(
        () => repo.readObject(new Uint8Array(64).fill(1)),
        /missing/,
        "missing object",
      );
      assertThrowsRepo(
        () => repo.readObject(new Uint8Array(32)),
        /sha256.*sha512/,
        "sha256 digest in a sha512 repository",
      );
    });
  });
});

// --- fsck -----------------------------------------------------------------------------------------

Deno.test("fsck is clean after create-image, through the library and the CLI (text and --json), as cfsctl 0.9.4 sees it", async () => {
  await withTemp(async (dir) => {
    const { repo } = await populated(dir);
    const report = await withRepoAsync(repo, (r) => r.fsck());
    assertEquals(report.errors, []);
    assertEquals(report.warnings, []);
    strictEqual(report.ok, true);
    strictEqual(report.imagesChecked, 2);
    strictEqual(report.streamsChecked, 0);
    strictEqual(report.objectsChecked, 2 + 3, "two images, three large files");
    const json = await fsckAgrees(repo, "clean repository");
    assertEquals(json.objects_checked, report.objectsChecked);
    const text = await runCfs(["--repo", repo, "fsck"]);
    strictEqual(text.code, 0, text.text + text.stderr);
    assert(text.text.endsWith("status: ok\n"), text.text);
    for (const args of [["--json", "fsck"], ["fsck", "--json"]]) {
      assertEquals(JSON.parse(await cfsOk(repo, ...args)), json);
    }
  });
});

/** Damage done to a populated repository: returns the repository-relative path fsck must name. */
type Damage = (repo: string, ids: { idA: string; idB: string }) => Promise<string>;

/** Each damage, and the error kind composefs-rs 0.9.4 reports for it. */
const DAMAGE: Array<[string, Damage, string]> = [
  ["a flipped byte in an object", async (repo, { idA }) => {
    const obj = (await imageObjects(repo, idA))[0];
    const p = join(repo, "objects", asObjectName(obj));
    const data = await Deno.readFile(p);
    data[100] ^= 0x40;
    await Deno.writeFile(p, data);
    return `objects/${asObjectName(obj)}`;
  }, "object-digest-mismatch"],
  ["an object with a wrong name", async (repo, { idA }) => {
    const obj = (await imageObjects(repo, idA))[0];
    const wrong = obj.slice(0, 2) + "0".repeat(obj.length - 2);
    await Deno.copyFile(
      join(repo, "objects", asObjectName(obj)),
      join(repo, "objects", asObjectName(wrong)),
    );
    return `objects/${asObjectName(wrong)}`;
  }, "object-digest-mismatch"],
  ["a truncated image object", async (repo, { idB }) => {
    await Deno.truncate(join(repo, "objects", asObjectName(idB)), 1100);
    return `objects/${asObjectName(idB)}`;
  }, "object-digest-mismatch"],
  ["a dangling image symlink", async (repo) => {
    const hex = "ab".repeat(64);
    await Deno.symlink(`../objects/${asObjectName(hex)}`, join(repo, "images", hex));
    return `images/${hex}`;
  }, "broken-symlink"],
  ["an image whose object is missing", async (repo, { idB }) => {
    await Deno.remove(join(repo, "objects", asObjectName(idB)));
    return `images/${idB}`;
  }, "broken-symlink"],
  ["an image symlink pointing outside objects/", async (repo) => {
    const hex = "cd".repeat(64);
    await Deno.symlink("/etc/passwd", join(repo, "images", hex));
    return `images/${hex}`;
  }, "image-invalid"],
  [
    "the object of an image a ref names is missing (the ref is broken too)",
    async (repo, { idA }) => {
      await Deno.remove(join(repo, "objects", asObjectName(idA)));
      return "images/refs/keep";
    },
    "broken-symlink",
  ],
  ["an image referring to a missing file object", async (repo, { idB }) => {
    const shared = await imageObjects(repo, "keep");
    const onlyB = (await imageObjects(repo, idB)).filter((o) => !shared.includes(o));
    strictEqual(onlyB.length, 1);
    await Deno.remove(join(repo, "objects", asObjectName(onlyB[0])));
    return `images/${idB}`;
  }, "image-missing-object"],
  ["a dangling ref", async (repo) => {
    await Deno.symlink(`../${"ef".repeat(64)}`, join(repo, "images", "refs", "ghost"));
    return "images/refs/ghost";
  }, "broken-symlink"],
  ["a dangling nested ref", async (repo) => {
    await Deno.mkdir(join(repo, "images", "refs", "a", "b"), { recursive: true });
    await Deno.symlink(
      `../../../${"ef".repeat(64)}`,
      join(repo, "images", "refs", "a", "b", "ghost"),
    );
    return "images/refs/a/b/ghost";
  }, "broken-symlink"],
  ["a stray non-hex file in objects/XX", async (repo, { idA }) => {
    await Deno.writeTextFile(join(repo, "objects", idA.slice(0, 2), "README"), "not an object");
    return `objects/${idA.slice(0, 2)}/README`;
  }, "object-invalid-name"],
  ["a directory named like an object", async (repo, { idA }) => {
    const name = "1".repeat(126);
    await Deno.mkdir(join(repo, "objects", idA.slice(0, 2), name));
    return `objects/${idA.slice(0, 2)}/${name}`;
  }, "object-verity-failed"],
  ["an object that is a symlink to another object", async (repo, { idA }) => {
    const name = "2".repeat(126);
    await Deno.symlink(idA.slice(2), join(repo, "objects", idA.slice(0, 2), name));
    return `objects/${idA.slice(0, 2)}/${name}`;
  }, "object-digest-mismatch"],
  ["an object that is a dangling symlink", async (repo, { idA }) => {
    const name = "3".repeat(126);
    await Deno.symlink("nothere", join(repo, "objects", idA.slice(0, 2), name));
    return `objects/${idA.slice(0, 2)}/${name}`;
  }, "object-open-failed"],
  ["an image link that is a regular file", async (repo) => {
    const hex = "cd".repeat(64);
    await Deno.writeTextFile(join(repo, "images", hex), "not a link");
    return `images/${hex}`;
  }, "entry-not-symlink"],
];

for (const [what, damage, kind] of DAMAGE) {
  Deno.test(`fsck names the bad entry as cfsctl 0.9.4 does: ${what}`, async () => {
    await withTemp(async (dir) => {
      const { repo, idA, idB } = await populated(dir);
      const bad = await damage(repo, { idA, idB });
      const report = await withRepoAsync(repo, (r) => r.fsck());
      strictEqual(report.ok, false, `${what}: fsck passed`);
      const named = report.errors.filter((p) => p.path === bad);
      assert(named.length > 0, `${what}: no error names ${bad}: ${JSON.stringify(report.errors)}`);
      assert(
        named.some((p) => p.kind === kind),
        `${what}: ${JSON.stringify(named)} is not ${kind}`,
      );
      const json = await fsckAgrees(repo, what);
      strictEqual(json.ok, false);
      assert(
        json.errors.some((e: string) => e.startsWith(`fsck: ${kind}: ${bad}`)),
        JSON.stringify(json.errors),
      );
      const text = await runCfs(["--repo", repo, "fsck"]);
      strictEqual(text.code, 1, text.stderr);
      assert(text.text.includes(`  - fsck: ${kind}: ${bad}`), text.text);
    });
  });
}

Deno.test("fsck leaves alone what composefs-rs leaves alone: a stray file directly in objects/", async () => {
  await withTemp(async (dir) => {
    const { repo } = await populated(dir);
    await Deno.writeTextFile(join(repo, "objects", "notes.txt"), "x");
    const json = await fsckAgrees(repo, "stray file in objects/");
    strictEqual(json.ok, true);
  });
});

Deno.test("leftover staging files (objects/.tmp-object-*, and objects/XX/.tmp-* of older cfs) are warnings in fsck (exit 0), not objects, and gc removes them", async () => {
  await withTemp(async (dir) => {
    const { repo, idA } = await populated(dir);
    const before = await withRepoAsync(repo, (r) => r.fsck());
    // What a crash mid-write leaves: a partial staging file in objects/ (cfs and composefs-rs
    // 0.9.4 stage there), or in objects/XX (where earlier cfs releases staged).
    const staging = join(repo, "objects", ".tmp-object-fedcba9876543210");
    const legacy = join(repo, "objects", idA.slice(0, 2), ".tmp-0123456789abcdef");
    await Deno.writeFile(staging, bytes(6, 100));
    // composefs-rs 0.9.4 ignores the staging file in objects/ as cfs does.
    strictEqual((await fsckAgrees(repo, "staging file")).ok, true);
    await gcDryRunAgrees(repo, "staging file");
    await Deno.writeFile(legacy, bytes(5, 3000));
    const report = await withRepoAsync(repo, (r) => r.fsck());
    strictEqual(report.ok, true, JSON.stringify(report.errors));
    strictEqual(report.objectsChecked, before.objectsChecked, "temporary files are not objects");
    const rel = (p: string) => p.slice(repo.length + 1);
    assertEquals(report.warnings.map((w) => w.path).sort(), [rel(staging), rel(legacy)].sort());
    const text = await runCfs(["--repo", repo, "fsck"]);
    strictEqual(text.code, 0, text.text + text.stderr);
    assert(text.text.includes(`warning: leftover-temporary: ${rel(legacy)}`), text.text);

    const dry = await runCfs(["--repo", repo, "--json", "gc", "--dry-run"]);
    strictEqual(dry.code, 0, dry.stderr);
    assertEquals(JSON.parse(dry.text).removedTemporary.sort(), [staging, legacy].sort());
    assert(exists(staging) && exists(legacy), "--dry-run removed nothing");

    const gc = await runCfs(["--repo", repo, "--json", "gc", "--root", idA]);
    strictEqual(gc.code, 0, gc.stderr);
    assertEquals(JSON.parse(gc.text).removedTemporary.sort(), [staging, legacy].sort());
    strictEqual(exists(staging) || exists(legacy), false, "gc removed the temporary files");
    const after = await withRepoAsync(repo, (r) => r.fsck());
    assertEquals(after.warnings, []);
    strictEqual(after.ok, true);
    await fsckAgrees(repo, "after gc");
  });
});

Deno.test("a leftover .tmp-* symlink in images/ or images/refs/ (crash while linking) is not a GC root, and gc removes it", async () => {
  await withTemp(async (dir) => {
    const { repo, idB } = await populated(dir);
    // symlinkAtomic makes the link under a temporary name, then renames it: a crash in
    // between leaves these. Image b never got its ref, so it is garbage.
    const tmpLink = join(repo, "images", ".tmp-00112233aabbccdd");
    const tmpRef = join(repo, "images", "refs", ".tmp-44556677eeff0011");
    await Deno.symlink(`../objects/${asObjectName(idB)}`, tmpLink);
    await Deno.symlink(`../${idB}`, tmpRef);
    const report = await withRepoAsync(repo, (r) => r.fsck());
    strictEqual(report.ok, true, JSON.stringify(report.errors));
    strictEqual(report.imagesChecked, 2, "a temporary link is not an image");
    const rel = (p: string) => p.slice(repo.length + 1);
    assert(report.warnings.some((w) => w.path === rel(tmpLink)), JSON.stringify(report.warnings));
    assert(report.warnings.some((w) => w.path === rel(tmpRef)), JSON.stringify(report.warnings));
    const gc = await withRepoAsync(repo, (r) => r.gc());
    assert(
      gc.removedObjects.includes(idB),
      "image b has no ref: the temporary link does not keep it",
    );
    strictEqual(exists(tmpLink), false, "gc removed images/.tmp-*");
    strictEqual(exists(tmpRef), false, "gc removed images/refs/.tmp-*");
    const after = await withRepoAsync(repo, (r) => r.fsck());
    assertEquals([after.ok, after.errors, after.warnings], [true, [], []]);
  });
});

// --- gc ---------------------------------------------------------------------------------------------

Deno.test("gc removes the unreferenced image and the objects only it used, keeps the rest, as cfsctl 0.9.4 would; fsck is clean after", async () => {
  await withTemp(async (dir) => {
    const { repo, idA, idB } = await populated(dir);
    const objsA = await imageObjects(repo, "keep");
    const objsB = await imageObjects(repo, idB);
    const onlyB = objsB.filter((o) => !objsA.includes(o));
    strictEqual(objsA.length, 2);
    strictEqual(onlyB.length, 1, "tree b has one large file of its own");
    const all = objectFiles(repo);

    // --dry-run: reports, removes nothing; cfsctl counts the same.
    const dry = await withRepoAsync(repo, (r) => r.gc({ dryRun: true }));
    strictEqual(dry.dryRun, true);
    assertEquals(dry.removedObjects, [idB, ...onlyB].sort());
    strictEqual(dry.objectsRemoved, 2);
    assertEquals(objectFiles(repo), all, "--dry-run removed nothing");
    assert(exists(join(repo, "images", idB)));
    strictEqual(
      await gcDryRunAgrees(repo, "dry run"),
      `Objects: 2 removed (${dry.objectsBytes} bytes)`,
    );
    assertEquals(objectFiles(repo), all, "cfs gc --dry-run removed nothing");

    // --root keeps an image that has no ref (cfsctl takes the same root).
    const rooted = await runCfs(["--repo", repo, "--json", "gc", "--root", idB]);
    strictEqual(rooted.code, 0, rooted.stderr);
    strictEqual(JSON.parse(rooted.text).objectsRemoved, 0);
    assertEquals(objectFiles(repo), all, "gc --root kept everything");
    assert(
      (await cfsctl09Ok(["--repo", repo, "gc", "--dry-run", "--root", idB])).includes(
        "Objects: 0 removed",
      ),
    );

    // The real thing.
    const gc = await runCfs(["--repo", repo, "--json", "gc"]);
    strictEqual(gc.code, 0, gc.stderr);
    const report = JSON.parse(gc.text);
    assertEquals(report.removedObjects, [idB, ...onlyB].sort());
    strictEqual(report.imagesPruned, 1, "the images/ link of b");
    assert(report.objectsBytes > 30_000, `freed ${report.objectsBytes} bytes`);
    assertEquals(
      objectFiles(repo),
      [idA, ...objsA].map(asObjectName).sort(),
      "exactly image a and its objects remain",
    );
    strictEqual(exists(join(repo, "images", idB)), false, "images/ link removed");
    assert(exists(join(repo, "images", idA)));
    await fsckAgrees(repo, "after gc");
    const dump = await runCfs(["--repo", repo, "dump-files", "keep"]);
    strictEqual(dump.code, 0, dump.stderr);
    // A second gc has nothing left to do (and neither would cfsctl's).
    await gcDryRunAgrees(repo, "second gc");
    const again = await withRepoAsync(repo, (r) => r.gc());
    assertEquals(
      [again.objectsRemoved, again.imagesPruned, again.streamsPruned, again.removedTemporary],
      [0, 0, 0, []],
    );
  });
});

Deno.test("gc with no refs at all empties the repository; an unknown --root fails in one line", async () => {
  await withTemp(async (dir) => {
    const { repo } = await populated(dir, "fsverity-sha256-12");
    await Deno.remove(join(repo, "images", "refs", "keep"));
    assertOneLineError(
      await runCfs(["--repo", repo, "gc", "--root", "no-such-image"]),
      "gc --root unknown",
    );
    strictEqual(objectFiles(repo).length, 5, "a failed gc removed nothing");
    await gcDryRunAgrees(repo, "no refs");
    const gc = await runCfs(["--repo", repo, "gc"]);
    strictEqual(gc.code, 0, gc.stderr);
    assertEquals(objectFiles(repo), []);
    assertEquals([...Deno.readDirSync(join(repo, "images"))].map((e) => e.name), ["refs"]);
    await fsckAgrees(repo, "empty repository");
  });
});

// --- images and refs ------------------------------------------------------------------------------

Deno.test("writeImage and readImage: by id and by ref; bad ref names are refused", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "repo");
    Repository.init(path, { algorithm: "fsverity-sha256-12", insecure: true }).close();
    const tree = join(dir, "tree");
    await Deno.mkdir(tree);
    await Deno.writeTextFile(join(tree, "f"), "content");
    const image = mkfsErofs(readTree(tree, { external: () => new Uint8Array(32) }));
    withRepo(path, (repo) => {
      const id = repo.writeImage(image, "os/v1").hex;
      strictEqual(id, toHex(fsverityDigest(image, "sha256")));
      assertEquals(repo.readImage("os/v1").bytes, image);
      assertEquals(repo.readImage("refs/os/v1").bytes, image);
      assertEquals(repo.readImage(id).bytes, image);
      assertEquals(repo.readImage(`sha256:${id}`).bytes, image);
      strictEqual(Deno.readLinkSync(join(path, "images", "refs", "os", "v1")), `../../${id}`);
      for (const bad of ["", "/abs", "a//b", "../escape", "a/./b", "a/..", ".tmp-x"]) {
        assertThrowsRepo(
          () => repo.writeImage(image, bad),
          /invalid ref name/,
          `ref name ${JSON.stringify(bad)}`,
        );
      }
      assertThrowsRepo(() => repo.readImage("nope"), /no image named/, "missing ref");
      assertThrowsRepo(() => repo.readImage("ab".repeat(32)), /no image/, "missing id");
    });
    strictEqual(exists(join(dir, "escape")), false);
    // cfsctl 0.9.4 finds the image by the same names.
    const objs = await cfsctl09Ok(["--repo", path, "image-objects", "refs/os/v1"]);
    strictEqual(objs, "");
    await fsckAgrees(path, "writeImage");
  });
});
