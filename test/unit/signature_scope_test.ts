/**
 * scope.ts: an image's policy scopes per transport, as containers/image's
 * PolicyConfigurationIdentity/Namespaces give them, and which requirements apply. Pure (temporary
 * directories only); test/signature_evaluate_test.ts checks the precedence against skopeo.
 *
 * @module
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import { parseImageReference } from "../../lib/oci/reference.ts";
import { imageScopes, requirementsFor, resolvePolicyPath } from "../../lib/signature/scope.ts";
import { parsePolicy } from "../../lib/signature/policy.ts";
import { ImageRefError } from "../../lib/oci/reference.ts";

const D = `sha256:${"ab".repeat(32)}`;

Deno.test("docker: identity, repository, namespaces to the host, then the host's wildcards", () => {
  deepEqual(imageScopes(parseImageReference("docker://127.0.0.1:5000/a/b/c:v1")), {
    transport: "docker",
    scopes: [
      "127.0.0.1:5000/a/b/c:v1",
      "127.0.0.1:5000/a/b/c",
      "127.0.0.1:5000/a/b",
      "127.0.0.1:5000/a",
      "127.0.0.1:5000",
      "*.0.0.1",
      "*.0.1",
      "*.1",
    ],
    dockerReference: "127.0.0.1:5000/a/b/c:v1",
  });
  deepEqual(imageScopes(parseImageReference("docker://busybox")), {
    transport: "docker",
    scopes: [
      "docker.io/library/busybox:latest",
      "docker.io/library/busybox",
      "docker.io/library",
      "docker.io",
      "*.io",
    ],
    dockerReference: "docker.io/library/busybox:latest",
  });
  deepEqual(imageScopes(parseImageReference(`docker://a.b.example.com:443/app@${D}`)).scopes, [
    `a.b.example.com:443/app@${D}`,
    "a.b.example.com:443/app",
    "a.b.example.com:443",
    "*.b.example.com",
    "*.example.com",
    "*.com",
  ]);
  deepEqual(imageScopes(parseImageReference("docker://localhost:5000/x")).scopes, [
    "localhost:5000/x:latest",
    "localhost:5000/x",
    "localhost:5000",
  ]);
});

Deno.test("oci, oci-archive, dir: the resolved path (links followed), then its parents but /", async () => {
  const tmp = await Deno.realPath(await Deno.makeTempDir());
  try {
    await Deno.mkdir(`${tmp}/real/layout`, { recursive: true });
    await Deno.symlink(`${tmp}/real`, `${tmp}/link`);
    await Deno.writeTextFile(`${tmp}/real/a.tar`, "");
    const parents = (p: string) => {
      const out = [p];
      while (p.lastIndexOf("/") > 0) out.push(p = p.slice(0, p.lastIndexOf("/")));
      return out;
    };
    deepEqual(imageScopes(parseImageReference(`oci:${tmp}/link/layout:v1`)), {
      transport: "oci",
      scopes: parents(`${tmp}/real/layout`),
    });
    // Relative to the working directory; `..` is taken lexically before links are followed.
    deepEqual(
      imageScopes(parseImageReference("oci:link/x/../layout"), { cwd: tmp }).scopes,
      parents(`${tmp}/real/layout`),
    );
    deepEqual(
      imageScopes(parseImageReference("oci-archive:link/a.tar:tag"), { cwd: tmp }),
      { transport: "oci-archive", scopes: parents(`${tmp}/real/a.tar`) },
    );
    deepEqual(
      imageScopes(parseImageReference(`dir:${tmp}/link/layout`)),
      { transport: "dir", scopes: parents(`${tmp}/real/layout`) },
    );
    // A path that does not exist yet: its parent is resolved.
    equal(resolvePolicyPath(`${tmp}/link/new`), `${tmp}/real/new`);
    equal(resolvePolicyPath("new", `${tmp}/link`), `${tmp}/real/new`);
    deepEqual(imageScopes(parseImageReference("oci:/")).scopes, ["/"]);
    throws(() => resolvePolicyPath(`${tmp}/missing/a/b`), ImageRefError);
    throws(() => resolvePolicyPath(`${tmp}/missing/..`), ImageRefError);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("containers-storage: [driver@root] with the name, its repositories, the store, [root]", () => {
  const options = { storage: { driver: "overlay", root: "/var/lib/containers/storage" } };
  const s = "[overlay@/var/lib/containers/storage]";
  deepEqual(imageScopes(parseImageReference("containers-storage:busybox"), options), {
    transport: "containers-storage",
    scopes: [
      `${s}docker.io/library/busybox:latest`,
      `${s}docker.io/library/busybox`,
      `${s}docker.io/library`,
      `${s}docker.io`,
      s,
      "[/var/lib/containers/storage]",
    ],
    dockerReference: "docker.io/library/busybox:latest",
  });
  const id = "c".repeat(64);
  deepEqual(
    imageScopes(
      parseImageReference(`containers-storage:[vfs@/s+/run:opt=1]quay.io/a/b:v1@${D}@${id}`),
    ),
    {
      transport: "containers-storage",
      scopes: [
        `[vfs@/s]quay.io/a/b:v1@${D}@${id}`,
        `[vfs@/s]quay.io/a/b:v1@${D}`,
        "[vfs@/s]quay.io/a/b:v1",
        "[vfs@/s]quay.io/a/b",
        "[vfs@/s]quay.io/a",
        "[vfs@/s]quay.io",
        "[vfs@/s]",
        "[/s]",
      ],
      dockerReference: `quay.io/a/b:v1@${D}`,
    },
  );
  deepEqual(imageScopes(parseImageReference(`containers-storage:[vfs@/s]@${id}`)), {
    transport: "containers-storage",
    scopes: [`[vfs@/s]@${id}`, "[vfs@/s]", "[/s]"],
  });
  throws(() => imageScopes(parseImageReference("containers-storage:[vfs@s]x")), ImageRefError);
  throws(
    () => imageScopes(parseImageReference("containers-storage:[vfs@/s]x@nothex")),
    ImageRefError,
  );
  throws(() => imageScopes(parseImageReference("containers-storage:[vfs@/s]UPPER")), ImageRefError);
});

Deno.test("containers-storage: a short image ID and the driver are read from the store", async () => {
  const root = await Deno.makeTempDir();
  try {
    const id = "0123abcd".repeat(8);
    await Deno.mkdir(`${root}/vfs-images`);
    await Deno.writeTextFile(
      `${root}/vfs-images/images.json`,
      JSON.stringify([{ id, names: ["x"] }]),
    );
    deepEqual(imageScopes(parseImageReference(`containers-storage:[${root}]0123ab`)).scopes, [
      `[vfs@${root}]@${id}`,
      `[vfs@${root}]`,
      `[${root}]`,
    ]);
    deepEqual(imageScopes(parseImageReference(`containers-storage:[${root}]x@0123`)).scopes, [
      `[vfs@${root}]docker.io/library/x:latest@${id}`,
      `[vfs@${root}]docker.io/library/x:latest`,
      `[vfs@${root}]docker.io/library/x`,
      `[vfs@${root}]docker.io/library`,
      `[vfs@${root}]docker.io`,
      `[vfs@${root}]`,
      `[${root}]`,
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("docker-archive and other transports: no scopes, only the transport default", () => {
  deepEqual(imageScopes(parseImageReference("docker-archive:/tmp/x.tar")), {
    transport: "docker-archive",
    scopes: [],
  });
});

Deno.test('requirementsFor: the most specific scope, then the transport\'s "", then default', () => {
  const policy = parsePolicy(
    JSON.stringify({
      default: [{ type: "reject" }],
      transports: {
        docker: {
          "": [{ type: "insecureAcceptAnything" }],
          "example.com/ns": [{ type: "reject" }],
          "example.com/ns/app": [{ type: "insecureAcceptAnything" }],
          "example.com/ns/app:v1": [{
            type: "signedBaseLayer",
            baseLayerIdentity: { type: "matchExact" },
          }],
          "*.example.com": [{ type: "reject" }],
        },
        oci: { "/srv": [{ type: "insecureAcceptAnything" }] },
      },
    }),
    "p.json",
  );
  const scopesOf = (ref: string) => imageScopes(parseImageReference(ref)).scopes;
  const pick = (transport: string, scopes: string[]) => requirementsFor(policy, transport, scopes);
  equal(pick("docker", scopesOf("docker://example.com/ns/app:v1")).scope, "example.com/ns/app:v1");
  equal(pick("docker", scopesOf("docker://example.com/ns/app:v2")).scope, "example.com/ns/app");
  equal(pick("docker", scopesOf("docker://example.com/ns/other")).scope, "example.com/ns");
  equal(pick("docker", scopesOf("docker://a.example.com/x")).scope, "*.example.com");
  // The host itself is not matched by its own wildcard.
  equal(pick("docker", scopesOf("docker://example.com/x")).scope, "");
  equal(pick("docker", scopesOf("docker://busybox")).scope, "");
  deepEqual(pick("oci", ["/srv/x", "/srv"]), {
    scope: "/srv",
    requirements: [{ type: "insecureAcceptAnything" }],
  });
  deepEqual(pick("oci", ["/other"]), { requirements: [{ type: "reject" }] });
  deepEqual(pick("dir", ["/srv"]), { requirements: [{ type: "reject" }] });
  // Inherited object keys are not scopes.
  deepEqual(pick("oci", ["toString", "__proto__"]), { requirements: [{ type: "reject" }] });
  deepEqual(pick("toString", []), { requirements: [{ type: "reject" }] });
});
