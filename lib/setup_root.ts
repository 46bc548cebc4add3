/**
 * `cfs setup-root`: what composefs-setup-root does in an initramfs, done by cfs.
 *
 * 1. read `composefs=<image id>` from the kernel command line (`composefs=?<id>`: insecure,
 *    no fs-verity checks; 64 hex digits: sha256, 128: sha512);
 * 2. mount the root device on the sysroot (when one is given; else the sysroot is mounted
 *    already), and open the repository at `<sysroot>/composefs`;
 * 3. enable fs-verity on the image file where it is missing, measure it, and compare the
 *    digest with the id;
 * 4. for every object the image refers to: check it exists, enable fs-verity where missing,
 *    and compare the measured digest with the object's name;
 * 5. mount the EROFS image (loop device) and an overlay with `objects/` as its data-only lower
 *    layer (`lowerdir=IMAGE::OBJECTS`, metacopy, redirect_dir, `verity=require` where the
 *    kernel knows it); on kernels that refuse those options (before Linux 6.5 / 6.6) it falls
 *    back to `lowerdir=IMAGE:OBJECTS` without `verity=`, as libcomposefs does, over an image
 *    derived for it ({@link fallbackImage}, below);
 * 6. move the old sysroot to `<new root>/sysroot` (when the image has that directory) and the
 *    new root onto the sysroot. The initramfs's PID 1 then runs `switch_root SYSROOT INIT`
 *    (a process other than PID 1 cannot switch the root of the whole system).
 *
 * Checking every object up front is how fs-verity gets enforced on kernels whose overlayfs has
 * no `verity=require` (Linux 6.1, Debian 12's kernel): with fs-verity enabled on each object
 * and its digest equal to its name, a later change of an object's bytes fails the read (EIO).
 *
 * The fallback overlay makes `objects/` an ordinary lower layer, so its directories `00`..`ff`
 * would show through in `/`. libcomposefs's images hide them with whiteouts in the root
 * directory; images in cfsctl 0.3.0's format (ours) have none. So on that path setup-root
 * mounts a derived image instead of the repository's: the verified image's bytes, read back
 * into a tree (lib/erofs/reader.ts), plus what libcomposefs adds, written again
 * (lib/erofs/writer.ts) to a file on /run (a tmpfs) that is loop-mounted and then unlinked.
 * The trust chain holds: the image file has fs-verity enabled and its measured digest equals
 * the `composefs=` id before it is read (a file with fs-verity cannot change, and reads are
 * checked against its Merkle tree), and the derived image is a pure function of those bytes
 * ({@link fallbackImage}; for an image in cfsctl 0.3.0's format `mkfsErofs(readErofs(img))` is
 * `img` again). The objects are checked as before.
 *
 * @module
 */
import $ from "dax";
import { join } from "node:path";
import { collectObjects, readErofs } from "./erofs/reader.ts";
import { mkfsErofs } from "./erofs/writer.ts";
import { bytesToName, type Inode, type Leaf, type Xattr } from "./tree.ts";
import { toHex, type VerityAlgorithm } from "./fsverity/digest.ts";
import { enableVerity, measureVerity, VerityError } from "./fsverity/ioctl.ts";
import * as sys from "./sys/libc.ts";

/** setup-root failed; the message names the file or id and what is wrong. */
export class SetupRootError extends Error {
  /** Creates the error with a one-line message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SetupRootError";
  }
}

/** The image named by a kernel command line. */
export interface CmdlineImage {
  /** Image id, lower-case hex. */
  id: string;
  /** `composefs=?<id>`: boot without fs-verity checks. */
  insecure: boolean;
  /** sha256 for 64 hex digits, sha512 for 128. */
  algorithm: VerityAlgorithm;
}

/**
 * Splits a kernel command line as the kernel does: on whitespace, except inside double
 * quotes (which stay part of the word; there is no escaping).
 */
export function splitCmdline(cmdline: string): string[] {
  const words: string[] = [];
  let cur = "";
  let quoted = false;
  let inWord = false;
  for (const c of cmdline) {
    if (c === '"') quoted = !quoted;
    if (!quoted && /\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** The value of the first `name=` word of a command line, or undefined. */
export function cmdlineValue(cmdline: string, name: string): string | undefined {
  const prefix = `${name}=`;
  return splitCmdline(cmdline).find((w) => w.startsWith(prefix))?.slice(prefix.length);
}

/** Parses `composefs=[?]<hex id>` from a kernel command line; throws when absent or malformed. */
export function parseComposefsCmdline(cmdline: string): CmdlineImage {
  const value = cmdlineValue(cmdline, "composefs");
  if (value === undefined) throw new SetupRootError("no composefs= on the kernel command line");
  const insecure = value.startsWith("?");
  const id = insecure ? value.slice(1) : value;
  if (!/^[0-9a-f]+$/.test(id) || (id.length !== 64 && id.length !== 128)) {
    throw new SetupRootError(
      `composefs=${value}: not an image id (64 or 128 lower-case hex digits, optionally after '?')`,
    );
  }
  return { id, insecure, algorithm: id.length === 128 ? "sha512" : "sha256" };
}

/** Input of {@link setupRoot}. */
export interface SetupRootOptions {
  /** The kernel command line (default: `/proc/cmdline`). */
  cmdline?: string;
  /** Where the real root is (or gets) mounted and the new root ends up; default `/sysroot`. */
  sysroot?: string;
  /** Block device to mount on the sysroot first (read-write: enabling fs-verity writes). */
  rootDevice?: string;
  /** Its file system type; default `ext4`. */
  rootFsType?: string;
  /** The repository; default `<sysroot>/composefs`. */
  repo?: string;
  /**
   * Mount the composed root here and stop (no moving of the sysroot): for tests and for
   * looking at an image.
   */
  mountpoint?: string;
  /** Progress lines (one per step). */
  log?: (line: string) => void;
  /**
   * Skip the data-only overlay and use the fallback (with its derived image) even where the
   * kernel has data-only lower layers: for tests of that path on new kernels.
   */
  forceFallback?: boolean;
}

/** What {@link setupRoot} did. */
export interface SetupRootResult {
  id: string;
  insecure: boolean;
  /** Objects the image refers to. */
  objects: number;
  /** Of these, objects on which setup-root enabled fs-verity (0 when all had it). */
  verityEnabled: number;
  /** The overlay's lower-layer syntax: `data-only` (`::`) or `fallback` (`:`, no verity=). */
  overlay: "data-only" | "fallback";
  /** The overlay's mount options. */
  overlayOptions: string;
  /** With the fallback overlay: whiteouts added to the root of the derived image. */
  whiteouts?: number;
  /** With the fallback overlay: root directories `00`..`ff` of the image marked opaque. */
  opaque?: string[];
  /** Where the composed root is mounted now. */
  root: string;
}

async function mount(args: string[], what: string): Promise<void> {
  const r = await $`mount ${args}`.stdout("null").stderr("piped").noThrow();
  if (r.code !== 0) {
    const lines = r.stderr.split("\n").map((l) => l.trim()).filter((l) =>
      l && !l.includes("dmesg(1)")
    );
    const why = lines.pop() || `mount exited ${r.code}`;
    throw new SetupRootError(`${what}: ${why}`);
  }
}

/**
 * Makes sure `path` has fs-verity (enabling it when missing, unless `insecure`) and returns the
 * digest the kernel measures; when `insecure`, checks nothing and returns null. Also returns
 * whether verity was enabled here.
 */
function sealAndMeasure(
  path: string,
  alg: VerityAlgorithm,
  insecure: boolean,
): { digest: Uint8Array | null; enabled: boolean } {
  if (insecure) return { digest: null, enabled: false };
  let fd: number;
  try {
    fd = sys.openRead(path);
  } catch (e) {
    throw new SetupRootError(`${path}: cannot open: ${(e as Error).message}`, { cause: e });
  }
  try {
    let digest = measureVerity(fd, alg, path);
    if (digest !== null) return { digest, enabled: false };
    enableVerity(fd, alg, path);
    digest = measureVerity(fd, alg, path);
    if (digest === null) throw new SetupRootError(`${path}: fs-verity did not get enabled`);
    return { digest, enabled: true };
  } catch (e) {
    if (!(e instanceof VerityError)) throw e;
    const hint = e.unsupported
      ? `${path}: the file system has no fs-verity (composefs=?ID boots without it)`
      : e.message;
    throw new SetupRootError(hint, { cause: e });
  } finally {
    sys.close(fd);
  }
}

/** The names of a repository's object directories, `00`..`ff`. */
export const OBJECT_DIRS: readonly string[] = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

const enc = new TextEncoder();
const SELINUX = "security.selinux";

/** What {@link fallbackImage} made. */
export interface FallbackImage {
  /** The derived EROFS image. */
  image: Uint8Array;
  /** Whiteouts added to its root (names of `00`..`ff` the image's root lacks). */
  whiteouts: number;
  /** Root directories named `00`..`ff` that the image has, marked opaque. */
  opaque: string[];
}

/**
 * The image to mount with the fallback overlay `lowerdir=IMAGE:OBJECTS`, derived from the
 * (verified) bytes of a composefs image; pure.
 *
 * As libcomposefs does for its images, each of `00`..`ff` that the root lacks gets an overlay
 * whiteout: a character device 0:0, mode 0644, owner, group and mtime of the root, and the
 * root's `security.selinux` if it has one; nothing else marks it. A name the root has stays
 * as it is (libcomposefs skips it too): a non-directory, or a whiteout already there, hides
 * the object directory by itself. A directory would be merged with the object directory
 * below, so unlike libcomposefs this also marks it opaque (`trusted.overlay.opaque=y`,
 * unescaped: the writer's `overlayXattrs`).
 *
 * The redirects still resolve: a metacopy file's `trusted.overlay.redirect` is absolute
 * (`/XX/REST`), and overlayfs looks an absolute redirect up from the root of the layers below
 * the one holding the file, component by component in each layer alone; the whiteouts and
 * opaque marks live in the image layer above and are never consulted for it.
 *
 * @throws {ErofsError} when the image is malformed.
 */
export function fallbackImage(verified: Uint8Array): FallbackImage {
  const fs = readErofs(verified);
  const root = fs.root;
  const selinux = root.stat.xattrs.filter((x) => bytesToName(x.name) === SELINUX);
  const overlayXattrs = new Map<Inode, Xattr[]>();
  const opaque: string[] = [];
  let whiteouts = 0;
  for (const name of OBJECT_DIRS) {
    const have = root.entries.get(name);
    if (have === undefined) {
      const whiteout: Leaf = {
        kind: "leaf",
        stat: {
          mode: 0o644,
          uid: root.stat.uid,
          gid: root.stat.gid,
          mtime: root.stat.mtime,
          xattrs: selinux.map((x) => ({ name: x.name, value: x.value })),
        },
        content: { type: "chardev", rdev: 0n },
      };
      root.entries.set(name, whiteout);
      whiteouts++;
    } else if (have.kind === "dir") {
      overlayXattrs.set(have, [{
        name: enc.encode("trusted.overlay.opaque"),
        value: enc.encode("y"),
      }]);
      opaque.push(name);
    }
  }
  return { image: mkfsErofs(fs, { overlayXattrs, version: 2 }), whiteouts, opaque };
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Sets up the composed root; see the module documentation. Throws {@link SetupRootError}. */
export async function setupRoot(o: SetupRootOptions = {}): Promise<SetupRootResult> {
  const log = o.log ?? (() => {});
  const cmdline = o.cmdline ?? await Deno.readTextFile("/proc/cmdline");
  const image = parseComposefsCmdline(cmdline);
  const sysroot = o.sysroot ?? "/sysroot";
  log(`image ${image.id}${image.insecure ? " (insecure)" : ""}`);

  if (o.rootDevice) {
    await Deno.mkdir(sysroot, { recursive: true });
    await mount(
      ["-t", o.rootFsType ?? "ext4", "-o", "rw", o.rootDevice, sysroot],
      `cannot mount ${o.rootDevice} on ${sysroot}`,
    );
    log(`mounted ${o.rootDevice} on ${sysroot}`);
  }
  const repo = o.repo ?? join(sysroot, "composefs");
  if (!exists(join(repo, "objects"))) {
    throw new SetupRootError(`${repo}: no composefs repository (no objects/ directory)`);
  }
  const meta = readMetaAlgorithm(repo);
  if (meta !== undefined && meta !== image.algorithm) {
    throw new SetupRootError(
      `composefs=${image.id}: a ${image.algorithm} id, but ${repo} is a ${meta} repository`,
    );
  }

  // The image: its fs-verity digest is its id.
  const imagePath = join(repo, "images", image.id);
  if (!exists(imagePath)) {
    throw new SetupRootError(`no image ${image.id} in ${repo} (wrong composefs= id?)`);
  }
  const imageFile = await Deno.realPath(imagePath).catch((e) => {
    throw new SetupRootError(`${imagePath}: dangling (${(e as Error).message})`);
  });
  const sealed = sealAndMeasure(imageFile, image.algorithm, image.insecure);
  if (sealed.digest !== null && toHex(sealed.digest) !== image.id) {
    throw new SetupRootError(
      `image ${image.id}: fs-verity digest of ${imagePath} is ${
        toHex(sealed.digest)
      } (wrong composefs= id or a changed image)`,
    );
  }
  const bytes = await Deno.readFile(imageFile);
  let objects: Uint8Array[];
  try {
    objects = collectObjects(readErofs(bytes));
  } catch (e) {
    throw new SetupRootError(`image ${image.id}: ${(e as Error).message}`, { cause: e });
  }
  log(
    `image ${image.insecure ? "read" : "verified"}: ${
      sealed.enabled ? "fs-verity enabled, " : ""
    }${objects.length} objects`,
  );

  // Every object: present, sealed, and named by its digest.
  let verityEnabled = 0;
  for (const digest of objects) {
    const hex = toHex(digest);
    const path = join(repo, "objects", hex.slice(0, 2), hex.slice(2));
    if (!exists(path)) throw new SetupRootError(`object ${hex} is missing (${path})`);
    const s = sealAndMeasure(path, image.algorithm, image.insecure);
    if (s.enabled) verityEnabled++;
    if (s.digest !== null && toHex(s.digest) !== hex) {
      throw new SetupRootError(
        `object ${path}: fs-verity digest is ${toHex(s.digest)}, not its name (changed content)`,
      );
    }
  }
  log(
    `objects ${
      image.insecure ? "present" : "verified"
    } (fs-verity enabled on ${verityEnabled} of ${objects.length})`,
  );

  // EROFS + overlay.
  const work = "/run/cfs-setup-root";
  const tag = image.id.slice(0, 16);
  const lower = join(work, `erofs-${tag}`);
  const root = o.mountpoint ?? join(work, `root-${tag}`);
  await Deno.mkdir(lower, { recursive: true });
  await Deno.mkdir(root, { recursive: true });
  const objectsDir = join(repo, "objects");
  const base = ["ro", "metacopy=on", "redirect_dir=on"];
  const overlay = (options: string[], what: string) =>
    mount(["-t", "overlay", "-o", options.join(","), `composefs:${image.id}`, root], what);
  let used: { overlay: "data-only" | "fallback"; options: string[] } | undefined;
  let derived: FallbackImage | undefined;
  const errors: string[] = [];
  try {
    if (!o.forceFallback) {
      await mount(
        ["-t", "erofs", "-o", "loop,ro", imageFile, lower],
        `cannot mount image ${image.id}`,
      );
      const options = [
        ...base,
        `lowerdir=${lower}::${objectsDir}`,
        ...(image.insecure ? [] : ["verity=require"]),
      ];
      try {
        await overlay(options, "overlay (data-only)");
        used = { overlay: "data-only", options };
      } catch (e) {
        errors.push((e as Error).message);
        log(`${(e as Error).message}; trying the fallback`);
        await $`umount ${lower}`.stdout("null").stderr("null").noThrow();
      }
    }
    if (!used) {
      // The fallback: the derived image (whiteouts for 00..ff) from the verified bytes.
      const t0 = performance.now();
      try {
        derived = fallbackImage(bytes);
      } catch (e) {
        throw new SetupRootError(`image ${image.id}: ${(e as Error).message}`, { cause: e });
      }
      const file = join(work, `fallback-${tag}.erofs`);
      await Deno.writeFile(file, derived.image, { mode: 0o400 });
      try {
        await mount(
          ["-t", "erofs", "-o", "loop,ro", file, lower],
          `cannot mount the fallback image of ${image.id}`,
        );
      } finally {
        // The loop device holds the file; nothing else needs its name.
        await Deno.remove(file).catch(() => {});
      }
      log(
        `fallback image: ${derived.whiteouts} whiteouts for 00..ff added to /${
          derived.opaque.length ? `, opaque: ${derived.opaque.join(" ")}` : ""
        } (${derived.image.length} bytes, ${Math.round(performance.now() - t0)} ms)`,
      );
      const options = [...base, `lowerdir=${lower}:${objectsDir}`];
      try {
        await overlay(options, "overlay (fallback)");
        used = { overlay: "fallback", options };
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
  } finally {
    // The overlay holds the EROFS mount; detach it so that nothing else refers to it.
    await $`umount -l ${lower}`.stdout("null").stderr("null").noThrow();
    await Deno.remove(lower).catch(() => {});
  }
  if (!used) throw new SetupRootError(`cannot mount image ${image.id}: ${errors.join("; ")}`);
  log(`mounted image ${image.id} on ${root} (${used.overlay}: ${used.options.join(",")})`);

  if (o.mountpoint === undefined) {
    // The old sysroot (the disk) under the new root, the new root on the sysroot.
    if (exists(join(root, "sysroot"))) {
      await mount(["-o", "move", sysroot, join(root, "sysroot")], `cannot move ${sysroot}`);
    } else {
      await $`umount -l ${sysroot}`.noThrow();
    }
    await mount(["-o", "move", root, sysroot], `cannot move the new root to ${sysroot}`);
    log(`new root on ${sysroot}`);
  }
  return {
    id: image.id,
    insecure: image.insecure,
    objects: objects.length,
    verityEnabled,
    overlay: used.overlay,
    overlayOptions: used.options.join(","),
    ...(derived ? { whiteouts: derived.whiteouts, opaque: derived.opaque } : {}),
    root: o.mountpoint ?? sysroot,
  };
}

/** The algorithm meta.json names (sha256/sha512), or undefined without a readable meta.json. */
function readMetaAlgorithm(repo: string): VerityAlgorithm | undefined {
  try {
    const meta = JSON.parse(Deno.readTextFileSync(join(repo, "meta.json")));
    if (meta.algorithm === "fsverity-sha512-12") return "sha512";
    if (meta.algorithm === "fsverity-sha256-12") return "sha256";
  } catch {
    // an old-format repository: the id's length decides
  }
  return undefined;
}
