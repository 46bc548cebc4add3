/**
 * Splitstream interop with cfsctl 0.3.0, both ways, in ONE QEMU boot (cfsctl needs fs-verity,
 * which this host's kernel lacks; see guest_cfs.ts):
 *
 * 1. cfsctl -> cfs: `cfsctl oci import-layer` splits a real layer tar (GNU tar, PAX format:
 *    files above and below 64 bytes, a hardlink, a symlink, xattrs, a long name; and the
 *    debootstrap'd Debian rootfs when present) into its repository; our reader parses the
 *    stream object cfsctl wrote and `cat`s it with cfsctl's objects: byte for byte the tar.
 *    For the small layer the repository is copied out and this is done on the host; for the
 *    rootfs it runs in the guest (this file run with `deno run ... guest-cat`), to avoid
 *    copying 200 MB over 9p.
 * 2. cfs -> cfsctl: the host imports the same tars with `importLayer` (lib/oci/import.ts, the
 *    composefs-oci 0.3.0 split rules) into an insecure fsverity-sha256-12 repository, which goes
 *    into the guest on the trees disk, is copied onto /verity with `cp -a`, gets fs-verity on
 *    every object, and `cfsctl cat <sha256>` must print the tar byte for byte; `cfsctl oci
 *    ls-layer` (cfsctl's tar reader over our fragments) must list what it lists for its own
 *    stream.
 * 3. For the small layer, our CLI in the guest: `cfs oci import-layer` into a secure repository
 *    (`cfs init --algorithm fsverity-sha256-12`, real fs-verity) prints exactly the id that
 *    `cfsctl oci import-layer` prints, and `cfsctl cat refs/NAME` on that repository
 *    reproduces the tar.
 *
 * Also pinned: our compressed stream is byte-identical to the object cfsctl writes for the same
 * tar (same libzstd level and framing), so both produce the same stream object ID.
 *
 * No skipping: missing QEMU, guest kernel, cfsctl or fsverity fail the test. The Debian rootfs
 * part runs when test/.work/debian-rootfs exists (made by the fixtures) unless
 * CFS_SPLITSTREAM_ROOTFS=0.
 *
 * @module
 */
import { equal, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseSplitStream, streamSymlinkTarget } from "../../lib/splitstream.ts";
import { Repository } from "../../lib/repository.ts";
import { importLayer } from "../../lib/oci/import.ts";
import { fromHex, toHex } from "../../lib/fsverity/digest.ts";

const WORK = fileURLToPath(new URL("../.work", import.meta.url));
const ROOTFS = path.join(WORK, "debian-rootfs");
const FSVERITY = "/usr/bin/fsverity";
const SELF = "/src/test/vm/splitstream_interop_test.ts";

function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Reads `streams/<hex>` of a repository directory with our reader; returns the content's sha256. */
async function catRepoStream(repoDir: string, hex: string, out?: (b: Uint8Array) => void) {
  const bytes = fs.readFileSync(path.join(repoDir, "streams", hex));
  const r = parseSplitStream(bytes, { name: `streams/${hex}` });
  const h = createHash("sha256");
  for await (
    const c of r.cat((id) => {
      const x = toHex(id);
      return fs.readFileSync(path.join(repoDir, "objects", x.slice(0, 2), x.slice(2)));
    })
  ) {
    h.update(c);
    out?.(c);
  }
  return h.digest("hex");
}

/** A small tree exercising the split rules: sizes around 64, hardlink, symlink, xattrs, long name. */
function makeTree(root: string) {
  fs.mkdirSync(path.join(root, "d/sub"), { recursive: true });
  const w = (p: string, data: string | Uint8Array) => fs.writeFileSync(path.join(root, p), data);
  w("d/64", "4".repeat(64));
  w("d/65", "6".repeat(65));
  w("d/512", "5".repeat(512));
  w("d/513", "3".repeat(513));
  w("d/empty", "");
  const big = new Uint8Array(300_001);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919 + (i >> 11)) & 0xff;
  w("d/sub/big", big);
  w("d/" + "long-name-".repeat(15), "a file with a name longer than 100 bytes, so PAX path\n");
  fs.linkSync(path.join(root, "d/65"), path.join(root, "d/hardlink-to-65"));
  fs.symlinkSync("d/513", path.join(root, "symlink"));
  execFileSync("setfattr", ["-n", "user.small", "-v", "x", path.join(root, "d/65")]);
  execFileSync("setfattr", ["-n", "user.big", "-v", "v".repeat(300), path.join(root, "d/sub/big")]);
}

/** Host-side preparation: tars, their sha256, and our repositories for them ({@link importLayer}). */
async function prepare(dir: string, withRootfs: boolean) {
  const input = path.join(dir, "in");
  fs.mkdirSync(input, { recursive: true });
  const tree = path.join(dir, "tree");
  makeTree(tree);
  const layers: { name: string; tar: string }[] = [{
    name: "small",
    tar: path.join(input, "small.tar"),
  }];
  execFileSync("tar", [
    "--format=posix",
    "--xattrs",
    "--xattrs-include=*",
    "--sort=name",
    "-C",
    tree,
    "-cf",
    layers[0].tar,
    ".",
  ]);
  if (withRootfs) {
    layers.push({ name: "rootfs", tar: path.join(input, "rootfs.tar") });
    execFileSync("tar", ["--format=posix", "--xattrs", "-C", ROOTFS, "-cf", layers[1].tar, "."]);
  }
  const result = [];
  for (const l of layers) {
    const tar = fs.readFileSync(l.tar);
    const sha = sha256Hex(tar);
    fs.writeFileSync(path.join(input, `${l.name}.sha256`), sha + "\n");
    const t0 = performance.now();
    const repoDir = path.join(input, `x-${l.name}`);
    const repo = Repository.init(repoDir, { insecure: true, algorithm: "fsverity-sha256-12" });
    let imp;
    try {
      // In 1 MiB chunks, as a layer read from a pipe or file would arrive.
      const chunks = function* () {
        for (let o = 0; o < tar.length; o += 1 << 20) yield tar.subarray(o, o + (1 << 20));
      };
      imp = await importLayer(repo, chunks(), {
        contentSha256: fromHex(sha),
        name: `oci/${l.name}`,
      });
    } finally {
      repo.close();
    }
    const ms = performance.now() - t0;
    equal(toHex(imp.contentSha256), sha, "importLayer's sha256 equals the tar's");
    ok(!imp.existing, "a fresh import");
    equal(
      fs.readlinkSync(path.join(repoDir, "streams", sha)),
      streamSymlinkTarget(imp.streamId),
      "streams/<sha256> links to the stream object",
    );
    const ours = {
      id: imp.streamId,
      externals: imp.objects,
      stream: fs.readFileSync(path.join(repoDir, "streams", sha)),
    };
    result.push({ ...l, sha, size: tar.length, ours, hostSplitMs: ms });
  }
  return { input, layers: result };
}

Deno.test("splitstream interop with cfsctl 0.3.0 (cfsctl -> cfs and cfs -> cfsctl) in a QEMU guest", async () => {
  const { runCfsInGuest, stepSeconds, outputText } = await import("./guest_cfs.ts");
  const withRootfs = fs.existsSync(path.join(ROOTFS, "usr")) &&
    Deno.env.get("CFS_SPLITSTREAM_ROOTFS") !== "0";
  fs.mkdirSync(WORK, { recursive: true });
  const dir = fs.mkdtempSync(path.join(WORK, "splitstream-"));
  try {
    const t0 = performance.now();
    const { input, layers } = await prepare(dir, withRootfs);
    for (const l of layers) {
      console.log(
        `${l.name}: ${l.size} bytes tar, ${l.ours.externals} objects, our stream ` +
          `${l.ours.stream.length} bytes, host split+store ${l.hostSplitMs.toFixed(0)} ms`,
      );
      // Host round trip through our own repository first.
      equal(await catRepoStream(path.join(input, `x-${l.name}`), l.sha), l.sha);
    }
    const prepSeconds = (performance.now() - t0) / 1000;

    const deno = "/usr/bin/deno run -A --quiet --no-remote --cached-only";
    const lines = ["T=/trees/0"];
    for (const l of layers) {
      const n = l.name;
      lines.push(
        `S=$(cat $T/${n}.sha256)`,
        `mkdir -p /verity/r-${n}`,
        // 1. cfsctl -> cfs
        `rec import-${n} sh -c "cfsctl --repo /verity/r-${n} oci import-layer $S ${n} < $T/${n}.tar"`,
        `readlink /verity/r-${n}/streams/$S > $OUT/${n}.streamlink`,
        `cp /verity/r-${n}/streams/$S $OUT/${n}.cfsctl-stream`,
        `rec cfsctl-cat-${n} sh -c "cfsctl --repo /verity/r-${n} cat $S | sha256sum"`,
        `rec cfsctl-ls-${n} cfsctl --repo /verity/r-${n} oci ls-layer refs/${n}`,
        `rec guest-ourcat-${n} sh -c "${deno} ${SELF} guest-cat /verity/r-${n} $S | sha256sum"`,
        // 2. cfs -> cfsctl
        `rec cp-${n} cp -a $T/x-${n} /verity/x-${n}`,
        n === "small"
          ? `rec verity-${n} sh -c 'find /verity/x-${n}/objects -type f | while read f; do ${FSVERITY} enable "$f" || exit 1; done'`
          : `rec verity-${n} ${deno} ${SELF} guest-enable-verity /verity/x-${n}/objects`,
        `rec ourrepo-cfsctl-cat-${n} sh -c "cfsctl --repo /verity/x-${n} cat $S | sha256sum"`,
        `rec ourrepo-cfsctl-ls-${n} cfsctl --repo /verity/x-${n} oci ls-layer refs/oci/${n}`,
        `rec ourrepo-cfsctl-cat-ref-${n} sh -c "cfsctl --repo /verity/x-${n} cat refs/oci/${n} | sha256sum"`,
      );
      if (n === "small") {
        lines.push(
          `tar -C /verity -cf $OUT/r-small.tar r-small`,
          // 3. cfs oci import-layer (our CLI) into a secure repository, next to cfsctl's.
          `rec cfs-init cfs init --algorithm fsverity-sha256-12 /verity/c`,
          `rec cfs-import-${n} sh -c "cfs --repo /verity/c oci import-layer $S ${n} < $T/${n}.tar"`,
          `rec cfs-cfsctl-cat-ref-${n} sh -c "cfsctl --repo /verity/c cat refs/${n} | sha256sum"`,
        );
      }
    }
    lines.push("echo done > $OUT/done");
    const r = await runCfsInGuest({
      script: lines.join("\n"),
      trees: [input],
      cfsctl: true,
      binaries: [FSVERITY],
      repoDiskMiB: withRootfs ? 2048 : 256,
      timeoutMs: withRootfs ? 1_200_000 : 300_000,
      log: (s) => console.log(s),
    });
    const steps = stepSeconds(r);
    console.log(JSON.stringify({ prepSeconds, timings: r.timings, steps }, null, 1));
    equal(outputText(r, "done").trim(), "done", `guest script incomplete:\n${r.log}`);
    const rc = (s: string) => outputText(r, `${s}.rc`).trim();
    const sum = (s: string) => outputText(r, `${s}.out`).split(" ")[0].trim();

    for (const l of layers) {
      const n = l.name;
      for (
        const s of [
          `import-${n}`,
          `cfsctl-cat-${n}`,
          `cfsctl-ls-${n}`,
          `guest-ourcat-${n}`,
          `cp-${n}`,
          `verity-${n}`,
          `ourrepo-cfsctl-cat-${n}`,
          `ourrepo-cfsctl-ls-${n}`,
          `ourrepo-cfsctl-cat-ref-${n}`,
        ]
      ) equal(rc(s), "0", `${s} failed: ${outputText(r, `${s}.err`)}`);

      // 1. cfsctl -> cfs
      const cfsctlStream = r.outputs.get(`${n}.cfsctl-stream`)!;
      ok(cfsctlStream, "cfsctl's stream object copied out");
      const link = outputText(r, `${n}.streamlink`).trim();
      ok(/^\.\.\/objects\/[0-9a-f]{2}\/[0-9a-f]{62}$/.test(link), link);
      equal(sum(`cfsctl-cat-${n}`), l.sha, "cfsctl cat of its own stream");
      equal(sum(`guest-ourcat-${n}`), l.sha, "our reader (in the guest) on cfsctl's stream");
      const parsed = parseSplitStream(cfsctlStream, { name: `cfsctl ${n}` });
      equal(parsed.stats().externals, l.ours.externals, "same number of external objects");
      ok(
        Buffer.compare(cfsctlStream, l.ours.stream) === 0,
        `our stream for ${n} is byte-identical to cfsctl's (${l.ours.stream.length} vs ${cfsctlStream.length} bytes)`,
      );
      equal(link, streamSymlinkTarget(l.ours.id), "same stream object ID");

      // 2. cfs -> cfsctl
      equal(sum(`ourrepo-cfsctl-cat-${n}`), l.sha, "cfsctl cat of our stream");
      equal(sum(`ourrepo-cfsctl-cat-ref-${n}`), l.sha, "cfsctl cat of our named ref");
      equal(
        outputText(r, `ourrepo-cfsctl-ls-${n}.out`),
        outputText(r, `cfsctl-ls-${n}.out`),
        "cfsctl ls-layer reads our stream as it reads its own",
      );
      ok(outputText(r, `cfsctl-ls-${n}.out`).length > 0);
    }

    // 3. `cfs oci import-layer` in the guest (secure repository, real fs-verity) prints the id
    // `cfsctl oci import-layer` prints, and cfsctl reads the result back through the named ref.
    for (const s of ["cfs-init", "cfs-import-small", "cfs-cfsctl-cat-ref-small"]) {
      equal(rc(s), "0", `${s} failed: ${outputText(r, `${s}.err`)}`);
    }
    const cfsctlId = outputText(r, "import-small.out").trim();
    equal(cfsctlId, `sha256:${toHex(layers[0].ours.id)}`, "cfsctl prints the stream id we compute");
    equal(outputText(r, "cfs-import-small.out").trim(), cfsctlId, "cfs prints what cfsctl prints");
    equal(sum("cfs-cfsctl-cat-ref-small"), layers[0].sha, "cfsctl cat refs/small of cfs's import");

    // cfsctl -> cfs on the host for the small layer: the repository directory copied out.
    const small = layers[0];
    const repoTar = r.outputs.get("r-small.tar");
    ok(repoTar, "r-small.tar came back");
    const out = path.join(dir, "out");
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, "r.tar"), repoTar);
    execFileSync("tar", ["-C", out, "-xf", path.join(out, "r.tar")]);
    const chunks: Uint8Array[] = [];
    const hostSum = await catRepoStream(
      path.join(out, "r-small"),
      small.sha,
      (c) => chunks.push(c),
    );
    equal(hostSum, small.sha, "our reader on the host reproduces the tar from cfsctl's repository");
    ok(Buffer.compare(Buffer.concat(chunks), fs.readFileSync(path.join(input, "small.tar"))) === 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

if (import.meta.main && Deno.args[0] === "guest-cat") {
  // In the guest: guest-cat REPO SHA256 -> the stream's content on stdout.
  const [, repo, hex] = Deno.args;
  await catRepoStream(repo, hex, (c) => {
    for (let o = 0; o < c.length;) o += Deno.stdout.writeSync(c.subarray(o));
  });
} else if (import.meta.main && Deno.args[0] === "guest-enable-verity") {
  // In the guest: guest-enable-verity DIR -> FS_IOC_ENABLE_VERITY (sha256) on every file below.
  const { enableVerity } = await import("../../lib/fsverity/ioctl.ts");
  const sys = await import("../../lib/sys/libc.ts");
  let n = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const fd = sys.openRead(p);
        try {
          enableVerity(fd, "sha256", p);
        } finally {
          sys.close(fd);
        }
        n++;
      }
    }
  };
  walk(Deno.args[1]);
  console.error(`fs-verity enabled on ${n} files`);
}
