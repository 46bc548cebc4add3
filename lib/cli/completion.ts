/**
 * `cfs completion bash|zsh|fish`: shell completion scripts made from the command table, so the
 * shells complete exactly the commands, options and option values cfs accepts. Each script
 * finds the command on the line the same way (skipping global options and their values), then
 * completes an option's value, an option, a command, or the command's arguments.
 *
 * @module
 */
import { COMMAND_TABLE, type CommandSpec, GLOBAL_OPTIONS, type OptionSpec } from "./table.ts";

/** The shells `cfs completion` writes scripts for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;

/** One of {@link SHELLS}. */
export type Shell = typeof SHELLS[number];

const visible = (options: readonly OptionSpec[]) => options.filter((o) => !o.hidden);
const table: readonly CommandSpec[] = COMMAND_TABLE;

/** Options a command takes on its line: its own and the global ones. */
function lineOptions(spec: CommandSpec | undefined): OptionSpec[] {
  return [...visible(spec?.options ?? []), ...visible(GLOBAL_OPTIONS)];
}

/** How an option's value completes: a fixed list, directories, files, or nothing. */
function valueKind(o: OptionSpec): { words: readonly string[] } | "dir" | "file" | "none" {
  if (o.choices) return { words: o.choices };
  if (/DIR$/.test(o.value ?? "")) return "dir";
  if (/FILE$/.test(o.value ?? "")) return "file";
  return "none";
}

/** `init`, `oci pull`: the keys the scripts switch on ("" is the line before a command). */
function keys(): Array<{ key: string; spec: CommandSpec | undefined }> {
  return [{ key: "", spec: undefined }, ...table.map((c) => ({ key: c.name, spec: c }))];
}

const TOP = table.filter((c) => !c.name.includes(" "));
/** Commands with subcommands (`oci`, `hook`). */
const GROUPS = TOP.filter((g) => table.some((c) => c.name.startsWith(`${g.name} `))).map((g) =>
  g.name
);
const subsOf = (group: string) => table.filter((c) => c.name.startsWith(`${group} `));
const GLOBAL_WITH_VALUE = GLOBAL_OPTIONS.filter((o) => "value" in o).map((o) => `--${o.name}`);

/** Words of what follows a command: subcommands, command names, shells, or none. */
function argumentWords(key: string): readonly string[] | undefined {
  if (key === "") return TOP.map((c) => c.name);
  if (GROUPS.includes(key)) {
    return [
      ...subsOf(key).map((c) => c.name.slice(key.length + 1)),
      ...(key === "oci" ? ["layer-inspect"] : []),
    ];
  }
  if (key === "help" || key === "man") return TOP.map((c) => c.name);
  if (key === "completion") return SHELLS;
  return undefined;
}

function optionWords(o: OptionSpec): string[] {
  return [`--${o.name}`, ...(o.short ? [`-${o.short}`] : [])];
}

/** A word list quoted for a shell's single quotes. */
function sq(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function bash(): string {
  const lines = [
    "# bash completion for cfs (made by 'cfs completion bash' from its command table)",
    "_cfs() {",
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
    '  local cmd="" sub="" i w',
    "  for ((i = 1; i < COMP_CWORD; i++)); do",
    '    w="${COMP_WORDS[i]}"',
    '    case "$w" in',
    `      ${GLOBAL_WITH_VALUE.join("|")}) ((i++)); continue ;;`,
    "      -*) continue ;;",
    "    esac",
    '    if [[ -z $cmd ]]; then cmd="$w"',
    `    elif [[ -z $sub && " ${GROUPS.join(" ")} " == *" $cmd "* ]]; then sub="$w"; break`,
    "    else break; fi",
    "  done",
    '  local key="$cmd"',
    '  [[ -n $sub ]] && key="$cmd $sub"',
    '  [[ $key == "oci layer-inspect" ]] && key="oci layer"',
    '  case "$key|$prev" in',
  ];
  for (const { key, spec } of keys()) {
    for (const o of lineOptions(spec).filter((o) => o.value !== undefined)) {
      const v = valueKind(o);
      const action = v === "dir"
        ? 'COMPREPLY=($(compgen -d -- "$cur"))'
        : v === "file"
        ? 'COMPREPLY=($(compgen -f -- "$cur"))'
        : v === "none"
        ? "COMPREPLY=()"
        : `COMPREPLY=($(compgen -W ${sq(v.words.join(" "))} -- "$cur"))`;
      const labels = optionWords(o).map((w) => `${sq(`${key}|${w}`)}`).join("|");
      lines.push(`    ${labels}) ${action}; return ;;`);
    }
  }
  lines.push("  esac", '  local words=""', '  case "$key" in');
  for (const { key, spec } of keys()) {
    const words = lineOptions(spec).flatMap(optionWords).join(" ");
    lines.push(`    ${sq(key)}) words=${sq(words)} ;;`);
  }
  lines.push(
    "  esac",
    '  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$words" -- "$cur")); return; fi',
    '  case "$key" in',
  );
  for (const { key, spec } of keys()) {
    const words = argumentWords(key);
    const action = words
      ? `COMPREPLY=($(compgen -W ${sq(words.join(" "))} -- "$cur"))`
      : spec?.complete === "none"
      ? "COMPREPLY=()"
      : spec?.complete === "dir"
      ? 'COMPREPLY=($(compgen -d -- "$cur"))'
      : 'COMPREPLY=($(compgen -f -- "$cur"))';
    lines.push(`    ${sq(key)}) ${action} ;;`);
  }
  lines.push("  esac", "}", "complete -o filenames -F _cfs cfs", "");
  return lines.join("\n");
}

/** A zsh `_describe` entry: `word:description` (colons in the word escaped). */
function zdesc(word: string, help: string): string {
  return sq(`${word.replace(/:/g, "\\:")}:${help.split(/[;(]/)[0].trim()}`);
}

function zsh(): string {
  const lines = [
    "#compdef cfs",
    "# zsh completion for cfs (made by 'cfs completion zsh' from its command table)",
    "_cfs() {",
    "  local cmd= sub= i w",
    "  for ((i = 2; i < CURRENT; i++)); do",
    "    w=${words[i]}",
    "    case $w in",
    `      ${GLOBAL_WITH_VALUE.join("|")}) (( i++ )); continue ;;`,
    "      -*) continue ;;",
    "    esac",
    "    if [[ -z $cmd ]]; then cmd=$w",
    `    elif [[ -z $sub && " ${GROUPS.join(" ")} " == *" $cmd "* ]]; then sub=$w; break`,
    "    else break; fi",
    "  done",
    "  local key=$cmd",
    '  [[ -n $sub ]] && key="$cmd $sub"',
    '  [[ $key == "oci layer-inspect" ]] && key="oci layer"',
    "  local prev=${words[CURRENT-1]} cur=${words[CURRENT]}",
    '  case "$key|$prev" in',
  ];
  for (const { key, spec } of keys()) {
    for (const o of lineOptions(spec).filter((o) => o.value !== undefined)) {
      const v = valueKind(o);
      const action = v === "dir"
        ? "_files -/"
        : v === "file"
        ? "_files"
        : v === "none"
        ? ":"
        : `compadd -- ${v.words.map(sq).join(" ")}`;
      const labels = optionWords(o).map((w) => sq(`${key}|${w}`)).join("|");
      lines.push(`    ${labels}) ${action}; return ;;`);
    }
  }
  lines.push("  esac", "  local -a items", "  if [[ $cur == -* ]]; then", '    case "$key" in');
  for (const { key, spec } of keys()) {
    const items = lineOptions(spec).flatMap((o) => optionWords(o).map((w) => zdesc(w, o.help)));
    lines.push(`      ${sq(key)}) items=(${items.join(" ")}) ;;`);
  }
  lines.push(
    "    esac",
    "    _describe -t options option items",
    "    return",
    "  fi",
    '  case "$key" in',
  );
  for (const { key, spec } of keys()) {
    const words = argumentWords(key);
    let action: string;
    if (words) {
      const described = words.map((w) => {
        const group = GROUPS.includes(key);
        const c = table.find((c) => c.name === (group ? `${key} ${w}` : w));
        return zdesc(w, c?.summary ?? (group ? "alias of layer" : `${w} completion`));
      });
      action = `items=(${described.join(" ")}); _describe -t commands command items`;
    } else {
      action = spec?.complete === "none" ? ":" : spec?.complete === "dir" ? "_files -/" : "_files";
    }
    lines.push(`    ${sq(key)}) ${action} ;;`);
  }
  lines.push(
    "  esac",
    "}",
    'if [[ ${funcstack[1]} == _cfs ]]; then _cfs "$@"; else compdef _cfs cfs; fi',
    "",
  );
  return lines.join("\n");
}

function fish(): string {
  const lines = [
    "# fish completion for cfs (made by 'cfs completion fish' from its command table)",
    "function __cfs_command",
    "    set -l cmd",
    "    set -l skip 0",
    "    for t in (commandline -opc)[2..-1]",
    "        if test $skip = 1",
    "            set skip 0",
    "            continue",
    "        end",
    "        switch $t",
    `            case ${GLOBAL_WITH_VALUE.join(" ")}`,
    "                set skip 1",
    "                continue",
    "            case '-*'",
    "                continue",
    "        end",
    '        if test -z "$cmd"',
    "            set cmd $t",
    `        else if contains -- "$cmd" ${GROUPS.join(" ")}`,
    '            set cmd "$cmd $t"',
    "            break",
    "        else",
    "            break",
    "        end",
    "    end",
    '    test "$cmd" = "oci layer-inspect"; and set cmd "oci layer"',
    '    echo "$cmd"',
    "end",
    "function __cfs_is",
    '    test "$(__cfs_command)" = "$argv"',
    "end",
    "complete -c cfs -f",
  ];
  const fishOption = (o: OptionSpec, cond: string) => {
    const v = valueKind(o);
    let line = `complete -c cfs -n ${sq(cond)} -l ${o.name}`;
    if (o.short) line += ` -s ${o.short}`;
    if (o.value !== undefined) {
      // -x: a value is required and is not a file name, unless -F says it is.
      if (v === "dir") line += ` -x -a ${sq("(__fish_complete_directories)")}`;
      else if (v === "file") line += " -r -F";
      else if (v === "none") line += " -x";
      else line += ` -x -a ${sq(v.words.join(" "))}`;
    }
    return `${line} -d ${sq(o.help.split(/[;(]/)[0].trim())}`;
  };
  for (const o of visible(GLOBAL_OPTIONS)) lines.push(fishOption(o, "true"));
  for (const c of TOP) {
    lines.push(`complete -c cfs -n '__cfs_is ""' -a ${c.name} -d ${sq(c.summary)}`);
  }
  for (const g of GROUPS) {
    for (const c of subsOf(g)) {
      const word = c.name.slice(g.length + 1);
      lines.push(`complete -c cfs -n '__cfs_is ${g}' -a ${word} -d ${sq(c.summary)}`);
    }
  }
  for (const c of table) {
    const cond = `__cfs_is ${c.name}`;
    for (const o of visible(c.options)) lines.push(fishOption(o, cond));
    const words = argumentWords(c.name);
    if (words && !GROUPS.includes(c.name)) {
      lines.push(`complete -c cfs -n ${sq(cond)} -a ${sq(words.join(" "))}`);
    } else if (c.complete === "dir") {
      lines.push(`complete -c cfs -n ${sq(cond)} -a ${sq("(__fish_complete_directories)")}`);
    } else if (c.complete === undefined || c.complete === "file") {
      lines.push(`complete -c cfs -n ${sq(cond)} -F`);
    }
  }
  lines.push("");
  return lines.join("\n");
}

/** The completion script for `shell`. */
export function completionScript(shell: Shell): string {
  return shell === "bash" ? bash() : shell === "zsh" ? zsh() : fish();
}
