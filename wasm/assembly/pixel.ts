// Pixel formats inside the codec core: the device's format (input: decoders read it and write canonical
// R,G,B,X into FB_A) and the viewer's format (output: encoders read canonical and write it). Both are set
// once per format change by the host (setInputFormat / setOutputFormat), which validated them first
// (relay/rfb/pixel-format.ts validatePixelFormat); the kernels call the inline readers below per pixel.
// Channel scaling is the host's rule exactly (relay/rfb/pixel-convert.ts scaleChannel): round(v·dst/src),
// so the TS twins and the core agree bit for bit. The framebuffer's X byte is always 0.
//
// CPIXEL (ZRLE, TRLE) and TPIXEL (Tight) are the compact pixels of rfbproto.rst / rfb-codecs.md §2.6, §2.8.

import { E_BAD_FORMAT } from "./errors";
import { PF_IN_LUT_PTR, PF_OUT_LUT_PTR } from "./memory";

// ---- input (device → framebuffer) ----
let inBytes: i32 = 4;
let inBigEndian: bool = false;
/** 32 bpp little-endian R0 G8 B16 with 8-bit channels: a pixel is its canonical value, masked. */
let inCanonical: bool = true;
/** 32 bpp, every channel 8 bits wide: channels are shifted out, no scaling. */
let in888: bool = true;
let inRMax: u32 = 255;
let inGMax: u32 = 255;
let inBMax: u32 = 255;
let inRShift: u32 = 0;
let inGShift: u32 = 8;
let inBShift: u32 = 16;
/** Bytes per input CPIXEL: 3 for the compact case, else the pixel size. */
let inCpixelBytes: i32 = 3;
/** Compact CPIXEL holds the most significant 3 bytes of the pixel value: shift it back up by 8. */
let inCpixelHigh: bool = false;
/** Bytes per input TPIXEL: 3 (R,G,B) for 32 bpp depth 24 with 8-bit channels, else the pixel size. */
let inTpixelBytes: i32 = 3;

// ---- output (framebuffer → viewer) ----
let outBytes: i32 = 4;
let outBigEndian: bool = false;
let outCanonical: bool = true;
let outCpixelBytes: i32 = 3;
let outCpixelHigh: bool = false;
let outTpixelBytes: i32 = 3;

/** round(v × dstMax / srcMax) as the host computes it (pixel-convert.ts scaleChannel). */
function scale(v: u64, srcMax: u64, dstMax: u64): u32 {
  return <u32>((2 * v * dstMax + srcMax) / (2 * srcMax));
}

function validFormat(
  bpp: i32,
  depth: i32,
  trueColour: i32,
  rMax: u32,
  gMax: u32,
  bMax: u32,
  maxShift: u32,
): bool {
  if (bpp != 8 && bpp != 16 && bpp != 32) return false;
  if (depth < 1 || depth > bpp || trueColour == 0) return false;
  if (rMax == 0 || gMax == 0 || bMax == 0) return false;
  return maxShift < <u32>bpp;
}

/** Compact CPIXEL rule (rfbproto.rst "ZRLE"): bpp 32, depth ≤ 24, all colour bits in the low or high 3 bytes. */
function cpixelKind(bpp: i32, depth: i32, rMax: u32, gMax: u32, bMax: u32, rS: u32, gS: u32, bS: u32): i32 {
  if (bpp != 32 || depth > 24) return 0;
  const bits = ((<u64>rMax) << rS) | ((<u64>gMax) << gS) | ((<u64>bMax) << bS);
  if (bits < 0x1000000) return 1; // fits in the least significant 3 bytes (preferred when both fit)
  if ((bits & 0xff) == 0) return 2; // fits in the most significant 3 bytes
  return 0;
}

/**
 * Sets the device's pixel format. Returns 0, or E_BAD_FORMAT for a format the kernels cannot read
 * (colour-mapped, bpp not 8/16/32, a shift past the pixel). Builds the 8/16 bpp table in PF_LUT.
 */
export function setInputFormat(
  bpp: i32,
  depth: i32,
  bigEndian: i32,
  trueColour: i32,
  rMax: u32,
  gMax: u32,
  bMax: u32,
  rShift: u32,
  gShift: u32,
  bShift: u32,
): i32 {
  if (!validFormat(bpp, depth, trueColour, rMax, gMax, bMax, max(rShift, max(gShift, bShift))))
    return E_BAD_FORMAT;
  inBytes = bpp >> 3;
  inBigEndian = bigEndian != 0;
  inRMax = rMax;
  inGMax = gMax;
  inBMax = bMax;
  inRShift = rShift;
  inGShift = gShift;
  inBShift = bShift;
  in888 = bpp == 32 && rMax == 255 && gMax == 255 && bMax == 255;
  inCanonical = in888 && !inBigEndian && rShift == 0 && gShift == 8 && bShift == 16;
  const kind = cpixelKind(bpp, depth, rMax, gMax, bMax, rShift, gShift, bShift);
  inCpixelBytes = kind == 0 ? inBytes : 3;
  inCpixelHigh = kind == 2;
  inTpixelBytes = bpp == 32 && depth == 24 && in888 ? 3 : inBytes;
  if (inBytes < 4) {
    const entries: u32 = inBytes == 1 ? 256 : 65536;
    for (let v: u32 = 0; v < entries; v++) store<u32>(PF_IN_LUT_PTR + ((<usize>v) << 2), scaleIn(v));
  }
  return 0;
}

/** A raw input pixel value to canonical by shifting and scaling (the table-free path). */
function scaleIn(v: u32): u32 {
  const r = scale((v >>> inRShift) & inRMax, inRMax, 255);
  const g = scale((v >>> inGShift) & inGMax, inGMax, 255);
  const b = scale((v >>> inBShift) & inBMax, inBMax, 255);
  return r | (g << 8) | (b << 16);
}

/** Bytes per input pixel (1, 2, 4). */
export function inPixelBytes(): i32 {
  return inBytes;
}

export function inCpixelSize(): i32 {
  return inCpixelBytes;
}

export function inTpixelSize(): i32 {
  return inTpixelBytes;
}

export function inIsCanonical(): bool {
  return inCanonical;
}

/** An input pixel value (already assembled from its bytes) → canonical. */
export function convertIn(v: u32): u32 {
  if (inBytes < 4) return load<u32>(PF_IN_LUT_PTR + ((<usize>v) << 2));
  if (in888)
    return ((v >>> inRShift) & 255) | (((v >>> inGShift) & 255) << 8) | (((v >>> inBShift) & 255) << 16);
  return scaleIn(v);
}

/** The input pixel at ptr (inPixelBytes() bytes, device byte order) → canonical R | G << 8 | B << 16. */
export function pixelIn(ptr: usize): u32 {
  if (inCanonical) return load<u32>(ptr) & 0xffffff;
  let v: u32;
  if (inBytes == 4) {
    v = load<u32>(ptr);
    if (inBigEndian) v = bswap<u32>(v);
  } else if (inBytes == 2) {
    v = <u32>load<u16>(ptr);
    if (inBigEndian) v = <u32>bswap<u16>(<u16>v);
  } else {
    v = <u32>load<u8>(ptr);
  }
  return convertIn(v);
}

/** The input CPIXEL at ptr (inCpixelSize() bytes) → canonical. */
export function cpixelIn(ptr: usize): u32 {
  if (inCpixelBytes != 3) return pixelIn(ptr);
  let v: u32 = inBigEndian
    ? ((<u32>load<u8>(ptr)) << 16) | ((<u32>load<u8>(ptr, 1)) << 8) | <u32>load<u8>(ptr, 2)
    : <u32>load<u16>(ptr) | ((<u32>load<u8>(ptr, 2)) << 16);
  if (inCanonical) return v;
  if (inCpixelHigh) v <<= 8;
  return convertIn(v);
}

/** The input TPIXEL at ptr (inTpixelSize() bytes) → canonical; the 3-byte form is R,G,B whatever the shifts. */
export function tpixelIn(ptr: usize): u32 {
  if (inTpixelBytes != 3) return pixelIn(ptr);
  return <u32>load<u16>(ptr) | ((<u32>load<u8>(ptr, 2)) << 16);
}

/**
 * Sets the viewer's pixel format (see setInputFormat). Builds the three channel tables: canonical 8-bit
 * channel value → that channel's bits, scaled and in place.
 */
export function setOutputFormat(
  bpp: i32,
  depth: i32,
  bigEndian: i32,
  trueColour: i32,
  rMax: u32,
  gMax: u32,
  bMax: u32,
  rShift: u32,
  gShift: u32,
  bShift: u32,
): i32 {
  if (!validFormat(bpp, depth, trueColour, rMax, gMax, bMax, max(rShift, max(gShift, bShift))))
    return E_BAD_FORMAT;
  outBytes = bpp >> 3;
  outBigEndian = bigEndian != 0;
  const is888 = bpp == 32 && rMax == 255 && gMax == 255 && bMax == 255;
  outCanonical = is888 && !outBigEndian && rShift == 0 && gShift == 8 && bShift == 16;
  const kind = cpixelKind(bpp, depth, rMax, gMax, bMax, rShift, gShift, bShift);
  outCpixelBytes = kind == 0 ? outBytes : 3;
  outCpixelHigh = kind == 2;
  outTpixelBytes = bpp == 32 && depth == 24 && is888 ? 3 : outBytes;
  for (let v: u32 = 0; v < 256; v++) {
    const p = PF_OUT_LUT_PTR + ((<usize>v) << 2);
    store<u32>(p, scale(v, 255, rMax) << rShift);
    store<u32>(p, scale(v, 255, gMax) << gShift, 1024);
    store<u32>(p, scale(v, 255, bMax) << bShift, 2048);
  }
  return 0;
}

export function outPixelBytes(): i32 {
  return outBytes;
}

export function outCpixelSize(): i32 {
  return outCpixelBytes;
}

export function outTpixelSize(): i32 {
  return outTpixelBytes;
}

export function outIsCanonical(): bool {
  return outCanonical;
}

export function outIsBigEndian(): bool {
  return outBigEndian;
}

/** Canonical R | G << 8 | B << 16 → the viewer's pixel value. */
export function packOut(c: u32): u32 {
  if (outCanonical) return c & 0xffffff;
  return (
    load<u32>(PF_OUT_LUT_PTR + ((<usize>c & 255) << 2)) |
    load<u32>(PF_OUT_LUT_PTR + (((<usize>c >>> 8) & 255) << 2), 1024) |
    load<u32>(PF_OUT_LUT_PTR + (((<usize>c >>> 16) & 255) << 2), 2048)
  );
}

/** Writes a packed viewer pixel value at ptr (outPixelBytes() bytes, viewer byte order). */
export function writePixelOut(ptr: usize, v: u32): void {
  if (outBytes == 4) store<u32>(ptr, outBigEndian ? bswap<u32>(v) : v);
  else if (outBytes == 2) store<u16>(ptr, outBigEndian ? bswap<u16>(<u16>v) : <u16>v);
  else store<u8>(ptr, <u8>v);
}

/** Writes canonical c as a viewer CPIXEL at ptr; returns its size. */
export function writeCpixelOut(ptr: usize, c: u32): i32 {
  const v = packOut(c);
  if (outCpixelBytes != 3) {
    writePixelOut(ptr, v);
    return outBytes;
  }
  const w = outCpixelHigh ? v >>> 8 : v;
  if (outBigEndian) {
    store<u8>(ptr, <u8>(w >>> 16));
    store<u8>(ptr, <u8>(w >>> 8), 1);
    store<u8>(ptr, <u8>w, 2);
  } else {
    store<u16>(ptr, <u16>w);
    store<u8>(ptr, <u8>(w >>> 16), 2);
  }
  return 3;
}

/** Writes canonical c as a viewer TPIXEL at ptr (3 bytes R,G,B in the compact case); returns its size. */
export function writeTpixelOut(ptr: usize, c: u32): i32 {
  if (outTpixelBytes != 3) {
    writePixelOut(ptr, packOut(c));
    return outBytes;
  }
  store<u16>(ptr, <u16>c);
  store<u8>(ptr, <u8>(c >>> 16), 2);
  return 3;
}
