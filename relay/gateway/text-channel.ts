// A text-message channel: the agent's control WebSocket as the gateway sees it (relay side) and as the
// agent sees it (device side). Transports adapt to it (relay/serve/ws.ts on the relay; the agent's client
// WebSocket); the gateway logic is written and tested against it alone.

export interface TextChannel {
  /** Sends one JSON message (already serialized). */
  send(text: string): void;
  /** Closes with a WebSocket close code (4000–4999 for ours) and a short reason; safe to call twice. */
  close(code: number, reason: string): void;
  /** Set by the consumer: each text message received. */
  onText: (text: string) => void;
  /** Set by the consumer: the channel closed; called once. */
  onClose: (reason: string) => void;
}

/** Two connected in-memory text channels, for tests. */
export function textChannelPair(): [TextChannel, TextChannel] {
  const make = () => {
    const ch = {
      peer: null as null | (TextChannel & { closed: boolean }),
      closed: false,
      onText: (_t: string) => {},
      onClose: (_r: string) => {},
      send(text: string) {
        const p = ch.peer;
        if (ch.closed || !p) return;
        queueMicrotask(() => {
          if (!p.closed) p.onText(text);
        });
      },
      close(_code: number, reason: string) {
        if (ch.closed) return;
        ch.closed = true;
        const p = ch.peer;
        queueMicrotask(() => {
          ch.onClose(reason);
          if (p && !p.closed) {
            p.closed = true;
            p.onClose(reason);
          }
        });
      },
    };
    return ch;
  };
  const a = make();
  const b = make();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
