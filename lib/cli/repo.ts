/**
 * Repository commands, as cfsctl 0.9.4 has them: `init`, `fsck`, `gc`, `images` (the named
 * image refs), `cat` (in oci.ts).
 *
 * @module
 */
import {
  type CommandHandler,
  type GlobalOptions,
  parseCommandArgs,
  println,
  UsageError,
} from "./command.ts";
import {
  formatFsckReport,
  formatProblem,
  type FsckReport,
  type RepairReport,
  REPO_ALGORITHMS,
  type RepoAlgorithm,
  Repository,
} from "../repository/mod.ts";
import { parseErofsVersion } from "../erofs/format.ts";
import { openReadOnly, openRepo, repoPath } from "./repo_path.ts";

const INIT_USAGE = `usage: cfs init [PATH] [--algorithm fsverity-sha512-12|fsverity-sha256-12]
                [--insecure] [--erofs-version 0|1|2]

Creates a repository at PATH (default: --repo), as cfsctl init: meta.json with the digest
algorithm (default fsverity-sha512-12) and the EROFS format of its images (default 1; 2 is
the legacy composefs-rs format, 0 plain C mkcomposefs). A secure repository (the default)
needs a file system with fs-verity; --insecure makes one that computes digests in user space.
Running it again with the same settings changes nothing; different ones are an error.`;

/** `cfs init` */
export const initCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    algorithm: { type: "string" },
    insecure: { type: "boolean" },
    "erofs-version": { type: "string" },
    help: { type: "boolean", short: "h" },
  }, INIT_USAGE);
  if (values.help) return Promise.resolve(help(INIT_USAGE));
  if (positionals.length > 1) throw new UsageError("too many arguments", INIT_USAGE);
  const algorithm = values.algorithm ?? "fsverity-sha512-12";
  if (!REPO_ALGORITHMS.includes(algorithm as RepoAlgorithm)) {
    throw new UsageError(
      `unknown algorithm '${algorithm}' (use ${REPO_ALGORITHMS.join(" or ")})`,
      INIT_USAGE,
    );
  }
  let erofsVersion = globals.erofsVersion;
  if (values["erofs-version"] !== undefined) {
    erofsVersion = parseErofsVersion(values["erofs-version"]);
    if (erofsVersion === undefined) {
      throw new UsageError(
        `--erofs-version takes 0, 1 or 2, not '${values["erofs-version"]}'`,
        INIT_USAGE,
      );
    }
  }
  const path = positionals[0] ?? repoPath(globals);
  const repo = Repository.init(path, {
    algorithm: algorithm as RepoAlgorithm,
    insecure: values.insecure,
    erofsVersion,
  });
  if (globals.json) {
    println(JSON.stringify({
      path,
      algorithm: repo.meta.algorithm,
      secure: repo.secure,
      erofsVersion: repo.erofsVersion,
    }));
  } else {
    println(`Initialized composefs repository at ${path}`);
    println(`  algorithm: ${repo.meta.algorithm}`);
    println(`  verity:    ${repo.secure ? "required" : "not required (insecure)"}`);
    println(`  erofs:     version ${repo.erofsVersion}`);
  }
  repo.close();
  return Promise.resolve(0);
};

const FSCK_USAGE = `usage: cfs fsck [--json] [--repair]

Checks the repository as cfsctl fsck does: every object is read and hashed (and its
fs-verity measured in a secure repository), every stream and image link must resolve, every
stream must parse and every object it or an image refers to must exist, every ref must
resolve. Prints one line per error (\`fsck: KIND: PATH: DETAIL\`) and exits 1 when there is
any; with --json, the report as JSON (exit status 0 unless the check itself fails, as cfsctl).
Warnings (leftovers of interrupted writes, streams in cfsctl 0.3.0's format) are not errors.

--repair (cfs only) removes what fsck finds damaged: objects whose content does not match
their name, then the stream and image links that would name something incomplete, then refs
left dangling (listed: images to pull or create again). Objects still sound are kept, so the
next pull fetches exactly what was lost. Prints what it removed and the report after; exits
1 when errors remain (names cfs could not have written are left alone).`;

/** `cfs fsck` */
export const fsckCommand: CommandHandler = async (args, globals) => {
  const { values } = parseCommandArgs(args, {
    json: { type: "boolean" },
    repair: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, FSCK_USAGE);
  if (values.help) return Promise.resolve(help(FSCK_USAGE));
  const json = globals.json || values.json;
  if (values.repair) return await repairCommand(globals, json ?? false);
  const repo = openReadOnly(globals);
  let report;
  try {
    report = await repo.fsck();
  } finally {
    repo.close();
  }
  if (json) {
    println(JSON.stringify(fsckJson(report), null, 2));
    return Promise.resolve(0);
  }
  Deno.stdout.writeSync(new TextEncoder().encode(formatFsckReport(report)));
  return Promise.resolve(report.ok ? 0 : 1);
};

/** `cfs fsck --repair`: what was removed, then the report after (exit 1 when errors remain). */
async function repairCommand(globals: GlobalOptions, json: boolean): Promise<number> {
  const repo = openRepo(globals);
  let r: RepairReport;
  try {
    r = await repo.repair();
  } finally {
    repo.close();
  }
  if (json) {
    println(JSON.stringify(
      {
        repaired: {
          objects: r.removedObjects,
          links: r.removedLinks,
          refs: r.removedRefs,
          errors_before: r.before.errors.map(formatProblem),
        },
        ...fsckJson(r.after),
      },
      null,
      2,
    ));
    return r.after.ok ? 0 : 1;
  }
  const lines = [
    `repair: ${r.before.errors.length} error(s) found; removed ${r.removedObjects.length} ` +
    `damaged object(s), ${r.removedLinks.length} link(s), ${r.removedRefs.length} ref(s)`,
    ...r.removedObjects.map((p) => `  removed ${p}`),
    ...r.removedLinks.map((p) => `  removed ${p}`),
    ...r.removedRefs.map((p) => `  removed ${p} (pull or create it again)`),
  ];
  println(lines.join("\n"));
  Deno.stdout.writeSync(new TextEncoder().encode(formatFsckReport(r.after)));
  return r.after.ok ? 0 : 1;
}

/** fsck's JSON report: cfsctl 0.9.4's fields, then cfs's (`problems`, `warnings`). */
function fsckJson(report: FsckReport): Record<string, unknown> {
  return {
    ok: report.ok,
    has_metadata: report.hasMetadata,
    objects_checked: report.objectsChecked,
    objects_corrupted: report.objectsCorrupted,
    streams_checked: report.streamsChecked,
    streams_corrupted: report.streamsCorrupted,
    images_checked: report.imagesChecked,
    images_corrupted: report.imagesCorrupted,
    broken_links: report.brokenLinks,
    missing_objects: report.missingObjects,
    errors: report.errors.map(formatProblem),
    problems: report.errors,
    warnings: report.warnings,
  };
}

const GC_USAGE = `usage: cfs gc [--dry-run|-n] [--root|-r NAME]...

Garbage collection as cfsctl gc does it: keeps every object an image ref, a stream ref (a
tag keeps its manifest, config, layers and the config's images) or a --root (an image id or
a stream name) reaches, and removes the rest; then prunes links left pointing nowhere and
temporary files of interrupted writes. --dry-run only counts.`;

/** `cfs gc` */
export const gcCommand: CommandHandler = async (args, globals) => {
  const { values } = parseCommandArgs(args, {
    "dry-run": { type: "boolean", short: "n" },
    root: { type: "string", short: "r", multiple: true },
    help: { type: "boolean", short: "h" },
  }, GC_USAGE);
  if (values.help) return Promise.resolve(help(GC_USAGE));
  const repo = values["dry-run"] ? openReadOnly(globals) : openRepo(globals);
  let report;
  try {
    report = await repo.gc({ dryRun: values["dry-run"], roots: values.root });
  } finally {
    repo.close();
  }
  if (globals.json) {
    println(JSON.stringify(report));
  } else {
    if (report.dryRun) println("Dry run (no files deleted):");
    println(`Objects: ${report.objectsRemoved} removed (${report.objectsBytes} bytes)`);
    if (report.imagesPruned > 0 || report.streamsPruned > 0) {
      println(`Pruned symlinks: ${report.imagesPruned} images, ${report.streamsPruned} streams`);
    }
    if (report.removedTemporary.length > 0) {
      println(`Temporary files: ${report.removedTemporary.length} removed`);
    }
  }
  return Promise.resolve(0);
};

const IMAGES_USAGE = `usage: cfs images [--json] [--no-trunc]

Lists the named image refs (images/refs/NAME) and the image each names, as cfsctl images.`;

/** `cfs images` */
export const imagesCommand: CommandHandler = (args, globals) => {
  const { values } = parseCommandArgs(args, {
    json: { type: "boolean" },
    "no-trunc": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, IMAGES_USAGE);
  if (values.help) return Promise.resolve(help(IMAGES_USAGE));
  const repo = openReadOnly(globals);
  const refs = repo.listImages().refs;
  repo.close();
  const images = refs.map((r) => ({ name: r.name, digest: r.id?.hex ?? "" }));
  if (globals.json || values.json) {
    println(JSON.stringify({ images }, null, 2));
  } else if (images.length === 0) {
    println("No images found");
  } else {
    const rows = images.map((i) => [
      i.name,
      values["no-trunc"] ? i.digest : i.digest.slice(0, 12),
    ]);
    printTable(["NAME", "DIGEST"], rows);
  }
  return Promise.resolve(0);
};

/** Prints rows as an aligned table under a header. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ");
  println(line(header));
  for (const r of rows) println(line(r));
}

function help(usage: string): number {
  println(usage);
  return 0;
}
