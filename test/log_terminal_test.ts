/**
 * The log's sinks where they meet the system: the progress display in a real terminal
 * (tmux), a subprocess whose stderr is not a terminal, and the journal's native protocol over
 * a real unix datagram socket. Host tier: these run subprocesses (tmux, deno); the pure sink
 * tests are in log_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { COMMAND_FAILED, journaldSink, Logger, PULL_START, TAG_ADDED } from "../lib/log.ts";
import { ROOT } from "./cfs.ts";

// ---------------------------------------------------------------------------------------
// Not a terminal
// ---------------------------------------------------------------------------------------

Deno.test("progress sink: not a TTY in a subprocess writes no byte to stderr", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", join(ROOT, "test/fixtures/progress_demo.ts"), "0.3"],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(out.code, 0);
  const stderr = new TextDecoder().decode(out.stderr);
  // Only the text sink's lines and the demo's last line; no progress, no escape sequences.
  assert.equal(stderr, "layer 1/3 done\nlayer 2/3 done\nlayer 3/3 done\ndemo finished\n");
});

// ---------------------------------------------------------------------------------------
// journald
// ---------------------------------------------------------------------------------------

/** Parses journald's native protocol (an independent reading of the format). */
function parseNative(data: Uint8Array): Array<[string, string]> {
  const dec = new TextDecoder();
  const out: Array<[string, string]> = [];
  let i = 0;
  while (i < data.length) {
    let j = i;
    while (data[j] !== 0x0a && data[j] !== 0x3d) j++;
    const key = dec.decode(data.subarray(i, j));
    if (data[j] === 0x3d) {
      const end = data.indexOf(0x0a, j + 1);
      out.push([key, dec.decode(data.subarray(j + 1, end))]);
      i = end + 1;
    } else {
      const len = Number(Buffer.from(data.subarray(j + 1, j + 9)).readBigUInt64LE(0));
      const start = j + 9;
      out.push([key, dec.decode(data.subarray(start, start + len))]);
      assert.equal(data[start + len], 0x0a, "binary value ends with a newline");
      i = start + len + 1;
    }
  }
  return out;
}

Deno.test("journald sink: native protocol over a real unix datagram socket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cfs-journal-" });
  const socket = join(dir, "socket");
  const big = "x".repeat(300 * 1024);
  const receiver = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "--unstable-net",
      join(ROOT, "test/fixtures/journal_receiver.ts"),
      socket,
      "3",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const lines = receiver.stdout.pipeThrough(new TextDecoderStream()).values();
    let buffered = "";
    const nextLine = async (): Promise<string> => {
      while (!buffered.includes("\n")) {
        const r = await lines.next();
        if (r.done) throw new Error("receiver exited");
        buffered += r.value;
      }
      const n = buffered.indexOf("\n");
      const line = buffered.slice(0, n);
      buffered = buffered.slice(n + 1);
      return line;
    };
    assert.equal(await nextLine(), "ready");
    assert.equal(journaldSink(join(dir, "absent")), undefined, "no socket, no sink");
    const sink = journaldSink(socket);
    assert.ok(sink, "sink for an existing socket");
    const log = new Logger([sink], { CFS_IMAGE: "docker://127.0.0.1:5000/a:b" });
    log.info(PULL_START, "pulling docker://127.0.0.1:5000/a:b", {
      CFS_LAYERS: 3,
      CFS_UNIFIED_STORAGE: false,
      GONE: null,
    });
    log.error(COMMAND_FAILED, "skopeo failed", {
      CFS_OUTPUT: "line one\nline two=2\n",
      CFS_EXIT_CODE: 1,
    });
    log.debug(TAG_ADDED, "big", { CFS_OUTPUT: big }); // over the 212992-byte datagram limit: cut
    log.close();

    const first = parseNative(Buffer.from(await nextLine(), "base64"));
    assert.deepEqual(first, [
      ["MESSAGE", "pulling docker://127.0.0.1:5000/a:b"],
      ["MESSAGE_ID", PULL_START],
      ["PRIORITY", "6"],
      ["SYSLOG_IDENTIFIER", "cfs"],
      ["CFS_IMAGE", "docker://127.0.0.1:5000/a:b"],
      ["CFS_LAYERS", "3"],
      ["CFS_UNIFIED_STORAGE", "false"],
    ]);
    const second = new Map(parseNative(Buffer.from(await nextLine(), "base64")));
    assert.equal(second.get("PRIORITY"), "3");
    assert.equal(second.get("MESSAGE_ID"), COMMAND_FAILED);
    assert.equal(second.get("CFS_OUTPUT"), "line one\nline two=2\n");
    assert.equal(second.get("CFS_EXIT_CODE"), "1");
    const third = new Map(parseNative(Buffer.from(await nextLine(), "base64")));
    assert.equal(third.get("PRIORITY"), "7");
    const cut = third.get("CFS_OUTPUT")!;
    assert.ok(
      cut.startsWith("x".repeat(48 * 1024)) &&
        cut.endsWith(`[... ${big.length - 48 * 1024} bytes cut]`),
    );
    assert.equal((await receiver.status).code, 0);
  } finally {
    try {
      receiver.kill();
    } catch { /* exited */ }
    await receiver.status;
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------
// A real terminal
// ---------------------------------------------------------------------------------------

async function tmux(args: string[]): Promise<string> {
  const out = await new Deno.Command("tmux", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`tmux ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Bytes shown by a bar line `[##>--] (N UNIT/24.00 MiB)`, or undefined for any other line. */
function barBytes(line: string): number | undefined {
  const m = /^\[[#>-]+\] \((\d+(?:\.\d+)?) (B|KiB|MiB|GiB)\/24\.00 MiB\)$/.exec(line.trimEnd());
  if (!m) return undefined;
  return Number(m[1]) * { B: 1, KiB: 1 << 10, MiB: 1 << 20, GiB: 1 << 30 }[m[2] as "B"];
}

Deno.test("progress display in tmux: one progress line redrawn in place, log lines above it", async () => {
  // The demo does one state at a time (test/fixtures/progress_demo.ts --control) and the test
  // waits until the pane shows that state before it checks the pane and asks for the next:
  // nothing depends on how fast the machine is, only on the bounded wait for each state.
  const tmp = await Deno.makeTempDir({ prefix: "cfs-log-tmux-" });
  const control = join(tmp, "control");
  await Deno.writeTextFile(control, "");
  const send = (line: string) => Deno.writeTextFile(control, line + "\n", { append: true });
  const server = `cfs-log-test-${Deno.pid}`;
  const env = `DENO_DIR=${Deno.env.get("DENO_DIR") ?? ""} NO_COLOR=1`;
  const cmd = `env ${env} ${Deno.execPath()} run -A --quiet ${
    join(ROOT, "test/fixtures/progress_demo.ts")
  } --control ${control}; sleep 60`;
  await tmux(["-L", server, "-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "10"]
    .concat(["-s", "demo", cmd]));
  /** Captures the pane until `ready` holds (at most 60 s: the wait is for the state). */
  const waitFor = async (what: string, ready: (lines: string[]) => boolean) => {
    const deadline = Date.now() + 60_000;
    let pane = "";
    while (Date.now() < deadline) {
      pane = await tmux(["-L", server, "capture-pane", "-p", "-t", "demo"]);
      if (ready(pane.split("\n"))) return pane.split("\n");
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the pane never showed ${what}; last capture:\n${pane}`);
  };
  try {
    const MiB = 1 << 20;
    const logged: string[] = [];
    const shown = new Set<string>();
    let layer = 1;
    for (const mib of [2, 6, 10, 14, 18, 22]) {
      const nowLayer = Math.floor(mib / 8) + 1;
      if (nowLayer !== layer) {
        logged.push(`layer ${layer}/3 done`);
        await send(`log layer ${layer}/3 done`);
        layer = nowLayer;
      }
      await send(`progress ${layer} ${mib * MiB}`);
      const lines = await waitFor(
        `layer ${layer}/3 at ${mib} MiB`,
        (ls) =>
          ls.some((l) => l.includes(`fetching layer ${layer}/3`)) &&
          ls.some((l) => barBytes(l) === mib * MiB),
      );
      const pane = lines.join("\n");
      // One progress label and one bar, below every line logged so far, each logged once.
      const labelAt = lines.findIndex((l) => l.includes("fetching"));
      assert.equal(lines.filter((l) => l.includes("fetching")).length, 1, pane);
      assert.equal(lines.filter((l) => barBytes(l) !== undefined).length, 1, pane);
      assert.equal(barBytes(lines[labelAt + 1]), mib * MiB, `the bar under its label:\n${pane}`);
      for (const text of logged) {
        const at = lines.flatMap((l, i) => (l.trimEnd() === text ? [i] : []));
        assert.equal(at.length, 1, `'${text}' once:\n${pane}`);
        assert.ok(at[0] < labelAt, `'${text}' above the progress:\n${pane}`);
      }
      assert.ok(lines.filter((l) => l.trim() !== "").length <= logged.length + 2, pane);
      shown.add(lines[labelAt + 1].trimEnd());
    }
    // The same two lines were redrawn in place with six different bars.
    assert.equal(shown.size, 6);

    await send("log layer 3/3 done");
    await send("done");
    const last = await waitFor("demo finished", (ls) => ls.some((l) => l === "demo finished"));
    const pane = last.join("\n");
    // Finished: the display is gone and each log line was printed exactly once.
    assert.equal(last.filter((l) => l.includes("fetching")).length, 0, pane);
    for (const n of [1, 2, 3]) {
      assert.equal(last.filter((l) => l.startsWith(`layer ${n}/3 done`)).length, 1, pane);
    }
    assert.equal(last.filter((l) => l.trim() !== "").length, 4, `no accumulated lines:\n${pane}`);
  } finally {
    await tmux(["-L", server, "kill-server"]).catch(() => {}); // gone already: nothing to end
    await Deno.remove(tmp, { recursive: true });
  }
});
