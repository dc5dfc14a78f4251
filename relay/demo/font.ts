// The demo desktop's bitmap font: 5×9 glyphs (7-pixel caps plus 2 descender rows) in a 6×11 cell, for
// printable ASCII 0x20–0x7E, drawn by hand for this project. Anything else draws as a hollow box, so a viewer
// can tell "a character was here" from "nothing was sent".

import type { Framebuffer } from "../codec/framebuffer.ts";
import {
  type DemoRect,
  clipTo,
  fillRect,
  intersectRect,
  isEmptyRect,
  makeRect,
  packRgb,
  pixelView,
} from "./draw.ts";

/** Pixels a glyph may set, per row and per column. */
export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 9;
/** The advance and line box: one blank column right of the glyph, one blank row above and below it. */
export const CELL_WIDTH = 6;
export const CELL_HEIGHT = 11;
const GLYPH_TOP = 1;

const FIRST_CODE = 0x20;
const LAST_CODE = 0x7e;
/** The box glyph sits in the 0x7F slot (DEL is not printable either). */
const BOX_INDEX = 0x7f - FIRST_CODE;
const GLYPH_COUNT = BOX_INDEX + 1;

// One glyph = 9 rows × 2 hex digits, bit 4 = leftmost column. Each line starts with the code of its first
// glyph, which the loader checks, so a dropped or doubled entry fails at import instead of shifting letters.
const GLYPH_TABLE = `
20: 000000000000000000 040404040400040000 0a0a0a000000000000 0a0a1f0a1f0a0a0000
24: 040f140e051e040000 181902040813030000 0c12140815120d0000 040408000000000000
28: 020408080804020000 080402020204080000 0004150e1504000000 0004041f0404000000
2c: 00000000000c040800 0000001f0000000000 00000000000c0c0000 000102040810000000
30: 0e11131519110e0000 040c040404040e0000 0e11010204081f0000 1f02040201110e0000
34: 02060a121f02020000 1f101e0101110e0000 0608101e11110e0000 1f0102040808080000
38: 0e11110e11110e0000 0e11110f01020c0000 000c0c000c0c000000 000c0c000c04080000
3c: 020408100804020000 00001f001f00000000 080402010204080000 0e1101020400040000
40: 0e11171517100f0000 0e11111f1111110000 1e11111e11111e0000 0e11101010110e0000
44: 1c12111111121c0000 1f10101e10101f0000 1f10101e1010100000 0e11101711110f0000
48: 1111111f1111110000 0e04040404040e0000 0702020202120c0000 111214181412110000
4c: 1010101010101f0000 111b15151111110000 111119151311110000 0e11111111110e0000
50: 1e11111e1010100000 0e11111115120d0000 1e11111e1412110000 0f10100e01011e0000
54: 1f0404040404040000 1111111111110e0000 11111111110a040000 1111111515150a0000
58: 11110a040a11110000 11110a040404040000 1f01020408101f0000 0e08080808080e0000
5c: 001008040201000000 0e02020202020e0000 040a11000000000000 000000000000001f00
60: 080402000000000000 00000e010f110f0000 1010161911111e0000 00000e1010110e0000
64: 01010d1311110f0000 00000e111f100e0000 0609081c0808080000 00000f1111110f010e
68: 101016191111110000 04000c0404040e0000 02000602020202120c 101012141814120000
6c: 0c04040404040e0000 00001a151515150000 000016191111110000 00000e1111110e0000
70: 00001e1111111e1010 00000f1111110f0101 000016191010100000 00000f100e011e0000
74: 08081c080809060000 0000111111130d0000 00001111110a040000 0000111115150a0000
78: 0000110a040a110000 0000111111110f010e 00001f0204081f0000 030404180404030000
7c: 040404040404040400 180404030404180000 000008150200000000 1f11111111111f0000
`;

function loadGlyphs(table: string): Uint8Array {
  const rows = new Uint8Array(GLYPH_COUNT * GLYPH_HEIGHT);
  let index = 0;
  for (const line of table.trim().split("\n")) {
    const [label, ...glyphs] = line.trim().split(/\s+/);
    if (label !== `${(FIRST_CODE + index).toString(16)}:`)
      throw new Error(`font table out of step at ${label}`);
    for (const hex of glyphs) {
      if (!/^[0-9a-f]{18}$/.test(hex)) throw new Error(`font table: bad glyph ${hex}`);
      for (let r = 0; r < GLYPH_HEIGHT; r++)
        rows[index * GLYPH_HEIGHT + r] = Number.parseInt(hex.slice(2 * r, 2 * r + 2), 16);
      index++;
    }
  }
  if (index !== GLYPH_COUNT) throw new Error(`font table has ${index} glyphs, expected ${GLYPH_COUNT}`);
  return rows;
}

const GLYPH_ROWS = loadGlyphs(GLYPH_TABLE);

function glyphIndex(codePoint: number): number {
  return codePoint >= FIRST_CODE && codePoint <= LAST_CODE ? codePoint - FIRST_CODE : BOX_INDEX;
}

/** The 9 row bitmaps of the glyph drawn for a code point (bit 4 = leftmost column). */
export function glyphRows(codePoint: number): Uint8Array {
  const i = glyphIndex(codePoint);
  return GLYPH_ROWS.subarray(i * GLYPH_HEIGHT, (i + 1) * GLYPH_HEIGHT);
}

/** Width in pixels of text at a scale: one cell per code point (not per UTF-16 unit). */
export function textWidth(text: string, scale = 1): number {
  let n = 0;
  for (const _ of text) n++;
  return n * CELL_WIDTH * scale;
}

/**
 * Draws text with its top-left cell corner at (x, y), each pixel of the font scaled to scale×scale.
 * With bg, the whole line box is painted first (so old text under it disappears); without, only glyph
 * pixels change. Clips to the framebuffer and to clip if given; returns the clipped line box, i.e. every
 * pixel that may have changed (empty when nothing is visible).
 */
export function drawText(
  fb: Framebuffer,
  x: number,
  y: number,
  text: string,
  fg: number,
  bg?: number,
  scale = 1,
  clip?: DemoRect,
): DemoRect {
  if (!Number.isSafeInteger(scale) || scale < 1)
    throw new RangeError(`drawText: scale ${scale} is not a positive integer`);
  const c = clipTo(fb, clip);
  const box = intersectRect(makeRect(x, y, textWidth(text, scale), CELL_HEIGHT * scale), c);
  if (isEmptyRect(box)) return box;
  if (bg !== undefined) fillRect(fb, box, bg, c);
  const px = pixelView(fb);
  const v = packRgb(fg);
  const cx0 = c.x;
  const cy0 = c.y;
  const cx1 = c.x + c.w;
  const cy1 = c.y + c.h;
  const advance = CELL_WIDTH * scale;
  let gx = x;
  for (const ch of text) {
    // Whole cells left or right of the clip cost nothing beyond the advance.
    if (gx + advance > cx0 && gx < cx1) {
      const rows = glyphRows(ch.codePointAt(0) ?? 0);
      for (let r = 0; r < GLYPH_HEIGHT; r++) {
        const bits = rows[r] ?? 0;
        if (bits === 0) continue;
        const py = y + (GLYPH_TOP + r) * scale;
        const y0 = Math.max(py, cy0);
        const y1 = Math.min(py + scale, cy1);
        if (y1 <= y0) continue;
        for (let col = 0; col < GLYPH_WIDTH; col++) {
          if ((bits & (0x10 >> col)) === 0) continue;
          const pxl = gx + col * scale;
          const x0 = Math.max(pxl, cx0);
          const x1 = Math.min(pxl + scale, cx1);
          if (x1 <= x0) continue;
          for (let yy = y0; yy < y1; yy++) px.fill(v, yy * fb.width + x0, yy * fb.width + x1);
        }
      }
    }
    gx += advance;
  }
  return box;
}
