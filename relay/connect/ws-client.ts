// Client WebSockets (STYLE.md "thin adapters"): newClientWebSocket() is the one place that constructs
// Bun's client WebSocket (the agent's channels and the load client use it too), and openWsChannel() is a
// WSS connection to the relay as a ByteChannel, binary frames only. The relay's certificate is trusted by pinning it as the only CA (`caPem`:
// the relay's self-signed cert.pem, or the operator's chain), never by turning verification off unless the
// user asked (`insecure`).

import type { ByteChannel } from "../session/channel.ts";

export interface WsClientOptions {
  /** PEM of the certificate(s) to trust for this connection. */
  caPem?: string;
  /** Skip certificate verification (a test relay on loopback only; the CLI says so loudly). */
  insecure?: boolean;
  /** Milliseconds to wait for the connection. @default 10000 */
  timeoutMs?: number;
}

/** Bun's WebSocket with its options object (TLS, headers) where the DOM type only knows protocols. */
export function newClientWebSocket(url: string, options: Bun.WebSocketOptions): WebSocket {
  const BunWebSocket = WebSocket as unknown as new (url: string, options: Bun.WebSocketOptions) => WebSocket;
  return new BunWebSocket(url, options);
}

class WsClientChannel implements ByteChannel {
  #closed = false;
  onData: (bytes: Uint8Array) => void = () => {};
  onClose: (reason: string) => void = () => {};

  constructor(readonly ws: WebSocket) {}

  get buffered(): number {
    return this.ws.bufferedAmount;
  }

  send(bytes: Uint8Array): void {
    if (!this.#closed) this.ws.send(bytes as Uint8Array<ArrayBuffer>);
  }

  close(reason = "normal"): void {
    if (this.#closed) return;
    this.#closed = true;
    this.ws.close(1000, reason.slice(0, 120));
    this.onClose(reason);
  }

  closedByPeer(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClose(reason);
  }
}

/** Opens `url` (wss://…) and resolves once it is open; rejects with the close reason otherwise. */
export function openWsChannel(url: string, o: WsClientOptions = {}): Promise<ByteChannel> {
  return new Promise((resolve, reject) => {
    const tls = o.insecure ? { rejectUnauthorized: false } : o.caPem ? { ca: o.caPem } : undefined;
    // Bun's WebSocket takes an options object (TLS) where the DOM type only knows protocols.
    const BunWebSocket = WebSocket as unknown as new (
      url: string,
      options: Bun.WebSocketOptions,
    ) => WebSocket;
    const ws = new BunWebSocket(url, tls ? { tls } : {});
    ws.binaryType = "arraybuffer";
    const channel = new WsClientChannel(ws);
    let open = false;
    const timer = setTimeout(() => {
      if (!open) {
        ws.close();
        reject(new Error(`no connection to ${new URL(url).host} within ${o.timeoutMs ?? 10_000} ms`));
      }
    }, o.timeoutMs ?? 10_000);
    ws.onopen = () => {
      open = true;
      clearTimeout(timer);
      resolve(channel);
    };
    ws.onmessage = (e) => {
      if (typeof e.data === "string") {
        channel.close("text frame on a binary channel");
        return;
      }
      channel.onData(new Uint8Array(e.data as ArrayBuffer));
    };
    ws.onclose = (e) => {
      clearTimeout(timer);
      const reason = e.reason || `closed (${e.code})`;
      if (!open) reject(new Error(`the relay refused the connection: ${reason}`));
      else channel.closedByPeer(reason);
    };
    ws.onerror = () => {
      // onclose follows with the reason.
    };
  });
}
