/**
 * Boot entries of an image: what a boot loader could start from it. The rules are those of
 * composefs-boot (`get_boot_resources`, bootloader.rs), so that `cfs boot-entries` lists
 * what cfsctl would install:
 *
 * 1. BLS type 1 entries: every `*.conf` in `/boot/loader/entries`, with the files its
 *    `linux`, `initrd` and `efi` lines name, looked up from the image root.
 * 2. UKIs (BLS type 2): every `*.efi` in `/boot/EFI/Linux` and in each
 *    `/usr/lib/modules/KVER/`. Those directories are walked recursively; an `.efi` right in
 *    them is a UKI, one further down is an addon. Addons under `NAME.efi.extra.d/` are
 *    attached to the UKI `NAME.efi` beside that directory; any other addon is listed on
 *    its own (`role: "addon"`), because composefs-boot installs it all the same.
 * 3. Kernels in `/usr/lib/modules/KVER/vmlinuz`, with `initramfs.img` next to them when
 *    present: the form container images ship, turned into a type 1 entry at install time.
 *
 * Nothing follows symlinks (composefs-boot's tree lookups never do): a symlink where a
 * directory is expected is an error, a symlinked `vmlinuz` or `initramfs.img` counts as
 * absent, a symlink named by a `.conf` or named `*.efi` is an error. So loops cannot occur.
 *
 * The module is pure: file contents come through a {@link ReadExternal} callback (the
 * repository, or the files on disk a tree was read from), and only `.conf` files are read.
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import { toHex } from "../fsverity/digest.ts";
import {
  type Directory,
  type FileSystem,
  type Inode,
  type Leaf,
  nameToBytes,
  sortedEntries,
  utf8ToName,
} from "../tree.ts";
import type { ReadExternal } from "./selinux.ts";

export type { ReadExternal } from "./selinux.ts";

/**
 * The largest `.conf` file read, in bytes. composefs-boot has no limit; real entries are a
 * few hundred bytes, and a limit keeps a hostile image from making us load a huge object.
 */
export const MAX_CONF_SIZE = 1024 * 1024;

/** A boot entry cannot be read: the message is one line and names the file. */
export class BootEntryError extends CfsError {
  /** Creates the error; `message` names the file and the problem. */
  constructor(message: string) {
    super(message, { code: "boot-entry-invalid" });
    this.name = "BootEntryError";
  }
}

/** A regular file of the tree that a boot entry uses. */
export interface BootFile {
  /** Absolute path in the tree, as a byte string (see lib/tree.ts), e.g. `/boot/vmlinuz`. */
  path: string;
  /** The file's leaf: read it with {@link readLeaf}. Inline or external content. */
  leaf: Leaf;
  /** Its size in bytes. */
  size: number;
}

/** A BLS type 1 entry: a kernel, its initramfs files and a command line. */
export interface BlsEntry {
  /** Tells the entry kinds apart. */
  kind: "bls";
  /**
   * Where it came from: a `/boot/loader/entries/*.conf` file, or a kernel in
   * `/usr/lib/modules/KVER/vmlinuz` (for which composefs-boot writes the `.conf` itself).
   */
  source: "loader-entries" | "usr-lib-modules";
  /** The `.conf` name without `.conf`, or KVER; a byte string. */
  id: string;
  /** The `.conf` file's path (byte string); only for `loader-entries`. */
  confPath?: string;
  /**
   * Text: KVER (the `/usr/lib/modules` directory name, which must be UTF-8) for
   * `usr-lib-modules`; the `version` line's value for `loader-entries` (BLS has no
   * kernel-version key; distributions put the kernel version there).
   */
  kernelVersion?: string;
  /** The first `title` value; none for `usr-lib-modules`. */
  title?: string;
  /** The first `version` value. */
  version?: string;
  /** The first `machine-id` value. */
  machineId?: string;
  /** The first `sort-key` value. */
  sortKey?: string;
  /** The first `architecture` value. */
  architecture?: string;
  /**
   * The kernel: the first `linux` line, or `vmlinuz`. Absent only for a `.conf` without a
   * `linux` line (composefs-boot accepts those, e.g. `efi`-only entries).
   */
  kernel?: BootFile;
  /**
   * Every `initrd` line, in order; or `initramfs.img` when it exists. May be empty: then
   * the kernel has no initramfs, which composefs-boot's discovery allows too.
   */
  initramfs: BootFile[];
  /** Every `efi` line, in order (composefs-boot installs these files too). */
  efi: BootFile[];
  /** All `options` lines' values joined with one space (BLS: options accumulate). */
  options: string;
  /**
   * `options` split into kernel arguments the way the kernel does (and composefs-boot's
   * `split_cmdline`): on ASCII whitespace outside double quotes. Empty items dropped.
   */
  cmdline: string[];
  /** The `.conf` file's lines, as composefs-boot keeps them (`\n`-split, kept verbatim). */
  lines: string[];
}

/** A unified kernel image (BLS type 2), or an addon that belongs to no UKI. */
export interface UkiEntry extends BootFile {
  /** Tells the entry kinds apart. */
  kind: "uki";
  /** The directory it was found under: `/boot/EFI/Linux` or `/usr/lib/modules/KVER`. */
  source: "boot-efi-linux" | "usr-lib-modules";
  /**
   * `uki` for an `.efi` directly in the scanned directory; `addon` for one further down
   * that is not under `NAME.efi.extra.d/` of a UKI `NAME.efi` (so not in its `addons`).
   */
  role: "uki" | "addon";
  /** KVER as text ({@link displayName}: not necessarily UTF-8 here) for `usr-lib-modules`. */
  kernelVersion?: string;
  /**
   * The path below the scanned directory (byte string): composefs-boot installs the file
   * as `EFI/Linux/<relativePath>` of the boot partition.
   */
  relativePath: string;
  /** The `.efi` files below `NAME.efi.extra.d/`, in walk order. */
  addons: BootFile[];
}

/** Any boot entry. */
export type BootEntry = BlsEntry | UkiEntry;

// --- reading -----------------------------------------------------------------------------------

const utf8Fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A byte string for messages and JSON: UTF-8 when it is, other bytes as `\xNN`; control
 * characters as `\xNN` too, so that a message stays on one line.
 */
export function displayName(name: string): string {
  let text: string;
  try {
    text = utf8Fatal.decode(nameToBytes(name));
  } catch {
    text = name.replace(/[\x80-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
  }
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** A byte string quoted for a one-line message. */
function q(name: string): string {
  return `"${displayName(name)}"`;
}

/**
 * The contents of a regular file of the tree: inline data, or the object from `read`,
 * whose length must be the recorded size (composefs-boot checks the same, bootloader.rs
 * `read_file`). `path` names the file in errors.
 */
export function readLeaf(leaf: Leaf, read: ReadExternal, path = "file"): Uint8Array {
  const c = leaf.content;
  if (c.type === "inline") return c.data;
  if (c.type !== "external") throw new BootEntryError(`${q(path)} is not a regular file`);
  const data = read(c);
  if (data.length !== c.size) {
    throw new BootEntryError(
      `${q(path)}: object ${toHex(c.digest)} has ${data.length} bytes, the image says ${c.size}`,
    );
  }
  return data;
}

function regularSize(leaf: Leaf): number | undefined {
  const c = leaf.content;
  if (c.type === "inline") return c.data.length;
  if (c.type === "external") return c.size;
  return undefined;
}

function join(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

/**
 * The directory at `names` below the root: undefined when a component is missing, an error
 * when one is not a directory (composefs `get_directory_opt`: no symlink following).
 */
function getDir(fs: FileSystem, names: string[], context = ""): Directory | undefined {
  let cur: Directory = fs.root;
  let path = "/";
  for (const name of names) {
    path = join(path, name);
    const next: Inode | undefined = cur.entries.get(name);
    if (next === undefined) return undefined;
    if (next.kind !== "dir") throw new BootEntryError(`${context}${q(path)} is not a directory`);
    cur = next;
  }
  return cur;
}

/** `dir/name` as a regular file, or undefined when missing or anything else. */
function optionalFile(dir: Directory, dirPath: string, name: string): BootFile | undefined {
  const inode = dir.entries.get(name);
  if (inode === undefined || inode.kind !== "leaf") return undefined;
  const size = regularSize(inode);
  if (size === undefined) return undefined;
  return { path: join(dirPath, name), leaf: inode, size };
}

// --- BLS .conf files ---------------------------------------------------------------------------

/** ASCII whitespace as Rust's `is_ascii_whitespace`: space, \t, \n, \x0c, \r (not \x0b). */
function isAsciiSpace(c: string): boolean {
  return c === " " || c === "\t" || c === "\n" || c === "\f" || c === "\r";
}

/**
 * The value of `line` for `key`, as composefs-boot's `strip_ble_key`: the line starts with
 * the key itself (no leading blanks), then at least one ASCII whitespace; the value is the
 * rest with leading whitespace removed and trailing whitespace kept. Comment lines (`#`)
 * and blank lines match no key, so they are skipped without a rule of their own.
 */
function stripKey(line: string, key: string): string | undefined {
  if (!line.startsWith(key) || line.length === key.length) return undefined;
  if (!isAsciiSpace(line[key.length])) return undefined;
  let i = key.length;
  while (i < line.length && isAsciiSpace(line[i])) i++;
  return line.slice(i);
}

function values(lines: string[], key: string): string[] {
  const out: string[] = [];
  for (const line of lines) {
    const v = stripKey(line, key);
    if (v !== undefined) out.push(v);
  }
  return out;
}

/**
 * Splits a kernel command line like the kernel and composefs-boot's `split_cmdline`: on
 * ASCII whitespace outside double quotes, quotes kept in the items (there is no escape).
 * Empty items (from runs of whitespace) are dropped.
 */
export function splitCmdline(cmdline: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inQuotes = false;
  for (const c of cmdline) {
    if (c === '"') inQuotes = !inQuotes;
    if (!inQuotes && isAsciiSpace(c)) {
      if (cur !== "") out.push(cur);
      cur = "";
    } else {
      cur += c;
    }
  }
  if (cur !== "") out.push(cur);
  return out;
}

/** The parsed keys of a BLS type 1 `.conf` text (composefs-boot `BootLoaderEntryFile`). */
export interface BlsConf {
  /** The lines: split at `\n`, no empty last line after a final `\n`, `\r` kept. */
  lines: string[];
  /** First value of each of these keys, when present. */
  title?: string;
  version?: string;
  machineId?: string;
  sortKey?: string;
  architecture?: string;
  /** All values of `linux`, `initrd`, `efi`, in file order. */
  linux: string[];
  initrd: string[];
  efi: string[];
  /** All `options` values joined with one space. */
  options: string;
}

/** Parses the text of a BLS `.conf` file with composefs-boot's rules (see {@link BlsConf}). */
export function parseBlsConf(text: string): BlsConf {
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const first = (key: string) => lines.map((l) => stripKey(l, key)).find((v) => v !== undefined);
  return {
    lines,
    title: first("title"),
    version: first("version"),
    machineId: first("machine-id"),
    sortKey: first("sort-key"),
    architecture: first("architecture"),
    linux: values(lines, "linux"),
    initrd: values(lines, "initrd"),
    efi: values(lines, "efi"),
    options: values(lines, "options").join(" "),
  };
}

/**
 * The regular file a `.conf` line names, looked up from the image root as composefs-boot
 * does (`root.split(path)` then `get_file`): a leading `/` is optional, `.` and empty
 * components are skipped, `..` is refused; every problem is an error.
 */
function confFile(fs: FileSystem, conf: string, key: string, value: string): BootFile {
  const where = `${q(conf)}: ${key} ${q(utf8ToName(value))}`;
  const names = utf8ToName(value).split("/").filter((p) => p !== "" && p !== ".");
  if (names.includes("..")) throw new BootEntryError(`${where}: '..' is not allowed`);
  if (names.length === 0) throw new BootEntryError(`${where}: not a file name`);
  const base = names.pop()!;
  const dir = getDir(fs, names, `${where}: `);
  const dirPath = "/" + names.join("/");
  const path = join(dirPath, base);
  if (dir === undefined) {
    throw new BootEntryError(`${where}: directory ${q(dirPath)} does not exist`);
  }
  const inode = dir.entries.get(base);
  if (inode === undefined) throw new BootEntryError(`${where}: ${q(path)} does not exist`);
  if (inode.kind === "dir") throw new BootEntryError(`${where}: ${q(path)} is a directory`);
  const size = regularSize(inode);
  if (size === undefined) {
    throw new BootEntryError(`${where}: ${q(path)} is not a regular file`);
  }
  return { path, leaf: inode, size };
}

function loaderEntries(fs: FileSystem, read: ReadExternal): BlsEntry[] {
  const dir = getDir(fs, ["boot", "loader", "entries"]);
  if (dir === undefined) return [];
  const out: BlsEntry[] = [];
  for (const [name, inode] of sortedEntries(dir)) {
    if (!name.endsWith(".conf")) continue;
    const confPath = `/boot/loader/entries/${name}`;
    if (inode.kind === "dir") throw new BootEntryError(`${q(confPath)} is a directory`);
    const size = regularSize(inode);
    if (size === undefined) throw new BootEntryError(`${q(confPath)} is not a regular file`);
    if (size > MAX_CONF_SIZE) {
      throw new BootEntryError(`${q(confPath)} is ${size} bytes, more than ${MAX_CONF_SIZE}`);
    }
    const bytes = readLeaf(inode, read, confPath);
    let text: string;
    try {
      text = utf8Fatal.decode(bytes);
    } catch {
      throw new BootEntryError(`${q(confPath)} is not valid UTF-8`);
    }
    const conf = parseBlsConf(text);
    const files = (key: string, vals: string[]) => vals.map((v) => confFile(fs, confPath, key, v));
    const linux = files("linux", conf.linux);
    const initramfs = files("initrd", conf.initrd);
    const efi = files("efi", conf.efi);
    out.push({
      kind: "bls",
      source: "loader-entries",
      id: name.slice(0, -".conf".length),
      confPath,
      kernelVersion: conf.version,
      title: conf.title,
      version: conf.version,
      machineId: conf.machineId,
      sortKey: conf.sortKey,
      architecture: conf.architecture,
      kernel: linux[0],
      initramfs,
      efi,
      options: conf.options,
      cmdline: splitCmdline(conf.options),
      lines: conf.lines,
    });
  }
  return out;
}

// --- /usr/lib/modules kernels ------------------------------------------------------------------

function modulesKernels(fs: FileSystem): BlsEntry[] {
  const modules = getDir(fs, ["usr", "lib", "modules"]);
  if (modules === undefined) return [];
  const out: BlsEntry[] = [];
  for (const [kver, inode] of sortedEntries(modules)) {
    if (inode.kind !== "dir") continue;
    const dirPath = `/usr/lib/modules/${kver}`;
    const kernel = optionalFile(inode, dirPath, "vmlinuz");
    if (kernel === undefined) continue;
    let kernelVersion: string;
    try {
      kernelVersion = utf8Fatal.decode(nameToBytes(kver));
    } catch {
      throw new BootEntryError(`${q(dirPath)}: kernel version is not valid UTF-8`);
    }
    const initramfs = optionalFile(inode, dirPath, "initramfs.img");
    out.push({
      kind: "bls",
      source: "usr-lib-modules",
      id: kver,
      kernelVersion,
      kernel,
      initramfs: initramfs ? [initramfs] : [],
      efi: [],
      options: "",
      cmdline: [],
      lines: [],
    });
  }
  return out;
}

// --- UKIs --------------------------------------------------------------------------------------

interface Found {
  file: BootFile;
  /** Names below the scanned directory. */
  rel: string[];
}

/** composefs-boot `find_uki_components`: every `.efi` below `dir`, depth first, sorted. */
function findEfi(dir: Directory, dirPath: string, rel: string[], out: Found[]): void {
  for (const [name, inode] of sortedEntries(dir)) {
    const path = join(dirPath, name);
    if (inode.kind === "dir") {
      findEfi(inode, path, [...rel, name], out);
      continue;
    }
    if (!name.endsWith(".efi")) continue;
    const size = regularSize(inode);
    if (size === undefined) throw new BootEntryError(`${q(path)} is not a regular file`);
    out.push({ file: { path, leaf: inode, size }, rel: [...rel, name] });
  }
}

function ukisIn(
  dir: Directory,
  dirPath: string,
  source: UkiEntry["source"],
  kernelVersion: string | undefined,
): UkiEntry[] {
  const found: Found[] = [];
  findEfi(dir, dirPath, [], found);
  const out: UkiEntry[] = [];
  const ukis = new Map<string, UkiEntry>();
  for (const f of found) {
    if (f.rel.length === 1) {
      const entry: UkiEntry = {
        kind: "uki",
        source,
        role: "uki",
        ...(kernelVersion === undefined ? {} : { kernelVersion }),
        ...f.file,
        relativePath: f.rel[0],
        addons: [],
      };
      ukis.set(f.rel[0], entry);
      out.push(entry);
      continue;
    }
    // `NAME.efi` sorts before `NAME.efi.extra.d`, so its UKI is already known.
    const owner = f.rel[0].endsWith(".efi.extra.d")
      ? ukis.get(f.rel[0].slice(0, -".extra.d".length))
      : undefined;
    if (owner) {
      owner.addons.push(f.file);
    } else {
      out.push({
        kind: "uki",
        source,
        role: "addon",
        ...(kernelVersion === undefined ? {} : { kernelVersion }),
        ...f.file,
        relativePath: f.rel.join("/"),
        addons: [],
      });
    }
  }
  return out;
}

function allUkis(fs: FileSystem): UkiEntry[] {
  const out: UkiEntry[] = [];
  const efiLinux = getDir(fs, ["boot", "EFI", "Linux"]);
  if (efiLinux) out.push(...ukisIn(efiLinux, "/boot/EFI/Linux", "boot-efi-linux", undefined));
  const modules = getDir(fs, ["usr", "lib", "modules"]);
  if (modules) {
    for (const [kver, inode] of sortedEntries(modules)) {
      if (inode.kind !== "dir") continue;
      const dirPath = `/usr/lib/modules/${kver}`;
      out.push(...ukisIn(inode, dirPath, "usr-lib-modules", displayName(kver)));
    }
  }
  return out;
}

// --- all ---------------------------------------------------------------------------------------

/**
 * Every boot entry of `fs`, in composefs-boot's order (`get_boot_resources`): the
 * `/boot/loader/entries/*.conf` entries, then UKIs from `/boot/EFI/Linux`, then UKIs from
 * each `/usr/lib/modules/KVER`, then `/usr/lib/modules/KVER/vmlinuz` kernels. Within each
 * group, names in byte order (composefs keeps directory entries sorted).
 *
 * Only `.conf` files are read, through `read` for external ones. An image composefs-boot
 * would refuse is refused with a {@link BootEntryError} naming the file; an image without
 * any boot entry gives `[]`.
 */
export function findBootEntries(fs: FileSystem, read: ReadExternal): BootEntry[] {
  return [...loaderEntries(fs, read), ...allUkis(fs), ...modulesKernels(fs)];
}

// --- JSON --------------------------------------------------------------------------------------

/** A {@link BootFile} as JSON. */
export interface BootFileJson {
  /** The path, UTF-8 when it is; other bytes as `\xNN` (see {@link displayName}). */
  path: string;
  /** The path's bytes in hex, only when the path is not printable UTF-8 (lossless). */
  pathHex?: string;
  size: number;
  /** Where the bytes are: inside the image, or an object of the repository. */
  storage: "inline" | "external";
  /** The object's fs-verity digest in hex, for external files. */
  objectId?: string;
}

function fileJson(f: BootFile): BootFileJson {
  const c = f.leaf.content;
  const path = displayName(f.path);
  return {
    path,
    ...(utf8ToName(path) === f.path ? {} : { pathHex: toHex(nameToBytes(f.path)) }),
    size: f.size,
    storage: c.type === "external" ? "external" : "inline",
    ...(c.type === "external" ? { objectId: toHex(c.digest) } : {}),
  };
}

/**
 * A plain JSON-able object for `cfs boot-entries --json`: names and paths as display
 * strings, files with size, storage and object id; no leaves, no raw `.conf` lines.
 * Absent optional values are left out, never `null`.
 */
export function bootEntryToJson(entry: BootEntry): Record<string, unknown> {
  const opt = (key: string, v: string | undefined, byteString = false) =>
    v === undefined ? {} : { [key]: byteString ? displayName(v) : v };
  if (entry.kind === "uki") {
    return {
      kind: "uki",
      source: entry.source,
      role: entry.role,
      ...opt("kernelVersion", entry.kernelVersion),
      relativePath: displayName(entry.relativePath),
      ...fileJson(entry),
      addons: entry.addons.map(fileJson),
    };
  }
  return {
    kind: "bls",
    source: entry.source,
    id: displayName(entry.id),
    ...opt("confPath", entry.confPath, true),
    ...opt("kernelVersion", entry.kernelVersion),
    ...opt("title", entry.title),
    ...opt("version", entry.version),
    ...opt("machineId", entry.machineId),
    ...opt("sortKey", entry.sortKey),
    ...opt("architecture", entry.architecture),
    ...(entry.kernel ? { kernel: fileJson(entry.kernel) } : {}),
    initramfs: entry.initramfs.map(fileJson),
    efi: entry.efi.map(fileJson),
    options: entry.options,
    cmdline: entry.cmdline,
  };
}
