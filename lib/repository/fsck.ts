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
 * @module
 */
import { join } from "node:path";
import { exists, sortedDir, TMP_PREFIX } from "./files.ts";
import { leftoverTemporaryLinks } from "./refs.ts";
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
  const error = (kind: string, path: string, detail = "") => r.errors.push({ kind, path, detail });
  const warn = (kind: string, path: string, detail = "") => r.warnings.push({ kind, path, detail });

  // meta.json
  const metaPath = join(repo.path, META_FILE);
  if (exists(metaPath)) {
    r.hasMetadata = true;
    try {
      const meta = parseMeta(Deno.readTextFileSync(metaPath), META_FILE);
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
  const objectsDir = join(repo.path, "objects");
  for (const sub of sortedDir(objectsDir)) {
    const rel = `objects/${sub.name}`;
    if (sub.name.startsWith(TMP_PREFIX)) {
      warn("leftover-temporary", rel, "staging file of an interrupted write (removed by gc)");
      continue;
    }
    if (!sub.isDirectory || !/^[0-9a-f]{2}$/.test(sub.name)) continue;
    for (const obj of sortedDir(join(objectsDir, sub.name))) {
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
      // cannot be), and what is not a file fails the digest computation.
      const objPath = join(objectsDir, sub.name, obj.name);
      let target: Deno.FileInfo;
      try {
        target = Deno.statSync(objPath);
      } catch (e) {
        r.objectsCorrupted++;
        error("object-open-failed", objRel, (e as Error).message);
        continue;
      }
      // In a secure repository an object the kernel cannot measure lacks fs-verity.
      if (repo.secure && !repo.objects.hasVerity(objPath)) {
        r.objectsCorrupted++;
        error("object-verity-missing", objRel);
        continue;
      }
      if (!target.isFile) {
        r.objectsCorrupted++;
        error("object-verity-failed", objRel, "Computing verity digest in userspace");
        continue;
      }
      try {
        const measured = repo.objects.measureFile(objPath);
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

  const objectExists = (id: ObjectId) => repo.objects.has(id);

  // streams and images, first level
  for (const category of ["streams", "images"] as const) {
    const dir = join(repo.path, category);
    for (const e of sortedDir(dir)) {
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
      const target = Deno.readLinkSync(join(dir, e.name));
      const resolved = resolves(join(dir, e.name));
      if (resolved !== true) {
        if (resolved === false) {
          r.brokenLinks++;
          corrupt();
          error("broken-symlink", rel);
        } else error("stat-failed", rel, resolved);
        continue;
      }
      let bytes: Uint8Array;
      try {
        bytes = Deno.readFileSync(join(dir, e.name));
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
          objects = repo.imageObjects(bytes);
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
      if (!id || !target.startsWith("../objects/")) {
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
    const walk = (d: string, prefix: string) => {
      for (const e of sortedDir(d)) {
        const rel = `${category}/refs/${prefix}${e.name}`;
        if (e.name.startsWith(TMP_PREFIX)) continue;
        if (e.isDirectory) walk(join(d, e.name), `${prefix}${e.name}/`);
        else if (e.isSymlink) {
          const resolved = resolves(join(d, e.name));
          if (resolved === false) {
            r.brokenLinks++;
            error("broken-symlink", rel);
          } else if (resolved !== true) error("stat-failed", rel, resolved);
        } else error("unexpected-file-type", rel, e.isFile ? "regular file" : "not a symlink");
      }
    };
    walk(join(dir, "refs"), "");
  }
  for (const p of leftoverTemporaryLinks(repo.path)) {
    warn("leftover-temporary", p.slice(repo.path.length + 1), "temporary link (removed by gc)");
  }
  r.ok = r.errors.length === 0;
  return r;
}

/**
 * Whether the symlink at `path` leads to something, following the whole chain as stat(2)
 * does (as composefs-rs checks links): true, false when something on the way is missing, or
 * the error message of any other failure (a loop, a non-directory on the way).
 */
function resolves(path: string): true | false | string {
  try {
    Deno.statSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    return (e as Error).message;
  }
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
