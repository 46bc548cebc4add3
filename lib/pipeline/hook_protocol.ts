/**
 * What cfs and a hook's process (hook_process.ts, hook_child.ts) say to each other, over a Unix
 * socket: each message is a 4-byte big-endian length, then the message serialized with node:v8
 * (the structured clone format: a tree's Maps, Uint8Arrays, bigints and shared leaves cross as
 * they are). Not stdin and stdout: a hook's own commands (`ctx.$`) inherit those, and a hook
 * that prints or reads must not be able to corrupt the conversation by accident.
 *
 * Every message from the hook's side is checked by the receiver: it comes from the process
 * that runs the hook's code.
 *
 * @module
 */
import { deserialize, serialize } from "node:v8";

/**
 * The argument that makes `cfs` (the compiled binary, or cli.ts) a hook's process; here, in a
 * module cli.ts can load without the hook machinery.
 */
export const HOOK_CHILD_COMMAND = "__hook-child";
import type { FileSystem } from "../tree.ts";
import type { BootEntry } from "../boot/entries.ts";
import type {
  HookDocument,
  HookLayer,
  HookPhase,
  HookSignatureDecision,
  StageName,
} from "../../hooks/types.ts";

/** Largest message either side accepts (a tree with its inline data fits many times). */
export const MAX_MESSAGE_BYTES = 1 << 30;

/** The repository as a hook's process sees it: it opens it itself, read-only. */
export interface RepositoryInfo {
  /** The repository directory. */
  path: string;
  /** `fsverity-sha256-12` or `fsverity-sha512-12`. */
  algorithm: string;
  /** True when fs-verity is required. */
  secure: boolean;
}

/** The data of one call's context (hooks/types.ts `HookContext` without the live parts). */
export interface CallContext {
  /** The image reference being pulled. */
  reference: string;
  /** The hook's section of the configuration file. */
  options: Record<string, unknown>;
  /** The repository, once `open` has run. */
  repository?: RepositoryInfo;
  /** The manifest, after `fetch`. */
  manifest?: HookDocument;
  /** The config, after `fetch`. */
  config?: HookDocument;
  /** The layers, after `fetch`. */
  layers?: HookLayer[];
  /** The signature policy's decision, after `fetch`. */
  signature?: HookSignatureDecision;
  /** The tags so far. */
  tags: string[];
  /** Whether the hook may change the tags (until `tag` ends). */
  tagsOpen: boolean;
  /** The tree, after `label`. */
  tree?: FileSystem;
  /** Whether the hook may change the tree (after `label`, before `image`). */
  treeOpen: boolean;
  /** The bootable image's id, after `image`. */
  imageId?: string;
  /** The boot entries, after `boot`. */
  bootEntries?: BootEntry[];
}

/** How a hook's call or its process failed; each becomes a stable error code. */
export type FailureKind =
  | "threw" // the function threw or rejected                          -> hook-failed
  | "uncaught" // an uncaught error or unhandled rejection              -> hook-failed
  | "late" // the same, after the call had returned                     -> hook-late-error
  | "tags" // ctx.tags cannot be sent back                               -> hook-tags-invalid
  | "tree"; // ctx.tree cannot be sent back                              -> hook-tree-invalid

/** Messages from cfs to a hook's process. */
export type HostMessage =
  | { t: "load"; builtin?: string; url?: string }
  | { t: "call"; id: number; phase: HookPhase; stage: StageName; ctx: CallContext }
  | { t: "abort"; reason: string; timeout: boolean }
  | { t: "sync"; id: number };

/** Messages from a hook's process to cfs. */
export type ChildMessage =
  | {
    t: "loaded";
    name: string;
    timeout?: number;
    before: StageName[];
    after: StageName[];
  }
  | { t: "load-failed"; message: string }
  | {
    t: "log";
    level: "info" | "warn" | "debug";
    message: string;
    fields?: Record<string, string | number | boolean>;
  }
  | { t: "done"; id: number; tags?: unknown; tree?: unknown }
  | {
    t: "failed";
    id?: number;
    kind: FailureKind;
    message: string;
    /** For a `late` failure: the call it followed. */
    after?: { phase: HookPhase; stage: StageName };
  }
  | { t: "synced"; id: number };

/** One message as bytes: length, then the v8 serialization. */
export function encodeMessage(message: HostMessage | ChildMessage): Uint8Array {
  const body = serialize(message);
  if (body.length > MAX_MESSAGE_BYTES) {
    throw new RangeError(`message of ${body.length} bytes, the limit is ${MAX_MESSAGE_BYTES}`);
  }
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

/** Writes one message whole. */
export async function writeMessage(
  conn: Deno.Conn,
  message: HostMessage | ChildMessage,
): Promise<void> {
  const bytes = encodeMessage(message);
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/** `n` bytes from `conn`; null when it closes before the first of them. */
async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const k = await conn.read(out.subarray(got));
    if (k === null) {
      if (got === 0) return null;
      throw new Error("connection closed in the middle of a message");
    }
    got += k;
  }
  return out;
}

/**
 * The messages arriving on `conn`, in order, until it closes. A length over
 * {@link MAX_MESSAGE_BYTES}, a message cut short or bytes that do not deserialize end the
 * stream with an error.
 */
export async function* readMessages(conn: Deno.Conn): AsyncGenerator<unknown> {
  for (;;) {
    const head = await readExactly(conn, 4);
    if (head === null) return;
    const length = new DataView(head.buffer).getUint32(0);
    if (length > MAX_MESSAGE_BYTES) throw new Error(`a message of ${length} bytes announced`);
    const body = length === 0 ? new Uint8Array(0) : await readExactly(conn, length);
    if (body === null) throw new Error("connection closed in the middle of a message");
    yield deserialize(body);
  }
}
