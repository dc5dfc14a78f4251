// A byte channel: what a session needs from a transport (a WebSocket, a TCP socket, a test pipe). The
// session sets onData/onClose; the transport calls them. Transports stay in their adapters (STYLE.md
// "thin adapters"); sessions, the agent's VNC bridge and the connect proxy are written against this.

export interface ByteChannel {
  /**
   * Queues bytes to the peer (never blocks). The bytes are the caller's again when send() returns: an
   * implementation that keeps them (a write queue) copies them, so callers can pass views of buffers they
   * reuse (the pipe forwards spans of its receive queue this way).
   */
  send(bytes: Uint8Array): void;
  /** Closes with a reason (a coded error's reason text, or "normal"); safe to call twice. */
  close(reason?: string): void;
  /** Bytes queued and not yet written (WebSocket bufferedAmount, TCP buffered). */
  readonly buffered: number;
  /** Set by the consumer: each chunk received, in order. */
  onData: (bytes: Uint8Array) => void;
  /** Set by the consumer: the peer or the transport closed; called once. */
  onClose: (reason: string) => void;
}

/** One end of an in-memory pair. */
class MemoryChannel implements ByteChannel {
  peer: MemoryChannel | null = null;
  closed = false;
  readonly buffered = 0;
  onData: (bytes: Uint8Array) => void = () => {};
  onClose: (reason: string) => void = () => {};

  send(bytes: Uint8Array): void {
    const peer = this.peer;
    if (this.closed || !peer) return;
    const copy = bytes.slice();
    queueMicrotask(() => {
      if (!peer.closed) peer.onData(copy);
    });
  }

  close(reason = "normal"): void {
    if (this.closed) return;
    this.closed = true;
    const peer = this.peer;
    queueMicrotask(() => {
      this.onClose(reason);
      if (peer && !peer.closed) {
        peer.closed = true;
        peer.onClose(reason);
      }
    });
  }
}

/** Two connected in-memory channels (tests, and in-process wiring): what one sends, the other receives. */
export function channelPair(): [ByteChannel, ByteChannel] {
  const a = new MemoryChannel();
  const b = new MemoryChannel();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
