// Raw (encoding 0, rfbproto.rst "Raw Encoding"): PIXEL[w*h] in row order. Framing is pure arithmetic;
// decoding converts from the server's pixel format into the canonical framebuffer.

import { Encoding } from "../rfb/constants.ts";
import {
  type PixelFormat,
  bytesPerPixel,
  isCanonical,
  readPixel,
  unpackPixel,
  writePixel,
  packPixel,
} from "../rfb/pixel-format.ts";
import { checkedPixels } from "../util/checked.ts";
import type { Framebuffer } from "./framebuffer.ts";
import { type DecodeContext, NEED_MORE, type Rect, type RectCodec, type RectEncoder } from "./types.ts";

export function rawBodyLength(rect: Rect, pf: PixelFormat, cap: number): number {
  return checkedPixels(rect.w, rect.h, bytesPerPixel(pf), cap, "Raw rect");
}

/** Converts packed pixels in `pf` into packed canonical RGBX (generic path; canonical input is copied). */
export function pixelsToCanonical(src: Uint8Array, pf: PixelFormat, count: number): Uint8Array {
  if (isCanonical(pf)) return src.subarray(0, count * 4);
  const out = new Uint8Array(count * 4);
  const bpp = bytesPerPixel(pf);
  for (let i = 0; i < count; i++) {
    const [r, g, b] = unpackPixel(pf, readPixel(pf, src, i * bpp));
    out[i * 4] = r;
    out[i * 4 + 1] = g;
    out[i * 4 + 2] = b;
  }
  return out;
}

/** Converts packed canonical RGBX into packed pixels of `pf`. */
export function canonicalToPixels(src: Uint8Array, pf: PixelFormat, count: number): Uint8Array {
  if (isCanonical(pf)) return src.slice(0, count * 4);
  const bpp = bytesPerPixel(pf);
  const out = new Uint8Array(count * bpp);
  for (let i = 0; i < count; i++) {
    writePixel(pf, out, i * bpp, packPixel(pf, src[i * 4]!, src[i * 4 + 1]!, src[i * 4 + 2]!));
  }
  return out;
}

export const rawCodec: RectCodec = {
  encoding: Encoding.Raw,
  name: "raw",
  framer(rect: Rect, ctx: DecodeContext) {
    const n = rawBodyLength(rect, ctx.pf, ctx.limits.maxPendingBytes);
    return { measure: (q, base) => (q.has(base + n) ? n : NEED_MORE) };
  },
  decode(body: Uint8Array, rect: Rect, ctx: DecodeContext, fb: Framebuffer) {
    fb.writeRect(rect.x, rect.y, rect.w, rect.h, pixelsToCanonical(body, ctx.pf, rect.w * rect.h));
  },
};

export const rawEncoder: RectEncoder = {
  encoding: Encoding.Raw,
  name: "raw",
  encode(fb: Framebuffer, x: number, y: number, w: number, h: number, pf: PixelFormat) {
    return canonicalToPixels(fb.readRect(x, y, w, h), pf, w * h);
  },
};
