/**
 * Policy files for the parser's tests, shared by the unit test (what cfs says) and the host
 * test that asks skopeo 1.9.3 the same question (test/signature_evaluate_test.ts): each valid
 * case must load in both, each invalid one fail in both, except where a case says cfs parts
 * from skopeo on purpose (`skopeo: "accepts"` / `"refuses"`).
 *
 * @module
 */

/** A policy that must parse. */
export interface ValidCase {
  name: string;
  text: string;
  /** What skopeo 1.9.3 does when it differs from cfs on purpose. */
  skopeo?: "refuses";
}

/** A policy that must be refused, naming `path` (the JSON path) in the message. */
export interface InvalidCase {
  name: string;
  text: string;
  /** The JSON path the error names. */
  path: string;
  /** What skopeo 1.9.3 does when it differs from cfs on purpose. */
  skopeo?: "accepts";
}

const KEY = "/etc/pki/containers/key.gpg";

/** `{"default": [...], "transports": {...}}` as text. */
function policy(defaults: unknown, transports?: unknown): string {
  return JSON.stringify(
    transports === undefined ? { default: defaults } : {
      default: defaults,
      transports,
    },
  );
}

/** A policy whose default is the one requirement `req`. */
function req(r: unknown): string {
  return policy([r]);
}

const signedBy = (extra: Record<string, unknown>) => ({
  type: "signedBy",
  keyType: "GPGKeys",
  ...extra,
});

/** Policies skopeo 1.9.3 and cfs both load. */
export const VALID: ValidCase[] = [
  { name: "accept anything", text: policy([{ type: "insecureAcceptAnything" }]) },
  { name: "reject", text: policy([{ type: "reject" }]) },
  {
    name: "the man page's locked-down example (docker, dir, atomic scopes)",
    text: JSON.stringify({
      default: [{ type: "reject" }],
      transports: {
        docker: {
          "docker.io/openshift": [{ type: "insecureAcceptAnything" }],
          "docker.io/library/busybox": [{ type: "insecureAcceptAnything" }],
          "*.temporary-project.example.com": [{ type: "insecureAcceptAnything" }],
          "hostname:5000/myns/sigstore-signed-with-full-references": [
            { type: "sigstoreSigned", keyPath: "/path/to/sigstore-pubkey.pub" },
          ],
          "hostname:5000/myns/sigstore-signed-allows-malicious-tag-substitution": [
            {
              type: "sigstoreSigned",
              keyPath: "/path/to/sigstore-pubkey.pub",
              signedIdentity: { type: "matchRepository" },
            },
          ],
        },
        dir: { "": [{ type: "insecureAcceptAnything" }] },
        atomic: {
          "hostname:5000/myns/official": [signedBy({ keyPath: "/path/to/official-pubkey.gpg" })],
          "hostname:5000/vendor/product": [
            signedBy({
              keyPath: "/path/to/vendor-pubkey.gpg",
              signedIdentity: {
                type: "exactRepository",
                dockerRepository: "vendor-hostname/product/repository",
              },
            }),
            signedBy({ keyPath: "/path/to/reviewer-pubkey.gpg" }),
          ],
          "private-mirror:5000/vendor-mirror": [
            signedBy({
              keyPath: "/path/to/vendor-pubkey.gpg",
              signedIdentity: {
                type: "remapIdentity",
                prefix: "private-mirror:5000/vendor-mirror",
                signedPrefix: "vendor.example.com",
              },
            }),
          ],
        },
      },
    }),
  },
  { name: "signedBy keyPaths", text: req(signedBy({ keyPaths: [KEY, "/other.gpg"] })) },
  { name: "signedBy empty keyPaths", text: req(signedBy({ keyPaths: [] })) },
  { name: "signedBy relative keyPath", text: req(signedBy({ keyPath: "keys/key.gpg" })) },
  { name: "signedBy keyData", text: req(signedBy({ keyData: "AAECAw==" })) },
  { name: "signedBy empty keyData", text: req(signedBy({ keyData: "" })) },
  { name: "signedBy keyData with line breaks", text: req(signedBy({ keyData: "AAEC\nAw==" })) },
  {
    name: "keyType X509Certificates",
    text: req(signedBy({ keyType: "X509Certificates", keyPath: KEY })),
  },
  {
    name: "keyType signedByGPGKeys",
    text: req(signedBy({ keyType: "signedByGPGKeys", keyPath: KEY })),
  },
  { name: "null in keyPaths", text: req(signedBy({ keyPaths: [KEY, null] })) },
  ...["matchExact", "matchRepoDigestOrExact", "matchRepository"].map((type) => ({
    name: `signedIdentity ${type}`,
    text: req(signedBy({ keyPath: KEY, signedIdentity: { type } })),
  })),
  {
    name: "exactReference with a tag",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: { type: "exactReference", dockerReference: "example.com/ns/app:v1" },
    })),
  },
  {
    name: "exactReference short name with a digest",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: {
        type: "exactReference",
        dockerReference: `busybox@sha256:${"a".repeat(64)}`,
      },
    })),
  },
  {
    name: "exactReference with a tag and a digest",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: {
        type: "exactReference",
        dockerReference: `example.com/app:v1@sha256:${"b".repeat(64)}`,
      },
    })),
  },
  {
    name: "exactRepository",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: { type: "exactRepository", dockerRepository: "busybox" },
    })),
  },
  {
    name: "remapIdentity host to host",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: { type: "remapIdentity", prefix: "mirror:5000", signedPrefix: "Example.COM" },
    })),
  },
  {
    name: "remapIdentity ns/repo passes (never matches)",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: { type: "remapIdentity", prefix: "ns/repo", signedPrefix: "example.com/x" },
    })),
  },
  {
    name: "remapIdentity bare word prefix (a host name)",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: { type: "remapIdentity", prefix: "busybox", signedPrefix: "example.com" },
    })),
  },
  { name: "sigstoreSigned keyPath", text: req({ type: "sigstoreSigned", keyPath: "/k.pub" }) },
  { name: "sigstoreSigned empty keyPath", text: req({ type: "sigstoreSigned", keyPath: "" }) },
  { name: "sigstoreSigned keyData", text: req({ type: "sigstoreSigned", keyData: "AAAA" }) },
  { name: "sigstoreSigned null keyData", text: req({ type: "sigstoreSigned", keyData: null }) },
  {
    name: "signedBaseLayer",
    text: req({ type: "signedBaseLayer", baseLayerIdentity: { type: "matchRepository" } }),
  },
  {
    name: "scopes of every kind",
    text: policy([{ type: "reject" }], {
      docker: {
        "": [{ type: "reject" }],
        "anything goes: UPPER case, spaces!": [{ type: "reject" }],
        "__proto__": [{ type: "insecureAcceptAnything" }],
      },
      oci: { "/srv/images": [{ type: "reject" }], "/srv/images/os:v1": [{ type: "reject" }] },
      "oci-archive": { "/srv/a.tar": [{ type: "reject" }] },
      dir: { "/srv/dir": [{ type: "reject" }] },
      sif: { "/srv/x.sif": [{ type: "reject" }] },
      "containers-storage": {
        "[overlay@/var/lib/containers/storage]": [{ type: "reject" }],
        "[/var/lib/containers/storage]docker.io/library/busybox:latest": [{ type: "reject" }],
        [`[vfs@/s]busybox@sha256:${"c".repeat(64)}`]: [{ type: "reject" }],
        [`[vfs@/s]@${"d".repeat(64)}`]: [{ type: "reject" }],
        [`[vfs@/s]busybox@sha256:${"c".repeat(64)}@${"d".repeat(64)}`]: [{ type: "reject" }],
      },
      "docker-daemon": { "busybox:latest": [{ type: "reject" }] },
      atomic: { "host/ns/stream:tag/not/checked": [{ type: "reject" }] },
      ostree: { "anything": [{ type: "reject" }] },
      "no-such-transport": { "whatever": [{ type: "reject" }] },
      tarball: { "": [{ type: "reject" }] },
      "docker-archive": { "": [{ type: "reject" }] },
    }),
  },
  { name: "empty transports", text: policy([{ type: "reject" }], {}) },
  {
    name: "white space and escapes",
    text: ' \n{ "default" : [ { "type" : "rej\\u0065ct" } ] }\n ',
  },
  {
    name: "sigstoreSigned with fulcio and rekor (cfs: unsupported at evaluation)",
    text: req({
      type: "sigstoreSigned",
      fulcio: { caPath: "/ca.pem", oidcIssuer: "https://issuer", subjectEmail: "a@example.com" },
      rekorPublicKeyPath: "/rekor.pub",
      signedIdentity: { type: "matchRepository" },
    }),
    skopeo: "refuses",
  },
  {
    name: "sigstoreSigned with a key and rekor (cfs: unsupported at evaluation)",
    text: req({ type: "sigstoreSigned", keyPath: "/k.pub", rekorPublicKeyData: "AAAA" }),
    skopeo: "refuses",
  },
];

/** Policies both refuse, with the JSON path cfs names. */
export const INVALID: InvalidCase[] = [
  { name: "no default", text: "{}", path: "$.default" },
  { name: "empty default", text: '{"default": []}', path: "$.default" },
  { name: "null default", text: '{"default": null}', path: "$.default" },
  { name: "default not a list", text: '{"default": {"type": "reject"}}', path: "$.default" },
  {
    name: "unknown top-level key",
    text: '{"default":[{"type":"reject"}],"Default":1}',
    path: "$.Default",
  },
  {
    name: "duplicate default",
    text: '{"default":[{"type":"reject"}],"default":[{"type":"reject"}]}',
    path: "$",
  },
  {
    name: "null transports",
    text: '{"default":[{"type":"reject"}],"transports":null}',
    path: "$.transports",
  },
  {
    name: "duplicate transport",
    text: '{"default":[{"type":"reject"}],"transports":{"docker":{},"docker":{}}}',
    path: "$.transports",
  },
  {
    name: "duplicate scope",
    text:
      '{"default":[{"type":"reject"}],"transports":{"docker":{"a":[{"type":"reject"}],"a":[{"type":"reject"}]}}}',
    path: "$.transports.docker",
  },
  {
    name: "empty scope list",
    text: policy([{ type: "reject" }], { docker: { "example.com": [] } }),
    path: '$.transports.docker["example.com"]',
  },
  {
    name: "null requirement",
    text: '{"default":[null]}',
    path: "$.default[0]",
  },
  { name: "unknown requirement type", text: req({ type: "acceptAll" }), path: "$.default[0].type" },
  { name: "missing requirement type", text: req({ keyPath: KEY }), path: "$.default[0].type" },
  { name: "type of the wrong case", text: req({ Type: "reject" }), path: "$.default[0].type" },
  {
    name: "extra key on reject",
    text: req({ type: "reject", why: "x" }),
    path: "$.default[0].why",
  },
  {
    name: "signedBy without keyType",
    text: req({ type: "signedBy", keyPath: KEY }),
    path: "$.default[0].keyType",
  },
  {
    name: "signedBy null keyType",
    text: req(signedBy({ keyType: null, keyPath: KEY })),
    path: "$.default[0].keyType",
  },
  {
    name: "signedBy unknown keyType",
    text: req(signedBy({ keyType: "PGP", keyPath: KEY })),
    path: "$.default[0].keyType",
  },
  { name: "signedBy no key", text: req(signedBy({})), path: "$.default[0]" },
  {
    name: "signedBy two keys",
    text: req(signedBy({ keyPath: KEY, keyData: "AAAA" })),
    path: "$.default[0]",
  },
  {
    name: "signedBy empty keyPath",
    text: req(signedBy({ keyPath: "" })),
    path: "$.default[0].keyPath",
  },
  {
    name: "signedBy null keyPath",
    text: req(signedBy({ keyPath: null })),
    path: "$.default[0].keyPath",
  },
  {
    name: "signedBy null keyPaths",
    text: req(signedBy({ keyPaths: null })),
    path: "$.default[0].keyPaths",
  },
  {
    name: "signedBy null keyData",
    text: req(signedBy({ keyData: null })),
    path: "$.default[0].keyData",
  },
  {
    name: "signedBy keyPath not a string",
    text: req(signedBy({ keyPath: 1 })),
    path: "$.default[0].keyPath",
  },
  {
    name: "signedBy keyPaths a string",
    text: req(signedBy({ keyPaths: KEY })),
    path: "$.default[0].keyPaths",
  },
  {
    name: "signedBy keyPaths of numbers",
    text: req(signedBy({ keyPaths: [1] })),
    path: "$.default[0].keyPaths[0]",
  },
  {
    name: "signedBy keyData not base64",
    text: req(signedBy({ keyData: "not base64!" })),
    path: "$.default[0].keyData",
  },
  {
    name: "signedBy keyData without padding",
    text: req(signedBy({ keyData: "AAECAw" })),
    path: "$.default[0].keyData",
  },
  {
    name: "signedBy keyData url alphabet",
    text: req(signedBy({ keyData: "AA-_" })),
    path: "$.default[0].keyData",
  },
  {
    name: "signedBy unknown key",
    text: req(signedBy({ keyPath: KEY, keyring: KEY })),
    path: "$.default[0].keyring",
  },
  {
    name: "null signedIdentity",
    text: req(signedBy({ keyPath: KEY, signedIdentity: null })),
    path: "$.default[0].signedIdentity",
  },
  {
    name: "unknown signedIdentity",
    text: req(signedBy({ keyPath: KEY, signedIdentity: { type: "matchAnything" } })),
    path: "$.default[0].signedIdentity.type",
  },
  {
    name: "signedIdentity as a string",
    text: req(signedBy({ keyPath: KEY, signedIdentity: "matchExact" })),
    path: "$.default[0].signedIdentity",
  },
  {
    name: "matchExact with an extra key",
    text: req(
      signedBy({ keyPath: KEY, signedIdentity: { type: "matchExact", dockerReference: "a:b" } }),
    ),
    path: "$.default[0].signedIdentity.dockerReference",
  },
  {
    name: "exactReference without a tag",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: { type: "exactReference", dockerReference: "example.com/app" },
    })),
    path: "$.default[0].signedIdentity.dockerReference",
  },
  {
    name: "exactReference upper case",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: { type: "exactReference", dockerReference: "example.com/App:v1" },
    })),
    path: "$.default[0].signedIdentity.dockerReference",
  },
  {
    name: "exactReference missing",
    text: req(signedBy({ keyPath: KEY, signedIdentity: { type: "exactReference" } })),
    path: "$.default[0].signedIdentity.dockerReference",
  },
  {
    name: "exactReference with a bad digest",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: { type: "exactReference", dockerReference: `a@sha256:${"A".repeat(64)}` },
    })),
    path: "$.default[0].signedIdentity.dockerReference",
  },
  {
    name: "exactRepository empty",
    text: req(
      signedBy({ keyPath: KEY, signedIdentity: { type: "exactRepository", dockerRepository: "" } }),
    ),
    path: "$.default[0].signedIdentity.dockerRepository",
  },
  {
    name: "exactRepository an image ID",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: { type: "exactRepository", dockerRepository: "e".repeat(64) },
    })),
    path: "$.default[0].signedIdentity.dockerRepository",
  },
  {
    name: "remapIdentity prefix with upper case in the path",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: {
        type: "remapIdentity",
        prefix: "example.com/App",
        signedPrefix: "example.com",
      },
    })),
    path: "$.default[0].signedIdentity.prefix",
  },
  {
    name: "remapIdentity prefix with a tag",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: {
        type: "remapIdentity",
        prefix: "example.com/a:v1",
        signedPrefix: "example.com",
      },
    })),
    path: "$.default[0].signedIdentity.prefix",
  },
  {
    name: "remapIdentity empty signedPrefix",
    text: req(signedBy({
      keyPath: KEY,
      signedIdentity: { type: "remapIdentity", prefix: "example.com", signedPrefix: "" },
    })),
    path: "$.default[0].signedIdentity.signedPrefix",
  },
  {
    name: "remapIdentity missing signedPrefix",
    text: req(
      signedBy({ keyPath: KEY, signedIdentity: { type: "remapIdentity", prefix: "example.com" } }),
    ),
    path: "$.default[0].signedIdentity.signedPrefix",
  },
  { name: "sigstoreSigned no key", text: req({ type: "sigstoreSigned" }), path: "$.default[0]" },
  {
    name: "sigstoreSigned keyPath and keyData",
    text: req({ type: "sigstoreSigned", keyPath: "/k", keyData: "AAAA" }),
    path: "$.default[0]",
  },
  {
    name: "sigstoreSigned keyPaths",
    text: req({ type: "sigstoreSigned", keyPaths: ["/k"] }),
    path: "$.default[0].keyPaths",
  },
  {
    name: "sigstoreSigned keyType",
    text: req({ type: "sigstoreSigned", keyType: "GPGKeys", keyPath: "/k" }),
    path: "$.default[0].keyType",
  },
  {
    name: "sigstoreSigned fulcio without rekor",
    text: req({
      type: "sigstoreSigned",
      fulcio: { caPath: "/ca.pem", oidcIssuer: "https://i", subjectEmail: "a@b" },
    }),
    path: "$.default[0]",
  },
  {
    name: "sigstoreSigned fulcio without an issuer",
    text: req({
      type: "sigstoreSigned",
      fulcio: { caPath: "/ca.pem", subjectEmail: "a@b" },
      rekorPublicKeyPath: "/r",
    }),
    path: "$.default[0].fulcio.oidcIssuer",
  },
  {
    name: "signedBaseLayer without identity",
    text: req({ type: "signedBaseLayer" }),
    path: "$.default[0].baseLayerIdentity",
  },
  ...[
    ["oci", "relative/path"],
    ["oci", "/"],
    ["oci", "/srv/images/"],
    ["oci", "/srv//images"],
    ["oci", "/srv/./images"],
    ["oci", "/srv/x/../images"],
    ["oci-archive", "a.tar"],
    ["dir", "/srv/dir/"],
    ["sif", "x.sif"],
    ["containers-storage", "busybox"],
    ["containers-storage", "[]busybox"],
    ["containers-storage", "[overlay@relative]busybox"],
    ["containers-storage", "[overlay@]busybox"],
    ["containers-storage", "[/s]busybox@notanid"],
    ["docker-daemon", `sha256:${"0".repeat(64)}`],
    ["tarball", "/x"],
    ["docker-archive", "/x.tar"],
  ].map(([transport, scope]) => ({
    name: `${transport} scope ${JSON.stringify(scope)}`,
    text: policy([{ type: "reject" }], { [transport]: { [scope]: [{ type: "reject" }] } }),
    path: `$.transports.${transport}[${JSON.stringify(scope)}]`,
  })),
  // Not JSON, or not an object.
  { name: "empty file", text: "", path: "$" },
  { name: "a list", text: "[]", path: "$" },
  { name: "a string", text: '"policy"', path: "$" },
  { name: "null", text: "null", path: "$" },
  { name: "trailing data", text: policy([{ type: "reject" }]) + "{}", path: "$" },
  { name: "trailing comma", text: '{"default":[{"type":"reject"}],}', path: "$" },
  { name: "comments", text: '{"default":[{"type":"reject"}] /* no */}', path: "$" },
  { name: "unterminated", text: '{"default":[{"type":"reject"}]', path: "$" },
  { name: "single quotes", text: "{'default':[]}", path: "$" },
  {
    name: "a control character in a string",
    text: '{"default":[{"type":"rej\tect"}]}',
    path: "$.default[0].type",
  },
  { name: "a byte order mark", text: "\ufeff" + policy([{ type: "reject" }]), path: "$" },
];
