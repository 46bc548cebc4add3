/**
 * `cfs vm-test IMAGE`: boots a pulled image from its composefs image in QEMU
 * (lib/vm/boot.ts) and reports whether the expected console line appeared, and when.
 *
 * @module
 */
import { join } from "node:path";
import { type CommandHandler, parseCommandArgs, println, UsageError } from "./command.ts";
import { DEFAULT_EXPECT, vmBoot } from "../vm/boot.ts";

const USAGE = `usage: cfs vm-test [OPTIONS] IMAGE

Boots IMAGE (any form 'cfs pull' takes) in QEMU from its composefs image: pulls it into a
fresh repository (EROFS format V1, or the global --erofs-version), writes the bootable EROFS,
takes kernel, initramfs and options from its first BLS boot entry
(/usr/lib/modules/KVER/vmlinuz + initramfs.img, or a loader entry), adds 'console=ttyS0
panic=-1 no_timer_check root=/dev/vda rw' and the image's kernel argument as composefs-rs
0.9.4 writes it (composefs.digest=v1-sha512-12:<image id> for V1, composefs=<image id> for
V2), puts the repository on an ext4 disk made with -O verity (as /composefs, the disk is
/dev/vda), boots and watches the serial console. Passes (exit 0) when a line containing the
--expect text appears; fails (exit 1) with the reason when the initramfs reports a failure
('cfs: ...' from cfs setup-root), the kernel panics, or the time runs out. The image's
initramfs must mount the composefs root itself
(cfs setup-root as in test/fixtures/vm_image.ts, or composefs-setup-root).

Needs root (QEMU, mkfs.ext4 -d), qemu-system-x86_64 and e2fsprogs.

options:
  --expect TEXT            success line (default: ${DEFAULT_EXPECT})
  --until TEXT             also wait for this line after the success line
  --timeout SECONDS        give up after this long (default 120)
  --append ARGS            extra kernel arguments (repeatable)
  --kvm                    use -accel kvm (default: -accel tcg; KVM hangs on some hosts)
  --memory MIB             guest RAM (default 1536)
  --work DIR               run directory (default: a new one under /var/tmp, kept)
  --tls-verify=false       plain HTTP to the registry
  --authfile FILE          registry credentials`;

/** `cfs vm-test` */
export const vmTestCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    expect: { type: "string" },
    until: { type: "string" },
    timeout: { type: "string" },
    append: { type: "string", multiple: true },
    kvm: { type: "boolean" },
    memory: { type: "string" },
    work: { type: "string" },
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
  const runDir = values.work ??
    await Deno.makeTempDir({ dir: "/var/tmp", prefix: "cfs-vm-test-" });
  const t0 = performance.now();
  const r = await vmBoot({
    image: positionals[0],
    runDir,
    source: { tlsVerify: tls !== "false", authFile: values.authfile },
    kvm: values.kvm,
    timeoutMs: number("timeout", values.timeout, 120) * 1000,
    expect: values.expect,
    until: values.until,
    append: values.append,
    erofsVersion: globals.erofsVersion,
    memoryMiB: number("memory", values.memory, 1536),
    log: globals.json ? undefined : (l) => console.error(`cfs vm-test: ${l}`),
  });
  const total = (performance.now() - t0) / 1000;
  if (globals.json) {
    println(JSON.stringify({
      ok: r.ok,
      reason: r.reason,
      imageId: r.imageId,
      erofsVersion: r.erofsVersion,
      karg: r.karg,
      cmdline: r.cmdline,
      entry: r.entry,
      consoleLog: r.consoleLog,
      times: { ...r.times, total },
    }));
  } else {
    println(`console ${r.consoleLog}`);
    println(`image ${r.imageId} (EROFS V${r.erofsVersion}): ${r.karg}`);
    if (r.ok) {
      println(
        `booted in ${r.times.boot?.toFixed(1)} s (QEMU start to '${
          values.expect ?? DEFAULT_EXPECT
        }'); total ${total.toFixed(1)} s`,
      );
    } else println(`FAILED: ${r.reason}`);
  }
  if (values.work === undefined && r.ok) {
    await Deno.remove(join(runDir), { recursive: true }).catch(() => {});
  }
  return r.ok ? 0 : 1;
};
