// Raw (encoding 0, rfbproto.rst "Raw Encoding"): PIXEL[w*h] in row order. Framing is pure arithmetic;
// decoding converts from the server's pixel format into the canonical framebuffer.

import { Encoding } from "../rfb/constants.ts";
import { fromCanonical, toCanonical } from "../rfb/pixel-convert.ts";
import { type PixelFormat, bytesPerPixel, isCanonical } from "../rfb/pixel-format.ts";
import { checkedPixels } from "../util/checked.ts";
import type { Framebuffer } from "./framebuffer.ts";
import { type DecodeContext, NEED_MORE, type Rect, type RectCodec, type RectEncoder } from "./types.ts";

export function rawBodyLength(rect: Rect, pf: PixelFormat, cap: number): number {
  return checkedPixels(rect.w, rect.h, bytesPerPixel(pf), cap, "Raw rect");
}

export const rawCodec: RectCodec = {
  encoding: Encoding.Raw,
  name: "raw",
  framer(rect: Rect, ctx: DecodeContext) {
    const n = rawBodyLength(rect, ctx.pf, ctx.limits.maxPendingBytes);
    return { measure: (q, base) => (q.has(base + n) ? n : NEED_MORE) };
  },
  decode(body: Uint8Array, rect: Rect, ctx: DecodeContext, fb: Framebuffer) {
    const count = rect.w * rect.h;
    let pixels = body;
    if (!isCanonical(ctx.pf)) {
      pixels = new Uint8Array(count * 4);
      toCanonical(body, ctx.pf, pixels, count);
    }
    fb.writeRect(rect.x, rect.y, rect.w, rect.h, pixels);
  },
};

export const rawEncoder: RectEncoder = {
  encoding: Encoding.Raw,
  name: "raw",
  encode(fb: Framebuffer, x: number, y: number, w: number, h: number, pf: PixelFormat) {
    // readRect already returns a fresh copy: in the canonical format it is the body as it stands.
    const pixels = fb.readRect(x, y, w, h);
    if (isCanonical(pf)) return pixels;
    const out = new Uint8Array(w * h * bytesPerPixel(pf));
    fromCanonical(pixels, out, pf, w * h);
    return out;
  },
};
