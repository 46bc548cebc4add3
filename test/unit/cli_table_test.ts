/**
 * The command table and what is made from it (pure: no process, no network): the argument
 * parser's rules and messages, "did you mean", help text within 80 columns, and completion
 * scripts and man pages that list exactly the table's commands and options.
 *
 * @module
 */
import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import {
  COMMAND_TABLE,
  type CommandSpec,
  commandSpec,
  findCommand,
  GLOBAL_OPTIONS,
} from "../../lib/cli/table.ts";
import {
  extractGlobals,
  type GlobalOptions,
  nodeParseMessage,
  parseCommand,
  parseLeadingGlobals,
  UsageError,
} from "../../lib/cli/command.ts";
import { closest, editDistance } from "../../lib/cli/suggest.ts";
import { commandHelp, generalHelp, HELP_WIDTH } from "../../lib/cli/help.ts";
import { completionScript } from "../../lib/cli/completion.ts";
import { allPages, commandPage } from "../../lib/cli/man.ts";
import { HANDLERS } from "../../cli.ts";

const table: readonly CommandSpec[] = COMMAND_TABLE;
const globals = (): GlobalOptions => ({ json: false, verbose: false });

function usageMessage(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    ok(e instanceof UsageError, String(e));
    return e.message;
  }
  throw new Error("no usage error");
}

Deno.test("cli table: every top-level command has a handler and every handler a table entry", () => {
  const top = table.filter((c) => !c.name.includes(" ")).map((c) => c.name).sort();
  deepEqual(Object.keys(HANDLERS).sort(), top);
});

Deno.test("cli table: option names and short forms are unique per command, globals included", () => {
  for (const c of table) {
    const own = c.options.map((o) => o.name);
    equal(new Set(own).size, own.length, `${c.name}: ${own}`);
    const shorts = [...c.options, ...GLOBAL_OPTIONS].flatMap((o) =>
      "short" in o && o.short ? [o.short] : []
    );
    equal(new Set(shorts).size, shorts.length, `${c.name}: ${shorts}`);
  }
});

Deno.test("cli table: every help text fits in 80 columns", () => {
  for (const text of [generalHelp(), ...table.map(commandHelp)]) {
    for (const line of text.split("\n")) ok(line.length <= HELP_WIDTH, `too long: ${line}`);
  }
  match(commandHelp(commandSpec("gc")), /^usage: cfs gc \[OPTIONS\]\n/);
  match(commandHelp(commandSpec("gc")), /\n {2}-n, --dry-run +only count/);
  match(commandHelp(commandSpec("oci")), /\n {2}import-layer +import a layer tar from stdin/);
});

Deno.test("cli parser: options anywhere, values inline or next, repeatable, -- ends options", () => {
  const gc = commandSpec("gc");
  const r = parseCommand(["-n", "--root", "a", "-rb", "--root=c", "--", "--x"], gc);
  deepEqual(r.values, { "dry-run": true, root: ["a", "b", "c"] });
  deepEqual(r.positionals, ["--x"]);
  const pull = parseCommand(["--tls-verify=false", "oci:d", "--hook", "h.ts"], commandSpec("pull"));
  deepEqual(pull.values, { "tls-verify": "false", hook: ["h.ts"] });
  deepEqual(pull.positionals, ["oci:d"]);
});

Deno.test("cli parser: unknown options, missing values and values on flags in cfs's words", () => {
  const gc = commandSpec("gc");
  equal(
    usageMessage(() => parseCommand(["--jsn"], gc)),
    "unknown option '--jsn'; did you mean '--json'?",
  );
  equal(
    usageMessage(() => parseCommand(["--dry"], gc)),
    "unknown option '--dry'; did you mean '--dry-run'?",
  );
  equal(usageMessage(() => parseCommand(["--zzzzzz"], gc)), "unknown option '--zzzzzz'");
  equal(usageMessage(() => parseCommand(["-x"], gc)), "unknown option '-x'");
  equal(usageMessage(() => parseCommand(["--root"], gc)), "option '--root' needs a value (NAME)");
  equal(
    usageMessage(() => parseCommand(["--dry-run=yes"], gc)),
    "option '--dry-run' takes no value",
  );
  // Hidden aliases are accepted but not suggested.
  deepEqual(parseCommand(["--stat-root", "p"], commandSpec("compute-id")).values, {
    "stat-root": true,
  });
  // Balanced quotes, one line: node's text is reworded for modules still on node:util.
  const node = "Unknown option '--jsn'. To specify a positional argument starting with a '-', " +
    "place it at the end of the command after '--', as in '-- \"--jsn\"";
  equal(nodeParseMessage(node, ["json"]), "unknown option '--jsn'; did you mean '--json'?");
  equal(
    nodeParseMessage("Option '-o, --output <value>' argument missing", []),
    "option '--output' needs a value",
  );
});

Deno.test("cli parser: global options after the command; a command's own option of the same name stays its own", () => {
  const g = globals();
  deepEqual(extractGlobals(["--json", "-n", "-v", "--repo", "R", "-q"], commandSpec("gc"), g), [
    "-n",
  ]);
  deepEqual([g.json, g.verbose, g.repo, g.quiet], [true, true, "R", true]);
  const h = globals();
  deepEqual(
    extractGlobals(["--erofs-version", "2", "--hash=sha256", "P"], commandSpec("init"), h),
    ["--erofs-version", "2", "P"],
  );
  deepEqual([h.erofsVersion, h.hash], [undefined, "sha256"]);
  // A value that looks like a global option stays the value of the command's option.
  const k = globals();
  deepEqual(extractGlobals(["--root", "--json"], commandSpec("gc"), k), ["--root", "--json"]);
  equal(k.json, false);
  throws(
    () => extractGlobals(["--hash", "md5"], commandSpec("gc"), globals()),
    /--hash takes sha256 or sha512, not 'md5'/,
  );
  const l = globals();
  equal(parseLeadingGlobals(["--repo=R", "-v", "gc", "--json"], l), 2);
  equal(
    usageMessage(() => parseLeadingGlobals(["--rpo", "x"], globals())),
    "unknown option '--rpo'; did you mean '--repo'?",
  );
});

Deno.test("did you mean: near words, prefixes and spread letters; nothing for far ones", () => {
  equal(editDistance("kitten", "sitting"), 3);
  const top = table.filter((c) => !c.name.includes(" ")).map((c) => c.name);
  equal(closest("gcc", top), "gc");
  equal(closest("pul", top), "pull");
  equal(closest("fsk", top), "fsck");
  equal(closest("imgs", ["pull", "images", "inspect"]), "images");
  equal(closest("completions", top), "completion");
  equal(closest("frobnicate", top), undefined);
});

Deno.test("completion scripts name every command, subcommand and visible option of the table", () => {
  for (const shell of ["bash", "zsh", "fish"] as const) {
    const script = completionScript(shell);
    for (const c of table) {
      ok(script.includes(c.name.split(" ").at(-1)!), `${shell}: ${c.name}`);
      for (const o of c.options.filter((o) => !("hidden" in o && o.hidden))) {
        const word = shell === "fish" ? `-l ${o.name}` : `--${o.name}`;
        ok(script.includes(word), `${shell}: ${c.name} ${o.name}`);
      }
    }
  }
});

Deno.test("man pages: one per command plus cfs.1; roff with escaped dashes and no stray control lines", () => {
  const pages = allPages();
  equal(pages.length, table.length + 1);
  for (const p of pages) {
    match(p.roff, /^\.TH CFS/);
    for (const line of p.roff.split("\n")) {
      if (line.startsWith(".") || line.startsWith("'")) {
        match(line, /^\.(TH|SH|TP|PP|B) ?/, `${p.file}: ${line}`);
      }
    }
  }
  const gc = commandPage(findCommand("gc")!);
  match(gc, /\n\\fB\\-n\\fR, \\fB\\-\\-dry\\-run\\fR\n/);
  match(gc, /\n\.SH JSON OUTPUT\n/);
});
