/**
 * `cfs pull IMAGE` (the seed's pull, lib/pipeline/seed.ts) and `cfs boot-entries IMAGE`.
 *
 * @module
 */
import { type CommandHandler, parseCommandArgs, println, UsageError } from "./command.ts";
import { openReadOnly, repoPath } from "./repo_path.ts";
import { FETCH_OPTIONS, fetchLimitsHelp, sourceOptions } from "./oci.ts";
import { runPullPipeline } from "../pipeline/run.ts";
import { loadHooks } from "../pipeline/hooks.ts";
import { loadConfig } from "../config.ts";
import { createLogger, Field, HOOK_LOADED } from "../log.ts";
import { type BootEntry, bootEntryToJson, displayName, findBootEntries } from "../boot/entries.ts";
import { openImage } from "../oci/store.ts";
import { ociFilesystem } from "../oci/commit.ts";
import { REPO_ALGORITHMS, type RepoAlgorithm } from "../repository.ts";

const PULL_USAGE = `usage: cfs pull [OPTIONS] IMAGE

What bootc does with a composefs repository, as a pipeline of stages (open, [storage], fetch,
import, [label-storage], tag, label, image, boot) that hooks can wrap: open the repository (created when missing,
upgraded when old), pull IMAGE (see 'cfs oci pull --help' for the forms), write the
bootable EROFS image, find its boot entries, and tag it localhost/bootc-<manifest digest>
(tags are written last). The containers signature policy is enforced in fetch, as skopeo does.
Exit codes: 1 error, 2 usage, 3 a hook failed, 4 the signature policy rejected the image,
130 interrupted.
With --json, stdout has one JSON object per line: events, then {"result": ...}.

options:
  --unified                bootc's unified storage: podman pulls IMAGE into <repo>/bootc/storage
                           (containers-storage:NAME is copied from the host's storage), then
                           it is imported from there, zero-copy (stages storage, label-storage)
  --local-fetch=MODE       disabled, auto or zerocopy (default with --unified: zerocopy)
  --storage-root DIR       containers-storage: sources: the store to read
  --tls-verify=false       plain HTTP to the registry
  --platform OS/ARCH[/V]   the image to take from an image index
  --authfile FILE          registry credentials
${fetchLimitsHelp(27)}
  --algorithm A            for a new repository: fsverity-sha512-12 (default) or fsverity-sha256-12
  --allow-missing-fsverity create an insecure repository where fs-verity is unavailable
  --hook FILE              load a hook module (TypeScript) or builtin:NAME; repeatable
  --hooks-dir DIR          load every *.ts hook in DIR; repeatable
  --no-default-hooks       skip /etc/cfs/hooks.d and $XDG_CONFIG_HOME/cfs/hooks.d

built-in hooks: extra-tags, require-signature, selinux-relabel, log-json`;

const ENTRIES_USAGE = `usage: cfs boot-entries IMAGE

Lists the boot entries (BLS type 1 and UKIs) of a pulled image.
IMAGE: a tag, the manifest's or config's digest (sha256:HEX or HEX), or refs/NAME.`;

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

/** `cfs pull` */
export const pullCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    ...FETCH_OPTIONS,
    algorithm: { type: "string" },
    "allow-missing-fsverity": { type: "boolean" },
    hook: { type: "string", multiple: true },
    "hooks-dir": { type: "string", multiple: true },
    "no-default-hooks": { type: "boolean" },
    unified: { type: "boolean" },
  }, PULL_USAGE);
  if (values.help) {
    println(PULL_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("exactly one IMAGE is required", PULL_USAGE);
  const config = loadConfig(globals.config);
  const algorithm = values.algorithm ?? config.algorithm;
  if (algorithm !== undefined && !REPO_ALGORITHMS.includes(algorithm as RepoAlgorithm)) {
    throw new UsageError(`unknown algorithm '${algorithm}'`, PULL_USAGE);
  }
  const reference = positionals[0];
  const fetch = sourceOptions(values, PULL_USAGE, config, reference);

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
  } else {
    println(`manifest ${r.pull.manifestDigest} verity ${r.pull.manifestVerity.hex}`);
    println(`config ${r.pull.configDigest} verity ${r.pull.configVerity.hex}`);
    for (const t of r.tags) println(`tag ${t}`);
    println(`image ${r.imageId}`);
    for (const e of r.entries) println(`entry ${entryLine(e)}`);
  }
  return 0;
};

/** `cfs boot-entries` */
export const bootEntriesCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, ENTRIES_USAGE);
  if (values.help) {
    println(ENTRIES_USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError("exactly one IMAGE is required", ENTRIES_USAGE);
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
