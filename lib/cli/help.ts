/**
 * Help text made from the command table: `cfs help`, `cfs help COMMAND` and `COMMAND --help`
 * print the same thing. Pure functions from the table to text.
 *
 * @module
 */
import {
  COMMAND_TABLE,
  type CommandSpec,
  GLOBAL_OPTIONS,
  type OptionSpec,
  subcommands,
  topLevelCommands,
} from "./table.ts";

/** The width help text is wrapped to. */
export const HELP_WIDTH = 80;

/** cfs's version, as `--version` prints it. */
export const VERSION = "0.1.0";

/** A description's paragraphs, each reflowed onto one line. */
export function paragraphs(text: string): string[] {
  return text.split(/\n\s*\n/).map((p) => p.replace(/\s*\n\s*/g, " ").trim()).filter((p) => p);
}

/** Wraps `text` at spaces to lines of at most `width` characters (a longer word stays whole). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w)) {
    if (line === "") line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

/** How an option is written in a list: `-n, --dry-run`, `--repo DIR`. */
export function optionSynopsis(o: OptionSpec): string {
  const long = `--${o.name}${o.value === undefined ? "" : ` ${o.value}`}`;
  return o.short ? `-${o.short}, ${long}` : `    ${long}`;
}

/** The usage line: `usage: cfs gc [OPTIONS]`, `usage: cfs oci pull [OPTIONS] IMAGE [NAME]`. */
export function usageLine(spec: CommandSpec): string {
  const opts = spec.options.some((o) => !o.hidden) ? " [OPTIONS]" : "";
  return `usage: cfs ${spec.name}${opts}${spec.args ? ` ${spec.args}` : ""}`;
}

/** Options as an aligned list under a heading, their help wrapped beside them. */
function optionList(heading: string, options: readonly OptionSpec[]): string[] {
  const shown = options.filter((o) => !o.hidden);
  if (shown.length === 0) return [];
  const col = Math.min(30, Math.max(...shown.map((o) => optionSynopsis(o).length)) + 4);
  const out = ["", `${heading}:`];
  for (const o of shown) {
    const left = `  ${optionSynopsis(o)}`;
    const text = wrap(o.help, HELP_WIDTH - col);
    if (left.length + 2 > col) {
      out.push(left);
      for (const t of text) out.push(`${" ".repeat(col)}${t}`);
    } else {
      text.forEach((t, i) => out.push(`${(i === 0 ? left : "").padEnd(col)}${t}`));
    }
  }
  return out;
}

/** A command list: `  name   summary`, aligned. */
function commandList(commands: readonly CommandSpec[], strip = ""): string[] {
  const names = commands.map((c) => c.name.slice(strip.length));
  const width = Math.max(...names.map((n) => n.length)) + 2;
  return commands.map((c, i) => `  ${names[i].padEnd(width)}${c.summary}`);
}

/** What `cfs help COMMAND` and `cfs COMMAND --help` print. */
export function commandHelp(spec: CommandSpec): string {
  const out = [usageLine(spec), ""];
  for (const p of paragraphs(spec.description)) out.push(...wrap(p, HELP_WIDTH), "");
  out.pop();
  const subs = subcommands(spec.name);
  if (subs.length > 0) out.push("", "commands:", ...commandList(subs, `${spec.name} `));
  if (spec.json !== undefined) out.push("", ...wrap(`With --json: ${spec.json}.`, HELP_WIDTH));
  out.push(...optionList("options", spec.options));
  out.push(
    "",
    ...wrap(
      "Global options (before or after the command): --repo DIR, --config FILE, --json, " +
        "-v, -q, --erofs-version V, --hash ALG, --no-repo; see 'cfs help'.",
      HELP_WIDTH,
    ),
  );
  return out.join("\n");
}

/** What `cfs help` and `cfs --help` print: the synopsis, the commands, the global options. */
export function generalHelp(): string {
  return [
    "usage: cfs [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS...]",
    "",
    ...wrap(
      "cfs pulls OCI images into a composefs repository, writes their EROFS images (as " +
        "composefs-rs's cfsctl 0.9.4 does) and boots them.",
      HELP_WIDTH,
    ),
    "",
    "commands:",
    ...commandList(topLevelCommands()),
    "",
    "oci commands:",
    ...commandList(subcommands("oci")),
    ...optionList("global options (before or after the command)", GLOBAL_OPTIONS),
    "",
    "Run 'cfs help COMMAND' (or 'cfs COMMAND --help') for a command's options.",
  ].join("\n");
}

/** Every command name and alias (`oci layer-inspect`), for lookups and suggestions. */
export function allCommandNames(): string[] {
  return COMMAND_TABLE.flatMap((c: CommandSpec) => [
    c.name,
    ...(c.aliases ?? []).map((a) => `${c.name.split(" ")[0]} ${a}`),
  ]);
}
