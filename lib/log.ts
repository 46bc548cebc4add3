/**
 * Structured events with stable message IDs, and where they go: human lines on stderr, a
 * progress display on a TTY, JSON lines (`--json`), and the systemd journal.
 *
 * Every event has a level, a message ID (32 lowercase hex digits, a 128-bit ID as journald's
 * `MESSAGE_ID=` and `sd-id128` expect), a human message and fields. Field names are
 * journald-style: uppercase letters, digits and `_`, prefixed `CFS_` where cfs defines them
 * ({@link Field}), mirroring the `bootc.*` fields bootc logs around its composefs pull (which
 * tracing-journald turns into `BOOTC_*`). The IDs are frozen: journal queries
 * (`journalctl MESSAGE_ID=...`) and log processors depend on them, so a changed value is a
 * breaking change (test/log_test.ts pins them).
 *
 * ```ts
 * const log = createLogger({ json: false, verbose: false });
 * const pull = log.child({ CFS_IMAGE: "docker://quay.io/x/y:latest" });
 * pull.info(PULL_START, "pulling docker://quay.io/x/y:latest");
 * pull.progress({ label: "fetching", layer: 1, layers: 3, bytes: 4096, totalBytes: 1 << 20 });
 * pull.info(PULL_DONE, "pulled", { CFS_MANIFEST_DIGEST: "sha256:...", CFS_DURATION_MS: 812 });
 * log.close();
 * ```
 *
 * @module
 */

import { concatBytes } from "./bytes.ts";
import { loadDax, loadedDax } from "./dax.ts";
import { UnixDatagramSender } from "./sys/unix_datagram.ts";

// ---------------------------------------------------------------------------------------
// Message IDs
//
// Generated once with `openssl rand -hex 16` and frozen. None is bootc's: the bootc event
// closest to ours, its composefs pull (`COMPOSEFS_PULL_JOURNAL_ID` in
// crates/lib/src/bootc_composefs/repo.rs, logged at the start and the end of the pull, as
// are `PULLING_NEW_IMAGE_ID`, `IMAGE_ALREADY_PRESENT_ID` and `IMPORT_COMPLETE_JOURNAL_ID` in
// deploy.rs), has 33 hex digits, which is not a 128-bit ID; and bootc's events describe
// bootc's own operations, which `journalctl MESSAGE_ID=` must not mix with cfs's.
// ---------------------------------------------------------------------------------------

/** A pull begins (`cfs pull`, `cfs oci pull`). Fields: CFS_IMAGE, CFS_TRANSPORT, CFS_OPERATION. */
export const PULL_START = "b71d6f514016dbdab5d91c52a044dcf6";
/** A pull finished. Fields: CFS_MANIFEST_DIGEST/_VERITY, CFS_CONFIG_DIGEST/_VERITY, CFS_TAG, CFS_IMAGE_ID, CFS_DURATION_MS. */
export const PULL_DONE = "b36005b31c4c44eaff14e654edfa79f4";
/** A pull failed or was interrupted. Fields: CFS_ERROR, CFS_STAGE, CFS_DURATION_MS. */
export const PULL_FAILED = "98438f346aac2a13cf132ffadbf836e1";
/** A pipeline stage begins. Fields: CFS_STAGE. */
export const STAGE_START = "433b16514352230d106eb0e7f6e61f8e";
/** A pipeline stage ended successfully. Fields: CFS_STAGE, CFS_DURATION_MS. */
export const STAGE_END = "a12efe146bab4d3863d6e723a219c717";
/** A pipeline stage failed. Fields: CFS_STAGE, CFS_ERROR, CFS_DURATION_MS. */
export const STAGE_FAILED = "edd44803b7c61a6ba8c12cf7e8be9547";
/** A hook module was loaded and validated. Fields: CFS_HOOK, CFS_HOOK_FILE. */
export const HOOK_LOADED = "4fa373b4935e73bf133ac1a154ae40a2";
/** A hook function begins. Fields: CFS_HOOK, CFS_PHASE, CFS_STAGE. */
export const HOOK_START = "e489e0b58ed73d355b858b5ff2330418";
/** A hook function returned. Fields: CFS_HOOK, CFS_PHASE, CFS_STAGE, CFS_DURATION_MS. */
export const HOOK_END = "bcf527f82e3ccf1f90ec38ba2551a02f";
/** A hook threw, timed out or was aborted. Fields: CFS_HOOK, CFS_PHASE, CFS_STAGE, CFS_ERROR, CFS_DURATION_MS. */
export const HOOK_FAILED = "41a7f9f2c2be82fbdf77ef600b45edd2";
/**
 * A message a hook logged through its context's logger, or a line it printed. Fields:
 * CFS_HOOK, CFS_STAGE, the hook's own; CFS_HOOK_STREAM for a printed line.
 */
export const HOOK_MESSAGE = "7e7a710ae21e8269ee4cf3212b841e4c";
/** A layer's import begins. Fields: CFS_LAYER_DIGEST, CFS_LAYER_INDEX, CFS_LAYERS, CFS_BYTES (compressed size). */
export const LAYER_START = "cea781280a68e2c50891920f7081f417";
/** A layer was imported. Fields: CFS_LAYER_DIGEST, CFS_LAYER_DIFF_ID, CFS_LAYER_VERITY, CFS_BYTES, CFS_DURATION_MS. */
export const LAYER_DONE = "50d8e48fcc6611fbdc55e59fc6f21082";
/** A layer was already in the repository and was not fetched. Fields as LAYER_DONE without duration. */
export const LAYER_PRESENT = "2f98e0e518955d6dcfada95f1b1f3345";
/** An external command (skopeo, setfiles, ...) failed; its output is in CFS_OUTPUT. Fields: CFS_COMMAND, CFS_EXIT_CODE, CFS_OUTPUT. */
export const COMMAND_FAILED = "e9fd004d5fa08e36fc23146dd335d1ee";
/** A tag (GC root) was written. Fields: CFS_TAG, CFS_MANIFEST_DIGEST. */
export const TAG_ADDED = "8fedc4712dbca883a41e00451ccd68b7";
/** An EROFS image was written. Fields: CFS_IMAGE_ID, CFS_BOOTABLE, CFS_CONFIG_DIGEST. */
export const IMAGE_WRITTEN = "4810d287a9a0a3bba6459f88ac99c694";

/** `--unified`: the image is in cfs's containers-storage. Fields: CFS_STORAGE, CFS_DURATION_MS. */
export const STORAGE_PULLED = "e27141108aea5370fb21e0b92724a8da";
/** `--unified`: the storage's SELinux labels were set, or why not. Fields: CFS_STORAGE. */
export const STORAGE_LABELED = "986ca0d89b41d40007a281315aa493ed";

/**
 * The signature policy decided about the image (accepted or rejected), before any layer is
 * read. Fields: CFS_POLICY, CFS_TRANSPORT, CFS_POLICY_SCOPE, CFS_POLICY_DECISION,
 * CFS_MANIFEST_DIGEST, CFS_ERROR (the reasons, when rejected).
 */
export const SIGNATURE_CHECKED = "ddb7cb6bdcfa4143bd3a7e0f87c0d880";

/** Every message ID by name, for lookups and documentation. */
export const MESSAGE_IDS = {
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
} as const;

// ---------------------------------------------------------------------------------------
// Field names
// ---------------------------------------------------------------------------------------

/**
 * The field names cfs uses. Where bootc logs the same fact (its `bootc.*` tracing fields,
 * `BOOTC_*` once in the journal), the name is bootc's with `CFS_` for `BOOTC_`.
 */
export const Field = {
  /** What is being done: `pull`, `oci-pull` (bootc.operation). */
  OPERATION: "CFS_OPERATION",
  /** The image reference as given (bootc.source_image, bootc.image.reference). */
  IMAGE: "CFS_IMAGE",
  /** Its transport: `oci`, `docker`, `containers-storage`, ... (bootc.transport). */
  TRANSPORT: "CFS_TRANSPORT",
  /** `already_present` or `pulling_new` (bootc.status). */
  STATUS: "CFS_STATUS",
  /** Whether the repository may lack fs-verity (bootc.allow_missing_fsverity). */
  ALLOW_MISSING_FSVERITY: "CFS_ALLOW_MISSING_FSVERITY",
  /** Whether the pull goes through containers-storage (bootc.unified_storage). */
  UNIFIED_STORAGE: "CFS_UNIFIED_STORAGE",
  /** `sha256:...` of the manifest (bootc.manifest_digest). */
  MANIFEST_DIGEST: "CFS_MANIFEST_DIGEST",
  /** The manifest stream's object ID (bootc.manifest_verity). */
  MANIFEST_VERITY: "CFS_MANIFEST_VERITY",
  /** `sha256:...` of the config (bootc.config_digest). */
  CONFIG_DIGEST: "CFS_CONFIG_DIGEST",
  /** The config stream's object ID (bootc.config_verity). */
  CONFIG_VERITY: "CFS_CONFIG_VERITY",
  /** A tag written or read (bootc.tag). */
  TAG: "CFS_TAG",
  /** The repository path. */
  REPO: "CFS_REPO",
  /** The containers-storage `--unified` pulls into. */
  STORAGE: "CFS_STORAGE",
  /** The signature policy file a decision came from. */
  POLICY: "CFS_POLICY",
  /** The policy scope that applied: a scope, `transport default` or `default`. */
  POLICY_SCOPE: "CFS_POLICY_SCOPE",
  /** `accepted` or `rejected`. */
  POLICY_DECISION: "CFS_POLICY_DECISION",
  /** A pipeline stage: open, storage, fetch, import, label-storage, tag, label, image, boot. */
  STAGE: "CFS_STAGE",
  /** `before` or `after`. */
  PHASE: "CFS_PHASE",
  /** A hook's name. */
  HOOK: "CFS_HOOK",
  /** The file a hook was loaded from. */
  HOOK_FILE: "CFS_HOOK_FILE",
  /** A line a hook printed (its commands, its console): `stdout` or `stderr`. */
  HOOK_STREAM: "CFS_HOOK_STREAM",
  /** Milliseconds an operation took. */
  DURATION_MS: "CFS_DURATION_MS",
  /** `sha256:...` of a layer blob. */
  LAYER_DIGEST: "CFS_LAYER_DIGEST",
  /** `sha256:...` of a layer's uncompressed tar. */
  LAYER_DIFF_ID: "CFS_LAYER_DIFF_ID",
  /** A layer stream's object ID. */
  LAYER_VERITY: "CFS_LAYER_VERITY",
  /** A layer's position, from 1. */
  LAYER_INDEX: "CFS_LAYER_INDEX",
  /** How many layers the image has. */
  LAYERS: "CFS_LAYERS",
  /** A byte count (what it counts is the event's to say). */
  BYTES: "CFS_BYTES",
  /** An EROFS image ID (hex). */
  IMAGE_ID: "CFS_IMAGE_ID",
  /** Whether an image is the bootable variant. */
  BOOTABLE: "CFS_BOOTABLE",
  /** An error's one-line message. */
  ERROR: "CFS_ERROR",
  /** An external command line. */
  COMMAND: "CFS_COMMAND",
  /** An external command's exit code. */
  EXIT_CODE: "CFS_EXIT_CODE",
  /** An external command's captured output (stdout and stderr). */
  OUTPUT: "CFS_OUTPUT",
} as const;

// ---------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------

/** How important an event is; `debug` is shown on stderr only with `-v`. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** A field value: what JSON and the journal can both carry (`null` is left out of the journal). */
export type FieldValue = string | number | boolean | null;

/** An event's fields, by journald-style name. */
export type Fields = Record<string, FieldValue>;

/** One structured event. */
export interface LogEvent {
  /** When it happened, ISO 8601 (UTC). */
  time: string;
  /** Its level. */
  level: LogLevel;
  /** Its message ID: 32 lowercase hex digits, one of {@link MESSAGE_IDS}. */
  id: string;
  /** The human-readable message. */
  message: string;
  /** Its fields (the logger's base fields merged with the event's own). */
  fields: Fields;
}

/** A progress report: the latest totals so far, not increments. */
export interface Progress {
  /** What is progressing: `fetching`, `importing`, ... */
  label: string;
  /** The layer being worked on, from 1. */
  layer?: number;
  /** How many layers there are. */
  layers?: number;
  /** Bytes done so far under this label. */
  bytes: number;
  /** Bytes expected under this label, when known. */
  totalBytes?: number;
}

/** Where events go. `progress` and `done` are optional. */
export interface LogSink {
  /** Receives every event; must not throw (the logger ignores what a sink throws). */
  event(e: LogEvent): void;
  /** Receives progress reports, as often as the caller makes them. */
  progress?(p: Progress): void;
  /** The logger is closed: finish displays, flush, close sockets. */
  done?(): void;
}

const MESSAGE_ID = /^[0-9a-f]{32}$/;

/** A field name as journald accepts it: `[A-Z0-9_]`, not starting with `_` or a digit, at most 64 bytes. */
export function fieldName(name: string): string {
  const upper = name.toUpperCase().replace(/[^A-Z0-9_]/g, "_").replace(/^[_0-9]+/, "");
  return (upper || "FIELD").slice(0, 64);
}

// ---------------------------------------------------------------------------------------
// Logger
// ---------------------------------------------------------------------------------------

/** Sinks and their closed state, shared by a logger and its children. */
interface SinkSet {
  sinks: LogSink[];
  closed: boolean;
}

/** Emits events to sinks. {@link Logger.child} adds fields for a scope (an image, a hook). */
export class Logger {
  #set: SinkSet;
  #base: Fields;

  /** A logger writing to `sinks`, adding `baseFields` to every event. */
  constructor(sinks: LogSink[], baseFields: Fields = {}) {
    this.#set = { sinks, closed: false };
    this.#base = normalizeFields(baseFields);
  }

  /**
   * Emits an event. Throws TypeError if `id` is not 32 lowercase hex digits (a programming
   * error); what a sink throws is ignored, so logging never stops a pull.
   */
  emit(level: LogLevel, id: string, message: string, fields: Fields = {}): void {
    if (!MESSAGE_ID.test(id)) {
      throw new TypeError(`log: message ID ${JSON.stringify(id)} is not 32 hex digits`);
    }
    if (this.#set.closed) return;
    const event: LogEvent = {
      time: new Date().toISOString(),
      level,
      id,
      message,
      fields: { ...this.#base, ...normalizeFields(fields) },
    };
    for (const sink of this.#set.sinks) {
      try {
        sink.event(event);
      } catch {
        // A broken sink (closed pipe, full disk) must not fail the operation it logs.
      }
    }
  }

  /** An `info` event. */
  info(id: string, message: string, fields?: Fields): void {
    this.emit("info", id, message, fields);
  }

  /** A `warning` event. */
  warn(id: string, message: string, fields?: Fields): void {
    this.emit("warning", id, message, fields);
  }

  /** An `error` event. */
  error(id: string, message: string, fields?: Fields): void {
    this.emit("error", id, message, fields);
  }

  /** A `debug` event (stderr shows it only with `-v`; JSON and the journal always get it). */
  debug(id: string, message: string, fields?: Fields): void {
    this.emit("debug", id, message, fields);
  }

  /** Reports progress to the sinks that display it (the TTY display); others ignore it. */
  progress(p: Progress): void {
    if (this.#set.closed) return;
    for (const sink of this.#set.sinks) {
      try {
        sink.progress?.(p);
      } catch {
        // as in emit
      }
    }
  }

  /** A logger with the same sinks and these fields added to every event. */
  child(fields: Fields): Logger {
    const child = new Logger([], { ...this.#base, ...fields });
    child.#set = this.#set;
    return child;
  }

  /** Finishes every sink once (progress display cleared, journal socket closed); later events are dropped. */
  close(): void {
    if (this.#set.closed) return;
    this.#set.closed = true;
    for (const sink of this.#set.sinks) {
      try {
        sink.done?.();
      } catch {
        // as in emit
      }
    }
  }
}

function normalizeFields(fields: Fields): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    out[fieldName(k)] = v;
  }
  return out;
}

/**
 * A logger with one fixed message ID, in the shape of a hook's `ctx.log`
 * (hooks/types.ts `HookLogger`): `messageLogger(log.child({ CFS_HOOK: name }), HOOK_MESSAGE)`.
 */
export function messageLogger(logger: Logger, id: string): {
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  debug(message: string, fields?: Fields): void;
} {
  return {
    info: (message, fields) => logger.info(id, message, fields),
    warn: (message, fields) => logger.warn(id, message, fields),
    error: (message, fields) => logger.error(id, message, fields),
    debug: (message, fields) => logger.debug(id, message, fields),
  };
}

// ---------------------------------------------------------------------------------------
// JSON lines and text
// ---------------------------------------------------------------------------------------

/**
 * One JSON object per event, `{time, level, id, message, ...fields}`, passed to `write`
 * with its trailing newline. Progress reports are not written (they would flood a file).
 */
export function jsonLinesSink(write: (line: string) => void): LogSink {
  return {
    event(e) {
      write(
        JSON.stringify({
          time: e.time,
          level: e.level,
          id: e.id,
          message: e.message,
          ...e.fields,
        }) + "\n",
      );
    },
  };
}

/**
 * Human lines for stderr, each passed to `write` with its trailing newline: the message,
 * prefixed `warning: ` / `error: ` by level. `debug` events only with `verbose`, which also
 * appends the fields as `KEY=value`.
 */
export function textSink(
  opts: { verbose: boolean; write: (s: string) => void; verboseOnly?: readonly string[] },
): LogSink {
  return {
    event(e) {
      if (e.level === "debug" && !opts.verbose) return;
      // Failure events the CLI reports itself as its one-line error: shown only with -v.
      if (!opts.verbose && opts.verboseOnly?.includes(e.id)) return;
      const prefix = e.level === "info" ? "" : `${e.level}: `;
      let line = prefix + e.message;
      if (opts.verbose) {
        for (const [k, v] of Object.entries(e.fields)) {
          if (v === null) continue;
          const s = String(v);
          line += ` ${k}=${/[\s"]/.test(s) || s === "" ? JSON.stringify(s) : s}`;
        }
      }
      opts.write(line + "\n");
    },
  };
}

// ---------------------------------------------------------------------------------------
// TTY progress
// ---------------------------------------------------------------------------------------

/** What the progress display shows: a label, a message (layers, rate, ETA), bytes done of total. */
export interface ProgressView {
  /** The progress label (`fetching`, ...). */
  prefix: string;
  /** `layer i/n, RATE/s, ETA m:ss`, the parts that are known. */
  message: string;
  /** Bytes done. */
  position: number;
  /** Bytes in all, when known (else the display shows a spinner). */
  length?: number;
}

/** Draws a progress view in place; the default draws with dax's `$.progress`. */
export interface ProgressDisplay {
  /** Shows (or updates) the view. */
  show(view: ProgressView): void;
  /** Removes the display from the terminal. */
  finish(): void;
}

/**
 * dax's progress bar on stderr: a message line and a bar line with bytes, redrawn in place
 * by dax (every 60 ms) while the bar exists. Lines logged through {@link stderrLineWriter}
 * (dax's `$.log`) appear above it. A no-op when stderr is not a terminal, because dax then
 * prints every message change as a line of its own. Also a no-op until dax is loaded
 * (lib/dax.ts; the CLI loads it when stderr is a terminal).
 */
export function daxProgressDisplay(): ProgressDisplay {
  const $ = loadedDax()?.$;
  if (!Deno.stderr.isTerminal() || $ === undefined) return { show() {}, finish() {} };
  let bar: ReturnType<typeof $.progress> | undefined;
  return {
    show(v) {
      bar ??= $.progress({ prefix: v.prefix }).kind("bytes");
      bar.prefix(v.prefix).message(v.message).length(v.length).position(v.position);
    },
    finish() {
      bar?.finish();
      bar = undefined;
    },
  };
}

/** Options of {@link ttyProgressSink}. */
export interface TtyProgressOptions {
  /** Whether stderr is a terminal; default `Deno.stderr.isTerminal()`. False: the sink does nothing. */
  isTty?: boolean;
  /** Makes the display on the first report; default {@link daxProgressDisplay}. */
  display?: () => ProgressDisplay;
  /** Least time between redraws, ms; default 100 (10 per second). */
  minIntervalMs?: number;
  /** The clock, ms; default `performance.now`. */
  now?: () => number;
}

/** How far back the rate looks, ms. */
const RATE_WINDOW_MS = 5000;

/**
 * A progress display for a terminal: label, `layer i/n`, rate and ETA, and bytes done of
 * total, updated in place at most 10 times a second. Events are not shown here (the text
 * sink prints them). When stderr is not a TTY it writes nothing at all, so redirected
 * output and log files never fill with progress.
 */
export function ttyProgressSink(opts: TtyProgressOptions = {}): LogSink {
  const isTty = opts.isTty ?? Deno.stderr.isTerminal();
  if (!isTty) return { event() {}, progress() {}, done() {} };
  const makeDisplay = opts.display ?? daxProgressDisplay;
  const minInterval = opts.minIntervalMs ?? 100;
  const now = opts.now ?? (() => performance.now());
  let display: ProgressDisplay | undefined;
  let lastDraw = -Infinity;
  let label = "";
  let samples: Array<[number, number]> = [];
  return {
    event() {},
    progress(p) {
      const t = now();
      if (p.label !== label) {
        label = p.label;
        samples = [];
        lastDraw = -Infinity; // a new phase shows at once
      }
      samples.push([t, p.bytes]);
      while (samples.length > 2 && t - samples[0][0] > RATE_WINDOW_MS) samples.shift();
      if (t - lastDraw < minInterval) return;
      lastDraw = t;
      display ??= makeDisplay();
      display.show(progressView(p, rateOf(samples)));
    },
    done() {
      display?.finish();
      display = undefined;
    },
  };
}

function rateOf(samples: Array<[number, number]>): number | undefined {
  if (samples.length < 2) return undefined;
  const [t0, b0] = samples[0];
  const [t1, b1] = samples[samples.length - 1];
  return t1 - t0 >= 200 ? ((b1 - b0) * 1000) / (t1 - t0) : undefined;
}

/** The view of one report at a rate (bytes per second): what the display shows. */
export function progressView(p: Progress, rate?: number): ProgressView {
  const parts: string[] = [];
  if (p.layer !== undefined) {
    parts.push(p.layers !== undefined ? `layer ${p.layer}/${p.layers}` : `layer ${p.layer}`);
  }
  if (rate !== undefined) parts.push(`${formatBytes(rate)}/s`);
  if (rate !== undefined && rate > 0 && p.totalBytes !== undefined && p.totalBytes >= p.bytes) {
    parts.push(`ETA ${formatDuration((p.totalBytes - p.bytes) / rate)}`);
  }
  return { prefix: p.label, message: parts.join(", "), position: p.bytes, length: p.totalBytes };
}

/** `1.5 MiB`: binary units, one decimal from KiB on. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** `0:07`, `12:30`, `1:02:03` for a number of seconds (rounded up). */
export function formatDuration(seconds: number): string {
  const s = Math.ceil(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

// ---------------------------------------------------------------------------------------
// journald
// ---------------------------------------------------------------------------------------

/** journald's native socket. */
export const JOURNAL_SOCKET = "/run/systemd/journal/socket";

/** syslog priorities of the levels (`PRIORITY=`). */
export const PRIORITY: Record<LogLevel, number> = { error: 3, warning: 4, info: 6, debug: 7 };

/** Longest field value sent to the journal, bytes; longer values are cut with a note. */
const JOURNAL_VALUE_MAX = 48 * 1024;

/**
 * An event in journald's native protocol: `KEY=value\n` per field, and for a value with a
 * newline `KEY\n`, its length as a 64-bit little-endian integer, the bytes, `\n`.
 * Sends `MESSAGE`, `MESSAGE_ID`, `PRIORITY`, `SYSLOG_IDENTIFIER`, then the event's fields
 * (`null` left out). With `maxValue`, longer values are cut and marked.
 */
export function journalEntry(e: LogEvent, identifier = "cfs", maxValue = Infinity): Uint8Array {
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  const add = (key: string, value: string) => {
    let bytes = enc.encode(value);
    if (bytes.length > maxValue) {
      const cut = bytes.length - maxValue;
      bytes = enc.encode(
        new TextDecoder().decode(bytes.subarray(0, maxValue)).replace(/\uFFFD$/, "") +
          `\n[... ${cut} bytes cut]`,
      );
    }
    if (bytes.includes(0x0a)) {
      const len = new Uint8Array(8);
      new DataView(len.buffer).setBigUint64(0, BigInt(bytes.length), true);
      chunks.push(enc.encode(key + "\n"), len, bytes, enc.encode("\n"));
    } else {
      chunks.push(enc.encode(key + "="), bytes, enc.encode("\n"));
    }
  };
  add("MESSAGE", e.message);
  add("MESSAGE_ID", e.id);
  add("PRIORITY", String(PRIORITY[e.level]));
  add("SYSLOG_IDENTIFIER", identifier);
  for (const [k, v] of Object.entries(e.fields)) {
    if (v === null) continue;
    const key = fieldName(k);
    if (["MESSAGE", "MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER"].includes(key)) continue;
    add(key, String(v));
  }
  return concatBytes(chunks);
}

/**
 * Events to the systemd journal over its native protocol: one datagram per event on the
 * unix datagram socket `socketPath`, sent without blocking through FFI `socket()` +
 * `sendto()` (lib/sys/unix_datagram.ts; Deno has unix datagrams only behind
 * `--unstable-net`). Returns undefined when the socket does not exist or cannot be used
 * (no journald, no FFI permission), so callers add it only where it works.
 *
 * An event that does not fit one datagram is sent again with each value cut to 48 KiB
 * (journald would take larger entries through a memfd, which cfs does not do); an event
 * the journal cannot take at once (its queue full) is dropped rather than waited for.
 */
export function journaldSink(
  socketPath: string = JOURNAL_SOCKET,
  opts: { identifier?: string } = {},
): LogSink | undefined {
  try {
    if (!Deno.statSync(socketPath).isSocket) return undefined;
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
  } catch {
    return undefined;
  }
  let sender: UnixDatagramSender;
  try {
    sender = new UnixDatagramSender(socketPath);
  } catch {
    return undefined;
  }
  const identifier = opts.identifier ?? "cfs";
  return {
    event(e) {
      const err = sender.send(journalEntry(e, identifier));
      if (err === 90 /* EMSGSIZE */) sender.send(journalEntry(e, identifier, JOURNAL_VALUE_MAX));
    },
    done() {
      sender.close();
    },
  };
}

// ---------------------------------------------------------------------------------------
// The CLI's choice
// ---------------------------------------------------------------------------------------

const encoder = new TextEncoder();

function writeAll(file: { writeSync(p: Uint8Array): number }, s: string): void {
  const bytes = encoder.encode(s);
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
}

/**
 * Writes text to stderr. On a TTY it goes through dax's `$.log`, which clears a progress
 * bar, prints the line and redraws the bar below it (once dax is loaded, lib/dax.ts; plain
 * writes before).
 */
export function stderrLineWriter(isTty: boolean): (s: string) => void {
  const $ = loadedDax()?.$;
  if (!isTty || $ === undefined) return (s) => writeAll(Deno.stderr, s);
  return (s) => $.log(s.endsWith("\n") ? s.slice(0, -1) : s);
}

/**
 * Loads what the terminal output draws with (dax's progress bar and `$.log`) when stderr is a
 * terminal; nothing otherwise. Call it before {@link createLogger}: without it, a terminal
 * gets plain lines and no progress bar. Kept apart because the import costs ~130 ms that
 * redirected runs need not pay (lib/dax.ts).
 */
export async function prepareTerminalOutput(): Promise<void> {
  if (Deno.stderr.isTerminal()) await loadDax();
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** `--json`: JSON lines on stdout, nothing on stderr. */
  json: boolean;
  /** `-v`: debug events and fields on stderr. */
  verbose: boolean;
  /** Default `Deno.stderr.isTerminal()`. */
  stderrIsTty?: boolean;
  /** Also to the journal: true (default) when its socket exists, false never, or a socket path. */
  journald?: boolean | string;
  /** Where JSON lines go; default stdout. */
  stdout?: (s: string) => void;
  /** Where text goes; default stderr (through dax on a TTY). */
  stderr?: (s: string) => void;
}

/**
 * The CLI's sinks: `--json` gives JSON lines on stdout; otherwise text on stderr, plus the
 * progress display when stderr is a TTY. The journal is added when its socket exists.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const sinks: LogSink[] = [];
  const tty = opts.stderrIsTty ?? Deno.stderr.isTerminal();
  if (opts.json) {
    sinks.push(jsonLinesSink(opts.stdout ?? ((s) => writeAll(Deno.stdout, s))));
  } else {
    sinks.push(textSink({
      verbose: opts.verbose,
      write: opts.stderr ?? stderrLineWriter(tty),
      verboseOnly: [PULL_FAILED, STAGE_FAILED, HOOK_FAILED, COMMAND_FAILED],
    }));
    if (tty) sinks.push(ttyProgressSink({ isTty: true }));
  }
  const journal = opts.journald ?? true;
  if (journal !== false) {
    const sink = journaldSink(typeof journal === "string" ? journal : JOURNAL_SOCKET);
    if (sink) sinks.push(sink);
  }
  return new Logger(sinks);
}
