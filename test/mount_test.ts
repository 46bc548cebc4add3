/**
 * The real kernel reads what we write: a committed image is loop-mounted as EROFS, overlayfs
 * is stacked over it with the repository's objects/ as the data-only lower layer
 * (metacopy=on, redirect_dir=on), and the mounted tree must list exactly like the source:
 * content, modes, ownership, mtimes, device numbers, symlink targets, xattrs, hardlinks.
 *
 * Needs root (mount); the host kernel has EROFS and overlayfs. The repository is insecure
 * because the host has no fs-verity (fs-verity is exercised in the QEMU tests).
 */
import { assertEquals } from "node:assert/strict";
import { buildCorpus, describeTree } from "./fixtures/trees.ts";
import { run, runCfs } from "./cfs.ts";

/** Corpus trees mounted: every file type, hardlinks, xattrs, odd names, big directories. */
const MOUNT_TREES = ["file-types", "devices", "hardlinks-many", "hardlinks-special", "xattrs-trusted-overlay", "xattrs-binary", "xattrs-shared", "names-special-chars", "names-non-utf8", "bigdir-5000-longnames", "deep-100", "inline-boundary", "large-files", "symlinks-long", "modes", "owners"];

function normalise(lines: string[]): string[] {
  // EROFS keeps whole seconds only.
  return lines.map((l) => l.replace(/mtime=(-?\d+)\.\d+/, "mtime=$1"));
}

Deno.test("kernel EROFS + overlayfs mount of a committed image shows the source tree", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-mount-" });
  const mounts: string[] = [];
  try {
    const corpus = await buildCorpus(`${tmp}/corpus`, MOUNT_TREES);
    const trees = corpus.filter((t) => MOUNT_TREES.includes(t.name));
    if (trees.length !== MOUNT_TREES.length) throw new Error(`corpus lacks the mount trees (${trees.map((t) => t.name)})`);
    const repo = `${tmp}/repo`;
    const init = await runCfs(["init", "--insecure", repo]);
    assertEquals(init.code, 0, init.stderr);
    for (const tree of trees) {
      const created = await runCfs(["--repo", repo, "create-image", "--stat-root", tree.path, tree.name]);
      assertEquals(created.code, 0, created.stderr);
      const id = created.text.trim().split(":")[1];
      const img = `${tmp}/img-${tree.name}`;
      const merged = `${tmp}/mnt-${tree.name}`;
      await Deno.mkdir(img);
      await Deno.mkdir(merged);
      await run("mount", ["-t", "erofs", "-o", "loop,ro", `${repo}/images/${id}`, img]);
      mounts.push(img);
      await run("mount", ["-t", "overlay", "overlay", "-o", `ro,metacopy=on,redirect_dir=on,lowerdir=${img}::${repo}/objects`, merged]);
      mounts.push(merged);
      assertEquals(normalise(describeTree(merged)), normalise(describeTree(tree.path)), `tree ${tree.name}`);
    }
    const fsck = await runCfs(["--repo", repo, "fsck"]);
    assertEquals(fsck.code, 0, fsck.text + fsck.stderr);
  } finally {
    for (const m of mounts.reverse()) await run("umount", [m]).catch(() => {});
    await Deno.remove(tmp, { recursive: true });
  }
});
