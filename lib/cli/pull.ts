/**
 * `cfs pull IMAGE` (the seed's pull, lib/pipeline/seed.ts) and `cfs boot-entries IMAGE`.
 *
 * @module
 */
import { type CommandHandler, parseCommandArgs, println, UsageError } from "./command.ts";
import { openReadOnly, repoPath } from "./repo_path.ts";
import { FETCH_OPTIONS, layerProgress, sourceOptions } from "./oci.ts";
import { seedPull } from "../pipeline/seed.ts";
import { type BootEntry, bootEntryToJson, displayName, findBootEntries } from "../boot/entries.ts";
import { findImage } from "../oci/store.ts";
import { createFilesystem } from "../oci/image.ts";
import { REPO_ALGORITHMS, type RepoAlgorithm } from "../repository.ts";
import { toHex } from "../fsverity/digest.ts";

const PULL_USAGE = `usage: cfs pull [OPTIONS] IMAGE

What bootc does with a composefs repository: open it (created when missing, upgraded when
old), pull IMAGE (see 'cfs oci pull --help' for the forms), tag it
localhost/bootc-<manifest digest>, write the bootable EROFS image and list its boot entries.

options:
  --tls-verify=false       plain HTTP to the registry
  --platform OS/ARCH[/V]   the image to take from an image index
  --authfile FILE          registry credentials
  --algorithm A            for a new repository: fsverity-sha512-12 (default) or fsverity-sha256-12
  --allow-missing-fsverity create an insecure repository where fs-verity is unavailable`;

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
  }, PULL_USAGE);
  if (values.help) {
    println(PULL_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("exactly one IMAGE is required", PULL_USAGE);
  const algorithm = values.algorithm;
  if (algorithm !== undefined && !REPO_ALGORITHMS.includes(algorithm as RepoAlgorithm)) {
    throw new UsageError(`unknown algorithm '${algorithm}'`, PULL_USAGE);
  }
  const r = await seedPull(positionals[0], {
    ...sourceOptions(values, PULL_USAGE),
    repoPath: repoPath(globals),
    algorithm: algorithm as RepoAlgorithm | undefined,
    allowMissingFsverity: values["allow-missing-fsverity"],
    onLayer: layerProgress(globals),
  });
  if (globals.json) {
    println(JSON.stringify({
      repository: repoPath(globals),
      created: r.created,
      upgraded: r.upgraded,
      secure: r.secure,
      manifest: r.pull.manifestDigest,
      manifestVerity: toHex(r.pull.manifestVerity),
      config: r.pull.configDigest,
      configVerity: toHex(r.pull.configStreamId),
      layers: r.pull.layers.map((l) => ({ ...l, verity: toHex(l.verity) })),
      layersImported: r.pull.layersImported,
      tag: r.tag,
      imageId: r.imageId,
      bootEntries: r.entries.map(bootEntryToJson),
    }));
  } else {
    println(`manifest ${r.pull.manifestDigest} verity ${toHex(r.pull.manifestVerity)}`);
    println(`config ${r.pull.configDigest} verity ${toHex(r.pull.configStreamId)}`);
    println(`tag ${r.tag}`);
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
    const img = await findImage(repo, positionals[0]);
    const fs = await createFilesystem(repo, img.configSha256);
    const entries = findBootEntries(fs, (c) => repo.readObject(c.digest));
    if (globals.json) println(JSON.stringify(entries.map(bootEntryToJson)));
    else for (const e of entries) println(entryLine(e));
  } finally {
    repo.close();
  }
  return 0;
};
