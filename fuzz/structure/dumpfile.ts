/**
 * Dumpfile-aware mutation: lines deleted, repeated, swapped or moved before their parent;
 * single fields replaced by values each field's parser must refuse or get exactly right
 * (escapes cut short, huge and negative numbers, modes of every type, hardlink forms, paths
 * with `..`, long names and values, digests of the wrong length); fields merged or split;
 * `\r` line ends.
 *
 * @module
 */
import type { Mutated } from "../mutate.ts";
import type { Rng } from "../rng.ts";

const FIELD_VALUES: readonly (readonly string[])[] = [
  // 0 path
  [
    "/",
    "/a/../b",
    "//x",
    "/x/",
    "relative",
    "/" + "a".repeat(5000),
    "/\\x00",
    "/\\xZZ",
    "/\\",
    "/.",
    "/" + "n".repeat(256),
    "/a\\x2fb",
    "-",
  ],
  // 1 size
  ["0", "1", "-1", "18446744073709551616", "9007199254740993", "00", "1e3", "", "65", "64", "4096"],
  // 2 mode
  [
    "40755",
    "100644",
    "120777",
    "20666",
    "60666",
    "10644",
    "140755",
    "177777",
    "1000000",
    "@100644",
    "@40755",
    "@120000",
    "-1",
    "8",
    "0",
    "@",
  ],
  // 3 nlink
  ["0", "1", "2", "4294967295", "4294967296", "-1", "x"],
  // 4 uid
  ["0", "4294967295", "4294967296", "-1", "x", "007"],
  // 5 gid
  ["0", "4294967295", "4294967296", "-1", "x"],
  // 6 rdev
  ["0", "1", "4294967295", "4294967296", "18446744073709551616", "-1", "259"],
  // 7 mtime
  ["0.0", "-1.0", "1.1000000000", "1", "1.", "9007199254740993.0", "-0.5", ".5", "1.999999999"],
  // 8 payload
  ["-", "\\x2d", "ab/" + "c".repeat(62), "/abs", "../x", "x".repeat(1025), "\\x00", "/", "\\"],
  // 9 content
  ["-", "abc", "\\xff".repeat(70), "\\q", "\\x1", "\\", "x".repeat(65)],
  // 10 digest
  ["-", "a".repeat(64), "b".repeat(128), "ABC", "a".repeat(63), "A".repeat(64)],
];

const XATTRS = [
  "user.a=b",
  "=x",
  "a",
  "trusted.overlay.x=1",
  "trusted.overlay.overlay.whiteout=",
  "user.a=" + "x".repeat(70000),
  "n".repeat(256) + "=v",
  "user.\\x00=1",
  "user.a\\x3db=c",
  "security.selinux=system_u:object_r:etc_t:s0",
];

/** One dumpfile-aware mutation (of text read as latin1). */
export function mutateDumpfile(rng: Rng, seed: Uint8Array): Mutated | undefined {
  const text = new TextDecoder("latin1").decode(seed);
  const lines = text.split("\n");
  const trailing = lines[lines.length - 1] === "" ? lines.pop() : undefined;
  if (lines.length === 0) return undefined;
  const i = rng.int(lines.length);
  let how: string;
  switch (rng.weighted([3, 2, 1, 1, 10, 2, 2, 1])) {
    case 0:
      lines.splice(i, 1);
      how = `line ${i + 1} removed`;
      break;
    case 1:
      lines.splice(rng.int(lines.length + 1), 0, lines[i]);
      how = `line ${i + 1} repeated`;
      break;
    case 2: {
      const j = rng.int(lines.length);
      [lines[i], lines[j]] = [lines[j], lines[i]];
      how = `lines ${i + 1} and ${j + 1} swapped`;
      break;
    }
    case 3: {
      const [line] = lines.splice(i, 1);
      lines.unshift(line);
      how = `line ${i + 1} moved first`;
      break;
    }
    case 4: {
      const fields = lines[i].split(" ");
      const f = rng.int(Math.min(fields.length, 11));
      let v = rng.pick(FIELD_VALUES[f]);
      if (f === 0 && rng.chance(0.3)) v = lines[rng.int(lines.length)].split(" ")[0] + "/sub";
      if (f === 8 && rng.chance(0.3)) v = lines[rng.int(lines.length)].split(" ")[0];
      fields[f] = v;
      lines[i] = fields.join(" ");
      how = `line ${i + 1} field ${f} = ${JSON.stringify(v.slice(0, 40))}`;
      break;
    }
    case 5: {
      const x = rng.pick(XATTRS);
      lines[i] += " " + x;
      how = `line ${i + 1} + xattr ${JSON.stringify(x.slice(0, 40))}`;
      break;
    }
    case 6: {
      const fields = lines[i].split(" ");
      if (rng.chance(0.5) && fields.length > 1) {
        const f = rng.int(fields.length - 1);
        fields.splice(f, 2, fields[f] + fields[f + 1]);
        how = `line ${i + 1} fields ${f} and ${f + 1} merged`;
      } else {
        const f = rng.int(fields.length);
        fields.splice(f, 0, rng.pick(["", "-", "0"]));
        how = `line ${i + 1} field inserted at ${f}`;
      }
      lines[i] = fields.join(" ");
      break;
    }
    default:
      lines[i] += "\r";
      how = `line ${i + 1} ends with CR`;
  }
  const out = lines.join("\n") + (trailing !== undefined ? "\n" : "");
  return { bytes: Uint8Array.from(out, (c) => c.charCodeAt(0) & 0xff), how };
}
