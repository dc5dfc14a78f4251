// Resumable receive queue (noVNC websock.js rQ, ws receiver.js). Bytes from the transport are appended in
// whatever chunks they arrive; parsers peek at fixed offsets, check that a whole unit is present, and only
// then consume it, so a unit is never half-consumed and any chunking gives the same result.

import { RfbError } from "./errors.ts";

export class ByteQueue {
  private buf: Uint8Array;
  private dv: DataView;
  private head = 0;
  private tail = 0;
  /** Total bytes ever consumed (discarded ones included); parsers use it for offsets in diagnostics. */
  consumed = 0;
  /** Bytes still to drop as they arrive (discard() past what was buffered). */
  private discarding = 0;

  private readonly initialCapacity: number;

  constructor(
    /** Most bytes that may wait here unparsed; more is a LIMIT_EXCEEDED error. */
    readonly maxPending: number,
    initialCapacity = 64 * 1024,
  ) {
    this.initialCapacity = Math.min(initialCapacity, Math.max(maxPending, 16));
    this.buf = new Uint8Array(this.initialCapacity);
    this.dv = new DataView(this.buf.buffer);
  }

  /** Bytes available to parse. */
  get length(): number {
    return this.tail - this.head;
  }

  /** Appends a chunk (copied; the caller may reuse it). */
  push(chunk: Uint8Array): void {
    if (this.discarding > 0) {
      const d = Math.min(this.discarding, chunk.byteLength);
      chunk = chunk.subarray(d);
      this.discarding -= d;
      this.consumed += d;
    }
    const n = chunk.byteLength;
    if (n === 0) return;
    const pending = this.tail - this.head;
    if (pending + n > this.maxPending) {
      throw new RfbError("LIMIT_EXCEEDED", `more than ${this.maxPending} bytes pending from the peer`);
    }
    // Give back what one large message needed once it is gone: an idle session holds the initial
    // capacity, not its largest frame (bench/RESULTS.md "Pipe vs websockify": ~2 MiB kept per session).
    if (pending === 0 && n <= this.initialCapacity && this.buf.byteLength > 4 * this.initialCapacity) {
      this.buf = new Uint8Array(this.initialCapacity);
      this.dv = new DataView(this.buf.buffer);
      this.head = 0;
      this.tail = 0;
    }
    if (this.tail + n > this.buf.byteLength) {
      if (
        pending + n <= this.buf.byteLength >>> 1 ||
        (pending + n <= this.buf.byteLength && pending < 4096)
      ) {
        this.buf.copyWithin(0, this.head, this.tail);
      } else {
        let cap = this.buf.byteLength * 2;
        while (cap < pending + n) cap *= 2;
        const grown = new Uint8Array(Math.min(cap, Math.max(this.maxPending, pending + n)));
        grown.set(this.buf.subarray(this.head, this.tail));
        this.buf = grown;
        this.dv = new DataView(grown.buffer);
      }
      this.tail = pending;
      this.head = 0;
    }
    this.buf.set(chunk, this.tail);
    this.tail += n;
  }

  /** Bytes allocated for buffering; tests use it to prove a declared length allocated nothing. */
  get capacity(): number {
    return this.buf.byteLength;
  }

  /** True when at least n bytes are available. */
  has(n: number): boolean {
    return this.tail - this.head >= n;
  }

  u8(off: number): number {
    return this.buf[this.head + off]!;
  }
  u16(off: number): number {
    return this.dv.getUint16(this.head + off, false);
  }
  u32(off: number): number {
    return this.dv.getUint32(this.head + off, false);
  }
  s32(off: number): number {
    return this.dv.getInt32(this.head + off, false);
  }

  /** A view of n bytes at off without consuming; valid only until the next push or consume. */
  peek(off: number, n: number): Uint8Array {
    return this.buf.subarray(this.head + off, this.head + off + n);
  }

  /** Consumes n bytes and returns a copy of them. */
  take(n: number): Uint8Array {
    const out = this.buf.slice(this.head, this.head + n);
    this.skip(n);
    return out;
  }

  /**
   * Consumes n bytes that may not have arrived yet: what is buffered now goes at once, the rest is dropped
   * from later pushes without ever being stored (oversized cut text, TigerVNC skips it the same way).
   */
  discard(n: number): void {
    const now = Math.min(n, this.tail - this.head);
    this.skip(now);
    this.discarding = n - now;
  }

  /** Consumes n bytes without copying them. */
  skip(n: number): void {
    if (n > this.tail - this.head) throw new RfbError("INTERNAL", "ByteQueue.skip past the end");
    this.head += n;
    this.consumed += n;
    if (this.head === this.tail) {
      this.head = 0;
      this.tail = 0;
    }
  }
}
