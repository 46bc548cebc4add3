/**
 * `cfs setup-root`: the initramfs step that mounts the composefs image named by
 * `composefs.digest=` or `composefs=` as the new root (lib/setup_root.ts).
 *
 * @module
 */
import { dirname } from "node:path";
import { type CommandHandler, parseCommand, println, UsageError } from "./command.ts";
import { commandSpec } from "./table.ts";
import { cmdlineValue, setupRoot } from "../setup_root.ts";

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
  const { values, positionals } = parseCommand(args, commandSpec("setup-root"));
  if (positionals.length) throw new UsageError("no arguments expected");
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
