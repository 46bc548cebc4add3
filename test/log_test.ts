/**
 * The log (lib/log.ts) as pure code: frozen message IDs, field names, the JSON lines, text and
 * progress sinks driven by hand. Unit tier; the sinks against a real terminal, a subprocess and
 * the journal socket are in log_terminal_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  COMMAND_FAILED,
  createLogger,
  Field,
  formatDuration,
  HOOK_END,
  HOOK_FAILED,
  HOOK_LOADED,
  HOOK_MESSAGE,
  HOOK_START,
  IMAGE_WRITTEN,
  jsonLinesSink,
  LAYER_DONE,
  LAYER_PRESENT,
  LAYER_START,
  type LogEvent,
  Logger,
  MESSAGE_IDS,
  messageLogger,
  type ProgressView,
  PULL_DONE,
  PULL_FAILED,
  PULL_START,
  SIGNATURE_CHECKED,
  STAGE_END,
  STAGE_FAILED,
  STAGE_START,
  STORAGE_LABELED,
  STORAGE_PULLED,
  TAG_ADDED,
  textSink,
  ttyProgressSink,
} from "../lib/log.ts";

function collect(): { lines: string[]; write: (s: string) => void } {
  const lines: string[] = [];
  return { lines, write: (s) => lines.push(s) };
}

Deno.test("message IDs are frozen: each equals the value journal queries depend on", () => {
  // Literal copies: changing a constant in lib/log.ts breaks `journalctl MESSAGE_ID=...` users.
  const frozen: Record<string, string> = {
    PULL_START: "b71d6f514016dbdab5d91c52a044dcf6",
    PULL_DONE: "b36005b31c4c44eaff14e654edfa79f4",
    PULL_FAILED: "98438f346aac2a13cf132ffadbf836e1",
    STAGE_START: "433b16514352230d106eb0e7f6e61f8e",
    STAGE_END: "a12efe146bab4d3863d6e723a219c717",
    STAGE_FAILED: "edd44803b7c61a6ba8c12cf7e8be9547",
    HOOK_LOADED: "4fa373b4935e73bf133ac1a154ae40a2",
    HOOK_START: "e489e0b58ed73d355b858b5ff2330418",
    HOOK_END: "bcf527f82e3ccf1f90ec38ba2551a02f",
    HOOK_FAILED: "41a7f9f2c2be82fbdf77ef600b45edd2",
    HOOK_MESSAGE: "7e7a710ae21e8269ee4cf3212b841e4c",
    LAYER_START: "cea781280a68e2c50891920f7081f417",
    LAYER_DONE: "50d8e48fcc6611fbdc55e59fc6f21082",
    LAYER_PRESENT: "2f98e0e518955d6dcfada95f1b1f3345",
    COMMAND_FAILED: "e9fd004d5fa08e36fc23146dd335d1ee",
    TAG_ADDED: "8fedc4712dbca883a41e00451ccd68b7",
    IMAGE_WRITTEN: "4810d287a9a0a3bba6459f88ac99c694",
    STORAGE_PULLED: "e27141108aea5370fb21e0b92724a8da",
    STORAGE_LABELED: "986ca0d89b41d40007a281315aa493ed",
    SIGNATURE_CHECKED: "ddb7cb6bdcfa4143bd3a7e0f87c0d880",
  };
  const exported = {
    PULL_START,
    PULL_DONE,
    PULL_FAILED,
    STAGE_START,
    STAGE_END,
    STAGE_FAILED,
    HOOK_LOADED,
    HOOK_START,
    HOOK_END,
    HOOK_FAILED,
    HOOK_MESSAGE,
    LAYER_START,
    LAYER_DONE,
    LAYER_PRESENT,
    COMMAND_FAILED,
    TAG_ADDED,
    IMAGE_WRITTEN,
    STORAGE_PULLED,
    STORAGE_LABELED,
    SIGNATURE_CHECKED,
  };
  assert.deepEqual(exported, frozen);
  assert.deepEqual({ ...MESSAGE_IDS }, frozen);
  for (const id of Object.values(frozen)) assert.match(id, /^[0-9a-f]{32}$/);
  assert.equal(new Set(Object.values(frozen)).size, Object.keys(frozen).length, "IDs are distinct");
});

Deno.test("field names are CFS_ and journald-valid", () => {
  for (const name of Object.values(Field)) assert.match(name, /^CFS_[A-Z0-9_]+$/);
  assert.equal(Field.MANIFEST_DIGEST, "CFS_MANIFEST_DIGEST");
  assert.equal(Field.DURATION_MS, "CFS_DURATION_MS");
});

Deno.test("JSON lines: one object per line with time, level, id, message and fields", () => {
  const out = collect();
  const log = new Logger([jsonLinesSink(out.write)], { CFS_IMAGE: "oci:/tmp/x:latest" });
  log.info(PULL_START, "pulling oci:/tmp/x:latest", { CFS_TRANSPORT: "oci" });
  const stage = log.child({ CFS_STAGE: "fetch" });
  stage.debug(STAGE_START, "stage fetch");
  stage.info(STAGE_END, 'stage fetch done\nsecond "line"', {
    CFS_DURATION_MS: 12,
    CFS_BOOTABLE: false,
    X: null,
  });
  log.error(PULL_FAILED, "failed");
  log.close();
  log.info(PULL_DONE, "after close is dropped");

  const text = out.lines.join("");
  assert.ok(text.endsWith("\n"));
  const events = text.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(events.length, 4);
  assert.deepEqual(events.map((e) => [e.level, e.id]), [
    ["info", PULL_START],
    ["debug", STAGE_START],
    ["info", STAGE_END],
    ["error", PULL_FAILED],
  ]);
  for (const e of events) {
    assert.ok(!Number.isNaN(Date.parse(e.time)) && e.time.endsWith("Z"));
    assert.equal(e.CFS_IMAGE, "oci:/tmp/x:latest");
  }
  assert.equal(events[0].CFS_TRANSPORT, "oci");
  assert.equal(events[1].CFS_STAGE, "fetch");
  assert.equal(events[2].message, 'stage fetch done\nsecond "line"');
  assert.equal(events[2].CFS_DURATION_MS, 12);
  assert.equal(events[2].CFS_BOOTABLE, false);
  assert.equal(events[2].X, null);
  assert.equal(events[3].CFS_STAGE, undefined, "a child's fields stay in the child");
});

Deno.test("Logger: rejects malformed IDs, normalizes field names, survives a throwing sink", () => {
  const seen: LogEvent[] = [];
  const log = new Logger([
    {
      event: () => {
        throw new Error("broken pipe");
      },
    },
    { event: (e) => seen.push(e) },
  ]);
  assert.throws(() => log.info("4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8", "33 digits"), TypeError);
  assert.throws(() => log.info("B71D6F514016DBDAB5D91C52A044DCF6", "uppercase"), TypeError);
  log.info(HOOK_MESSAGE, "hello", { "bootc.image.reference": "x", _private: 1, "9lives": true });
  assert.deepEqual(seen[0].fields, { BOOTC_IMAGE_REFERENCE: "x", PRIVATE: 1, LIVES: true });
  const hookLog = messageLogger(log.child({ CFS_HOOK: "extra-tags" }), HOOK_MESSAGE);
  hookLog.warn("tag exists", { tag: "oem/golden" });
  assert.equal(seen[1].level, "warning");
  assert.equal(seen[1].id, HOOK_MESSAGE);
  assert.deepEqual(seen[1].fields, { CFS_HOOK: "extra-tags", TAG: "oem/golden" });
});

Deno.test("text sink: debug and fields only with verbose; warnings and errors prefixed", () => {
  for (const verbose of [false, true]) {
    const out = collect();
    const log = new Logger([textSink({ verbose, write: out.write })]);
    log.debug(STAGE_START, "stage open", { CFS_STAGE: "open" });
    log.info(LAYER_PRESENT, "layer 1/2 present", {
      CFS_LAYER_DIGEST: "sha256:ab",
      CFS_NOTE: "two words",
    });
    log.warn(HOOK_FAILED, "hook slow");
    log.error(PULL_FAILED, "pull failed");
    if (!verbose) {
      assert.deepEqual(out.lines, [
        "layer 1/2 present\n",
        "warning: hook slow\n",
        "error: pull failed\n",
      ]);
    } else {
      assert.deepEqual(out.lines, [
        "debug: stage open CFS_STAGE=open\n",
        'layer 1/2 present CFS_LAYER_DIGEST=sha256:ab CFS_NOTE="two words"\n',
        "warning: hook slow\n",
        "error: pull failed\n",
      ]);
    }
  }
});

Deno.test("progress sink: nothing at all when not a TTY", () => {
  let made = 0;
  const sink = ttyProgressSink({
    isTty: false,
    display: () => (made++, { show() {}, finish() {} }),
  });
  const log = new Logger([sink]);
  for (let i = 0; i < 100; i++) {
    log.progress({ label: "fetching", bytes: i * 1000, totalBytes: 100_000 });
  }
  log.info(PULL_DONE, "done");
  log.close();
  assert.equal(made, 0);
});

Deno.test("progress sink on a TTY: throttled to 10 redraws a second, with layers, rate and ETA", () => {
  let t = 0;
  const shown: ProgressView[] = [];
  let finished = 0;
  const sink = ttyProgressSink({
    isTty: true,
    now: () => t,
    display: () => ({ show: (v) => shown.push(v), finish: () => finished++ }),
  });
  const log = new Logger([sink]);
  // 1 MiB/s for 2 s, a report every 10 ms: 200 reports.
  for (let i = 1; i <= 200; i++) {
    t = i * 10;
    log.progress({
      label: "fetching",
      layer: 1,
      layers: 2,
      bytes: i * 10 * 1024 * 1024 / 1000,
      totalBytes: 4 * 1024 * 1024,
    });
  }
  assert.ok(shown.length >= 19 && shown.length <= 21, `${shown.length} redraws`);
  const last = shown[shown.length - 1];
  assert.equal(last.prefix, "fetching");
  assert.equal(last.length, 4 * 1024 * 1024);
  assert.match(last.message, /^layer 1\/2, 1\.0 MiB\/s, ETA 0:0[23]$/);
  // A new label draws at once.
  log.progress({ label: "importing", bytes: 0 });
  assert.equal(shown[shown.length - 1].prefix, "importing");
  log.close();
  assert.equal(finished, 1);
  assert.equal(formatDuration(3725), "1:02:05");
});

Deno.test("createLogger: --json gives JSON on stdout only; text otherwise; journal when asked", () => {
  const stdout = collect();
  const stderr = collect();
  const json = createLogger({
    json: true,
    verbose: false,
    stderrIsTty: false,
    journald: false,
    stdout: stdout.write,
    stderr: stderr.write,
  });
  json.info(IMAGE_WRITTEN, "image written", { CFS_IMAGE_ID: "ab" });
  json.close();
  assert.equal(stderr.lines.length, 0);
  assert.equal(JSON.parse(stdout.lines[0]).CFS_IMAGE_ID, "ab");

  const text = createLogger({
    json: false,
    verbose: false,
    stderrIsTty: false,
    journald: "/nonexistent/socket",
    stdout: stdout.write,
    stderr: stderr.write,
  });
  text.info(LAYER_START, "layer 1/1");
  text.progress({ label: "fetching", bytes: 1 });
  text.close();
  assert.deepEqual(stderr.lines, ["layer 1/1\n"]);
  assert.equal(stdout.lines.length, 1);
});
