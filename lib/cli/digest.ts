/**
 * `cfs digest`: fs-verity digests of files, printed exactly like `fsverity digest`
 * (`sha256:<hex> FILE`), so either tool can check the other.
 *
 * @module
 */
import { type CommandHandler, parseCommand, println, UsageError } from "./command.ts";
import { commandSpec } from "./table.ts";
import { parseAlgorithm, toHex } from "../fsverity/digest.ts";
import { fsverityDigestFile } from "../fsverity/file.ts";

/** `cfs digest` */
export const digestCommand: CommandHandler = async (args, globals) => {
  const { values, positionals } = parseCommand(args, commandSpec("digest"));
  const name = values.algorithm ?? "sha256";
  const alg = parseAlgorithm(name);
  if (alg === undefined) {
    throw new UsageError(`unknown algorithm '${name}' (use sha256 or sha512)`);
  }
  if (positionals.length === 0) throw new UsageError("no FILE given");
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
