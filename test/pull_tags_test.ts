/**
 * The tags `cfs pull` lets hooks add are the references skopeo (containers/image) accepts: for
 * each candidate, `skopeo copy oci:LAYOUT:v1 docker-archive:FILE:CANDIDATE` (which parses the
 * candidate as a named reference before it writes anything) must succeed exactly when
 * lib/pipeline/tags.ts `referenceProblem` finds nothing wrong with it.
 *
 * @module
 */
import { equal } from "node:assert/strict";
import { join } from "node:path";
import { requireTool } from "./cfs.ts";
import { buildOciImage } from "./fixtures/oci.ts";
import { bootcTagOf, referenceProblem } from "../lib/pipeline/tags.ts";

const HEX = "5fd17c5d304530fd2b46b78b56e16e1eea350648a9eb4bbd0ad12a0969732163";

const CANDIDATES = [
  "oem/golden",
  "oem/golden:v1",
  "oem/build-5fd17c5d3045",
  "OEM/golden",
  "oem/Golden",
  bootcTagOf(`sha256:${HEX}`),
  `a@sha256:${HEX}`,
  "x:.bad",
  "x:-bad",
  "x:_ok",
  "x:UPPER.case-1",
  "Foo.com/x",
  "foo_com/x",
  "localhost:5000/a/b:v1",
  "localhost:50a0/a",
  "[::1]:5000/a",
  "a__b",
  "a___b",
  "a--b",
  "a-",
  "-a",
  "a..b",
  "a.b",
  "a//b",
  "/a",
  "a/",
  ":v1",
  "a:",
  HEX,
  `${HEX}:v1`,
  "ex-ample.com/a",
  "-example.com/a",
  "example-.com/a",
  "a b",
  "a/" + "b".repeat(243),
  "a/" + "b".repeat(244),
  "b".repeat(237),
  "b".repeat(238),
  "x.io/" + "b".repeat(250),
  "x.io/" + "b".repeat(251),
  "x:" + "v".repeat(128),
  "x:" + "v".repeat(129),
];

Deno.test("hook tags: referenceProblem accepts exactly what skopeo accepts as a named reference", async () => {
  requireTool("skopeo", "apt-get install skopeo");
  const tmp = await Deno.makeTempDir({ prefix: "cfs-pull-tags-" });
  try {
    const layout = join(tmp, "img");
    await buildOciImage(layout, {
      tag: "v1",
      layers: [[{ type: "file", path: "etc/x", content: "x" }]],
    });
    const skopeoTakes = async (candidate: string, i: number) => {
      const out = await new Deno.Command("skopeo", {
        args: [
          "copy",
          "-q",
          `oci:${layout}:v1`,
          `docker-archive:${join(tmp, `${i}.tar`)}:${candidate}`,
        ],
        stdout: "null",
        stderr: "piped",
      }).output();
      return out.success;
    };
    // Two at a time: the machine has two cores.
    const results: boolean[] = [];
    for (let i = 0; i < CANDIDATES.length; i += 2) {
      results.push(
        ...await Promise.all(CANDIDATES.slice(i, i + 2).map((c, j) => skopeoTakes(c, i + j))),
      );
    }
    let accepted = 0;
    for (const [i, candidate] of CANDIDATES.entries()) {
      const ours = referenceProblem(candidate);
      equal(
        ours === undefined,
        results[i],
        `${candidate.slice(0, 60)}: skopeo ${results[i] ? "accepts" : "refuses"}, cfs says ${
          ours ?? "fine"
        }`,
      );
      if (results[i]) accepted++;
    }
    // Both sides of the rule are exercised.
    equal(accepted > 10 && accepted < CANDIDATES.length - 10, true, `${accepted} accepted`);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
