/**
 * `cfs digest`: fs-verity digests of files, printed exactly like `fsverity digest`
 * (`sha256:<hex> FILE`), so either tool can check the other.
 *
 * @module
 */
import { type CommandHandler, parseCommandArgs, println, UsageError } from "./command.ts";
import { parseAlgorithm, toHex } from "../fsverity/digest.ts";
import { fsverityDigestFile } from "../fsverity/file.ts";

const USAGE = `usage: cfs digest [--algorithm sha256|sha512] FILE...

Prints the fs-verity digest (4 KiB blocks, no salt) of each FILE as 'fsverity digest'
does: ALGORITHM:HEX FILE. With --json, one object per line:
{"path": FILE, "algorithm": ALGORITHM, "digest": HEX}. Default algorithm: sha256.`;

/** `cfs digest` */
export const digestCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommandArgs(args, {
    algorithm: { type: "string" },
    help: { type: "boolean", short: "h" },
  }, USAGE);
  if (values.help) {
    println(USAGE);
    return 0;
  }
  const name = values.algorithm ?? "sha256";
  const alg = parseAlgorithm(name);
  if (alg === undefined) {
    throw new UsageError(`unknown algorithm '${name}' (use sha256 or sha512)`, USAGE);
  }
  if (positionals.length === 0) throw new UsageError("no FILE given", USAGE);
  // One file at a time, printed as soon as it is done: a large file already uses all
  // cores, and output order then matches the arguments, as with `fsverity digest`.
  for (const path of positionals) {
    const digest = toHex(await fsverityDigestFile(path, alg));
    println(
      globals.json ? JSON.stringify({ path, algorithm: alg, digest }) : `${alg}:${digest} ${path}`,
    );
  }
  return 0;
};
