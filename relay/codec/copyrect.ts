// CopyRect (encoding 1, rfbproto.rst "CopyRect Encoding"): U16 src-x, U16 src-y; the source rect must lie
// inside the framebuffer too (a copy from outside is the rect-bounds bug class, LibVNC CheckRect).

import { Encoding } from "../rfb/constants.ts";
import { RfbError } from "../rfb/errors.ts";
import type { Framebuffer } from "./framebuffer.ts";
import { NEED_MORE, type Rect, type RectCodec } from "./types.ts";

export const COPYRECT_BODY_LENGTH = 4;

export function copyRectSource(body: Uint8Array): { sx: number; sy: number } {
  return { sx: (body[0]! << 8) | body[1]!, sy: (body[2]! << 8) | body[3]! };
}

export const copyRectCodec: RectCodec = {
  encoding: Encoding.CopyRect,
  name: "copyrect",
  framer() {
    return { measure: (q, base) => (q.has(base + COPYRECT_BODY_LENGTH) ? COPYRECT_BODY_LENGTH : NEED_MORE) };
  },
  decode(body: Uint8Array, rect: Rect, _ctx, fb: Framebuffer) {
    const { sx, sy } = copyRectSource(body);
    if (sx + rect.w > fb.width || sy + rect.h > fb.height) {
      throw new RfbError("RECT_OUT_OF_BOUNDS", `CopyRect source ${sx},${sy} ${rect.w}x${rect.h}`);
    }
    fb.copyRect(sx, sy, rect.x, rect.y, rect.w, rect.h);
  },
};

/** CopyRect body for the encoder side. */
export function copyRectBody(sx: number, sy: number): Uint8Array {
  return new Uint8Array([sx >>> 8, sx & 0xff, sy >>> 8, sy & 0xff]);
}
