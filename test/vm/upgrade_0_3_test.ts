/**
 * Repositories made by cfsctl 0.3.0, upgraded by cfs to composefs-rs 0.9.4's format, in ONE
 * QEMU boot (cfsctl 0.3.0 stores everything with fs-verity, which this host's kernel lacks; see
 * guest_cfs.ts). The image is test/vm/oci_fixture.ts's: the 3-layer whiteout/hardlink fixture
 * plus a layer that makes it bootable and gives it external objects.
 *
 * In the guest, on an ext4 file system with the verity feature:
 *
 * 1. cfsctl 0.3.0 makes a secure sha256 repository as it does (no meta.json): `oci pull
 *    oci:DIR:v1 sample` through skopeo's image proxy (`streams/<sha256>` for the layers and the
 *    config, `streams/refs/sample` to the config) and `oci import-layer HEX extra` of a layer
 *    tar that no image has.
 * 2. cfs's read-only commands on it (`fsck`, `cat`, `gc --dry-run`) change nothing: a listing
 *    of every path (type, size, mode, ns mtime, link target) and the sha256 of every file is
 *    the same before and after; fsck says `meta.json: absent` and warns about the 0.3.0 streams.
 * 3. `cfs pull` of the same image upgrades the repository first (lib/oci/upgrade.ts): meta.json
 *    (sha256 inferred, EROFS V1 as 0.9.4's `open_upgrade`), the streams rewritten in the 0.9.4
 *    format under their 0.9.4 names; the pull then imports no layer (it finds the converted
 *    ones). The old names resolve to the converted streams: `refs/sample` to
 *    `oci-config-sha256:<config>`, `refs/extra` to `oci-layer-sha256:<diff_id>` (`cat` of cfs
 *    and of cfsctl 0.9.4: sha256sum = the digest). The image ids (`cfs oci compute-id`, the
 *    bootable id `cfs pull` reports) equal cfsctl 0.9.4's `oci compute-id` of the same image
 *    pulled fresh on the host, and cfsctl 0.9.4 computes them on the upgraded repository too
 *    (by tag, and by `@<config digest>`, which it reads from the config stream alone). `cfs
 *    fsck` prints what cfsctl 0.9.4's `fsck` prints (clean), `oci fsck` passes; after `cfs gc`
 *    (which collects the 0.3.0 stream objects and keeps both names) cfsctl 0.9.4's `gc
 *    --dry-run` finds nothing more and its `fsck` is clean.
 * 4. A second cfsctl 0.3.0 repository gets `cfs oci pull` instead, which converts the 0.3.0
 *    streams too (but, as cfsctl 0.9.4's `oci pull`, makes no images for other tags): the image
 *    id is right, `refs/sample` names the converted config, and both fsck are clean (cfsctl
 *    0.9.4 cannot open a 0.3.0 stream: `stream-open-failed`).
 *
 * No skipping: missing QEMU, guest kernel, either cfsctl or skopeo fail the test.
 *
 * @module
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { buildOciImage, type LayerSpec } from "../fixtures/oci.ts";
import { requireTool } from "../cfs.ts";
import { buildGuestImage, oracleImageIds } from "./oci_fixture.ts";
import { checkGuestPrerequisites, outputText, runCfsInGuest, stepSeconds } from "./guest_cfs.ts";

const WORK = fileURLToPath(new URL("../.work/vm", import.meta.url));
const SKOPEO = "/usr/bin/skopeo";
const SHA256SUM = "/usr/bin/sha256sum";
/** GNU find: busybox's has no -printf. */
const FIND = "/usr/bin/find";

/** The layer imported on its own with `oci import-layer`: in no image. */
const EXTRA_LAYER: LayerSpec = [
  { type: "file", path: "extra/data", content: "e".repeat(5000) },
  { type: "file", path: "extra/small", content: "s\n" },
  { type: "symlink", path: "extra/link", target: "data" },
];

/** The guest script; every step's output, exit code and time land in `$OUT/<step>.*`. */
function guestScript(o: { manifest: string; config: string; extraHex: string }): string {
  const I = "oci:/trees/0/img:v1";
  const bootcTag = `localhost/bootc-${o.manifest}`;
  // Each cfs call starts Deno under TCG (2 s on an idle host, far more on a busy one): the
  // script makes few of them and lets the native cfsctl 0.9.4 do the cheap cross-checks.
  return `
mkdir -p /etc/containers
echo '{"default":[{"type":"insecureAcceptAnything"}]}' > /etc/containers/policy.json
# snap DIR: every path (type, size, mode, ns mtime, link target), then the sha256 of every file
snap() {
  ${FIND} "$1" -printf '%P %y %s %m %T@ %l\\n' | sort
  ${FIND} "$1" -type f -exec sha256sum {} + | sort
}
# sum STEP CMD...: the sha256 of CMD's stdout; CMD's failure fails the step
sum() { _n=$1; shift; rec "$_n" sh -c 'set -o pipefail; "$@" | sha256sum' sh "$@"; }
# links STEP DIR: "name target" of every stream link and ref below DIR/streams
links() { rec "$1" sh -c 'cd "$1/streams" && for f in * refs/* refs/oci/*; do [ -L "$f" ] && echo "$f $(readlink "$f")"; done; true' sh "$2"; }
R=/verity/old
R2=/verity/old2
mkdir -p $R $R2

# 1. cfsctl 0.3.0 makes the repository
rec c03_pull cfsctl03 --repo $R oci pull ${I} sample
rec c03_import sh -c 'cfsctl03 --repo $1 oci import-layer $2 extra < /trees/0/extra.tar' sh $R ${o.extraHex}
links c03_streams $R

# 2. read-only commands change nothing
snap $R > $OUT/snap_before.txt
rec ro_fsck cfs --repo $R fsck
sum ro_cat_extra cfs --repo $R cat refs/extra
rec ro_gc_dry cfs --repo $R gc --dry-run
snap $R > $OUT/snap_after.txt

# 3. cfs pull upgrades, then pulls
rec up_pull cfs --repo $R --json pull ${I}
links up_streams $R
rec up_meta cat $R/meta.json
sum up_cat_config cfs --repo $R cat refs/sample
sum up_cat_extra cfs --repo $R cat refs/extra
sum up_c09_cat_config cfsctl09 --repo $R cat refs/sample
sum up_c09_cat_extra cfsctl09 --repo $R cat refs/extra
rec up_id cfs --repo $R oci compute-id ${bootcTag}
rec up_c09_id cfsctl09 --repo $R oci compute-id ${bootcTag}
rec up_c09_id_boot cfsctl09 --repo $R oci compute-id --bootable ${bootcTag}
rec up_c09_id_config cfsctl09 --repo $R oci compute-id @${o.config}
rec up_id_config cfs --repo $R oci compute-id @${o.config}
rec up_id_ref cfs --repo $R oci compute-id refs/sample
rec up_fsck cfs --repo $R fsck
rec up_c09_fsck cfsctl09 --repo $R fsck
rec up_c09_ofsck cfsctl09 --repo $R oci fsck
rec gc cfs --repo $R gc
rec gc_c09_dry cfsctl09 --repo $R gc --dry-run
sum gc_c09_cat_config cfsctl09 --repo $R cat refs/sample
sum gc_c09_cat_extra cfsctl09 --repo $R cat refs/extra
rec gc_c09_fsck cfsctl09 --repo $R fsck

# 4. cfs oci pull into another 0.3.0 repository
rec op_c03_pull cfsctl03 --repo $R2 oci pull ${I} sample
rec op_pull cfs --repo $R2 oci pull ${I} mine
rec op_c09_id cfsctl09 --repo $R2 oci compute-id mine
rec op_fsck cfs --repo $R2 fsck
rec op_c09_fsck cfsctl09 --repo $R2 fsck
links op_streams $R2
true
`;
}

const lines = (s: string) => s.split("\n").filter((l) => l.trim() !== "");

Deno.test("repositories of cfsctl 0.3.0: read-only use, cfs pull upgrade, cfsctl 0.9.4 agrees (QEMU)", async (t) => {
  requireTool("skopeo", "apt-get install skopeo");
  checkGuestPrerequisites({ cfsctl: true, cfsctl09: true, binaries: [SKOPEO, SHA256SUM, FIND] });
  fs.mkdirSync(WORK, { recursive: true });
  const dir = fs.mkdtempSync(path.join(WORK, "upgrade-"));
  const t0 = performance.now();
  try {
    const input = path.join(dir, "input");
    fs.mkdirSync(input);
    const img = await buildGuestImage(path.join(input, "img"));
    const other = await buildOciImage(path.join(dir, "other"), { layers: [EXTRA_LAYER] });
    fs.copyFileSync(other.layers[0].tarPath, path.join(input, "extra.tar"));
    const extraDiffId = other.layers[0].diffId; // sha256sum of the tar
    // The expected ids: cfsctl 0.9.4's of the same image pulled fresh on the host, with
    // sha256 as cfsctl 0.3.0's repository.
    const want = await oracleImageIds(img.dir, path.join(dir, "fresh"), "fsverity-sha256-12");
    const wantId = want.plain;
    const wantBoot = want.bootable;
    match(wantId, /^[0-9a-f]{64}$/);

    const r = await runCfsInGuest({
      script: guestScript({
        manifest: img.manifest.digest,
        config: img.config.digest,
        extraHex: extraDiffId.slice(7),
      }),
      trees: [input],
      cfsctl: true,
      cfsctl09: true,
      binaries: [SKOPEO, SHA256SUM, FIND],
      repoDiskMiB: 512,
      timeoutMs: 900_000,
      keepWorkDir: Deno.env.get("KEEP") === "1",
      log: (s) => console.log(`  ${s}`),
    });
    const out = (n: string) => outputText(r, `${n}.out`);
    const err = (n: string) => outputText(r, `${n}.err`);
    const rc = (n: string) => Number(outputText(r, `${n}.rc`).trim() || NaN);
    const okStep = (n: string) =>
      equal(rc(n), 0, `${n} failed (exit ${rc(n)}): ${err(n)}${out(n)}`);
    const sum = (n: string) => {
      okStep(n);
      return `sha256:${out(n).split(" ")[0]}`;
    };
    /** `name target` lines of a stream listing, as a map. */
    const links = (n: string) =>
      new Map(lines(out(n)).map((l) => l.split(" ") as [string, string]));
    console.log(`  guest seconds per step: ${JSON.stringify(stepSeconds(r))}`);
    console.log(`  timings: ${JSON.stringify(r.timings)}`);
    equal(r.exitCode, 0, `guest script failed:\n${r.log}`);
    const cfgHex = img.config.digest.slice(7);
    const extraHex = extraDiffId.slice(7);

    await t.step("cfsctl 0.3.0 wrote its format: streams by sha256, refs to them", () => {
      okStep("c03_pull");
      match(out("c03_pull"), new RegExp(`sha256 ${cfgHex}`));
      okStep("c03_import");
      const s = links("c03_streams");
      equal(s.get("refs/sample"), `../${cfgHex}`);
      equal(s.get("refs/extra"), `../${extraHex}`);
      for (const l of img.layers) ok(s.has(l.diffId.slice(7)), `layer stream ${l.diffId}`);
    });

    await t.step("cfs read-only commands leave a cfsctl 0.3.0 repository as it was", () => {
      const before = outputText(r, "snap_before.txt");
      ok(!/^meta\.json /m.test(before), "cfsctl 0.3.0 writes no meta.json");
      ok(lines(before).length > 20, before);
      equal(outputText(r, "snap_after.txt"), before, "the repository changed");
      okStep("ro_fsck");
      match(out("ro_fsck"), /^meta\.json: absent$/m);
      match(out("ro_fsck"), /^status: ok$/m);
      match(out("ro_fsck"), /warning: legacy-stream: streams\//);
      equal(sum("ro_cat_extra"), extraDiffId);
      okStep("ro_gc_dry");
      match(out("ro_gc_dry"), /^Dry run/);
    });

    await t.step("cfs pull converts the 0.3.0 streams and reuses them", () => {
      okStep("up_pull");
      const res = JSON.parse(lines(out("up_pull")).at(-1)!).result;
      equal(res.upgraded, true, "meta.json written");
      equal(res.manifest, img.manifest.digest);
      equal(res.config, img.config.digest);
      equal(res.layersImported, 0, "the converted layer streams are found by their 0.9.4 names");
      const meta = JSON.parse(out("up_meta"));
      equal(meta.algorithm, "fsverity-sha256-12", "inferred from the object names");
      deepEqual(meta.erofs_formats, { default: 1 });
      const s = links("up_streams");
      equal(s.get("refs/sample"), `../oci-config-${img.config.digest}`);
      equal(s.get("refs/extra"), `../oci-layer-${extraDiffId}`);
      equal(
        s.get(`refs/oci/localhost%2Fbootc-${img.manifest.digest}`),
        `../../oci-manifest-${img.manifest.digest}`,
      );
      for (const name of s.keys()) {
        ok(!/^[0-9a-f]{64}$/.test(name), `0.3.0 stream name left: ${name}`);
      }
      for (const l of img.layers) ok(s.has(`oci-layer-${l.diffId}`), `layer ${l.diffId}`);
      ok(s.has(`oci-layer-${extraDiffId}`));
    });

    await t.step("the old names resolve to the converted streams, for cfs and cfsctl 0.9.4", () => {
      equal(sum("up_cat_config"), img.config.digest, "cfs cat refs/sample");
      equal(sum("up_cat_extra"), extraDiffId, "cfs cat refs/extra");
      equal(sum("up_c09_cat_config"), img.config.digest, "cfsctl 0.9.4 cat refs/sample");
      equal(sum("up_c09_cat_extra"), extraDiffId, "cfsctl 0.9.4 cat refs/extra");
    });

    await t.step("image ids equal cfsctl 0.9.4's of a fresh pull", () => {
      okStep("up_id");
      equal(out("up_id").trim(), wantId, "cfs oci compute-id");
      const res = JSON.parse(lines(out("up_pull")).at(-1)!).result;
      equal(res.imageId, wantBoot, "the bootable image cfs pull wrote");
      okStep("up_c09_id");
      equal(out("up_c09_id").trim(), wantId, "cfsctl 0.9.4 on the upgraded repository");
      okStep("up_c09_id_boot");
      equal(out("up_c09_id_boot").trim(), wantBoot);
      // 0.9.4 reads `@DIGEST` in compute-id as a config digest and opens the config stream
      // directly: the converted config stream alone is enough.
      okStep("up_c09_id_config");
      equal(out("up_c09_id_config").trim(), wantId, "cfsctl 0.9.4, @config digest");
      okStep("up_id_config");
      equal(out("up_id_config").trim(), wantId, "cfs, @config digest");
      // cfsctl 0.3.0's own name for the pulled image, a stream ref to its config.
      okStep("up_id_ref");
      equal(out("up_id_ref").trim(), wantId, "cfs oci compute-id refs/sample");
    });

    await t.step("fsck of cfs and of cfsctl 0.9.4 are clean after the upgrade and after gc", () => {
      okStep("up_fsck");
      okStep("up_c09_fsck");
      match(out("up_fsck"), /^status: ok$/m);
      ok(!/legacy-stream/.test(out("up_fsck")), out("up_fsck"));
      equal(
        lines(out("up_fsck")).filter((l) => !l.startsWith("warning: ")).join("\n"),
        lines(out("up_c09_fsck")).join("\n"),
        "cfs fsck prints what cfsctl 0.9.4 fsck prints",
      );
      okStep("up_c09_ofsck");
      okStep("gc");
      match(out("gc"), /^Objects: [1-9]\d* removed/m, "the 0.3.0 stream objects");
      okStep("gc_c09_dry");
      deepEqual(
        lines(out("gc_c09_dry")),
        ["Dry run (no files deleted):", "Objects: 0 removed (0 bytes)"],
        "cfsctl 0.9.4 finds nothing more to collect after cfs gc",
      );
      equal(sum("gc_c09_cat_config"), img.config.digest, "refs/sample survives gc");
      equal(sum("gc_c09_cat_extra"), extraDiffId, "refs/extra survives gc");
      okStep("gc_c09_fsck");
      match(out("gc_c09_fsck"), /^status: ok$/m);
    });

    await t.step("cfs oci pull into a cfsctl 0.3.0 repository converts its streams too", () => {
      okStep("op_c03_pull");
      okStep("op_pull");
      okStep("op_c09_id");
      equal(out("op_c09_id").trim(), wantId, "the image cfs oci pull stored");
      const s = links("op_streams");
      equal(s.get("refs/sample"), `../oci-config-${img.config.digest}`);
      for (const name of s.keys()) {
        ok(!/^[0-9a-f]{64}$/.test(name), `0.3.0 stream name left: ${name}`);
      }
      okStep("op_fsck");
      ok(!/legacy-stream/.test(out("op_fsck")), out("op_fsck"));
      okStep("op_c09_fsck");
      match(out("op_c09_fsck"), /^status: ok$/m);
    });
    console.log(`  total wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
