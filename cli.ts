/**
 * The cfs binary's entry point: global options, dispatch to a command module, and the
 * mapping of errors to one-line messages and exit codes (each error's `exitCode`: 1 failure,
 * 2 usage, 3 hook, 4 rejected by the signature policy, 130 interrupted; see lib/errors.ts).
 *
 * With `--json` anywhere on the command line a failure is one JSON line on stdout,
 * `{"error": {"code", "message", "exitCode"}}`, where the command's JSON result would have been
 * (so a script reads one JSON document from stdout either way), and nothing on stderr but what
 * `-v` adds. Otherwise it is `cfs: MESSAGE` on stderr. Either way the message is one line of at
 * most {@link MAX_ERROR_LINE} characters, shortened in the middle.
 *
 * Command modules are imported when their command runs (see `lazy`), by string-literal
 * specifiers so that `deno compile` includes each of them.
 *
 * @module
 */
import {
  type CommandHandler,
  extractGlobals,
  type GlobalOptions,
  parseLeadingGlobals,
  println,
  UsageError,
} from "./lib/cli/command.ts";
import { clipMiddle, errorCode, errorExitCode, MAX_ERROR_LINE } from "./lib/errors.ts";
import { commandHelp, generalHelp, VERSION } from "./lib/cli/help.ts";
import { type CommandSpec, findCommand, subcommands, topLevelCommands } from "./lib/cli/table.ts";
import { didYouMean } from "./lib/cli/suggest.ts";
import { prepareTerminalOutput } from "./lib/log.ts";

import { HOOK_CHILD_COMMAND } from "./lib/pipeline/hook_protocol.ts";

/**
 * A handler loaded when its command runs: command modules pull in zod, dax, openpgp, sucrase
 * and the rest, which `cfs --version`, `cfs help` or any one command need not pay for (start-up
 * fell from 0.45 s to under 0.1 s). The specifiers are string literals, so `deno compile`
 * still includes every module.
 */
function lazy<M>(load: () => Promise<M>, pick: (m: M) => CommandHandler): CommandHandler {
  return async (args, globals) => await pick(await load())(args, globals);
}

const image = () => import("./lib/cli/image.ts");
const pull = () => import("./lib/cli/pull.ts");
const repo = () => import("./lib/cli/repo.ts");
const oci = () => import("./lib/cli/oci.ts");
const meta = () => import("./lib/cli/meta.ts");

/**
 * The handler of each top-level command. Names, options and help are in the command table
 * (lib/cli/table.ts); a unit test checks that both list the same commands.
 */
export const HANDLERS: Record<string, CommandHandler> = {
  init: lazy(repo, (m) => m.initCommand),
  digest: lazy(() => import("./lib/cli/digest.ts"), (m) => m.digestCommand),
  "compute-id": lazy(image, (m) => m.computeIdCommand),
  "compute-karg": lazy(image, (m) => m.computeKargCommand),
  "create-dumpfile": lazy(image, (m) => m.createDumpfileCommand),
  "create-image": lazy(image, (m) => m.createImageCommand),
  "image-objects": lazy(image, (m) => m.imageObjectsCommand),
  "dump-files": lazy(image, (m) => m.dumpFilesCommand),
  mount: lazy(image, (m) => m.mountCommand),
  images: lazy(repo, (m) => m.imagesCommand),
  cat: lazy(oci, (m) => m.catCommand),
  oci: lazy(oci, (m) => m.ociCommand),
  pull: lazy(pull, (m) => m.pullCommand),
  "boot-entries": lazy(pull, (m) => m.bootEntriesCommand),
  fsck: lazy(repo, (m) => m.fsckCommand),
  gc: lazy(repo, (m) => m.gcCommand),
  "setup-root": lazy(() => import("./lib/cli/setup_root.ts"), (m) => m.setupRootCommand),
  initramfs: lazy(() => import("./lib/cli/initramfs.ts"), (m) => m.initramfsCommand),
  "vm-test": lazy(() => import("./lib/cli/vm_test.ts"), (m) => m.vmTestCommand),
  hook: lazy(() => import("./lib/cli/hook.ts"), (m) => m.hookCommand),
  help: lazy(meta, (m) => m.helpCommand),
  completion: lazy(meta, (m) => m.completionCommand),
  man: lazy(meta, (m) => m.manCommand),
};

/** Whether `flag` is among the options of `args` (before a `--`). */
function hasFlag(args: readonly string[], ...flags: string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some((a) => flags.includes(a));
}

/**
 * The table entry a command line names: `oci pull` for `oci pull ...` (the subcommand is the
 * first argument after `oci` that is not an option), else the top-level command.
 */
function resolveSpec(name: string, rest: readonly string[]): CommandSpec {
  const top = findCommand(name)!;
  if (subcommands(name).length === 0) return top;
  const sub = rest.find((a) => !a.startsWith("-"));
  if (sub === undefined) return top;
  const spec = findCommand(`${name} ${sub}`);
  if (spec === undefined) {
    const names = subcommands(name).map((c) => c.name.slice(name.length + 1));
    throw new UsageError(`unknown ${name} command '${sub}'${didYouMean(sub, names)}`);
  }
  return spec;
}

/** Runs cfs with `argv` (without the program name); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  // The compiled binary starts each hook's process as itself (lib/pipeline/hook_process.ts).
  if (argv[0] === HOOK_CHILD_COMMAND) {
    const { runHookChild } = await import("./lib/pipeline/hook_child.ts");
    return await runHookChild(argv[1] ?? "");
  }
  const globals: GlobalOptions = { json: false, verbose: false, repo: Deno.env.get("CFS_REPO") };
  // Errors as JSON whenever --json appears, before or after the command.
  const json = hasFlag(argv, "--json");
  let i: number;
  try {
    if (hasFlag(argv.slice(0, 1), "-h", "--help")) return help(generalHelp());
    i = parseLeadingGlobals(argv, globals);
  } catch (e) {
    return reportError(e, json, false);
  }
  const name = argv[i];
  if (name === undefined) {
    if (hasFlag(argv, "--version")) return help(`cfs ${VERSION}`);
    if (hasFlag(argv, "-h", "--help")) return help(generalHelp());
    return reportError(new UsageError("no command given"), json, false, "");
  }
  const handler = Object.hasOwn(HANDLERS, name) ? HANDLERS[name] : undefined;
  if (handler === undefined) {
    const names = topLevelCommands().map((c) => c.name);
    return reportError(
      new UsageError(`unknown command '${name.slice(0, 60)}'${didYouMean(name, names)}`),
      json,
      false,
      "",
    );
  }
  let rest = argv.slice(i + 1);
  let spec: CommandSpec = findCommand(name)!;
  try {
    spec = resolveSpec(name, rest);
    if (hasFlag(rest, "-h", "--help")) return help(commandHelp(spec));
    if (hasFlag(rest, "--version")) return help(`cfs ${VERSION}`);
    if (spec.name !== name) {
      // `oci SUB ARGS`: the globals come out of ARGS by the subcommand's options.
      const at = rest.indexOf(spec.name.slice(name.length + 1));
      parseLeadingGlobals(rest.slice(0, at), globals);
      rest = [rest[at], ...extractGlobals(rest.slice(at + 1), spec, globals)];
    } else {
      rest = extractGlobals(rest, spec, globals);
    }
    await prepareTerminalOutput();
    return await handler(rest, globals);
  } catch (e) {
    if (e instanceof UsageError) {
      return reportError(new UsageError(`${spec.name}: ${e.message}`), json, false, spec.name);
    }
    return reportError(e, json, globals.verbose);
  }
}

function help(text: string): number {
  println(text);
  return 0;
}

/** An error message as one bounded line: newlines folded, the middle of a long one elided. */
export function errorLine(message: string): string {
  return clipMiddle(message.replace(/\s*[\r\n]+\s*/g, " ").trim(), MAX_ERROR_LINE);
}

/**
 * Prints `e` (see the module documentation) and returns its exit code. A usage error is
 * followed by a pointer to the help (`see 'cfs help COMMAND'`, or `cfs help` when `command` is
 * ""), on stderr, unless the output is JSON.
 */
function reportError(e: unknown, json: boolean, verbose: boolean, command?: string): number {
  const err = e instanceof Error ? e : new Error(String(e));
  const exitCode = errorExitCode(e);
  const message = errorLine(err.message);
  if (json) {
    console.log(JSON.stringify({ error: { code: errorCode(e), message, exitCode } }));
  } else {
    console.error(`cfs: ${message}`);
    if (e instanceof UsageError) {
      console.error(`see 'cfs help${command ? ` ${command}` : ""}'`);
    }
  }
  if (verbose) {
    // With -v: the cause chain and the stack, unbounded, for a bug report.
    let cause = err.cause;
    while (cause !== undefined) {
      console.error(`  caused by: ${cause instanceof Error ? cause.message : String(cause)}`);
      cause = cause instanceof Error ? cause.cause : undefined;
    }
    if (err.stack) console.error(err.stack);
  }
  return exitCode;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
