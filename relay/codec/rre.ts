// RRE (2) and CoRRE (4), rfbproto.rst "RRE Encoding" / "CoRRE Encoding": U32 nsub, PIXEL bg, then nsub
// subrects of {PIXEL, U16 x, y, w, h} (CoRRE: U8 x, y, w, h). Every subrect must lie inside its rect; the
// body length is checked against the limit from the count alone, before any subrect is waited for.

import { Encoding } from "../rfb/constants.ts";
import { RfbError } from "../rfb/errors.ts";
import { bytesPerPixel, readPixel, unpackPixel } from "../rfb/pixel-format.ts";
import { checkedAdd, checkedMul } from "../util/checked.ts";
import type { Framebuffer } from "./framebuffer.ts";
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
    decode(body: Uint8Array, rect: Rect, ctx: DecodeContext, fb: Framebuffer) {
      const pf = ctx.pf;
      const bpp = bytesPerPixel(pf);
      const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
      const nsub = dv.getUint32(0);
      const [br, bg, bb] = unpackPixel(pf, readPixel(pf, body, 4));
      fb.fill(rect.x, rect.y, rect.w, rect.h, br, bg, bb);
      let o = 4 + bpp;
      for (let i = 0; i < nsub; i++) {
        const [r, g, b] = unpackPixel(pf, readPixel(pf, body, o));
        o += bpp;
        let x: number;
        let y: number;
        let w: number;
        let h: number;
        if (coordBytes === 2) {
          x = dv.getUint16(o);
          y = dv.getUint16(o + 2);
          w = dv.getUint16(o + 4);
          h = dv.getUint16(o + 6);
          o += 8;
        } else {
          x = body[o]!;
          y = body[o + 1]!;
          w = body[o + 2]!;
          h = body[o + 3]!;
          o += 4;
        }
        if (x + w > rect.w || y + h > rect.h) {
          throw new RfbError("BAD_RECT", `${name} subrect ${w}x${h}+${x}+${y} outside ${rect.w}x${rect.h}`);
        }
        fb.fill(rect.x + x, rect.y + y, w, h, r, g, b);
      }
    },
  };
}

export const rreCodec: RectCodec = rre(Encoding.RRE, "rre", 2);
export const correCodec: RectCodec = rre(Encoding.CoRRE, "corre", 1);
