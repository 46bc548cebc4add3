/**
 * Platform constants per architecture (issue 11, point 10; lib/sys/arch.ts). The values are
 * checked against outside sources, never against cfs's own code:
 *
 * - both tables against the kernel's UAPI headers as Debian ships them: the host's
 *   (`/usr/include`, x86-64) and the arm64 cross headers (`linux-libc-dev-arm64-cross`,
 *   `/usr/aarch64-linux-gnu/include`), read through the C preprocessor (`gcc -E -dM`);
 * - on this host, what cfs computes (ioctl numbers, dirent offsets) against a C program
 *   compiled here;
 * - the aarch64 table against the values written in lib/sys/arch.ts's documentation.
 *
 * This host cannot run aarch64 code: the aarch64 table is checked, not exercised.
 *
 * @module
 */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { join } from "node:path";
import {
  ARCH_TABLE,
  archConstants,
  iow,
  type KnownArch,
  platform,
  UnsupportedPlatformError,
} from "../lib/sys/arch.ts";
import { verityIoctls } from "../lib/fsverity/ioctl.ts";
import { requireTool } from "./cfs.ts";

const HEADERS: Record<KnownArch, string> = {
  x86_64: "/usr/include",
  aarch64: "/usr/aarch64-linux-gnu/include",
};
const HEADER_HINT: Record<KnownArch, string> = {
  x86_64: "apt-get install linux-libc-dev",
  aarch64: "apt-get install linux-libc-dev-arm64-cross (make apt)",
};

/** The macros `#include <header>` defines with `arch`'s kernel headers: name -> text. */
async function macros(arch: KnownArch, header: string): Promise<Map<string, string>> {
  requireTool("gcc", "apt-get install gcc");
  // Debian keeps the host's asm/ headers below the multiarch directory.
  const asmDir = arch === "x86_64" ? "/usr/include/x86_64-linux-gnu" : HEADERS[arch];
  try {
    Deno.statSync(join(asmDir, header));
  } catch {
    throw new Error(`${join(asmDir, header)} is missing: ${HEADER_HINT[arch]}`);
  }
  const include = arch === "x86_64" ? [`-I${asmDir}`] : [];
  const child = new Deno.Command("gcc", {
    args: ["-nostdinc", ...include, `-I${HEADERS[arch]}`, "-E", "-dM", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(`#include <${header}>\n`));
  await w.close();
  const out = await child.output();
  strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
  const defs = new Map<string, string>();
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const m = /^#define (\w+) (.+)$/.exec(line);
    if (m) defs.set(m[1], m[2].trim());
  }
  return defs;
}

/** A C integer literal (octal with a leading 0, decimal, hex; `U` suffix) as a number. */
function cNumber(text: string): number {
  const t = text.replace(/[uU]$/, "").replace(/^\((.*)\)$/, "$1");
  if (/^0x[0-9a-f]+$/i.test(t)) return parseInt(t.slice(2), 16);
  if (/^0[0-7]*$/.test(t)) return parseInt(t, 8);
  if (/^[1-9][0-9]*$/.test(t)) return parseInt(t, 10);
  throw new Error(`not an integer literal: ${text}`);
}

for (const arch of Object.keys(ARCH_TABLE) as KnownArch[]) {
  Deno.test(`the ${arch} table equals that architecture's kernel headers (open flags, ioctl encoding)`, async () => {
    const c = ARCH_TABLE[arch];
    const fcntl = await macros(arch, "asm/fcntl.h");
    for (const [name, value] of Object.entries(c.open)) {
      const macro = name === "O_LARGEFILE_KERNEL" ? "O_LARGEFILE" : name;
      ok(fcntl.has(macro), `${arch}: ${macro} not defined by the headers`);
      strictEqual(value, cNumber(fcntl.get(macro)!), `${arch}: ${name}`);
    }
    const ioctl = await macros(arch, "asm/ioctl.h");
    deepStrictEqual(
      {
        nrBits: cNumber(ioctl.get("_IOC_NRBITS")!),
        typeBits: cNumber(ioctl.get("_IOC_TYPEBITS")!),
        sizeBits: cNumber(ioctl.get("_IOC_SIZEBITS")!),
        none: cNumber(ioctl.get("_IOC_NONE")!),
        write: cNumber(ioctl.get("_IOC_WRITE")!),
        read: cNumber(ioctl.get("_IOC_READ")!),
      },
      c.ioc,
      `${arch}: _IOC encoding`,
    );
  });
}

Deno.test("the aarch64 table holds the values documented in lib/sys/arch.ts (not runnable on this x86-64 host)", () => {
  const c = archConstants("linux", "aarch64");
  deepStrictEqual(c.open, {
    O_RDONLY: 0,
    O_WRONLY: 0o1,
    O_RDWR: 0o2,
    O_CREAT: 0o100,
    O_EXCL: 0o200,
    O_TRUNC: 0o1000,
    O_DIRECTORY: 0o40000,
    O_NOFOLLOW: 0o100000,
    O_CLOEXEC: 0o2000000,
    O_LARGEFILE_KERNEL: 0o400000,
  });
  // The trap the issue names: x86-64's O_NOFOLLOW is arm64's O_LARGEFILE.
  strictEqual(ARCH_TABLE.x86_64.open.O_NOFOLLOW, c.open.O_LARGEFILE_KERNEL);
  deepStrictEqual(c.dirent, { reclenOffset: 16, typeOffset: 18, nameOffset: 19 });
  const verity = verityIoctls(c);
  strictEqual(verity.enable, 0x40806685n);
  strictEqual(verity.measure, 0xc0046686n);
  strictEqual(iow(c, 0x94, 9, 4), 0x40049409n, "FICLONE");
});

Deno.test("on this host, cfs's ioctl numbers, open flags and dirent offsets are what C compiles to", async () => {
  requireTool("gcc", "apt-get install gcc");
  const dir = await Deno.makeTempDir({ prefix: "cfs-arch-test-" });
  try {
    const src = join(dir, "consts.c");
    await Deno.writeTextFile(
      src,
      `#define _GNU_SOURCE
#include <stdio.h>
#include <stddef.h>
#include <fcntl.h>
#include <dirent.h>
#include <linux/fs.h>
#include <linux/fsverity.h>
int main(void) {
  printf("{\\"O_NOFOLLOW\\": %d, \\"O_DIRECTORY\\": %d, \\"O_CLOEXEC\\": %d, ", O_NOFOLLOW, O_DIRECTORY, O_CLOEXEC);
  printf("\\"O_CREAT\\": %d, \\"O_EXCL\\": %d, \\"O_TRUNC\\": %d, ", O_CREAT, O_EXCL, O_TRUNC);
  printf("\\"enable\\": \\"%lu\\", \\"measure\\": \\"%lu\\", \\"ficlone\\": \\"%lu\\", ",
         (unsigned long)FS_IOC_ENABLE_VERITY, (unsigned long)FS_IOC_MEASURE_VERITY, (unsigned long)FICLONE);
  printf("\\"reclen\\": %zu, \\"type\\": %zu, \\"name\\": %zu}\\n",
         offsetof(struct dirent, d_reclen), offsetof(struct dirent, d_type), offsetof(struct dirent, d_name));
  return 0;
}
`,
    );
    const bin = join(dir, "consts");
    const cc = await new Deno.Command("gcc", { args: ["-o", bin, src], stderr: "piped" }).output();
    strictEqual(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const got = JSON.parse(new TextDecoder().decode((await new Deno.Command(bin).output()).stdout));
    const c = platform();
    strictEqual(c.arch, Deno.build.arch);
    for (const k of ["O_NOFOLLOW", "O_DIRECTORY", "O_CLOEXEC", "O_CREAT", "O_EXCL", "O_TRUNC"]) {
      strictEqual(c.open[k as keyof typeof c.open], got[k], k);
    }
    const verity = verityIoctls(c);
    strictEqual(verity.enable, BigInt(got.enable), "FS_IOC_ENABLE_VERITY");
    strictEqual(verity.measure, BigInt(got.measure), "FS_IOC_MEASURE_VERITY");
    strictEqual(iow(c, 0x94, 9, 4), BigInt(got.ficlone), "FICLONE");
    deepStrictEqual(c.dirent, {
      reclenOffset: got.reclen,
      typeOffset: got.type,
      nameOffset: got.name,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an architecture or OS whose constants cfs does not know is refused with a clear error", () => {
  for (const [os, arch] of [["linux", "riscv64"], ["linux", "powerpc64le"], ["darwin", "x86_64"]]) {
    throws(() => archConstants(os, arch), (e: unknown) => {
      ok(e instanceof UnsupportedPlatformError);
      strictEqual(e.code, "unsupported-platform");
      ok(e.message.includes(`this is ${os} on ${arch}`), e.message);
      return true;
    });
  }
});
