/**
 * The repository on disk (lib/repository.ts) and its commands: init, open (and the upgrade
 * of an old-format repository), objects named by their fs-verity digest (checked with
 * Debian's `fsverity digest`, not our own code), fsck naming every bad entry, gc removing
 * exactly what nothing refers to, and crash leftovers.
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

/** Two trees sharing one large file; each has its own large file and a small one. */
async function makeTrees(dir: string): Promise<{ a: string; b: string }> {
  const a = join(dir, "tree-a"), b = join(dir, "tree-b");
  await Deno.mkdir(join(a, "sub"), { recursive: true });
  await Deno.mkdir(b);
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

// --- init -----------------------------------------------------------------------------------------

for (const algorithm of ALGORITHMS) {
  Deno.test(`init --insecure --algorithm ${algorithm} writes meta.json and the directories`, async () => {
    await withTemp(async (dir) => {
      const path = join(dir, "new", "repo");
      const r = await runCfs(["init", "--insecure", "--algorithm", algorithm, path]);
      strictEqual(r.code, 0, r.stderr);
      const meta = JSON.parse(await Deno.readTextFile(join(path, "meta.json")));
      strictEqual(meta.version, 1);
      strictEqual(meta.algorithm, algorithm);
      for (const d of ["objects", "images", "streams"]) {
        assert(Deno.statSync(join(path, d)).isDirectory, `${d}/ exists`);
      }
      withRepo(path, (repo) => {
        strictEqual(repo.meta.algorithm, algorithm);
        strictEqual(repo.algorithm, HASH[algorithm]);
        strictEqual(repo.secure, false);
        strictEqual(repo.upgraded, false);
      });
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
    }
  });
});

Deno.test("an old-format repository (objects/, no meta.json, as cfsctl 0.3.0 leaves it) is upgraded on open", async () => {
  requireTool("cfsctl", "make cfsctl");
  await withTemp(async (dir) => {
    const tree = join(dir, "tree");
    await Deno.mkdir(tree);
    await Deno.writeTextFile(join(tree, "hello"), "hello\n");
    await Deno.symlink("hello", join(tree, "link"));
    // cfsctl 0.3.0 cannot write into a repository on this host (it enables fs-verity on
    // every object), so the layout it would leave is made by hand: the image under the ID
    // cfsctl computes, an images/ link, a ref.
    const repo = join(dir, "old");
    await Deno.mkdir(repo);
    const id = (await run("cfsctl", ["--repo", repo, "compute-id", tree])).trim();
    const image = mkfsErofs(readTree(tree, { external: () => new Uint8Array(32) }));
    strictEqual(toHex(fsverityDigest(image, "sha256")), id, "our image is the one cfsctl names");
    await Deno.mkdir(join(repo, "objects", id.slice(0, 2)), { recursive: true });
    await Deno.writeFile(join(repo, "objects", id.slice(0, 2), id.slice(2)), image);
    await Deno.mkdir(join(repo, "images", "refs"), { recursive: true });
    await Deno.symlink(`../objects/${asObjectName(id)}`, join(repo, "images", id));
    await Deno.symlink(`../${id}`, join(repo, "images", "refs", "old-image"));
    strictEqual(id.slice(2).length, 62);
    strictEqual(exists(join(repo, "meta.json")), false);

    withRepo(repo, (r) => {
      strictEqual(r.upgraded, true);
      strictEqual(r.meta.algorithm, "fsverity-sha256-12");
      strictEqual(r.readImage("old-image").id, id);
    });
    const meta = JSON.parse(await Deno.readTextFile(join(repo, "meta.json")));
    strictEqual(meta.version, 1);
    strictEqual(meta.algorithm, "fsverity-sha256-12");
    const fsck = await runCfs(["--repo", repo, "fsck"]);
    strictEqual(fsck.code, 0, fsck.text + fsck.stderr);
    const dump = await runCfs(["--repo", repo, "dump-files", "old-image"]);
    strictEqual(dump.code, 0, dump.stderr);
    assert(dump.text.includes("/hello 6 100644"), dump.text);
  });
});

Deno.test("an old-format repository is upgraded through the CLI too, and one without objects defaults to sha256", async () => {
  await withTemp(async (dir) => {
    const repo = join(dir, "old");
    await Deno.mkdir(join(repo, "objects"), { recursive: true });
    const r = await runCfs(["--repo", repo, "gc"]);
    strictEqual(r.code, 0, r.stderr);
    strictEqual(
      JSON.parse(await Deno.readTextFile(join(repo, "meta.json"))).algorithm,
      "fsverity-sha256-12",
    );
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
          const d1 = toHex(repo.storeBytes(data));
          const d2 = toHex(repo.storeBytes(data.slice()));
          strictEqual(d2, d1, `storeBytes of ${n} bytes twice`);
          const src = join(dir, `src-${i}`);
          Deno.writeFileSync(src, data);
          strictEqual(toHex(repo.storeFile(src)), d1, `storeFile of ${n} bytes`);
          strictEqual(
            toHex(repo.storeFile(new TextEncoder().encode(src), n)),
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
        /does not fit/,
        "sha256 digest in a sha512 repository",
      );
    });
  });
});

// --- fsck -----------------------------------------------------------------------------------------

Deno.test("fsck is clean after create-image, through the library and the CLI (text and --json)", async () => {
  await withTemp(async (dir) => {
    const { repo } = await populated(dir);
    const report = withRepo(repo, (r) => r.fsck());
    assertEquals(report.problems, []);
    assertEquals(report.warnings, []);
    strictEqual(report.ok, true);
    strictEqual(report.images, 2);
    strictEqual(report.refs, 1);
    strictEqual(report.objects, 2 + 3, "two images, three large files");
    const text = await runCfs(["--repo", repo, "fsck"]);
    strictEqual(text.code, 0, text.text + text.stderr);
    assert(text.text.startsWith("ok"), text.text);
    for (const args of [["--json", "fsck"], ["fsck", "--json"]]) {
      const json = await runCfs(["--repo", repo, ...args]);
      strictEqual(json.code, 0, json.stderr);
      assertEquals(JSON.parse(json.text), report);
    }
  });
});

/** Damage done to a populated repository: returns the path fsck must name. */
type Damage = (repo: string, ids: { idA: string; idB: string }) => Promise<string>;

const DAMAGE: Array<[string, Damage, RegExp]> = [
  ["a flipped byte in an object", async (repo, { idA }) => {
    const obj = (await imageObjects(repo, idA))[0];
    const p = join(repo, "objects", asObjectName(obj));
    const data = await Deno.readFile(p);
    data[100] ^= 0x40;
    await Deno.writeFile(p, data);
    return p;
  }, /does not match/],
  ["an object with a wrong name", async (repo, { idA }) => {
    const obj = (await imageObjects(repo, idA))[0];
    const wrong = obj.slice(0, 2) + "0".repeat(obj.length - 2);
    const p = join(repo, "objects", asObjectName(wrong));
    await Deno.copyFile(join(repo, "objects", asObjectName(obj)), p);
    return p;
  }, /does not match/],
  ["a truncated image object", async (repo, { idB }) => {
    const p = join(repo, "objects", asObjectName(idB));
    await Deno.truncate(p, 1100);
    return p;
  }, /does not match/],
  ["a dangling image symlink", async (repo) => {
    const hex = "ab".repeat(64);
    const p = join(repo, "images", hex);
    await Deno.symlink(`../objects/${asObjectName(hex)}`, p);
    return p;
  }, /dangling/],
  ["an image symlink pointing outside objects/", async (repo) => {
    const p = join(repo, "images", "cd".repeat(64));
    await Deno.symlink("/etc/passwd", p);
    return p;
  }, /not \.\.\/objects/],
  ["an image whose object is missing", async (repo, { idB }) => {
    await Deno.remove(join(repo, "objects", asObjectName(idB)));
    return join(repo, "images", idB);
  }, /dangling|missing/],
  ["an image referring to a missing file object", async (repo, { idB }) => {
    const shared = await imageObjects(repo, "keep");
    const onlyB = (await imageObjects(repo, idB)).filter((o) => !shared.includes(o));
    strictEqual(onlyB.length, 1);
    await Deno.remove(join(repo, "objects", asObjectName(onlyB[0])));
    return join(repo, "images", idB);
  }, /missing object/],
  ["a dangling ref", async (repo) => {
    const p = join(repo, "images", "refs", "ghost");
    await Deno.symlink(`../${"ef".repeat(64)}`, p);
    return p;
  }, /dangling ref/],
  ["a dangling nested ref", async (repo) => {
    await Deno.mkdir(join(repo, "images", "refs", "a", "b"), { recursive: true });
    const p = join(repo, "images", "refs", "a", "b", "ghost");
    await Deno.symlink(`../../../${"ef".repeat(64)}`, p);
    return p;
  }, /dangling ref/],
  ["a stray non-hex file in objects/XX", async (repo, { idA }) => {
    const p = join(repo, "objects", idA.slice(0, 2), "README");
    await Deno.writeTextFile(p, "not an object");
    return p;
  }, /hex digest/],
  ["a stray file in objects/", async (repo) => {
    const p = join(repo, "objects", "notes.txt");
    await Deno.writeTextFile(p, "x");
    return p;
  }, /unexpected entry/],
  ["a directory named like an object", async (repo, { idA }) => {
    const p = join(repo, "objects", idA.slice(0, 2), "1".repeat(126));
    await Deno.mkdir(p);
    return p;
  }, /not a regular file/],
  ["an object that is a symlink", async (repo, { idA }) => {
    const p = join(repo, "objects", idA.slice(0, 2), "2".repeat(126));
    await Deno.symlink(idA.slice(2), p);
    return p;
  }, /symlink/],
];

for (const [what, damage, message] of DAMAGE) {
  Deno.test(`fsck names the bad entry: ${what}`, async () => {
    await withTemp(async (dir) => {
      const { repo, idA, idB } = await populated(dir);
      const bad = await damage(repo, { idA, idB });
      const report = withRepo(repo, (r) => r.fsck());
      strictEqual(report.ok, false, `${what}: fsck passed`);
      const named = report.problems.filter((p) => p.path === bad);
      assert(
        named.length > 0,
        `${what}: no problem names ${bad}: ${JSON.stringify(report.problems)}`,
      );
      assert(
        named.some((p) => message.test(p.problem)),
        `${what}: ${JSON.stringify(named)} does not match ${message}`,
      );
      const text = await runCfs(["--repo", repo, "fsck"]);
      strictEqual(text.code, 1, text.stderr);
      assert(text.text.includes(`error: ${bad}: `), text.text);
      assert(/^FAILED/m.test(text.text), text.text);
      const json = await runCfs(["--repo", repo, "--json", "fsck"]);
      strictEqual(json.code, 1, json.stderr);
      const parsed = JSON.parse(json.text);
      strictEqual(parsed.ok, false);
      assert(parsed.problems.some((p: { path: string }) => p.path === bad), json.text);
    });
  });
}

Deno.test("a leftover .tmp-* file is a warning in fsck (exit 0), not an object, and gc removes it", async () => {
  await withTemp(async (dir) => {
    const { repo, idA } = await populated(dir);
    const before = withRepo(repo, (r) => r.fsck());
    // What a crash mid-write leaves: a partial temporary file, in objects/XX or in objects/.
    const tmp1 = join(repo, "objects", idA.slice(0, 2), ".tmp-0123456789abcdef");
    const tmp2 = join(repo, "objects", ".tmp-fedcba9876543210");
    await Deno.writeFile(tmp1, bytes(5, 3000));
    await Deno.writeFile(tmp2, bytes(6, 100));
    const report = withRepo(repo, (r) => r.fsck());
    strictEqual(report.ok, true, JSON.stringify(report.problems));
    strictEqual(report.objects, before.objects, "temporary files are not objects");
    assertEquals(report.warnings.map((w) => w.path).sort(), [tmp1, tmp2].sort());
    const text = await runCfs(["--repo", repo, "fsck"]);
    strictEqual(text.code, 0, text.text + text.stderr);
    assert(text.text.includes(`warning: ${tmp1}`), text.text);

    const dry = await runCfs(["--repo", repo, "--json", "gc", "--dry-run"]);
    strictEqual(dry.code, 0, dry.stderr);
    assertEquals(JSON.parse(dry.text).removedTemporary.sort(), [tmp1, tmp2].sort());
    assert(exists(tmp1) && exists(tmp2), "--dry-run removed nothing");

    const gc = await runCfs(["--repo", repo, "--json", "gc", "--root", "keep"]);
    strictEqual(gc.code, 0, gc.stderr);
    assertEquals(JSON.parse(gc.text).removedTemporary.sort(), [tmp1, tmp2].sort());
    strictEqual(exists(tmp1) || exists(tmp2), false, "gc removed the temporary files");
    const after = withRepo(repo, (r) => r.fsck());
    assertEquals(after.warnings, []);
    strictEqual(after.ok, true);
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
    const report = withRepo(repo, (r) => r.fsck());
    strictEqual(report.ok, true, JSON.stringify(report.problems));
    strictEqual(report.refs, 1, "a temporary link is not a ref");
    assert(report.warnings.some((w) => w.path === tmpLink), JSON.stringify(report.warnings));
    assert(report.warnings.some((w) => w.path === tmpRef), JSON.stringify(report.warnings));
    const gc = withRepo(repo, (r) => r.gc());
    assertEquals(
      gc.removedImages,
      [idB],
      "image b has no ref: the temporary link does not keep it",
    );
    strictEqual(exists(tmpLink), false, "gc removed images/.tmp-*");
    strictEqual(exists(tmpRef), false, "gc removed images/refs/.tmp-*");
    const after = withRepo(repo, (r) => r.fsck());
    assertEquals([after.ok, after.problems, after.warnings], [true, [], []]);
  });
});

// --- gc ---------------------------------------------------------------------------------------------

Deno.test("gc removes the unreferenced image and the objects only it used, keeps the rest; fsck is clean after", async () => {
  await withTemp(async (dir) => {
    const { repo, idA, idB } = await populated(dir);
    const objsA = await imageObjects(repo, "keep");
    const objsB = await imageObjects(repo, idB);
    const onlyB = objsB.filter((o) => !objsA.includes(o));
    strictEqual(objsA.length, 2);
    strictEqual(onlyB.length, 1, "tree b has one large file of its own");
    const all = objectFiles(repo);

    // --dry-run: reports, removes nothing.
    const dry = withRepo(repo, (r) => r.gc({ dryRun: true }));
    strictEqual(dry.dryRun, true);
    assertEquals(dry.removedImages, [idB]);
    assertEquals(dry.removedObjects.sort(), [idB, ...onlyB].sort());
    assertEquals(objectFiles(repo), all, "--dry-run removed nothing");
    assert(exists(join(repo, "images", idB)));
    const dryCli = await runCfs(["--repo", repo, "gc", "--dry-run"]);
    strictEqual(dryCli.code, 0, dryCli.stderr);
    assert(dryCli.text.includes(`would remove image ${idB}`), dryCli.text);
    assertEquals(objectFiles(repo), all, "cfs gc --dry-run removed nothing");

    // --root keeps an image that has no ref.
    const rooted = await runCfs(["--repo", repo, "--json", "gc", "--root", idB]);
    strictEqual(rooted.code, 0, rooted.stderr);
    assertEquals(JSON.parse(rooted.text).removedImages, []);
    assertEquals(objectFiles(repo), all, "gc --root kept everything");

    // The real thing.
    const gc = await runCfs(["--repo", repo, "--json", "gc"]);
    strictEqual(gc.code, 0, gc.stderr);
    const report = JSON.parse(gc.text);
    assertEquals(report.removedImages, [idB]);
    assertEquals(report.removedObjects.sort(), [idB, ...onlyB].sort());
    assert(report.freedBytes > 30_000, `freed ${report.freedBytes} bytes`);
    assertEquals(
      objectFiles(repo),
      [idA, ...objsA].map(asObjectName).sort(),
      "exactly image a and its objects remain",
    );
    strictEqual(exists(join(repo, "images", idB)), false, "images/ link removed");
    assert(exists(join(repo, "images", idA)));
    const fsck = await runCfs(["--repo", repo, "fsck"]);
    strictEqual(fsck.code, 0, fsck.text + fsck.stderr);
    const dump = await runCfs(["--repo", repo, "dump-files", "keep"]);
    strictEqual(dump.code, 0, dump.stderr);
    // A second gc has nothing left to do.
    const again = withRepo(repo, (r) => r.gc());
    assertEquals([again.removedImages, again.removedObjects, again.removedTemporary], [[], [], []]);
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
    const gc = await runCfs(["--repo", repo, "gc"]);
    strictEqual(gc.code, 0, gc.stderr);
    assertEquals(objectFiles(repo), []);
    assertEquals([...Deno.readDirSync(join(repo, "images"))].map((e) => e.name), ["refs"]);
    const fsck = await runCfs(["--repo", repo, "fsck"]);
    strictEqual(fsck.code, 0, fsck.text + fsck.stderr);
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
      const id = toHex(repo.writeImage(image, "os/v1"));
      strictEqual(id, toHex(fsverityDigest(image, "sha256")));
      assertEquals(repo.readImage("os/v1").bytes, image);
      assertEquals(repo.readImage("refs/os/v1").bytes, image);
      assertEquals(repo.readImage(id).bytes, image);
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
  });
});
