/**
 * policy.ts: containers-policy.json(5) parsed as containers/image 5.23 parses it. The cases
 * (signature_policy_cases.ts) are also put to skopeo 1.9.3 by test/signature_evaluate_test.ts,
 * so what is valid here is what skopeo loads. Pure: no network, no subprocess.
 *
 * @module
 */
import { deepEqual, equal, match, ok, rejects, throws } from "node:assert/strict";
import {
  loadPolicy,
  parsePolicy,
  POLICY_SIZE_MAX,
  PolicyError,
} from "../../lib/signature/policy.ts";
import { CfsError } from "../../lib/errors.ts";
import { INVALID, VALID } from "./signature_policy_cases.ts";

const SOURCE = "/etc/containers/policy.json";

for (const c of VALID) {
  Deno.test(`parsePolicy accepts: ${c.name}`, () => {
    const policy = parsePolicy(c.text, SOURCE);
    equal(policy.source, SOURCE);
    ok(policy.default.length > 0);
  });
}

for (const c of INVALID) {
  Deno.test(`parsePolicy refuses: ${c.name}, naming ${c.path}`, () => {
    try {
      parsePolicy(c.text, SOURCE);
    } catch (e) {
      ok(e instanceof PolicyError, String(e));
      ok(e instanceof CfsError);
      equal(e.code, "policy-invalid");
      equal(e.exitCode, 1);
      const prefix = `invalid signature policy ${SOURCE}: ${c.path}: `;
      ok(e.message.startsWith(prefix), `${e.message}\n  should start with ${prefix}`);
      ok(!e.message.includes("\n"), "one line");
      return;
    }
    throw new Error(`accepted: ${c.text}`);
  });
}

Deno.test("parsePolicy: the requirements and identities come out as written", () => {
  const policy = parsePolicy(
    JSON.stringify({
      default: [{ type: "reject" }],
      transports: {
        docker: {
          "example.com/app": [
            {
              type: "signedBy",
              keyType: "GPGKeys",
              keyData: "AAECAw==",
              signedIdentity: {
                type: "remapIdentity",
                prefix: "example.com",
                signedPrefix: "vendor.io",
              },
            },
            { type: "sigstoreSigned", keyPath: "/k.pub" },
          ],
          "": [{ type: "insecureAcceptAnything" }],
        },
      },
    }),
    SOURCE,
  );
  deepEqual(policy.default, [{ type: "reject" }]);
  const [signedBy, sigstore] = policy.transports.docker["example.com/app"];
  deepEqual(signedBy, {
    type: "signedBy",
    keyType: "GPGKeys",
    keyData: new Uint8Array([0, 1, 2, 3]),
    signedIdentity: { type: "remapIdentity", prefix: "example.com", signedPrefix: "vendor.io" },
  });
  // No signedIdentity: matchRepoDigestOrExact, as containers/image defaults it.
  deepEqual(sigstore, {
    type: "sigstoreSigned",
    keyPath: "/k.pub",
    signedIdentity: { type: "matchRepoDigestOrExact" },
  });
  deepEqual(policy.transports.docker[""], [{ type: "insecureAcceptAnything" }]);
});

Deno.test("parsePolicy: key paths are kept as written (read at evaluation, relative to the working directory)", () => {
  const policy = parsePolicy(
    '{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPaths":["rel/a.gpg",null]}]}',
    SOURCE,
  );
  deepEqual(policy.default[0], {
    type: "signedBy",
    keyType: "GPGKeys",
    keyPaths: ["rel/a.gpg", ""],
    signedIdentity: { type: "matchRepoDigestOrExact" },
  });
});

Deno.test("parsePolicy: Fulcio or Rekor marks the sigstore requirement unsupported, with the reason", () => {
  const fulcio = VALID.find((c) => c.name.includes("fulcio and rekor"))!;
  const req = parsePolicy(fulcio.text, SOURCE).default[0];
  equal(req.type, "sigstoreSigned");
  match((req as { unsupported?: string }).unsupported ?? "", /Fulcio.*not supported/);
  const rekor = VALID.find((c) => c.name.includes("a key and rekor"))!;
  match(
    (parsePolicy(rekor.text, SOURCE).default[0] as { unsupported?: string }).unsupported ?? "",
    /Rekor.*not supported/,
  );
});

Deno.test("parsePolicy: a scope or transport named __proto__ is only a name", () => {
  const policy = parsePolicy(
    '{"default":[{"type":"reject"}],"transports":{"__proto__":{"__proto__":[{"type":"reject"}]},' +
      '"docker":{"__proto__":[{"type":"insecureAcceptAnything"}]}}}',
    SOURCE,
  );
  ok(Object.hasOwn(policy.transports, "__proto__"));
  deepEqual(policy.transports.docker["__proto__"], [{ type: "insecureAcceptAnything" }]);
  equal(Object.hasOwn(policy.transports.docker, "toString"), false);
});

Deno.test("parsePolicy: hostile input gets one line, never a crash or a hang", () => {
  const deep = "[".repeat(100000) + "]".repeat(100000);
  const cases = [
    `{"default":${deep}}`,
    `{"default":[{"type":"reject","x":${deep}}]}`,
    '{"default":[{"type":"reject"}],"transports":{"docker":{"' + "a".repeat(1_000_000) + '":[]}}}',
    '{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":' +
    '{"type":"exactReference","dockerReference":"' + "a/".repeat(100000) + 'a:b"}}]}',
    '{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":' +
    '{"type":"remapIdentity","prefix":"' + "a-".repeat(50000) + '!","signedPrefix":"x.io"}}]}',
    '{"default":[1e999999]}',
    '{"default":"\\ud800"}',
    "\u0000",
    "{".repeat(50),
  ];
  for (const text of cases) {
    const started = performance.now();
    throws(() => parsePolicy(text, SOURCE), (e: unknown) => {
      ok(e instanceof PolicyError, String(e));
      ok(!e.message.includes("\n"));
      ok(e.message.length < 2000, `message of ${e.message.length} characters`);
      return true;
    });
    ok(performance.now() - started < 2000, "parsed in under 2 s");
  }
});

Deno.test("loadPolicy: a file that is not UTF-8, too large, a directory or missing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const latin1 = `${dir}/latin1.json`;
    await Deno.writeFile(
      latin1,
      new Uint8Array([
        ...new TextEncoder().encode('{"default":[{"type":"re'),
        0xe9,
        ...new TextEncoder().encode('ject"}]}'),
      ]),
    );
    await rejects(loadPolicy(latin1), (e: PolicyError) => {
      equal(e.code, "policy-invalid");
      equal(e.message, `invalid signature policy ${latin1}: not UTF-8 text`);
      return true;
    });
    const big = `${dir}/big.json`;
    await Deno.writeTextFile(big, '{"default":[{"type":"reject"}]}' + " ".repeat(POLICY_SIZE_MAX));
    await rejects(loadPolicy(big), /larger than 4194304 bytes/);
    await rejects(loadPolicy(dir), (e: PolicyError) => {
      equal(e.code, "policy-invalid");
      match(e.message, /not a regular file/);
      return true;
    });
    await rejects(loadPolicy(`${dir}/missing.json`), (e: PolicyError) => {
      equal(e.code, "policy-not-found");
      equal(e.message, `cannot load the signature policy: ${dir}/missing.json: no such file`);
      return true;
    });
    const good = `${dir}/good.json`;
    await Deno.writeTextFile(good, '{"default":[{"type":"insecureAcceptAnything"}]}');
    deepEqual(await loadPolicy(good), {
      source: good,
      default: [{ type: "insecureAcceptAnything" }],
      transports: {},
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPolicy: without a path, $HOME/.config/containers/policy.json comes first", async () => {
  const home = await Deno.makeTempDir();
  const saved = Deno.env.get("HOME");
  try {
    Deno.env.set("HOME", home);
    await Deno.mkdir(`${home}/.config/containers`, { recursive: true });
    const user = `${home}/.config/containers/policy.json`;
    await Deno.writeTextFile(user, '{"default":[{"type":"reject"}]}');
    equal((await loadPolicy()).source, user);
    await Deno.remove(user);
    // Then /etc/containers/policy.json, whatever this machine has there.
    const system = await loadPolicy().then((p) => p.source, (e: PolicyError) => e.message);
    ok(system === "/etc/containers/policy.json" || system.includes("/etc/containers/policy.json"));
    let exists = true;
    try {
      await Deno.stat("/etc/containers/policy.json");
    } catch {
      exists = false;
    }
    if (!exists) {
      await rejects(loadPolicy(), (e: PolicyError) => {
        equal(e.code, "policy-not-found");
        match(e.message, /\/etc\/containers\/policy\.json: no such file \(nor \$HOME/);
        return true;
      });
    }
  } finally {
    if (saved === undefined) Deno.env.delete("HOME");
    else Deno.env.set("HOME", saved);
    await Deno.remove(home, { recursive: true });
  }
});
