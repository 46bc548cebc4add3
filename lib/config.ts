/**
 * The configuration file: `--config FILE`, else `$CFS_CONFIG`, else `/etc/cfs/config.json`
 * (a missing default file is an empty configuration; a missing named file is an error).
 * JSON, validated with zod; an error names the file and the offending key.
 *
 * ```json
 * {
 *   "repo": "/sysroot/composefs",
 *   "algorithm": "fsverity-sha512-12",
 *   "allowMissingFsverity": false,
 *   "hookDirs": ["/usr/lib/cfs/hooks.d"],
 *   "hookFiles": ["builtin:extra-tags"],
 *   "hooks": { "extra-tags": { "tags": ["oem/golden"] } },
 *   "fetch": { "timeout": 3600, "idleTimeout": 60, "minSpeed": 1024, "retries": 3 },
 *   "registries": { "127.0.0.1:5000": { "tlsVerify": false, "idleTimeout": 10, "retries": 5 } }
 * }
 * ```
 *
 * `fetch` holds the registry transfer limits ({@link FetchConfig}, lib/oci/transfer.ts has
 * the rules) for every registry; an entry of `registries` may set any of them for its registry.
 *
 * Command-line options win over the file (a registry's entry over `fetch`); the file wins over
 * built-in defaults.
 *
 * @module
 */
import { CfsError } from "./errors.ts";
import { z } from "zod";
import { REPO_ALGORITHMS, type RepoAlgorithm } from "./repository.ts";

/** The default configuration file. */
export const DEFAULT_CONFIG_PATH = "/etc/cfs/config.json";

/**
 * Time limits and retries of registry transfers (`docker://`; lib/oci/transfer.ts). Times are
 * seconds (fractions allowed).
 */
export interface FetchConfig {
  /** Overall deadline of a pull's transfers; 0: none (the default). `--timeout`. */
  timeout?: number;
  /** How long a blob may wait without its minimum progress (default 60). `--idle-timeout`. */
  idleTimeout?: number;
  /** Least average speed, bytes/s, over each idle window (default 1024); 0: any progress. */
  minSpeed?: number;
  /** Retries of a failed request or cut blob (default 3); 0: none. `--retries`. */
  retries?: number;
  /** First wait between attempts, doubled per retry (default 1). */
  retryDelay?: number;
}

/** Per-registry settings, keyed by `HOST[:PORT]` as in image references. */
export interface RegistryConfig extends FetchConfig {
  /** `false`: plain HTTP (as `--tls-verify=false`). */
  tlsVerify?: boolean;
  /** Credentials file for this registry. */
  authFile?: string;
}

/** The configuration file's content. */
export interface CfsConfig {
  /** Repository path (instead of cfsctl's default). */
  repo?: string;
  /** Algorithm of repositories `cfs pull` creates. */
  algorithm?: RepoAlgorithm;
  /** Let `cfs pull` create insecure repositories where fs-verity is unavailable. */
  allowMissingFsverity?: boolean;
  /** Hook directories, searched after /etc/cfs/hooks.d and the XDG one. */
  hookDirs?: string[];
  /** Hook files (or `builtin:NAME`) always loaded, before `--hook` ones. */
  hookFiles?: string[];
  /** Options per hook name, seen by the hook as `ctx.options`. */
  hooks?: Record<string, Record<string, unknown>>;
  /** Registry transfer limits for every registry. */
  fetch?: FetchConfig;
  /** Settings per registry. */
  registries?: Record<string, RegistryConfig>;
  /**
   * The containers signature policy (containers-policy.json(5)) pulls enforce, instead of
   * skopeo's search (`$HOME/.config/containers/policy.json`, `/etc/containers/policy.json`);
   * `--signature-policy` wins.
   */
  signaturePolicy?: string;
  /** The registries.d directory (lookaside and sigstore settings); `--registries.d` wins. */
  registriesDir?: string;
}

/** At most a day, for every time limit: a larger number is a typo (ms for seconds). */
const MAX_SECONDS = 86_400;

const fetchFields = {
  timeout: z.number().min(0).max(MAX_SECONDS).optional(),
  idleTimeout: z.number().positive().max(MAX_SECONDS).optional(),
  minSpeed: z.number().int().min(0).optional(),
  retries: z.number().int().min(0).max(100).optional(),
  retryDelay: z.number().min(0).max(60).optional(),
};

const configSchema = z.strictObject({
  repo: z.string().min(1).optional(),
  algorithm: z.enum(REPO_ALGORITHMS as [RepoAlgorithm, ...RepoAlgorithm[]]).optional(),
  allowMissingFsverity: z.boolean().optional(),
  hookDirs: z.array(z.string().min(1)).optional(),
  hookFiles: z.array(z.string().min(1)).optional(),
  hooks: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
  fetch: z.strictObject(fetchFields).optional(),
  registries: z.record(
    z.string(),
    z.strictObject({
      tlsVerify: z.boolean().optional(),
      authFile: z.string().optional(),
      ...fetchFields,
    }),
  ).optional(),
  signaturePolicy: z.string().min(1).optional(),
  registriesDir: z.string().min(1).optional(),
});

/** A configuration file that cannot be used; the message names file and key. */
export class ConfigError extends CfsError {
  /** Creates `config FILE: MESSAGE`. */
  constructor(readonly file: string, message: string) {
    super(`config ${file}: ${message}`, { code: "config-invalid" });
    this.name = "ConfigError";
  }
}

/** Parses and validates configuration text. */
export function parseConfig(file: string, text: string): CfsConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, `not JSON: ${(e as Error).message.split("\n")[0]}`);
  }
  const r = configSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const path = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
      .join("").replace(/^\./, "");
    const keys = issue.code === "unrecognized_keys"
      ? ` ${(issue as { keys?: string[] }).keys?.map((k) => JSON.stringify(k)).join(", ")}`
      : "";
    throw new ConfigError(file, `${path || "(top level)"}: ${issue.message}${keys}`);
  }
  return r.data as CfsConfig;
}

/**
 * Loads the configuration: `path` when given (must exist), else `$CFS_CONFIG` (must
 * exist), else {@link DEFAULT_CONFIG_PATH} (may be missing).
 */
export function loadConfig(path?: string): CfsConfig {
  const named = path ?? Deno.env.get("CFS_CONFIG");
  const file = named ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound && named === undefined) return {};
    throw new ConfigError(
      file,
      e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message,
    );
  }
  return parseConfig(file, text);
}
