/**
 * `fsck --repair`: removes what fsck finds damaged, and what would then be left pointing at
 * nothing, so that the repository is consistent again and the next pull fetches exactly what
 * was lost. composefs-rs 0.9.4 has no repair; this is cfs's.
 *
 * What goes, in this order:
 *
 * 1. damaged objects: an entry below `objects/XX/` with an object's name whose content does not
 *    match it, that cannot be read or measured, or that is a link (`object-digest-mismatch`,
 *    `object-verity-failed`, `object-verity-missing`, `object-open-failed`). Content that
 *    does not hash to its name can never be right; the next store of that content writes it
 *    anew instead of finding it "present".
 * 2. first-level links of `streams/` and `images/` that no longer name a sound whole: the link
 *    is not `../objects/XX/<rest>`, its object is gone or unreadable, the stream does not
 *    parse, an object or named ref it holds is gone, the image is invalid or refers to a
 *    missing object. Only the link goes: the objects it names stay (gc removes them when
 *    nothing else keeps them). A pull finds the layer stream missing and imports the layer
 *    again (its sound objects are found present, the lost ones stored), rewrites a config
 *    stream whose image went, and makes the images again.
 * 3. refs that now dangle, or lead out of the repository (they are links the repository owns;
 *    their targets are never touched). A removed tag names an image to pull again; the report
 *    lists them.
 *
 * What stays, reported as not repaired: names cfs could not have written (a file that is not
 * an object in `objects/XX/`, a regular file in `streams/`), and repository directories that
 * are symbolic links (cfs does not follow them, and the data they lead to is not its own).
 * The repository is locked exclusively meanwhile, as for gc.
 *
 * @module
 */
import { checkRepository, type FsckProblem, type FsckReport } from "./fsck.ts";
import { ObjectId } from "./object_id.ts";
import { TMP_PREFIX } from "./files.ts";
import { walkRefs } from "./refs.ts";
import type { RepositoryView } from "./view.ts";
import * as sys from "../sys/libc.ts";

/** What {@link repairRepository} did. */
export interface RepairReport {
  /** Damaged objects removed (`objects/XX/<rest>` paths). */
  removedObjects: string[];
  /** First-level stream and image links removed (`streams/<name>`, `images/<hex>`). */
  removedLinks: string[];
  /** Refs removed (`streams/refs/...`, `images/refs/...`): names to pull or create again. */
  removedRefs: string[];
  /** fsck before the repair. */
  before: FsckReport;
  /** fsck after it: its errors are what could not be repaired. */
  after: FsckReport;
}

/** fsck error kinds that mean an object's entry is damaged. */
const DAMAGED_OBJECT = new Set([
  "object-digest-mismatch",
  "object-verity-failed",
  "object-verity-missing",
  "object-open-failed",
]);

/** Repairs the repository; see the module documentation. The caller holds the exclusive lock. */
export async function repairRepository(repo: RepositoryView): Promise<RepairReport> {
  const root = repo.root;
  const before = await checkRepository(repo);
  const report: RepairReport = {
    removedObjects: [],
    removedLinks: [],
    removedRefs: [],
    before,
    after: before,
  };
  const hexLen = repo.algorithm === "sha512" ? 128 : 64;
  const objectPath = new RegExp(`^objects/[0-9a-f]{2}/[0-9a-f]{${hexLen - 2}}$`);

  // 1. Damaged objects.
  for (const p of before.errors) {
    if (!DAMAGED_OBJECT.has(p.kind) || !objectPath.test(p.path)) continue;
    const st = root.lstat(p.path);
    if (st === undefined) continue;
    if ((st.mode & sys.S_IFMT) === sys.S_IFDIR) {
      if (!root.rmdirIfEmpty(p.path)) continue;
    } else root.unlink(p.path);
    report.removedObjects.push(p.path);
  }

  // 2. First-level links that no longer name a sound whole.
  const objectSound = (id: ObjectId) => {
    try {
      return repo.objects.check(id, false) === "ok";
    } catch {
      return true; // below a symlinked objects/XX: not cfs's to judge (fsck reports the link)
    }
  };
  for (const category of ["streams", "images"] as const) {
    for (const e of listOrNothing(() => root.readDir(category))) {
      if (e.name === "refs" || e.name.startsWith(TMP_PREFIX) || !e.isSymlink) continue;
      const rel = `${category}/${e.name}`;
      if (!(await linkSound(repo, rel, category, objectSound))) {
        root.unlink(rel);
        report.removedLinks.push(rel);
      }
    }
  }

  // 3. Refs that dangle or lead out of the repository.
  for (const category of ["streams", "images"] as const) {
    for (const r of listOrNothing(() => walkRefs(root, `${category}/refs`))) {
      const end = root.resolveLink(r.path);
      if (end.kind === "missing" || end.kind === "outside") {
        root.unlink(r.path);
        report.removedRefs.push(r.path);
      }
    }
  }
  report.after = await checkRepository(repo);
  return report;
}

/** A listing, or nothing where it cannot be made (a symlinked directory: fsck reports it). */
function listOrNothing<T>(list: () => T[]): T[] {
  try {
    return list();
  } catch {
    return [];
  }
}

/** Whether the link `rel` names a whole, sound stream or image (objects checked by existence). */
async function linkSound(
  repo: RepositoryView,
  rel: string,
  category: "streams" | "images",
  objectSound: (id: ObjectId) => boolean,
): Promise<boolean> {
  const target = repo.root.readLink(rel) ?? "";
  const id = ObjectId.fromObjectPath(target, repo.algorithm);
  if (!id || target !== `../objects/${id.objectPath}`) return false;
  if (category === "images" && id.hex !== rel.slice("images/".length)) return false;
  let bytes: Uint8Array;
  try {
    bytes = repo.objects.read(id);
  } catch {
    return false;
  }
  try {
    if (category === "streams") {
      const refs = await repo.streamRefs(bytes);
      return refs.objectRefs.every(objectSound) && refs.namedRefs.every((n) => objectSound(n.id));
    }
    return repo.checkImage(bytes).every(objectSound);
  } catch {
    return false;
  }
}

/** The problems a repair leaves: the errors of the fsck after it. */
export function unrepaired(report: RepairReport): FsckProblem[] {
  return report.after.errors;
}
