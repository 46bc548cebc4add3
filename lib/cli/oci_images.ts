/**
 * Image bookkeeping commands, as cfsctl 0.9.4 has them: `oci images [--json]`, `oci inspect
 * IMAGE [--manifest|--config]`, `oci tag DIGEST NAME`, `oci untag NAME`, `oci mount IMAGE
 * MOUNTPOINT [--bootable]`, `oci fsck [IMAGE] [--json]`, plus cfs's `oci create-image`. The
 * storage model is in lib/oci/store.ts.
 *
 * IMAGE is a tag or `@sha256:<hex>` (a manifest digest), as cfsctl takes it; cfs also takes
 * `sha256:<hex>` and the bare hex of a manifest or config digest.
 *
 * @module
 */
import { type CommandHandler, parseCommandArgs, println, UsageError } from "./command.ts";
import { openReadOnly, openRepo } from "./repo_path.ts";
import {
  listTags,
  manifestContentId,
  OciImage,
  openImage,
  tagImage,
  tagsOf,
  untagImage,
} from "../oci/store.ts";
import { commitOciImages } from "../oci/commit.ts";
import { formatOciProblem, fsckOci } from "../oci/fsck.ts";
import { formatFsckReport, formatProblem, RepositoryError } from "../repository/mod.ts";
import { mountImage } from "../mount.ts";
import { printTable } from "./repo.ts";
import { writeStdout } from "./command.ts";

const NAME_HELP = "IMAGE: a tag, or @sha256:HEX (a manifest digest); also sha256:HEX or HEX.";

const IMAGES_USAGE = `usage: cfs oci images [--json]

Lists the tagged images: tag, manifest digest, architecture, layers, referrers (as cfsctl);
--json prints {"images": [...]} with cfsctl's fields.`;
const INSPECT_USAGE = `usage: cfs oci inspect IMAGE [--manifest|--config]

Prints the manifest and config (as stored), referrers and linked EROFS images as JSON; with
--manifest or --config only that document, byte for byte. ${NAME_HELP}`;
const TAG_USAGE = `usage: cfs oci tag DIGEST NAME

Points NAME at the image whose manifest digest is DIGEST (sha256:HEX; also any IMAGE name).
Tags are gc roots.`;
const UNTAG_USAGE = `usage: cfs oci untag NAME

Removes the tag NAME; what only it kept alive goes at the next gc.`;
const CREATE_IMAGE_USAGE = `usage: cfs oci create-image [--bootable] IMAGE

Makes the image's EROFS images (every format of the repository) and links them from its
config, as a pull does; prints the id of the default format's. ${NAME_HELP}`;
const MOUNT_USAGE = `usage: cfs oci mount [--bootable] IMAGE MOUNTPOINT

Mounts the image's linked EROFS image of the repository's format (the bootable one with
--bootable); needs root. ${NAME_HELP}`;
const FSCK_USAGE = `usage: cfs oci fsck [IMAGE] [--json]

The repository check (cfs fsck) plus every tagged image's (or IMAGE's): manifest and config
digests, their links, every layer stream. Exit 1 when a problem is found (--json: 0, as cfsctl).`;

function help(usage: string): number {
  println(usage);
  return 0;
}

const imagesCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    json: { type: "boolean" },
  }, IMAGES_USAGE);
  if (values.help) return Promise.resolve(help(IMAGES_USAGE));
  if (positionals.length) throw new UsageError("no arguments expected", IMAGES_USAGE);
  const repo = openReadOnly(globals);
  const images = [];
  const broken: Array<{ name: string; error: string }> = [];
  try {
    for (const t of listTags(repo)) {
      try {
        const img = OciImage.open(repo, t.manifestDigest);
        images.push({
          name: t.tag,
          manifest_digest: t.manifestDigest,
          is_container: img.isContainerImage,
          architecture: img.architecture,
          os: img.os,
          created: img.created ?? null,
          layer_count: img.layerDescriptors.length,
          referrer_count: 0,
        });
      } catch (e) {
        broken.push({ name: t.tag, error: (e as Error).message });
      }
    }
  } finally {
    repo.close();
  }
  for (const b of broken) {
    Deno.stderr.writeSync(new TextEncoder().encode(`cfs: skipping image ${b.name}: ${b.error}\n`));
  }
  if (globals.json || values.json) {
    println(JSON.stringify({ images }, null, 2));
  } else if (images.length === 0) {
    println("No images found");
  } else {
    printTable(
      ["NAME", "DIGEST", "ARCH", "LAYERS", "REFS"],
      images.map((i) => [
        i.name,
        i.manifest_digest.replace(/^sha256:/, "").slice(0, 12),
        i.architecture || "artifact",
        String(i.layer_count),
        String(i.referrer_count),
      ]),
    );
  }
  return Promise.resolve(0);
};

const inspectCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    manifest: { type: "boolean" },
    config: { type: "boolean" },
  }, INSPECT_USAGE);
  if (values.help) return Promise.resolve(help(INSPECT_USAGE));
  if (positionals.length !== 1) {
    throw new UsageError("exactly one IMAGE is required", INSPECT_USAGE);
  }
  if (values.manifest && values.config) {
    throw new UsageError("--manifest and --config exclude each other", INSPECT_USAGE);
  }
  const repo = openReadOnly(globals);
  try {
    const img = openImage(repo, positionals[0]);
    if (values.manifest || values.config) {
      writeStdout(values.manifest ? img.manifestJson : img.configJson);
      println("");
      return Promise.resolve(0);
    }
    const version = repo.erofsVersion;
    const out: Record<string, unknown> = {
      manifest: new TextDecoder().decode(img.manifestJson),
      config: new TextDecoder().decode(img.configJson),
      referrers: [],
      composefs_erofs: img.imageRef(version)?.hex ?? null,
      composefs_boot_erofs: img.bootImageRef(version)?.hex ?? null,
    };
    if (globals.json) {
      // cfs's extras for scripts: ids, tags and layers resolved.
      Object.assign(out, {
        manifest_digest: img.manifestDigest,
        manifest_verity: img.manifestId.hex,
        config_digest: img.configDigest,
        config_verity: img.configId.hex,
        tags: tagsOf(repo, img.manifestDigest),
        layers: img.diffIds.map((d) => ({ diff_id: d, verity: img.layers.get(d)?.hex ?? null })),
      });
    }
    println(JSON.stringify(out, null, 2));
  } finally {
    repo.close();
  }
  return Promise.resolve(0);
};

const tagCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, TAG_USAGE);
  if (values.help) return Promise.resolve(help(TAG_USAGE));
  if (positionals.length !== 2) throw new UsageError("DIGEST and NAME are required", TAG_USAGE);
  const repo = openRepo(globals);
  try {
    const [from, name] = positionals;
    const digest = /^sha256:[0-9a-f]{64}$/.test(from) &&
        repo.hasStream(manifestContentId(from))
      ? from
      : openImage(repo, from).manifestDigest;
    tagImage(repo, name, digest);
    println(
      globals.json
        ? JSON.stringify({ tag: name, manifest: digest })
        : `Tagged ${digest} as ${name}`,
    );
  } finally {
    repo.close();
  }
  return Promise.resolve(0);
};

const untagCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, UNTAG_USAGE);
  if (values.help) return Promise.resolve(help(UNTAG_USAGE));
  if (positionals.length !== 1) throw new UsageError("exactly one NAME is required", UNTAG_USAGE);
  const repo = openRepo(globals);
  try {
    if (!untagImage(repo, positionals[0])) {
      throw new RepositoryError(`no image tagged '${positionals[0]}' in ${repo.path}`, {
        code: "image-not-found",
      });
    }
    println(
      globals.json ? JSON.stringify({ removed: positionals[0] }) : `Removed tag ${positionals[0]}`,
    );
  } finally {
    repo.close();
  }
  return Promise.resolve(0);
};

const createImageCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    bootable: { type: "boolean" },
  }, CREATE_IMAGE_USAGE);
  if (values.help) return help(CREATE_IMAGE_USAGE);
  if (positionals.length !== 1) {
    throw new UsageError("exactly one IMAGE is required", CREATE_IMAGE_USAGE);
  }
  const repo = openRepo(globals);
  try {
    const img = openImage(repo, positionals[0]);
    const r = await commitOciImages(repo, img.manifestDigest, img.manifestId, {
      bootable: values.bootable,
    });
    if (!r) {
      throw new RepositoryError(`${img.manifestDigest} is an artifact: it has no file system`);
    }
    const id = values.bootable ? r.bootImage! : r.image;
    println(globals.json ? JSON.stringify({ id: id.hex }) : id.hex);
  } finally {
    repo.close();
  }
  return 0;
};

const mountCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    bootable: { type: "boolean" },
  }, MOUNT_USAGE);
  if (values.help) return help(MOUNT_USAGE);
  if (positionals.length !== 2) {
    throw new UsageError("IMAGE and MOUNTPOINT are required", MOUNT_USAGE);
  }
  const repo = openReadOnly(globals);
  try {
    const img = openImage(repo, positionals[0]);
    const id = values.bootable
      ? img.bootImageRef(repo.erofsVersion)
      : img.imageRef(repo.erofsVersion);
    if (!id) {
      throw new RepositoryError(
        values.bootable
          ? `no boot EROFS image linked for ${positionals[0]}: pull it with --bootable`
          : `no composefs EROFS image linked for ${positionals[0]}: pull it again`,
      );
    }
    await mountImage(repo, id.hex, positionals[1]);
  } finally {
    repo.close();
  }
  return 0;
};

const fsckCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    json: { type: "boolean" },
  }, FSCK_USAGE);
  if (values.help) return Promise.resolve(help(FSCK_USAGE));
  if (positionals.length > 1) throw new UsageError("at most one IMAGE", FSCK_USAGE);
  const repo = openReadOnly(globals);
  let report;
  try {
    report = await fsckOci(repo, positionals[0]);
  } finally {
    repo.close();
  }
  if (globals.json || values.json) {
    const r = report.repo;
    println(JSON.stringify(
      {
        ok: report.ok,
        images_checked: report.imagesChecked,
        images_corrupted: report.imagesCorrupted,
        errors: report.errors.map(formatOciProblem),
        repo: {
          ok: r.ok,
          has_metadata: r.hasMetadata,
          objects_checked: r.objectsChecked,
          objects_corrupted: r.objectsCorrupted,
          streams_checked: r.streamsChecked,
          streams_corrupted: r.streamsCorrupted,
          images_checked: r.imagesChecked,
          images_corrupted: r.imagesCorrupted,
          broken_links: r.brokenLinks,
          missing_objects: r.missingObjects,
          errors: r.errors.map(formatProblem),
        },
      },
      null,
      2,
    ));
    return Promise.resolve(0);
  }
  let text = formatFsckReport(report.repo);
  text += `oci images: ${
    report.imagesChecked - report.imagesCorrupted
  }/${report.imagesChecked} ok\n`;
  if (report.errors.length > 0) {
    text += `oci errors: ${report.errors.length}\n`;
    for (const e of report.errors) text += `  - ${formatOciProblem(e)}\n`;
  }
  Deno.stdout.writeSync(new TextEncoder().encode(text));
  return Promise.resolve(report.ok ? 0 : 1);
};

/** `oci` subcommands defined here, by name. */
export const OCI_IMAGE_COMMANDS: Record<string, CommandHandler> = {
  images: imagesCommand,
  inspect: inspectCommand,
  tag: tagCommand,
  untag: untagCommand,
  "create-image": createImageCommand,
  mount: mountCommand,
  fsck: fsckCommand,
};
