/**
 * The repository consistency check, with composefs-rs 0.9.4's checks, counters and error
 * kinds (`fsck: <kind>: <path>: <detail>`), so that `cfs fsck` and `cfsctl fsck` agree on a
 * shared repository:
 *
 * - `meta.json` parses and matches the algorithm the repository is read with;
 * - every object below `objects/XX/` has a valid name and content that hashes to it (in a
 *   secure repository the fs-verity measurement must agree too);
 * - every first-level entry of `streams/` is a symlink to an existing object holding a
 *   readable splitstream whose object refs and named refs exist;
 * - every first-level entry of `images/` is a symlink to an existing object holding a valid
 *   EROFS image whose objects exist, and is named after that object;
 * - every ref below `images/refs/` and `streams/refs/` is a symlink that resolves.
 *
 * Beyond 0.9.4, fsck reports warnings that are not errors: staging files and temporary links
 * left by an interrupted write (gc removes them), and streams still in cfsctl 0.3.0's format
 * (opening the repository for writing upgrades them). Read-only: fsck never writes.
 *
 * Also beyond 0.9.4, fsck never reads outside the repository, which composefs-rs does by
 * following links: every path is opened through `dir.ts`. A repository directory that is a
 * symbolic link (`objects/`, `objects/XX/`, `images/refs/`, ...) is an `unexpected-file-type`
 * error and is not entered; a link whose target leads out of the repository (absolute, or
 * `..` above it) is not followed: an image or stream link so is `image-invalid` or
 * `stream-open-failed` (the kinds composefs-rs gives what it then reads), an object that is
 * such a link `object-open-failed`, a ref `symlink-outside-repository` (composefs-rs accepts a
 * ref to any existing path). Only regular files are read, so a fifo or a device planted in
 * the repository cannot stall fsck.
 *
 * @module
 */
import { TMP_PREFIX } from "./files.ts";
import { leftoverTemporaryLinks } from "./refs.ts";
import type { RepoDirEntry } from "./dir.ts";
import { RepositoryError } from "./errors.ts";
import { clipMiddle } from "../errors.ts";
import * as sys from "../sys/libc.ts";
import { META_FILE, type MetaError, parseMeta } from "./meta.ts";
import { ObjectId } from "./object_id.ts";
import type { RepositoryView } from "./view.ts";

/** One problem fsck found: its kind (0.9.4's names), the path and what is wrong. */
export interface FsckProblem {
  /** `object-digest-mismatch`, `broken-symlink`, `missing-object-ref`, ... */
  kind: string;
  /** The repository-relative path concerned. */
  path: string;
  /** What is wrong (may be empty). */
  detail: string;
}

/** What fsck found, counted as composefs-rs counts it. */
export interface FsckReport {
  /** True when there are no errors (warnings do not count). */
  ok: boolean;
  /** Whether `meta.json` exists. */
  hasMetadata: boolean;
  /** Objects read and hashed. */
  objectsChecked: number;
  /** Objects with a bad name or content. */
  objectsCorrupted: number;
  /** First-level entries of `streams/`. */
  streamsChecked: number;
  /** Streams that are not symlinks, dangle, or cannot be read. */
  streamsCorrupted: number;
  /** First-level entries of `images/`. */
  imagesChecked: number;
  /** Images that are not symlinks, dangle, or cannot be parsed. */
  imagesCorrupted: number;
  /** Dangling symlinks, first-level and refs. */
  brokenLinks: number;
  /** Objects referred to by a stream or image but missing. */
  missingObjects: number;
  /** Every error. */
  errors: FsckProblem[];
  /** Harmless findings (see the module documentation). */
  warnings: FsckProblem[];
}

/** `fsck: <kind>: <path>[: <detail>]`, the line cfsctl prints for each error. */
export function formatProblem(p: FsckProblem): string {
  return `fsck: ${p.kind}: ${p.path}${p.detail ? `: ${p.detail}` : ""}`;
}

/** Checks the repository; see the module documentation. */
export async function checkRepository(repo: RepositoryView): Promise<FsckReport> {
  const r: FsckReport = {
    ok: true,
    hasMetadata: false,
    objectsChecked: 0,
    objectsCorrupted: 0,
    streamsChecked: 0,
    streamsCorrupted: 0,
    imagesChecked: 0,
    imagesCorrupted: 0,
    brokenLinks: 0,
    missingObjects: 0,
    errors: [],
    warnings: [],
  };
  // A detail can quote hostile bytes (a 64 KiB named ref): clipped, so each problem is one line.
  const error = (kind: string, path: string, detail = "") =>
    r.errors.push({ kind, path, detail: clipMiddle(detail) });
  const warn = (kind: string, path: string, detail = "") =>
    r.warnings.push({ kind, path, detail: clipMiddle(detail) });

  const root = repo.root;
  const isRegular = (st: sys.FileStat | undefined) =>
    st !== undefined && (st.mode & sys.S_IFMT) === sys.S_IFREG;
  /** A directory's entries; one that is a link (or unreadable) is reported and yields []. */
  const list = (rel: string): RepoDirEntry[] => {
    try {
      return root.readDir(rel);
    } catch (e) {
      if (e instanceof RepositoryError && e.code === "repository-symlink") {
        error("unexpected-file-type", rel, "symbolic link, not followed (a repository directory)");
      } else {
        error("stat-failed", rel, (e as Error).message);
      }
      return [];
    }
  };

  // meta.json
  const metaStat = root.lstat(META_FILE);
  if (metaStat !== undefined) {
    r.hasMetadata = true;
    try {
      if (!isRegular(metaStat)) throw new Error("not a regular file");
      const meta = parseMeta(new TextDecoder().decode(root.readFile(META_FILE)), META_FILE);
      const alg = meta.algorithm === "fsverity-sha512-12" ? "sha512" : "sha256";
      if (alg !== repo.algorithm) {
        error("metadata-algorithm-mismatch", META_FILE, `expected ${meta.algorithm}`);
      }
    } catch (e) {
      error("metadata-parse-failed", META_FILE, (e as MetaError).message);
    }
  }

  // objects
  const hexLen = repo.algorithm === "sha512" ? 128 : 64;
  const objectName = new RegExp(`^[0-9a-f]{${hexLen - 2}}$`);
  for (const sub of list("objects")) {
    const rel = `objects/${sub.name}`;
    if (sub.name.startsWith(TMP_PREFIX)) {
      warn("leftover-temporary", rel, "staging file of an interrupted write (removed by gc)");
      continue;
    }
    if (!/^[0-9a-f]{2}$/.test(sub.name)) continue;
    if (sub.isSymlink) {
      error("unexpected-file-type", rel, "symbolic link, not followed (a repository directory)");
      continue;
    }
    if (!sub.isDirectory) continue;
    for (const obj of list(rel)) {
      const objRel = `${rel}/${obj.name}`;
      if (obj.name.startsWith(TMP_PREFIX) && obj.isFile) {
        warn("leftover-temporary", objRel, "staging file of an interrupted write (removed by gc)");
        continue;
      }
      r.objectsChecked++;
      if (!objectName.test(obj.name)) {
        r.objectsCorrupted++;
        error("object-invalid-name", objRel, `not ${hexLen - 2} hex digits`);
        continue;
      }
      // As composefs-rs 0.9.4: the entry is opened (a symlink followed, so one that dangles
      // cannot be), and what is not a file fails the digest computation. cfs follows a link
      // only inside the repository.
      let file = objRel;
      if (obj.isSymlink) {
        const end = root.resolveLink(objRel);
        if (end.kind !== "inside") {
          r.objectsCorrupted++;
          error(
            "object-open-failed",
            objRel,
            end.kind === "missing"
              ? "No such file or directory"
              : end.kind === "outside"
              ? `symbolic link to ${end.target} leads out of the repository; not followed`
              : end.message,
          );
          continue;
        }
        file = end.path;
      }
      let st: sys.FileStat | undefined;
      try {
        st = file === "" ? undefined : root.lstat(file);
      } catch (e) {
        r.objectsCorrupted++;
        error("object-open-failed", objRel, (e as Error).message);
        continue;
      }
      const fmt = st === undefined ? sys.S_IFDIR : st.mode & sys.S_IFMT;
      // In a secure repository an object the kernel cannot measure lacks fs-verity. Only files
      // and directories are opened to ask (opening a fifo would wait for a writer).
      if (
        repo.secure &&
        !((fmt === sys.S_IFREG || fmt === sys.S_IFDIR) && file !== "" &&
          repo.objects.hasVerity(file))
      ) {
        r.objectsCorrupted++;
        error("object-verity-missing", objRel);
        continue;
      }
      if (fmt !== sys.S_IFREG) {
        r.objectsCorrupted++;
        error("object-verity-failed", objRel, "Computing verity digest in userspace");
        continue;
      }
      try {
        const measured = repo.objects.measureFile(file);
        if (measured !== sub.name + obj.name) {
          r.objectsCorrupted++;
          error("object-digest-mismatch", objRel, `measured ${measured}`);
        }
      } catch (e) {
        r.objectsCorrupted++;
        error("object-verity-failed", objRel, (e as Error).message);
      }
    }
  }

  const objectExists = (id: ObjectId) => {
    try {
      return repo.objects.has(id);
    } catch {
      return false; // below a symlinked objects/XX: reported above
    }
  };

  // streams and images, first level
  for (const category of ["streams", "images"] as const) {
    for (const e of list(category)) {
      if (e.name === "refs" || e.name.startsWith(TMP_PREFIX)) continue;
      const rel = `${category}/${e.name}`;
      const corrupt = () => category === "streams" ? r.streamsCorrupted++ : r.imagesCorrupted++;
      if (category === "streams") r.streamsChecked++;
      else r.imagesChecked++;
      if (!e.isSymlink) {
        corrupt();
        error("entry-not-symlink", rel);
        continue;
      }
      const target = root.readLink(rel) ?? "";
      const end = root.resolveLink(rel);
      if (end.kind === "missing") {
        r.brokenLinks++;
        corrupt();
        error("broken-symlink", rel);
        continue;
      }
      if (end.kind === "error") {
        error("stat-failed", rel, end.message);
        continue;
      }
      if (end.kind === "outside") {
        corrupt();
        error(
          category === "streams" ? "stream-open-failed" : "image-invalid",
          rel,
          `link target ${target} leads out of the repository; not followed`,
        );
        continue;
      }
      let bytes: Uint8Array;
      try {
        if (end.path === "" || !isRegular(root.lstat(end.path))) {
          throw new Error(`${end.path || "."}: not a regular file`);
        }
        bytes = root.readFile(end.path);
      } catch (err) {
        corrupt();
        error(
          category === "streams" ? "stream-open-failed" : "image-read-failed",
          rel,
          (err as Error).message,
        );
        continue;
      }
      if (category === "streams") {
        let refs;
        try {
          refs = await repo.streamRefs(bytes);
        } catch (err) {
          r.streamsCorrupted++;
          error("stream-open-failed", rel, (err as Error).message);
          continue;
        }
        if (refs.format === "0.3") {
          warn("legacy-stream", rel, "cfsctl 0.3.0 format: upgraded when opened for writing");
        }
        const missing = new Set<string>();
        for (const o of refs.objectRefs) {
          if (!missing.has(o.hex) && !objectExists(o)) {
            missing.add(o.hex);
            r.missingObjects++;
            error("missing-object-ref", rel, o.hex);
          }
        }
        for (const n of refs.namedRefs) {
          if (!objectExists(n.id)) {
            r.missingObjects++;
            error("missing-named-ref", rel, `ref ${n.name}: ${n.id.hex}`);
          }
        }
      } else {
        let objects: ObjectId[];
        try {
          objects = repo.checkImage(bytes);
        } catch (err) {
          r.imagesCorrupted++;
          error("image-invalid", rel, (err as Error).message);
          continue;
        }
        for (const o of objects) {
          if (!objectExists(o)) {
            r.missingObjects++;
            error("image-missing-object", rel, o.hex);
          }
        }
      }
      // Beyond composefs-rs, which reads whatever the link leads to: the link must be
      // ../objects/XX/<rest>, and an image's link named after that object.
      const id = ObjectId.fromObjectPath(target, repo.algorithm);
      if (!id || target !== `../objects/${id.objectPath}`) {
        corrupt();
        error(
          category === "streams" ? "stream-open-failed" : "image-open-failed",
          rel,
          `link target ${target} is not ../objects/XX/<rest>`,
        );
      } else if (category === "images" && id.hex !== e.name) {
        r.imagesCorrupted++;
        error("image-invalid", rel, `the link names object ${id.hex}`);
      }
    }
    // refs
    const walk = (dirRel: string) => {
      for (const e of list(dirRel)) {
        const rel = `${dirRel}/${e.name}`;
        if (e.name.startsWith(TMP_PREFIX)) continue;
        if (e.isDirectory) walk(rel);
        else if (e.isSymlink) {
          const end = root.resolveLink(rel);
          if (end.kind === "missing") {
            r.brokenLinks++;
            error("broken-symlink", rel);
          } else if (end.kind === "outside") {
            error(
              "symlink-outside-repository",
              rel,
              `target ${end.target} leads out of the repository; not followed`,
            );
          } else if (end.kind === "error") error("stat-failed", rel, end.message);
        } else error("unexpected-file-type", rel, e.isFile ? "regular file" : "not a symlink");
      }
    };
    walk(`${category}/refs`);
  }
  let leftovers: string[] = [];
  try {
    leftovers = leftoverTemporaryLinks(root);
  } catch { /* a symlinked directory: reported above */ }
  for (const p of leftovers) {
    warn("leftover-temporary", p, "temporary link (removed by gc)");
  }
  r.ok = r.errors.length === 0;
  return r;
}

/** The report as cfsctl prints it (`meta.json: ok`, `objects: N/M ok`, ..., `status: ok`). */
export function formatFsckReport(r: FsckReport): string {
  const lines: string[] = [];
  const metaError = r.errors.some((e) => e.kind.startsWith("metadata-"));
  lines.push(`meta.json: ${metaError ? "error" : r.hasMetadata ? "ok" : "absent"}`);
  lines.push(`objects: ${r.objectsChecked - r.objectsCorrupted}/${r.objectsChecked} ok`);
  lines.push(`streams: ${r.streamsChecked - r.streamsCorrupted}/${r.streamsChecked} ok`);
  lines.push(`images: ${r.imagesChecked - r.imagesCorrupted}/${r.imagesChecked} ok`);
  if (r.brokenLinks > 0) lines.push(`broken symlinks: ${r.brokenLinks}`);
  if (r.missingObjects > 0) lines.push(`missing objects: ${r.missingObjects}`);
  if (r.errors.length === 0) lines.push("status: ok");
  else {
    lines.push(`status: ${r.errors.length} error(s)`);
    for (const e of r.errors) lines.push(`  - ${formatProblem(e)}`);
  }
  for (const w of r.warnings) lines.push(`warning: ${w.kind}: ${w.path}: ${w.detail}`);
  return lines.join("\n") + "\n";
}
