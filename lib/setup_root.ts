/**
 * `cfs setup-root`: what composefs-setup-root does in an initramfs, done by cfs.
 *
 * 1. read the image's id from the kernel command line, in every form composefs-rs 0.9.4
 *    writes ({@link composefsCandidates}): `composefs.digest=v1-sha512-12:<hex>` (a V1 image,
 *    the default) or `v2-...`, and the legacy `composefs=<hex>` (V2); a `?` right after `=`
 *    boots without fs-verity checks;
 * 2. mount the root device on the sysroot (when one is given; else the sysroot is mounted
 *    already), and open the repository at `<sysroot>/composefs`;
 * 3. enable fs-verity on the image file where it is missing, measure it, and compare the
 *    digest with the id;
 * 4. for every object the image refers to: check it exists, enable fs-verity where missing,
 *    and compare the measured digest with the object's name;
 * 5. mount the EROFS image (loop device) and an overlay with `objects/` as its data-only lower
 *    layer (`lowerdir=IMAGE::OBJECTS`, metacopy, redirect_dir, `verity=require` where the
 *    kernel knows it), as composefs-rs does; on kernels that refuse those options (before
 *    Linux 6.5 / 6.6) it falls back to `lowerdir=IMAGE:OBJECTS` without `verity=`, as
 *    libcomposefs does ({@link fallbackImage}, below);
 * 6. move the old sysroot to `<new root>/sysroot` (when the image has that directory) and the
 *    new root onto the sysroot. The initramfs's PID 1 then runs `switch_root SYSROOT INIT`
 *    (a process other than PID 1 cannot switch the root of the whole system).
 *
 * Checking every object up front is how fs-verity gets enforced on kernels whose overlayfs has
 * no `verity=require` (Linux 6.1, Debian 12's kernel): with fs-verity enabled on each object
 * and its digest equal to its name, a later change of an object's bytes fails the read (EIO).
 *
 * The fallback overlay makes `objects/` an ordinary lower layer, so its directories `00`..`ff`
 * would show through in `/`. V0/V1 images (composefs-rs 0.9.4's default format, the layout of
 * C mkcomposefs) hide them with whiteout stubs in their root and are mounted as they are. A
 * V2 image has no stubs: setup-root mounts an image derived from it instead, the tree written
 * again as V1, to a file on /run (a tmpfs) that is loop-mounted and then unlinked. The trust
 * chain holds: the image file has fs-verity enabled and its measured digest equals the id
 * before it is read (a file with fs-verity cannot change, and reads are checked against its
 * Merkle tree), and the derived image is a pure function of those bytes. The objects are
 * checked as before.
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "./errors.ts";
import { dax$ } from "./dax.ts";
import { join } from "node:path";
import { collectObjects, ErofsReader } from "./erofs/reader.ts";
import { mkfsErofs } from "./erofs/writer.ts";
import { type ErofsVersion, S_IFDIR, S_IFMT } from "./erofs/format.ts";
import type { FileSystem, Inode, Xattr } from "./tree.ts";
import { digestSize, toHex, type VerityAlgorithm } from "./fsverity/digest.ts";
import { enableVerity, measureVerity, VerityError } from "./fsverity/ioctl.ts";
import * as sys from "./sys/libc.ts";

/** setup-root failed; the message names the file or id and what is wrong. */
export class SetupRootError extends CfsError {
  /** Creates the error with a one-line message. */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, withCode(options, "setup-root-failed"));
    this.name = "SetupRootError";
  }
}

/** The image a kernel command line names (one `composefs.digest=` or `composefs=` word). */
export interface CmdlineImage {
  /** Image id (its fs-verity digest), lower-case hex. */
  id: string;
  /** A `?` right after `=`: boot without fs-verity checks. */
  insecure: boolean;
  /** The digest's algorithm: from the descriptor, or from the length of a `composefs=` id. */
  algorithm: VerityAlgorithm;
  /**
   * The EROFS format family the argument names: 1 for `composefs.digest=v1-...` (formats V0
   * and V1), 2 for `composefs.digest=v2-...` and `composefs=`. Informational: setup-root
   * looks the image up by id and reads its format from its header.
   */
  version: 1 | 2;
  /** The word as written on the command line. */
  karg: string;
}

/** The self-describing kernel argument: `composefs.digest=[?]v<1|2>-<hash>-12:<hex>`. */
export const KARG_DIGEST = "composefs.digest";
/** The legacy kernel argument of V2 images: `composefs=[?]<hex>`. */
export const KARG_V2 = "composefs";

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

const HASHES: Record<string, VerityAlgorithm> = { sha256: "sha256", sha512: "sha512" };

/** Lower-case hex of `hex` when it is a digest of `alg` (either case, as composefs-rs reads). */
function digestHex(hex: string, alg: VerityAlgorithm, what: string): string {
  const want = digestSize(alg) * 2;
  if (!/^[0-9a-fA-F]*$/.test(hex)) {
    throw new SetupRootError(`${what}: '${hex}' is not a hex digest`);
  }
  if (hex.length !== want) {
    throw new SetupRootError(
      `${what}: the digest has ${hex.length} hex digits, a ${alg} digest has ${want}`,
    );
  }
  return hex.toLowerCase();
}

/**
 * Parses the value of `composefs.digest=`: `[?]<version>-<hash>-<lg blocksize>:<hex>`, where
 * version is `v1` or `v2`, hash `sha256` or `sha512`, lg blocksize `12` (4 KiB, the only one
 * composefs-rs 0.9.4 supports), and the hex digest as long as the hash's.
 * @throws {SetupRootError} naming the argument and what is wrong with it.
 */
export function parseDigestValue(value: string): CmdlineImage {
  const karg = `${KARG_DIGEST}=${value}`;
  const insecure = value.startsWith("?");
  const v = insecure ? value.slice(1) : value;
  const colon = v.indexOf(":");
  const desc = colon < 0 ? "" : v.slice(0, colon);
  const dash = desc.indexOf("-");
  const last = desc.lastIndexOf("-");
  if (colon < 0 || dash < 0 || last === dash) {
    throw new SetupRootError(`${karg}: expected [?]v1|v2-sha256|sha512-12:<hex digest>`);
  }
  const versionText = desc.slice(0, dash);
  const hash = desc.slice(dash + 1, last);
  const lg = desc.slice(last + 1);
  const version = versionText === "v1" ? 1 : versionText === "v2" ? 2 : undefined;
  if (version === undefined) {
    throw new SetupRootError(`${karg}: unsupported format version '${versionText}' (v1 or v2)`);
  }
  const algorithm = HASHES[hash];
  if (algorithm === undefined) {
    throw new SetupRootError(`${karg}: unsupported hash '${hash}' (sha256 or sha512)`);
  }
  if (!/^[0-9]+$/.test(lg) || Number(lg) !== 12) {
    throw new SetupRootError(`${karg}: unsupported block size '${lg}' (only 12, 4 KiB blocks)`);
  }
  return { id: digestHex(v.slice(colon + 1), algorithm, karg), insecure, algorithm, version, karg };
}

/**
 * Parses the value of the legacy `composefs=`: `[?]<hex>`, 64 hex digits for sha256 and 128
 * for sha512 (composefs-rs reads it with the repository's algorithm; `algorithm` is that,
 * when known).
 * @throws {SetupRootError} naming the argument and what is wrong with it.
 */
export function parseComposefsValue(value: string, algorithm?: VerityAlgorithm): CmdlineImage {
  const karg = `${KARG_V2}=${value}`;
  const insecure = value.startsWith("?");
  const hex = insecure ? value.slice(1) : value;
  const alg = algorithm ?? (hex.length === 64 ? "sha256" : "sha512");
  if (algorithm === undefined && hex.length !== 64 && hex.length !== 128) {
    throw new SetupRootError(
      `${karg}: not an image id (64 or 128 hex digits, optionally after '?')`,
    );
  }
  return { id: digestHex(hex, alg, karg), insecure, algorithm: alg, version: 2, karg };
}

/**
 * The images a kernel command line names, in the order composefs-rs 0.9.4's initramfs tries
 * them (composefs-boot `cmdline.rs`, `design.rs`): every `composefs.digest=` word whose hash
 * is `algorithm` (the repository's; any when undefined), in command line order; only when
 * there is none, the first `composefs=` word. The boot mounts the first of these whose image
 * exists in the repository. A `?` right after `=` is the insecure marker of either form.
 *
 * Stricter than composefs-rs in one way: every `composefs.digest=` word must be well-formed,
 * including one for another algorithm (composefs-rs skips those before reading the digest).
 *
 * @throws {SetupRootError} when a word is malformed, or none names an image of `algorithm`.
 */
export function composefsCandidates(cmdline: string, algorithm?: VerityAlgorithm): CmdlineImage[] {
  const words = splitCmdline(cmdline);
  const prefix = `${KARG_DIGEST}=`;
  const digests = words.filter((w) => w.startsWith(prefix)).map((w) =>
    parseDigestValue(w.slice(prefix.length))
  );
  const usable = digests.filter((d) => algorithm === undefined || d.algorithm === algorithm);
  if (usable.length) return usable;
  const legacy = cmdlineValue(cmdline, KARG_V2);
  if (legacy !== undefined) return [parseComposefsValue(legacy, algorithm)];
  if (digests.length) {
    throw new SetupRootError(
      `no ${algorithm} image on the kernel command line (the repository's algorithm), only ${
        digests.map((d) => d.karg).join(" ")
      }`,
    );
  }
  throw new SetupRootError(`no ${KARG_DIGEST}= or ${KARG_V2}= on the kernel command line`);
}

/**
 * The image a kernel command line names for a repository of `algorithm`: the first of
 * {@link composefsCandidates} (composefs-boot's `ComposefsCmdline::from_cmdline`). So
 * `composefs.digest=` wins over `composefs=`, and the first matching word wins.
 * @throws {SetupRootError} as {@link composefsCandidates}.
 */
export function parseComposefsCmdline(cmdline: string, algorithm?: VerityAlgorithm): CmdlineImage {
  return composefsCandidates(cmdline, algorithm)[0];
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
   * Skip the data-only overlay and use the fallback even where the kernel has data-only
   * lower layers: for tests of that path on new kernels.
   */
  forceFallback?: boolean;
}

/** What {@link setupRoot} did. */
export interface SetupRootResult {
  id: string;
  insecure: boolean;
  /** The kernel argument that named the image. */
  karg: string;
  /** The image's EROFS format, from its composefs header (0, 1 or 2). */
  erofsVersion: ErofsVersion;
  /** Objects the image refers to. */
  objects: number;
  /** Of these, objects on which setup-root enabled fs-verity (0 when all had it). */
  verityEnabled: number;
  /** The overlay's lower-layer syntax: `data-only` (`::`) or `fallback` (`:`, no verity=). */
  overlay: "data-only" | "fallback";
  /** The overlay's mount options. */
  overlayOptions: string;
  /**
   * With the fallback overlay: whether setup-root mounted an image derived from the
   * repository's ({@link fallbackImage}); false when the image was mounted as it is.
   */
  derived?: boolean;
  /** With a derived image: whiteouts its root got. */
  whiteouts?: number;
  /** With a derived image: root directories `00`..`ff` of the image marked opaque. */
  opaque?: string[];
  /** Where the composed root is mounted now. */
  root: string;
}

async function mount(args: string[], what: string): Promise<void> {
  const $ = await dax$();
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
      ? `${path}: the file system has no fs-verity (a '?' after 'composefs=' or ` +
        `'composefs.digest=' boots without it)`
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
const dec = new TextDecoder();

/** What {@link fallbackImage} decided. */
export interface FallbackImage {
  /** The image to mount: null for the verified image as it is, else a derived one. */
  image: Uint8Array | null;
  /** Whiteouts the derived image's root got (names of `00`..`ff` its tree lacks). */
  whiteouts: number;
  /** Root directories named `00`..`ff` that the image has, marked opaque in the derived one. */
  opaque: string[];
}

/**
 * The image to mount with the fallback overlay `lowerdir=IMAGE:OBJECTS`, for the (verified)
 * bytes of a composefs image; pure.
 *
 * There `objects/` is an ordinary lower layer, so each of its directories `00`..`ff` shows
 * through in `/` unless the image's root has an entry of that name that is not a directory.
 * Images in format V0 and V1 (composefs-rs 0.9.4's default, C mkcomposefs's layout) carry
 * exactly that: a whiteout stub (character device 0:0) for each name the tree lacks. Such an
 * image is mounted as it is (`image: null`).
 *
 * Otherwise (a V2 image has no stubs; a tree of any format may have a directory named like an
 * object directory, which would merge with it) the image is derived: the tree read back
 * (lib/erofs/reader.ts) and written again as V1 (lib/erofs/writer.ts, which adds the stubs
 * for missing names), with each root directory named `00`..`ff` marked
 * `trusted.overlay.opaque=y` (unescaped: the writer's `overlayXattrs`). libcomposefs leaves
 * those merged; here they show the image's content only.
 *
 * The redirects still resolve: a metacopy file's `trusted.overlay.redirect` is absolute
 * (`/XX/REST`), and overlayfs looks an absolute redirect up from the root of the layers below
 * the one holding the file, component by component in each layer alone; the stubs and opaque
 * marks live in the image layer above and are never consulted for it.
 *
 * `tree` is the image's tree when the caller has read it already (it is written, not changed).
 *
 * @throws {ErofsError} when the image is malformed.
 */
export function fallbackImage(verified: Uint8Array, tree?: FileSystem): FallbackImage {
  const reader = new ErofsReader(verified);
  const hiding = new Set<string>();
  for (const e of reader.dirents(reader.inode(reader.rootNid))) {
    const name = dec.decode(e.name);
    if ((reader.inode(e.nid).mode & S_IFMT) !== S_IFDIR) hiding.add(name);
  }
  if (OBJECT_DIRS.every((n) => hiding.has(n))) return { image: null, whiteouts: 0, opaque: [] };

  const fs = tree ?? reader.readTree();
  const overlayXattrs = new Map<Inode, Xattr[]>();
  const opaque: string[] = [];
  let whiteouts = 0;
  for (const name of OBJECT_DIRS) {
    const have = fs.root.entries.get(name);
    if (have === undefined) whiteouts++;
    else if (have.kind === "dir") {
      overlayXattrs.set(have, [{
        name: enc.encode("trusted.overlay.opaque"),
        value: enc.encode("y"),
      }]);
      opaque.push(name);
    }
  }
  return { image: mkfsErofs(fs, { overlayXattrs, version: 1 }), whiteouts, opaque };
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
  const $ = await dax$();
  const log = o.log ?? (() => {});
  const cmdline = o.cmdline ?? await Deno.readTextFile("/proc/cmdline");
  composefsCandidates(cmdline); // malformed or missing arguments fail before any mount
  const sysroot = o.sysroot ?? "/sysroot";

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
  // The repository's algorithm picks the arguments that apply; the first whose image is
  // there wins (an old-format repository without meta.json takes any algorithm).
  const candidates = composefsCandidates(cmdline, readMetaAlgorithm(repo));
  const image = candidates.find((c) => exists(join(repo, "images", c.id)));
  if (image === undefined) {
    const kargs = candidates.map((c) => c.karg).join(" ");
    throw new SetupRootError(
      `no image ${candidates.map((c) => c.id).join(" or ")} in ${repo} (named by ${kargs})`,
    );
  }
  const key = image.karg.slice(0, image.karg.indexOf("=") + 1);
  log(`image ${image.id}${image.insecure ? " (insecure)" : ""} from ${key}`);

  // The image: its fs-verity digest is its id.
  const imagePath = join(repo, "images", image.id);
  const imageFile = await Deno.realPath(imagePath).catch((e) => {
    throw new SetupRootError(`${imagePath}: dangling (${(e as Error).message})`);
  });
  const sealed = sealAndMeasure(imageFile, image.algorithm, image.insecure);
  if (sealed.digest !== null && toHex(sealed.digest) !== image.id) {
    const measured = toHex(sealed.digest);
    throw new SetupRootError(
      `image ${image.id}: fs-verity digest of ${imagePath} is ${measured} (wrong ${key} id ` +
        `or a changed image)`,
    );
  }
  const bytes = await Deno.readFile(imageFile);
  let tree: FileSystem;
  let erofsVersion: ErofsVersion;
  let objects: Uint8Array[];
  try {
    const reader = new ErofsReader(bytes);
    erofsVersion = reader.version;
    tree = reader.readTree();
    objects = collectObjects(tree);
  } catch (e) {
    throw new SetupRootError(`image ${image.id}: ${(e as Error).message}`, { cause: e });
  }
  log(
    `image ${image.insecure ? "read" : "verified"}: EROFS format V${erofsVersion}, ${
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
  const mountImage = (file: string, what: string) =>
    mount(["-t", "erofs", "-o", "loop,ro", file, lower], what);
  let used: { overlay: "data-only" | "fallback"; options: string[] } | undefined;
  let fallback: FallbackImage | undefined;
  let imageMounted = false;
  const errors: string[] = [];
  try {
    if (!o.forceFallback) {
      await mountImage(imageFile, `cannot mount image ${image.id}`);
      imageMounted = true;
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
      }
    }
    if (!used) {
      const t0 = performance.now();
      try {
        fallback = fallbackImage(bytes, tree);
      } catch (e) {
        throw new SetupRootError(`image ${image.id}: ${(e as Error).message}`, { cause: e });
      }
      if (fallback.image === null) {
        log(`fallback: the image's root hides objects/00..ff, mounted as it is`);
        if (!imageMounted) await mountImage(imageFile, `cannot mount image ${image.id}`);
      } else {
        if (imageMounted) await $`umount ${lower}`.stdout("null").stderr("null").noThrow();
        const file = join(work, `fallback-${tag}.erofs`);
        await Deno.writeFile(file, fallback.image, { mode: 0o400 });
        try {
          await mountImage(file, `cannot mount the fallback image of ${image.id}`);
        } finally {
          // The loop device holds the file; nothing else needs its name.
          await Deno.remove(file).catch(() => {});
        }
        log(
          `fallback: derived V1 image, ${fallback.whiteouts} whiteouts for 00..ff in /${
            fallback.opaque.length ? `, opaque: ${fallback.opaque.join(" ")}` : ""
          } (${fallback.image.length} bytes, ${Math.round(performance.now() - t0)} ms)`,
        );
      }
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
    karg: image.karg,
    erofsVersion,
    objects: objects.length,
    verityEnabled,
    overlay: used.overlay,
    overlayOptions: used.options.join(","),
    ...(fallback
      ? {
        derived: fallback.image !== null,
        ...(fallback.image ? { whiteouts: fallback.whiteouts, opaque: fallback.opaque } : {}),
      }
      : {}),
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
    // an old-format repository: any algorithm
  }
  return undefined;
}
