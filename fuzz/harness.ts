/**
 * The parent side of the fuzz child (`child.ts`): starts it, hands it one input at a time,
 * and turns what happens into a {@link Verdict}: the child's {@link Outcome}, a hang (no answer
 * within the per-input timeout: the child is killed and a new one started) or a crash (the
 * child died: V8 out of memory, a native abort). It also judges memory: a peak RSS above the
 * limit is a finding even when the input was otherwise handled.
 *
 * Used by `main.ts` (the fuzzer) and `test/fuzz_regressions_test.ts` (the kept inputs).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { Outcome, TargetName } from "./targets.ts";

const CHILD = fileURLToPath(new URL("./child.ts", import.meta.url));

/** What one input came to, from the parent's point of view. */
export interface Verdict extends Outcome {
  /** Whether the input passes: `ok` or `refused`, within the memory limit. */
  pass: boolean;
  /** The outcome as the parent saw it (`hang` and `crash` are the parent's). */
  kind: "ok" | "refused" | "error" | "hang" | "crash" | "memory";
}

/** Options of {@link FuzzChild}. */
export interface ChildOptions {
  /** Per-input timeout, ms (default 10000). */
  timeoutMs?: number;
  /** Largest peak RSS of the child while running one input, bytes (default 1 GiB). */
  maxRss?: number;
  /** V8 heap limit of the child, MiB (default 1536): a runaway heap dies instead of swapping. */
  maxHeapMb?: number;
}

/** A running child process and its output lines. */
export class FuzzChild {
  #options: Required<ChildOptions>;
  #child: Deno.ChildProcess | undefined;
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #lines: string[] = [];
  #waiting: ((line: string | undefined) => void) | undefined;
  #stderr: string[] = [];
  #closed = false;
  /** Children started so far (1 + restarts after hangs and crashes). */
  starts = 0;

  /** A harness; the child starts on the first input. */
  constructor(options: ChildOptions = {}) {
    this.#options = {
      timeoutMs: options.timeoutMs ?? 10_000,
      maxRss: options.maxRss ?? 1 << 30,
      maxHeapMb: options.maxHeapMb ?? 1536,
    };
  }

  async #start(): Promise<void> {
    this.starts++;
    this.#lines = [];
    this.#stderr = [];
    this.#closed = false;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--quiet",
        `--v8-flags=--max-old-space-size=${this.#options.maxHeapMb}`,
        CHILD,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#pump(child.stdout, (line) => this.#line(line));
    this.#pump(child.stderr, (line) => {
      this.#stderr.push(line);
      if (this.#stderr.length > 40) this.#stderr.shift();
    });
    const ready = await this.#next(120_000);
    if (ready !== "FUZZ-READY") {
      throw new Error(
        `fuzz child did not start (${ready ?? "no output"}): ${this.#stderr.join("\n")}`,
      );
    }
  }

  async #pump(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
    let rest = "";
    try {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        rest += text;
        let nl;
        while ((nl = rest.indexOf("\n")) >= 0) {
          onLine(rest.slice(0, nl));
          rest = rest.slice(nl + 1);
        }
      }
    } catch { /* the child was killed */ }
    if (rest) onLine(rest);
    if (stream === this.#child?.stdout) {
      this.#closed = true;
      this.#waiting?.(undefined);
    }
  }

  #line(line: string): void {
    if (!line.startsWith("FUZZ-")) return;
    if (this.#waiting) {
      const w = this.#waiting;
      this.#waiting = undefined;
      w(line);
    } else this.#lines.push(line);
  }

  /** The next protocol line, or undefined on timeout or when the child's stdout closed. */
  #next(timeoutMs: number): Promise<string | undefined | "timeout"> {
    if (this.#lines.length > 0) return Promise.resolve(this.#lines.shift());
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting = undefined;
        resolve("timeout");
      }, timeoutMs);
      this.#waiting = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
    });
  }

  async #kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child) return;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    try {
      await this.#writer?.close();
    } catch { /* broken pipe */ }
    await child.status;
  }

  /** Runs `bytes` through `target` in the child. */
  async run(target: TargetName, bytes: Uint8Array, cli = false): Promise<Verdict> {
    if (!this.#child) await this.#start();
    const header = new TextEncoder().encode(JSON.stringify({ target, cli }));
    const frame = new Uint8Array(8 + header.length + bytes.length);
    const dv = new DataView(frame.buffer);
    dv.setUint32(0, header.length);
    frame.set(header, 4);
    dv.setUint32(4 + header.length, bytes.length);
    frame.set(bytes, 8 + header.length);
    const started = performance.now();
    try {
      await this.#writer!.write(frame);
    } catch { /* the child died; reported below */ }
    // The CLI check runs two deno processes: give it more time.
    const line = await this.#next(this.#options.timeoutMs * (cli ? 4 : 1));
    const ms = Math.round(performance.now() - started);
    if (line === "timeout") {
      await this.#kill();
      return { status: "error", kind: "hang", pass: false, ms, message: `no answer in ${ms} ms` };
    }
    if (line === undefined || !line.startsWith("FUZZ-OUTCOME ")) {
      const status = await this.#child!.status.catch(() => undefined);
      const stderr = this.#stderr.slice(-8).join("\n");
      await this.#kill();
      return {
        status: "error",
        kind: "crash",
        pass: false,
        ms,
        message: `the child died (exit ${status?.code}, signal ${status?.signal}): ${stderr}`,
      };
    }
    const outcome = JSON.parse(line.slice("FUZZ-OUTCOME ".length)) as Outcome;
    if (outcome.status !== "error" && (outcome.peakRss ?? 0) > this.#options.maxRss) {
      return {
        ...outcome,
        status: "error",
        kind: "memory",
        pass: false,
        message: `peak RSS ${Math.round(outcome.peakRss! / 2 ** 20)} MiB over the ` +
          `${Math.round(this.#options.maxRss / 2 ** 20)} MiB limit` +
          (outcome.message ? ` (${outcome.message})` : ""),
      };
    }
    return { ...outcome, kind: outcome.status, pass: outcome.status !== "error" };
  }

  /** Ends the child. */
  async close(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      await this.#writer?.close();
    } catch { /* gone */ }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5000);
    await child.status;
    clearTimeout(timer);
  }
}
