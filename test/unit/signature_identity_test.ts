/**
 * identity.ts: docker references normalized as containers/image's docker/reference does for
 * the policy, and the six `signedIdentity` rules of containers-policy.json(5). Pure.
 *
 * @module
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  formatNamedReference,
  matchesIdentity,
  namedReferenceProblem,
  parseNamedReference,
  remapPrefixProblem,
} from "../../lib/signature/identity.ts";
import { ImageRefError } from "../../lib/oci/reference.ts";
import type { SignedIdentity } from "../../lib/signature/types.ts";

const D1 = `sha256:${"0123456789abcdef".repeat(4)}`;
const D2 = `sha256:${"f".repeat(64)}`;

Deno.test("parseNamedReference: Docker Hub defaults, hosts, tags and digests", () => {
  const table: [string, { name: string; tag?: string; digest?: string }][] = [
    ["busybox", { name: "docker.io/library/busybox" }],
    ["busybox:1.36", { name: "docker.io/library/busybox", tag: "1.36" }],
    ["library/busybox", { name: "docker.io/library/busybox" }],
    ["index.docker.io/library/busybox", { name: "docker.io/library/busybox" }],
    ["index.docker.io/busybox", { name: "docker.io/library/busybox" }],
    ["fedora/httpd:v2", { name: "docker.io/fedora/httpd", tag: "v2" }],
    ["localhost/app", { name: "localhost/app" }],
    ["localhost:5000/ns/app:1", { name: "localhost:5000/ns/app", tag: "1" }],
    ["quay.io/a/b/c", { name: "quay.io/a/b/c" }],
    ["Example.COM/app", { name: "Example.COM/app" }],
    [`busybox@${D1}`, { name: "docker.io/library/busybox", digest: D1 }],
    [`example.com/app:v1@${D1}`, { name: "example.com/app", tag: "v1", digest: D1 }],
    [`a@sha512:${"a".repeat(128)}`, {
      name: "docker.io/library/a",
      digest: `sha512:${"a".repeat(128)}`,
    }],
    [`a@sha384:${"a".repeat(96)}`, {
      name: "docker.io/library/a",
      digest: `sha384:${"a".repeat(96)}`,
    }],
    ["host:5000", { name: "docker.io/library/host", tag: "5000" }],
    ["a__b/c-d--e.f_g", { name: "docker.io/a__b/c-d--e.f_g" }],
    // A first component with '.' is a host even when it is no valid host name: the whole
    // string then still reads as a path, as docker/reference reads it.
    ["a_b.c/foo", { name: "a_b.c/foo" }],
  ];
  for (const [input, expected] of table) {
    deepEqual(parseNamedReference(input), expected, input);
  }
  equal(formatNamedReference(parseNamedReference(`x.io/a:v1@${D1}`)), `x.io/a:v1@${D1}`);
});

Deno.test("parseNamedReference: refusals say why, as ImageRefError", () => {
  const table: [string, RegExp][] = [
    ["", /invalid reference format/],
    ["Busybox", /must be lowercase/],
    ["example.com/App", /must be lowercase/],
    ["a".repeat(64).replace(/a/g, "e"), /image ID/],
    ["busybox:", /invalid reference format/],
    ["busybox:-x", /invalid reference format/],
    [`busybox:${"t".repeat(129)}`, /invalid reference format/],
    ["a:b:c", /invalid reference format/],
    ["-a", /invalid reference format/],
    ["[::1]:5000/a", /invalid reference format/],
    ["example.com:port/a", /invalid reference format/],
    ["a b", /invalid reference format/],
    ["a/", /invalid reference format/],
    [`a@sha256:${"A".repeat(64)}`, /invalid sha256 digest/],
    [`a@sha256:${"a".repeat(63)}`, /invalid sha256 digest/],
    [`a@sha256:${"a".repeat(31)}`, /invalid reference format/],
    [`a@md5:${"a".repeat(32)}`, /unsupported digest algorithm "md5"/],
    [`a@sha256:${"a".repeat(65)}`, /invalid sha256 digest/],
    [`example.com/${"a".repeat(250)}`, /longer than 255/],
    ["x".repeat(5000), /longer than 1024/],
  ];
  for (const [input, reason] of table) {
    throws(() => parseNamedReference(input), (e: unknown) => {
      ok(e instanceof ImageRefError, `${input}: ${e}`);
      ok(reason.test(e.message), `${input}: ${e.message}`);
      return true;
    });
    ok(namedReferenceProblem(input) !== undefined);
  }
});

Deno.test("parseNamedReference: hostile input is refused quickly", () => {
  const inputs = [
    "a".repeat(1000) + "!",
    "a-".repeat(500) + "!",
    "a.".repeat(400) + "a:1/" + "b".repeat(100) + "!",
    ("a" + "-".repeat(30)).repeat(30) + "/",
    "a/".repeat(500),
  ];
  for (const input of inputs) {
    const started = performance.now();
    equal(typeof namedReferenceProblem(input), "string", input.slice(0, 40));
    ok(performance.now() - started < 200, `${input.slice(0, 40)}: under 200 ms`);
  }
});

Deno.test("remapPrefixProblem: hosts and host-prefixed repositories only", () => {
  for (
    const good of [
      "example.com",
      "mirror:5000",
      "localhost",
      "busybox",
      "example.com/ns",
      "ns/repo",
    ]
  ) {
    equal(remapPrefixProblem(good), undefined, good);
  }
  for (
    const bad of ["", "example.com/", "example.com/App", "example.com/a:v1", `x.io/a@${D1}`, "a b"]
  ) {
    ok(remapPrefixProblem(bad) !== undefined, bad);
  }
});

type Row = [image: string | undefined, signature: string, expected: boolean];

function check(identity: SignedIdentity, rows: Row[]): void {
  for (const [image, signature, expected] of rows) {
    equal(
      matchesIdentity(identity, image, signature),
      expected,
      `${identity.type}: image ${image} signature ${signature}`,
    );
  }
}

Deno.test("matchExact: the signature names the image exactly (tag or digest)", () => {
  check({ type: "matchExact" }, [
    ["docker.io/library/busybox:latest", "busybox:latest", true],
    ["docker.io/library/busybox:latest", "docker.io/library/busybox:latest", true],
    ["docker.io/library/busybox:latest", "busybox", false],
    ["docker.io/library/busybox:latest", "busybox:1", false],
    ["docker.io/library/busybox:latest", `busybox@${D1}`, false],
    [`example.com/app@${D1}`, `example.com/app@${D1}`, true],
    [`example.com/app@${D1}`, `example.com/app@${D2}`, false],
    [`example.com/app@${D1}`, "example.com/app:v1", false],
    [`example.com/app:v1@${D1}`, `example.com/app:v1@${D1}`, true],
    [`example.com/app:v1@${D1}`, "example.com/app:v1", false],
    [undefined, "busybox:latest", false],
    ["docker.io/library/busybox:latest", "BUSYBOX:latest", false],
  ]);
});

Deno.test("matchRepoDigestOrExact: a tag exactly, a digest by repository", () => {
  check({ type: "matchRepoDigestOrExact" }, [
    ["example.com/app:v1", "example.com/app:v1", true],
    ["example.com/app:v1", "example.com/app:v2", false],
    ["example.com/app:v1", "example.com/app", false],
    [`example.com/app@${D1}`, "example.com/app:v2", true],
    [`example.com/app@${D1}`, `example.com/app@${D2}`, true],
    [`example.com/app@${D1}`, "example.com/app", false],
    [`example.com/app@${D1}`, "example.com/other:v1", false],
    // With a tag and a digest the image counts as tagged.
    [`example.com/app:v1@${D1}`, `example.com/app:v1@${D1}`, true],
    [`example.com/app:v1@${D1}`, "example.com/app:v1", false],
    [undefined, "example.com/app:v1", false],
    ["example.com/app", "example.com/app:v1", false],
  ]);
});

Deno.test("matchRepository: any signature of the same repository", () => {
  check({ type: "matchRepository" }, [
    ["example.com/app:v1", "example.com/app:v2", true],
    ["example.com/app:v1", "example.com/app", true],
    [`example.com/app@${D1}`, "example.com/app", true],
    ["docker.io/library/busybox:latest", "busybox", true],
    ["example.com/app:v1", "example.com/app2:v1", false],
    ["example.com/app:v1", "example.org/app:v1", false],
    [undefined, "example.com/app", false],
  ]);
});

Deno.test("exactReference and exactRepository: the policy's reference, whatever the image", () => {
  check({ type: "exactReference", dockerReference: "vendor.io/product:1.0" }, [
    [undefined, "vendor.io/product:1.0", true],
    ["example.com/mirror:1.0", "vendor.io/product:1.0", true],
    ["example.com/mirror:1.0", "example.com/mirror:1.0", false],
    [undefined, "vendor.io/product:1.1", false],
    [undefined, "vendor.io/product", false],
  ]);
  check({ type: "exactReference", dockerReference: "busybox:latest" }, [
    [undefined, "docker.io/library/busybox:latest", true],
  ]);
  check({ type: "exactRepository", dockerRepository: "vendor.io/product" }, [
    [undefined, "vendor.io/product", true],
    [undefined, "vendor.io/product:any", true],
    [undefined, `vendor.io/product@${D2}`, true],
    [undefined, "vendor.io/product2:any", false],
    ["vendor.io/product:1", "example.com/x:1", false],
  ]);
});

Deno.test("remapIdentity: the image's prefix is replaced, then matchRepoDigestOrExact", () => {
  const mirror: SignedIdentity = {
    type: "remapIdentity",
    prefix: "private-mirror:5000/vendor-mirror",
    signedPrefix: "vendor.example.com",
  };
  check(mirror, [
    [
      "private-mirror:5000/vendor-mirror/product/image:latest",
      "vendor.example.com/product/image:latest",
      true,
    ],
    [
      "private-mirror:5000/vendor-mirror/product/image:latest",
      "vendor.example.com/product/image:v2",
      false,
    ],
    [`private-mirror:5000/vendor-mirror/image@${D1}`, "vendor.example.com/image:v2", true],
    // Not remapped: the image's own identity must match.
    ["private-mirror:5000/vendor-mirror-2/image:1", "vendor.example.com-2/image:1", false],
    [
      "private-mirror:5000/vendor-mirror-2/image:1",
      "private-mirror:5000/vendor-mirror-2/image:1",
      true,
    ],
    [
      "private-mirror:5000/vendor-mirror/image:1",
      "private-mirror:5000/vendor-mirror/image:1",
      false,
    ],
    [undefined, "vendor.example.com/image:1", false],
  ]);
  // The whole repository name can be the prefix.
  check({ type: "remapIdentity", prefix: "example.com/app", signedPrefix: "vendor.io/product" }, [
    ["example.com/app:v1", "vendor.io/product:v1", true],
    ["example.com/application:v1", "vendor.io/productlication:v1", false],
  ]);
  // A remapped reference that is not in normalized form matches nothing (containers/image
  // re-parses it strictly): docker.io/busybox is docker.io/library/busybox.
  check({ type: "remapIdentity", prefix: "example.com", signedPrefix: "docker.io" }, [
    ["example.com/busybox:latest", "docker.io/library/busybox:latest", false],
    ["example.com/busybox:latest", "docker.io/busybox:latest", false],
    ["example.com/ns/busybox:latest", "docker.io/ns/busybox:latest", true],
  ]);
});

Deno.test("matchesIdentity never throws on hostile references", () => {
  const identities: SignedIdentity[] = [
    { type: "matchExact" },
    { type: "matchRepoDigestOrExact" },
    { type: "matchRepository" },
    { type: "exactReference", dockerReference: "not a reference" },
    { type: "exactRepository", dockerRepository: "\u0000" },
    { type: "remapIdentity", prefix: "x.io", signedPrefix: "%%%" },
  ];
  const hostile = ["", "\u0000", "a".repeat(100000), "a-".repeat(50000) + "!", "$&$1", "../../x:1"];
  for (const identity of identities) {
    for (const s of hostile) {
      equal(matchesIdentity(identity, s, s), false, `${identity.type} ${s.slice(0, 20)}`);
      equal(matchesIdentity(identity, "x.io/a:1", s), false);
    }
  }
  check({ type: "remapIdentity", prefix: "x.io", signedPrefix: "%%%" }, [[
    "x.io/a:1",
    "x.io/a:1",
    false,
  ]]);
});
