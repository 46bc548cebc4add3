/**
 * The policy evaluation (evaluate.ts) with real parts: skopeo 1.9.3 as the oracle for which
 * policy files load and which scope applies (oci: and dir: sources, links, parents, the
 * transport default), and real signatures: GPG simple signing made by gpg + `skopeo
 * standalone-sign` (checked with `skopeo standalone-verify`), sigstore payloads signed by
 * `openssl` with an EC key. The verifier is FORMATS' (simple.ts, sigstore.ts). Digests come from
 * `sha256sum`, never from cfs.
 *
 * Host tier: runs skopeo, gpg and openssl.
 *
 * @module
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { buildOciImage, run, SAMPLE_LAYERS, sha256sum } from "./fixtures/oci.ts";
import { parseImageReference } from "../lib/oci/reference.ts";
import { parsePolicy } from "../lib/signature/policy.ts";
import { imageScopes } from "../lib/signature/scope.ts";
import {
  evaluatePolicy,
  formatDecision,
  type SignatureVerifier,
} from "../lib/signature/evaluate.ts";
import { verifySimpleSignature } from "../lib/signature/simple.ts";
import { verifySigstoreSignature } from "../lib/signature/sigstore.ts";
import type { ImageSignature, ImageToCheck, PolicyDecision } from "../lib/signature/types.ts";

type SigstoreSignature = Extract<ImageSignature, { kind: "sigstore" }>;
import { INVALID, VALID } from "./unit/signature_policy_cases.ts";

const VERIFIER: SignatureVerifier = {
  simple: (sig, keyrings) => verifySimpleSignature(sig, keyrings),
  sigstore: (payload, annotations, pem) => verifySigstoreSignature(payload, annotations, pem),
};

/** A verifier for policies that must never look at a signature. */
const NO_VERIFIER: SignatureVerifier = {
  simple: () => Promise.reject(new Error("simple verifier called")),
  sigstore: () => Promise.reject(new Error("sigstore verifier called")),
};

/** skopeo's outcome: "accepted", "rejected" (by the policy) or "invalid policy". */
async function skopeoCopy(policyText: string, source: string, dest: string): Promise<string> {
  const policyFile = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(policyFile, policyText);
    const out = await new Deno.Command("skopeo", {
      args: ["--policy", policyFile, "copy", "--quiet", source, dest],
      stdout: "null",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    if (out.success) return "accepted";
    if (err.includes("Error loading trust policy")) return "invalid policy";
    if (/rejected by policy|Source image rejected/.test(err)) return "rejected";
    throw new Error(`skopeo copy ${source}: ${err}`);
  } finally {
    await Deno.remove(policyFile);
  }
}

Deno.test("policy files: skopeo 1.9.3 loads what cfs loads and refuses what cfs refuses", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // A missing source: a policy that loads gets as far as the source and fails there.
    const source = `oci:${tmp}/no-such-layout:x`;
    const disagreements: string[] = [];
    for (const c of VALID) {
      const got = await skopeoCopy(c.text, source, `dir:${tmp}/out`).catch(() => "loaded");
      const expected = c.skopeo === "refuses" ? "invalid policy" : "loaded";
      if (got !== expected) disagreements.push(`valid ${c.name}: skopeo ${got}`);
    }
    for (const c of INVALID) {
      const got = await skopeoCopy(c.text, source, `dir:${tmp}/out`).catch(() => "loaded");
      const expected = c.skopeo === "accepts" ? "loaded" : "invalid policy";
      if (got !== expected) disagreements.push(`invalid ${c.name}: skopeo ${got}`);
    }
    deepEqual(disagreements, []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

function imageOf(ref: string, extra: Partial<ImageToCheck> = {}): ImageToCheck {
  const scoped = imageScopes(parseImageReference(ref));
  return {
    transport: scoped.transport,
    scopes: scoped.scopes,
    dockerReference: scoped.dockerReference,
    manifestDigest: `sha256:${"0".repeat(64)}`,
    signatures: () => Promise.reject(new Error("signatures fetched")),
    ...extra,
  };
}

Deno.test("scope precedence for oci: and dir: sources equals skopeo's (paths, links, parents, tags)", async () => {
  const tmp = await Deno.realPath(await Deno.makeTempDir());
  try {
    const layout = `${tmp}/real/images/layout`;
    await Deno.mkdir(`${tmp}/real/images`, { recursive: true });
    await buildOciImage(layout, { layers: [SAMPLE_LAYERS[0]], tag: "v1" });
    await Deno.symlink(`${tmp}/real`, `${tmp}/link`);
    const dirCopy = `${tmp}/real/images/dircopy`;
    await run(["skopeo", "copy", "--quiet", `oci:${layout}:v1`, `dir:${dirCopy}`]);

    const accept = [{ type: "insecureAcceptAnything" }];
    const reject = [{ type: "reject" }];
    const cases: { name: string; source: string; policy: unknown; expect: string }[] = [
      {
        expect: "rejected",
        name: "the layout rejected",
        source: `oci:${layout}:v1`,
        policy: { default: accept, transports: { oci: { [layout]: reject } } },
      },
      {
        expect: "accepted",
        name: "the layout accepted, its parent rejected",
        source: `oci:${layout}:v1`,
        policy: {
          default: reject,
          transports: { oci: { [layout]: accept, [`${tmp}/real/images`]: reject } },
        },
      },
      {
        expect: "rejected",
        name: "a parent rejected",
        source: `oci:${layout}:v1`,
        policy: { default: accept, transports: { oci: { [`${tmp}/real`]: reject, "": accept } } },
      },
      {
        expect: "rejected",
        name: "the transport default",
        source: `oci:${layout}:v1`,
        policy: { default: accept, transports: { oci: { "": reject, "/elsewhere": accept } } },
      },
      {
        expect: "accepted",
        name: "a scope with the tag does not apply",
        source: `oci:${layout}:v1`,
        policy: { default: accept, transports: { oci: { [`${layout}:v1`]: reject } } },
      },
      {
        expect: "rejected",
        name: "through a link: the resolved path applies",
        source: `oci:${tmp}/link/images/layout:v1`,
        policy: { default: accept, transports: { oci: { [layout]: reject } } },
      },
      {
        expect: "accepted",
        name: "through a link: the link's path does not",
        source: `oci:${tmp}/link/images/layout:v1`,
        policy: {
          default: reject,
          transports: { oci: { [`${tmp}/link/images/layout`]: reject, "": accept } },
        },
      },
      {
        expect: "accepted",
        name: "another transport's scopes do not apply",
        source: `oci:${layout}:v1`,
        policy: {
          default: accept,
          transports: { dir: { [layout]: reject }, docker: { "": reject } },
        },
      },
      {
        expect: "rejected",
        name: "dir: the directory rejected",
        source: `dir:${dirCopy}`,
        policy: { default: accept, transports: { dir: { [dirCopy]: reject } } },
      },
      {
        expect: "accepted",
        name: "dir: a parent accepted over the transport default",
        source: `dir:${tmp}/link/images/dircopy`,
        policy: {
          default: reject,
          transports: { dir: { [`${tmp}/real/images`]: accept, "": reject } },
        },
      },
      {
        expect: "rejected",
        name: "dir: an unrelated scope, the global default",
        source: `dir:${dirCopy}`,
        policy: { default: reject, transports: { dir: { "/elsewhere": accept } } },
      },
    ];
    let n = 0;
    for (const c of cases) {
      const text = JSON.stringify(c.policy);
      const skopeo = await skopeoCopy(text, c.source, `dir:${tmp}/out-${n++}`);
      const decision = await evaluatePolicy(
        parsePolicy(text, "p.json"),
        imageOf(c.source),
        NO_VERIFIER,
      );
      equal(skopeo, c.expect, `skopeo: ${c.name}`);
      equal(
        decision.accepted ? "accepted" : "rejected",
        skopeo,
        `${c.name}: ${formatDecision(decision)}`,
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

/** A GPG home with a key for `email`; returns its fingerprint and the exported public key file. */
async function gpgKey(
  home: string,
  email: string,
): Promise<{ fingerprint: string; keyFile: string }> {
  const env = { GNUPGHOME: home };
  const gpg = (args: string[]) =>
    new Deno.Command("gpg", {
      args: ["--batch", "--quiet", ...args],
      env,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  const made = await gpg([
    "--passphrase",
    "",
    "--quick-gen-key",
    email,
    "rsa2048",
    "sign",
    "never",
  ]);
  ok(made.success, new TextDecoder().decode(made.stderr));
  const listed = new TextDecoder().decode(
    (await gpg(["--with-colons", "--list-keys", email])).stdout,
  );
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(listed)![1];
  const keyFile = `${home}/public.gpg`;
  ok((await gpg(["--output", keyFile, "--export", email])).success);
  return { fingerprint, keyFile };
}

/** `skopeo standalone-sign` of `manifest` as `reference` with the key `fingerprint`. */
async function standaloneSign(
  home: string,
  manifest: string,
  reference: string,
  fingerprint: string,
  out: string,
): Promise<Uint8Array> {
  const result = await new Deno.Command("skopeo", {
    args: ["standalone-sign", manifest, reference, fingerprint, "-o", out],
    env: { GNUPGHOME: home },
    stderr: "piped",
  }).output();
  ok(result.success, new TextDecoder().decode(result.stderr));
  return await Deno.readFile(out);
}

Deno.test("signedBy with real GPG simple signatures: accepted, and each rejection says why", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const homeA = `${tmp}/gpg-a`;
    const homeB = `${tmp}/gpg-b`;
    await Deno.mkdir(homeA, { mode: 0o700 });
    await Deno.mkdir(homeB, { mode: 0o700 });
    const a = await gpgKey(homeA, "signer-a@example.com");
    const b = await gpgKey(homeB, "signer-b@example.com");
    const manifest = `${tmp}/manifest.json`;
    await Deno.writeTextFile(
      manifest,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        layers: [],
      }),
    );
    const digest = await sha256sum(manifest);
    match(digest, /^sha256:[0-9a-f]{64}$/);
    const ref = "registry.example.com:5000/ns/app:v1";
    const sigA = await standaloneSign(homeA, manifest, ref, a.fingerprint, `${tmp}/sig-a`);
    const sigB = await standaloneSign(homeB, manifest, ref, b.fingerprint, `${tmp}/sig-b`);
    const sigOther = await standaloneSign(
      homeA,
      manifest,
      "registry.example.com:5000/ns/app:v2",
      a.fingerprint,
      `${tmp}/sig-v2`,
    );
    // The oracle agrees the signature is good.
    const verified = await new Deno.Command("skopeo", {
      args: ["standalone-verify", manifest, ref, a.fingerprint, `${tmp}/sig-a`],
      env: { GNUPGHOME: homeA },
      stdout: "piped",
      stderr: "piped",
    }).output();
    ok(verified.success, new TextDecoder().decode(verified.stderr));

    const simple = (bytes: Uint8Array, origin: string): ImageSignature => ({
      kind: "simple",
      bytes,
      origin,
    });
    let fetches = 0;
    const image = (sigs: ImageSignature[], extra: Partial<ImageToCheck> = {}) =>
      imageOf(`docker://${ref}`, {
        manifestDigest: digest,
        signatures: () => {
          fetches++;
          return Promise.resolve(sigs);
        },
        ...extra,
      });
    const policyWith = (req: Record<string, unknown>) =>
      parsePolicy(
        JSON.stringify({
          default: [{ type: "reject" }],
          transports: {
            docker: {
              "registry.example.com:5000/ns": [{ type: "signedBy", keyType: "GPGKeys", ...req }],
            },
          },
        }),
        `${tmp}/policy.json`,
      );
    const reason = (d: PolicyDecision) => d.results.map((r) => r.reason).join(" | ");

    let d = await evaluatePolicy(
      policyWith({ keyPath: a.keyFile }),
      image([simple(sigB, "sig-b"), simple(sigA, "sig-a")]),
      VERIFIER,
    );
    ok(d.accepted, formatDecision(d));
    equal(d.scope, "registry.example.com:5000/ns");
    match(d.results[0].reason, new RegExp(`signed by key ${a.fingerprint} \\(sig-a\\)`));

    // keyPaths: either key will do; keyData: the key ring inline.
    d = await evaluatePolicy(
      policyWith({ keyPaths: [b.keyFile, a.keyFile] }),
      image([simple(sigA, "sig-a")]),
      VERIFIER,
    );
    ok(d.accepted, formatDecision(d));
    const keyData = btoa(String.fromCharCode(...await Deno.readFile(a.keyFile)));
    d = await evaluatePolicy(policyWith({ keyData }), image([simple(sigA, "sig-a")]), VERIFIER);
    ok(d.accepted, formatDecision(d));

    // Signed by a key that is not trusted.
    d = await evaluatePolicy(
      policyWith({ keyPath: a.keyFile }),
      image([simple(sigB, "sig-b")]),
      VERIFIER,
    );
    equal(d.accepted, false);
    match(reason(d), new RegExp(`sig-b: .*${b.fingerprint.slice(-16)}.*not in the trusted keys`));

    // The digest of another manifest.
    const other = `sha256:${"1".repeat(64)}`;
    d = await evaluatePolicy(
      policyWith({ keyPath: a.keyFile }),
      image([simple(sigA, "sig-a")], { manifestDigest: other }),
      VERIFIER,
    );
    equal(d.accepted, false);
    match(reason(d), new RegExp(`it is for manifest ${digest}, not the image's ${other}`));

    // Another identity: named with both sides.
    d = await evaluatePolicy(
      policyWith({ keyPath: a.keyFile }),
      image([simple(sigOther, "sig-v2")]),
      VERIFIER,
    );
    equal(d.accepted, false);
    match(
      reason(d),
      /claims identity registry\.example\.com:5000\/ns\/app:v2, which matchRepoDigestOrExact does not accept \(the image is registry\.example\.com:5000\/ns\/app:v1\)/,
    );
    d = await evaluatePolicy(
      policyWith({ keyPath: a.keyFile, signedIdentity: { type: "matchRepository" } }),
      image([simple(sigOther, "sig-v2")]),
      VERIFIER,
    );
    ok(d.accepted, formatDecision(d));

    // Two signatures rejected: both reasons, numbered.
    d = await evaluatePolicy(
      policyWith({ keyPath: a.keyFile }),
      image([simple(sigB, "sig-b"), simple(sigOther, "sig-v2")]),
      VERIFIER,
    );
    match(
      reason(d),
      /none of the 2 simple signing signatures is accepted \(keyPath ".*public\.gpg"\): 1: sig-b: .*; 2: sig-v2: /,
    );

    // An unreadable key file is named (and read only when there is a signature to check).
    d = await evaluatePolicy(
      policyWith({ keyPath: `${tmp}/missing.gpg` }),
      image([simple(sigA, "sig-a")]),
      VERIFIER,
    );
    match(reason(d), new RegExp(`cannot read key file "${tmp}/missing\\.gpg"`));
    d = await evaluatePolicy(policyWith({ keyPath: `${tmp}/missing.gpg` }), image([]), VERIFIER);
    equal(reason(d), "no simple signing signature exists");

    // Sigstore signatures are not simple signatures.
    d = await evaluatePolicy(
      policyWith({ keyPath: a.keyFile }),
      image([{ kind: "sigstore", payload: new Uint8Array(), annotations: {}, origin: "att" }]),
      VERIFIER,
    );
    equal(reason(d), "no simple signing signature exists");

    // An empty key ring, another key type.
    d = await evaluatePolicy(policyWith({ keyData: "" }), image([simple(sigA, "sig-a")]), VERIFIER);
    equal(reason(d), "no public keys in keyData");
    d = await evaluatePolicy(
      policyWith({ keyType: "X509Certificates", keyPath: a.keyFile }),
      image([simple(sigA, "sig-a")]),
      VERIFIER,
    );
    match(reason(d), /keyType X509Certificates is not implemented/);

    // A relative keyPath is read against the working directory, as containers/image reads it.
    const cwd = Deno.cwd();
    Deno.chdir(homeA);
    try {
      d = await evaluatePolicy(
        policyWith({ keyPath: "public.gpg" }),
        image([simple(sigA, "sig-a")]),
        VERIFIER,
      );
      ok(d.accepted, formatDecision(d));
    } finally {
      Deno.chdir(cwd);
    }

    // Every requirement must accept; the first rejection ends it, before any fetch.
    fetches = 0;
    const both = parsePolicy(
      JSON.stringify({
        default: [{ type: "reject" }, { type: "signedBy", keyType: "GPGKeys", keyPath: a.keyFile }],
      }),
      "p.json",
    );
    d = await evaluatePolicy(
      both,
      imageOf("docker://elsewhere.io/x:1", { signatures: image([]).signatures }),
      VERIFIER,
    );
    equal(d.accepted, false);
    equal(fetches, 0);
    deepEqual(d.results.map((r) => r.type), ["reject"]);
    equal(
      formatDecision(d),
      "policy p.json, transport docker, default: reject: the policy rejects these images",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("sigstoreSigned with a payload signed by openssl (EC P-256): accepted, and rejections say why", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await run([
      "openssl",
      "ecparam",
      "-name",
      "prime256v1",
      "-genkey",
      "-noout",
      "-out",
      `${tmp}/key.pem`,
    ]);
    await run(["openssl", "ec", "-in", `${tmp}/key.pem`, "-pubout", "-out", `${tmp}/pub.pem`]);
    await run([
      "openssl",
      "ecparam",
      "-name",
      "prime256v1",
      "-genkey",
      "-noout",
      "-out",
      `${tmp}/key2.pem`,
    ]);
    await run(["openssl", "ec", "-in", `${tmp}/key2.pem`, "-pubout", "-out", `${tmp}/pub2.pem`]);
    const manifest = `${tmp}/manifest.json`;
    await Deno.writeTextFile(manifest, '{"schemaVersion":2,"layers":[]}');
    const digest = await sha256sum(manifest);
    match(digest, /^sha256:[0-9a-f]{64}$/);
    const sign = async (
      name: string,
      repo: string,
      key = "key.pem",
    ): Promise<SigstoreSignature> => {
      const payload = `${tmp}/${name}.json`;
      await Deno.writeTextFile(
        payload,
        JSON.stringify({
          critical: {
            identity: { "docker-reference": repo },
            image: { "docker-manifest-digest": digest },
            type: "cosign container image signature",
          },
          optional: null,
        }),
      );
      await run([
        "openssl",
        "dgst",
        "-sha256",
        "-sign",
        `${tmp}/${key}`,
        "-out",
        `${tmp}/${name}.sig`,
        payload,
      ]);
      const sig = await Deno.readFile(`${tmp}/${name}.sig`);
      return {
        kind: "sigstore",
        payload: await Deno.readFile(payload),
        annotations: { "dev.cosignproject.cosign/signature": btoa(String.fromCharCode(...sig)) },
        mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
        origin: name,
      };
    };
    // cosign signs the repository only: matchRepository accepts, the default identity does not.
    const good = await sign("good", "registry.example.com/app");
    const byOtherKey = await sign("other-key", "registry.example.com/app", "key2.pem");
    const elsewhere = await sign("elsewhere", "registry.example.com/other");
    const policy = (extra: Record<string, unknown>) =>
      parsePolicy(
        JSON.stringify({
          default: [{ type: "sigstoreSigned", keyPath: `${tmp}/pub.pem`, ...extra }],
        }),
        "p.json",
      );
    const image = (sigs: ImageSignature[]) =>
      imageOf("docker://registry.example.com/app:v1", {
        manifestDigest: digest,
        signatures: () => Promise.resolve(sigs),
      });
    const reason = (d: PolicyDecision) => d.results.map((r) => r.reason).join(" | ");

    let d = await evaluatePolicy(
      policy({ signedIdentity: { type: "matchRepository" } }),
      image([byOtherKey, good]),
      VERIFIER,
    );
    ok(d.accepted, formatDecision(d));
    match(d.results[0].reason, /\(good\) as registry\.example\.com\/app$/);

    d = await evaluatePolicy(policy({}), image([good]), VERIFIER);
    equal(d.accepted, false);
    match(
      reason(d),
      /claims identity registry\.example\.com\/app, which matchRepoDigestOrExact does not accept/,
    );

    d = await evaluatePolicy(
      policy({ signedIdentity: { type: "matchRepository" } }),
      image([byOtherKey]),
      VERIFIER,
    );
    match(reason(d), /other-key: cryptographic signature verification failed/);

    d = await evaluatePolicy(
      policy({ signedIdentity: { type: "matchRepository" } }),
      image([elsewhere]),
      VERIFIER,
    );
    match(reason(d), /claims identity registry\.example\.com\/other/);

    // The other kinds are counted, not verified.
    d = await evaluatePolicy(
      policy({}),
      image([
        { kind: "simple", bytes: new Uint8Array(1), origin: "lookaside" },
        { ...good, mediaType: "application/vnd.dev.sigstore.bundle+json" },
      ]),
      VERIFIER,
    );
    equal(
      reason(d),
      "no sigstore signature exists (1 of another kind, 1 sigstore attachments that are not signatures)",
    );

    // A missing annotation, keyData, a key file that is not a key.
    d = await evaluatePolicy(policy({}), image([{ ...good, annotations: {} }]), VERIFIER);
    match(reason(d), /good: missing dev\.cosignproject\.cosign\/signature annotation/);
    const keyData = btoa(await Deno.readTextFile(`${tmp}/pub.pem`));
    d = await evaluatePolicy(
      parsePolicy(
        JSON.stringify({
          default: [{
            type: "sigstoreSigned",
            keyData,
            signedIdentity: { type: "matchRepository" },
          }],
        }),
        "p.json",
      ),
      image([good]),
      VERIFIER,
    );
    ok(d.accepted, formatDecision(d));
    d = await evaluatePolicy(policy({ keyPath: manifest }), image([good]), VERIFIER);
    match(reason(d), /good: public key/);

    // Fulcio: refused by name without fetching anything.
    const fulcio = parsePolicy(
      JSON.stringify({
        default: [{
          type: "sigstoreSigned",
          fulcio: {
            caData: "AAAA",
            oidcIssuer: "https://issuer.example",
            subjectEmail: "a@example.com",
          },
          rekorPublicKeyPath: "/rekor.pub",
        }],
      }),
      "p.json",
    );
    d = await evaluatePolicy(fulcio, imageOf("docker://registry.example.com/app:v1"), NO_VERIFIER);
    equal(d.accepted, false);
    match(reason(d), /Fulcio certificates and Rekor are not supported by cfs/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("evaluatePolicy: accept anything, signedBaseLayer, an empty built policy, and formatDecision's scopes", async () => {
  const image = imageOf("docker://example.com/app:v1");
  const policy = parsePolicy(
    JSON.stringify({
      default: [{ type: "insecureAcceptAnything" }],
      transports: {
        docker: {
          "": [{ type: "insecureAcceptAnything" }, {
            type: "signedBaseLayer",
            baseLayerIdentity: { type: "matchExact" },
          }],
          "example.com/app": [{ type: "insecureAcceptAnything" }],
        },
      },
    }),
    "/etc/containers/policy.json",
  );
  let d = await evaluatePolicy(policy, image, NO_VERIFIER);
  deepEqual(d, {
    accepted: true,
    policy: "/etc/containers/policy.json",
    transport: "docker",
    scope: "example.com/app",
    results: [{
      type: "insecureAcceptAnything",
      accepted: true,
      reason: "accepted without any check",
    }],
  });
  equal(
    formatDecision(d),
    'policy /etc/containers/policy.json, transport docker, scope "example.com/app": ' +
      "insecureAcceptAnything held (accepted without any check)",
  );
  d = await evaluatePolicy(policy, imageOf("docker://other.io/x:1"), NO_VERIFIER);
  equal(d.accepted, false);
  equal(d.scope, "");
  match(
    formatDecision(d),
    /transport docker, transport default: insecureAcceptAnything held \(.*\); signedBaseLayer: signedBaseLayer is not implemented/,
  );
  d = await evaluatePolicy(policy, imageOf("oci:/tmp"), NO_VERIFIER);
  ok(d.accepted);
  equal(d.scope, undefined);
  match(formatDecision(d), /, transport oci, default: /);
  d = await evaluatePolicy(
    { source: "(built in)", default: [], transports: {} },
    image,
    NO_VERIFIER,
  );
  equal(d.accepted, false);
  match(formatDecision(d), /the scope has no requirements/);
});
