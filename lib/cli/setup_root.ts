/**
 * `cfs setup-root`: the initramfs step that mounts the composefs image named by
 * `composefs.digest=` or `composefs=` as the new root (lib/setup_root.ts).
 *
 * @module
 */
import { dirname } from "node:path";
import { type CommandHandler, parseCommandArgs, println, UsageError } from "./command.ts";
import { cmdlineValue, setupRoot } from "../setup_root.ts";

const USAGE = `usage: cfs setup-root [OPTIONS]

What composefs-setup-root does, run in an initramfs as root: read the image id from the
kernel command line (composefs.digest=v1-<hash>-12:<id> for a V1 image, v2-... or
composefs=<id> for V2; composefs.digest= wins, and of several the first of the repository's
algorithm whose image exists; '?' right after '=' skips the fs-verity checks), open the
repository <SYSROOT>/composefs (or --repo), enable fs-verity on the image and on every object
it uses where missing and compare each measured digest with its name, mount the EROFS image
with overlayfs over objects/ (data-only lower layer with verity=require; on kernels without
those, lowerdir=IMAGE:OBJECTS: a V1 image as it is, its whiteouts for 00..ff hide the object
directories, a V2 image rewritten as V1 in /run), move the old sysroot to <new root>/sysroot
and the new root onto SYSROOT. The initramfs's PID 1 then runs 'switch_root SYSROOT
/sbin/init'.

options:
  --cmdline TEXT       the kernel command line to read (default: /proc/cmdline)
  --sysroot DIR        where the real root is mounted and the new root goes (default /sysroot)
  --root-device DEV    mount DEV (read-write) on SYSROOT first; default: root=/dev/... from
                       the command line when SYSROOT is not a mount point yet (and no
                       --mountpoint); LABEL=/UUID= need udev and are not resolved
  --root-fstype TYPE   file system of the root device (default: rootfstype=, else ext4)
  --mountpoint DIR     only mount the composed root at DIR (leave SYSROOT alone)`;

/** Whether `dir` is a mount point (its device differs from its parent's). */
function isMountPoint(dir: string): boolean {
  try {
    return Deno.statSync(dir).dev !== Deno.statSync(dirname(dir)).dev;
  } catch {
    return false;
  }
}

/** `cfs setup-root` */
export const setupRootCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    cmdline: { type: "string" },
    sysroot: { type: "string" },
    "root-device": { type: "string" },
    "root-fstype": { type: "string" },
    mountpoint: { type: "string" },
  }, USAGE);
  if (values.help) {
    println(USAGE);
    return 0;
  }
  if (positionals.length) throw new UsageError("no arguments expected", USAGE);
  const cmdline = values.cmdline ?? await Deno.readTextFile("/proc/cmdline");
  const sysroot = values.sysroot ?? "/sysroot";
  let rootDevice = values["root-device"];
  if (rootDevice === undefined && values.mountpoint === undefined && !isMountPoint(sysroot)) {
    const root = cmdlineValue(cmdline, "root");
    if (root?.startsWith("/dev/")) rootDevice = root;
  }
  const result = await setupRoot({
    cmdline,
    sysroot,
    rootDevice,
    rootFsType: values["root-fstype"] ?? cmdlineValue(cmdline, "rootfstype"),
    repo: globals.repo,
    mountpoint: values.mountpoint,
    log: globals.json ? undefined : (line) => console.error(`cfs setup-root: ${line}`),
  });
  if (globals.json) println(JSON.stringify(result));
  else println(`composefs ${result.id} on ${result.root} (${result.overlay})`);
  return 0;
};
