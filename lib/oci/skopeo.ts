/**
 * Transports cfs does not speak natively (`containers-storage:`, `docker-archive:`, `dir:`,
 * ...) go through `skopeo copy` into a temporary OCI image layout, which cfs then reads
 * like any other layout (so every digest is checked again on our side).
 *
 * skopeo runs through dax with its output captured; when it fails, the error is one line
 * naming the reference and carrying skopeo's last line of stderr (the whole output is kept
 * on the error for `-v` and for logs).
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import { dax$ } from "../dax.ts";
import { skopeoRejection } from "../signature/check.ts";

/** `skopeo` failed or is missing. */
export class SkopeoError extends CfsError {
  /** Everything skopeo wrote to stderr. */
  readonly stderr: string;
  constructor(message: string, stderr = "") {
    super(message, { code: "skopeo-failed" });
    this.name = "SkopeoError";
    this.stderr = stderr;
  }
}

/** Options of {@link skopeoCopyToLayout}. */
export interface SkopeoCopyOptions {
  /** `--src-tls-verify=false` for docker:// sources. */
  tlsVerify?: boolean;
  /** `--override-os/--override-arch/--override-variant` from a platform. */
  platform?: { os: string; architecture: string; variant?: string };
  /** `--authfile`. */
  authFile?: string;
  /** `--retry-times`: retries of registry requests (skopeo's own backoff). */
  retries?: number;
  /** Time for the whole copy (ms); skopeo is stopped when it runs out. */
  timeoutMs?: number;
  /**
   * The signature policy skopeo enforces (`--policy FILE [--registries.d DIR]`, from
   * lib/signature/check.ts); its rejection is thrown as `SignatureRejected`.
   */
  policyArgs?: string[];
}

/**
 * `skopeo copy SOURCE oci:DIR:TAG`; `source` is a containers-image reference as skopeo
 * takes it (`containers-storage:NAME`, `docker-archive:FILE`, ...).
 */
export async function skopeoCopyToLayout(
  source: string,
  dir: string,
  tag: string,
  options: SkopeoCopyOptions = {},
): Promise<void> {
  // --policy and --registries.d are skopeo's global options: before the command.
  const args = [...(options.policyArgs ?? []), "copy", "--quiet"];
  if (options.tlsVerify === false) args.push("--src-tls-verify=false");
  if (options.authFile) args.push("--authfile", options.authFile);
  if (options.retries !== undefined) args.push("--retry-times", String(options.retries));
  if (options.platform) {
    args.push("--override-os", options.platform.os);
    args.push("--override-arch", options.platform.architecture);
    if (options.platform.variant) args.push("--override-variant", options.platform.variant);
  }
  args.push(source, `oci:${dir}:${tag}`);
  let result;
  const $ = await dax$();
  try {
    // containers-storage's overlay driver bind-mounts `<store>/overlay` onto itself; in a
    // private mount namespace (as bootc runs podman) that mount ends with skopeo.
    let cmd = source.startsWith("containers-storage:")
      ? $`unshare --mount --propagation private skopeo ${args}`
      : $`skopeo ${args}`;
    if (options.timeoutMs !== undefined) cmd = cmd.timeout(options.timeoutMs);
    result = await cmd.stdout("null").stderr("piped").noThrow();
  } catch (e) {
    throw new SkopeoError(`'${source}': cannot run skopeo: ${(e as Error).message}`);
  }
  if (result.code === 124 && options.timeoutMs !== undefined) {
    throw new SkopeoError(
      `'${source}': skopeo copy did not finish within the time limit of ` +
        `${options.timeoutMs / 1000} s; stopped`,
      result.stderr,
    );
  }
  if (result.code !== 0) {
    const stderr = result.stderr;
    const rejected = options.policyArgs ? skopeoRejection(source, stderr) : undefined;
    if (rejected) throw rejected;
    let last = stderr.trim().split("\n").pop() ?? "";
    // logrus lines (`time=... level=fatal msg="..."`): the message is what a user needs.
    const m = /level=(?:fatal|error) msg="((?:[^"\\]|\\.)*)"/.exec(last);
    if (m) {
      try {
        last = JSON.parse(`"${m[1]}"`);
      } catch { /* keep the raw line */ }
    }
    throw new SkopeoError(
      `'${source}': skopeo copy failed (exit ${result.code}): ${last.slice(0, 400)}`,
      stderr,
    );
  }
}
