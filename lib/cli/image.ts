/**
 * Image commands, as cfsctl (composefs-ctl 0.9.4) has them: `compute-id`, `compute-karg`,
 * `create-dumpfile`, `create-image`, `image-objects`, `dump-files`, `mount`.
 *
 * The tree commands take cfsctl 0.9.4's flags and defaults: the tree is transformed as a
 * container root unless `--no-propagate-usr-to-root` (lib/tree_transform.ts), `--xattrs`
 * picks what that keeps, `--bootable` adds the boot transform, `--erofs-version` (also a
 * global flag) picks the image format, V1 by default. The digest algorithm is `--hash`
 * (cfs's `--algorithm` is the same flag), else the repository's when one is there, else
 * sha512.
 *
 * @module
 */
import {
  type CommandHandler,
  type GlobalOptions,
  parseCommand,
  println,
  UsageError,
  writeStdout,
} from "./command.ts";
import { commandSpec } from "./table.ts";
import { erofsImage, treeFromPath, type TreeFromPathOptions } from "../build.ts";
import { collectObjects, readErofs } from "../erofs/reader.ts";
import { DEFAULT_EROFS_VERSION, type ErofsVersion, parseErofsVersion } from "../erofs/format.ts";
import { dumpfileLine, dumpfileLines } from "../dumpfile.ts";
import { fsverityDigest, toHex, type VerityAlgorithm } from "../fsverity/digest.ts";
import { Repository, RepositoryError } from "../repository.ts";
import { errorCode } from "../errors.ts";
import { resolveTag } from "../oci/store.ts";
import { mountImage } from "../mount.ts";
import { openRepo, repoPath } from "./repo_path.ts";
import { countLinks, lookup, utf8ToName } from "../tree.ts";
import { parseXattrFiltering, type XattrFiltering } from "../tree_transform.ts";
import { composefsKarg } from "../boot/karg.ts";

function parseAlgorithm(
  values: { hash?: string; algorithm?: string },
): VerityAlgorithm | undefined {
  const { hash, algorithm } = values;
  if (hash !== undefined && algorithm !== undefined && hash !== algorithm) {
    throw new UsageError(`--hash ${hash} and --algorithm ${algorithm} disagree`);
  }
  const value = hash ?? algorithm;
  if (value === undefined) return undefined;
  if (value !== "sha256" && value !== "sha512") {
    throw new UsageError(`unknown algorithm '${value}' (use sha256 or sha512)`);
  }
  return value;
}

/** `--erofs-version` of the command, else the global one, else undefined. */
export function erofsVersionOption(
  value: string | undefined,
  globals: GlobalOptions,
): ErofsVersion | undefined {
  if (value === undefined) return globals.erofsVersion;
  const version = parseErofsVersion(value);
  if (version === undefined) {
    throw new UsageError(`unknown EROFS version '${value}' (use 0, 1 or 2)`);
  }
  return version;
}

/**
 * The algorithm of a command that needs no repository, as cfsctl 0.9.4 picks it: the flag,
 * else the algorithm of the repository the globals select (when it can be opened), else
 * sha512.
 */
function algorithmFor(
  globals: GlobalOptions,
  explicit: VerityAlgorithm | undefined,
  noRepo: boolean,
): VerityAlgorithm {
  const flag = explicit ?? globals.hash;
  if (flag) return flag;
  if (!noRepo && !globals.noRepo) {
    try {
      const repo = Repository.open(repoPath(globals), { upgrade: false });
      repo.close();
      return repo.algorithm;
    } catch { /* no repository: fall back */ }
  }
  return "sha512";
}

function oneTreeArg(positionals: string[], max = 1): string[] {
  if (positionals.length === 0) throw new UsageError("missing PATH");
  if (positionals.length > max) throw new UsageError("too many arguments");
  return positionals;
}

interface TreeArgs {
  values: {
    bootable?: boolean;
    "no-propagate-usr-to-root"?: boolean;
    "stat-root"?: boolean;
    xattrs?: string;
    hash?: string;
    algorithm?: string;
    "erofs-version"?: string;
    "no-repo"?: boolean;
  };
}

function treeOptions({ values }: TreeArgs): TreeFromPathOptions {
  let xattrs: XattrFiltering | undefined;
  if (values.xattrs !== undefined) {
    try {
      xattrs = parseXattrFiltering(values.xattrs);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  return {
    bootable: values.bootable,
    propagateUsrToRoot: !(values["no-propagate-usr-to-root"] || values["stat-root"]),
    xattrs,
  };
}

/** `cfs compute-id` */
export const computeIdCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("compute-id"));
  const [path] = oneTreeArg(positionals);
  const algorithm = algorithmFor(
    globals,
    parseAlgorithm(values),
    values["no-repo"] ?? false,
  );
  const version = erofsVersionOption(values["erofs-version"], globals) ??
    DEFAULT_EROFS_VERSION;
  const fs = treeFromPath(path, {
    ...treeOptions({ values }),
    algorithm,
  });
  const id = toHex(fsverityDigest(erofsImage(fs, version), algorithm));
  println(globals.json ? JSON.stringify({ id, algorithm, erofsVersion: version }) : id);
  return Promise.resolve(0);
};

/** `cfs compute-karg` */
export const computeKargCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("compute-karg"));
  const [path] = oneTreeArg(positionals);
  const algorithm = algorithmFor(
    globals,
    parseAlgorithm(values),
    values["no-repo"] ?? false,
  );
  const version = erofsVersionOption(values["erofs-version"], globals) ??
    DEFAULT_EROFS_VERSION;
  const fs = treeFromPath(path, {
    algorithm,
    bootable: true,
    propagateUsrToRoot: !values["no-propagate-usr-to-root"],
  });
  const id = fsverityDigest(erofsImage(fs, version), algorithm);
  const karg = composefsKarg(id, { algorithm, version, insecure: values.insecure ?? false });
  println(globals.json ? JSON.stringify({ karg, id: toHex(id), algorithm }) : karg);
  return Promise.resolve(0);
};

/** `cfs create-dumpfile` */
export const createDumpfileCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("create-dumpfile"));
  const [path] = oneTreeArg(positionals);
  const algorithm = algorithmFor(
    globals,
    parseAlgorithm(values),
    values["no-repo"] ?? false,
  );
  erofsVersionOption(values["erofs-version"], globals);
  const fs = treeFromPath(path, {
    ...treeOptions({ values }),
    algorithm,
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

/** `cfs create-image` */
export const createImageCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("create-image"));
  const explicit = parseAlgorithm(values) ?? globals.hash;
  const version = erofsVersionOption(values["erofs-version"], globals);
  const [path, name] = oneTreeArg(positionals, 2);
  const options = treeOptions({ values });
  const repo = openRepo(globals);
  try {
    if (explicit !== undefined && explicit !== repo.algorithm) {
      throw new UsageError(
        `the repository ${repoPath(globals)} uses ${repo.algorithm}, not ${explicit}`,
      );
    }
    const fs = treeFromPath(path, { ...options, repo });
    // As cfsctl: every format the repository writes (default first, which alone gets the
    // name), or only the one --erofs-version asks for.
    const formats = repo.erofsFormats;
    const versions = version !== undefined ? [version] : [formats.default, ...formats.extra];
    const images = versions.map((v) => erofsImage(fs, v));
    const id = repo.writeImage(images[0], name).hex;
    for (const image of images.slice(1)) repo.writeImage(image);
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

/** `cfs image-objects` */
export const imageObjectsCommand: CommandHandler = (args, globals) => {
  const { positionals } = parseCommand(args, commandSpec("image-objects"));
  const [name] = oneTreeArg(positionals);
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

/** `cfs dump-files` */
export const dumpFilesCommand: CommandHandler = (args, globals) => {
  const { positionals } = parseCommand(args, commandSpec("dump-files"));
  const [name, ...paths] = oneTreeArg(positionals, Infinity);
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

/** Whether `name` is an OCI tag in `repo` (never throws). */
function isTag(repo: Repository, name: string): boolean {
  try {
    return resolveTag(repo, name) !== undefined;
  } catch {
    return false;
  }
}

/** `cfs mount` */
export const mountCommand: CommandHandler = async (args, globals) => {
  const { positionals } = parseCommand(args, commandSpec("mount"));
  if (positionals.length !== 2) {
    throw new UsageError("NAME and MOUNTPOINT are required");
  }
  const repo = openRepo(globals);
  try {
    let id;
    try {
      id = repo.resolveImage(positionals[0]);
    } catch (e) {
      // A pulled OCI image's tag is not an image ref: point to the command that takes it.
      if (errorCode(e) !== "image-not-found" || !isTag(repo, positionals[0])) throw e;
      throw new RepositoryError(
        `'${positionals[0]}' is a pulled OCI image, not an image ref: ` +
          `use 'cfs oci mount ${positionals[0]} ${positionals[1]}'`,
        { code: "image-not-found" },
      );
    }
    await mountImage(repo, id.hex, positionals[1]);
  } finally {
    repo.close();
  }
  return 0;
};
