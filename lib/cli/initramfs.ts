/**
 * `cfs initramfs`: writes the cfs drop-in initramfs for a kernel, and/or a dracut module
 * directory (lib/vm/dropin.ts), from any directory and from an installed cfs.
 *
 * @module
 */
import * as fs from "node:fs";
import { basename, join } from "node:path";
import { type CommandHandler, parseCommandArgs, println, UsageError } from "./command.ts";
import {
  buildDropinInitramfs,
  cfsPayload,
  DRACUT_MODULES,
  DROPIN_MARKER,
  DROPIN_MODULES,
  writeDracutModule,
} from "../vm/dropin.ts";

const USAGE = `usage: cfs initramfs (--kernel VERSION | --modules-dir DIR) -o FILE [OPTIONS]
       cfs initramfs --dracut DIR [OPTIONS]

Writes an initramfs that boots a composefs image: its /init (busybox) loads the kernel
modules cfs needs, runs 'cfs setup-root' (which mounts the image named by composefs.digest=
or composefs= on the kernel command line over root=/dev/...) and switch_roots into it. Its
console lines start with '${DROPIN_MARKER}:'. cfs goes in as this cfs: a compiled cfs as
/usr/bin/cfs; else the deno executable plus cfs bundled into one file (/usr/lib/cfs/cfs.js,
bundled now with the checkout's deno.json when cfs runs from source) and a /usr/bin/cfs that
runs it. The modules (${DROPIN_MODULES.join(", ")}) come with their dependencies from the
tree's modules.dep; those built into the kernel (modules.builtin) are left out.

--dracut DIR writes a dracut module instead of (or besides) the initramfs: module-setup.sh
(check, depends, installkernel: ${DRACUT_MODULES.join(" ")}; install: cfs and a pre-pivot hook
that runs 'cfs setup-root --sysroot $NEWROOT' when the command line names a composefs image)
and cfs's files. Install it as /usr/lib/dracut/modules.d/90cfs and run 'dracut --add cfs'.

options:
  --kernel VERSION       kernel release whose modules go in (/lib/modules/VERSION)
  --modules-dir DIR      the module tree instead (e.g. an image's /usr/lib/modules/VERSION)
  -o, --output FILE      the initramfs to write (an uncompressed newc cpio)
  --dracut DIR           also (or only) write a dracut module directory
  --cfs-binary FILE      carry this compiled cfs (make binary's dist/cfs)
  --deno FILE            the deno executable to carry with the bundle (default: this one)
  --busybox FILE         static busybox (default /bin/busybox: apt-get install busybox-static)
  --module NAME          another kernel module to load (repeatable)
  --init PATH            the program switch_root starts (default /sbin/init)`;

/** `cfs initramfs` */
export const initramfsCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    help: { type: "boolean", short: "h" },
    kernel: { type: "string" },
    "modules-dir": { type: "string" },
    output: { type: "string", short: "o" },
    dracut: { type: "string" },
    "cfs-binary": { type: "string" },
    deno: { type: "string" },
    busybox: { type: "string" },
    module: { type: "string", multiple: true },
    init: { type: "string" },
  }, USAGE);
  if (values.help) {
    println(USAGE);
    return 0;
  }
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`, USAGE);
  const out = values.output;
  if (out === undefined && values.dracut === undefined) {
    throw new UsageError("nothing to write: give -o FILE, --dracut DIR or both", USAGE);
  }
  const modulesDir = values["modules-dir"] ??
    (values.kernel !== undefined ? `/lib/modules/${values.kernel}` : undefined);
  if (out !== undefined && modulesDir === undefined) {
    throw new UsageError("-o needs --kernel VERSION or --modules-dir DIR", USAGE);
  }
  if (values.init !== undefined && !values.init.startsWith("/")) {
    throw new UsageError(`--init must be an absolute path, not '${values.init}'`, USAGE);
  }
  const work = await Deno.makeTempDir({ prefix: "cfs-initramfs-" });
  try {
    const payload = await cfsPayload({
      binary: values["cfs-binary"],
      deno: values.deno,
      workDir: work,
    });
    const result: Record<string, unknown> = { payload: payload.kind };
    if (out !== undefined) {
      const r = buildDropinInitramfs({
        out,
        kernelVersion: values.kernel ?? basename(modulesDir!),
        modulesDir,
        busybox: values.busybox,
        payload,
        modules: [...DROPIN_MODULES, ...(values.module ?? [])],
        init: values.init,
      });
      Object.assign(result, {
        output: out,
        bytes: r.bytes.length,
        modules: r.modules,
        builtin: r.builtin,
      });
      if (!globals.json) {
        println(
          `${out}: ${(r.bytes.length / 2 ** 20).toFixed(1)} MiB, cfs as ${
            payload.kind === "binary" ? "a compiled binary" : "deno + one bundled file"
          }, ${r.modules.length} kernel modules from ${modulesDir}` +
            (r.builtin.length ? ` (built in: ${r.builtin.join(", ")})` : ""),
        );
      }
    }
    if (values.dracut !== undefined) {
      const files = writeDracutModule(values.dracut, payload);
      result.dracut = { dir: values.dracut, files };
      if (!globals.json) {
        println(
          `${values.dracut}: dracut module cfs (${files.join(", ")}); install it as ` +
            `/usr/lib/dracut/modules.d/90cfs, then 'dracut --add cfs'`,
        );
      }
    }
    if (globals.json) println(JSON.stringify(result));
    return 0;
  } finally {
    fs.rmSync(join(work), { recursive: true, force: true });
  }
};
