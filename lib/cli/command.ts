/**
 * What every command module shares: the global options, the handler signature, the usage
 * error the entry point turns into exit code 2, and the argument parser that reads a command's
 * options from the command table (table.ts), so that what a command accepts is what its help
 * and completion say.
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { type ErofsVersion, parseErofsVersion } from "../erofs/format.ts";
import { type CommandSpec, GLOBAL_OPTIONS, type OptionSpec } from "./table.ts";
import { didYouMean } from "./suggest.ts";

/** Options given before or after the command name (`cfs --repo DIR --json -v COMMAND ...`). */
export interface GlobalOptions {
  /** Repository path; default `$CFS_REPO`, else `/sysroot/composefs` as root, else `~/.var/lib/composefs`. */
  repo?: string;
  /** Machine-readable output where the command supports it. */
  json: boolean;
  /** Show full values, debug events, and cause chains and stack traces on errors. */
  verbose: boolean;
  /** `-q`: only the essential output (progress and informational lines left out). */
  quiet?: boolean;
  /** `--config FILE` (lib/config.ts). */
  config?: string;
  /** `--erofs-version 0|1|2`: the EROFS format of images written (cfsctl's global flag). */
  erofsVersion?: ErofsVersion;
  /** `--hash sha256|sha512`: the digest algorithm (cfsctl's global flag). */
  hash?: "sha256" | "sha512";
  /** `--no-repo`: commands that can work without a repository do not look for one. */
  noRepo?: boolean;
}

/** A command: parses its own arguments, prints its output, returns the exit code. */
export type CommandHandler = (args: string[], globals: GlobalOptions) => Promise<number>;

/**
 * Wrong arguments: the entry point prints the message and a pointer to `cfs help COMMAND`,
 * exit 2.
 */
export class UsageError extends CfsError {
  /**
   * Creates the error. `usage` is accepted for command modules that still pass their usage
   * text; the entry point prints `see 'cfs help COMMAND'` instead of it.
   */
  constructor(message: string, readonly usage?: string) {
    super(message, { code: "usage", exitCode: 2 });
    this.name = "UsageError";
  }
}

type OptionValue<O> = O extends { value: string } ? O extends { multiple: true } ? string[]
  : string
  : boolean;

/** The parsed values of a command's options, typed from its table entry. */
export type OptionValues<O extends readonly OptionSpec[]> = {
  [K in O[number] as K["name"]]?: OptionValue<K>;
};

function findOption(options: readonly OptionSpec[], arg: string): OptionSpec | undefined {
  return arg.startsWith("--")
    ? options.find((o) => o.name === arg.slice(2))
    : options.find((o) => o.short !== undefined && o.short === arg.slice(1));
}

/** `--name` and `-n` as written in messages. */
function optionLabel(o: OptionSpec): string {
  return `--${o.name}`;
}

/**
 * One option at `args[i]`, with its value: `--name`, `--name=VALUE`, `--name VALUE`, `-n`,
 * `-n VALUE`, `-nVALUE`. Returns undefined when it is not among `options`; throws a
 * {@link UsageError} when a value is missing or given to a flag that takes none.
 */
function readOption(
  args: readonly string[],
  i: number,
  options: readonly OptionSpec[],
): { option: OptionSpec; value: string | undefined; next: number } | undefined {
  const arg = args[i];
  let name = arg;
  let inline: string | undefined;
  if (arg.startsWith("--")) {
    const eq = arg.indexOf("=");
    if (eq > 0) [name, inline] = [arg.slice(0, eq), arg.slice(eq + 1)];
  } else if (arg.length > 2) {
    [name, inline] = [arg.slice(0, 2), arg.slice(2)];
  }
  const option = findOption(options, name);
  if (option === undefined) return undefined;
  if (option.value === undefined) {
    if (inline !== undefined) {
      throw new UsageError(`option '${optionLabel(option)}' takes no value`);
    }
    return { option, value: undefined, next: i + 1 };
  }
  if (inline !== undefined) return { option, value: inline, next: i + 1 };
  if (i + 1 >= args.length) {
    throw new UsageError(`option '${optionLabel(option)}' needs a value (${option.value})`);
  }
  return { option, value: args[i + 1], next: i + 2 };
}

/** Sets a global option in `globals`, checking its value. */
function applyGlobal(globals: GlobalOptions, name: string, value: string | undefined): void {
  switch (name) {
    case "repo":
      globals.repo = value;
      break;
    case "config":
      globals.config = value;
      break;
    case "json":
      globals.json = true;
      break;
    case "verbose":
      globals.verbose = true;
      break;
    case "quiet":
      globals.quiet = true;
      break;
    case "no-repo":
      globals.noRepo = true;
      break;
    case "erofs-version": {
      const version = parseErofsVersion(value ?? "");
      if (version === undefined) {
        throw new UsageError(`--erofs-version takes 0, 1 or 2, not '${value}'`);
      }
      globals.erofsVersion = version;
      break;
    }
    case "hash":
      if (value !== "sha256" && value !== "sha512") {
        throw new UsageError(`--hash takes sha256 or sha512, not '${value}'`);
      }
      globals.hash = value;
      break;
      // help and version: the entry point looks for them before the command runs.
  }
}

/**
 * Reads the global options at the start of the command line into `globals`; returns the index
 * of the first argument that is not one (the command name). Unknown options are usage errors.
 */
export function parseLeadingGlobals(argv: readonly string[], globals: GlobalOptions): number {
  let i = 0;
  while (i < argv.length && argv[i].startsWith("-") && argv[i] !== "-") {
    if (argv[i] === "--") return i + 1;
    const r = readOption(argv, i, GLOBAL_OPTIONS);
    if (r === undefined) throw unknownOption(argv[i], GLOBAL_OPTIONS);
    applyGlobal(globals, r.option.name, r.value);
    i = r.next;
  }
  return i;
}

function unknownOption(arg: string, options: readonly OptionSpec[]): UsageError {
  const name = arg.replace(/^-+/, "").replace(/=.*$/, "");
  const visible = options.filter((o) => !o.hidden);
  // One letter is too little to guess from: short options get no suggestion.
  const hint = arg.startsWith("--") ? didYouMean(name, visible.map((o) => o.name), "--") : "";
  // The argument as typed, clipped: it is user input.
  const shown = arg.length > 60 ? `${arg.slice(0, 57)}...` : arg;
  return new UsageError(`unknown option '${shown}'${hint}`);
}

/**
 * Takes the global options out of a command's arguments (they may come after the command:
 * `cfs gc --json`) and applies them to `globals`; returns the rest. An option the command
 * declares itself (`init --erofs-version`) stays the command's. Arguments after `--` are left.
 */
export function extractGlobals(
  args: readonly string[],
  spec: CommandSpec,
  globals: GlobalOptions,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length;) {
    const a = args[i];
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      out.push(a);
      i++;
      continue;
    }
    const own = readOptionLenient(args, i, spec.options);
    if (own !== undefined) {
      out.push(...args.slice(i, own));
      i = own;
      continue;
    }
    const global = readOption(args, i, GLOBAL_OPTIONS);
    if (global === undefined) {
      out.push(a); // the command's parser names it as unknown
      i++;
      continue;
    }
    applyGlobal(globals, global.option.name, global.value);
    i = global.next;
  }
  return out;
}

/** Where a command option at `args[i]` ends (its value included), without judging it. */
function readOptionLenient(
  args: readonly string[],
  i: number,
  options: readonly OptionSpec[],
): number | undefined {
  try {
    return readOption(args, i, options)?.next;
  } catch {
    return i + 1; // a malformed use of the command's own option: its parser reports it
  }
}

/**
 * Parses a command's arguments by its table entry: options anywhere among the positionals,
 * `--` ends them. Unknown options, missing values and values given to flags are
 * {@link UsageError}s in cfs's words, naming the option (and the nearest known one). Global
 * options are expected to be taken out before ({@link extractGlobals}); one left is ignored.
 */
export function parseCommand<S extends CommandSpec>(
  args: readonly string[],
  spec: S,
): { values: OptionValues<S["options"]>; positionals: string[] } {
  const values: Record<string, string | boolean | string[]> = {};
  const positionals: string[] = [];
  for (let i = 0; i < args.length;) {
    const a = args[i];
    if (a === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      positionals.push(a);
      i++;
      continue;
    }
    const r = readOption(args, i, spec.options) ?? readOption(args, i, GLOBAL_OPTIONS);
    if (r === undefined) throw unknownOption(a, [...spec.options, ...GLOBAL_OPTIONS]);
    i = r.next;
    if (!spec.options.includes(r.option)) continue;
    const o = r.option;
    if (o.value === undefined) values[o.name] = true;
    else if (o.multiple) values[o.name] = [...(values[o.name] as string[] ?? []), r.value!];
    else values[o.name] = r.value!;
  }
  return { values: values as OptionValues<S["options"]>, positionals };
}

/**
 * node:util parseArgs with cfs's conventions, for command modules not yet reading the command
 * table: strict, positionals allowed, and a {@link UsageError} in cfs's words naming the
 * offending option instead of node's text.
 */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: T,
  usage: string,
) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(nodeParseMessage((e as Error).message, Object.keys(options)), usage);
  }
}

/** node's parseArgs messages in cfs's words (one line, balanced quotes). */
export function nodeParseMessage(message: string, known: readonly string[]): string {
  const unknown = /^Unknown option '(-[^']*)'/.exec(message);
  if (unknown) {
    return `unknown option '${unknown[1]}'` +
      didYouMean(unknown[1].replace(/^-+/, ""), known, "--");
  }
  const missing = /^Option '(-\w)?,? ?(--[^ ']+)[^']*' argument missing/.exec(message);
  if (missing) return `option '${missing[2]}' needs a value`;
  const noValue = /^Option '(-\w)?,? ?(--[^ ']+)' does not take an argument/.exec(message);
  if (noValue) return `option '${noValue[2]}' takes no value`;
  const ambiguous = /^Option '(-\w)?,? ?(--[^ ']+)[^']*' argument is ambiguous/.exec(message);
  if (ambiguous) {
    return `option '${ambiguous[2]}' got a value that looks like an option; write ` +
      `${ambiguous[2]}=VALUE`;
  }
  return message.split("\n")[0].replace(/'/g, "");
}

/** Writes a line to stdout without Deno's console formatting. */
export function println(line: string): void {
  writeAllSync(Deno.stdout, new TextEncoder().encode(line + "\n"));
}

/** Writes raw bytes to stdout. */
export function writeStdout(bytes: Uint8Array): void {
  writeAllSync(Deno.stdout, bytes);
}

function writeAllSync(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += w.writeSync(bytes.subarray(off));
}
