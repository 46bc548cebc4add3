/**
 * The README walked through as a new user would (issue 14): a fresh `git clone` of this
 * checkout, a shell in tmux, the commands of the README's "Quick start" and "Writing a hook"
 * blocks typed into it one by one, and after each, what the screen shows checked.
 *
 * Every command is read from README.md, so the README cannot drift from what works. Three
 * departures from a new machine, each to stay fast, offline and harmless here:
 * - `.tools/` (the pinned Deno, which `make` installs with npm, about 90 MB) and `.deno/` (the
 *   module cache `make` fills from npm on the first run) are copied from this checkout into the
 *   clone, so nothing is downloaded;
 * - `make test` (every host test, about 30 minutes) is not typed; `make test-unit` is;
 * - `make install` gets `PREFIX=$PWD/prefix` (and that `bin/` goes first on PATH), so the test
 *   installs nothing into /usr; and `deno check` is the clone's `.tools/node_modules/.bin/deno`.
 *
 * The test waits for states (the prompt back, with the exit status in it), each wait bounded,
 * never for a fixed time. Host tier (git, tmux, make); about 2 minutes.
 *
 * @module
 */
import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "./cfs.ts";

/** The commands of the first ```sh block after `heading` in README.md (comments dropped). */
export function readmeCommands(readme: string, heading: string): string[] {
  const at = readme.indexOf(`\n${heading}\n`);
  ok(at >= 0, `README.md has no '${heading}'`);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  ok(block, `no sh block after '${heading}'`);
  return block[1].split("\n").map((l) => l.replace(/\s+#.*$/, "").trim()).filter((l) => l !== "");
}

async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

Deno.test("README walk-through in tmux from a fresh clone: quick start, then writing a hook", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const quick = readmeCommands(readme, "## Quick start");
  const hook = readmeCommands(readme, "### Writing a hook");
  equal(JSON.stringify(quick), JSON.stringify(["make demo", "make test-unit", "make test"]));
  equal(
    JSON.stringify(hook),
    JSON.stringify([
      "make install",
      "cfs hook init oem",
      "deno check oem.ts",
      'make demo DEMO_ARGS="--hook oem.ts"',
    ]),
  );

  const tmp = await Deno.makeTempDir({ prefix: "cfs-walkthrough-" });
  const clone = join(tmp, "cfs");
  const server = `cfs-walkthrough-${Deno.pid}`;
  try {
    await run("git", ["clone", "--quiet", ROOT, clone]);
    await run("cp", ["-a", join(ROOT, ".tools"), join(ROOT, ".deno"), clone]);
    // A plain shell whose prompt shows the last exit status: the state each step waits for.
    await run("tmux", [
      "-L",
      server,
      "-f",
      "/dev/null",
      "new-session",
      "-d",
      "-x",
      "200",
      "-y",
      "50",
      "-s",
      "walk",
      "-c",
      clone,
      "env",
      "-i",
      `PATH=${Deno.env.get("PATH")}`,
      `HOME=${Deno.env.get("HOME") ?? "/root"}`,
      "TERM=xterm-256color",
      "NO_COLOR=1",
      "PS1=[$?] walk$ ",
      "bash",
      "--norc",
      "--noprofile",
    ]);
    let prompts = 0;
    /** Types `line`, waits for the prompt to come back, returns the status and the screen. */
    const type = async (line: string, limitS: number) => {
      prompts++;
      await run("tmux", ["-L", server, "send-keys", "-t", "walk", "-l", line]);
      await run("tmux", ["-L", server, "send-keys", "-t", "walk", "Enter"]);
      const deadline = Date.now() + limitS * 1000;
      let screen = "";
      while (Date.now() < deadline) {
        screen = await run("tmux", [
          "-L",
          server,
          "capture-pane",
          "-p",
          "-J",
          "-S",
          "-",
          "-t",
          "walk",
        ]);
        const ps = [...screen.matchAll(/^\[(\d+)\] walk\$ /gm)];
        // The first prompt is the shell's own; one more after each command.
        if (
          ps.length > prompts && /^\[\d+\] walk\$$/.test(screen.trimEnd().split("\n").at(-1)!)
        ) {
          const start = screen.lastIndexOf(`walk$ ${line}`);
          return { status: Number(ps.at(-1)![1]), out: screen.slice(start) };
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`'${line}' did not finish in ${limitS} s; the screen:\n${screen}`);
    };

    // Quick start: the demo, then the fast tests.
    const demo = await type(quick[0], 120);
    equal(demo.status, 0, demo.out);
    match(demo.out, /^\$ CFS_EXTRA_TAGS=\S+ cfs --repo \S+ pull .*--hook builtin:extra-tags /m);
    match(demo.out, /^# the image ID .*\n\$ cfs .*\n[0-9a-f]{128}$/m);
    match(demo.out, /demo\/golden/);
    match(demo.out, /^bls 6\.1\.0-cfs-demo \/usr\/lib\/modules\/6\.1\.0-cfs-demo\/vmlinuz /m);
    match(demo.out, /cfs vm-test/);
    const unit = await type(quick[1], 150);
    equal(unit.status, 0, unit.out);
    match(unit.out, /^ok \| \d+ passed \| 0 failed/m);

    // Writing a hook: installed where the test can remove it, checked, run in the demo's pull.
    const install = await type(
      `${hook[0]} PREFIX=$PWD/prefix && export PATH=$PWD/prefix/bin:$PATH`,
      60,
    );
    equal(install.status, 0, install.out);
    match(install.out, /installed \S+\/prefix\/share\/cfs\/hooks\/types\.ts/);
    const init = await type(hook[1], 60);
    equal(init.status, 0, init.out);
    match(init.out, new RegExp(`^wrote ${clone}/oem\\.ts$`, "m"));
    const check = await type(hook[2].replace(/^deno /, ".tools/node_modules/.bin/deno "), 90);
    equal(check.status, 0, check.out);
    match(check.out, /^Check .*oem\.ts$/m);
    const tried = await type(hook[3], 120);
    equal(tried.status, 0, tried.out);
    match(tried.out, /--hook \S+\/oem\.ts oci:/);
    match(tried.out, /^\/usr has \d+ entries; image made on /m);
    match(tried.out, /oem\/latest/);
  } finally {
    await run("tmux", ["-L", server, "kill-server"]).catch(() => {}); // gone already
    await Deno.remove(tmp, { recursive: true });
  }
});
