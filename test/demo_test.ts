/**
 * `make demo` shows the main job (issue 14, item 2): it builds a small bootable OCI image with
 * no network, pulls it through a shipped hook under the demo's signature policy, and prints
 * the image ID, the tags and the boot entries, in under a minute. What it printed is checked
 * against cfsctl 0.9.4 reading the repository the demo leaves (`DEMO_ARGS=--keep`), and the
 * manifest digest against `sha256sum` of the layout's manifest blob. Host tier (make, tar,
 * the oracle); about 15 s.
 *
 * @module
 */
import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "./cfs.ts";
import { runCfsctl09 } from "./oracles.ts";
import { sha256sum } from "./fixtures/oci.ts";

const decoder = new TextDecoder();

/** The lines that follow the `$ ...` line of the step announced by `# why`. */
function stepOutput(out: string, why: string): string[] {
  const lines = out.split("\n");
  const at = lines.indexOf(`# ${why}`);
  ok(at >= 0, `no step '# ${why}' in:\n${out}`);
  const rest = lines.slice(at + 2);
  const end = rest.findIndex((l) => l === "" || l.startsWith("# "));
  return end < 0 ? rest : rest.slice(0, end);
}

Deno.test("make demo: a bootable image built here, pulled through a hook; ID, tags, boot entries", async () => {
  const t0 = performance.now();
  const r = await new Deno.Command("make", {
    args: ["-s", "demo", "DEMO_ARGS=--keep"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - t0) / 1000;
  const out = decoder.decode(r.stdout);
  const err = decoder.decode(r.stderr);
  equal(r.code, 0, `make demo failed:\n${out}\n${err}`);
  const kept = out.match(/^Kept: repository (\S+), layout (\S+)$/m);
  ok(kept, out);
  const [, repo, layout] = kept;
  try {
    ok(seconds < 60, `make demo took ${seconds.toFixed(1)} s`);
    // The pull goes through the shipped hook, with the shipped policy, from a local layout.
    match(
      out,
      new RegExp(
        `^\\$ CFS_EXTRA_TAGS=demo/golden,demo/build-\\{digest\\} cfs --repo ${repo} pull ` +
          `--signature-policy ${join(ROOT, "demo/policy.json")} --hook builtin:extra-tags ` +
          `oci:${layout}:demo$`,
        "m",
      ),
    );
    // The manifest digest, from sha256sum of the blob index.json names.
    const index = JSON.parse(await Deno.readTextFile(join(layout, "index.json")));
    const named = index.manifests[0].digest as string;
    const manifest = await sha256sum(join(layout, "blobs", ...named.split(":")));
    equal(manifest, named);
    const hex = manifest.slice("sha256:".length);
    // Tags: what cfsctl 0.9.4 lists in the repository the demo left, and what the demo showed.
    const listed = await runCfsctl09(["--repo", repo, "oci", "images", "--json"]);
    equal(listed.code, 0, listed.stderr);
    const images = JSON.parse(listed.text).images as Array<
      { name: string; manifest_digest: string }
    >;
    const tags = [`demo/build-${hex.slice(0, 12)}`, "demo/golden", `localhost/bootc-${manifest}`];
    equal(JSON.stringify(images.map((i) => i.name).sort()), JSON.stringify(tags));
    for (const i of images) equal(i.manifest_digest, manifest);
    const shownTags = stepOutput(out, "the tags").join("\n");
    // `oci images` may shorten a long name (bootc's tag is 87 characters): its start is shown.
    for (const t of tags) {
      ok(shownTags.includes(t.slice(0, 30)), `tag ${t} not shown:\n${shownTags}`);
    }
    // The image ID shown is cfsctl's bootable image id of that image.
    const id = await runCfsctl09([
      "--repo",
      repo,
      "oci",
      "compute-id",
      "--bootable",
      "demo/golden",
    ]);
    equal(id.code, 0, id.stderr);
    match(id.text.trim(), /^[0-9a-f]{128}$/);
    const shownId = stepOutput(out, "the image ID (what composefs.digest= names at boot)");
    equal(shownId.join("\n"), id.text.trim());
    // The pull's own summary names it too (short or full), and its boot entry.
    ok(out.includes(id.text.trim().slice(0, 12)), out);
    equal(
      stepOutput(out, "the boot entries").join("\n"),
      "bls 6.1.0-cfs-demo /usr/lib/modules/6.1.0-cfs-demo/vmlinuz " +
        "/usr/lib/modules/6.1.0-cfs-demo/initramfs.img",
    );
    // And how to boot such an image.
    match(out, /cfs vm-test IMAGE/);
    match(stepOutput(out, "every object, stream and image checked").join("\n"), /status: ok/);
  } finally {
    await Deno.remove(join(repo, ".."), { recursive: true });
  }
});
