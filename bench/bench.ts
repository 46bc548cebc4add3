/**
 * `make bench`: every benchmark of the project in one run, printed as tables, with the
 * numbers also written to bench/data/results.json (git-ignored) for notes.
 *
 * - digest: `cfs digest` vs `fsverity digest` on a 1 GiB file, both algorithms, peak RSS.
 * - cfs vs cfsctl 0.9.4 (vs_cfsctl.ts): `compute-id` of the Debian rootfs and `oci pull` of
 *   it as 1- and 10-layer images, paired runs on this host, same image ids checked, ratios.
 * - pull: `cfs oci pull` of the Debian rootfs as 1- and 10-layer gzip images, from an OCI
 *   layout and from a local docker-registry, vs `skopeo copy` + `umoci unpack` and a
 *   `gzip -dc | sha512sum` floor; wall time and peak RSS. Then `cfs pull` direct vs
 *   `--unified` (podman pull into `<repo>/bootc/storage`, zero-copy import) of the same
 *   images from the registry: wall time, stage split, disk bytes written (df, du, %O).
 *
 * @module
 */
import { benchDigest } from "./digest.ts";
import { benchVsCfsctl, formatVsTable } from "./vs_cfsctl.ts";
import { benchPull } from "./pull.ts";

const results: Record<string, unknown> = { date: new Date().toISOString() };
results.digest = await benchDigest();
const vs = await benchVsCfsctl(Number(Deno.env.get("BENCH_RUNS") ?? 3));
results.vsCfsctl = vs;
console.log("\ncfs vs cfsctl 0.9.4 (medians of paired runs)\n" + formatVsTable(vs));
results.pull = await benchPull();
await Deno.mkdir(new URL("./data/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./data/results.json", import.meta.url),
  JSON.stringify(results, null, 2) + "\n",
);
console.log("\nresults written to bench/data/results.json");
