/**
 * Repository commands, as cfsctl 0.9.4 has them: `init`, `fsck`, `gc`, `images` (the named
 * image refs), `cat` (in oci.ts).
 *
 * @module
 */
import {
  type CommandHandler,
  type GlobalOptions,
  parseCommand,
  println,
  UsageError,
} from "./command.ts";
import { commandSpec } from "./table.ts";
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

/** `cfs init` */
export const initCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("init"));
  if (positionals.length > 1) throw new UsageError("too many arguments");
  const algorithm = values.algorithm ?? "fsverity-sha512-12";
  if (!REPO_ALGORITHMS.includes(algorithm as RepoAlgorithm)) {
    throw new UsageError(
      `unknown algorithm '${algorithm}' (use ${REPO_ALGORITHMS.join(" or ")})`,
    );
  }
  let erofsVersion = globals.erofsVersion;
  if (values["erofs-version"] !== undefined) {
    erofsVersion = parseErofsVersion(values["erofs-version"]);
    if (erofsVersion === undefined) {
      throw new UsageError(
        `--erofs-version takes 0, 1 or 2, not '${values["erofs-version"]}'`,
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

/** `cfs fsck` */
export const fsckCommand: CommandHandler = async (args, globals) => {
  const { values } = parseCommand(args, commandSpec("fsck"));
  const json = globals.json;
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

/** `cfs gc` */
export const gcCommand: CommandHandler = async (args, globals) => {
  const { values } = parseCommand(args, commandSpec("gc"));
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

/** `cfs images` */
export const imagesCommand: CommandHandler = (args, globals) => {
  const { values } = parseCommand(args, commandSpec("images"));
  const repo = openReadOnly(globals);
  const refs = repo.listImages().refs;
  repo.close();
  const images = refs.map((r) => ({ name: r.name, digest: r.id?.hex ?? "" }));
  if (globals.json) {
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
