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
import type {
  HookContext,
  HookLayer,
  HookPhase,
  HookSignatureDecision,
  StageName,
} from "../../hooks/types.ts";
import { closeHooks, type LoadedHook } from "./hooks.ts";
import { HookFailure, type HookFailureCode, PipelineInterrupted } from "./hook_errors.ts";
import { type CallResult, HookCallError } from "./hook_process.ts";
import type { CallContext, RepositoryInfo } from "./hook_protocol.ts";
import { bootcTagOf, checkHookTags, finalTags } from "./tags.ts";
import { checkHookTree, treeDigests } from "./tree_check.ts";
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
  SIGNATURE_CHECKED,
  STAGE_END,
  STAGE_FAILED,
  STAGE_START,
  STORAGE_LABELED,
  STORAGE_PULLED,
  TAG_ADDED,
} from "../log.ts";
import { layerReporter } from "./progress.ts";
import { digestSize } from "../fsverity/digest.ts";
import { STAGES } from "../../hooks/types.ts";
import { ObjectId, type RepoAlgorithm, Repository } from "../repository/mod.ts";
import type { ErofsFormatVersion } from "../repository/meta.ts";
import { type ImageSource, openImageSource, type SourceOptions } from "../oci/source.ts";
import { pullFromSource, type PullResult } from "../oci/pull.ts";
import { OciImage, tagImage } from "../oci/store.ts";
import { linkImages, ociFilesystem, writeImages } from "../oci/commit.ts";
import { type UpgradeReport, upgradeRepository } from "../oci/upgrade.ts";
import { type BootEntry, findBootEntries } from "../boot/entries.ts";
import { transformForBoot } from "../boot/transform.ts";
import type { FileSystem } from "../tree.ts";
import { loadImagePolicy } from "../boot/selinux.ts";
import { ensureBootcLink, labelStorage, pullIntoStorage, unifiedStoragePath } from "./unified.ts";
import { parseImageReference } from "../oci/reference.ts";
import { loadPolicy } from "../signature/policy.ts";
import { formatDecision } from "../signature/evaluate.ts";
import type { PolicyDecision } from "../signature/types.ts";

/** A policy decision as hooks see it (hooks/types.ts). */
function hookDecision(d: PolicyDecision): HookSignatureDecision {
  return {
    accepted: d.accepted,
    decidedBy: "cfs",
    policy: d.policy,
    transport: d.transport,
    scope: d.scope ?? null,
    requirements: d.results.map((r) => ({ type: r.type, accepted: r.accepted, reason: r.reason })),
  };
}

/** Default time one hook call may take (ms). */
export const DEFAULT_HOOK_TIMEOUT_MS = 60_000;

export { HookFailure, PipelineInterrupted } from "./hook_errors.ts";

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

/** The pipeline's state, which hooks' contexts are made from. */
interface State {
  repository?: RepositoryInfo;
  manifest?: HookContext["manifest"];
  config?: HookContext["config"];
  layers?: HookLayer[];
  signature?: HookSignatureDecision;
  tags: string[];
  tree?: FileSystem;
  imageId?: string;
  bootEntries?: BootEntry[];
}

function parseJson(bytes: Uint8Array): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** The code of each way a hook's call can fail (hook_errors.ts). */
const FAILURE_CODES: Record<Exclude<HookCallError["kind"], "interrupted">, HookFailureCode> = {
  threw: "hook-failed",
  uncaught: "hook-failed",
  protocol: "hook-failed",
  late: "hook-late-error",
  exited: "hook-exited",
  timeout: "hook-timeout",
  tags: "hook-tags-invalid",
  tree: "hook-tree-invalid",
};

/** Tags may change until the `tag` stage ends (hooks/types.ts). */
function tagsOpen(stage: StageName): boolean {
  return STAGES.indexOf(stage) <= STAGES.indexOf("tag");
}

/** The tree may change after `label` and before `image` (hooks/types.ts). */
function treeOpen(phase: HookPhase, stage: StageName): boolean {
  return (phase === "after" && stage === "label") || (phase === "before" && stage === "image");
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

  /** A hook's failure, logged, ready to throw; `at` is where it was seen. */
  const hookFailure = (
    h: LoadedHook,
    at: { phase: HookPhase; stage: StageName },
    e: unknown,
    t0?: number,
  ): HookFailure => {
    let failure: HookFailure;
    if (e instanceof HookFailure) failure = e;
    else if (e instanceof HookCallError && e.kind !== "interrupted") {
      const where = e.after ?? h.process.lastCall ?? at;
      failure = new HookFailure(h.hook.name, where.phase, where.stage, e.message, {
        code: FAILURE_CODES[e.kind],
        cause: e,
      });
    } else {
      failure = new HookFailure(h.hook.name, at.phase, at.stage, errorMessage(e), { cause: e });
    }
    log.error(HOOK_FAILED, failure.message, {
      [Field.HOOK]: h.hook.name,
      [Field.HOOK_FILE]: h.source,
      [Field.STAGE]: failure.stage,
      [Field.PHASE]: failure.phase,
      [Field.ERROR]: failure.message,
      ...(t0 === undefined ? {} : { [Field.DURATION_MS]: Math.round(performance.now() - t0) }),
    });
    return failure;
  };

  /** Fails the pull when a hook failed between its calls (a late rejection, an exit). */
  const checkLate = (at: { phase: HookPhase; stage: StageName }) => {
    for (const h of hooks) {
      if (h.process.late) throw hookFailure(h, at, h.process.late);
    }
  };

  /** The data of a call's context; the hook's process makes the context from it. */
  const callContext = (h: LoadedHook, phase: HookPhase, stage: StageName): CallContext => ({
    reference: opts.reference,
    options: opts.hookOptions?.[h.hook.name] ?? {},
    repository: state.repository,
    manifest: state.manifest,
    config: state.config,
    layers: state.layers,
    signature: state.signature,
    tags: state.tags,
    tagsOpen: tagsOpen(stage),
    tree: state.tree,
    treeOpen: treeOpen(phase, stage),
    imageId: state.imageId,
    bootEntries: state.bootEntries,
  });

  /** Takes what a call handed back, where the hook may change it, once it is checked. */
  const accept = (
    h: LoadedHook,
    phase: HookPhase,
    stage: StageName,
    ctx: CallContext,
    result: CallResult,
    known: Set<string> | undefined,
  ) => {
    const fail = (code: HookFailureCode, e: unknown) =>
      new HookFailure(h.hook.name, phase, stage, errorMessage(e), { code, cause: e });
    if (ctx.tagsOpen) {
      const digest = pull?.manifestDigest ?? state.manifest?.digest;
      try {
        state.tags = checkHookTags(result.tags, {
          bootcTag: digest === undefined ? undefined : bootcTagOf(digest),
          bootcRequired: phase === "after" && stage === "tag",
        });
      } catch (e) {
        throw fail("hook-tags-invalid", e);
      }
    }
    if (ctx.treeOpen) {
      try {
        state.tree = checkHookTree(result.tree, {
          digestLength: digestSize(repo!.algorithm),
          hasObject: (digest) => repo!.hasObject(digest),
          known,
        });
      } catch (e) {
        throw fail("hook-tree-invalid", e);
      }
    }
  };

  const runHooks = async (phase: HookPhase, stage: StageName) => {
    for (const h of hooks) {
      if (!h.hook[phase].includes(stage)) continue;
      checkAbort();
      checkLate({ phase, stage });
      const fields: Fields = {
        [Field.HOOK]: h.hook.name,
        [Field.HOOK_FILE]: h.source,
        [Field.STAGE]: stage,
        [Field.PHASE]: phase,
      };
      log.debug(HOOK_START, `hook ${h.hook.name}: ${phase} ${stage}`, fields);
      const hookLog = messageLogger(
        log.child({ [Field.HOOK]: h.hook.name, [Field.STAGE]: stage }),
        HOOK_MESSAGE,
      );
      const t0 = performance.now();
      try {
        const ctx = callContext(h, phase, stage);
        // The objects the tree names now are stored; a tree handed back may only add others
        // that are (checked one by one).
        const known = ctx.treeOpen && state.tree ? treeDigests(state.tree) : undefined;
        const result = await h.process.call(phase, stage, ctx, {
          timeoutMs: h.hook.timeout ?? DEFAULT_HOOK_TIMEOUT_MS,
          signal,
          onLog: (level, message, f) => hookLog[level](message, f),
        });
        accept(h, phase, stage, ctx, result, known);
      } catch (e) {
        if (signal.aborted || (e instanceof HookCallError && e.kind === "interrupted")) {
          throw interrupted();
        }
        throw hookFailure(h, { phase, stage }, e, t0);
      }
      log.debug(HOOK_END, `hook ${h.hook.name}: ${phase} ${stage} done`, {
        ...fields,
        [Field.DURATION_MS]: Math.round(performance.now() - t0),
      });
    }
  };

  /**
   * Before any tag is written: every hook's process has handled what its last call left
   * behind, and none failed since (a rejection nobody handled, an exit).
   */
  const settleHooks = async () => {
    const at = { phase: "after" as const, stage: "boot" as const };
    const results = await Promise.allSettled(
      hooks.map((h) => h.process.sync(h.hook.timeout ?? DEFAULT_HOOK_TIMEOUT_MS)),
    );
    for (const [i, r] of results.entries()) {
      if (r.status === "rejected") throw hookFailure(hooks[i], at, r.reason);
    }
    checkLate(at);
  };

  /** The decision as an event (SIGNATURE_CHECKED), whoever made it. */
  const logDecision = (d: HookSignatureDecision, reasons?: string) => {
    const scope = d.scope === null ? "default" : d.scope === "" ? "transport default" : d.scope;
    log.info(
      SIGNATURE_CHECKED,
      `signature policy ${d.policy}: ${d.accepted ? "accepted" : "rejected"} ` +
        `(${d.transport}, scope ${scope}${d.decidedBy === "skopeo" ? ", by skopeo" : ""})`,
      {
        [Field.POLICY]: d.policy,
        [Field.TRANSPORT]: d.transport,
        [Field.POLICY_SCOPE]: scope,
        [Field.POLICY_DECISION]: d.accepted ? "accepted" : "rejected",
        ...(reasons === undefined ? {} : { [Field.ERROR]: reasons }),
      },
    );
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
      state.repository = { path: repo.path, algorithm: repo.meta.algorithm, secure: repo.secure };
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
        // podman enforces the signature policy on this pull (the same file), so the read
        // from cfs's own copy below needs no decision of its own.
        const policy = opts.signaturePolicy
          ? (await loadPolicy(opts.signaturePolicy.policyPath)).source
          : undefined;
        const id = await pullIntoStorage(opts.reference, storage, {
          tlsVerify: opts.tlsVerify,
          authFile: opts.authFile,
          signaturePolicy: policy,
          signal,
        });
        if (policy !== undefined) {
          state.signature = {
            accepted: true,
            decidedBy: "skopeo",
            policy,
            transport: parseImageReference(opts.reference).transport,
            scope: null,
            requirements: [],
          };
          logDecision(state.signature);
        }
        log.info(STORAGE_PULLED, `${opts.reference} in ${storage} as ${id.slice(0, 12)}`, {
          [Field.STORAGE]: storage,
          [Field.DURATION_MS]: Math.round(performance.now() - t),
        });
        sourceRef = `containers-storage:${id}`;
        sourceOpts = {
          ...opts,
          storageRoot: storage,
          localFetch: opts.localFetch ?? "zerocopy",
          signaturePolicy: undefined,
        };
      });
    }
    await stage("fetch", async () => {
      const policy = sourceOpts.signaturePolicy;
      source = await openImageSource(sourceRef, {
        ...sourceOpts,
        signaturePolicy: policy && {
          ...policy,
          onDecision: (d) => {
            state.signature = hookDecision(d);
            logDecision(state.signature, d.accepted ? undefined : formatDecision(d));
            policy.onDecision?.(d);
          },
        },
      });
      if (policy && state.signature === undefined) {
        // A transport read through skopeo: skopeo enforced the same policy and accepted.
        state.signature = {
          accepted: true,
          decidedBy: "skopeo",
          policy: (await loadPolicy(policy.policyPath)).source,
          transport: parseImageReference(sourceRef).transport,
          scope: null,
          requirements: [],
        };
        logDecision(state.signature);
      }
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
        keepEntries: true,
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
        merged = await ociFilesystem(repo!, stored(), undefined, pull!.parsed);
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
      const bootc = bootcTagOf(pull!.manifestDigest);
      state.tags = [bootc, ...state.tags.filter((t) => t !== bootc)];
    });
    let plainImages: Map<ErofsFormatVersion, ObjectId> | undefined;
    let bootImages: Map<ErofsFormatVersion, ObjectId> | undefined;
    await stage("label", async () => {
      const fs = merged ?? await ociFilesystem(repo!, stored(), undefined, pull!.parsed);
      // The plain images first (composefs.image*), from the tree before the boot transform.
      plainImages = writeImages(repo!, fs);
      const read = (c: { digest: Uint8Array }) => repo!.readObject(c.digest);
      entries = findBootEntries(fs, read);
      transformForBoot(fs, read);
      state.tree = fs;
    });
    await stage("image", () => {
      bootImages = writeImages(repo!, state.tree!);
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
    // Commit: no hook failed since its last call, and the tags (each checked when the hook
    // that set it returned) with bootc's first.
    checkAbort();
    await settleHooks();
    checkAbort();
    const tags = finalTags(state.tags, bootcTagOf(pull!.manifestDigest));
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
    // The hooks' processes end with the pull, whatever they are doing.
    await closeHooks(hooks).catch(() => {});
    if (source) await (source as ImageSource).close().catch(() => {});
    (repo as Repository | undefined)?.close();
  }
}
