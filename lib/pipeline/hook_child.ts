/**
 * The process one hook runs in: cfs (hook_process.ts) starts it, hands it the hook's module (a
 * `data:` URL, or the name of a built-in hook), and asks it to call the hook's functions, one
 * at a time, over a Unix socket (hook_protocol.ts). Everything the hook can do to a process is
 * done to this one: `Deno.exit`, an endless loop, an uncaught exception, an unhandled
 * rejection, running out of memory. cfs sees each as the hook's failure, and kills this
 * process when the call's time is up or the pull ends.
 *
 * The context a call gets is built here from the data cfs sends (hooks/types.ts
 * `HookContext`): what the API calls read-only is frozen (manifest, config, layers, boot
 * entries, options, and `tags` after the `tag` stage: a change throws a TypeError in the hook),
 * `tags` and `tree` go back to cfs after the calls that may change them, `log` sends events to
 * cfs's log, `$` is dax's, with every command it starts killed (SIGTERM) when the call is
 * aborted, and `repository` is opened here, read-only, when a hook first uses it.
 *
 * What a hook prints goes to cfs's log, line by line, as the hook's messages (field
 * `CFS_HOOK_STREAM`: `stdout` or `stderr`): the output of the commands `ctx.$` starts (unless
 * the hook captures it, `.text()`, or sends it elsewhere) and the `console` methods. These
 * lines travel over the socket with the call's other messages, so they reach the log before
 * the call's end, in order, and never cfs's stdout, where `--json` output goes. Bytes written
 * to the process's own stdout some other way still end on cfs's stderr (hook_process.ts).
 *
 * Started as `cfs __hook-child SOCKET` by the compiled binary (cli.ts) and as
 * `deno run ... lib/pipeline/hook_child.ts SOCKET` from a checkout.
 *
 * @module
 */
import { build$, CommandBuilder, KillController } from "dax";
import type {
  Hook,
  HookContext,
  HookFunction,
  HookLogger,
  HookPhase,
  HookRepository,
  HookShell,
  StageName,
} from "../../hooks/types.ts";
import { format } from "node:util";
import { BUILTIN_HOOKS } from "./builtin.ts";
import { hookOfModule } from "./hook_module.ts";
import {
  type CallContext,
  type ChildMessage,
  encodeMessage,
  type FailureKind,
  type HostMessage,
  readMessages,
  type RepositoryInfo,
} from "./hook_protocol.ts";
import { ObjectId, Repository } from "../repository/mod.ts";
import { listTags } from "../oci/store.ts";
import { Field } from "../log.ts";

import { HOOK_CHILD_COMMAND } from "./hook_protocol.ts";
export { HOOK_CHILD_COMMAND };

/** Longest message text sent for an error. */
const MAX_REASON = 2000;

/**
 * A thrown value as one line of text, whatever it is: an Error's message, else `String(value)`,
 * else its tag; a value whose getters or `toString` throw does not get to throw again here.
 */
export function describeThrown(value: unknown): string {
  let text: string | undefined;
  try {
    if (value instanceof Error) {
      const message = value.message;
      text = typeof message === "string" && message !== "" ? message : String(value.name);
    }
  } catch { /* a hostile getter: try the next way */ }
  if (text === undefined) {
    try {
      text = String(value);
    } catch {
      try {
        text = `${Object.prototype.toString.call(value)} (its toString throws)`;
      } catch {
        text = "a thrown value that cannot be shown";
      }
    }
  }
  const line = text.split("\n").find((l) => l.trim() !== "") ?? "(empty message)";
  // deno-lint-ignore no-control-regex
  return line.replace(/[\x00-\x1f\x7f]/g, " ").slice(0, MAX_REASON);
}

/** Freezes plain data in place, all the way down (byte arrays cannot be frozen: left as they are). */
function deepFreeze<T>(value: T): T {
  if (typeof value !== "object" || value === null || ArrayBuffer.isView(value)) return value;
  if (Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const key of Reflect.ownKeys(value)) {
    deepFreeze((value as Record<PropertyKey, unknown>)[key]);
  }
  return value;
}

/** `tags` once they are closed: reading works, any change throws a TypeError saying why. */
function closedTags(tags: string[], where: string): string[] {
  const refuse = (): never => {
    throw new TypeError(`ctx.tags cannot change in ${where}: tags are decided until 'tag' ends`);
  };
  return new Proxy(Object.freeze([...tags]) as string[], {
    set: refuse,
    defineProperty: refuse,
    deleteProperty: refuse,
  });
}

/** Log fields as cfs's log takes them: strings, numbers and booleans under string keys. */
function logFields(fields: unknown): Record<string, string | number | boolean> | undefined {
  if (typeof fields !== "object" || fields === null) return undefined;
  const out: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] = typeof value === "number" || typeof value === "boolean" ? value : String(value);
  }
  return out;
}

/** Longest line of a hook's output sent as one log message; the rest of the line is cut. */
const MAX_OUTPUT_LINE = 4000;

/**
 * A hook's output as log lines: bytes in (a dax `WriterSync`), one `emit` per complete line,
 * the last partial line on {@link flush}. Empty lines are dropped; `\r\n` ends a line too.
 */
export class OutputLines {
  #decoder = new TextDecoder();
  #pending = "";

  /** Creates the splitter; `emit` gets each line without its end. */
  constructor(readonly emit: (line: string) => void) {}

  /** Takes bytes; always all of them. */
  writeSync(bytes: Uint8Array): number {
    this.#take(this.#decoder.decode(bytes, { stream: true }));
    return bytes.length;
  }

  /** Takes text (a console call's formatted line). */
  writeText(text: string): void {
    this.#take(text);
  }

  /** Sends what is left of an unfinished line. */
  flush(): void {
    this.#take(this.#decoder.decode());
    const rest = this.#pending;
    this.#pending = "";
    this.#line(rest);
  }

  #take(text: string): void {
    const lines = (this.#pending + text).split("\n");
    this.#pending = lines.pop()!;
    for (const line of lines) this.#line(line);
  }

  #line(line: string): void {
    const text = line.endsWith("\r") ? line.slice(0, -1) : line;
    if (text.trim() !== "") this.emit(text.slice(0, MAX_OUTPUT_LINE));
  }
}

/** The streams each capturing method of a dax command reads (its argument, else the default). */
const CAPTURES: Record<string, (kind: unknown) => Array<"stdout" | "stderr">> = {
  text: (kind) => streamsOf(kind ?? "stdout"),
  lines: (kind) => streamsOf(kind ?? "stdout"),
  bytes: (kind) => streamsOf(kind ?? "stdout"),
  json: (kind) => streamsOf(kind ?? "stdout"),
  quiet: (kind) => streamsOf(kind ?? "combined"),
};

function streamsOf(kind: unknown): Array<"stdout" | "stderr"> {
  if (kind === "stdout" || kind === "stderr") return [kind];
  return ["stdout", "stderr"];
}

/**
 * dax's `$` with the output of its commands going to the log by default, but captured where
 * the hook asks for it. dax captures (`text()`, `lines()`, `json()`, `bytes()`, `quiet()`)
 * only streams that would be inherited; a stream sent to a writer, as here, stays there and
 * its text is "no longer available". So each of those calls first sets the streams it reads
 * to `piped`, as they would be from `inherit`. Every command builder `$` hands out (and each
 * one its methods return) is wrapped the same way.
 */
function capturingWhenAsked<T extends object>($: T): T {
  const wrap = (value: unknown): unknown => {
    if (value instanceof CommandBuilder) return capturing(value);
    return value;
  };
  const capturing = (builder: CommandBuilder): CommandBuilder =>
    new Proxy(builder, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          let self = target;
          const streams = typeof prop === "string" && Object.hasOwn(CAPTURES, prop)
            ? CAPTURES[prop](args[0])
            : [];
          for (const stream of streams) self = self[stream]("piped");
          return wrap(
            (self[prop as keyof CommandBuilder] as (...a: unknown[]) => unknown)(...args),
          );
        };
      },
    });
  return new Proxy($, {
    apply: (target, self, args) => wrap(Reflect.apply(target as () => unknown, self, args)),
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => wrap(Reflect.apply(value, target, args));
    },
  });
}

/** Runs the hook process on `socketPath` until cfs closes the connection; never returns. */
export async function runHookChild(socketPath: string): Promise<never> {
  const conn = await Deno.connect({ transport: "unix", path: socketPath });
  let writing = Promise.resolve();
  const send = (message: ChildMessage): void => {
    let bytes: Uint8Array;
    try {
      bytes = encodeMessage(message);
    } catch (e) {
      bytes = encodeMessage({
        t: "failed",
        id: "id" in message ? message.id : undefined,
        kind: "threw",
        message: `cannot send ${message.t}: ${describeThrown(e)}`,
      });
    }
    writing = writing.then(async () => {
      for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    }).catch(() => Deno.exit(70)); // cfs is gone: nothing left to do
  };

  // What the hook prints: to the log (see the module doc), stdout lines as info, stderr as warn.
  const output = {
    stdout: new OutputLines((line) =>
      send({ t: "log", level: "info", message: line, fields: { [Field.HOOK_STREAM]: "stdout" } })
    ),
    stderr: new OutputLines((line) =>
      send({ t: "log", level: "warn", message: line, fields: { [Field.HOOK_STREAM]: "stderr" } })
    ),
  };
  // A console call is a line of its own, even after a command's unfinished one.
  const print = (stream: OutputLines) => (...args: unknown[]) => {
    stream.flush();
    stream.writeText(`${format(...args)}\n`);
  };
  console.log = console.info = console.debug = print(output.stdout);
  console.warn = console.error = print(output.stderr);

  const kill = new KillController();
  const $: HookShell = capturingWhenAsked(build$({
    commandBuilder: (builder) =>
      builder.signal(kill.signal).stdout(output.stdout).stderr(output.stderr),
  }));
  let hook: Hook | undefined;
  let loading = false;
  let loadFailure: string | undefined;
  let current: { id: number; controller: AbortController; settled: boolean } | undefined;
  let lastCall: { phase: HookPhase; stage: StageName } | undefined;
  let repository: { info: RepositoryInfo; view: HookRepository } | undefined;

  const fail = (id: number | undefined, kind: FailureKind, message: string) =>
    send({ t: "failed", id, kind, message });

  // An exception or rejection nobody handles is the hook's failure: the call's when one runs,
  // else a late one, which cfs reports before it writes any tag.
  const escaped = (what: string, value: unknown) => {
    const message = `${what}: ${describeThrown(value)}`;
    if (loading) {
      loadFailure ??= message;
    } else if (current && !current.settled) {
      current.settled = true;
      fail(current.id, "uncaught", message);
    } else {
      send({
        t: "failed",
        kind: "late",
        message: `${message} (after its call had returned)`,
        after: lastCall,
      });
    }
  };
  globalThis.addEventListener("error", (e) => {
    e.preventDefault();
    escaped("uncaught exception", e.error ?? e.message);
  });
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    escaped("unhandled rejection", e.reason);
  });
  // Ctrl-C reaches the whole process group: it aborts the call; cfs decides the rest.
  Deno.addSignalListener("SIGINT", () => abort(new DOMException("interrupted", "AbortError")));

  function abort(reason: DOMException): void {
    current?.controller.abort(reason);
    kill.kill("SIGTERM");
  }

  const logger: HookLogger = Object.freeze({
    info: (message: string, fields?: Record<string, string | number | boolean>) =>
      send({ t: "log", level: "info", message: String(message), fields: logFields(fields) }),
    warn: (message: string, fields?: Record<string, string | number | boolean>) =>
      send({ t: "log", level: "warn", message: String(message), fields: logFields(fields) }),
    debug: (message: string, fields?: Record<string, string | number | boolean>) =>
      send({ t: "log", level: "debug", message: String(message), fields: logFields(fields) }),
  });

  const repositoryView = (info: RepositoryInfo): HookRepository => {
    if (repository?.info.path === info.path) return repository.view;
    let repo: Repository | undefined;
    const open = () => repo ??= Repository.open(info.path, { upgrade: false });
    const view: HookRepository = Object.freeze({
      path: info.path,
      algorithm: info.algorithm,
      secure: info.secure,
      tags: () =>
        listTags(open()).map((t) => ({ tag: t.tag, manifest: t.manifestDigest as string | null })),
      readObject: (id: string) => open().readObject(ObjectId.parse(id, open().algorithm)),
    });
    repository = { info, view };
    return view;
  };

  const context = (
    message: Extract<HostMessage, { t: "call" }>,
    signal: AbortSignal,
  ): HookContext => {
    const c: CallContext = message.ctx;
    const ctx = {};
    const define = (key: string, value: unknown, writable = false) =>
      Object.defineProperty(ctx, key, { value, writable, enumerable: true });
    define("stage", message.stage);
    define("phase", message.phase);
    define("reference", c.reference);
    define("repository", c.repository && repositoryView(c.repository));
    define("manifest", deepFreeze(c.manifest));
    define("config", deepFreeze(c.config));
    define("layers", deepFreeze(c.layers));
    define("signature", deepFreeze(c.signature));
    const where = `${message.phase} ${message.stage}`;
    define("tags", c.tagsOpen ? c.tags : closedTags(c.tags, where), c.tagsOpen);
    define("tree", c.tree, c.treeOpen);
    define("imageId", c.imageId);
    define("bootEntries", deepFreeze(c.bootEntries));
    define("options", deepFreeze(c.options ?? {}));
    define("log", logger);
    define("$", $);
    define("signal", signal);
    return Object.seal(ctx) as HookContext;
  };

  const call = async (message: Extract<HostMessage, { t: "call" }>) => {
    const fn: HookFunction | undefined = hook?.[message.phase]?.[message.stage];
    const controller = new AbortController();
    const mine = { id: message.id, controller, settled: false };
    current = mine;
    lastCall = { phase: message.phase, stage: message.stage };
    let thrown: { value: unknown } | undefined;
    let ctx: HookContext | undefined;
    try {
      if (!fn) throw new Error(`no ${message.phase} ${message.stage} function`);
      ctx = context(message, controller.signal);
      await fn(ctx);
    } catch (e) {
      thrown = { value: e };
    }
    // A rejection the call left unhandled surfaces after its microtasks: one macrotask later.
    await new Promise((r) => setTimeout(r, 0));
    output.stdout.flush();
    output.stderr.flush();
    if (current === mine) current = undefined;
    if (mine.settled) return;
    mine.settled = true;
    if (thrown) return fail(message.id, "threw", describeThrown(thrown.value));
    const reply: ChildMessage = { t: "done", id: message.id };
    if (message.ctx.tagsOpen) reply.tags = ctx!.tags;
    if (message.ctx.treeOpen) reply.tree = ctx!.tree;
    try {
      encodeMessage(reply);
    } catch (e) {
      const tagsOk = (() => {
        try {
          encodeMessage({ t: "done", id: message.id, tags: reply.tags });
          return true;
        } catch {
          return false;
        }
      })();
      const what = tagsOk ? "tree" : "tags";
      return fail(message.id, what, `ctx.${what} cannot go back to cfs: ${describeThrown(e)}`);
    }
    send(reply);
  };

  const load = async (message: Extract<HostMessage, { t: "load" }>) => {
    loading = true;
    let result: Hook | string;
    try {
      let mod: Record<string, unknown> | undefined;
      if (message.builtin !== undefined) {
        mod = BUILTIN_HOOKS[message.builtin];
        if (!mod) throw new Error(`no such built-in hook ${message.builtin}`);
      } else {
        try {
          mod = await import(String(message.url));
        } catch (e) {
          throw new Error(`failed to load: ${describeThrown(e)}`);
        }
      }
      result = hookOfModule(mod!);
    } catch (e) {
      result = describeThrown(e);
    }
    await new Promise((r) => setTimeout(r, 0));
    loading = false;
    if (loadFailure !== undefined) result = `failed to load: ${loadFailure}`;
    if (typeof result === "string") return send({ t: "load-failed", message: result });
    hook = result;
    send({
      t: "loaded",
      name: hook.name,
      timeout: hook.timeout,
      before: Object.keys(hook.before ?? {}).filter((s) => hook!.before![s as never]),
      after: Object.keys(hook.after ?? {}).filter((s) => hook!.after![s as never]),
    } as ChildMessage);
  };

  try {
    for await (const raw of readMessages(conn)) {
      const message = raw as HostMessage;
      switch (message.t) {
        case "load":
          await load(message);
          break;
        case "call":
          // Not awaited: an abort must get through while the call runs.
          call(message);
          break;
        case "abort":
          abort(
            new DOMException(
              String(message.reason),
              message.timeout ? "TimeoutError" : "AbortError",
            ),
          );
          break;
        case "sync":
          setTimeout(() => send({ t: "synced", id: message.id }), 0);
          break;
      }
    }
  } catch {
    // A broken connection: cfs is gone or stopped listening.
  }
  Deno.exit(0);
}

if (import.meta.main) {
  const socket = Deno.args[0];
  if (!socket) {
    console.error(`usage: ${HOOK_CHILD_COMMAND} SOCKET (started by cfs pull, not by hand)`);
    Deno.exit(2);
  }
  await runHookChild(socket);
}
