/**
 * What composefs-rs 0.9.4 does to a container root file system before it becomes an image
 * (`FileSystem::transform_for_oci`), so that the image ID of a tree does not depend on where
 * the tree came from: OCI layers, where the root entry is often missing or ignored, or a
 * mounted container root, where the host leaks xattrs (an overlayfs `security.selinux`
 * label, say). In this order:
 *
 * 1. the root directory takes `/usr`'s mode, owner, group, mtime (with nanoseconds) and
 *    xattrs: `/usr` is always there and always has well-defined metadata, the root does not;
 * 2. `/run` (a tmpfs at run time, and where `RUN --mount` leaves stubs) is emptied and takes
 *    `/usr`'s mtime, when it exists;
 * 3. xattrs are filtered everywhere: only `security.capability` stays, plus `user.*` with
 *    {@link XattrFiltering} `keep-user-xattrs`. SELinux labels the image needs come later,
 *    from the boot transform and the image's own policy.
 *
 * A tree without `/usr` cannot be transformed (the error names it), exactly as 0.9.4 refuses
 * it: `cfsctl compute-id` of such a tree fails unless `--no-propagate-usr-to-root` skips all
 * three steps.
 *
 * @module
 */
import {
  childDirectory,
  type FileSystem,
  forEachStat,
  requireDirectory,
  type Stat,
  type Xattr,
} from "./tree.ts";

/** Which xattrs {@link transformForOci} keeps (0.9.4's `XattrFiltering`, by its CLI names). */
export type XattrFiltering = "allowlist-only" | "keep-user-xattrs";

/** Every {@link XattrFiltering}, the default first (as 0.9.4 lists them). */
export const XATTR_FILTERINGS: readonly XattrFiltering[] = ["allowlist-only", "keep-user-xattrs"];

/** The default {@link XattrFiltering}: only the allowlist. */
export const DEFAULT_XATTR_FILTERING: XattrFiltering = "allowlist-only";

/**
 * The xattrs a container root keeps whatever the filtering: file capabilities are part of
 * what a file is; labels and the rest come from the build host.
 */
export const CONTAINER_XATTR_ALLOWLIST: readonly string[] = ["security.capability"];

/** Options of {@link transformForOci}. */
export interface OciTransformOptions {
  /** Which xattrs to keep; default {@link DEFAULT_XATTR_FILTERING}. */
  xattrs?: XattrFiltering;
}

/** Parses a `--xattrs` value; the error lists the accepted names as 0.9.4's does. */
export function parseXattrFiltering(value: string): XattrFiltering {
  if ((XATTR_FILTERINGS as readonly string[]).includes(value)) return value as XattrFiltering;
  const expected = XATTR_FILTERINGS.map((m) => JSON.stringify(m)).join(" or ");
  throw new RangeError(
    `invalid xattr filtering mode ${JSON.stringify(value)} (expected ${expected})`,
  );
}

const ALLOWED = new Set(CONTAINER_XATTR_ALLOWLIST);
const USER_PREFIX = "user.";

function nameOf(x: Xattr): string {
  let s = "";
  for (const b of x.name) s += String.fromCharCode(b);
  return s;
}

/** Whether `filtering` keeps the xattr named `name` (a byte string). */
export function keepsXattr(filtering: XattrFiltering, name: string): boolean {
  if (ALLOWED.has(name)) return true;
  return filtering === "keep-user-xattrs" && name.startsWith(USER_PREFIX);
}

/** Drops, on every inode of `fs`, the xattrs `keep` (given the name as a byte string) rejects. */
export function filterXattrs(fs: FileSystem, keep: (name: string) => boolean): void {
  forEachStat(fs, (stat) => {
    if (stat.xattrs.length === 0) return;
    stat.xattrs = stat.xattrs.filter((x) => keep(nameOf(x)));
  });
}

/** Copies `/usr`'s metadata to the root (step 1 of the module doc); throws without `/usr`. */
export function copyRootMetadataFromUsr(fs: FileSystem): void {
  const usr = requireDirectory(fs.root, "usr").stat;
  const root: Stat = {
    mode: usr.mode,
    uid: usr.uid,
    gid: usr.gid,
    mtime: usr.mtime,
    mtimeNsec: usr.mtimeNsec ?? 0,
    xattrs: usr.xattrs.map((x) => ({ name: x.name.slice(), value: x.value.slice() })),
  };
  fs.root.stat = root;
  fs.haveRootStat = true;
}

/**
 * Empties `/run` and gives it `/usr`'s mtime (step 2); its own mode, owner and xattrs stay.
 * Needs `/usr` only when `/run` exists.
 */
export function canonicalizeRun(fs: FileSystem): void {
  const run = childDirectory(fs.root, "run");
  if (run === undefined) return;
  const usr = requireDirectory(fs.root, "usr").stat;
  run.stat.mtime = usr.mtime;
  run.stat.mtimeNsec = usr.mtimeNsec ?? 0;
  run.entries.clear();
}

/** All three steps of the module doc, in 0.9.4's order. */
export function transformForOci(fs: FileSystem, options: OciTransformOptions = {}): void {
  const filtering = options.xattrs ?? DEFAULT_XATTR_FILTERING;
  copyRootMetadataFromUsr(fs);
  canonicalizeRun(fs);
  filterXattrs(fs, (name) => keepsXattr(filtering, name));
}
