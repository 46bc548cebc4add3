/**
 * Image commands, as cfsctl has them: `compute-id`, `create-dumpfile`, `create-image`,
 * `image-objects`, `dump-files`.
 *
 * @module
 */
import {
  type CommandHandler,
  type GlobalOptions,
  parseCommandArgs,
  println,
  UsageError,
  writeStdout,
} from "./command.ts";
import { computeImageId, treeFromPath } from "../build.ts";
import { mkfsErofs } from "../erofs/writer.ts";
import { collectObjects, readErofs } from "../erofs/reader.ts";
import { dumpfileLine, dumpfileLines } from "../dumpfile.ts";
import { toHex, type VerityAlgorithm } from "../fsverity/digest.ts";
import { Repository } from "../repository.ts";
import { mountImage } from "../mount.ts";
import { openRepo, repoPath } from "./repo_path.ts";
import { countLinks, lookup, utf8ToName } from "../tree.ts";

const TREE_OPTIONS = {
  bootable: { type: "boolean" },
  "stat-root": { type: "boolean" },
  algorithm: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function parseAlgorithmOption(
  value: string | undefined,
  usage: string,
): VerityAlgorithm | undefined {
  if (value === undefined) return undefined;
  if (value !== "sha256" && value !== "sha512") {
    throw new UsageError(`unknown algorithm '${value}' (use sha256 or sha512)`, usage);
  }
  return value;
}

/** The algorithm for commands that need no repository: --algorithm, else the repository's if one exists, else sha256. */
function algorithmFor(
  globals: GlobalOptions,
  explicit: VerityAlgorithm | undefined,
): VerityAlgorithm {
  if (explicit) return explicit;
  if (globals.repo) {
    try {
      const repo = Repository.open(repoPath(globals), { upgrade: false });
      repo.close();
      return repo.algorithm;
    } catch { /* no repository: fall back */ }
  }
  return "sha256";
}

function oneTreeArg(positionals: string[], usage: string, max = 1): string[] {
  if (positionals.length === 0) throw new UsageError("missing PATH", usage);
  if (positionals.length > max) throw new UsageError("too many arguments", usage);
  return positionals;
}

const COMPUTE_ID_USAGE =
  `usage: cfs compute-id [--bootable] [--stat-root] [--algorithm sha256|sha512] PATH

Prints the image ID (fs-verity digest of the composefs EROFS image) of the tree at PATH,
without writing anything. The algorithm defaults to the repository's (--repo), else sha256.`;

/** `cfs compute-id` */
export const computeIdCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, TREE_OPTIONS, COMPUTE_ID_USAGE);
  if (values.help) return Promise.resolve(help(COMPUTE_ID_USAGE));
  const [path] = oneTreeArg(positionals, COMPUTE_ID_USAGE);
  const algorithm = algorithmFor(globals, parseAlgorithmOption(values.algorithm, COMPUTE_ID_USAGE));
  const fs = treeFromPath(path, {
    algorithm,
    bootable: values.bootable,
    statRoot: values["stat-root"],
  });
  const id = toHex(computeImageId(fs, algorithm));
  println(globals.json ? JSON.stringify({ id, algorithm }) : id);
  return Promise.resolve(0);
};

const CREATE_DUMPFILE_USAGE =
  `usage: cfs create-dumpfile [--bootable] [--stat-root] [--algorithm sha256|sha512] PATH

Prints the composefs dumpfile of the tree at PATH.`;

/** `cfs create-dumpfile` */
export const createDumpfileCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, TREE_OPTIONS, CREATE_DUMPFILE_USAGE);
  if (values.help) return Promise.resolve(help(CREATE_DUMPFILE_USAGE));
  const [path] = oneTreeArg(positionals, CREATE_DUMPFILE_USAGE);
  const algorithm = algorithmFor(
    globals,
    parseAlgorithmOption(values.algorithm, CREATE_DUMPFILE_USAGE),
  );
  const fs = treeFromPath(path, {
    algorithm,
    bootable: values.bootable,
    statRoot: values["stat-root"],
  });
  writeLines(dumpfileLines(fs));
  return Promise.resolve(0);
};

function writeLines(lines: Iterable<string>): void {
  const enc = new TextEncoder();
  let buf = "";
  for (const line of lines) {
    buf += line + "\n";
    if (buf.length > 1 << 16) {
      writeStdout(enc.encode(buf));
      buf = "";
    }
  }
  writeStdout(enc.encode(buf));
}

const CREATE_IMAGE_USAGE = `usage: cfs create-image [--bootable] [--stat-root] PATH [NAME]

Stores the tree at PATH in the repository (large files as objects), writes its EROFS image
and prints the image ID; NAME becomes a ref (images/refs/NAME), a GC root.`;

/** `cfs create-image` */
export const createImageCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, TREE_OPTIONS, CREATE_IMAGE_USAGE);
  if (values.help) return Promise.resolve(help(CREATE_IMAGE_USAGE));
  if (values.algorithm) {
    throw new UsageError(
      "the repository decides the algorithm; --algorithm is not accepted here",
      CREATE_IMAGE_USAGE,
    );
  }
  const [path, name] = oneTreeArg(positionals, CREATE_IMAGE_USAGE, 2);
  const repo = openRepo(globals);
  try {
    const fs = treeFromPath(path, {
      repo,
      bootable: values.bootable,
      statRoot: values["stat-root"],
    });
    const id = toHex(repo.writeImage(mkfsErofs(fs), name));
    println(
      globals.json
        ? JSON.stringify({ id, algorithm: repo.algorithm, name: name ?? null })
        : `${repo.algorithm}:${id}`,
    );
  } finally {
    repo.close();
  }
  return Promise.resolve(0);
};

const IMAGE_OBJECTS_USAGE = `usage: cfs image-objects NAME

Lists the objects (ALGORITHM:HEX) that image NAME (an image ID or a ref name) refers to.`;

/** `cfs image-objects` */
export const imageObjectsCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(
    args,
    { help: { type: "boolean", short: "h" } },
    IMAGE_OBJECTS_USAGE,
  );
  if (values.help) return Promise.resolve(help(IMAGE_OBJECTS_USAGE));
  const [name] = oneTreeArg(positionals, IMAGE_OBJECTS_USAGE);
  const repo = openRepo(globals);
  try {
    const { bytes } = repo.readImage(name);
    const ids = collectObjects(readErofs(bytes)).map((d) => toHex(d)).sort();
    if (globals.json) println(JSON.stringify({ algorithm: repo.algorithm, objects: ids }));
    else writeLines(ids.map((h) => `${repo.algorithm}:${h}`));
  } finally {
    repo.close();
  }
  return Promise.resolve(0);
};

const DUMP_FILES_USAGE = `usage: cfs dump-files NAME [PATH...]

Prints the dumpfile lines of the given paths in image NAME (all entries when no PATH).`;

/** `cfs dump-files` */
export const dumpFilesCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(
    args,
    { help: { type: "boolean", short: "h" } },
    DUMP_FILES_USAGE,
  );
  if (values.help) return Promise.resolve(help(DUMP_FILES_USAGE));
  const [name, ...paths] = oneTreeArg(positionals, DUMP_FILES_USAGE, Infinity);
  const repo = openRepo(globals);
  try {
    const fs = readErofs(repo.readImage(name).bytes);
    if (paths.length === 0) {
      writeLines(dumpfileLines(fs));
      return Promise.resolve(0);
    }
    const links = countLinks(fs);
    const lines: string[] = [];
    for (const p of paths) {
      const key = utf8ToName(p);
      const inode = lookup(fs, key);
      if (inode === undefined) throw new Error(`${p}: no such file in image ${name}`);
      const abs = new TextEncoder().encode(p.startsWith("/") ? p : `/${p}`);
      lines.push(dumpfileLine(abs, inode, inode.kind === "leaf" ? links.get(inode) ?? 1 : 0));
    }
    writeLines(lines);
  } finally {
    repo.close();
  }
  return Promise.resolve(0);
};

function help(usage: string): number {
  println(usage);
  return 0;
}

const MOUNT_USAGE = `usage: cfs mount NAME MOUNTPOINT

Mounts image NAME (its id, or an image ref) with the kernel's EROFS and overlayfs over the
repository's objects (verity=require in a secure repository). Needs root. For pulled OCI
images see 'cfs oci mount'.`;

/** `cfs mount` */
export const mountCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(
    args,
    { help: { type: "boolean", short: "h" } },
    MOUNT_USAGE,
  );
  if (values.help) return help(MOUNT_USAGE);
  if (positionals.length !== 2) {
    throw new UsageError("NAME and MOUNTPOINT are required", MOUNT_USAGE);
  }
  const repo = openRepo(globals);
  try {
    await mountImage(repo, repo.resolveImage(positionals[0]), positionals[1]);
  } finally {
    repo.close();
  }
  return 0;
};
