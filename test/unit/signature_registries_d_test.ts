/**
 * registries.d (lib/signature/registries_d.ts), pure: parsing tables, merging, the scope
 * search for `lookaside` and `use-sigstore-attachments`, and hostile YAML. The expectations are
 * containers/image 5.23's `docker/registries_d.go` behaviour (its tests and docs); the files
 * are read from strings, so nothing here touches the file system or the network.
 *
 * @module
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  builtinLookaside,
  dockerScopes,
  loadYamlParser,
  lookasideFor,
  mergeRegistriesD,
  parseRegistriesDFile,
  type RegistriesD,
  RegistriesDError,
  useSigstoreAttachments,
} from "../../lib/signature/registries_d.ts";
import { parseDockerReference } from "../../lib/oci/reference.ts";

// The parser is imported lazily (lib/signature/registries_d.ts); these tests call it directly.
await loadYamlParser();

const ref = (s: string) => parseDockerReference(s);

function config(files: Record<string, string>): RegistriesD {
  return mergeRegistriesD(
    "/r.d",
    Object.entries(files).map(([name, text]) => ({ path: `/r.d/${name}`, text })),
  );
}

function refused(text: string, pattern: RegExp, name = "bad.yaml"): void {
  throws(() => parseRegistriesDFile(`/r.d/${name}`, text), (e: unknown) => {
    ok(e instanceof RegistriesDError, String(e));
    equal(e.code, "registries-d-invalid");
    ok(e.message.includes(`/r.d/${name}`), e.message);
    ok(!e.message.includes("\n"), e.message);
    ok(pattern.test(e.message), e.message);
    return true;
  });
}

Deno.test("registries.d: candidate scopes as containers/image names them, most specific first", () => {
  deepEqual(dockerScopes(ref("busybox")), [
    "docker.io/library/busybox:latest",
    "docker.io/library/busybox",
    "docker.io/library",
    "docker.io",
    "*.io",
  ]);
  deepEqual(dockerScopes(ref("reg.example.com:5000/ns/sub/repo@sha256:" + "a".repeat(64))), [
    `reg.example.com:5000/ns/sub/repo@sha256:${"a".repeat(64)}`,
    "reg.example.com:5000/ns/sub/repo",
    "reg.example.com:5000/ns/sub",
    "reg.example.com:5000/ns",
    "reg.example.com:5000",
    "*.example.com",
    "*.com",
  ]);
  deepEqual(dockerScopes(ref("localhost:5000/a:v1")), [
    "localhost:5000/a:v1",
    "localhost:5000/a",
    "localhost:5000",
  ]);
});

Deno.test("registries.d: file parsing table", () => {
  const cases: [string, string, unknown][] = [
    ["empty file", "", { docker: {} }],
    ["comments only", "# nothing\n", { docker: {} }],
    ["null document", "~\n", { docker: {} }],
    [
      "default-docker and scopes",
      "default-docker:\n  lookaside: file:///d\ndocker:\n  a.example:\n    lookaside: https://s/x\n" +
      "    lookaside-staging: file:///stage\n    use-sigstore-attachments: true\n",
      {
        defaultDocker: {
          lookaside: "file:///d",
          lookasideStaging: "",
          sigstore: "",
          sigstoreStaging: "",
        },
        docker: {
          "a.example": {
            lookaside: "https://s/x",
            lookasideStaging: "file:///stage",
            sigstore: "",
            sigstoreStaging: "",
            useSigstoreAttachments: true,
          },
        },
      },
    ],
    [
      "older names",
      "docker:\n  h:\n    sigstore: file:///old\n    sigstore-staging: file:///olds\n",
      {
        docker: {
          h: {
            lookaside: "",
            lookasideStaging: "",
            sigstore: "file:///old",
            sigstoreStaging: "file:///olds",
          },
        },
      },
    ],
    [
      "keys match case-blind as Go's JSON decoding, unknown keys ignored",
      "Default-Docker:\n  LOOKASIDE: file:///d\n  other: 1\nunknown: [1, 2]\n",
      {
        defaultDocker: {
          lookaside: "file:///d",
          lookasideStaging: "",
          sigstore: "",
          sigstoreStaging: "",
        },
        docker: {},
      },
    ],
    [
      "null sections and values are empty",
      "default-docker:\ndocker:\n  h:\n  g:\n    lookaside:\n    use-sigstore-attachments: ~\n",
      {
        docker: {
          h: { lookaside: "", lookasideStaging: "", sigstore: "", sigstoreStaging: "" },
          g: { lookaside: "", lookasideStaging: "", sigstore: "", sigstoreStaging: "" },
        },
      },
    ],
    [
      "YAML 1.1 booleans, as Go's yaml.v2",
      "docker:\n  h:\n    use-sigstore-attachments: yes\n  g:\n    use-sigstore-attachments: off\n",
      {
        docker: {
          h: {
            lookaside: "",
            lookasideStaging: "",
            sigstore: "",
            sigstoreStaging: "",
            useSigstoreAttachments: true,
          },
          g: {
            lookaside: "",
            lookasideStaging: "",
            sigstore: "",
            sigstoreStaging: "",
            useSigstoreAttachments: false,
          },
        },
      },
    ],
    [
      "a few aliases are fine",
      "x: &s {lookaside: 'file:///a'}\ndocker:\n  h: *s\n  g: *s\n",
      {
        docker: {
          h: { lookaside: "file:///a", lookasideStaging: "", sigstore: "", sigstoreStaging: "" },
          g: { lookaside: "file:///a", lookasideStaging: "", sigstore: "", sigstoreStaging: "" },
        },
      },
    ],
  ];
  for (const [what, text, want] of cases) {
    const got = parseRegistriesDFile("/r.d/f.yaml", text);
    const plain = (s: any) => {
      if (s === undefined) return undefined;
      const { source, ...rest } = s;
      equal(source, "/r.d/f.yaml", what);
      if (rest.useSigstoreAttachments === undefined) delete rest.useSigstoreAttachments;
      return rest;
    };
    const shaped: any = {
      docker: Object.fromEntries([...got.docker].map(([k, v]) => [k, plain(v)])),
    };
    if (got.defaultDocker !== undefined) shaped.defaultDocker = plain(got.defaultDocker);
    deepEqual(shaped, want, what);
  }
});

Deno.test("registries.d: wrong types and malformed YAML are one-line errors naming the file", () => {
  refused("- a\n- b\n", /top level is a sequence/);
  refused("just a string\n", /top level is a string/);
  refused("docker: [a, b]\n", /"docker" is a sequence/);
  refused("docker: 5\n", /"docker" is a number/);
  refused("default-docker: text\n", /"default-docker" is a string/);
  refused("docker:\n  h: [1]\n", /scope "h" is a sequence/);
  refused("docker:\n  h:\n    lookaside: [x]\n", /"lookaside" is a sequence, not a string/);
  refused("docker:\n  h:\n    lookaside: 5\n", /"lookaside" is a number, not a string/);
  refused("docker:\n  h:\n    lookaside: {a: b}\n", /"lookaside" is a mapping/);
  refused("docker:\n  h:\n    use-sigstore-attachments: 'true'\n", /not a boolean/);
  refused("docker:\n  h:\n    use-sigstore-attachments: 1\n", /not a boolean/);
  refused("docker:\n  h: {}\n  h: {}\n", /not valid YAML/); // duplicate key
  refused("docker: {\n", /not valid YAML/);
  refused("\tdocker: x\n", /not valid YAML/);
  refused("a: 1\n---\nb: 2\n", /more than one YAML document/);
  refused("docker: *nothing\n", /not valid YAML/);
});

Deno.test("registries.d: an alias bomb is refused quickly, naming the file", () => {
  const lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 12; i++) {
    const prev = `*a${i - 1}`;
    lines.push(`a${i}: &a${i} [${Array(10).fill(prev).join(",")}]`);
  }
  lines.push("docker:\n  h:\n    lookaside: file:///x");
  const started = performance.now();
  refused(lines.join("\n") + "\n", /not valid YAML: .*alias/i, "bomb.yaml");
  ok(performance.now() - started < 5000, "the bomb took too long to refuse");
});

Deno.test("registries.d: merging refuses a scope or default-docker given by two files", () => {
  const merged = config({
    "a.yaml": "docker:\n  h/a:\n    lookaside: file:///a\n",
    "b.yaml":
      "default-docker:\n  lookaside: file:///d\ndocker:\n  h/b:\n    lookaside: file:///b\n",
  });
  deepEqual([...merged.docker.keys()], ["h/a", "h/b"]);
  equal(merged.docker.get("h/a")!.source, "/r.d/a.yaml");
  equal(merged.defaultDocker?.lookaside, "file:///d");
  throws(
    () =>
      config({
        "a.yaml": "docker:\n  h/a:\n    lookaside: file:///a\n",
        // even a section that agrees, or an empty one, is a second definition
        "b.yaml": "docker:\n  h/a:\n",
      }),
    (e: unknown) =>
      e instanceof RegistriesDError && e.code === "registries-d-invalid" &&
      /"docker" scope "h\/a" is defined both in \/r\.d\/a\.yaml and here/.test(e.message) &&
      e.message.includes("/r.d/b.yaml"),
  );
  throws(
    () =>
      config({
        "a.yaml": "default-docker: {}\n",
        "b.yaml": "default-docker:\n  lookaside: file:///d\n",
      }),
    /"default-docker" is defined both in \/r\.d\/a\.yaml and here/,
  );
  // `default-docker:` with no value defines nothing, so a second file may define it.
  equal(
    config({
      "a.yaml": "default-docker:\n",
      "b.yaml": "default-docker: {lookaside: 'file:///d'}\n",
    })
      .defaultDocker?.lookaside,
    "file:///d",
  );
});

Deno.test("registries.d: lookaside and attachments come from the most specific scope that sets them", () => {
  const c = config({
    "f.yaml": [
      "default-docker:",
      "  lookaside: file:///default",
      "docker:",
      "  reg.example.com:",
      "    lookaside: https://sigs.example.com/reg",
      "    use-sigstore-attachments: true",
      "  reg.example.com/team:",
      "    lookaside: https://sigs.example.com/team",
      "  reg.example.com/team/app:v2:",
      "    lookaside: file:///v2-only",
      "    use-sigstore-attachments: false",
      "  reg.example.com/old:",
      "    sigstore: file:///older-name",
      "  reg.example.com/empty:",
      "    lookaside-staging: file:///staging-is-not-for-reading",
      "  '*.example.org':",
      "    lookaside: file:///wildcard",
      "  other.example.net:5000:",
      "    use-sigstore-attachments: true",
    ].join("\n") + "\n",
  });
  const table: [string, string, boolean][] = [
    ["reg.example.com/team/app:v1", "https://sigs.example.com/team", true],
    ["reg.example.com/team/app:v2", "file:///v2-only", false],
    ["reg.example.com/team/app@sha256:" + "b".repeat(64), "https://sigs.example.com/team", true],
    ["reg.example.com/x/y:1", "https://sigs.example.com/reg", true],
    ["reg.example.com/old/a:1", "file:///older-name", true],
    // a scope without a reading URL passes the choice on to its parents
    ["reg.example.com/empty/a:1", "https://sigs.example.com/reg", true],
    ["a.b.example.org/x:1", "file:///wildcard", false],
    ["other.example.net:5000/x:1", "file:///default", true],
    // the port-less host is not a parent scope of host:port
    ["reg.example.com:5000/team/app:v1", "file:///default", false],
    ["busybox", "file:///default", false],
  ];
  for (const [image, lookaside, attachments] of table) {
    equal(lookasideFor(c, ref(image)), lookaside, image);
    equal(useSigstoreAttachments(c, ref(image)), attachments, image);
  }
});

Deno.test("registries.d: nothing configured means the built-in lookaside and no attachments", () => {
  const empty = config({});
  equal(lookasideFor(empty, ref("busybox")), builtinLookaside());
  equal(useSigstoreAttachments(empty, ref("busybox")), false);
  ok(
    builtinLookaside() === "file:///var/lib/containers/sigstore" ||
      builtinLookaside().endsWith("/.local/share/containers/sigstore"),
    builtinLookaside(),
  );
});
