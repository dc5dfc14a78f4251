// The per-pixel work of the lossless Tight (7) encoder (rfb-codecs.md §2.8, §4.1), behind one interface
// with two implementations that agree byte for byte: the WASM codec core (wasm/assembly/encode-tight.ts,
// through createWasmTightKernels) and the idiomatic TS twin below (createTsTightKernels). The chooser that
// drives them rect by rect is relay/codec/tight-encoder.ts. Both read the canonical session framebuffer
// (R,G,B,X, X = 0, so a pixel's u32 is its colour R | G << 8 | B << 16) and never compress: the chooser
// deflates.
//
// Conventions both implementations keep (and the tests pin):
// - Palette order: most frequent colour first; equal counts in order of first appearance (row-major). So
//   index 0 of a 2-colour palette, the Mono bitmap's 0 bit, is the background (TigerVNC Palette.h keeps
//   its entries sorted by count too).
// - Analysis works on canonical colours, not the viewer's: the palette, and so the choice of Fill / Mono /
//   Indexed / full colour, is the same for every output format; only the TPIXEL bytes differ.
// - The solid search is TigerVNC's EncodeManager::findSolidRect, in one call per rect (see findSolid).
// - Caps: SOLID_MIN_AREA 2048 px, SOLID_BLOCK 16, MAX_SOLID_AREAS 8192 per call, palettes ≤ 256 colours,
//   MAX_TPIXELS 16384 colours per tpixels() call.

import type { CodecCore } from "../../wasm/loader.ts";
import { RfbError } from "../rfb/errors.ts";
import { type PixelFormat, packPixel, writePixel } from "../rfb/pixel-format.ts";
import type { Framebuffer } from "./framebuffer.ts";
import { checkedResult, copyOut } from "./wasm-kernels.ts";

/** Side of the blocks the solid search tests (TigerVNC SolidSearchBlock). */
export const SOLID_BLOCK = 16;
/** A solid area smaller than this is left to the sub-rect encoder, unless it is the whole search rect. */
export const SOLID_MIN_AREA = 2048;
/** Solid areas one findSolid call reports at most; the rest of the rect is then encoded normally. */
export const MAX_SOLID_AREAS = 8192;
/** Tight palettes hold at most 256 colours (U8 ncolours − 1). */
export const MAX_PALETTE = 256;
/** Colours one tpixels() call converts at most. */
export const MAX_TPIXELS = 16384;

/** A solid area: a rect of one canonical colour (R | G << 8 | B << 16). */
export interface SolidArea {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
  readonly colour: number;
}

export interface TightEncodeKernels {
  /**
   * The solid areas of a rect (TigerVNC EncodeManager::findSolidRect): 16×16 blocks scanned row-major from
   * the rect's corner; the first solid one is grown block-wise (widest rows first, the largest area wins),
   * dropped when under 2048 px unless it is the whole search rect, else grown pixel-wise (up, down, left,
   * right) and reported. The unscanned rest of the search rect is searched the same way, depth first: left
   * of the area below the block row, right of the area, below the area. Disjoint, inside the rect, in the
   * order found, at most MAX_SOLID_AREAS. Throws RECT_OUT_OF_BOUNDS.
   */
  findSolid(x: number, y: number, w: number, h: number): SolidArea[];
  /**
   * The rect's distinct canonical colours, most frequent first (ties: first appearance), when there are at
   * most maxColours (1…256); an empty array when there are more, or the rect is empty. Throws
   * RECT_OUT_OF_BOUNDS, or BAD_RECT for maxColours outside 1…256.
   */
  analyse(x: number, y: number, w: number, h: number, maxColours: number): Uint32Array;
  /** Copy filter: w × h TPIXELs of the output format, rows packed. */
  encodeFull(x: number, y: number, w: number, h: number): Uint8Array;
  /**
   * 2-colour palette filter: bit 0 = palette[0], bit 1 = palette[1] (palette[0] wins when they are equal),
   * MSB = leftmost pixel, each row padded to whole bytes (⌈w/8⌉ × h bytes). Throws BAD_RECT when the
   * palette is not 2 colours or a pixel is neither.
   */
  encodeMono(x: number, y: number, w: number, h: number, palette: ArrayLike<number>): Uint8Array;
  /**
   * Palette filter: one index byte per pixel (w × h); a repeated palette colour maps to its first index.
   * Throws BAD_RECT when the palette is not 1…256 colours or a pixel is not in it.
   */
  encodeIndexed(x: number, y: number, w: number, h: number, palette: ArrayLike<number>): Uint8Array;
  /** Canonical colours → TPIXELs of the output format, concatenated. Throws LIMIT_EXCEEDED past MAX_TPIXELS. */
  tpixels(colours: ArrayLike<number>): Uint8Array;
}

function badPalette(what: string): RfbError {
  return new RfbError("BAD_RECT", `tight ${what}`);
}

/** Argument rules both implementations check first, before the rect. */
function checkMonoPalette(palette: ArrayLike<number>): void {
  if (palette.length !== 2) throw badPalette(`mono: palette of ${palette.length} colours, need 2`);
}

function checkIndexedPalette(palette: ArrayLike<number>): void {
  if (palette.length < 1 || palette.length > MAX_PALETTE) {
    throw badPalette(`indexed: palette of ${palette.length} colours, need 1…${MAX_PALETTE}`);
  }
}

function checkMaxColours(maxColours: number): void {
  if (!Number.isInteger(maxColours) || maxColours < 1 || maxColours > MAX_PALETTE) {
    throw badPalette(`analysis: maxColours ${maxColours}, need 1…${MAX_PALETTE}`);
  }
}

function checkTpixelCount(n: number): void {
  if (n > MAX_TPIXELS) throw new RfbError("LIMIT_EXCEEDED", `tight: ${n} TPIXELs in one call`);
}

// ---------------------------------------------------------------------------------------------------------
// The TS twin.

/** What the TS twin's Tight kernels read: the session framebuffer and the current output format. */
export interface TsTightHost {
  readonly fb: Framebuffer;
  readonly outputFormat: PixelFormat;
}

/** TPIXEL (rfb-codecs.md §2.8): 3 bytes R,G,B for 32 bpp depth 24 with 8-bit channels, else the pixel. */
export function tpixelSize(pf: PixelFormat): number {
  return isCompactTpixel(pf) ? 3 : pf.bitsPerPixel / 8;
}

function isCompactTpixel(pf: PixelFormat): boolean {
  return (
    pf.bitsPerPixel === 32 &&
    pf.depth === 24 &&
    pf.redMax === 255 &&
    pf.greenMax === 255 &&
    pf.blueMax === 255
  );
}

/** Writes canonical colour c as a TPIXEL of pf at out[off]; returns its size. */
function writeTpixel(pf: PixelFormat, out: Uint8Array, off: number, c: number): number {
  const r = c & 0xff;
  const g = (c >>> 8) & 0xff;
  const b = (c >>> 16) & 0xff;
  if (isCompactTpixel(pf)) {
    out[off] = r;
    out[off + 1] = g;
    out[off + 2] = b;
    return 3;
  }
  writePixel(pf, out, off, packPixel(pf, r, g, b));
  return pf.bitsPerPixel / 8;
}

class TsTightKernels implements TightEncodeKernels {
  readonly #host: TsTightHost;

  constructor(host: TsTightHost) {
    this.#host = host;
  }

  /** The framebuffer as whole pixels, after the rect check (RECT_OUT_OF_BOUNDS, each dimension alone). */
  #pixels(x: number, y: number, w: number, h: number): { px: Uint32Array; width: number } {
    const fb = this.#host.fb;
    if (x < 0 || y < 0 || w < 0 || h < 0 || x > fb.width - w || y > fb.height - h) {
      throw new RfbError(
        "RECT_OUT_OF_BOUNDS",
        `tight: rect ${w}x${h} at ${x},${y} in ${fb.width}x${fb.height}`,
      );
    }
    return { px: fb.px, width: fb.width };
  }

  findSolid(x: number, y: number, w: number, h: number): SolidArea[] {
    const { px, width } = this.#pixels(x, y, w, h);
    const isSolid = (ax: number, ay: number, aw: number, ah: number, c: number): boolean => {
      for (let row = ay; row < ay + ah; row++) {
        const start = row * width + ax;
        for (let i = start; i < start + aw; i++) if (px[i] !== c) return false;
      }
      return true;
    };
    const found: SolidArea[] = [];
    const pending: Array<[number, number, number, number]> = [];
    const search = (sx: number, sy: number, sw: number, sh: number) => {
      if (sw > 0 && sh > 0) pending.push([sx, sy, sw, sh]);
    };
    search(x, y, w, h);
    while (pending.length > 0 && found.length < MAX_SOLID_AREAS) {
      const [rx, ry, rw, rh] = pending.pop()!;
      const rx2 = rx + rw;
      const ry2 = ry + rh;
      let area: SolidArea | undefined;
      let blockBottom = 0;
      for (let by = ry; by < ry2 && !area; by += SOLID_BLOCK) {
        const bh = Math.min(SOLID_BLOCK, ry2 - by);
        for (let bx = rx; bx < rx2; bx += SOLID_BLOCK) {
          const colour = px[by * width + bx]!;
          if (!isSolid(bx, by, Math.min(SOLID_BLOCK, rx2 - bx), bh, colour)) continue;
          // Block-wise: each block row as wide as it stays solid, never wider than the row above.
          let widthCap = rx2 - bx;
          let best = { w: 0, h: 0 };
          for (let dy = by; dy < ry2; dy += SOLID_BLOCK) {
            const dh = Math.min(SOLID_BLOCK, ry2 - dy);
            let dx = bx;
            while (dx < bx + widthCap) {
              const dw = Math.min(SOLID_BLOCK, bx + widthCap - dx);
              if (!isSolid(dx, dy, dw, dh, colour)) break;
              dx += dw;
            }
            if (dx === bx) break;
            widthCap = dx - bx;
            if (widthCap * (dy + dh - by) > best.w * best.h) best = { w: widthCap, h: dy + dh - by };
          }
          const whole = bx === rx && by === ry && best.w === rw && best.h === rh;
          if (!whole && best.w * best.h < SOLID_MIN_AREA) continue;
          let [ax, ay, aw, ah] = [bx, by, best.w, best.h];
          if (!whole) {
            // Pixel-wise: up, down, then left and right over the new height.
            let top = ay;
            while (top > ry && isSolid(ax, top - 1, aw, 1, colour)) top--;
            let bottom = ay + ah;
            while (bottom < ry2 && isSolid(ax, bottom, aw, 1, colour)) bottom++;
            let left = ax;
            while (left > rx && isSolid(left - 1, top, 1, bottom - top, colour)) left--;
            let right = ax + aw;
            while (right < rx2 && isSolid(right, top, 1, bottom - top, colour)) right++;
            [ax, ay, aw, ah] = [left, top, right - left, bottom - top];
          }
          area = { x: ax, y: ay, w: aw, h: ah, colour: colour & 0xffffff };
          blockBottom = by + bh;
          break;
        }
      }
      if (!area) continue;
      found.push(area);
      // Pushed in reverse so that left is searched first, then right, then below.
      const ax2 = area.x + area.w;
      const ay2 = area.y + area.h;
      search(rx, ay2, rw, ry2 - ay2);
      search(ax2, area.y, rx2 - ax2, area.h);
      search(rx, blockBottom, area.x - rx, ay2 - blockBottom);
    }
    return found;
  }

  analyse(x: number, y: number, w: number, h: number, maxColours: number): Uint32Array {
    checkMaxColours(maxColours);
    const { px, width } = this.#pixels(x, y, w, h);
    if (w === 0 || h === 0) return new Uint32Array(0);
    // colour → pixel count, in order of first appearance; counted a run at a time.
    const counts = new Map<number, number>();
    let cur = px[y * width + x]!;
    let run = 0;
    counts.set(cur, 0);
    for (let row = y; row < y + h; row++) {
      const start = row * width + x;
      for (let i = start; i < start + w; i++) {
        const v = px[i]!;
        if (v !== cur) {
          counts.set(cur, counts.get(cur)! + run);
          run = 0;
          if (!counts.has(v)) {
            if (counts.size === maxColours) return new Uint32Array(0);
            counts.set(v, 0);
          }
          cur = v;
        }
        run++;
      }
    }
    counts.set(cur, counts.get(cur)! + run);
    // Array.prototype.sort is stable: equal counts keep their order of first appearance.
    const sorted = [...counts].sort((a, b) => b[1] - a[1]);
    return Uint32Array.from(sorted, ([colour]) => colour & 0xffffff);
  }

  encodeFull(x: number, y: number, w: number, h: number): Uint8Array {
    this.#pixels(x, y, w, h);
    const { fb, outputFormat: pf } = this.#host;
    const out = new Uint8Array(w * h * tpixelSize(pf));
    const d = fb.data;
    let o = 0;
    for (let row = y; row < y + h; row++) {
      let s = (row * fb.width + x) * 4;
      if (isCompactTpixel(pf)) {
        for (let i = 0; i < w; i++, s += 4, o += 3) {
          out[o] = d[s]!;
          out[o + 1] = d[s + 1]!;
          out[o + 2] = d[s + 2]!;
        }
      } else {
        for (let i = 0; i < w; i++, s += 4) {
          o += writeTpixel(pf, out, o, d[s]! | (d[s + 1]! << 8) | (d[s + 2]! << 16));
        }
      }
    }
    return out;
  }

  encodeMono(x: number, y: number, w: number, h: number, palette: ArrayLike<number>): Uint8Array {
    checkMonoPalette(palette);
    const { px, width } = this.#pixels(x, y, w, h);
    const c0 = palette[0]! & 0xffffff;
    const c1 = palette[1]! & 0xffffff;
    const rowBytes = (w + 7) >> 3;
    const out = new Uint8Array(rowBytes * h);
    for (let row = 0; row < h; row++) {
      const start = (y + row) * width + x;
      for (let i = 0; i < w; i++) {
        const v = px[start + i]!;
        if (v === c0) continue;
        if (v !== c1) throw badPalette(`mono: pixel ${x + i},${y + row} is neither palette colour`);
        out[row * rowBytes + (i >> 3)]! |= 0x80 >> (i & 7);
      }
    }
    return out;
  }

  encodeIndexed(x: number, y: number, w: number, h: number, palette: ArrayLike<number>): Uint8Array {
    checkIndexedPalette(palette);
    const { px, width } = this.#pixels(x, y, w, h);
    const index = new Map<number, number>();
    for (let i = 0; i < palette.length; i++) {
      const c = palette[i]! & 0xffffff;
      if (!index.has(c)) index.set(c, i);
    }
    const out = new Uint8Array(w * h);
    let o = 0;
    for (let row = y; row < y + h; row++) {
      const start = row * width + x;
      for (let i = start; i < start + w; i++) {
        const idx = index.get(px[i]!);
        if (idx === undefined)
          throw badPalette(`indexed: pixel ${i - start + x},${row} is not in the palette`);
        out[o++] = idx;
      }
    }
    return out;
  }

  tpixels(colours: ArrayLike<number>): Uint8Array {
    checkTpixelCount(colours.length);
    const pf = this.#host.outputFormat;
    const out = new Uint8Array(colours.length * tpixelSize(pf));
    let o = 0;
    for (let i = 0; i < colours.length; i++) o += writeTpixel(pf, out, o, colours[i]! & 0xffffff);
    return out;
  }
}

export function createTsTightKernels(host: TsTightHost): TightEncodeKernels {
  return new TsTightKernels(host);
}

// ---------------------------------------------------------------------------------------------------------
// The WASM adapter: one export per call; inputs (palettes, colours) into WORK, results copied out of OUT
// once.

class WasmTightKernels implements TightEncodeKernels {
  readonly #core: CodecCore;

  constructor(core: CodecCore) {
    this.#core = core;
  }

  /** A u32 view of the first n words of a region (regions are 64 KiB-aligned). */
  #words(region: "OUT" | "WORK", n: number): Uint32Array {
    const bytes = this.#core.region(region);
    return new Uint32Array(bytes.buffer, bytes.byteOffset, n);
  }

  /** A fresh copy of the first n bytes of OUT that the caller owns (wasm-kernels.ts copyOut). */
  #copyOut(n: number): Uint8Array {
    return copyOut(this.#core.region("OUT"), n);
  }

  /** Writes colours into WORK, where the palette filters and tightTpixels read them. */
  #coloursIn(colours: ArrayLike<number>): number {
    const words = this.#words("WORK", colours.length);
    for (let i = 0; i < colours.length; i++) words[i] = colours[i]!;
    return colours.length;
  }

  findSolid(x: number, y: number, w: number, h: number): SolidArea[] {
    const n = checkedResult(this.#core.fn.tightFindSolid(x, y, w, h), "tight solid search");
    const words = this.#words("OUT", n * 5);
    const areas: SolidArea[] = new Array(n);
    for (let i = 0, o = 0; i < n; i++, o += 5) {
      areas[i] = {
        x: words[o]!,
        y: words[o + 1]!,
        w: words[o + 2]!,
        h: words[o + 3]!,
        colour: words[o + 4]!,
      };
    }
    return areas;
  }

  analyse(x: number, y: number, w: number, h: number, maxColours: number): Uint32Array {
    checkMaxColours(maxColours);
    const n = checkedResult(this.#core.fn.tightAnalyse(x, y, w, h, maxColours), "tight analysis");
    return this.#words("OUT", n).slice();
  }

  encodeFull(x: number, y: number, w: number, h: number): Uint8Array {
    const n = checkedResult(this.#core.fn.tightEncodeFull(x, y, w, h), "tight full colour");
    return this.#copyOut(n);
  }

  encodeMono(x: number, y: number, w: number, h: number, palette: ArrayLike<number>): Uint8Array {
    checkMonoPalette(palette);
    this.#coloursIn(palette);
    const n = checkedResult(this.#core.fn.tightEncodeMono(x, y, w, h), "tight mono");
    return this.#copyOut(n);
  }

  encodeIndexed(x: number, y: number, w: number, h: number, palette: ArrayLike<number>): Uint8Array {
    checkIndexedPalette(palette);
    const colours = this.#coloursIn(palette);
    const n = checkedResult(this.#core.fn.tightEncodeIndexed(x, y, w, h, colours), "tight indexed");
    return this.#copyOut(n);
  }

  tpixels(colours: ArrayLike<number>): Uint8Array {
    checkTpixelCount(colours.length);
    const n = checkedResult(this.#core.fn.tightTpixels(this.#coloursIn(colours)), "tight tpixels");
    return this.#copyOut(n);
  }
}

export function createWasmTightKernels(core: CodecCore): TightEncodeKernels {
  return new WasmTightKernels(core);
}
