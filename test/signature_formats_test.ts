/**
 * The signature formats and their sources (lib/signature/simple.ts, sigstore.ts, sources.ts),
 * against real tools: GPG keys made by `gpg`, simple signatures made by `skopeo standalone-sign`,
 * `skopeo copy --sign-by` and `gpg --sign`, with `skopeo standalone-verify` (skopeo 1.9.3, GPGME)
 * deciding alongside; sigstore signatures made by `openssl` (ECDSA, RSA, Ed25519) over payloads
 * laid out as cosign writes them; a real registry (Debian's docker-registry) holding images
 * pushed by skopeo, lookaside signatures written by skopeo into a file:// directory, served
 * again over HTTP, and a `sha256-HEX.sig` attachment manifest pushed by skopeo.
 *
 * Host tier: needs gpg, skopeo, openssl, sha256sum and docker-registry.
 *
 * @module
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import {
  parseSimplePayload,
  SignatureError,
  verifySimpleSignature,
} from "../lib/signature/simple.ts";
import {
  parseSigstorePayload,
  SIGSTORE_SIGNATURE_ANNOTATION,
  SIGSTORE_SIGNATURE_MEDIA_TYPE,
  verifySigstoreSignature,
} from "../lib/signature/sigstore.ts";
import {
  dockerSignatures,
  lookasideSignatureLocation,
  signatureFromBlob,
  SignatureSourceError,
} from "../lib/signature/sources.ts";
import {
  loadRegistriesD,
  loadYamlParser,
  mergeRegistriesD,
} from "../lib/signature/registries_d.ts";
import { RegistryClient } from "../lib/oci/registry.ts";
import { parseDockerReference } from "../lib/oci/reference.ts";
import { buildOciImage, CommandError, run, sha256sum } from "./fixtures/oci.ts";
import { startRegistry } from "./fixtures/registry.ts";

// mergeRegistriesD is called directly below; its YAML parser is imported lazily.
await loadYamlParser();
const TMP = await Deno.makeTempDir({ prefix: "cfs-sigformats-" });
const HOMES: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const home of HOMES) {
    new Deno.Command("gpgconf", { args: ["--homedir", home, "--kill", "gpg-agent"] }).outputSync();
  }
  Deno.removeSync(TMP, { recursive: true });
});

const enc = new TextEncoder();
const read = (path: string) => Deno.readFileSync(path);

/** Runs a command with extra environment; returns whether it succeeded, and its stderr. */
async function attempt(argv: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { ok: out.success, stderr: new TextDecoder().decode(out.stderr) };
}

async function runEnv(argv: string[], env: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new CommandError(argv, out.code, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

// --- GPG world --------------------------------------------------------------------------------

interface Key {
  fpr: string;
  home: string;
  /** `gpg --export` (binary) and `--export --armor`, as files. */
  binary: string;
  armored: string;
}

async function gpgHome(name: string, conf = ""): Promise<string> {
  const home = join(TMP, name);
  await Deno.mkdir(home, { mode: 0o700 });
  if (conf) await Deno.writeTextFile(join(home, "gpg.conf"), conf);
  HOMES.push(home);
  return home;
}

async function genKey(home: string, name: string, expire = "never"): Promise<Key> {
  const uid = `${name} <${name}@cfs.test>`;
  const gpg = ["gpg", "--homedir", home, "--batch"];
  await run([...gpg, "--passphrase", "", "--quick-gen-key", uid, "default", "default", expire]);
  const colons = await run([...gpg, "--with-colons", "--list-keys", `=${uid}`]);
  const fpr = colons.split("\n").find((l) => l.startsWith("fpr:"))!.split(":")[9];
  const binary = join(TMP, `${name}.gpg`);
  const armored = join(TMP, `${name}.asc`);
  await run([...gpg, "--output", binary, "--export", fpr]);
  await run([...gpg, "--armor", "--output", armored, "--export", fpr]);
  return { fpr, home, binary, armored };
}

/** `gpg --sign` of `payload` by the given keys, as a binary (compressed) message. */
async function gpgSign(home: string, fprs: string[], payload: Uint8Array): Promise<Uint8Array> {
  const input = await Deno.makeTempFile({ dir: TMP });
  await Deno.writeFile(input, payload);
  const out = `${input}.sig`;
  await run([
    "gpg",
    "--homedir",
    home,
    "--batch",
    "--yes",
    ...fprs.flatMap((f) => ["--local-user", f]),
    "--output",
    out,
    "--sign",
    input,
  ]);
  return read(out);
}

interface World {
  main: string;
  alice: Key;
  bob: Key;
  /** A key whose signing is done by a subkey. */
  sub: Key;
  /** Revoked after it signed {@link revokedSig}. */
  revoked: Key;
  revokedSig: Uint8Array;
  /** Valid for a day in 2020 (gpg with a faked clock), signed then. */
  expired: Key;
  expiredSig: Uint8Array;
  /** A non-expiring key's signature that itself expired in 2020. */
  oldSigKey: Key;
  oldSig: Uint8Array;
  manifest: string;
  manifestDigest: string;
  reference: string;
  /** `skopeo standalone-sign` by alice. */
  aliceSig: Uint8Array;
}

let worldPromise: Promise<World> | undefined;

/** A payload in simple signing's layout (the form skopeo writes), for gpg to sign. */
function simplePayload(digest: string, reference: string): Uint8Array {
  return enc.encode(JSON.stringify({
    critical: {
      identity: { "docker-reference": reference },
      image: { "docker-manifest-digest": digest },
      type: "atomic container signature",
    },
    optional: { creator: "test", timestamp: 1700000000 },
  }));
}

function world(): Promise<World> {
  return worldPromise ??= (async () => {
    const main = await gpgHome("gnupg");
    const alice = await genKey(main, "alice");
    const bob = await genKey(main, "bob");
    const sub = await genKey(main, "sub");
    await run([
      "gpg",
      "--homedir",
      main,
      "--batch",
      "--passphrase",
      "",
      "--quick-add-key",
      sub.fpr,
      "ed25519",
      "sign",
      "never",
    ]);
    await run([
      "gpg",
      "--homedir",
      main,
      "--batch",
      "--yes",
      "--output",
      sub.binary,
      "--export",
      sub.fpr,
    ]);
    const manifest = join(TMP, "manifest.json");
    await Deno.writeTextFile(manifest, '{"schemaVersion":2,"config":{},"layers":[]}\n');
    const manifestDigest = await sha256sum(manifest);
    const reference = "registry.example.com/team/app:v1";
    const aliceSigPath = join(TMP, "alice.sig");
    await runEnv(
      ["skopeo", "standalone-sign", manifest, reference, alice.fpr, "-o", aliceSigPath],
      { GNUPGHOME: main },
    );

    const revoked = await genKey(main, "revoked");
    const revokedSig = await gpgSign(main, [revoked.fpr], simplePayload(manifestDigest, reference));
    const rev = await Deno.readTextFile(join(main, "openpgp-revocs.d", `${revoked.fpr}.rev`));
    const cert = join(TMP, "revoked.rev");
    // gpg guards the stored certificate with a ':' before its armor line.
    await Deno.writeTextFile(cert, rev.replace(/^:-----BEGIN/m, "-----BEGIN"));
    await run(["gpg", "--homedir", main, "--batch", "--import", cert]);
    await run([
      "gpg",
      "--homedir",
      main,
      "--batch",
      "--yes",
      "--output",
      revoked.binary,
      "--export",
      revoked.fpr,
    ]);

    const past = await gpgHome("gnupg-2020", "faked-system-time 20200101T120000\n");
    const expired = await genKey(past, "expired", "1d");
    const expiredSig = await gpgSign(past, [expired.fpr], simplePayload(manifestDigest, reference));
    const oldSigKey = await genKey(past, "oldsig");
    const input = join(TMP, "oldsig.json");
    await Deno.writeFile(input, simplePayload(manifestDigest, reference));
    await run([
      "gpg",
      "--homedir",
      past,
      "--batch",
      "--yes",
      "--default-sig-expire",
      "1d",
      "--local-user",
      oldSigKey.fpr,
      "--output",
      `${input}.sig`,
      "--sign",
      input,
    ]);
    return {
      main,
      alice,
      bob,
      sub,
      revoked,
      revokedSig,
      expired,
      expiredSig,
      oldSigKey,
      oldSig: read(`${input}.sig`),
      manifest,
      manifestDigest,
      reference,
      aliceSig: read(aliceSigPath),
    };
  })();
}

/**
 * skopeo's verdict (standalone-verify, GPGME) on `sig` with only `key`'s public key known:
 * a fresh GPG home with that key imported.
 */
async function skopeoVerifies(w: World, key: Key, sig: Uint8Array): Promise<boolean> {
  const home = await Deno.makeTempDir({ dir: TMP, prefix: "verify-" });
  await Deno.chmod(home, 0o700);
  HOMES.push(home);
  await run(["gpg", "--homedir", home, "--batch", "--import", key.binary]);
  const sigPath = join(home, "sig");
  await Deno.writeFile(sigPath, sig);
  const r = await attempt(
    ["skopeo", "standalone-verify", w.manifest, w.reference, key.fpr, sigPath],
    { GNUPGHOME: home },
  );
  return r.ok;
}

async function refusedSimple(
  sig: Uint8Array,
  rings: Uint8Array[],
  pattern: RegExp,
): Promise<void> {
  await rejects(verifySimpleSignature(sig, rings), (e: unknown) => {
    ok(e instanceof SignatureError, String(e));
    equal(e.code, "signature-invalid");
    equal(e.exitCode, 1);
    ok(!e.message.includes("\n"), e.message);
    match(e.message, pattern);
    return true;
  });
}

// --- simple signing ---------------------------------------------------------------------------

Deno.test("simple: skopeo standalone-sign's signature verifies (armored and binary rings), as skopeo says", async () => {
  const w = await world();
  ok(await skopeoVerifies(w, w.alice, w.aliceSig), "skopeo standalone-verify refused it");
  for (const ring of [read(w.alice.binary), read(w.alice.armored)]) {
    const claims = await verifySimpleSignature(w.aliceSig, [ring]);
    deepEqual(claims, {
      dockerReference: w.reference,
      manifestDigest: w.manifestDigest,
      keyIdentity: w.alice.fpr,
    });
  }
  // Several keys in one ring, in any order, and several rings.
  const both = join(TMP, "both.gpg");
  await run([
    "gpg",
    "--homedir",
    w.main,
    "--batch",
    "--yes",
    "--output",
    both,
    "--export",
    w.bob.fpr,
    w.alice.fpr,
  ]);
  equal((await verifySimpleSignature(w.aliceSig, [read(both)])).keyIdentity, w.alice.fpr);
  equal(
    (await verifySimpleSignature(w.aliceSig, [read(w.bob.armored), read(w.alice.binary)]))
      .keyIdentity,
    w.alice.fpr,
  );
});

Deno.test("simple: a signature by a key not in the rings is refused, naming the key id", async () => {
  const w = await world();
  ok(!(await skopeoVerifies(w, w.bob, w.aliceSig)));
  await refusedSimple(w.aliceSig, [read(w.bob.binary)], new RegExp(w.alice.fpr.slice(-16)));
});

Deno.test("simple: tampered signatures are refused, as skopeo refuses them", async () => {
  const w = await world();
  // Flip one bit in each of a spread of places: the compressed payload, the signature MPIs.
  let tried = 0;
  for (const at of [20, 40, Math.floor(w.aliceSig.length / 2), w.aliceSig.length - 30]) {
    const bad = w.aliceSig.slice();
    bad[at] ^= 0x01;
    tried++;
    equal(await skopeoVerifies(w, w.alice, bad), false, `skopeo accepted a flip at ${at}`);
    await refusedSimple(bad, [read(w.alice.binary)], /./);
  }
  equal(tried, 4);
  // A payload signed by gpg, then the literal data swapped for another of the same length is
  // covered by the flips above; a truncated message too:
  await refusedSimple(w.aliceSig.subarray(0, w.aliceSig.length - 10), [read(w.alice.binary)], /./);
});

Deno.test("simple: unsigned, doubly signed, garbage and empty messages are refused", async () => {
  const w = await world();
  const payload = simplePayload(w.manifestDigest, w.reference);
  const input = join(TMP, "store.json");
  await Deno.writeFile(input, payload);
  await run([
    "gpg",
    "--homedir",
    w.main,
    "--batch",
    "--yes",
    "--output",
    `${input}.gpg`,
    "--store",
    input,
  ]);
  await refusedSimple(read(`${input}.gpg`), [read(w.alice.binary)], /not signed/);

  const double = await gpgSign(w.main, [w.alice.fpr, w.bob.fpr], payload);
  ok(!(await skopeoVerifies(w, w.alice, double)), "skopeo accepted two signatures");
  await refusedSimple(double, [read(w.alice.binary), read(w.bob.binary)], /2 signatures/);

  await refusedSimple(crypto.getRandomValues(new Uint8Array(300)), [read(w.alice.binary)], /./);
  await refusedSimple(new Uint8Array(0), [read(w.alice.binary)], /./);
  await refusedSimple(w.aliceSig, [enc.encode("not a key")], /key ring 1 of 1/);
  await refusedSimple(w.aliceSig, [], /no public keys/);
});

Deno.test("simple: expired and revoked keys and an expired signature are refused, as skopeo refuses them", async () => {
  const w = await world();
  ok(!(await skopeoVerifies(w, w.expired, w.expiredSig)), "skopeo accepted the expired key");
  await refusedSimple(w.expiredSig, [read(w.expired.binary)], /not valid now: .*expired/i);

  ok(!(await skopeoVerifies(w, w.revoked, w.revokedSig)), "skopeo accepted the revoked key");
  await refusedSimple(w.revokedSig, [read(w.revoked.binary)], /revoked/i);

  ok(!(await skopeoVerifies(w, w.oldSigKey, w.oldSig)), "skopeo accepted the expired signature");
  await refusedSimple(w.oldSig, [read(w.oldSigKey.binary)], /expired/i);
});

Deno.test("simple: a signature by a signing subkey is refused, as skopeo names the subkey", async () => {
  const w = await world();
  const sigPath = join(TMP, "sub.sig");
  await runEnv(
    ["skopeo", "standalone-sign", w.manifest, w.reference, w.sub.fpr, "-o", sigPath],
    { GNUPGHOME: w.main },
  );
  const r = await attempt(
    ["skopeo", "standalone-verify", w.manifest, w.reference, w.sub.fpr, sigPath],
    { GNUPGHOME: w.main },
  );
  ok(!r.ok);
  const subkey = /Signature by ([0-9A-F]{40})/.exec(r.stderr)?.[1];
  ok(subkey !== undefined && subkey !== w.sub.fpr, r.stderr);
  await refusedSimple(
    read(sigPath),
    [read(w.sub.binary)],
    new RegExp(`key ${subkey} .*subkey of ${w.sub.fpr}`),
  );
});

Deno.test("simple: payloads are read as strictly as containers/image reads them", async () => {
  const w = await world();
  const d = w.manifestDigest;
  const good = (extra: object = {}) => ({
    critical: {
      type: "atomic container signature",
      image: { "docker-manifest-digest": d },
      identity: { "docker-reference": "r/x:1" },
    },
    optional: { creator: "c", timestamp: 1 },
    ...extra,
  });
  const accepted: [string, string][] = [
    ["skopeo's layout", JSON.stringify(good())],
    [
      "empty optional, unknown optional keys",
      JSON.stringify({ ...good(), optional: { x: [1, { y: null }] } }),
    ],
    ["white space around", `\n ${JSON.stringify(good())} \t\n`],
    [
      "null creator and timestamp (Go reads them as unset)",
      JSON.stringify({ ...good(), optional: { creator: null, timestamp: null } }),
    ],
    [
      "integral float timestamp",
      JSON.stringify(good()).replace('"timestamp":1', '"timestamp":1.0e3'),
    ],
  ];
  for (const [what, text] of accepted) {
    deepEqual(
      parseSimplePayload(enc.encode(text)),
      { manifestDigest: d, dockerReference: "r/x:1" },
      what,
    );
  }
  // null for a string field reads as the empty string: a claim that then matches nothing.
  deepEqual(
    parseSimplePayload(enc.encode(JSON.stringify(good()).replace(`"${d}"`, "null"))),
    { manifestDigest: "", dockerReference: "r/x:1" },
  );
  const refused: [string, string, RegExp][] = [
    ["optional missing", JSON.stringify({ critical: good().critical }), /"optional" missing/],
    [
      "optional null (only sigstore allows it)",
      JSON.stringify({ ...good(), optional: null }),
      /object expected/,
    ],
    ["unknown top-level key", JSON.stringify(good({ extra: 1 })), /unknown key "extra"/],
    [
      "unknown critical key",
      JSON.stringify({ ...good(), critical: { ...good().critical, new: 1 } }),
      /unknown key "new"/,
    ],
    [
      "critical.type of sigstore",
      JSON.stringify(good()).replace(
        "atomic container signature",
        "cosign container image signature",
      ),
      /unrecognized signature type/,
    ],
    [
      "image missing digest",
      JSON.stringify(good()).replace('"docker-manifest-digest"', '"digest"'),
      /unknown key "digest"/,
    ],
    [
      "identity with an extra key",
      JSON.stringify({
        ...good(),
        critical: { ...good().critical, identity: { "docker-reference": "a", x: 1 } },
      }),
      /unknown key "x"/,
    ],
    [
      "duplicate key",
      `{"critical":${JSON.stringify(good().critical)},"optional":{},"optional":{}}`,
      /duplicate key "optional"/,
    ],
    [
      "duplicate inside optional",
      `{"critical":${JSON.stringify(good().critical)},"optional":{"a":1,"a":2}}`,
      /duplicate key "a"/,
    ],
    ["data after the object", `${JSON.stringify(good())}{}`, /after the JSON object/],
    ["a byte order mark", `\ufeff${JSON.stringify(good())}`, /invalid JSON/],
    [
      "fractional timestamp",
      JSON.stringify({ ...good(), optional: { timestamp: 1.5 } }),
      /not an integer/,
    ],
    [
      "timestamp beyond int64",
      JSON.stringify({ ...good(), optional: { timestamp: 1e19 } }),
      /not an integer/,
    ],
    [
      "string timestamp",
      JSON.stringify({ ...good(), optional: { timestamp: "1" } }),
      /number expected/,
    ],
    ["number creator", JSON.stringify({ ...good(), optional: { creator: 1 } }), /string expected/],
    [
      "number out of float range",
      JSON.stringify({ ...good(), optional: { x: 1 } }).replace('"x":1', '"x":1e400'),
      /out of range/,
    ],
    [
      "number type",
      JSON.stringify(good()).replace('"atomic container signature"', "5"),
      /string expected/,
    ],
    [
      "critical as an array",
      JSON.stringify({ ...good(), critical: [] }),
      /object expected, got an array/,
    ],
    ["not JSON", "{critical:1}", /invalid JSON/],
    ["truncated", JSON.stringify(good()).slice(0, -1), /invalid JSON/],
    ["top level array", "[]", /object expected/],
    [
      "deep nesting",
      `{"critical":{},"optional":{"x":${"[".repeat(20000)}${"]".repeat(20000)}}}`,
      /nested deeper/,
    ],
  ];
  for (const [what, text, pattern] of refused) {
    try {
      parseSimplePayload(enc.encode(text));
      ok(false, `${what}: accepted`);
    } catch (e) {
      ok(e instanceof SignatureError, `${what}: ${e}`);
      match(e.message, pattern, what);
    }
  }
  // Deep but within Go's 10000 levels is fine inside `optional`.
  const deep = `{"critical":${JSON.stringify(good().critical)},"optional":{"x":${"[".repeat(5000)}${
    "]".repeat(5000)
  }}}`;
  equal(parseSimplePayload(enc.encode(deep)).manifestDigest, d);
});

// --- sigstore ---------------------------------------------------------------------------------

/** A payload as cosign and containers/image write it (`optional` null when no annotations). */
function sigstorePayload(digest: string, reference: string, optional: unknown = null): Uint8Array {
  return enc.encode(JSON.stringify({
    critical: {
      identity: { "docker-reference": reference },
      image: { "docker-manifest-digest": digest },
      type: "cosign container image signature",
    },
    optional,
  }));
}

interface OpensslKey {
  priv: string;
  pub: string;
}

async function opensslKey(name: string, genArgs: string[]): Promise<OpensslKey> {
  const priv = join(TMP, `${name}.key`);
  const pub = join(TMP, `${name}.pub`);
  await run(["openssl", ...genArgs, "-out", priv]);
  await run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub]);
  return { priv, pub };
}

async function payloadFile(payload: Uint8Array): Promise<string> {
  const path = await Deno.makeTempFile({ dir: TMP, suffix: ".json" });
  await Deno.writeFile(path, payload);
  return path;
}

/** `openssl dgst -HASH -sign` (DER for ECDSA, PKCS #1 v1.5 for RSA), base64. */
async function opensslSign(key: OpensslKey, payload: Uint8Array, extra: string[] = []) {
  const input = await payloadFile(payload);
  await run([
    "openssl",
    "dgst",
    ...(extra.length ? extra : ["-sha256"]),
    "-sign",
    key.priv,
    "-out",
    `${input}.sig`,
    input,
  ]);
  return btoa(String.fromCharCode(...read(`${input}.sig`)));
}

/** `openssl pkeyutl -sign -rawin` (Ed25519), base64. */
async function opensslSignRaw(key: OpensslKey, payload: Uint8Array) {
  const input = await payloadFile(payload);
  await run([
    "openssl",
    "pkeyutl",
    "-sign",
    "-rawin",
    "-inkey",
    key.priv,
    "-in",
    input,
    "-out",
    `${input}.sig`,
  ]);
  return btoa(String.fromCharCode(...read(`${input}.sig`)));
}

let keysPromise: Promise<Record<string, OpensslKey>> | undefined;
function sigstoreKeys(): Promise<Record<string, OpensslKey>> {
  return keysPromise ??= (async () => ({
    p256: await opensslKey("p256", ["ecparam", "-genkey", "-name", "prime256v1", "-noout"]),
    p256b: await opensslKey("p256b", ["ecparam", "-genkey", "-name", "prime256v1", "-noout"]),
    p384: await opensslKey("p384", ["ecparam", "-genkey", "-name", "secp384r1", "-noout"]),
    p521: await opensslKey("p521", ["ecparam", "-genkey", "-name", "secp521r1", "-noout"]),
    k256: await opensslKey("k256", ["ecparam", "-genkey", "-name", "secp256k1", "-noout"]),
    ed25519: await opensslKey("ed25519", ["genpkey", "-algorithm", "ed25519"]),
    rsa: await opensslKey("rsa", [
      "genpkey",
      "-algorithm",
      "RSA",
      "-pkeyopt",
      "rsa_keygen_bits:2048",
    ]),
    x25519: await opensslKey("x25519", ["genpkey", "-algorithm", "x25519"]),
  }))();
}

const DIGEST = "sha256:" + "5".repeat(64);
const SIG_REF = "registry.example.com/team/app:v1";

async function refusedSigstore(
  payload: Uint8Array,
  annotations: Record<string, string>,
  pem: Uint8Array,
  pattern: RegExp,
) {
  await rejects(verifySigstoreSignature(payload, annotations, pem), (e: unknown) => {
    ok(e instanceof SignatureError, String(e));
    equal(e.code, "signature-invalid");
    ok(!e.message.includes("\n"), e.message);
    match(e.message, pattern);
    return true;
  });
}

Deno.test("sigstore: openssl signatures verify with ECDSA P-256/384/521 (SHA-256), RSA PKCS#1 v1.5 and Ed25519", async () => {
  const keys = await sigstoreKeys();
  const payload = sigstorePayload(DIGEST, SIG_REF);
  const cases: [string, string][] = [
    ["p256", await opensslSign(keys.p256, payload)],
    ["p384", await opensslSign(keys.p384, payload)],
    ["p521", await opensslSign(keys.p521, payload)],
    ["rsa", await opensslSign(keys.rsa, payload)],
    ["ed25519", await opensslSignRaw(keys.ed25519, payload)],
  ];
  for (const [name, sig] of cases) {
    deepEqual(
      await verifySigstoreSignature(
        payload,
        { [SIGSTORE_SIGNATURE_ANNOTATION]: sig },
        read(keys[name].pub),
      ),
      { manifestDigest: DIGEST, dockerReference: SIG_REF },
      name,
    );
  }
  // The annotation with line breaks (Go's base64 decoder skips them); other annotations ignored,
  // a certificate among them (containers/image 5.23 does not read it).
  const sig = cases[0][1];
  const wrapped = sig.replace(/(.{20})/g, "$1\n");
  await verifySigstoreSignature(payload, {
    [SIGSTORE_SIGNATURE_ANNOTATION]: wrapped,
    "dev.sigstore.cosign/certificate": "-----BEGIN CERTIFICATE-----\ngarbage\n",
    "dev.sigstore.cosign/bundle": "{}",
  }, read(keys.p256.pub));
  // A PEM file with text before the block, and another label, as Go's pem.Decode takes it.
  const pem = `comment line\n${
    (await Deno.readTextFile(keys.p256.pub)).replaceAll("PUBLIC KEY", "EC PUBLIC KEY")
  }`;
  await verifySigstoreSignature(payload, { [SIGSTORE_SIGNATURE_ANNOTATION]: sig }, enc.encode(pem));
  // optional may be null (cosign) or an object.
  const withOptional = sigstorePayload(DIGEST, SIG_REF, { creator: "x", "any": [1] });
  await verifySigstoreSignature(
    withOptional,
    { [SIGSTORE_SIGNATURE_ANNOTATION]: await opensslSign(keys.p256, withOptional) },
    read(keys.p256.pub),
  );
});

Deno.test("sigstore: tampered payloads, wrong keys, other digests and padding, garbage are refused", async () => {
  const keys = await sigstoreKeys();
  const payload = sigstorePayload(DIGEST, SIG_REF);
  const sig = await opensslSign(keys.p256, payload);
  const ann = { [SIGSTORE_SIGNATURE_ANNOTATION]: sig };
  const tampered = payload.slice();
  tampered[tampered.length - 5] ^= 1;
  await refusedSigstore(
    tampered,
    ann,
    read(keys.p256.pub),
    /verification failed \(ECDSA P-256 key\)/,
  );
  await refusedSigstore(payload, ann, read(keys.p256b.pub), /verification failed/);
  await refusedSigstore(
    payload,
    ann,
    read(keys.ed25519.pub),
    /verification failed \(Ed25519 key\)/,
  );
  await refusedSigstore(
    payload,
    ann,
    read(keys.rsa.pub),
    /verification failed \(RSA 2048-bit key\)/,
  );
  // containers/image hashes with SHA-256 whatever the curve: a P-384 signature over SHA-384 fails.
  await refusedSigstore(
    payload,
    { [SIGSTORE_SIGNATURE_ANNOTATION]: await opensslSign(keys.p384, payload, ["-sha384"]) },
    read(keys.p384.pub),
    /verification failed/,
  );
  // RSA-PSS is not PKCS #1 v1.5.
  await refusedSigstore(
    payload,
    {
      [SIGSTORE_SIGNATURE_ANNOTATION]: await opensslSign(keys.rsa, payload, [
        "-sha256",
        "-sigopt",
        "rsa_padding_mode:pss",
      ]),
    },
    read(keys.rsa.pub),
    /verification failed/,
  );
  // Ed25519 over a pre-hashed payload is not pure Ed25519 over the payload.
  const ed = await opensslSignRaw(keys.ed25519, enc.encode("other"));
  await refusedSigstore(
    payload,
    { [SIGSTORE_SIGNATURE_ANNOTATION]: ed },
    read(keys.ed25519.pub),
    /verification failed/,
  );
  // P-521 as well: SHA-512 is not what containers/image hashes with.
  await refusedSigstore(
    payload,
    { [SIGSTORE_SIGNATURE_ANNOTATION]: await opensslSign(keys.p521, payload, ["-sha512"]) },
    read(keys.p521.pub),
    /verification failed \(ECDSA P-521 key\)/,
  );
  // A good signature re-encoded as BER-ish DER (a needless leading zero on r): Go's VerifyASN1
  // parses strictly and refuses it; so must both ECDSA paths.
  for (const name of ["p256", "p521"]) {
    const good = Uint8Array.from(
      atob(await opensslSign(keys[name], payload)),
      (c) => c.charCodeAt(0),
    );
    const lengthBytes = good[1] & 0x80 ? 1 + (good[1] & 0x7f) : 1;
    const body = good.subarray(1 + lengthBytes);
    const rLen = body[1];
    const r = body.subarray(2, 2 + rLen);
    const rest = body.subarray(2 + rLen);
    const newBody = new Uint8Array([0x02, rLen + 1, 0, ...r, ...rest]);
    const seq = newBody.length < 128
      ? [0x30, newBody.length, ...newBody]
      : [0x30, 0x81, newBody.length, ...newBody];
    await refusedSigstore(
      payload,
      { [SIGSTORE_SIGNATURE_ANNOTATION]: btoa(String.fromCharCode(...seq)) },
      read(keys[name].pub),
      /verification failed/,
    );
    // and trailing bytes after the sequence
    await refusedSigstore(
      payload,
      { [SIGSTORE_SIGNATURE_ANNOTATION]: btoa(String.fromCharCode(...good, 0)) },
      read(keys[name].pub),
      /verification failed/,
    );
  }
  // Annotation problems.
  await refusedSigstore(
    payload,
    {},
    read(keys.p256.pub),
    /missing dev\.cosignproject\.cosign\/signature/,
  );
  await refusedSigstore(
    payload,
    { [SIGSTORE_SIGNATURE_ANNOTATION]: "not base64!" },
    read(keys.p256.pub),
    /not standard base64/,
  );
  await refusedSigstore(
    payload,
    { [SIGSTORE_SIGNATURE_ANNOTATION]: sig.replace(/=+$/, "") + (sig.endsWith("=") ? "" : "A") },
    read(keys.p256.pub),
    /base64|verification/,
  );
  await refusedSigstore(
    payload,
    { [SIGSTORE_SIGNATURE_ANNOTATION]: "" },
    read(keys.p256.pub),
    /verification failed/,
  );
  await refusedSigstore(
    payload,
    { [SIGSTORE_SIGNATURE_ANNOTATION]: btoa("x".repeat(72)) },
    read(keys.p256.pub),
    /verification failed/,
  );
  // Key problems.
  await refusedSigstore(payload, ann, enc.encode("no pem here"), /no PEM block/);
  await refusedSigstore(
    payload,
    ann,
    enc.encode("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
    /not a SubjectPublicKeyInfo/,
  );
  await refusedSigstore(payload, ann, read(keys.x25519.pub), /unsupported public key type x25519/);
  await refusedSigstore(payload, ann, read(keys.k256.pub), /unsupported elliptic curve secp256k1/);
  // A valid signature over a payload that is not a sigstore payload.
  const simple = simplePayload(DIGEST, SIG_REF);
  await refusedSigstore(
    simple,
    { [SIGSTORE_SIGNATURE_ANNOTATION]: await opensslSign(keys.p256, simple) },
    read(keys.p256.pub),
    /unrecognized signature type "atomic container signature"/,
  );
  const extra = enc.encode(
    JSON.stringify({
      critical: {
        type: "cosign container image signature",
        image: { "docker-manifest-digest": DIGEST },
        identity: { "docker-reference": SIG_REF },
        x: 1,
      },
      optional: null,
    }),
  );
  await refusedSigstore(
    extra,
    { [SIGSTORE_SIGNATURE_ANNOTATION]: await opensslSign(keys.p256, extra) },
    read(keys.p256.pub),
    /unknown key "x"/,
  );
  equal(parseSigstorePayload(sigstorePayload(DIGEST, SIG_REF)).dockerReference, SIG_REF);
});

// --- sources ----------------------------------------------------------------------------------

Deno.test("sources: lookaside locations as containers/image builds them", () => {
  const ref = parseDockerReference("reg.example.com:5000/ns/app:v1");
  const d = "sha256:" + "ab".repeat(32);
  deepEqual(lookasideSignatureLocation("file:///var/lib/sigs", ref, d, 1), {
    kind: "file",
    path: `/var/lib/sigs/ns/app@sha256=${"ab".repeat(32)}/signature-1`,
    origin: `/var/lib/sigs/ns/app@sha256=${"ab".repeat(32)}/signature-1`,
  });
  equal(
    (lookasideSignatureLocation("file:///my%20sigs/", ref, d, 2) as { path: string }).path,
    `/my sigs//ns/app@sha256=${"ab".repeat(32)}/signature-2`,
  );
  const http = lookasideSignatureLocation("https://user:pw@s.example/base?x=1", ref, d, 3);
  equal(http.kind, "http");
  equal(
    (http as { url: URL }).url.href,
    `https://user:pw@s.example/base/ns/app@sha256=${"ab".repeat(32)}/signature-3?x=1`,
  );
  ok(!http.origin.includes("pw"), http.origin);
  for (const bad of ["/plain/path", "ftp://x/y", "not a url"]) {
    try {
      lookasideSignatureLocation(bad, ref, d, 1);
      ok(false, bad);
    } catch (e) {
      ok(e instanceof SignatureSourceError && e.code === "signature-source-failed", String(e));
    }
  }
});

Deno.test("sources: lookaside blobs are recognized as containers/image's FromBlob does", () => {
  const simple = signatureFromBlob(new Uint8Array([0xa3, 1, 2]), "o");
  equal(simple.kind, "simple");
  const framed = signatureFromBlob(enc.encode("\0simple-signing\n\xc4abc"), "o");
  deepEqual(framed.kind === "simple" ? [...framed.bytes] : [], [...enc.encode("\xc4abc")]);
  const sj = signatureFromBlob(
    enc.encode(
      `\0sigstore-json\n${
        JSON.stringify({ mimeType: "m", payload: btoa("p"), annotations: { a: "b" } })
      }`,
    ),
    "o",
  );
  deepEqual(sj, {
    kind: "sigstore",
    payload: enc.encode("p"),
    annotations: { a: "b" },
    mediaType: "m",
    origin: "o",
  });
  for (
    const [bad, pattern] of [
      [new Uint8Array(0), /empty/],
      [enc.encode("-----BEGIN PGP MESSAGE-----"), /starting with byte 0x2d/],
      [enc.encode("\0simple-signing"), /missing newline/],
      [enc.encode("\0other\nx"), /unrecognized signature format "other"/],
      [new Uint8Array([0, 1, 10]), /non-ASCII/],
      [enc.encode("\0sigstore-json\n[]"), /not a JSON object/],
      [enc.encode('\0sigstore-json\n{"annotations":{"a":1}}'), /not a string/],
    ] as [Uint8Array, RegExp][]
  ) {
    try {
      signatureFromBlob(bad, "where");
      ok(false, String(pattern));
    } catch (e) {
      ok(e instanceof SignatureSourceError, String(e));
      match(e.message, pattern);
      match(e.message, /where/);
    }
  }
});

/** Every file under `dir`, relative path → bytes. */
async function filesUnder(dir: string, prefix = ""): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) { for (const [k, v] of await filesUnder(dir, rel)) out.set(k, v); }
    else out.set(rel, read(join(dir, rel)));
  }
  return out;
}

Deno.test({
  name:
    "sources: lookaside signatures written by skopeo copy --sign-by, read from file:// and http://",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const w = await world();
    await using registry = await startRegistry();
    const image = await buildOciImage(join(TMP, "img"), {
      tag: "v1",
      layers: [[{ type: "file", path: "etc/hello", content: "signed\n" }]],
    });
    const lookaside = join(TMP, "lookaside");
    await Deno.mkdir(lookaside);
    const rd = join(TMP, "registries.d");
    await Deno.mkdir(rd);
    await Deno.writeTextFile(
      join(rd, "test.yaml"),
      `docker:\n  ${registry.host}:\n    lookaside: file://${lookaside}\n`,
    );
    const env = { GNUPGHOME: w.main };
    const one = `docker://${registry.host}/sig/one:v1`;
    const two = `docker://${registry.host}/sig/two:v1`;
    await runEnv([
      "skopeo",
      "copy",
      "--quiet",
      "--registries.d",
      rd,
      "--dest-tls-verify=false",
      "--sign-by",
      w.alice.fpr,
      `oci:${image.dir}:v1`,
      one,
    ], env);
    // Copying the signed image on, signed again: the copy keeps alice's and adds bob's.
    await runEnv([
      "skopeo",
      "copy",
      "--quiet",
      "--registries.d",
      rd,
      "--src-tls-verify=false",
      "--dest-tls-verify=false",
      "--sign-by",
      w.bob.fpr,
      one,
      two,
    ], env);
    const inspected = JSON.parse(
      await run(["skopeo", "inspect", "--tls-verify=false", "--registries.d", rd, two]),
    );
    const digest: string = inspected.Digest;
    const hex = digest.slice("sha256:".length);
    const written = await filesUnder(lookaside);
    deepEqual([...written.keys()].sort(), [
      `sig/one@sha256=${hex}/signature-1`,
      `sig/two@sha256=${hex}/signature-1`,
      `sig/two@sha256=${hex}/signature-2`,
    ]);

    const client = new RegistryClient(registry.host, { tlsVerify: false });
    const registriesD = await loadRegistriesD(rd);
    const fetchTwo = (ref: string, config = registriesD, requestTimeoutMs?: number) =>
      dockerSignatures({
        client,
        reference: parseDockerReference(ref),
        manifestDigest: digest,
        registriesD: config,
        requestTimeoutMs,
      });
    for (const ref of [`${registry.host}/sig/two:v1`, `${registry.host}/sig/two@${digest}`]) {
      const sigs = await fetchTwo(ref);
      deepEqual(
        sigs.map((s) => s.kind === "simple" ? [...s.bytes] : []),
        [1, 2].map((n) => [...written.get(`sig/two@sha256=${hex}/signature-${n}`)!]),
      );
      ok(sigs[0].origin.endsWith(`sig/two@sha256=${hex}/signature-1`), sigs[0].origin);
      const claims = await Promise.all(
        sigs.map((s) =>
          verifySimpleSignature(s.kind === "simple" ? s.bytes : new Uint8Array(), [
            read(w.alice.binary),
            read(w.bob.binary),
          ])
        ),
      );
      deepEqual(claims.map((c) => c.keyIdentity), [w.alice.fpr, w.bob.fpr]);
      for (const c of claims) {
        equal(c.manifestDigest, digest);
        equal(
          c.dockerReference,
          `${registry.host}/sig/${c.keyIdentity === w.alice.fpr ? "one" : "two"}:v1`,
        );
      }
    }
    // An image without signatures: none (the first file is missing).
    deepEqual(await fetchTwo(`${registry.host}/sig/three:v1`), []);
    // A directory where a signature should be is an error, not the end of the list.
    await Deno.mkdir(join(lookaside, `sig/two@sha256=${hex}/signature-3`));
    await rejects(
      fetchTwo(`${registry.host}/sig/two:v1`),
      (e: unknown) =>
        e instanceof SignatureSourceError && /signature-3: not a file/.test(e.message),
    );
    await Deno.remove(join(lookaside, `sig/two@sha256=${hex}/signature-3`));

    // The same directory served over HTTP, and servers that misbehave.
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      const [, mode, ...rest] = path.split("/");
      const rel = rest.join("/");
      if (mode === "fail" && rel.endsWith("signature-2")) {
        return new Response("no", { status: 500 });
      }
      if (mode === "big") return new Response(new Uint8Array(5 * 1024 * 1024).fill(0xa3));
      if (mode === "hang") {
        return new Response(
          new ReadableStream({
            start(c) {
              c.enqueue(new Uint8Array([0xa3]));
            },
          }),
        );
      }
      if (mode === "redirect") {
        return Response.redirect(`http://${req.headers.get("host")}/ok/${rel}`, 302);
      }
      try {
        return new Response(await Deno.readFile(join(lookaside, rel)));
      } catch {
        return new Response("not here", { status: 404 });
      }
    });
    try {
      const base = `http://127.0.0.1:${server.addr.port}`;
      const over = (mode: string) =>
        mergeRegistriesD("/mem", [{
          path: "/mem/x.yaml",
          text: `docker:\n  ${registry.host}:\n    lookaside: ${base}/${mode}\n`,
        }]);
      for (const mode of ["ok", "redirect"]) {
        const sigs = await fetchTwo(`${registry.host}/sig/two:v1`, over(mode));
        deepEqual(
          sigs.map((s) => s.kind === "simple" ? [...s.bytes] : []),
          [1, 2].map((n) => [...written.get(`sig/two@sha256=${hex}/signature-${n}`)!]),
          mode,
        );
      }
      await rejects(
        fetchTwo(`${registry.host}/sig/two:v1`, over("fail")),
        (e: unknown) =>
          e instanceof SignatureSourceError && e.code === "signature-source-failed" &&
          /signature-2: status 500/.test(e.message),
      );
      await rejects(
        fetchTwo(`${registry.host}/sig/two:v1`, over("big")),
        /over the 4194304-byte limit/,
      );
      const started = performance.now();
      await rejects(
        fetchTwo(`${registry.host}/sig/two:v1`, over("hang"), 500),
        /did not arrive within 500 ms/,
      );
      ok(performance.now() - started < 5000);
    } finally {
      await server.shutdown();
    }
  },
});

Deno.test({
  name:
    "sources: sigstore attachments pushed by skopeo, enabled by registries.d, verified with openssl's key",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const keys = await sigstoreKeys();
    await using registry = await startRegistry();
    const image = await buildOciImage(join(TMP, "img-att"), {
      tag: "v1",
      layers: [[{ type: "file", path: "etc/att", content: "attached\n" }]],
    });
    const ref = `${registry.host}/att/app:v1`;
    await run([
      "skopeo",
      "copy",
      "--quiet",
      "--dest-tls-verify=false",
      `oci:${image.dir}:v1`,
      `docker://${ref}`,
    ]);
    const digest: string =
      JSON.parse(await run(["skopeo", "inspect", "--tls-verify=false", `docker://${ref}`])).Digest;

    // The attachment manifest, as cosign lays it out, in an OCI layout of our own; skopeo pushes it.
    const payload = sigstorePayload(digest, ref);
    const sig = await opensslSign(keys.p256, payload);
    const layout = join(TMP, "att-layout");
    await Deno.mkdir(join(layout, "blobs/sha256"), { recursive: true });
    const blob = async (bytes: Uint8Array) => {
      const tmp = await payloadFile(bytes);
      const d = await sha256sum(tmp);
      await Deno.writeFile(join(layout, "blobs/sha256", d.slice(7)), bytes);
      return { digest: d, size: bytes.length };
    };
    const payloadBlob = await blob(payload);
    const other = await blob(enc.encode('{"predicate":"not a signature"}'));
    const config = await blob(enc.encode(JSON.stringify({
      architecture: "",
      os: "",
      config: {},
      rootfs: { type: "layers", diff_ids: [payloadBlob.digest, other.digest] },
    })));
    const manifest = enc.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: [
        {
          mediaType: SIGSTORE_SIGNATURE_MEDIA_TYPE,
          ...payloadBlob,
          annotations: { [SIGSTORE_SIGNATURE_ANNOTATION]: sig },
        },
        { mediaType: "application/vnd.dsse.envelope.v1+json", ...other },
      ],
    }));
    const manifestBlob = await blob(manifest);
    await Deno.writeTextFile(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    await Deno.writeTextFile(
      join(layout, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifestBlob,
          annotations: { "org.opencontainers.image.ref.name": "sig" },
        }],
      }),
    );
    const tag = `${digest.replace(":", "-")}.sig`;
    await run([
      "skopeo",
      "copy",
      "--quiet",
      "--preserve-digests",
      "--dest-tls-verify=false",
      `oci:${layout}:sig`,
      `docker://${registry.host}/att/app:${tag}`,
    ]);

    const rd = join(TMP, "registries.d-att");
    await Deno.mkdir(rd);
    await Deno.writeTextFile(
      join(rd, "a.yaml"),
      `docker:\n  ${registry.host}/att:\n    use-sigstore-attachments: true\n    lookaside: file://${
        join(TMP, "no-lookaside")
      }\n`,
    );
    const client = new RegistryClient(registry.host, { tlsVerify: false });
    const sigs = await dockerSignatures({
      client,
      reference: parseDockerReference(ref),
      manifestDigest: digest,
      registriesD: await loadRegistriesD(rd),
    });
    equal(sigs.length, 2);
    const [first, second] = sigs;
    ok(first.kind === "sigstore" && second.kind === "sigstore");
    deepEqual([...first.payload], [...payload]);
    deepEqual(first.annotations, { [SIGSTORE_SIGNATURE_ANNOTATION]: sig });
    equal(first.mediaType, SIGSTORE_SIGNATURE_MEDIA_TYPE);
    equal(second.mediaType, "application/vnd.dsse.envelope.v1+json");
    match(first.origin, new RegExp(`att/app:${tag} layer 1`));
    deepEqual(
      await verifySigstoreSignature(first.payload, { ...first.annotations }, read(keys.p256.pub)),
      { manifestDigest: digest, dockerReference: ref },
    );

    // Attachments off (no scope says so): nothing fetched from the registry.
    const off = mergeRegistriesD("/mem", [{
      path: "/mem/a.yaml",
      text: `docker:\n  ${registry.host}:\n    lookaside: file://${join(TMP, "no-lookaside")}\n`,
    }]);
    deepEqual(
      await dockerSignatures({
        client,
        reference: parseDockerReference(ref),
        manifestDigest: digest,
        registriesD: off,
      }),
      [],
    );
    // Another image in the repository has no attachment manifest: none, not an error.
    deepEqual(
      await dockerSignatures({
        client,
        reference: parseDockerReference(ref),
        manifestDigest: "sha256:" + "0".repeat(64),
        registriesD: await loadRegistriesD(rd),
      }),
      [],
    );
  },
});
