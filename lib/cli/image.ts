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
  parseCommandArgs,
  println,
  UsageError,
  writeStdout,
} from "./command.ts";
import { erofsImage, treeFromPath, type TreeFromPathOptions } from "../build.ts";
import { collectObjects, readErofs } from "../erofs/reader.ts";
import { DEFAULT_EROFS_VERSION, type ErofsVersion, parseErofsVersion } from "../erofs/format.ts";
import { dumpfileLine, dumpfileLines } from "../dumpfile.ts";
import { fsverityDigest, toHex, type VerityAlgorithm } from "../fsverity/digest.ts";
import { Repository } from "../repository.ts";
import { mountImage } from "../mount.ts";
import { openRepo, repoPath } from "./repo_path.ts";
import { countLinks, lookup, utf8ToName } from "../tree.ts";
import { parseXattrFiltering, type XattrFiltering } from "../tree_transform.ts";
import { composefsKarg } from "../boot/karg.ts";

const TREE_OPTIONS = {
  bootable: { type: "boolean" },
  "no-propagate-usr-to-root": { type: "boolean" },
  "stat-root": { type: "boolean" },
  xattrs: { type: "string" },
  hash: { type: "string" },
  algorithm: { type: "string" },
  "erofs-version": { type: "string" },
  "no-repo": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

const KARG_OPTIONS = {
  "no-propagate-usr-to-root": { type: "boolean" },
  hash: { type: "string" },
  algorithm: { type: "string" },
  "erofs-version": { type: "string" },
  "no-repo": { type: "boolean" },
  insecure: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

const TREE_FLAGS =
  `[--bootable] [--no-propagate-usr-to-root] [--xattrs allowlist-only|keep-user-xattrs]
       [--hash sha256|sha512] [--erofs-version 0|1|2]`;

const TREE_HELP =
  `--bootable                  the boot transform: /boot and /sysroot emptied, SELinux labels
                            from the tree's own policy (or none without a policy)
--no-propagate-usr-to-root  keep the root's own metadata, /run and every xattr (by default
                            the root takes /usr's metadata, /run is emptied, xattrs filtered)
--xattrs MODE               what the default transform keeps: allowlist-only (only
                            security.capability, the default) or keep-user-xattrs (also user.*)
--hash ALG                  sha256 or sha512 (alias --algorithm); default: the repository's
                            (--repo, $CFS_REPO, the default path) when there is one, else sha512
--erofs-version V           EROFS format 0, 1 (default) or 2
--no-repo                   do not look at a repository for the algorithm`;

function parseAlgorithm(
  values: { hash?: string; algorithm?: string },
  usage: string,
): VerityAlgorithm | undefined {
  const { hash, algorithm } = values;
  if (hash !== undefined && algorithm !== undefined && hash !== algorithm) {
    throw new UsageError(`--hash ${hash} and --algorithm ${algorithm} disagree`, usage);
  }
  const value = hash ?? algorithm;
  if (value === undefined) return undefined;
  if (value !== "sha256" && value !== "sha512") {
    throw new UsageError(`unknown algorithm '${value}' (use sha256 or sha512)`, usage);
  }
  return value;
}

/** `--erofs-version` of the command, else the global one, else undefined. */
export function erofsVersionOption(
  value: string | undefined,
  globals: GlobalOptions,
  usage: string,
): ErofsVersion | undefined {
  if (value === undefined) return globals.erofsVersion;
  const version = parseErofsVersion(value);
  if (version === undefined) {
    throw new UsageError(`unknown EROFS version '${value}' (use 0, 1 or 2)`, usage);
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

function oneTreeArg(positionals: string[], usage: string, max = 1): string[] {
  if (positionals.length === 0) throw new UsageError("missing PATH", usage);
  if (positionals.length > max) throw new UsageError("too many arguments", usage);
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
  usage: string;
}

function treeOptions({ values, usage }: TreeArgs): TreeFromPathOptions {
  let xattrs: XattrFiltering | undefined;
  if (values.xattrs !== undefined) {
    try {
      xattrs = parseXattrFiltering(values.xattrs);
    } catch (e) {
      throw new UsageError((e as Error).message, usage);
    }
  }
  return {
    bootable: values.bootable,
    propagateUsrToRoot: !(values["no-propagate-usr-to-root"] || values["stat-root"]),
    xattrs,
  };
}

const COMPUTE_ID_USAGE = `usage: cfs compute-id ${TREE_FLAGS} PATH

Prints the image ID (fs-verity digest of the composefs EROFS image) of the tree at PATH,
without writing anything.

${TREE_HELP}`;

/** `cfs compute-id` */
export const computeIdCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, TREE_OPTIONS, COMPUTE_ID_USAGE);
  if (values.help) return Promise.resolve(help(COMPUTE_ID_USAGE));
  const [path] = oneTreeArg(positionals, COMPUTE_ID_USAGE);
  const algorithm = algorithmFor(
    globals,
    parseAlgorithm(values, COMPUTE_ID_USAGE),
    values["no-repo"] ?? false,
  );
  const version = erofsVersionOption(values["erofs-version"], globals, COMPUTE_ID_USAGE) ??
    DEFAULT_EROFS_VERSION;
  const fs = treeFromPath(path, {
    ...treeOptions({ values, usage: COMPUTE_ID_USAGE }),
    algorithm,
  });
  const id = toHex(fsverityDigest(erofsImage(fs, version), algorithm));
  println(globals.json ? JSON.stringify({ id, algorithm, erofsVersion: version }) : id);
  return Promise.resolve(0);
};

const COMPUTE_KARG_USAGE =
  `usage: cfs compute-karg [--no-propagate-usr-to-root] [--hash sha256|sha512]
       [--erofs-version 0|1|2] [--insecure] PATH

Prints the kernel argument that boots the bootable image of the tree at PATH (the boot
transform is always applied): composefs.digest=v1-sha512-12:HEX for EROFS versions 0 and 1,
composefs=HEX for version 2. --insecure adds the '?' that makes fs-verity optional.`;

/** `cfs compute-karg` */
export const computeKargCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, KARG_OPTIONS, COMPUTE_KARG_USAGE);
  if (values.help) return Promise.resolve(help(COMPUTE_KARG_USAGE));
  const [path] = oneTreeArg(positionals, COMPUTE_KARG_USAGE);
  const algorithm = algorithmFor(
    globals,
    parseAlgorithm(values, COMPUTE_KARG_USAGE),
    values["no-repo"] ?? false,
  );
  const version = erofsVersionOption(values["erofs-version"], globals, COMPUTE_KARG_USAGE) ??
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

const CREATE_DUMPFILE_USAGE = `usage: cfs create-dumpfile ${TREE_FLAGS} PATH

Prints the composefs dumpfile of the tree at PATH.

${TREE_HELP}`;

/** `cfs create-dumpfile` */
export const createDumpfileCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, TREE_OPTIONS, CREATE_DUMPFILE_USAGE);
  if (values.help) return Promise.resolve(help(CREATE_DUMPFILE_USAGE));
  const [path] = oneTreeArg(positionals, CREATE_DUMPFILE_USAGE);
  const algorithm = algorithmFor(
    globals,
    parseAlgorithm(values, CREATE_DUMPFILE_USAGE),
    values["no-repo"] ?? false,
  );
  erofsVersionOption(values["erofs-version"], globals, CREATE_DUMPFILE_USAGE);
  const fs = treeFromPath(path, {
    ...treeOptions({ values, usage: CREATE_DUMPFILE_USAGE }),
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

const CREATE_IMAGE_USAGE = `usage: cfs create-image ${TREE_FLAGS} PATH [NAME]

Stores the tree at PATH in the repository (large files as objects), writes its EROFS image
in every format the repository keeps (meta.json erofs_formats; only --erofs-version's when
given) and prints ALGORITHM:ID of the first; NAME becomes a ref (images/refs/NAME), a GC
root. The repository decides the algorithm: --hash must agree with it.

${TREE_HELP}`;

/** `cfs create-image` */
export const createImageCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, TREE_OPTIONS, CREATE_IMAGE_USAGE);
  if (values.help) return Promise.resolve(help(CREATE_IMAGE_USAGE));
  const explicit = parseAlgorithm(values, CREATE_IMAGE_USAGE) ?? globals.hash;
  const version = erofsVersionOption(values["erofs-version"], globals, CREATE_IMAGE_USAGE);
  const [path, name] = oneTreeArg(positionals, CREATE_IMAGE_USAGE, 2);
  const options = treeOptions({ values, usage: CREATE_IMAGE_USAGE });
  const repo = openRepo(globals);
  try {
    if (explicit !== undefined && explicit !== repo.algorithm) {
      throw new UsageError(
        `the repository ${repoPath(globals)} uses ${repo.algorithm}, not ${explicit}`,
        CREATE_IMAGE_USAGE,
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
    await mountImage(repo, repo.resolveImage(positionals[0]).hex, positionals[1]);
  } finally {
    repo.close();
  }
  return 0;
};
