/**
 * Where the conformance oracles are, for every test that compares cfs with them:
 *
 * - `cfsctl` of composefs-ctl **0.9.4**, the generation bootc uses and the one cfs must speak.
 *   It runs on this host (`init --insecure`, `--no-repo` for compute-id), no VM needed.
 * - `cfsctl` **0.3.0**, kept only as the oracle for reading and upgrading old repositories. It
 *   needs fs-verity for everything it stores, so tests run it inside the QEMU guest
 *   (test/vm/cfsctl_oracle.ts).
 *
 * `make test` exports `CFSCTL_0_9` and `CFSCTL_0_3` (the Makefile's `oracles` target installs
 * both into roots of their own under `/opt/cfs-oracles`). A missing oracle is a loud test failure
 * with the command that installs it, never a skip.
 *
 * @module
 */
import * as fs from "node:fs";

const ROOT = "/opt/cfs-oracles";

/** How to install each oracle (also what the Makefile runs). */
export const ORACLE_HINTS = {
  "0.9":
    `make oracles (cargo install composefs-ctl --locked --version 0.9.4 --root ${ROOT}/composefs-ctl-0.9.4)`,
  "0.3": `make oracles (cargo install cfsctl --locked --version 0.3.0 --root ${ROOT}/cfsctl-0.3.0)`,
} as const;

function find(envName: string, fallback: string, hint: string): string {
  const path = Deno.env.get(envName) || fallback;
  if (!fs.existsSync(path)) {
    throw new Error(`oracle missing: ${path} (${envName}); install it with: ${hint}`);
  }
  return path;
}

/** Path of composefs-ctl 0.9.4's `cfsctl`; throws with the install command when it is absent. */
export function cfsctl09(): string {
  return find("CFSCTL_0_9", `${ROOT}/composefs-ctl-0.9.4/bin/cfsctl`, ORACLE_HINTS["0.9"]);
}

/** Path of cfsctl 0.3.0 (runs only in the QEMU guest); throws when it is absent. */
export function cfsctl03(): string {
  return find("CFSCTL_0_3", `${ROOT}/cfsctl-0.3.0/bin/cfsctl`, ORACLE_HINTS["0.3"]);
}

/** The result of one oracle run: exit code, stdout bytes and text, stderr text. */
export interface OracleRun {
  code: number;
  stdout: Uint8Array;
  text: string;
  stderr: string;
}

/** Runs cfsctl 0.9.4 with `args`; never throws on a non-zero exit (callers compare codes). */
export async function runCfsctl09(
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<OracleRun> {
  const out = await new Deno.Command(cfsctl09(), {
    args,
    cwd: options.cwd,
    env: options.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: out.stdout,
    text: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** Runs cfsctl 0.9.4 and returns stdout text; throws with its stderr when it fails. */
export async function cfsctl09Ok(args: string[], options: { cwd?: string } = {}): Promise<string> {
  const r = await runCfsctl09(args, options);
  if (r.code !== 0) {
    throw new Error(`cfsctl 0.9.4 ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  }
  return r.text;
}
