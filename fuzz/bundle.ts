/**
 * A bundle: several named files in one fuzz input, for targets whose input is a directory
 * (an OCI layout: `oci-layout`, `index.json`, `blobs/sha256/HEX`). The mutators change the
 * members, never the container, so a saved input always unpacks; {@link decodeBundle} still
 * refuses a malformed container (a harness error, not a finding).
 *
 *     "CFSFUZZB" | count u32 | count x (name length u32 | name UTF-8 | data length u32 | data)
 *
 * Integers are big-endian. Pure.
 *
 * @module
 */

const MAGIC = new TextEncoder().encode("CFSFUZZB");

/** One member: a relative path (no `..`, not absolute) and its bytes. */
export interface BundleFile {
  /** Relative path inside the directory the bundle stands for. */
  name: string;
  /** The file's content. */
  data: Uint8Array;
}

/** Packs members into one input. */
export function encodeBundle(files: readonly BundleFile[]): Uint8Array {
  const enc = new TextEncoder();
  const names = files.map((f) => enc.encode(f.name));
  let size = MAGIC.length + 4;
  files.forEach((f, i) => size += 8 + names[i].length + f.data.length);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  out.set(MAGIC);
  let p = MAGIC.length;
  dv.setUint32(p, files.length);
  p += 4;
  files.forEach((f, i) => {
    dv.setUint32(p, names[i].length);
    out.set(names[i], p + 4);
    p += 4 + names[i].length;
    dv.setUint32(p, f.data.length);
    out.set(f.data, p + 4);
    p += 4 + f.data.length;
  });
  return out;
}

/** Unpacks an input made by {@link encodeBundle}; throws a plain Error when it is not one. */
export function decodeBundle(bytes: Uint8Array): BundleFile[] {
  const fail = (why: string): never => {
    throw new Error(`not a fuzz bundle: ${why}`);
  };
  if (bytes.length < MAGIC.length + 4 || !MAGIC.every((b, i) => bytes[i] === b)) fail("magic");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = dv.getUint32(MAGIC.length);
  let p = MAGIC.length + 4;
  const files: BundleFile[] = [];
  const dec = new TextDecoder("utf-8", { fatal: true });
  for (let i = 0; i < count; i++) {
    if (p + 4 > bytes.length) fail("truncated");
    const nameLen = dv.getUint32(p);
    if (p + 4 + nameLen + 4 > bytes.length) fail("truncated");
    const name = dec.decode(bytes.subarray(p + 4, p + 4 + nameLen));
    p += 4 + nameLen;
    const dataLen = dv.getUint32(p);
    if (p + 4 + dataLen > bytes.length) fail("truncated");
    const data = bytes.slice(p + 4, p + 4 + dataLen);
    p += 4 + dataLen;
    if (name.startsWith("/") || name.split("/").some((n) => n === ".." || n === "")) {
      fail(`member name ${JSON.stringify(name)}`);
    }
    files.push({ name, data });
  }
  if (p !== bytes.length) fail("junk after the last member");
  return files;
}
