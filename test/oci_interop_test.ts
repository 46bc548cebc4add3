/**
 * cfs and cfsctl 0.9.4 (composefs-ctl, the oracle; test/oracles.ts) on the same repositories,
 * both ways, on the host (insecure sha512 repositories, EROFS V1 by default):
 *
 * - cfs pulls, cfsctl reads: `oci images --json`, `oci inspect` (and `--manifest`/`--config`
 *   byte for byte), `oci compute-id` plain and `--bootable` (or both refuse), `cat` of every
 *   layer (its sha256 is the diff_id, from `sha256sum`), `oci fsck`, `fsck` and
 *   `gc --dry-run` agree with cfs's;
 * - cfsctl pulls, cfs reads: the same, and `cfs pull` then reuses cfsctl's layers;
 * - the streams both write for the same image are the same objects (byte-identical
 *   splitstreams: the same `streams/` link targets), and so is the EROFS image;
 * - one repository written alternately by both tools (pulls, tags, untags, gc) stays clean for
 *   both.
 *
 * Images: the 3-layer fixture with whiteouts, an opaque directory, hardlinks within and across
 * layers and xattrs; a bootable image (kernel, initramfs, /sysroot); the Debian rootfs as one
 * layer and split into ten.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { runCfs } from "./cfs.ts";
import { cfsctl09, cfsctl09Ok, runCfsctl09 } from "./oracles.ts";
import { buildOciImage, SAMPLE_LAYERS } from "./fixtures/oci.ts";
import { buildBootableImage } from "./fixtures/bootable.ts";
import { debianRootfs } from "./fixtures/debootstrap.ts";
import { ensureDebianImage } from "./fixtures/debian_image.ts";
import { SplitStreamReader } from "../lib/splitstream/reader.ts";
import { toHex } from "../lib/fsverity/digest.ts";

const decoder = new TextDecoder();

interface TestImage {
  label: string;
  /** `oci:DIR:TAG`. */
  ref: string;
  /** Whether `--bootable` must succeed (else both tools must refuse). */
  bootable: boolean;
}

async function cfs(repo: string, ...args: string[]): Promise<string> {
  const r = await runCfs(["--repo", repo, ...args]);
  if (r.code !== 0) throw new Error(`cfs ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.text;
}

async function cfsctl(repo: string, ...args: string[]): Promise<string> {
  return await cfsctl09Ok(["--repo", repo, ...args]);
}

/** `sha256sum` of a command's stdout (the independent hash of `cat`). */
async function sha256sumOf(argv: string[]): Promise<string> {
  const p = new Deno.Command(argv[0], { args: argv.slice(1), stdout: "piped", stderr: "piped" })
    .spawn();
  const sum = new Deno.Command("sha256sum", { stdin: "piped", stdout: "piped" }).spawn();
  await p.stdout.pipeTo(sum.stdin);
  const [st, out] = await Promise.all([p.status, sum.output()]);
  if (!st.success) throw new Error(`${argv.join(" ")} failed`);
  return `sha256:${decoder.decode(out.stdout).split(" ")[0]}`;
}

const CLI = new URL("../cli.ts", import.meta.url).pathname;

function cfsArgv(repo: string, ...args: string[]): string[] {
  return [Deno.execPath(), "run", "--allow-all", "--quiet", CLI, "--repo", repo, ...args];
}

/** The `streams/` entries of a repository and their link targets. */
async function streamLinks(repo: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of Deno.readDir(join(repo, "streams"))) {
    if (e.isSymlink) out.set(e.name, await Deno.readLink(join(repo, "streams", e.name)));
  }
  return out;
}

/** A stream's named refs and object refs (as hex), read with cfs's splitstream reader. */
async function streamContent(path: string) {
  const r = SplitStreamReader.open(await Deno.readFile(path));
  return {
    named: Object.fromEntries([...r.namedRefs].map(([k, v]) => [k, toHex(v)])),
    objects: r.objectRefs.map(toHex),
  };
}

/**
 * Both tools read `repo` (holding `image` tagged `tag`) and must agree; `writer` names who
 * pulled it (for messages).
 */
async function agreeOn(repo: string, tag: string, image: TestImage, writer: string) {
  const what = `${image.label}, pulled by ${writer}`;
  // oci images --json
  deepEqual(
    JSON.parse(await cfs(repo, "oci", "images", "--json")),
    JSON.parse(await cfsctl(repo, "oci", "images", "--json")),
    `${what}: oci images --json`,
  );
  // oci inspect
  deepEqual(
    JSON.parse(await cfs(repo, "oci", "inspect", tag)),
    JSON.parse(await cfsctl(repo, "oci", "inspect", tag)),
    `${what}: oci inspect`,
  );
  for (const doc of ["--manifest", "--config"]) {
    equal(
      await cfs(repo, "oci", "inspect", tag, doc),
      await cfsctl(repo, "oci", "inspect", tag, doc),
      `${what}: oci inspect ${doc}`,
    );
  }
  // oci compute-id, plain and bootable
  equal(
    (await cfs(repo, "oci", "compute-id", tag)).trim(),
    (await cfsctl(repo, "oci", "compute-id", tag)).trim(),
    `${what}: oci compute-id`,
  );
  const ours = await runCfs(["--repo", repo, "oci", "compute-id", "--bootable", tag]);
  const theirs = await runCfsctl09(["--repo", repo, "oci", "compute-id", "--bootable", tag]);
  if (image.bootable) {
    equal(ours.code, 0, `${what}: cfs oci compute-id --bootable: ${ours.stderr}`);
    equal(ours.text.trim(), theirs.text.trim(), `${what}: oci compute-id --bootable`);
  } else {
    ok(theirs.code !== 0, `${what}: cfsctl made a bootable image of a non-bootable tree`);
    ok(ours.code !== 0, `${what}: cfs made a bootable image cfsctl refuses (${theirs.stderr})`);
  }
  // cat of every layer: its sha256 is the diff_id, through both tools
  const config = JSON.parse(await cfs(repo, "oci", "inspect", tag, "--config"));
  for (const diffId of config.rootfs.diff_ids as string[]) {
    const stream = `oci-layer-${diffId}`;
    equal(await sha256sumOf(cfsArgv(repo, "cat", stream)), diffId, `${what}: cfs cat ${stream}`);
    equal(
      await sha256sumOf([cfsctl09(), "--repo", repo, "cat", stream]),
      diffId,
      `${what}: cfsctl cat ${stream}`,
    );
  }
  // fsck, oci fsck, gc --dry-run
  const fsckOurs = await runCfs(["--repo", repo, "fsck"]);
  equal(fsckOurs.code, 0, `${what}: cfs fsck: ${fsckOurs.text}`);
  const fsckTheirs = await runCfsctl09(["--repo", repo, "fsck"]);
  equal(fsckTheirs.code, 0, `${what}: cfsctl fsck: ${fsckTheirs.text}${fsckTheirs.stderr}`);
  equal(firstLines(fsckOurs.text), firstLines(fsckTheirs.text), `${what}: fsck counts`);
  const ociOurs = await runCfs(["--repo", repo, "oci", "fsck"]);
  const ociTheirs = await runCfsctl09(["--repo", repo, "oci", "fsck"]);
  equal(ociOurs.code, 0, `${what}: cfs oci fsck: ${ociOurs.text}`);
  equal(ociTheirs.code, 0, `${what}: cfsctl oci fsck: ${ociTheirs.text}`);
  equal(ociOurs.text, ociTheirs.text, `${what}: oci fsck report`);
  equal(
    await cfs(repo, "gc", "--dry-run"),
    await cfsctl(repo, "gc", "--dry-run"),
    `${what}: gc --dry-run`,
  );
}

/** The counter lines of an fsck report (meta.json, objects, streams, images, status). */
function firstLines(text: string): string {
  return text.split("\n").filter((l) => !l.startsWith("warning:")).join("\n");
}

async function buildImages(work: string): Promise<TestImage[]> {
  const sample = join(work, "sample");
  await buildOciImage(sample, { tag: "v1", layers: SAMPLE_LAYERS, compression: "gzip" });
  const boot = join(work, "bootable");
  await buildBootableImage(boot, "v1");
  const rootfs = await debianRootfs();
  const deb1 = await ensureDebianImage(rootfs, 1);
  const deb10 = await ensureDebianImage(rootfs, 10);
  return [
    { label: "3-layer fixture", ref: `oci:${sample}:v1`, bootable: false },
    { label: "bootable image", ref: `oci:${boot}:v1`, bootable: true },
    { label: "Debian rootfs, 1 layer", ref: `oci:${deb1.dir}:${deb1.tag}`, bootable: false },
    { label: "Debian rootfs, 10 layers", ref: `oci:${deb10.dir}:${deb10.tag}`, bootable: false },
  ];
}

Deno.test({
  name: "oci interop with cfsctl 0.9.4: each pulls, the other reads; same streams and images",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await Deno.makeTempDir({ prefix: "cfs-interop-" });
    try {
      const images = await buildImages(work);
      for (const [i, image] of images.entries()) {
        await t.step(image.label, async () => {
          const byCfs = join(work, `cfs-${i}`);
          const byCfsctl = join(work, `cfsctl-${i}`);
          await cfs(byCfs, "init", "--insecure");
          await cfsctl(byCfsctl, "init", "--insecure");
          await cfs(byCfs, "oci", "pull", image.ref, "img");
          await cfsctl(byCfsctl, "oci", "pull", image.ref, "img");
          // The same bytes: every layer and config stream and every image of one repository
          // is the other's (byte-identical splitstreams and EROFS images). Manifest streams
          // are compared by content: cfsctl 0.9.4 rewrites them with the layer refs in hash
          // map order, so its own stream-refs array (and the stream's bytes) varies from run
          // to run; the named refs and the object must be the same.
          const ours = await streamLinks(byCfs);
          const theirs = await streamLinks(byCfsctl);
          deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort(), "streams/ names");
          for (const [name, target] of ours) {
            if (name.startsWith("oci-manifest-")) {
              deepEqual(
                await streamContent(join(byCfs, "streams", name)),
                await streamContent(join(byCfsctl, "streams", name)),
                `${name}: named refs and object`,
              );
            } else {
              equal(target, theirs.get(name), `${name}: same stream object`);
            }
          }
          deepEqual(
            (await Array.fromAsync(Deno.readDir(join(byCfs, "images")))).map((e) => e.name).sort(),
            (await Array.fromAsync(Deno.readDir(join(byCfsctl, "images")))).map((e) => e.name)
              .sort(),
            "images/",
          );
          await agreeOn(byCfs, "img", image, "cfs");
          await agreeOn(byCfsctl, "img", image, "cfsctl");
          // cfs pull (bootc's pipeline) into cfsctl's repository reuses its layers.
          const r = await runCfs(["--repo", byCfsctl, "--json", "pull", image.ref]);
          if (image.bootable) {
            equal(r.code, 0, `cfs pull into cfsctl's repository: ${r.stderr}`);
            const result = JSON.parse(r.text.trim().split("\n").pop()!).result;
            equal(result.layersImported, 0, "cfs pull re-imported layers cfsctl had");
            const fsck = await runCfsctl09(["--repo", byCfsctl, "oci", "fsck"]);
            equal(fsck.code, 0, `cfsctl oci fsck after cfs pull: ${fsck.text}`);
          }
        });
      }
      await t.step("one repository written alternately by both tools", async () => {
        const repo = join(work, "mixed");
        await cfsctl(repo, "init", "--insecure");
        await cfsctl(repo, "oci", "pull", images[0].ref, "a");
        await cfs(repo, "oci", "pull", images[2].ref, "b");
        await cfsctl(repo, "oci", "pull", images[3].ref, "c");
        await cfs(repo, "oci", "pull", images[0].ref, "a2");
        const digest = JSON.parse(await cfsctl(repo, "oci", "images", "--json"))
          .images.find((i: { name: string }) => i.name === "b").manifest_digest;
        await cfs(repo, "oci", "tag", digest, "b-again");
        await cfsctl(repo, "oci", "untag", "b");
        await cfs(repo, "oci", "untag", "c");
        await cfsctl(repo, "gc");
        await cfs(repo, "gc");
        for (const tag of ["a", "a2", "b-again"]) {
          equal(
            (await cfs(repo, "oci", "compute-id", tag)).trim(),
            (await cfsctl(repo, "oci", "compute-id", tag)).trim(),
            `compute-id of ${tag}`,
          );
        }
        const names = JSON.parse(await cfs(repo, "oci", "images", "--json")).images
          .map((i: { name: string }) => i.name).sort();
        deepEqual(names, ["a", "a2", "b-again"]);
        equal((await runCfsctl09(["--repo", repo, "oci", "fsck"])).code, 0, "cfsctl oci fsck");
        equal((await runCfs(["--repo", repo, "oci", "fsck"])).code, 0, "cfs oci fsck");
        equal(
          await cfs(repo, "gc", "--dry-run"),
          "Dry run (no files deleted):\nObjects: 0 removed (0 bytes)\n",
          "after both gcs nothing is left to collect",
        );
      });
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});
