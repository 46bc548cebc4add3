/**
 * "Simple signing" (containers-signature(5)): a GPG signature is an OpenPGP signed message
 * (binary, usually compressed) whose literal data is the JSON payload of payload.ts with
 * `critical.type` `atomic container signature`. This is the `signedBy` requirement's format and
 * what `skopeo copy --sign-by` and `skopeo standalone-sign` write.
 *
 * Verification is OpenPGP.js's; what is accepted follows what skopeo 1.9.3 accepts. That skopeo
 * is built with GPGME (containers/image's `mechanism_gpgme.go`, not the pure-Go
 * `mechanism_openpgp.go` fallback), so gpg's own verdict is the reference:
 * - exactly one signature: a message signed by two keys is refused even when both are trusted
 *   (GPGME reports two signatures and containers/image wants one), an unsigned message too;
 * - the signing key must be in the key rings, must verify, and must be usable for signing
 *   *now*: gpg reports a key that has expired or been revoked since it signed (EXPKEYSIG,
 *   REVKEYSIG) and containers/image refuses that; OpenPGP.js alone would judge the key at the
 *   signature's creation time, so cfs adds the check at the current time. An expired signature
 *   is refused too;
 * - the key identity is the fingerprint of the key that made the signature. GPGME names a
 *   signing subkey by the subkey's own fingerprint, which is never among the trusted
 *   identities (those are the primary keys' fingerprints), so a signature made by a subkey is
 *   refused: skopeo says "Signature by key SUBKEY is not accepted", and so does cfs;
 * - message hash algorithms: gpg 2.2 accepts SHA-1 and refuses MD5, so cfs lifts OpenPGP.js's
 *   refusal of SHA-1 and RIPEMD-160 message signatures and keeps MD5's. Key algorithms and sizes
 *   are OpenPGP.js's defaults (RSA keys under 2047 bits are refused, which gpg would accept).
 *
 * Key rings are armored or binary, each with any number of keys; one that holds no readable
 * key is an error, as GPGME's import fails for it.
 *
 * @module
 */
import type * as OpenPgp from "openpgp";
import { parsePayload, SignatureError, SIMPLE_SIGNATURE_TYPE } from "./payload.ts";
import type { SignatureClaims } from "./types.ts";

export { SignatureError } from "./payload.ts";

/**
 * OpenPGP.js, imported on first use: loading it costs ~160 ms (measured), which a pull whose
 * policy names no `signedBy` key need not pay. The literal specifier keeps it in the binary.
 */
let loaded: { openpgp: typeof OpenPgp; config: OpenPgp.PartialConfig } | undefined;

/** OpenPGP.js and the settings that match gpg 2.2's acceptance of message hashes (module docs). */
async function openpgpModule(): Promise<
  { openpgp: typeof OpenPgp; config: OpenPgp.PartialConfig }
> {
  if (loaded === undefined) {
    const openpgp = await import("openpgp");
    loaded = {
      openpgp,
      config: { rejectMessageHashAlgorithms: new Set([openpgp.enums.hash.md5]) },
    };
  }
  return loaded;
}

/**
 * Parses a simple-signing payload strictly (payload.ts), without any cryptography: for a
 * payload already verified, or for tests. Throws {@link SignatureError}.
 */
export function parseSimplePayload(bytes: Uint8Array): SignatureClaims {
  return parsePayload(bytes, {
    type: SIMPLE_SIGNATURE_TYPE,
    optionalMayBeNull: false,
    name: "simple signing payload",
  });
}

/** The keys of key rings, each ring armored or binary. Throws {@link SignatureError}. */
export async function readKeyRings(keyrings: Uint8Array[]): Promise<OpenPgp.PublicKey[]> {
  const { openpgp } = await openpgpModule();
  const keys: OpenPgp.PublicKey[] = [];
  for (const [i, ring] of keyrings.entries()) {
    const head = new TextDecoder().decode(ring.subarray(0, 200)).trimStart();
    try {
      const read = head.startsWith("-----BEGIN PGP")
        ? await openpgp.readKeys({ armoredKeys: new TextDecoder().decode(ring) })
        : await openpgp.readKeys({ binaryKeys: ring });
      for (const key of read) keys.push(key.isPrivate() ? key.toPublic() : key);
    } catch (e) {
      throw new SignatureError(
        `key ring ${i + 1} of ${keyrings.length} holds no readable OpenPGP key: ` +
          (e as Error).message,
        { cause: e },
      );
    }
  }
  if (keys.length === 0) throw new SignatureError("no public keys imported");
  return keys;
}

/**
 * Verifies a simple-signing signature (the OpenPGP message bytes of a lookaside
 * `signature-N`) with the keys of `keyrings`, then parses its payload. Returns the payload's
 * claims and `keyIdentity`, the signing key's fingerprint (upper-case hex, as GPGME gives
 * it). The claims are *not* compared with anything: the caller checks the digest and the
 * identity. Throws {@link SignatureError} with the reason (module documentation).
 */
export async function verifySimpleSignature(
  sig: Uint8Array,
  keyrings: Uint8Array[],
): Promise<SignatureClaims & { keyIdentity: string }> {
  const { openpgp, config: CONFIG } = await openpgpModule();
  const keys = await readKeyRings(keyrings);
  let message: OpenPgp.Message<Uint8Array>;
  try {
    message = await openpgp.readMessage({ binaryMessage: sig, config: CONFIG });
  } catch (e) {
    throw new SignatureError(`not an OpenPGP message: ${(e as Error).message}`, { cause: e });
  }
  let result: OpenPgp.VerifyMessageResult<Uint8Array>;
  try {
    result = await openpgp.verify({
      message,
      verificationKeys: keys,
      format: "binary",
      expectSigned: false,
      config: CONFIG,
    });
  } catch (e) {
    throw new SignatureError(`not a signed message: ${(e as Error).message}`, { cause: e });
  }
  const signatures = result.signatures;
  if (signatures.length === 0) throw new SignatureError("the message is not signed");
  if (signatures.length > 1) {
    throw new SignatureError(
      `the message has ${signatures.length} signatures (by ` +
        `${signatures.map((s) => s.keyID.toHex().toUpperCase()).join(", ")}); ` +
        "exactly one is accepted",
    );
  }
  const [signature] = signatures;
  const keyID = signature.keyID;
  const signer = keys.find((key) => key.getKeys(keyID).length > 0);
  if (signer === undefined) {
    throw new SignatureError(
      `signed by key ${keyID.toHex().toUpperCase()}, which is not in the trusted keys`,
    );
  }
  try {
    await signature.verified;
  } catch (e) {
    throw new SignatureError(
      `the signature by key ${keyID.toHex().toUpperCase()} does not verify: ` +
        (e as Error).message,
      { cause: e },
    );
  }
  const fingerprint = signer.getKeys(keyID)[0].getFingerprint().toUpperCase();
  // gpg judges the key as it is now: expired or revoked since signing means refused.
  try {
    await signer.getSigningKey(keyID, new Date(), undefined, { ...openpgp.config, ...CONFIG });
  } catch (e) {
    throw new SignatureError(
      `the signing key ${fingerprint} is not valid now: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const primary = signer.getFingerprint().toUpperCase();
  if (fingerprint !== primary) {
    throw new SignatureError(
      `signature by key ${fingerprint} is not accepted: it is a subkey of ${primary}, and only ` +
        "primary keys' fingerprints are trusted identities (as in containers/image with GPGME)",
    );
  }
  const claims = parseSimplePayload(result.data);
  return { ...claims, keyIdentity: fingerprint };
}
