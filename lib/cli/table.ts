/**
 * The command table: every command's name, arguments, options and descriptions, declared once.
 * The argument parser (command.ts), `cfs help` and `--help` (help.ts), the shell completions
 * (completion.ts) and the man pages (man.ts) all read this table, so what cfs accepts, what its
 * help says and what a shell completes cannot drift apart.
 *
 * The table imports no command module, so help and completion load nothing else, and it is pure
 * data (the unit tier checks it without running anything).
 *
 * Descriptions are paragraphs separated by a blank line; a paragraph's line breaks are only for
 * this source and are reflowed when printed.
 *
 * @module
 */

/** One option of a command (or a global option). */
export interface OptionSpec {
  /** The long name without `--`. */
  readonly name: string;
  /** A one-letter short form, without `-`. */
  readonly short?: string;
  /** The value's name (`DIR`, `FILE`); absent for a flag that takes no value. */
  readonly value?: string;
  /** The values it takes, when they are a fixed set (completed by the shells). */
  readonly choices?: readonly string[];
  /** Whether it can be given more than once (the values are collected in order). */
  readonly multiple?: boolean;
  /** What it does, one sentence or two. */
  readonly help: string;
  /** Accepted but not listed: an alias kept for compatibility. */
  readonly hidden?: boolean;
}

/** What a command's positional arguments are, for shell completion. */
export type ArgumentKind = "file" | "dir" | "none";

/** One command (`gc`) or subcommand (`oci pull`). */
export interface CommandSpec {
  /** The words that name it: `gc`, `oci pull`. */
  readonly name: string;
  /** The positional arguments as a synopsis: `IMAGE [NAME]`. */
  readonly args: string;
  /** One line for command lists. */
  readonly summary: string;
  /** The help text (paragraphs). */
  readonly description: string;
  /** The command's own options (the global ones are accepted too). */
  readonly options: readonly OptionSpec[];
  /** What its positional arguments complete to (default: file names). */
  readonly complete?: ArgumentKind;
  /**
   * What `--json` prints, for a command that prints results; absent for a command whose output
   * is content in a format of its own (a dumpfile, a tar stream, a shell script).
   */
  readonly json?: string;
  /** Other names that run it (`oci layer-inspect`). */
  readonly aliases?: readonly string[];
}

/** The global options: accepted before the command and after it. */
export const GLOBAL_OPTIONS = [
  {
    name: "repo",
    value: "DIR",
    help: "the repository (default: $CFS_REPO, the configuration's repo, /sysroot/composefs " +
      "as root, else ~/.var/lib/composefs)",
  },
  { name: "config", value: "FILE", help: "the configuration file (see README)" },
  { name: "json", help: "machine-readable output: the results, and errors, as JSON on stdout" },
  { name: "verbose", short: "v", help: "full values, debug events, and cause chains on errors" },
  { name: "quiet", short: "q", help: "only the essential output (e.g. just the image id)" },
  {
    name: "erofs-version",
    value: "V",
    choices: ["0", "1", "2"],
    help: "the EROFS format of images written (cfsctl's global flag)",
  },
  {
    name: "hash",
    value: "ALG",
    choices: ["sha256", "sha512"],
    help: "the digest algorithm of commands that need no repository (cfsctl's global flag)",
  },
  { name: "no-repo", help: "commands that can work without a repository do not look for one" },
  { name: "help", short: "h", help: "print the help of cfs or of the command" },
  { name: "version", help: "print cfs's version" },
] as const satisfies readonly OptionSpec[];

const TREE_OPTIONS = [
  {
    name: "bootable",
    help: "the boot transform: /boot and /sysroot emptied, SELinux labels from the tree's own " +
      "policy (none without a policy)",
  },
  {
    name: "no-propagate-usr-to-root",
    help: "keep the root's own metadata, /run and every xattr (by default the root takes " +
      "/usr's metadata, /run is emptied, xattrs are filtered)",
  },
  { name: "stat-root", help: "alias of --no-propagate-usr-to-root", hidden: true },
  {
    name: "xattrs",
    value: "MODE",
    choices: ["allowlist-only", "keep-user-xattrs"],
    help: "what the default transform keeps: allowlist-only (only security.capability, the " +
      "default) or keep-user-xattrs (also user.*)",
  },
  {
    name: "hash",
    value: "ALG",
    choices: ["sha256", "sha512"],
    help: "sha256 or sha512; default: the repository's when there is one, else sha512",
  },
  { name: "algorithm", value: "ALG", choices: ["sha256", "sha512"], help: "alias of --hash" },
  { name: "erofs-version", value: "V", choices: ["0", "1", "2"], help: "EROFS format (default 1)" },
  { name: "no-repo", help: "do not look at a repository for the algorithm" },
] as const satisfies readonly OptionSpec[];

/** How and where a pull fetches (`oci pull`, `pull`). */
const FETCH_OPTIONS = [
  {
    name: "tls-verify",
    value: "BOOL",
    choices: ["true", "false"],
    help: "false: plain HTTP to the registry (a local registry)",
  },
  {
    name: "platform",
    value: "OS/ARCH[/VARIANT]",
    help: "the image to take from an image index (default: this host's)",
  },
  {
    name: "authfile",
    value: "FILE",
    help: "registry credentials (default: the containers auth.json files)",
  },
  {
    name: "local-fetch",
    value: "MODE",
    choices: ["disabled", "auto", "zerocopy"],
    help: "containers-storage: sources: disabled reads through skopeo; auto (default) reads the " +
      "store directly and reflinks, else hard-links, else copies each file; zerocopy fails " +
      "instead of copying",
  },
  {
    name: "storage-root",
    value: "DIR",
    help: "containers-storage: the store to read (default: storage.conf's graphroot)",
  },
  {
    name: "timeout",
    value: "T",
    help: "overall time limit of the registry transfers (default: none); T: seconds, or a " +
      "number with ms, s, m or h",
  },
  {
    name: "idle-timeout",
    value: "T",
    help: "fail a blob that brings less than 1 KiB/s for T (default 60s; retried like a cut " +
      "connection)",
  },
  {
    name: "retries",
    value: "N",
    help: "retries of a failed registry request or cut blob, with backoff; a cut blob resumes " +
      "where it stopped (default 3; 0: none)",
  },
  {
    name: "signature-policy",
    value: "FILE",
    help: "the containers signature policy to enforce (default: as skopeo, " +
      "~/.config/containers/policy.json, else /etc/containers/policy.json); a rejected image " +
      "exits 4",
  },
  {
    name: "registries.d",
    value: "DIR",
    help: "where signatures are (lookaside, sigstore attachments; default: as skopeo)",
  },
] as const satisfies readonly OptionSpec[];

const IMAGE_NAMES = `IMAGE: a tag, @sha256:HEX (a manifest digest), sha256:HEX or HEX (a manifest
or config digest), or a unique prefix of at least 3 hex digits of one (as 'cfs oci images'
shows it).`;

const IMAGE_OR_CONFIG_NAMES = `IMAGE: a tag, @sha256:HEX (a config digest, as cfsctl reads
it here, or a manifest digest), sha256:HEX, HEX or a unique prefix of at least 3 hex digits,
or refs/NAME (a stream ref to a manifest or config, as cfsctl 0.3.0 named pulled images).`;

const PULL_FORMS = `IMAGE: oci:DIR[:TAG], oci-archive:FILE[:TAG],
docker://HOST[:PORT]/NAME[:TAG|@DIGEST], containers-storage:NAME or any other skopeo
transport.`;

/** Every command, in the order `cfs help` lists them. */
export const COMMAND_TABLE = [
  {
    name: "init",
    args: "[PATH]",
    summary: "create a repository",
    complete: "dir",
    description: `Creates a repository at PATH (default: --repo), as cfsctl init: meta.json with
the digest algorithm (default fsverity-sha512-12) and the EROFS format of its images (default 1;
2 is the legacy composefs-rs format, 0 plain C mkcomposefs). A secure repository (the default)
needs a file system with fs-verity; --insecure makes one that computes digests in user space.

Running it again with the same settings changes nothing; different ones are an error.`,
    json: "{path, algorithm, secure, erofsVersion}",
    options: [
      {
        name: "algorithm",
        value: "A",
        choices: ["fsverity-sha512-12", "fsverity-sha256-12"],
        help: "the repository's digest algorithm (default fsverity-sha512-12)",
      },
      { name: "insecure", help: "fs-verity optional: digests computed in user space" },
      {
        name: "erofs-version",
        value: "V",
        choices: ["0", "1", "2"],
        help: "the EROFS format of the repository's images (default 1)",
      },
    ],
  },
  {
    name: "digest",
    args: "FILE...",
    summary: "print fs-verity digests of files",
    description: `Prints the fs-verity digest (4 KiB blocks, no salt) of each FILE as 'fsverity
digest' does: ALGORITHM:HEX FILE.`,
    json: `one object per line: {path, algorithm, digest}`,
    options: [
      {
        name: "algorithm",
        value: "ALG",
        choices: ["sha256", "sha512"],
        help: "the digest algorithm (default sha256)",
      },
    ],
  },
  {
    name: "compute-id",
    args: "PATH",
    summary: "print the image ID of a directory tree",
    complete: "dir",
    description: `Prints the image ID (the fs-verity digest of the composefs EROFS image) of the
tree at PATH, without writing anything.`,
    json: "{id, algorithm, erofsVersion}",
    options: TREE_OPTIONS,
  },
  {
    name: "compute-karg",
    args: "PATH",
    summary: "print the kernel argument that boots a tree's bootable image",
    complete: "dir",
    description: `Prints the kernel argument that boots the bootable image of the tree at PATH
(the boot transform is always applied): composefs.digest=v1-sha512-12:HEX for EROFS versions 0
and 1, composefs=HEX for version 2.`,
    json: "{karg, id, algorithm}",
    options: [
      TREE_OPTIONS[1],
      TREE_OPTIONS[4],
      TREE_OPTIONS[5],
      TREE_OPTIONS[6],
      TREE_OPTIONS[7],
      { name: "insecure", help: "add the '?' that makes fs-verity optional at boot" },
    ],
  },
  {
    name: "create-dumpfile",
    args: "PATH",
    summary: "print the composefs dumpfile of a tree",
    complete: "dir",
    description: "Prints the composefs dumpfile of the tree at PATH.",
    options: TREE_OPTIONS,
  },
  {
    name: "create-image",
    args: "PATH [NAME]",
    summary: "commit a tree's EROFS image to the repository",
    complete: "dir",
    description: `Stores the tree at PATH in the repository (large files as objects), writes its
EROFS image in every format the repository keeps (meta.json erofs_formats; only
--erofs-version's when given) and prints ALGORITHM:ID of the first; NAME becomes a ref
(images/refs/NAME), a gc root. The repository decides the algorithm: --hash must agree with it.`,
    json: "{id, algorithm, name}",
    options: TREE_OPTIONS,
  },
  {
    name: "image-objects",
    args: "NAME",
    summary: "list the objects an image refers to",
    complete: "none",
    description: `Lists the objects (ALGORITHM:HEX) that image NAME (an image ID or a ref name)
refers to.`,
    json: "{algorithm, objects}",
    options: [],
  },
  {
    name: "dump-files",
    args: "NAME [PATH...]",
    summary: "print dumpfile lines of files in an image",
    complete: "none",
    description: `Prints the dumpfile lines of the given paths in image NAME (all entries when
no PATH).`,
    options: [],
  },
  {
    name: "mount",
    args: "NAME MOUNTPOINT",
    summary: "mount an image (EROFS + overlayfs; root)",
    complete: "dir",
    description: `Mounts image NAME (its image ID, or an image ref as 'cfs images' lists them)
with the kernel's EROFS and overlayfs over the repository's objects (verity=require in a secure
repository). Needs root. For pulled OCI images (tags, as 'cfs oci images' lists them) see
'cfs oci mount'.`,
    options: [],
  },
  {
    name: "images",
    args: "",
    summary: "list named image refs (images/refs)",
    description: `Lists the named image refs (images/refs/NAME) and the image each names, as
cfsctl images. Pulled OCI images are listed by 'cfs oci images'.`,
    json: "{images: [{name, digest}]}",
    options: [{ name: "no-trunc", help: "print whole image IDs" }],
  },
  {
    name: "cat",
    args: "NAME",
    summary: "write a stream's content to stdout",
    complete: "none",
    description: `Writes the content of a stream (NAME: refs/NAME or its name, e.g.
oci-layer-sha256:HEX) to stdout, as cfsctl cat.`,
    options: [],
  },
  {
    name: "oci",
    args: "COMMAND [ARGS...]",
    summary: "OCI commands: pull, images, inspect, tag, mount, fsck, ...",
    complete: "none",
    description: `Commands on OCI images as composefs-oci 0.9.4 stores them (see 'cfs help oci
COMMAND').`,
    options: [],
  },
  {
    name: "oci pull",
    args: "IMAGE [NAME]",
    summary: "pull an image (layout, archive, registry, skopeo)",
    description: `${PULL_FORMS}

Stores the layers, config and manifest as composefs-oci 0.9.4 does, makes the EROFS images
(every format of the repository; the bootable ones too with --bootable), links them from the
config and tags the image NAME (default: IMAGE itself, as cfsctl). Prints manifest, config,
verity (of the manifest stream), tagged and objects lines, as cfsctl.`,
    json: "{manifest, manifestVerity, config, configVerity, image, bootImage, layers, tag, ...}",
    options: [
      { name: "bootable", help: "also make the bootable images (composefs.image.boot)" },
      ...FETCH_OPTIONS,
    ],
  },
  {
    name: "oci images",
    args: "",
    summary: "list tagged images",
    description: `Lists the tagged images as a table: name (tag), image ID (the manifest
digest's first 12 hex digits, which every command takes as IMAGE), creation time, architecture
and layer count. Long names are shortened with '…' unless --no-trunc; -q prints only the image
IDs, one per distinct image.`,
    json: "{images: [...]} with cfsctl's fields (also --format json)",
    options: [
      { name: "no-trunc", help: "whole names and manifest digests" },
      {
        name: "format",
        value: "FORMAT",
        choices: ["table", "json"],
        help: "table (default) or json (as --json)",
      },
    ],
  },
  {
    name: "oci inspect",
    args: "IMAGE",
    summary: "manifest, config and linked images of a pulled image",
    complete: "none",
    description: `Prints the manifest and config (as stored), referrers and linked EROFS images
as JSON; with --manifest or --config only that document, byte for byte. With --json, also the
digests, verity ids, tags and layers.

${IMAGE_NAMES}`,
    json: "the same object, with cfs's fields added",
    options: [
      { name: "manifest", help: "only the manifest, byte for byte" },
      { name: "config", help: "only the config, byte for byte" },
    ],
  },
  {
    name: "oci tag",
    args: "DIGEST NAME",
    summary: "point a tag at an image (tags are gc roots)",
    complete: "none",
    description: `Points NAME at the image whose manifest digest is DIGEST (sha256:HEX, a unique
prefix, or any IMAGE name). Tags are gc roots.`,
    json: "{tag, manifest}",
    options: [],
  },
  {
    name: "oci untag",
    args: "NAME",
    summary: "remove a tag",
    complete: "none",
    description: "Removes the tag NAME; what only it kept alive goes at the next gc.",
    json: "{removed}",
    options: [],
  },
  {
    name: "oci compute-id",
    args: "IMAGE",
    summary: "image id of a pulled image",
    complete: "none",
    description: `Prints the image id of a pulled image in the repository's EROFS format
(--erofs-version overrides it).

${IMAGE_OR_CONFIG_NAMES}`,
    json: "{id, erofsVersion}",
    options: [
      { name: "bootable", help: "the bootable image's id" },
      TREE_OPTIONS[3],
    ],
  },
  {
    name: "oci dump",
    args: "IMAGE",
    summary: "dumpfile of a pulled image",
    complete: "none",
    description: `Prints the composefs dumpfile of a pulled image.

${IMAGE_OR_CONFIG_NAMES}`,
    options: [
      { name: "bootable", help: "the bootable image's dumpfile" },
      TREE_OPTIONS[3],
    ],
  },
  {
    name: "oci mount",
    args: "IMAGE MOUNTPOINT",
    summary: "mount the image's linked EROFS (root)",
    complete: "dir",
    description: `Mounts the pulled image's linked EROFS image of the repository's format (the
bootable one with --bootable); needs root. For an image ID or an image ref ('cfs images') see
'cfs mount'.

${IMAGE_NAMES}`,
    options: [{ name: "bootable", help: "mount the bootable image" }],
  },
  {
    name: "oci fsck",
    args: "[IMAGE]",
    summary: "check the repository and the tagged images",
    complete: "none",
    description: `The repository check (cfs fsck) plus every tagged image's (or IMAGE's):
manifest and config digests, their links, every layer stream. Exit 1 when a problem is found
(with --json: 0, as cfsctl).`,
    json: "{ok, images_checked, images_corrupted, errors, repo}",
    options: [],
  },
  {
    name: "oci layer",
    args: "DIFF_ID",
    summary: "a stored layer: tar, --json figures or --dumpfile",
    complete: "none",
    aliases: ["layer-inspect"],
    description: `The stored layer DIFF_ID (sha256:HEX): its tar on stdout (not to a terminal),
or with --json its size, entry count and splitstream figures (cfsctl's fields), or with
--dumpfile one line per entry. Also 'cfs oci layer-inspect'.`,
    json: "{diffId, verity, size, entryCount, splitstream}",
    options: [{ name: "dumpfile", help: "one line per entry: path, size, mode, owner" }],
  },
  {
    name: "oci import-layer",
    args: "DIGEST [NAME]",
    summary: "import a layer tar from stdin",
    complete: "none",
    description: `Reads an uncompressed layer tar from stdin and stores it as the splitstream
oci-layer-DIGEST (DIGEST: sha256:HEX, the tar's sha256, checked: a mismatch imports nothing),
with the ref streams/refs/NAME when given. A layer already present is not read again. Prints
the stream object's id (ALG:HEX), as cfsctl.`,
    json: "{streamId, diffId, objects, existing}",
    options: [],
  },
  {
    name: "oci ls-layer",
    args: "DIFF_ID",
    summary: "list a layer stream's entries",
    complete: "none",
    description: `Lists the entries of a layer stream, one line each (type, mode, owner, size,
path).`,
    json: "one object per line: {type, mode, uid, gid, size, path, linkTarget}",
    options: [],
  },
  {
    name: "oci create-image",
    args: "IMAGE",
    summary: "make and link the image's EROFS images",
    complete: "none",
    description: `Makes the image's EROFS images (every format of the repository) and links them
from its config, as a pull does; prints the id of the default format's.

${IMAGE_NAMES}`,
    json: "{id}",
    options: [{
      name: "bootable",
      help: "make the bootable images too; print the boot image's id",
    }],
  },
  {
    name: "pull",
    args: "IMAGE",
    summary: "pull as bootc does: tag, bootable EROFS, boot entries",
    description: `What bootc does with a composefs repository, as a pipeline of stages (open,
[storage], fetch, import, [label-storage], tag, label, image, boot) that hooks can wrap: open
the repository (created when missing, upgraded when old), pull IMAGE, write the bootable EROFS
image, find its boot entries, and tag it localhost/bootc-<manifest digest> (tags are written
last). The containers signature policy is enforced in fetch, as skopeo does.

${PULL_FORMS}

Prints a short summary: the image ID and manifest digest shortened, the tags, the boot
entries; -v prints every digest whole, -q only the image ID.

Exit codes: 1 error, 2 usage, 3 a hook failed, 4 the signature policy rejected the image,
130 interrupted. Built-in hooks: extra-tags, require-signature, selinux-relabel, log-json.`,
    json: `one JSON object per line: events, then {"result": {...}} with every digest whole`,
    options: [
      {
        name: "unified",
        help: "bootc's unified storage: podman pulls IMAGE into <repo>/bootc/storage " +
          "(containers-storage:NAME is copied from the host's storage), then it is imported " +
          "from there, zero-copy",
      },
      ...FETCH_OPTIONS,
      {
        name: "algorithm",
        value: "A",
        choices: ["fsverity-sha512-12", "fsverity-sha256-12"],
        help: "for a new repository (default fsverity-sha512-12)",
      },
      {
        name: "allow-missing-fsverity",
        help: "create an insecure repository where fs-verity is unavailable",
      },
      {
        name: "hook",
        value: "FILE",
        multiple: true,
        help: "load a hook module (TypeScript) or builtin:NAME; repeatable",
      },
      { name: "hooks-dir", value: "DIR", multiple: true, help: "load every *.ts hook in DIR" },
      {
        name: "no-default-hooks",
        help: "skip /etc/cfs/hooks.d and $XDG_CONFIG_HOME/cfs/hooks.d",
      },
    ],
  },
  {
    name: "boot-entries",
    args: "IMAGE",
    summary: "list a pulled image's boot entries",
    complete: "none",
    description: `Lists the boot entries (BLS type 1 and UKIs) of a pulled image.

${IMAGE_NAMES}`,
    json: "an array of entries",
    options: [],
  },
  {
    name: "fsck",
    args: "",
    summary: "check every object, image and stream",
    description: `Checks the repository as cfsctl fsck does: every object is read and hashed
(and its fs-verity measured in a secure repository), every stream and image link must resolve,
every stream must parse and every object it or an image refers to must exist, every ref must
resolve. Prints one line per error (fsck: KIND: PATH: DETAIL) and exits 1 when there is any
(with --json: 0, as cfsctl). Warnings (leftovers of interrupted writes, streams in cfsctl
0.3.0's format) are not errors.

--repair (cfs only) removes what fsck finds damaged: objects whose content does not match
their name, then the stream and image links that would name something incomplete, then refs
left dangling (listed: images to pull or create again). Objects still sound are kept, so the
next pull fetches exactly what was lost. Prints what it removed and the report after; exits 1
when errors remain.`,
    json: "the report with cfsctl's fields, then problems and warnings",
    options: [{ name: "repair", help: "remove what is damaged (see above)" }],
  },
  {
    name: "gc",
    args: "",
    summary: "remove what no ref keeps alive",
    description: `Garbage collection as cfsctl gc does it: keeps every object an image ref, a
stream ref (a tag keeps its manifest, config, layers and the config's images) or a --root (an
image id or a stream name) reaches, and removes the rest; then prunes links left pointing
nowhere and temporary files of interrupted writes.`,
    json: "the report: objectsRemoved, objectsBytes, imagesPruned, streamsPruned, ...",
    options: [
      { name: "dry-run", short: "n", help: "only count what would be removed" },
      {
        name: "root",
        short: "r",
        value: "NAME",
        multiple: true,
        help: "also keep this image id or stream name",
      },
    ],
  },
  {
    name: "setup-root",
    args: "",
    summary: "initramfs: mount composefs=ID as the new root",
    description: `What composefs-setup-root does, run in an initramfs as root: read the image id
from the kernel command line (composefs.digest=v1-<hash>-12:<id> for a V1 image, v2-... or
composefs=<id> for V2; composefs.digest= wins, and of several the first of the repository's
algorithm whose image exists; '?' right after '=' skips the fs-verity checks), open the
repository <SYSROOT>/composefs (or --repo), enable fs-verity on the image and on every object
it uses where missing and compare each measured digest with its name, mount the EROFS image
with overlayfs over objects/ (data-only lower layer with verity=require; on kernels without
those, lowerdir=IMAGE:OBJECTS), move the old sysroot to <new root>/sysroot and the new root
onto SYSROOT. The initramfs's PID 1 then runs 'switch_root SYSROOT /sbin/init'.`,
    json: "{id, root, overlay, ...}",
    options: [
      { name: "cmdline", value: "TEXT", help: "the kernel command line (default: /proc/cmdline)" },
      {
        name: "sysroot",
        value: "DIR",
        help: "where the real root is mounted and the new root goes (default /sysroot)",
      },
      {
        name: "root-device",
        value: "DEV",
        help: "mount DEV (read-write) on SYSROOT first; default: root=/dev/... from the " +
          "command line when SYSROOT is not a mount point yet (and no --mountpoint)",
      },
      {
        name: "root-fstype",
        value: "TYPE",
        help: "file system of the root device (default: rootfstype=, else ext4)",
      },
      { name: "mountpoint", value: "DIR", help: "only mount the composed root at DIR" },
    ],
  },
  {
    name: "initramfs",
    args: "",
    summary: "write the cfs drop-in initramfs or dracut module",
    description: `Writes an initramfs that boots a composefs image: its /init (busybox) loads the
kernel modules cfs needs, runs 'cfs setup-root' (which mounts the image named by
composefs.digest= or composefs= on the kernel command line over root=/dev/...) and switch_roots
into it. cfs goes in as this cfs: a compiled cfs as /usr/bin/cfs; else the deno executable plus
cfs bundled into one file and a /usr/bin/cfs that runs it. The modules come with their
dependencies from the tree's modules.dep; those built into the kernel are left out.

--dracut DIR writes a dracut module instead of (or besides) the initramfs: install it as
/usr/lib/dracut/modules.d/90cfs and run 'dracut --add cfs'.

Give (--kernel VERSION or --modules-dir DIR) with -o FILE, or --dracut DIR, or both.`,
    options: [
      {
        name: "kernel",
        value: "VERSION",
        help: "kernel release whose modules go in (/lib/modules/VERSION)",
      },
      {
        name: "modules-dir",
        value: "DIR",
        help: "the module tree instead (e.g. an image's /usr/lib/modules/VERSION)",
      },
      {
        name: "output",
        short: "o",
        value: "FILE",
        help: "the initramfs to write (an uncompressed newc cpio)",
      },
      { name: "dracut", value: "DIR", help: "also (or only) write a dracut module directory" },
      {
        name: "cfs-binary",
        value: "FILE",
        help: "carry this compiled cfs (make binary's dist/cfs)",
      },
      {
        name: "deno",
        value: "FILE",
        help: "the deno executable to carry with the bundle (default: this one)",
      },
      { name: "busybox", value: "FILE", help: "static busybox (default /bin/busybox)" },
      {
        name: "module",
        value: "NAME",
        multiple: true,
        help: "another kernel module to load (repeatable)",
      },
      { name: "init", value: "PATH", help: "the program switch_root starts (default /sbin/init)" },
    ],
  },
  {
    name: "vm-test",
    args: "IMAGE",
    summary: "boot an image in QEMU from composefs",
    description: `Boots IMAGE in QEMU from its composefs image and watches the serial console.

IMAGE is a name in the repository (--repo, $CFS_REPO, the default one): a tag such as
localhost/bootc-sha256:<digest> (what 'cfs pull' writes), @sha256:<digest> or a digest; that
image is booted as it is, without a pull. A reference with a transport (oci:, oci-archive:,
docker://, containers-storage:, ...) is pulled first, as 'cfs pull' does: into --repo or
$CFS_REPO when given, else into a fresh repository in the work directory.

The kernel, initramfs and options come from the image's first BLS boot entry; --initramfs FILE
boots another initramfs instead, e.g. the drop-in 'cfs initramfs --kernel KVER -o FILE' writes.
cfs adds 'console=ttyS0 panic=-1 no_timer_check root=/dev/vda rw' and the image's kernel
argument as composefs-rs 0.9.4 writes it, puts the image and its objects on an ext4 disk made
with -O verity, boots and watches the console. It passes (exit 0) when the --expect text
appears, by default a login prompt ('login:') or systemd reaching multi-user.target or
graphical.target; QEMU is stopped then. It fails (exit 1) with the reason when the initramfs
reports a failure ('cfs: ...' from cfs setup-root), the kernel panics, the guest stops or the
time runs out; Ctrl-C exits 130. The work directory is removed at the end unless --keep or
--work DIR.

Needs root (QEMU, mkfs.ext4 -d), qemu-system-x86_64 and e2fsprogs.`,
    json: "{ok, reason, imageId, erofsVersion, karg, cmdline, entry, consoleLog, times, pulled, " +
      "repo, initramfs}",
    options: [
      {
        name: "expect",
        value: "TEXT",
        help: "the success text (default: a login prompt or a target)",
      },
      { name: "until", value: "TEXT", help: "also wait for this line after the success line" },
      { name: "initramfs", value: "FILE", help: "boot this initramfs instead of the boot entry's" },
      { name: "timeout", value: "SECONDS", help: "give up after this long (default 120)" },
      { name: "append", value: "ARGS", multiple: true, help: "extra kernel arguments" },
      { name: "kvm", help: "use -accel kvm (default: -accel tcg)" },
      { name: "memory", value: "MIB", help: "guest RAM (default 1536)" },
      { name: "work", value: "DIR", help: "the run directory, kept (default: a new one, removed)" },
      { name: "keep", help: "keep the default run directory (disk, console log)" },
      {
        name: "tls-verify",
        value: "BOOL",
        choices: ["true", "false"],
        help: "false: plain HTTP to the registry",
      },
      { name: "authfile", value: "FILE", help: "registry credentials" },
    ],
  },
  {
    name: "hook",
    args: "COMMAND [ARGS...]",
    summary: "hook authoring: hook init NAME [DIR]",
    complete: "none",
    description: `Commands for writing cfs pull hooks (see 'cfs help hook init').`,
    options: [],
  },
  {
    name: "hook init",
    args: "NAME [DIR]",
    summary: "write DIR/NAME.ts, a typed pull hook to start from",
    complete: "dir",
    description: `Writes DIR/NAME.ts (DIR: the current directory; an existing file is left
alone), a cfs pull hook that uses every part of the hook API once. Its type-only import names
hooks/types.ts where cfs finds it (this checkout's, or PREFIX/share/cfs/hooks/types.ts that
'make install' writes), so 'deno check DIR/NAME.ts' checks it. Try it with
'cfs pull --hook DIR/NAME.ts IMAGE', then install it into /etc/cfs/hooks.d/.

NAME: lower-case letters, digits and '-', starting with a letter; it is the hook's name.`,
    json: "{file, types, typesInstalled}",
    options: [],
  },
  {
    name: "help",
    args: "[COMMAND]",
    summary: "print the help of cfs or of a command",
    complete: "none",
    description: `Prints the commands, or what COMMAND does and takes ('cfs help oci pull' for
a subcommand). 'cfs COMMAND --help' prints the same.`,
    options: [],
  },
  {
    name: "completion",
    args: "bash|zsh|fish",
    summary: "print a shell completion script",
    complete: "none",
    description: `Prints the completion script for the shell, made from the same table as this
help. Load it with 'source <(cfs completion bash)' (bash), 'source <(cfs completion zsh)'
(zsh) or 'cfs completion fish | source' (fish), or install it where the shell looks
(/usr/share/bash-completion/completions/cfs, a directory of $fpath as _cfs,
~/.config/fish/completions/cfs.fish).`,
    options: [],
  },
  {
    name: "man",
    args: "[COMMAND]",
    summary: "print a man page (roff)",
    complete: "none",
    description: `Prints the man page of cfs, or of COMMAND (cfs-COMMAND(1)), as roff made from
the same table as this help: 'cfs man pull | man -l -'. With --out DIR, writes every page
(cfs.1 and cfs-COMMAND.1) into DIR instead ('make man' writes man/).`,
    options: [{ name: "out", value: "DIR", help: "write every page into DIR" }],
  },
] as const satisfies readonly CommandSpec[];

/** The name of a command in the table. */
export type CommandName = typeof COMMAND_TABLE[number]["name"];

/** The table's entry for a command name (`"oci pull"`); undefined for an unknown one. */
export function findCommand(name: string): CommandSpec | undefined {
  const table: readonly CommandSpec[] = COMMAND_TABLE;
  return table.find((c) => c.name === name) ??
    table.find((c) => c.aliases?.some((a) => `${c.name.split(" ")[0]} ${a}` === name));
}

/** The table's entry for `name`, which must be in it (a typed lookup for command modules). */
export function commandSpec<N extends CommandName>(
  name: N,
): Extract<typeof COMMAND_TABLE[number], { name: N }> {
  return COMMAND_TABLE.find((c) => c.name === name) as Extract<
    typeof COMMAND_TABLE[number],
    { name: N }
  >;
}

/** The top-level commands (`oci` once, not its subcommands). */
export function topLevelCommands(): CommandSpec[] {
  return COMMAND_TABLE.filter((c) => !c.name.includes(" "));
}

/** The subcommands of a group (`oci`), without the group's name. */
export function subcommands(group: string): CommandSpec[] {
  return COMMAND_TABLE.filter((c) => c.name.startsWith(`${group} `));
}
