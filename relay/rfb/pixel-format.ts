// PIXEL_FORMAT (rfbproto.rst "ServerInit", 16 bytes): parse, serialise, validate, and translate pixels
// between any two valid true-colour formats. The relay's own framebuffers use CANONICAL_FORMAT: 32 bpp,
// depth 24, little-endian, R at shift 0, G at 8, B at 16, i.e. bytes R,G,B,X in memory (noVNC's format).

import { PIXEL_FORMAT_LENGTH } from "./constants.ts";
import { RfbError } from "./errors.ts";

export interface PixelFormat {
  bitsPerPixel: number;
  depth: number;
  bigEndian: boolean;
  trueColour: boolean;
  redMax: number;
  greenMax: number;
  blueMax: number;
  redShift: number;
  greenShift: number;
  blueShift: number;
}

export const CANONICAL_FORMAT: Readonly<PixelFormat> = Object.freeze({
  bitsPerPixel: 32,
  depth: 24,
  bigEndian: false,
  trueColour: true,
  redMax: 255,
  greenMax: 255,
  blueMax: 255,
  redShift: 0,
  greenShift: 8,
  blueShift: 16,
});

/** Reads 16 bytes at off (padding ignored). Does not validate. */
export function readPixelFormat(b: Uint8Array, off = 0): PixelFormat {
  const dv = new DataView(b.buffer, b.byteOffset + off, PIXEL_FORMAT_LENGTH);
  return {
    bitsPerPixel: dv.getUint8(0),
    depth: dv.getUint8(1),
    bigEndian: dv.getUint8(2) !== 0,
    trueColour: dv.getUint8(3) !== 0,
    redMax: dv.getUint16(4),
    greenMax: dv.getUint16(6),
    blueMax: dv.getUint16(8),
    redShift: dv.getUint8(10),
    greenShift: dv.getUint8(11),
    blueShift: dv.getUint8(12),
  };
}

/** Writes 16 bytes at off, padding zeroed. */
export function writePixelFormat(pf: PixelFormat, out: Uint8Array, off = 0): void {
  const dv = new DataView(out.buffer, out.byteOffset + off, PIXEL_FORMAT_LENGTH);
  dv.setUint8(0, pf.bitsPerPixel);
  dv.setUint8(1, pf.depth);
  dv.setUint8(2, pf.bigEndian ? 1 : 0);
  dv.setUint8(3, pf.trueColour ? 1 : 0);
  dv.setUint16(4, pf.redMax);
  dv.setUint16(6, pf.greenMax);
  dv.setUint16(8, pf.blueMax);
  dv.setUint8(10, pf.redShift);
  dv.setUint8(11, pf.greenShift);
  dv.setUint8(12, pf.blueShift);
  dv.setUint8(13, 0);
  dv.setUint8(14, 0);
  dv.setUint8(15, 0);
}

function bitsOf(max: number): number {
  let n = 0;
  while (max > 0) {
    if ((max & 1) === 0) return -1;
    n++;
    max >>>= 1;
  }
  return n;
}

/**
 * Rejects formats a sane peer never sends (TigerVNC PixelFormat::isSane, CVE-2019-15695 class):
 * bpp ∈ {8,16,32}; 1 ≤ depth ≤ bpp; colour-mapped only at 8 bpp; each max = 2^n−1 with n ≥ 1;
 * shift + bits ≤ bpp; channels do not overlap; total channel bits ≤ depth.
 */
export function validatePixelFormat(pf: PixelFormat): void {
  const bad = (why: string): never => {
    throw new RfbError("BAD_PIXEL_FORMAT", why);
  };
  for (const v of [pf.depth, pf.redMax, pf.greenMax, pf.blueMax, pf.redShift, pf.greenShift, pf.blueShift]) {
    if (!Number.isInteger(v) || v < 0) bad(`field value ${v} is not a non-negative integer`);
  }
  if (pf.bitsPerPixel !== 8 && pf.bitsPerPixel !== 16 && pf.bitsPerPixel !== 32) {
    bad(`bits-per-pixel ${pf.bitsPerPixel}`);
  }
  if (pf.depth < 1 || pf.depth > pf.bitsPerPixel) bad(`depth ${pf.depth} with ${pf.bitsPerPixel} bpp`);
  if (!pf.trueColour) {
    if (pf.bitsPerPixel !== 8) bad("colour-mapped formats are 8 bpp only");
    return;
  }
  let used = 0;
  let total = 0;
  for (const [name, max, shift] of [
    ["red", pf.redMax, pf.redShift],
    ["green", pf.greenMax, pf.greenShift],
    ["blue", pf.blueMax, pf.blueShift],
  ] as const) {
    const bits = bitsOf(max);
    if (bits < 1) bad(`${name}-max ${max} is not 2^n-1`);
    if (shift + bits > pf.bitsPerPixel)
      bad(`${name} shift ${shift} + ${bits} bits exceeds ${pf.bitsPerPixel} bpp`);
    const mask = (2 ** bits - 1) * 2 ** shift;
    if ((used & mask) !== 0) bad(`${name} overlaps another channel`);
    used |= mask;
    total += bits;
  }
  if (total > pf.depth) bad(`channels use ${total} bits, depth is ${pf.depth}`);
}

export function bytesPerPixel(pf: PixelFormat): number {
  return pf.bitsPerPixel >>> 3;
}

export function samePixelFormat(a: PixelFormat, b: PixelFormat): boolean {
  return (
    a.bitsPerPixel === b.bitsPerPixel &&
    a.trueColour === b.trueColour &&
    (a.bigEndian === b.bigEndian || a.bitsPerPixel === 8) &&
    a.redMax === b.redMax &&
    a.greenMax === b.greenMax &&
    a.blueMax === b.blueMax &&
    a.redShift === b.redShift &&
    a.greenShift === b.greenShift &&
    a.blueShift === b.blueShift
  );
}

export function isCanonical(pf: PixelFormat): boolean {
  return samePixelFormat(pf, CANONICAL_FORMAT);
}

/** Packs 8-bit R,G,B into a pixel value of a true-colour format (channels scaled to each max). */
export function packPixel(pf: PixelFormat, r: number, g: number, b: number): number {
  const R = Math.round((r * pf.redMax) / 255);
  const G = Math.round((g * pf.greenMax) / 255);
  const B = Math.round((b * pf.blueMax) / 255);
  return ((R << pf.redShift) | (G << pf.greenShift) | (B << pf.blueShift)) >>> 0;
}

/** Writes one pixel value in the format's size and byte order. */
export function writePixel(pf: PixelFormat, out: Uint8Array, off: number, v: number): void {
  switch (pf.bitsPerPixel) {
    case 8:
      out[off] = v;
      return;
    case 16:
      if (pf.bigEndian) {
        out[off] = v >>> 8;
        out[off + 1] = v;
      } else {
        out[off] = v;
        out[off + 1] = v >>> 8;
      }
      return;
    default:
      if (pf.bigEndian) {
        out[off] = v >>> 24;
        out[off + 1] = v >>> 16;
        out[off + 2] = v >>> 8;
        out[off + 3] = v;
      } else {
        out[off] = v;
        out[off + 1] = v >>> 8;
        out[off + 2] = v >>> 16;
        out[off + 3] = v >>> 24;
      }
  }
}

/** Reads one pixel value in the format's size and byte order. */
export function readPixel(pf: PixelFormat, src: Uint8Array, off: number): number {
  switch (pf.bitsPerPixel) {
    case 8:
      return src[off]!;
    case 16:
      return pf.bigEndian ? (src[off]! << 8) | src[off + 1]! : src[off]! | (src[off + 1]! << 8);
    default:
      return pf.bigEndian
        ? ((src[off]! << 24) | (src[off + 1]! << 16) | (src[off + 2]! << 8) | src[off + 3]!) >>> 0
        : (src[off]! | (src[off + 1]! << 8) | (src[off + 2]! << 16) | (src[off + 3]! << 24)) >>> 0;
  }
}

/** Unpacks a true-colour pixel value to 8-bit R,G,B (each channel scaled up from its max). */
export function unpackPixel(pf: PixelFormat, v: number): [number, number, number] {
  const r = Math.floor(v / 2 ** pf.redShift) & pf.redMax;
  const g = Math.floor(v / 2 ** pf.greenShift) & pf.greenMax;
  const b = Math.floor(v / 2 ** pf.blueShift) & pf.blueMax;
  return [
    Math.round((r * 255) / pf.redMax),
    Math.round((g * 255) / pf.greenMax),
    Math.round((b * 255) / pf.blueMax),
  ];
}
