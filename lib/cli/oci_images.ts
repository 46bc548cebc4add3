/**
 * Image bookkeeping commands: `oci images`, `oci inspect`, `oci tag`, `oci untag`,
 * `oci create-image`, `oci mount`, `oci fsck`. The storage model is in lib/oci/store.ts.
 *
 * @module
 */
import { type CommandHandler, parseCommandArgs, println, UsageError } from "./command.ts";
import { openReadOnly, openRepo } from "./repo_path.ts";
import { findImage, listTags, tagImage, tagsOf, untagImage } from "../oci/store.ts";
import { commitOciImage } from "../oci/image.ts";
import { fsckAllImages, fsckImage } from "../oci/fsck.ts";
import { mountImage } from "../mount.ts";
import { toHex } from "../fsverity/digest.ts";
import { RepositoryError } from "../repository.ts";
import { configImageRef } from "../oci/store.ts";

const NAME_HELP =
  "IMAGE: a tag, the manifest's or config's digest (sha256:HEX or HEX), or refs/NAME.";

const IMAGES_USAGE = `usage: cfs oci images

Lists tags: tag, manifest digest, platform, layer count, creation time (--json: one array).`;
const INSPECT_USAGE = `usage: cfs oci inspect IMAGE

Prints the manifest, config, layers (with stream ids), tags and committed images as JSON.
${NAME_HELP}`;
const TAG_USAGE = `usage: cfs oci tag IMAGE TAG

Points TAG at IMAGE's manifest (replacing what TAG pointed at). Tags are gc roots.
${NAME_HELP}`;
const UNTAG_USAGE = `usage: cfs oci untag TAG

Removes TAG; the image's streams and objects go at the next gc unless something else keeps them.`;
const CREATE_IMAGE_USAGE = `usage: cfs oci create-image [--bootable] IMAGE

Writes the image's EROFS and records it (images/refs/oci-config-sha256:HEX[.boot]); prints the id.
${NAME_HELP}`;
const MOUNT_USAGE = `usage: cfs oci mount [--bootable] IMAGE MOUNTPOINT

Mounts the image (committing its EROFS first when it is not yet); needs root.
${NAME_HELP}`;
const FSCK_USAGE = `usage: cfs oci fsck [IMAGE]

Checks every tagged image (or IMAGE) down to its layer streams' content and objects.
Exit 1 when a problem is found.`;

function help(usage: string): number {
  println(usage);
  return 0;
}

function platformOf(config: Record<string, unknown>): string {
  const os = typeof config.os === "string" ? config.os : "?";
  const arch = typeof config.architecture === "string" ? config.architecture : "?";
  const variant = typeof config.variant === "string" ? `/${config.variant}` : "";
  return `${os}/${arch}${variant}`;
}

const imagesCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, IMAGES_USAGE);
  if (values.help) return help(IMAGES_USAGE);
  if (positionals.length) throw new UsageError("no arguments expected", IMAGES_USAGE);
  const repo = openReadOnly(globals);
  try {
    const rows = [];
    for (const t of listTags(repo)) {
      try {
        const img = await findImage(repo, t.tag);
        rows.push({
          tag: t.tag,
          manifest: `sha256:${img.manifestSha256}`,
          config: `sha256:${img.configSha256}`,
          platform: platformOf(img.config),
          layers: Array.isArray(img.manifest?.layers) ? img.manifest.layers.length : 0,
          created: typeof img.config.created === "string" ? img.config.created : null,
        });
      } catch (e) {
        rows.push({ tag: t.tag, error: (e as Error).message });
      }
    }
    if (globals.json) {
      println(JSON.stringify(rows));
    } else {
      println(["TAG", "MANIFEST", "PLATFORM", "LAYERS", "CREATED"].join("\t"));
      for (const r of rows) {
        if ("error" in r) println(`${r.tag}\t(broken: ${r.error})`);
        else {
          println(
            [r.tag, r.manifest.slice(0, 19), r.platform, r.layers, r.created ?? "-"].join("\t"),
          );
        }
      }
    }
  } finally {
    repo.close();
  }
  return 0;
};

const inspectCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, INSPECT_USAGE);
  if (values.help) return help(INSPECT_USAGE);
  if (positionals.length !== 1) {
    throw new UsageError("exactly one IMAGE is required", INSPECT_USAGE);
  }
  const repo = openReadOnly(globals);
  try {
    const img = await findImage(repo, positionals[0]);
    const diffIds = (img.config.rootfs as { diff_ids?: string[] })?.diff_ids ?? [];
    const images: Record<string, string | null> = {};
    for (const boot of [false, true]) {
      const ref = configImageRef(img.configSha256, boot);
      try {
        images[boot ? "composefs.image.boot" : "composefs.image"] = repo.resolveImage(ref);
      } catch {
        images[boot ? "composefs.image.boot" : "composefs.image"] = null;
      }
    }
    println(JSON.stringify(
      {
        manifest: img.manifestSha256 ? `sha256:${img.manifestSha256}` : null,
        manifestVerity: img.manifestId ? toHex(img.manifestId) : null,
        config: `sha256:${img.configSha256}`,
        configVerity: toHex(img.configId),
        tags: img.manifestSha256 ? tagsOf(repo, img.manifestSha256) : [],
        platform: platformOf(img.config),
        layers: diffIds.map((d) => ({
          diffId: d,
          verity: repo.hasStream(d.slice(7)) ? toHex(repo.hasStream(d.slice(7))!) : null,
        })),
        images,
        manifestDocument: img.manifest ?? null,
        configDocument: img.config,
      },
      null,
      globals.json ? undefined : 2,
    ));
  } finally {
    repo.close();
  }
  return 0;
};

const tagCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, TAG_USAGE);
  if (values.help) return help(TAG_USAGE);
  if (positionals.length !== 2) throw new UsageError("IMAGE and TAG are required", TAG_USAGE);
  const repo = openRepo(globals);
  try {
    const img = await findImage(repo, positionals[0]);
    if (!img.manifestSha256) {
      throw new RepositoryError(
        `'${
          positionals[0]
        }' names a config, not a manifest: tag the image by tag or manifest digest`,
      );
    }
    tagImage(repo, positionals[1], img.manifestSha256);
    if (globals.json) {
      println(JSON.stringify({ tag: positionals[1], manifest: `sha256:${img.manifestSha256}` }));
    }
  } finally {
    repo.close();
  }
  return 0;
};

const untagCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, UNTAG_USAGE);
  if (values.help) return Promise.resolve(help(UNTAG_USAGE));
  if (positionals.length !== 1) throw new UsageError("exactly one TAG is required", UNTAG_USAGE);
  const repo = openRepo(globals);
  try {
    if (!untagImage(repo, positionals[0])) {
      throw new RepositoryError(`no image tagged '${positionals[0]}' in ${repo.path}`);
    }
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
    const img = await findImage(repo, positionals[0]);
    const id = await commitOciImage(repo, img.configSha256, values.bootable);
    println(globals.json ? JSON.stringify({ id: toHex(id) }) : toHex(id));
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
  const repo = openRepo(globals);
  try {
    const img = await findImage(repo, positionals[0]);
    let id: string;
    try {
      id = repo.resolveImage(configImageRef(img.configSha256, values.bootable));
    } catch {
      id = toHex(await commitOciImage(repo, img.configSha256, values.bootable));
    }
    await mountImage(repo, id, positionals[1]);
  } finally {
    repo.close();
  }
  return 0;
};

const fsckCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
  }, FSCK_USAGE);
  if (values.help) return help(FSCK_USAGE);
  if (positionals.length > 1) throw new UsageError("at most one IMAGE", FSCK_USAGE);
  const repo = openReadOnly(globals);
  let reports;
  try {
    reports = positionals.length
      ? [await fsckImage(repo, positionals[0])]
      : await fsckAllImages(repo);
  } finally {
    repo.close();
  }
  const bad = reports.filter((r) => r.problems.length > 0).length;
  if (globals.json) {
    println(JSON.stringify({ images: reports, ok: bad === 0 }));
  } else {
    for (const r of reports) {
      if (r.problems.length === 0) println(`ok ${r.image} (${r.layersChecked} layers)`);
      for (const p of r.problems) println(`error ${r.image}: ${p}`);
    }
    println(`${reports.length} images checked, ${bad} with problems`);
  }
  return bad === 0 ? 0 : 1;
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
