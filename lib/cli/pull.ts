/**
 * `cfs pull IMAGE` (the seed's pull, lib/pipeline/seed.ts) and `cfs boot-entries IMAGE`.
 *
 * @module
 */
import { type CommandHandler, parseCommand, println, UsageError } from "./command.ts";
import { commandSpec } from "./table.ts";
import { openReadOnly, repoPath } from "./repo_path.ts";
import { clipEnd, shortId } from "./format.ts";
import { sourceOptions } from "./oci.ts";
import { runPullPipeline } from "../pipeline/run.ts";
import { loadHooks } from "../pipeline/hooks.ts";
import { loadConfig } from "../config.ts";
import { createLogger, Field, HOOK_LOADED } from "../log.ts";
import { type BootEntry, bootEntryToJson, displayName, findBootEntries } from "../boot/entries.ts";
import { openImage } from "../oci/store.ts";
import { ociFilesystem } from "../oci/commit.ts";
import { REPO_ALGORITHMS, type RepoAlgorithm } from "../repository.ts";

function entryLine(e: BootEntry): string {
  if (e.kind === "uki") {
    const addons = e.addons.length ? ` (+${e.addons.length} addons)` : "";
    return `uki ${e.kernelVersion ?? "-"} ${displayName(e.path)}${addons}`;
  }
  const kernel = e.kernel ? displayName(e.kernel.path) : "-";
  const initrd = e.initramfs.map((f) => displayName(f.path)).join(",") || "-";
  return `bls ${e.kernelVersion ?? e.version ?? "-"} ${kernel} ${initrd}` +
    (e.options ? ` options=${JSON.stringify(e.options)}` : "");
}

/**
 * What `cfs pull` prints by default: digests cut to the prefix cfs takes back (no 128-digit
 * lines to wrap in a terminal), tags and boot entries whole; `-v` prints every digest whole.
 */
export function pullSummary(r: {
  pull: { manifestDigest: string; layers: unknown[]; layersImported: number };
  tags: string[];
  imageId: string;
  erofsVersion: number;
  entries: BootEntry[];
}): string[] {
  const layers = r.pull.layers.length;
  return [
    `image     ${shortId(r.pull.manifestDigest)} (manifest ${
      clipEnd(r.pull.manifestDigest, 20)
    }; ` +
    `${layers} layer${layers === 1 ? "" : "s"}, ${r.pull.layersImported} new)`,
    ...r.tags.map((t) => `tag       ${t}`),
    `composefs ${shortId(r.imageId)} (bootable EROFS V${r.erofsVersion}; -v or --json: whole ids)`,
    ...r.entries.map((e) => `entry     ${entryLine(e)}`),
  ];
}

/** `cfs pull` */
export const pullCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("pull"));
  if (positionals.length !== 1) throw new UsageError("exactly one IMAGE is required");
  const config = loadConfig(globals.config);
  const algorithm = values.algorithm ?? config.algorithm;
  if (algorithm !== undefined && !REPO_ALGORITHMS.includes(algorithm as RepoAlgorithm)) {
    throw new UsageError(`unknown algorithm '${algorithm}'`);
  }
  const reference = positionals[0];
  const fetch = sourceOptions(values, config, reference);

  const hooks = await loadHooks({
    files: [...(config.hookFiles ?? []), ...(values.hook ?? [])],
    dirs: values["hooks-dir"],
    configDirs: config.hookDirs,
    noDefaultDirs: values["no-default-hooks"],
  });
  const log = createLogger({ json: globals.json, verbose: globals.verbose });
  for (const h of hooks) {
    log.debug(HOOK_LOADED, `hook ${h.hook.name} from ${h.source}`, {
      [Field.HOOK]: h.hook.name,
      [Field.HOOK_FILE]: h.source,
    });
  }
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    // The first Ctrl-C stops the pull cleanly; a second one leaves at once.
    if (++interrupts > 1) Deno.exit(130);
    controller.abort(new DOMException("interrupted", "AbortError"));
  };
  Deno.addSignalListener("SIGINT", onSigint);
  let r;
  try {
    r = await runPullPipeline({
      ...fetch,
      reference,
      repoPath: repoPath(globals),
      algorithm: algorithm as RepoAlgorithm | undefined,
      allowMissingFsverity: values["allow-missing-fsverity"] ?? config.allowMissingFsverity,
      hooks,
      hookOptions: config.hooks,
      log,
      signal: controller.signal,
      unified: values.unified ?? false,
    });
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    log.close();
  }
  const tag = r.tags[0];
  if (globals.json) {
    println(JSON.stringify({
      result: {
        repository: repoPath(globals),
        created: r.created,
        upgraded: r.upgraded,
        secure: r.secure,
        manifest: r.pull.manifestDigest,
        manifestVerity: r.pull.manifestVerity.hex,
        config: r.pull.configDigest,
        configVerity: r.pull.configVerity.hex,
        layers: r.pull.layers.map((l) => ({ ...l, verity: l.verity.hex })),
        layersImported: r.pull.layersImported,
        localFetch: r.pull.localFetch ?? null,
        tag,
        tags: r.tags,
        imageId: r.imageId,
        plainImageId: r.pull.image?.hex ?? null,
        erofsVersion: r.erofsVersion,
        upgrade: r.upgrade ?? null,
        bootEntries: r.entries.map(bootEntryToJson),
        durations: r.durations,
      },
    }));
  } else if (globals.quiet) {
    println(r.imageId);
  } else if (globals.verbose) {
    println(`manifest ${r.pull.manifestDigest} verity ${r.pull.manifestVerity.hex}`);
    println(`config ${r.pull.configDigest} verity ${r.pull.configVerity.hex}`);
    for (const t of r.tags) println(`tag ${t}`);
    println(`image ${r.imageId}`);
    for (const e of r.entries) println(`entry ${entryLine(e)}`);
  } else {
    for (const line of pullSummary(r)) println(line);
  }
  return 0;
};

/** `cfs boot-entries` */
export const bootEntriesCommand: CommandHandler = async (args, globals) => {
  const { positionals } = parseCommand(args, commandSpec("boot-entries"));
  if (positionals.length !== 1) {
    throw new UsageError("exactly one IMAGE is required");
  }
  const repo = openReadOnly(globals);
  try {
    const fs = await ociFilesystem(repo, openImage(repo, positionals[0]));
    const entries = findBootEntries(fs, (c) => repo.readObject(c.digest));
    if (globals.json) println(JSON.stringify(entries.map(bootEntryToJson)));
    else for (const e of entries) println(entryLine(e));
  } finally {
    repo.close();
  }
  return 0;
};
