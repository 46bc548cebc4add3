/**
 * Boot entry discovery (lib/boot/entries.ts) on trees built in memory: every form
 * composefs-boot knows (`/usr/lib/modules/KVER/vmlinuz`, `/boot/loader/entries/*.conf`,
 * UKIs with addons in `/boot/EFI/Linux` and `/usr/lib/modules/KVER`), its parsing rules,
 * and hostile input (malformed lines, huge files, non-UTF-8 names, symlinks, directories
 * where files belong). Unit tier: the test that reads the host's kernel through a tree made
 * from disk is in boot_entries_host_test.ts.
 *
 * @module
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  strictEqual,
  throws,
} from "node:assert/strict";
import {
  type BlsEntry,
  BootEntryError,
  bootEntryToJson,
  findBootEntries,
  MAX_CONF_SIZE,
  parseBlsConf,
  type ReadExternal,
  readLeaf,
  splitCmdline,
  type UkiEntry,
} from "../lib/boot/entries.ts";
import {
  bytesToName,
  type Directory,
  type FileSystem,
  type Inode,
  type Leaf,
  newDirectory,
  newFileSystem,
  type Stat,
  utf8ToName,
} from "../lib/tree.ts";
import { toHex } from "../lib/fsverity/digest.ts";

const enc = new TextEncoder();

// --- building trees ----------------------------------------------------------------------------

function st(): Stat {
  return { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, xattrs: [] };
}

/** A tree plus the objects its external files refer to, and a `read` that counts calls. */
class Tree {
  fs: FileSystem = newFileSystem();
  objects = new Map<string, Uint8Array>();
  reads = 0;
  private next = 1;

  read: ReadExternal = (c) => {
    this.reads++;
    const data = this.objects.get(toHex(c.digest));
    if (!data) throw new Error(`no object ${toHex(c.digest)}`);
    return data;
  };

  entries() {
    return findBootEntries(this.fs, this.read);
  }

  /** The directory at `path` (UTF-8, or a byte string when `raw`), created as needed. */
  dir(path: string, raw = false): Directory {
    let cur = this.fs.root;
    for (const part of path.split("/").filter((p) => p !== "")) {
      const name = raw ? part : utf8ToName(part);
      let next = cur.entries.get(name);
      if (next === undefined) {
        next = newDirectory();
        cur.entries.set(name, next);
      }
      if (next.kind !== "dir") throw new Error(`${path}: not a directory in the test tree`);
      cur = next;
    }
    return cur;
  }

  put(path: string, inode: Inode, raw = false): Inode {
    const i = path.lastIndexOf("/");
    const base = path.slice(i + 1);
    this.dir(i < 0 ? "" : path.slice(0, i), raw).entries.set(raw ? base : utf8ToName(base), inode);
    return inode;
  }

  /** An inline file (small) or an external one (content kept in `objects`). */
  file(path: string, content: string | Uint8Array, options: { external?: boolean } = {}): Leaf {
    const data = typeof content === "string" ? enc.encode(content) : content;
    let leaf: Leaf;
    if (options.external ?? data.length > 64) {
      const digest = new Uint8Array(32);
      new DataView(digest.buffer).setUint32(28, this.next++);
      this.objects.set(toHex(digest), data);
      leaf = { kind: "leaf", stat: st(), content: { type: "external", digest, size: data.length } };
    } else {
      leaf = { kind: "leaf", stat: st(), content: { type: "inline", data } };
    }
    this.put(path, leaf);
    return leaf;
  }

  /** An external file of `size` bytes whose object does not exist (never to be read). */
  huge(path: string, size: number): Leaf {
    const digest = new Uint8Array(32).fill(0xee);
    const leaf: Leaf = {
      kind: "leaf",
      stat: st(),
      content: { type: "external", digest, size },
    };
    this.put(path, leaf);
    return leaf;
  }

  symlink(path: string, target: string): Leaf {
    const leaf: Leaf = {
      kind: "leaf",
      stat: st(),
      content: { type: "symlink", target: enc.encode(target) },
    };
    this.put(path, leaf);
    return leaf;
  }
}

function bls(e: unknown): BlsEntry {
  assert((e as BlsEntry).kind === "bls", `not a BLS entry: ${JSON.stringify(e)}`);
  return e as BlsEntry;
}

function uki(e: unknown): UkiEntry {
  assert((e as UkiEntry).kind === "uki", `not a UKI entry`);
  return e as UkiEntry;
}

/** Asserts a BootEntryError whose message is one line and contains every `parts`. */
function throwsBoot(fn: () => unknown, ...parts: string[]): void {
  throws(fn, (e: unknown) => {
    assert(e instanceof BootEntryError, `expected BootEntryError, got ${e}`);
    assert(!e.message.includes("\n"), `message is not one line: ${e.message}`);
    for (const p of parts) assert(e.message.includes(p), `${JSON.stringify(e.message)} lacks ${p}`);
    return true;
  });
}

const KERNEL = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);

// --- /usr/lib/modules/KVER/vmlinuz ---------------------------------------------------------------

Deno.test("a tree without boot files has no entries and reads nothing", () => {
  const t = new Tree();
  assertEquals(t.entries(), []);
  t.dir("boot");
  t.dir("usr/lib/modules/6.1.0-1-amd64/kernel");
  t.file("etc/os-release", "ID=x\n");
  assertEquals(t.entries(), []);
  strictEqual(t.reads, 0);
});

Deno.test("vmlinuz + initramfs.img in /usr/lib/modules/KVER", () => {
  const t = new Tree();
  const kernel = t.file("usr/lib/modules/6.8.5-301.fc40.x86_64/vmlinuz", KERNEL);
  const initrd = t.file("usr/lib/modules/6.8.5-301.fc40.x86_64/initramfs.img", "cpio");
  t.file("usr/lib/modules/6.8.5-301.fc40.x86_64/modules.dep", "");
  const [e, ...rest] = t.entries();
  assertEquals(rest, []);
  const b = bls(e);
  strictEqual(b.source, "usr-lib-modules");
  strictEqual(b.id, "6.8.5-301.fc40.x86_64");
  strictEqual(b.kernelVersion, "6.8.5-301.fc40.x86_64");
  strictEqual(b.kernel?.path, "/usr/lib/modules/6.8.5-301.fc40.x86_64/vmlinuz");
  strictEqual(b.kernel?.leaf, kernel);
  strictEqual(b.kernel?.size, KERNEL.length);
  strictEqual(b.initramfs.length, 1);
  strictEqual(b.initramfs[0].path, "/usr/lib/modules/6.8.5-301.fc40.x86_64/initramfs.img");
  strictEqual(b.initramfs[0].leaf, initrd);
  assertEquals(b.cmdline, []);
  strictEqual(t.reads, 0, "discovery of this form reads no file");
  assertEquals(readLeaf(b.kernel!.leaf, t.read), KERNEL);
  assertEquals(readLeaf(b.initramfs[0].leaf, t.read), enc.encode("cpio"));

  const json = bootEntryToJson(b);
  assertEquals(JSON.parse(JSON.stringify(json)), json);
  assertEquals(json, {
    kind: "bls",
    source: "usr-lib-modules",
    id: "6.8.5-301.fc40.x86_64",
    kernelVersion: "6.8.5-301.fc40.x86_64",
    kernel: {
      path: "/usr/lib/modules/6.8.5-301.fc40.x86_64/vmlinuz",
      size: 4096,
      storage: "external",
      objectId: toHex((kernel.content as { digest: Uint8Array }).digest),
    },
    initramfs: [{
      path: "/usr/lib/modules/6.8.5-301.fc40.x86_64/initramfs.img",
      size: 4,
      storage: "inline",
    }],
    efi: [],
    options: "",
    cmdline: [],
  });
});

Deno.test("several kernels come in byte order of KVER; dirs without vmlinuz are skipped", () => {
  const t = new Tree();
  for (const k of ["6.9.0", "6.10.0", "5.15.0"]) t.file(`usr/lib/modules/${k}/vmlinuz`, "k");
  t.dir("usr/lib/modules/6.0.0-nokernel/kernel");
  t.file("usr/lib/modules/not-a-dir", "x");
  assertEquals(t.entries().map((e) => bls(e).kernelVersion), ["5.15.0", "6.10.0", "6.9.0"]);
});

Deno.test("missing initramfs: the kernel is listed without one", () => {
  const t = new Tree();
  t.file("usr/lib/modules/6.1.0/vmlinuz", KERNEL);
  const b = bls(t.entries()[0]);
  assertEquals(b.initramfs, []);
  assertEquals(bootEntryToJson(b).initramfs, []);
});

Deno.test("vmlinuz that is a symlink, directory or device counts as absent (no symlink following)", () => {
  const t = new Tree();
  t.file("boot/vmlinuz-6.1.0", KERNEL);
  t.symlink("usr/lib/modules/6.1.0/vmlinuz", "/boot/vmlinuz-6.1.0");
  t.dir("usr/lib/modules/6.2.0/vmlinuz");
  t.put("usr/lib/modules/6.3.0/vmlinuz", {
    kind: "leaf",
    stat: st(),
    content: { type: "chardev", rdev: 0n },
  });
  // Symlink loops are harmless: nothing is followed.
  t.symlink("usr/lib/modules/6.4.0/vmlinuz", "vmlinuz");
  t.file("usr/lib/modules/6.5.0/vmlinuz", KERNEL);
  t.symlink("usr/lib/modules/6.5.0/initramfs.img", "initramfs.img");
  const entries = t.entries();
  strictEqual(entries.length, 1);
  strictEqual(bls(entries[0]).kernelVersion, "6.5.0");
  assertEquals(bls(entries[0]).initramfs, [], "a symlinked initramfs.img counts as absent");
});

Deno.test("non-UTF-8 KVER: an error when it holds a kernel, ignored otherwise", () => {
  const t = new Tree();
  const kver = bytesToName(new Uint8Array([0x36, 0xff, 0x0a]));
  t.dir(`usr/lib/modules/${kver}/kernel`, true);
  assertEquals(t.entries(), []);
  t.put(`usr/lib/modules/${kver}/vmlinuz`, {
    kind: "leaf",
    stat: st(),
    content: { type: "inline", data: new Uint8Array([1]) },
  }, true);
  throwsBoot(() => t.entries(), "/usr/lib/modules/6\\xff\\x0a", "not valid UTF-8");
});

Deno.test("/usr/lib/modules that is a symlink (even a loop) is an error, as in composefs-boot", () => {
  const t = new Tree();
  t.symlink("usr/lib/modules", "modules");
  throwsBoot(() => t.entries(), `"/usr/lib/modules" is not a directory`);
  const t2 = new Tree();
  t2.symlink("usr/lib", "lib");
  throwsBoot(() => t2.entries(), `"/usr/lib" is not a directory`);
});

Deno.test("a huge kernel is listed from its recorded size without being read", () => {
  const t = new Tree();
  t.huge("usr/lib/modules/6.1.0/vmlinuz", 2 ** 40);
  const b = bls(t.entries()[0]);
  strictEqual(b.kernel?.size, 2 ** 40);
  strictEqual((bootEntryToJson(b).kernel as { size: number }).size, 2 ** 40);
  strictEqual(t.reads, 0);
});

// --- /boot/loader/entries/*.conf -----------------------------------------------------------------

const FEDORA_CONF = `# A comment
title Fedora Linux 40 (Forty)
version\t6.8.5-301.fc40.x86_64

linux /boot/vmlinuz-6.8.5-301.fc40.x86_64
initrd /boot/initramfs-6.8.5-301.fc40.x86_64.img
initrd\t\t/boot/microcode.img
options root=UUID=1234 ro
options   rhgb quiet  "dyndbg=file foo.c +p"
machine-id 0123456789abcdef0123456789abcdef
sort-key fedora
architecture x64
grub_users $grub_users
`;

Deno.test("a .conf entry: keys, multiple initrd and options lines, comments, blank lines", () => {
  const t = new Tree();
  const kernel = t.file("boot/vmlinuz-6.8.5-301.fc40.x86_64", KERNEL);
  const i1 = t.file("boot/initramfs-6.8.5-301.fc40.x86_64.img", "initramfs");
  const i2 = t.file("boot/microcode.img", "ucode");
  t.file("boot/loader/entries/0123-6.8.5.conf", FEDORA_CONF, { external: true });
  const [e, ...rest] = t.entries();
  assertEquals(rest, []);
  const b = bls(e);
  strictEqual(t.reads, 1);
  strictEqual(b.source, "loader-entries");
  strictEqual(b.id, "0123-6.8.5");
  strictEqual(b.confPath, "/boot/loader/entries/0123-6.8.5.conf");
  strictEqual(b.title, "Fedora Linux 40 (Forty)");
  strictEqual(b.version, "6.8.5-301.fc40.x86_64");
  strictEqual(b.kernelVersion, "6.8.5-301.fc40.x86_64");
  strictEqual(b.machineId, "0123456789abcdef0123456789abcdef");
  strictEqual(b.sortKey, "fedora");
  strictEqual(b.architecture, "x64");
  strictEqual(b.kernel?.leaf, kernel);
  strictEqual(b.kernel?.path, "/boot/vmlinuz-6.8.5-301.fc40.x86_64");
  assertEquals(b.initramfs.map((f) => f.leaf), [i1, i2]);
  assertEquals(b.initramfs.map((f) => f.path), [
    "/boot/initramfs-6.8.5-301.fc40.x86_64.img",
    "/boot/microcode.img",
  ]);
  strictEqual(b.options, 'root=UUID=1234 ro rhgb quiet  "dyndbg=file foo.c +p"');
  assertEquals(b.cmdline, ["root=UUID=1234", "ro", "rhgb", "quiet", '"dyndbg=file foo.c +p"']);
  strictEqual(b.lines.length, 13);
  const json = bootEntryToJson(b);
  assertEquals(JSON.parse(JSON.stringify(json)), json);
  strictEqual(json.title, "Fedora Linux 40 (Forty)");
  strictEqual(json.confPath, "/boot/loader/entries/0123-6.8.5.conf");
  strictEqual("lines" in json, false);
});

Deno.test(".conf files come in byte order; other names are ignored", () => {
  const t = new Tree();
  t.file("vmlinuz", "k");
  for (const n of ["b.conf", "a.conf", "B.conf", "c.conf.bak", "README", ".conf"]) {
    t.file(`boot/loader/entries/${n}`, `title ${n}\nlinux /vmlinuz\n`);
  }
  t.dir("boot/loader/entries/subdir");
  assertEquals(t.entries().map((e) => bls(e).id), ["", "B", "a", "b"]);
});

Deno.test("parseBlsConf follows composefs-boot's strip_ble_key rules", () => {
  const c = parseBlsConf(
    [
      "title", // key without whitespace: no value
      "titleX not title",
      " title leading blank",
      "#title comment",
      "version\f1.0", // form feed is ASCII whitespace
      "machine-id\v2", // vertical tab is not
      "sort-key  trailing  ",
      "options a",
      "options",
      "options\tb c",
      "linux\r", // \r is whitespace: the value is empty
      "",
    ].join("\n"),
  );
  strictEqual(c.title, undefined);
  strictEqual(c.version, "1.0");
  strictEqual(c.machineId, undefined);
  strictEqual(c.sortKey, "trailing  ", "trailing whitespace is kept");
  strictEqual(c.options, "a b c");
  assertEquals(c.linux, [""]);
  strictEqual(c.lines.length, 11, "no empty line after the final newline");
  assertEquals(parseBlsConf("").lines, []);
  assertEquals(parseBlsConf("\n\n").lines, ["", ""]);
  assertEquals(parseBlsConf("title a\r\n").title, "a\r", "CRLF: \\r stays in the value");
  strictEqual(parseBlsConf("\ufefftitle a\n").title, undefined, "a BOM is not skipped");
});

Deno.test("splitCmdline: whitespace outside quotes, quotes kept, no escapes", () => {
  assertEquals(splitCmdline(""), []);
  assertEquals(splitCmdline("  a\tb\n c  "), ["a", "b", "c"]);
  assertEquals(splitCmdline('a="x y" b'), ['a="x y"', "b"]);
  assertEquals(splitCmdline('a="unterminated b c'), ['a="unterminated b c']);
  assertEquals(splitCmdline('x\\" y'), ['x\\" y']);
});

Deno.test("a .conf without linux line is an entry without kernel; an empty one too", () => {
  const t = new Tree();
  t.file("efi/x.efi", "MZ");
  t.file("boot/loader/entries/efi.conf", "title EFI\nefi /efi/x.efi\n");
  t.file("boot/loader/entries/empty.conf", "");
  const [a, b] = t.entries().map(bls);
  strictEqual(a.kernel, undefined);
  assertEquals(a.efi.map((f) => f.path), ["/efi/x.efi"]);
  strictEqual(b.kernel, undefined);
  assertEquals(b.initramfs, []);
  strictEqual(bootEntryToJson(b).kernel, undefined);
});

Deno.test(".conf paths: relative, doubled slashes and '.' resolve from the root; '..' is refused", () => {
  const t = new Tree();
  const k = t.file("boot/vmlinuz", "k");
  t.file("boot/loader/entries/a.conf", "linux boot//./vmlinuz\n");
  strictEqual(bls(t.entries()[0]).kernel?.leaf, k);
  strictEqual(bls(t.entries()[0]).kernel?.path, "/boot/vmlinuz");
  t.file("boot/loader/entries/a.conf", "linux /boot/../boot/vmlinuz\n");
  throwsBoot(() => t.entries(), "/boot/loader/entries/a.conf", "'..' is not allowed");
});

Deno.test("malformed .conf lines that name files are errors naming the .conf", () => {
  const cases: [string, string[]][] = [
    ["linux \n", ['linux ""', "not a file name"]],
    ["linux /\n", ["not a file name"]],
    ["linux /boot/vmlinuz\r\n", ['"/boot/vmlinuz\\x0d"', "does not exist"]],
    ["linux /boot/vmlinuz \n", ["does not exist"]],
    ["linux /nope/vmlinuz\n", ['directory "/nope" does not exist']],
    ["initrd /boot/missing.img\nlinux /boot/vmlinuz\n", ['"/boot/missing.img" does not exist']],
    ["linux /boot/vmlinuz/x\n", ['"/boot/vmlinuz" is not a directory']],
  ];
  for (const [text, parts] of cases) {
    const t = new Tree();
    t.file("boot/vmlinuz", "k");
    t.file("boot/loader/entries/bad.conf", text);
    throwsBoot(() => t.entries(), '"/boot/loader/entries/bad.conf"', ...parts);
  }
});

Deno.test("a missing initrd named by a .conf is an error (composefs-boot loads every file)", () => {
  const t = new Tree();
  t.file("boot/vmlinuz", "k");
  t.file("boot/loader/entries/a.conf", "linux /boot/vmlinuz\ninitrd /boot/initrd.img\n");
  throwsBoot(() => t.entries(), "a.conf", "initrd", '"/boot/initrd.img" does not exist');
});

Deno.test("directories, symlinks and devices where .conf files expect regular files", () => {
  const mk = () => {
    const t = new Tree();
    t.file("real/vmlinuz", "k");
    return t;
  };
  let t = mk();
  t.dir("boot/vmlinuz");
  t.file("boot/loader/entries/a.conf", "linux /boot/vmlinuz\n");
  throwsBoot(() => t.entries(), '"/boot/vmlinuz" is a directory');

  t = mk();
  t.symlink("boot/vmlinuz", "/real/vmlinuz");
  t.file("boot/loader/entries/a.conf", "linux /boot/vmlinuz\n");
  throwsBoot(() => t.entries(), '"/boot/vmlinuz" is not a regular file');

  // /boot itself a symlink: composefs-boot's directory lookup refuses it.
  t = mk();
  t.symlink("boot", "real");
  throwsBoot(() => t.entries(), '"/boot" is not a directory');
  // A .conf path through a symlinked directory is not followed.
  t = mk();
  t.symlink("lnk", "real");
  t.file("boot/loader/entries/a.conf", "linux /lnk/vmlinuz\n");
  throwsBoot(() => t.entries(), '"/lnk" is not a directory');

  t = mk();
  t.dir("boot/loader/entries/d.conf");
  throwsBoot(() => t.entries(), '"/boot/loader/entries/d.conf" is a directory');

  t = mk();
  t.symlink("boot/loader/entries/l.conf", "/etc/x.conf");
  throwsBoot(() => t.entries(), '"/boot/loader/entries/l.conf" is not a regular file');

  t = mk();
  t.put("boot/loader/entries/f.conf", { kind: "leaf", stat: st(), content: { type: "fifo" } });
  throwsBoot(() => t.entries(), "f.conf", "not a regular file");

  t = mk();
  t.symlink("boot/loader/entries", "entries");
  throwsBoot(() => t.entries(), '"/boot/loader/entries" is not a directory');
});

Deno.test("hostile .conf contents: not UTF-8, huge, wrong object length", () => {
  let t = new Tree();
  t.file("boot/loader/entries/a.conf", new Uint8Array([0x74, 0x69, 0xff, 0x0a]));
  throwsBoot(() => t.entries(), '"/boot/loader/entries/a.conf" is not valid UTF-8');

  t = new Tree();
  t.huge("boot/loader/entries/big.conf", MAX_CONF_SIZE + 1);
  throwsBoot(() => t.entries(), "big.conf", `more than ${MAX_CONF_SIZE}`);
  strictEqual(t.reads, 0, "a huge .conf is not read");
  t.huge("boot/loader/entries/big.conf", 2 ** 50);
  throwsBoot(() => t.entries(), "big.conf");

  t = new Tree();
  const leaf = t.file("boot/loader/entries/short.conf", "title x\n".repeat(20));
  (leaf.content as { size: number }).size += 1;
  throwsBoot(() => t.entries(), "short.conf", "bytes, the image says");

  // Long but allowed: a megabyte of comments and one real line at the end.
  t = new Tree();
  t.file("vmlinuz", "k");
  const big = "# padding padding padding\n".repeat(MAX_CONF_SIZE / 32) + "linux /vmlinuz\n";
  t.file("boot/loader/entries/long.conf", big);
  strictEqual(bls(t.entries()[0]).kernel?.path, "/vmlinuz");

  // Many lines naming the same file are fine.
  t = new Tree();
  t.file("vmlinuz", "k");
  t.file("boot/loader/entries/many.conf", "initrd /vmlinuz\n".repeat(10000));
  strictEqual(bls(t.entries()[0]).initramfs.length, 10000);
});

Deno.test("non-UTF-8 .conf names and paths", () => {
  const t = new Tree();
  const name = bytesToName(new Uint8Array([0x80, 0x2e, 0x63, 0x6f, 0x6e, 0x66])); // "\x80.conf"
  t.put(`boot/loader/entries/${name}`, {
    kind: "leaf",
    stat: st(),
    content: { type: "inline", data: enc.encode("linux /k\u00e9rnel\n") },
  }, true);
  t.file("k\u00e9rnel", "k");
  const b = bls(t.entries()[0]);
  strictEqual(b.id, bytesToName(new Uint8Array([0x80])));
  strictEqual(b.kernel?.path, utf8ToName("/k\u00e9rnel"));
  const json = bootEntryToJson(b);
  strictEqual(json.confPath, "/boot/loader/entries/\\x80.conf");
  strictEqual(json.id, "\\x80");
  assertEquals(json.kernel, { path: "/k\u00e9rnel", size: 1, storage: "inline" });
  // A path that is not UTF-8 also gets its exact bytes, in hex.
  const u = new Tree();
  u.put(`boot/EFI/Linux/${name.slice(0, 1)}.efi`, {
    kind: "leaf",
    stat: st(),
    content: { type: "inline", data: enc.encode("MZ") },
  }, true);
  const uj = bootEntryToJson(u.entries()[0]);
  strictEqual(uj.path, "/boot/EFI/Linux/\\x80.efi");
  strictEqual(uj.pathHex, toHex(enc.encode("/boot/EFI/Linux/")) + "80" + toHex(enc.encode(".efi")));
});

// --- UKIs ----------------------------------------------------------------------------------------

Deno.test("UKIs in /boot/EFI/Linux with NAME.efi.extra.d addons", () => {
  const t = new Tree();
  const a = t.file("boot/EFI/Linux/a.efi", KERNEL);
  const x = t.file("boot/EFI/Linux/a.efi.extra.d/x.addon.efi", "MZx");
  const y = t.file("boot/EFI/Linux/a.efi.extra.d/y.addon.efi", "MZy");
  t.file("boot/EFI/Linux/a.efi.extra.d/notes.txt", "not efi");
  const b = t.file("boot/EFI/Linux/b.efi", "MZb");
  t.file("boot/EFI/Linux/README", "ignored");
  t.file("boot/EFI/Linux/c.EFI", "case matters");
  const entries = t.entries().map(uki);
  assertEquals(entries.map((e) => [e.relativePath, e.role]), [["a.efi", "uki"], ["b.efi", "uki"]]);
  const [ua, ub] = entries;
  strictEqual(ua.source, "boot-efi-linux");
  strictEqual(ua.kernelVersion, undefined);
  strictEqual(ua.path, "/boot/EFI/Linux/a.efi");
  strictEqual(ua.leaf, a);
  strictEqual(ua.size, KERNEL.length);
  assertEquals(ua.addons.map((f) => f.leaf), [x, y]);
  assertEquals(ua.addons.map((f) => f.path), [
    "/boot/EFI/Linux/a.efi.extra.d/x.addon.efi",
    "/boot/EFI/Linux/a.efi.extra.d/y.addon.efi",
  ]);
  strictEqual(ub.leaf, b);
  assertEquals(ub.addons, []);
  strictEqual(t.reads, 0);
  const json = bootEntryToJson(ua);
  assertEquals(JSON.parse(JSON.stringify(json)), json);
  assertEquals(json, {
    kind: "uki",
    source: "boot-efi-linux",
    role: "uki",
    relativePath: "a.efi",
    path: "/boot/EFI/Linux/a.efi",
    size: KERNEL.length,
    storage: "external",
    objectId: toHex((a.content as { digest: Uint8Array }).digest),
    addons: [
      { path: "/boot/EFI/Linux/a.efi.extra.d/x.addon.efi", size: 3, storage: "inline" },
      { path: "/boot/EFI/Linux/a.efi.extra.d/y.addon.efi", size: 3, storage: "inline" },
    ],
  });
});

Deno.test("every .efi further down is an addon (composefs-boot HEAD walks recursively)", () => {
  const t = new Tree();
  t.file("boot/EFI/Linux/a.efi", "MZ");
  t.file("boot/EFI/Linux/a.efi.extra.d/deep/z.efi", "MZ"); // still a.efi's
  t.file("boot/EFI/Linux/gone.efi.extra.d/o.addon.efi", "MZ"); // no gone.efi
  t.file("boot/EFI/Linux/global/g.addon.efi", "MZ");
  t.file("boot/EFI/Linux/dir.efi/inner.efi", "MZ"); // a directory named *.efi is walked
  const entries = t.entries().map(uki);
  assertEquals(entries.map((e) => [e.relativePath, e.role, e.addons.length]), [
    ["a.efi", "uki", 1],
    ["dir.efi/inner.efi", "addon", 0],
    ["global/g.addon.efi", "addon", 0],
    ["gone.efi.extra.d/o.addon.efi", "addon", 0],
  ]);
  strictEqual(entries[0].addons[0].path, "/boot/EFI/Linux/a.efi.extra.d/deep/z.efi");
});

Deno.test("a non-regular *.efi is an error; /boot/EFI/Linux not a directory is an error", () => {
  let t = new Tree();
  t.file("boot/EFI/Linux/real.efi", "MZ");
  t.symlink("boot/EFI/Linux/link.efi", "real.efi");
  throwsBoot(() => t.entries(), '"/boot/EFI/Linux/link.efi" is not a regular file');
  t = new Tree();
  t.symlink("boot/EFI/Linux/x.efi.extra.d/loop.addon.efi", "loop.addon.efi");
  throwsBoot(() => t.entries(), "loop.addon.efi", "is not a regular file");
  t = new Tree();
  t.file("boot/EFI", "not a dir");
  throwsBoot(() => t.entries(), '"/boot/EFI" is not a directory');
  t = new Tree();
  t.symlink("boot/EFI/Linux", "/boot/EFI/Linux");
  throwsBoot(() => t.entries(), '"/boot/EFI/Linux" is not a directory');
});

Deno.test("UKIs in /usr/lib/modules/KVER, with addons, and the overall order of kinds", () => {
  const t = new Tree();
  t.file("usr/lib/modules/6.2.0/6.2.0.efi", "MZ");
  t.file("usr/lib/modules/6.2.0/6.2.0.efi.extra.d/debug.addon.efi", "MZ");
  t.file("usr/lib/modules/6.2.0/vmlinuz", "k");
  t.file("usr/lib/modules/6.1.0/uki.efi", "MZ");
  t.file("boot/EFI/Linux/z.efi", "MZ");
  t.file("boot/vmlinuz", "k");
  t.file("boot/loader/entries/z.conf", "linux /boot/vmlinuz\n");
  const kinds = t.entries().map((e) =>
    e.kind === "uki"
      ? `uki:${e.source}:${e.kernelVersion ?? "-"}:${e.relativePath}`
      : `bls:${e.source}:${e.id}`
  );
  assertEquals(kinds, [
    "bls:loader-entries:z",
    "uki:boot-efi-linux:-:z.efi",
    "uki:usr-lib-modules:6.1.0:uki.efi",
    "uki:usr-lib-modules:6.2.0:6.2.0.efi",
    "bls:usr-lib-modules:6.2.0",
  ]);
  const u = uki(t.entries()[3]);
  assertEquals(u.addons.map((f) => f.path), [
    "/usr/lib/modules/6.2.0/6.2.0.efi.extra.d/debug.addon.efi",
  ]);
});

Deno.test("readLeaf: inline, external with checked length, and refuses non-files", () => {
  const t = new Tree();
  const leaf = t.file("f", KERNEL);
  assertEquals(readLeaf(leaf, t.read), KERNEL);
  const sym = t.symlink("s", "f");
  throwsBoot(() => readLeaf(sym, t.read, "/s"), '"/s" is not a regular file');
  (leaf.content as { size: number }).size = 1;
  throwsBoot(() => readLeaf(leaf, t.read, "/f"), '"/f"', "4096 bytes, the image says 1");
});
