/**
 * Splitstreams: composefs-rs 0.9.4's format (writer, reader, refs-only parse for gc) and a
 * reader of composefs-rs 0.3.0's format for old repositories. Pure: bytes in, bytes out; the
 * repository stores objects and files.
 *
 * @module
 */
export { SplitStreamError } from "./error.ts";
export type { VerityAlgorithm } from "../fsverity/digest.ts";
export {
  CONTENT_TYPE,
  contentTypeOf,
  describeContentType,
  detectSplitStreamFormat,
  type FileRange,
  type HeaderLayout,
  type SplitStreamFormat,
  type SplitStreamHeader,
  type SplitStreamInfo,
  toPreReprCLayout,
} from "./format.ts";
export {
  type ObjectSource,
  type RandomAccessSource,
  type SplitStreamChunk,
  type SplitStreamSource,
} from "./chunks.ts";
export { SplitStreamWriter, type SplitStreamWriterOptions } from "./writer.ts";
export {
  MAX_NAMED_REFS_BYTES,
  readSplitStreamRefs,
  SplitStreamReader,
  type SplitStreamReadOptions,
  type SplitStreamRefs,
} from "./reader.ts";
export {
  type DigestMapEntry,
  LegacySplitStreamReader,
  type LegacySplitStreamReadOptions,
} from "./legacy.ts";
