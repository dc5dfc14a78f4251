// Pixel translation between any two valid true-colour PIXEL_FORMATs (rfbproto.rst "PIXEL_FORMAT", "Raw
// encoding"): 8/16/32 bpp, either byte order, any channel max (2^n−1) and shift. The relay decodes a device's
// pixels to CANONICAL_FORMAT and encodes each viewer's SetPixelFormat from it; both directions come through
// here. Colour-mapped formats are not translated (they need the SetColourMapEntries palette, not a formula).
//
// Channel scaling: dst = round(src × dstMax / srcMax), halves rounded up. Every max is odd (2^n−1), so the
// exact quotient is never a half and the rounding direction never matters; the same rule as packPixel /
// unpackPixel in pixel-format.ts, so conversions to or from 8-bit channels agree with them exactly. Equal maxes
// give the identity; canonical→F→canonical is exact whenever F has ≥ 8 bits in every channel (the error of the
// first rounding, ≤ ½, shrinks by 255/max ≤ 1 on the way back and cannot move the second rounding).
//
// Paths, chosen once per pair of formats (`kind`, asserted by the tests so that each stays exercised):
//   copy          identical formats: a byte copy, so padding bits pass through unchanged;
//   byte-shuffle  32 bpp ↔ 32 bpp with 8-bit byte-aligned channels (canonical ↔ TigerVNC's BGRX, big-endian
//                 variants): move bytes, write the padding byte as zero;
//   byte-lut      source 32 bpp with 8-bit byte-aligned channels (e.g. canonical → RGB565 / BGR233): one
//                 lookup per channel byte;
//   pixel-lut     8 bpp source: one 256-entry table from whole source pixel to destination pixel;
//   general       anything else: read the pixel, mask and shift each channel through a per-channel table.
// Every path except copy writes padding bits (bits no channel uses) as zero.

import { checkedMul } from "../util/checked.ts";
import { RfbError } from "./errors.ts";
import {
  bytesPerPixel,
  CANONICAL_FORMAT,
  type PixelFormat,
  samePixelFormat,
  validatePixelFormat,
} from "./pixel-format.ts";

export type TranslatorKind = "copy" | "byte-shuffle" | "byte-lut" | "pixel-lut" | "general";

export interface PixelTranslator {
  readonly kind: TranslatorKind;
  readonly srcBytesPerPixel: number;
  readonly dstBytesPerPixel: number;
  /**
   * Translates count pixels from the start of src to the start of dst (pass subarrays for offsets). src and
   * dst must not overlap, except exactly in place when both formats have the same bytes per pixel.
   */
  translate(src: Uint8Array, dst: Uint8Array, count: number): void;
}

/** round(value × dstMax / srcMax), halves up (never reached: srcMax is odd); integer arithmetic, exact below 2^53. */
export function scaleChannel(value: number, srcMax: number, dstMax: number): number {
  return Math.floor((2 * value * dstMax + srcMax) / (2 * srcMax));
}

type Channel = { max: number; shift: number };

function channels(pf: PixelFormat): [Channel, Channel, Channel] {
  return [
    { max: pf.redMax, shift: pf.redShift },
    { max: pf.greenMax, shift: pf.greenShift },
    { max: pf.blueMax, shift: pf.blueShift },
  ];
}

/** Table from a source channel value to the destination channel value, already shifted into place. */
function channelTable(src: Channel, dst: Channel): Uint32Array {
  const t = new Uint32Array(src.max + 1);
  for (let v = 0; v <= src.max; v++) t[v] = scaleChannel(v, src.max, dst.max) * 2 ** dst.shift;
  return t;
}

/**
 * For a 32 bpp format whose three channels are 8 bits on byte boundaries: the byte offset of each channel
 * within a pixel in memory, and of the remaining (padding) byte. Otherwise null.
 */
function byteLayout(pf: PixelFormat): { channels: [number, number, number]; padding: number } | null {
  if (pf.bitsPerPixel !== 32) return null;
  const offsets: number[] = [];
  for (const c of channels(pf)) {
    if (c.max !== 255 || c.shift % 8 !== 0) return null;
    offsets.push(pf.bigEndian ? 3 - c.shift / 8 : c.shift / 8);
  }
  const padding = [0, 1, 2, 3].find((i) => !offsets.includes(i))!;
  return { channels: offsets as [number, number, number], padding };
}

type Reader = (src: Uint8Array, off: number) => number;
type Writer = (dst: Uint8Array, off: number, v: number) => void;

function reader(pf: PixelFormat): Reader {
  if (pf.bitsPerPixel === 8) return (s, o) => s[o]!;
  if (pf.bitsPerPixel === 16) {
    return pf.bigEndian ? (s, o) => (s[o]! << 8) | s[o + 1]! : (s, o) => s[o]! | (s[o + 1]! << 8);
  }
  return pf.bigEndian
    ? (s, o) => ((s[o]! << 24) | (s[o + 1]! << 16) | (s[o + 2]! << 8) | s[o + 3]!) >>> 0
    : (s, o) => (s[o]! | (s[o + 1]! << 8) | (s[o + 2]! << 16) | (s[o + 3]! << 24)) >>> 0;
}

function writer(pf: PixelFormat): Writer {
  if (pf.bitsPerPixel === 8) {
    return (d, o, v) => {
      d[o] = v;
    };
  }
  if (pf.bitsPerPixel === 16) {
    return pf.bigEndian
      ? (d, o, v) => {
          d[o] = v >>> 8;
          d[o + 1] = v;
        }
      : (d, o, v) => {
          d[o] = v;
          d[o + 1] = v >>> 8;
        };
  }
  return pf.bigEndian
    ? (d, o, v) => {
        d[o] = v >>> 24;
        d[o + 1] = v >>> 16;
        d[o + 2] = v >>> 8;
        d[o + 3] = v;
      }
    : (d, o, v) => {
        d[o] = v;
        d[o + 1] = v >>> 8;
        d[o + 2] = v >>> 16;
        d[o + 3] = v >>> 24;
      };
}

function checkFormat(pf: PixelFormat, which: string): void {
  validatePixelFormat(pf);
  if (!pf.trueColour) {
    throw new RfbError(
      "UNSUPPORTED",
      `${which} format is colour-mapped; only true-colour formats are translated`,
    );
  }
}

/** Chooses the path for srcPf → dstPf and precomputes its tables. Throws BAD_PIXEL_FORMAT or UNSUPPORTED. */
export function makeTranslator(srcPf: PixelFormat, dstPf: PixelFormat): PixelTranslator {
  checkFormat(srcPf, "source");
  checkFormat(dstPf, "destination");
  const sb = bytesPerPixel(srcPf);
  const db = bytesPerPixel(dstPf);
  const make = (kind: TranslatorKind, run: (src: Uint8Array, dst: Uint8Array, count: number) => void) => ({
    kind,
    srcBytesPerPixel: sb,
    dstBytesPerPixel: db,
    translate(src: Uint8Array, dst: Uint8Array, count: number): void {
      // Size arithmetic through the checked helper: a run longer than either buffer is refused before any write.
      checkedMul(count, sb, src.length, "source pixels");
      checkedMul(count, db, dst.length, "destination pixels");
      run(src, dst, count);
    },
  });

  if (samePixelFormat(srcPf, dstPf)) {
    return make("copy", (src, dst, count) => dst.set(src.subarray(0, count * sb)));
  }

  const sc = channels(srcPf);
  const dc = channels(dstPf);
  const write = writer(dstPf);
  const srcBytes = byteLayout(srcPf);
  const dstBytes = byteLayout(dstPf);

  if (srcBytes && dstBytes) {
    const [sr, sg, sbl] = srcBytes.channels;
    const [dr, dg, dbl] = dstBytes.channels;
    const dp = dstBytes.padding;
    return make("byte-shuffle", (src, dst, count) => {
      for (let i = 0, o = 0; i < count; i++, o += 4) {
        // Read all three before writing: the in-place case (same 4-byte stride) then stays correct.
        const r = src[o + sr]!;
        const g = src[o + sg]!;
        const b = src[o + sbl]!;
        dst[o + dr] = r;
        dst[o + dg] = g;
        dst[o + dbl] = b;
        dst[o + dp] = 0;
      }
    });
  }

  const [tr, tg, tb] = [0, 1, 2].map((i) => channelTable(sc[i]!, dc[i]!)) as [
    Uint32Array,
    Uint32Array,
    Uint32Array,
  ];

  if (srcBytes) {
    const [sr, sg, sbl] = srcBytes.channels;
    return make("byte-lut", (src, dst, count) => {
      for (let i = 0, s = 0, d = 0; i < count; i++, s += 4, d += db) {
        write(dst, d, (tr[src[s + sr]!]! | tg[src[s + sg]!]! | tb[src[s + sbl]!]!) >>> 0);
      }
    });
  }

  const [r, g, b] = sc;
  if (srcPf.bitsPerPixel === 8) {
    const table = new Uint32Array(256);
    for (let v = 0; v < 256; v++) {
      table[v] =
        (tr[(v >>> r.shift) & r.max]! | tg[(v >>> g.shift) & g.max]! | tb[(v >>> b.shift) & b.max]!) >>> 0;
    }
    return make("pixel-lut", (src, dst, count) => {
      for (let i = 0, d = 0; i < count; i++, d += db) write(dst, d, table[src[i]!]!);
    });
  }

  const read = reader(srcPf);
  return make("general", (src, dst, count) => {
    for (let i = 0, s = 0, d = 0; i < count; i++, s += sb, d += db) {
      const v = read(src, s);
      write(
        dst,
        d,
        (tr[(v >>> r.shift) & r.max]! | tg[(v >>> g.shift) & g.max]! | tb[(v >>> b.shift) & b.max]!) >>> 0,
      );
    }
  });
}

/**
 * Translators for recently used format pairs, so the one-shot helpers below do not rebuild tables per rect.
 * 32 pairs: a relay session uses two or three (device → canonical, canonical → each viewer's format).
 */
const TRANSLATOR_CACHE_SIZE = 32;
const cache = new Map<string, PixelTranslator>();

function formatKey(pf: PixelFormat): string {
  return [
    pf.bitsPerPixel,
    pf.depth,
    pf.bigEndian ? 1 : 0,
    pf.trueColour ? 1 : 0,
    pf.redMax,
    pf.greenMax,
    pf.blueMax,
    pf.redShift,
    pf.greenShift,
    pf.blueShift,
  ].join(",");
}

/** makeTranslator with a small cache keyed by the formats' values (formats are plain, mutable objects). */
export function translatorFor(srcPf: PixelFormat, dstPf: PixelFormat): PixelTranslator {
  const key = `${formatKey(srcPf)}>${formatKey(dstPf)}`;
  let t = cache.get(key);
  if (!t) {
    t = makeTranslator(srcPf, dstPf);
    if (cache.size >= TRANSLATOR_CACHE_SIZE) cache.delete(cache.keys().next().value!);
    cache.set(key, t);
  }
  return t;
}

/** Translates count pixels from srcPf to dstPf. */
export function convertPixels(
  src: Uint8Array,
  srcPf: PixelFormat,
  dst: Uint8Array,
  dstPf: PixelFormat,
  count: number,
): void {
  translatorFor(srcPf, dstPf).translate(src, dst, count);
}

/** Translates count pixels from srcPf to CANONICAL_FORMAT (R,G,B,X bytes). */
export function toCanonical(src: Uint8Array, srcPf: PixelFormat, dst: Uint8Array, count: number): void {
  translatorFor(srcPf, CANONICAL_FORMAT).translate(src, dst, count);
}

/** Translates count pixels from CANONICAL_FORMAT (R,G,B,X bytes) to dstPf. */
export function fromCanonical(src: Uint8Array, dst: Uint8Array, dstPf: PixelFormat, count: number): void {
  translatorFor(CANONICAL_FORMAT, dstPf).translate(src, dst, count);
}
