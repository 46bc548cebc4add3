/**
 * `make demo`: the main job on a built-in sample. Builds a small tree (inline and external
 * files, a symlink, a hardlink, xattrs, and the /usr, /boot and /sysroot that composefs-rs
 * 0.9.4 wants for a bootable image), creates an insecure repository (this host has no
 * fs-verity), commits the image, and prints its image ID, the objects it uses, a dump of it
 * read back from the repository, and fsck's verdict. Every step is a `cfs` command, shown as
 * it runs.
 *
 * @module
 */
import { main } from "./cli.ts";
import * as sys from "./lib/sys/libc.ts";

const dir = await Deno.makeTempDir({ prefix: "cfs-demo-" });
const tree = `${dir}/tree`;
const repo = `${dir}/repo`;

// The sample tree.
for (const d of ["", "/etc", "/usr", "/usr/bin", "/usr/share/doc", "/boot", "/sysroot"]) {
  Deno.mkdirSync(`${tree}${d}`, { recursive: true });
}
Deno.writeTextFileSync(`${tree}/etc/hostname`, "cfs-demo\n");
Deno.writeTextFileSync(
  `${tree}/usr/share/doc/README`,
  "composefs keeps file data in a content-addressed store;\n".repeat(20),
);
Deno.writeFileSync(`${tree}/usr/bin/tool`, new Uint8Array(100_000).map((_, i) => (i * 7) & 0xff), {
  mode: 0o755,
});
Deno.linkSync(`${tree}/usr/bin/tool`, `${tree}/usr/bin/tool-alias`);
Deno.symlinkSync("../usr/share/doc/README", `${tree}/etc/readme`);
sys.setXattr(`${tree}/usr/bin/tool`, "user.demo", new TextEncoder().encode("an xattr"));
for (
  const p of [
    "/etc/hostname",
    "/usr/share/doc/README",
    "/usr/bin/tool",
    "/etc/readme",
    "/etc",
    "/usr/bin",
    "/usr/share/doc",
    "/usr/share",
    "/usr",
    "/boot",
    "/sysroot",
    "",
  ]
) {
  sys.lutimes(`${tree}${p}`, 1_700_000_000);
}

async function cfs(...args: string[]): Promise<void> {
  console.log(`\n$ cfs ${args.join(" ")}`);
  const code = await main(args);
  if (code !== 0) {
    console.error(`demo: 'cfs ${args.join(" ")}' exited ${code}`);
    Deno.exit(code);
  }
}

try {
  await cfs("init", "--insecure", repo);
  await cfs("compute-id", "--algorithm", "sha512", tree);
  await cfs("--repo", repo, "create-image", tree, "demo");
  await cfs("--repo", repo, "create-image", "--bootable", tree, "demo-boot");
  await cfs("--repo", repo, "image-objects", "demo");
  await cfs("--repo", repo, "dump-files", "demo");
  await cfs("digest", "--algorithm", "sha512", `${tree}/usr/bin/tool`);
  await cfs("--repo", repo, "fsck");
} finally {
  await Deno.remove(dir, { recursive: true });
}
