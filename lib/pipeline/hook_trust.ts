/**
 * Which hook files root may run: cfs runs hooks with its own rights, so as root a hook file
 * that another user can change is that user's way to root. The rule is the one sudo applies to
 * its sudoers files and includedir (`sudo_secure_path`), taken along the whole path as OpenSSH's
 * StrictModes does (`safe_path`), because cfs takes hook paths from the command line and the
 * configuration file rather than from fixed directories under `/etc`:
 *
 * - the file, and every directory from `/` down to it, is owned by root (uid 0);
 * - none of them is writable by others, and none is writable by its group unless that group is
 *   root's (gid 0), as sudo allows;
 * - except that a directory with the sticky bit (`/tmp`, mode 1777) may be writable by all: in
 *   it only an entry's owner can rename or remove the entry, and the entry must be root's;
 * - symbolic links on the way are followed (at most 40), and each must be owned by root too
 *   (in a sticky directory a link's owner could replace it); the checks apply to the path
 *   they lead to, so a link in `/etc/cfs/hooks.d` to a user's file is refused.
 *
 * The hook file and each file it imports (`./lib.ts`) are checked; built-in hooks are part of
 * cfs. When cfs does not run as root, nothing is checked: the hooks run with the rights of the
 * user who could write them anyway.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";

/** Most symbolic links followed on one path (Linux's own limit is 40). */
const MAX_LINKS = 40;

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/** Why one inode on the path cannot be trusted, or undefined. */
function inodeProblem(path: string, st: Deno.FileInfo): string | undefined {
  if (st.uid !== 0) return `${path} is owned by uid ${st.uid}, not root`;
  if (st.isSymlink) return undefined;
  const mode = st.mode ?? 0;
  const sticky = st.isDirectory && (mode & 0o1000) !== 0;
  if ((mode & 0o002) !== 0 && !sticky) {
    return `${path} is writable by others (mode ${octal(mode)})`;
  }
  if ((mode & 0o020) !== 0 && st.gid !== 0 && !sticky) {
    return `${path} is writable by group ${st.gid} (mode ${octal(mode)})`;
  }
  return undefined;
}

/**
 * Why `path` is not a file only root can change (see the module documentation), or undefined
 * when it is one. Missing paths are not this function's business: they give undefined, and
 * reading the file reports them.
 */
export function untrustedReason(path: string): string | undefined {
  const pending = resolve(path).split("/").filter((p) => p !== "");
  let current = "/";
  let links = 0;
  try {
    const rootProblem = inodeProblem("/", Deno.lstatSync("/"));
    if (rootProblem) return rootProblem;
    while (pending.length > 0) {
      const name = pending.shift()!;
      if (name === ".") continue;
      if (name === "..") {
        // `current` holds no links, so its parent is the real parent (already checked).
        current = current === "/" ? "/" : current.slice(0, current.lastIndexOf("/")) || "/";
        continue;
      }
      const next = current === "/" ? `/${name}` : `${current}/${name}`;
      const st = Deno.lstatSync(next);
      const problem = inodeProblem(next, st);
      if (problem) return problem;
      if (st.isSymlink) {
        if (++links > MAX_LINKS) return `${path}: more than ${MAX_LINKS} symbolic links`;
        const target = Deno.readLinkSync(next);
        pending.unshift(...target.split("/").filter((p) => p !== ""));
        if (isAbsolute(target)) current = "/";
        continue;
      }
      current = next;
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw e;
  }
  return undefined;
}

/** Whether hook files are checked: cfs runs as root. */
export function runningAsRoot(): boolean {
  return Deno.uid() === 0;
}
