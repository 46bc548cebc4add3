/**
 * The types the signature-policy modules share (issue 12): a containers-policy.json(5) policy
 * as cfs holds it once parsed, the image a decision is about, the signatures found for it, and
 * the decision. Written first so that the policy (policy.ts, scope.ts, identity.ts,
 * evaluate.ts), the signature formats and their sources (simple.ts, sigstore.ts,
 * registries_d.ts, sources.ts) and the pull pipeline can be built side by side.
 *
 * The semantics are containers/image's (the library skopeo, podman and bootc use); skopeo is
 * the oracle the tests compare every decision with.
 *
 * @module
 */

/** How a signature's claimed identity must relate to the image's reference. */
export type SignedIdentity =
  | { type: "matchExact" }
  | { type: "matchRepoDigestOrExact" }
  | { type: "matchRepository" }
  | { type: "exactReference"; dockerReference: string }
  | { type: "exactRepository"; dockerRepository: string }
  | { type: "remapIdentity"; prefix: string; signedPrefix: string };

/** One requirement of a policy; an image is accepted when all of its scope's requirements are. */
export type PolicyRequirement =
  | { type: "insecureAcceptAnything" }
  | { type: "reject" }
  | {
    /** GPG "simple signing": a signature is an OpenPGP signed message over a JSON payload. */
    type: "signedBy";
    /** Only `GPGKeys` is implemented by containers/image (the others are refused there too). */
    keyType: "GPGKeys" | "X509Certificates" | "signedByGPGKeys" | "signedByX509CAs";
    /** Exactly one of keyPath, keyPaths, keyData is given. */
    keyPath?: string;
    keyPaths?: string[];
    /** The key ring's bytes (base64 in the file). */
    keyData?: Uint8Array;
    signedIdentity: SignedIdentity;
  }
  | {
    /** A sigstore (cosign-style) signature: a public key's signature over a JSON payload. */
    type: "sigstoreSigned";
    /** Exactly one of keyPath, keyData (or a Fulcio setup, which cfs refuses: not offline). */
    keyPath?: string;
    keyData?: Uint8Array;
    /** Present when the policy asks for Fulcio or Rekor; cfs refuses such policies by name. */
    unsupported?: string;
    signedIdentity: SignedIdentity;
  }
  | {
    /** Rejected by containers/image 5.23 ("not implemented"), and so by cfs. */
    type: "signedBaseLayer";
  };

/** A parsed policy file. */
export interface SignaturePolicy {
  /** The file it came from (for messages); `(built in)` for a policy made in code. */
  readonly source: string;
  /** Requirements where no transport scope matches. */
  readonly default: PolicyRequirement[];
  /** Per transport name (`docker`, `oci`, ...): scope → requirements; scope `""` = transport default. */
  readonly transports: Readonly<Record<string, Readonly<Record<string, PolicyRequirement[]>>>>;
}

/**
 * The image a decision is about, as the pull sees it once its manifest is resolved and before
 * any layer is read.
 */
export interface ImageToCheck {
  /** The policy transport name: `docker`, `oci`, `oci-archive`, `containers-storage`, `dir`. */
  readonly transport: string;
  /**
   * The candidate scopes of this image in its transport, most specific first, as
   * containers/image's `PolicyConfigurationIdentity` and `PolicyConfigurationNamespaces` give
   * them (scope.ts computes them), e.g. for `docker://host:5000/ns/repo:tag`:
   * `host:5000/ns/repo:tag`, `host:5000/ns/repo`, `host:5000/ns`, `host:5000`, then wildcards.
   */
  readonly scopes: readonly string[];
  /**
   * The image's identity for `signedIdentity`: a normalized docker reference
   * (`docker.io/library/busybox:latest`, `host:5000/ns/repo@sha256:...`), or undefined when the
   * transport has none (then only `exactReference`/`exactRepository` can match).
   */
  readonly dockerReference?: string;
  /** The digest of the manifest signatures must name: the top-level one (an index if any). */
  readonly manifestDigest: string;
  /**
   * The top-level manifest's bytes (their digest is {@link manifestDigest}) when the source kept
   * them; a signature's digest is compared with {@link manifestDigest} (the sources checked the
   * bytes against it), so they are informational.
   */
  readonly manifestBytes?: Uint8Array;
  /**
   * The image's signatures, fetched only when a requirement needs them (a policy of
   * `insecureAcceptAnything` fetches nothing). A failure to fetch is an error of the pull, not
   * a rejection, as in containers/image.
   */
  signatures(): Promise<ImageSignature[]>;
}

/** One signature of an image, as its source stores it, not yet verified. */
export type ImageSignature =
  | {
    /** A simple-signing signature: the OpenPGP message bytes (lookaside `signature-N`). */
    kind: "simple";
    bytes: Uint8Array;
    /** Where it came from, for messages (a URL or path). */
    origin: string;
  }
  | {
    /** A sigstore signature: the payload blob and the signature annotation. */
    kind: "sigstore";
    /** The payload layer's bytes (`application/vnd.dev.cosign.simplesigning.v1+json`). */
    payload: Uint8Array;
    /** The layer's annotations; `dev.cosignproject.cosign/signature` is the base64 signature. */
    annotations: Readonly<Record<string, string>>;
    /**
     * The layer's media type. containers/image counts an attachment whose type is not
     * `application/vnd.dev.cosign.simplesigning.v1+json` as a "sigstore non-signature
     * attachment" and does not verify it; sources.ts always sets it, absent means that type.
     */
    mediaType?: string;
    origin: string;
  };

/** What a verified signature claims (both kinds carry the same two facts that matter). */
export interface SignatureClaims {
  /** `critical.identity.docker-reference`. */
  dockerReference: string;
  /** `critical.image.docker-manifest-digest`. */
  manifestDigest: string;
}

/** The outcome of one requirement. */
export interface RequirementResult {
  /** The requirement's type. */
  readonly type: PolicyRequirement["type"];
  /** True when it held. */
  readonly accepted: boolean;
  /** Why not (or, when accepted, which key/signature did it), one line. */
  readonly reason: string;
}

/** The policy's decision about an image. */
export interface PolicyDecision {
  /** True when every requirement of the scope held. */
  readonly accepted: boolean;
  /** The policy file. */
  readonly policy: string;
  /** The policy transport of the image. */
  readonly transport: string;
  /**
   * The scope whose requirements applied: a scope string, `""` for the transport's default,
   * or undefined for the policy's global `default`.
   */
  readonly scope?: string;
  /** The requirements evaluated, in order, up to the first that failed. */
  readonly results: readonly RequirementResult[];
}
