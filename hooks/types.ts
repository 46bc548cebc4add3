/**
 * The API a cfs hook module is written against. A hook module is a TypeScript file whose
 * default export is a {@link Hook}; cfs loads it for `cfs pull` from `--hook FILE`, from
 * `hooks.d/` directories, or from the configuration file (see the README, "Hooks").
 *
 * ```ts
 * import type { Hook } from "/usr/share/cfs/hooks/types.ts"; // type-only: erased on load
 *
 * export default {
 *   name: "oem-tags",
 *   after: {
 *     import: (ctx) => {
 *       ctx.tags.push(`oem/golden:${ctx.config!.digest.slice(7, 19)}`);
 *     },
 *   },
 * } satisfies Hook;
 * ```
 *
 * Only type imports may come from this file (they are erased when the hook is loaded);
 * a hook's own relative imports (`./util.ts`) and `node:` modules load normally.
 *
 * Where it is: `make install` puts it in `/usr/share/cfs/hooks/types.ts` (with the few
 * modules of cfs it takes types from, in the same layout), and `cfs hook init NAME` writes a
 * hook whose import names the copy that cfs finds (that one, or this file in a checkout).
 * Nothing here imports a package, so `deno check` of a hook needs no configuration file and
 * no network.
 *
 * @module
 */
import type { FileSystem } from "../lib/tree.ts";
import type { BootEntry } from "../lib/boot/entries.ts";

export type { Directory, FileSystem, Inode, Leaf, LeafContent, Stat, Xattr } from "../lib/tree.ts";
export type { BlsEntry, BootEntry, BootFile, UkiEntry } from "../lib/boot/entries.ts";

/**
 * The image's file system as `ctx.tree` holds it (lib/tree.ts's {@link FileSystem}): a root
 * {@link Directory} whose `entries` map names to {@link Inode}s. Names are byte strings: one
 * UTF-16 code unit per byte, so an ASCII name is itself (`root.entries.get("etc")`) and a
 * UTF-8 one is its bytes (`unescape(encodeURIComponent(name))`). A file's content is
 * `inline` (at most 64 bytes, in the image) or `external` (an object of the repository, by
 * its digest). A hook may change the tree until `image` starts; what it hands back is checked
 * (`hook-tree-invalid`): an `external` file must name an object the repository has.
 */
export type HookTree = FileSystem;

/** One argument in a `ctx.$` template; each value is passed as one argument, escaped. */
export type HookShellArg =
  | string
  | number
  | boolean
  | Uint8Array
  | Array<string | number | boolean | Uint8Array>;

/** What a finished command left: its exit code and, when captured, its output. */
export interface HookCommandResult {
  /** The exit code. */
  readonly code: number;
  /** Its stdout, when captured (`.stdout("piped")`); reading it otherwise throws. */
  readonly stdout: string;
  /** Its stderr, when captured (`.stderr("piped")`); reading it otherwise throws. */
  readonly stderr: string;
}

/**
 * A command built with `ctx.$`, started when awaited (or by `text()`, `lines()`, `json()`,
 * `bytes()`). A command that exits non-zero rejects, naming the command and its code, unless
 * `noThrow()`. Its output goes to cfs's log, line by line, as the hook's messages (stdout as
 * info, stderr as warnings; field `CFS_HOOK_STREAM`), unless captured. It is killed (SIGTERM)
 * when the call is aborted (timeout, Ctrl-C).
 */
export interface HookCommand extends PromiseLike<HookCommandResult> {
  /** Runs it and resolves with its stdout, the final newline removed. */
  text(): Promise<string>;
  /** Runs it and resolves with its stdout's lines. */
  lines(): Promise<string[]>;
  /** Runs it and resolves with its stdout parsed as JSON. */
  json<T = unknown>(): Promise<T>;
  /** Runs it and resolves with its stdout's bytes. */
  bytes(): Promise<Uint8Array>;
  /** Resolves with the result whatever the exit code. */
  noThrow(): HookCommand;
  /** Drops its output instead of logging it (stdout, stderr, or both: the default). */
  quiet(which?: "stdout" | "stderr" | "both"): HookCommand;
  /** Runs it in `dir`. */
  cwd(dir: string): HookCommand;
  /** Sets environment variables for it (`undefined` removes one). */
  env(variables: Record<string, string | undefined>): HookCommand;
  /** Feeds it `text` on stdin. */
  stdinText(text: string): HookCommand;
  /** Kills it after `ms` milliseconds. */
  timeout(ms: number): HookCommand;
}

/**
 * `ctx.$`: runs commands as a shell line, `` ctx.$`date -u +%F` ``. It is dax's `$`
 * (npm:dax-sh 0.44, which has more than this names: see its documentation); this type is the
 * part cfs documents and keeps.
 */
export interface HookShell {
  /** Builds a command from a template; interpolated values are single arguments. */
  (strings: TemplateStringsArray, ...args: HookShellArg[]): HookCommand;
}

/**
 * The stages of `cfs pull`, in the order they run. `storage` (the image into cfs's own
 * containers-storage) and `label-storage` (its SELinux labels) run only with `--unified`.
 */
export type StageName =
  | "open"
  | "storage"
  | "fetch"
  | "import"
  | "label-storage"
  | "tag"
  | "label"
  | "image"
  | "boot";

/** The stages of `cfs pull`, in order. */
export const STAGES: readonly StageName[] = [
  "open",
  "storage",
  "fetch",
  "import",
  "label-storage",
  "tag",
  "label",
  "image",
  "boot",
];

/** Whether a hook runs before or after its stage. */
export type HookPhase = "before" | "after";

/** A hook function: may be async; throwing (or rejecting) stops the pipeline. */
export type HookFunction = (ctx: HookContext) => void | Promise<void>;

/** The default export of a hook module. */
export interface Hook {
  /** Names the hook in logs and errors (`hook NAME failed in ...`). */
  name: string;
  /** Functions to run before the named stages. */
  before?: Partial<Record<StageName, HookFunction>>;
  /** Functions to run after the named stages. */
  after?: Partial<Record<StageName, HookFunction>>;
  /** Longest time one call may take, in milliseconds; default 60000. */
  timeout?: number;
}

/** A structured event logger (lib/log.ts); fields follow journald naming (`BOOTC_*`-style keys). */
export interface HookLogger {
  /** An informational event with a stable 32-hex-digit message id and fields. */
  info(message: string, fields?: Record<string, string | number | boolean>): void;
  /** A warning event. */
  warn(message: string, fields?: Record<string, string | number | boolean>): void;
  /** A debug event (shown with -v). */
  debug(message: string, fields?: Record<string, string | number | boolean>): void;
}

/** One layer of the image being pulled. */
export interface HookLayer {
  /** `sha256:...` of the compressed blob. */
  digest: string;
  /** `sha256:...` of the uncompressed tar. */
  diffId: string;
  /** Media type (compression). */
  mediaType: string;
  /** Compressed size in bytes. */
  size: number;
  /** The layer stream's object id (hex), once imported. */
  verity?: string;
  /** True when this pull imported it, false when it was present; set by `import`. */
  imported?: boolean;
}

/** A content-addressed document of the image: manifest or config. */
export interface HookDocument {
  /** `sha256:...` of its bytes. */
  digest: string;
  /**
   * Its stream's object id (hex), as `import` stored it. When the pull completes it links the
   * EROFS images into the config stream and so rewrites the config and manifest streams
   * (composefs-oci 0.9.4's model): the ids the tags end up on are in the pull's result, and
   * the streams seen here become garbage for `cfs gc`.
   */
  verity?: string;
  /** The parsed JSON. */
  document: Record<string, unknown>;
}

/**
 * The containers signature policy's decision about the image (made in `fetch`, before any
 * layer is read; a rejected image never reaches a hook after `fetch`).
 */
export interface HookSignatureDecision {
  /** True: the policy accepted the image. */
  readonly accepted: boolean;
  /** Who decided: cfs itself, or skopeo for the transports cfs reads through it. */
  readonly decidedBy: "cfs" | "skopeo";
  /** The policy file. */
  readonly policy: string;
  /** The policy transport (`docker`, `oci`, ...). */
  readonly transport: string;
  /** The scope whose requirements applied; `""` the transport's default; null the global one. */
  readonly scope: string | null;
  /** Each requirement: its type, whether it accepted, and why (or which key). */
  readonly requirements: ReadonlyArray<
    { readonly type: string; readonly accepted: boolean; readonly reason: string }
  >;
}

/** What the repository offers hooks (a narrow, stable view of lib/repository.ts). */
export interface HookRepository {
  /** The repository directory. */
  readonly path: string;
  /** `fsverity-sha256-12` or `fsverity-sha512-12`. */
  readonly algorithm: string;
  /** True when fs-verity is required on every object. */
  readonly secure: boolean;
  /** The tags in the repository and the manifest digest each points at. */
  tags(): Array<{ tag: string; manifest: string | null }>;
  /** Reads an object by hex id (verified). */
  readObject(id: string): Uint8Array;
}

/**
 * What a hook sees. Fields fill in as stages complete (`manifest` after `fetch`, layer
 * verities after `import`, `tree` after `label`, `imageId` after `image`, `bootEntries`
 * after `boot`); a hook may change `tags` (until `tag` ends) and `tree` (until `image`
 * starts).
 */
export interface HookContext {
  /** The stage this call belongs to. */
  readonly stage: StageName;
  /** Before or after that stage. */
  readonly phase: HookPhase;
  /** The image reference being pulled, as given. */
  readonly reference: string;
  /** The repository; undefined before `open` has run. */
  readonly repository?: HookRepository;
  /** The image manifest (after `fetch`). */
  manifest?: HookDocument;
  /** The image config (after `fetch`). */
  config?: HookDocument;
  /** The layers in manifest order (after `fetch`; verities after `import`). */
  layers?: HookLayer[];
  /** The signature policy's decision (after `fetch`; the CLI always enforces a policy). */
  readonly signature?: HookSignatureDecision;
  /**
   * Tags to point at the manifest. `tag` starts with `localhost/bootc-<manifest digest>`;
   * hooks add more. They are written when the pipeline completes, so a pull that fails
   * leaves no new tag.
   */
  tags: string[];
  /**
   * The merged file system (after `label`: boot transform and SELinux labels applied); see
   * {@link HookTree}.
   */
  tree?: HookTree;
  /** The bootable EROFS image's id, hex (after `image`). */
  imageId?: string;
  /** The image's boot entries (after `boot`). */
  bootEntries?: BootEntry[];
  /** This hook's section of the configuration file (`hooks.<name>`), or `{}`. */
  readonly options: Record<string, unknown>;
  /** The structured logger. */
  readonly log: HookLogger;
  /** Runs commands; their output goes to cfs's log (see {@link HookShell}). */
  readonly $: HookShell;
  /** Aborted when the pull is interrupted (SIGINT) or the hook's timeout passes. */
  readonly signal: AbortSignal;
}
