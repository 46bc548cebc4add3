/**
 * A damaged repository is repaired (issue 11, point 8): `cfs fsck --repair` removes damaged
 * objects and what would then name something incomplete, leaving a repository fsck finds
 * clean, and the next pull fetches exactly what was lost (the layer whose object went, not the
 * others) and restores the same image. A pull also re-fetches a stored layer one of whose
 * objects is missing, or (with `verify: "hash"`) damaged, instead of trusting it.
 *
 * Damage is real: bytes flipped in object files, objects removed. Which object holds which
 * file is found with `fsverity digest` of the file's content (not cfs's own code). This host
 * has no fs-verity, so the repositories are insecure; a secure repository's kernel refuses
 * damaged bytes on read, which the VM tier tests.
 *
 * @module
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { requireTool, run, runCfs } from "./cfs.ts";
import { buildOciImage } from "./fixtures/oci.ts";
import { Repository } from "../lib/repository/mod.ts";
import { pullImage, type PullResult } from "../lib/oci/pull.ts";

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

/** `fsverity digest --hash-alg=sha512` of `data`: the object id of that content (hex). */
async function verityDigest(dir: string, data: Uint8Array): Promise<string> {
  requireTool("fsverity", "apt-get install fsverity");
  const p = join(dir, "digest-input");
  await Deno.writeFile(p, data);
  const out = await run("fsverity", ["digest", "--hash-alg=sha512", p]);
  return /^sha512:([0-9a-f]{128}) /.exec(out)![1];
}

const objectRel = (hex: string) => `objects/${hex.slice(0, 2)}/${hex.slice(2)}`;

/** Flips one byte of a file in place. */
async function flipByte(path: string, at = 100): Promise<void> {
  const data = await Deno.readFile(path);
  data[at] ^= 0x40;
  await Deno.writeFile(path, data);
}

interface Fixture {
  dir: string;
  repo: string;
  ref: string;
  /** The object ids (hex) of usr/a (layer 0) and usr/b (layer 1). */
  a: string;
  b: string;
  first: PullResult;
}

/** An insecure repository with a two-layer image pulled and tagged `img`. */
async function fixture(dir: string): Promise<Fixture> {
  const repo = join(dir, "repo");
  const contentA = bytes(1, 30_000), contentB = bytes(2, 40_000);
  await buildOciImage(join(dir, "oci"), {
    tag: "v1",
    layers: [
      [{ type: "dir", path: "usr" }, { type: "file", path: "usr/a", content: contentA }],
      [{ type: "file", path: "usr/b", content: contentB }],
    ],
  });
  strictEqual((await runCfs(["init", "--insecure", repo])).code, 0);
  const ref = `oci:${join(dir, "oci")}:v1`;
  const first = await pull(repo, ref);
  return {
    dir,
    repo,
    ref,
    a: await verityDigest(dir, contentA),
    b: await verityDigest(dir, contentB),
    first,
  };
}

async function pull(repo: string, ref: string, verify?: "exists" | "hash"): Promise<PullResult> {
  const r = Repository.open(repo);
  try {
    return await pullImage(r, ref, { tag: "img", verify });
  } finally {
    r.close();
  }
}

// deno-lint-ignore no-explicit-any
async function fsckJson(repo: string): Promise<any> {
  const r = await runCfs(["--repo", repo, "fsck", "--json"]);
  strictEqual(r.code, 0, r.stderr);
  return JSON.parse(r.text);
}

/** The object file's content hashes to its name (`fsverity digest`, not cfs). */
async function assertObjectSound(f: Fixture, hex: string): Promise<void> {
  const out = await run("fsverity", ["digest", "--hash-alg=sha512", join(f.repo, objectRel(hex))]);
  ok(out.startsWith(`sha512:${hex} `), `object ${hex.slice(0, 12)}: ${out}`);
}

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cfs-repair-test-" });
  try {
    await fn(await fixture(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("fsck --repair removes a damaged layer object and the links naming it; the next pull fetches that layer only and restores the same image", async () => {
  await withFixture(async (f) => {
    await flipByte(join(f.repo, objectRel(f.b)));
    const damaged = await fsckJson(f.repo);
    deepStrictEqual(
      damaged.problems.map((p: { kind: string; path: string }) => `${p.kind} ${p.path}`),
      [`object-digest-mismatch ${objectRel(f.b)}`],
    );

    const repair = await runCfs(["--repo", f.repo, "--json", "fsck", "--repair"]);
    strictEqual(repair.code, 0, repair.text + repair.stderr);
    const r = JSON.parse(repair.text);
    deepStrictEqual(r.repaired.objects, [objectRel(f.b)]);
    // The layer stream and the image both name the lost object: both links go (the image's
    // object stays, named by the config, and is linked again when the pull makes it).
    deepStrictEqual(
      r.repaired.links.sort(),
      [
        `images/${f.first.image!.hex}`,
        `streams/oci-layer-${f.first.layers[1].diffId}`,
      ].sort(),
    );
    deepStrictEqual(r.repaired.refs, [], "the tag stays");
    strictEqual(r.ok, true, JSON.stringify(r.problems));
    const text = await runCfs(["--repo", f.repo, "fsck"]);
    strictEqual(text.code, 0, text.text);

    const again = await pull(f.repo, f.ref);
    deepStrictEqual(again.layers.map((l) => l.imported), [false, true], "only layer 1 fetched");
    strictEqual(again.image?.hex, f.first.image?.hex, "the same image");
    await assertObjectSound(f, f.b);
    const after = await fsckJson(f.repo);
    strictEqual(after.ok, true, JSON.stringify(after.problems));
  });
});

Deno.test("fsck --repair of a damaged image object removes it and the config stream naming it; the tag stays and the next pull makes the same image", async () => {
  await withFixture(async (f) => {
    const image = f.first.image!.hex;
    await flipByte(join(f.repo, objectRel(image)), 2000);
    const r = JSON.parse((await runCfs(["--repo", f.repo, "--json", "fsck", "--repair"])).text);
    deepStrictEqual(r.repaired.objects, [objectRel(image)]);
    deepStrictEqual(
      r.repaired.links.sort(),
      [`images/${image}`, `streams/oci-config-${f.first.configDigest}`].sort(),
    );
    deepStrictEqual(r.repaired.refs, []);
    strictEqual(r.ok, true, JSON.stringify(r.problems));

    const again = await pull(f.repo, f.ref);
    deepStrictEqual(again.layers.map((l) => l.imported), [false, false], "no layer fetched");
    strictEqual(again.image?.hex, image, "the same image");
    await assertObjectSound(f, image);
    strictEqual((await fsckJson(f.repo)).ok, true);
  });
});

Deno.test("fsck --repair of an image made by create-image whose file object is damaged removes the image and its now dangling ref, and lists the ref", async () => {
  await withFixture(async (f) => {
    const tree = join(f.dir, "tree");
    await Deno.mkdir(join(tree, "usr"), { recursive: true });
    const content = bytes(7, 20_000);
    await Deno.writeFile(join(tree, "big"), content);
    const made = await runCfs(["--repo", f.repo, "create-image", tree, "keep"]);
    strictEqual(made.code, 0, made.stderr);
    const imageId = made.text.trim().split(":")[1];
    const obj = await verityDigest(f.dir, content);
    await flipByte(join(f.repo, objectRel(obj)));

    const repair = await runCfs(["--repo", f.repo, "fsck", "--repair"]);
    strictEqual(repair.code, 0, repair.text + repair.stderr);
    ok(repair.text.includes(`removed ${objectRel(obj)}`), repair.text);
    ok(repair.text.includes(`removed images/${imageId}`), repair.text);
    ok(repair.text.includes("removed images/refs/keep (pull or create it again)"), repair.text);
    ok(repair.text.includes("status: ok"), repair.text);
    // The OCI image is untouched.
    strictEqual((await pull(f.repo, f.ref)).layers.some((l) => l.imported), false);
    strictEqual((await fsckJson(f.repo)).ok, true);
    // Made again, it is the same image.
    const again = await runCfs(["--repo", f.repo, "create-image", tree, "keep"]);
    strictEqual(again.text.trim().split(":")[1], imageId);
    await assertObjectSound(f, obj);
  });
});

Deno.test("a pull re-fetches a stored layer whose object is missing (no repair needed) and, with verify: hash, one whose object is damaged", async () => {
  await withFixture(async (f) => {
    await Deno.remove(join(f.repo, objectRel(f.a)));
    const again = await pull(f.repo, f.ref);
    deepStrictEqual(again.layers.map((l) => l.refetched), [{ missing: 1, damaged: 0 }, undefined]);
    deepStrictEqual(again.layers.map((l) => l.imported), [true, false]);
    await assertObjectSound(f, f.a);
    strictEqual((await fsckJson(f.repo)).ok, true);

    await flipByte(join(f.repo, objectRel(f.b)));
    // The default check (existence) trusts a stored object; hashing finds it.
    const trusting = await pull(f.repo, f.ref);
    deepStrictEqual(trusting.layers.map((l) => l.imported), [false, false]);
    const hashed = await pull(f.repo, f.ref, "hash");
    deepStrictEqual(hashed.layers.map((l) => l.refetched), [undefined, {
      missing: 0,
      damaged: 1,
    }]);
    await assertObjectSound(f, f.b);
    const after = await fsckJson(f.repo);
    strictEqual(after.ok, true, JSON.stringify(after.problems));
  });
});

Deno.test("fsck --repair leaves names cfs could not have written, and says so (exit 1)", async () => {
  await withFixture(async (f) => {
    const stray = join(f.repo, "objects", f.a.slice(0, 2), "README");
    await Deno.writeTextFile(stray, "not an object");
    const r = await runCfs(["--repo", f.repo, "--json", "fsck", "--repair"]);
    strictEqual(r.code, 1, r.text + r.stderr);
    const report = JSON.parse(r.text);
    deepStrictEqual(report.repaired.objects, []);
    deepStrictEqual(
      report.problems.map((p: { kind: string; path: string }) => `${p.kind} ${p.path}`),
      [`object-invalid-name objects/${f.a.slice(0, 2)}/README`],
    );
    strictEqual(await Deno.readTextFile(stray), "not an object");
  });
});
