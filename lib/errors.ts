/**
 * The one base class of cfs's errors: every error class in `lib/` extends {@link CfsError},
 * which carries a stable `code` (kebab-case, for scripts and tests to match instead of message
 * text) and the process `exitCode` the CLI ends with. Messages may be reworded at any time;
 * codes are an interface and change only with a release note.
 *
 * `cfs --json ...` prints a failure as `{"error": {"code", "message", "exitCode"}}` (one line on
 * stdout, where the result would have been; see cli.ts); without `--json` the CLI prints
 * `cfs: MESSAGE` on stderr.
 *
 * ## Codes
 *
 * Each class has a default code; a throw site gives a more specific one where a caller may need
 * to tell cases apart. Errors that are not {@link CfsError}s get a code from
 * {@link errorCode}: `io-<kind>` for Deno's file system errors, `internal` otherwise.
 *
 * | code                                  | class                     | exit | meaning                              |
 * | ------------------------------------- | ------------------------- | ---- | ------------------------------------ |
 * | `usage`                               | UsageError                | 2    | wrong arguments                      |
 * | `repository-error`                    | RepositoryError           | 1    | any other repository failure         |
 * | `repository-not-found`                | RepositoryError           | 1    | no repository at the path            |
 * | `repository-invalid`                  | RepositoryError           | 1    | the path is not a usable repository  |
 * | `repository-read-only`                | RepositoryError           | 1    | a write to a read-only repository    |
 * | `repository-symlink`                  | RepositoryError           | 1    | a repository directory is a symlink  |
 * | `repository-exists`                   | RepositoryError           | 1    | init with other settings than it has |
 * | `image-not-found`                     | RepositoryError           | 1    | no image (ref, id, tag or digest)    |
 * | `image-ambiguous`                     | RepositoryError           | 1    | a digest prefix names several images |
 * | `stream-not-found`                    | RepositoryError           | 1    | no stream of that name or id         |
 * | `object-missing`                      | RepositoryError           | 1    | a referenced object is not stored    |
 * | `object-corrupt`                      | RepositoryError           | 1    | an object's bytes do not match       |
 * | `meta-invalid`                        | MetaError                 | 1    | meta.json unreadable or malformed    |
 * | `meta-unsupported`                    | MetaError                 | 1    | meta.json asks for unknown features  |
 * | `object-id-invalid`                   | ObjectIdError             | 1    | not an object id (hex, length)       |
 * | `tag-invalid`                         | TagError                  | 1    | a tag skopeo would not accept        |
 * | `layer-digest-mismatch`               | LayerDigestError          | 1    | a layer does not match its diff_id   |
 * | `oci-image-invalid`                   | OciImageError             | 1    | a stored image cannot be read        |
 * | `image-ref-invalid`                   | ImageRefError             | 1    | not an image reference               |
 * | `digest-invalid`                      | DigestError               | 1    | not a sha256/sha512 digest           |
 * | `registry-<kind>`                     | RegistryError             | 1    | kind: `auth`, `not-found`, `server`, |
 * |                                       |                           |      | `http`, `connection`, `timeout`,     |
 * |                                       |                           |      | `too-large`, `digest-mismatch`,      |
 * |                                       |                           |      | `media-type`, `invalid`, `platform`  |
 * | `blob-<problem>`                      | BlobError                 | 1    | problem: `bad-digest`, `too-large`,  |
 * |                                       |                           |      | `truncated`, `digest-mismatch`,      |
 * |                                       |                           |      | `media-type`, `decompress`, `changed`|
 * | `oci-layout-invalid`                  | OciLayoutError            | 1    | an OCI layout directory is unusable  |
 * | `oci-archive-invalid`                 | OciArchiveError           | 1    | an oci-archive cannot be unpacked    |
 * | `auth-file-invalid`                   | AuthFileError             | 1    | a containers auth file is unusable   |
 * | `skopeo-failed`                       | SkopeoError               | 1    | skopeo copy failed                   |
 * | `containers-storage-error`            | ContainersStorageError    | 1    | a containers-storage read failed     |
 * | `containers-storage-unavailable`      | ContainersStorageError    | 1    | no readable store there              |
 * | `storage-command-failed`              | StorageCommandError       | 1    | podman on the unified storage failed |
 * | `tar-invalid`                         | TarError                  | 1    | a malformed or hostile tar layer     |
 * | `tree-invalid`                        | TreeError                 | 1    | an impossible tree (path, hardlink)  |
 * | `oci-tree-invalid`                    | OciTreeError              | 1    | layers that do not merge to a tree   |
 * | `tree-build-failed`                   | TreeBuildError            | 1    | a directory cannot become a tree     |
 * | `tree-read-failed`                    | TreeReadError             | 1    | a directory cannot be read           |
 * | `erofs-limit`                         | ErofsLimitError           | 1    | a tree the kernel could not read     |
 * | `erofs-corrupt`                       | ErofsError                | 1    | an EROFS image cannot be parsed      |
 * | `dumpfile-invalid`                    | DumpfileError             | 1    | a malformed dumpfile line            |
 * | `splitstream-invalid`                 | SplitStreamError          | 1    | a malformed splitstream              |
 * | `file-digest-failed`                  | FileDigestError           | 1    | a file cannot be digested            |
 * | `verity-failed`                       | VerityError               | 1    | fs-verity enable/measure failed      |
 * | `verity-unsupported`                  | VerityError               | 1    | no fs-verity on that file system     |
 * | `sys-<errno>`                         | SysError                  | 1    | a system call failed (`sys-enospc`)  |
 * | `unsupported-platform`                | UnsupportedPlatformError  | 1    | an OS/architecture cfs does not know |
 * | `mount-failed`                        | MountError                | 1    | a mount or unmount failed            |
 * | `setup-root-failed`                   | SetupRootError            | 1    | the initramfs root setup failed      |
 * | `initramfs-failed`                    | DropinError               | 1    | the drop-in cannot be written        |
 * | `vm-test-failed`                      | VmTestError               | 1    | vm-test cannot find or boot an image |
 * | `boot-transform-failed`               | BootTransformError        | 1    | a tree cannot be made bootable       |
 * | `boot-entry-invalid`                  | BootEntryError            | 1    | a malformed boot entry               |
 * | `selinux-policy-invalid`              | SelinuxPolicyError        | 1    | a malformed file_contexts            |
 * | `config-invalid`                      | ConfigError               | 1    | a malformed config file              |
 * | `hook-failed`                         | HookFailure               | 3    | a hook threw or rejected             |
 * | `hook-timeout`                        | HookFailure               | 3    | a hook ran past its timeout          |
 * | `hook-exited`                         | HookFailure               | 3    | a hook's process ended (Deno.exit)   |
 * | `hook-late-error`                     | HookFailure               | 3    | a hook failed after its call ended   |
 * | `hook-tags-invalid`                   | HookFailure               | 3    | a hook left tags cfs does not write  |
 * | `hook-tree-invalid`                   | HookFailure               | 3    | a hook left a tree no image can be   |
 * | `hook-load-failed`                    | HookLoadError             | 3    | a hook file cannot be loaded         |
 * | `hook-file-unsafe`                    | HookLoadError             | 3    | as root: a hook others could change  |
 * | `hook-init-failed`                    | HookInitError             | 1    | hook init cannot write the file      |
 * | `policy-invalid`                      | PolicyError               | 1    | a malformed signature policy file    |
 * | `policy-not-found`                    | PolicyError               | 1    | no policy.json where skopeo looks    |
 * | `registries-d-invalid`                | RegistriesDError          | 1    | a malformed registries.d file        |
 * | `signature-invalid`                   | SignatureError            | 1    | a signature that does not verify     |
 * |                                       |                           |      | (a rejection's reason)               |
 * | `signature-source-failed`             | SignatureSourceError      | 1    | signatures cannot be fetched         |
 * | `signature-rejected`                  | SignatureRejected         | 4    | the signature policy refused the     |
 * |                                       |                           |      | image (lib/signature/check.ts)       |
 * | `interrupted`                         | PipelineInterrupted       | 130  | SIGINT during a pull                 |
 * | `io-<kind>`                           | (Deno's errors)           | 1    | e.g. `io-not-found`                  |
 * | `internal`                            | (anything else)           | 1    | a bug: please report it              |
 *
 * @module
 */

/** Options of {@link CfsError}: the standard `cause`, and the code and exit code. */
export interface CfsErrorOptions extends ErrorOptions {
  /** Stable kebab-case code; each class has a default. */
  code?: string;
  /** Process exit code for the CLI; default 1. */
  exitCode?: number;
}

/** Codes are kebab-case ASCII: lower-case letters and digits, words joined by `-`. */
const CODE = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/** The base of every cfs error: a one-line message, a stable `code` and an `exitCode`. */
export class CfsError extends Error {
  /** Stable kebab-case code (see the table in this module). */
  readonly code: string;
  /** The exit code the CLI ends with for this error. */
  readonly exitCode: number;

  /**
   * Creates the error.
   * @param message one line naming the input and the problem.
   * @param options `code` (default `error`), `exitCode` (default 1), `cause`.
   */
  constructor(message: string, options?: CfsErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CfsError";
    const code = options?.code ?? "error";
    // A malformed code is a bug at the throw site; fail where it is written, not in a script.
    if (!CODE.test(code)) throw new TypeError(`error code '${code}' is not kebab-case`);
    this.code = code;
    this.exitCode = options?.exitCode ?? 1;
  }
}

/** `options` with `code` defaulted: what a subclass passes to {@link CfsError}. */
export function withCode(
  options: CfsErrorOptions | undefined,
  code: string,
  exitCode?: number,
): CfsErrorOptions {
  return { ...options, code: options?.code ?? code, exitCode: options?.exitCode ?? exitCode };
}

/** `NotFound` -> `not-found`: Deno's error class names as code words. */
function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
}

/**
 * The stable code of any thrown value: a {@link CfsError}'s `code`; `io-<kind>` for Deno's
 * file system errors (`Deno.errors.NotFound` -> `io-not-found`); `internal` otherwise.
 */
export function errorCode(e: unknown): string {
  if (e instanceof CfsError) return e.code;
  for (const [name, cls] of Object.entries(Deno.errors)) {
    if (e instanceof (cls as ErrorConstructor)) return `io-${kebab(name)}`;
  }
  return "internal";
}

/** The exit code of any thrown value: a {@link CfsError}'s `exitCode`, else 1. */
export function errorExitCode(e: unknown): number {
  return e instanceof CfsError ? e.exitCode : 1;
}

/** Default longest error line (characters): room for two long paths and a reason. */
export const MAX_ERROR_LINE = 1000;

/**
 * `text` at most `max` characters long, the middle replaced by `...[N characters]...` when it is
 * longer, so that both the start (what failed) and the end (why) survive: a path 10000 levels deep
 * stays readable as its first and last components.
 */
export function clipMiddle(text: string, max: number = MAX_ERROR_LINE): string {
  if (text.length <= max) return text;
  const marker = (removed: number) => ` ...[${removed} characters]... `;
  // The marker's width depends on the count it shows; the second pass settles it.
  let keep = Math.max(max - marker(text.length).length, 2);
  keep = Math.max(max - marker(text.length - keep).length, 2);
  const head = Math.ceil(keep / 2);
  return text.slice(0, head) + marker(text.length - keep) + text.slice(text.length - (keep - head));
}
