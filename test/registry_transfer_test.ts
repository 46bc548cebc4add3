/**
 * The rules of registry transfers as pure functions (lib/oci/transfer.ts): limits and their
 * defaults, backoff, which statuses are retried, `Retry-After` and `Content-Range`, the idle
 * window with its minimum speed; the `fetch` and `registries` settings of the configuration file
 * (lib/config.ts); and the reason picked from GNU tar's stderr for `oci-archive:` failures
 * (lib/oci/archive.ts, with stderr that tar 1.34 wrote for these archives). No network, no root.
 *
 * @module
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MIN_BYTES_PER_SECOND,
  DEFAULT_RETRIES,
  MAX_RETRY_DELAY_MS,
  parseContentRange,
  parseRetryAfter,
  ProgressMeter,
  retryableStatus,
  retryDelay,
  transferPolicy,
} from "../lib/oci/transfer.ts";
import { ConfigError, parseConfig } from "../lib/config.ts";
import { tarFailureReason } from "../lib/oci/archive.ts";

Deno.test("transfer policy: defaults, and limits out of range are refused", () => {
  const p = transferPolicy();
  equal(p.retries, DEFAULT_RETRIES);
  equal(p.retries, 3);
  equal(p.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS);
  equal(p.minBytesPerSecond, DEFAULT_MIN_BYTES_PER_SECOND);
  equal(p.timeoutMs, undefined, "no overall deadline by default");
  equal(transferPolicy({ timeoutMs: 0 }).timeoutMs, undefined, "0: no deadline");
  equal(transferPolicy({ retries: 0 }).retries, 0);
  for (
    const bad of [
      { idleTimeoutMs: 0 },
      { requestTimeoutMs: -1 },
      { timeoutMs: -5 },
      { retries: 1.5 },
      { retries: -1 },
      { minBytesPerSecond: -1 },
      { retryDelayMs: NaN },
    ]
  ) {
    throws(() => transferPolicy(bad), RangeError, JSON.stringify(bad));
  }
});

Deno.test("retry delay: doubles from the configured delay, Retry-After wins, both capped", () => {
  deepEqual([1, 2, 3, 4].map((n) => retryDelay(n, 1000)), [1000, 2000, 4000, 8000]);
  deepEqual([1, 2].map((n) => retryDelay(n, 50)), [50, 100]);
  equal(retryDelay(1, 1000, 5000), 5000, "Retry-After over the backoff");
  equal(retryDelay(3, 1000, 0), 0, "Retry-After: 0");
  equal(retryDelay(1, 1000, 3_600_000), MAX_RETRY_DELAY_MS, "an hour's Retry-After is capped");
  equal(retryDelay(20, 1000), MAX_RETRY_DELAY_MS, "backoff is capped");
  equal(MAX_RETRY_DELAY_MS, 60_000);
});

Deno.test("retryable statuses: 429 and 5xx but 501 and 505; no other 4xx", () => {
  for (const s of [429, 500, 502, 503, 504, 599]) ok(retryableStatus(s), String(s));
  for (const s of [200, 206, 301, 400, 401, 403, 404, 416, 501, 505]) {
    ok(!retryableStatus(s), String(s));
  }
});

Deno.test("Retry-After: seconds or an HTTP date; nonsense is ignored", () => {
  equal(parseRetryAfter("1"), 1000);
  equal(parseRetryAfter(" 120 "), 120_000);
  equal(parseRetryAfter(null), undefined);
  equal(parseRetryAfter(""), undefined);
  equal(parseRetryAfter("-3"), undefined);
  equal(parseRetryAfter("soon"), undefined);
  equal(parseRetryAfter("1.5"), undefined);
  const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
  equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now), 30_000);
  equal(parseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now), 0, "a date in the past");
});

Deno.test("Content-Range: byte ranges of a 206, anything else refused", () => {
  deepEqual(parseContentRange("bytes 100-299/300"), { start: 100, end: 299, total: 300 });
  deepEqual(parseContentRange("bytes 0-0/*"), { start: 0, end: 0, total: undefined });
  for (
    const bad of [null, "", "bytes */300", "items 0-1/2", "bytes 5-4/10", "bytes 0-10/10", "1-2/3"]
  ) {
    equal(parseContentRange(bad), undefined, String(bad));
  }
});

Deno.test("progress meter: silence and drips end a window; enough bytes start the next", () => {
  // 1 s windows at 1024 B/s: 1024 bytes needed.
  const m = new ProgressMeter(1000, 1024);
  equal(m.remainingMs(), 1000);
  equal(m.waited(400, 0), undefined);
  equal(m.remainingMs(), 600);
  deepEqual(m.waited(600, 0), { bytes: 0, windowMs: 1000, needed: 1024 }, "silence");

  // A drip: 10 bytes every 100 ms is 100 B/s.
  const drip = new ProgressMeter(1000, 1024);
  let stalled;
  for (let i = 0; i < 10 && stalled === undefined; i++) stalled = drip.waited(100, 10);
  deepEqual(stalled, { bytes: 100, windowMs: 1000, needed: 1024 });

  // Enough bytes end the window early: the next one starts with the next wait.
  const fast = new ProgressMeter(1000, 1024);
  equal(fast.waited(900, 2000), undefined);
  equal(fast.remainingMs(), 1000, "a new window");
  equal(fast.waited(900, 0), undefined, "900 ms of the new window: not over yet");
  deepEqual(fast.waited(100, 0), { bytes: 0, windowMs: 1000, needed: 1024 });

  // 0 B/s: any byte is progress, silence is not.
  const any = new ProgressMeter(1000, 0);
  for (let i = 0; i < 50; i++) equal(any.waited(100, 1), undefined);
  deepEqual(any.waited(1000, 0), { bytes: 0, windowMs: 1000, needed: 1 });

  // A new connection starts a new window.
  const reset = new ProgressMeter(1000, 1024);
  reset.waited(900, 10);
  reset.reset();
  equal(reset.remainingMs(), 1000);
});

Deno.test("config: fetch limits globally and per registry, validated with the key named", () => {
  const config = parseConfig(
    "c.json",
    JSON.stringify({
      fetch: { timeout: 600, idleTimeout: 30, minSpeed: 0, retries: 5, retryDelay: 0.5 },
      registries: { "r:5000": { tlsVerify: false, idleTimeout: 2.5, retries: 0 } },
    }),
  );
  deepEqual(config.fetch, {
    timeout: 600,
    idleTimeout: 30,
    minSpeed: 0,
    retries: 5,
    retryDelay: 0.5,
  });
  deepEqual(config.registries?.["r:5000"], { tlsVerify: false, idleTimeout: 2.5, retries: 0 });
  for (
    const [bad, key] of [
      [{ fetch: { idleTimeout: 0 } }, "fetch.idleTimeout"],
      [{ fetch: { timeout: -1 } }, "fetch.timeout"],
      [{ fetch: { timeout: 100_000 } }, "fetch.timeout"],
      [{ fetch: { retries: 1.5 } }, "fetch.retries"],
      [{ fetch: { retries: "3" } }, "fetch.retries"],
      [{ fetch: { minSpeed: -1 } }, "fetch.minSpeed"],
      [{ fetch: { retryDelay: 120 } }, "fetch.retryDelay"],
      [{ fetch: { idle: 3 } }, "fetch"],
      [{ registries: { "r:5000": { retries: -2 } } }, "registries.r:5000.retries"],
    ] as const
  ) {
    throws(
      () => parseConfig("c.json", JSON.stringify(bad)),
      (e: unknown) => {
        ok(e instanceof ConfigError);
        equal(e.code, "config-invalid");
        ok(e.message.startsWith(`config c.json: ${key}: `), e.message);
        return true;
      },
      JSON.stringify(bad),
    );
  }
});

Deno.test("tar failures: the line that says why, not tar's closing summary", () => {
  const archive = "/srv/img.tar";
  equal(
    tarFailureReason(
      "tar: This does not look like a tar archive\ntar: Skipping to next header\n" +
        "tar: Exiting with failure status due to previous errors\n",
      archive,
    ),
    "not a tar archive",
  );
  equal(
    tarFailureReason(
      "tar: Unexpected EOF in archive\ntar: Unexpected EOF in archive\n" +
        "tar: Error is not recoverable: exiting now\n",
      archive,
    ),
    "the archive is truncated (unexpected end of file)",
  );
  equal(
    tarFailureReason(
      "\ngzip: stdin: unexpected end of file\ntar: Unexpected EOF in archive\n" +
        "tar: Unexpected EOF in archive\ntar: Error is not recoverable: exiting now\n",
      archive,
    ),
    "the compressed archive is truncated",
  );
  equal(
    tarFailureReason(
      "tar: /srv/img.tar: Cannot open: Permission denied\n" +
        "tar: Error is not recoverable: exiting now\n",
      archive,
    ),
    "Cannot open: Permission denied",
  );
  equal(
    tarFailureReason("tar: blobs/sha256/ab: Cannot write: No space left on device\n", archive),
    "blobs/sha256/ab: Cannot write: No space left on device",
  );
  // Run by path, tar names itself so; a seek message is no cause.
  equal(
    tarFailureReason(
      "/usr/bin/tar: Unexpected EOF in archive\n" +
        "/usr/bin/tar: rmtlseek not stopped at a record boundary\n" +
        "/usr/bin/tar: Error is not recoverable: exiting now\n",
      archive,
    ),
    "the archive is truncated (unexpected end of file)",
  );
  equal(tarFailureReason("tar: Error is not recoverable: exiting now\n", archive), "");
  equal(tarFailureReason("", archive), "");
});
