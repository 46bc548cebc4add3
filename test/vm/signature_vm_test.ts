/**
 * The signature policy inside the VM boot harness's initramfs (issue 12): cfs checks GPG simple
 * signatures on its own, in a busybox guest that has no skopeo, no gpg and no containers
 * configuration, reaching the host's registry over QEMU's user-mode network. ONE boot:
 *
 * - on the host, skopeo pushes three images to a real registry (test/fixtures/registry.ts):
 *   `cfs/signed:v1` signed by alice, `cfs/other-key:v1` signed by bob (another content), and
 *   `cfs/unsigned:v1` (that content, no signature); the simple signatures go to a file://
 *   lookaside through a temporary registries.d, and name the reference the guest pulls,
 *   `10.0.2.2:PORT/cfs/...:v1` (`--sign-identity`);
 * - one policy.json, the same bytes on the host and in the guest: default `reject`, and for the
 *   registry `10.0.2.2:PORT` `signedBy` alice's key (inline `keyData`, so no path differs);
 * - skopeo decides first, as the oracle: `skopeo copy` of `docker://10.0.2.2:PORT/cfs/...:v1`
 *   with that policy, read from 127.0.0.1:PORT through a registries.conf mirror (so that the
 *   reference, the scope and the signed identity are the guest's): the signed image accepted,
 *   the other two rejected by the policy;
 * - in the guest (`command -v skopeo` fails there): `cfs --json pull --signature-policy ...
 *   --registries.d ...` of the signed image exits 0 with an accepted decision for the
 *   `10.0.2.2:PORT` scope and the manifest digest skopeo reported; the other two exit 4 with
 *   `signature-rejected` naming the policy file, write nothing to the repository (its file
 *   listing is unchanged), leave only the signed image's tag, and `cfs fsck` is clean.
 *
 * No skipping: a missing registry, skopeo, gpg, QEMU or guest kernel fails the test.
 *
 * @module
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { checkGuestPrerequisites, outputText, runCfsInGuest, stepSeconds } from "./guest_cfs.ts";
import { buildOciImage, CommandError, haveProgram } from "../fixtures/oci.ts";
import { startRegistry } from "../fixtures/registry.ts";
import { type GpgKey, makeGpgKeys, writeRegistriesD } from "../fixtures/signing.ts";
import { Field, SIGNATURE_CHECKED } from "../../lib/log.ts";

/** Where the guest finds the policy files: the first of the harness's read-only trees. */
const GUEST_DIR = "/trees/0";

/** Throws (never skips) when a host tool this test needs is missing. */
async function requireHostTools(): Promise<void> {
  const missing: string[] = [];
  for (const [name, hint] of [["gpg", "gnupg"], ["gpgconf", "gnupg"], ["skopeo", "skopeo"]]) {
    if (!(await haveProgram(name))) missing.push(`${name} (apt-get install ${hint})`);
  }
  if (missing.length) throw new Error(`missing on the host: ${missing.join(", ")}`);
  checkGuestPrerequisites();
}

/** Runs skopeo with extra environment (GNUPGHOME for signing); throws with its stderr. */
async function skopeo(args: string[], env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command("skopeo", {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new CommandError(["skopeo", ...args], out.code, new TextDecoder().decode(out.stderr));
  }
  return new TextDecoder().decode(out.stdout);
}

/** skopeo's decision on pulling `ref` under `policy` (the oracle). */
async function skopeoDecides(
  o: { policy: string; registriesD: string; registriesConf: string; ref: string; tmp: string },
): Promise<{ accepted: boolean; stderr: string }> {
  const dest = await Deno.makeTempDir({ dir: o.tmp, prefix: "skopeo-dest-" });
  const out = await new Deno.Command("skopeo", {
    args: [
      "--registries-conf",
      o.registriesConf,
      "--policy",
      o.policy,
      "--registries.d",
      o.registriesD,
      "copy",
      "--quiet",
      "--src-tls-verify=false",
      "--remove-signatures", // an OCI layout holds none
      o.ref,
      `oci:${dest}:x`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(dest, { recursive: true });
  return { accepted: out.success, stderr: new TextDecoder().decode(out.stderr).trim() };
}

/** The JSON lines of a `cfs --json` run's stdout. */
function jsonLines(text: string): Record<string, unknown>[] {
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

Deno.test("signature policy in the VM guest: cfs checks GPG signatures without skopeo", async () => {
  await requireHostTools();
  const dir = await Deno.makeTempDir({ prefix: "cfs-signature-vm-" });
  await using registry = await startRegistry();
  const H = registry.host; // 127.0.0.1:PORT, where the host pushes
  const G = `10.0.2.2:${registry.port}`; // the same registry as the guest sees it
  const keys = await makeGpgKeys(join(dir, "keys"), ["alice", "bob"]);
  try {
    // --- images, signed on the host ---------------------------------------------------
    const layout = async (name: string, text: string) => {
      const d = join(dir, name);
      await buildOciImage(d, {
        tag: "v1",
        layers: [[
          { type: "dir", path: "boot" }, // pull's bootable stage wants /boot and /sysroot
          { type: "dir", path: "sysroot" },
          { type: "file", path: "usr/share/signed", content: `${text}\n` },
        ]],
      });
      return `oci:${d}:v1`;
    };
    const A = await layout("a", "signed by alice");
    const B = await layout("b", "not signed by alice");
    // The guest's files: policy, registries.d and the lookaside the pushes write into.
    const guest = join(dir, "guest");
    const lookaside = join(guest, "lookaside");
    await Deno.mkdir(lookaside, { recursive: true });
    const pushD = await writeRegistriesD(join(dir, "push-registries.d"), H, lookaside);
    const push = async (source: string, name: string, key?: GpgKey) => {
      await skopeo([
        "--insecure-policy",
        "--registries.d",
        pushD,
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        ...(key ? ["--sign-by", key.fingerprint, "--sign-identity", `${G}/${name}`] : []),
        source,
        `docker://${H}/${name}`,
      ], key ? { GNUPGHOME: key.home } : {});
      const inspect = JSON.parse(
        await skopeo(["inspect", "--tls-verify=false", "--no-tags", `docker://${H}/${name}`]),
      );
      return { ref: `docker://${G}/${name}`, digest: inspect.Digest as string };
    };
    const { alice, bob } = keys.keys;
    const img = {
      signed: await push(A, "cfs/signed:v1", alice),
      otherKey: await push(B, "cfs/other-key:v1", bob),
      unsigned: await push(B, "cfs/unsigned:v1"),
    };
    const sigFile = (repo: string, digest: string) =>
      join(lookaside, `${repo}@${digest.replace(":", "=")}`, "signature-1");
    // skopeo wrote both signatures (bob's image is refused for its key, not for lacking one).
    ok((await Deno.stat(sigFile("cfs/signed", img.signed.digest))).size > 0);
    ok((await Deno.stat(sigFile("cfs/other-key", img.otherKey.digest))).size > 0);
    await Deno.stat(join(lookaside, "cfs/unsigned")).then(
      () => ok(false, "the unsigned image has a lookaside directory"),
      () => {},
    );

    // --- the policy, the same bytes for skopeo and the guest ----------------------------
    const policyJson = JSON.stringify({
      default: [{ type: "reject" }],
      transports: {
        docker: {
          [G]: [{
            type: "signedBy",
            keyType: "GPGKeys",
            keyData: btoa(String.fromCharCode(...await Deno.readFile(alice.publicBinary))),
          }],
        },
      },
    });
    await Deno.writeTextFile(join(guest, "policy.json"), policyJson);
    await writeRegistriesD(join(guest, "registries.d"), G, `${GUEST_DIR}/lookaside`);

    // --- skopeo, the oracle: the guest's references, read through a mirror ---------------
    const hostD = await writeRegistriesD(join(dir, "host-registries.d"), H, lookaside);
    const registriesConf = join(dir, "registries.conf");
    await Deno.writeTextFile(
      registriesConf,
      [
        "[[registry]]",
        `location = "${G}"`,
        "insecure = true",
        "[[registry.mirror]]",
        `location = "${H}"`,
        "insecure = true",
        "",
      ].join("\n"),
    );
    const oracle = async (ref: string) =>
      await skopeoDecides({
        policy: join(guest, "policy.json"),
        registriesD: hostD,
        registriesConf,
        ref,
        tmp: dir,
      });
    const signedByOracle = await oracle(img.signed.ref);
    ok(signedByOracle.accepted, `skopeo refused the signed image: ${signedByOracle.stderr}`);
    // The policy's refusals, not failures to reach the images (e.g. through the mirror); bob's
    // signature was found and refused, the unsigned image had none.
    const NONE = /no signature exists/;
    for (const [image, none] of [[img.otherKey, false], [img.unsigned, true]] as const) {
      const d = await oracle(image.ref);
      ok(!d.accepted, `skopeo accepted ${image.ref}`);
      match(d.stderr, /Source image rejected/, `skopeo on ${image.ref}: ${d.stderr}`);
      equal(NONE.test(d.stderr), none, `skopeo on ${image.ref}: ${d.stderr}`);
      console.error(`skopeo on ${image.ref}: ${d.stderr}`);
    }

    // --- the guest ----------------------------------------------------------------------
    const P = `${GUEST_DIR}/policy.json`;
    const script = `
if command -v skopeo; then echo "skopeo is in the guest"; exit 90; fi
R=/plain/repo
pull() {
  cfs --json --repo $R pull --allow-missing-fsverity --signature-policy ${P} \\
    --registries.d ${GUEST_DIR}/registries.d --tls-verify=false "$1"
}
listing() { (cd $R && find . | sort && find . -type f | sort | xargs md5sum); }
rec signed pull ${img.signed.ref}
listing > $OUT/before.list
rec other_key pull ${img.otherKey.ref}
rec unsigned pull ${img.unsigned.ref}
listing > $OUT/after.list
rec images cfs --json --repo $R oci images
rec fsck cfs --repo $R fsck
true
`;
    const t0 = performance.now();
    const r = await runCfsInGuest({
      script,
      trees: [guest],
      plainDiskMiB: 256,
      network: true,
      timeoutMs: 900_000,
      log: (s) => console.error(`[${((performance.now() - t0) / 1000).toFixed(1)} s] ${s}`),
    });
    console.error(
      `guest steps (s): ${JSON.stringify(stepSeconds(r))}; ${JSON.stringify(r.timings)}`,
    );
    const step = (name: string) => ({
      rc: Number(outputText(r, `${name}.rc`)),
      out: outputText(r, `${name}.out`),
      err: outputText(r, `${name}.err`),
    });
    const why = (name: string) => {
      const s = step(name);
      return `${name}: exit ${s.rc}\n${s.out}${s.err}\n--- guest log ---\n${r.log}`;
    };
    equal(r.exitCode, 0, `guest script: ${r.log}`);

    // The signed image: accepted by cfs as by skopeo, for the guest's scope.
    const signed = step("signed");
    equal(signed.rc, 0, why("signed"));
    const lines = jsonLines(signed.out);
    const result = lines.at(-1)?.result as { manifest: string; tag: string } | undefined;
    equal(result?.manifest, img.signed.digest, why("signed"));
    const decisions = lines.filter((l) => l.id === SIGNATURE_CHECKED);
    equal(decisions.length, 1, why("signed"));
    equal(decisions[0][Field.POLICY_DECISION], "accepted", why("signed"));
    equal(decisions[0][Field.POLICY_SCOPE], G, why("signed"));
    equal(decisions[0][Field.POLICY], P, why("signed"));

    // The other key and no signature: rejected, exit 4, nothing written.
    for (const [name, none] of [["other_key", false], ["unsigned", true]] as const) {
      const s = step(name);
      equal(s.rc, 4, why(name));
      const error = jsonLines(s.out).at(-1)?.error as Record<string, unknown> | undefined;
      equal(error?.code, "signature-rejected", why(name));
      equal(error?.exitCode, 4, why(name));
      const message = String(error?.message);
      console.error(`cfs in the guest, ${name}: ${message}`);
      ok(message.includes(P), `names the policy file: ${why(name)}`);
      ok(message.includes(G), `names the scope: ${why(name)}`);
      // As skopeo: bob's signature was read and refused; the unsigned image had none.
      equal(message.includes("no simple signing signature exists"), none, why(name));
    }
    equal(outputText(r, "after.list"), outputText(r, "before.list"), "the rejections wrote");
    ok(outputText(r, "before.list").includes("./meta.json"), outputText(r, "before.list"));

    const images = step("images");
    equal(images.rc, 0, why("images"));
    deepEqual(
      JSON.parse(images.out).images.map((i: { name: string }) => i.name),
      [result?.tag],
      why("images"),
    );
    equal(step("fsck").rc, 0, why("fsck"));
  } finally {
    await keys.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
