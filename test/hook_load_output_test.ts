/**
 * What a hook module prints while it loads (its top level, before any call) has no call's log to
 * go to: it reaches stderr as one `cfs: hook output: ...` line, and never the `--json` stdout.
 */
import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { runCfs } from "./cfs.ts";
import { buildOciImage, SAMPLE_LAYERS } from "./fixtures/oci.ts";

Deno.test("hook output at load time goes to stderr, not to the --json stream", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-hook-load-output-" });
  try {
    await buildOciImage(join(tmp, "img"), {
      tag: "v1",
      layers: [...SAMPLE_LAYERS, [{ type: "dir", path: "boot" }, { type: "dir", path: "sysroot" }]],
    });
    const hook = join(tmp, "top.ts");
    await Deno.writeTextFile(
      hook,
      `console.log("hello from the top level");\n` +
        `export default { name: "top", after: { fetch: () => {} } };\n`,
    );
    const r = await runCfs([
      "--repo",
      join(tmp, "repo"),
      "--json",
      "pull",
      "--allow-missing-fsverity",
      "--no-default-hooks",
      "--hook",
      hook,
      `oci:${join(tmp, "img")}:v1`,
    ]);
    equal(r.code, 0, r.stderr);
    for (const line of r.text.trim().split("\n")) JSON.parse(line);
    ok(!r.text.includes("hello from the top level"), r.text);
    ok(r.stderr.includes("cfs: hook output: hello from the top level"), r.stderr);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
