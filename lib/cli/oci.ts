/**
 * OCI and stream commands: `oci import-layer SHA256 [NAME]` (tar on stdin, as cfsctl),
 * `oci ls-layer NAME`, `oci pull oci:DIR[:TAG] [NAME]`, `oci compute-id CONFIG_NAME`,
 * `oci dump CONFIG_NAME`, and the top-level `cat NAME`.
 *
 * @module
 */
import {
  type CommandHandler,
  parseCommandArgs,
  println,
  UsageError,
  writeStdout,
} from "./command.ts";
import { openRepo, repoPath } from "./repo_path.ts";
import { Repository } from "../repository.ts";
import { importLayer, parseSha256 } from "../oci/import.ts";
import { parseSplitStream } from "../splitstream.ts";
import { readTar } from "../oci/tar.ts";
import { toHex } from "../fsverity/digest.ts";
import { pullOciLayout } from "../oci/pull.ts";
import { createFilesystem, imageId } from "../oci/image.ts";
import { dumpfileLines } from "../dumpfile.ts";

const IMPORT_USAGE = `usage: cfs oci import-layer SHA256 [NAME]

Reads an uncompressed layer tar from stdin and stores it as a splitstream named by SHA256
(checked: a mismatch imports nothing), with the ref streams/refs/NAME when given. A layer
already present is not read again. Prints the stream object's id (ALG:HEX).`;

const LS_USAGE = `usage: cfs oci ls-layer NAME

Lists the entries of a layer stream (NAME: refs/NAME or the layer's sha256).`;

const PULL_USAGE = `usage: cfs oci pull oci:DIR[:TAG] [NAME]

Stores the image's layers and config in the repository as cfsctl 0.3.0 \`oci pull\` does
(config stream named by its sha256, streams/refs/NAME when given). Prints
\`sha256 <config sha256>\` and \`verity <config stream object id>\`.`;

const COMPUTE_ID_USAGE = `usage: cfs oci compute-id CONFIG_NAME

Prints the image id of a pulled image (CONFIG_NAME: refs/NAME or the config's sha256).`;

const DUMP_USAGE = `usage: cfs oci dump CONFIG_NAME

Prints the composefs dumpfile of a pulled image (CONFIG_NAME: refs/NAME or the config's sha256).`;

const OCI_USAGE = `usage: cfs oci COMMAND [ARGS...]

commands:
  import-layer SHA256 [NAME]   import a layer tar from stdin
  ls-layer NAME                list a layer stream's entries
  pull oci:DIR[:TAG] [NAME]    pull an image from an OCI image layout
  compute-id CONFIG_NAME       image id of a pulled image
  dump CONFIG_NAME             dumpfile of a pulled image`;

const CAT_USAGE = `usage: cfs cat NAME

Writes the content of a stream (NAME: refs/NAME or the sha256 of its content) to stdout.`;

function help(usage: string): number {
  println(usage);
  return 0;
}

/** `cfs oci SUBCOMMAND` */
export const ociCommand: CommandHandler = async (args, globals) => {
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("no oci command given", OCI_USAGE);
  if (sub === "-h" || sub === "--help") return help(OCI_USAGE);
  if (sub === "import-layer") return await importLayerCommand(rest, globals);
  if (sub === "ls-layer") return await lsLayerCommand(rest, globals);
  if (sub === "pull") return await pullCommand(rest, globals);
  if (sub === "compute-id") return await computeIdCommand(rest, globals);
  if (sub === "dump") return await dumpCommand(rest, globals);
  throw new UsageError(`unknown oci command '${sub}'`, OCI_USAGE);
};

const importLayerCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, IMPORT_USAGE);
  if (values.help) return help(IMPORT_USAGE);
  if (positionals.length < 1) throw new UsageError("SHA256 is required", IMPORT_USAGE);
  if (positionals.length > 2) throw new UsageError("too many arguments", IMPORT_USAGE);
  const sha = parseSha256(positionals[0]);
  const repo = openRepo(globals);
  try {
    const r = await importLayer(repo, Deno.stdin.readable, {
      contentSha256: sha,
      name: positionals[1],
    });
    const alg = repo.algorithm;
    if (globals.json) {
      println(JSON.stringify({
        streamId: `${alg}:${toHex(r.streamId)}`,
        contentSha256: toHex(r.contentSha256),
        objects: r.objects,
        existing: r.existing,
      }));
    } else {
      println(`${alg}:${toHex(r.streamId)}`);
    }
  } finally {
    repo.close();
  }
  return 0;
};

function openReadOnly(globals: Parameters<CommandHandler>[1]): Repository {
  return Repository.open(repoPath(globals), { upgrade: false });
}

/** The stream's content, streamed from its objects (each read and verified whole). */
function catStream(repo: Repository, name: string): AsyncGenerator<Uint8Array> {
  const { bytes, sha256 } = repo.readStream(name);
  const stream = parseSplitStream(bytes, {
    name: `stream ${sha256}`,
    objectIdLength: repo.algorithm === "sha512" ? 64 : 32,
  });
  return stream.cat((id) => repo.readObject(id));
}

/** `cfs cat NAME` */
export const catCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, CAT_USAGE);
  if (values.help) return help(CAT_USAGE);
  if (positionals.length !== 1) throw new UsageError("exactly one NAME is required", CAT_USAGE);
  const repo = openReadOnly(globals);
  try {
    const writer = Deno.stdout.writable.getWriter();
    try {
      for await (const chunk of catStream(repo, positionals[0])) await writer.write(chunk);
    } finally {
      writer.releaseLock();
    }
  } finally {
    repo.close();
  }
  return 0;
};

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width, "0");
}

const lsLayerCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, LS_USAGE);
  if (values.help) return help(LS_USAGE);
  if (positionals.length !== 1) throw new UsageError("exactly one NAME is required", LS_USAGE);
  const repo = openReadOnly(globals);
  try {
    for await (const entry of readTar(catStream(repo, positionals[0]))) {
      const m = entry.meta;
      const link = m.linkTarget ? ` -> ${m.linkTarget}` : "";
      println(
        `${m.typeflag === "\0" ? "0" : m.typeflag} ${
          octal(m.mode, 4)
        } ${m.uid}/${m.gid} ${m.size} ${m.path}${link}`,
      );
    }
  } finally {
    repo.close();
  }
  return 0;
};

const pullCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, PULL_USAGE);
  if (values.help) return help(PULL_USAGE);
  if (positionals.length < 1) throw new UsageError("IMAGE is required", PULL_USAGE);
  if (positionals.length > 2) throw new UsageError("too many arguments", PULL_USAGE);
  const repo = openRepo(globals);
  try {
    const r = await pullOciLayout(repo, positionals[0], positionals[1]);
    if (globals.json) {
      println(JSON.stringify({
        sha256: toHex(r.configSha256),
        verity: toHex(r.configStreamId),
        layersImported: r.layersImported,
        existing: r.existing,
      }));
    } else {
      println(`sha256 ${toHex(r.configSha256)}`);
      println(`verity ${toHex(r.configStreamId)}`);
    }
  } finally {
    repo.close();
  }
  return 0;
};

const computeIdCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, COMPUTE_ID_USAGE);
  if (values.help) return help(COMPUTE_ID_USAGE);
  if (positionals.length !== 1) {
    throw new UsageError("exactly one CONFIG_NAME is required", COMPUTE_ID_USAGE);
  }
  const repo = openReadOnly(globals);
  try {
    const fs = await createFilesystem(repo, positionals[0]);
    println(toHex(imageId(repo, fs)));
  } finally {
    repo.close();
  }
  return 0;
};

const dumpCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, DUMP_USAGE);
  if (values.help) return help(DUMP_USAGE);
  if (positionals.length !== 1) {
    throw new UsageError("exactly one CONFIG_NAME is required", DUMP_USAGE);
  }
  const repo = openReadOnly(globals);
  try {
    const fs = await createFilesystem(repo, positionals[0]);
    const enc = new TextEncoder();
    let buf = "";
    for (const line of dumpfileLines(fs)) {
      buf += line + "\n";
      if (buf.length > 1 << 16) {
        writeStdout(enc.encode(buf));
        buf = "";
      }
    }
    writeStdout(enc.encode(buf));
  } finally {
    repo.close();
  }
  return 0;
};
