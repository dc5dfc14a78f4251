// The one adapter between the transport-agnostic RFB core and Bun's TCP sockets (Bun.listen / Bun.connect).
// Writes are queued while the kernel buffer is full and flushed on drain, so a partial write never loses
// bytes of a stateful stream; the queue is bounded and a peer that stops reading past it is closed.

import type { Socket, TCPSocketListener } from "bun";
import { log } from "../util/log.ts";

export interface Link {
  write(bytes: Uint8Array): void;
  /** Ends the connection once queued bytes are flushed. */
  end(): void;
  /** Bytes accepted by write() and not yet handed to the kernel. */
  readonly buffered: number;
  readonly remote: string;
}

export interface LinkHandler {
  data(bytes: Uint8Array): void;
  close(): void;
  /** Called when the outgoing queue has been flushed completely. */
  drain?(): void;
}

interface SocketState {
  link: TcpLink;
  handler: LinkHandler | null;
}

export class TcpLink implements Link {
  private queue: Uint8Array[] = [];
  private queued = 0;
  private ending = false;
  closed = false;

  constructor(
    private readonly s: Socket<SocketState>,
    readonly remote: string,
    private readonly maxQueued: number,
  ) {}

  get buffered(): number {
    return this.queued;
  }

  write(bytes: Uint8Array): void {
    if (this.closed || bytes.byteLength === 0) return;
    if (this.queue.length === 0) {
      const n = this.s.write(bytes);
      if (n === bytes.byteLength) return;
      bytes = bytes.subarray(Math.max(n, 0));
    }
    // Queued bytes are copied: callers may reuse their buffer once write() returns (ByteChannel's
    // contract, which lets sessions forward views of their receive queue without a copy per chunk).
    this.queue.push(bytes.slice());
    this.queued += bytes.byteLength;
    if (this.queued > this.maxQueued) {
      log.warn("tcp peer is not reading; closing", { remote: this.remote, queued: this.queued });
      this.abort();
    }
  }

  /** Flushes what the kernel takes now; true when the queue is empty. */
  flush(): boolean {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = this.s.write(head);
      if (n < head.byteLength) {
        this.queue[0] = head.subarray(Math.max(n, 0));
        this.queued -= Math.max(n, 0);
        return false;
      }
      this.queue.shift();
      this.queued -= head.byteLength;
    }
    if (this.ending) this.s.end();
    return true;
  }

  end(): void {
    this.ending = true;
    if (this.queue.length === 0) this.s.end();
  }

  abort(): void {
    this.closed = true;
    this.queue = [];
    this.queued = 0;
    this.s.terminate();
  }
}

const handlers = {
  data(s: Socket<SocketState>, data: Uint8Array) {
    s.data.handler?.data(data);
  },
  drain(s: Socket<SocketState>) {
    if (s.data.link.flush()) s.data.handler?.drain?.();
  },
  close(s: Socket<SocketState>) {
    s.data.link.closed = true;
    const h = s.data.handler;
    s.data.handler = null;
    h?.close();
  },
  error(s: Socket<SocketState>, err: Error) {
    log.debug("tcp socket error", { remote: s.data?.link?.remote, err: err.message });
  },
};

export interface TcpListenOptions {
  hostname: string;
  port: number;
  /** Most bytes queued for one peer before it is closed. @default 64 MiB */
  maxQueued?: number;
  accept(link: TcpLink): LinkHandler;
}

export function listenTcp(o: TcpListenOptions): TCPSocketListener<SocketState> {
  const maxQueued = o.maxQueued ?? 64 * 1024 * 1024;
  return Bun.listen<SocketState>({
    hostname: o.hostname,
    port: o.port,
    socket: {
      ...handlers,
      open(s) {
        const link = new TcpLink(s, `${s.remoteAddress}`, maxQueued);
        s.data = { link, handler: null };
        s.data.handler = o.accept(link);
      },
    },
  });
}

export interface TcpConnectOptions {
  hostname: string;
  port: number;
  maxQueued?: number;
  /** Called once connected; returns the handler for incoming data. */
  open(link: TcpLink): LinkHandler;
}

export async function connectTcp(o: TcpConnectOptions): Promise<TcpLink> {
  const maxQueued = o.maxQueued ?? 64 * 1024 * 1024;
  let link: TcpLink | null = null;
  await Bun.connect<SocketState>({
    hostname: o.hostname,
    port: o.port,
    socket: {
      ...handlers,
      open(s) {
        link = new TcpLink(s, `${o.hostname}:${o.port}`, maxQueued);
        s.data = { link, handler: null };
        s.data.handler = o.open(link);
      },
    },
  });
  if (!link) throw new Error(`could not connect to ${o.hostname}:${o.port}`);
  return link;
}
