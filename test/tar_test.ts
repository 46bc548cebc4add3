/**
 * The streaming tar reader (lib/oci/tar.ts). Archives come from real writers (GNU tar in
 * ustar, gnu and pax formats, Python's tarfile, bsdtar) and, for hostile cases, from a small
 * header builder below. Every archive must come back byte for byte from the entries' header
 * bytes, bodies and padding plus the trailer, however the input is chunked, and the metadata
 * must match what Python's tarfile and `tar -tv` report. Malformed input must raise a
 * TarError, never another exception, and never hang.
 *
 * @module
 */
import { concatBytes } from "../lib/bytes.ts";
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  normalizeEntryPath,
  readTar,
  TarError,
  type TarInput,
  type TarMetadata,
} from "../lib/oci/tar.ts";
import { requireTool } from "./cfs.ts";
import { debianRootfs } from "./fixtures/debootstrap.ts";

// --- helpers -------------------------------------------------------------------------------------

const enc = new TextEncoder();

/** Runs a command; throws with its stderr when it fails; returns stdout bytes. */
async function sh(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Uint8Array> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return out.stdout;
}

async function sha256sum(path: string): Promise<string> {
  return new TextDecoder().decode(await sh("sha256sum", [path])).split(" ")[0];
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A byte string (one char per byte) as hex. */
function strHex(s: string): string {
  return hex(Uint8Array.from(s, (c) => c.charCodeAt(0)));
}

/** mulberry32: a small seeded PRNG, so failures can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** How an archive is cut into input chunks. */
interface Chunking {
  name: string;
  next: (rand: () => number) => number;
}

const CHUNKINGS: Chunking[] = [
  { name: "1 byte", next: () => 1 },
  { name: "7 bytes", next: () => 7 },
  { name: "511 bytes", next: () => 511 },
  { name: "4096 bytes", next: () => 4096 },
  { name: "1 MiB", next: () => 1 << 20 },
  { name: "random", next: (r) => 1 + Math.floor(r() ** 3 * 70000) },
];

/** The archive cut into chunks (views into `bytes`). */
function* chunked(bytes: Uint8Array, chunking: Chunking, seed = 1): Generator<Uint8Array> {
  const rand = prng(seed);
  for (let pos = 0; pos < bytes.length;) {
    const n = Math.min(bytes.length - pos, chunking.next(rand));
    yield bytes.subarray(pos, pos + n);
    pos += n;
  }
}

/** As an async iterable, the way streams deliver. */
async function* chunkedAsync(bytes: Uint8Array, chunking: Chunking, seed = 1) {
  for (const c of chunked(bytes, chunking, seed)) yield c;
}

interface ReadEntry {
  meta: TarMetadata;
  offset: number;
  headerLength: number;
  bodySha256: string;
  padding: number;
}

interface ReadResult {
  entries: ReadEntry[];
  /** sha256 of headers + bodies + paddings + trailer: must be the input's. */
  sha256: string;
  length: number;
  trailerLength: number;
}

/** Reads an archive to the end, reassembling it. */
async function readAll(input: TarInput): Promise<ReadResult> {
  const whole = createHash("sha256");
  let length = 0;
  const entries: ReadEntry[] = [];
  const tar = readTar(input);
  for await (const entry of tar) {
    whole.update(entry.headerBytes);
    const body = createHash("sha256");
    let got = 0;
    for await (const chunk of entry.body) {
      whole.update(chunk);
      body.update(chunk);
      got += chunk.length;
    }
    equal(got, entry.meta.size);
    const padding = await entry.readPadding();
    equal((entry.meta.size + padding.length) % 512, 0);
    whole.update(padding);
    length += entry.headerBytes.length + got + padding.length;
    entries.push({
      meta: entry.meta,
      offset: entry.offset,
      headerLength: entry.headerBytes.length,
      bodySha256: body.digest("hex"),
      padding: padding.length,
    });
  }
  whole.update(tar.trailer);
  length += tar.trailer.length;
  equal(tar.bytesRead, length);
  return { entries, sha256: whole.digest("hex"), length, trailerLength: tar.trailer.length };
}

/** Reads bytes that must be refused; returns the TarError. */
async function refuse(bytes: Uint8Array, pattern: RegExp): Promise<TarError> {
  let error: unknown;
  try {
    await readAll([bytes]);
  } catch (e) {
    error = e;
  }
  ok(error instanceof TarError, `expected a TarError matching ${pattern}, got ${error}`);
  ok(pattern.test(error.message), `${JSON.stringify(error.message)} does not match ${pattern}`);
  return error;
}

// --- oracles -------------------------------------------------------------------------------------

/** What an independent reader says about one member (hex for bytes). */
interface OracleEntry {
  path: string;
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  uname?: string;
  gname?: string;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs?: [string, string][];
  sha256?: string | null;
}

const PY_ORACLE = String.raw`
import base64, decimal, hashlib, json, math, sys, tarfile, urllib.parse
def h(s):
    return (s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s).hex()
out = []
with tarfile.open(sys.argv[1], encoding="utf-8", errors="surrogateescape") as t:
    for m in t:
        ph = m.pax_headers
        mtime = math.floor(decimal.Decimal(ph["mtime"])) if "mtime" in ph else int(m.mtime)
        libarchive = any(k.startswith("LIBARCHIVE.xattr.") for k in ph)
        xattrs = []
        for k, v in ph.items():
            if k.startswith("SCHILY.xattr.") and not libarchive:
                xattrs.append([h(k[13:]), h(v)])
            elif k.startswith("LIBARCHIVE.xattr."):
                name = urllib.parse.unquote_to_bytes(k[17:])
                xattrs.append([name.hex(), base64.b64decode(v + "=" * (-len(v) % 4)).hex()])
        digest = None
        if m.isreg():
            f = t.extractfile(m)
            d = hashlib.sha256()
            for c in iter(lambda: f.read(1 << 20), b""):
                d.update(c)
            digest = d.hexdigest()
        out.append(dict(path=h(m.name), type=m.type.decode("latin1"), size=m.size,
                        mode=m.mode & 0o7777, uid=m.uid, gid=m.gid, mtime=mtime,
                        uname=h(m.uname), gname=h(m.gname), linkname=h(m.linkname),
                        devmajor=m.devmajor, devminor=m.devminor, xattrs=xattrs,
                        sha256=digest))
print(json.dumps(out))
`;

async function pythonOracle(path: string): Promise<OracleEntry[]> {
  return JSON.parse(new TextDecoder().decode(await sh("python3", ["-c", PY_ORACLE, path])));
}

const TYPE_OF_FLAG: Record<string, string> = {
  "0": "regular",
  "\0": "regular",
  "7": "regular",
  "1": "hardlink",
  "2": "symlink",
  "3": "chardev",
  "4": "blockdev",
  "5": "directory",
  "6": "fifo",
};

/** Compares our metadata with Python's, field by field. */
function compareWithPython(ours: ReadEntry[], python: OracleEntry[], label: string): void {
  equal(ours.length, python.length, `${label}: entry count`);
  for (let i = 0; i < ours.length; i++) {
    const m = ours[i].meta;
    const p = python[i];
    const what = `${label}: entry ${i} (${m.path})`;
    // Python drops the trailing slashes of directory names
    const path = m.type === "directory" ? m.path.replace(/\/+$/, "") : m.path;
    equal(strHex(path), p.path, `${what}: path`);
    equal(m.type, TYPE_OF_FLAG[p.type], `${what}: type`);
    equal(m.typeflag, p.type, `${what}: typeflag`);
    if (m.type === "regular") {
      equal(m.size, p.size, `${what}: size`);
      equal(ours[i].bodySha256, p.sha256, `${what}: body`);
    }
    equal(m.mode, p.mode, `${what}: mode`);
    equal(m.uid, p.uid, `${what}: uid`);
    equal(m.gid, p.gid, `${what}: gid`);
    equal(m.mtime, p.mtime, `${what}: mtime`);
    equal(strHex(m.uname), p.uname, `${what}: uname`);
    equal(strHex(m.gname), p.gname, `${what}: gname`);
    if (m.type === "hardlink" || m.type === "symlink") {
      equal(strHex(m.linkTarget), p.linkname, `${what}: link target`);
    }
    if (m.type === "chardev" || m.type === "blockdev") {
      equal(m.devmajor, p.devmajor, `${what}: devmajor`);
      equal(m.devminor, p.devminor, `${what}: devminor`);
    }
    deepEqual(
      m.xattrs.map((x) => [hex(x.name), hex(x.value)]),
      p.xattrs,
      `${what}: xattrs`,
    );
  }
}

const LS_TYPE: Record<string, string> = {
  "-": "regular",
  "h": "hardlink",
  "l": "symlink",
  "c": "chardev",
  "b": "blockdev",
  "d": "directory",
  "p": "fifo",
};

/** Permission bits from an `ls -l` mode string such as `-rwsr-xr-T`. */
function modeFromString(s: string): number {
  let mode = 0;
  const bit = (i: number, c: string, v: number) => {
    if (s[i] === c) mode |= v;
  };
  bit(1, "r", 0o400);
  bit(2, "w", 0o200);
  bit(4, "r", 0o40);
  bit(5, "w", 0o20);
  bit(7, "r", 0o4);
  bit(8, "w", 0o2);
  const exec = (i: number, x: number, special: number, lower: string, upper: string) => {
    if (s[i] === "x") mode |= x;
    else if (s[i] === lower) mode |= x | special;
    else if (s[i] === upper) mode |= special;
  };
  exec(3, 0o100, 0o4000, "s", "S");
  exec(6, 0o10, 0o2000, "s", "S");
  exec(9, 0o1, 0o1000, "t", "T");
  return mode;
}

/** Compares with `tar -tv --numeric-owner --full-time` (names printed literally, TZ=UTC). */
async function compareWithGnuTar(path: string, ours: ReadEntry[], label: string): Promise<void> {
  const out = await sh("tar", [
    "-tvf",
    path,
    "--numeric-owner",
    "--full-time",
    "--quoting-style=literal",
  ], { env: { TZ: "UTC", LC_ALL: "C" } });
  let text = "";
  for (const b of out) text += String.fromCharCode(b);
  const lines = text.split("\n").filter((l) => l !== "");
  equal(lines.length, ours.length, `${label}: entry count`);
  const re =
    /^(\S{10}) (\d+)\/(\d+) +(\d+|\d+, *\d+) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d+))? +(.*)$/s;
  for (let i = 0; i < lines.length; i++) {
    const m = ours[i].meta;
    const what = `${label}: entry ${i} (${m.path})`;
    const g = re.exec(lines[i]);
    ok(g, `${what}: cannot parse ${JSON.stringify(lines[i])}`);
    const [, modeString, uid, gid, sizeOrDev, time, fraction, rest] = g;
    equal(m.type, LS_TYPE[modeString[0]], `${what}: type`);
    equal(m.mode, modeFromString(modeString), `${what}: mode`);
    equal(m.uid, Number(uid), `${what}: uid`);
    equal(m.gid, Number(gid), `${what}: gid`);
    if (m.type === "chardev" || m.type === "blockdev") {
      deepEqual(sizeOrDev.split(/, */).map(Number), [m.devmajor, m.devminor], `${what}: dev`);
    } else if (m.type === "regular") {
      equal(m.size, Number(sizeOrDev), `${what}: size`);
    }
    // GNU tar 1.34 lists a negative fractional time one second late (pax mtime=-315619199.5
    // shows as 00:00:01.5, though it extracts as 00:00:00.5): allow exactly that
    const listed = Date.parse(time.replace(" ", "T") + "Z") / 1000;
    const late = listed < 0 && fraction !== undefined && /[1-9]/.test(fraction) ? 1 : 0;
    equal(m.mtime, listed - late, `${what}: mtime`);
    const name = m.type === "symlink"
      ? `${m.path} -> ${m.linkTarget}`
      : m.type === "hardlink"
      ? `${m.path} link to ${m.linkTarget}`
      : m.path;
    equal(rest, name, `${what}: name`);
  }
}

// --- fixtures made by real writers ---------------------------------------------------------------

const GNU_TREE = String.raw`
set -e
cd "$1"
mkdir -p dir/sub sticky
chmod 0700 dir/sub
chmod 1777 sticky
: > empty
for n in 1 511 512 513 4097; do head -c $n /dev/urandom > f$n; done
printf '#!/bin/sh\n' > suid; chmod 4755 suid
printf '#!/bin/sh\n' > sgid; chmod 2750 sgid
ln -s f1 link
ln -s /etc/passwd abslink
ln f513 hard
mkfifo fifo
mknod null c 1 3
mknod sda1 b 8 1
mknod bigdev c 4095 1048575
chown 1234:5678 f512
chown -h 42:43 link
setfattr -n user.x -v y f1
setfattr -n trusted.t -v tv f1
setfattr -n security.selinux -v system_u:object_r:etc_t:s0 f1
setfattr -n user.empty -v "" f1
setfattr -n user.bin -v 0x000a41ff0a3d25 f1
setfattr -n user.d -v dir dir
touch -h -d '2001-02-03 04:05:06.789' f511
long=long/$(printf 'a%.0s' $(seq 60))/$(printf 'b%.0s' $(seq 60))
mkdir -p $long
printf x > $long/$(printf 'c%.0s' $(seq 50))
printf 'x' > $(printf 'caf\351-\377')
mkdir extras
printf 'long' > extras/$(printf 'n%.0s' $(seq 150))
ln -s $(printf 't%.0s' $(seq 300)) extras/longlink
ln extras/$(printf 'n%.0s' $(seq 150)) extras/hard-to-long
printf 'big ids' > extras/bigids; chown 3000000:3000001 extras/bigids
printf 'old' > extras/old; touch -d '1960-01-01 00:00:00.5' extras/old
`;

const PY_WRITER = String.raw`
import io, random, sys, tarfile
out, fmt_name = sys.argv[1], sys.argv[2]
fmt = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}[fmt_name]
big = len(sys.argv) > 3
kw = {}
if fmt == tarfile.PAX_FORMAT:
    kw["pax_headers"] = {"comment": "made by tar_test", "SCHILY.xattr.user.global": "g"}
t = tarfile.open(out, "w", format=fmt, encoding="utf-8", errors="surrogateescape", **kw)
def add(name, type=tarfile.REGTYPE, data=None, pax=None, **attrs):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.mtime = 1700000000
    for k, v in attrs.items():
        setattr(ti, k, v)
    if pax:
        ti.pax_headers = pax
    if data is not None:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)
if big:
    add("big", data=random.Random(1).randbytes(20 << 20), mode=0o644)
    add("after-big", data=b"tail", mode=0o600)
    t.close()
    sys.exit(0)
add("dir", tarfile.DIRTYPE, mode=0o755)
add("dir/empty", data=b"", mode=0o644)
for n in (1, 511, 512, 513, 4097):
    add("dir/f%d" % n, data=random.Random(n).randbytes(n), mode=0o640, uid=1000, gid=100,
        uname="user", gname="users", mtime=1234567890)
add("dir/setuid", data=b"#!/bin/sh\n", mode=0o4755)
add("dir/setgid", data=b"#!/bin/sh\n", mode=0o2711)
add("sticky", tarfile.DIRTYPE, mode=0o1777)
add("dir/sym", tarfile.SYMTYPE, linkname="f1")
add("dir/hard", tarfile.LNKTYPE, linkname="dir/f513")
add("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
add("dev/sda1", tarfile.BLKTYPE, devmajor=8, devminor=1, mode=0o660)
add("dev/big", tarfile.CHRTYPE, devmajor=4095, devminor=1048575)
add("fifo", tarfile.FIFOTYPE, mode=0o600)
add("contiguous", tarfile.CONTTYPE, data=b"contiguous file")
add("a" * 60 + "/" + "b" * 60 + "/" + "c" * 50, data=b"prefix")
if fmt != tarfile.USTAR_FORMAT:
    add("long/" + "n" * 150, data=b"long name")
    add("long/sym", tarfile.SYMTYPE, linkname="t" * 300)
    add("long/hard", tarfile.LNKTYPE, linkname="long/" + "n" * 150)
    add("ids", data=b"ids", uid=3000000, gid=2**31 + 5)
    add("old", data=b"old", mtime=-1000)
if fmt == tarfile.PAX_FORMAT:
    odd = b"caf\xe9-\xff".decode("utf-8", "surrogateescape")
    add(odd, data=b"odd", pax={"SCHILY.xattr.user.odd": "\udcff\x00\nv"})
    add("xattrs", data=b"x", pax={"SCHILY.xattr.user.a": "a\x00b\nc", "SCHILY.xattr.user.e": "",
                                 "SCHILY.xattr.security.selinux": "system_u:object_r:bin_t:s0",
                                 "SCHILY.xattr.user.global": "overridden"})
    add("frac", data=b"f", mtime=1700000000.75)
    add("negfrac", data=b"n", mtime=-1.5)
    add("huge-uid", data=b"h", uid=2**32 - 1, gid=2**33 // 4)
t.close()
`;

interface Fixture {
  name: string;
  path: string;
  oracle: "python+gnu" | "python";
}

let fixtures: Promise<{ dir: string; list: Fixture[] }> | undefined;

/** Makes the archives once per test run. */
function makeFixtures(): Promise<{ dir: string; list: Fixture[] }> {
  fixtures ??= (async () => {
    requireTool("setfattr", "apt-get install attr");
    requireTool("bsdtar", "apt-get install libarchive-tools");
    const dir = await Deno.makeTempDir({ prefix: "cfs-tar-test-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const src = join(dir, "src");
    await Deno.mkdir(src);
    await sh("bash", ["-c", GNU_TREE, "gnu-tree", src]);
    const list: Fixture[] = [];
    for (const format of ["ustar", "gnu", "pax"]) {
      const path = join(dir, `gnu-${format}.tar`);
      const args = [`--format=${format}`, "--sort=name", "-C", src, "-cf", path];
      if (format === "ustar") args.push("--exclude=./extras");
      if (format === "pax") args.push("--xattrs", "--xattrs-include=*");
      await sh("tar", [...args, "."]);
      list.push({ name: `GNU tar --format=${format}`, path, oracle: "python+gnu" });
    }
    const bsd = join(dir, "bsdtar-pax.tar");
    await sh("bsdtar", ["--format=pax", "--xattrs", "-C", src, "-cf", bsd, "."]);
    list.push({ name: "bsdtar --format=pax", path: bsd, oracle: "python" });
    for (const format of ["ustar", "gnu", "pax"]) {
      const path = join(dir, `python-${format}.tar`);
      await sh("python3", ["-c", PY_WRITER, path, format]);
      list.push({ name: `Python tarfile ${format}`, path, oracle: "python" });
    }
    return { dir, list };
  })();
  return fixtures;
}

// --- a header builder for hostile archives -------------------------------------------------------

interface HeaderSpec {
  name?: string | Uint8Array;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: number;
  typeflag?: string;
  linkname?: string;
  format?: "ustar" | "gnu" | "v7";
  prefix?: string;
  devmajor?: number;
  devminor?: number;
  /** Raw bytes written at an offset after the fields (before the checksum). */
  set?: [number, string | Uint8Array][];
  checksum?: "unsigned" | "signed" | "none";
}

function latin1(s: string | Uint8Array): Uint8Array {
  return typeof s === "string" ? Uint8Array.from(s, (c) => c.charCodeAt(0)) : s;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

/** Recomputes a header's checksum in place. */
function setChecksum(block: Uint8Array, signed = false): Uint8Array {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += signed && b >= 128 ? b - 256 : b;
  block.set(latin1(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return block;
}

function header(spec: HeaderSpec): Uint8Array {
  const b = new Uint8Array(512);
  const put = (off: number, v: string | Uint8Array) => b.set(latin1(v), off);
  put(0, spec.name ?? "file");
  put(100, octal(spec.mode ?? 0o644, 8));
  put(108, octal(spec.uid ?? 0, 8));
  put(116, octal(spec.gid ?? 0, 8));
  put(124, octal(spec.size ?? 0, 12));
  put(136, octal(spec.mtime ?? 1700000000, 12));
  put(156, spec.typeflag ?? "0");
  put(157, spec.linkname ?? "");
  const format = spec.format ?? "ustar";
  if (format === "ustar") put(257, "ustar\x0000");
  if (format === "gnu") put(257, "ustar  \0");
  if (format !== "v7") {
    put(329, octal(spec.devmajor ?? 0, 8));
    put(337, octal(spec.devminor ?? 0, 8));
  }
  if (spec.prefix) put(345, spec.prefix);
  for (const [off, v] of spec.set ?? []) put(off, v);
  if (spec.checksum !== "none") setChecksum(b, spec.checksum === "signed");
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return concatBytes(parts);
}

function padded(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / 512) * 512);
  out.set(data);
  return out;
}

/** A regular file entry. */
function fileEntry(name: string, body: string | Uint8Array, spec: HeaderSpec = {}): Uint8Array {
  const data = typeof body === "string" ? enc.encode(body) : body;
  return concat(header({ name, size: data.length, ...spec }), padded(data));
}

/** One pax record with its self-counting length. */
function paxRecord(key: string, value: string | Uint8Array): Uint8Array {
  const kv = concat(enc.encode(` ${key}=`), typeof value === "string" ? enc.encode(value) : value);
  let len = kv.length + 2;
  while (String(len).length + kv.length + 1 !== len) len = String(len).length + kv.length + 1;
  return concat(enc.encode(String(len)), kv, enc.encode("\n"));
}

/** A pax extended header ('x' or 'g') from records or raw data. */
function paxEntry(records: [string, string | Uint8Array][] | Uint8Array, typeflag = "x") {
  const data = records instanceof Uint8Array
    ? records
    : concat(...records.map(([k, v]) => paxRecord(k, v)));
  return concat(header({ name: "PaxHeader", typeflag, size: data.length }), padded(data));
}

const END = new Uint8Array(1024);

// --- round trips with real writers ---------------------------------------------------------------

Deno.test("round trip: archives from GNU tar, bsdtar and Python come back byte for byte in any chunking", async () => {
  const { list } = await makeFixtures();
  for (const fixture of list) {
    const bytes = await Deno.readFile(fixture.path);
    const want = await sha256sum(fixture.path);
    const results: ReadResult[] = [];
    for (const chunking of CHUNKINGS) {
      const r = await readAll(chunkedAsync(bytes, chunking, 7));
      equal(r.sha256, want, `${fixture.name}, ${chunking.name} chunks: reassembled sha256`);
      equal(r.length, bytes.length);
      results.push(r);
    }
    // a real stream, and a sync iterable holding one chunk
    using file = await Deno.open(fixture.path);
    results.push(await readAll(file.readable));
    results.push(await readAll([bytes]));
    for (const r of results.slice(1)) {
      deepEqual(r, results[0], `${fixture.name}: the same entries in every chunking`);
    }
    const python = await pythonOracle(fixture.path);
    compareWithPython(results[0].entries, python, fixture.name);
    if (fixture.oracle === "python+gnu") {
      await compareWithGnuTar(fixture.path, results[0].entries, fixture.name);
    }
  }
});

Deno.test("metadata: what the fixtures pin beyond the oracles", async () => {
  const { list } = await makeFixtures();
  const read = async (name: string) => {
    const f = list.find((f) => f.name === name)!;
    return (await readAll([await Deno.readFile(f.path)])).entries.map((e) => e.meta);
  };
  const find = (metas: TarMetadata[], path: string) => {
    const m = metas.find((m) => m.path === path);
    ok(m, `no entry ${path}`);
    return m;
  };

  const pax = await read("GNU tar --format=pax");
  const f1 = find(pax, "./f1");
  deepEqual(
    Object.fromEntries(f1.xattrs.map((x) => [new TextDecoder().decode(x.name), hex(x.value)])),
    {
      "user.x": hex(enc.encode("y")),
      "trusted.t": hex(enc.encode("tv")),
      "security.selinux": hex(enc.encode("system_u:object_r:etc_t:s0")),
      "user.empty": "",
      "user.bin": "000a41ff0a3d25",
    },
  );
  equal(find(pax, "./f511").mtime, Date.UTC(2001, 1, 3, 4, 5, 6) / 1000);
  equal(find(pax, "./extras/old").mtime, Date.UTC(1960, 0, 1) / 1000);
  equal(find(pax, "./suid").mode, 0o4755);
  equal(find(pax, "./sticky/").mode, 0o1777);
  deepEqual([find(pax, "./bigdev").devmajor, find(pax, "./bigdev").devminor], [4095, 1048575]);
  equal(find(pax, "./extras/longlink").linkTarget, "t".repeat(300));
  // --sort=name: hard-to-long comes first, so the long name is the hardlink
  equal(find(pax, "./extras/" + "n".repeat(150)).linkTarget, "./extras/hard-to-long");
  equal(find(pax, "./extras/bigids").uid, 3000000);
  ok(find(pax, "./caf\xe9-\xff"), "a non-UTF-8 name comes through as bytes");

  const gnu = await read("GNU tar --format=gnu");
  equal(find(gnu, "./extras/old").mtime, Date.UTC(1960, 0, 1) / 1000, "negative base-256");
  equal(find(gnu, "./extras/bigids").gid, 3000001, "base-256 gid");
  ok(find(gnu, "./extras/" + "n".repeat(150)), "GNU long name");

  const ustar = await read("GNU tar --format=ustar");
  const long = "./long/" + "a".repeat(60) + "/" + "b".repeat(60) + "/" + "c".repeat(50);
  ok(find(ustar, long), "ustar prefix + name");

  const py = await read("Python tarfile pax");
  equal(find(py, "frac").mtime, 1700000000);
  equal(find(py, "negfrac").mtime, -2, "a negative fractional mtime is floored");
  equal(find(py, "huge-uid").uid, 2 ** 32 - 1);
  equal(find(py, "dir/f1").xattrs.length, 1, "the global header's xattr applies");
  const x = find(py, "xattrs").xattrs.map((x) => [new TextDecoder().decode(x.name), x.value]);
  deepEqual(x.find(([n]) => n === "user.global")?.[1], enc.encode("overridden"));
  deepEqual(x.find(([n]) => n === "user.a")?.[1], enc.encode("a\0b\nc"));
  equal(find(py, "contiguous").type, "regular");
  equal(find(py, "contiguous").typeflag, "7");
  const pyGnu = await read("Python tarfile gnu");
  equal(find(pyGnu, "ids").gid, 2 ** 31 + 5);
  equal(find(pyGnu, "old").mtime, -1000);
  equal(find(pyGnu, "long/sym").linkTarget, "t".repeat(300));

  const bsd = await read("bsdtar --format=pax");
  deepEqual(
    find(bsd, "./f1").xattrs.map((x) => new TextDecoder().decode(x.name)).sort(),
    ["security.selinux", "trusted.t", "user.bin", "user.empty", "user.x"],
    "LIBARCHIVE.xattr records, each attribute once",
  );
});

Deno.test("a 20 MB file streams through as views of the input's chunks", async () => {
  const { dir } = await makeFixtures();
  const path = join(dir, "python-big.tar");
  await sh("python3", ["-c", PY_WRITER, path, "pax", "big"]);
  const bytes = await Deno.readFile(path);
  const want = await sha256sum(path);
  for (const chunking of CHUNKINGS.filter((c) => c.name !== "1 byte")) {
    const r = await readAll(chunkedAsync(bytes, chunking, 3));
    equal(r.sha256, want, `${chunking.name} chunks`);
    compareWithPython(r.entries, await pythonOracle(path), "python big");
  }
  // bodies are subarrays of the input, not copies
  const buffers = new Set<ArrayBufferLike>();
  const input = [...chunked(bytes.slice(), CHUNKINGS[4])].map((c) => c.slice());
  for (const c of input) buffers.add(c.buffer);
  let chunks = 0;
  for await (const entry of readTar(input)) {
    for await (const chunk of entry.body) {
      ok(buffers.has(chunk.buffer), "a body chunk is a view into an input chunk");
      chunks++;
    }
  }
  ok(chunks >= 20, `the body came in ${chunks} chunks`);
});

Deno.test("a Debian root file system (206 MB) streams through tar and back", async () => {
  const rootfs = await debianRootfs();
  const child = new Deno.Command("tar", {
    args: ["-C", rootfs, "-cf", "-", "."],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const input = createHash("sha256");
  let size = 0;
  async function* tee() {
    for await (const chunk of child.stdout) {
      input.update(chunk);
      size += chunk.length;
      yield chunk;
    }
  }
  const start = performance.now();
  const r = await readAll(tee());
  const seconds = (performance.now() - start) / 1000;
  equal((await child.status).code, 0);
  equal(r.sha256, input.digest("hex"));
  equal(r.length, size);
  const files = await sh("find", [".", "!", "-type", "s", "-printf", "x"], { cwd: rootfs });
  equal(r.entries.length, files.length, "one entry per file (tar skips sockets)");
  ok(r.entries.length > 5000, `${r.entries.length} entries`);
  console.log(
    `  debian rootfs: ${r.entries.length} entries, ${(size / 1e6).toFixed(0)} MB ` +
      `through tar -c | readTar + sha256 in ${seconds.toFixed(2)} s`,
  );
});

// --- hostile input -------------------------------------------------------------------------------

/** A small archive with every kind of header: pax x and g, GNU L and K, plain entries. */
function smallArchive(): Uint8Array {
  return concat(
    paxEntry([["comment", "global"], ["uid", "7"]], "g"),
    fileEntry("a", "hello\n"),
    paxEntry([["path", "p".repeat(120)], ["SCHILY.xattr.user.k", "v\0\n"], ["mtime", "-1.5"]]),
    fileEntry("short", "x".repeat(700)),
    concat(header({ name: "././@LongLink", typeflag: "L", size: 131, format: "gnu" })),
    padded(enc.encode("l".repeat(130) + "\0")),
    concat(header({ name: "././@LongLink", typeflag: "K", size: 201, format: "gnu" })),
    padded(enc.encode("t".repeat(200) + "\0")),
    header({ name: "trunc", typeflag: "2", format: "gnu" }),
    header({ name: "d/", typeflag: "5", mode: 0o755 }),
    header({ name: "null", typeflag: "3", devmajor: 1, devminor: 3 }),
    fileEntry("b", "x".repeat(512)),
    END,
  );
}

Deno.test("hostile: the small archive itself reads as expected", async () => {
  const bytes = smallArchive();
  const r = await readAll([bytes]);
  const metas = r.entries.map((e) => e.meta);
  deepEqual(metas.map((m) => m.path), ["a", "p".repeat(120), "l".repeat(130), "d/", "null", "b"]);
  deepEqual(metas.map((m) => m.uid), [7, 7, 7, 7, 7, 7], "the global uid applies to all");
  equal(metas[1].mtime, -2);
  deepEqual(metas[1].xattrs, [{ name: enc.encode("user.k"), value: enc.encode("v\0\n") }]);
  equal(metas[2].linkTarget, "t".repeat(200));
  equal(metas[2].type, "symlink");
  deepEqual([metas[4].devmajor, metas[4].devminor], [1, 3]);
  equal(r.trailerLength, 1024);
});

Deno.test("hostile: every truncation point parses or throws TarError, exactly where expected", async () => {
  const bytes = smallArchive();
  const full = await readAll([bytes]);
  const boundaries = new Set(full.entries.map((e) => e.offset));
  const trailerStart = bytes.length - full.trailerLength;
  for (let cut = 0; cut < bytes.length; cut++) {
    const prefix = bytes.subarray(0, cut);
    // the global header alone (no entry after it) is part of the trailer
    const mustParse = cut >= trailerStart || boundaries.has(cut) || cut === 0 ||
      cut === 1024;
    try {
      const r = await readAll(chunked(prefix, CHUNKINGS[5], cut));
      ok(mustParse, `a cut at ${cut} was accepted`);
      equal(r.length, cut);
      const want = createHash("sha256").update(prefix).digest("hex");
      equal(r.sha256, want, `cut at ${cut}: reassembled`);
    } catch (e) {
      if (!(e instanceof TarError)) throw e;
      ok(!mustParse, `a cut at ${cut} was refused: ${e.message}`);
      ok(/truncated|not followed by an entry/.test(e.message), e.message);
    }
  }
});

Deno.test("hostile: corrupted checksums are refused, signed sums accepted", async () => {
  const good = fileEntry("a", "hi");
  await readAll([concat(good, END)]);
  const bad = good.slice();
  bad[0] = 0x62; // the name changes, the checksum does not
  await refuse(concat(bad, END), /^tar: header checksum mismatch at offset 0/);
  const field = good.slice();
  field.set(latin1("12x456\0 "), 148);
  await refuse(concat(field, END), /checksum field .* is not octal/);
  const second = good.slice();
  second[150] ^= 1;
  const e = await refuse(concat(fileEntry("ok", "x"), second, END), /at offset 1024/);
  equal(e.offset, 1024);
  // high bytes: the signed sum differs from the unsigned one; GNU tar accepts both
  const name = Uint8Array.of(0xff, 0xfe, 0x41);
  const signed = concat(header({ name, checksum: "signed" }), END);
  const unsigned = concat(header({ name, checksum: "unsigned" }), END);
  notEqualBytes(signed, unsigned);
  equal((await readAll([signed])).entries[0].meta.path, "\xff\xfeA");
  equal((await readAll([unsigned])).entries[0].meta.path, "\xff\xfeA");
});

function notEqualBytes(a: Uint8Array, b: Uint8Array): void {
  ok(a.length !== b.length || a.some((x, i) => x !== b[i]), "the two arrays differ");
}

Deno.test("hostile: random bit flips parse or throw TarError, never anything else", async () => {
  const base = smallArchive();
  // offsets of header blocks (valid checksums in the original)
  const headerBlocks: number[] = [];
  for (let o = 0; o < base.length; o += 512) {
    const b = base.slice(o, o + 512);
    if (b.some((x) => x !== 0) && hex(setChecksum(b.slice())) === hex(b)) headerBlocks.push(o);
  }
  ok(headerBlocks.length >= 10);
  const rand = prng(20240601);
  const start = performance.now();
  let parsed = 0, refused = 0;
  for (let i = 0; i < 6000; i++) {
    const bytes = base.slice();
    const flips = 1 + Math.floor(rand() * 3);
    // half the cases aim at one header and fix its checksum, to get past the checksum test
    const target = i % 2 === 0 ? headerBlocks[Math.floor(rand() * headerBlocks.length)] : undefined;
    for (let f = 0; f < flips; f++) {
      const at = target !== undefined
        ? target + Math.floor(rand() * 512)
        : Math.floor(rand() * bytes.length);
      bytes[at] ^= 1 << Math.floor(rand() * 8);
    }
    if (target !== undefined) setChecksum(bytes.subarray(target, target + 512));
    try {
      const r = await readAll(chunked(bytes, CHUNKINGS[5], i));
      equal(r.sha256, createHash("sha256").update(bytes).digest("hex"), `case ${i}`);
      parsed++;
    } catch (e) {
      if (!(e instanceof TarError)) {
        throw new Error(`case ${i}: not a TarError: ${e}`, { cause: e });
      }
      refused++;
    }
  }
  ok(parsed > 100 && refused > 100, `parsed ${parsed}, refused ${refused}`);
  ok(performance.now() - start < 20000, "bit flips took too long");
});

Deno.test("hostile: pax records whose lengths lie are refused", async () => {
  const file = fileEntry("f", "x");
  const pax = (text: string) => concat(paxEntry(enc.encode(text)), file, END);
  // a record with a correct length, for the cases whose value is wrong
  const rec = (key: string, value: string) => new TextDecoder().decode(paxRecord(key, value));
  await refuse(pax("99 path=a\n"), /bad pax header at offset 0: .*past the end/);
  await refuse(pax("0 path=a\n"), /length of 0, too short/);
  await refuse(pax("x path=a\n"), /no valid length/);
  await refuse(pax("-5 path=a\n"), /no valid length/);
  await refuse(pax(" 9 path=a\n"), /no valid length/);
  await refuse(pax(rec("path", "ab") + "11 pathabc\n"), /the record at byte 11 has no '='/);
  await refuse(pax("10 path=ab!"), /does not end with a newline/);
  await refuse(pax("8 path=a\n"), /does not end with a newline/);
  await refuse(pax("6 =ab\n"), /empty key/);
  await refuse(pax("path=a\n"), /no valid length/);
  await refuse(pax(rec("path", "a") + "\0\0x"), /the record at byte 9 has no valid length/);
  await refuse(pax(rec("size", "x")), /tar entry f: invalid pax size "x"/);
  await refuse(pax(rec("size", "-1")), /invalid pax size "-1"/);
  await refuse(pax(rec("mtime", "1e300")), /invalid pax mtime/);
  await refuse(pax(rec("size", "99999999999999999")), /invalid pax size/);
  await refuse(pax(rec("uid", "1.5e3")), /invalid pax uid/);
  await refuse(pax(rec("uid", "4294967296")), /uid 4294967296 is out of range/);
  await refuse(pax(rec("LIBARCHIVE.xattr.user.a", "!!notb64")), /invalid base64/);
  await refuse(pax(rec("SCHILY.xattr.", "")), /names no extended attribute/);
  equal(rec("path", "ab"), "11 path=ab\n");
  equal(rec("k", "v".repeat(94)), "101 k=" + "v".repeat(94) + "\n");
  // trailing NULs after the records are accepted; the length counts raw bytes
  const r = await readAll([concat(paxEntry(enc.encode("11 path=\xe9\n\0\0\0")), file, END)]);
  equal(r.entries[0].meta.path, "\xc3\xa9");
  // an empty value deletes the key: the header's own field applies
  const del = await readAll([concat(paxEntry([["path", ""]]), file, END)]);
  equal(del.entries[0].meta.path, "f");
});

Deno.test("hostile: global pax headers apply to all following entries", async () => {
  const bytes = concat(
    paxEntry([["uid", "7"], ["SCHILY.xattr.user.g", "1"], ["mtime", "5.5"]], "g"),
    fileEntry("a", "1"),
    paxEntry([["uid", "8"], ["SCHILY.xattr.user.g", "2"]]),
    fileEntry("b", "2"),
    paxEntry([["uid", ""]], "g"), // deletes the global uid
    fileEntry("c", "3", { uid: 3 }),
    paxEntry([["comment", "nothing follows"]], "g"),
    END,
  );
  const r = await readAll([bytes]);
  const m = r.entries.map((e) => e.meta);
  deepEqual(m.map((x) => x.uid), [7, 8, 3]);
  deepEqual(m.map((x) => x.mtime), [5, 5, 5]);
  deepEqual(m.map((x) => x.xattrs[0].value[0]), [0x31, 0x32, 0x31]);
  equal(r.entries[0].headerLength, 3 * 512, "the g header is part of the next entry's headers");
  equal(r.trailerLength, 1024 + 1024, "a g header that no entry follows goes in the trailer");
  // an x header that no entry follows is an error
  await refuse(concat(fileEntry("a", "1"), paxEntry([["path", "x"]]), END), /not followed/);
  await refuse(
    concat(header({ name: "././@LongLink", typeflag: "L", size: 2 }), padded(enc.encode("x"))),
    /not followed/,
  );
});

Deno.test("hostile: sparse files from tar --sparse are refused with a clear message", async () => {
  const { dir } = await makeFixtures();
  const src = join(dir, "sparse");
  await Deno.mkdir(src, { recursive: true });
  await sh("bash", [
    "-c",
    "truncate -s 4M sparse.img && printf data | dd of=sparse.img bs=1 seek=1048576 conv=notrunc status=none",
  ], { cwd: src });
  for (
    const args of [
      ["--format=gnu"],
      ["--format=pax"],
      ["--format=pax", "--sparse-version=0.1"],
      ["--format=pax", "--sparse-version=0.0"],
    ]
  ) {
    const path = join(dir, "sparse.tar");
    await sh("tar", [...args, "--sparse", "-C", src, "-cf", path, "./sparse.img"]);
    const e = await refuse(
      await Deno.readFile(path),
      /^tar entry \.\/sparse\.img: sparse files are not supported/,
    );
    equal(e.offset !== undefined, true, args.join(" "));
  }
});

Deno.test("hostile: sizes and numbers out of range", async () => {
  // a size of 8 GiB on a short archive: a truncation error, at once
  const start = performance.now();
  await refuse(
    concat(header({ name: "huge", set: [[124, "77777777777\0"]] }), new Uint8Array(2048)),
    /tar entry huge: archive truncated inside the body/,
  );
  await refuse(
    concat(header({ name: "PaxHeader", typeflag: "x", set: [[124, "77777777777\0"]] }), END),
    /has 8589934591 bytes of data, more than/,
  );
  ok(performance.now() - start < 1000);
  // base-256 with the sign bit set
  const neg = (n: number) => {
    const b = new Uint8Array(n).fill(0xff);
    b[n - 1] = 0xfe; // -2
    return b;
  };
  await refuse(concat(header({ set: [[124, neg(12)]] }), END), /tar entry file: negative size -2/);
  await refuse(concat(header({ set: [[108, neg(8)]] }), END), /negative uid -2/);
  const r = await readAll([concat(header({ set: [[136, neg(12)]] }), END)]);
  equal(r.entries[0].meta.mtime, -2, "a negative mtime is fine");
  // base-256 above 2^53
  const huge = new Uint8Array(12).fill(0xff);
  huge[0] = 0x80;
  await refuse(concat(header({ set: [[124, huge]] }), END), /invalid size field/);
  const big = new Uint8Array(8);
  big[0] = 0x80;
  big.set([0x01, 0, 0, 0, 0], 3); // 2^32
  await refuse(concat(header({ set: [[108, big]] }), END), /uid 4294967296 is out of range/);
  const ok3 = new Uint8Array(8);
  ok3[0] = 0x80;
  ok3.set([0x2d, 0xc6, 0xc0], 5); // 3000000
  equal((await readAll([concat(header({ set: [[108, ok3]] }), END)])).entries[0].meta.uid, 3000000);
  // non-octal fields
  await refuse(concat(header({ set: [[100, "0012a4\0\0"]] }), END), /invalid mode field/);
  await refuse(concat(header({ set: [[124, "0000 1\0"]] }), END), /invalid size field/);
  await refuse(concat(header({ set: [[136, "+0000001\0"]] }), END), /invalid mtime field/);
  // blank fields read as 0; leading spaces are fine (old tars)
  const blank = await readAll([
    concat(header({ set: [[108, "\0".repeat(8)], [116, "   12 \0"]] }), END),
  ]);
  deepEqual([blank.entries[0].meta.uid, blank.entries[0].meta.gid], [0, 0o12]);
  // device numbers are only read for devices
  const junk = await readAll([concat(header({ set: [[329, "garbage!"]] }), END)]);
  equal(junk.entries[0].meta.devmajor, 0);
  await refuse(
    concat(header({ typeflag: "3", set: [[329, "garbage!"]] }), END),
    /invalid devmajor field/,
  );
});

Deno.test("hostile: entry types, empty paths and data after the end", async () => {
  await refuse(
    concat(header({ name: "vol", typeflag: "V" }), END),
    /^tar entry vol: unsupported entry type 'V'/,
  );
  await refuse(concat(header({ name: "n", typeflag: "\x01" }), END), /unsupported entry type 0x1/);
  await refuse(concat(header({ name: "" }), END), /empty path \(header at offset 0\)/);
  await refuse(concat(paxEntry([["path", ""]]), header({ name: "" }), END), /empty path/);
  await refuse(
    concat(header({ name: "d", typeflag: "5", size: 512 }), new Uint8Array(512), END),
    /tar entry d: a directory entry with a size of 512/,
  );
  await refuse(concat(header({ name: "l", typeflag: "2" }), END), /symlink with an empty target/);
  await refuse(concat(header({ name: "h", typeflag: "1" }), END), /hardlink with an empty target/);
  await refuse(
    concat(fileEntry("a", "1"), END, header({ name: "hidden" })),
    /unexpected data at offset 2048, after the end-of-archive marker at offset 1024/,
  );
  await refuse(
    concat(fileEntry("a", "1"), header({ name: "x" }).subarray(0, 300)),
    /truncated inside the header at offset 1024/,
  );
  await refuse(
    concat(header({ name: "././@LongLink", typeflag: "L", size: 2 << 20 }), END),
    /more than the 1048576 accepted/,
  );
  // limits that keep memory bounded
  const mib = (n: number) => "v".repeat(n * (1 << 20) - 64);
  await refuse(
    concat(...[1, 2, 3, 4, 5].map((i) => paxEntry([[`k${i}`, mib(1)]])), fileEntry("f", ""), END),
    /the headers of the entry at offset 0 exceed 4194304 bytes/,
  );
  await refuse(
    concat(paxEntry([["a", mib(1)]], "g"), paxEntry([["b", mib(1)]], "g"), END),
    /the global pax records in force at offset \d+ exceed 1048576 bytes/,
  );
  await refuse(
    concat(fileEntry("f", ""), new Uint8Array((16 << 20) + 512)),
    /more than 16777216 bytes after the end-of-archive marker/,
  );
  // no end marker at all, a lone zero block, a partial zero block, extra zero records
  for (const tail of [0, 512, 100, 10240 - 1024]) {
    const bytes = concat(fileEntry("a", "1"), new Uint8Array(tail));
    const r = await readAll(chunked(bytes, CHUNKINGS[1]));
    equal(r.trailerLength, tail);
    equal(r.entries.length, 1);
  }
  // v7 and GNU headers: no prefix field is read
  const v7 = await readAll([concat(header({ name: "old", format: "v7", typeflag: "\0" }), END)]);
  equal(v7.entries[0].meta.type, "regular");
  const gnu = await readAll([concat(header({ name: "n", format: "gnu", prefix: "junk" }), END)]);
  equal(gnu.entries[0].meta.path, "n");
  const ustar = await readAll([concat(header({ name: "n", prefix: "pre/fix" }), END)]);
  equal(ustar.entries[0].meta.path, "pre/fix/n");
});

// --- the API -------------------------------------------------------------------------------------

Deno.test("api: unread bodies are skipped, misuse is reported, early exit cancels the input", async () => {
  const bytes = concat(fileEntry("a", "x".repeat(1000)), fileEntry("b", "yy"), END);
  const paths: string[] = [];
  const tar = readTar(chunked(bytes, CHUNKINGS[2]));
  throws(() => tar.trailer, /not been read to the end/);
  for await (const entry of tar) paths.push(entry.meta.path); // bodies never read
  deepEqual(paths, ["a", "b"]);
  equal(tar.trailer.length, 1024);
  throws(() => tar[Symbol.asyncIterator](), /iterated once/);

  for await (const entry of readTar([bytes])) {
    await rejects(entry.readPadding(), /before the body was read/);
    deepEqual(await entry.readBody(), enc.encode("x".repeat(1000)));
    equal((await entry.readPadding()).length, 24);
    await rejects(async () => {
      for await (const _ of entry.body) { /* */ }
    }, /iterable once/);
    break;
  }

  let stale: AsyncIterable<Uint8Array> | undefined;
  for await (const entry of readTar([bytes])) stale ??= entry.body;
  await rejects(async () => {
    for await (const _ of stale!) { /* */ }
  }, /read after the reader moved on/);

  let cancelled = false;
  let pulls = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulls++;
      controller.enqueue(bytes.slice(0, 1536));
    },
    cancel() {
      cancelled = true;
    },
  });
  for await (const entry of readTar(stream)) {
    equal(entry.meta.path, "a");
    break;
  }
  ok(cancelled, "breaking out of the loop cancels the stream");
  ok(pulls < 5);

  // errors from the input pass through unchanged
  async function* failing() {
    yield bytes.subarray(0, 600);
    throw new Deno.errors.ConnectionReset("gone");
  }
  await rejects(readAll(failing()), Deno.errors.ConnectionReset);
});

Deno.test("normalizeEntryPath: components, leading / and ./ stripped, .. refused", () => {
  deepEqual(normalizeEntryPath("./usr/bin/ls"), ["usr", "bin", "ls"]);
  deepEqual(normalizeEntryPath("/etc/"), ["etc"]);
  deepEqual(normalizeEntryPath("a//./b/."), ["a", "b"]);
  deepEqual(normalizeEntryPath("./"), []);
  deepEqual(normalizeEntryPath("/"), []);
  deepEqual(normalizeEntryPath("caf\xe9"), ["caf\xe9"]);
  deepEqual(normalizeEntryPath("..."), ["..."]);
  throws(() => normalizeEntryPath("../etc/passwd"), TarError);
  throws(() => normalizeEntryPath("a/../../b"), /tar entry a\/\.\.\/\.\.\/b: path contains '\.\.'/);
  throws(() => normalizeEntryPath("a/.."), TarError);
  throws(() => normalizeEntryPath("a\0b"), /NUL byte/);
});
