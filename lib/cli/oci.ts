/**
 * OCI and stream commands: `oci import-layer SHA256 [NAME]` (tar on stdin, as cfsctl),
 * `oci ls-layer NAME`, `oci pull IMAGE [TAG]`, `oci compute-id IMAGE`, `oci dump IMAGE`,
 * and the top-level `cat NAME`; the image bookkeeping commands are in oci_images.ts.
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
import { openReadOnly, openRepo } from "./repo_path.ts";
import { Repository } from "../repository.ts";
import { importLayer, parseSha256 } from "../oci/import.ts";
import { parseSplitStream } from "../splitstream.ts";
import { readTar } from "../oci/tar.ts";
import { toHex } from "../fsverity/digest.ts";
import { pullImage } from "../oci/pull.ts";
import { type CfsConfig, loadConfig } from "../config.ts";
import { createLogger } from "../log.ts";
import { layerReporter } from "../pipeline/progress.ts";
import type { LocalFetchMode } from "../oci/source.ts";
import { imageFilesystem, imageId } from "../oci/image.ts";
import { findImage } from "../oci/store.ts";
import { parsePlatform } from "../oci/layout.ts";
import { OCI_IMAGE_COMMANDS } from "./oci_images.ts";
import { dumpfileLines } from "../dumpfile.ts";

const IMPORT_USAGE = `usage: cfs oci import-layer SHA256 [NAME]

Reads an uncompressed layer tar from stdin and stores it as a splitstream named by SHA256
(checked: a mismatch imports nothing), with the ref streams/refs/NAME when given. A layer
already present is not read again. Prints the stream object's id (ALG:HEX).`;

const LS_USAGE = `usage: cfs oci ls-layer NAME

Lists the entries of a layer stream (NAME: refs/NAME or the layer's sha256).`;

const PULL_USAGE = `usage: cfs oci pull [OPTIONS] IMAGE [TAG]

IMAGE: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker://HOST[:PORT]/NAME[:TAG|@DIGEST],
containers-storage:NAME or any other skopeo transport.

Stores the layers and config as cfsctl 0.3.0 \`oci pull\` does (streams named by sha256),
plus the manifest, and points TAG (streams/refs/oci/TAG) at it. Prints
\`sha256 <config sha256>\`, \`verity <config stream id>\` (as cfsctl) and
\`manifest <manifest digest>\`.

options:
  --tls-verify=false    plain HTTP to the registry (a local registry)
  --platform OS/ARCH[/VARIANT]
                        the image to take from an image index (default: this host's)
  --authfile FILE       registry credentials (default: the containers auth.json files)
  --local-fetch=disabled|auto|zerocopy
                        containers-storage: sources: disabled reads through skopeo; auto
                        (default) reads the store directly and reflinks, else hard-links,
                        else copies each file into objects/; zerocopy fails instead of
                        copying (e.g. store and repository on different file systems)
  --storage-root DIR    containers-storage: the store (default: storage.conf's graphroot)

Prints the objects reflinked/hardlinked/copied on stderr (in --json: localFetch).`;

const IMAGE_NAME_HELP =
  `IMAGE: a tag, the manifest's or config's digest (sha256:HEX or HEX), or refs/NAME.`;

const COMPUTE_ID_USAGE = `usage: cfs oci compute-id [--bootable] IMAGE

Prints the image id of a pulled image.
${IMAGE_NAME_HELP}`;

const DUMP_USAGE = `usage: cfs oci dump [--bootable] IMAGE

Prints the composefs dumpfile of a pulled image.
${IMAGE_NAME_HELP}`;

const OCI_USAGE = `usage: cfs oci COMMAND [ARGS...]

commands:
  import-layer SHA256 [NAME]   import a layer tar from stdin
  ls-layer NAME                list a layer stream's entries
  pull IMAGE [TAG]             pull an image (layout, archive, registry, skopeo)
  images                       list tagged images
  inspect IMAGE                manifest, config, layers and images of a pulled image
  tag IMAGE TAG | untag TAG    add or remove a tag (tags are gc roots)
  compute-id IMAGE             image id of a pulled image
  dump IMAGE                   dumpfile of a pulled image
  create-image IMAGE           commit the image's EROFS (composefs.image)
  mount IMAGE MOUNTPOINT       mount the image (root; commits it first when needed)
  fsck [IMAGE]                 check tags, manifests, configs and layer streams`;

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
  const more = OCI_IMAGE_COMMANDS[sub];
  if (more) return await more(rest, globals);
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

/** Options shared by `oci pull` and `pull`: where and how to fetch. */
export const FETCH_OPTIONS = {
  "tls-verify": { type: "string" },
  platform: { type: "string" },
  authfile: { type: "string" },
  "local-fetch": { type: "string" },
  "storage-root": { type: "string" },
} as const;

/** The source options the fetch flags select. */
export function sourceOptions(
  values: {
    "tls-verify"?: string;
    platform?: string;
    authfile?: string;
    "local-fetch"?: string;
    "storage-root"?: string;
  },
  usage: string,
  config: CfsConfig = {},
  reference?: string,
): {
  tlsVerify: boolean;
  platform?: ReturnType<typeof parsePlatform>;
  authFile?: string;
  localFetch?: LocalFetchMode;
  storageRoot?: string;
} {
  const localFetch = values["local-fetch"];
  if (localFetch !== undefined && !["disabled", "auto", "zerocopy"].includes(localFetch)) {
    throw new UsageError(
      `--local-fetch takes disabled, auto or zerocopy, not '${localFetch}'`,
      usage,
    );
  }
  const tls = values["tls-verify"];
  if (tls !== undefined && tls !== "true" && tls !== "false") {
    throw new UsageError(`--tls-verify takes true or false, not '${tls}'`, usage);
  }
  let platform;
  if (values.platform !== undefined) {
    try {
      platform = parsePlatform(values.platform);
    } catch (e) {
      throw new UsageError((e as Error).message, usage);
    }
  }
  // The configuration's settings for this registry apply where no option was given.
  const host = reference === undefined ? undefined : /^docker:\/\/([^/]+)\//.exec(reference)?.[1];
  const registry = host === undefined ? undefined : config.registries?.[host];
  return {
    tlsVerify: tls === undefined ? registry?.tlsVerify ?? true : tls !== "false",
    platform,
    authFile: values.authfile ?? registry?.authFile,
    localFetch: localFetch as LocalFetchMode | undefined,
    storageRoot: values["storage-root"],
  };
}

function printErr(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
}

const pullCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    ...FETCH_OPTIONS,
  }, PULL_USAGE);
  if (values.help) return help(PULL_USAGE);
  if (positionals.length < 1) throw new UsageError("IMAGE is required", PULL_USAGE);
  if (positionals.length > 2) throw new UsageError("too many arguments", PULL_USAGE);
  const opts = sourceOptions(values, PULL_USAGE, loadConfig(globals.config), positionals[0]);
  const repo = openRepo(globals);
  // Events only for the terminal here (--json prints one result object).
  const log = createLogger({ json: false, verbose: globals.verbose, journald: false });
  try {
    const r = await pullImage(repo, positionals[0], {
      ...opts,
      tag: positionals[1],
      ...(globals.json ? {} : layerReporter(log)),
      onFallback: (m) => printErr(`cfs: ${m}`),
    }).finally(() => log.close());
    if (r.localFetch && !globals.json) {
      const st = r.localFetch.stats;
      printErr(
        `objects: ${st.reflinked.objects} reflinked, ${st.hardlinked.objects} hardlinked, ` +
          `${st.copied.objects} copied (${st.copied.bytes} bytes), ${st.present.objects} present`,
      );
    }
    if (globals.json) {
      println(JSON.stringify({
        manifest: r.manifestDigest,
        manifestVerity: toHex(r.manifestVerity),
        config: r.configDigest,
        sha256: toHex(r.configSha256),
        verity: toHex(r.configStreamId),
        layers: r.layers.map((l) => ({ ...l, verity: toHex(l.verity) })),
        layersImported: r.layersImported,
        existing: r.existing,
        tag: positionals[1] ?? null,
        localFetch: r.localFetch ?? null,
      }));
    } else {
      println(`sha256 ${toHex(r.configSha256)}`);
      println(`verity ${toHex(r.configStreamId)}`);
      println(`manifest ${r.manifestDigest}`);
    }
  } finally {
    repo.close();
  }
  return 0;
};

const computeIdCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    bootable: { type: "boolean" },
  }, COMPUTE_ID_USAGE);
  if (values.help) return help(COMPUTE_ID_USAGE);
  if (positionals.length !== 1) {
    throw new UsageError("exactly one IMAGE is required", COMPUTE_ID_USAGE);
  }
  const repo = openReadOnly(globals);
  try {
    const img = await findImage(repo, positionals[0]);
    const fs = await imageFilesystem(repo, img.configSha256, values.bootable);
    println(toHex(imageId(repo, fs)));
  } finally {
    repo.close();
  }
  return 0;
};

const dumpCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    bootable: { type: "boolean" },
  }, DUMP_USAGE);
  if (values.help) return help(DUMP_USAGE);
  if (positionals.length !== 1) {
    throw new UsageError("exactly one IMAGE is required", DUMP_USAGE);
  }
  const repo = openReadOnly(globals);
  try {
    const img = await findImage(repo, positionals[0]);
    const fs = await imageFilesystem(repo, img.configSha256, values.bootable);
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
