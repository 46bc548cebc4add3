/**
 * cfs's side of a hook's process (hook_child.ts): start it, load the hook into it, call the
 * hook's functions with a deadline, and stop it.
 *
 * Why a process and not a Worker: Deno 2.9's `Worker.terminate()` does not stop a worker that
 * is in a synchronous loop (denoland/deno#35657: the thread keeps a core busy until the
 * process exits), `Deno.exit()` in a worker ends the worker without any event the parent can
 * see, and a worker that runs out of memory takes the whole process down (V8 aborts on an
 * out-of-memory isolate). A process can be killed, its end is seen at once (with its status),
 * its memory is its own, and the commands a hook runs cannot write into cfs's stdout (the
 * conversation goes over a Unix socket; the hook's stdout is copied to cfs's stderr, its stderr
 * is cfs's).
 *
 * The price is the start of one Deno process per hook, once per pull (the README measures it);
 * each call is then a round trip on the socket.
 *
 * **The compiled binary.** `deno compile` builds one executable holding cfs's module graph;
 * it cannot run another entry module, and `import()` of a file outside that graph fails
 * (denoland/deno#18327), which is why hooks are handed over as `data:` URLs (hooks.ts). The
 * binary starts its hook processes as itself: `cfs __hook-child SOCKET` (cli.ts passes that
 * to {@link runHookChild}); from a checkout the child is `deno run` of hook_child.ts with the
 * checkout's deno.json. `Deno.build.standalone` tells the two apart.
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import { join } from "node:path";
import type { HookPhase, StageName } from "../../hooks/types.ts";
import { STAGES } from "../../hooks/types.ts";
import {
  type CallContext,
  type FailureKind,
  HOOK_CHILD_COMMAND,
  type HostMessage,
  readMessages,
  writeMessage,
} from "./hook_protocol.ts";

/** After an abort (timeout, Ctrl-C), how long the call gets to settle before its process dies. */
export const ABORT_GRACE_MS = 500;

/** Default time to start a hook's process and load its module (ms). */
export const DEFAULT_LOAD_TIMEOUT_MS = 60_000;

/** What a hook's module declared: its name, timeout and the stages it has functions for. */
export interface HookInfo {
  /** `name` of the default export. */
  name: string;
  /** `timeout` of the default export (ms), if any. */
  timeout?: number;
  /** Stages with a `before` function. */
  before: StageName[];
  /** Stages with an `after` function. */
  after: StageName[];
}

/** How a call (or a hook's process) failed. */
export type CallFailureKind = FailureKind | "timeout" | "exited" | "interrupted" | "protocol";

/** A call that failed, or a hook process that failed between calls. */
export class HookCallError extends CfsError {
  /** Creates the error. */
  constructor(
    /** What happened. */
    readonly kind: CallFailureKind,
    message: string,
    /** For a failure between calls: the call it followed. */
    readonly after?: { phase: HookPhase; stage: StageName },
  ) {
    // Turned into a HookFailure with a specific code by the pipeline (run.ts); exit 3 either way.
    super(message, { code: "hook-failed", exitCode: 3 });
    this.name = "HookCallError";
  }
}

/** What a call hands back: the tags and tree, where the hook may change them. */
export interface CallResult {
  /** `ctx.tags` as the hook left it (unchecked), when they were open. */
  tags?: unknown;
  /** `ctx.tree` as the hook left it (unchecked), when it was open. */
  tree?: unknown;
}

/** Options of {@link HookProcess.call}. */
export interface CallOptions {
  /** The call's deadline (ms). */
  timeoutMs: number;
  /** Interrupts the call (Ctrl-C): it fails with kind `interrupted`. */
  signal?: AbortSignal;
  /** Receives what the hook logs. */
  onLog?: (
    level: "info" | "warn" | "debug",
    message: string,
    fields: Record<string, string | number | boolean>,
  ) => void;
}

/**
 * The command that starts a hook's process listening on `socket` (see the module doc): the
 * compiled cfs runs itself; cfs bundled into one file (the initramfs drop-in, lib/vm/dropin.ts:
 * every module's `import.meta.url` is the bundle's) runs the bundle again; from source, Deno
 * runs hook_child.ts with the checkout's deno.json.
 */
export function hookChildCommand(socket: string): { command: string; args: string[] } {
  if (Deno.build.standalone) {
    return { command: Deno.execPath(), args: [HOOK_CHILD_COMMAND, socket] };
  }
  if (!import.meta.url.endsWith("/lib/pipeline/hook_process.ts")) {
    const bundle = new URL(import.meta.url);
    if (bundle.protocol !== "file:") {
      throw new Error(`cannot start a hook process from ${bundle.href} (not a file)`);
    }
    return {
      command: Deno.execPath(),
      args: [
        "run",
        "--allow-all",
        "--quiet",
        "--no-prompt",
        "--no-config",
        "--no-remote",
        decodeURIComponent(bundle.pathname),
        HOOK_CHILD_COMMAND,
        socket,
      ],
    };
  }
  const child = new URL("./hook_child.ts", import.meta.url);
  const config = new URL("../../deno.json", import.meta.url);
  if (child.protocol !== "file:") {
    throw new Error(`cannot start a hook process from ${child.href} (not a file)`);
  }
  return {
    command: Deno.execPath(),
    args: [
      "run",
      "--allow-all",
      "--quiet",
      "--no-prompt",
      "--config",
      config.pathname,
      child.pathname,
      socket,
    ],
  };
}

/** Waits `ms`, or less when `until` settles first. */
function delay(ms: number, until: Promise<unknown>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    until.then(() => {}, () => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
  ]).finally(() => clearTimeout(timer));
}

function statusText(status: Deno.CommandStatus): string {
  return status.signal ? `was killed by ${status.signal}` : `exited with status ${status.code}`;
}

const LEVELS = new Set(["info", "warn", "debug"]);
const KINDS = new Set<string>(["threw", "uncaught", "late", "tags", "tree"]);

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function checkStages(v: unknown): StageName[] | undefined {
  if (!Array.isArray(v) || !v.every((s) => STAGES.includes(s))) return undefined;
  return v as StageName[];
}

interface Waiter {
  kind: "load" | "call" | "sync";
  id: number;
  resolve(value: unknown): void;
  reject(error: HookCallError): void;
  onLog?: CallOptions["onLog"];
}

/** A running hook process; see the module documentation. */
export class HookProcess {
  #child: Deno.ChildProcess;
  #conn: Deno.Conn;
  #waiter: Waiter | undefined;
  #nextId = 0;
  #closing = false;
  #exited: Deno.CommandStatus | undefined;
  #last: { phase: HookPhase; stage: StageName } | undefined;
  #late: HookCallError | undefined;
  #done: Promise<unknown>;
  #writing: Promise<void> = Promise.resolve();
  #stopping: Promise<void> = Promise.resolve();

  private constructor(child: Deno.ChildProcess, conn: Deno.Conn) {
    this.#child = child;
    this.#conn = conn;
    const pump = (async () => {
      try {
        for await (const chunk of child.stdout) {
          for (let off = 0; off < chunk.length;) {
            off += await Deno.stderr.write(chunk.subarray(off));
          }
        }
      } catch { /* the process is gone */ }
    })();
    const reading = (async () => {
      try {
        for await (const message of readMessages(conn)) this.#onMessage(message);
      } catch (e) {
        this.#broken(`its connection to cfs broke: ${(e as Error).message}`);
      }
    })();
    const exit = child.status.then((status) => this.#onExit(status));
    this.#done = Promise.all([pump, reading, exit]);
  }

  /**
   * Starts a process for the hook `source` and loads it there: a `data:` URL (`url`) or a
   * built-in hook (`builtin`). Throws a {@link HookCallError} (kind `threw` for a module that
   * does not load or validate, `exited`, `timeout`) when it does not come up.
   */
  static async start(
    load: { builtin?: string; url?: string },
    options: { loadTimeoutMs?: number } = {},
  ): Promise<{ process: HookProcess; info: HookInfo }> {
    const timeoutMs = options.loadTimeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const dir = await Deno.makeTempDir({ prefix: "cfs-hook-" });
    let child: Deno.ChildProcess | undefined;
    let conn: Deno.Conn | undefined;
    try {
      const socket = join(dir, "socket");
      const listener = Deno.listen({ transport: "unix", path: socket });
      try {
        const { command, args } = hookChildCommand(socket);
        child = new Deno.Command(command, {
          args,
          stdin: "null",
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        const started = child;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const accepted = listener.accept();
        accepted.catch(() => {});
        conn = await Promise.race([
          accepted,
          started.status.then((s) => {
            throw new HookCallError("exited", `its process ${statusText(s)} while starting`);
          }),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () =>
                reject(
                  new HookCallError("timeout", `its process did not start in ${timeoutMs} ms`),
                ),
              timeoutMs,
            );
          }),
        ]).finally(() => clearTimeout(timer));
      } finally {
        listener.close();
      }
    } catch (e) {
      if (child) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
        await child.status;
        await child.stdout.cancel().catch(() => {});
      }
      throw e;
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
    const process = new HookProcess(child!, conn!);
    try {
      const info = await process.#request(
        { t: "load", ...load },
        "load",
        Math.max(deadline - Date.now(), 1),
        `did not load in ${timeoutMs} ms`,
      ) as HookInfo;
      return { process, info };
    } catch (e) {
      await process.close();
      throw e;
    }
  }

  /**
   * Calls the hook's `phase` `stage` function with `ctx`. Resolves with the tags and tree it
   * hands back (unchecked: the caller checks them); rejects with a {@link HookCallError}.
   */
  async call(
    phase: HookPhase,
    stage: StageName,
    ctx: CallContext,
    options: CallOptions,
  ): Promise<CallResult> {
    this.#last = { phase, stage };
    const id = ++this.#nextId;
    return await this.#request(
      { t: "call", id, phase, stage, ctx },
      "call",
      options.timeoutMs,
      `timed out after ${options.timeoutMs} ms`,
      options,
    ) as CallResult;
  }

  /**
   * Waits until the process has handled everything its last call left behind (one macrotask
   * there), so that a rejection that call left unhandled is known: see {@link late}.
   */
  async sync(timeoutMs: number): Promise<void> {
    const id = ++this.#nextId;
    await this.#request(
      { t: "sync", id },
      "sync",
      timeoutMs,
      `did not answer in ${timeoutMs} ms after its last call (busy after returning?)`,
    );
  }

  /** The hook's last call, if there was one. */
  get lastCall(): { phase: HookPhase; stage: StageName } | undefined {
    return this.#last;
  }

  /** A failure between calls (late rejection, exit), if there was one. */
  get late(): HookCallError | undefined {
    return this.#late;
  }

  /**
   * Kills the process (whatever it is doing; after the grace an aborted call gets) and waits
   * for it to be gone.
   */
  async close(): Promise<void> {
    this.#closing = true;
    await this.#stopping;
    this.#kill();
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    await this.#done;
  }

  async #request(
    message: HostMessage,
    kind: Waiter["kind"],
    timeoutMs: number,
    timeoutText: string,
    options: Partial<CallOptions> = {},
  ): Promise<unknown> {
    // A failure between calls is the one to report: the process that ended after its call had
    // returned is why this request cannot run.
    if (this.#late) throw this.#late;
    if (this.#exited) {
      throw new HookCallError("exited", `its process ${statusText(this.#exited)} earlier`);
    }
    if (this.#waiter) throw new Error(`hook process busy with a ${this.#waiter.kind}`);
    const id = "id" in message ? message.id : 0;
    let onAbort: (() => void) | undefined;
    const settled = new Promise<unknown>((resolve, reject) => {
      this.#waiter = { kind, id, resolve, reject, onLog: options.onLog };
    });
    const stop = (error: HookCallError, timeout: boolean) => {
      if (this.#waiter?.id !== id || this.#waiter.kind !== kind) return;
      // The request fails now. The hook is asked to stop (its signal fires, its commands get
      // SIGTERM) and gets a moment for that; then its process is killed: a hook that ignores
      // its signal, or loops, ends there. Nothing it says after this counts.
      this.#closing = true;
      this.#settle((w) => w.reject(error));
      this.#send({ t: "abort", reason: error.message, timeout }).catch(() => {});
      this.#stopping = delay(ABORT_GRACE_MS, this.#child.status).then(() => this.#kill());
    };
    const timer = setTimeout(
      () => stop(new HookCallError("timeout", timeoutText), true),
      timeoutMs,
    );
    if (options.signal) {
      const signal = options.signal;
      onAbort = () => stop(new HookCallError("interrupted", "interrupted"), false);
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    }
    try {
      await this.#send(message).catch((e) => {
        this.#settle((w) => w.reject(new HookCallError("protocol", `cannot send: ${e.message}`)));
      });
      return await settled;
    } finally {
      clearTimeout(timer);
      if (onAbort) options.signal!.removeEventListener("abort", onAbort);
    }
  }

  /** Writes one message after those before it (an abort must not cut into a call's bytes). */
  #send(message: HostMessage): Promise<void> {
    const next = this.#writing.then(() => writeMessage(this.#conn, message));
    this.#writing = next.catch(() => {});
    return next;
  }

  #kill(): void {
    if (this.#exited !== undefined) return;
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
  }

  /** Ends the pending request with `how`, if one is pending. */
  #settle(how: (w: Waiter) => void): void {
    const w = this.#waiter;
    if (!w) return;
    this.#waiter = undefined;
    how(w);
  }

  #failLate(error: HookCallError): void {
    this.#late ??= error;
  }

  #broken(reason: string): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#kill();
    const error = new HookCallError("protocol", reason, this.#last);
    if (this.#waiter) this.#settle((w) => w.reject(error));
    else this.#failLate(error);
  }

  #onExit(status: Deno.CommandStatus): void {
    this.#exited = status;
    if (this.#closing) return;
    const w = this.#waiter;
    if (w) {
      const when = w.kind === "load" ? "while loading" : w.kind === "call" ? "during the call" : "";
      this.#settle((w) =>
        w.reject(
          new HookCallError(
            "exited",
            `its process ${statusText(status)} ${when} (a hook must not end its process)`.trim(),
          ),
        )
      );
    } else {
      this.#failLate(
        new HookCallError(
          "exited",
          `its process ${statusText(status)} after its call had returned`,
          this.#last,
        ),
      );
    }
  }

  #onMessage(raw: unknown): void {
    if (this.#closing) return;
    if (!isRecord(raw) || typeof raw.t !== "string") {
      return this.#broken("it sent a malformed message");
    }
    const w = this.#waiter;
    switch (raw.t) {
      case "log":
        if (!LEVELS.has(raw.level as string) || typeof raw.message !== "string") {
          return this.#broken("it sent a malformed log message");
        }
        if (w?.onLog) {
          w.onLog(
            raw.level as "info" | "warn" | "debug",
            raw.message,
            isRecord(raw.fields) ? raw.fields as Record<string, string | number | boolean> : {},
          );
        } else {
          // Output outside a call (a module's top level while it loads, a timer between calls)
          // has no call's log to go to: stderr, as before hooks' output was logged.
          console.error(`cfs: hook output: ${raw.message}`);
        }
        return;
      case "loaded": {
        const before = checkStages(raw.before);
        const after = checkStages(raw.after);
        if (w?.kind !== "load" || typeof raw.name !== "string" || !before || !after) {
          return this.#broken("it sent a malformed 'loaded' message");
        }
        const timeout = raw.timeout;
        if (
          timeout !== undefined &&
          !(Number.isInteger(timeout) && (timeout as number) > 0 &&
            (timeout as number) <= 86_400_000)
        ) {
          return this.#broken("it sent a malformed timeout");
        }
        return this.#settle((w) =>
          w.resolve({ name: raw.name, timeout: timeout as number | undefined, before, after })
        );
      }
      case "load-failed":
        if (w?.kind !== "load") return this.#broken("it sent 'load-failed' out of turn");
        return this.#settle((w) => w.reject(new HookCallError("threw", String(raw.message))));
      case "done":
        if (w?.kind !== "call" || raw.id !== w.id) {
          return this.#broken("it sent 'done' out of turn");
        }
        return this.#settle((w) => w.resolve({ tags: raw.tags, tree: raw.tree }));
      case "failed": {
        if (!KINDS.has(raw.kind as string)) return this.#broken("it sent a malformed failure");
        const after = isRecord(raw.after) && STAGES.includes(raw.after.stage as StageName) &&
            (raw.after.phase === "before" || raw.after.phase === "after")
          ? raw.after as { phase: HookPhase; stage: StageName }
          : this.#last;
        const error = new HookCallError(
          raw.kind as FailureKind,
          String(raw.message),
          raw.kind === "late" ? after : undefined,
        );
        if (w?.kind === "call" && raw.id === w.id) return this.#settle((w) => w.reject(error));
        if (w?.kind === "load") return this.#settle((w) => w.reject(error));
        return this.#failLate(error);
      }
      case "synced":
        if (w?.kind !== "sync" || raw.id !== w.id) {
          return this.#broken("it sent 'synced' out of turn");
        }
        return this.#settle((w) => w.resolve(undefined));
      default:
        return this.#broken(`it sent an unknown message '${String(raw.t).slice(0, 20)}'`);
    }
  }
}
