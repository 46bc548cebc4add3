/**
 * The CLI's conventions through the real binary and real programs: `cfs help` and `--help`,
 * "did you mean", global options after the command, usage errors (one line, a pointer to the
 * help, exit 2, JSON with --json), `--version`; the completion scripts loaded into bash, zsh
 * and fish and asked for completions; the man pages rendered by groff and man without warnings.
 *
 * @module
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { requireTool, runCfs } from "./cfs.ts";

async function sh(
  cmd: string,
  args: string[],
  stdin?: string,
): Promise<{ out: string; err: string; code: number }> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", TERM: "dumb" },
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const r = await child.output();
  const dec = new TextDecoder();
  return { out: dec.decode(r.stdout), err: dec.decode(r.stderr), code: r.code };
}

Deno.test("cli: help three ways, --version with a newline, did-you-mean, usage errors in one line", async () => {
  const help = await runCfs(["help"]);
  equal(help.code, 0);
  equal((await runCfs(["--help"])).text, help.text);
  match(help.text, /^usage: cfs \[GLOBAL OPTIONS\] COMMAND/);
  const gc = await runCfs(["help", "gc"]);
  equal((await runCfs(["gc", "--help"])).text, gc.text);
  match(gc.text, /^usage: cfs gc \[OPTIONS\]\n/);
  const ociPull = await runCfs(["oci", "pull", "-h"]);
  equal(ociPull.text, (await runCfs(["help", "oci", "pull"])).text);
  equal((await runCfs(["--version"])).text, "cfs 0.1.0\n");

  const typo = await runCfs(["gc", "--jsn"]);
  equal(typo.code, 2);
  equal(typo.text, "");
  equal(
    typo.stderr,
    "cfs: gc: unknown option '--jsn'; did you mean '--json'?\nsee 'cfs help gc'\n",
  );
  const cmd = await runCfs(["fsk"]);
  equal(cmd.stderr, "cfs: unknown command 'fsk'; did you mean 'fsck'?\nsee 'cfs help'\n");
  const sub = await runCfs(["oci", "imgs"]);
  equal(
    sub.stderr,
    "cfs: oci: unknown oci command 'imgs'; did you mean 'images'?\nsee 'cfs help oci'\n",
  );
  const missing = await runCfs(["--json", "oci", "pull", "--tls-verify"]);
  equal(missing.code, 2);
  equal(missing.stderr, "");
  deepEqual(JSON.parse(missing.text), {
    error: {
      code: "usage",
      message: "oci pull: option '--tls-verify' needs a value (BOOL)",
      exitCode: 2,
    },
  });
});

Deno.test("cli: global options after the command (--json, --repo, -q) and --json results", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-conv-" });
  try {
    const repo = join(tmp, "repo");
    const init = await runCfs(["init", repo, "--insecure", "--json"]);
    equal(init.code, 0, init.stderr);
    equal(JSON.parse(init.text).path, repo);
    const gc = await runCfs(["gc", "--repo", repo, "--json", "-n"]);
    equal(gc.code, 0, gc.stderr);
    equal(JSON.parse(gc.text).dryRun, true);
    const images = await runCfs(["oci", "images", "--repo", repo, "--format", "json"]);
    deepEqual(JSON.parse(images.text), { images: [] });
    const quiet = await runCfs(["oci", "images", "-q", `--repo=${repo}`]);
    equal(quiet.text, "");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("completion: bash loads the script and completes commands, options and values", async () => {
  const script = (await runCfs(["completion", "bash"])).text;
  const complete = async (line: string) => {
    const words = line.split(" ");
    const r = await sh("bash", [
      "-c",
      `source /dev/stdin; complete -p cfs; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); ` +
      `COMP_CWORD=${words.length - 1}; _cfs; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ], script);
    equal(r.code, 0, r.err);
    const [registered, ...out] = r.out.trimEnd().split("\n");
    equal(registered, "complete -o filenames -F _cfs cfs");
    return out.filter((l) => l);
  };
  deepEqual(await complete("cfs g"), ["gc"]);
  deepEqual(await complete("cfs --repo /tmp oci pu"), ["pull"]);
  deepEqual(await complete("cfs gc --dr"), ["--dry-run"]);
  deepEqual(await complete("cfs oci pull --tls-verify "), ["true", "false"]);
  deepEqual(await complete("cfs init --algorithm "), ["fsverity-sha512-12", "fsverity-sha256-12"]);
  deepEqual(await complete("cfs completion "), ["bash", "zsh", "fish"]);
  deepEqual(await complete("cfs hook "), ["init"]);
  // `mount` has no --bootable, `oci mount` has.
  deepEqual(await complete("cfs mount --boo"), []);
  deepEqual(await complete("cfs oci mount --boo"), ["--bootable"]);
});

Deno.test("completion: zsh registers _cfs with compinit and offers the table's words", async () => {
  requireTool("zsh", "apt-get install zsh (make apt)");
  const script = (await runCfs(["completion", "zsh"])).text;
  const dir = await Deno.makeTempDir({ prefix: "cfs-zsh-" });
  try {
    await Deno.writeTextFile(join(dir, "cfs.zsh"), script);
    // The completion system's own registration, then _cfs run with _describe/compadd/_files
    // recording what they were given (they only work inside a completion widget).
    const r = await sh("zsh", [
      "-f",
      "-c",
      `
      autoload -Uz compinit && compinit -u -d ${dir}/zcompdump
      source ${dir}/cfs.zsh
      print -r -- "registered=$_comps[cfs]"
      _describe() { local a=\${@[-1]}; print -rl -- \${(P)a}; }
      compadd() { shift; print -rl -- "$@"; }
      _files() { print -r -- "_files $*"; }
      try() { words=("$@"); CURRENT=$#; print -r -- "== $*"; _cfs; }
      try cfs ''
      try cfs oci pull --tls-verify ''
      try cfs gc --
      try cfs init ''
    `,
    ]);
    equal(r.code, 0, r.err);
    equal(r.err, "");
    const blocks = r.out.split(/^== .*$/m);
    match(blocks[0], /registered=_cfs/);
    match(blocks[1], /^gc:remove what no ref keeps alive$/m);
    match(blocks[1], /^oci:OCI commands/m);
    deepEqual(blocks[2].trim().split("\n"), ["true", "false"]);
    match(blocks[3], /^--dry-run:only count what would be removed$/m);
    match(blocks[3], /^--json:/m);
    equal(blocks[4].trim(), "_files -/");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("completion: fish completes from the script with its own engine", async () => {
  requireTool("fish", "apt-get install fish (make apt)");
  const script = (await runCfs(["completion", "fish"])).text;
  const dir = await Deno.makeTempDir({ prefix: "cfs-fish-" });
  try {
    await Deno.writeTextFile(join(dir, "cfs.fish"), script);
    const complete = async (line: string) => {
      const r = await sh("fish", [
        "--no-config",
        "-c",
        `source ${dir}/cfs.fish; complete -C '${line}'`,
      ]);
      equal(r.code, 0, r.err);
      equal(r.err, "");
      return r.out.trimEnd().split("\n").map((l) => l.split("\t")[0]);
    };
    const top = await complete("cfs g");
    ok(top.includes("gc"), top.join(","));
    deepEqual(await complete("cfs oci pull --tls-verify "), ["false", "true"]);
    ok((await complete("cfs oci mount --")).includes("--bootable"));
    ok(!(await complete("cfs mount --")).includes("--bootable"));
    ok((await complete("cfs oci ")).includes("import-layer"));
    deepEqual(await complete("cfs hook "), ["init"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("man pages: written by 'cfs man --out', rendered by groff and man without warnings", async () => {
  requireTool("groff", "apt-get install groff (make apt)");
  const dir = await Deno.makeTempDir({ prefix: "cfs-man-" });
  try {
    const w = await runCfs(["man", "--out", dir, "--json"]);
    equal(w.code, 0, w.stderr);
    const { pages } = JSON.parse(w.text);
    ok(pages.length > 30);
    for (const page of pages as string[]) {
      const g = await sh("groff", ["-man", "-Tutf8", "-ww", "-z", join(dir, page)]);
      equal(g.err, "", `${page}: ${g.err}`);
      equal(g.code, 0);
    }
    const one = (await runCfs(["man", "oci", "pull"])).text;
    equal(one, await Deno.readTextFile(join(dir, "cfs-oci-pull.1")));
    const m = await sh("man", ["-l", join(dir, "cfs-gc.1")]);
    equal(m.code, 0, m.err);
    match(m.out, /NAME\s+cfs-gc - remove what no ref keeps alive/);
    match(m.out, /-n, --dry-run/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
