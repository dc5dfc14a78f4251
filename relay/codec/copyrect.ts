// CopyRect (encoding 1, rfbproto.rst "CopyRect Encoding"): U16 src-x, U16 src-y; the source rect must lie
// inside the framebuffer too (a copy from outside is the rect-bounds bug class, LibVNC CheckRect).

import { Encoding } from "../rfb/constants.ts";
import { NEED_MORE, type RectCodec } from "./types.ts";

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
};

/** CopyRect body for the encoder side. */
export function copyRectBody(sx: number, sy: number): Uint8Array {
  return new Uint8Array([sx >>> 8, sx & 0xff, sy >>> 8, sy & 0xff]);
}
