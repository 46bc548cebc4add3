/**
 * Self-test of the QEMU cfsctl oracle: on trees whose regular files are all <= 64 bytes (which
 * cfsctl stores inline, so it works on a host without fs-verity) the guest must give the same
 * compute-id and dumpfile as cfsctl run on the host; on a tree with a 1 MiB file it must give
 * results consistent with host tools (`fsverity digest`). One VM boot serves every tree.
 *
 * No skipping: a missing cfsctl, QEMU, guest kernel or tool fails the test.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import {
  checkOraclePrerequisites,
  findCfsctl,
  type OracleResult,
  runCfsctlOracle,
} from "./cfsctl_oracle.ts";
import { requireCommand } from "./qemu.ts";

const WORK = fileURLToPath(new URL("../.work", import.meta.url));

function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Small tree: every regular file <= 64 bytes; xattrs in all namespaces; every file type. */
function makeSmallTree(root: string): void {
  fs.mkdirSync(path.join(root, "a/b"), { recursive: true });
  fs.writeFileSync(path.join(root, "a/f"), "hello\n");
  fs.writeFileSync(path.join(root, "a/b/exactly64"), "x".repeat(64));
  fs.writeFileSync(path.join(root, "empty"), "");
  fs.linkSync(path.join(root, "a/f"), path.join(root, "hardlink"));
  fs.symlinkSync("a/f", path.join(root, "symlink"));
  fs.symlinkSync("/does/not/exist", path.join(root, "dangling"));
  sh("mkfifo", path.join(root, "fifo"));
  sh("mknod", path.join(root, "null"), "c", "1", "3");
  sh("mknod", path.join(root, "disk"), "b", "8", "0");
  sh("setfattr", "-n", "user.foo", "-v", "bar", path.join(root, "a/f"));
  sh(
    "setfattr",
    "-n",
    "security.selinux",
    "-v",
    "system_u:object_r:etc_t:s0",
    path.join(root, "a/f"),
  );
  sh("setfattr", "-n", "trusted.overlay.opaque", "-v", "y", path.join(root, "a/b"));
  sh("setfattr", "-h", "-n", "trusted.overlay.redirect", "-v", "/x", path.join(root, "symlink"));
  sh("setfattr", "-n", "user.binary", "-v", "0x00ff10", path.join(root, "empty"));
  fs.writeFileSync(path.join(root, "suid"), "#!/bin/sh\n");
  fs.chmodSync(path.join(root, "suid"), 0o4755);
  fs.lchownSync(path.join(root, "a/b"), 1234, 5678);
  fs.lchownSync(path.join(root, "dangling"), 42, 43);
  sh("touch", "-d", "2001-02-03 04:05:06.123456789", path.join(root, "a/b/exactly64"));
  sh("touch", "-d", "2100-01-01 00:00:00.5", path.join(root, "empty"));
  sh("touch", "-d", "1960-06-01 12:00:00", path.join(root, "suid"));
  sh("touch", "-h", "-d", "1999-12-31 23:59:59", path.join(root, "symlink"));
}

/** Small bootable tree: has /boot, so the --bootable variants succeed. */
function makeBootTree(root: string): void {
  fs.mkdirSync(path.join(root, "boot/loader/entries"), { recursive: true });
  fs.mkdirSync(path.join(root, "usr/lib"), { recursive: true });
  fs.mkdirSync(path.join(root, "etc"), { recursive: true });
  fs.writeFileSync(path.join(root, "boot/vmlinuz-1"), "kernel");
  fs.writeFileSync(path.join(root, "usr/lib/os-release"), "ID=test\n");
  fs.writeFileSync(path.join(root, "etc/hostname"), "oracle\n");
  sh(
    "setfattr",
    "-n",
    "security.selinux",
    "-v",
    "system_u:object_r:boot_t:s0",
    path.join(root, "boot"),
  );
  fs.linkSync(path.join(root, "etc/hostname"), path.join(root, "usr/lib/hostname"));
}

/** A tree with a 1 MiB file (stored as an external object, needs fs-verity) and xattrs. */
function makeLargeTree(root: string): void {
  fs.mkdirSync(path.join(root, "data"), { recursive: true });
  const big = new Uint8Array(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 11)) & 0xff;
  fs.writeFileSync(path.join(root, "data/big"), big);
  fs.writeFileSync(path.join(root, "data/medium"), "m".repeat(65)); // just over inline size
  fs.writeFileSync(path.join(root, "small"), "s\n");
  fs.linkSync(path.join(root, "data/big"), path.join(root, "big-link"));
  sh("setfattr", "-n", "trusted.overlay.metacopy", "-v", "0x00", path.join(root, "data/big"));
  sh(
    "setfattr",
    "-n",
    "security.capability",
    "-v",
    "0x0100000200200000000000000000000000000000",
    path.join(root, "data/big"),
  );
  sh("setfattr", "-n", "user.note", "-v", "large", path.join(root, "data"));
}

/** cfsctl on the host, with a throwaway repository. */
function hostCfsctl(cfsctl: string, repo: string, args: string[]): Buffer {
  const r = spawnSync(cfsctl, ["--repo", repo, ...args], { maxBuffer: 1 << 28 });
  if (r.status !== 0) {
    throw new Error(`host cfsctl ${args.join(" ")} failed (${r.status}): ${r.error ?? r.stderr}`);
  }
  return r.stdout;
}

const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b ?? new Uint8Array());

Deno.test("cfsctl oracle in QEMU: agrees with host cfsctl, handles fs-verity trees", async (t) => {
  // Missing tools fail the test here, with the install hint: no skipping.
  checkOraclePrerequisites();
  for (
    const [cmd, pkg] of [["setfattr", "attr"], ["fsverity", "fsverity"], ["mkfifo", "coreutils"]]
  ) {
    requireCommand(cmd, `apt-get install ${pkg}`);
  }
  const cfsctl = findCfsctl();
  fs.mkdirSync(WORK, { recursive: true });
  const dir = fs.mkdtempSync(path.join(WORK, "oracle-test-"));
  try {
    const small = path.join(dir, "small");
    const boot = path.join(dir, "boot");
    const large = path.join(dir, "large");
    for (const d of [small, boot, large]) fs.mkdirSync(d);
    makeSmallTree(small);
    makeBootTree(boot);
    makeLargeTree(large);

    const t0 = performance.now();
    const [rSmall, rBoot, rLarge] = await runCfsctlOracle(
      [{ tree: small }, { tree: boot }, { tree: large }],
      { log: (s) => console.log(`  oracle: ${s}`) },
    );
    console.log(`  oracle batch of 3 trees: ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const repo = path.join(dir, "host-repo");
    fs.mkdirSync(repo);
    const host = (args: string[]) => hostCfsctl(cfsctl, repo, args);
    const hex64 = /^[0-9a-f]{64}$/;

    const checkSameAsHost = (r: OracleResult, tree: string, bootable: boolean) => {
      assert.equal(r.tree, tree);
      assert.match(r.computeId, hex64);
      assert.equal(r.computeId, text(host(["compute-id", tree])).trim(), "compute-id");
      assert.equal(text(r.dumpfile), text(host(["create-dumpfile", tree])), "create-dumpfile");
      assert.equal(r.imageId, r.computeId, "create-image id == compute-id");
      assert.ok(r.image.length >= 4096 && r.image.length % 4096 === 0, "image size");
      if (bootable) {
        assert.equal(r.computeIdBootable, text(host(["compute-id", "--bootable", tree])).trim());
        assert.equal(
          text(r.dumpfileBootable),
          text(host(["create-dumpfile", "--bootable", tree])),
          "create-dumpfile --bootable",
        );
        assert.equal(r.imageIdBootable, r.computeIdBootable);
        assert.ok(r.imageBootable && r.imageBootable.length > 0);
        assert.deepEqual(r.errors, []);
      } else {
        assert.equal(r.computeIdBootable, undefined);
        assert.equal(r.dumpfileBootable, undefined);
        assert.equal(r.imageBootable, undefined);
        assert.equal(r.errors.length, 3, r.errors.join("\n"));
        for (const e of r.errors) assert.match(e, /--bootable: exit 1: .*boot/);
      }
    };

    await t.step("small tree: same compute-id and dumpfile as host cfsctl", () => {
      checkSameAsHost(rSmall, small, false);
      const dump = text(rSmall.dumpfile);
      // the guest saw what 9p would have lost: trusted.* and security.* xattrs
      assert.match(dump, /trusted\.overlay\.opaque=y/);
      assert.match(dump, /trusted\.overlay\.redirect=\/x/);
      assert.match(dump, /security\.selinux=system_u:object_r:etc_t:s0/);
      assert.match(dump, /^\/hardlink 0 @120000 /m); // hardlink kept
      assert.match(dump, /^\/null 0 20644 1 0 0 259 /m); // char device 1:3
      assert.match(dump, /^\/empty 0 100644 1 0 0 0 4102444800\.0 /m); // date past 2038
    });

    await t.step("bootable tree: --bootable variants same as host", () => {
      checkSameAsHost(rBoot, boot, true);
    });

    await t.step("tree with a 1 MiB file: consistent fs-verity results", () => {
      assert.match(rLarge.computeId, hex64);
      assert.equal(rLarge.imageId, rLarge.computeId);
      const dump = text(rLarge.dumpfile);
      const digest = sh("fsverity", "digest", "--compact", path.join(large, "data/big")).trim();
      assert.match(digest, hex64);
      // hardlinks: the first path in sort order carries the inode, the other is a "@" line
      const line = dump.split("\n").find((l) => l.startsWith("/big-link "));
      assert.ok(line, dump);
      // "PATH SIZE MODE NLINK UID GID RDEV MTIME PAYLOAD CONTENT DIGEST XATTRS..."
      const f = line.split(" ");
      assert.equal(f[1], "1048576");
      assert.equal(f[3], "2"); // hardlinked as /data/big
      assert.equal(f[8], `${digest.slice(0, 2)}/${digest.slice(2)}`);
      assert.equal(f[10], digest);
      assert.match(line, /trusted\.overlay\.metacopy=\\x00/);
      assert.match(line, /security\.capability=/);
      assert.match(dump, /^\/data\/big 0 @120000 - - - - 0\.0 \/big-link /m);
      // the committed image's own fs-verity digest is its id
      const img = path.join(dir, "large.erofs");
      fs.writeFileSync(img, rLarge.image);
      assert.equal(sh("fsverity", "digest", "--compact", img).trim(), rLarge.imageId);
      assert.equal(rLarge.errors.length, 3); // only the --bootable failures (no /boot)
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
