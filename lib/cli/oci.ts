/**
 * OCI and stream commands: `oci import-layer SHA256 [NAME]` (tar on stdin, as cfsctl),
 * `oci ls-layer NAME`, `oci pull IMAGE [TAG]`, `oci compute-id IMAGE`, `oci dump IMAGE`,
 * and the top-level `cat NAME`; the image bookkeeping commands are in oci_images.ts.
 *
 * @module
 */
import { resolve } from "node:path";
import {
  type CommandHandler,
  parseCommandArgs,
  println,
  UsageError,
  writeStdout,
} from "./command.ts";
import { openReadOnly, openRepo } from "./repo_path.ts";
import type { Repository } from "../repository/mod.ts";
import { checkSha256Digest, importLayer } from "../oci/import.ts";
import { SplitStreamReader } from "../splitstream/reader.ts";
import { CONTENT_TYPE, detectSplitStreamFormat } from "../splitstream/format.ts";
import { LegacySplitStreamReader } from "../splitstream/legacy.ts";
import { readTar } from "../oci/tar.ts";
import { pullImage } from "../oci/pull.ts";
import { convertLegacyRepository } from "../oci/upgrade.ts";
import { type CfsConfig, type FetchConfig, loadConfig, type RegistryConfig } from "../config.ts";
import type { TransferOptions } from "../oci/transfer.ts";
import { createLogger } from "../log.ts";
import { layerReporter } from "../pipeline/progress.ts";
import type { LocalFetchMode } from "../oci/source.ts";
import type { SignaturePolicyOptions } from "../signature/check.ts";
import { bootTransform, ociFilesystem } from "../oci/commit.ts";
import { layerContentId, openImageOrConfig } from "../oci/store.ts";
import { parsePlatform } from "../oci/layout.ts";
import { OCI_IMAGE_COMMANDS } from "./oci_images.ts";
import { dumpfileLines } from "../dumpfile.ts";
import { mkfsErofs } from "../erofs/writer.ts";
import { fsverityDigest, toHex } from "../fsverity/digest.ts";
import { parseXattrFiltering, type XattrFiltering } from "../tree_transform.ts";
import type { FileSystem } from "../tree.ts";

const IMPORT_USAGE = `usage: cfs oci import-layer DIGEST [NAME]

Reads an uncompressed layer tar from stdin and stores it as the splitstream
oci-layer-DIGEST (DIGEST: sha256:HEX, the tar's sha256, checked: a mismatch imports nothing),
with the ref streams/refs/NAME when given. A layer already present is not read again. Prints
the stream object's id (ALG:HEX), as cfsctl.`;

const LS_USAGE = `usage: cfs oci ls-layer DIFF_ID

Lists the entries of a layer stream, one line each (type, mode, owner, size, path).`;

const LAYER_USAGE = `usage: cfs oci layer DIFF_ID [--json|--dumpfile]

The stored layer DIFF_ID (sha256:HEX): its tar on stdout (not to a terminal), or with --json
its size, entry count and splitstream figures (cfsctl's fields), or with --dumpfile one
dumpfile line per entry. Also \`cfs oci layer-inspect\`.`;

/**
 * The transfer flags' help, shared with `cfs pull` (whose option column is `width` wide). Times
 * are seconds (or with a unit: 500ms, 90s, 10m, 1h); the configuration file sets them too
 * (`fetch`, `registries`).
 */
export function fetchLimitsHelp(width: number): string {
  const rows: [string, string[]][] = [
    ["--timeout T", ["overall time limit of the registry transfers (default: none)"]],
    ["--idle-timeout T", [
      "fail a blob that brings less than 1 KiB/s (or nothing) for T",
      "(default 60s; retried like a cut connection)",
    ]],
    ["--retries N", [
      "retries of a failed registry request or cut blob, with backoff;",
      "a cut blob resumes where it stopped (default 3; 0: none)",
    ]],
    ["--signature-policy F", [
      "the containers signature policy to enforce (default: as skopeo,",
      "~/.config/containers/policy.json, else /etc/containers/policy.json);",
      "a rejected image exits 4",
    ]],
    ["--registries.d DIR", [
      "where signatures are (lookaside, sigstore attachments; default: as",
      "skopeo, ~/.config/containers/registries.d, else /etc/containers/registries.d)",
    ]],
  ];
  const lines = rows.flatMap(([flag, text]) =>
    text.map((t, i) => `  ${(i === 0 ? flag : "").padEnd(width - 2)}${t}`)
  );
  return [
    ...lines,
    `  ${"".padEnd(width - 2)}T: seconds, or a number with ms, s, m or h; also in the`,
    `  ${"".padEnd(width - 2)}configuration file ("fetch", "registries")`,
  ].join("\n");
}

const PULL_USAGE = `usage: cfs oci pull [OPTIONS] IMAGE [NAME]

IMAGE: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker://HOST[:PORT]/NAME[:TAG|@DIGEST],
containers-storage:NAME or any other skopeo transport.

Stores the layers, config and manifest as composefs-oci 0.9.4 does, makes the EROFS images
(every format of the repository; the bootable ones too with --bootable), links them from the
config and tags the image NAME (default: IMAGE itself, as cfsctl). Prints manifest, config,
verity (of the manifest stream), tagged and objects lines, as cfsctl.

options:
  --bootable            also make the bootable images (composefs.image.boot)
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
${fetchLimitsHelp(24)}`;

const IMAGE_NAME_HELP =
  `IMAGE: a tag, or @sha256:HEX (a config digest, as cfsctl reads it here, or a manifest digest);
also sha256:HEX or HEX, and refs/NAME (a stream ref to a manifest or config, as cfsctl 0.3.0
named pulled images).`;

const COMPUTE_ID_USAGE = `usage: cfs oci compute-id [--bootable] [--xattrs MODE] IMAGE

Prints the image id of a pulled image in the repository's EROFS format (--erofs-version
before the command overrides it). MODE: allowlist-only (default) or keep-user-xattrs.
${IMAGE_NAME_HELP}`;

const DUMP_USAGE = `usage: cfs oci dump [--bootable] [--xattrs MODE] IMAGE

Prints the composefs dumpfile of a pulled image. ${IMAGE_NAME_HELP}`;

const OCI_USAGE = `usage: cfs oci COMMAND [ARGS...]

commands:
  pull IMAGE [NAME]            pull an image (layout, archive, registry, skopeo)
  images                       list tagged images
  inspect IMAGE                manifest, config and linked images of a pulled image
  tag DIGEST NAME | untag NAME add or remove a tag (tags are gc roots)
  compute-id IMAGE             image id of a pulled image
  dump IMAGE                   dumpfile of a pulled image
  mount IMAGE MOUNTPOINT       mount the image's linked EROFS (root)
  fsck [IMAGE]                 check the repository and the tagged images
  layer DIFF_ID                a stored layer: tar, --json figures or --dumpfile
  import-layer DIGEST [NAME]   import a layer tar from stdin
  ls-layer DIFF_ID             list a layer stream's entries
  create-image IMAGE           make and link the image's EROFS images`;

const CAT_USAGE = `usage: cfs cat NAME

Writes the content of a stream (NAME: refs/NAME or its name, e.g. oci-layer-sha256:HEX) to
stdout, as cfsctl cat.`;

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
  if (sub === "layer" || sub === "layer-inspect") return await layerCommand(rest, globals);
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
  if (positionals.length < 1) throw new UsageError("DIGEST is required", IMPORT_USAGE);
  if (positionals.length > 2) throw new UsageError("too many arguments", IMPORT_USAGE);
  const text = positionals[0];
  const diffId = checkSha256Digest(/^[0-9a-f]{64}$/.test(text) ? `sha256:${text}` : text);
  const repo = openRepo(globals);
  try {
    const r = await importLayer(repo, Deno.stdin.readable, { diffId, name: positionals[1] });
    if (globals.json) {
      println(JSON.stringify({
        streamId: r.streamId.prefixed,
        diffId,
        objects: r.objects,
        existing: r.existing,
      }));
    } else {
      println(r.streamId.prefixed);
    }
  } finally {
    repo.close();
  }
  return 0;
};

/**
 * A stream's content, streamed from its objects (each read and verified whole), whichever
 * splitstream format it is in.
 */
async function* catStream(repo: Repository, name: string): AsyncGenerator<Uint8Array> {
  const { contentId, bytes } = repo.readStream(name);
  const read = (id: Uint8Array) => repo.readObject(id);
  if (detectSplitStreamFormat(bytes.subarray(0, 64)) === "legacy-0.3") {
    const legacy = await LegacySplitStreamReader.open(bytes, {
      name: `stream ${contentId}`,
      algorithm: repo.algorithm,
    });
    yield* legacy.cat(read);
    return;
  }
  const reader = SplitStreamReader.open(bytes, {
    name: `stream ${contentId}`,
    algorithm: repo.algorithm,
  });
  yield* reader.cat(read);
}

async function writeAll(chunks: AsyncIterable<Uint8Array>): Promise<void> {
  const writer = Deno.stdout.writable.getWriter();
  try {
    for await (const chunk of chunks) await writer.write(chunk);
  } finally {
    writer.releaseLock();
  }
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
    await writeAll(catStream(repo, positionals[0]));
  } finally {
    repo.close();
  }
  return 0;
};

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width, "0");
}

/** The stream name of a layer given as DIFF_ID (sha256:HEX or HEX) or any stream name. */
function layerStreamName(text: string): string {
  if (/^(sha256:)?[0-9a-f]{64}$/.test(text)) {
    return layerContentId(text.startsWith("sha256:") ? text : `sha256:${text}`);
  }
  return text;
}

const lsLayerCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, LS_USAGE);
  if (values.help) return help(LS_USAGE);
  if (positionals.length !== 1) throw new UsageError("exactly one DIFF_ID is required", LS_USAGE);
  const repo = openReadOnly(globals);
  try {
    for await (const entry of readTar(catStream(repo, layerStreamName(positionals[0])))) {
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

const layerCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    json: { type: "boolean" },
    dumpfile: { type: "boolean" },
  }, LAYER_USAGE);
  if (values.help) return help(LAYER_USAGE);
  if (positionals.length !== 1) {
    throw new UsageError("exactly one DIFF_ID is required", LAYER_USAGE);
  }
  if (values.json && values.dumpfile) {
    throw new UsageError("--json and --dumpfile exclude each other", LAYER_USAGE);
  }
  const diffId = checkSha256Digest(positionals[0], "diff_id");
  const repo = openReadOnly(globals);
  try {
    const name = layerContentId(diffId);
    if (values.json || globals.json) {
      const { id, bytes } = repo.readStream(name);
      const reader = SplitStreamReader.open(bytes, {
        name,
        algorithm: repo.algorithm,
        contentType: CONTENT_TYPE.ociLayer,
      });
      let entries = 0;
      let externalSize = 0;
      const sizes = new Map<string, number>();
      for (const oid of reader.objectRefs) {
        sizes.set(toHex(oid), Deno.statSync(repo.objectPath(oid)).size);
      }
      for await (const c of reader.chunks()) {
        if (c.kind === "external") externalSize += sizes.get(toHex(c.id)) ?? 0;
      }
      for await (const _ of readTar(catStream(repo, name))) entries++;
      println(JSON.stringify(
        {
          diffId,
          verity: id.hex,
          size: reader.streamSize,
          entryCount: entries,
          splitstream: {
            externalObjects: reader.objectRefs.length,
            externalSize,
            inlineSize: reader.streamSize - externalSize,
          },
        },
        null,
        2,
      ));
    } else if (values.dumpfile) {
      for await (const entry of readTar(catStream(repo, name))) {
        const m = entry.meta;
        println(
          `/${m.path.replace(/^\.?\/+/, "")} ${m.size} ${octal(m.mode, 4)} ${m.uid} ${m.gid}`,
        );
      }
    } else {
      if (Deno.stdout.isTerminal()) {
        throw new UsageError(
          "refusing to write tar data to a terminal: redirect it, pipe it to tar, or use --json",
          LAYER_USAGE,
        );
      }
      await writeAll(catStream(repo, name));
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
  timeout: { type: "string" },
  "idle-timeout": { type: "string" },
  retries: { type: "string" },
  "signature-policy": { type: "string" },
  "registries.d": { type: "string" },
} as const;

/**
 * A duration flag in ms: seconds (`30`, `0.5`) or a number with a unit (`500ms`, `90s`, `10m`,
 * `1h`). `zero` allows 0 (meaning none).
 */
export function parseDurationFlag(
  text: string,
  flag: string,
  usage: string,
  zero = false,
): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m?.[2] ?? "s"] ?? 1000;
  const ms = m === null ? NaN : Number(m[1]) * unit;
  if (!Number.isFinite(ms) || (ms === 0 && !zero) || ms > 86_400_000) {
    throw new UsageError(
      `${flag} takes a time in seconds or with a unit (500ms, 90s, 10m), ` +
        `${zero ? "0 for none, " : "more than 0, "}at most a day; not '${text}'`,
      usage,
    );
  }
  return ms;
}

/**
 * The registry transfer limits: each from its flag, else the registry's entry in the
 * configuration, else the configuration's `fetch`, else transfer.ts's default (undefined here).
 */
function transferOptions(
  values: { timeout?: string; "idle-timeout"?: string; retries?: string },
  usage: string,
  config: CfsConfig,
  registry: RegistryConfig | undefined,
): TransferOptions {
  const pick = <K extends keyof FetchConfig>(key: K): FetchConfig[K] =>
    registry?.[key] ?? config.fetch?.[key];
  const seconds = (s: number | undefined) => s === undefined ? undefined : s * 1000;
  let retries = pick("retries");
  if (values.retries !== undefined) {
    if (!/^\d{1,3}$/.test(values.retries) || Number(values.retries) > 100) {
      throw new UsageError(
        `--retries takes a whole number from 0 to 100, not '${values.retries}'`,
        usage,
      );
    }
    retries = Number(values.retries);
  }
  return {
    timeoutMs: values.timeout !== undefined
      ? parseDurationFlag(values.timeout, "--timeout", usage, true)
      : seconds(pick("timeout")),
    idleTimeoutMs: values["idle-timeout"] !== undefined
      ? parseDurationFlag(values["idle-timeout"], "--idle-timeout", usage)
      : seconds(pick("idleTimeout")),
    minBytesPerSecond: pick("minSpeed"),
    retries,
    retryDelayMs: seconds(pick("retryDelay")),
  };
}

/** A path as messages (and programs run elsewhere) need it: absolute. */
function absolutePath(path: string | undefined): string | undefined {
  return path === undefined ? undefined : resolve(path);
}

/** The source options the fetch flags select. */
export function sourceOptions(
  values: {
    "tls-verify"?: string;
    platform?: string;
    authfile?: string;
    "local-fetch"?: string;
    "storage-root"?: string;
    timeout?: string;
    "idle-timeout"?: string;
    retries?: string;
    "signature-policy"?: string;
    "registries.d"?: string;
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
  transfer: TransferOptions;
  signaturePolicy: SignaturePolicyOptions;
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
    transfer: transferOptions(values, usage, config, registry),
    // Every pull from the CLI enforces the containers signature policy, as skopeo does.
    signaturePolicy: {
      policyPath: absolutePath(values["signature-policy"] ?? config.signaturePolicy),
      registriesDir: absolutePath(values["registries.d"] ?? config.registriesDir),
    },
  };
}

function printErr(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
}

/** `1.23 MiB`: bytes for people (indicatif's HumanBytes style, as cfsctl prints). */
function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]}`;
}

const pullCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    bootable: { type: "boolean" },
    ...FETCH_OPTIONS,
  }, PULL_USAGE);
  if (values.help) return help(PULL_USAGE);
  if (positionals.length < 1) throw new UsageError("IMAGE is required", PULL_USAGE);
  if (positionals.length > 2) throw new UsageError("too many arguments", PULL_USAGE);
  const opts = sourceOptions(values, PULL_USAGE, loadConfig(globals.config), positionals[0]);
  const tag = positionals[1] ?? positionals[0];
  const repo = openRepo(globals);
  // Events only for the terminal here (--json prints one result object).
  const log = createLogger({ json: false, verbose: globals.verbose, journald: false });
  try {
    // Streams an earlier cfs (or cfsctl 0.3.0) wrote are rewritten first, so that the old tags
    // and the new image share one format (a no-op otherwise).
    await convertLegacyRepository(repo);
    const r = await pullImage(repo, positionals[0], {
      ...opts,
      tag,
      bootable: values.bootable,
      ...(globals.json ? {} : layerReporter(log)),
      onFallback: (m) => printErr(`cfs: ${m}`),
      // Retries are news only for -v: the one line on failure says how many there were.
      onRetry: globals.verbose && !globals.json ? (m) => printErr(`cfs: ${m}`) : undefined,
    }).finally(() => log.close());
    const newObjects = r.layers.reduce((n, l) => n + (l.imported ? l.objects : 0), 0);
    const inlined = r.layers.reduce((n, l) => n + l.inlineBytes, 0);
    if (globals.json) {
      println(JSON.stringify({
        manifest: r.manifestDigest,
        manifestVerity: r.manifestVerity.hex,
        config: r.configDigest,
        configVerity: r.configVerity.hex,
        image: r.image?.hex ?? null,
        bootImage: r.bootImage?.hex ?? null,
        layers: r.layers.map((l) => ({ ...l, verity: l.verity.hex })),
        layersImported: r.layersImported,
        existing: r.existing,
        tag,
        localFetch: r.localFetch ?? null,
      }));
    } else {
      println(`manifest ${r.manifestDigest}`);
      println(`config   ${r.configDigest}`);
      println(`verity   ${r.manifestVerity.hex}`);
      println(`tagged   ${tag}`);
      if (r.localFetch) {
        const st = r.localFetch.stats;
        println(
          `objects  ${st.reflinked.objects} reflinked + ${st.hardlinked.objects} hardlinked + ` +
            `${st.copied.objects} copied + ${st.present.objects} already present objects; ` +
            `${humanBytes(st.copied.bytes)} copied, ${humanBytes(inlined)} inlined`,
        );
      } else {
        println(`objects  ${newObjects} stored; ${humanBytes(inlined)} inlined`);
      }
    }
  } finally {
    repo.close();
  }
  return 0;
};

/** The file system `oci compute-id` and `oci dump` describe. */
async function imageTree(
  repo: Repository,
  name: string,
  bootable: boolean | undefined,
  xattrs: XattrFiltering | undefined,
): Promise<FileSystem> {
  const fs = await ociFilesystem(repo, openImageOrConfig(repo, name), xattrs);
  if (bootable) bootTransform(repo, fs);
  return fs;
}

function xattrsOption(value: string | undefined, usage: string): XattrFiltering | undefined {
  if (value === undefined) return undefined;
  try {
    return parseXattrFiltering(value);
  } catch (e) {
    throw new UsageError((e as Error).message, usage);
  }
}

const computeIdCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    bootable: { type: "boolean" },
    xattrs: { type: "string" },
  }, COMPUTE_ID_USAGE);
  if (values.help) return help(COMPUTE_ID_USAGE);
  if (positionals.length < 1 || positionals.length > 2) {
    throw new UsageError("IMAGE is required", COMPUTE_ID_USAGE);
  }
  const xattrs = xattrsOption(values.xattrs, COMPUTE_ID_USAGE);
  const repo = openReadOnly(globals);
  try {
    const fs = await imageTree(repo, positionals[0], values.bootable, xattrs);
    const version = globals.erofsVersion ?? repo.erofsVersion;
    const id = toHex(fsverityDigest(mkfsErofs(fs, { version }), repo.algorithm));
    println(globals.json ? JSON.stringify({ id, erofsVersion: version }) : id);
  } finally {
    repo.close();
  }
  return 0;
};

const dumpCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    bootable: { type: "boolean" },
    xattrs: { type: "string" },
  }, DUMP_USAGE);
  if (values.help) return help(DUMP_USAGE);
  if (positionals.length < 1 || positionals.length > 2) {
    throw new UsageError("IMAGE is required", DUMP_USAGE);
  }
  const xattrs = xattrsOption(values.xattrs, DUMP_USAGE);
  const repo = openReadOnly(globals);
  try {
    const fs = await imageTree(repo, positionals[0], values.bootable, xattrs);
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
