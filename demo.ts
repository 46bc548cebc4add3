/**
 * `make demo`: cfs's main job on an image built here, with no network. It builds a small
 * bootable OCI image (a layout in a temporary directory: `/usr` with a program and
 * os-release, a kernel and an initramfs in `/usr/lib/modules/KVER/` as bootc images ship them,
 * and the `/boot` and `/sysroot` a bootable composefs image needs), then `cfs pull`s it into a
 * fresh repository through a shipped hook (`builtin:extra-tags`) under the demo's signature
 * policy (`demo/policy.json`: `oci:` layouts accepted, anything else rejected), and shows the
 * image ID, the tags and the boot entries, then how to boot such an image.
 *
 * Every step is a `cfs` command, printed before it runs, so it can be typed again. The layers
 * are written with GNU tar and gzip by the same builder the tests use (test/fixtures/oci.ts).
 * The kernel and initramfs are placeholders (a few bytes each): boot entries list them, QEMU
 * could not start them. `--keep` leaves the directory (repository and layout) in place and
 * says where it is; `--hook FILE` (repeatable) pulls through that hook too, to try a hook of
 * one's own (`make demo DEMO_ARGS="--hook oem.ts"`).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { main } from "./cli.ts";
import { buildOciImage, type LayerEntry } from "./test/fixtures/oci.ts";

/** The kernel version the demo image's kernel is filed under. */
export const DEMO_KERNEL_VERSION = "6.1.0-cfs-demo";
/** The tags `builtin:extra-tags` adds in the demo (`{digest}`: the manifest digest's start). */
export const DEMO_EXTRA_TAGS = "demo/golden,demo/build-{digest}";
/** The demo's signature policy, shipped beside this file. */
export const DEMO_POLICY = fileURLToPath(new URL("./demo/policy.json", import.meta.url));

/** The demo image's one layer. */
export function demoLayer(): LayerEntry[] {
  const kver = DEMO_KERNEL_VERSION;
  return [
    { type: "dir", path: "boot" },
    { type: "dir", path: "sysroot" },
    { type: "dir", path: "etc" },
    { type: "file", path: "etc/hostname", content: "cfs-demo\n" },
    { type: "symlink", path: "etc/os-release", target: "../usr/lib/os-release" },
    {
      type: "file",
      path: "usr/lib/os-release",
      content: 'NAME="cfs demo"\nID=cfs-demo\nVERSION_ID=1\n',
    },
    {
      type: "file",
      path: "usr/bin/hello",
      mode: 0o755,
      content: "#!/bin/sh\necho 'hello from a composefs image'\n".padEnd(200, "#"),
    },
    // A kernel and an initramfs where bootc images keep them; placeholders, not bootable.
    {
      type: "file",
      path: `usr/lib/modules/${kver}/vmlinuz`,
      mode: 0o644,
      content: `MZ placeholder kernel ${kver}\n`.padEnd(4096, "\0"),
    },
    {
      type: "file",
      path: `usr/lib/modules/${kver}/initramfs.img`,
      mode: 0o644,
      content: "placeholder initramfs\n".padEnd(2048, "\0"),
    },
  ];
}

/** Builds the demo image into the OCI layout `dir`, tagged `demo`; returns `oci:DIR:demo`. */
export async function buildDemoImage(dir: string): Promise<string> {
  await buildOciImage(dir, {
    tag: "demo",
    layers: [demoLayer()],
    config: { Labels: { "containers.bootc": "1" } },
  });
  await Deno.remove(`${dir}.work`, { recursive: true });
  return `oci:${dir}:demo`;
}

async function cfs(
  why: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<void> {
  const shown = Object.entries(env).map(([k, v]) => `${k}=${v} `).join("");
  console.log(`\n# ${why}\n$ ${shown}cfs ${args.join(" ")}`);
  for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
  const code = await main(args);
  for (const k of Object.keys(env)) Deno.env.delete(k);
  if (code !== 0) {
    console.error(`demo: 'cfs ${args.join(" ")}' exited ${code}`);
    Deno.exit(code);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { keep: { type: "boolean" }, hook: { type: "string", multiple: true } },
  });
  const keep = values.keep ?? false;
  const hooks = (values.hook ?? []).flatMap((h) => ["--hook", resolve(h)]);
  const t0 = performance.now();
  const dir = await Deno.makeTempDir({ prefix: "cfs-demo-" });
  const repo = `${dir}/repo`;
  try {
    console.log(`cfs demo: a small bootable OCI image, built in ${dir}/image`);
    const image = await buildDemoImage(`${dir}/image`);
    await cfs("a repository (insecure: /tmp may lack fs-verity)", ["init", "--insecure", repo]);
    await cfs("the pull, through the shipped hook that adds tags", [
      "--repo",
      repo,
      "pull",
      "--signature-policy",
      DEMO_POLICY,
      "--hook",
      "builtin:extra-tags",
      ...hooks,
      image,
    ], { CFS_EXTRA_TAGS: DEMO_EXTRA_TAGS });
    await cfs("the tags", ["--repo", repo, "oci", "images"]);
    await cfs("the image ID (what composefs.digest= names at boot)", [
      "--repo",
      repo,
      "oci",
      "compute-id",
      "--bootable",
      "demo/golden",
    ]);
    await cfs("the boot entries", ["--repo", repo, "boot-entries", "demo/golden"]);
    await cfs("every object, stream and image checked", ["--repo", repo, "fsck"]);
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`
Done in ${seconds} s. The image is in the repository under the tags above; its boot
entry names the kernel and initramfs it carries (placeholders here, so it cannot start).
An image with a real kernel and an initramfs that runs 'cfs setup-root' boots in QEMU with
  cfs vm-test IMAGE        ('cfs vm-test --help'; 'make vm-test' builds and boots one)`);
    if (keep) console.log(`\nKept: repository ${repo}, layout ${dir}/image`);
  } finally {
    if (!keep) await Deno.remove(dir, { recursive: true });
  }
}
