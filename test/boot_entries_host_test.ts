/**
 * Boot entry discovery on a tree read from disk with the host's real kernel in it: the
 * kernel reads back byte for byte (`sha256sum`), as an external object. Host tier: it needs
 * `/boot/vmlinuz-*` (linux-image-amd64) and runs `sha256sum`; the in-memory tests are in
 * boot_entries_test.ts.
 *
 * @module
 */
import { ok as assert, strictEqual } from "node:assert/strict";
import {
  type BlsEntry,
  bootEntryToJson,
  findBootEntries,
  type ReadExternal,
  readLeaf,
} from "../lib/boot/entries.ts";
import { utf8ToName } from "../lib/tree.ts";
import { treeFromPath } from "../lib/build.ts";
import { toHex } from "../lib/fsverity/digest.ts";
import { fsverityDigestFileSync } from "../lib/fsverity/file.ts";
import { hostKernel } from "./fixtures/bootable.ts";

function bls(e: unknown): BlsEntry {
  const b = e as BlsEntry;
  strictEqual(b.kind, "bls");
  return b;
}

// --- a real kernel -------------------------------------------------------------------------------

async function sha256sumOf(args: { path?: string; stdin?: Uint8Array }): Promise<string> {
  const cmd = new Deno.Command("sha256sum", {
    args: args.path ? ["--", args.path] : [],
    stdin: args.stdin ? "piped" : "null",
    stdout: "piped",
  });
  const child = cmd.spawn();
  if (args.stdin) {
    const w = child.stdin.getWriter();
    await w.write(args.stdin);
    await w.close();
  }
  const out = await child.output();
  assert(out.success, "sha256sum failed");
  return new TextDecoder().decode(out.stdout).slice(0, 64);
}

const host = await hostKernel();

Deno.test({
  name: "the host kernel in a tree read from disk reads back byte for byte",
  async fn() {
    if (host === undefined) {
      throw new Error(
        "no /boot/vmlinuz-* on this host: apt-get install linux-image-amd64 (make apt)",
      );
    }
    const { path: kernelPath, version } = host;
    const dir = await Deno.makeTempDir({ prefix: "cfs-boot-entries-" });
    try {
      const mod = `${dir}/usr/lib/modules/${version}`;
      await Deno.mkdir(mod, { recursive: true });
      await Deno.copyFile(kernelPath, `${mod}/vmlinuz`);
      await Deno.writeFile(`${mod}/initramfs.img`, new Uint8Array(100_000).fill(0x5a));
      await Deno.mkdir(`${dir}/boot`);
      const fs = treeFromPath(dir);
      const sources = new Map<string, string>();
      for (const f of ["vmlinuz", "initramfs.img"]) {
        sources.set(toHex(fsverityDigestFileSync(`${mod}/${f}`, "sha256")), `${mod}/${f}`);
      }
      const read: ReadExternal = (c) => Deno.readFileSync(sources.get(toHex(c.digest))!);
      const entries = findBootEntries(fs, read);
      strictEqual(entries.length, 1);
      const b = bls(entries[0]);
      strictEqual(b.kernelVersion, version);
      strictEqual(b.kernel?.path, utf8ToName(`/usr/lib/modules/${version}/vmlinuz`));
      strictEqual(b.kernel?.size, (await Deno.stat(kernelPath)).size);
      const bytes = readLeaf(b.kernel!.leaf, read);
      strictEqual(await sha256sumOf({ stdin: bytes }), await sha256sumOf({ path: kernelPath }));
      strictEqual(b.initramfs[0].size, 100_000);
      const json = bootEntryToJson(b) as { kernel: { storage: string; objectId: string } };
      strictEqual(json.kernel.storage, "external");
      assert(sources.has(json.kernel.objectId));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
