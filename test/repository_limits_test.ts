/**
 * Trees the kernel cannot read (issue 11, point 4), at both ends:
 *
 * - a pull of a layer with a 300-byte name, a 5000-byte symlink target or a 70000-byte xattr
 *   value is refused when the image is made (lib/erofs/limits.ts): one line naming the entry,
 *   code `erofs-limit`, and no tag;
 * - an image that holds such an entry anyway (written by another tool: cfsctl 0.9.4's writer
 *   stores what the kernel cannot look up) is an `image-invalid` error of `cfs fsck`, naming
 *   the entry.
 *
 * The layers are written byte by byte here (pax headers carry the long name, link target and
 * xattr), since no file system holds such names.
 *
 * @module
 */
import { ok, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { runCfs } from "./cfs.ts";
import { runCfsctl09 } from "./oracles.ts";
import { addToIndexJson } from "./fixtures/oci.ts";
import { concatBytes } from "../lib/bytes.ts";

const enc = new TextEncoder();

interface Entry {
  name: string;
  type: "0" | "2" | "5";
  body?: Uint8Array;
  linkname?: string;
  /** pax records (`path`, `linkpath`, `SCHILY.xattr.NAME`). */
  pax?: Record<string, string | Uint8Array>;
}

function octal(value: number, width: number): Uint8Array {
  return enc.encode(value.toString(8).padStart(width - 1, "0") + "\0");
}

/** A 512-byte ustar header (name and link name cut to 100 bytes: pax records carry them). */
function header(name: string, type: string, size: number, linkname = ""): Uint8Array {
  const h = new Uint8Array(512);
  h.set(enc.encode(name).subarray(0, 100), 0);
  h.set(octal(type === "5" ? 0o755 : 0o644, 8), 100);
  h.set(octal(0, 8), 108);
  h.set(octal(0, 8), 116);
  h.set(octal(size, 12), 124);
  h.set(octal(1700000000, 12), 136);
  h[156] = type.charCodeAt(0);
  h.set(enc.encode(linkname).subarray(0, 100), 157);
  h.set(enc.encode("ustar\u000000"), 257);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return h;
}

/** One pax record: `<length> <key>=<value>\n`, the length counting itself. */
function paxRecord(key: string, value: string | Uint8Array): Uint8Array {
  const v = typeof value === "string" ? enc.encode(value) : value;
  const rest = enc.encode(` ${key}=`).length + v.length + 1;
  let len = rest + 1;
  while (String(len).length + rest > len) len++;
  return concatBytes([enc.encode(`${len} ${key}=`), v, enc.encode("\n")]);
}

function padded(body: Uint8Array): Uint8Array[] {
  return body.length % 512 ? [body, new Uint8Array(512 - (body.length % 512))] : [body];
}

/** A pax tar of `entries`. */
function paxTar(entries: Entry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    if (e.pax) {
      const records = concatBytes(Object.entries(e.pax).map(([k, v]) => paxRecord(k, v)));
      parts.push(header("PaxHeader", "x", records.length), ...padded(records));
    }
    const body = e.body ?? new Uint8Array();
    parts.push(header(e.name, e.type, body.length, e.linkname), ...padded(body));
  }
  parts.push(new Uint8Array(1024));
  return concatBytes(parts);
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** An OCI layout at `dir` tagged `v1` with one uncompressed layer. */
async function layout(dir: string, layer: Uint8Array): Promise<void> {
  await Deno.mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  await Deno.writeTextFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  const put = async (bytes: Uint8Array) => {
    const digest = sha256(bytes);
    await Deno.writeFile(join(dir, "blobs", "sha256", digest.slice(7)), bytes);
    return digest;
  };
  const layerDigest = await put(layer);
  const config = enc.encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: {},
    rootfs: { type: "layers", diff_ids: [layerDigest] },
  }));
  const configDigest = await put(config);
  const manifest = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: configDigest,
      size: config.length,
    },
    layers: [{
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: layerDigest,
      size: layer.length,
    }],
  }));
  await addToIndexJson(dir, {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: await put(manifest),
    size: manifest.length,
    path: "",
  }, "v1");
}

const LONG_NAME = `usr/${"n".repeat(300)}`;
const LONG_TARGET = `/${"t".repeat(4999)}`;

/** The three trees, each a `usr/` directory plus one entry past a limit. */
const CASES: Array<{ what: string; entry: Entry; names: string }> = [
  {
    what: "a 300-byte name",
    entry: { name: "usr/long", type: "0", body: enc.encode("x"), pax: { path: LONG_NAME } },
    names: "n".repeat(40),
  },
  {
    what: "a 5000-byte symlink target",
    entry: { name: "usr/link", type: "2", linkname: "x", pax: { linkpath: LONG_TARGET } },
    names: "/usr/link",
  },
  {
    what: "a 70000-byte xattr value",
    entry: {
      name: "usr/cap",
      type: "0",
      body: enc.encode("x"),
      pax: { "SCHILY.xattr.security.capability": new Uint8Array(70_000).fill(1) },
    },
    names: "/usr/cap",
  },
];

for (const c of CASES) {
  Deno.test(`a pull of a layer with ${c.what} is refused naming the entry, and leaves no tag`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "cfs-limits-test-" });
    try {
      await layout(join(dir, "oci"), paxTar([{ name: "usr", type: "5" }, c.entry]));
      const repo = join(dir, "repo");
      strictEqual((await runCfs(["init", "--insecure", repo])).code, 0);
      const r = await runCfs(["--repo", repo, "oci", "pull", `oci:${join(dir, "oci")}:v1`, "img"]);
      strictEqual(r.code, 1, r.text + r.stderr);
      // Progress lines (layer imported) come first; the error is one line, the last.
      const last = r.stderr.trimEnd().split("\n").pop()!;
      ok(last.startsWith("cfs: cannot write EROFS image: "), r.stderr);
      ok(last.includes(c.names), `${c.what}: ${last}`);
      strictEqual(r.stderr.split("\n").filter((l) => l.startsWith("cfs: ")).length, 1);
      const json = await runCfs([
        "--repo",
        repo,
        "--json",
        "oci",
        "pull",
        `oci:${join(dir, "oci")}:v1`,
        "img",
      ]);
      strictEqual(JSON.parse(json.text.trim().split("\n").pop()!).error.code, "erofs-limit");
      const refs = join(repo, "streams", "refs");
      const tags = await Array.fromAsync(Deno.readDir(refs)).catch(() => []);
      strictEqual(tags.length, 0, `${c.what}: a tag was written`);
      const fsck = await runCfs(["--repo", repo, "fsck"]);
      strictEqual(fsck.code, 0, fsck.text);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("fsck reports an image with a 300-byte name (written by cfsctl 0.9.4) as image-invalid naming the entry", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cfs-limits-test-" });
  try {
    await layout(join(dir, "oci"), paxTar([{ name: "usr", type: "5" }, CASES[0].entry]));
    const repo = join(dir, "repo");
    strictEqual((await runCfs(["init", "--insecure", repo])).code, 0);
    const theirs = await runCfsctl09([
      "--repo",
      repo,
      "oci",
      "pull",
      `oci:${join(dir, "oci")}:v1`,
      "img",
    ]);
    strictEqual(theirs.code, 0, `cfsctl 0.9.4 writes this image: ${theirs.stderr}`);
    const clean = await runCfsctl09(["--repo", repo, "fsck"]);
    strictEqual(clean.code, 0, `cfsctl 0.9.4's fsck accepts it: ${clean.text}`);

    const r = await runCfs(["--repo", repo, "--json", "fsck"]);
    const report = JSON.parse(r.text);
    strictEqual(report.ok, false);
    const bad = report.problems.filter((p: { kind: string }) => p.kind === "image-invalid");
    ok(bad.length > 0, JSON.stringify(report.problems));
    for (const p of bad) {
      ok(/^images\/[0-9a-f]{128}$/.test(p.path), p.path);
      ok(p.detail.includes(`/usr/${"n".repeat(40)}`), p.detail);
      ok(p.detail.includes("300 bytes"), p.detail);
    }
    const text = await runCfs(["--repo", repo, "fsck"]);
    strictEqual(text.code, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
