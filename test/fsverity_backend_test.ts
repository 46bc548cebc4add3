/**
 * The block hashing backends (lib/fsverity/block_hash.ts) each against `fsverity digest`: the
 * native one (libcrypto through FFI) and the portable one (node:crypto), at every block and
 * tree-level boundary, from arrays that start anywhere in their buffer, into outputs small
 * enough to live in V8's heap; and the fallback when FFI is not allowed. Every expected
 * digest comes from `fsverity digest`, never from cfs's code.
 */
import { equal, ok } from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { join } from "node:path";
import { blockHasher, type HashBackendName, useHashBackend } from "../lib/fsverity/block_hash.ts";
import {
  fsverityDigest,
  FsVerityHasher,
  toHex,
  type VerityAlgorithm,
} from "../lib/fsverity/digest.ts";
import { ROOT, runCfs } from "./cfs.ts";

const BACKENDS: HashBackendName[] = ["libcrypto", "node"];
const ALGORITHMS: VerityAlgorithm[] = ["sha256", "sha512"];
const B = 4096;
/**
 * Around one block, one level-1 block of SHA-512 (64 hashes) and of SHA-256 (128 hashes), and
 * two levels of SHA-512 (64 * 64 blocks).
 */
const SIZES = [
  0,
  1,
  63,
  64,
  65,
  B - 1,
  B,
  B + 1,
  2 * B,
  64 * B - 1,
  64 * B,
  64 * B + 1,
  65 * B,
  128 * B,
  128 * B + 1,
  64 * 64 * B,
  64 * 64 * B + 7,
];

/** One buffer, `fsverity digest`'s answer for each prefix of it listed in SIZES. */
async function reference(): Promise<{ data: Uint8Array; expected: Map<string, string> }> {
  const data = randomFillSync(new Uint8Array(SIZES[SIZES.length - 1]));
  const dir = await Deno.makeTempDir({ prefix: "cfs-backend-" });
  try {
    const files = [];
    for (const size of SIZES) {
      const path = join(dir, String(size));
      await Deno.writeFile(path, data.subarray(0, size));
      files.push(path);
    }
    const expected = new Map<string, string>();
    for (const alg of ALGORITHMS) {
      const out = await new Deno.Command("fsverity", {
        args: ["digest", `--hash-alg=${alg}`, ...files],
        stdout: "piped",
      }).output();
      ok(out.success, "fsverity digest failed (apt-get install fsverity)");
      const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
      lines.forEach((line, i) => expected.set(`${alg}:${SIZES[i]}`, line.split(" ")[0]));
    }
    return { data, expected };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ref = reference();

for (const backend of BACKENDS) {
  Deno.test(`${backend}: fsverityDigest matches fsverity digest at every boundary`, async () => {
    const { data, expected } = await ref;
    useHashBackend(backend);
    try {
      for (const alg of ALGORITHMS) {
        equal(blockHasher(alg).backend, backend);
        for (const size of SIZES) {
          // A copy at an odd offset of a larger buffer: views need not start at a block.
          const buf = new Uint8Array(size + 13);
          buf.set(data.subarray(0, size), 13);
          const got = `${alg}:${toHex(fsverityDigest(buf.subarray(13), alg))}`;
          equal(got, expected.get(`${alg}:${size}`), `${backend} ${alg} ${size} bytes`);
        }
      }
    } finally {
      useHashBackend("auto");
    }
  });

  Deno.test(`${backend}: FsVerityHasher in uneven chunks matches fsverity digest`, async () => {
    const { data, expected } = await ref;
    useHashBackend(backend);
    try {
      for (const alg of ALGORITHMS) {
        for (const size of [B + 1, 64 * B + 1, 128 * B + 1, 64 * 64 * B + 7]) {
          const h = new FsVerityHasher(alg);
          // Chunks of 1, 63, 4097, 12288, ... bytes: partial blocks, runs of whole blocks.
          const steps = [1, 63, B + 1, 3 * B, 70 * B + 5, 5];
          for (let off = 0, i = 0; off < size; i++) {
            const n = Math.min(steps[i % steps.length], size - off);
            h.update(data.subarray(off, off + n));
            off += n;
          }
          equal(`${alg}:${toHex(h.digest())}`, expected.get(`${alg}:${size}`));
        }
      }
    } finally {
      useHashBackend("auto");
    }
  });

  Deno.test(`${backend}: hashBlocks writes into small and large outputs alike`, () => {
    useHashBackend(backend);
    try {
      const data = randomFillSync(new Uint8Array(3 * B + 100));
      for (const alg of ALGORITHMS) {
        const ds = alg === "sha512" ? 64 : 32;
        // 1 block into a 32- or 64-byte array (inside V8's heap), 4 blocks into a larger one.
        const small = new Uint8Array(ds);
        equal(blockHasher(alg).hashBlocks(data.subarray(0, B), small, 0), 1);
        const large = new Uint8Array(4 * ds + 10);
        equal(blockHasher(alg).hashBlocks(data, large, 10), 4);
        equal(toHex(small), toHex(large.subarray(10, 10 + ds)));
        const other = new Uint8Array(ds);
        useHashBackend(backend === "node" ? "libcrypto" : "node");
        blockHasher(alg).hashBlocks(data.subarray(3 * B), other, 0);
        equal(toHex(other), toHex(large.subarray(10 + 3 * ds)), "the other backend agrees");
        useHashBackend(backend);
      }
    } finally {
      useHashBackend("auto");
    }
  });
}

Deno.test("without FFI permission the node:crypto backend is used, with the same digests", async () => {
  const { data, expected } = await ref;
  const dir = await Deno.makeTempDir({ prefix: "cfs-backend-noffi-" });
  try {
    const input = join(dir, "input");
    await Deno.writeFile(input, data.subarray(0, 65 * B));
    const script = join(dir, "digest.ts");
    await Deno.writeTextFile(
      script,
      `import { blockHasher } from "${ROOT}lib/fsverity/block_hash.ts";
import { fsverityDigest, toHex } from "${ROOT}lib/fsverity/digest.ts";
const digest = fsverityDigest(Deno.readFileSync(${JSON.stringify(input)}), "sha512");
console.log(blockHasher("sha512").backend, "sha512:" + toHex(digest));
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--allow-read", script],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    equal(new TextDecoder().decode(out.stderr), "");
    equal(new TextDecoder().decode(out.stdout).trim(), `node ${expected.get(`sha512:${65 * B}`)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cfs digest gives fsverity digest's answer with either backend, workers included", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cfs-backend-cli-" });
  try {
    const small = join(dir, "small");
    const large = join(dir, "large"); // 33 MiB: over the worker threshold
    await Deno.writeFile(small, randomFillSync(new Uint8Array(65 * B + 3)));
    await Deno.writeFile(large, randomFillSync(new Uint8Array((33 << 20) + 5)));
    for (const alg of ALGORITHMS) {
      const want = await new Deno.Command("fsverity", {
        args: ["digest", `--hash-alg=${alg}`, small, large],
        stdout: "piped",
      }).output();
      for (const backend of BACKENDS) {
        const got = await runCfs(["digest", "--algorithm", alg, small, large], {
          env: { CFS_HASH_BACKEND: backend },
        });
        equal(got.text, new TextDecoder().decode(want.stdout), `${backend} ${alg}: ${got.stderr}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
