/**
 * The seed's unified storage (bootc `pull_composefs_unified`): the image first lands in a
 * containers-storage owned by cfs next to the repository, so `podman run` finds it from the
 * first boot, and is then imported from there (oci/cstorage.ts, zero-copy).
 *
 * - The storage is `<repo>/bootc/storage` (`/sysroot/composefs/bootc/storage`), with the
 *   compatibility link `<repo>/../ostree/bootc -> ../<repo name>/bootc` that bootc creates.
 * - Stage 1 runs podman with `--root` that storage and `--runroot /run/cfs/storage/<hash of
 *   the storage path>` (podman keeps the runroot in its database), inside a
 *   private mount namespace (`unshare --mount`, as bootc's `bind_storage_roots`): the
 *   overlay driver bind-mounts `<storage>/overlay` onto itself, and that mount must not
 *   outlive podman, or link(2) from the storage into the repository fails with EXDEV.
 *   `containers-storage:NAME` is copied from the host's default storage
 *   (`podman image push NAME containers-storage:[overlay@STORAGE+RUN]NAME`, as bootc's
 *   `pull_from_host_storage`); `oci:`, `oci-archive:` and `dir:` references are copied with
 *   `skopeo copy` under a name cfs gives them ({@link storageImageName}); every other
 *   reference is `podman pull`ed.
 * - Naming: `podman pull oci:DIR` names the image `localhost/DIR:latest` from the path and
 *   refuses any path that is not a valid repository name (`repository name must be
 *   lowercase`: an uppercase letter, a space, `+`, ...). cfs names such images itself, with
 *   the name podman would give where it can give one, and a lower-cased, cleaned-up one
 *   otherwise, so the path never decides whether the pull works.
 * - The storage is labelled for SELinux from the pulled image's own policy, each path as
 *   if it were under /var/lib/containers/storage (bootc's `ensure_labeled`), once: a
 *   `.cfs_labeled` stamp marks it done. Without a policy in the image it does nothing.
 *
 * @module
 */
import { CfsError } from "../errors.ts";
import { loadDax } from "../dax.ts";
import { basename, dirname, join, resolve } from "node:path";
import { parseImageReference } from "../oci/reference.ts";
import { createHash } from "node:crypto";
import { type FileContexts } from "../boot/selinux.ts";
import * as sys from "../sys/libc.ts";

/** A podman (or other external) command failed; `stderr` holds its whole output. */
export class StorageCommandError extends CfsError {
  /** The failing command's message and its output (for the log). */
  constructor(message: string, readonly stderr: string) {
    super(message, { code: "storage-command-failed" });
    this.name = "StorageCommandError";
  }
}

/** The containers-storage of the repository at `repoPath`: `<repo>/bootc/storage`. */
export function unifiedStoragePath(repoPath: string): string {
  return resolve(repoPath, "bootc", "storage");
}

/**
 * Creates `<repo>/bootc` and the compatibility link `<repo>/../ostree/bootc ->
 * ../<repo name>/bootc` when missing (an existing `ostree/bootc` is left alone). Returns
 * the link's path.
 */
export function ensureBootcLink(repoPath: string): string {
  Deno.mkdirSync(join(repoPath, "bootc"), { recursive: true, mode: 0o700 });
  const ostree = join(dirname(repoPath), "ostree");
  Deno.mkdirSync(ostree, { recursive: true });
  const link = join(ostree, "bootc");
  try {
    Deno.lstatSync(link);
  } catch {
    Deno.symlinkSync(`../${basename(repoPath)}/bootc`, link);
  }
  return link;
}

/** Options of {@link pullIntoStorage}. */
export interface StoragePullOptions {
  /** `--tls-verify=false` for podman. */
  tlsVerify?: boolean;
  /** Registry credentials file. */
  authFile?: string;
  /** Stops podman. */
  signal?: AbortSignal;
  /**
   * The signature policy file podman (its hidden `--signature-policy`) and skopeo (`--policy`)
   * enforce; default: theirs.
   */
  signaturePolicy?: string;
}

/** Longest repository name containers-image accepts (`docker/reference`'s NameTotalLengthMax). */
const NAME_MAX = 255;

/**
 * A repository path component as containers-image's reference grammar has it:
 * `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
 */
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;

/** `text` as a path component: lower case, other characters as `-`, separators tidied. */
function nameComponent(text: string): string {
  return text.toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    // A run of separators that the grammar does not allow (`._`, `-.`, `...`) becomes `-`.
    .replace(/[._-]{2,}/g, (run) => /^(?:__|-+)$/.test(run) ? run : "-")
    .replace(/^[._-]+|[._-]+$/g, "");
}

/**
 * The name cfs gives an image it copies into the unified storage from a path-based reference
 * (`oci:`, `oci-archive:`, `dir:`): `localhost/` and the absolute path's components, each lower
 * case with other characters as `-` (`oci:/srv/My Images/OS:v1` -> `localhost/srv/my-images/os`),
 * tagged `latest`. For a path podman accepts this is the very name `podman pull` gives
 * (`localhost/PATH:latest`); a path too long for a name gives `localhost/cfs-image-<hash>`.
 * Undefined for other references, which name themselves (`docker://`) or are named by the
 * store they come from (`containers-storage:`).
 */
export function storageImageName(reference: string): string | undefined {
  const ref = parseImageReference(reference);
  let path: string;
  if (ref.transport === "oci" || ref.transport === "oci-archive") path = ref.path;
  else if (ref.transport === "other" && ref.name === "dir") path = ref.reference;
  else return undefined;
  const absolute = resolve(path);
  const components = absolute.split("/").map(nameComponent).filter((c) => c !== "");
  const name = ["localhost", ...components].join("/");
  if (
    components.length > 0 && name.length <= NAME_MAX && components.every((c) => COMPONENT.test(c))
  ) {
    return `${name}:latest`;
  }
  const hash = createHash("sha256").update(absolute).digest("hex").slice(0, 16);
  return `localhost/cfs-image-${hash}:latest`;
}

/** Runs `COMMAND ARGS` in a private mount namespace (see the module documentation). */
async function storageCommand(
  command: "podman" | "skopeo",
  args: string[],
  signal?: AbortSignal,
): Promise<string> {
  const { $, KillController } = await loadDax();
  const kill = new KillController();
  const onAbort = () => kill.kill("SIGTERM");
  signal?.addEventListener("abort", onAbort, { once: true });
  let r;
  try {
    r = await $`unshare --mount --propagation private ${command} ${args}`
      .stdin("null").stdout("piped").stderr("piped").noThrow().signal(kill.signal);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (r.code !== 0) {
    const last = r.stderr.trim().split("\n").pop() ?? "";
    throw new StorageCommandError(
      `${command} ${args.join(" ")} failed (exit ${r.code}): ${last.slice(0, 300)}`,
      `${r.stdout}${r.stderr}`,
    );
  }
  return r.stdout;
}

function podman(args: string[], signal?: AbortSignal): Promise<string> {
  return storageCommand("podman", args, signal);
}

/**
 * Stage 1: gets `reference` into the storage at `storage`; returns the image id (the
 * config digest's hex) there. See the module documentation for how.
 */
export async function pullIntoStorage(
  reference: string,
  storage: string,
  options: StoragePullOptions = {},
): Promise<string> {
  Deno.mkdirSync(storage, { recursive: true, mode: 0o700 });
  // podman records the runroot in the storage's database and refuses another one later:
  // one per storage, under /run (bootc: /run/bootc/storage).
  const runroot = join(
    RUNROOT_BASE,
    createHash("sha256").update(storage).digest("hex").slice(0, 16),
  );
  Deno.mkdirSync(runroot, { recursive: true, mode: 0o700 });
  const store = ["--root", storage, "--runroot", runroot, "--storage-driver", "overlay"];
  if (reference.startsWith("containers-storage:")) {
    const name = reference.slice("containers-storage:".length);
    if (name.startsWith("[")) {
      throw new StorageCommandError(
        `${reference}: --unified copies from the host's default storage; name the image ` +
          "without a [store] spec",
        "",
      );
    }
    await podman([
      "image",
      "push",
      "--remove-signatures",
      name,
      `containers-storage:[overlay@${storage}+${runroot}]${name}`,
    ], options.signal);
    const out = await podman([...store, "image", "inspect", "--format", "{{.Id}}", name]);
    return out.trim().split("\n").pop()!.trim();
  }
  const named = storageImageName(reference);
  if (named !== undefined) {
    // podman would name it from the path, and refuse paths that are not valid names.
    await storageCommand("skopeo", [
      ...(options.signaturePolicy ? ["--policy", options.signaturePolicy] : []),
      "copy",
      "--quiet",
      "--remove-signatures",
      reference,
      `containers-storage:[overlay@${storage}+${runroot}]${named}`,
    ], options.signal);
    const out = await podman([...store, "image", "inspect", "--format", "{{.Id}}", named]);
    return out.trim().split("\n").pop()!.trim();
  }
  const args = [...store, "pull", "--quiet"];
  if (options.tlsVerify === false) args.push("--tls-verify=false");
  if (options.authFile) args.push("--authfile", options.authFile);
  if (options.signaturePolicy) args.push("--signature-policy", options.signaturePolicy);
  args.push(reference);
  const out = await podman(args, options.signal);
  const id = out.trim().split("\n").pop()!.trim();
  if (!/^[0-9a-f]{64}$/.test(id)) {
    throw new StorageCommandError(`podman pull ${reference}: no image id in its output`, out);
  }
  return id;
}

/** Where each storage's podman runroot is (transient state; bootc's is /run/bootc/storage). */
export const RUNROOT_BASE = "/run/cfs/storage";

/** The stamp that marks a labelled storage. */
export const LABELED_STAMP = ".cfs_labeled";
/** The path the storage is labelled as (bootc's `SYS_CSTOR_PATH`). */
export const SYSTEM_STORAGE_PATH = "/var/lib/containers/storage";

function typeLetter(mode: number): string {
  switch (mode & sys.S_IFMT) {
    case sys.S_IFDIR:
      return "d";
    case sys.S_IFLNK:
      return "l";
    case sys.S_IFCHR:
      return "c";
    case sys.S_IFBLK:
      return "b";
    case sys.S_IFIFO:
      return "p";
    case sys.S_IFSOCK:
      return "s";
    default:
      return "-";
  }
}

/**
 * Labels every inode of the storage from `policy` (libselinux precedence) as if the storage
 * were at /var/lib/containers/storage, then writes the stamp. Returns how many inodes were
 * labelled; 0 when the stamp says it was done before. Hard-linked objects share their
 * inode with the storage's files, so they get the same label (composefs mounts take labels
 * from the image, not from objects).
 */
export function labelStorage(storage: string, policy: FileContexts): number {
  try {
    Deno.lstatSync(join(storage, LABELED_STAMP));
    return 0;
  } catch { /* not labelled yet */ }
  const rules = policy.withLibselinuxPrecedence();
  const enc = new TextEncoder();
  let count = 0;
  const visit = (path: string, as: string) => {
    const st = sys.lstat(path);
    const label = rules.lookup(as, typeLetter(st.mode));
    if (label !== undefined) {
      sys.setXattr(path, "security.selinux", enc.encode(label + "\0"));
      count++;
    }
    if ((st.mode & sys.S_IFMT) !== sys.S_IFDIR) return;
    for (const e of Deno.readDirSync(path)) visit(join(path, e.name), `${as}/${e.name}`);
  };
  visit(storage, SYSTEM_STORAGE_PATH);
  sys.syncFilesystem(storage);
  Deno.writeFileSync(join(storage, LABELED_STAMP), new Uint8Array());
  const stampLabel = rules.lookup(`${SYSTEM_STORAGE_PATH}/${LABELED_STAMP}`, "-");
  if (stampLabel !== undefined) {
    sys.setXattr(join(storage, LABELED_STAMP), "security.selinux", enc.encode(stampLabel + "\0"));
  }
  return count;
}
