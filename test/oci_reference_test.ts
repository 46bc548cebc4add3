import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  formatImageReference,
  ImageRefError,
  parseDockerReference,
  parseImageReference,
} from "../lib/oci/reference.ts";
import { DigestError, parseDigest } from "../lib/oci/digest.ts";

const HEX = "a".repeat(64);
const DIGEST = `sha256:${HEX}`;

function rejects(input: string, pattern: RegExp) {
  throws(() => parseImageReference(input), (e: unknown) => {
    ok(e instanceof ImageRefError, `not an ImageRefError: ${e}`);
    ok(!e.message.includes("\n"), "one line");
    ok(e.message.includes(JSON.stringify(input).slice(0, 60)), `names the input: ${e.message}`);
    ok(pattern.test(e.message), `${e.message} !~ ${pattern}`);
    return true;
  });
}

Deno.test("oci: path and optional image name, split at the first colon", () => {
  deepEqual(parseImageReference("oci:/srv/layout"), {
    transport: "oci",
    path: "/srv/layout",
    tag: undefined,
  });
  deepEqual(parseImageReference("oci:/srv/layout:v1"), {
    transport: "oci",
    path: "/srv/layout",
    tag: "v1",
  });
  // As containers/image: the name may itself contain ':' (skopeo 1.9 opens /tmp/a for oci:/tmp/a:b:c).
  deepEqual(parseImageReference("oci:/tmp/a:b:c"), {
    transport: "oci",
    path: "/tmp/a",
    tag: "b:c",
  });
  deepEqual(parseImageReference("oci:rel/dir:Foo.Bar-1"), {
    transport: "oci",
    path: "rel/dir",
    tag: "Foo.Bar-1",
  });
  deepEqual(parseImageReference("oci:/tmp/a:"), {
    transport: "oci",
    path: "/tmp/a",
    tag: undefined,
  });
  deepEqual(parseImageReference("oci:/srv/with space:v1"), {
    transport: "oci",
    path: "/srv/with space",
    tag: "v1",
  });
  deepEqual(parseImageReference("oci:./x:quay.io/org/img:1.0"), {
    transport: "oci",
    path: "./x",
    tag: "quay.io/org/img:1.0",
  });
});

Deno.test("oci-archive: same rules", () => {
  deepEqual(parseImageReference("oci-archive:/tmp/img.tar"), {
    transport: "oci-archive",
    path: "/tmp/img.tar",
    tag: undefined,
  });
  deepEqual(parseImageReference("oci-archive:/tmp/img.tar:latest"), {
    transport: "oci-archive",
    path: "/tmp/img.tar",
    tag: "latest",
  });
});

Deno.test("oci: hostile names and paths", () => {
  rejects("oci:", /no layout path/);
  rejects("oci::tag", /no layout path/);
  rejects("oci:/tmp/a:@1", /invalid image name "@1"/);
  rejects("oci:/tmp/a:-x", /invalid image name/);
  rejects("oci:/tmp/a:x y", /invalid image name/);
  rejects("oci:/tmp/a:x//y", /invalid image name/);
  rejects("oci:/tmp/a:x\u0000", /control character/);
  rejects("oci:/tmp/a\nb", /control character/);
});

Deno.test("docker: Docker Hub normalisation and default tag", () => {
  deepEqual(parseImageReference("docker://busybox"), {
    transport: "docker",
    domain: "docker.io",
    repository: "library/busybox",
    tag: "latest",
    digest: undefined,
  });
  deepEqual(parseImageReference("docker://user/app:1.2"), {
    transport: "docker",
    domain: "docker.io",
    repository: "user/app",
    tag: "1.2",
    digest: undefined,
  });
  deepEqual(parseImageReference("docker://index.docker.io/busybox"), {
    transport: "docker",
    domain: "docker.io",
    repository: "library/busybox",
    tag: "latest",
    digest: undefined,
  });
  // Without '.', ':' or localhost the first component is a Docker Hub namespace.
  equal((parseImageReference("docker://registry/app") as any).domain, "docker.io");
  // localhost:5000 alone is a name with a tag, as in distribution/reference.
  deepEqual(parseImageReference("docker://localhost:5000"), {
    transport: "docker",
    domain: "docker.io",
    repository: "library/localhost",
    tag: "5000",
    digest: undefined,
  });
});

Deno.test("docker: registry hosts, ports, IPv6 and digests", () => {
  deepEqual(parseImageReference("docker://quay.io/fedora/fedora-bootc:41"), {
    transport: "docker",
    domain: "quay.io",
    repository: "fedora/fedora-bootc",
    tag: "41",
    digest: undefined,
  });
  deepEqual(parseImageReference(`docker://127.0.0.1:5000/a/b/c@${DIGEST}`), {
    transport: "docker",
    domain: "127.0.0.1:5000",
    repository: "a/b/c",
    tag: undefined,
    digest: DIGEST,
  });
  deepEqual(parseImageReference("docker://localhost/x"), {
    transport: "docker",
    domain: "localhost",
    repository: "x",
    tag: "latest",
    digest: undefined,
  });
  deepEqual(parseImageReference("docker://[::1]:5000/img:t"), {
    transport: "docker",
    domain: "[::1]:5000",
    repository: "img",
    tag: "t",
    digest: undefined,
  });
  equal(
    (parseImageReference("docker://Registry.Example.COM/x") as any).domain,
    "Registry.Example.COM",
  );
  equal(
    (parseImageReference(`docker://x@sha512:${"b".repeat(128)}`) as any).digest,
    `sha512:${"b".repeat(128)}`,
  );
  equal(
    (parseImageReference("docker://a/b__c.d-e---f:T_1.x-") as any).repository,
    "a/b__c.d-e---f",
  );
});

Deno.test("docker: hostile input, each with a clear one-line error", () => {
  rejects("", /empty/);
  rejects(" docker://busybox", /white space/);
  rejects("docker://busybox ", /white space/);
  rejects("docker://busy box", /white space/);
  rejects("docker:busybox", /must start with \/\//);
  rejects("docker://", /empty image name/);
  rejects("docker://Busybox", /must be lowercase/);
  rejects("docker://quay.io/Org/app", /must be lowercase/);
  // As containers/image: an uppercase first component is not a host.
  rejects("docker://Foo/bar", /must be lowercase/);
  rejects(`docker://busybox@sha256:${"A".repeat(64)}`, /lowercase hexadecimal/);
  rejects("docker://busybox@sha256:abc", /needs 64 hex digits/);
  rejects(`docker://busybox@md5:${"a".repeat(32)}`, /unsupported algorithm/);
  rejects(`docker://busybox@sha384:${"a".repeat(96)}`, /unsupported algorithm/);
  rejects("docker://busybox@", /bad digest/);
  rejects(`docker://busybox:1@${DIGEST}`, /tag and a digest together/);
  rejects(`docker://busybox:${"t".repeat(129)}`, /tag longer than 128/);
  rejects("docker://busybox:.hidden", /invalid tag/);
  rejects("docker://busybox:-x", /invalid tag/);
  rejects("docker://busybox:a+b", /invalid tag/);
  rejects("docker://busybox:", /invalid tag/);
  rejects("docker://a:99999/x", /port 99999 out of range/);
  rejects("docker://a:0/x", /port 0 out of range/);
  rejects("docker://a:/x", /invalid registry port/);
  rejects("docker://a:b:c/x", /invalid registry port "b:c"/);
  rejects("docker://-bad.host/x", /invalid registry host/);
  rejects("docker://[zz]:1/x", /invalid registry host/);
  rejects("docker://quay.io/", /invalid repository path component ""/);
  rejects("docker://a//b", /invalid repository path component/);
  rejects("docker://a/-b", /invalid repository path component/);
  rejects("docker://a/b_", /invalid repository path component/);
  rejects(`docker://${HEX}`, /image ID/);
  rejects(`docker://quay.io/${"a".repeat(250)}`, /longer than 255/);
});

Deno.test("other transports", () => {
  deepEqual(parseImageReference("containers-storage:quay.io/x/y:1"), {
    transport: "containers-storage",
    name: "quay.io/x/y:1",
  });
  deepEqual(parseImageReference("containers-storage:[overlay@/var/lib/c]img"), {
    transport: "containers-storage",
    name: "[overlay@/var/lib/c]img",
  });
  deepEqual(parseImageReference("docker-archive:/tmp/x.tar:img:1"), {
    transport: "other",
    name: "docker-archive",
    reference: "/tmp/x.tar:img:1",
  });
  deepEqual(parseImageReference("dir:/tmp/d"), {
    transport: "other",
    name: "dir",
    reference: "/tmp/d",
  });
  rejects("containers-storage:", /needs an image name/);
  rejects("dir:", /needs a reference/);
  rejects("busybox", /no transport/);
  rejects("quay.io/x/y", /no transport/);
  rejects("http://example.com/x", /unknown transport "http"/);
  rejects("registry:quay.io/x", /unknown transport/);
});

Deno.test("formatImageReference gives back what skopeo accepts", () => {
  for (
    const [input, out] of [
      ["docker://busybox", "docker://docker.io/library/busybox:latest"],
      [`docker://127.0.0.1:5000/a@${DIGEST}`, `docker://127.0.0.1:5000/a@${DIGEST}`],
      ["oci:/x:t", "oci:/x:t"],
      ["oci:/x", "oci:/x"],
      ["oci-archive:/x.tar:t", "oci-archive:/x.tar:t"],
      ["containers-storage:img", "containers-storage:img"],
      ["dir:/d", "dir:/d"],
    ]
  ) {
    equal(formatImageReference(parseImageReference(input)), out);
    // Idempotent.
    equal(formatImageReference(parseImageReference(out)), out);
  }
});

Deno.test("parseDockerReference parses a bare name", () => {
  deepEqual(parseDockerReference("quay.io/a/b:1"), {
    transport: "docker",
    domain: "quay.io",
    repository: "a/b",
    tag: "1",
    digest: undefined,
  });
  throws(() => parseDockerReference("A"), ImageRefError);
});

Deno.test("parseDigest: strict sha256/sha512", () => {
  deepEqual(parseDigest(DIGEST), { algorithm: "sha256", hex: HEX, digest: DIGEST });
  for (
    const bad of [
      "",
      "sha256:",
      `sha256:${HEX}0`,
      `SHA256:${HEX}`,
      `sha256:${HEX.toUpperCase()}`,
      `sha256:../../${HEX.slice(6)}`,
      `sha256:${HEX.slice(1)}/`,
      `sha1:${"a".repeat(40)}`,
    ]
  ) {
    throws(() => parseDigest(bad), DigestError, bad);
  }
});
