/**
 * The signature policy inside `cfs pull` (issue 12, point 3): the decision is an event with its
 * message ID and fields, hooks see it as `ctx.signature` from `after fetch` on, a rejection is
 * exit 4 before any layer is read, a transport read through skopeo is decided by skopeo under
 * the same policy (and its rejection is the same error), and `builtin:require-signature` refuses
 * an image the policy accepted without a signature. The signed-image matrix against
 * containers/image is test/signature_policy_test.ts; this file needs no signatures: `oci:` and
 * `dir:` sources with `reject` and `insecureAcceptAnything` scopes, where skopeo 1.9.3 (run here
 * as the oracle) makes the same decisions.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { cfsOk, pullResult, run, runCfs } from "./cfs.ts";
import { buildOciImage, SAMPLE_LAYERS } from "./fixtures/oci.ts";

const SIGNATURE_CHECKED = "ddb7cb6bdcfa4143bd3a7e0f87c0d880";
const LAYER_START = "cea781280a68e2c50891920f7081f417";
const PULL = ["--allow-missing-fsverity", "--no-default-hooks"];

/** A bootable layout (the image stage needs /boot and /sysroot). */
async function layout(dir: string): Promise<void> {
  await buildOciImage(dir, {
    tag: "v1",
    layers: [...SAMPLE_LAYERS, [{ type: "dir", path: "boot" }, { type: "dir", path: "sysroot" }]],
  });
}

/** A policy: `default` for everything, and `scopes` for the `oci` and `dir` transports. */
async function policy(
  file: string,
  defaults: string,
  scopes: Record<string, Record<string, string>> = {},
): Promise<string> {
  const req = (type: string) => [{ type }];
  const transports: Record<string, Record<string, unknown>> = {};
  for (const [transport, entries] of Object.entries(scopes)) {
    transports[transport] = Object.fromEntries(
      Object.entries(entries).map(([scope, type]) => [scope, req(type)]),
    );
  }
  await Deno.writeTextFile(file, JSON.stringify({ default: req(defaults), transports }));
  return file;
}

/** skopeo's decision (the oracle): true when it copies, false when the policy rejects. */
async function skopeoAccepts(policyFile: string, ref: string, dest: string): Promise<boolean> {
  const r = await new Deno.Command("skopeo", {
    args: ["--policy", policyFile, "copy", "--quiet", ref, `oci:${dest}:x`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(r.stderr);
  if (r.code !== 0) ok(/Source image rejected/.test(err), `skopeo failed otherwise: ${err}`);
  return r.code === 0;
}

// deno-lint-ignore no-explicit-any
function events(stdout: string): any[] {
  return stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

Deno.test("signature policy in cfs pull: event, ctx.signature, exit 4 before any layer, skopeo transports, require-signature", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "cfs-sig-pipeline-" });
  try {
    const img = join(tmp, "img");
    await layout(img);
    const ref = `oci:${img}:v1`;
    const dirCopy = join(tmp, "dircopy");
    await run("skopeo", ["copy", "--quiet", ref, `dir:${dirCopy}`]);
    const accept = await policy(join(tmp, "accept.json"), "reject", {
      oci: { [img]: "insecureAcceptAnything" },
      dir: { [dirCopy]: "insecureAcceptAnything" },
    });
    const reject = await policy(join(tmp, "reject.json"), "insecureAcceptAnything", {
      oci: { [tmp]: "reject" },
      dir: { [dirCopy]: "reject" },
    });
    // skopeo decides the same way for both sources under both policies.
    deepEqual(
      [
        await skopeoAccepts(accept, ref, join(tmp, "s1")),
        await skopeoAccepts(reject, ref, join(tmp, "s2")),
        await skopeoAccepts(accept, `dir:${dirCopy}`, join(tmp, "s3")),
        await skopeoAccepts(reject, `dir:${dirCopy}`, join(tmp, "s4")),
      ],
      [true, false, true, false],
    );

    await t.step("accepted: the event and what a hook sees", async () => {
      const seen = join(tmp, "seen.json");
      const hook = join(tmp, "watch.ts");
      await Deno.writeTextFile(
        hook,
        `export default { name: "watch",
  before: { fetch: (ctx) => { if (ctx.signature !== undefined) throw new Error("too early"); } },
  after: { fetch: (ctx) => {
    Deno.writeTextFileSync(${JSON.stringify(seen)}, JSON.stringify(ctx.signature));
    ctx.signature.accepted = false;
  } } };`,
      );
      const repo = join(tmp, "repo-ok");
      const r = await runCfs([
        "--repo",
        repo,
        "--json",
        "pull",
        ...PULL,
        "--signature-policy",
        accept,
        "--hook",
        hook,
        ref,
      ]);
      // ctx.signature is read-only: the hook's assignment throws, so the pull fails (exit 3).
      equal(r.code, 3, r.text + r.stderr);
      const message = events(r.text).at(-1).error.message;
      ok(/read.only property 'accepted'|Cannot assign to read only/.test(message), message);
      const d = JSON.parse(await Deno.readTextFile(seen));
      deepEqual(d, {
        accepted: true,
        decidedBy: "cfs",
        policy: accept,
        transport: "oci",
        scope: img,
        requirements: [{
          type: "insecureAcceptAnything",
          accepted: true,
          reason: d.requirements[0].reason,
        }],
      });

      const plain = await cfsOk(
        join(tmp, "repo-ok2"),
        "--json",
        "pull",
        ...PULL,
        "--signature-policy",
        accept,
        ref,
      );
      const checked = events(plain).filter((e) => e.id === SIGNATURE_CHECKED);
      equal(checked.length, 1, plain);
      deepEqual(
        [checked[0].CFS_POLICY, checked[0].CFS_TRANSPORT, checked[0].CFS_POLICY_SCOPE],
        [accept, "oci", img],
      );
      equal(checked[0].CFS_POLICY_DECISION, "accepted");
      ok(pullResult(plain).tag.startsWith("localhost/bootc-sha256:"));
    });

    await t.step("rejected: exit 4 before any layer, the event names the reasons", async () => {
      const repo = join(tmp, "repo-no");
      await cfsOk(repo, "init", "--insecure", repo);
      const before = await cfsOk(repo, "fsck");
      const r = await runCfs([
        "--repo",
        repo,
        "--json",
        "pull",
        ...PULL,
        "--signature-policy",
        reject,
        ref,
      ]);
      equal(r.code, 4, r.text + r.stderr);
      const lines = events(r.text);
      const error = lines.at(-1).error;
      equal(error.code, "signature-rejected");
      ok(error.message.includes(`policy ${reject}, transport oci, scope "${tmp}"`), error.message);
      const checked = lines.filter((e) => e.id === SIGNATURE_CHECKED);
      equal(checked.length, 1);
      equal(checked[0].CFS_POLICY_DECISION, "rejected");
      ok(/reject: /.test(checked[0].CFS_ERROR), checked[0].CFS_ERROR);
      equal(lines.filter((e) => e.id === LAYER_START).length, 0, "no layer was read");
      equal(await cfsOk(repo, "fsck"), before);
      deepEqual(JSON.parse(await cfsOk(repo, "--json", "oci", "images")).images, []);
    });

    await t.step(
      "a transport read through skopeo: skopeo decides under the same policy",
      async () => {
        const ok1 = await cfsOk(
          join(tmp, "repo-dir"),
          "--json",
          "pull",
          ...PULL,
          "--signature-policy",
          accept,
          `dir:${dirCopy}`,
        );
        const checked = events(ok1).filter((e) => e.id === SIGNATURE_CHECKED);
        equal(checked.length, 1, ok1);
        ok(checked[0].message.includes("by skopeo"), checked[0].message);
        const r = await runCfs([
          "--repo",
          join(tmp, "repo-dir-no"),
          "--json",
          "pull",
          ...PULL,
          "--signature-policy",
          reject,
          `dir:${dirCopy}`,
        ]);
        equal(r.code, 4, r.text + r.stderr);
        const error = events(r.text).at(-1).error;
        equal(error.code, "signature-rejected");
        ok(/rejected by the signature policy \(skopeo\)/.test(error.message), error.message);
      },
    );

    await t.step("require-signature refuses an image accepted without a signature", async () => {
      const r = await runCfs([
        "--repo",
        join(tmp, "repo-req"),
        "--json",
        "pull",
        ...PULL,
        "--signature-policy",
        accept,
        "--hook",
        "builtin:require-signature",
        ref,
      ]);
      equal(r.code, 3, r.text + r.stderr);
      const error = events(r.text).at(-1).error;
      ok(/accepted it without verifying a signature/.test(error.message), error.message);
    });

    await t.step(
      "a missing or malformed policy is an error naming it, not an acceptance",
      async () => {
        const missing = await runCfs([
          "--repo",
          join(tmp, "repo-m"),
          "--json",
          "pull",
          ...PULL,
          "--signature-policy",
          join(tmp, "nope.json"),
          ref,
        ]);
        equal(missing.code, 1);
        equal(events(missing.text).at(-1).error.code, "policy-not-found");
        const bad = join(tmp, "bad.json");
        await Deno.writeTextFile(bad, `{"default": [{"type": "insecureAcceptAnything"}], "x": 1}`);
        const malformed = await runCfs([
          "--repo",
          join(tmp, "repo-b"),
          "--json",
          "pull",
          ...PULL,
          "--signature-policy",
          bad,
          ref,
        ]);
        equal(malformed.code, 1);
        const error = events(malformed.text).at(-1).error;
        equal(error.code, "policy-invalid");
        ok(error.message.includes(bad), error.message);
      },
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
