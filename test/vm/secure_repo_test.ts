/**
 * Secure repositories with real fs-verity: the cfs CLI runs inside a QEMU guest (Debian's 6.1
 * kernel has CONFIG_FS_VERITY; this host's kernel does not) on an ext4 file system made with
 * `-O verity`, in ONE boot. What it pins:
 *
 * - `cfs init` (secure, fsverity-sha512-12) enables fs-verity on `meta.json`: the kernel's
 *   measurement (`fsverity measure`) equals the user-space digest (`fsverity digest`);
 * - `create-image` gives every object fs-verity with the digest that is its name, and the
 *   image ID the host computes for the same tree; `fsck` passes;
 * - the kernel refuses to open a verity file for writing (recorded: EPERM), so corruption is
 *   made underneath: the file system is unmounted, one byte of the object's first data block
 *   (found with `debugfs -R blocks`) is changed on the block device, and it is mounted again;
 *   then reading the object fails with EIO and `cfs fsck` must report the object; the same
 *   done to the image must make `cfs image-objects` fail with a message about the corruption
 *   (not "missing") and `fsck` name the image;
 * - a fsverity-sha256-12 repository: the image ID equals `cfsctl compute-id` (composefs-rs
 *   0.3.0, run in the same guest), `cfsctl image-objects` reads our repository and lists the
 *   same objects as `cfs image-objects`, and `cfs fsck` accepts the repository cfsctl wrote;
 * - `cfs digest --algorithm sha512 OBJECT` prints what `fsverity measure OBJECT` prints;
 * - `cfs init` without `--insecure` on a file system without fs-verity (ext4 without the
 *   feature, and tmpfs) exits 1 with one line that mentions `--insecure` and leaves no
 *   `meta.json` (nor the directory it created).
 *
 * No skipping: missing QEMU, guest kernel, cfsctl, fsverity or debugfs fail the test.
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

const WORK = fileURLToPath(new URL("../.work", import.meta.url));
const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const FSVERITY = "/usr/bin/fsverity";
const DEBUGFS = "/usr/sbin/debugfs";

/** The file whose object gets corrupted; its first byte is 'T'. */
const TAMPER_FILE = "data/tamper-me";

/** A small tree: files above and at the 64-byte inline limit, a multi-level Merkle tree, a duplicate. */
function makeTree(root: string): void {
  fs.mkdirSync(path.join(root, "data/sub"), { recursive: true });
  fs.writeFileSync(path.join(root, TAMPER_FILE), "T" + "tamper me please\n".repeat(600)); // 10201 B
  const big = new Uint8Array((1 << 20) + 1); // 257 blocks: two Merkle levels with sha256
  for (let i = 0; i < big.length; i++) big[i] = (i * 131 + (i >> 9)) & 0xff;
  fs.writeFileSync(path.join(root, "data/sub/big"), big);
  fs.writeFileSync(path.join(root, "data/65"), "6".repeat(65)); // smallest external file
  fs.writeFileSync(path.join(root, "data/64"), "4".repeat(64)); // inline
  fs.writeFileSync(path.join(root, "data/copy"), fs.readFileSync(path.join(root, TAMPER_FILE)));
  fs.writeFileSync(path.join(root, "hello"), "hello\n");
  fs.writeFileSync(path.join(root, "empty"), "");
  fs.symlinkSync("data/65", path.join(root, "link"));
  for (const p of ["", "data", "data/sub"]) {
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

/** `cfs compute-id` on the host (user space digests). */
function hostComputeId(tree: string, alg: "sha256" | "sha512"): string {
  return execFileSync(Deno.execPath(), [
    "run",
    "-A",
    "--quiet",
    CLI,
    "compute-id",
    "--algorithm",
    alg,
    tree,
  ], {
    encoding: "utf8",
  }).trim();
}

/** The guest script: each step's output, errors, exit code and time land in $OUT/<step>.*. */
function guestScript(tamperHex: string): string {
  const obj = `/verity/repo/objects/${tamperHex.slice(0, 2)}/${tamperHex.slice(2)}`;
  return `
OBJ=${obj}
measure_all() { for f in "$1"/objects/*/*; do fsverity measure "$f" || echo "FAILED $f"; done; }

# --- secure sha512 repository ---
rec init cfs init /verity/repo
rec meta_measure fsverity measure /verity/repo/meta.json
rec meta_digest fsverity digest --hash-alg=sha512 /verity/repo/meta.json
cp /verity/repo/meta.json "$OUT/meta.json"
rec create cfs --repo /verity/repo create-image /trees/0 small
rec objects_measure measure_all /verity/repo
rec fsck cfs --repo /verity/repo fsck
rec image_objects cfs --repo /verity/repo image-objects small
rec digest cfs digest --algorithm sha512 "$OBJ"
rec obj_measure fsverity measure "$OBJ"
# the kernel refuses writers on a verity file
rec write_append sh -c 'echo x >> "$1"' sh "$OBJ"
rec write_dd dd if=/dev/zero of="$OBJ" bs=1 count=1 conv=notrunc
rec truncate_obj truncate -s 0 "$OBJ"

# --- sha256 repository, cfsctl in the same guest ---
rec init256 cfs init --algorithm fsverity-sha256-12 /verity/repo256
rec create256 cfs --repo /verity/repo256 create-image /trees/0 small
id256=$(sed 's/^sha256://' "$OUT/create256.out")
mkdir -p /verity/cfsctl
rec cfsctl_id cfsctl --repo /verity/cfsctl compute-id /trees/0
rec cfsctl_objects cfsctl --repo /verity/repo256 image-objects "$id256"
rec image_objects256 cfs --repo /verity/repo256 image-objects small
rec objects256_measure measure_all /verity/repo256
rec fsck256 cfs --repo /verity/repo256 fsck
rec cfsctl_repo_measure measure_all /verity/cfsctl
rec fsck_cfsctl_repo cfs --repo /verity/cfsctl fsck

# --- no fs-verity: ext4 without the feature, and tmpfs ---
rec init_plain cfs init /plain/repo
rec plain_after ls -la /plain
mkdir -p /tmp/t
rec init_tmpfs cfs init /tmp/t/repo
rec tmpfs_after ls -la /tmp/t

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
rec cat_other_ok sh -c 'for f in /verity/repo/objects/*/*; do [ "$f" = "$1" ] || cat "$f"; done > /dev/null' sh "$OBJ"
rec measure_tampered fsverity measure "$OBJ"
rec fsck_tampered cfs --repo /verity/repo fsck
rec fsck_tampered_json cfs --repo /verity/repo fsck --json
# the image itself
img=/verity/repo/images/$(sed 's/^sha512://' "$OUT/create.out")
corrupt tamper_image "$(readlink -f "$img")"
rec image_objects_tampered cfs --repo /verity/repo image-objects small
rec fsck_tampered_image cfs --repo /verity/repo fsck
dmesg | grep -i verity > "$OUT/dmesg_verity.txt"
true
`;
}

const lines = (s: string) => s.split("\n").filter((l) => l.trim() !== "");

/** One boot, then one step per behaviour, so that a failure names what broke. */
Deno.test("secure repository with real fs-verity (QEMU guest)", async (t) => {
  // Missing tools fail here with an install hint: no skipping.
  requireCommand("fsverity", "apt-get install fsverity");
  requireCommand("debugfs", "apt-get install e2fsprogs");
  checkGuestPrerequisites({ cfsctl: true, binaries: [FSVERITY, DEBUGFS] });
  fs.mkdirSync(WORK, { recursive: true });
  const dir = fs.mkdtempSync(path.join(WORK, "secure-repo-test-"));
  const t0 = performance.now();
  try {
    const tree = path.join(dir, "tree");
    fs.mkdirSync(tree);
    makeTree(tree);
    // Expected object names, from the host's user-space `fsverity digest`.
    const externals = ["data/tamper-me", "data/sub/big", "data/65", "data/copy"];
    const want512 = new Set(externals.map((f) => hostFsverityDigest(path.join(tree, f), "sha512")));
    const want256 = new Set(externals.map((f) => hostFsverityDigest(path.join(tree, f), "sha256")));
    equal(want512.size, 3, "data/copy duplicates the tamper file");
    const tamperHex = hostFsverityDigest(path.join(tree, TAMPER_FILE), "sha512");
    const hostId512 = hostComputeId(tree, "sha512");
    const hostId256 = hostComputeId(tree, "sha256");

    const r = await runCfsInGuest({
      script: guestScript(tamperHex),
      trees: [tree],
      repoDiskMiB: 256,
      plainDiskMiB: 64,
      cfsctl: true,
      binaries: [FSVERITY, DEBUGFS],
      timeoutMs: 240_000,
      keepWorkDir: Deno.env.get("KEEP") === "1",
      log: (s) => console.log(`  ${s}`),
    });
    const out = (n: string) => outputText(r, `${n}.out`);
    const err = (n: string) => outputText(r, `${n}.err`);
    const rc = (n: string) => Number(outputText(r, `${n}.rc`).trim() || NaN);
    const okStep = (n: string) =>
      equal(rc(n), 0, `${n} failed (exit ${rc(n)}): ${err(n)}${out(n)}`);
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

    await t.step(
      "create-image seals every object with the digest that is its name; fsck passes",
      () => {
        okStep("create");
        equal(
          out("create").trim(),
          `sha512:${hostId512}`,
          "secure create-image ID = host compute-id",
        );
        okStep("objects_measure");
        const measured = lines(out("objects_measure")).map((l) => {
          const m =
            /^sha512:([0-9a-f]{128}) \/verity\/repo\/objects\/([0-9a-f]{2})\/([0-9a-f]{126})$/.exec(
              l,
            );
          ok(m, `unexpected fsverity measure line: ${l}`);
          equal(m[1], m[2] + m[3], `object ${m[2]}/${m[3]} is sealed with digest ${m[1]}`);
          return m[1];
        });
        deepEqual(
          new Set(measured),
          new Set([...want512, hostId512]),
          "objects = large files + image",
        );
        equal(measured.length, 4);
        okStep("fsck");
        match(out("fsck"), /^ok: 4 objects, 1 images/m);
        okStep("image_objects");
        deepEqual(lines(out("image_objects")), [...want512].sort().map((h) => `sha512:${h}`));
      },
    );

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

    await t.step(
      "fsverity-sha256-12 repository: image ID and objects agree with cfsctl 0.3.0",
      () => {
        okStep("init256");
        okStep("create256");
        okStep("cfsctl_id");
        equal(
          out("create256").trim(),
          `sha256:${out("cfsctl_id").trim()}`,
          "cfs create-image ID = cfsctl compute-id",
        );
        equal(out("cfsctl_id").trim(), hostId256);
        okStep("cfsctl_objects");
        okStep("image_objects256");
        const norm = (s: string) => lines(s).map((l) => l.replace(/^sha256:/, "")).sort();
        deepEqual(
          norm(out("cfsctl_objects")),
          norm(out("image_objects256")),
          "cfsctl image-objects = cfs image-objects",
        );
        deepEqual(new Set(norm(out("image_objects256"))), want256);
        okStep("objects256_measure");
        equal(lines(out("objects256_measure")).length, 4);
        for (const l of lines(out("objects256_measure"))) {
          const m =
            /^sha256:([0-9a-f]{64}) \/verity\/repo256\/objects\/([0-9a-f]{2})\/([0-9a-f]{62})$/
              .exec(l);
          ok(m, `unexpected fsverity measure line: ${l}`);
          equal(m[1], m[2] + m[3]);
        }
        okStep("fsck256");
        // cfsctl's own repository (no meta.json): its objects are sealed, and cfs fsck accepts it.
        okStep("cfsctl_repo_measure");
        ok(!/FAILED/.test(out("cfsctl_repo_measure")), out("cfsctl_repo_measure"));
        okStep("fsck_cfsctl_repo");
      },
    );

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

    await t.step("corruption under fs-verity: reads fail with EIO, the sealed digest stays", () => {
      okStep("tamper_blocks");
      equal(outputText(r, "tamper_before").trim(), "54", "first byte of the object is 'T'");
      equal(outputText(r, "tamper_after").trim(), "58", "changed to 'X' on the block device");
      ok(rc("cat_tampered") !== 0, "reading a corrupted verity file must fail");
      match(err("cat_tampered"), /Input\/output error/); // EIO
      match(outputText(r, "dmesg_verity.txt"), /FILE CORRUPTED/);
      okStep("cat_other_ok");
      okStep("measure_tampered");
      equal(out("measure_tampered"), out("obj_measure"), "FS_IOC_MEASURE_VERITY reads no data");
    });

    await t.step("corruption under fs-verity: fsck exits 1 and names the object", () => {
      console.log(
        `  fsck after corruption: exit ${rc("fsck_tampered")}: ${out("fsck_tampered").trim()}`,
      );
      equal(
        rc("fsck_tampered"),
        1,
        `fsck must fail on a corrupted object:\n${out("fsck_tampered")}`,
      );
      match(
        out("fsck_tampered"),
        new RegExp(`error: .*${tamperHex.slice(0, 2)}/${tamperHex.slice(2)}`),
      );
      const report = JSON.parse(out("fsck_tampered_json"));
      equal(report.ok, false);
      ok(report.problems.some((p: { path: string }) => p.path.includes(tamperHex.slice(2))));
    });

    await t.step(
      "corrupted image: image-objects fails with a message about corruption, not a missing object",
      () => {
        okStep("tamper_image_blocks");
        ok(
          outputText(r, "tamper_image_before").trim() !==
            outputText(r, "tamper_image_after").trim(),
        );
        equal(rc("image_objects_tampered"), 1, err("image_objects_tampered"));
        console.log(
          `  image-objects on a corrupted image: ${err("image_objects_tampered").trim()}`,
        );
        ok(
          !/missing/.test(err("image_objects_tampered")),
          `misleading: ${err("image_objects_tampered")}`,
        );
        match(err("image_objects_tampered"), /Input\/output error|corrupt|fs-verity/i);
        equal(rc("fsck_tampered_image"), 1, out("fsck_tampered_image"));
        match(out("fsck_tampered_image"), new RegExp(`error: /verity/repo/images/${hostId512}`));
      },
    );

    console.log(`  total wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
