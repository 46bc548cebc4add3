/**
 * OCI and stream commands: `oci import-layer SHA256 [NAME]` (tar on stdin, as cfsctl),
 * `oci ls-layer NAME`, `oci pull IMAGE [TAG]`, `oci compute-id IMAGE`, `oci dump IMAGE`,
 * and the top-level `cat NAME`; the image bookkeeping commands are in oci_images.ts.
 *
 * @module
 */
import { resolve } from "node:path";
import { type CommandHandler, parseCommand, println, UsageError, writeStdout } from "./command.ts";
import { commandSpec } from "./table.ts";
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

/** `cfs oci SUBCOMMAND` */
export const ociCommand: CommandHandler = async (args, globals) => {
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("no oci command given");
  if (sub === "import-layer") return await importLayerCommand(rest, globals);
  if (sub === "ls-layer") return await lsLayerCommand(rest, globals);
  if (sub === "layer" || sub === "layer-inspect") return await layerCommand(rest, globals);
  if (sub === "pull") return await pullCommand(rest, globals);
  if (sub === "compute-id") return await computeIdCommand(rest, globals);
  if (sub === "dump") return await dumpCommand(rest, globals);
  const more = OCI_IMAGE_COMMANDS[sub];
  if (more) return await more(rest, globals);
  throw new UsageError(`unknown oci command '${sub}'`);
};

const importLayerCommand: CommandHandler = async (args, globals) => {
  const { positionals } = parseCommand(args, commandSpec("oci import-layer"));
  if (positionals.length < 1) throw new UsageError("DIGEST is required");
  if (positionals.length > 2) throw new UsageError("too many arguments");
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
  const { positionals } = parseCommand(args, commandSpec("cat"));
  if (positionals.length !== 1) throw new UsageError("exactly one NAME is required");
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
  const { positionals } = parseCommand(args, commandSpec("oci ls-layer"));
  if (positionals.length !== 1) throw new UsageError("exactly one DIFF_ID is required");
  const repo = openReadOnly(globals);
  try {
    for await (const entry of readTar(catStream(repo, layerStreamName(positionals[0])))) {
      const m = entry.meta;
      const type = m.typeflag === "\0" ? "0" : m.typeflag;
      if (globals.json) {
        println(JSON.stringify({
          type,
          mode: m.mode,
          uid: m.uid,
          gid: m.gid,
          size: m.size,
          path: m.path,
          linkTarget: m.linkTarget || null,
        }));
        continue;
      }
      const link = m.linkTarget ? ` -> ${m.linkTarget}` : "";
      println(`${type} ${octal(m.mode, 4)} ${m.uid}/${m.gid} ${m.size} ${m.path}${link}`);
    }
  } finally {
    repo.close();
  }
  return 0;
};

const layerCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("oci layer"));
  if (positionals.length !== 1) {
    throw new UsageError("exactly one DIFF_ID is required");
  }
  if (globals.json && values.dumpfile) {
    throw new UsageError("--json and --dumpfile exclude each other");
  }
  const diffId = checkSha256Digest(positionals[0], "diff_id");
  const repo = openReadOnly(globals);
  try {
    const name = layerContentId(diffId);
    if (globals.json) {
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
        );
      }
      await writeAll(catStream(repo, name));
    }
  } finally {
    repo.close();
  }
  return 0;
};

/**
 * A duration flag in ms: seconds (`30`, `0.5`) or a number with a unit (`500ms`, `90s`, `10m`,
 * `1h`). `zero` allows 0 (meaning none).
 */
export function parseDurationFlag(
  text: string,
  flag: string,
  zero = false,
): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m?.[2] ?? "s"] ?? 1000;
  const ms = m === null ? NaN : Number(m[1]) * unit;
  if (!Number.isFinite(ms) || (ms === 0 && !zero) || ms > 86_400_000) {
    throw new UsageError(
      `${flag} takes a time in seconds or with a unit (500ms, 90s, 10m), ` +
        `${zero ? "0 for none, " : "more than 0, "}at most a day; not '${text}'`,
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
      );
    }
    retries = Number(values.retries);
  }
  return {
    timeoutMs: values.timeout !== undefined
      ? parseDurationFlag(values.timeout, "--timeout", true)
      : seconds(pick("timeout")),
    idleTimeoutMs: values["idle-timeout"] !== undefined
      ? parseDurationFlag(values["idle-timeout"], "--idle-timeout")
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
    );
  }
  const tls = values["tls-verify"];
  if (tls !== undefined && tls !== "true" && tls !== "false") {
    throw new UsageError(`--tls-verify takes true or false, not '${tls}'`);
  }
  let platform;
  if (values.platform !== undefined) {
    try {
      platform = parsePlatform(values.platform);
    } catch (e) {
      throw new UsageError((e as Error).message);
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
    transfer: transferOptions(values, config, registry),
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
  const { values, positionals } = parseCommand(args, commandSpec("oci pull"));
  if (positionals.length < 1) throw new UsageError("IMAGE is required");
  if (positionals.length > 2) throw new UsageError("too many arguments");
  const opts = sourceOptions(values, loadConfig(globals.config), positionals[0]);
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

function xattrsOption(value: string | undefined): XattrFiltering | undefined {
  if (value === undefined) return undefined;
  try {
    return parseXattrFiltering(value);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

const computeIdCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("oci compute-id"));
  if (positionals.length < 1 || positionals.length > 2) {
    throw new UsageError("IMAGE is required");
  }
  const xattrs = xattrsOption(values.xattrs);
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
  const { values, positionals } = parseCommand(args, commandSpec("oci dump"));
  if (positionals.length < 1 || positionals.length > 2) {
    throw new UsageError("IMAGE is required");
  }
  const xattrs = xattrsOption(values.xattrs);
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
