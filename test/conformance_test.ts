/**
 * Conformance against the reference: for every tree of the corpus and a real Debian root
 * file system (debootstrap --variant=minbase), cfs must produce the same image ID, the same
 * dumpfile and the same EROFS bytes as `cfsctl` 0.3.0, with and without --bootable.
 *
 * cfsctl stores every large file with fs-verity enabled and the host kernel has no
 * fs-verity, so cfsctl runs inside a QEMU guest (Debian's kernel, an ext4 file system with
 * the verity feature) over a 9p share of the trees: see test/vm/cfsctl_oracle.ts. That is
 * the real cfsctl binary; only where it runs differs.
 *
 * The corpus trees are compared in process through the same library calls the CLI makes;
 * the Debian rootfs goes through the `cfs` command line itself.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { buildCorpus } from "./fixtures/trees.ts";
import { debianRootfs } from "./fixtures/debootstrap.ts";
import { runCfsctlOracle } from "./vm/cfsctl_oracle.ts";
import { computeImageId, treeFromPath } from "../lib/build.ts";
import { mkfsErofs } from "../lib/erofs/writer.ts";
import { writeDumpfile } from "../lib/dumpfile.ts";
import { fsverityDigest, toHex } from "../lib/fsverity/digest.ts";
import { runCfs } from "./cfs.ts";

interface Ours {
  id?: string;
  dumpfile?: string;
  image?: Uint8Array;
  error?: string;
}

function ours(path: string, bootable: boolean): Ours {
  try {
    const image = mkfsErofs(treeFromPath(path, { algorithm: "sha256", bootable }));
    const dumpfile = writeDumpfile(treeFromPath(path, { algorithm: "sha256", bootable }));
    return { id: toHex(fsverityDigest(image, "sha256")), dumpfile, image };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function firstDifference(a: Uint8Array, b: Uint8Array): string {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      return `first differing byte at offset ${i} (ours ${a[i]}, cfsctl ${b[i]})`;
    }
  }
  return `lengths ${a.length} (ours) vs ${b.length} (cfsctl)`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const decoder = new TextDecoder("latin1");

Deno.test({
  name:
    "conformance: compute-id, create-dumpfile and image bytes equal cfsctl's on the corpus and a Debian rootfs",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "cfs-conformance-" });
    try {
      const corpus = await buildCorpus(`${tmp}/corpus`);
      ok(corpus.length >= 50, `corpus has ${corpus.length} trees`);
      const rootfs = await debianRootfs();
      const jobs = [...corpus.map((t) => ({ tree: t.path })), { tree: rootfs }];
      const results = await runCfsctlOracle(jobs, { log: (s) => console.error(s) });
      equal(results.length, jobs.length);

      let compared = 0, bootableCompared = 0;
      const failures: string[] = [];
      for (const r of results) {
        const name = r.tree === rootfs ? "debian-rootfs" : r.tree.slice(`${tmp}/corpus/`.length);
        if (r.tree === rootfs) continue; // through the CLI below
        for (const bootable of [false, true]) {
          const refId = bootable ? r.computeIdBootable : r.computeId;
          const refDump = bootable ? r.dumpfileBootable : r.dumpfile;
          const refImage = bootable ? r.imageBootable : r.image;
          const mine = ours(r.tree, bootable);
          const label = `${name}${bootable ? " --bootable" : ""}`;
          if (refId === undefined) {
            // cfsctl refused (e.g. --bootable without /boot): so must we.
            if (mine.error === undefined) {
              failures.push(`${label}: cfsctl failed (${r.errors.join("; ")}) but cfs succeeded`);
            }
            continue;
          }
          if (mine.error !== undefined) {
            failures.push(`${label}: cfs failed: ${mine.error}`);
            continue;
          }
          if (mine.id !== refId) failures.push(`${label}: image id ${mine.id} != cfsctl ${refId}`);
          if (refDump && mine.dumpfile !== decoder.decode(refDump)) {
            failures.push(`${label}: dumpfile differs`);
          }
          if (refImage && !sameBytes(mine.image!, refImage)) {
            failures.push(
              `${label}: image bytes differ: ${firstDifference(mine.image!, refImage)}`,
            );
          }
          if (bootable) bootableCompared++;
          else compared++;
        }
      }

      // The Debian rootfs, through the command line.
      const deb = results.find((r) => r.tree === rootfs)!;
      for (const bootable of [false, true]) {
        const flag = bootable ? ["--bootable"] : [];
        const refId = bootable ? deb.computeIdBootable : deb.computeId;
        const id = await runCfs(["compute-id", ...flag, rootfs]);
        equal(id.code, 0, id.stderr);
        if (refId === undefined) {
          throw new Error(
            `cfsctl failed on the Debian rootfs${bootable ? " --bootable" : ""}: ${
              deb.errors.join("; ")
            }`,
          );
        }
        if (id.text.trim() !== refId) {
          failures.push(
            `debian-rootfs${
              bootable ? " --bootable" : ""
            }: cfs compute-id ${id.text.trim()} != cfsctl ${refId}`,
          );
        }
        const dump = await runCfs(["create-dumpfile", ...flag, rootfs]);
        equal(dump.code, 0, dump.stderr);
        const refDump = bootable ? deb.dumpfileBootable : deb.dumpfile;
        if (!sameBytes(dump.stdout, refDump!)) {
          failures.push(`debian-rootfs${bootable ? " --bootable" : ""}: dumpfile differs`);
        }
        const image = mkfsErofs(treeFromPath(rootfs, { algorithm: "sha256", bootable }));
        const refImage = bootable ? deb.imageBootable : deb.image;
        if (!sameBytes(image, refImage!)) {
          failures.push(
            `debian-rootfs${bootable ? " --bootable" : ""}: image bytes differ: ${
              firstDifference(image, refImage!)
            }`,
          );
        }
        equal(
          toHex(computeImageId(treeFromPath(rootfs, { algorithm: "sha256", bootable }), "sha256")),
          refId,
        );
        if (bootable) bootableCompared++;
        else compared++;
      }

      console.log(
        `conformance: ${compared} trees compared with cfsctl (id, dumpfile, image bytes), ${bootableCompared} with --bootable; ${failures.length} failures`,
      );
      deepEqual(failures, []);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
