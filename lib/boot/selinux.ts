/**
 * SELinux labelling of a tree from the image's own policy, as composefs-boot 0.9.4 does
 * for bootable images (`selabel`): read `SELINUXTYPE` from `/etc/selinux/config`, load
 * `/etc/selinux/<type>/contexts/files/file_contexts` (+ `.local`, `.homedirs`) and the
 * `.subs`/`.subs_dist` path aliases, and set (or remove, for `<<none>>` or no match)
 * `security.selinux` on every inode. The last matching line of the spec files wins.
 *
 * A hardlinked file keeps the label of its first path (in the walk: directory first, then
 * its entries in byte order); a later path that gets another label becomes a copy of the file
 * with that label, since one inode cannot carry two labels. Without a policy (no
 * `/etc/selinux`, no `config`, or no `SELINUXTYPE` in it) every `security.selinux` is removed
 * instead: labels in an image come from its policy, never from the build host.
 *
 * The policy files come from the tree itself ({@link treePolicyFiles}) or, for a tree read
 * from a directory and not stored anywhere, from that directory on disk
 * ({@link diskPolicyFiles}, where symlinks are followed), as 0.9.4's `selabel_from_dir`.
 *
 * Patterns are matched against "PATH" + one type letter (`-` `d` `l` `c` `b` `p` `s`),
 * anchored at both ends, as the reference does. They are JavaScript regular expressions over
 * a byte string with dotAll (`.` matches any byte); POSIX bracket classes are translated.
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import {
  cloneStat,
  compareBytes,
  type Directory,
  type FileSystem,
  forEachStat,
  type Leaf,
  nameToBytes,
  sortedEntries,
  type Stat,
  TreeError,
  typeLetter,
} from "../tree.ts";

/** A file_contexts/subs file that cannot be used: names the file, line and reason. */
export class SelinuxPolicyError extends CfsError {
  /** Creates the error; `message` names the file and line. */
  constructor(message: string) {
    super(message, { code: "selinux-policy-invalid" });
    this.name = "SelinuxPolicyError";
  }
}

/** One file_contexts line, compiled. */
export interface Rule {
  /**
   * The line's pattern followed by its type letter (any type when the line has none),
   * anchored at both ends and with dotAll; tested against "PATH" + type letter.
   */
  regex: RegExp;
  /** A literal prefix every match must start with: a cheap filter before the regex. */
  prefix: string;
  /** The label to set, or `<<none>>`: the path gets no label. */
  context: string;
  /** The pattern has no regex metacharacters (libselinux's `hasMetaChars` is false). */
  exact?: boolean;
}

/** libselinux's test for a spec that is a plain path: none of `.^$?*+|[({`, `\x` skipped. */
export function hasRegexMetaChars(pattern: string): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (".^$?*+|[({".includes(c)) return true;
    if (c === "\\") i++;
  }
  return false;
}

/** A loaded policy: rules in match order (last line of the files first) and path aliases. */
export class FileContexts {
  /**
   * A policy from parsed spec and subs files.
   * @param rules the rules, highest priority first (as {@link parseSpecFiles} returns them).
   * @param aliases path substitutions from the `.subs` files: alias path to the original
   *   path whose labels it gets (as {@link parseSubsFiles} returns them).
   */
  constructor(readonly rules: Rule[], readonly aliases: Map<string, string>) {}

  /**
   * The same policy with libselinux's precedence (what `matchpathcon`, `setfiles` and
   * `restorecon` use): a plain-path line beats every regex line, whatever their order;
   * otherwise the last matching line wins. composefs-boot's labelling (the boot
   * transform, which must match cfsctl) lets the last matching line win in all cases.
   */
  withLibselinuxPrecedence(): FileContexts {
    const exact = this.rules.filter((r) => r.exact);
    const rest = this.rules.filter((r) => !r.exact);
    return new FileContexts([...exact, ...rest], this.aliases);
  }

  /** The label for `path` (byte string) of type `letter`, or undefined (no match / <<none>>). */
  lookup(path: string, letter: string): string | undefined {
    const key = path + letter;
    for (const rule of this.rules) {
      if (!key.startsWith(rule.prefix)) continue;
      if (rule.regex.test(key)) return rule.context === "<<none>>" ? undefined : rule.context;
    }
    return undefined;
  }
}

const POSIX_CLASSES: Record<string, string> = {
  alnum: "0-9A-Za-z",
  alpha: "A-Za-z",
  digit: "0-9",
  lower: "a-z",
  upper: "A-Z",
  space: "\\t\\n\\v\\f\\r ",
  xdigit: "0-9A-Fa-f",
  punct: "!-\\/:-@\\[-`{-~",
  blank: "\\t ",
};

function translate(re: string): string {
  return re.replace(/\[:([a-z]+):\]/g, (m, name) => POSIX_CLASSES[name] ?? m);
}

function literalPrefix(re: string): string {
  if (re.includes("|")) return "";
  let i = 0;
  while (i < re.length && !".[]()*+?{}|^$\\".includes(re[i])) i++;
  let prefix = re.slice(0, i);
  if (i < re.length && "?*{".includes(re[i])) prefix = prefix.slice(0, -1);
  return prefix;
}

/** Parses spec files (in the order given) into rules; the last line gets the highest priority. */
export function parseSpecFiles(files: Array<{ name: string; text: string }>): Rule[] {
  const rules: Rule[] = [];
  for (const { name, text } of files) {
    text.split("\n").forEach((line, i) => {
      const parts = line.split(/[ \t\r\f\v]+/).filter((p) => p !== "");
      if (parts.length === 0 || parts[0].startsWith("#")) return;
      const where = `SELinux spec file ${name} line ${i + 1}`;
      if (parts.length < 2) {
        throw new SelinuxPolicyError(`${where}: missing context after the regex`);
      }
      let letter = ".";
      let context = parts[1];
      let rest = 2;
      if (parts[1].startsWith("-")) {
        const code = parts[1].slice(1);
        if (!["b", "c", "d", "p", "l", "s", "-"].includes(code)) {
          throw new SelinuxPolicyError(`${where}: invalid type code -${code}`);
        }
        if (parts.length < 3) throw new SelinuxPolicyError(`${where}: missing context field`);
        letter = code === "-" ? "-" : code;
        context = parts[2];
        rest = 3;
      }
      if (parts.length > rest) throw new SelinuxPolicyError(`${where}: trailing data`);
      const typePattern = letter === "." ? "." : letter === "-" ? "\\-" : letter;
      let regex: RegExp;
      try {
        regex = new RegExp(`^(?:${translate(parts[0])})${typePattern}$`, "s");
      } catch (e) {
        throw new SelinuxPolicyError(
          `${where}: bad regex ${JSON.stringify(parts[0])}: ${(e as Error).message}`,
        );
      }
      rules.push({
        regex,
        prefix: literalPrefix(parts[0]),
        context,
        exact: !hasRegexMetaChars(parts[0]),
      });
    });
  }
  return rules.reverse();
}

/** Parses `.subs` files: "ALIAS ORIGINAL" per line. */
export function parseSubsFiles(files: Array<{ name: string; text: string }>): Map<string, string> {
  const aliases = new Map<string, string>();
  for (const { name, text } of files) {
    text.split("\n").forEach((line, i) => {
      const parts = line.split(/\s+/).filter((p) => p !== "");
      if (parts.length === 0 || parts[0].startsWith("#")) return;
      if (parts.length < 2) {
        throw new SelinuxPolicyError(
          `SELinux subs file ${name} line ${i + 1}: missing original path`,
        );
      }
      if (parts.length > 2) {
        throw new SelinuxPolicyError(`SELinux subs file ${name} line ${i + 1}: trailing data`);
      }
      aliases.set(parts[0], parts[1]);
    });
  }
  return aliases;
}

const SECURITY_SELINUX = new TextEncoder().encode("security.selinux");

function setLabel(stat: Stat, label: string | undefined): void {
  const idx = stat.xattrs.findIndex((x) => compareBytes(x.name, SECURITY_SELINUX) === 0);
  if (label === undefined) {
    if (idx >= 0) stat.xattrs.splice(idx, 1);
    return;
  }
  const value = nameToBytes(label);
  if (idx >= 0) stat.xattrs[idx] = { name: SECURITY_SELINUX, value };
  else {
    stat.xattrs.push({ name: SECURITY_SELINUX, value });
    stat.xattrs.sort((a, b) => compareBytes(a.name, b.name));
  }
}

/**
 * Labels every inode below `root` from `policy` (module doc): the directory first, then its
 * entries in byte order, paths through the policy's aliases. A hardlinked leaf whose later
 * path gets another label is replaced, at that path, by a copy carrying that label.
 */
export function relabelTree(root: Directory, policy: FileContexts): void {
  const committed = new Map<Leaf, string | undefined>();
  const visit = (dir: Directory, path: string) => {
    setLabel(dir.stat, policy.lookup(path, "d"));
    for (const [name, child] of sortedEntries(dir)) {
      const childPath = path === "/" ? `/${name}` : `${path}/${name}`;
      const effective = policy.aliases.get(childPath) ?? childPath;
      if (child.kind === "dir") {
        visit(child, effective);
        continue;
      }
      const label = policy.lookup(effective, typeLetter(child));
      let leaf = child;
      if (committed.has(child) && committed.get(child) !== label) {
        leaf = { kind: "leaf", stat: cloneStat(child.stat), content: child.content };
        dir.entries.set(name, leaf);
      }
      setLabel(leaf.stat, label);
      if (!committed.has(leaf)) committed.set(leaf, label);
    }
  };
  visit(root, "/");
}

/** Removes `security.selinux` from every inode (what a tree without a policy gets). */
export function stripSelinuxLabels(fs: FileSystem): void {
  forEachStat(fs, (stat) => setLabel(stat, undefined));
}

/**
 * Returns the content of an external file of the tree (one stored as an object, not
 * inline), so that policy files above the inline limit can be loaded. The caller decides
 * where from: the repository, or the file on disk the tree was read from.
 */
export type ReadExternal = (
  content: { type: "external"; digest: Uint8Array; size: number },
) => Uint8Array;

/**
 * The files of an image's `/etc/selinux`: `read(["config"])`, or
 * `read([...TYPE, "contexts", "files", NAME])`; a missing file reads as undefined, a file
 * that cannot be read (a directory, not a regular file) is an error.
 */
export interface PolicyFiles {
  /** The file's bytes as a byte string (one char per byte), or undefined when it is missing. */
  read(path: string[]): string | undefined;
}

function bytesText(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return s;
}

function getDir(dir: Directory, path: string[]): Directory {
  let cur = dir;
  for (const name of path) {
    const next = cur.entries.get(name);
    if (next === undefined) {
      throw new TreeError(`directory entry ${JSON.stringify(name)} does not exist`);
    }
    if (next.kind !== "dir") {
      throw new TreeError(`directory entry ${JSON.stringify(name)} is not a subdirectory`);
    }
    cur = next;
  }
  return cur;
}

/**
 * The policy files of `fs`'s own `/etc/selinux`, or undefined when the tree has no such
 * directory (an `/etc` or `/etc/selinux` that is not a directory is an error).
 * @param read reads a file of the tree stored as an object (the policy is often larger
 *   than the inline limit).
 */
export function treePolicyFiles(fs: FileSystem, read: ReadExternal): PolicyFiles | undefined {
  let etcSelinux: Directory = fs.root;
  for (const name of ["etc", "selinux"]) {
    const next = etcSelinux.entries.get(name);
    if (next === undefined) return undefined;
    if (next.kind !== "dir") {
      throw new TreeError(`directory entry ${JSON.stringify(name)} is not a subdirectory`);
    }
    etcSelinux = next;
  }
  return {
    read(path) {
      const dir = getDir(etcSelinux, path.slice(0, -1));
      const name = path[path.length - 1];
      const inode = dir.entries.get(name);
      if (inode === undefined) return undefined;
      if (inode.kind === "dir") {
        throw new TreeError(`directory entry ${JSON.stringify(name)} is a directory`);
      }
      const c = inode.content;
      if (c.type === "inline") return bytesText(c.data);
      if (c.type === "external") return bytesText(read(c));
      throw new TreeError(`directory entry ${JSON.stringify(name)} is not a regular file`);
    },
  };
}

/**
 * The policy files below `root`/etc/selinux on disk (symlinks followed), or undefined when
 * there is no such directory.
 */
export function diskPolicyFiles(root: string): PolicyFiles | undefined {
  const base = `${root.replace(/\/+$/, "")}/etc/selinux`;
  try {
    if (!Deno.statSync(base).isDirectory) {
      throw new TreeError(`${base}: not a directory`);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  return {
    read(path) {
      const file = `${base}/${path.join("/")}`;
      try {
        return bytesText(Deno.readFileSync(file));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return undefined;
        throw new SelinuxPolicyError(`cannot read ${file}: ${(e as Error).message}`);
      }
    },
  };
}

/** Loads the policy named by `config` of `files`, or undefined when there is none. */
export function loadPolicy(files: PolicyFiles | undefined): FileContexts | undefined {
  if (files === undefined) return undefined;
  const config = files.read(["config"]);
  if (config === undefined) return undefined;
  let type: string | undefined;
  for (const line of config.split("\n")) {
    const eq = line.indexOf("=");
    if (eq >= 0 && line.slice(0, eq).trim().toUpperCase() === "SELINUXTYPE") {
      type = line.slice(eq + 1).trim();
      break;
    }
  }
  if (type === undefined) return undefined;
  const dir = [...type.split("/").filter((p) => p !== ""), "contexts", "files"];
  const specs: Array<{ name: string; text: string }> = [];
  for (const suffix of ["", ".local", ".homedirs"]) {
    const text = files.read([...dir, `file_contexts${suffix}`]);
    if (text !== undefined) specs.push({ name: `file_contexts${suffix}`, text });
    else if (suffix === "") {
      throw new SelinuxPolicyError("SELinux policy is missing mandatory file_contexts file");
    }
  }
  const subs: Array<{ name: string; text: string }> = [];
  for (const suffix of [".subs", ".subs_dist"]) {
    const text = files.read([...dir, `file_contexts${suffix}`]);
    if (text !== undefined) subs.push({ name: `file_contexts${suffix}`, text });
  }
  return new FileContexts(parseSpecFiles(specs), parseSubsFiles(subs));
}

/** Loads the policy named by the tree's own /etc/selinux/config, or undefined when it has none. */
export function loadImagePolicy(fs: FileSystem, read: ReadExternal): FileContexts | undefined {
  return loadPolicy(treePolicyFiles(fs, read));
}

/**
 * Relabels `fs` from the policy in `files` (0.9.4 `selabel`); without a policy, strips every
 * label instead. Returns whether there was a policy.
 */
export function relabelFromPolicy(fs: FileSystem, files: PolicyFiles | undefined): boolean {
  const policy = loadPolicy(files);
  if (!policy) {
    stripSelinuxLabels(fs);
    return false;
  }
  relabelTree(fs.root, policy);
  return true;
}

/** {@link relabelFromPolicy} with the tree's own policy files. */
export function relabelFromImagePolicy(fs: FileSystem, read: ReadExternal): boolean {
  return relabelFromPolicy(fs, treePolicyFiles(fs, read));
}
