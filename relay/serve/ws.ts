// The one file that touches Bun.serve's WebSockets (STYLE.md "thin adapters"): a ServerWebSocket as a
// ByteChannel (relay/session/channel.ts) for the sessions, and the upgrade bookkeeping. Each socket carries
// a WsData naming its route; server.ts dispatches open/message/close/drain to the channel installed by the
// route's handler. Text frames on a binary route and binary frames on a text route close the socket.

import type { ServerWebSocket } from "bun";
import type { TicketClaims } from "../control/tickets.ts";
import type { TextChannel } from "../gateway/text-channel.ts";
import type { ByteChannel } from "../session/channel.ts";

/** RFC 6455 §7.4.1 / application codes used when closing. */
export const WsClose = {
  Normal: 1000,
  GoingAway: 1001,
  Unsupported: 1003,
  Policy: 1008,
  TooBig: 1009,
  Internal: 1011,
} as const;

export interface WsData {
  /** Which endpoint accepted the upgrade. */
  route: "view" | "agent" | "agent-data";
  /** Route parameters (session id, …) checked before the upgrade. */
  params: Record<string, string>;
  /** The redeemed viewer ticket (route "view"). */
  claims?: TicketClaims;
  /** Set by the route's handler on open: where messages go. */
  channel?: WsChannel | WsTextChannel;
  /** Largest message this route accepts (Bun's maxPayloadLength is one value per server). */
  maxMessage: number;
  /** For text routes: the handler of each text message. */
  onText?: (text: string) => void;
  onClosed?: (code: number, reason: string) => void;
}

/** A WebSocket carrying binary frames as a ByteChannel. */
export class WsChannel implements ByteChannel {
  readonly #ws: ServerWebSocket<WsData>;
  #closed = false;
  onData: (bytes: Uint8Array) => void = () => {};
  onClose: (reason: string) => void = () => {};

  constructor(ws: ServerWebSocket<WsData>) {
    this.#ws = ws;
  }

  get buffered(): number {
    return this.#closed ? 0 : this.#ws.getBufferedAmount();
  }

  send(bytes: Uint8Array): void {
    if (this.#closed) return;
    // Bun returns -1 when the frame was queued under backpressure (still delivered) and 0 when it was
    // dropped: a dropped frame would corrupt the RFB stream, so that ends the connection instead.
    if (this.#ws.send(bytes) === 0) this.close("send buffer overflow");
  }

  close(reason = "normal", code: number = WsClose.Normal): void {
    if (this.#closed) return;
    this.#closed = true;
    // Close reasons are at most 123 bytes (RFC 6455 §5.5); ours are short ASCII from the error table.
    this.#ws.close(code, reason.slice(0, 120));
    this.onClose(reason);
  }

  /** The transport closed (called by server.ts). */
  closed(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClose(reason || `websocket closed (${code})`);
  }

  /** A binary message arrived (called by server.ts). */
  data(message: string | Buffer): void {
    if (typeof message === "string") {
      this.close("text frame on a binary channel", WsClose.Unsupported);
      return;
    }
    if (message.byteLength > this.#ws.data.maxMessage) {
      this.close("message too large", WsClose.TooBig);
      return;
    }
    this.onData(new Uint8Array(message.buffer, message.byteOffset, message.byteLength));
  }
}

/** A WebSocket carrying text frames (the agent's control channel) as a TextChannel. */
export class WsTextChannel implements TextChannel {
  readonly #ws: ServerWebSocket<WsData>;
  #closed = false;
  onText: (text: string) => void = () => {};
  onClose: (reason: string) => void = () => {};

  constructor(ws: ServerWebSocket<WsData>) {
    this.#ws = ws;
  }

  send(text: string): void {
    if (this.#closed) return;
    if (this.#ws.send(text) === 0) this.close(WsClose.Internal, "send buffer overflow");
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ws.close(code, reason.slice(0, 120));
    this.onClose(reason);
  }

  closed(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClose(reason || `websocket closed (${code})`);
  }

  data(message: string | Buffer): void {
    if (typeof message !== "string") {
      this.close(WsClose.Unsupported, "binary frame on a text channel");
      return;
    }
    if (message.length > this.#ws.data.maxMessage) {
      this.close(WsClose.TooBig, "message too large");
      return;
    }
    this.onText(message);
  }
}
