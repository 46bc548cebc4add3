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
import { type CommandHandler, parseCommand, println, UsageError } from "./command.ts";
import { commandSpec } from "./table.ts";
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
import { errorCode } from "../errors.ts";
import type { Repository } from "../repository/mod.ts";
import { clipEnd, formatTable, NAME_WIDTH, shortId, timeAgo } from "./format.ts";
import { writeStdout } from "./command.ts";

const imagesCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("oci images"));
  if (positionals.length) throw new UsageError("no arguments expected");
  if (values.format !== undefined && values.format !== "json" && values.format !== "table") {
    throw new UsageError(`--format takes table or json, not '${values.format.slice(0, 40)}'`);
  }
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
  if (globals.json || values.format === "json") {
    println(JSON.stringify({ images }, null, 2));
  } else if (globals.quiet) {
    // As podman images -q: each image's ID once, in table order.
    const ids = images.map((i) =>
      values["no-trunc"] ? i.manifest_digest : shortId(i.manifest_digest)
    );
    for (const id of new Set(ids)) println(id);
  } else if (images.length === 0) {
    println("No images found");
  } else {
    const now = Date.now();
    const rows = images.map((i) => [
      values["no-trunc"] ? i.name : clipEnd(i.name, NAME_WIDTH),
      values["no-trunc"] ? i.manifest_digest : shortId(i.manifest_digest),
      timeAgo(i.created, now),
      i.architecture || "artifact",
      String(i.layer_count),
    ]);
    for (const line of formatTable(["NAME", "IMAGE ID", "CREATED", "ARCH", "LAYERS"], rows)) {
      println(line);
    }
  }
  return Promise.resolve(0);
};

const inspectCommand: CommandHandler = (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("oci inspect"));
  if (positionals.length !== 1) {
    throw new UsageError("exactly one IMAGE is required");
  }
  if (values.manifest && values.config) {
    throw new UsageError("--manifest and --config exclude each other");
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
  const { positionals } = parseCommand(args, commandSpec("oci tag"));
  if (positionals.length !== 2) throw new UsageError("DIGEST and NAME are required");
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
  const { positionals } = parseCommand(args, commandSpec("oci untag"));
  if (positionals.length !== 1) throw new UsageError("exactly one NAME is required");
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
  const { values, positionals } = parseCommand(args, commandSpec("oci create-image"));
  if (positionals.length !== 1) {
    throw new UsageError("exactly one IMAGE is required");
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

/**
 * {@link openImage}, whose "no image" error adds `hint` when `isOther` says the name means
 * something to another command.
 */
function openImageOr(
  repo: Repository,
  name: string,
  isOther: () => boolean,
  hint: string,
): OciImage {
  try {
    return openImage(repo, name);
  } catch (e) {
    if (errorCode(e) !== "image-not-found" || !isOther()) throw e;
    throw new RepositoryError(`${(e as Error).message}; ${hint}`, { code: "image-not-found" });
  }
}

const mountCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("oci mount"));
  if (positionals.length !== 2) {
    throw new UsageError("IMAGE and MOUNTPOINT are required");
  }
  const repo = openReadOnly(globals);
  try {
    const img = openImageOr(repo, positionals[0], () => {
      try {
        repo.resolveImage(positionals[0]);
        return true;
      } catch {
        return false;
      }
    }, `it is an image ref: use 'cfs mount ${positionals[0]} ${positionals[1]}'`);
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
  const { positionals } = parseCommand(args, commandSpec("oci fsck"));
  if (positionals.length > 1) throw new UsageError("at most one IMAGE");
  const repo = openReadOnly(globals);
  let report;
  try {
    report = await fsckOci(repo, positionals[0]);
  } finally {
    repo.close();
  }
  if (globals.json) {
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
