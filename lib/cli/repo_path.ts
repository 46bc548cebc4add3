/**
 * Where the repository is: `--repo`, else `$CFS_REPO` (both already in the globals), else
 * cfsctl's defaults: `/sysroot/composefs` for root, `~/.var/lib/composefs` for users.
 *
 * @module
 */
import { join } from "node:path";
import type { GlobalOptions } from "./command.ts";
import { Repository } from "../repository.ts";
import { loadConfig } from "../config.ts";

/** The repository path these globals select (`--repo`, `$CFS_REPO`, the config's `repo`). */
export function repoPath(globals: GlobalOptions): string {
  if (globals.repo) return globals.repo;
  const configured = loadConfig(globals.config).repo;
  if (configured) return configured;
  if (Deno.uid() === 0) return "/sysroot/composefs";
  return join(Deno.env.get("HOME") ?? "/", ".var/lib/composefs");
}

/** Opens the selected repository, upgrading an old-format one. */
export function openRepo(globals: GlobalOptions): Repository {
  return Repository.open(repoPath(globals));
}

/** Opens the selected repository without upgrading it (read-only commands). */
export function openReadOnly(globals: GlobalOptions): Repository {
  return Repository.open(repoPath(globals), { upgrade: false });
}
