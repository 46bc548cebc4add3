/**
 * cfsctl 0.9.4 as the oracle for EROFS images, for the erofs_* tests: its dumpfile of a tree
 * on disk, its image ID of that tree in each format version, and its image bytes (from
 * `mkcomposefs --from-file` for V0/V1 with SHA-256, from `create-image` in an insecure
 * repository otherwise).
 *
 * Every call reads the tree "as is": `--no-propagate-usr-to-root` skips composefs-rs's OCI
 * transform (root metadata from /usr, xattr filtering), so the tree cfs writes (parsed from
 * cfsctl's own dumpfile) is the tree cfsctl writes, whatever cfs's tree reading does.
 *
 * @module
 */
import { runCfsctl09 } from "./oracles.ts";
import type { ErofsVersion } from "../lib/erofs/format.ts";
import { type Directory, type FileSystem, type Stat } from "../lib/tree.ts";
import { displayPath } from "../lib/erofs/limits.ts";

/** The two fs-verity hashes composefs repositories use. */
export type Hash = "sha256" | "sha512";

/** Dumpfiles are bytes; decoding as latin1 keeps every byte (parseDumpfile expects that). */
const latin1 = new TextDecoder("latin1");

async function ok(args: string[]): Promise<Uint8Array> {
  const r = await runCfsctl09(args);
  if (r.code !== 0) {
    throw new Error(`cfsctl 0.9.4 ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  }
  return r.stdout;
}

/** cfsctl's dumpfile of the tree at `path` (digests in `hash`). */
export async function oracleDumpfile(path: string, hash: Hash): Promise<string> {
  return latin1.decode(
    await ok(["--no-repo", "--hash", hash, "create-dumpfile", "--no-propagate-usr-to-root", path]),
  );
}

/** cfsctl's image ID (hex) of the tree at `path`, or its error when it refuses the tree. */
export async function oracleImageId(
  path: string,
  hash: Hash,
  version: ErofsVersion,
): Promise<{ id?: string; error?: string }> {
  const r = await runCfsctl09([
    "--no-repo",
    "--hash",
    hash,
    "--erofs-version",
    String(version),
    "compute-id",
    "--no-propagate-usr-to-root",
    path,
  ]);
  return r.code === 0 ? { id: r.text.trim() } : { error: r.stderr.trim() };
}

/**
 * The image `cfsctl mkcomposefs --from-file` makes of dumpfile `dump` (written to `scratch`):
 * V0 (`--min-version 0`) or V1 (`--min-version 1`); SHA-256 digests only, as mkcomposefs.
 */
export async function oracleMkcomposefs(
  dump: string,
  version: 0 | 1,
  scratch: string,
): Promise<Uint8Array> {
  const dumpPath = `${scratch}/mkcomposefs.dump`;
  const out = `${scratch}/mkcomposefs.img`;
  await Deno.writeFile(dumpPath, Uint8Array.from(dump, (c) => c.charCodeAt(0)));
  await ok(["mkcomposefs", "--from-file", "--min-version", String(version), dumpPath, out]);
  const bytes = await Deno.readFile(out);
  await Deno.remove(out);
  return bytes;
}

/** An insecure cfsctl 0.9.4 repository for `hash`, created at `repo` if missing. */
export async function oracleRepo(repo: string, hash: Hash): Promise<string> {
  try {
    await Deno.stat(`${repo}/meta.json`);
  } catch {
    await ok(["init", "--insecure", "--algorithm", `fsverity-${hash}-12`, repo]);
  }
  return repo;
}

/** The image cfsctl 0.9.4 `create-image` stores for the tree at `path` in `repo`. */
export async function oracleCreateImage(
  repo: string,
  path: string,
  version: ErofsVersion,
): Promise<Uint8Array> {
  const out = new TextDecoder().decode(
    await ok([
      "--repo",
      repo,
      "--erofs-version",
      String(version),
      "create-image",
      "--no-propagate-usr-to-root",
      path,
    ]),
  ).trim();
  const id = out.split(":").pop()!;
  return await Deno.readFile(`${repo}/images/${id}`);
}

/** Where two images first differ ("" when equal), for failure messages. */
export function firstDifference(ours: Uint8Array, theirs: Uint8Array): string {
  const n = Math.min(ours.length, theirs.length);
  for (let i = 0; i < n; i++) {
    if (ours[i] !== theirs[i]) {
      return `first difference at byte ${i} (0x${i.toString(16)}): ours ${ours[i]}, cfsctl ${
        theirs[i]
      }; lengths ${ours.length} and ${theirs.length}`;
    }
  }
  return ours.length === theirs.length ? "" : `lengths differ: ${ours.length} and ${theirs.length}`;
}

/** Runs `fn` over `items` with at most `limit` at a time, results in order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * One line per inode of a tree (path, type, content, mode, owner, mtime with nanoseconds,
 * xattrs in hex), in path order: what two trees are compared by. `nsec: false` leaves the
 * nanoseconds out (V2 images keep whole seconds).
 */
export function treeListing(fs: FileSystem, options: { nsec?: boolean } = {}): string[] {
  const nsec = options.nsec ?? true;
  const hex = (b: Uint8Array) => [...b].map((c) => c.toString(16).padStart(2, "0")).join("");
  const statLine = (s: Stat) =>
    `${s.mode.toString(8)} ${s.uid}:${s.gid} ${s.mtime}${nsec ? `.${s.mtimeNsec ?? 0}` : ""} ` +
    s.xattrs.map((a) => `${hex(a.name)}=${hex(a.value)}`).join(",");
  const out: string[] = [];
  const walk = (dir: Directory, path: string) => {
    out.push(`${path || "/"} dir ${statLine(dir.stat)}`);
    for (const [name, inode] of [...dir.entries].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const p = `${path}/${displayPath(name)}`;
      if (inode.kind === "dir") {
        walk(inode, p);
        continue;
      }
      const c = inode.content;
      const what = c.type === "inline"
        ? hex(c.data)
        : c.type === "symlink"
        ? hex(c.target)
        : c.type === "external"
        ? `${hex(c.digest)}:${c.size}`
        : c.type === "chardev" || c.type === "blockdev"
        ? String(c.rdev)
        : "";
      out.push(`${p} ${c.type} ${what} ${statLine(inode.stat)}`);
    }
  };
  walk(fs.root, "");
  return out;
}
