/**
 * Sigstore signatures with a public key (the `sigstoreSigned` requirement with `keyPath` or
 * `keyData`), as containers/image 5.23 verifies them: the payload (a layer of the
 * `sha256-<hex>.sig` attachment manifest, media type
 * `application/vnd.dev.cosign.simplesigning.v1+json`) is the JSON of payload.ts with
 * `critical.type` `cosign container image signature`, and its signature is the base64 in the
 * layer's annotation `dev.cosignproject.cosign/signature`.
 *
 * What is accepted (containers/image's `VerifySigstorePayload` and the sigstore library's
 * `LoadVerifier` it calls, with SHA-256 fixed for every key type):
 * - the public key: the first PEM block of the file (its label is not checked), holding a
 *   SubjectPublicKeyInfo;
 * - ECDSA keys (P-224, P-256, P-384, P-521): the signature is ASN.1 DER (what cosign stores),
 *   over SHA-256 of the payload whatever the curve;
 * - RSA keys: PKCS #1 v1.5 with SHA-256 (not PSS);
 * - Ed25519 keys: pure Ed25519 over the payload;
 * - any other key type (DSA, RSA-PSS, X25519, Ed448, other curves) is refused;
 * - the annotation is standard base64 with padding (line breaks ignored, as Go's decoder does).
 *
 * containers/image 5.23 reads no other annotation: a certificate, chain or Rekor bundle next to
 * the signature is neither required nor checked (Fulcio and Rekor verification came later), so
 * cfs ignores them too.
 *
 * @module
 */
import { createPublicKey, type KeyObject, verify } from "node:crypto";
import { parsePayload, SignatureError, SIGSTORE_SIGNATURE_TYPE } from "./payload.ts";
import type { SignatureClaims } from "./types.ts";

export { SignatureError } from "./payload.ts";

/** The annotation holding the base64 signature. */
export const SIGSTORE_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
/** The media type of a sigstore signature payload layer. */
export const SIGSTORE_SIGNATURE_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json";

/** The named curves Go's x509 parses (node's names). */
const CURVES = ["prime256v1", "secp384r1", "secp521r1", "secp224r1"];

/**
 * Parses a sigstore payload strictly (payload.ts), without any cryptography. Throws
 * {@link SignatureError}.
 */
export function parseSigstorePayload(bytes: Uint8Array): SignatureClaims {
  return parsePayload(bytes, {
    type: SIGSTORE_SIGNATURE_TYPE,
    optionalMayBeNull: true,
    name: "sigstore payload",
  });
}

/**
 * The public key of a PEM file: its first PEM block's DER as a SubjectPublicKeyInfo. Throws
 * {@link SignatureError} for no PEM block, a key that does not parse, or a key type sigstore
 * verification does not take.
 */
export function readSigstorePublicKey(pem: Uint8Array): KeyObject {
  const text = new TextDecoder().decode(pem);
  const m = /-----BEGIN ([^\n-]*)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text);
  if (m === null) throw new SignatureError("public key: no PEM block found");
  const body = m[2].replace(/[\r\n \t]/g, "");
  if (!BASE64.test(body)) throw new SignatureError("public key: the PEM block is not base64");
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(body, "base64"), format: "der", type: "spki" });
  } catch (e) {
    throw new SignatureError(
      `public key: not a SubjectPublicKeyInfo: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const type = key.asymmetricKeyType;
  if (type === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? "(unknown)";
    if (!CURVES.includes(curve)) {
      throw new SignatureError(`public key: unsupported elliptic curve ${curve}`);
    }
  } else if (type !== "rsa" && type !== "ed25519") {
    throw new SignatureError(`public key: unsupported public key type ${type}`);
  }
  return key;
}

/** Standard base64 with padding (white space already removed). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Go's `base64.StdEncoding.DecodeString`: padding required, `\r` and `\n` ignored. */
function decodeBase64(text: string): Uint8Array {
  const compact = text.replace(/[\r\n]/g, "");
  if (!BASE64.test(compact)) {
    throw new SignatureError(
      `the ${SIGSTORE_SIGNATURE_ANNOTATION} annotation is not standard base64`,
    );
  }
  return new Uint8Array(Buffer.from(compact, "base64"));
}

/**
 * Verifies a sigstore signature: the base64 signature in `annotations` over `payload`, with
 * the public key of `publicKeyPem`; then parses the payload. Returns its claims, *not*
 * compared with anything (the caller checks the digest and the identity). Throws
 * {@link SignatureError} with the reason.
 */
// deno-lint-ignore require-await
export async function verifySigstoreSignature(
  payload: Uint8Array,
  annotations: Record<string, string>,
  publicKeyPem: Uint8Array,
): Promise<SignatureClaims> {
  const key = readSigstorePublicKey(publicKeyPem);
  const encoded = Object.hasOwn(annotations, SIGSTORE_SIGNATURE_ANNOTATION)
    ? annotations[SIGSTORE_SIGNATURE_ANNOTATION]
    : undefined;
  if (typeof encoded !== "string") {
    throw new SignatureError(`missing ${SIGSTORE_SIGNATURE_ANNOTATION} annotation`);
  }
  const signature = decodeBase64(encoded);
  let ok: boolean;
  try {
    ok = key.asymmetricKeyType === "ed25519"
      ? verify(null, payload, key, signature)
      : key.asymmetricKeyType === "ec"
      ? verify("sha256", payload, { key, dsaEncoding: "der" }, signature)
      : verify("sha256", payload, key, signature); // RSA: PKCS #1 v1.5 is node's default
  } catch {
    ok = false; // a malformed signature (bad DER, wrong length) is a failed verification
  }
  if (!ok) {
    throw new SignatureError(
      `cryptographic signature verification failed (${describeKey(key)})`,
    );
  }
  return parseSigstorePayload(payload);
}

/** `ECDSA P-256 key`, `RSA 2048-bit key`, `Ed25519 key`. */
function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === "ec") {
    const names: Record<string, string> = {
      prime256v1: "P-256",
      secp384r1: "P-384",
      secp521r1: "P-521",
      secp224r1: "P-224",
    };
    return `ECDSA ${names[details?.namedCurve ?? ""] ?? details?.namedCurve} key`;
  }
  if (key.asymmetricKeyType === "rsa") return `RSA ${details?.modulusLength}-bit key`;
  return "Ed25519 key";
}
