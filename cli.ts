/**
 * The cfs binary's entry point: global options, dispatch to a command module, and the
 * mapping of errors to one-line messages and exit codes (each error's `exitCode`: 1 failure,
 * 2 usage, 3 hook, 4 rejected by the signature policy, 130 interrupted; see lib/errors.ts).
 *
 * With `--json` anywhere on the command line a failure is one JSON line on stdout,
 * `{"error": {"code", "message", "exitCode"}}`, where the command's JSON result would have been
 * (so a script reads one JSON document from stdout either way), and nothing on stderr but what
 * `-v` adds. Otherwise it is `cfs: MESSAGE` on stderr. Either way the message is one line of at
 * most {@link MAX_ERROR_LINE} characters, shortened in the middle.
 *
 * Every command module is imported statically so that `deno compile` includes it.
 *
 * @module
 */
import { type CommandHandler, type GlobalOptions, UsageError } from "./lib/cli/command.ts";
import { clipMiddle, errorCode, errorExitCode, MAX_ERROR_LINE } from "./lib/errors.ts";
import { digestCommand } from "./lib/cli/digest.ts";
import {
  computeIdCommand,
  computeKargCommand,
  createDumpfileCommand,
  createImageCommand,
  dumpFilesCommand,
  imageObjectsCommand,
  mountCommand,
} from "./lib/cli/image.ts";
import { bootEntriesCommand, pullCommand } from "./lib/cli/pull.ts";
import { fsckCommand, gcCommand, imagesCommand, initCommand } from "./lib/cli/repo.ts";
import { catCommand, ociCommand } from "./lib/cli/oci.ts";
import { setupRootCommand } from "./lib/cli/setup_root.ts";
import { vmTestCommand } from "./lib/cli/vm_test.ts";
import { initramfsCommand } from "./lib/cli/initramfs.ts";
import { hookCommand } from "./lib/cli/hook.ts";
import { parseErofsVersion } from "./lib/erofs/format.ts";
import { HOOK_CHILD_COMMAND, runHookChild } from "./lib/pipeline/hook_child.ts";

const COMMANDS: Record<string, { handler: CommandHandler; summary: string }> = {
  init: { handler: initCommand, summary: "create a repository" },
  digest: { handler: digestCommand, summary: "print fs-verity digests of files" },
  "compute-id": { handler: computeIdCommand, summary: "print the image ID of a directory tree" },
  "compute-karg": {
    handler: computeKargCommand,
    summary: "print the kernel argument that boots a tree's bootable image",
  },
  "create-dumpfile": {
    handler: createDumpfileCommand,
    summary: "print the composefs dumpfile of a tree",
  },
  "create-image": {
    handler: createImageCommand,
    summary: "commit a tree's EROFS image to the repository",
  },
  "image-objects": { handler: imageObjectsCommand, summary: "list the objects an image refers to" },
  "dump-files": { handler: dumpFilesCommand, summary: "print dumpfile lines of files in an image" },
  mount: { handler: mountCommand, summary: "mount an image (EROFS + overlayfs; root)" },
  images: { handler: imagesCommand, summary: "list named image refs (images/refs)" },
  cat: {
    handler: catCommand,
    summary: "write a stream's content (refs/NAME or its name) to stdout",
  },
  oci: {
    handler: ociCommand,
    summary: "OCI commands: pull, images, inspect, tag, untag, compute-id, dump, mount, fsck, ...",
  },
  pull: {
    handler: pullCommand,
    summary: "pull an image as bootc does: tag, bootable EROFS, boot entries",
  },
  "boot-entries": { handler: bootEntriesCommand, summary: "list a pulled image's boot entries" },
  fsck: { handler: fsckCommand, summary: "check every object, image and stream" },
  gc: { handler: gcCommand, summary: "remove what no ref keeps alive" },
  "setup-root": { handler: setupRootCommand, summary: "initramfs: mount composefs=ID as root" },
  initramfs: {
    handler: initramfsCommand,
    summary: "write the cfs drop-in initramfs (or a dracut module) for a kernel",
  },
  "vm-test": { handler: vmTestCommand, summary: "boot a pulled image in QEMU from composefs" },
  hook: { handler: hookCommand, summary: "hook authoring: hook init NAME [DIR]" },
};

const USAGE = `usage: cfs [--repo DIR] [--config FILE] [--json] [-v] [--erofs-version 0|1|2]
           [--hash sha256|sha512] [--no-repo] COMMAND [ARGS...]

commands:
${Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(16)} ${c.summary}`).join("\n")}

Run 'cfs COMMAND --help' for a command's options.`;

/** Runs cfs with `argv` (without the program name); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  // The compiled binary starts each hook's process as itself (lib/pipeline/hook_process.ts).
  if (argv[0] === HOOK_CHILD_COMMAND) return await runHookChild(argv[1] ?? "");
  const globals: GlobalOptions = { json: false, verbose: false, repo: Deno.env.get("CFS_REPO") };
  // Errors as JSON whenever --json appears, before or after the command (commands take it too).
  const end = argv.indexOf("--");
  const json = (end < 0 ? argv : argv.slice(0, end)).includes("--json");
  const usageError = (message: string, usage = USAGE) =>
    reportError(new UsageError(message, usage), json, false);
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") globals.json = true;
    else if (a === "-v" || a === "--verbose") globals.verbose = true;
    else if (a === "--repo") {
      if (i + 1 >= argv.length) return usageError("--repo needs a directory");
      globals.repo = argv[++i];
    } else if (a.startsWith("--repo=")) globals.repo = a.slice(7);
    else if (a === "--config") {
      if (i + 1 >= argv.length) return usageError("--config needs a file");
      globals.config = argv[++i];
    } else if (a.startsWith("--config=")) globals.config = a.slice(9);
    else if (a === "--erofs-version" || a.startsWith("--erofs-version=")) {
      const value = a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i];
      const version = value === undefined ? undefined : parseErofsVersion(value);
      if (version === undefined) return usageError("--erofs-version needs 0, 1 or 2");
      globals.erofsVersion = version;
    } else if (a === "--hash" || a.startsWith("--hash=")) {
      const value = a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i];
      if (value !== "sha256" && value !== "sha512") {
        return usageError("--hash needs sha256 or sha512");
      }
      globals.hash = value;
    } else if (a === "--no-repo") globals.noRepo = true;
    else if (a === "-h" || a === "--help") {
      console.log(USAGE);
      return 0;
    } else if (a === "--version") {
      console.log("cfs 0.1.0");
      return 0;
    } else break;
  }
  const name = argv[i];
  if (name === undefined) return usageError("no command given");
  const command = COMMANDS[name];
  if (command === undefined) return usageError(`unknown command '${name}'`);
  try {
    return await command.handler(argv.slice(i + 1), globals);
  } catch (e) {
    if (e instanceof UsageError) {
      return reportError(new UsageError(`${name}: ${e.message}`, e.usage ?? USAGE), json, false);
    }
    return reportError(e, json, globals.verbose);
  }
}

/** An error message as one bounded line: newlines folded, the middle of a long one elided. */
export function errorLine(message: string): string {
  return clipMiddle(message.replace(/\s*[\r\n]+\s*/g, " ").trim(), MAX_ERROR_LINE);
}

/**
 * Prints `e` (see the module documentation) and returns its exit code. A usage error shows the
 * usage text after the message, on stderr, unless the output is JSON.
 */
function reportError(e: unknown, json: boolean, verbose: boolean): number {
  const err = e instanceof Error ? e : new Error(String(e));
  const exitCode = errorExitCode(e);
  const message = errorLine(err.message);
  if (json) {
    console.log(JSON.stringify({ error: { code: errorCode(e), message, exitCode } }));
  } else {
    console.error(`cfs: ${message}`);
    if (e instanceof UsageError && e.usage !== undefined) console.error(e.usage);
  }
  if (verbose) {
    // With -v: the cause chain and the stack, unbounded, for a bug report.
    let cause = err.cause;
    while (cause !== undefined) {
      console.error(`  caused by: ${cause instanceof Error ? cause.message : String(cause)}`);
      cause = cause instanceof Error ? cause.cause : undefined;
    }
    if (err.stack) console.error(err.stack);
  }
  return exitCode;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
