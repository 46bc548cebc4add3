/**
 * A signature policy's decision about one image, as containers/image's
 * `IsRunningImageAllowed` makes it: the requirements of the scope that applies (scope.ts) are
 * checked in order, and the image is accepted only when every one accepts; the first that
 * rejects ends the evaluation (so a `reject` before a `signedBy` fetches no signatures).
 *
 * - `insecureAcceptAnything` accepts; `reject` and `signedBaseLayer` (not implemented by
 *   containers/image either) reject; an empty list of requirements (only possible in a policy
 *   built in code: files refuse it) rejects.
 * - `signedBy` (simple signing) looks at the image's simple signatures only, `sigstoreSigned` at
 *   its sigstore signatures only, each ignoring the other kind. One signature that verifies
 *   with the requirement's keys, names the image's manifest digest and whose claimed identity
 *   satisfies `signedIdentity` is enough; the checks run in containers/image's order (key, then
 *   digest, then identity), and the reason names the first that failed for each signature.
 * - Key files are read when a signature is checked (never when there is none), relative paths
 *   against the working directory, at most {@link KEY_FILE_SIZE_MAX} bytes each. An unreadable
 *   key file rejects, naming the file.
 * - The digest comparison is containers/image's: the signature must name the sha256 digest of
 *   the top-level manifest (for a sha512-addressed image, of its bytes when known).
 *
 * The cryptography is injected ({@link SignatureVerifier}: simple.ts and sigstore.ts in a pull)
 * so that the rules here can be tested with any signatures.
 *
 * @module
 */
import { concatBytes } from "../bytes.ts";
import { createHash } from "node:crypto";
import { clipMiddle } from "../errors.ts";
import { describeIdentity, matchesIdentity } from "./identity.ts";
import { requirementsFor } from "./scope.ts";
import type {
  ImageSignature,
  ImageToCheck,
  PolicyDecision,
  PolicyRequirement,
  RequirementResult,
  SignatureClaims,
  SignaturePolicy,
} from "./types.ts";

/** Verification of the two signature formats; each throws with a one-line reason on failure. */
export interface SignatureVerifier {
  /**
   * Verifies a simple-signing signature with the keys of `keyrings` (a signature by any other
   * key fails) and returns its payload's claims and the signing key's fingerprint.
   */
  simple(
    sig: Uint8Array,
    keyrings: Uint8Array[],
  ): Promise<SignatureClaims & { keyIdentity: string }>;
  /** Verifies a sigstore signature with a PEM public key and returns its payload's claims. */
  sigstore(
    payload: Uint8Array,
    annotations: Record<string, string>,
    publicKeyPem: Uint8Array,
  ): Promise<SignatureClaims>;
}

/** Largest key file read (bytes); key rings of a few hundred keys fit. */
export const KEY_FILE_SIZE_MAX = 4 * 1024 * 1024;
/** The annotation holding a sigstore signature (checked before verifying, as containers/image). */
const SIGSTORE_ANNOTATION = "dev.cosignproject.cosign/signature";
/** The media type of a sigstore signature; other attachments are counted, not verified. */
const SIGSTORE_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json";

/** The message of anything thrown, on one line. */
function why(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.replace(/\s*\n\s*/g, " ");
}

/** Reads a key file, at most {@link KEY_FILE_SIZE_MAX} bytes; throws a one-line reason. */
async function readKeyFile(path: string): Promise<Uint8Array> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new Error(`cannot read key file ${JSON.stringify(path)}: ${why(e)}`);
  }
  try {
    const info = await file.stat();
    if (!info.isFile) throw new Error(`key file ${JSON.stringify(path)} is not a regular file`);
    const chunks: Uint8Array[] = [];
    let total = 0;
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await file.read(buffer);
      if (n === null) break;
      total += n;
      if (total > KEY_FILE_SIZE_MAX) {
        throw new Error(
          `key file ${JSON.stringify(path)} is larger than ${KEY_FILE_SIZE_MAX} bytes`,
        );
      }
      chunks.push(buffer.slice(0, n));
    }
    return concatBytes(chunks);
  } catch (e) {
    if (e instanceof Error && e.message.includes(JSON.stringify(path))) throw e;
    throw new Error(`cannot read key file ${JSON.stringify(path)}: ${why(e)}`);
  } finally {
    file.close();
  }
}

/** Whether a signature's claimed digest is the image's, as containers/image compares them. */
export function digestMatches(
  image: Pick<ImageToCheck, "manifestDigest" | "manifestBytes">,
  claimed: string,
): boolean {
  let actual = image.manifestDigest;
  if (!actual.startsWith("sha256:") && image.manifestBytes !== undefined) {
    actual = `sha256:${createHash("sha256").update(image.manifestBytes).digest("hex")}`;
  }
  return claimed === actual;
}

/** Where the keys of a requirement come from, for messages. */
function keySource(req: { keyPath?: string; keyPaths?: string[]; keyData?: Uint8Array }): string {
  if (req.keyData !== undefined) return "keyData";
  if (req.keyPaths !== undefined) {
    return req.keyPaths.length === 0
      ? "keyPaths (empty)"
      : `keyPaths ${req.keyPaths.map((p) => JSON.stringify(p)).join(", ")}`;
  }
  return `keyPath ${JSON.stringify(req.keyPath ?? "")}`;
}

/** Checks a verified signature's claims against the image: digest first, then identity. */
function claimsProblem(
  claims: SignatureClaims,
  image: ImageToCheck,
  identity: Parameters<typeof matchesIdentity>[0],
): string | undefined {
  if (!digestMatches(image, claims.manifestDigest)) {
    return `it is for manifest ${claims.manifestDigest}, not the image's ${image.manifestDigest}`;
  }
  if (!matchesIdentity(identity, image.dockerReference, claims.dockerReference)) {
    const own = image.dockerReference === undefined
      ? "the image has no docker reference (transport " + image.transport + ")"
      : `the image is ${image.dockerReference}`;
    return `it claims identity ${claims.dockerReference}, which ${describeIdentity(identity)} ` +
      `does not accept (${own})`;
  }
  return undefined;
}

/** The summary of a requirement that saw signatures but accepted none. */
function summarize(kind: string, source: string, rejections: string[], note = ""): string {
  if (rejections.length === 0) return `no ${kind} signature${note}`;
  if (rejections.length === 1) {
    return `the ${kind} signature is not accepted (${source}): ${rejections[0]}`;
  }
  return `none of the ${rejections.length} ${kind} signatures is accepted (${source}): ` +
    rejections.map((r, i) => `${i + 1}: ${r}`).join("; ");
}

type SignedBy = Extract<PolicyRequirement, { type: "signedBy" }>;
type SigstoreSigned = Extract<PolicyRequirement, { type: "sigstoreSigned" }>;

async function evaluateSignedBy(
  req: SignedBy,
  image: ImageToCheck,
  signatures: () => Promise<ImageSignature[]>,
  verifier: SignatureVerifier,
): Promise<RequirementResult> {
  const sigs = (await signatures()).filter((s) => s.kind === "simple");
  const source = keySource(req);
  const reject = (reason: string): RequirementResult => ({
    type: "signedBy",
    accepted: false,
    reason,
  });
  if (sigs.length === 0) return reject("no simple signing signature exists");
  if (req.keyType !== "GPGKeys") {
    return reject(`keyType ${req.keyType} is not implemented (only GPGKeys is)`);
  }
  let keyrings: Uint8Array[];
  try {
    if (req.keyData !== undefined) keyrings = [req.keyData];
    else if (req.keyPaths !== undefined) {
      keyrings = [];
      for (const path of req.keyPaths) keyrings.push(await readKeyFile(path));
    } else keyrings = [await readKeyFile(req.keyPath ?? "")];
  } catch (e) {
    return reject(why(e));
  }
  if (keyrings.every((k) => k.length === 0)) return reject(`no public keys in ${source}`);
  const rejections: string[] = [];
  for (const sig of sigs) {
    if (sig.kind !== "simple") continue;
    let claims: SignatureClaims & { keyIdentity: string };
    try {
      claims = await verifier.simple(sig.bytes, keyrings);
    } catch (e) {
      rejections.push(`${sig.origin}: ${why(e)}`);
      continue;
    }
    const problem = claimsProblem(claims, image, req.signedIdentity);
    if (problem === undefined) {
      return {
        type: "signedBy",
        accepted: true,
        reason: `signed by key ${claims.keyIdentity} (${sig.origin}) as ${claims.dockerReference}`,
      };
    }
    rejections.push(`${sig.origin}: ${problem}`);
  }
  return reject(summarize("simple signing", source, rejections));
}

async function evaluateSigstoreSigned(
  req: SigstoreSigned,
  image: ImageToCheck,
  signatures: () => Promise<ImageSignature[]>,
  verifier: SignatureVerifier,
): Promise<RequirementResult> {
  const reject = (reason: string): RequirementResult => ({
    type: "sigstoreSigned",
    accepted: false,
    reason,
  });
  if (req.unsupported !== undefined) return reject(req.unsupported);
  const all = await signatures();
  let others = 0;
  let attachments = 0;
  const sigs: Extract<ImageSignature, { kind: "sigstore" }>[] = [];
  for (const s of all) {
    if (s.kind !== "sigstore") others++;
    else if (s.mediaType !== undefined && s.mediaType !== SIGSTORE_MEDIA_TYPE) attachments++;
    else sigs.push(s);
  }
  if (sigs.length === 0) {
    const note = others + attachments === 0
      ? ""
      : ` (${others} of another kind, ${attachments} sigstore attachments that are not signatures)`;
    return reject(`no sigstore signature exists${note}`);
  }
  const source = req.keyData !== undefined
    ? "keyData"
    : `keyPath ${JSON.stringify(req.keyPath ?? "")}`;
  let pem: Uint8Array;
  try {
    pem = req.keyData ?? await readKeyFile(req.keyPath ?? "");
  } catch (e) {
    return reject(why(e));
  }
  const rejections: string[] = [];
  for (const sig of sigs) {
    if (!Object.hasOwn(sig.annotations, SIGSTORE_ANNOTATION)) {
      rejections.push(`${sig.origin}: missing ${SIGSTORE_ANNOTATION} annotation`);
      continue;
    }
    let claims: SignatureClaims;
    try {
      claims = await verifier.sigstore(sig.payload, { ...sig.annotations }, pem);
    } catch (e) {
      rejections.push(`${sig.origin}: ${why(e)}`);
      continue;
    }
    const problem = claimsProblem(claims, image, req.signedIdentity);
    if (problem === undefined) {
      return {
        type: "sigstoreSigned",
        accepted: true,
        reason: `signed with ${source} (${sig.origin}) as ${claims.dockerReference}`,
      };
    }
    rejections.push(`${sig.origin}: ${problem}`);
  }
  return reject(summarize("sigstore", source, rejections));
}

/** One requirement's outcome. */
function evaluateRequirement(
  req: PolicyRequirement,
  image: ImageToCheck,
  signatures: () => Promise<ImageSignature[]>,
  verifier: SignatureVerifier,
): Promise<RequirementResult> | RequirementResult {
  switch (req.type) {
    case "insecureAcceptAnything":
      return { type: req.type, accepted: true, reason: "accepted without any check" };
    case "reject":
      return { type: req.type, accepted: false, reason: "the policy rejects these images" };
    case "signedBaseLayer":
      return {
        type: req.type,
        accepted: false,
        reason: "signedBaseLayer is not implemented (containers/image rejects it too)",
      };
    case "signedBy":
      return evaluateSignedBy(req, image, signatures, verifier);
    case "sigstoreSigned":
      return evaluateSigstoreSigned(req, image, signatures, verifier);
    default:
      return {
        type: (req as { type: PolicyRequirement["type"] }).type,
        accepted: false,
        reason: "unknown requirement type",
      };
  }
}

/**
 * Decides whether `policy` accepts `image` (see the module documentation). The image's
 * signatures are fetched once, and only when a requirement needs them; a failure to fetch them
 * is thrown (an error of the pull, not a rejection).
 */
export async function evaluatePolicy(
  policy: SignaturePolicy,
  image: ImageToCheck,
  verifier: SignatureVerifier,
): Promise<PolicyDecision> {
  const { scope, requirements } = requirementsFor(policy, image.transport, image.scopes);
  const base = {
    policy: policy.source,
    transport: image.transport,
    ...(scope !== undefined ? { scope } : {}),
  };
  if (requirements.length === 0) {
    return {
      ...base,
      accepted: false,
      results: [{ type: "reject", accepted: false, reason: "the scope has no requirements" }],
    };
  }
  let fetched: Promise<ImageSignature[]> | undefined;
  const signatures = () => (fetched ??= image.signatures());
  const results: RequirementResult[] = [];
  for (const req of requirements) {
    const result = await evaluateRequirement(req, image, signatures, verifier);
    results.push(result);
    if (!result.accepted) return { ...base, accepted: false, results };
  }
  return { ...base, accepted: true, results };
}

/** `default`, `transport default`, or the scope quoted. */
function scopeLabel(scope: string | undefined): string {
  if (scope === undefined) return "default";
  if (scope === "") return "transport default";
  return `scope ${JSON.stringify(scope)}`;
}

/**
 * The decision as one line for an error or a log: the policy file, the transport, the scope
 * that applied and each requirement's outcome, e.g. `policy /etc/containers/policy.json,
 * transport docker, scope "example.com/app": signedBy: no simple signing signature exists`. Long lines keep their start and end (errors.ts `clipMiddle`).
 */
export function formatDecision(decision: PolicyDecision): string {
  // The requirement that failed says why; those that held before it say they held.
  const results = decision.results.map((r) =>
    r.accepted ? `${r.type} held (${r.reason})` : `${r.type}: ${r.reason}`
  );
  return clipMiddle(
    `policy ${decision.policy}, transport ${decision.transport}, ${scopeLabel(decision.scope)}: ` +
      results.join("; "),
  );
}
