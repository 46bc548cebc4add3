/**
 * `oci-archive:FILE`: an OCI image layout in a tar file (what `skopeo copy ... oci-archive:`
 * and `podman save --format oci-archive` write), unpacked with GNU tar into a temporary
 * directory and then read as a layout (layout.ts).
 *
 * GNU tar refuses member names with `..`, strips a leading `/`, and reads gzip, zstd and the
 * other compressions it knows on its own. When it fails, its last line is a summary that says
 * nothing (`Error is not recoverable: exiting now`); {@link tarFailureReason} picks the line
 * that names the cause instead, and the error keeps all of tar's stderr for the log (`cfs
 * pull` writes it as COMMAND_FAILED).
 *
 * @module
 */
import { dax$ } from "../dax.ts";
import { CfsError, type CfsErrorOptions, withCode } from "../errors.ts";

/** An `oci-archive:` file that cannot be unpacked or read as a layout; names the archive. */
export class OciArchiveError extends CfsError {
  /** The archive as given. */
  readonly archive: string;
  /** What tar wrote to stderr, when tar failed (whole, for the log). */
  readonly stderr: string;

  /** `message` is prefixed with `oci-archive ARCHIVE: `; the code is `oci-archive-invalid`. */
  constructor(
    archive: string,
    message: string,
    options?: CfsErrorOptions & { stderr?: string },
  ) {
    super(`oci-archive ${archive}: ${message}`, withCode(options, "oci-archive-invalid"));
    this.name = "OciArchiveError";
    this.archive = archive;
    this.stderr = options?.stderr ?? "";
  }
}

/** tar's lines that only say that something failed before. */
const SUMMARY_LINES = [
  /Error is not recoverable/,
  /Exiting with failure status/,
  /Child returned status/,
  /Skipping to next header/,
  /At beginning of tape/,
  /rmtlseek not stopped at a record boundary/,
];

/** tar's words for common failures, in plainer ones. */
const PLAIN: [RegExp, string][] = [
  [/This does not look like a tar archive/, "not a tar archive"],
  [/Unexpected EOF in archive/, "the archive is truncated (unexpected end of file)"],
  [/^(gzip|zstd|xz|bzip2): stdin: unexpected end of file/, "the compressed archive is truncated"],
  [/^(gzip|zstd|xz|bzip2): stdin: (.*)$/, "$1: $2"],
];

/**
 * The line of GNU tar's stderr that says why it failed, in a few plain words where tar's are
 * cryptic, without the `tar: ` prefix (`/usr/bin/tar: ` when run by path) or the archive's path
 * (the caller names the archive): the first cause (the log has them all). Empty when tar said
 * nothing but its summary.
 */
export function tarFailureReason(stderr: string, archive: string): string {
  const first = stderr.split("\n").map((l) => l.trim().replace(/^(\S*\/)?tar: /, "")).find(
    (l) => l !== "" && !SUMMARY_LINES.some((r) => r.test(l)),
  );
  return first === undefined ? "" : plainReason(first, archive);
}

function plainReason(line: string, archive: string): string {
  let first = line;
  if (first.startsWith(`${archive}: `)) first = first.slice(archive.length + 2);
  for (const [pattern, plain] of PLAIN) {
    if (pattern.test(first)) {
      first = first.replace(pattern, plain);
      break;
    }
  }
  return first.length > 300 ? `${first.slice(0, 300)}...` : first;
}

/**
 * Unpacks `archive` into the existing directory `dir` (not preserving owners or modes: the
 * layout's blobs are only read). Throws {@link OciArchiveError} naming the archive with tar's
 * reason; a file that is missing or not a regular file is named as such without running tar.
 */
export async function unpackOciArchive(archive: string, dir: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(archive);
  } catch (e) {
    throw new OciArchiveError(
      archive,
      e instanceof Deno.errors.NotFound ? "no such file" : `cannot read: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (!info.isFile) {
    throw new OciArchiveError(
      archive,
      info.isDirectory
        ? "is a directory, not an archive (for a layout directory use oci:)"
        : "not a regular file",
    );
  }
  const $ = await dax$();
  const r = await $`tar -xf ${archive} -C ${dir} --no-same-owner --no-same-permissions`
    .stdout("null").stderr("piped").noThrow();
  if (r.code !== 0) {
    const reason = tarFailureReason(r.stderr, archive) || `tar exited with status ${r.code}`;
    throw new OciArchiveError(archive, `cannot unpack: ${reason}`, { stderr: r.stderr });
  }
}
