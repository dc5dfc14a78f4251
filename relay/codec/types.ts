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

/**
 * Length of one tile of a body starting at view[offset], looking no further than view[end - 1], or
 * NEED_MORE while the tile is incomplete; throws an RfbError for a malformed tile. May keep state between
 * tiles (Hextile's carried colours, TRLE's palette): it is called once per tile, in order.
 */
export type TileLength = (
  view: Uint8Array,
  offset: number,
  end: number,
  tw: number,
  th: number,
  tile: number,
) => number;

/**
 * The resumable framer of the tiled encodings (Hextile 16×16, TRLE 16×16): progress (tile index, bytes
 * counted) lives on the instance, so each call re-walks only the tile it stopped in, never half-consuming
 * one, and feeding a rect byte by byte costs O(n) overall.
 */
export class TileFramer implements RectFramer {
  private tile = 0;
  private offset = 0;
  private readonly tilesX: number;
  private readonly tiles: number;

  constructor(
    private readonly w: number,
    private readonly h: number,
    private readonly tileSize: number,
    private readonly tileLength: TileLength,
  ) {
    this.tilesX = Math.ceil(w / tileSize);
    this.tiles = this.tilesX * Math.ceil(h / tileSize);
  }

  measure(q: ByteQueue, base: number): number {
    if (this.tile === this.tiles) return this.offset;
    const end = q.length - base;
    if (end <= this.offset) return NEED_MORE;
    const view = q.peek(base, end);
    while (this.tile < this.tiles) {
      const col = this.tile % this.tilesX;
      const row = (this.tile - col) / this.tilesX;
      const tw = Math.min(this.tileSize, this.w - col * this.tileSize);
      const th = Math.min(this.tileSize, this.h - row * this.tileSize);
      const n = this.tileLength(view, this.offset, end, tw, th, this.tile);
      if (n === NEED_MORE) return NEED_MORE;
      this.offset += n;
      this.tile++;
    }
    return this.offset;
  }
}
