/**
 * Naming and listing pulled images from the CLI: `oci images` as an aligned table (an 87-character
 * bootc tag shortened, whole with --no-trunc), `-q` and `--format json`; a short digest prefix
 * taken wherever an IMAGE is, "no image with digest" for one that matches nothing; `mount` and
 * `oci mount` pointing to each other; `cfs pull`'s short summary, whole values with -v, the image
 * id alone with -q. Digests come from skopeo and sha256sum.
 *
 * @module
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { requireTool, run, runCfs } from "./cfs.ts";
import { buildOciImage, type LayerSpec, SAMPLE_LAYERS } from "./fixtures/oci.ts";
import { startRegistry } from "./fixtures/registry.ts";

async function digestOf(ref: string, config = false): Promise<string> {
  const r = await run("sh", [
    "-c",
    `skopeo inspect --raw ${config ? "--config " : ""}'${ref}' | sha256sum`,
  ]);
  return r.slice(0, 64);
}

/** Sample layers plus /boot and /sysroot, which `cfs pull`'s boot transform needs. */
const LAYERS: LayerSpec[] = [
  ...SAMPLE_LAYERS,
  [{ type: "dir", path: "boot" }, { type: "dir", path: "sysroot" }],
];

/** The column where `word` starts in `line` (its last occurrence: a bootc tag holds the digest). */
const col = (line: string, word: string) => line.lastIndexOf(word);

Deno.test("oci images table, -q, --format json; digest prefixes; mount hints; pull summary", async () => {
  requireTool("skopeo", "apt-get install skopeo");
  const tmp = await Deno.makeTempDir({ prefix: "cfs-images-cli-" });
  try {
    const repo = join(tmp, "repo");
    const cfs = (...args: string[]) => runCfs(["--repo", repo, ...args]);
    equal((await cfs("init", "--insecure")).code, 0);
    const a = join(tmp, "a");
    const b = join(tmp, "b");
    await buildOciImage(a, { layers: LAYERS, tag: "v1" });
    await buildOciImage(b, { layers: LAYERS, tag: "v1", config: { Labels: { b: "1" } } });
    const hexA = await digestOf(`oci:${a}:v1`);
    const hexB = await digestOf(`oci:${b}:v1`);
    const others = [hexB, await digestOf(`oci:${a}:v1`, true), await digestOf(`oci:${b}:v1`, true)];
    const bootcTag = `localhost/bootc-sha256:${hexA}`;
    equal(bootcTag.length, 87);
    for (const [ref, tag] of [[`oci:${a}:v1`, bootcTag], [`oci:${b}:v1`, "b"]]) {
      const r = await cfs("oci", "pull", ref, tag);
      equal(r.code, 0, r.stderr);
    }
    equal((await cfs("oci", "tag", `sha256:${hexB}`, "b2")).code, 0);

    // The table: columns aligned under the header, the bootc tag cut to 40 columns with '…'.
    const table = (await cfs("oci", "images")).text.trimEnd().split("\n");
    equal(table.length, 4);
    match(table[0], /^NAME +IMAGE ID +CREATED +ARCH +LAYERS$/);
    const bootcRow = table.find((l) => l.startsWith("localhost/bootc-sha256:"))!;
    equal(bootcRow.split("  ")[0], `${bootcTag.slice(0, 39)}…`);
    for (const line of table.slice(1)) {
      const id = line.includes(hexA.slice(0, 12)) ? hexA.slice(0, 12) : hexB.slice(0, 12);
      equal(col(line, id), col(table[0], "IMAGE ID"), line);
      match(line.slice(col(table[0], "CREATED")), /^\d+ \w+ ago +amd64 +4$/);
      ok(line.length < 100, line);
    }
    const whole = (await cfs("oci", "images", "--no-trunc")).text.trimEnd().split("\n");
    const wholeRow = whole.find((l) => l.startsWith(bootcTag))!;
    equal(col(wholeRow, `sha256:${hexA}`), col(whole[0], "IMAGE ID"));
    equal(col(whole[2], `sha256:${hexB}`), col(whole[0], "IMAGE ID"));
    // -q: each image once (b and b2 are one image), in table order.
    deepEqual(
      (await cfs("oci", "images", "-q")).text.trimEnd().split("\n").sort(),
      [
        hexA.slice(0, 12),
        hexB.slice(0, 12),
      ].sort(),
    );
    equal(
      (await cfs("oci", "images", "--format", "json")).text,
      (await cfs("--json", "oci", "images")).text,
    );

    // The shortest prefix (at least 3) that no other digest starts with, in each form.
    let n = 3;
    while (others.some((d) => d.startsWith(hexA.slice(0, n)))) n++;
    for (
      const name of [
        hexA.slice(0, n),
        `sha256:${hexA.slice(0, n)}`,
        `@${hexA.slice(0, n)}`,
        hexA.slice(0, 12),
      ]
    ) {
      const r = await cfs("--json", "oci", "inspect", name);
      equal(r.code, 0, `${name}: ${r.text}`);
      equal(JSON.parse(r.text).manifest_digest, `sha256:${hexA}`);
    }
    // --json on a listing: ls-layer gives one object per entry, the same entries as its text.
    const diffId = JSON.parse((await cfs("--json", "oci", "inspect", hexA.slice(0, 12))).text)
      .layers[0].diff_id;
    const text = (await cfs("oci", "ls-layer", diffId)).text.trimEnd().split("\n");
    const objects = (await cfs("oci", "ls-layer", diffId, "--json")).text.trimEnd().split("\n")
      .map((l) => JSON.parse(l));
    equal(objects.length, text.length);
    ok(objects.length > 0);
    for (const [i, o] of objects.entries()) {
      ok(text[i].endsWith(` ${o.size} ${o.path}`) || o.linkTarget);
    }
    const boot = await cfs("boot-entries", hexB.slice(0, 12));
    equal(boot.code, 0, boot.stderr);
    let none = "fff";
    while ([hexA, ...others].some((d) => d.startsWith(none))) none += "f";
    const miss = await cfs("--json", "oci", "inspect", `sha256:${none}`);
    equal(miss.code, 1);
    const err = JSON.parse(miss.text).error;
    equal(err.code, "image-not-found");
    equal(err.message, `no image with digest sha256:${none}… in ${repo}`);
    // Two digits are a tag's name, not a prefix.
    match(
      JSON.parse((await cfs("--json", "oci", "inspect", "ab")).text).error.message,
      /no image tagged 'ab'/,
    );

    // mount and oci mount point to each other (both fail before mounting anything).
    const mnt = join(tmp, "mnt");
    await Deno.mkdir(mnt);
    const m1 = await cfs("mount", "b", mnt);
    equal(m1.code, 1);
    match(m1.stderr, new RegExp(`use 'cfs oci mount b ${mnt}'`));
    const tree = join(tmp, "tree");
    await Deno.mkdir(tree);
    await Deno.writeTextFile(join(tree, "f"), "x");
    equal((await cfs("create-image", "--no-propagate-usr-to-root", tree, "myref")).code, 0);
    const m2 = await cfs("oci", "mount", "myref", mnt);
    equal(m2.code, 1);
    match(
      m2.stderr,
      new RegExp(`no image tagged 'myref'.*; it is an image ref: use 'cfs mount myref ${mnt}'`),
    );

    // A registry name without its transport, and TLS spoken to a plain-HTTP registry (the real
    // docker-registry), say what to write instead.
    const bare = await cfs("--json", "oci", "pull", "quay.io/fedora/fedora-bootc:41");
    match(
      JSON.parse(bare.text).error.message,
      /no transport; for a registry image write docker:\/\/quay\.io\/fedora\/fedora-bootc:41$/,
    );
    {
      await using registry = await startRegistry();
      const tls = await cfs("--json", "oci", "pull", `docker://${registry.host}/x:y`);
      equal(tls.code, 1);
      match(
        JSON.parse(tls.text).error.message,
        /TLS failure: it answers in plain HTTP, not TLS .*; for a registry without TLS use --tls-verify=false$/,
      );
    }

    // cfs pull: a short summary (no line a 120-column terminal wraps), -v whole, -q the id.
    const pullRepo = join(tmp, "pull");
    const pull = (...args: string[]) =>
      runCfs([
        "--repo",
        pullRepo,
        "pull",
        "--allow-missing-fsverity",
        "--no-default-hooks",
        ...args,
      ]);
    const json = await pull("--json", `oci:${a}:v1`);
    equal(json.code, 0, json.stderr);
    const result = JSON.parse(json.text.trimEnd().split("\n").at(-1)!).result;
    const short = await pull(`oci:${a}:v1`);
    equal(short.code, 0, short.stderr);
    const lines = short.text.trimEnd().split("\n");
    equal(
      lines[0],
      `image     ${hexA.slice(0, 12)} (manifest sha256:${hexA.slice(0, 12)}…; 4 layers, 0 new)`,
    );
    ok(lines.includes(`tag       ${bootcTag}`), short.text);
    ok(
      lines.includes(
        `composefs ${result.imageId.slice(0, 12)} (bootable EROFS V1; -v or --json: whole ids)`,
      ),
    );
    for (const l of lines) ok(l.length <= 120 && !/[0-9a-f]{40}/.test(l.replace(bootcTag, "")), l);
    const verbose = await pull("-v", `oci:${a}:v1`);
    ok(verbose.text.includes(`image ${result.imageId}\n`), verbose.text);
    equal((await pull("-q", `oci:${a}:v1`)).text, `${result.imageId}\n`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
