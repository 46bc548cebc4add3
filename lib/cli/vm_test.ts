/**
 * `cfs vm-test IMAGE`: boots an image from its composefs image in QEMU (lib/vm/boot.ts) and
 * reports whether the expected console text appeared, and when. The work directory is removed
 * at the end, on failure and on Ctrl-C too, unless `--keep` or `--work DIR` asks otherwise.
 *
 * @module
 */
import * as fs from "node:fs";
import { type CommandHandler, parseCommandArgs, println, UsageError } from "./command.ts";
import { repoPath } from "./repo_path.ts";
import { DEFAULT_EXPECT_TEXT, isPullReference, vmBoot } from "../vm/boot.ts";
import { CfsError } from "../errors.ts";

const USAGE = `usage: cfs vm-test [OPTIONS] IMAGE

Boots IMAGE in QEMU from its composefs image and watches the serial console.

IMAGE is a name in the repository (--repo, $CFS_REPO, the default one): a tag such as
localhost/bootc-sha256:<digest> (what 'cfs pull' writes), @sha256:<digest> or a digest; that
image is booted as it is, without a pull. A reference with a transport (oci:, oci-archive:,
docker://, containers-storage:, ...) is pulled first, as 'cfs pull' does: into --repo or
$CFS_REPO when given, else into a fresh repository in the work directory (EROFS format V1,
or the global --erofs-version).

The kernel, initramfs and options come from the image's first BLS boot entry
(/usr/lib/modules/KVER/vmlinuz + initramfs.img, or a loader entry); --initramfs FILE boots
another initramfs instead, e.g. the drop-in 'cfs initramfs --kernel KVER -o FILE' writes for
that kernel. cfs adds 'console=ttyS0 panic=-1 no_timer_check root=/dev/vda rw' and the
image's kernel argument as composefs-rs 0.9.4 writes it (composefs.digest=v1-sha512-12:<id>
for V1, composefs=<id> for V2), puts the image and its objects on an ext4 disk made with
-O verity (as /composefs, the disk is /dev/vda), boots and watches the console. It passes
(exit 0) when the --expect text appears, by default ${DEFAULT_EXPECT_TEXT}; QEMU is stopped
then. It fails (exit 1) with the reason when the initramfs reports a failure ('cfs: ...'
from cfs setup-root), the kernel panics, the guest stops, or the time runs out; Ctrl-C exits
130. The initramfs must mount the composefs root itself (cfs setup-root, as 'cfs initramfs'
writes it, or composefs-setup-root).

Needs root (QEMU, mkfs.ext4 -d), qemu-system-x86_64 and e2fsprogs.

options:
  --expect TEXT            success text (default: ${DEFAULT_EXPECT_TEXT})
  --until TEXT             also wait for a line containing this
  --initramfs FILE         boot this initramfs instead of the boot entry's
  --timeout SECONDS        give up after this long (default 120)
  --append ARGS            extra kernel arguments (repeatable)
  --kvm                    use -accel kvm (default: -accel tcg; KVM hangs on some hosts)
  --memory MIB             guest RAM (default 1536)
  --work DIR               work directory (kept); default a new one under /var/tmp, removed
  --keep                   keep the default work directory (disk, console log)
  --tls-verify=false       plain HTTP to the registry
  --authfile FILE          registry credentials`;

/** `cfs vm-test` */
export const vmTestCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    expect: { type: "string" },
    until: { type: "string" },
    initramfs: { type: "string" },
    timeout: { type: "string" },
    append: { type: "string", multiple: true },
    kvm: { type: "boolean" },
    memory: { type: "string" },
    work: { type: "string" },
    keep: { type: "boolean" },
    "tls-verify": { type: "string" },
    authfile: { type: "string" },
  }, USAGE);
  if (values.help) {
    println(USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("exactly one IMAGE is required", USAGE);
  const number = (name: string, v: string | undefined, dflt: number) => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name}: not a number: ${v}`, USAGE);
    return n;
  };
  const tls = values["tls-verify"];
  if (tls !== undefined && tls !== "true" && tls !== "false") {
    throw new UsageError(`--tls-verify takes true or false, not '${tls}'`, USAGE);
  }
  if (values.initramfs !== undefined && !fs.existsSync(values.initramfs)) {
    throw new UsageError(`--initramfs ${values.initramfs}: no such file`, USAGE);
  }
  const image = positionals[0];
  // A name is looked up in the repository cfs would use; a reference goes to --repo or a fresh one.
  const repo = isPullReference(image) ? globals.repo : repoPath(globals);
  const timeoutS = number("timeout", values.timeout, 120);
  const memory = number("memory", values.memory, 1536);
  const log = globals.json ? undefined : (l: string) => console.error(`cfs vm-test: ${l}`);
  const runDir = values.work ??
    await Deno.makeTempDir({ dir: "/var/tmp", prefix: "cfs-vm-test-" });
  const remove = values.work === undefined && !values.keep;
  log?.(`work directory ${runDir}${remove ? " (removed at the end; --keep keeps it)" : ""}`);
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort();
  Deno.addSignalListener("SIGINT", onSigint);
  const t0 = performance.now();
  try {
    const r = await vmBoot({
      image,
      runDir,
      repo,
      initramfs: values.initramfs,
      source: { tlsVerify: tls !== "false", authFile: values.authfile },
      kvm: values.kvm,
      timeoutMs: timeoutS * 1000,
      expect: values.expect,
      until: values.until,
      append: values.append,
      erofsVersion: globals.erofsVersion,
      memoryMiB: memory,
      log,
      signal: interrupt.signal,
    }).catch((e) => {
      if (interrupt.signal.aborted) return undefined;
      throw e;
    });
    if (r === undefined || r.interrupted) {
      throw new CfsError(
        `vm-test ${image} interrupted${remove ? "; work directory removed" : ""}`,
        { code: "interrupted", exitCode: 130 },
      );
    }
    const total = (performance.now() - t0) / 1000;
    const expectText = values.expect !== undefined ? `'${values.expect}'` : DEFAULT_EXPECT_TEXT;
    if (globals.json) {
      println(JSON.stringify({
        ok: r.ok,
        reason: r.reason,
        imageId: r.imageId,
        pulled: r.pulled,
        repo: remove && r.repo.startsWith(runDir) ? undefined : r.repo,
        erofsVersion: r.erofsVersion,
        karg: r.karg,
        cmdline: r.cmdline,
        entry: r.entry,
        initramfs: values.initramfs,
        consoleLog: remove ? undefined : r.consoleLog,
        times: { ...r.times, total },
      }));
    } else {
      if (!remove) println(`console ${r.consoleLog}`);
      println(`image ${r.imageId} (EROFS V${r.erofsVersion}): ${r.karg}`);
      if (r.ok) {
        println(
          `booted in ${r.times.boot?.toFixed(1)} s (QEMU start to ${expectText}); ` +
            `total ${total.toFixed(1)} s`,
        );
      } else println(`FAILED: ${r.reason}`);
    }
    return r.ok ? 0 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    if (remove) fs.rmSync(runDir, { recursive: true, force: true });
  }
};
