/**
 * fs-verity digests against the reference: every expected digest here comes from running
 * `fsverity digest` (Debian package fsverity), never from cfs's own code.
 */
import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { join } from "node:path";
import { ROOT, runCfs } from "./cfs.ts";
import {
  fromHex,
  fsverityDigest,
  FsVerityHasher,
  toHex,
  type VerityAlgorithm,
} from "../lib/fsverity/digest.ts";
import { fsverityDigestFile, fsverityDigestFileSync } from "../lib/fsverity/file.ts";
import { enableVerity, measureVerity, VerityError } from "../lib/fsverity/ioctl.ts";
import { close, joinPath, openRead, writeFileBytes } from "../lib/sys/libc.ts";

const ALGORITHMS: VerityAlgorithm[] = ["sha256", "sha512"];
const MiB = 1 << 20;

/** Sizes around every boundary of the tree: one block, one level-1 block, two levels. */
const SIZES = [
  0,
  1,
  4095,
  4096,
  4097,
  65536 * 4 + 1,
  4096 * 128,
  4096 * 128 + 1,
  4096 * 129,
  8 * MiB + 5,
];

interface Fixture {
  dir: string;
  /** Random-content files, one per entry of SIZES. */
  files: string[];
  /** A 1 GiB sparse file (all zeros), as `truncate -s 1G` makes it. */
  sparse: string;
  /** Expected `fsverity digest` output line (without the path) per algorithm and path. */
  expected: Record<VerityAlgorithm, Map<string, string>>;
}

let fixture: Promise<Fixture> | undefined;

/** Made once for the whole file: the files and the reference tool's digests of them. */
function getFixture(): Promise<Fixture> {
  fixture ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "cfs-fsverity-" });
    // Removed when the module unloads, whichever tests ran (--filter) or failed: not a test.
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const files: string[] = [];
    for (const size of SIZES) {
      const path = join(dir, `random-${size}`);
      await Deno.writeFile(path, randomFillSync(new Uint8Array(size)));
      files.push(path);
    }
    const sparse = join(dir, "sparse-1G");
    await run("truncate", ["-s", "1G", sparse]);
    const expected = { sha256: new Map(), sha512: new Map() } as Fixture["expected"];
    for (const alg of ALGORITHMS) {
      const out = await run("fsverity", ["digest", `--hash-alg=${alg}`, ...files, sparse]);
      for (const line of out.stdout.trimEnd().split("\n")) {
        const space = line.indexOf(" ");
        expected[alg].set(line.slice(space + 1), line.slice(0, space));
      }
    }
    return { dir, files, sparse, expected };
  })();
  return fixture;
}

/** `alg:hex` as the reference printed it for `path`. */
function reference(f: Fixture, alg: VerityAlgorithm, path: string): string {
  const line = f.expected[alg].get(path);
  if (line === undefined) throw new Error(`no reference digest for ${path}`);
  return line;
}

/** Runs a reference tool; throws when it fails. */
async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
    .output();
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (out.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${result.stderr}`);
  }
  return result;
}

/** Runs the real CLI as a user would. */
async function cfs(...args: string[]) {
  const r = await runCfs(args);
  return { code: r.code, stdout: r.text, stderr: r.stderr };
}

Deno.test("cfs digest prints exactly what fsverity digest prints, for both algorithms", async () => {
  const f = await getFixture();
  const paths = [...f.files, f.sparse];
  for (const alg of ALGORITHMS) {
    const want = await run("fsverity", ["digest", `--hash-alg=${alg}`, ...paths]);
    const got = await cfs("digest", "--algorithm", alg, ...paths);
    equal(got.code, 0, got.stderr);
    equal(got.stdout, want.stdout);
  }
});

Deno.test("cfs digest defaults to sha256 like fsverity digest", async () => {
  const f = await getFixture();
  const want = await run("fsverity", ["digest", f.files[4]]);
  const got = await cfs("digest", f.files[4]);
  equal(got.stdout, want.stdout);
  match(got.stdout, /^sha256:[0-9a-f]{64} /);
});

Deno.test("cfs --json digest prints one object per file", async () => {
  const f = await getFixture();
  const got = await cfs("--json", "digest", "--algorithm", "sha512", f.files[0], f.files[2]);
  equal(got.code, 0, got.stderr);
  const lines = got.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  deepEqual(
    lines,
    [f.files[0], f.files[2]].map((path) => ({
      path,
      algorithm: "sha512",
      digest: reference(f, "sha512", path).slice("sha512:".length),
    })),
  );
});

Deno.test("cfs digest of a missing file fails with one line naming it", async () => {
  const f = await getFixture();
  const missing = join(f.dir, "no-such-file");
  const got = await cfs("digest", missing);
  equal(got.code, 1);
  equal(got.stdout, "");
  equal(got.stderr, `cfs: ${missing}: no such file or directory\n`);
});

Deno.test("cfs digest of a directory fails with one line naming it", async () => {
  const f = await getFixture();
  const got = await cfs("digest", f.dir);
  equal(got.code, 1);
  equal(got.stderr, `cfs: ${f.dir}: is a directory\n`);
});

Deno.test("cfs digest rejects an unknown algorithm and a missing FILE as usage errors", async () => {
  const f = await getFixture();
  const bad = await cfs("digest", "--algorithm", "sha1", f.files[1]);
  equal(bad.code, 2);
  match(bad.stderr, /unknown algorithm 'sha1'/);
  const none = await cfs("digest");
  equal(none.code, 2);
  match(none.stderr, /no FILE given/);
  const help = await cfs("digest", "--help");
  equal(help.code, 0);
  match(help.stdout, /^usage: cfs digest/);
});

Deno.test("fsverityDigest of in-memory data matches fsverity digest at every tree boundary", async () => {
  const f = await getFixture();
  for (const path of f.files) {
    const data = await Deno.readFile(path);
    for (const alg of ALGORITHMS) {
      equal(`${alg}:${toHex(fsverityDigest(data, alg))}`, reference(f, alg, path), path);
    }
  }
});

Deno.test("FsVerityHasher gives the same digest whatever the chunk sizes", async () => {
  const f = await getFixture();
  for (const path of f.files) {
    const data = await Deno.readFile(path);
    const chunkSizes = [4095, 4096, 4097, 100_003, MiB, data.length + 1];
    if (data.length <= 300_000) chunkSizes.push(1, 7);
    for (const alg of ALGORITHMS) {
      for (const chunk of chunkSizes) {
        const h = new FsVerityHasher(alg);
        for (let off = 0; off < data.length; off += chunk) {
          h.update(data.subarray(off, off + chunk));
        }
        equal(
          `${alg}:${toHex(h.digest())}`,
          reference(f, alg, path),
          `${path} in chunks of ${chunk}`,
        );
      }
    }
  }
});

Deno.test("FsVerityHasher refuses to be used after digest()", () => {
  const h = new FsVerityHasher("sha256");
  h.digest();
  throws(() => h.update(new Uint8Array(1)), /already/);
});

Deno.test("fsverityDigestFile matches fsverity digest single-threaded and with workers", async () => {
  const f = await getFixture();
  for (const path of f.files) {
    for (const alg of ALGORITHMS) {
      const want = reference(f, alg, path);
      equal(`${alg}:${toHex(await fsverityDigestFile(path, alg, { workers: 0 }))}`, want, path);
      // Workers even for small files: ranges of 1 MiB, a partial last block and range.
      for (const workers of [1, 3]) {
        const got = await fsverityDigestFile(path, alg, { workers, workerThreshold: 0 });
        equal(`${alg}:${toHex(got)}`, want, `${path} with ${workers} workers`);
      }
    }
  }
});

Deno.test("fsverityDigestFile and the sync variant match fsverity digest on a 1 GiB sparse file", async () => {
  const f = await getFixture();
  for (const alg of ALGORITHMS) {
    const want = reference(f, alg, f.sparse);
    equal(`${alg}:${toHex(await fsverityDigestFile(f.sparse, alg))}`, want);
    equal(`${alg}:${toHex(fsverityDigestFileSync(f.sparse, alg))}`, want);
  }
});

Deno.test("FsVerityHasher fed 1 GiB of zeros in odd chunks matches fsverity digest of the sparse file", async () => {
  const f = await getFixture();
  const chunk = new Uint8Array(3 * MiB + 1);
  for (const alg of ALGORITHMS) {
    const h = new FsVerityHasher(alg);
    for (let left = 1 << 30; left > 0; left -= chunk.length) {
      h.update(chunk.subarray(0, Math.min(chunk.length, left)));
    }
    equal(h.size, 1 << 30);
    equal(`${alg}:${toHex(h.digest())}`, reference(f, alg, f.sparse));
  }
});

Deno.test("fsverityDigestFileSync reads string paths and non-UTF-8 byte paths", async () => {
  const f = await getFixture();
  for (const path of f.files) {
    for (const alg of ALGORITHMS) {
      equal(`${alg}:${toHex(fsverityDigestFileSync(path, alg))}`, reference(f, alg, path), path);
    }
  }
  // A file name that is not UTF-8 (0xff), written and read as raw bytes.
  const data = randomFillSync(new Uint8Array(4096 * 3 + 17));
  const bytePath = joinPath(f.dir, new Uint8Array([0x6e, 0xff, 0x6d]));
  writeFileBytes(bytePath, data);
  const copy = join(f.dir, "copy-of-non-utf8");
  await Deno.writeFile(copy, data);
  for (const alg of ALGORITHMS) {
    const want = (await run("fsverity", ["digest", "--compact", `--hash-alg=${alg}`, copy])).stdout
      .trim();
    equal(toHex(fsverityDigestFileSync(bytePath, alg)), want);
  }
  throws(
    () => fsverityDigestFileSync(join(f.dir, "missing"), "sha256"),
    /missing: no such file or directory$/,
  );
  throws(
    () => fsverityDigestFileSync(joinPath(f.dir, new Uint8Array([0xfe])), "sha256"),
    /\/\\xfe: ENOENT/,
  );
});

Deno.test("enableVerity on a file system without fs-verity says to use an insecure repository", async () => {
  const f = await getFixture();
  const path = join(f.dir, "verity-candidate");
  await Deno.writeFile(path, randomFillSync(new Uint8Array(5000)));
  const fd = openRead(path);
  try {
    let enabled = true;
    try {
      enableVerity(fd, "sha512", path);
    } catch (e) {
      enabled = false;
      ok(e instanceof VerityError, String(e));
      equal(e.unsupported, true);
      equal(
        e.message,
        `${path}: the file system does not support fs-verity; use an insecure repository (cfs init --insecure)`,
      );
      throws(
        () => measureVerity(fd, "sha512", path),
        (e) => e instanceof VerityError && e.unsupported,
      );
    }
    if (enabled) {
      // A kernel and file system with fs-verity: then the kernel's digest is the reference.
      const want = (await run("fsverity", ["digest", "--compact", "--hash-alg=sha512", path]))
        .stdout.trim();
      equal(toHex(measureVerity(fd, "sha512", path)!), want);
    }
  } finally {
    close(fd);
  }
});

Deno.test("toHex and fromHex round-trip and reject non-hex", () => {
  const bytes = new Uint8Array([0, 1, 0x7f, 0x80, 0xfe, 0xff]);
  equal(toHex(bytes), "00017f80feff");
  deepEqual(fromHex("00017F80FEFF"), bytes);
  throws(() => fromHex("abc"), /not a hex string/);
  throws(() => fromHex("zz"), /not a hex string/);
});
