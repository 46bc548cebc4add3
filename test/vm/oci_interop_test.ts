/**
 * OCI pull interop with cfsctl 0.3.0 on the same repository directory, both ways, in ONE
 * QEMU boot (cfsctl needs fs-verity; this host's kernel lacks it, see guest_cfs.ts):
 *
 * 1. cfs -> cfsctl: `cfs oci pull oci:DIR:v1` into a secure sha256 repository (real
 *    fs-verity); then cfsctl on that directory: `oci compute-id` (plain and `--bootable`)
 *    and `oci dump` of the config equal ours, `cat` of every layer stream gives a tar whose
 *    sha256 is the diff_id, and `gc` behaves as on a repository cfsctl pulled itself (0.3.0's
 *    gc removes nothing, and it stops at the first named stream ref, its own included).
 *    cfs's own `fsck` and `oci fsck` are clean.
 * 2. cfsctl -> cfs: `cfsctl oci pull oci:DIR:v1` (through skopeo's image proxy, which runs in
 *    the guest) into a fresh directory; cfs opens it (upgrading it to meta.json), computes
 *    the same image ids, cats the same layers, and a `cfs oci pull` of the same image on top
 *    imports nothing: it reuses cfsctl's layer and config streams and only adds the
 *    manifest and the tag.
 *
 * cfsctl 0.3.0 has no `oci images`, `oci fsck` or `gc --dry-run` (composefs-rs added those
 * later); those are compared with cfs's output where they exist, else not at all.
 *
 * No skipping: missing QEMU, guest kernel, cfsctl or skopeo fail the test.
 *
 * @module
 */
import { equal, ok } from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { buildOciImage, SAMPLE_LAYERS } from "../fixtures/oci.ts";
import { requireTool } from "../cfs.ts";

const WORK = fileURLToPath(new URL("../.work/vm", import.meta.url));

Deno.test("oci pull interop with cfsctl 0.3.0 on one repository, both ways, in a QEMU guest", async () => {
  requireTool("skopeo", "apt-get install skopeo");
  const { runCfsInGuest, stepSeconds, outputText } = await import("./guest_cfs.ts");
  fs.mkdirSync(WORK, { recursive: true });
  const dir = fs.mkdtempSync(path.join(WORK, "oci-interop-"));
  try {
    const input = path.join(dir, "input");
    fs.mkdirSync(input);
    const built = await buildOciImage(path.join(input, "img"), {
      tag: "v1",
      compression: ["gzip", "zstd", "gzip", "zstd"],
      layers: [
        // Without the opaque-directory marker: cfsctl 0.3.0 does not apply it (see below).
        ...SAMPLE_LAYERS.map((l) => Array.isArray(l) ? l.filter((e) => e.type !== "opaque") : l),
        [
          { type: "dir", path: "boot" },
          { type: "file", path: "boot/vmlinuz", content: "k".repeat(3000) },
          { type: "file", path: "usr/share/big", content: "b".repeat(300000) },
          { type: "file", path: "usr/share/65", content: "c".repeat(65) },
        ],
      ],
    });
    const opq = await buildOciImage(path.join(input, "opq"), { tag: "v1", layers: SAMPLE_LAYERS });
    // The layouts' work directories (uncompressed tars) are not needed in the guest.
    fs.rmSync(`${built.dir}.work`, { recursive: true, force: true });
    fs.rmSync(`${opq.dir}.work`, { recursive: true, force: true });
    const cs = built.config.digest.slice(7);
    const L = "/trees/0/img";
    const lines = [
      "mkdir -p /etc/containers",
      `echo '{"default":[{"type":"insecureAcceptAnything"}]}' > /etc/containers/policy.json`,
      // 1. cfs -> cfsctl
      "mkdir -p /verity/a",
      "rec cfs-init cfs --repo /verity/a init --algorithm fsverity-sha256-12",
      `rec cfs-pull cfs --repo /verity/a --json oci pull oci:${L}:v1 sample`,
      "rec cfs-id cfs --repo /verity/a oci compute-id sample",
      "rec cfs-id-boot cfs --repo /verity/a oci compute-id --bootable sample",
      "rec cfs-dump cfs --repo /verity/a oci dump sample",
      `rec cfsctl-id cfsctl --repo /verity/a oci compute-id ${cs}`,
      `rec cfsctl-id-boot cfsctl --repo /verity/a oci compute-id --bootable ${cs}`,
      `rec cfsctl-dump cfsctl --repo /verity/a oci dump ${cs}`,
      ...built.layers.map((l, i) =>
        `rec cfsctl-cat-${i} sh -c "cfsctl --repo /verity/a cat ${l.diffId.slice(7)} | sha256sum"`
      ),
      "rec cfsctl-gc cfsctl --repo /verity/a gc",
      `rec cfs-pull-opq cfs --repo /verity/a oci pull oci:/trees/0/opq:v1 opq`,
      "rec cfs-dump-opq cfs --repo /verity/a oci dump opq",
      `rec cfsctl-dump-opq cfsctl --repo /verity/a oci dump ${opq.config.digest.slice(7)}`,
      "rec cfs-fsck cfs --repo /verity/a fsck",
      "rec cfs-ofsck cfs --repo /verity/a oci fsck",
      // 2. cfsctl -> cfs
      "mkdir -p /verity/b",
      `rec cfsctl-pull cfsctl --repo /verity/b oci pull oci:${L}:v1 theirs`,
      // cfsctl's gc needs images/ (which its pull does not make) to get as far as streams.
      "mkdir -p /verity/b/images/refs",
      "rec b-cfsctl-gc cfsctl --repo /verity/b gc",
      `rec b-cfs-id cfs --repo /verity/b oci compute-id ${cs}`,
      `rec b-cfs-id-ref cfs --repo /verity/b oci compute-id refs/theirs`,
      `rec b-cfs-id-boot cfs --repo /verity/b oci compute-id --bootable ${cs}`,
      ...built.layers.map((l, i) =>
        `rec b-cfs-cat-${i} sh -c "cfs --repo /verity/b cat ${l.diffId.slice(7)} | sha256sum"`
      ),
      `rec b-cfs-pull cfs --repo /verity/b --json oci pull oci:${L}:v1 ours`,
      "rec b-cfs-fsck cfs --repo /verity/b fsck",
      "rec b-cfs-ofsck cfs --repo /verity/b oci fsck",
      `rec b-cfsctl-id cfsctl --repo /verity/b oci compute-id ${cs}`,
    ];
    const r = await runCfsInGuest({
      script: lines.join("\n"),
      trees: [input],
      cfsctl: true,
      binaries: ["/usr/bin/skopeo", "/usr/bin/sha256sum"],
      repoDiskMiB: 512,
      timeoutMs: 600_000,
      log: (s) => console.log(s),
    });
    console.log(JSON.stringify({ timings: r.timings, steps: stepSeconds(r) }, null, 1));
    const rc = (s: string) => outputText(r, `${s}.rc`).trim();
    const out = (s: string) => outputText(r, `${s}.out`);
    const check = (s: string) => equal(rc(s), "0", `${s} failed: ${outputText(r, `${s}.err`)}`);

    // 1. cfs -> cfsctl
    for (const s of ["cfs-init", "cfs-pull", "cfs-id", "cfs-id-boot", "cfs-dump"]) check(s);
    for (const s of ["cfsctl-id", "cfsctl-id-boot", "cfsctl-dump"]) check(s);
    const pulled = JSON.parse(out("cfs-pull"));
    equal(pulled.config, built.config.digest);
    equal(out("cfsctl-id").trim(), out("cfs-id").trim(), "cfsctl oci compute-id on our pull");
    equal(out("cfsctl-id-boot").trim(), out("cfs-id-boot").trim(), "--bootable too");
    ok(out("cfs-dump").length > 0);
    equal(out("cfsctl-dump"), out("cfs-dump"), "cfsctl oci dump of our pull");
    built.layers.forEach((l, i) => {
      check(`cfsctl-cat-${i}`);
      equal(out(`cfsctl-cat-${i}`).split(" ")[0], l.diffId.slice(7), `cfsctl cat layer ${i}`);
    });
    // cfsctl 0.3.0's gc reads every ref below streams/refs as an object path (`../XX/YYY`);
    // a named stream ref points at `../<sha256>` (cfsctl's own `oci pull IMAGE NAME` makes one),
    // so it fails on its own repository exactly as on ours: same exit, same message.
    equal(rc("cfsctl-gc"), rc("b-cfsctl-gc"), "cfsctl gc: same result on our pull and on its own");
    equal(outputText(r, "cfsctl-gc.err"), outputText(r, "b-cfsctl-gc.err"));
    // cfsctl 0.3.0 compares the name after `.wh.` with `.wh.opq` instead of `.wh..opq`, so it
    // never applies an opaque-directory marker (`.wh..wh..opq`, OCI image spec; composefs-rs
    // fixed this later). cfs follows the spec: the dumps differ exactly in the opaque
    // directory, whose old entries cfsctl keeps.
    for (const s of ["cfs-pull-opq", "cfs-dump-opq", "cfsctl-dump-opq"]) check(s);
    const theirs = out("cfsctl-dump-opq").split("\n");
    const ours = out("cfs-dump-opq").split("\n");
    const onlyTheirs = theirs.filter((l) => !ours.includes(l)).map((l) => l.split(" ")[0]);
    const onlyOurs = ours.filter((l) => !theirs.includes(l)).map((l) => l.split(" ")[0]);
    equal(onlyTheirs.join(" "), "/opq /opq/old1 /opq/olddir /opq/olddir/f");
    equal(onlyOurs.join(" "), "/opq");
    check("cfs-fsck");
    check("cfs-ofsck");

    // 2. cfsctl -> cfs
    check("cfsctl-pull");
    ok(out("cfsctl-pull").includes(`sha256 ${cs}`), out("cfsctl-pull"));
    for (const s of ["b-cfs-id", "b-cfs-id-ref", "b-cfs-id-boot", "b-cfs-pull", "b-cfsctl-id"]) {
      check(s);
    }
    equal(out("b-cfs-id").trim(), out("cfs-id").trim(), "cfs on cfsctl's pull: same image id");
    equal(out("b-cfs-id-ref").trim(), out("cfs-id").trim());
    equal(out("b-cfs-id-boot").trim(), out("cfs-id-boot").trim());
    built.layers.forEach((l, i) => {
      check(`b-cfs-cat-${i}`);
      equal(
        out(`b-cfs-cat-${i}`).split(" ")[0],
        l.diffId.slice(7),
        `cfs cat of cfsctl's layer ${i}`,
      );
    });
    const again = JSON.parse(out("b-cfs-pull"));
    equal(again.layersImported, 0, "cfs reuses the layers cfsctl stored");
    equal(again.existing, true, "and the config stream");
    equal(again.verity, out("cfsctl-pull").split("\n")[1].replace("verity ", "").trim());
    check("b-cfs-fsck");
    check("b-cfs-ofsck");
    equal(out("b-cfsctl-id").trim(), out("cfs-id").trim());
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
