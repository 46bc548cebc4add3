/**
 * Boots an image from its composefs image in QEMU: the harness behind `cfs vm-test` and
 * test/vm/boot_test.ts.
 *
 * 1. The image: with `repo` and a name the repository has (a tag such as
 *    `localhost/bootc-sha256:...`, `@sha256:...`, a digest), that image as it is, no pull;
 *    otherwise `cfs pull` of the reference into `repo`, or into a fresh repository
 *    `<run dir>/root/composefs` (the host needs no fs-verity: the repository is insecure
 *    there, and the guest enables fs-verity); a fresh repository's EROFS format is
 *    composefs-rs 0.9.4's default V1 unless `erofsVersion` says otherwise;
 * 2. take kernel, initramfs and options from the first BLS entry that has a kernel (the
 *    initramfs may be replaced: `initramfs`, e.g. `cfs initramfs`'s drop-in), and add
 *    `console=ttyS0 panic=-1 no_timer_check root=/dev/vda rw` and the kernel argument of the
 *    bootable image in the repository's format, as composefs-rs 0.9.4 writes it (karg.ts):
 *    `composefs.digest=v1-<hash>-12:<id>` for V0/V1, `composefs=<id>` for V2;
 * 3. write the repository disk: `mkfs.ext4 -O verity -b 4096 -d <run dir>/root`, where an
 *    existing repository is represented by what the boot needs (meta.json, the image, its
 *    objects; hard links where possible); an optional hook may damage it (negative tests);
 * 4. boot `qemu-system-x86_64` (`-accel tcg` unless `kvm`), the serial console into
 *    `<run dir>/console.log`, and wait for the expected text (and `until`), a failure, or the
 *    timeout; QEMU is stopped as soon as the expected text appeared (a real image never powers
 *    itself off).
 *
 * The initramfs does the rest: `cfs setup-root` (lib/vm/dropin.ts) or any initramfs that
 * understands those kernel arguments on `root=/dev/vda`.
 *
 * @module
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { seedPull } from "../pipeline/seed.ts";
import { composefsKarg } from "../boot/karg.ts";
import { fromHex } from "../fsverity/digest.ts";
import { type ErofsFormatVersion, Repository } from "../repository/mod.ts";
import { type BootEntry, bootEntryToJson, findBootEntries } from "../boot/entries.ts";
import type { SourceOptions } from "../oci/source.ts";
import { openImage } from "../oci/store.ts";
import { ociFilesystem } from "../oci/commit.ts";
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";
import { bootQemu, tailFile } from "./qemu.ts";
import { DROPIN_MARKER } from "./dropin.ts";

/**
 * What `cfs vm-test` waits for by default: what a real system shows once it is up, on a
 * line of its own or as the console's last, unfinished line: a login prompt (`... login: `,
 * getty's), or systemd reaching `multi-user.target` or `graphical.target` (both the
 * `Reached target Multi-User System` and the `multi-user.target - Multi-User System` forms).
 */
export const DEFAULT_EXPECT: RegExp =
  /(^|\s)login: *$|Reached target .*(Multi-User System|multi-user\.target|Graphical Interface|graphical\.target)/;

/** {@link DEFAULT_EXPECT} in words, for help texts and messages. */
export const DEFAULT_EXPECT_TEXT =
  "a login prompt ('login:') or systemd reaching multi-user.target or graphical.target";

/** A vm-test that could not start (code `vm-test-failed`): the image, repository or disk. */
export class VmTestError extends CfsError {
  /** Creates the error. */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, withCode(options, "vm-test-failed"));
    this.name = "VmTestError";
  }
}

/** Whether `image` is a reference to pull (a transport prefix), not a name in a repository. */
export function isPullReference(image: string): boolean {
  return /^(oci|oci-archive|docker|containers-storage|dir|docker-archive|docker-daemon):/.test(
    image,
  );
}

/** The boot entry used, as `cfs pull --json` shows it. */
export interface VmBootEntry {
  kernelVersion?: string;
  kernelObject: string;
  initramfsObjects: string[];
  options: string;
}

/** Input of {@link vmBoot}. */
export interface VmBootOptions {
  /** Image: a reference `cfs pull` takes, or (with `repo`) a name the repository has. */
  image: string;
  /** Run directory: disk image, console log, a fresh repository (created). */
  runDir: string;
  /**
   * An existing repository: `image` names an image in it (booted without a pull), or is a
   * reference pulled into it. Default: a fresh repository in the run directory.
   */
  repo?: string;
  /** Registry options of the pull (`tlsVerify`, `authfile`, `platform`). */
  source?: SourceOptions;
  /** Boot with this initramfs instead of the boot entry's (e.g. `cfs initramfs` output). */
  initramfs?: string;
  /** Use `-accel kvm` (default TCG: KVM hangs on some hosts). */
  kvm?: boolean;
  /** Give up after this long; default 120 s. */
  timeoutMs?: number;
  /** Console text (substring) that means success; default {@link DEFAULT_EXPECT}. */
  expect?: string | RegExp;
  /** Also wait for a line containing this (before or after `expect`); e.g. the checksum end. */
  until?: string;
  /** Extra kernel arguments. */
  append?: string[];
  /**
   * The EROFS format: of a fresh repository (`cfs init --erofs-version`; default V1, as
   * composefs-rs 0.9.4), or of the bootable image booted from an existing one (default: its
   * own format).
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
  /** Stops the pull or the boot (Ctrl-C); the result then says `interrupted`. */
  signal?: AbortSignal;
}

/** Output of {@link vmBoot}. */
export interface VmBootResult {
  /** The expected text (and `until`) appeared and nothing failed. */
  ok: boolean;
  /** Why not: setup-root's error, the initramfs's failure line, a panic, or a timeout. */
  reason?: string;
  /** The boot was stopped by `signal`. */
  interrupted?: boolean;
  imageId: string;
  /** Whether the image was pulled (false: it was in the repository already). */
  pulled: boolean;
  /** The repository the image came from. */
  repo: string;
  /** The bootable image's EROFS format. */
  erofsVersion: ErofsFormatVersion;
  /** The image's kernel argument (`composefs.digest=...` or `composefs=...`). */
  karg: string;
  entry: VmBootEntry;
  /** The initramfs booted (a file in the run directory, or `initramfs`). */
  initramfs: string;
  /** The kernel command line used. */
  cmdline: string;
  /** Console lines (`\r` removed). */
  lines: string[];
  consoleLog: string;
  /** Wall seconds: pull (0 without one), disk, QEMU start to the expected text, QEMU overall. */
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

/** The first BLS entry with a kernel, as {@link VmBootEntry}. */
function blsEntry(entries: BootEntry[], image: string): VmBootEntry {
  const bls = entries.map(bootEntryToJson).find((e) =>
    e.kind === "bls" && (e.kernel as { objectId?: string } | undefined)?.objectId
  ) as
    | {
      kernelVersion?: string;
      kernel: { objectId: string };
      initramfs: { objectId?: string }[];
      options: string;
    }
    | undefined;
  if (!bls) {
    throw new VmTestError(`${image}: no BLS boot entry with a kernel (see cfs boot-entries)`);
  }
  return {
    kernelVersion: bls.kernelVersion,
    kernelObject: bls.kernel.objectId,
    initramfsObjects: bls.initramfs.map((f) => f.objectId).filter((x): x is string => !!x),
    options: bls.options,
  };
}

/** Hard-links `from` to `to`, or copies it (another file system). */
function linkOrCopy(from: string, to: string): void {
  try {
    fs.linkSync(from, to);
  } catch {
    fs.copyFileSync(from, to);
  }
}

/**
 * The part of `repo` a boot of image `id` reads, as a repository at `dest`: meta.json (the
 * same algorithm and format, insecure: the guest enables fs-verity itself), `images/<id>`
 * and every object the image names.
 */
function bootRepository(repo: Repository, id: string, version: ErofsFormatVersion, dest: string) {
  Repository.init(dest, {
    insecure: true,
    algorithm: repo.meta.algorithm,
    erofsVersion: version,
  }).close();
  const image = repo.readImage(id);
  const objects = [image.id, ...repo.imageObjects(image.bytes)];
  for (const o of objects) {
    const to = join(dest, "objects", o.objectPath);
    fs.mkdirSync(join(to, ".."), { recursive: true });
    if (!fs.existsSync(to)) linkOrCopy(repo.objectPath(o), to);
  }
  fs.mkdirSync(join(dest, "images"), { recursive: true });
  fs.symlinkSync(`../objects/${image.id.objectPath}`, join(dest, "images", image.id.hex));
}

/** Finds or pulls the image, builds the disk and boots; see the module documentation. Never
 * throws for a failed boot (see `ok` and `reason`); throws when the image, the pull or the
 * disk fails. */
export async function vmBoot(o: VmBootOptions): Promise<VmBootResult> {
  const log = o.log ?? (() => {});
  fs.mkdirSync(o.runDir, { recursive: true });
  const rootDir = join(o.runDir, "root");
  fs.rmSync(rootDir, { recursive: true, force: true });
  const diskRepo = join(rootDir, "composefs");
  const repoPath = o.repo ?? diskRepo;

  let t = performance.now();
  let imageId: string;
  let entry: VmBootEntry;
  let erofsVersion: ErofsFormatVersion;
  let pulled = false;
  if (o.repo !== undefined && !isPullReference(o.image)) {
    const repo = Repository.open(o.repo, { upgrade: false });
    try {
      let img;
      try {
        img = openImage(repo, o.image);
      } catch (e) {
        const code = e instanceof CfsError ? e.code : "vm-test-failed";
        throw new VmTestError(
          `${(e as Error).message} (an image to pull needs a transport: docker://, oci:, ...)`,
          { code, cause: e },
        );
      }
      erofsVersion = o.erofsVersion ?? repo.erofsVersion;
      const id = img.bootImageRef(erofsVersion);
      if (id === undefined) {
        throw new VmTestError(
          `${o.image} has no bootable EROFS image of format V${erofsVersion} in ${o.repo} ` +
            `(pull it again with cfs pull)`,
        );
      }
      imageId = id.hex;
      entry = blsEntry(
        findBootEntries(await ociFilesystem(repo, img), (c) => repo.readObject(c.digest)),
        o.image,
      );
    } finally {
      repo.close();
    }
    log(`${o.image} in ${o.repo}: image ${imageId} (V${erofsVersion}), no pull`);
  } else {
    if (o.erofsVersion !== undefined && !fs.existsSync(join(repoPath, "meta.json"))) {
      Repository.init(repoPath, { insecure: true, erofsVersion: o.erofsVersion }).close();
    }
    const r = await seedPull(o.image, {
      ...o.source,
      repoPath,
      allowMissingFsverity: true,
      signal: o.signal,
    });
    pulled = true;
    imageId = r.imageId;
    entry = blsEntry(r.entries, o.image);
    const repo = Repository.open(repoPath, { upgrade: false });
    erofsVersion = repo.erofsVersion;
    repo.close();
    log(
      `pulled ${o.image} in ${((performance.now() - t) / 1000).toFixed(1)} s: image ${imageId} ` +
        `(V${erofsVersion})`,
    );
  }
  const pullSeconds = pulled ? (performance.now() - t) / 1000 : 0;
  const repo = Repository.open(repoPath, { upgrade: false });
  // Secure: the guest enables fs-verity on the disk (made with -O verity) and checks it.
  const karg = composefsKarg(fromHex(imageId), {
    algorithm: repo.algorithm,
    version: erofsVersion,
  });
  const object = (hex: string) => repo.objectPath(fromHex(hex));
  // Kernel and initramfs leave the repository before the disk is made (and maybe damaged).
  const kernel = join(o.runDir, "vmlinuz");
  let initrd = join(o.runDir, "initrd.img");
  try {
    fs.copyFileSync(object(entry.kernelObject), kernel);
    if (o.initramfs !== undefined) initrd = o.initramfs;
    else {
      fs.writeFileSync(initrd, "");
      for (const i of entry.initramfsObjects) fs.appendFileSync(initrd, fs.readFileSync(object(i)));
    }
    if (repoPath !== diskRepo) bootRepository(repo, imageId, erofsVersion, diskRepo);
  } finally {
    repo.close();
  }

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
  if (o.damageDisk) await o.damageDisk(disk, { imageId, entry });
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
    o.karg ? o.karg(karg, imageId) : karg,
    ...(entry.options ? [entry.options] : []),
    ...(o.append ?? []),
  ].join(" ");
  const expect = o.expect ?? DEFAULT_EXPECT;
  const expectText = typeof expect === "string" ? `'${expect}'` : DEFAULT_EXPECT_TEXT;
  const matches = (text: string) =>
    typeof expect === "string" ? text.includes(expect) : expect.test(text);
  const consoleLog = join(o.runDir, "console.log");
  let bootSeconds: number | undefined;
  let sawExpect = false;
  let sawUntil = o.until === undefined;
  // Ends QEMU once what was awaited appeared, or on `signal`.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  o.signal?.addEventListener("abort", onAbort);
  const t0 = performance.now();
  const seen = (text: string) => {
    if (!sawExpect && matches(text)) {
      sawExpect = true;
      bootSeconds = (performance.now() - t0) / 1000;
      log(`${expectText} after ${bootSeconds.toFixed(1)} s`);
    }
    if (o.until !== undefined && text.includes(o.until)) sawUntil = true;
    if (sawExpect && sawUntil) stop.abort();
  };
  log(`booting (${o.kvm ? "kvm" : "tcg"}): ${cmdline}`);
  let res;
  try {
    res = await bootQemu({
      kernel,
      initrd,
      append: cmdline,
      memoryMiB: o.memoryMiB ?? 1536,
      accel: o.kvm ? "kvm" : "tcg",
      cpu: o.kvm ? "host" : undefined,
      drives: [{ file: disk }],
      timeoutMs,
      consoleLog,
      signal: stop.signal,
      onConsoleLine: (l) => {
        seen(l);
        if (l.startsWith("cfs") || l.includes("Kernel panic")) log(`guest: ${l.trimEnd()}`);
      },
      onConsolePartial: seen,
    });
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
  }
  const lines = fs.readFileSync(consoleLog, "utf8").split("\n").map((l) => l.replace(/\r$/, ""));
  const interrupted = o.signal?.aborted === true;
  let reason = interrupted ? "interrupted" : bootFailure(lines);
  if (!reason && !sawExpect) {
    reason = res.timedOut
      ? `timed out after ${timeoutMs / 1000} s without ${expectText}`
      : `the guest stopped without showing ${expectText}`;
  }
  if (!reason && !sawUntil) reason = `'${o.until}' never appeared`;
  if (reason && !interrupted && res.stderr.trim()) {
    reason += ` (qemu: ${res.stderr.trim().split("\n").pop()})`;
  }
  if (reason && !interrupted) {
    log(`boot failed: ${reason}\n--- console (tail) ---\n${tailFile(consoleLog, 25)}`);
  }
  return {
    ok: reason === undefined,
    reason,
    interrupted: interrupted || undefined,
    imageId,
    pulled,
    repo: repoPath,
    erofsVersion,
    karg,
    entry,
    initramfs: initrd,
    cmdline,
    lines,
    consoleLog,
    times: { pull: pullSeconds, disk: diskSeconds, boot: bootSeconds, qemu: res.elapsedMs / 1000 },
  };
}
