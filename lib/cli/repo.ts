/**
 * Repository commands: `init`, `fsck`, `gc`.
 *
 * @module
 */
import { type CommandHandler, parseCommandArgs, println, UsageError } from "./command.ts";
import { REPO_ALGORITHMS, type RepoAlgorithm, Repository } from "../repository.ts";
import { openRepo, repoPath } from "./repo_path.ts";

const INIT_USAGE =
  `usage: cfs init [PATH] [--algorithm fsverity-sha512-12|fsverity-sha256-12] [--insecure]

Creates a repository at PATH (default: --repo). A secure repository (the default) needs a
file system with fs-verity; --insecure makes one that computes digests in user space.`;

/** `cfs init` */
export const initCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    algorithm: { type: "string" },
    insecure: { type: "boolean" },
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
  const path = positionals[0] ?? repoPath(globals);
  const repo = Repository.init(path, {
    algorithm: algorithm as RepoAlgorithm,
    insecure: values.insecure,
  });
  if (globals.json) {
    println(JSON.stringify({ path, algorithm: repo.meta.algorithm, secure: repo.secure }));
  } else {
    println(`initialized ${path}`);
    println(`  algorithm: ${repo.meta.algorithm}`);
    println(`  verity:    ${repo.secure ? "required" : "not required (insecure)"}`);
  }
  repo.close();
  return Promise.resolve(0);
};

const FSCK_USAGE = `usage: cfs fsck [--json]

Re-measures every object, checks every image, stream and ref. Exit 1 when anything is wrong.`;

/** `cfs fsck` */
export const fsckCommand: CommandHandler = (args, globals) => {
  const { values } = parseCommandArgs(args, {
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, FSCK_USAGE);
  if (values.help) return Promise.resolve(help(FSCK_USAGE));
  const repo = Repository.open(repoPath(globals), { upgrade: false });
  const report = repo.fsck();
  repo.close();
  if (globals.json || values.json) {
    println(JSON.stringify(report));
  } else {
    for (const p of report.problems) println(`error: ${p.path}: ${p.problem}`);
    for (const w of report.warnings) println(`warning: ${w.path}: ${w.problem}`);
    println(
      `${
        report.ok ? "ok" : "FAILED"
      }: ${report.objects} objects, ${report.images} images, ${report.streams} streams, ${report.refs} refs, ${report.problems.length} problems`,
    );
  }
  return Promise.resolve(report.ok ? 0 : 1);
};

const GC_USAGE = `usage: cfs gc [--dry-run] [--root NAME]...

Removes images no ref points to (--root keeps more), streams no ref under streams/refs
reaches, objects no live image or stream uses, and temporary files left by interrupted writes.`;

/** `cfs gc` */
export const gcCommand: CommandHandler = (args, globals) => {
  const { values } = parseCommandArgs(args, {
    "dry-run": { type: "boolean" },
    root: { type: "string", multiple: true },
    help: { type: "boolean", short: "h" },
  }, GC_USAGE);
  if (values.help) return Promise.resolve(help(GC_USAGE));
  const repo = openRepo(globals);
  const report = repo.gc({ dryRun: values["dry-run"], roots: values.root });
  repo.close();
  if (globals.json) {
    println(JSON.stringify(report));
  } else {
    const verb = report.dryRun ? "would remove" : "removed";
    for (const i of report.removedImages) println(`${verb} image ${i}`);
    for (const r of report.removedImageRefs) println(`${verb} image ref ${r}`);
    for (const st of report.removedStreams) println(`${verb} stream ${st}`);
    for (const o of report.removedObjects) println(`${verb} object ${o}`);
    for (const t of report.removedTemporary) println(`${verb} temporary ${t}`);
    println(
      `${verb} ${report.removedImages.length} images, ${report.removedObjects.length} objects (${report.freedBytes} bytes); kept ${report.keptObjects} objects`,
    );
  }
  return Promise.resolve(0);
};

function help(usage: string): number {
  println(usage);
  return 0;
}
