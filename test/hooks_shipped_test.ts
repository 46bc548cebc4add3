/**
 * The hooks shipped in hooks/ (issue 4 point 4): extra-tags, require-signature, log-json and
 * selinux-relabel, each called directly with a {@link HookContext} built by hand. The
 * pipeline runner and the hook loader land separately; an end-to-end test will load these
 * same files through the real loader and run them inside `cfs pull`.
 *
 * selinux-relabel's expected labels come from libselinux's `matchpathcon` (selinux-utils)
 * run against the same file_contexts files, never from cfs's own matcher.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { join } from "node:path";
import type {
  Hook,
  HookContext,
  HookPhase,
  HookRepository,
  HookShell,
  HookSignatureDecision,
  StageName,
} from "../hooks/types.ts";
import extraTags from "../hooks/extra-tags.ts";
import requireSignature from "../hooks/require-signature.ts";
import logJson from "../hooks/log-json.ts";
import selinuxRelabel from "../hooks/selinux-relabel.ts";
import {
  bytesToName,
  type Directory,
  type FileSystem,
  type Inode,
  type Leaf,
  nameToBytes,
  newDirectory,
  newFileSystem,
  sortedEntries,
  type Stat,
  typeLetter,
} from "../lib/tree.ts";
import { toHex } from "../lib/fsverity/digest.ts";
import { requireTool, run } from "./cfs.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const MANIFEST = "sha256:" + "ab12cd34ef56".repeat(5) + "0123";
const CONFIG = "sha256:" + "9".repeat(64);
const STAGES: StageName[] = [
  "open",
  "storage",
  "fetch",
  "import",
  "label-storage",
  "tag",
  "label",
  "image",
  "boot",
];

// --- a hand-built context ----------------------------------------------------------------------

interface LoggedEvent {
  level: string;
  message: string;
  fields?: Record<string, string | number | boolean>;
}

/** A context as the runner will pass it, plus the events the hook logged. */
function context(
  stage: StageName,
  phase: HookPhase,
  fields: Partial<HookContext> = {},
): HookContext & { logged: LoggedEvent[] } {
  const logged: LoggedEvent[] = [];
  const logAt = (level: string) => (message: string, f?: LoggedEvent["fields"]) => {
    logged.push({ level, message, fields: f });
  };
  return {
    stage,
    phase,
    reference: "oci:/srv/images/os:latest",
    tags: [],
    options: {},
    log: { info: logAt("info"), warn: logAt("warn"), debug: logAt("debug") },
    // The shipped hooks run no commands: a shell that says so if one tries.
    $: (() => {
      throw new Error("the shipped hooks run no commands");
    }) as unknown as HookShell,
    signal: new AbortController().signal,
    ...fields,
    logged,
  };
}

function manifest(digest = MANIFEST) {
  return { digest, document: { schemaVersion: 2 } };
}

/** Calls the hook's function for `phase` `stage`, failing when it has none. */
async function call(hook: Hook, ctx: HookContext): Promise<void> {
  const fn = hook[ctx.phase]?.[ctx.stage];
  assert(fn, `${hook.name} has no ${ctx.phase} ${ctx.stage} function`);
  await fn(ctx);
}

async function withEnv<T>(name: string, value: string | undefined, f: () => Promise<T>) {
  const old = Deno.env.get(name);
  if (value === undefined) Deno.env.delete(name);
  else Deno.env.set(name, value);
  try {
    return await f();
  } finally {
    if (old === undefined) Deno.env.delete(name);
    else Deno.env.set(name, old);
  }
}

/** The stages a hook registers for, per phase. */
function registered(hook: Hook): { before: string[]; after: string[] } {
  return { before: Object.keys(hook.before ?? {}), after: Object.keys(hook.after ?? {}) };
}

// --- extra-tags --------------------------------------------------------------------------------

Deno.test("extra-tags: runs before tag only", () => {
  assertEquals(registered(extraTags), { before: ["tag"], after: [] });
});

Deno.test("extra-tags: adds the option tags, then $CFS_EXTRA_TAGS, expanding {digest}", async () => {
  const ctx = context("tag", "before", {
    manifest: manifest(),
    tags: [`localhost/bootc-${MANIFEST}`],
    options: { tags: ["oem/golden", "oem/build-{digest}"] },
  });
  await withEnv(
    "CFS_EXTRA_TAGS",
    " site/a , ,site/{digest}-x,oem/golden",
    () => call(extraTags, ctx),
  );
  assertEquals(ctx.tags, [
    `localhost/bootc-${MANIFEST}`,
    "oem/golden",
    "oem/build-ab12cd34ef56",
    "site/a",
    "site/ab12cd34ef56-x",
  ]);
  assertEquals(ctx.logged.map((e) => e.message), [
    "extra tag oem/golden",
    "extra tag oem/build-ab12cd34ef56",
    "extra tag site/a",
    "extra tag site/ab12cd34ef56-x",
  ]);
});

Deno.test("extra-tags: no options and no environment adds nothing", async () => {
  const ctx = context("tag", "before", { manifest: manifest(), tags: ["x"] });
  await withEnv("CFS_EXTRA_TAGS", undefined, () => call(extraTags, ctx));
  assertEquals(ctx.tags, ["x"]);
});

Deno.test("extra-tags: a bad option names the key", async () => {
  await withEnv("CFS_EXTRA_TAGS", undefined, async () => {
    await rejects(
      call(extraTags, context("tag", "before", { options: { tags: ["ok", 7] } })),
      /^Error: options\.tags\[1\]: .*expected string/,
    );
    await rejects(
      call(extraTags, context("tag", "before", { options: { tags: "oem/golden" } })),
      /^Error: options\.tags: .*expected array/,
    );
    await rejects(
      call(extraTags, context("tag", "before", { options: { tag: ["oem/golden"] } })),
      /^Error: options: Unrecognized key: "tag"/,
    );
    await rejects(
      call(
        extraTags,
        context("tag", "before", { manifest: manifest(), options: { tags: ["{sha}"] } }),
      ),
      /unknown placeholder \{sha\}/,
    );
  });
});

// --- require-signature -------------------------------------------------------------------------

const OTHER = "sha256:" + "0".repeat(64);

/** A decision as the pipeline hands it to hooks (lib/pipeline/run.ts `hookDecision`). */
function decision(
  fields: Partial<HookSignatureDecision> = {},
): HookSignatureDecision {
  return {
    accepted: true,
    decidedBy: "cfs",
    policy: "/etc/containers/policy.json",
    transport: "docker",
    scope: "registry.example/os",
    requirements: [{ type: "signedBy", accepted: true, reason: "signed by key ABCD" }],
    ...fields,
  };
}

/** The legacy allow-list-only behaviour (`signature: optional`). */
const optional = (options: Record<string, unknown>) => ({ signature: "optional", ...options });

Deno.test("require-signature: runs after fetch only", () => {
  assertEquals(registered(requireSignature), { before: [], after: ["fetch"] });
});

Deno.test("require-signature: a decision resting on a verified signature passes", async () => {
  for (const type of ["signedBy", "sigstoreSigned"]) {
    const ctx = context("fetch", "after", {
      manifest: manifest(),
      signature: decision({
        requirements: [{ type, accepted: true, reason: `verified (${type})` }],
      }),
    });
    await call(requireSignature, ctx);
    assertEquals(ctx.logged.map((e) => e.message), [`signature verified: verified (${type})`]);
  }
});

Deno.test("require-signature: no policy, skopeo's decision, or acceptance without a signature is refused", async () => {
  const cases: Array<[HookSignatureDecision | undefined, RegExp]> = [
    [undefined, /no signature policy was enforced on this pull/],
    [decision({ decidedBy: "skopeo", requirements: [] }), /enforced by skopeo/],
    [
      decision({
        scope: null,
        requirements: [{ type: "insecureAcceptAnything", accepted: true, reason: "" }],
      }),
      /policy \/etc\/containers\/policy\.json \(docker, scope default\) accepted it without verifying a signature$/,
    ],
    [
      decision({ scope: "", requirements: [] }),
      /\(docker, scope transport default\) accepted it without/,
    ],
  ];
  for (const [signature, want] of cases) {
    await rejects(
      call(requireSignature, context("fetch", "after", { manifest: manifest(), signature })),
      want,
    );
  }
});

Deno.test("require-signature: lets an allowed manifest through (prefixed or bare, any case)", async () => {
  for (
    const entry of [MANIFEST, MANIFEST.slice(7), MANIFEST.toUpperCase().replace("SHA256", "sha256")]
  ) {
    const ctx = context("fetch", "after", {
      manifest: manifest(),
      options: optional({ allow: [OTHER, entry] }),
    });
    await call(requireSignature, ctx);
    assertEquals(ctx.logged.map((e) => e.level), ["info"]);
  }
  // Signed and pinned: both hold.
  const ctx = context("fetch", "after", {
    manifest: manifest(),
    signature: decision(),
    options: { allow: [MANIFEST] },
  });
  await call(requireSignature, ctx);
  assertEquals(ctx.logged.length, 2);
});

Deno.test("require-signature: refuses a manifest not in the list, naming its digest", async () => {
  for (const options of [optional({ allow: [OTHER] }), { allow: [OTHER] }]) {
    const ctx = context("fetch", "after", {
      manifest: manifest(),
      signature: decision(),
      options,
    });
    await rejects(call(requireSignature, ctx), (e: Error) => {
      assertEquals(
        e.message,
        `manifest ${MANIFEST} of oci:/srv/images/os:latest is not in the allow-list`,
      );
      return true;
    });
  }
});

Deno.test("require-signature: reads allowFile (comments, blank lines) and options.allow together", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cfs-hooks-" });
  try {
    const file = join(dir, "allowed");
    await Deno.writeTextFile(
      file,
      `# vetted manifests\n\n${OTHER}   # base image\n  ${MANIFEST.slice(7)}\n# ${
        "f".repeat(64)
      }\n`,
    );
    await call(
      requireSignature,
      context("fetch", "after", { manifest: manifest(), options: optional({ allowFile: file }) }),
    );
    const commented = "sha256:" + "f".repeat(64);
    await rejects(
      call(
        requireSignature,
        context("fetch", "after", {
          manifest: manifest(commented),
          options: optional({ allowFile: file }),
        }),
      ),
      new RegExp(`manifest ${commented} of .* is not in the allow-list`),
    );
    await call(
      requireSignature,
      context("fetch", "after", {
        manifest: manifest(commented),
        options: optional({ allowFile: file, allow: [commented] }),
      }),
    );

    await Deno.writeTextFile(file, `${OTHER}\nsha256:nothex\n`);
    await rejects(
      call(
        requireSignature,
        context("fetch", "after", { manifest: manifest(), options: optional({ allowFile: file }) }),
      ),
      new RegExp(`${file} line 2: "sha256:nothex" is not a sha256 digest`),
    );
    await rejects(
      call(
        requireSignature,
        context("fetch", "after", {
          manifest: manifest(),
          options: optional({ allowFile: join(dir, "nope") }),
        }),
      ),
      /options\.allowFile .*nope: /,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("require-signature: bad options are errors naming the key", async () => {
  const at = (options: Record<string, unknown>) =>
    call(
      requireSignature,
      context("fetch", "after", { manifest: manifest(), signature: decision(), options }),
    );
  await rejects(at({ signature: "optional" }), /"signature": "optional" needs an allow-list/);
  await rejects(at({ signature: "maybe" }), /^Error: options\.signature: /);
  await rejects(at({ allow: MANIFEST }), /^Error: options\.allow: .*expected array/);
  await rejects(at({ allow: ["latest"] }), /options\.allow\[0\]: "latest" is not a sha256 digest/);
  await rejects(at({ allowfile: "/x" }), /options: Unrecognized key: "allowfile"/);
});

// --- log-json ----------------------------------------------------------------------------------

Deno.test("log-json: registers every stage in both phases", () => {
  assertEquals(registered(logJson), { before: STAGES, after: STAGES });
});

Deno.test("log-json: appends one JSON line per stage event with what is known so far", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cfs-hooks-" });
  try {
    const path = join(dir, "pull.jsonl");
    await Deno.writeTextFile(path, '{"earlier":true}\n');
    // The fields a pull fills in, stage by stage (see HookContext's doc).
    const known: Partial<HookContext> = { tags: [], options: { path } };
    // The stages of a plain (not --unified) pull.
    const plain = STAGES.filter((s) => s !== "storage" && s !== "label-storage");
    for (const stage of plain) {
      for (const phase of ["before", "after"] as const) {
        if (stage === "fetch" && phase === "after") {
          known.manifest = manifest();
          known.config = { digest: CONFIG, document: {} };
          known.layers = [{ digest: OTHER, diffId: OTHER, mediaType: "tar+gzip", size: 1 }];
        }
        if (stage === "tag" && phase === "before") known.tags = [`localhost/bootc-${MANIFEST}`];
        if (stage === "image" && phase === "after") known.imageId = "c".repeat(128);
        await call(logJson, context(stage, phase, known));
      }
    }
    const lines = (await Deno.readTextFile(path)).split("\n");
    assertEquals(lines.pop(), "");
    assertEquals(JSON.parse(lines.shift()!), { earlier: true });
    const events = lines.map((l) => JSON.parse(l));
    assertEquals(
      events.map((e) => `${e.phase} ${e.stage}`),
      plain.flatMap((s) => [`before ${s}`, `after ${s}`]),
    );
    for (const e of events) {
      assert(!Number.isNaN(Date.parse(e.time)) && e.time.endsWith("Z"), e.time);
      assertEquals(e.reference, "oci:/srv/images/os:latest");
    }
    const { time: _, ...first } = events[0];
    assertEquals(first, {
      stage: "open",
      phase: "before",
      reference: "oci:/srv/images/os:latest",
      tags: [],
    });
    const { time: __, ...last } = events[13];
    assertEquals(last, {
      stage: "boot",
      phase: "after",
      reference: "oci:/srv/images/os:latest",
      manifest: MANIFEST,
      config: CONFIG,
      layers: [OTHER],
      tags: [`localhost/bootc-${MANIFEST}`],
      imageId: "c".repeat(128),
    });
    assertEquals(events[2].manifest, undefined); // before fetch
    assertEquals(events[3].manifest, MANIFEST); // after fetch
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log-json: $CFS_HOOK_LOG is the default path; no path at all is an error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cfs-hooks-" });
  try {
    const path = join(dir, "env.jsonl");
    await withEnv("CFS_HOOK_LOG", path, () => call(logJson, context("open", "before")));
    assertEquals(JSON.parse(await Deno.readTextFile(path)).stage, "open");
    await withEnv("CFS_HOOK_LOG", undefined, async () => {
      await rejects(
        call(logJson, context("open", "before")),
        /no log file: set options\.path or \$CFS_HOOK_LOG/,
      );
      await rejects(
        call(logJson, context("open", "before", { options: { path: 3 } })),
        /^Error: options\.path: .*expected string/,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --- selinux-relabel ---------------------------------------------------------------------------

/**
 * A small policy in refpolicy's syntax and fc_sort's order (general rules first): regexes with
 * groups, alternation and a POSIX class, `<<none>>`, and type specifiers `--` `-d` `-l` `-c`
 * `-b` `-p` `-s`. libselinux lets an exact path (no regex characters) beat any regex, where
 * composefs-boot lets the last matching line win: `/opt/exact` followed by `/opt/exa.*` is
 * the case where they differ, and the hook must side with libselinux (matchpathcon).
 */
const FILE_CONTEXTS = `# file_contexts for the cfs selinux-relabel hook test
/.*					system_u:object_r:default_t:s0
/[^/]+				--	system_u:object_r:etc_runtime_t:s0
/				-d	system_u:object_r:root_t:s0
/bin				-l	system_u:object_r:bin_t:s0
/dev(/.*)?				system_u:object_r:device_t:s0
/dev/null			-c	system_u:object_r:null_device_t:s0
/dev/[shmxv]d[^/]*		-b	system_u:object_r:fixed_disk_device_t:s0
/etc(/.*)?				system_u:object_r:etc_t:s0
/etc/(g)?shadow.*		--	system_u:object_r:shadow_t:s0
/etc/selinux(/.*)?			system_u:object_r:selinux_config_t:s0
/etc/selinux/([^/]*/)?contexts(/.*)?	system_u:object_r:default_context_t:s0
/etc/selinux/([^/]*/)?contexts/files(/.*)?	system_u:object_r:file_context_t:s0
/usr(/.*)?				system_u:object_r:usr_t:s0
/usr/bin(/.*)?				system_u:object_r:bin_t:s0
/usr/bin/(ba|z|da)?sh		--	system_u:object_r:shell_exec_t:s0
/usr/bin/[[:alpha:]]+ctl	--	system_u:object_r:systemctl_exec_t:s0
/usr/lib/modules(/.*)?			system_u:object_r:modules_object_t:s0
/usr/lib/systemd/system(/.*)?		system_u:object_r:systemd_unit_file_t:s0
/run(/.*)?				system_u:object_r:var_run_t:s0
/run/initctl			-p	system_u:object_r:initctl_t:s0
/run/systemd/notify		-s	system_u:object_r:init_var_run_t:s0
/tmp				-d	system_u:object_r:tmp_t:s0
/tmp/.*					<<none>>
/root(/.*)?				system_u:object_r:admin_home_t:s0
/opt/exact			--	system_u:object_r:exact_t:s0
/opt/exa.*			--	system_u:object_r:regex_t:s0
`;
/** An OEM's local addition, and the distribution's /var/run -> /run alias. */
const FILE_CONTEXTS_LOCAL = "/opt/oem/bin/tool\t--\tsystem_u:object_r:bin_t:s0\n";
const FILE_CONTEXTS_SUBS = "/var/run /run\n";
const POLICY_FILES = {
  "file_contexts": FILE_CONTEXTS,
  "file_contexts.local": FILE_CONTEXTS_LOCAL,
  "file_contexts.subs_dist": FILE_CONTEXTS_SUBS,
};

const SELINUX = nameToBytes("security.selinux");

function st(xattrs: Array<[string, string]> = []): Stat {
  return {
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 1_700_000_000,
    xattrs: xattrs.map(([n, v]) => ({ name: enc.encode(n), value: enc.encode(v) })),
  };
}

/** A tree and the repository objects its external files are stored as. */
class TestTree {
  fs: FileSystem = newFileSystem();
  objects = new Map<string, Uint8Array>();

  dir(path: string, stat?: Stat): Directory {
    let cur = this.fs.root;
    for (const name of path.split("/").filter((p) => p !== "")) {
      let next = cur.entries.get(name);
      if (next === undefined) cur.entries.set(name, next = newDirectory(st()));
      if (next.kind !== "dir") throw new Error(`${path}: not a directory`);
      cur = next;
    }
    if (stat) cur.stat = stat;
    return cur;
  }

  leaf(path: string, content: Leaf["content"], stat = st()): void {
    const i = path.lastIndexOf("/");
    this.dir(path.slice(0, i)).entries.set(path.slice(i + 1), { kind: "leaf", stat, content });
  }

  /** A regular file, stored as a repository object (external) when longer than 64 bytes. */
  file(path: string, text: string, stat?: Stat): void {
    const data = enc.encode(text);
    if (data.length <= 64) return this.leaf(path, { type: "inline", data }, stat);
    const digest = new Uint8Array(64);
    crypto.getRandomValues(digest);
    this.objects.set(toHex(digest), data);
    this.leaf(path, { type: "external", digest, size: data.length }, stat);
  }

  repository(): HookRepository {
    return {
      path: "/nonexistent/repo",
      algorithm: "fsverity-sha512-12",
      secure: false,
      tags: () => [],
      readObject: (id) => {
        const data = this.objects.get(id);
        if (!data) throw new Error(`no object ${id}`);
        return data;
      },
    };
  }
}

/** Every inode's path, type letter and security.selinux label (undefined: none). */
function labels(fs: FileSystem): Array<{ path: string; letter: string; label?: string }> {
  const out: Array<{ path: string; letter: string; label?: string }> = [];
  const visit = (inode: Inode, path: string) => {
    const x = inode.stat.xattrs.find((a) => bytesToName(a.name) === bytesToName(SELINUX));
    out.push({ path, letter: typeLetter(inode), label: x ? dec.decode(x.value) : undefined });
    if (inode.kind === "dir") {
      for (const [name, child] of sortedEntries(inode)) {
        visit(child, path === "/" ? `/${name}` : `${path}/${name}`);
      }
    }
  };
  visit(fs.root, "/");
  return out;
}

/**
 * matchpathcon's `-m` names for composefs's type letters. matchpathcon reads mostly the first
 * letter (libselinux 3.4): `fifo_file` is taken as a regular file and `symlink` as a socket,
 * so the SELinux class names are not all usable here.
 */
const MATCHPATHCON_MODE: Record<string, string> = {
  "-": "file",
  d: "dir",
  l: "link",
  c: "char",
  b: "block",
  p: "pipe",
  s: "socket",
};

/**
 * What libselinux says each path's label is: `matchpathcon -f FILE_CONTEXTS -m MODE PATH...`
 * per file type. With `-f`, libselinux also reads FILE_CONTEXTS.local, .homedirs, .subs and
 * .subs_dist next to it; `-m` gives the file type, so the paths need not exist on this host
 * (without it, matchpathcon lstat()s the host's file of that name). `<<none>>` means no label.
 * No SELinux policy needs to be loaded.
 */
async function matchpathcon(
  fileContexts: string,
  paths: Array<{ path: string; letter: string }>,
): Promise<Map<string, string | undefined>> {
  const result = new Map<string, string | undefined>();
  for (const [letter, mode] of Object.entries(MATCHPATHCON_MODE)) {
    const these = paths.filter((p) => p.letter === letter).map((p) => p.path);
    if (these.length === 0) continue;
    const out = await run("matchpathcon", ["-f", fileContexts, "-m", mode, ...these]);
    for (const line of out.trimEnd().split("\n")) {
      const [path, label] = line.split("\t");
      result.set(`${path} ${letter}`, label === "<<none>>" ? undefined : label);
    }
  }
  return result;
}

/** A root file system with the test policy, pre-existing labels and one of every file type. */
function imageTree(): TestTree {
  const t = new TestTree();
  t.dir("/", st([["security.selinux", "system_u:object_r:container_file_t:s0"]]));
  t.file("/etc/selinux/config", "SELINUX=enforcing\n# comment\nSELINUXTYPE=targeted\n");
  for (const [name, text] of Object.entries(POLICY_FILES)) {
    t.file(`/etc/selinux/targeted/contexts/files/${name}`, text);
  }
  t.file(
    "/etc/selinux/targeted/contexts/default_contexts",
    "system_r:init_t:s0 system_r:unconfined_t:s0\n",
  );
  t.file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
  t.file("/etc/shadow", "root:*:19000:0:99999:7:::\n");
  t.file("/etc/gshadow-", "root:*::\n");
  t.file("/etc/os-release", "ID=test\n");
  t.file("/.autorelabel", "");
  t.leaf("/bin", { type: "symlink", target: enc.encode("usr/bin") });
  t.leaf("/lib", { type: "symlink", target: enc.encode("usr/lib") });
  t.file("/usr/bin/bash", "ELF bash");
  t.file("/usr/bin/sh", "ELF sh");
  t.file("/usr/bin/systemctl", "ELF systemctl");
  t.file("/usr/bin/busctl2", "ELF");
  t.file("/usr/bin/zshrc", "not a shell");
  t.leaf("/usr/bin/rbash", { type: "symlink", target: enc.encode("bash") });
  t.file("/usr/lib/modules/6.1.0-test/vmlinuz", "kernel");
  t.file("/usr/lib/systemd/system/cfs.service", "[Unit]\n");
  t.file("/usr/share/doc/README", "docs");
  t.leaf("/dev/null", { type: "chardev", rdev: 0x103n });
  t.leaf("/dev/sda", { type: "blockdev", rdev: 0x800n });
  t.leaf("/dev/vdb1", { type: "blockdev", rdev: 0xfc11n });
  t.leaf("/dev/console", { type: "chardev", rdev: 0x501n });
  t.leaf("/run/initctl", { type: "fifo" });
  t.leaf("/run/systemd/notify", { type: "socket" });
  t.leaf("/run/systemd/notify2", { type: "socket" });
  t.file("/var/run/utmp", "");
  t.leaf("/var/run/initctl", { type: "fifo" });
  t.dir("/tmp/cache", st([["security.selinux", "system_u:object_r:tmp_t:s0"], ["user.keep", "1"]]));
  t.file("/tmp/cache/data", "x", st([["security.selinux", "system_u:object_r:tmp_t:s0"]]));
  t.dir("/root");
  t.file("/root/.bashrc", "alias ll='ls -l'\n");
  t.file("/opt/oem/bin/tool", "ELF tool");
  t.file("/opt/oem/bin/other", "ELF other");
  t.file("/opt/exact", "exact");
  t.file("/opt/exactly", "regex");
  return t;
}

Deno.test("selinux-relabel: runs after label only", () => {
  assertEquals(registered(selinuxRelabel), { before: [], after: ["label"] });
});

Deno.test("selinux-relabel: labels every inode as matchpathcon does for the image's file_contexts", async () => {
  requireTool("matchpathcon", "apt-get install selinux-utils (make apt)");
  const t = imageTree();
  assert(t.objects.size >= 1, "file_contexts is read through the repository");
  const ctx = context("label", "after", { tree: t.fs, repository: t.repository() });
  await call(selinuxRelabel, ctx);
  assertEquals(ctx.logged.map((e) => e.level), ["info"]);

  const dir = await Deno.makeTempDir({ prefix: "cfs-hooks-selinux-" });
  try {
    for (const [name, text] of Object.entries(POLICY_FILES)) {
      await Deno.writeTextFile(join(dir, name), text);
    }
    const got = labels(t.fs);
    const want = await matchpathcon(join(dir, "file_contexts"), got);
    assertEquals(want.size, got.length);
    assertEquals(
      got.map((g) => `${g.path} ${g.letter} ${g.label ?? "<<none>>"}`),
      got.map((g) => `${g.path} ${g.letter} ${want.get(`${g.path} ${g.letter}`) ?? "<<none>>"}`),
    );
    // The test policy reaches the cases it is meant to: <<none>>, type specifiers, aliases.
    const byPath = new Map(got.map((g) => [g.path, g.label]));
    assertEquals(byPath.get("/tmp/cache"), undefined);
    assertEquals(byPath.get("/tmp"), "system_u:object_r:tmp_t:s0");
    assertEquals(byPath.get("/"), "system_u:object_r:root_t:s0");
    assertEquals(byPath.get("/var/run/initctl"), "system_u:object_r:initctl_t:s0");
    assertEquals(byPath.get("/dev/vdb1"), "system_u:object_r:fixed_disk_device_t:s0");
    assertEquals(byPath.get("/opt/oem/bin/tool"), "system_u:object_r:bin_t:s0");
    assertEquals(byPath.get("/opt/exact"), "system_u:object_r:exact_t:s0");
    assertEquals(byPath.get("/opt/exactly"), "system_u:object_r:regex_t:s0");
    // Other xattrs stay.
    const cache = (t.fs.root.entries.get("tmp") as Directory).entries.get("cache")!;
    assertEquals(cache.stat.xattrs.map((x) => dec.decode(x.name)), ["user.keep"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("selinux-relabel: an image without a policy is logged and left as it is", async () => {
  for (const config of [undefined, "SELINUX=disabled\n"]) { // no etc/selinux; no SELINUXTYPE
    const t = new TestTree();
    t.file(
      "/etc/passwd",
      "root:x:0:0::/root:/bin/sh\n",
      st([["security.selinux", "a_u:b_r:c_t:s0"]]),
    );
    if (config !== undefined) t.file("/etc/selinux/config", config);
    const before = JSON.stringify(labels(t.fs));
    const ctx = context("label", "after", { tree: t.fs, repository: t.repository() });
    await call(selinuxRelabel, ctx);
    assertEquals(JSON.stringify(labels(t.fs)), before);
    assertEquals(ctx.logged.length, 1);
    assert(/no SELinux policy/.test(ctx.logged[0].message), ctx.logged[0].message);
  }
});

Deno.test("selinux-relabel: a policy that names a missing file_contexts fails", async () => {
  const t = new TestTree();
  t.file("/etc/selinux/config", "SELINUXTYPE=targeted\n");
  t.dir("/etc/selinux/targeted/contexts/files");
  await rejects(
    call(selinuxRelabel, context("label", "after", { tree: t.fs, repository: t.repository() })),
    /missing mandatory file_contexts/,
  );
});
