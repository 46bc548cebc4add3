/**
 * Test helper: runs the cfs CLI exactly as a user would (`deno run cli.ts ...`, the same
 * entry point `deno compile` builds) and captures its output.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));
const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

export interface RunResult {
  code: number;
  stdout: Uint8Array;
  stderr: string;
  text: string;
}

/** Runs `cfs ARGS...`; never throws on a non-zero exit (tests check `code`). */
export async function runCfs(
  args: string[],
  options: { env?: Record<string, string>; stdin?: Uint8Array } = {},
): Promise<RunResult> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: options.stdin ? "piped" : "null",
    env: options.env,
  });
  let out: Deno.CommandOutput;
  if (options.stdin) {
    const child = cmd.spawn();
    const writer = child.stdin.getWriter();
    await writer.write(options.stdin);
    await writer.close();
    out = await child.output();
  } else {
    out = await cmd.output();
  }
  return {
    code: out.code,
    stdout: out.stdout,
    stderr: new TextDecoder().decode(out.stderr),
    text: new TextDecoder().decode(out.stdout),
  };
}

/** Runs an external command; throws with its stderr when it fails. */
export async function run(
  cmd: string,
  args: string[],
  options: { cwd?: string } = {},
): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    cwd: options.cwd,
  }).output();
  if (out.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** Fails loudly when a tool the test needs is missing (tests never skip silently). */
export function requireTool(name: string, hint: string): void {
  const r = new Deno.Command("sh", {
    args: ["-c", `command -v ${name}`],
    stdout: "null",
    stderr: "null",
  }).outputSync();
  if (r.code !== 0) throw new Error(`${name} is not installed: ${hint}`);
}

/** Runs `cfs --repo REPO ARGS...`, asserting exit 0; returns stdout as text. */
export async function cfsOk(repo: string, ...args: string[]): Promise<string> {
  const r = await runCfs(["--repo", repo, ...args]);
  if (r.code !== 0) throw new Error(`cfs ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.text;
}

/** Whether something (a symlink too) exists at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * The result of `cfs pull --json`: its stdout is one JSON object per line (events), every
 * line must parse, and the last is `{"result": ...}`.
 */
// deno-lint-ignore no-explicit-any
export function pullResult(stdout: string): any {
  const lines = stdout.trim().split("\n").map((l) => JSON.parse(l));
  return lines[lines.length - 1].result;
}
