/**
 * Man pages made from the command table: cfs(1) with the command list and global options, and
 * cfs-COMMAND(1) per command (`cfs-oci-pull(1)`), as roff for the man macros. Pure.
 *
 * @module
 */
import { COMMAND_TABLE, type CommandSpec, GLOBAL_OPTIONS, type OptionSpec } from "./table.ts";
import { paragraphs, VERSION } from "./help.ts";

/** Text escaped for roff: backslashes, and a line that would start with a control character. */
export function roffEscape(text: string): string {
  return text.replace(/\\/g, "\\e").replace(/-/g, "\\-").replace(/^([.'])/gm, "\\&$1")
    .replace(
      /[^\t\n -~]/gu,
      (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}]`,
    );
}

/** The page name of a command: `cfs-gc`, `cfs-oci-pull`; `cfs` for the overview. */
export function manPageName(spec: CommandSpec | undefined): string {
  return spec === undefined ? "cfs" : `cfs-${spec.name.replace(/ /g, "-")}`;
}

function optionItems(options: readonly OptionSpec[]): string[] {
  const out: string[] = [];
  for (const o of options.filter((o) => !o.hidden)) {
    const short = o.short ? `\\fB\\-${o.short}\\fR, ` : "";
    const value = o.value ? ` \\fI${roffEscape(o.value)}\\fR` : "";
    out.push(".TP", `${short}\\fB\\-\\-${roffEscape(o.name)}\\fR${value}`, roffEscape(o.help));
  }
  return out;
}

function header(name: string, summary: string): string[] {
  return [
    `.TH ${name.toUpperCase()} 1 "" "cfs ${VERSION}" "cfs manual"`,
    ".SH NAME",
    `${roffEscape(name)} \\- ${roffEscape(summary)}`,
  ];
}

/** The roff source of cfs(1): synopsis, every command, the global options. */
export function overviewPage(): string {
  const table: readonly CommandSpec[] = COMMAND_TABLE;
  return [
    ...header("cfs", "composefs image pipeline"),
    ".SH SYNOPSIS",
    ".B cfs",
    "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGS\\fR...]",
    ".SH DESCRIPTION",
    "cfs pulls OCI images into a composefs repository, writes their EROFS images (as " +
    "composefs\\-rs's cfsctl 0.9.4 does) and boots them.",
    ".SH COMMANDS",
    ...table.flatMap((c) => [
      ".TP",
      `\\fB${roffEscape(c.name)}\\fR${c.args ? ` \\fI${roffEscape(c.args)}\\fR` : ""}`,
      `${roffEscape(c.summary)}; see \\fB${roffEscape(manPageName(c))}\\fR(1).`,
    ]),
    ".SH GLOBAL OPTIONS",
    "Accepted before the command and after it.",
    ...optionItems(GLOBAL_OPTIONS),
    ".SH EXIT STATUS",
    "0 success, 1 failure, 2 usage error, 3 a hook failed, 4 the signature policy rejected " +
    "the image, 130 interrupted.",
    "",
  ].join("\n");
}

/** The roff source of cfs-COMMAND(1). */
export function commandPage(spec: CommandSpec): string {
  const body = paragraphs(spec.description).flatMap((
    p,
    i,
  ) => [...(i ? [".PP"] : []), roffEscape(p)]);
  return [
    ...header(manPageName(spec), spec.summary),
    ".SH SYNOPSIS",
    `\\fBcfs ${roffEscape(spec.name)}\\fR [\\fIOPTIONS\\fR]${
      spec.args ? ` \\fI${roffEscape(spec.args)}\\fR` : ""
    }`,
    ".SH DESCRIPTION",
    ...body,
    ...(spec.options.some((o) => !o.hidden) ? [".SH OPTIONS", ...optionItems(spec.options)] : []),
    ...(spec.json ? [".SH JSON OUTPUT", `With \\fB\\-\\-json\\fR: ${roffEscape(spec.json)}.`] : []),
    ".SH SEE ALSO",
    "\\fBcfs\\fR(1) for the global options.",
    "",
  ].join("\n");
}

/** Every page: file name (`cfs-gc.1`) and roff source. */
export function allPages(): Array<{ file: string; roff: string }> {
  const table: readonly CommandSpec[] = COMMAND_TABLE;
  return [
    { file: "cfs.1", roff: overviewPage() },
    ...table.map((c) => ({ file: `${manPageName(c)}.1`, roff: commandPage(c) })),
  ];
}
