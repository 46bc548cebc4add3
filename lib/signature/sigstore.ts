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
      : key.asymmetricKeyDetails?.namedCurve === "secp521r1"
      ? await verifyP521(key, payload, signature)
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

/** Bytes of a P-521 scalar (r and s in the raw signature WebCrypto takes). */
const P521_SCALAR = 66;

/**
 * ECDSA P-521 over SHA-256 through WebCrypto: Deno's node:crypto fails to sign or verify P-521
 * with a digest shorter than the curve (measured: "failed to sign digest", every verification
 * false), WebCrypto does it right. WebCrypto takes r and s side by side, so the DER signature is
 * unpacked first ({@link derSignatureScalars}, as strictly as Go's `ecdsa.VerifyASN1` parses).
 */
async function verifyP521(key: KeyObject, payload: Uint8Array, der: Uint8Array): Promise<boolean> {
  const scalars = derSignatureScalars(der, P521_SCALAR);
  if (scalars === undefined) return false;
  const raw = new Uint8Array(2 * P521_SCALAR);
  raw.set(scalars[0], P521_SCALAR - scalars[0].length);
  raw.set(scalars[1], 2 * P521_SCALAR - scalars[1].length);
  const spki = key.export({ format: "der", type: "spki" });
  const webKey = await crypto.subtle.importKey(
    "spki",
    new Uint8Array(spki),
    { name: "ECDSA", namedCurve: "P-521" },
    false,
    ["verify"],
  );
  return await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    webKey,
    raw,
    new Uint8Array(payload),
  );
}

/**
 * r and s (big-endian, no leading zeros) of a DER `SEQUENCE { INTEGER r, INTEGER s }`, or
 * undefined unless the encoding is canonical DER (minimal lengths, minimal positive integers,
 * nothing after the sequence) with each at most `max` bytes.
 */
export function derSignatureScalars(
  der: Uint8Array,
  max: number,
): [Uint8Array, Uint8Array] | undefined {
  let at = 0;
  const length = (): number | undefined => {
    const first = der[at++];
    if (first === undefined) return undefined;
    if (first < 0x80) return first;
    if (first !== 0x81) return undefined; // lengths here are under 256
    const n = der[at++];
    return n === undefined || n < 0x80 ? undefined : n;
  };
  const integer = (): Uint8Array | undefined => {
    if (der[at++] !== 0x02) return undefined;
    const n = length();
    if (n === undefined || n === 0 || at + n > der.length) return undefined;
    let value = der.subarray(at, at + n);
    at += n;
    if (value[0] & 0x80) return undefined; // negative
    if (value[0] === 0) {
      // zero (never a valid r or s), or a needless leading zero
      if (value.length === 1 || !(value[1] & 0x80)) return undefined;
      value = value.subarray(1);
    }
    return value.length > max ? undefined : value;
  };
  if (der[at++] !== 0x30) return undefined;
  const total = length();
  if (total === undefined || at + total !== der.length) return undefined;
  const r = integer();
  const s = r === undefined ? undefined : integer();
  if (r === undefined || s === undefined || at !== der.length) return undefined;
  return [r, s];
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
