// Raw (encoding 0, rfbproto.rst "Raw Encoding"): PIXEL[w*h] in row order. Framing is pure arithmetic;
// decoding converts from the server's pixel format into the canonical framebuffer. rawEncoder is the TS
// twin of wasm/assembly/encode-raw.ts encodeRaw (same bytes in every output format).

import { Encoding } from "../rfb/constants.ts";
import { fromCanonical } from "../rfb/pixel-convert.ts";
import { bytesPerPixel, isCanonical, type PixelFormat } from "../rfb/pixel-format.ts";
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
};

export const rawEncoder: RectEncoder = {
  encoding: Encoding.Raw,
  name: "raw",
  encode(fb: Framebuffer, x: number, y: number, w: number, h: number, pf: PixelFormat) {
    // readRect already returns a fresh copy: in the canonical format it is the body once X is zeroed (the
    // padding byte goes out as 0 whatever the framebuffer holds, as wasm/assembly/encode-raw.ts sends it).
    const pixels = fb.readRect(x, y, w, h);
    if (isCanonical(pf)) {
      for (let i = 3; i < pixels.length; i += 4) pixels[i] = 0;
      return pixels;
    }
    const out = new Uint8Array(w * h * bytesPerPixel(pf));
    fromCanonical(pixels, out, pf, w * h);
    return out;
  },
};
