/**
 * `cfs pull` as a pipeline of stages that user hooks wrap (hooks/types.ts is their API):
 *
 * | stage    | does                                                                   |
 * | -------- | ---------------------------------------------------------------------- |
 * | `open`   | opens the repository, creating it when missing (Repository.openOrCreate) |
 * | `storage`| `--unified` only: the image into `<repo>/bootc/storage` (unified.ts)   |
 * | `fetch`  | opens the source: manifest, config and layer list, digests checked     |
 * | `import` | layers, config and manifest into the repository (oci/pull.ts)          |
 * | `label-storage` | `--unified` only: SELinux labels on that storage (a no-op    |
 * |          | without a policy in the image), after the import as bootc does         |
 * | `tag`    | decides the tags: `localhost/bootc-<manifest digest>`, plus hooks'     |
 * | `label`  | merged tree; boot entries found; boot transform with SELinux labels    |
 * | `image`  | the bootable EROFS from the (possibly hook-changed) tree               |
 * | `boot`   | the boot entries, for hooks and the result                             |
 *
 * Every stage runs its `before` hooks, its work, then its `after` hooks, in hook order.
 * Tags are written only after the last stage: a pull that fails anywhere leaves the
 * repository consistent, with no new tag and no half-written stream or image (what was
 * stored stays for the next pull to reuse, and goes at gc otherwise).
 *
 * Failures: a hook that throws, rejects or outlives its timeout stops the pipeline with
 * {@link HookFailure} (`hook NAME failed in PHASE STAGE: MESSAGE`, exit code 3); an abort
 * of `signal` (SIGINT) stops it with {@link PipelineInterrupted} (exit code 130) at the
 * next chunk of a layer, the next stage or hook boundary. A hook's own signal aborts on
 * its timeout and on interruption, so well-behaved hooks can stop early.
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import $ from "dax";
import type {
  Hook,
  HookContext,
  HookLayer,
  HookPhase,
  HookRepository,
  StageName,
} from "../../hooks/types.ts";
import type { LoadedHook } from "./hooks.ts";
import {
  COMMAND_FAILED,
  Field,
  type Fields,
  HOOK_END,
  HOOK_FAILED,
  HOOK_MESSAGE,
  HOOK_START,
  IMAGE_WRITTEN,
  type Logger,
  messageLogger,
  PULL_DONE,
  PULL_FAILED,
  PULL_START,
  STAGE_END,
  STAGE_FAILED,
  STAGE_START,
  STORAGE_LABELED,
  STORAGE_PULLED,
  TAG_ADDED,
} from "../log.ts";
import { layerReporter } from "./progress.ts";
import { ObjectId, type RepoAlgorithm, Repository } from "../repository/mod.ts";
import type { ErofsFormatVersion } from "../repository/meta.ts";
import { type ImageSource, openImageSource, type SourceOptions } from "../oci/source.ts";
import { pullFromSource, type PullResult } from "../oci/pull.ts";
import { bootcTag, listTags, OciImage, tagImage, validateTag } from "../oci/store.ts";
import { linkImages, ociFilesystem, writeImages } from "../oci/commit.ts";
import { type UpgradeReport, upgradeRepository } from "../oci/upgrade.ts";
import { type BootEntry, findBootEntries } from "../boot/entries.ts";
import { transformForBoot } from "../boot/transform.ts";
import type { FileSystem } from "../tree.ts";
import { loadImagePolicy } from "../boot/selinux.ts";
import { ensureBootcLink, labelStorage, pullIntoStorage, unifiedStoragePath } from "./unified.ts";

/** Default time one hook call may take (ms). */
export const DEFAULT_HOOK_TIMEOUT_MS = 60_000;

/** A hook threw, rejected or timed out. Exit code 3. */
export class HookFailure extends CfsError {
  /** Creates `hook NAME failed in PHASE STAGE: MESSAGE`. */
  constructor(
    readonly hook: string,
    readonly phase: HookPhase,
    readonly stage: StageName,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`hook ${hook} failed in ${phase} ${stage}: ${reason}`, {
      cause: options?.cause,
      code: "hook-failed",
      exitCode: 3,
    });
    this.name = "HookFailure";
  }
}

/** The pull was interrupted (SIGINT). Exit code 130. */
export class PipelineInterrupted extends CfsError {
  /** Creates `interrupted during STAGE; ...`. */
  constructor(readonly stage: StageName | "start") {
    super(
      `interrupted during ${stage}; the repository is consistent (no new tag or image), ` +
        "objects already stored are kept for the next pull",
      { code: "interrupted", exitCode: 130 },
    );
    this.name = "PipelineInterrupted";
  }
}

/** Options of {@link runPullPipeline}. */
export interface PipelineOptions extends SourceOptions {
  /** The image reference to pull. */
  reference: string;
  /** The repository directory. */
  repoPath: string;
  /** Algorithm for a new repository. */
  algorithm?: RepoAlgorithm;
  /** Create an insecure repository where fs-verity is unavailable. */
  allowMissingFsverity?: boolean;
  /** Hooks, in the order they run. */
  hooks?: LoadedHook[];
  /** Per-hook options (`hooks.<name>` of the configuration file). */
  hookOptions?: Record<string, Record<string, unknown>>;
  /** Where events go. */
  log: Logger;
  /** Interrupts the pull. */
  signal?: AbortSignal;
  /**
   * bootc's unified storage: pull into the repository's own containers-storage first, then
   * import from there (`localFetch` default `zerocopy`, as bootc).
   */
  unified?: boolean;
}

/** What {@link runPullPipeline} produced. */
export interface PipelineResult {
  /** True when the repository was created by this pull. */
  created: boolean;
  /** True when an old-format repository was upgraded (meta.json written). */
  upgraded: boolean;
  /** What the upgrade before the pull did (streams converted, images made). */
  upgrade?: UpgradeReport;
  /** True when the repository requires fs-verity. */
  secure: boolean;
  /** What was stored. */
  pull: PullResult;
  /** The tags written. */
  tags: string[];
  /** The bootable image's id (hex), in the repository's default EROFS format. */
  imageId: string;
  /** That format (meta.json `erofs_formats`). */
  erofsVersion: ErofsFormatVersion;
  /** Boot entries of the image. */
  entries: BootEntry[];
  /** Milliseconds each stage's own work took (hooks not included). */
  durations: Partial<Record<StageName, number>>;
}

/** The pipeline's mutable state, which hook contexts view. */
interface State {
  repository?: HookRepository;
  manifest?: HookContext["manifest"];
  config?: HookContext["config"];
  layers?: HookLayer[];
  tags: string[];
  tree?: FileSystem;
  imageId?: string;
  bootEntries?: BootEntry[];
}

function repositoryView(repo: Repository): HookRepository {
  return {
    path: repo.path,
    algorithm: repo.meta.algorithm,
    secure: repo.secure,
    tags: () => listTags(repo).map((t) => ({ tag: t.tag, manifest: t.manifestDigest })),
    readObject: (id) => repo.readObject(ObjectId.parse(id, repo.algorithm)),
  };
}

function parseJson(bytes: Uint8Array): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(bytes));
}

function errorMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split("\n")[0] || (e instanceof Error ? e.name : "error");
}

/** Runs the pull pipeline; see the module documentation. */
export async function runPullPipeline(opts: PipelineOptions): Promise<PipelineResult> {
  const log = opts.log.child({ [Field.IMAGE]: opts.reference, [Field.OPERATION]: "pull" });
  const signal = opts.signal ?? new AbortController().signal;
  const hooks = opts.hooks ?? [];
  const state: State = { tags: [] };
  const durations: Partial<Record<StageName, number>> = {};
  let current: StageName | "start" = "start";
  let repo: Repository | undefined;
  let source: ImageSource | undefined;
  let pull: PullResult | undefined;
  let created = false;
  let entries: BootEntry[] = [];
  let upgrade: UpgradeReport | undefined;

  const interrupted = () => new PipelineInterrupted(current);
  const checkAbort = () => {
    if (signal.aborted) throw interrupted();
  };

  const context = (hook: Hook, stage: StageName, phase: HookPhase, hookSignal: AbortSignal) => {
    const ctx = {
      stage,
      phase,
      reference: opts.reference,
      options: opts.hookOptions?.[hook.name] ?? {},
      log: messageLogger(
        log.child({ [Field.HOOK]: hook.name, [Field.STAGE]: stage }),
        HOOK_MESSAGE,
      ),
      $,
      signal: hookSignal,
    } as Record<string, unknown>;
    for (const key of ["repository", "manifest", "config", "layers", "imageId", "bootEntries"]) {
      Object.defineProperty(ctx, key, {
        get: () => state[key as keyof State],
        enumerable: true,
      });
    }
    Object.defineProperty(ctx, "tags", {
      get: () => state.tags,
      set: (v) => {
        state.tags = v;
      },
      enumerable: true,
    });
    Object.defineProperty(ctx, "tree", {
      get: () => state.tree,
      set: (v) => {
        state.tree = v;
      },
      enumerable: true,
    });
    return ctx as unknown as HookContext;
  };

  const runHooks = async (phase: HookPhase, stage: StageName) => {
    for (const { hook, source: file } of hooks) {
      const fn = hook[phase]?.[stage];
      if (!fn) continue;
      checkAbort();
      const fields: Fields = {
        [Field.HOOK]: hook.name,
        [Field.HOOK_FILE]: file,
        [Field.STAGE]: stage,
        [Field.PHASE]: phase,
      };
      log.debug(HOOK_START, `hook ${hook.name}: ${phase} ${stage}`, fields);
      const timeoutMs = hook.timeout ?? DEFAULT_HOOK_TIMEOUT_MS;
      const own = new AbortController();
      const hookSignal = AbortSignal.any([own.signal, signal]);
      let timer: ReturnType<typeof setTimeout> | undefined;
      let onAbort: (() => void) | undefined;
      const t0 = performance.now();
      try {
        await Promise.race([
          (async () => await fn(context(hook, stage, phase, hookSignal)))(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              own.abort(new DOMException(`timed out after ${timeoutMs} ms`, "TimeoutError"));
              reject(new HookFailure(hook.name, phase, stage, `timed out after ${timeoutMs} ms`));
            }, timeoutMs);
          }),
          new Promise<never>((_, reject) => {
            onAbort = () => reject(interrupted());
            if (signal.aborted) onAbort();
            else signal.addEventListener("abort", onAbort, { once: true });
          }),
        ]);
      } catch (e) {
        if (e instanceof PipelineInterrupted) throw e;
        const failure = e instanceof HookFailure
          ? e
          : new HookFailure(hook.name, phase, stage, errorMessage(e), { cause: e });
        log.error(HOOK_FAILED, failure.message, {
          ...fields,
          [Field.ERROR]: failure.message,
          [Field.DURATION_MS]: Math.round(performance.now() - t0),
        });
        throw failure;
      } finally {
        clearTimeout(timer);
        if (onAbort) signal.removeEventListener("abort", onAbort);
      }
      log.debug(HOOK_END, `hook ${hook.name}: ${phase} ${stage} done`, {
        ...fields,
        [Field.DURATION_MS]: Math.round(performance.now() - t0),
      });
    }
  };

  const stage = async (name: StageName, work: () => Promise<void> | void) => {
    checkAbort();
    current = name;
    // Stage boundaries are debug events: every one in --json and the journal, on a
    // terminal only with -v (layers, the image and tags are the info-level story).
    log.debug(STAGE_START, `${name}: start`, { [Field.STAGE]: name });
    await runHooks("before", name);
    checkAbort();
    const t0 = performance.now();
    try {
      await work();
    } catch (e) {
      if (signal.aborted) throw interrupted();
      const output = (e as { stderr?: unknown })?.stderr;
      if (typeof output === "string" && output !== "") {
        // An external command (skopeo) failed: its whole output goes to the log.
        log.error(COMMAND_FAILED, `${name}: external command failed`, {
          [Field.STAGE]: name,
          [Field.OUTPUT]: output.slice(-65536),
        });
      }
      log.error(STAGE_FAILED, `${name}: ${errorMessage(e)}`, {
        [Field.STAGE]: name,
        [Field.ERROR]: errorMessage(e),
      });
      throw e;
    }
    const ms = performance.now() - t0;
    durations[name] = Math.round(ms);
    await runHooks("after", name);
    log.debug(STAGE_END, `${name}: done in ${(ms / 1000).toFixed(2)} s`, {
      [Field.STAGE]: name,
      [Field.DURATION_MS]: Math.round(ms),
    });
  };

  log.info(PULL_START, `pulling ${opts.reference}`, { [Field.REPO]: opts.repoPath });
  const t0 = performance.now();
  try {
    await stage("open", () => {
      const r = Repository.openOrCreate(opts.repoPath, {
        algorithm: opts.algorithm,
        allowInsecure: opts.allowMissingFsverity,
      });
      repo = r.repo;
      created = r.created;
      state.repository = repositoryView(repo);
    });
    // bootc runs composefs-rs's upgrade_repo before every pull; so does cfs (and it also
    // converts streams of cfsctl 0.3.0's format): lib/oci/upgrade.ts.
    upgrade = await upgradeRepository(
      repo!,
      (tag) =>
        log.info(IMAGE_WRITTEN, `upgrading ${tag}: making its EROFS images`, { [Field.TAG]: tag }),
    );
    let sourceRef = opts.reference;
    let sourceOpts: SourceOptions = opts;
    const storage = unifiedStoragePath(opts.repoPath);
    if (opts.unified) {
      await stage("storage", async () => {
        ensureBootcLink(opts.repoPath);
        const t = performance.now();
        const id = await pullIntoStorage(opts.reference, storage, {
          tlsVerify: opts.tlsVerify,
          authFile: opts.authFile,
          signal,
        });
        log.info(STORAGE_PULLED, `${opts.reference} in ${storage} as ${id.slice(0, 12)}`, {
          [Field.STORAGE]: storage,
          [Field.DURATION_MS]: Math.round(performance.now() - t),
        });
        sourceRef = `containers-storage:${id}`;
        sourceOpts = {
          ...opts,
          storageRoot: storage,
          localFetch: opts.localFetch ?? "zerocopy",
        };
      });
    }
    await stage("fetch", async () => {
      source = await openImageSource(sourceRef, sourceOpts);
      const image = source.image;
      state.manifest = {
        digest: image.manifestDescriptor.digest,
        document: parseJson(image.manifestBytes),
      };
      state.config = {
        digest: image.configDescriptor.digest,
        document: parseJson(image.configBytes),
      };
      state.layers = image.layers.map((l) => ({
        digest: l.digest,
        diffId: l.diffId,
        mediaType: l.mediaType,
        size: l.size,
      }));
    });
    await stage("import", async () => {
      pull = await pullFromSource(repo!, source!, {
        images: false,
        localFetch: sourceOpts.localFetch,
        signal,
        ...layerReporter(log, state.layers!.map((l) => l.size)),
      });
      await source!.close();
      source = undefined;
      state.manifest!.verity = pull.manifestVerity.hex;
      state.config!.verity = pull.configVerity.hex;
      pull.layers.forEach((l, i) => {
        state.layers![i].verity = l.verity.hex;
        state.layers![i].imported = l.imported;
      });
    });
    let merged: FileSystem | undefined;
    const stored = () => OciImage.open(repo!, pull!.manifestDigest, pull!.manifestVerity);
    if (opts.unified) {
      await stage("label-storage", async () => {
        merged = await ociFilesystem(repo!, stored());
        const policy = loadImagePolicy(merged, (c) => repo!.readObject(c.digest));
        if (!policy) {
          log.info(
            STORAGE_LABELED,
            `${storage}: not labelled: the image has no SELinux policy (no /etc/selinux/config)`,
            { [Field.STORAGE]: storage },
          );
          return;
        }
        const n = labelStorage(storage, policy);
        log.info(STORAGE_LABELED, `${storage}: ${n} inodes labelled`, {
          [Field.STORAGE]: storage,
        });
      });
    }
    await stage("tag", () => {
      const bootc = bootcTag(pull!.manifestDigest);
      if (!state.tags.includes(bootc)) state.tags.unshift(bootc);
    });
    let plainImages: Map<ErofsFormatVersion, ObjectId> | undefined;
    let bootImages: Map<ErofsFormatVersion, ObjectId> | undefined;
    await stage("label", async () => {
      const fs = merged ?? await ociFilesystem(repo!, stored());
      // The plain images first (composefs.image*), from the tree before the boot transform.
      plainImages = writeImages(repo!, fs);
      const read = (c: { digest: Uint8Array }) => repo!.readObject(c.digest);
      entries = findBootEntries(fs, read);
      transformForBoot(fs, read);
      state.tree = fs;
    });
    await stage("image", () => {
      if (!state.tree) throw new Error("no tree to write (a hook removed ctx.tree)");
      bootImages = writeImages(repo!, state.tree);
      const id = bootImages.get(repo!.erofsVersion)!;
      state.imageId = id.hex;
      log.debug(IMAGE_WRITTEN, `image ${state.imageId}`, {
        [Field.IMAGE_ID]: state.imageId,
        [Field.BOOTABLE]: true,
      });
    });
    await stage("boot", () => {
      state.bootEntries = entries;
    });
    // Commit: the tags, all checked before any is written.
    checkAbort();
    const tags = [...new Set(state.tags)];
    for (const t of tags) {
      if (typeof t !== "string") throw new Error(`a hook put a non-string tag into ctx.tags`);
      validateTag(t);
    }
    // The images are linked from the config (gc keeps them through any tag), the manifest
    // stream is rewritten to the new config, and the first tag (bootc's) points at it.
    const manifestVerity = await linkImages(repo!, stored(), {
      plain: plainImages,
      boot: bootImages,
      tag: tags[0],
    });
    pull = { ...pull!, manifestVerity, image: plainImages?.get(repo!.erofsVersion) };
    pull.bootImage = bootImages?.get(repo!.erofsVersion);
    pull.configVerity = stored().configId;
    for (const [i, t] of tags.entries()) {
      if (i > 0) tagImage(repo!, t, pull.manifestDigest);
      log.debug(TAG_ADDED, `tag ${t}`, { [Field.TAG]: t });
    }
    const result: PipelineResult = {
      created,
      upgraded: repo!.upgraded,
      upgrade,
      secure: repo!.secure,
      pull: pull!,
      tags,
      imageId: state.imageId!,
      erofsVersion: repo!.erofsVersion,
      entries,
      durations,
    };
    log.info(PULL_DONE, `pulled ${opts.reference}`, {
      [Field.MANIFEST_DIGEST]: pull!.manifestDigest,
      [Field.MANIFEST_VERITY]: pull!.manifestVerity.hex,
      [Field.CONFIG_DIGEST]: pull!.configDigest,
      [Field.CONFIG_VERITY]: pull!.configVerity.hex,
      [Field.IMAGE_ID]: state.imageId!,
      [Field.DURATION_MS]: Math.round(performance.now() - t0),
    });
    return result;
  } catch (e) {
    const err = signal.aborted && !(e instanceof PipelineInterrupted) ? interrupted() : e;
    log.error(PULL_FAILED, errorMessage(err), {
      [Field.STAGE]: current,
      [Field.ERROR]: errorMessage(err),
    });
    throw err;
  } finally {
    if (source) await (source as ImageSource).close().catch(() => {});
    (repo as Repository | undefined)?.close();
  }
}
