// Raw (0) encoder (rfbproto.rst "Raw Encoding"): the FB_A rect → PIXEL[w × h] in the viewer's format in
// OUT, rows packed, X (padding) bytes 0 whatever the framebuffer holds. Three paths, chosen per call:
//   - swizzle: 32 bpp formats whose channels are whole bytes (canonical R,G,B,X for noVNC; TigerVNC's
//     little-endian R16 G8 B0 = bytes B,G,R,X; their big-endian counterparts X,B,G,R and X,R,G,B; any
//     other byte order): one i8x16.swizzle per 4 pixels, the padding byte zeroed by an out-of-range lane
//     index (rfb-codecs.md §7.3: ~10 Gpx/s, near memcpy);
//   - SIMD pack: every other format whose channel maxes are ≤ 255 (RGB565, BGR233, 8-bit channels off byte
//     boundaries): channels scaled with the host's rounding, exactly (see scaleLanes), 8 pixels per v128 in
//     u16 lanes for 8 and 16 bpp (narrowed and byte-swapped in registers), 4 per v128 in u32 lanes for
//     32 bpp;
//   - tables: anything else (channels wider than 8 bits), pixel by pixel through packOut.
// The Hextile encoder uses the same packers for its tiles. The TypeScript twin is relay/codec/raw.ts
// rawEncoder. Measured on a 1080p desktop (core only, no copy-out): swizzle ~10 Gpx/s, RGB565 1.4 Gpx/s
// (the per-pixel tables: 0.75 Gpx/s).
//
// WORK use during one call (offsets from WORK_PTR):
//   0     16 B      the swizzle pattern (prepareSwizzle; the Hextile encoder reads it too)
//   64    1 KiB     packRowsSimd: up to 256 packed u32 values of one row chunk (32 bpp SIMD pack only)

import { checkRect, fbPtr } from "./framebuffer";
import { OUT_PTR, WORK_PTR } from "./memory";
import { outIsBigEndian, outPixelBytes, packOut, writePixelOut } from "./pixel";

/** The output of a rect inside the framebuffer is at most 8 Mpx × 4 B: it always fits OUT. */
const SWIZZLE_PTR: usize = WORK_PTR;
const CHUNK_PTR: usize = WORK_PTR + 64;
/** A swizzle lane index ≥ 16 yields 0: the padding byte. */
const ZERO_LANE: u8 = 0x80;

// The output format as the SIMD packer sees it, derived from packOut by preparePack().
let rMax: i32 = 255;
let gMax: i32 = 255;
let bMax: i32 = 255;
let rShift: i32 = 0;
let gShift: i32 = 8;
let bShift: i32 = 16;
/** Every output value fits 16 bits (8 and 16 bpp): 8 pixels per v128 in u16 lanes. */
let pack16 = false;

/** Writes the rect in the output format to OUT; returns the byte count or E_OUT_OF_BOUNDS. */
export function encodeRaw(x: i32, y: i32, w: i32, h: i32): i32 {
  const bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  const ob = outPixelBytes();
  if (ob == 4 && prepareSwizzle()) swizzleRows(x, y, w, h);
  else if (!preparePack()) packRows(x, y, w, h, ob);
  else if (pack16) packRows16(x, y, w, h, ob);
  else packRowsSimd(x, y, w, h, ob);
  return w * h * ob;
}

/** Byte index (0…3) of an 8-bit channel at `bits` (0xff << 8k) inside a 32-bit value, or -1. */
function channelByte(bits: u32): i32 {
  for (let k = 0; k < 4; k++) if (bits == (<u32>0xff) << ((<u32>k) << 3)) return k;
  return -1;
}

/**
 * When every channel of the 32 bpp output format is a whole byte, writes the 16-byte pattern that turns
 * four canonical pixels into four output pixels to SWIZZLE_PTR and returns true. The channel positions
 * come from packOut itself (a full channel lands as 0xff at its shift), so no format field is re-derived.
 */
export function prepareSwizzle(): bool {
  const r = channelByte(packOut(0x0000ff));
  const g = channelByte(packOut(0x00ff00));
  const b = channelByte(packOut(0xff0000));
  if (r < 0 || g < 0 || b < 0) return false;
  const big = outIsBigEndian();
  for (let i = 0; i < 16; i++) store<u8>(SWIZZLE_PTR + <usize>i, ZERO_LANE);
  for (let px = 0; px < 4; px++) {
    const base = SWIZZLE_PTR + <usize>(px << 2);
    // Value byte k sits at memory byte k (little-endian) or 3 - k (big-endian).
    store<u8>(base + <usize>(big ? 3 - r : r), <u8>(px << 2));
    store<u8>(base + <usize>(big ? 3 - g : g), <u8>((px << 2) + 1));
    store<u8>(base + <usize>(big ? 3 - b : b), <u8>((px << 2) + 2));
  }
  return true;
}

/** The pattern prepareSwizzle() wrote. */
export function swizzlePattern(): v128 {
  return v128.load(SWIZZLE_PTR);
}

/** 4 px per swizzle, 16 px per iteration; the row's last 0–15 px through the same pattern one at a time. */
function swizzleRows(x: i32, y: i32, w: i32, h: i32): void {
  const pattern = swizzlePattern();
  const bytes = (<usize>w) << 2;
  const wide = bytes & ~(<usize>63);
  let d: usize = OUT_PTR;
  for (let row = 0; row < h; row++) {
    const s = fbPtr(x, y + row);
    const end = s + wide;
    let p = s;
    for (; p < end; p += 64, d += 64) {
      v128.store(d, i8x16.swizzle(v128.load(p), pattern));
      v128.store(d, i8x16.swizzle(v128.load(p, 16), pattern), 16);
      v128.store(d, i8x16.swizzle(v128.load(p, 32), pattern), 32);
      v128.store(d, i8x16.swizzle(v128.load(p, 48), pattern), 48);
    }
    const tail = s + bytes;
    for (; p + 16 <= tail; p += 16, d += 16) v128.store(d, i8x16.swizzle(v128.load(p), pattern));
    for (; p < tail; p += 4, d += 4) {
      store<u32>(d, i32x4.extract_lane(i8x16.swizzle(i32x4.splat(load<u32>(p)), pattern), 0));
    }
  }
}

/**
 * When every channel max of the output format is ≤ 255, records maxes and shifts for scaleLanes and
 * returns true. packOut(full channel) = max << shift; maxes are 2^n - 1, so the shift is its trailing zeros.
 */
export function preparePack(): bool {
  const r = packOut(0x0000ff);
  const g = packOut(0x00ff00);
  const b = packOut(0xff0000);
  rShift = <i32>ctz(r);
  gShift = <i32>ctz(g);
  bShift = <i32>ctz(b);
  rMax = <i32>(r >>> rShift);
  gMax = <i32>(g >>> gShift);
  bMax = <i32>(b >>> bShift);
  pack16 = (r | g | b) <= 0xffff;
  return rMax <= 255 && gMax <= 255 && bMax <= 255;
}

/**
 * round(v × max / 255) per i32 lane, v and max ≤ 255: the host's scaleChannel (relay/rfb/pixel-convert.ts)
 * exactly. With t = v·max + 127 ≤ 65 152, floor(t / 255) = (t + 1 + (t >> 8)) >> 8 for every t < 65 535,
 * and floor((v·max + 127) / 255) = floor((2·v·max + 255) / 510) because 255 is odd (no exact halves).
 */
function scaleLanes(v: v128, max: i32): v128 {
  const t = i32x4.add(i32x4.mul(v, i32x4.splat(max)), i32x4.splat(127));
  return i32x4.shr_u(i32x4.add(i32x4.add(t, i32x4.splat(1)), i32x4.shr_u(t, 8)), 8);
}

/** scaleLanes in u16 lanes (t ≤ 65 152 fits): 8 channel values at a time. */
function scaleLanes16(v: v128, max: i32): v128 {
  const t = i16x8.add(i16x8.mul(v, i16x8.splat(<i16>max)), i16x8.splat(127));
  return i16x8.shr_u(i16x8.add(i16x8.add(t, i16x8.splat(1)), i16x8.shr_u(t, 8)), 8);
}

/**
 * Eight canonical pixels (a: pixels 0–3, b: 4–7; X ignored) → eight output values in u16 lanes, when
 * preparePack() was true and pack16 holds.
 */
function packEight(a: v128, b: v128): v128 {
  // Channel k of the eight pixels into the low 8 bytes, then widened to u16 lanes.
  const r = i8x16.shuffle(a, b, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
  const g = i8x16.shuffle(a, b, 1, 5, 9, 13, 17, 21, 25, 29, 0, 0, 0, 0, 0, 0, 0, 0);
  const bl = i8x16.shuffle(a, b, 2, 6, 10, 14, 18, 22, 26, 30, 0, 0, 0, 0, 0, 0, 0, 0);
  const rs = i16x8.shl(scaleLanes16(i16x8.extend_low_i8x16_u(r), rMax), rShift);
  const gs = i16x8.shl(scaleLanes16(i16x8.extend_low_i8x16_u(g), gMax), gShift);
  const bs = i16x8.shl(scaleLanes16(i16x8.extend_low_i8x16_u(bl), bMax), bShift);
  return v128.or(v128.or(rs, gs), bs);
}

/** Four canonical pixels (u32 lanes, X ignored) → four output pixel values; preparePack() was true. */
function packLanes(c: v128): v128 {
  const m = i32x4.splat(0xff);
  const r = scaleLanes(v128.and(c, m), rMax);
  const g = scaleLanes(v128.and(i32x4.shr_u(c, 8), m), gMax);
  const b = scaleLanes(v128.and(i32x4.shr_u(c, 16), m), bMax);
  return v128.or(v128.or(i32x4.shl(r, rShift), i32x4.shl(g, gShift)), i32x4.shl(b, bShift));
}

/**
 * Writes n packed pixel values (u32 each, from src) as output pixels at dst: vectors of 4, 8 or 16 pixels
 * (narrowed to 16 or 8 bits, byte-swapped for big-endian), the rest one at a time. Returns the end.
 */
export function storePacked(dst: usize, src: usize, n: i32, ob: i32): usize {
  const big = outIsBigEndian();
  let i = 0;
  if (ob == 4) {
    if (!big) {
      memory.copy(dst, src, (<usize>n) << 2);
      return dst + ((<usize>n) << 2);
    }
    const swap = i8x16(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
    for (; i + 4 <= n; i += 4, dst += 16) {
      v128.store(dst, i8x16.swizzle(v128.load(src + ((<usize>i) << 2)), swap));
    }
  } else if (ob == 2) {
    const swap = big
      ? i8x16(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14)
      : i8x16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; i + 8 <= n; i += 8, dst += 16) {
      const s = src + ((<usize>i) << 2);
      const v = i16x8.narrow_i32x4_u(v128.load(s), v128.load(s, 16));
      v128.store(dst, i8x16.swizzle(v, swap));
    }
  } else {
    for (; i + 16 <= n; i += 16, dst += 16) {
      const s = src + ((<usize>i) << 2);
      const lo = i16x8.narrow_i32x4_u(v128.load(s), v128.load(s, 16));
      const hi = i16x8.narrow_i32x4_u(v128.load(s, 32), v128.load(s, 48));
      v128.store(dst, i8x16.narrow_i16x8_u(lo, hi));
    }
  }
  for (; i < n; i++, dst += <usize>ob) writePixelOut(dst, load<u32>(src + ((<usize>i) << 2)));
  return dst;
}

/** Packs w canonical pixels at src into u32 values at dst (4 per v128, the rest through packOut). */
export function packRow(dst: usize, src: usize, w: i32): void {
  let i = 0;
  if (pack16) {
    for (; i + 8 <= w; i += 8) {
      const s = src + ((<usize>i) << 2);
      const v = packEight(v128.load(s), v128.load(s, 16));
      v128.store(dst + ((<usize>i) << 2), i32x4.extend_low_i16x8_u(v));
      v128.store(dst + ((<usize>i) << 2), i32x4.extend_high_i16x8_u(v), 16);
    }
  }
  for (; i + 4 <= w; i += 4) {
    v128.store(dst + ((<usize>i) << 2), packLanes(v128.load(src + ((<usize>i) << 2))));
  }
  for (; i < w; i++) store<u32>(dst + ((<usize>i) << 2), packOut(load<u32>(src + ((<usize>i) << 2))));
}

/**
 * 16 and 8 bpp straight from the framebuffer: 8 (16) pixels per iteration through packEight, narrowed and
 * byte-swapped in registers; the row's last pixels through packOut.
 */
function packRows16(x: i32, y: i32, w: i32, h: i32, ob: i32): void {
  const big = outIsBigEndian();
  const swap = big
    ? i8x16(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14)
    : i8x16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  let d: usize = OUT_PTR;
  for (let row = 0; row < h; row++) {
    let s = fbPtr(x, y + row);
    const end = s + ((<usize>w) << 2);
    if (ob == 2) {
      for (; s + 32 <= end; s += 32, d += 16) {
        v128.store(d, i8x16.swizzle(packEight(v128.load(s), v128.load(s, 16)), swap));
      }
    } else {
      for (; s + 64 <= end; s += 64, d += 16) {
        const lo = packEight(v128.load(s), v128.load(s, 16));
        const hi = packEight(v128.load(s, 32), v128.load(s, 48));
        v128.store(d, i8x16.narrow_i16x8_u(lo, hi));
      }
    }
    for (; s < end; s += 4, d += <usize>ob) writePixelOut(d, packOut(load<u32>(s)));
  }
}

/** 32 bpp formats with channels off byte boundaries: rows in chunks of 256 pixels through CHUNK_PTR. */
function packRowsSimd(x: i32, y: i32, w: i32, h: i32, ob: i32): void {
  const chunk = CHUNK_PTR;
  let d: usize = OUT_PTR;
  for (let row = 0; row < h; row++) {
    const s = fbPtr(x, y + row);
    for (let i = 0; i < w; i += 256) {
      const n = min(256, w - i);
      packRow(chunk, s + ((<usize>i) << 2), n);
      d = storePacked(d, chunk, n, ob);
    }
  }
}

/** One pixel at a time through the output channel tables: channels wider than 8 bits. */
function packRows(x: i32, y: i32, w: i32, h: i32, ob: i32): void {
  let d: usize = OUT_PTR;
  for (let row = 0; row < h; row++) {
    let s = fbPtr(x, y + row);
    const end = s + ((<usize>w) << 2);
    for (; s < end; s += 4, d += <usize>ob) writePixelOut(d, packOut(load<u32>(s)));
  }
}
