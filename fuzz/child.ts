/**
 * The fuzz child: a long-lived process that runs one input at a time for the parent
 * (`harness.ts`) and answers with an {@link Outcome}. It is a process of its own so that the
 * parent can kill it when an input hangs (a synchronous loop included) and see when it dies
 * (V8 out of memory under `--max-old-space-size`), and so that peak memory is measured per
 * input: `VmHWM` of /proc/self/status, reset before each input through /proc/self/clear_refs.
 *
 * Protocol, on stdin: frames of a big-endian u32 header length, a JSON header
 * `{"target", "cli"}`, a u32 input length and the input. On stdout: one line per input,
 * `FUZZ-OUTCOME <json>`, after `FUZZ-READY` once at start. Anything else on stdout is ignored
 * by the parent.
 *
 * @module
 */
import { classify, isTargetName, type Outcome, runTarget } from "./targets.ts";

const work = Deno.makeTempDirSync({ prefix: "cfs-fuzz-child-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(work, { recursive: true });
  } catch { /* best effort */ }
});

/** An unhandled rejection during an input is that input's finding. */
let stray: unknown;
globalThis.addEventListener("unhandledrejection", (ev) => {
  ev.preventDefault();
  stray ??= ev.reason ?? new Error("unhandled rejection without a reason");
});
globalThis.addEventListener("error", (ev) => {
  ev.preventDefault();
  stray ??= ev.error ?? new Error(ev.message);
});

function peakRss(): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function resetPeak(): void {
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
  } catch { /* not supported: the peak is then the process's */ }
}

const enc = new TextEncoder();
function say(line: string): void {
  const bytes = enc.encode(line + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

/** Reads exact byte counts from stdin. */
class Input {
  #reader = Deno.stdin.readable.getReader();
  #buf = new Uint8Array(0);

  async exact(n: number): Promise<Uint8Array | undefined> {
    while (this.#buf.length < n) {
      const r = await this.#reader.read();
      if (r.done) return undefined;
      const next = new Uint8Array(this.#buf.length + r.value.length);
      next.set(this.#buf);
      next.set(r.value, this.#buf.length);
      this.#buf = next;
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  async u32(): Promise<number | undefined> {
    const b = await this.exact(4);
    return b && new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
  }
}

const input = new Input();
say("FUZZ-READY");
for (;;) {
  const headerLen = await input.u32();
  if (headerLen === undefined) break;
  const header = JSON.parse(new TextDecoder().decode(await input.exact(headerLen)));
  const length = await input.u32();
  const bytes = length === undefined ? undefined : await input.exact(length);
  if (bytes === undefined) break;
  const target = String(header.target);
  if (!isTargetName(target)) {
    say(`FUZZ-OUTCOME ${JSON.stringify({ status: "error", message: `unknown target ${target}` })}`);
    continue;
  }
  stray = undefined;
  resetPeak();
  const start = performance.now();
  let outcome: Outcome;
  try {
    await runTarget(target, bytes, { work, cli: header.cli === true });
    outcome = { status: "ok" };
  } catch (e) {
    outcome = classify(target, e);
  }
  // Let rejections of promises the input left behind surface before answering.
  await new Promise((r) => setTimeout(r, 0));
  if (stray !== undefined && outcome.status !== "error") {
    const c = classify(target, stray);
    outcome = {
      ...c,
      status: "error",
      message: `unhandled rejection or error event after the input: ${c.message}`,
    };
  }
  outcome.ms = Math.round(performance.now() - start);
  outcome.peakRss = peakRss();
  say(`FUZZ-OUTCOME ${JSON.stringify(outcome)}`);
}
