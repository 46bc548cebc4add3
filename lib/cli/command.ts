/**
 * What every command module shares: the global options, the handler signature, and the
 * usage error the entry point turns into exit code 2.
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { ErofsVersion } from "../erofs/format.ts";

/** Options given before the command name (`cfs --repo DIR --json -v COMMAND ...`). */
export interface GlobalOptions {
  /** Repository path; default `$CFS_REPO`, else `/sysroot/composefs` as root, else `~/.var/lib/composefs`. */
  repo?: string;
  /** Machine-readable output where the command supports it. */
  json: boolean;
  /** Show cause chains and stack traces on errors. */
  verbose: boolean;
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

/** Wrong arguments: the entry point prints the message and the command's usage, exit 2. */
export class UsageError extends CfsError {
  /** Creates the error; `usage` is the command's usage text, printed after the message. */
  constructor(message: string, readonly usage?: string) {
    super(message, { code: "usage", exitCode: 2 });
    this.name = "UsageError";
  }
}

/**
 * node:util parseArgs with cfs's conventions: strict, positionals allowed, and a
 * {@link UsageError} naming the offending option instead of a TypeError.
 */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: T,
  usage: string,
) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.split("\n")[0], usage);
  }
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
