// One table of coded errors for the whole protocol core (STYLE.md "one error boundary per session").
// Parsers and codecs throw RfbError; the session catches once, audits the code, and closes only itself.
// `close` is the WebSocket close code used when the session is carried over a WebSocket (4000–4999 are
// application codes, RFC 6455 §7.4.2); `reason` is the short text sent to the peer and written to the audit.

export const ERROR_TABLE = {
  BAD_VERSION: { close: 4400, reason: "bad ProtocolVersion" },
  UNSUPPORTED_VERSION: { close: 4400, reason: "unsupported protocol version" },
  NOT_RFB: { close: 4400, reason: "peer does not speak RFB" },
  SECURITY_REFUSED: { close: 4403, reason: "security negotiation refused" },
  SECURITY_NOT_OFFERED: { close: 4403, reason: "security type was not offered" },
  AUTH_FAILED: { close: 4401, reason: "authentication failed" },
  AUTH_REQUIRED: { close: 4401, reason: "server needs a password we do not have" },
  BAD_PIXEL_FORMAT: { close: 4400, reason: "invalid pixel format" },
  BAD_FRAMEBUFFER_SIZE: { close: 4400, reason: "invalid framebuffer size" },
  UNKNOWN_MESSAGE: { close: 4400, reason: "unknown message type" },
  UNKNOWN_ENCODING: { close: 4400, reason: "rect encoding was not negotiated" },
  RECT_OUT_OF_BOUNDS: { close: 4400, reason: "rectangle outside the framebuffer" },
  BAD_RECT: { close: 4400, reason: "malformed rectangle data" },
  BAD_COLOUR_MAP: { close: 4400, reason: "invalid colour map entries" },
  BAD_CURSOR: { close: 4400, reason: "invalid cursor shape" },
  BAD_SCREEN_LAYOUT: { close: 4400, reason: "invalid screen layout" },
  BAD_MESSAGE: { close: 4400, reason: "malformed message" },
  LIMIT_EXCEEDED: { close: 4413, reason: "a protocol limit was exceeded" },
  SIZE_OVERFLOW: { close: 4413, reason: "size arithmetic overflow" },
  HANDSHAKE_TIMEOUT: { close: 4408, reason: "handshake deadline passed" },
  IDLE_TIMEOUT: { close: 4408, reason: "idle timeout" },
  UNSUPPORTED: { close: 4400, reason: "unsupported feature" },
  CODEC_ERROR: { close: 4500, reason: "codec failure" },
  PEER_CLOSED: { close: 1000, reason: "peer closed the connection" },
  INTERNAL: { close: 1011, reason: "internal error" },
} as const;

export type RfbErrorCode = keyof typeof ERROR_TABLE;

export class RfbError extends Error {
  readonly code: RfbErrorCode;
  /** WebSocket close code for this error. */
  readonly close: number;
  /** Short text for the peer and the audit log (never contains peer-supplied bytes). */
  readonly reason: string;

  constructor(code: RfbErrorCode, detail?: string) {
    const row = ERROR_TABLE[code];
    super(detail ? `${code}: ${detail}` : `${code}: ${row.reason}`);
    this.name = "RfbError";
    this.code = code;
    this.close = row.close;
    this.reason = row.reason;
  }
}

/** Turns anything thrown inside a session into a coded error (unknown throws become INTERNAL). */
export function toRfbError(e: unknown): RfbError {
  if (e instanceof RfbError) return e;
  return new RfbError("INTERNAL", e instanceof Error ? e.message : String(e));
}
