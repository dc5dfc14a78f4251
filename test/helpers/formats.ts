// Pixel formats the tests use again and again (the ones real viewers ask for, and the odd ones).

import { CANONICAL_FORMAT, type PixelFormat } from "../../relay/rfb/pixel-format.ts";

/** TigerVNC vncviewer's default: 32 bpp little-endian, bytes B,G,R,X. */
export const BGRX: PixelFormat = { ...CANONICAL_FORMAT, redShift: 16, blueShift: 0 };

export const RGB565_LE: PixelFormat = {
  bitsPerPixel: 16,
  depth: 16,
  bigEndian: false,
  trueColour: true,
  redMax: 31,
  greenMax: 63,
  blueMax: 31,
  redShift: 11,
  greenShift: 5,
  blueShift: 0,
};

export const RGB565_BE: PixelFormat = { ...RGB565_LE, bigEndian: true };

/** TigerVNC's 8-bit "very low colour" format: bbgggrrr. */
export const BGR233: PixelFormat = {
  bitsPerPixel: 8,
  depth: 8,
  bigEndian: false,
  trueColour: true,
  redMax: 7,
  greenMax: 7,
  blueMax: 3,
  redShift: 0,
  greenShift: 3,
  blueShift: 6,
};

/** 32 bpp big-endian with R at the top: bytes X,R,G,B in memory (a SPARC/PowerPC-style server format). */
export const XRGB_BE: PixelFormat = {
  ...CANONICAL_FORMAT,
  bigEndian: true,
  redShift: 16,
  greenShift: 8,
  blueShift: 0,
};

/** 32 bpp depth 24 with the colour in the top three bytes: its ZRLE CPIXEL is the most significant 3 bytes. */
export const RGBX_HIGH: PixelFormat = { ...CANONICAL_FORMAT, redShift: 8, greenShift: 16, blueShift: 24 };

/** Every named test format, canonical first. */
export const TEST_FORMATS: readonly [string, PixelFormat][] = [
  ["canonical", CANONICAL_FORMAT],
  ["BGRX", BGRX],
  ["RGB565_LE", RGB565_LE],
  ["RGB565_BE", RGB565_BE],
  ["BGR233", BGR233],
  ["XRGB_BE", XRGB_BE],
  ["RGBX_HIGH", RGBX_HIGH],
];
