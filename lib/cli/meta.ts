/**
 * The commands about cfs itself: `help [COMMAND]`, `completion bash|zsh|fish` and
 * `man [COMMAND] [--out DIR]`, each printing what the command table (table.ts) says.
 *
 * @module
 */
import { join } from "node:path";
import { type CommandHandler, parseCommand, println, UsageError } from "./command.ts";
import { commandSpec, findCommand, topLevelCommands } from "./table.ts";
import { allCommandNames, commandHelp, generalHelp } from "./help.ts";
import { completionScript, type Shell, SHELLS } from "./completion.ts";
import { allPages, commandPage, overviewPage } from "./man.ts";
import { didYouMean } from "./suggest.ts";

/** The table entry the words name (`oci pull`), or a usage error suggesting the nearest. */
function namedSpec(words: string[]) {
  const name = words.join(" ");
  const spec = findCommand(name);
  if (spec === undefined) {
    const known = words.length > 1 ? allCommandNames() : topLevelCommands().map((c) => c.name);
    throw new UsageError(`unknown command '${name.slice(0, 60)}'${didYouMean(name, known)}`);
  }
  return spec;
}

/** `cfs help [COMMAND]` */
export const helpCommand: CommandHandler = (args) => {
  const { positionals } = parseCommand(args, commandSpec("help"));
  println(positionals.length === 0 ? generalHelp() : commandHelp(namedSpec(positionals)));
  return Promise.resolve(0);
};

/** `cfs completion bash|zsh|fish` */
export const completionCommand: CommandHandler = (args) => {
  const { positionals } = parseCommand(args, commandSpec("completion"));
  const shell = positionals[0];
  if (positionals.length !== 1 || !SHELLS.includes(shell as Shell)) {
    throw new UsageError(
      shell === undefined
        ? "which shell? bash, zsh or fish"
        : `no completion for '${shell.slice(0, 40)}' (bash, zsh or fish)`,
    );
  }
  Deno.stdout.writeSync(new TextEncoder().encode(completionScript(shell as Shell)));
  return Promise.resolve(0);
};

/** `cfs man [COMMAND] [--out DIR]` */
export const manCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("man"));
  if (values.out !== undefined) {
    if (positionals.length) throw new UsageError("--out writes every page: give no COMMAND");
    await Deno.mkdir(values.out, { recursive: true });
    const pages = allPages();
    for (const p of pages) await Deno.writeTextFile(join(values.out, p.file), p.roff);
    if (globals.json) println(JSON.stringify({ dir: values.out, pages: pages.map((p) => p.file) }));
    else if (!globals.quiet) println(`wrote ${pages.length} man pages to ${values.out}`);
    return 0;
  }
  const roff = positionals.length === 0 ? overviewPage() : commandPage(namedSpec(positionals));
  Deno.stdout.writeSync(new TextEncoder().encode(roff));
  return 0;
};
