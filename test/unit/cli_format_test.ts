/**
 * Text layout for people (lib/cli/format.ts) and the short-ID rule (lib/oci/store.ts): pure.
 *
 * @module
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import { clipEnd, formatTable, shortId, timeAgo } from "../../lib/cli/format.ts";
import { matchesDigestPrefix, pickByDigestPrefix } from "../../lib/oci/store.ts";

const HEX_A = "abc1" + "0".repeat(60);
const HEX_B = "abc2" + "1".repeat(60);
const HEX_C = "9" + "2".repeat(63);

Deno.test("formatTable aligns every column to its widest cell, an 87-character bootc tag too", () => {
  const tag = `localhost/bootc-sha256:${HEX_A}`;
  equal(tag.length, 87);
  const lines = formatTable(["NAME", "IMAGE ID", "ARCH"], [
    [clipEnd(tag, 40), shortId(`sha256:${HEX_A}`), "amd64"],
    ["b", shortId(HEX_B), "arm64"],
  ]);
  deepEqual(lines, [
    "NAME                                      IMAGE ID      ARCH",
    "localhost/bootc-sha256:abc1000000000000…  abc100000000  amd64",
    "b                                         abc211111111  arm64",
  ]);
  // Whole names: the columns move right, still aligned.
  const whole = formatTable(["NAME", "ID"], [[tag, "x"], ["b", "y"]]);
  equal(whole[1].indexOf("x"), whole[0].indexOf("ID"));
  equal(whole[2].indexOf("y"), 89);
});

Deno.test("clipEnd marks a cut with '…'; timeAgo reads like podman's CREATED", () => {
  equal(clipEnd("abcdef", 6), "abcdef");
  equal(clipEnd("abcdefg", 6), "abcde…");
  const now = Date.parse("2026-11-10T12:00:00Z");
  equal(timeAgo("2026-11-10T11:59:59Z", now), "1 second ago");
  equal(timeAgo("2026-11-10T09:00:00Z", now), "3 hours ago");
  equal(timeAgo("2026-11-03T12:00:00Z", now), "1 week ago");
  equal(timeAgo("2024-01-01T00:00:00Z", now), "2 years ago");
  equal(timeAgo(null, now), "-");
  equal(timeAgo("not a date", now), "-");
});

Deno.test("digest prefixes: a unique one picks its image, an ambiguous one names the candidates", () => {
  const images = [
    { tag: "a", manifestDigest: `sha256:${HEX_A}`, configDigest: `sha256:${HEX_C}` },
    { tag: "a2", manifestDigest: `sha256:${HEX_A}`, configDigest: `sha256:${HEX_C}` },
    { tag: "b", manifestDigest: `sha256:${HEX_B}`, configDigest: `sha256:${"7".repeat(64)}` },
  ];
  equal(matchesDigestPrefix("abc", `sha256:${HEX_A}`), true);
  equal(matchesDigestPrefix("ABC", `sha256:${HEX_A}`), false);
  equal(pickByDigestPrefix("abc1", "abc1", "/r", images), `sha256:${HEX_A}`);
  equal(pickByDigestPrefix("922", "922", "/r", images), `sha256:${HEX_A}`); // the config's digest
  throws(
    () => pickByDigestPrefix("abc", "abc", "/r", images),
    (e: Error & { code?: string }) =>
      e.code === "image-ambiguous" &&
      e.message ===
        `digest prefix 'abc' names 2 images: sha256:abc1000000000000… (a, a2), ` +
          `sha256:abc2111111111111… (b); give more digits`,
  );
  throws(
    () => pickByDigestPrefix("def", "sha256:def", "/r", images),
    { message: "no image with digest sha256:def… in /r" },
  );
  throws(
    () => pickByDigestPrefix("def", "def", "/r", images),
    { message: "no image with digest sha256:def… in /r (and no tag 'def')" },
  );
});
