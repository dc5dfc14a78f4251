// Framing and validation of the pseudo-encodings the core handles itself (rfbproto.rst "Pseudo-encodings"):
// DesktopSize, ExtendedDesktopSize, LastRect, Cursor, DesktopName, and the empty acknowledgements.
// Every declared size is checked against its limit before anything is read or allocated.

import type { Rect } from "../codec/types.ts";
import { NEED_MORE } from "../codec/types.ts";
import { checkedAdd, checkedPixels } from "../util/checked.ts";
import type { ByteQueue } from "./byte-queue.ts";
import { PseudoEncoding, SCREEN_LENGTH } from "./constants.ts";
import { RfbError } from "./errors.ts";
import type { RfbLimits } from "./limits.ts";
import { type PixelFormat, bytesPerPixel } from "./pixel-format.ts";

export interface Screen {
  id: number;
  x: number;
  y: number;
  w: number;
  h: number;
  flags: number;
}

/** Pseudo-encodings that arrive as rects with no body: acknowledgements of support. */
export const EMPTY_PSEUDO = new Set<number>([
  PseudoEncoding.DesktopSize,
  PseudoEncoding.LastRect,
  PseudoEncoding.QemuExtendedKeyEvent,
  PseudoEncoding.ExtendedMouseButtons,
]);

/** Pseudo-encodings whose rects this core frames. */
export const FRAMED_PSEUDO = new Set<number>([
  ...EMPTY_PSEUDO,
  PseudoEncoding.Cursor,
  PseudoEncoding.DesktopName,
  PseudoEncoding.ExtendedDesktopSize,
]);

/** Checks a framebuffer size against the caps (ServerInit, DesktopSize, ExtendedDesktopSize, SetDesktopSize). */
export function checkFramebufferSize(w: number, h: number, limits: RfbLimits): void {
  if (w < 1 || h < 1 || w > limits.maxFramebufferSide || h > limits.maxFramebufferSide) {
    throw new RfbError("BAD_FRAMEBUFFER_SIZE", `${w}x${h}`);
  }
  checkedPixels(w, h, 1, limits.maxFramebufferPixels, "framebuffer pixels");
}

/** Body length of a pseudo-rect once its fixed part is present, or NEED_MORE. Validates sizes first. */
export function measurePseudo(
  q: ByteQueue,
  base: number,
  rect: Rect,
  pf: PixelFormat,
  limits: RfbLimits,
): number {
  switch (rect.encoding) {
    case PseudoEncoding.Cursor: {
      if (rect.w > limits.maxCursorSide || rect.h > limits.maxCursorSide) {
        throw new RfbError("BAD_CURSOR", `cursor ${rect.w}x${rect.h} exceeds ${limits.maxCursorSide}`);
      }
      if (rect.w > 0 && rect.h > 0 && (rect.x >= rect.w || rect.y >= rect.h)) {
        throw new RfbError("BAD_CURSOR", `hotspot ${rect.x},${rect.y} outside ${rect.w}x${rect.h}`);
      }
      const pixels = checkedPixels(rect.w, rect.h, bytesPerPixel(pf), 1 << 20, "cursor pixels");
      const n = checkedAdd(pixels, ((rect.w + 7) >>> 3) * rect.h, 1 << 20, "cursor data");
      return q.has(base + n) ? n : NEED_MORE;
    }
    case PseudoEncoding.DesktopName: {
      if (!q.has(base + 4)) return NEED_MORE;
      const len = q.u32(base);
      if (len > limits.maxString) throw new RfbError("LIMIT_EXCEEDED", `desktop name of ${len} bytes`);
      return q.has(base + 4 + len) ? 4 + len : NEED_MORE;
    }
    case PseudoEncoding.ExtendedDesktopSize: {
      if (!q.has(base + 4)) return NEED_MORE;
      const n = q.u8(base);
      if (n > limits.maxScreens) throw new RfbError("LIMIT_EXCEEDED", `${n} screens`);
      const len = 4 + n * SCREEN_LENGTH;
      return q.has(base + len) ? len : NEED_MORE;
    }
    default:
      if (EMPTY_PSEUDO.has(rect.encoding)) return 0;
      throw new RfbError("UNKNOWN_ENCODING", `pseudo-encoding ${rect.encoding}`);
  }
}

/** Parses SCREEN[n] and checks each screen lies inside w×h (bad-inputs.md B "ExtendedDesktopSize"). */
export function readScreens(body: Uint8Array, off: number, n: number, w: number, h: number): Screen[] {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const screens: Screen[] = [];
  for (let i = 0; i < n; i++) {
    const o = off + i * SCREEN_LENGTH;
    const s = {
      id: dv.getUint32(o),
      x: dv.getUint16(o + 4),
      y: dv.getUint16(o + 6),
      w: dv.getUint16(o + 8),
      h: dv.getUint16(o + 10),
      flags: dv.getUint32(o + 12),
    };
    if (s.w === 0 || s.h === 0 || s.x + s.w > w || s.y + s.h > h) {
      throw new RfbError("BAD_SCREEN_LAYOUT", `screen ${i}: ${s.w}x${s.h}+${s.x}+${s.y} in ${w}x${h}`);
    }
    screens.push(s);
  }
  return screens;
}
