/**
 * The error base class (lib/errors.ts): codes, exit codes, bounded lines, and the rule that
 * every error class declared in lib/ extends {@link CfsError} (so every failure has a code).
 *
 * @module
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join, relative } from "node:path";
import {
  CfsError,
  clipMiddle,
  errorCode,
  errorExitCode,
  MAX_ERROR_LINE,
  withCode,
} from "../../lib/errors.ts";
import { RepositoryError } from "../../lib/repository/errors.ts";
import { TagError } from "../../lib/oci/store.ts";
import { RegistryError } from "../../lib/oci/registry.ts";
import { HookFailure, PipelineInterrupted } from "../../lib/pipeline/run.ts";
import { UsageError } from "../../lib/cli/command.ts";
import { SysError } from "../../lib/sys/libc.ts";

const LIB = fileURLToPath(new URL("../../lib/", import.meta.url));

Deno.test("CfsError: code and exit code default to 'error' and 1; a code must be kebab-case", () => {
  const e = new CfsError("something failed");
  equal(e.code, "error");
  equal(e.exitCode, 1);
  equal(e.message, "something failed");
  const cause = new Error("inner");
  const f = new CfsError("outer", { code: "registry-timeout", exitCode: 4, cause });
  deepEqual([f.code, f.exitCode, f.cause], ["registry-timeout", 4, cause]);
  for (const bad of ["Registry", "a_b", "a--b", "-a", "a-", "", "a b"]) {
    throws(() => new CfsError("x", { code: bad }), TypeError, bad);
  }
});

Deno.test("withCode: a subclass's default code yields to the throw site's", () => {
  deepEqual(withCode(undefined, "tree-invalid"), { code: "tree-invalid", exitCode: undefined });
  equal(
    withCode({ code: "repository-not-found" }, "repository-error").code,
    "repository-not-found",
  );
  equal(withCode({}, "hook-load-failed", 3).exitCode, 3);
});

Deno.test("subclasses carry their default codes, specific codes and exit codes", () => {
  equal(new RepositoryError("x").code, "repository-error");
  equal(new RepositoryError("x", { code: "image-not-found" }).code, "image-not-found");
  const tag = new TagError("invalid tag");
  ok(tag instanceof RepositoryError && tag instanceof CfsError);
  equal(tag.code, "tag-invalid");
  equal(new RegistryError("h:1", "timeout", "stalled").code, "registry-timeout");
  const hook = new HookFailure("oem", "before", "tag", "no");
  deepEqual([hook.code, hook.exitCode], ["hook-failed", 3]);
  const stop = new PipelineInterrupted("fetch");
  deepEqual([stop.code, stop.exitCode], ["interrupted", 130]);
  const usage = new UsageError("bad flag");
  deepEqual([usage.code, usage.exitCode], ["usage", 2]);
  equal(new SysError("open", 28, "/x").code, "sys-enospc");
  equal(new SysError("open", 100_000).code, "sys-error");
});

Deno.test("errorCode and errorExitCode: Deno's errors are io-<kind>, anything else internal", () => {
  equal(errorCode(new Deno.errors.NotFound("x")), "io-not-found");
  equal(errorCode(new Deno.errors.PermissionDenied("x")), "io-permission-denied");
  equal(errorCode(new TypeError("x")), "internal");
  equal(errorCode("a string"), "internal");
  equal(errorExitCode(new UsageError("x")), 2);
  equal(errorExitCode(new Error("x")), 1);
});

Deno.test("clipMiddle: long text keeps both ends and fits the bound; short text is unchanged", () => {
  equal(clipMiddle("short"), "short");
  equal(clipMiddle("x".repeat(MAX_ERROR_LINE)), "x".repeat(MAX_ERROR_LINE));
  const path = "/d".repeat(10_000) + ": directories nested too deep";
  const line = clipMiddle(path);
  ok(line.length <= MAX_ERROR_LINE && line.length >= MAX_ERROR_LINE - 2, `${line.length}`);
  const marker = / \.\.\.\[(\d+) characters\]\.\.\. /.exec(line)!;
  // What is left out is what the marker says: the two ends joined are the text without it.
  const [head, tail] = [line.slice(0, marker.index), line.slice(marker.index + marker[0].length)];
  equal(Number(marker[1]), path.length - head.length - tail.length);
  ok(path.startsWith(head) && path.endsWith(tail));
  ok(tail.endsWith(": directories nested too deep"));
  ok(Math.abs(head.length - tail.length) <= 1, "both ends get half");
  for (const max of [40, 200]) equal(clipMiddle("x".repeat(5000), max).length, max);
});

/** Every `class NAME extends BASE` in lib/ (recursively), as [file, name, base]. */
function declaredClasses(): Array<[string, string, string]> {
  const out: Array<[string, string, string]> = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) walk(p);
      else if (e.name.endsWith(".ts")) {
        const text = Deno.readTextFileSync(p);
        for (const m of text.matchAll(/^export class (\w+) extends (\w+)/gm)) {
          out.push([relative(LIB, p), m[1], m[2]]);
        }
      }
    }
  };
  walk(LIB);
  return out;
}

Deno.test("every error class in lib/ extends CfsError, directly or through another error class", () => {
  const classes = declaredClasses();
  const base = new Map(classes.map(([, name, extendsName]) => [name, extendsName]));
  const errorLike = classes.filter(([, name, b]) =>
    /Error$|Failure$|Interrupted$/.test(name) || b === "Error" || b === "CfsError"
  );
  ok(errorLike.length >= 37, `${errorLike.length} error classes found`);
  const wrong: string[] = [];
  for (const [file, name] of errorLike) {
    let at: string | undefined = name;
    const seen = new Set<string>();
    while (at !== undefined && at !== "CfsError" && !seen.has(at)) {
      seen.add(at);
      at = base.get(at);
    }
    if (at !== "CfsError") wrong.push(`${file}: ${name}`);
  }
  deepEqual(wrong, []);
});

/** Codes in the table of lib/errors.ts; `<...>` parts as patterns (`registry-<kind>`). */
function tableCodes(): RegExp[] {
  const text = Deno.readTextFileSync(join(LIB, "errors.ts"));
  return [...text.matchAll(/^ \* \| `([a-z0-9<>-]+)`/gm)].map(([, code]) =>
    new RegExp(`^${code.replace(/<[a-z]+>/g, "[a-z0-9-]+")}$`)
  );
}

Deno.test("every code given at a throw site in lib/ is in the table of lib/errors.ts", () => {
  const table = tableCodes();
  ok(table.length >= 50, `${table.length} rows`);
  const missing = new Set<string>();
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) walk(p);
      else if (e.name.endsWith(".ts")) {
        for (const line of Deno.readTextFileSync(p).split("\n")) {
          if (line.includes("issues.push")) continue; // zod's issue codes, not ours
          for (const m of line.matchAll(/code: "([a-z0-9-]+)"|withCode\([^,]+, "([a-z0-9-]+)"/g)) {
            const code = m[1] ?? m[2];
            if (!table.some((r) => r.test(code))) missing.add(`${relative(LIB, p)}: ${code}`);
          }
        }
      }
    }
  };
  walk(LIB);
  deepEqual([...missing], []);
});
