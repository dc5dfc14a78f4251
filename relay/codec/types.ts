// The codec interface: framing (where a rect's body ends) is separate from decoding (bytes → pixels),
// as in TigerVNC's Decoder::readRect / decodeRect. The protocol core frames every rect through a RectCodec;
// decoding is SessionDecoder's (relay/codec/decoder.ts) over the codec kernels — the WASM core or its
// TS twin (relay/codec/kernels.ts).

import type { ByteQueue } from "../rfb/byte-queue.ts";
import type { RfbLimits } from "../rfb/limits.ts";
import type { PixelFormat } from "../rfb/pixel-format.ts";
import type { Framebuffer } from "./framebuffer.ts";

/** measure() result while the body is not complete yet. */
export const NEED_MORE = -1;

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
  encoding: number;
}

export interface DecodeContext {
  /** The pixel format the server sends in (the one the client set). */
  pf: PixelFormat;
  limits: RfbLimits;
}

/**
 * Finds where one rect's body ends. measure(q, base) looks at the bytes from q offset `base` on without
 * consuming them and returns the body length once the whole body is present, NEED_MORE before. It may keep
 * progress between calls: it is called again with the same base after more bytes were appended.
 * Malformed data throws an RfbError.
 */
export interface RectFramer {
  measure(q: ByteQueue, base: number): number;
}

export interface RectCodec {
  readonly encoding: number;
  readonly name: string;
  framer(rect: Rect, ctx: DecodeContext): RectFramer;
}

export interface RectEncoder {
  readonly encoding: number;
  readonly name: string;
  /** Encodes a rect of the canonical framebuffer as a body (no rect header) in the viewer's pixel format. */
  encode(fb: Framebuffer, x: number, y: number, w: number, h: number, pf: PixelFormat): Uint8Array;
}
