/**
 * The tree of an OCI image as composefs-oci 0.9.4 builds it from its layers
 * (lib/oci/layer_tree.ts): real GNU tar layers (pax format, so mtimes keep their nanoseconds,
 * xattrs as `SCHILY.xattr.*`, a `./` root entry) of corpus trees, plus a second layer with
 * whiteouts, an opaque directory and replaced entries, applied entry by entry by cfs and
 * compared with what cfsctl 0.9.4 makes of the same OCI layout after `oci pull`: `oci dump`
 * (dumpfile) and `oci compute-id`, plain and `--bootable`, or both refuse (no `/usr`, no
 * `/sysroot`).
 *
 * Our side reads the tars directly (no repository): a file over 64 bytes gets the sha512
 * fs-verity digest of its body, as cfsctl's sha512 repository stores it.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { buildCorpus } from "./fixtures/trees.ts";
import { cfsctl09Ok, runCfsctl09 } from "./oracles.ts";
import { readTar } from "../lib/oci/tar.ts";
import {
  applyOciEntry,
  finishOciTree,
  newOciFileSystem,
  type OciEntryItem,
  ociEntryStat,
} from "../lib/oci/layer_tree.ts";
import { computeImageId } from "../lib/build.ts";
import { CfsError } from "../lib/errors.ts";
import { writeDumpfile } from "../lib/dumpfile.ts";
import { fsverityDigest, toHex } from "../lib/fsverity/digest.ts";
import { type FileSystem, INLINE_CONTENT_MAX, type LeafContent } from "../lib/tree.ts";
import { makedev } from "../lib/sys/libc.ts";

const TREES = [
  "usr-propagation",
  "usr-nsec-zero-root",
  "run-contents",
  "xattrs-filtering",
  "boot-selinux-hardlinks",
  "boot-tiny-selinux",
  "boot-no-sysroot",
  "single-file",
];

async function run(argv: string[], cwd?: string): Promise<Uint8Array> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`${argv.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return out.stdout;
}

/** `tar` of the directory `dir` as container builds write layers (pax, xattrs, ./ root). */
async function tarDir(dir: string, out: string): Promise<void> {
  await run([
    "tar",
    "--create",
    "--file",
    out,
    "--format=pax",
    "--xattrs",
    "--xattrs-include=*",
    "--numeric-owner",
    "--sort=name",
    "--pax-option=delete=atime,delete=ctime",
    "--warning=no-file-ignored",
    "-C",
    dir,
    ".",
  ]);
}

async function sha256(path: string): Promise<string> {
  const out = new TextDecoder().decode(await run(["sha256sum", path]));
  return out.slice(0, 64);
}

/** Writes an OCI layout at `dir` with uncompressed `layers` (tar files), tagged `tag`. */
async function writeLayout(dir: string, layers: string[], tag: string): Promise<void> {
  await Deno.mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  const blob = async (bytes: Uint8Array, mediaType: string) => {
    const tmp = join(dir, "tmp-blob");
    await Deno.writeFile(tmp, bytes);
    const digest = await sha256(tmp);
    await Deno.rename(tmp, join(dir, "blobs", "sha256", digest));
    return { mediaType, digest: `sha256:${digest}`, size: bytes.length };
  };
  const layerDescs = [];
  for (const l of layers) {
    layerDescs.push(await blob(await Deno.readFile(l), "application/vnd.oci.image.layer.v1.tar"));
  }
  const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const config = await blob(
    json({
      architecture: "amd64",
      os: "linux",
      config: {},
      rootfs: { type: "layers", diff_ids: layerDescs.map((d) => d.digest) },
    }),
    "application/vnd.oci.image.config.v1+json",
  );
  const manifest = await blob(
    json({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config,
      layers: layerDescs,
    }),
    "application/vnd.oci.image.manifest.v1+json",
  );
  await Deno.writeTextFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  await Deno.writeTextFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ ...manifest, annotations: { "org.opencontainers.image.ref.name": tag } }],
    }),
  );
}

/** Applies the tar layers to a new tree, as cfs does (bodies over 64 bytes hashed). */
async function ourTree(
  layers: string[],
): Promise<{ fs: FileSystem; bodies: Map<string, Uint8Array> }> {
  const fs = newOciFileSystem();
  const bodies = new Map<string, Uint8Array>();
  for (const layer of layers) {
    for await (const entry of readTar([await Deno.readFile(layer)])) {
      const m = entry.meta;
      let item: OciEntryItem;
      if (m.type === "directory") item = { kind: "directory" };
      else if (m.type === "hardlink") item = { kind: "hardlink", target: m.linkTarget };
      else {
        let content: LeafContent;
        if (m.type === "regular") {
          const body = (await entry.readBody()).slice();
          if (body.length > INLINE_CONTENT_MAX) {
            const digest = fsverityDigest(body, "sha512");
            bodies.set(toHex(digest), body);
            content = { type: "external", digest, size: body.length };
          } else content = { type: "inline", data: body };
        } else if (m.type === "symlink") {
          content = {
            type: "symlink",
            target: Uint8Array.from(m.linkTarget, (c) => c.charCodeAt(0)),
          };
        } else if (m.type === "fifo") content = { type: "fifo" };
        else {
          const rdev = makedev(m.devmajor, m.devminor);
          content = { type: m.type === "chardev" ? "chardev" : "blockdev", rdev };
        }
        item = { kind: "leaf", content };
      }
      applyOciEntry(fs, { path: m.path, stat: ociEntryStat(m), item });
    }
  }
  return { fs, bodies };
}

Deno.test({
  name: "OCI layers (pax nanosecond mtimes, ./ root, xattrs, whiteouts, opaque dirs) become " +
    "the tree cfsctl 0.9.4's oci dump and oci compute-id show, plain and --bootable",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "cfs-oci-tree-" });
    try {
      const corpus = await buildCorpus(join(tmp, "corpus"), TREES);
      const repo = join(tmp, "repo");
      await cfsctl09Ok(["--repo", repo, "init", "--insecure"]);
      // A second layer over every image: whiteouts, an opaque /etc, a replaced file and a
      // directory over a directory (its stat changes, its children stay).
      const upper = join(tmp, "upper");
      await Deno.mkdir(join(upper, "etc"), { recursive: true });
      await Deno.mkdir(join(upper, "usr"), { recursive: true });
      await Deno.writeTextFile(join(upper, "etc", ".wh..wh..opq"), "");
      await Deno.writeTextFile(join(upper, "etc", "new"), "new\n");
      await Deno.writeTextFile(join(upper, ".wh.var"), "");
      await Deno.writeTextFile(join(upper, "usr", "added"), "x".repeat(100));
      await Deno.chmod(join(upper, "usr"), 0o750);
      await run(["touch", "-d", "2030-01-01 00:00:00.000000007", join(upper, "usr")]);
      const upperTar = join(tmp, "upper.tar");
      await tarDir(upper, upperTar);

      let compared = 0, refused = 0;
      const failures: string[] = [];
      for (const t of corpus) {
        const base = join(tmp, `${t.name}.tar`);
        await tarDir(t.path, base);
        for (
          const [label, layers] of [["one layer", [base]], ["two layers", [
            base,
            upperTar,
          ]]] as const
        ) {
          const name = `${t.name}-${layers.length}`;
          const layout = join(tmp, `layout-${name}`);
          await writeLayout(layout, [...layers], "t");
          // cfsctl builds the image at pull time: an image it cannot build is not pulled.
          const pull = await runCfsctl09(["--repo", repo, "oci", "pull", `oci:${layout}:t`, name]);
          if (pull.code !== 0) {
            const { fs, bodies } = await ourTree([...layers]);
            let refusedToo = false;
            try {
              finishOciTree(fs, name, (c) => bodies.get(toHex(c.digest))!);
            } catch (e) {
              // Refused on purpose (an error of cfs's own, with a code), not by a crash.
              if (!(e instanceof CfsError)) throw e;
              refusedToo = true;
            }
            if (!refusedToo) {
              failures.push(`${t.name} (${label}): cfsctl cannot pull it (${pull.stderr.trim()})`);
            } else refused++;
            continue;
          }
          for (const bootable of [false, true]) {
            const flags = bootable ? ["--bootable"] : [];
            const what = `${t.name} (${label})${bootable ? " --bootable" : ""}`;
            const dump = await runCfsctl09(["--repo", repo, "oci", "dump", ...flags, name]);
            const id = await runCfsctl09(["--repo", repo, "oci", "compute-id", ...flags, name]);
            let ours: { dump: string; id: string } | undefined;
            let error: string | undefined;
            try {
              const { fs, bodies } = await ourTree([...layers]);
              finishOciTree(fs, name, (c) => bodies.get(toHex(c.digest))!, { bootable });
              ours = { dump: writeDumpfile(fs), id: toHex(computeImageId(fs, "sha512", 1)) };
            } catch (e) {
              error = (e as Error).message;
            }
            if (dump.code !== 0 || id.code !== 0) {
              equal(dump.code !== 0, id.code !== 0, `${what}: oci dump and compute-id disagree`);
              if (ours) failures.push(`${what}: cfsctl refused (${dump.stderr.trim()}), cfs not`);
              else refused++;
              continue;
            }
            if (!ours) {
              failures.push(`${what}: cfs refused: ${error}`);
              continue;
            }
            if (ours.dump !== new TextDecoder("latin1").decode(dump.stdout)) {
              failures.push(`${what}: dumpfile differs`);
            } else if (ours.id !== id.text.trim()) {
              failures.push(`${what}: image id ${ours.id} != ${id.text.trim()}`);
            } else compared++;
          }
        }
      }
      console.log(
        `OCI trees: ${compared} equal to cfsctl's (dumpfile and id), ${refused} refused by both`,
      );
      deepEqual(failures, []);
      ok(compared >= 16, `only ${compared} compared`);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
