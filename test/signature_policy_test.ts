/**
 * cfs's signature-policy decisions equal containers/image's (issue 12): for each case of the
 * matrix, a policy.json and an image in a real registry, signed with real tools
 * (fixtures/signing.ts), the oracle decides first, then `cfs pull` (and, for some cases,
 * `cfs oci pull`) under the same policy and registries.d must decide the same: accepted ⇔ exit
 * 0; rejected ⇔ exit 4 with the `--json` error code `signature-rejected`, no tag written and a
 * repository `cfs fsck` finds clean.
 *
 * The oracles: the packaged skopeo 1.9.3 for policies without `sigstoreSigned` (its build
 * refuses sigstore), and containers/image v5.23.1 unpatched (`cimage-oracle`) for every case
 * (the two must agree where both answer). Each case also states the decision expected from
 * reading containers-policy.json(5), so a fixture that signs the wrong thing cannot pass
 * unnoticed.
 *
 * One registry; every image is pushed once and cases share them.
 *
 * @module
 */
import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { pathExists, runCfs } from "./cfs.ts";
import { buildOciImage } from "./fixtures/oci.ts";
import {
  copyLookasideSignature,
  copySigstoreAttachments,
  type Decision,
  type GpgKey,
  oracleDecision,
  type PushedImage,
  type SigstoreKey,
  skopeoDecision,
  startSigningWorld,
  tamperLookasideSignature,
  tamperSigstorePayload,
} from "./fixtures/signing.ts";

// deno-lint-ignore no-explicit-any
type Json = any;
type Requirement = Json;
type Expect = "accept" | "reject";

interface Case {
  name: string;
  /** The image reference to pull. */
  ref: string;
  policy: Json;
  expect: Expect;
  /** Also run `cfs oci pull`. */
  ociPull?: boolean;
}

const PULL_FLAGS = ["--allow-missing-fsverity", "--no-default-hooks", "--tls-verify=false"];

const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

Deno.test("signature policy: cfs decides as containers/image (skopeo) on the whole matrix", async (t) => {
  await using world = await startSigningWorld();
  const H = world.registry.host;
  const tmp = join(world.dir, "test");
  await Deno.mkdir(tmp);

  // --- images ----------------------------------------------------------------------------
  // Two contents (two digests); /usr, /boot and /sysroot for pull's bootable image stage.
  const layout = async (name: string, text: string) => {
    const dir = join(tmp, name);
    await buildOciImage(dir, {
      tag: "v1",
      layers: [[
        { type: "dir", path: "boot" },
        { type: "dir", path: "sysroot" },
        { type: "file", path: "usr/share/signed", content: `${text}\n` },
      ]],
    });
    return `oci:${dir}:v1`;
  };
  const A = await layout("a", "content A");
  const B = await layout("b", "content B");
  const { alice, bob, carol } = world.gpg.keys;
  const expired = world.expired.keys.expired;
  const { s1, s2 } = world.sigstore;

  const img = {
    gpg: await world.push(A, "sig/gpg:v1", { gpg: alice }),
    sigstore: await world.push(A, "sig/sigstore:v1", { sigstore: s1 }),
    both: await world.push(A, "sig/both:v1", { gpg: alice, sigstore: s1 }),
    none: await world.push(A, "sig/none:v1"),
    two: await world.push(A, "sig/two:v1", { gpg: alice }),
    expired: await world.push(A, "sig/expired:v1", { gpg: expired }),
    // Signed for another repository: `H/upstream/ident:v1`.
    ident: await world.push(A, "sig/ident:v1", {
      gpg: alice,
      sigstore: s1,
      identity: `${H}/upstream/ident:v1`,
    }),
    // Signed for the same repository, another tag.
    tagged: await world.push(A, "sig/tagged:v1", { gpg: alice, identity: `${H}/sig/tagged:other` }),
    // Content B under v1; its signatures are A's, made for `sig/otherdigest:v1`.
    otherdigest: await world.push(B, "sig/otherdigest:v1"),
    tampered: await world.push(A, "sig/tampered:v1", { gpg: alice, sigstore: s1 }),
  };
  await world.addGpgSignature(img.two, bob);
  const signedA = await world.push(A, "sig/otherdigest:a", {
    gpg: alice,
    sigstore: s1,
    identity: `${H}/sig/otherdigest:v1`,
  });
  await copyLookasideSignature(world, signedA, img.otherdigest);
  await copySigstoreAttachments(world, signedA, img.otherdigest);
  await tamperLookasideSignature(world, img.tampered);
  await tamperSigstorePayload(world, img.tampered);

  // --- policies --------------------------------------------------------------------------
  const signedBy = (key: GpgKey, signedIdentity?: Json): Requirement => ({
    type: "signedBy",
    keyType: "GPGKeys",
    keyPath: key.publicBinary,
    ...(signedIdentity ? { signedIdentity } : {}),
  });
  const sigstoreSigned = (key: SigstoreKey, signedIdentity?: Json): Requirement => ({
    type: "sigstoreSigned",
    keyPath: key.publicKey,
    ...(signedIdentity ? { signedIdentity } : {}),
  });
  const ACCEPT = [{ type: "insecureAcceptAnything" }];
  const REJECT = [{ type: "reject" }];
  /** A policy: docker scopes, a rejecting global default unless given. */
  const docker = (scopes: Record<string, Requirement[]>, def: Requirement[] = REJECT) => ({
    default: def,
    transports: { docker: scopes },
  });
  /** The requirements for the registry host (the image's least specific named scope). */
  const atHost = (...reqs: Requirement[]) => docker({ [H]: reqs });
  const ref = (image: PushedImage) => image.ref;
  const armored = async (key: GpgKey) =>
    new TextEncoder().encode(await Deno.readTextFile(key.publicArmored));

  const cases: Case[] = [
    // Simple signing: keys.
    {
      name: "gpg: right key",
      ref: ref(img.gpg),
      policy: atHost(signedBy(alice)),
      expect: "accept",
      ociPull: true,
    },
    {
      name: "gpg: right key, armored keyPath",
      ref: ref(img.gpg),
      policy: atHost({ ...signedBy(alice), keyPath: alice.publicArmored }),
      expect: "accept",
    },
    {
      name: "gpg: wrong key",
      ref: ref(img.gpg),
      policy: atHost(signedBy(bob)),
      expect: "reject",
      ociPull: true,
    },
    {
      name: "gpg: no signature",
      ref: ref(img.none),
      policy: atHost(signedBy(alice)),
      expect: "reject",
    },
    {
      name: "gpg: signature for another digest",
      ref: ref(img.otherdigest),
      policy: atHost(signedBy(alice)),
      expect: "reject",
    },
    {
      name: "gpg: tampered signature",
      ref: ref(img.tampered),
      policy: atHost(signedBy(alice)),
      expect: "reject",
    },
    {
      name: "gpg: signature by an expired key",
      ref: ref(img.expired),
      policy: atHost(signedBy(expired)),
      expect: "reject",
    },
    {
      name: "gpg: keyPaths with the signer among several keys",
      ref: ref(img.gpg),
      policy: atHost({
        type: "signedBy",
        keyType: "GPGKeys",
        keyPaths: [bob.publicBinary, alice.publicBinary],
      }),
      expect: "accept",
    },
    {
      name: "gpg: keyPaths without the signer",
      ref: ref(img.gpg),
      policy: atHost({
        type: "signedBy",
        keyType: "GPGKeys",
        keyPaths: [bob.publicBinary, carol.publicArmored],
      }),
      expect: "reject",
    },
    {
      name: "gpg: keyData inline (binary key)",
      ref: ref(img.gpg),
      policy: atHost({
        type: "signedBy",
        keyType: "GPGKeys",
        keyData: b64(await Deno.readFile(alice.publicBinary)),
      }),
      expect: "accept",
    },
    {
      name: "gpg: keyData inline (armored key)",
      ref: ref(img.gpg),
      policy: atHost({ type: "signedBy", keyType: "GPGKeys", keyData: b64(await armored(alice)) }),
      expect: "accept",
    },
    {
      name: "gpg: keyData inline, wrong key",
      ref: ref(img.gpg),
      policy: atHost({
        type: "signedBy",
        keyType: "GPGKeys",
        keyData: b64(await Deno.readFile(bob.publicBinary)),
      }),
      expect: "reject",
    },
    {
      name: "gpg: the second of two signatures is by the key",
      ref: ref(img.two),
      policy: atHost(signedBy(bob)),
      expect: "accept",
    },
    {
      name: "gpg: neither of two signatures is by the key",
      ref: ref(img.two),
      policy: atHost(signedBy(carol)),
      expect: "reject",
    },

    // Simple signing: signedIdentity.
    {
      name: "identity: signed for another repository, default rule",
      ref: ref(img.ident),
      policy: atHost(signedBy(alice)),
      expect: "reject",
    },
    {
      name: "identity: matchExact, another repository",
      ref: ref(img.ident),
      policy: atHost(signedBy(alice, { type: "matchExact" })),
      expect: "reject",
    },
    {
      name: "identity: matchRepository, another repository",
      ref: ref(img.ident),
      policy: atHost(signedBy(alice, { type: "matchRepository" })),
      expect: "reject",
    },
    {
      name: "identity: exactReference equal to the signed one",
      ref: ref(img.ident),
      policy: atHost(
        signedBy(alice, { type: "exactReference", dockerReference: `${H}/upstream/ident:v1` }),
      ),
      expect: "accept",
    },
    {
      name: "identity: exactReference with another tag",
      ref: ref(img.ident),
      policy: atHost(
        signedBy(alice, { type: "exactReference", dockerReference: `${H}/upstream/ident:v2` }),
      ),
      expect: "reject",
    },
    {
      name: "identity: exactRepository equal to the signed one",
      ref: ref(img.ident),
      policy: atHost(
        signedBy(alice, { type: "exactRepository", dockerRepository: `${H}/upstream/ident` }),
      ),
      expect: "accept",
    },
    {
      name: "identity: exactRepository of another repository",
      ref: ref(img.ident),
      policy: atHost(
        signedBy(alice, { type: "exactRepository", dockerRepository: `${H}/upstream/other` }),
      ),
      expect: "reject",
    },
    {
      name: "identity: remapIdentity onto the signed prefix",
      ref: ref(img.ident),
      policy: atHost(
        signedBy(alice, {
          type: "remapIdentity",
          prefix: `${H}/sig`,
          signedPrefix: `${H}/upstream`,
        }),
      ),
      expect: "accept",
    },
    {
      name: "identity: remapIdentity onto another prefix",
      ref: ref(img.ident),
      policy: atHost(
        signedBy(alice, {
          type: "remapIdentity",
          prefix: `${H}/sig`,
          signedPrefix: `${H}/elsewhere`,
        }),
      ),
      expect: "reject",
    },
    {
      name: "identity: matchRepository, another tag",
      ref: ref(img.tagged),
      policy: atHost(signedBy(alice, { type: "matchRepository" })),
      expect: "accept",
    },
    {
      name: "identity: matchExact, another tag",
      ref: ref(img.tagged),
      policy: atHost(signedBy(alice, { type: "matchExact" })),
      expect: "reject",
    },
    {
      name: "identity: default rule, another tag",
      ref: ref(img.tagged),
      policy: atHost(signedBy(alice)),
      expect: "reject",
    },
    {
      name: "identity: pulled by digest, default rule",
      ref: img.gpg.digestRef,
      policy: atHost(signedBy(alice)),
      expect: "accept",
    },
    {
      name: "identity: pulled by digest, matchExact",
      ref: img.gpg.digestRef,
      policy: atHost(signedBy(alice, { type: "matchExact" })),
      expect: "reject",
    },

    // Scopes: the most specific one that exists applies, alone.
    {
      name: "scope: image over repository",
      ref: ref(img.none),
      policy: docker({ [`${H}/sig/none:v1`]: ACCEPT, [`${H}/sig/none`]: REJECT }),
      expect: "accept",
    },
    {
      name: "scope: image over repository (reject)",
      ref: ref(img.none),
      policy: docker({ [`${H}/sig/none:v1`]: REJECT, [`${H}/sig/none`]: ACCEPT }),
      expect: "reject",
    },
    {
      name: "scope: repository over namespace",
      ref: ref(img.none),
      policy: docker({ [`${H}/sig/none`]: ACCEPT, [`${H}/sig`]: REJECT }),
      expect: "accept",
    },
    {
      name: "scope: repository over namespace (reject)",
      ref: ref(img.none),
      policy: docker({ [`${H}/sig/none`]: REJECT, [`${H}/sig`]: ACCEPT }),
      expect: "reject",
    },
    {
      name: "scope: namespace over host",
      ref: ref(img.none),
      policy: docker({ [`${H}/sig`]: ACCEPT, [H]: REJECT }),
      expect: "accept",
    },
    {
      name: "scope: namespace over host (reject)",
      ref: ref(img.none),
      policy: docker({ [`${H}/sig`]: REJECT, [H]: ACCEPT }),
      expect: "reject",
    },
    {
      name: "scope: host over transport default",
      ref: ref(img.none),
      policy: docker({ [H]: ACCEPT, "": REJECT }),
      expect: "accept",
    },
    {
      name: "scope: host over transport default (reject)",
      ref: ref(img.none),
      policy: docker({ [H]: REJECT, "": ACCEPT }),
      expect: "reject",
    },
    {
      name: "scope: transport default over global default",
      ref: ref(img.none),
      policy: docker({ "": ACCEPT }, REJECT),
      expect: "accept",
    },
    {
      name: "scope: transport default over global default (reject)",
      ref: ref(img.none),
      policy: docker({ "": REJECT }, ACCEPT),
      expect: "reject",
    },
    {
      name: "scope: global default when no scope matches",
      ref: ref(img.none),
      policy: docker({ "other.example": REJECT }, ACCEPT),
      expect: "accept",
    },
    {
      name: "scope: global default when no scope matches (reject)",
      ref: ref(img.none),
      policy: docker({ "other.example": ACCEPT }, REJECT),
      expect: "reject",
    },
    {
      name: "scope: another transport's scopes do not apply",
      ref: ref(img.none),
      policy: {
        default: ACCEPT,
        transports: { oci: { "": REJECT }, "docker-daemon": { "": REJECT } },
      },
      expect: "accept",
    },
    {
      name:
        "scope: reject for one repository, insecureAcceptAnything for its namespace (that repository)",
      ref: ref(img.none),
      policy: docker({ [`${H}/sig/none`]: REJECT, [`${H}/sig`]: ACCEPT }),
      expect: "reject",
      ociPull: true,
    },
    {
      name: "scope: reject for one repository, insecureAcceptAnything for its namespace (another)",
      ref: ref(img.gpg),
      policy: docker({ [`${H}/sig/none`]: REJECT, [`${H}/sig`]: ACCEPT }),
      expect: "accept",
    },
    {
      name: "scope: a tag scope does not apply to a pull by digest",
      ref: img.gpg.digestRef,
      policy: docker({ [`${H}/sig/gpg:v1`]: REJECT, [`${H}/sig/gpg`]: ACCEPT }),
      expect: "accept",
    },
    {
      name:
        "scope: unsigned image accepted by a more specific insecureAcceptAnything over signedBy",
      ref: ref(img.none),
      policy: docker({ [`${H}/sig/none`]: ACCEPT, [H]: [signedBy(alice)] }),
      expect: "accept",
    },
    {
      name: "scope: every requirement of the scope must accept",
      ref: ref(img.gpg),
      policy: atHost(signedBy(alice), { type: "reject" }),
      expect: "reject",
    },

    // Sigstore.
    {
      name: "sigstore: right key",
      ref: ref(img.sigstore),
      policy: atHost(sigstoreSigned(s1)),
      expect: "accept",
      ociPull: true,
    },
    {
      name: "sigstore: wrong key",
      ref: ref(img.sigstore),
      policy: atHost(sigstoreSigned(s2)),
      expect: "reject",
      ociPull: true,
    },
    {
      name: "sigstore: no signature",
      ref: ref(img.none),
      policy: atHost(sigstoreSigned(s1)),
      expect: "reject",
    },
    {
      name: "sigstore: only a simple signature",
      ref: ref(img.gpg),
      policy: atHost(sigstoreSigned(s1)),
      expect: "reject",
    },
    {
      name: "sigstore: signature for another digest",
      ref: ref(img.otherdigest),
      policy: atHost(sigstoreSigned(s1)),
      expect: "reject",
    },
    {
      name: "sigstore: tampered payload",
      ref: ref(img.tampered),
      policy: atHost(sigstoreSigned(s1)),
      expect: "reject",
    },
    {
      name: "sigstore: keyData inline",
      ref: ref(img.sigstore),
      policy: atHost({
        type: "sigstoreSigned",
        keyData: b64(new TextEncoder().encode(s1.publicKeyPem)),
      }),
      expect: "accept",
    },
    {
      name: "sigstore identity: signed for another repository, default rule",
      ref: ref(img.ident),
      policy: atHost(sigstoreSigned(s1)),
      expect: "reject",
    },
    {
      name: "sigstore identity: remapIdentity onto the signed prefix",
      ref: ref(img.ident),
      policy: atHost(
        sigstoreSigned(s1, {
          type: "remapIdentity",
          prefix: `${H}/sig`,
          signedPrefix: `${H}/upstream`,
        }),
      ),
      expect: "accept",
    },
    {
      name: "sigstore identity: exactRepository equal to the signed one",
      ref: ref(img.ident),
      policy: atHost(
        sigstoreSigned(s1, { type: "exactRepository", dockerRepository: `${H}/upstream/ident` }),
      ),
      expect: "accept",
    },
    {
      name: "sigstore identity: pulled by digest, default rule",
      ref: img.sigstore.digestRef,
      policy: atHost(sigstoreSigned(s1)),
      expect: "accept",
    },

    // Both kinds on one image.
    {
      name: "both: signedBy and sigstoreSigned",
      ref: ref(img.both),
      policy: atHost(signedBy(alice), sigstoreSigned(s1)),
      expect: "accept",
    },
    {
      name: "both: signedBy alone",
      ref: ref(img.both),
      policy: atHost(signedBy(alice)),
      expect: "accept",
    },
    {
      name: "both: sigstoreSigned alone",
      ref: ref(img.both),
      policy: atHost(sigstoreSigned(s1)),
      expect: "accept",
    },
    {
      name: "both: signedBy right, sigstoreSigned wrong key",
      ref: ref(img.both),
      policy: atHost(signedBy(alice), sigstoreSigned(s2)),
      expect: "reject",
    },
    {
      name: "both: signedBy wrong key, sigstoreSigned right",
      ref: ref(img.both),
      policy: atHost(signedBy(bob), sigstoreSigned(s1)),
      expect: "reject",
    },
    {
      name: "both required, only a simple signature",
      ref: ref(img.gpg),
      policy: atHost(signedBy(alice), sigstoreSigned(s1)),
      expect: "reject",
    },
    {
      name: "both required, only a sigstore signature",
      ref: ref(img.sigstore),
      policy: atHost(signedBy(alice), sigstoreSigned(s1)),
      expect: "reject",
    },
  ];

  // --- oracles ---------------------------------------------------------------------------
  const policies = join(tmp, "policies");
  await Deno.mkdir(policies);
  const decided: { c: Case; file: string; oracle: Decision }[] = [];
  for (const [i, c] of cases.entries()) {
    const file = join(policies, `${String(i).padStart(2, "0")}.json`);
    await Deno.writeTextFile(file, JSON.stringify(c.policy, null, 2));
    const oracle = await oracleDecision(file, world.registriesD, c.ref);
    decided.push({ c, file, oracle });
    await t.step(`oracle: ${c.name}`, async () => {
      const why = `${c.name}: ${JSON.stringify(oracle)}`;
      equal(oracle.accepted, c.expect === "accept", why);
      // A refusal must be the policy's, not a failure to read the image or its signatures.
      equal(oracle.rejected, c.expect === "reject", why);
      if (!JSON.stringify(c.policy).includes("sigstoreSigned")) {
        const skopeo = await skopeoDecision(file, world.registriesD, c.ref);
        equal(skopeo.accepted, oracle.accepted, `skopeo: ${JSON.stringify(skopeo)}; ${why}`);
      }
    });
  }

  // --- cfs -------------------------------------------------------------------------------
  const tagsOf = async (repo: string): Promise<string[]> => {
    const r = await runCfs(["--repo", repo, "--json", "oci", "images"]);
    equal(r.code, 0, `oci images: ${r.text}${r.stderr}`);
    return JSON.parse(r.text).images.map((i: { name: string }) => i.name);
  };
  let n = 0;
  const cfsDecides = async (c: Case, file: string, oracle: Decision, command: string[]) => {
    const repo = join(tmp, `repo-${++n}`);
    const oci = command[0] === "oci";
    if (oci) {
      const init = await runCfs(["--repo", repo, "init", "--insecure"]);
      equal(init.code, 0, `init: ${init.text}${init.stderr}`);
    }
    const args = [
      "--json",
      "--repo",
      repo,
      ...command,
      "--signature-policy",
      file,
      "--registries.d",
      world.registriesD,
      ...(oci ? ["--tls-verify=false"] : PULL_FLAGS),
      c.ref,
    ];
    const r = await runCfs(args);
    const lines = r.text.trim().split("\n").filter((l) => l).map((l) => JSON.parse(l));
    const last = lines[lines.length - 1] ?? {};
    const why = `${c.name}: oracle ${
      JSON.stringify(oracle)
    }; cfs exit ${r.code}: ${r.text}${r.stderr}`;
    if (oracle.accepted) {
      equal(r.code, 0, why);
      ok(!last.error, why);
      return;
    }
    equal(r.code, 4, why);
    equal(last.error?.code, "signature-rejected", why);
    equal(last.error?.exitCode, 4, why);
    ok(last.error.message.includes(file), `the message names the policy file: ${why}`);
    if (await pathExists(join(repo, "meta.json"))) {
      equal((await tagsOf(repo)).length, 0, `no tag written: ${why}`);
      const fsck = await runCfs(["--repo", repo, "fsck"]);
      equal(fsck.code, 0, `fsck after the rejection: ${fsck.text}${fsck.stderr}`);
    }
  };
  for (const { c, file, oracle } of decided) {
    await t.step(`cfs pull: ${c.name}`, () => cfsDecides(c, file, oracle, ["pull"]));
    if (c.ociPull) {
      await t.step(`cfs oci pull: ${c.name}`, () => cfsDecides(c, file, oracle, ["oci", "pull"]));
    }
  }
});
