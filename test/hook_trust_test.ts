/**
 * Issue 11, point 6: as root, cfs runs only hook files that root alone can change
 * (lib/pipeline/hook_trust.ts). Host tier: the checks are about real owners and modes, so the
 * test makes files owned by other users and must run as root (it fails, not skips, otherwise).
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { pathExists, runCfs } from "./cfs.ts";
import { untrustedReason } from "../lib/pipeline/hook_trust.ts";
import { closeHooks, HookLoadError, loadHook } from "../lib/pipeline/hooks.ts";
import { errorCode, errorExitCode } from "../lib/errors.ts";

const HOOK = `export default { name: "h", after: { fetch: () => {} } };`;

/** A directory only root can change, below /tmp (sticky, mode 1777: allowed). */
async function trustedDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "cfs-hook-trust-" });
  await Deno.chmod(dir, 0o755);
  return dir;
}

async function writeHook(path: string, mode: number, text = HOOK): Promise<string> {
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, mode);
  return path;
}

/** Loads `file` as cfs would as root; the error when it is refused, else undefined. */
async function refusal(file: string): Promise<HookLoadError | undefined> {
  try {
    const h = await loadHook(file);
    await closeHooks([h]);
    return undefined;
  } catch (e) {
    if (e instanceof HookLoadError) return e;
    throw e;
  }
}

Deno.test("hook trust: as root, hook files others can change are refused (exit 3, hook-file-unsafe)", async (t) => {
  equal(Deno.uid(), 0, "this test checks what root runs: run it as root (make test does)");
  const dir = await trustedDir();
  try {
    await t.step(
      "root's own file, mode 0644 or group-root 0664, in root's directories: runs",
      async () => {
        equal(await refusal(await writeHook(join(dir, "ok.ts"), 0o644)), undefined);
        const groupRoot = await writeHook(join(dir, "group-root.ts"), 0o664);
        await Deno.chown(groupRoot, 0, 0);
        equal(await refusal(groupRoot), undefined);
        // /tmp is 1777: sticky directories may be writable by all.
        ok(((await Deno.stat("/tmp")).mode! & 0o1002) === 0o1002, "/tmp is sticky and open");
      },
    );

    const cases: Array<[string, () => Promise<string>, RegExp]> = [
      [
        "a file writable by others (0666)",
        () => writeHook(join(dir, "world.ts"), 0o666),
        /world\.ts is writable by others \(mode 0666\)/,
      ],
      [
        "a file writable by a group that is not root's",
        async () => {
          const f = await writeHook(join(dir, "group.ts"), 0o664);
          await Deno.chown(f, 0, 100);
          return f;
        },
        /group\.ts is writable by group 100 \(mode 0664\)/,
      ],
      [
        "a file owned by another user",
        async () => {
          const f = await writeHook(join(dir, "theirs.ts"), 0o644);
          await Deno.chown(f, 1000, 1000);
          return f;
        },
        /theirs\.ts is owned by uid 1000, not root/,
      ],
      [
        "a root file in a directory writable by others (0777, not sticky)",
        async () => {
          const open = join(dir, "open");
          await Deno.mkdir(open);
          await Deno.chmod(open, 0o777);
          return writeHook(join(open, "h.ts"), 0o644);
        },
        /open is writable by others \(mode 0777\)/,
      ],
      [
        "a root file in a directory another user owns",
        async () => {
          const home = join(dir, "home");
          await Deno.mkdir(home);
          const f = await writeHook(join(home, "h.ts"), 0o644);
          await Deno.chown(home, 1000, 1000);
          return f;
        },
        /home is owned by uid 1000, not root/,
      ],
      [
        "a root-owned link in root's directory to another user's file",
        async () => {
          const target = await writeHook(join(dir, "user-target.ts"), 0o644);
          await Deno.chown(target, 1000, 1000);
          const link = join(dir, "link.ts");
          await Deno.symlink(target, link);
          return link;
        },
        /user-target\.ts is owned by uid 1000, not root/,
      ],
      [
        "a root file that imports a file writable by others",
        async () => {
          const sub = join(dir, "imports");
          await Deno.mkdir(sub);
          await writeHook(join(sub, "lib.ts"), 0o666, `export const x = 1;`);
          return writeHook(
            join(sub, "main.ts"),
            0o644,
            `import { x } from "./lib.ts";\nexport default { name: "m", after: { fetch: () => { x; } } };`,
          );
        },
        /import .*lib\.ts: refused: .*lib\.ts is writable by others \(mode 0666\)/,
      ],
    ];
    for (const [name, make, want] of cases) {
      await t.step(name, async () => {
        const file = await make();
        const e = await refusal(file);
        ok(e !== undefined, `${name}: loaded`);
        ok(want.test(e.message), e.message);
        deepEqual([errorCode(e), errorExitCode(e)], ["hook-file-unsafe", 3]);
        // The same file as cfs's own user would see it: not root, nothing checked.
        const unchecked = await loadHook(file, { checkOwnership: false });
        await closeHooks([unchecked]);
      });
    }

    await t.step("untrustedReason: missing paths are left to the reader", () => {
      equal(untrustedReason(join(dir, "missing", "h.ts")), undefined);
    });

    await t.step(
      "cfs pull --hook and --hooks-dir: exit 3, the code, no repository made",
      async () => {
        const repo = join(dir, "repo");
        const file = await writeHook(join(dir, "cli.ts"), 0o646);
        const r = await runCfs([
          "--json",
          "--repo",
          repo,
          "pull",
          "--hook",
          file,
          "oci:/nonexistent",
        ]);
        equal(r.code, 3, r.text + r.stderr);
        const error = JSON.parse(r.text.trim().split("\n").pop()!).error;
        equal(error.code, "hook-file-unsafe");
        ok(error.message.includes(`${file} is writable by others (mode 0646)`), error.message);

        const hooksDir = join(dir, "hooks.d");
        await Deno.mkdir(hooksDir);
        await writeHook(join(hooksDir, "10-a.ts"), 0o644);
        await Deno.chmod(hooksDir, 0o757);
        const d = await runCfs([
          "--repo",
          repo,
          "pull",
          "--hooks-dir",
          hooksDir,
          "oci:/nonexistent",
        ]);
        equal(d.code, 3, d.stderr);
        ok(/^cfs: .*hooks\.d is writable by others \(mode 0757\)/.test(d.stderr), d.stderr);
        equal(d.stderr.trim().split("\n").length, 1, d.stderr);
        ok(!(await pathExists(repo)), "the repository was not created");
      },
    );

    await t.step("a hook that is not a file: the loader's error, not a trust error", async () => {
      await rejects(loadHook(join(dir, "missing.ts")), (e: Error) => {
        ok(e instanceof HookLoadError && errorCode(e) !== "hook-file-unsafe", e.message);
        return true;
      });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
