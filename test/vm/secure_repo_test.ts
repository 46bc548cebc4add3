/**
 * Secure repositories with real fs-verity, in ONE QEMU boot: cfs, cfsctl 0.9.4 (the oracle of
 * the current format) and `fsverity` run in a guest whose kernel has CONFIG_FS_VERITY (this
 * host's kernel does not), on an ext4 file system made with `-O verity`. What it pins:
 *
 * - `cfs init` (secure, fsverity-sha512-12) enables fs-verity on `meta.json`: the kernel's
 *   measurement (`fsverity measure`) equals the user-space digest (`fsverity digest`);
 * - `create-image`, `oci pull` and `pull` give every object (file contents, splitstreams,
 *   JSON documents, EROFS images) fs-verity with the digest that is its name; the image ids
 *   equal cfsctl 0.9.4's (`compute-id` of the tree, `oci compute-id` of the image pulled fresh
 *   on the host); `cfs fsck` prints what cfsctl 0.9.4's `fsck` prints, and both `oci fsck` pass;
 * - gc: `cfs gc --dry-run` counts the objects cfsctl 0.9.4's `gc --dry-run` counts (after the
 *   pulls, and after cfsctl 0.9.4 removed both tags; cfs also predicts the links it will prune,
 *   0.9.4 does not), `cfs gc` removes that, and cfsctl 0.9.4 then finds nothing more to
 *   collect and a clean repository; the named image and its objects stay;
 * - a fsverity-sha256-12 repository made by `cfsctl init` (0.9.4, secure): cfs writes an image
 *   and an OCI image into it, the image ids and `image-objects` agree, both fsck are clean;
 * - `cfs digest --algorithm sha512 OBJECT` prints what `fsverity measure OBJECT` prints; the
 *   kernel refuses writers on a sealed object (EPERM);
 * - `cfs init` without `--insecure` on a file system without fs-verity (ext4 without the
 *   feature, and tmpfs) exits 1 with one line that mentions `--insecure` and leaves nothing;
 * - a flipped byte in an object, through the file system: an object replaced by a copy with
 *   its first byte changed and fs-verity enabled is `object-digest-mismatch` (with the digest
 *   the host's `fsverity digest` gives the changed bytes) for both `cfs fsck` and cfsctl 0.9.4's
 *   `fsck`; a changed copy without fs-verity is `object-verity-missing` for both;
 * - a flipped byte underneath fs-verity (changed on the block device, the file system
 *   unmounted): reads fail with EIO, `cfs fsck` reports the object (it reads every object;
 *   cfsctl 0.9.4's fsck only asks the kernel for the measurement, which reads no data, and so
 *   passes: pinned, as the one intended difference), and a corrupted image makes
 *   `cfs image-objects` fail with a message about corruption and both fsck name the image.
 *
 * No skipping: missing QEMU, guest kernel, cfsctl 0.9.4, fsverity or debugfs fail the test.
 *
 * @module
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { checkGuestPrerequisites, outputText, runCfsInGuest, stepSeconds } from "./guest_cfs.ts";
import { requireCommand } from "./qemu.ts";
import { cfsctl09Ok } from "../oracles.ts";
import { buildGuestImage, oracleImageIds } from "./oci_fixture.ts";

const WORK = fileURLToPath(new URL("../.work", import.meta.url));
const FSVERITY = "/usr/bin/fsverity";
const DEBUGFS = "/usr/sbin/debugfs";

/** The file whose object gets corrupted underneath fs-verity; its first byte is 'T'. */
const TAMPER_FILE = "data/tamper-me";
/** The file whose object is replaced by a changed copy with fs-verity. */
const FLIP_SEALED_FILE = "data/65";
/** The file whose object is replaced by a changed copy without fs-verity. */
const FLIP_PLAIN_FILE = "data/sub/big";

/** A small tree: files above and at the 64-byte inline limit, a multi-level Merkle tree, a duplicate. */
function makeTree(root: string): void {
  fs.mkdirSync(path.join(root, "data/sub"), { recursive: true });
  fs.mkdirSync(path.join(root, "usr/bin"), { recursive: true }); // the root's metadata comes from /usr
  fs.writeFileSync(path.join(root, TAMPER_FILE), "T" + "tamper me please\n".repeat(600)); // 10201 B
  const big = new Uint8Array((1 << 20) + 1); // 257 blocks: two Merkle levels with sha256
  for (let i = 0; i < big.length; i++) big[i] = (i * 131 + (i >> 9)) & 0xff;
  fs.writeFileSync(path.join(root, FLIP_PLAIN_FILE), big);
  fs.writeFileSync(path.join(root, FLIP_SEALED_FILE), "6".repeat(65)); // smallest external file
  fs.writeFileSync(path.join(root, "data/64"), "4".repeat(64)); // inline
  fs.writeFileSync(path.join(root, "data/copy"), fs.readFileSync(path.join(root, TAMPER_FILE)));
  fs.writeFileSync(path.join(root, "usr/bin/hello"), "hello\n");
  fs.writeFileSync(path.join(root, "empty"), "");
  fs.symlinkSync("data/65", path.join(root, "link"));
  for (const p of ["", "data", "data/sub", "usr", "usr/bin"]) {
    fs.utimesSync(path.join(root, p), 1700000000, 1700000000);
  }
}

/** `fsverity digest` on the host (libfsverity, user space): the hex digest. */
function hostFsverityDigest(file: string, alg: "sha256" | "sha512"): string {
  const out = execFileSync("fsverity", ["digest", `--hash-alg=${alg}`, file], { encoding: "utf8" });
  const m = /^(sha256|sha512):([0-9a-f]+) /.exec(out);
  if (!m) throw new Error(`unexpected fsverity digest output: ${out}`);
  return m[2];
}

/** The sha512 fs-verity digest of `file` with its first byte changed as the guest's `flip` does. */
function flippedDigest(file: string, scratch: string): string {
  const bytes = fs.readFileSync(file);
  bytes[0] = bytes[0] === 0x58 ? 0x59 : 0x58; // 'X', or 'Y' when it was 'X'
  fs.writeFileSync(scratch, bytes);
  return hostFsverityDigest(scratch, "sha512");
}

/** `objects/XX/REST` of a hex digest. */
const objectRel = (hex: string) => `objects/${hex.slice(0, 2)}/${hex.slice(2)}`;

/** The guest script: each step's output, errors, exit code and time land in $OUT/<step>.*. */
function guestScript(
  o: { tamper: string; flipSealed: string; flipPlain: string; manifest: string },
) {
  const R = "/verity/repo";
  return `
# The system policy containers-common installs: cfs pulls enforce one, as skopeo does.
mkdir -p /etc/containers
echo '{"default":[{"type":"insecureAcceptAnything"}]}' > /etc/containers/policy.json
R=${R}
OBJ=$R/${objectRel(o.tamper)}
measure_all() { for f in "$1"/objects/*/*; do fsverity measure "$f" || echo "FAILED $f"; done; }
I=oci:/trees/0/img:v1

# --- secure sha512 repository: init, create-image, oci pull, pull ---
rec init cfs init $R
rec meta_measure fsverity measure $R/meta.json
rec meta_digest fsverity digest --hash-alg=sha512 $R/meta.json
cp $R/meta.json "$OUT/meta.json"
rec create cfs --repo $R create-image /trees/0/tree small
rec opull cfs --repo $R oci pull $I plain
rec pull cfs --repo $R --json pull $I
rec objects_measure measure_all $R
rec images_list ls $R/images
rec fsck cfs --repo $R fsck
rec fsck_c09 cfsctl09 --repo $R fsck
rec ofsck_c09 cfsctl09 --repo $R oci fsck
rec id_plain cfs --repo $R oci compute-id plain
rec image_objects cfs --repo $R image-objects small
rec image_objects_c09 cfsctl09 --repo $R image-objects refs/small
rec digest cfs digest --algorithm sha512 "$OBJ"
rec obj_measure fsverity measure "$OBJ"
# the kernel refuses writers on a verity file
rec write_append sh -c 'echo x >> "$1"' sh "$OBJ"
rec write_dd dd if=/dev/zero of="$OBJ" bs=1 count=1 conv=notrunc
rec truncate_obj truncate -s 0 "$OBJ"

# --- gc, next to cfsctl 0.9.4's ---
rec gc_dry1 cfs --repo $R gc --dry-run
rec gc_dry1_c09 cfsctl09 --repo $R gc --dry-run
rec untag_plain cfsctl09 --repo $R oci untag plain
rec untag_bootc cfsctl09 --repo $R oci untag localhost/bootc-${o.manifest}
rec gc_dry2 cfs --repo $R gc --dry-run
rec gc_dry2_c09 cfsctl09 --repo $R gc --dry-run
rec gc cfs --repo $R gc
rec gc_after_c09 cfsctl09 --repo $R gc --dry-run
rec gc_fsck_c09 cfsctl09 --repo $R fsck
rec gc_image_objects_c09 cfsctl09 --repo $R image-objects refs/small
rec gc_streams ls $R/streams

# --- sha256: a secure repository cfsctl 0.9.4 made, written to by both ---
R2=/verity/c09
rec init256_c09 cfsctl09 init --algorithm fsverity-sha256-12 $R2
rec create256_c09 cfsctl09 --repo $R2 create-image /trees/0/tree theirs
rec create256 cfs --repo $R2 create-image /trees/0/tree ours
rec opull256 cfs --repo $R2 oci pull $I plain
rec id256_c09 cfsctl09 --repo $R2 oci compute-id plain
rec image_objects256_c09 cfsctl09 --repo $R2 image-objects refs/ours
rec objects256_measure measure_all $R2
rec fsck256 cfs --repo $R2 fsck
rec fsck256_c09 cfsctl09 --repo $R2 fsck

# --- no fs-verity: ext4 without the feature, and tmpfs ---
rec init_plain cfs init /plain/repo
rec plain_after ls -la /plain
mkdir -p /tmp/t
rec init_tmpfs cfs init /tmp/t/repo
rec tmpfs_after ls -la /tmp/t

# --- a flipped byte in an object, through the file system ---
# flip OBJECT: /verity/flip.tmp is a copy of OBJECT with its first byte changed
flip() {
  cp "$1" /verity/flip.tmp || return 1
  if [ "$(head -c 1 /verity/flip.tmp)" = X ]; then _c=Y; else _c=X; fi
  printf $_c | dd of=/verity/flip.tmp bs=1 count=1 conv=notrunc 2>/dev/null
}
flip $R/${objectRel(o.flipSealed)}
rec flip_enable fsverity enable --hash-alg=sha512 /verity/flip.tmp
mv -f /verity/flip.tmp $R/${objectRel(o.flipSealed)}
flip $R/${objectRel(o.flipPlain)}
mv -f /verity/flip.tmp $R/${objectRel(o.flipPlain)}
rec flipped_fsck cfs --repo $R fsck
rec flipped_fsck_c09 cfsctl09 --repo $R fsck

# --- corruption underneath fs-verity (last: it unmounts /verity) ---
# corrupt STEP PATH: changes the first byte of PATH's first data block on the block device,
# with /verity unmounted (found with debugfs; the page cache is dropped before remounting).
corrupt() {
  sync
  umount /verity || return 1
  rec "$1_blocks" debugfs -R "blocks \${2#/verity}" "$VERITY_DEV"
  _blk=$(tr -s ' ' '\\n' < "$OUT/$1_blocks.out" | grep -m1 '^[0-9][0-9]*$')
  _b=$(dd if="$VERITY_DEV" bs=4096 skip="$_blk" count=1 2>/dev/null | head -c 1 | od -An -tx1 | tr -d ' ')
  echo "$_b" > "$OUT/$1_before"
  if [ "$_b" = 58 ]; then _new=Y; else _new=X; fi
  printf "$_new" | dd of="$VERITY_DEV" bs=1 seek=$((_blk * 4096)) conv=notrunc,fsync 2>/dev/null
  sync
  echo 3 > /proc/sys/vm/drop_caches
  dd if="$VERITY_DEV" bs=4096 skip="$_blk" count=1 2>/dev/null | head -c 1 | od -An -tx1 | tr -d ' ' > "$OUT/$1_after"
  mount -t ext4 "$VERITY_DEV" /verity
}
corrupt tamper "$OBJ"
rec cat_tampered sh -c 'cat "$1" > /dev/null' sh "$OBJ"
rec measure_tampered fsverity measure "$OBJ"
rec fsck_tampered cfs --repo $R fsck
rec fsck_tampered_c09 cfsctl09 --repo $R fsck
# the image itself
img=$R/images/$(sed 's/^sha512://' "$OUT/create.out")
corrupt tamper_image "$(readlink -f "$img")"
rec image_objects_tampered cfs --repo $R image-objects small
rec fsck_tampered_image cfs --repo $R fsck
rec fsck_tampered_image_c09 cfsctl09 --repo $R fsck
dmesg | grep -i verity > "$OUT/dmesg_verity.txt"
true
`;
}

const lines = (s: string) => s.split("\n").filter((l) => l.trim() !== "");

/** The `fsck: KIND: PATH` part of each error line of a fsck report (cfs's and cfsctl's). */
function fsckErrors(report: string): string[] {
  return lines(report).flatMap((l) => {
    const m = /^\s*- (fsck: [a-z-]+: [^:]+)/.exec(l);
    return m ? [m[1]] : [];
  }).sort();
}

/** One boot, then one step per behaviour, so that a failure names what broke. */
Deno.test("secure repository with real fs-verity, next to cfsctl 0.9.4 (QEMU guest)", async (t) => {
  // Missing tools fail here with an install hint: no skipping.
  requireCommand("fsverity", "apt-get install fsverity");
  requireCommand("debugfs", "apt-get install e2fsprogs");
  checkGuestPrerequisites({ cfsctl09: true, binaries: [FSVERITY, DEBUGFS] });
  fs.mkdirSync(WORK, { recursive: true });
  const dir = fs.mkdtempSync(path.join(WORK, "secure-repo-test-"));
  const t0 = performance.now();
  try {
    const input = path.join(dir, "input");
    const tree = path.join(input, "tree");
    fs.mkdirSync(tree, { recursive: true });
    makeTree(tree);
    const img = await buildGuestImage(path.join(input, "img"));
    // Expected object names, from the host's user-space `fsverity digest`.
    const externals = [TAMPER_FILE, FLIP_PLAIN_FILE, FLIP_SEALED_FILE, "data/copy"];
    const want512 = new Set(externals.map((f) => hostFsverityDigest(path.join(tree, f), "sha512")));
    const want256 = new Set(externals.map((f) => hostFsverityDigest(path.join(tree, f), "sha256")));
    equal(want512.size, 3, "data/copy duplicates the tamper file");
    const digest512 = (f: string) => hostFsverityDigest(path.join(tree, f), "sha512");
    const tamperHex = digest512(TAMPER_FILE);
    const flipSealed = digest512(FLIP_SEALED_FILE);
    const flipPlain = digest512(FLIP_PLAIN_FILE);
    const flippedSealedDigest = flippedDigest(
      path.join(tree, FLIP_SEALED_FILE),
      path.join(dir, "flipped"),
    );
    // Expected image ids: cfsctl 0.9.4 on the host.
    const treeId = async (hash: string) =>
      (await cfsctl09Ok(["--no-repo", "--hash", hash, "compute-id", tree])).trim();
    const treeId512 = await treeId("sha512");
    const treeId256 = await treeId("sha256");
    const oci512 = await oracleImageIds(img.dir, path.join(dir, "c512"), "fsverity-sha512-12");
    const oci256 = await oracleImageIds(img.dir, path.join(dir, "c256"), "fsverity-sha256-12");

    const r = await runCfsInGuest({
      script: guestScript({
        tamper: tamperHex,
        flipSealed,
        flipPlain,
        manifest: img.manifest.digest,
      }),
      trees: [input],
      repoDiskMiB: 256,
      plainDiskMiB: 64,
      cfsctl09: true,
      binaries: [FSVERITY, DEBUGFS],
      timeoutMs: 1_200_000,
      keepWorkDir: Deno.env.get("KEEP") === "1",
      log: (s) => console.log(`  ${s}`),
    });
    const out = (n: string) => outputText(r, `${n}.out`);
    const err = (n: string) => outputText(r, `${n}.err`);
    const rc = (n: string) => Number(outputText(r, `${n}.rc`).trim() || NaN);
    const okStep = (n: string) =>
      equal(rc(n), 0, `${n} failed (exit ${rc(n)}): ${err(n)}${out(n)}`);
    /** cfs fsck's report without its warning lines (cfsctl has none). */
    const cfsReport = (n: string) =>
      lines(out(n)).filter((l) => !l.startsWith("warning: ")).join("\n");
    console.log(`  guest seconds per step: ${JSON.stringify(stepSeconds(r))}`);
    console.log(`  timings: ${JSON.stringify(r.timings)}`);
    equal(r.exitCode, 0, `guest script failed:\n${r.log}`);

    await t.step("init enables fs-verity on meta.json (kernel measure = user-space digest)", () => {
      okStep("init");
      match(out("init"), /algorithm: fsverity-sha512-12/);
      match(out("init"), /verity: +required/);
      okStep("meta_measure");
      okStep("meta_digest");
      const metaMeasured = out("meta_measure").trim();
      equal(metaMeasured, out("meta_digest").trim());
      const hostMeta = path.join(dir, "meta.json");
      fs.writeFileSync(hostMeta, r.outputs.get("meta.json")!);
      equal(
        metaMeasured,
        `sha512:${hostFsverityDigest(hostMeta, "sha512")} /verity/repo/meta.json`,
      );
      equal(JSON.parse(fs.readFileSync(hostMeta, "utf8")).algorithm, "fsverity-sha512-12");
    });

    await t.step("create-image, oci pull and pull seal every object with its name", () => {
      okStep("create");
      equal(out("create").trim(), `sha512:${treeId512}`, "create-image id = cfsctl compute-id");
      okStep("opull");
      okStep("pull");
      const res = JSON.parse(lines(out("pull")).at(-1)!).result;
      equal(res.secure, true);
      equal(res.imageId, oci512.bootable, "cfs pull's bootable image = cfsctl's");
      okStep("id_plain");
      equal(out("id_plain").trim(), oci512.plain);
      okStep("objects_measure");
      const measured = lines(out("objects_measure")).map((l) => {
        const m = /^sha512:([0-9a-f]{128}) \/verity\/repo\/objects\/([0-9a-f]{2})\/([0-9a-f]{126})$/
          .exec(l);
        ok(m, `unexpected fsverity measure line: ${l}`);
        equal(m[1], m[2] + m[3], `object ${m[2]}/${m[3]} is sealed with digest ${m[1]}`);
        return m[1];
      });
      for (const h of [...want512, treeId512, oci512.plain, oci512.bootable]) {
        ok(measured.includes(h), `object ${h} sealed`);
      }
      okStep("images_list");
      for (const i of lines(out("images_list"))) {
        if (i !== "refs") ok(measured.includes(i), `image ${i} is a sealed object`);
      }
      okStep("image_objects");
      deepEqual(lines(out("image_objects")), [...want512].sort().map((h) => `sha512:${h}`));
      okStep("image_objects_c09");
      deepEqual(
        lines(out("image_objects_c09")).map((l) => l.replace(/^sha512:/, "")).sort(),
        [...want512].sort(),
      );
    });

    await t.step("fsck: cfs prints what cfsctl 0.9.4 prints; both oci fsck pass", () => {
      okStep("fsck");
      okStep("fsck_c09");
      match(out("fsck"), /^status: ok$/m);
      equal(cfsReport("fsck"), lines(out("fsck_c09")).join("\n"));
      okStep("ofsck_c09");
    });

    await t.step("cfs digest --algorithm sha512 prints what fsverity measure prints", () => {
      okStep("digest");
      okStep("obj_measure");
      equal(out("digest"), out("obj_measure"));
    });

    await t.step("the kernel refuses writers on sealed objects (EPERM)", () => {
      for (const step of ["write_append", "write_dd", "truncate_obj"]) {
        ok(rc(step) !== 0, `${step} should fail on a verity file: ${err(step)}`);
        match(err(step), /Operation not permitted/, `${step}: ${err(step)}`);
      }
    });

    await t.step("gc: cfs collects what cfsctl 0.9.4 would, and keeps the named image", () => {
      for (const n of ["gc_dry1", "gc_dry1_c09", "untag_plain", "untag_bootc"]) okStep(n);
      // A dry run counts the objects gc would remove and the links dangling now (none here),
      // as 0.9.4's does; the real gc then also prunes the links of the objects it removed.
      const counted = (n: string) => lines(out(n)).filter((l) => !l.startsWith("Pruned "));
      deepEqual(lines(out("gc_dry1")), lines(out("gc_dry1_c09")), "after the pulls");
      match(out("gc_dry1"), /^Objects: [1-9]\d* removed/m, "the streams the pulls rewrote");
      okStep("gc_dry2");
      okStep("gc_dry2_c09");
      deepEqual(lines(out("gc_dry2")), lines(out("gc_dry2_c09")), "after both tags are gone");
      okStep("gc");
      equal(
        counted("gc").join("\n"),
        lines(out("gc_dry2")).filter((l) => !l.startsWith("Dry run")).join("\n"),
        "gc removes what --dry-run counted",
      );
      match(
        out("gc"),
        /^Pruned symlinks: \d+ images, [1-9]\d* streams$/m,
        "links of removed streams",
      );
      okStep("gc_after_c09");
      deepEqual(lines(out("gc_after_c09")), [
        "Dry run (no files deleted):",
        "Objects: 0 removed (0 bytes)",
      ]);
      okStep("gc_fsck_c09");
      match(out("gc_fsck_c09"), /^status: ok$/m);
      okStep("gc_image_objects_c09");
      deepEqual(
        lines(out("gc_image_objects_c09")).map((l) => l.replace(/^sha512:/, "")).sort(),
        [...want512].sort(),
        "the named image and its objects stay",
      );
      deepEqual(lines(out("gc_streams")), ["refs"], "no OCI stream is left");
    });

    await t.step("a secure sha256 repository of cfsctl 0.9.4: both write, both agree", () => {
      for (const n of ["init256_c09", "create256_c09", "create256", "opull256", "id256_c09"]) {
        okStep(n);
      }
      equal(out("create256").trim(), `sha256:${treeId256}`);
      equal(out("create256_c09").trim().replace(/^sha256:/, ""), treeId256);
      equal(out("id256_c09").trim(), oci256.plain, "cfsctl reads the image cfs pulled");
      okStep("image_objects256_c09");
      const norm = (s: string) => lines(s).map((l) => l.replace(/^sha256:/, "")).sort();
      deepEqual(new Set(norm(out("image_objects256_c09"))), want256, "cfsctl reads cfs's image");
      okStep("objects256_measure");
      for (const l of lines(out("objects256_measure"))) {
        const m = /^sha256:([0-9a-f]{64}) \/verity\/c09\/objects\/([0-9a-f]{2})\/([0-9a-f]{62})$/
          .exec(l);
        ok(m, `unexpected fsverity measure line: ${l}`);
        equal(m[1], m[2] + m[3]);
      }
      okStep("fsck256");
      okStep("fsck256_c09");
      equal(cfsReport("fsck256"), lines(out("fsck256_c09")).join("\n"));
    });

    await t.step("init without --insecure on a file system without fs-verity fails cleanly", () => {
      for (
        const [step, after, name] of [
          ["init_plain", "plain_after", "ext4 without verity"],
          ["init_tmpfs", "tmpfs_after", "tmpfs"],
        ]
      ) {
        equal(rc(step), 1, `${step} (${name}) exit code; stderr: ${err(step)}`);
        equal(lines(err(step)).length, 1, `${step}: one line: ${err(step)}`);
        match(err(step), /--insecure/);
        equal(out(step), "");
        ok(!/\brepo\b/.test(out(after)), `${step} left ${out(after)}`);
      }
    });

    await t.step("a flipped byte through the file system: same error kinds as cfsctl 0.9.4", () => {
      okStep("flip_enable");
      equal(rc("flipped_fsck"), 1, out("flipped_fsck"));
      ok(rc("flipped_fsck_c09") !== 0, out("flipped_fsck_c09"));
      const want = [
        `fsck: object-digest-mismatch: ${objectRel(flipSealed)}`,
        `fsck: object-verity-missing: ${objectRel(flipPlain)}`,
      ].sort();
      deepEqual(fsckErrors(out("flipped_fsck_c09")), want, out("flipped_fsck_c09"));
      deepEqual(fsckErrors(out("flipped_fsck")), want, out("flipped_fsck"));
      for (const n of ["flipped_fsck", "flipped_fsck_c09"]) {
        match(
          out(n),
          new RegExp(
            `object-digest-mismatch: ${objectRel(flipSealed)}: measured ${flippedSealedDigest}`,
          ),
        );
      }
    });

    await t.step("corruption under fs-verity: reads fail with EIO, the sealed digest stays", () => {
      okStep("tamper_blocks");
      equal(outputText(r, "tamper_before").trim(), "54", "first byte of the object is 'T'");
      equal(outputText(r, "tamper_after").trim(), "58", "changed to 'X' on the block device");
      ok(rc("cat_tampered") !== 0, "reading a corrupted verity file must fail");
      match(err("cat_tampered"), /Input\/output error/); // EIO
      match(outputText(r, "dmesg_verity.txt"), /FILE CORRUPTED/);
      okStep("measure_tampered");
      equal(out("measure_tampered"), out("obj_measure"), "FS_IOC_MEASURE_VERITY reads no data");
    });

    await t.step(
      "corruption under fs-verity: cfs fsck reads and reports it, 0.9.4 measures",
      () => {
        equal(rc("fsck_tampered"), 1, out("fsck_tampered"));
        const tampered = `fsck: object-verity-failed: ${objectRel(tamperHex)}`;
        ok(fsckErrors(out("fsck_tampered")).includes(tampered), out("fsck_tampered"));
        match(out("fsck_tampered"), /input\/output error/i);
        // cfsctl 0.9.4 only measures (no read), so it sees the earlier flips and nothing more.
        deepEqual(fsckErrors(out("fsck_tampered_c09")), fsckErrors(out("flipped_fsck_c09")));
      },
    );

    await t.step("corrupted image: image-objects says so, both fsck name the image", () => {
      okStep("tamper_image_blocks");
      ok(
        outputText(r, "tamper_image_before").trim() !== outputText(r, "tamper_image_after").trim(),
      );
      equal(rc("image_objects_tampered"), 1, err("image_objects_tampered"));
      console.log(`  image-objects on a corrupted image: ${err("image_objects_tampered").trim()}`);
      ok(!/missing/.test(err("image_objects_tampered")), err("image_objects_tampered"));
      match(err("image_objects_tampered"), /Input\/output error|corrupt|fs-verity/i);
      equal(rc("fsck_tampered_image"), 1, out("fsck_tampered_image"));
      ok(rc("fsck_tampered_image_c09") !== 0, out("fsck_tampered_image_c09"));
      const image = (s: string) => fsckErrors(s).filter((e) => e.includes(`images/${treeId512}`));
      equal(image(out("fsck_tampered_image")).length, 1, out("fsck_tampered_image"));
      deepEqual(image(out("fsck_tampered_image")), image(out("fsck_tampered_image_c09")));
    });

    console.log(`  total wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
