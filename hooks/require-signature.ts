/**
 * `require-signature`: a thin hook over the signature policy cfs enforces in `fetch`
 * (containers-policy.json, lib/signature/). The policy decides whether an image may be pulled;
 * this hook insists that the decision rested on a verified signature, whatever the policy file
 * says: it refuses an image the policy let through without one (`insecureAcceptAnything`, or a
 * transport skopeo decided for, where cfs cannot see which requirement held). It runs after
 * `fetch`, before any layer is imported.
 *
 * Options (`hooks.require-signature` in the configuration file, all optional):
 * - `signature`: `"required"` (default) or `"optional"` (only the allow-list below counts:
 *   the behaviour of cfs before it enforced policies).
 * - `allow`: string[], manifest digests (`sha256:<hex>` or bare `<hex>`) that are also pinned:
 *   an image whose digest is not listed is refused even when signed.
 * - `allowFile`: string, a file with one digest per line; `#` starts a comment, blank
 *   lines are ignored. Relative paths are relative to cfs's working directory.
 *
 * Migration: this hook used to be only a digest allow-list. A configuration that sets `allow`
 * or `allowFile` keeps its pinning and now also needs a signature the policy verified; add
 * `"signature": "optional"` to keep the old behaviour while the policy file is written.
 *
 * ```json
 * { "hooks": { "require-signature": { "allowFile": "/etc/cfs/allowed-manifests" } } }
 * ```
 *
 * @module
 */
import type { Hook } from "./types.ts";
import { parseHookOptions, z } from "./options.ts";

const Options = z.strictObject({
  signature: z.enum(["required", "optional"]).optional(),
  allow: z.array(z.string()).optional(),
  allowFile: z.string().min(1).optional(),
});

/** Requirement types that verify a signature. */
const SIGNATURE_REQUIREMENTS = ["signedBy", "sigstoreSigned"];

function parseOptions(options: Record<string, unknown>): z.infer<typeof Options> {
  return parseHookOptions(Options, options);
}

/** `sha256:<hex>` in lower case, or undefined when `text` is no sha256 digest. */
function normalize(text: string): string | undefined {
  const m = /^(?:sha256:)?([0-9a-fA-F]{64})$/.exec(text.trim());
  return m ? `sha256:${m[1].toLowerCase()}` : undefined;
}

/** The allow-list, or undefined when neither option sets one. */
async function allowList(options: Record<string, unknown>): Promise<Set<string> | undefined> {
  const { allow, allowFile } = parseOptions(options);
  if (allow === undefined && allowFile === undefined) return undefined;
  const allowed = new Set<string>();
  (allow ?? []).forEach((entry, i) => {
    const digest = normalize(entry);
    if (!digest) {
      throw new Error(
        `require-signature: options.allow[${i}]: ${JSON.stringify(entry)} is not a sha256 digest`,
      );
    }
    allowed.add(digest);
  });
  if (allowFile !== undefined) {
    let text: string;
    try {
      text = await Deno.readTextFile(allowFile);
    } catch (e) {
      throw new Error(`options.allowFile ${allowFile}: ${(e as Error).message}`);
    }
    text.split("\n").forEach((line, i) => {
      const entry = line.replace(/#.*/, "").trim();
      if (entry === "") return;
      const digest = normalize(entry);
      if (!digest) {
        throw new Error(
          `require-signature: ${allowFile} line ${i + 1}: ${
            JSON.stringify(entry)
          } is not a sha256 digest`,
        );
      }
      allowed.add(digest);
    });
  }
  return allowed;
}

export default {
  name: "require-signature",
  after: {
    fetch: async (ctx) => {
      const { signature = "required" } = parseOptions(ctx.options);
      const allowed = await allowList(ctx.options);
      if (signature === "optional" && allowed === undefined) {
        throw new Error(`"signature": "optional" needs an allow-list (allow or allowFile)`);
      }
      if (!ctx.manifest) throw new Error("no manifest after fetch");
      const digest = normalize(ctx.manifest.digest) ?? ctx.manifest.digest;
      if (signature === "required") {
        const d = ctx.signature;
        if (d === undefined) {
          throw new Error(`${ctx.reference}: no signature policy was enforced on this pull`);
        }
        if (d.decidedBy !== "cfs") {
          throw new Error(
            `${ctx.reference}: the policy was enforced by skopeo, which does not say whether a ` +
              "signature was verified",
          );
        }
        const verified = d.requirements.filter((r) =>
          r.accepted && SIGNATURE_REQUIREMENTS.includes(r.type)
        );
        if (!d.accepted || verified.length === 0) {
          const scope = d.scope === null
            ? "default"
            : d.scope === ""
            ? "transport default"
            : d.scope;
          throw new Error(
            `${ctx.reference}: policy ${d.policy} (${d.transport}, scope ${scope}) accepted it ` +
              "without verifying a signature",
          );
        }
        ctx.log.info(`signature verified: ${verified.map((r) => r.reason).join("; ")}`, {
          CFS_MANIFEST_DIGEST: digest,
        });
      }
      if (allowed !== undefined) {
        if (!allowed.has(digest)) {
          throw new Error(
            `manifest ${ctx.manifest.digest} of ${ctx.reference} is not in the allow-list`,
          );
        }
        ctx.log.info(`manifest ${digest} is allowed`, { CFS_MANIFEST_DIGEST: digest });
      }
    },
  },
} satisfies Hook;
