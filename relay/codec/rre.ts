// RRE (2) and CoRRE (4), rfbproto.rst "RRE Encoding" / "CoRRE Encoding": U32 nsub, PIXEL bg, then nsub
// subrects of {PIXEL, U16 x, y, w, h} (CoRRE: U8 x, y, w, h). Every subrect must lie inside its rect; the
// body length is checked against the limit from the count alone, before any subrect is waited for.
// rreDecodeTs is the TS twin of wasm/assembly/rre.ts decodeRre (same pixels, same RfbError codes).

import { Encoding } from "../rfb/constants.ts";
import { RfbError } from "../rfb/errors.ts";
import { bytesPerPixel, type PixelFormat } from "../rfb/pixel-format.ts";
import { checkedAdd, checkedMul } from "../util/checked.ts";
import type { Framebuffer } from "./framebuffer.ts";
import { canonicalPixelReader, fillArea } from "./hextile.ts";
import { type DecodeContext, NEED_MORE, type Rect, type RectCodec } from "./types.ts";

function rre(encoding: number, name: string, coordBytes: 1 | 2): RectCodec {
  return {
    encoding,
    name,
    framer(rect: Rect, ctx: DecodeContext) {
      const bpp = bytesPerPixel(ctx.pf);
      if (coordBytes === 1 && (rect.w > 255 || rect.h > 255)) {
        throw new RfbError("BAD_RECT", `CoRRE rect ${rect.w}x${rect.h} is larger than 255x255`);
      }
      return {
        measure(q, base) {
          if (!q.has(base + 4)) return NEED_MORE;
          const nsub = q.u32(base);
          const cap = ctx.limits.maxPendingBytes;
          const n = checkedAdd(
            4 + bpp,
            checkedMul(nsub, bpp + 4 * coordBytes, cap, `${name} subrects`),
            cap,
            name,
          );
          return q.has(base + n) ? n : NEED_MORE;
        },
      };
    },
  };
}

export const rreCodec: RectCodec = rre(Encoding.RRE, "rre", 2);
export const correCodec: RectCodec = rre(Encoding.CoRRE, "corre", 1);

/** CoRRE coordinates are U8: its rects are at most 255 × 255 (rfbproto.rst "CoRRE Encoding"). */
const CORRE_MAX_SIDE = 255;

/**
 * TS twin of wasm/assembly/rre.ts decodeRre: decodes a whole RRE (compact = false) or CoRRE body into the
 * rect, which the caller checked against the framebuffer. The body is validated completely before the
 * first write — its length from nsub (exact: nsub < 2^32, so the product stays far below 2^53), then every
 * subrect inside the rect — so a refused body leaves the framebuffer untouched. Throws BAD_RECT.
 */
export function rreDecodeTs(
  fb: Framebuffer,
  pf: PixelFormat,
  x: number,
  y: number,
  w: number,
  h: number,
  data: Uint8Array,
  compact: boolean,
): void {
  const name = compact ? "corre" : "rre";
  if (compact && (w > CORRE_MAX_SIDE || h > CORRE_MAX_SIDE)) {
    throw new RfbError("BAD_RECT", `CoRRE rect ${w}x${h} is larger than 255x255`);
  }
  const bpp = bytesPerPixel(pf);
  const head = 4 + bpp;
  const per = bpp + (compact ? 4 : 8);
  if (data.length < head) throw new RfbError("BAD_RECT", `${name}: ${data.length}-byte body`);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const nsub = dv.getUint32(0);
  const need = head + nsub * per;
  if (data.length !== need) {
    throw new RfbError("BAD_RECT", `${name}: ${nsub} subrects need ${need} bytes, got ${data.length}`);
  }
  // Subrect i: its pixel at head + i·per, then x, y, w, h.
  const coord = compact
    ? (o: number, k: number) => data[o + k]!
    : (o: number, k: number) => dv.getUint16(o + 2 * k);
  for (let i = 0, o = head + bpp; i < nsub; i++, o += per) {
    const sx = coord(o, 0);
    const sy = coord(o, 1);
    const sw = coord(o, 2);
    const sh = coord(o, 3);
    if (sx + sw > w || sy + sh > h) {
      throw new RfbError("BAD_RECT", `${name} subrect ${i}: ${sw}x${sh}+${sx}+${sy} outside ${w}x${h}`);
    }
  }
  const read = canonicalPixelReader(pf);
  const px = fb.px;
  fillArea(px, fb.width, x, y, w, h, read(data, 4));
  for (let i = 0, o = head; i < nsub; i++, o += per) {
    const c = read(data, o);
    const g = o + bpp;
    fillArea(px, fb.width, x + coord(g, 0), y + coord(g, 1), coord(g, 2), coord(g, 3), c);
  }
}
