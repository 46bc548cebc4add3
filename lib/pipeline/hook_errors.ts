/**
 * The errors of hooks: one that cannot be loaded ({@link HookLoadError}) and one that fails
 * while the pull runs ({@link HookFailure}), both exit code 3, and the interruption of a pull
 * ({@link PipelineInterrupted}, 130). Here rather than in run.ts or hooks.ts so that the hook
 * process host (hook_process.ts) can throw them too; both modules re-export them.
 *
 * Codes (lib/errors.ts): a hook failure is `hook-failed` (it threw or rejected, or an error of
 * its escaped: an uncaught exception or unhandled rejection during its call), `hook-timeout`,
 * `hook-exited` (its process ended: `Deno.exit`, a crash, out of memory), `hook-late-error` (an
 * uncaught exception or unhandled rejection after its call had returned), `hook-tags-invalid`
 * (`ctx.tags` left with a tag cfs does not write, or without bootc's), `hook-tree-invalid`
 * (`ctx.tree` left as something no image can be made from). A hook that cannot be loaded is
 * `hook-load-failed`, or `hook-file-unsafe` when cfs runs as root and someone else than root
 * could change the file (hook_trust.ts).
 *
 * @module
 */
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";
import type { HookPhase, StageName } from "../../hooks/types.ts";

/** The codes a {@link HookFailure} carries. */
export type HookFailureCode =
  | "hook-failed"
  | "hook-timeout"
  | "hook-exited"
  | "hook-late-error"
  | "hook-tags-invalid"
  | "hook-tree-invalid";

/** A hook file that cannot be loaded or whose default export is not a hook. */
export class HookLoadError extends CfsError {
  /** The file (or `builtin:NAME`). */
  readonly file: string;
  /** Creates the error: `hook FILE: MESSAGE`; exit code 3, as for a hook that fails running. */
  constructor(file: string, message: string, options?: CfsErrorOptions) {
    super(`hook ${file}: ${message}`, withCode(options, "hook-load-failed", 3));
    this.name = "HookLoadError";
    this.file = file;
  }
}

/** A hook threw, rejected, timed out, ended its process or broke its contract. Exit code 3. */
export class HookFailure extends CfsError {
  /** Creates `hook NAME failed in PHASE STAGE: MESSAGE`; `code` defaults to `hook-failed`. */
  constructor(
    readonly hook: string,
    readonly phase: HookPhase,
    readonly stage: StageName,
    reason: string,
    options?: ErrorOptions & { code?: HookFailureCode },
  ) {
    super(`hook ${hook} failed in ${phase} ${stage}: ${reason}`, {
      cause: options?.cause,
      code: options?.code ?? "hook-failed",
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
