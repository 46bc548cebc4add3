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
 * Every command module is imported statically so that `deno compile` includes it.
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
import { digestCommand } from "./lib/cli/digest.ts";
import {
  computeIdCommand,
  computeKargCommand,
  createDumpfileCommand,
  createImageCommand,
  dumpFilesCommand,
  imageObjectsCommand,
  mountCommand,
} from "./lib/cli/image.ts";
import { bootEntriesCommand, pullCommand } from "./lib/cli/pull.ts";
import { fsckCommand, gcCommand, imagesCommand, initCommand } from "./lib/cli/repo.ts";
import { catCommand, ociCommand } from "./lib/cli/oci.ts";
import { setupRootCommand } from "./lib/cli/setup_root.ts";
import { vmTestCommand } from "./lib/cli/vm_test.ts";
import { initramfsCommand } from "./lib/cli/initramfs.ts";
import { hookCommand } from "./lib/cli/hook.ts";
import { completionCommand, helpCommand, manCommand } from "./lib/cli/meta.ts";
import { commandHelp, generalHelp, VERSION } from "./lib/cli/help.ts";
import { type CommandSpec, findCommand, subcommands, topLevelCommands } from "./lib/cli/table.ts";
import { didYouMean } from "./lib/cli/suggest.ts";
import { HOOK_CHILD_COMMAND, runHookChild } from "./lib/pipeline/hook_child.ts";

/**
 * The handler of each top-level command. Names, options and help are in the command table
 * (lib/cli/table.ts); a unit test checks that both list the same commands.
 */
export const HANDLERS: Record<string, CommandHandler> = {
  init: initCommand,
  digest: digestCommand,
  "compute-id": computeIdCommand,
  "compute-karg": computeKargCommand,
  "create-dumpfile": createDumpfileCommand,
  "create-image": createImageCommand,
  "image-objects": imageObjectsCommand,
  "dump-files": dumpFilesCommand,
  mount: mountCommand,
  images: imagesCommand,
  cat: catCommand,
  oci: ociCommand,
  pull: pullCommand,
  "boot-entries": bootEntriesCommand,
  fsck: fsckCommand,
  gc: gcCommand,
  "setup-root": setupRootCommand,
  initramfs: initramfsCommand,
  "vm-test": vmTestCommand,
  hook: hookCommand,
  help: helpCommand,
  completion: completionCommand,
  man: manCommand,
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
  if (argv[0] === HOOK_CHILD_COMMAND) return await runHookChild(argv[1] ?? "");
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
