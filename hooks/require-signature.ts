/**
 * `require-signature`: refuses every image whose manifest digest is not in an allow-list.
 * It runs after `fetch`, before any layer is imported, and throws (stopping the pull)
 * with a message naming the refused digest. The allow-list stands in for a signature
 * check: a digest is allowed because someone who vetted it wrote it down.
 *
 * Options (`hooks.require-signature` in the configuration file; at least one is needed):
 * - `allow`: string[], allowed manifest digests (`sha256:<hex>` or bare `<hex>`).
 * - `allowFile`: string, a file with one digest per line; `#` starts a comment, blank
 *   lines are ignored. Relative paths are relative to cfs's working directory.
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
  allow: z.array(z.string()).optional(),
  allowFile: z.string().min(1).optional(),
});

function parseOptions(options: Record<string, unknown>): z.infer<typeof Options> {
  return parseHookOptions(Options, options);
}

/** `sha256:<hex>` in lower case, or undefined when `text` is no sha256 digest. */
function normalize(text: string): string | undefined {
  const m = /^(?:sha256:)?([0-9a-fA-F]{64})$/.exec(text.trim());
  return m ? `sha256:${m[1].toLowerCase()}` : undefined;
}

async function allowList(options: Record<string, unknown>): Promise<Set<string>> {
  const { allow, allowFile } = parseOptions(options);
  if (allow === undefined && allowFile === undefined) {
    throw new Error("no allow-list: set options.allow or options.allowFile");
  }
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
      const allowed = await allowList(ctx.options);
      if (!ctx.manifest) throw new Error("no manifest after fetch");
      const digest = normalize(ctx.manifest.digest) ?? ctx.manifest.digest;
      if (!allowed.has(digest)) {
        throw new Error(
          `manifest ${ctx.manifest.digest} of ${ctx.reference} is not in the allow-list`,
        );
      }
      ctx.log.info(`manifest ${digest} is allowed`, { CFS_MANIFEST_DIGEST: digest });
    },
  },
} satisfies Hook;
