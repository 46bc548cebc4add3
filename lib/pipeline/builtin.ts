/**
 * The hooks shipped in `hooks/`, imported statically so that `deno compile` puts them into
 * the binary: `--hook builtin:NAME` (or `"hooks": ["builtin:NAME"]` in the configuration
 * file) uses them without any file on disk.
 *
 * @module
 */
import * as extraTags from "../../hooks/extra-tags.ts";
import * as logJson from "../../hooks/log-json.ts";
import * as requireSignature from "../../hooks/require-signature.ts";
import * as selinuxRelabel from "../../hooks/selinux-relabel.ts";

/** Module namespaces of the shipped hooks, by name. */
export const BUILTIN_HOOKS: Readonly<Record<string, Record<string, unknown>>> = {
  "extra-tags": extraTags,
  "log-json": logJson,
  "require-signature": requireSignature,
  "selinux-relabel": selinuxRelabel,
};
