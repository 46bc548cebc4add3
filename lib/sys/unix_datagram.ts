/**
 * Sending unix datagrams (`AF_UNIX`, `SOCK_DGRAM`) via Deno FFI, for the journal's native
 * protocol (lib/log.ts).
 *
 * Deno 2.9.6 has unix datagram sockets only behind `--unstable-net`
 * (`Deno.listenDatagram({ transport: "unixpacket", path })`, which also must bind a path of
 * its own before it can send), and `node:dgram` has no unix sockets. cfs already needs FFI
 * (lib/sys/libc.ts), so an unbound `socket()` + `sendto()` is the smallest dependable way.
 *
 * Sends never block: `MSG_DONTWAIT` makes a full receive queue fail with `EAGAIN`, which the
 * caller treats as a dropped message rather than stalling a pull on logging.
 *
 * @module
 */

import { SysError } from "./libc.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
/** `sizeof(struct sockaddr_un)` on Linux: a 2-byte family and a 108-byte path. */
const SOCKADDR_UN_SIZE = 110;
const SUN_PATH_MAX = 108;

/** errno values a sender handles: the queue is full, or the datagram is too large. */
export const DatagramErrno = { EAGAIN: 11, ENOENT: 2, ECONNREFUSED: 111, EMSGSIZE: 90 } as const;

const symbols = {
  __errno_location: { parameters: [], result: "pointer" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  close: { parameters: ["i32"], result: "i32" },
} as const;

type Lib = Deno.DynamicLibrary<typeof symbols>["symbols"];
let lib: Lib | undefined;

function libc(): Lib {
  lib ??= Deno.dlopen("libc.so.6", symbols).symbols;
  return lib;
}

function errno(): number {
  const p = libc().__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

/** `struct sockaddr_un` for a file-system socket path (no abstract names). */
function sockaddrUn(path: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(path);
  if (bytes.length >= SUN_PATH_MAX) throw new SysError("sockaddr_un", 36, path);
  const addr = new Uint8Array(SOCKADDR_UN_SIZE);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(bytes, 2);
  return addr;
}

/** An unbound unix datagram socket that sends to one path. */
export class UnixDatagramSender {
  #fd: number;
  #addr: Uint8Array<ArrayBuffer>;
  #addrLen: number;

  /** Opens the socket; throws {@link SysError} when FFI or `socket()` fails. */
  constructor(readonly path: string) {
    this.#addr = sockaddrUn(path);
    this.#addrLen = 2 + new TextEncoder().encode(path).length + 1;
    const fd = libc().socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new SysError("socket", errno());
    this.#fd = fd;
  }

  /**
   * Sends one datagram without blocking. Returns 0 on success, else the errno
   * ({@link DatagramErrno}: `EAGAIN` when the receiver's queue is full, `EMSGSIZE` when the
   * datagram exceeds the socket's send buffer, `ENOENT`/`ECONNREFUSED` when nobody listens).
   */
  send(data: Uint8Array): number {
    if (this.#fd < 0) return 9; // EBADF
    const buf = data.buffer instanceof ArrayBuffer ? data as Uint8Array<ArrayBuffer> : data.slice();
    const n = libc().sendto(
      this.#fd,
      buf,
      BigInt(buf.length),
      MSG_DONTWAIT | MSG_NOSIGNAL,
      this.#addr,
      this.#addrLen,
    );
    return n < 0 ? errno() : 0;
  }

  /** Closes the socket; later sends return `EBADF`. */
  close(): void {
    if (this.#fd >= 0) libc().close(this.#fd);
    this.#fd = -1;
  }
}
