/**
 * Boots a pulled image from its composefs image in QEMU: the harness behind `cfs vm-test`
 * and test/vm/boot_test.ts.
 *
 * 1. `cfs pull` the image into a fresh repository `<run dir>/root/composefs` (the host needs
 *    no fs-verity: the repository is insecure there, and the guest enables fs-verity); its
 *    EROFS format is composefs-rs 0.9.4's default V1 unless `erofsVersion` says otherwise;
 * 2. take kernel, initramfs and options from the first BLS entry that has a kernel, and add
 *    `console=ttyS0 panic=-1 no_timer_check root=/dev/vda rw` and the kernel argument of the
 *    bootable image in the repository's format, as composefs-rs 0.9.4 writes it (karg.ts):
 *    `composefs.digest=v1-<hash>-12:<id>` for V0/V1, `composefs=<id>` for V2;
 * 3. write the repository disk: `mkfs.ext4 -O verity -b 4096 -d <run dir>/root` (no loop
 *    mount needed); an optional hook may damage it (the negative tests);
 * 4. boot `qemu-system-x86_64` (`-accel tcg` unless `kvm`), the serial console into
 *    `<run dir>/console.log`, and wait for the expected line, a failure, or the timeout.
 *
 * The image's initramfs does the rest: `cfs setup-root` (lib/vm/dropin.ts) or any initramfs
 * that understands those kernel arguments on `root=/dev/vda`.
 *
 * @module
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { seedPull } from "../pipeline/seed.ts";
import { composefsKarg } from "../boot/karg.ts";
import { fromHex } from "../fsverity/digest.ts";
import { type ErofsFormatVersion, Repository } from "../repository/mod.ts";
import { bootEntryToJson } from "../boot/entries.ts";
import type { SourceOptions } from "../oci/source.ts";
import { bootQemu, tailFile } from "./qemu.ts";
import { DROPIN_MARKER } from "./dropin.ts";

/** The line the test image's init prints when it runs (test/fixtures/vm_image.ts). */
export const DEFAULT_EXPECT = "CFS-VM-BOOTED";

/** The boot entry used, as `cfs pull --json` shows it. */
export interface VmBootEntry {
  kernelVersion?: string;
  kernelObject: string;
  initramfsObjects: string[];
  options: string;
}

/** Input of {@link vmBoot}. */
export interface VmBootOptions {
  /** Image to pull (any form `cfs pull` takes). */
  image: string;
  /** Run directory: repository, disk image, console log (created; left for inspection). */
  runDir: string;
  /** Registry options of the pull (`tlsVerify`, `authfile`, `platform`). */
  source?: SourceOptions;
  /** Use `-accel kvm` (default TCG: KVM hangs on some hosts). */
  kvm?: boolean;
  /** Give up after this long; default 120 s. */
  timeoutMs?: number;
  /** A console line containing this text means success; default {@link DEFAULT_EXPECT}. */
  expect?: string;
  /** Wait for this line (after `expect`) before calling the boot done; e.g. the checksum end. */
  until?: string;
  /** Extra kernel arguments. */
  append?: string[];
  /**
   * The EROFS format of the new repository (`cfs init --erofs-version`); default V1, as
   * composefs-rs 0.9.4. The boot uses the bootable image of that format.
   */
  erofsVersion?: ErofsFormatVersion;
  /** Boot with the kernel argument this returns instead of the image's own `karg`. */
  karg?: (karg: string, imageId: string) => string;
  /** Changes the disk image before the boot (it holds `/composefs`, the repository). */
  damageDisk?: (disk: string, info: { imageId: string; entry: VmBootEntry }) => Promise<void>;
  /** Guest RAM in MiB; default 1536. */
  memoryMiB?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** Output of {@link vmBoot}. */
export interface VmBootResult {
  /** The expected line (and `until`) appeared and nothing failed. */
  ok: boolean;
  /** Why not: setup-root's error, the initramfs's failure line, a panic, or a timeout. */
  reason?: string;
  imageId: string;
  /** The repository's EROFS format, the bootable image's. */
  erofsVersion: ErofsFormatVersion;
  /** The image's kernel argument (`composefs.digest=...` or `composefs=...`). */
  karg: string;
  entry: VmBootEntry;
  /** The kernel command line used. */
  cmdline: string;
  /** Console lines (`\r` removed). */
  lines: string[];
  consoleLog: string;
  /** Wall seconds: pull, disk, QEMU start to the expected line, QEMU overall. */
  times: { pull: number; disk: number; boot?: number; qemu: number };
}

async function runTool(cmd: string, args: string[], what: string): Promise<string> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (r.code !== 0) {
    throw new Error(
      `${what} failed (${cmd} exit ${r.code}): ${new TextDecoder().decode(r.stderr)}`,
    );
  }
  return new TextDecoder().decode(r.stdout);
}

function treeBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += treeBytes(p);
    else if (e.isFile()) n += fs.statSync(p).size;
  }
  return n;
}

/** Why a console shows a failed boot, or undefined. */
export function bootFailure(lines: string[]): string | undefined {
  const cfs = lines.find((l) => l.startsWith("cfs: "));
  const failed = lines.find((l) => l.startsWith(`${DROPIN_MARKER}: FAILED`));
  const panic = lines.find((l) => l.includes("Kernel panic"));
  const io = lines.find((l) =>
    /verity|I\/O error|EIO/i.test(l) && !l.startsWith("cfs setup-root:")
  );
  if (cfs) return failed ? `${cfs} (${failed})` : cfs;
  if (failed) return io ? `${failed}: ${io}` : failed;
  if (panic) return panic.trim();
  return undefined;
}

/** Pulls, builds the disk and boots; see the module documentation. Never throws for a
 * failed boot (see `ok` and `reason`); throws when the pull or the disk fails. */
export async function vmBoot(o: VmBootOptions): Promise<VmBootResult> {
  const log = o.log ?? (() => {});
  fs.mkdirSync(o.runDir, { recursive: true });
  const rootDir = join(o.runDir, "root");
  fs.rmSync(rootDir, { recursive: true, force: true });
  const repoPath = join(rootDir, "composefs");

  let t = performance.now();
  if (o.erofsVersion !== undefined) {
    Repository.init(repoPath, { insecure: true, erofsVersion: o.erofsVersion }).close();
  }
  const pulled = await seedPull(o.image, {
    ...o.source,
    repoPath,
    allowMissingFsverity: true,
  });
  const pullSeconds = (performance.now() - t) / 1000;
  const repo = Repository.open(repoPath);
  const erofsVersion = repo.erofsVersion;
  // Secure: the guest enables fs-verity on the disk (made with -O verity) and checks it.
  const karg = composefsKarg(fromHex(pulled.imageId), {
    algorithm: repo.algorithm,
    version: erofsVersion,
  });
  repo.close();
  const bls = pulled.entries.map(bootEntryToJson).find((e) =>
    e.kind === "bls" && (e.kernel as { objectId?: string } | undefined)?.objectId
  ) as
    | {
      kernelVersion?: string;
      kernel: { objectId: string };
      initramfs: { objectId?: string }[];
      options: string;
    }
    | undefined;
  if (!bls) throw new Error(`${o.image}: no BLS boot entry with a kernel (see cfs boot-entries)`);
  const entry: VmBootEntry = {
    kernelVersion: bls.kernelVersion,
    kernelObject: bls.kernel.objectId,
    initramfsObjects: bls.initramfs.map((f) => f.objectId).filter((x): x is string => !!x),
    options: bls.options,
  };
  const object = (hex: string) => join(repoPath, "objects", hex.slice(0, 2), hex.slice(2));
  log(
    `pulled ${o.image} in ${pullSeconds.toFixed(1)} s: image ${pulled.imageId} (V${erofsVersion})`,
  );

  // Kernel and initramfs leave the repository before the disk is made (and maybe damaged).
  const kernel = join(o.runDir, "vmlinuz");
  fs.copyFileSync(object(entry.kernelObject), kernel);
  const initrd = join(o.runDir, "initrd.img");
  fs.writeFileSync(initrd, "");
  for (const i of entry.initramfsObjects) fs.appendFileSync(initrd, fs.readFileSync(object(i)));

  t = performance.now();
  const disk = join(o.runDir, "disk.img");
  fs.rmSync(disk, { force: true });
  const mib = Math.ceil(treeBytes(rootDir) * 1.25 / 2 ** 20) + 64;
  await runTool("mkfs.ext4", [
    "-q",
    "-F",
    "-b",
    "4096",
    "-O",
    "verity,^has_journal",
    "-L",
    "cfsroot",
    "-d",
    rootDir,
    disk,
    `${mib}M`,
  ], "mkfs.ext4 of the repository disk");
  if (o.damageDisk) await o.damageDisk(disk, { imageId: pulled.imageId, entry });
  const diskSeconds = (performance.now() - t) / 1000;
  log(`repository disk ${disk} (${mib} MiB) in ${diskSeconds.toFixed(1)} s`);

  const timeoutMs = o.timeoutMs ?? 120_000;
  const cmdline = [
    "console=ttyS0",
    "panic=-1",
    // Under TCG on a busy host the kernel's IO-APIC timer check can miss its ticks and
    // panic ("IO-APIC + timer doesn't work"); the timer works, the check is skipped.
    "no_timer_check",
    "root=/dev/vda",
    "rw",
    o.karg ? o.karg(karg, pulled.imageId) : karg,
    ...(entry.options ? [entry.options] : []),
    ...(o.append ?? []),
  ].join(" ");
  const expect = o.expect ?? DEFAULT_EXPECT;
  const consoleLog = join(o.runDir, "console.log");
  let bootSeconds: number | undefined;
  let sawExpect = false;
  let sawUntil = o.until === undefined;
  const t0 = performance.now();
  log(`booting (${o.kvm ? "kvm" : "tcg"}): ${cmdline}`);
  const res = await bootQemu({
    kernel,
    initrd,
    append: cmdline,
    memoryMiB: o.memoryMiB ?? 1536,
    accel: o.kvm ? "kvm" : "tcg",
    cpu: o.kvm ? "host" : undefined,
    drives: [{ file: disk }],
    timeoutMs,
    consoleLog,
    onConsoleLine: (l) => {
      if (!sawExpect && l.includes(expect)) {
        sawExpect = true;
        bootSeconds = (performance.now() - t0) / 1000;
        log(`${expect} after ${bootSeconds.toFixed(1)} s`);
      }
      if (o.until !== undefined && sawExpect && l.includes(o.until)) sawUntil = true;
      if (l.startsWith("cfs") || l.includes("Kernel panic")) log(`guest: ${l.trimEnd()}`);
    },
  });
  const lines = fs.readFileSync(consoleLog, "utf8").split("\n").map((l) => l.replace(/\r$/, ""));
  let reason = bootFailure(lines);
  if (!reason && !sawExpect) {
    reason = res.timedOut
      ? `timed out after ${timeoutMs / 1000} s without '${expect}'`
      : `the guest stopped without printing '${expect}'`;
  }
  if (!reason && !sawUntil) reason = `'${o.until}' never appeared`;
  if (reason && res.stderr.trim()) reason += ` (qemu: ${res.stderr.trim().split("\n").pop()})`;
  if (reason) log(`boot failed: ${reason}\n--- console (tail) ---\n${tailFile(consoleLog, 25)}`);
  return {
    ok: reason === undefined,
    reason,
    imageId: pulled.imageId,
    erofsVersion,
    karg,
    entry,
    cmdline,
    lines,
    consoleLog,
    times: { pull: pullSeconds, disk: diskSeconds, boot: bootSeconds, qemu: res.elapsedMs / 1000 },
  };
}
