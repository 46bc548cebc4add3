/**
 * What a pull reports while its layers import, for `cfs pull` and `cfs oci pull` alike: a
 * LAYER_START/LAYER_DONE/LAYER_PRESENT event per layer and progress reports (layer n of
 * m, compressed bytes read of the total) that the logger's terminal display shows.
 *
 * @module
 */
import type { PullOptions } from "../oci/pull.ts";
import { Field, LAYER_DONE, LAYER_PRESENT, LAYER_START, type Logger } from "../log.ts";

/**
 * The `onLayer` and `onBytes` callbacks of a pull that report to `log`. `sizes` are the
 * layers' compressed sizes when known beforehand; otherwise they are learnt as each layer
 * starts, and the total grows until the last one has.
 */
export function layerReporter(
  log: Logger,
  sizes?: readonly number[],
): Pick<PullOptions, "onLayer" | "onBytes"> {
  let size = sizes ? [...sizes] : [];
  let done = size.map(() => 0);
  const show = () =>
    log.progress({
      label: "import",
      layer: Math.min(size.length, done.filter((d, i) => d >= size[i]).length + 1),
      layers: size.length,
      bytes: done.reduce((a, b) => a + b, 0),
      totalBytes: size.reduce((a, b) => a + b, 0),
    });
  return {
    onBytes: (i, n) => {
      done[i] += n;
      show();
    },
    onLayer: (e) => {
      if (size.length === 0) {
        size = Array(e.count).fill(0);
        done = size.map(() => 0);
      }
      size[e.index] = e.size;
      const f = {
        [Field.LAYER_DIGEST]: e.digest,
        [Field.LAYER_DIFF_ID]: e.diffId,
        [Field.LAYER_INDEX]: e.index + 1,
        [Field.LAYERS]: e.count,
        [Field.BYTES]: e.size,
      };
      if (e.state === "start") log.debug(LAYER_START, `layer ${e.index + 1}/${e.count}`, f);
      else if (e.state === "done") {
        done[e.index] = e.size;
        log.info(LAYER_DONE, `layer ${e.index + 1}/${e.count} imported`, f);
      } else {
        done[e.index] = e.size;
        log.info(LAYER_PRESENT, `layer ${e.index + 1}/${e.count} already present`, f);
      }
      show();
    },
  };
}
