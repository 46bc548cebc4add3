/**
 * What each fuzz target does with one input, and which errors count as a clean refusal. This
 * runs in the child process (`child.ts`), one input at a time; the parent decides pass or fail
 * from the {@link Outcome}.
 *
 * A target does what cfs does with such bytes, and a little more where a property can be
 * checked without an oracle:
 *
 * - `erofs`: read the image (the tree, its objects, its dumpfile), then write the tree again in
 *   the image's own version and read that back: whatever the reader accepts, the writer writes
 *   or refuses with `erofs-limit`, and the reader reads what the writer wrote.
 * - `dumpfile`: parse; a tree that parses is written as a dumpfile that parses again, and as an
 *   image the reader reads.
 * - `splitstream`: 0.9.4 files (either header layout) through the refs-only parse, the full
 *   reader from memory and from a random-access source, chunk iteration and `cat`; 0.3.0 files
 *   through the legacy reader with both algorithms; both through fsck's `readStreamRefs`.
 * - `tar`: every entry, body and padding, the trailer, each entry applied to a tree as a pull
 *   applies it, the tree finished and written as an image that must read back. The input is
 *   read twice, whole and in odd-sized chunks: the two runs must agree.
 * - `layer-import`: the layer imported into a scratch repository as a pull imports it (named
 *   by its own sha256, so the diff_id check passes); the stream read back must give the same
 *   bytes, and its tree is built as an image build reads layer streams.
 * - `oci-layout`: the bundle unpacked as a layout directory, opened and resolved (each tag,
 *   and the host's and another platform).
 * - `fsck-image`, `fsck-stream`: the bytes planted as an object named by their fs-verity
 *   digest, linked from `images/` or `streams/` of a small clean repository, then checked with
 *   fsck (and on request with the `cfs fsck` CLI): fsck must report, never throw, every problem
 *   on one line, and leave the repository as it was.
 *
 * @module
 */
import { join } from "node:path";
import { clipMiddle, MAX_ERROR_LINE } from "../lib/errors.ts";
import { collectObjects, ErofsReader, readErofs } from "../lib/erofs/reader.ts";
import { mkfsErofs } from "../lib/erofs/writer.ts";
import { ErofsLimitError } from "../lib/erofs/limits.ts";
import { parseDumpfile, writeDumpfile } from "../lib/dumpfile.ts";
import {
  detectSplitStreamFormat,
  LegacySplitStreamReader,
  readSplitStreamRefs,
  SplitStreamReader,
} from "../lib/splitstream/mod.ts";
import { normalizeEntryPath, readTar } from "../lib/oci/tar.ts";
import {
  applyOciEntry,
  finishOciTree,
  newOciFileSystem,
  type OciEntryItem,
  ociEntryStat,
} from "../lib/oci/layer_tree.ts";
import { OciLayout, parsePlatform } from "../lib/oci/layout.ts";
import { fsverityDigest, toHex, type VerityAlgorithm } from "../lib/fsverity/digest.ts";
import type { StreamRefs } from "../lib/repository/view.ts";
import type { FsckProblem } from "../lib/repository/fsck.ts";
import type { Repository } from "../lib/repository.ts";
import {
  type FileSystem,
  INLINE_CONTENT_MAX,
  type LeafContent,
  newDirectory,
} from "../lib/tree.ts";
import { createHash } from "node:crypto";
import { decodeBundle } from "./bundle.ts";

/** The targets, in the order `make fuzz` runs them. */
export const TARGET_NAMES = [
  "erofs",
  "dumpfile",
  "splitstream",
  "tar",
  "layer-import",
  "oci-layout",
  "fsck-image",
  "fsck-stream",
] as const;

/** A target's name. */
export type TargetName = typeof TARGET_NAMES[number];

/** Whether `name` is a target. */
export function isTargetName(name: string): name is TargetName {
  return (TARGET_NAMES as readonly string[]).includes(name);
}

/**
 * The error codes (lib/errors.ts) that are a clean refusal of a bad input, per target; a
 * trailing `*` matches any suffix. Anything else thrown is a finding.
 */
export const KNOWN_CODES: Readonly<Record<TargetName, readonly string[]>> = {
  erofs: ["erofs-corrupt", "erofs-limit"],
  dumpfile: ["dumpfile-invalid", "erofs-limit"],
  splitstream: ["splitstream-invalid"],
  tar: ["tar-invalid", "oci-tree-invalid", "erofs-limit"],
  "layer-import": ["tar-invalid", "oci-tree-invalid", "oci-image-invalid"],
  "oci-layout": ["oci-layout-invalid", "blob-*", "digest-invalid"],
  "fsck-image": [],
  "fsck-stream": [],
};

/** Whether `code` is one of `known` (with `prefix-*` patterns). */
export function codeKnown(code: string, known: readonly string[]): boolean {
  return known.some((k) => k.endsWith("*") ? code.startsWith(k.slice(0, -1)) : code === k);
}

/** The child's answer for one input. */
export interface Outcome {
  /** `ok`: the input was handled (accepted or cleanly refused); else what went wrong. */
  status: "ok" | "refused" | "error";
  /** For `refused` and `error`: the error's class name. */
  name?: string;
  /** The error's code (CfsError), when it has one. */
  code?: string;
  /** The error's message (clipped for the report). */
  message?: string;
  /** The stack, for `error`. */
  stack?: string;
  /** Wall time of the input, ms. */
  ms?: number;
  /** Peak resident memory while the input ran, bytes (VmHWM after a reset). */
  peakRss?: number;
}

/** What a target run gets besides the input. */
export interface TargetContext {
  /** A scratch directory of this child process. */
  work: string;
  /** Also run the `cfs fsck` CLI (fsck targets; slow, so the parent asks for it now and then). */
  cli: boolean;
}

/**
 * A property the pipeline promises that an input broke (writer output the reader refuses, a
 * chunked read that disagrees with a whole one, fsck throwing or writing): always a finding.
 */
export class PropertyViolation extends Error {
  /** Creates it; the message says which property and how. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PropertyViolation";
  }
}

// The repository modules load on first use, so the format targets run without them.
async function readStreamRefs(bytes: Uint8Array, algorithm: VerityAlgorithm): Promise<StreamRefs> {
  const m = await import("../lib/repository/stream_refs.ts");
  return await m.readStreamRefs(bytes, algorithm);
}

async function formatProblem(p: FsckProblem): Promise<string> {
  return (await import("../lib/repository/fsck.ts")).formatProblem(p);
}

/** Content bytes past which the harness stops reading a stream (a bomb costs only time). */
const MAX_CONTENT = 256 << 20;

const latin1 = new TextDecoder("latin1");

// --- erofs --------------------------------------------------------------------------------------

function runErofs(bytes: Uint8Array): void {
  const reader = new ErofsReader(bytes);
  const fs = readErofs(bytes);
  collectObjects(fs);
  writeDumpfile(fs);
  try {
    writeAndReadBack(fs, reader.version, "the tree of an image the reader accepted");
  } catch (e) {
    // An image may hold what no image should (fsck checks those limits), but a time is either
    // read exactly or refused: a time the writer cannot write is one the reader made up.
    if (e instanceof ErofsLimitError && e.limit === "mtime") {
      throw new PropertyViolation(`the reader accepted a time the writer refuses: ${e.message}`);
    }
    throw e;
  }
}

/** Writes `fs` as an image of `version`; the reader must read what the writer wrote. */
function writeAndReadBack(fs: FileSystem, version: 0 | 1 | 2, what: string): void {
  const image = mkfsErofs(fs, { version });
  try {
    readErofs(image);
  } catch (e) {
    throw new PropertyViolation(
      `the reader refuses the V${version} image the writer made of ${what}: ${
        (e as Error).message
      }`,
      { cause: e },
    );
  }
}

// --- dumpfile -----------------------------------------------------------------------------------

function runDumpfile(bytes: Uint8Array): void {
  const fs = parseDumpfile(latin1.decode(bytes), "fuzz input");
  const text = writeDumpfile(fs);
  try {
    parseDumpfile(text, "rewritten dumpfile");
  } catch (e) {
    throw new PropertyViolation(
      `a parsed dumpfile, written again, does not parse: ${(e as Error).message}`,
      { cause: e },
    );
  }
  writeAndReadBack(fs, 1, "a parsed dumpfile");
}

// --- splitstream --------------------------------------------------------------------------------

async function drain(it: AsyncIterable<Uint8Array>): Promise<number> {
  let total = 0;
  for await (const piece of it) {
    total += piece.length;
    if (total > MAX_CONTENT) break;
  }
  return total;
}

/** External objects for `cat`: 100 bytes each, so the recorded size is usually wrong. */
const fakeObject = () => new Uint8Array(100);

async function runSplitstream(bytes: Uint8Array): Promise<void> {
  const format = detectSplitStreamFormat(bytes.subarray(0, 64));
  if (format === "legacy-0.3") {
    for (const algorithm of ["sha256", "sha512"] as const) {
      const r = await LegacySplitStreamReader.open(bytes, { algorithm, name: "fuzz" });
      r.lookup(new Uint8Array(32));
      await r.objectRefs();
      await drain(r.cat(fakeObject));
      await readStreamRefs(bytes, algorithm);
    }
    return;
  }
  readSplitStreamRefs(bytes, { name: "fuzz" });
  const r = SplitStreamReader.open(bytes, { name: "fuzz" });
  r.lookupNamedRef("config");
  let content = 0;
  for await (const c of r.chunks()) {
    content += c.kind === "inline" ? c.data.length : 100;
    if (content > MAX_CONTENT) break;
  }
  const random = SplitStreamReader.open(
    { size: bytes.length, readAt: (offset, length) => bytes.slice(offset, offset + length) },
    { name: "fuzz (random access)" },
  );
  await drain(random.cat(fakeObject));
  await readStreamRefs(bytes, r.algorithm);
}

// --- tar ----------------------------------------------------------------------------------------

/** Odd chunk sizes, so that headers, bodies and paddings straddle chunk boundaries. */
const CHUNK_SIZES = [1, 511, 4096, 3, 10000, 512, 7];

function* chunked(bytes: Uint8Array): Generator<Uint8Array> {
  let p = 0;
  for (let i = 0; p < bytes.length; i++) {
    const n = CHUNK_SIZES[i % CHUNK_SIZES.length];
    yield bytes.subarray(p, p + n);
    p += n;
  }
}

/** One read of a layer: entries applied to a tree; returns a summary to compare runs with. */
async function readLayer(input: Iterable<Uint8Array>): Promise<{ fs: FileSystem; log: string }> {
  const fs = newOciFileSystem();
  const log: string[] = [];
  const tar = readTar(input);
  for await (const entry of tar) {
    const m = entry.meta;
    normalizeEntryPath(m.path);
    let body: Uint8Array | undefined;
    if (m.size <= 1 << 20) body = (await entry.readBody()).slice();
    else await drain(entry.body);
    const padding = await entry.readPadding();
    log.push(`${entry.offset} ${m.type} ${m.size} ${entry.headerBytes.length} ${padding.length}`);
    let item: OciEntryItem;
    if (m.type === "directory") item = { kind: "directory" };
    else if (m.type === "hardlink") item = { kind: "hardlink", target: m.linkTarget };
    else {
      let content: LeafContent;
      switch (m.type) {
        case "regular":
          content = m.size <= INLINE_CONTENT_MAX && body ? { type: "inline", data: body } : {
            type: "external",
            digest: createHash("sha256").update(body ?? new Uint8Array(0)).digest(),
            size: m.size,
          };
          break;
        case "symlink":
          content = {
            type: "symlink",
            target: Uint8Array.from(m.linkTarget, (c) => c.charCodeAt(0)),
          };
          break;
        case "chardev":
          content = { type: "chardev", rdev: BigInt(m.devmajor) << 8n | BigInt(m.devminor) };
          break;
        case "blockdev":
          content = { type: "blockdev", rdev: BigInt(m.devmajor) << 8n | BigInt(m.devminor) };
          break;
        default:
          content = { type: "fifo" };
      }
      item = { kind: "leaf", content };
    }
    applyOciEntry(fs, { path: m.path, stat: ociEntryStat(m), item });
  }
  log.push(`trailer ${tar.trailer.length}`);
  return { fs, log: log.join("\n") };
}

async function runTar(bytes: Uint8Array): Promise<void> {
  let whole: { fs: FileSystem; log: string } | undefined;
  let wholeError: unknown;
  try {
    whole = await readLayer([bytes]);
  } catch (e) {
    wholeError = e;
  }
  let pieces: { fs: FileSystem; log: string } | undefined;
  let piecesError: unknown;
  try {
    pieces = await readLayer(chunked(bytes));
  } catch (e) {
    piecesError = e;
  }
  const describe = (e: unknown) => e === undefined ? "success" : (e as Error).message;
  if (describe(wholeError) !== describe(piecesError) || whole?.log !== pieces?.log) {
    throw new PropertyViolation(
      `the layer read whole and in small chunks differ: ${clip(describe(wholeError))} vs ` +
        clip(describe(piecesError)),
    );
  }
  if (wholeError !== undefined) throw wholeError;
  const fs = whole!.fs;
  const usr = fs.root.entries.get("usr");
  finishOciTree(fs, "fuzz", () => new Uint8Array(0), {
    propagateUsrToRoot: usr?.kind === "dir",
  });
  writeAndReadBack(fs, 1, "a layer's tree");
}

function clip(s: string): string {
  return s.length > 200 ? s.slice(0, 200) + "..." : s;
}

// --- layer import -------------------------------------------------------------------------------

let importRepo: { repo: Repository; uses: number } | undefined;

async function runLayerImport(bytes: Uint8Array, ctx: TargetContext): Promise<void> {
  const { Repository } = await import("../lib/repository.ts");
  const { importLayer } = await import("../lib/oci/import.ts");
  const { applyLayer, readLayerChunks } = await import("../lib/oci/image.ts");
  // A fresh repository now and then, so that objects do not pile up.
  if (!importRepo || importRepo.uses >= 200) {
    importRepo?.repo.close();
    const path = join(ctx.work, "import-repo");
    await Deno.remove(path, { recursive: true }).catch(() => {});
    importRepo = {
      repo: Repository.init(path, { algorithm: "fsverity-sha256-12", insecure: true }),
      uses: 0,
    };
  }
  importRepo.uses++;
  const repo = importRepo.repo;
  const diffId = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  const result = await importLayer(repo, [bytes], { diffId });
  const reader = SplitStreamReader.open(repo.readObject(result.streamId), {
    name: "imported layer",
    algorithm: repo.algorithm,
  });
  const parts: Uint8Array[] = [];
  for await (const piece of reader.cat((id) => repo.readObject(id))) parts.push(piece);
  const back = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    back.set(p, o);
    o += p.length;
  }
  if (back.length !== bytes.length || !back.every((b, i) => b === bytes[i])) {
    throw new PropertyViolation(
      `the imported layer reads back as ${back.length} bytes that differ from the ` +
        `${bytes.length} imported`,
    );
  }
  await applyLayer(repo, newOciFileSystem(), await readLayerChunks(repo, result.streamId));
}

// --- oci layout ---------------------------------------------------------------------------------

let layoutCount = 0;

async function runOciLayout(bytes: Uint8Array, ctx: TargetContext): Promise<void> {
  const dir = join(ctx.work, `layout-${layoutCount++ % 4}`);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  for (const f of decodeBundle(bytes)) {
    const path = join(dir, f.name);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeFile(path, f.data);
  }
  const layout = await OciLayout.open(dir);
  let first: unknown;
  const attempt = async (f: () => Promise<unknown>) => {
    try {
      await f();
    } catch (e) {
      first ??= e;
    }
  };
  await attempt(() => layout.resolve());
  for (const tag of layout.tags().slice(0, 4)) await attempt(() => layout.resolve({ tag }));
  await attempt(() => layout.resolve({ platform: parsePlatform("linux/arm64/v8") }));
  if (first !== undefined) throw first;
}

// --- fsck ---------------------------------------------------------------------------------------

/** The clean repositories fsck targets plant into, one per algorithm, made on first use. */
const repos = new Map<VerityAlgorithm, Repository>();

async function baseRepository(work: string, algorithm: VerityAlgorithm): Promise<Repository> {
  const have = repos.get(algorithm);
  if (have) return have;
  const { Repository } = await import("../lib/repository.ts");
  const repo = Repository.init(join(work, `repo-${algorithm}`), {
    algorithm: `fsverity-${algorithm}-12`,
    insecure: true,
  });
  // One external object, an image naming it, and a layer stream naming it.
  const body = new TextEncoder().encode("fuzz base object ".repeat(20));
  const id = repo.storeBytes(body);
  const fs = newOciFileSystem();
  fs.root = newDirectory({ mode: 0o755, uid: 0, gid: 0, mtime: 1_700_000_000, xattrs: [] });
  fs.root.entries.set("file", {
    kind: "leaf",
    stat: { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, xattrs: [] },
    content: { type: "external", digest: id.bytes, size: body.length },
  });
  repo.writeImage(mkfsErofs(fs, { version: 1 }), "base");
  const { SplitStreamWriter, CONTENT_TYPE } = await import("../lib/splitstream/mod.ts");
  const w = new SplitStreamWriter({ algorithm, contentType: CONTENT_TYPE.ociLayer });
  w.writeInline(new Uint8Array(512));
  await w.writeExternal(id.bytes, body.length);
  repo.writeStream(await w.finish(), "oci-layer-sha256:" + "0".repeat(64));
  const report = await repo.fsck();
  if (!report.ok) {
    const lines = await Promise.all(report.errors.map(formatProblem));
    throw new Error(`fuzz base repository is not clean: ${lines.join("; ")}`);
  }
  repos.set(algorithm, repo);
  return repo;
}

/**
 * A listing of everything below `dir` (type, size, mode, mtime, link target), to see writes;
 * without `dirTimes` the mtimes of directories are left out (planting and removing an object
 * changes them).
 */
function snapshot(dir: string, dirTimes = true): string {
  const lines: string[] = [];
  const walk = (d: string, rel: string) => {
    const names = [...Deno.readDirSync(d)].map((e) => e.name).sort();
    for (const name of names) {
      const p = join(d, name);
      const st = Deno.lstatSync(p);
      const kind = st.isSymlink ? `-> ${Deno.readLinkSync(p)}` : st.isDirectory ? "dir" : "file";
      const time = st.isDirectory && !dirTimes ? "" : st.mtime?.getTime();
      lines.push(`${rel}${name} ${kind} ${st.size} ${time} ${st.mode}`);
      if (st.isDirectory) walk(p, `${rel}${name}/`);
    }
  };
  walk(dir, "");
  return lines.join("\n");
}

async function runFsck(
  bytes: Uint8Array,
  ctx: TargetContext,
  category: "images" | "streams",
): Promise<void> {
  // The algorithm follows the input's length, so both repositories see every kind of input.
  const algorithm: VerityAlgorithm = bytes.length % 2 === 0 ? "sha512" : "sha256";
  const repo = await baseRepository(ctx.work, algorithm);
  const hex = toHex(fsverityDigest(bytes, algorithm));
  const objectPath = join(repo.path, "objects", hex.slice(0, 2), hex.slice(2));
  const linkName = category === "images" ? hex : `oci-config-sha256:${hex.slice(0, 64)}`;
  const linkPath = join(repo.path, category, linkName);
  const before = snapshot(repo.path, false);
  if (before.includes(`${category}/${linkName} `)) return; // the input is a base object
  let planted = false;
  const objectDir = join(objectPath, "..");
  const newDir = !before.includes(`objects/${hex.slice(0, 2)} dir`);
  try {
    await Deno.mkdir(objectDir, { recursive: true });
    try {
      await Deno.lstat(objectPath);
    } catch {
      await Deno.writeFile(objectPath, bytes);
      planted = true;
    }
    await Deno.symlink(`../objects/${hex.slice(0, 2)}/${hex.slice(2)}`, linkPath);
    const planting = snapshot(repo.path);
    let report;
    try {
      report = await repo.fsck();
    } catch (e) {
      throw new PropertyViolation(`fsck threw: ${(e as Error).message}`, { cause: e });
    }
    for (const p of [...report.errors, ...report.warnings]) {
      const line = await formatProblem(p);
      if (line.includes("\n") || line.length > MAX_ERROR_LINE + 200) {
        throw new PropertyViolation(
          `fsck problem is not one short line (${line.length} chars): ${clipMiddle(line, 300)}`,
        );
      }
    }
    if (snapshot(repo.path) !== planting) {
      throw new PropertyViolation("fsck changed the repository");
    }
    if (ctx.cli) await fsckCli(repo.path, planting);
  } finally {
    await Deno.remove(linkPath).catch(() => {});
    if (planted) await Deno.remove(objectPath).catch(() => {});
    if (newDir) await Deno.remove(objectDir).catch(() => {});
  }
  if (snapshot(repo.path, false) !== before) {
    throw new Error("fuzz harness: the base repository changed (planted files not removed)");
  }
}

const CLI = new URL("../cli.ts", import.meta.url).pathname;

/** `cfs fsck` and `cfs fsck --json` as a user runs them: exit 0/1, parsable output, no stack. */
async function fsckCli(repoPath: string, planting: string): Promise<void> {
  for (const json of [false, true]) {
    const args = ["run", "--allow-all", "--quiet", CLI, "--repo", repoPath, "fsck"];
    if (json) args.push("--json");
    const out = await new Deno.Command(Deno.execPath(), {
      args,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    const stdout = new TextDecoder().decode(out.stdout);
    const what = `cfs fsck${json ? " --json" : ""}`;
    if (json ? out.code !== 0 : out.code !== 0 && out.code !== 1) {
      throw new PropertyViolation(`${what} exited ${out.code}: ${clip(stderr.trim())}`);
    }
    if (stderr.trim() !== "") {
      throw new PropertyViolation(`${what} wrote to stderr: ${clip(stderr)}`);
    }
    if (json) {
      try {
        JSON.parse(stdout);
      } catch {
        throw new PropertyViolation(`${what} printed no JSON: ${clip(stdout)}`);
      }
    }
    if (snapshot(repoPath) !== planting) {
      throw new PropertyViolation(`${what} changed the repository`);
    }
  }
}

// --- dispatch -----------------------------------------------------------------------------------

/** Runs `target` on `bytes`; throws whatever the code under test throws. */
export async function runTarget(
  target: TargetName,
  bytes: Uint8Array,
  ctx: TargetContext,
): Promise<void> {
  switch (target) {
    case "erofs":
      return runErofs(bytes);
    case "dumpfile":
      return runDumpfile(bytes);
    case "splitstream":
      return await runSplitstream(bytes);
    case "tar":
      return await runTar(bytes);
    case "layer-import":
      return await runLayerImport(bytes, ctx);
    case "oci-layout":
      return await runOciLayout(bytes, ctx);
    case "fsck-image":
      return await runFsck(bytes, ctx, "images");
    case "fsck-stream":
      return await runFsck(bytes, ctx, "streams");
  }
}

/**
 * The pass criteria, applied to what a target threw: a {@link Outcome} of `refused` when it is
 * a one-line error with a known code, `error` for anything else.
 */
export function classify(target: TargetName, e: unknown): Outcome {
  const err = e instanceof Error ? e : undefined;
  const name = err?.constructor?.name ?? typeof e;
  const code = typeof (e as { code?: unknown })?.code === "string"
    ? (e as { code: string }).code
    : undefined;
  let message: string;
  try {
    message = err ? String(err.message) : String(e);
  } catch {
    message = "(message cannot be shown)";
  }
  const base = { name, code, message: clipMiddle(message, 2000) };
  const problems: string[] = [];
  if (e instanceof PropertyViolation) problems.push("property violated");
  else if (code === undefined || !codeKnown(code, KNOWN_CODES[target])) {
    problems.push(
      `code ${code ?? "(none)"} is not one of ${
        KNOWN_CODES[target].join(", ") || "(none: must not throw)"
      }`,
    );
  }
  if (message.includes("\n")) problems.push("message is not one line");
  if (message.length > MAX_ERROR_LINE) problems.push(`message is ${message.length} characters`);
  if (message.trim() === "") problems.push("message is empty");
  if (problems.length === 0) return { status: "refused", ...base };
  return {
    status: "error",
    ...base,
    message: `${problems.join("; ")}: ${base.message}`,
    stack: err?.stack,
  };
}
