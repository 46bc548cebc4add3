/**
 * How long a registry transfer may take and when it is tried again: the limits and the retry
 * policy of the registry client (registry.ts), as pure functions and one small meter, so that
 * the rules can be read (and tested) apart from HTTP.
 *
 * Limits, each settable per client ({@link TransferOptions}), in the configuration file
 * (config.ts: globally under `fetch`, per registry under `registries`) and by flags of `cfs pull`
 * and `cfs oci pull` (`--timeout`, `--idle-timeout`, `--retries`):
 *
 * - request timeout: response headers, and a whole manifest, config or token;
 * - idle timeout and minimum speed, for blob bodies: within `idleTimeoutMs` spent waiting for
 *   the registry, at least `minBytesPerSecond` × `idleTimeoutMs` must arrive (and at least one
 *   byte); once they have, the next window starts. A registry that goes silent mid-blob fails
 *   one window after its last progress; one that drips a byte every few seconds fails too, which
 *   a per-chunk idle timer alone never catches (each byte restarts it). Time the consumer spends
 *   away (writing objects) does not count: only waits;
 * - overall timeout (`timeoutMs`, none by default): one deadline for everything the client
 *   does, retries and waits included.
 *
 * Retries follow containers-image: a bounded count ({@link DEFAULT_RETRIES}) with exponential
 * backoff (`retryDelayMs`, doubled per attempt, at most {@link MAX_RETRY_DELAY_MS}) for HTTP 5xx
 * (but 501 and 505, which do not change), 429 (waiting what `Retry-After` asks, at most
 * {@link MAX_RETRY_DELAY_MS}), connection failures, request timeouts and blob bodies that are
 * cut or stall; a cut blob resumes with `Range` where the registry answers 206. Other 4xx
 * answers, and content that does not match its digest, are not retried: asking again gets the
 * same answer. A blob that made at least {@link RESUME_PROGRESS_BYTES} of progress since its
 * last failure starts a fresh count (containers-image's body reader also keeps going while a
 * body makes progress), so a large blob over a flaky link completes while a registry that cuts
 * every answer at the same place still fails after the bounded count.
 *
 * @module
 */

/** Limits and retry policy of one registry client; every field has a default. */
export interface TransferOptions {
  /** Time for response headers and for a whole manifest, config or token (ms). */
  requestTimeoutMs?: number;
  /** Length of the window in which a blob body must make progress (ms). */
  idleTimeoutMs?: number;
  /** Least average speed over an idle window (bytes/s); 0: any progress will do. */
  minBytesPerSecond?: number;
  /** Deadline for everything the client does (ms from its creation); undefined or 0: none. */
  timeoutMs?: number;
  /** How many times a failed request (or a cut blob) is tried again; 0: never. */
  retries?: number;
  /** First backoff (ms), doubled for each further attempt. */
  retryDelayMs?: number;
}

/** {@link TransferOptions} with every default applied. */
export type TransferPolicy = Required<Omit<TransferOptions, "timeoutMs">> & {
  /** Deadline for everything the client does (ms); undefined: none. */
  timeoutMs?: number;
};

/** Default time for a request's response headers and for a whole JSON document. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Default idle window of a blob body. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/**
 * Default least speed of a blob body (1 KiB/s over each idle window): far below any working
 * link, far above a registry that drips bytes to hold a connection open.
 */
export const DEFAULT_MIN_BYTES_PER_SECOND = 1024;
/** Default retry count (containers-image's default, too). */
export const DEFAULT_RETRIES = 3;
/** Default first backoff. */
export const DEFAULT_RETRY_DELAY_MS = 1000;
/** Longest single wait between attempts, whatever the backoff or `Retry-After` says. */
export const MAX_RETRY_DELAY_MS = 60_000;
/** Progress that makes a blob's later failures count from zero again (1 MiB). */
export const RESUME_PROGRESS_BYTES = 1024 * 1024;

/** `options` with the defaults filled in; throws a `RangeError` for a value out of range. */
export function transferPolicy(options: TransferOptions = {}): TransferPolicy {
  const policy: TransferPolicy = {
    requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    minBytesPerSecond: options.minBytesPerSecond ?? DEFAULT_MIN_BYTES_PER_SECOND,
    timeoutMs: options.timeoutMs === 0 ? undefined : options.timeoutMs,
    retries: options.retries ?? DEFAULT_RETRIES,
    retryDelayMs: options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS,
  };
  const positive = ["requestTimeoutMs", "idleTimeoutMs"] as const;
  for (const key of positive) {
    if (!(Number.isFinite(policy[key]) && policy[key] > 0)) {
      throw new RangeError(`${key} must be a positive number, not ${policy[key]}`);
    }
  }
  if (
    policy.timeoutMs !== undefined && !(Number.isFinite(policy.timeoutMs) && policy.timeoutMs > 0)
  ) {
    throw new RangeError(`timeoutMs must be a positive number, not ${policy.timeoutMs}`);
  }
  if (!(Number.isFinite(policy.minBytesPerSecond) && policy.minBytesPerSecond >= 0)) {
    throw new RangeError(`minBytesPerSecond must be at least 0, not ${policy.minBytesPerSecond}`);
  }
  if (!(Number.isSafeInteger(policy.retries) && policy.retries >= 0)) {
    throw new RangeError(`retries must be a whole number of at least 0, not ${policy.retries}`);
  }
  if (!(Number.isFinite(policy.retryDelayMs) && policy.retryDelayMs >= 0)) {
    throw new RangeError(`retryDelayMs must be at least 0, not ${policy.retryDelayMs}`);
  }
  return policy;
}

/**
 * The wait before attempt `attempt + 1` (`attempt` failures so far, from 1): `retryDelayMs`
 * doubled per earlier failure, or what the registry asked for (`Retry-After`), at most
 * {@link MAX_RETRY_DELAY_MS} either way.
 */
export function retryDelay(attempt: number, retryDelayMs: number, retryAfterMs?: number): number {
  const wanted = retryAfterMs ?? retryDelayMs * 2 ** Math.max(0, attempt - 1);
  return Math.min(Math.max(0, wanted), MAX_RETRY_DELAY_MS);
}

/**
 * An HTTP status worth asking again for: 429, and 5xx but 501 (Not Implemented) and 505 (HTTP
 * Version Not Supported), which a second request answers the same way.
 */
export function retryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599 && status !== 501 && status !== 505);
}

/**
 * `Retry-After` in ms: delay-seconds, or an HTTP date (relative to `now`, ms since the epoch).
 * Undefined when absent or unreadable; a date in the past is 0.
 */
export function parseRetryAfter(
  header: string | null | undefined,
  now = Date.now(),
): number | undefined {
  if (header === null || header === undefined) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date names a weekday and a month; a bare number or word is no date.
  if (!/^[A-Za-z]{3},? /.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** A `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`). */
export interface ContentRange {
  start: number;
  end: number;
  /** Undefined for `*`. */
  total?: number;
}

/** Parses `Content-Range` of a 206 answer; undefined when it is not a byte range. */
export function parseContentRange(header: string | null | undefined): ContentRange | undefined {
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(header ?? "");
  if (m === null) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === "*" ? undefined : Number(m[3]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined;
  if (total !== undefined && (!Number.isSafeInteger(total) || end >= total)) return undefined;
  return { start, end, total };
}

/** Why a {@link ProgressMeter} ends a transfer. */
export interface Stalled {
  /** Bytes that arrived in the window. */
  bytes: number;
  /** The window's length (ms of waiting). */
  windowMs: number;
  /** The least the window needed. */
  needed: number;
}

/**
 * The idle window and minimum speed of one blob body. The caller reports each wait for the
 * registry (`waited`, with the bytes that wait brought) and asks how long the next wait may
 * last ({@link remainingMs}); a window that ends short of its bytes is a {@link Stalled}.
 * Time is passed in, so the rule is a pure function of the waits.
 */
export class ProgressMeter {
  readonly #windowMs: number;
  readonly #needed: number;
  #waited = 0;
  #bytes = 0;

  /** A meter for windows of `windowMs` that need `minBytesPerSecond` (and at least 1 byte). */
  constructor(windowMs: number, minBytesPerSecond: number) {
    this.#windowMs = windowMs;
    this.#needed = Math.max(1, Math.ceil(minBytesPerSecond * windowMs / 1000));
  }

  /** How long the current wait may still last before the window ends (ms). */
  remainingMs(): number {
    return Math.max(0, this.#windowMs - this.#waited);
  }

  /**
   * Accounts a wait of `ms` that brought `bytes`. A window that has its bytes is done, and the
   * next one starts now (so a silence is caught one window after the last progress, not up to
   * two); a window that ends without them is what it had.
   */
  waited(ms: number, bytes: number): Stalled | undefined {
    this.#waited += ms;
    this.#bytes += bytes;
    if (this.#bytes >= this.#needed) {
      this.reset();
      return undefined;
    }
    if (this.#waited < this.#windowMs) return undefined;
    return { bytes: this.#bytes, windowMs: this.#windowMs, needed: this.#needed };
  }

  /** Starts a new window (a new connection starts with a clean slate). */
  reset(): void {
    this.#waited = 0;
    this.#bytes = 0;
  }
}

/** `1500` -> `1.5 s`, `60000` -> `60 s`, `250` -> `250 ms`: durations in error messages. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}
