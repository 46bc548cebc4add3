/**
 * Where a pull meets the signature policy: once the source has resolved the image (manifest
 * and config read and checked, nothing of a layer read yet), the policy decides, and a
 * rejection ends the pull before anything is written to the repository.
 *
 * - `docker://`: cfs's own registry client; signatures from the registries.d lookaside and
 *   from sigstore attachments (sources.ts), checked with simple.ts and sigstore.ts.
 * - `oci:` and `oci-archive:`: containers/image 5.23 (skopeo 1.9) keeps no signatures in OCI
 *   layouts, so only requirements that need none (`insecureAcceptAnything`, `reject`) can
 *   accept them, as with skopeo.
 * - `containers-storage:` read natively: the store's signatures are not read yet, so a policy
 *   that requires signatures for that transport rejects (README: known gaps).
 * - Transports read through skopeo: skopeo enforces the same policy file and registries.d
 *   (`--policy`, `--registries.d`); its rejection becomes the same error.
 *
 * @module
 */
import { resolve } from "node:path";
import { CfsError, type CfsErrorOptions, clipMiddle } from "../errors.ts";
import type { ImageReference } from "../oci/reference.ts";
import type { ResolvedImage } from "../oci/layout.ts";
import type { RegistryClient } from "../oci/registry.ts";
import type { ImageSignature, ImageToCheck, PolicyDecision, SignaturePolicy } from "./types.ts";
import { loadPolicy } from "./policy.ts";
import { evaluatePolicy, formatDecision, type SignatureVerifier } from "./evaluate.ts";
import { imageScopes } from "./scope.ts";
import { verifySimpleSignature } from "./simple.ts";
import { verifySigstoreSignature } from "./sigstore.ts";
import { loadRegistriesD } from "./registries_d.ts";
import { dockerSignatures } from "./sources.ts";

/** How a pull enforces the policy (the CLI always passes one; see the module documentation). */
export interface SignaturePolicyOptions {
  /** The policy file; default: skopeo's search (policy.ts `loadPolicy`). */
  policyPath?: string;
  /** The registries.d directory; default: skopeo's search (registries_d.ts). */
  registriesDir?: string;
  /** Hears the decision (logs, hooks), accepted or not, before a rejection is thrown. */
  onDecision?: (decision: PolicyDecision) => void;
}

/** The policy rejected the image: the pull's own exit code, 4. */
export class SignatureRejected extends CfsError {
  /** The decision, when cfs made it (undefined when skopeo did). */
  readonly decision?: PolicyDecision;

  /** `message` names the reference, the policy, the scope and why. */
  constructor(message: string, decision?: PolicyDecision, options?: CfsErrorOptions) {
    super(clipMiddle(message), { code: "signature-rejected", exitCode: 4, ...options });
    this.name = "SignatureRejected";
    this.decision = decision;
  }
}

/** The verification functions the policy evaluation uses (simple.ts, sigstore.ts). */
export const VERIFIER: SignatureVerifier = {
  simple: (sig, keyrings) => verifySimpleSignature(sig, keyrings),
  sigstore: (payload, annotations, pem) => verifySigstoreSignature(payload, annotations, pem),
};

/** The parts of an opened source the check needs. */
export interface CheckedSource {
  /** The reference as given (for messages). */
  reference: string;
  /** The parsed reference. */
  parsed: ImageReference;
  /** The resolved image. */
  image: ResolvedImage;
  /** The registry client, for `docker://` (signatures live there). */
  client?: RegistryClient;
}

/** The digest signatures must name: the outermost index's when there is one. */
function topLevelDigest(image: ResolvedImage): string {
  return image.indexDigests[0] ?? image.manifestDescriptor.digest;
}

/** The image as the policy sees it. */
async function imageToCheck(
  source: CheckedSource,
  options: SignaturePolicyOptions,
): Promise<ImageToCheck> {
  const { parsed, image } = source;
  const manifestDigest = topLevelDigest(image);
  const scoped = imageScopes(parsed);
  // registries.d is read on every docker:// pull, whatever the policy needs (as skopeo does:
  // a broken one fails the pull there too).
  const registriesD = parsed.transport === "docker"
    ? await loadRegistriesD(options.registriesDir)
    : undefined;
  let fetched: Promise<ImageSignature[]> | undefined;
  const signatures = (): Promise<ImageSignature[]> => {
    if (parsed.transport !== "docker" || source.client === undefined || !registriesD) {
      return Promise.resolve([]);
    }
    fetched ??= dockerSignatures({
      client: source.client,
      reference: parsed,
      manifestDigest,
      registriesD,
    });
    return fetched;
  };
  return {
    transport: scoped.transport,
    scopes: scoped.scopes,
    dockerReference: scoped.dockerReference,
    manifestDigest,
    manifestBytes: image.indexDigests.length === 0 ? image.manifestBytes : undefined,
    signatures,
  };
}

/**
 * Decides whether `source` may be pulled under the policy; throws {@link SignatureRejected}
 * when not, and the policy's or a signature source's own error when they cannot be read.
 */
export async function enforceSignaturePolicy(
  source: CheckedSource,
  options: SignaturePolicyOptions,
): Promise<PolicyDecision> {
  const policy = await loadPolicy(absolute(options.policyPath));
  const decision = await evaluatePolicy(policy, await imageToCheck(source, options), VERIFIER);
  options.onDecision?.(decision);
  if (!decision.accepted) {
    throw new SignatureRejected(
      `'${source.reference}' rejected: ${formatDecision(decision)}`,
      decision,
    );
  }
  return decision;
}

/**
 * The policy file and registries.d skopeo must use for a transport cfs reads through it: the
 * policy is loaded (and so checked) first, so that a missing or malformed one is cfs's error.
 */
export async function skopeoPolicyArgs(options: SignaturePolicyOptions): Promise<string[]> {
  const policy: SignaturePolicy = await loadPolicy(absolute(options.policyPath));
  const args = ["--policy", policy.source];
  if (options.registriesDir !== undefined) args.push("--registries.d", options.registriesDir);
  return args;
}

/** A policy path as messages name it (and skopeo, run elsewhere, finds it): absolute. */
function absolute(path: string | undefined): string | undefined {
  return path === undefined ? undefined : resolve(path);
}

/** skopeo's words when the policy rejected the source (containers/image's error). */
const SKOPEO_REJECTED = /Source image rejected: (.*)$/m;

/** skopeo's rejection, as cfs's error; undefined when `stderr` is another failure. */
export function skopeoRejection(reference: string, stderr: string): SignatureRejected | undefined {
  const m = SKOPEO_REJECTED.exec(stderr);
  if (m === null) return undefined;
  const why = m[1].replace(/"\s*$/, "").replace(/\\"/g, '"');
  return new SignatureRejected(`'${reference}' rejected by the signature policy (skopeo): ${why}`);
}
