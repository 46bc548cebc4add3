/**
 * `cfs pull` as a hook pipeline, through the CLI (`deno run cli.ts`, the entry point the
 * binary compiles): real hook files on disk (TypeScript, with relative imports of their
 * own), loaded by the transpile-and-import-from-data:-URL loader that the compiled binary
 * uses too; failing, hanging, malformed and missing hooks; the JSON event stream; the
 * shipped hooks as `builtin:NAME`; interruption by SIGINT and SIGKILL mid-layer.
 *
 * Images come from OCI layouts the fixtures build; the interruption tests serve one
 * through a small throttling HTTP server (Deno.serve on 127.0.0.1) so that a layer is
 * still streaming when the signal arrives. Repositories are insecure (no fs-verity here).
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { cfsOk, pathExists, pullResult, requireTool, runCfs } from "./cfs.ts";
import { buildOciImage, SAMPLE_LAYERS } from "./fixtures/oci.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const STAGES = ["open", "fetch", "import", "tag", "label", "image", "boot"];

/**
 * A layout with /usr, /boot and /sysroot: composefs-rs 0.9.4's boot transform, which the image
 * stage applies, needs all three.
 */
async function bootableLayout(dir: string, extra: string = ""): Promise<string> {
  await buildOciImage(dir, {
    tag: "v1",
    layers: [
      ...SAMPLE_LAYERS,
      [
        { type: "dir", path: "boot" },
        { type: "dir", path: "sysroot" },
        { type: "file", path: "etc/extra", content: "extra " + extra + "x".repeat(100) },
      ],
    ],
  });
  return `oci:${dir}:v1`;
}

const PULL = ["--allow-missing-fsverity", "--no-default-hooks"];

function tagsOf(repo: string): Promise<string[]> {
  return cfsOk(repo, "--json", "oci", "images").then((t) =>
    JSON.parse(t).images.map((i: { name: string }) => i.name)
  );
}

Deno.test("hooks from disk (with relative imports) run before and after every stage, in order", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-pipeline-order-" });
  try {
    const ref = await bootableLayout(join(tmp, "img"));
    const hooks = join(tmp, "hooks");
    await Deno.mkdir(join(hooks, "lib"), { recursive: true });
    const record = join(tmp, "record.jsonl");
    await Deno.writeTextFile(
      join(hooks, "lib", "record.ts"),
      `import { appendFileSync } from "node:fs";
export interface Line { hook: string; phase: string; stage: string; [k: string]: unknown }
export function record(line: Line): void {
  appendFileSync(${JSON.stringify(record)}, JSON.stringify(line) + "\\n");
}
`,
    );
    const body = (name: string) =>
      `import type { Hook, HookContext, StageName } from ${
        JSON.stringify(new URL("../hooks/types.ts", import.meta.url).pathname)
      };
import { record } from "./lib/record.ts";
const stages: StageName[] = ["open", "fetch", "import", "tag", "label", "image", "boot"];
function fn(phase: string) {
  return (ctx: HookContext) => {
    record({
      hook: ${JSON.stringify(name)},
      phase,
      stage: ctx.stage,
      repo: ctx.repository?.path ?? null,
      manifest: ctx.manifest?.digest ?? null,
      manifestVerity: ctx.manifest?.verity ?? null,
      layers: ctx.layers?.length ?? null,
      layerVerities: ctx.layers?.filter((l) => l.verity).length ?? 0,
      tags: [...ctx.tags],
      tree: ctx.tree ? ctx.tree.root.entries.size : null,
      imageId: ctx.imageId ?? null,
      bootEntries: ctx.bootEntries?.length ?? null,
      aborted: ctx.signal.aborted,
    });
  };
}
export default {
  name: ${JSON.stringify(name)},
  before: Object.fromEntries(stages.map((s) => [s, fn("before")])),
  after: Object.fromEntries(stages.map((s) => [s, fn("after")])),
} satisfies Hook;
`;
    await Deno.writeTextFile(join(hooks, "10-first.ts"), body("first"));
    await Deno.writeTextFile(
      join(tmp, "second.ts"),
      body("second").replace("./lib/", "./hooks/lib/"),
    );
    const repo = join(tmp, "repo");
    const r = await runCfs([
      "--repo",
      repo,
      "--json",
      "pull",
      ...PULL,
      "--hooks-dir",
      hooks,
      "--hook",
      join(tmp, "second.ts"),
      ref,
    ]);
    equal(r.code, 0, r.stderr);
    const lines = (await Deno.readTextFile(record)).trim().split("\n").map((l) => JSON.parse(l));
    // Every stage: before (first, second), after (first, second), exactly once each.
    const order = lines.map((l) => `${l.phase} ${l.stage} ${l.hook}`);
    deepEqual(
      order,
      STAGES.flatMap((s) => [
        `before ${s} first`,
        `before ${s} second`,
        `after ${s} first`,
        `after ${s} second`,
      ]),
    );
    const at = (phase: string, stage: string) =>
      lines.find((l) => l.phase === phase && l.stage === stage && l.hook === "first");
    const result = pullResult(r.text);
    // The context fills in as stages complete.
    equal(at("before", "open").repo, null);
    equal(at("after", "open").repo, repo);
    equal(at("before", "fetch").manifest, null);
    equal(at("after", "fetch").manifest, result.manifest);
    equal(at("after", "fetch").layerVerities, 0);
    equal(at("after", "import").layerVerities, 4);
    // The manifest stream as import stored it; linking the images at the end rewrites it
    // (composefs-oci 0.9.4), so the result's is another.
    ok(/^[0-9a-f]{128}$/.test(at("after", "import").manifestVerity));
    ok(/^[0-9a-f]{128}$/.test(result.manifestVerity));
    deepEqual(at("before", "tag").tags, []);
    deepEqual(at("after", "tag").tags, [result.tag]);
    equal(at("before", "label").tree, null);
    ok(at("after", "label").tree > 0);
    equal(at("before", "image").imageId, null);
    equal(at("after", "image").imageId, result.imageId);
    equal(at("after", "boot").bootEntries, 0);
    ok(lines.every((l) => l.aborted === false));
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

Deno.test("--json: one JSON object per line, a start and an end event with a duration per stage", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-pipeline-json-" });
  try {
    const ref = await bootableLayout(join(tmp, "img"));
    const repo = join(tmp, "repo");
    const r = await runCfs(["--repo", repo, "--json", "pull", ...PULL, ref]);
    equal(r.code, 0, r.stderr);
    const lines = r.text.trim().split("\n").map((l) => JSON.parse(l));
    for (const s of STAGES) {
      const start = lines.filter((l) =>
        l.id === "433b16514352230d106eb0e7f6e61f8e" && l.CFS_STAGE === s
      );
      const end = lines.filter((l) =>
        l.id === "a12efe146bab4d3863d6e723a219c717" && l.CFS_STAGE === s
      );
      equal(start.length, 1, `one start event for ${s}`);
      equal(end.length, 1, `one end event for ${s}`);
      equal(typeof end[0].CFS_DURATION_MS, "number");
      ok(lines.indexOf(start[0]) < lines.indexOf(end[0]));
    }
    const result = lines.pop().result;
    ok(/^[0-9a-f]{128}$/.test(result.imageId));
    deepEqual(Object.keys(result.durations), STAGES);
    equal((await runCfs(["--repo", repo, "fsck"])).code, 0);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

Deno.test("failing, hanging, malformed and missing hooks: one line, exit 3, no tag, fsck clean", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-pipeline-bad-" });
  try {
    const ref = await bootableLayout(join(tmp, "img"));
    const repo = join(tmp, "repo");
    const write = async (name: string, text: string) => {
      await Deno.writeTextFile(join(tmp, name), text);
      return join(tmp, name);
    };
    const cases: Array<[string, string, RegExp]> = [
      [
        "throws.ts",
        `export default { name: "boom", after: { import: () => { throw new Error("no thanks"); } } };`,
        /^cfs: hook boom failed in after import: no thanks$/,
      ],
      [
        "rejects.ts",
        `export default { name: "later", before: { image: async () => { await Promise.reject(new Error("async no")); } } };`,
        /^cfs: hook later failed in before image: async no$/,
      ],
      [
        "hangs.ts",
        `export default { name: "sleepy", timeout: 300, before: { label: () => new Promise(() => {}) } };`,
        /^cfs: hook sleepy failed in before label: timed out after 300 ms$/,
      ],
      [
        "nodefault.ts",
        `export const hook = { name: "x" };`,
        /^cfs: hook .*nodefault\.ts: no default export/,
      ],
      [
        "wrongtype.ts",
        `export default { name: 5 };`,
        /^cfs: hook .*wrongtype\.ts: default export: name: /,
      ],
      [
        "wrongstage.ts",
        `export default { name: "x", after: { tagg: () => {} } };`,
        /^cfs: hook .*wrongstage\.ts: default export: after: unknown field "tagg" \(stages: open, /,
      ],
      [
        "notfn.ts",
        `export default { name: "x", before: { open: "yes" } };`,
        /^cfs: hook .*notfn\.ts: default export: before\.open: must be a function$/,
      ],
      [
        "syntax.ts",
        `export default { name: "x", before: { open: () => { let = ; } } };`,
        /^cfs: hook .*syntax\.ts: syntax error: /,
      ],
      [
        "badimport.ts",
        `import { x } from "./nothere.ts";\nexport default { name: "x" + x };`,
        /^cfs: hook .*badimport\.ts: import .*nothere\.ts: no such file$/,
      ],
    ];
    for (const [file, text, want] of cases) {
      const path = await write(file, text);
      const r = await runCfs(["--repo", repo, "pull", ...PULL, "--hook", path, ref]);
      equal(r.code, 3, `${file}: exit ${r.code}: ${r.stderr}`);
      const errLines = r.stderr.trim().split("\n").filter((l) => l.startsWith("cfs: "));
      equal(errLines.length, 1, `${file}: ${r.stderr}`);
      ok(want.test(errLines[0]), `${file}: ${errLines[0]}`);
      ok(!r.stderr.includes("    at "), `${file}: no stack trace: ${r.stderr}`);
      if (await pathExists(join(repo, "meta.json"))) {
        deepEqual(await tagsOf(repo), [], `${file}: no tag written`);
        equal((await runCfs(["--repo", repo, "fsck"])).code, 0, `${file}: fsck`);
      }
    }
    const missing = await runCfs([
      "--repo",
      repo,
      "pull",
      ...PULL,
      "--hook",
      join(tmp, "nope.ts"),
      ref,
    ]);
    equal(missing.code, 3);
    ok(/^cfs: hook .*nope\.ts: no such file$/.test(missing.stderr.trim()), missing.stderr);
    const builtin = await runCfs(["--repo", repo, "pull", ...PULL, "--hook", "builtin:nope", ref]);
    equal(builtin.code, 3);
    ok(builtin.stderr.includes("no such built-in hook (have: extra-tags,"), builtin.stderr);
    // After all that, a clean pull works and reuses what the failed ones stored.
    const ok1 = pullResult(await cfsOk(repo, "--json", "pull", ...PULL, ref));
    equal(ok1.layersImported, 0);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

Deno.test("builtin:extra-tags with options from the configuration file adds tags cfs oci images shows", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-pipeline-tags-" });
  try {
    const ref = await bootableLayout(join(tmp, "img"));
    const repo = join(tmp, "repo");
    const config = join(tmp, "config.json");
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        repo,
        allowMissingFsverity: true,
        hookFiles: ["builtin:extra-tags"],
        hooks: { "extra-tags": { tags: ["oem/golden", "oem/build-{digest}"] } },
      }),
    );
    const r = await runCfs(["--config", config, "--json", "pull", "--no-default-hooks", ref]);
    equal(r.code, 0, r.stderr);
    const result = pullResult(r.text);
    const digest = result.manifest.slice(7, 19);
    deepEqual(
      (await tagsOf(repo)).sort(),
      [
        `localhost/bootc-${result.manifest}`,
        "oem/build-" + digest,
        "oem/golden",
      ].sort(),
    );
    // A configuration error names the key.
    await Deno.writeTextFile(
      config,
      JSON.stringify({ repo, registries: { x: { tlsVerify: "no" } } }),
    );
    const bad = await runCfs(["--config", config, "pull", ref]);
    equal(bad.code, 1);
    ok(
      /^cfs: config .*config\.json: registries\.x\.tlsVerify: /.test(bad.stderr.trim()),
      bad.stderr,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

/** Serves an OCI layout as a registry (`/v2/test/img`), layer blobs at `bytesPerTick`/20 ms. */
function throttledRegistry(layout: string, bytesPerTick: number) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/v2/" || path === "/v2") return Response.json({});
    const m = /^\/v2\/test\/img\/(manifests|blobs)\/(.+)$/.exec(path);
    if (!m) return new Response("no", { status: 404 });
    let digest = decodeURIComponent(m[2]);
    if (m[1] === "manifests" && !digest.startsWith("sha256:")) {
      const index = JSON.parse(await Deno.readTextFile(join(layout, "index.json")));
      digest = index.manifests[0].digest;
    }
    const file = join(layout, "blobs", "sha256", digest.slice(7));
    const bytes = await Deno.readFile(file).catch(() => undefined);
    if (!bytes) return new Response("no", { status: 404 });
    const headers = {
      "content-type": m[1] === "manifests"
        ? "application/vnd.oci.image.manifest.v1+json"
        : "application/octet-stream",
      "docker-content-digest": digest,
      "content-length": String(bytes.length),
    };
    if (m[1] === "manifests" || bytes.length < 100_000) return new Response(bytes, { headers });
    let off = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        await new Promise((r) => setTimeout(r, 20));
        if (off >= bytes.length) return c.close();
        c.enqueue(bytes.subarray(off, off + bytesPerTick));
        off += bytesPerTick;
      },
    });
    return new Response(body, { headers });
  });
  return { host: `127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

async function interruptMidLayer(signal: Deno.Signal): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: `cfs-pipeline-${signal.toLowerCase()}-` });
  try {
    const noise = new Uint8Array(3 << 20);
    for (let i = 0; i < noise.length; i += 65536) {
      crypto.getRandomValues(noise.subarray(i, i + 65536));
    }
    const layout = join(tmp, "img");
    await buildOciImage(layout, {
      tag: "v1",
      layers: [
        ...SAMPLE_LAYERS,
        [
          { type: "dir", path: "boot" },
          { type: "dir", path: "sysroot" },
          { type: "file", path: "big", content: noise },
        ],
      ],
    });
    const server = throttledRegistry(layout, 32 * 1024); // ~1.6 MB/s: the 3 MiB layer takes 2 s
    try {
      const ref = `docker://${server.host}/test/img:v1`;
      const repo = join(tmp, "repo");
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          CLI,
          "--repo",
          repo,
          "--json",
          "pull",
          ...PULL,
          "--tls-verify=false",
          ref,
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      // Wait until the big (last) layer is streaming, then signal.
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      while (
        !/"CFS_LAYER_INDEX":4[,}][^\n]*\n?$/m.test(seen) ||
        !seen.includes("cea781280a68e2c50891920f7081f417")
      ) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += value;
        if (/"id":"cea781280a68e2c50891920f7081f417"[^\n]*"CFS_LAYER_INDEX":4/.test(seen)) break;
      }
      ok(/"id":"cea781280a68e2c50891920f7081f417"[^\n]*"CFS_LAYER_INDEX":4/.test(seen), seen);
      await new Promise((r) => setTimeout(r, 500));
      child.kill(signal);
      const rest = reader.read().then(async function drain(r): Promise<void> {
        if (r.done) return;
        seen += r.value;
        return drain(await reader.read());
      });
      const status = await child.status;
      await rest;
      const stderr = new TextDecoder().decode(
        (await new Response(child.stderr).arrayBuffer()) as ArrayBuffer,
      );
      if (signal === "SIGINT") {
        equal(status.code, 130, stderr);
        // With --json the failure is the last line of stdout, with its code.
        const error = JSON.parse(seen.trim().split("\n").pop()!).error;
        equal(error.code, "interrupted", seen);
        ok(/^interrupted during import; the repository is consistent/.test(error.message), seen);
      } else {
        equal(status.signal, "SIGKILL");
      }
      ok(!seen.includes('"result"'), "the pull did not finish before the signal");
      deepEqual(await tagsOf(repo), []);
      equal((await runCfs(["--repo", repo, "fsck"])).code, 0);
      // The same pull again completes, and gives the image a fresh repository gets.
      const again = pullResult(
        await cfsOk(repo, "--json", "pull", ...PULL, "--tls-verify=false", ref),
      );
      ok(again.layersImported >= 1);
      const fresh = pullResult(
        await cfsOk(join(tmp, "fresh"), "--json", "pull", ...PULL, `oci:${layout}:v1`),
      );
      equal(again.imageId, fresh.imageId);
      equal((await runCfs(["--repo", repo, "fsck"])).code, 0);
    } finally {
      await server.close();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

Deno.test("SIGINT mid-layer: exit 130, consistent repository; the same pull then completes", async () => {
  await interruptMidLayer("SIGINT");
});

Deno.test("SIGKILL mid-layer: consistent repository; the same pull then completes", async () => {
  await interruptMidLayer("SIGKILL");
});

async function tmux(args: string[]): Promise<string> {
  const out = await new Deno.Command("tmux", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`tmux ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

Deno.test("a pull on a terminal (tmux): the progress display updates in place, then goes", async () => {
  requireTool("tmux", "apt-get install tmux");
  const tmp = await Deno.makeTempDir({ prefix: "cfs-pipeline-tmux-" });
  const session = `cfs-pull-${Deno.pid}`;
  try {
    const noise = new Uint8Array(3 << 20);
    for (let i = 0; i < noise.length; i += 65536) {
      crypto.getRandomValues(noise.subarray(i, i + 65536));
    }
    const layout = join(tmp, "img");
    await buildOciImage(layout, {
      tag: "v1",
      layers: [[
        { type: "dir", path: "usr" },
        { type: "dir", path: "boot" },
        { type: "dir", path: "sysroot" },
        { type: "file", path: "big", content: noise },
      ]],
    });
    const server = throttledRegistry(layout, 32 * 1024);
    try {
      const ref = `docker://${server.host}/test/img:v1`;
      const cmd = `env DENO_DIR=${Deno.env.get("DENO_DIR") ?? ""} NO_COLOR=1 ${Deno.execPath()} ` +
        `run -A --quiet ${CLI} --repo ${join(tmp, "repo")} pull ${PULL.join(" ")} ` +
        `--tls-verify=false ${ref}; echo PULL-EXIT-$?; sleep 30`;
      await tmux([
        "-L",
        session,
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-x",
        "150",
        "-y",
        "20",
        "-s",
        "p",
        cmd,
      ]);
      const frames: string[] = [];
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const pane = await tmux(["-L", session, "capture-pane", "-p", "-t", "p"]);
        frames.push(pane);
        if (pane.includes("PULL-EXIT-")) break;
        await new Promise((r) => setTimeout(r, 150));
      }
      const last = frames[frames.length - 1];
      ok(last.includes("PULL-EXIT-0"), last);
      const bar = /^\[[#>-]+\] \(/;
      const during = frames.filter((f) => f.split("\n").some((l) => bar.test(l)));
      ok(
        during.length >= 4,
        `progress seen in ${during.length} frames:\n${frames.join("\n---\n")}`,
      );
      const states = new Set<string>();
      for (const f of during) {
        const lines = f.split("\n");
        equal(lines.filter((l) => bar.test(l)).length, 1, `one bar line:\n${f}`);
        const label = lines.filter((l) => /layer 1\/1/.test(l) && !/imported|present/.test(l));
        equal(label.length, 1, `one progress label line:\n${f}`);
        states.add(lines.filter((l) => bar.test(l))[0]);
      }
      ok(states.size >= 3, `the bar changed in place (${states.size} states)`);
      // Done: no bar left; the result lines are there once.
      ok(!last.split("\n").some((l) => bar.test(l)), last);
      equal(last.split("\n").filter((l) => l.startsWith("image ")).length, 1, last);
    } finally {
      await server.close();
    }
  } finally {
    await tmux(["-L", session, "kill-server"]).catch(() => {});
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

Deno.test("builtin:selinux-relabel: dump-files shows the labels matchpathcon gives", async () => {
  requireTool("matchpathcon", "apt-get install selinux-utils");
  const tmp = await Deno.makeTempDir({ prefix: "cfs-pipeline-selinux-" });
  try {
    const fc = [
      "/.*\tsystem_u:object_r:default_t:s0",
      "/usr(/.*)?\tsystem_u:object_r:usr_t:s0",
      "/usr/bin(/.*)?\tsystem_u:object_r:bin_t:s0",
      "/usr/bin/(ba|z)?sh\t--\tsystem_u:object_r:shell_exec_t:s0",
      "/opt/exact\t--\tsystem_u:object_r:exact_t:s0",
      "/opt/exa.*\t--\tsystem_u:object_r:regex_t:s0",
      "/boot(/.*)?\tsystem_u:object_r:boot_t:s0",
      "",
    ].join("\n");
    const policyDir = join(tmp, "policy");
    await Deno.mkdir(policyDir);
    await Deno.writeTextFile(join(policyDir, "file_contexts"), fc);
    const layout = join(tmp, "img");
    await buildOciImage(layout, {
      tag: "v1",
      layers: [[
        { type: "dir", path: "boot" },
        { type: "dir", path: "sysroot" },
        {
          type: "file",
          path: "etc/selinux/config",
          content: "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
        },
        { type: "file", path: "etc/selinux/targeted/contexts/files/file_contexts", content: fc },
        { type: "file", path: "usr/bin/bash", content: "#!bash" + "x".repeat(100) },
        { type: "file", path: "usr/bin/ls", content: "ls" },
        { type: "file", path: "opt/exact", content: "e" },
        { type: "file", path: "opt/exactly", content: "r" },
      ]],
    });
    const repo = join(tmp, "repo");
    const out = await cfsOk(
      repo,
      "--json",
      "pull",
      ...PULL,
      "--hook",
      "builtin:selinux-relabel",
      `oci:${layout}:v1`,
    );
    const result = pullResult(out);
    const files = [
      "/usr/bin/bash",
      "/usr/bin/ls",
      "/opt/exact",
      "/opt/exactly",
      "/etc/selinux/config",
    ];
    const dump = await cfsOk(repo, "dump-files", result.imageId, ...files);
    const want = await new Deno.Command("matchpathcon", {
      args: ["-f", join(policyDir, "file_contexts"), "-m", "file", ...files],
      stdout: "piped",
    }).output();
    const expected = new TextDecoder().decode(want.stdout).trim().split("\n").map((l) =>
      l.split("\t")
    );
    equal(expected.length, files.length);
    for (const [path, label] of expected) {
      const line = dump.split("\n").find((l) => l.startsWith(path + " "));
      ok(line, `dump-files shows ${path}:\n${dump}`);
      ok(line!.includes(`security.selinux=${label}`), `${path}: want ${label}: ${line}`);
    }
    ok(dump.includes("security.selinux=system_u:object_r:exact_t:s0"), "the libselinux-only case");
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
