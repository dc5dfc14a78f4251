// Tight (7) decoder kernels (rfbproto.rst "Tight Encoding", rfb-codecs.md §2.8): the host
// (relay/codec/tight.ts) parses the compression-control byte, the filter and the palette header, inflates
// the data on the right one of the connection's four zlib streams, and hands one kernel the filtered data
// in IN. Each kernel checks the rect and the exact input length before it writes, and writes only inside
// the rect. The TypeScript twins are tightCopyTs / tightPaletteTs / tightGradientTs in relay/codec/tight.ts.
//
// TPIXEL: 3 bytes R,G,B for 32 bpp depth 24 with 8-bit channels (the relay's own format, which it asks
// every device for, §9.2), else the device's PIXEL. The 3-byte form is the fast path of every kernel.
//
// WORK, while one of these kernels runs:
//   [0, 1 KiB)          PALETTE: up to 256 palette colours, canonical u32
//   [1 KiB, 1.25 KiB)   NIBBLES: 2-colour palette, 16 × 4 canonical pixels (one v128 per 4-bit index group)
//   [2 KiB, 2.75 KiB)   FWD: gradient, 3 × 256 B, a channel value in the device's range → 8-bit canonical
//   [3 KiB, 3.75 KiB)   INV: gradient, 3 × 256 B, 8-bit canonical → the channel value it came from
//   [4 KiB, 4 KiB + 4)  PROBE: one device pixel, for finding the channel widths
//   [4 KiB + 16, + 12)  MAXES: gradient, each channel's MAX (u32 R, G, B)
//   [8 KiB, 8 KiB + 4w) ROW: gradient, the previous row's channel values (u32 per column), sized from the
//                       checked w (≤ 16384, so ≤ 64 KiB): never a constant (LibVNCClient 5b270544 overflowed
//                       a fixed 2048-pixel row)

import { E_BAD_DATA, E_BAD_PALETTE, E_TRAILING, E_TRUNCATED } from "./errors";
import { checkInput, checkRect, fbPtr, framebufferWidth, rawRows } from "./framebuffer";
import { IN_PTR, WORK_PTR } from "./memory";
import { inPixelBytes, inTpixelSize, pixelIn, tpixelIn } from "./pixel";

const IN: usize = <usize>IN_PTR;
const PALETTE_PTR: usize = <usize>WORK_PTR;
const NIBBLES_PTR: usize = <usize>WORK_PTR + 1024;
const FWD_PTR: usize = <usize>WORK_PTR + 2048;
const INV_PTR: usize = <usize>WORK_PTR + 3072;
const PROBE_PTR: usize = <usize>WORK_PTR + 4096;
const MAXES_PTR: usize = <usize>WORK_PTR + 4096 + 16;
const ROW_PTR: usize = <usize>WORK_PTR + 8192;

/** 3-byte TPIXELs → R,G,B,0: each 4-pixel group (12 bytes) spread to 16, lane 0x80 (out of range) = 0. */
const SPREAD_RGB = v128(0, 1, 2, -128, 3, 4, 5, -128, 6, 7, 8, -128, 9, 10, 11, -128);

/** 0, E_TRUNCATED or E_TRAILING: the input must be exactly `need` bytes (i64: w × h × 4 cannot wrap). */
function exactLength(inLen: i32, need: i64): i32 {
  if (<i64>inLen < need) return E_TRUNCATED;
  if (<i64>inLen > need) return E_TRAILING;
  return 0;
}

// ---- copy filter ----

/**
 * Basic compression, copy filter: IN holds w × h TPIXELs, rows packed. Returns 0, or E_OUT_OF_BOUNDS,
 * E_TOO_LARGE, E_TRUNCATED, E_TRAILING.
 */
export function decodeTightCopy(x: i32, y: i32, w: i32, h: i32, inLen: i32): i32 {
  let bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  bad = checkInput(inLen);
  if (bad < 0) return bad;
  const tp = inTpixelSize();
  bad = exactLength(inLen, <i64>w * <i64>h * <i64>tp);
  if (bad < 0) return bad;
  if (tp === 3) copyRgbRows(x, y, w, h, IN);
  else rawRows(x, y, w, h, IN); // a TPIXEL that is a PIXEL: exactly Raw
  return 0;
}

/**
 * Packed R,G,B rows at src → the rect: 4 pixels per swizzle. The 16-byte load of the last group of a row
 * reads up to 4 bytes past it (the next row, or past inLen inside IN, whose slack covers it): those lanes
 * are dropped by the swizzle.
 */
function copyRgbRows(x: i32, y: i32, w: i32, h: i32, src: usize): void {
  const rowIn = <usize>w * 3;
  for (let row = 0; row < h; row++) {
    let s = src + <usize>row * rowIn;
    let d = fbPtr(x, y + row);
    let i = 0;
    for (; i + 16 <= w; i += 16, s += 48, d += 64) {
      v128.store(d, i8x16.swizzle(v128.load(s), SPREAD_RGB));
      v128.store(d, i8x16.swizzle(v128.load(s, 12), SPREAD_RGB), 16);
      v128.store(d, i8x16.swizzle(v128.load(s, 24), SPREAD_RGB), 32);
      v128.store(d, i8x16.swizzle(v128.load(s, 36), SPREAD_RGB), 48);
    }
    for (; i + 4 <= w; i += 4, s += 12, d += 16) v128.store(d, i8x16.swizzle(v128.load(s), SPREAD_RGB));
    for (; i < w; i++, s += 3, d += 4) store<u32>(d, <u32>load<u16>(s) | ((<u32>load<u8>(s, 2)) << 16));
  }
}

// ---- palette filter ----

/**
 * Basic compression, palette filter: IN holds `colours` TPIXELs (2…256), then the indices: 1 bit per pixel,
 * most significant bit leftmost, every row starting on a byte, for 2 colours; else 1 byte per pixel. Every
 * index is checked against the palette before the first write. Returns 0, or E_OUT_OF_BOUNDS, E_TOO_LARGE,
 * E_BAD_PALETTE (a palette size outside 2…256, an index ≥ colours), E_TRUNCATED, E_TRAILING.
 */
export function decodeTightPalette(x: i32, y: i32, w: i32, h: i32, colours: i32, inLen: i32): i32 {
  let bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  bad = checkInput(inLen);
  if (bad < 0) return bad;
  if (colours < 2 || colours > 256) return E_BAD_PALETTE;
  const tp = inTpixelSize();
  const paletteBytes = colours * tp;
  const rowBytes: i64 = colours === 2 ? <i64>((w + 7) >> 3) : <i64>w;
  bad = exactLength(inLen, <i64>paletteBytes + rowBytes * <i64>h);
  if (bad < 0) return bad;
  const indices = IN + <usize>paletteBytes;
  if (colours > 2 && colours < 256 && maxByte(indices, w * h) >= <u32>colours) return E_BAD_PALETTE;
  for (let i = 0; i < colours; i++) {
    store<u32>(PALETTE_PTR + ((<usize>i) << 2), tpixelIn(IN + <usize>(i * tp)));
  }
  if (colours === 2) monoRows(x, y, w, h, indices);
  else indexedRows(x, y, w, h, indices);
  return 0;
}

/** The largest of n bytes at p (16 at a time). Only called for byte indices, so n = w × h. */
function maxByte(p: usize, n: i32): u32 {
  let acc = i8x16.splat(0);
  let i = 0;
  for (; i + 64 <= n; i += 64) {
    const a = i8x16.max_u(v128.load(p + <usize>i), v128.load(p + <usize>i, 16));
    const b = i8x16.max_u(v128.load(p + <usize>i, 32), v128.load(p + <usize>i, 48));
    acc = i8x16.max_u(acc, i8x16.max_u(a, b));
  }
  for (; i + 16 <= n; i += 16) acc = i8x16.max_u(acc, v128.load(p + <usize>i));
  // Fold 16 lanes to 1: max with the upper half, then the upper quarter, and so on.
  acc = i8x16.max_u(acc, i8x16.shuffle(acc, acc, 8, 9, 10, 11, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0));
  acc = i8x16.max_u(acc, i8x16.shuffle(acc, acc, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  acc = i8x16.max_u(acc, i8x16.shuffle(acc, acc, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  acc = i8x16.max_u(acc, i8x16.shuffle(acc, acc, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  let m = <u32>i8x16.extract_lane_u(acc, 0);
  for (; i < n; i++) m = max(m, <u32>load<u8>(p + <usize>i));
  return m;
}

/** 1 byte per pixel through PALETTE, 4 pixels per step. */
function indexedRows(x: i32, y: i32, w: i32, h: i32, src: usize): void {
  let s = src;
  for (let row = 0; row < h; row++) {
    let d = fbPtr(x, y + row);
    const end = s + <usize>w;
    for (; s + 4 <= end; s += 4, d += 16) {
      const q = load<u32>(s);
      store<u32>(d, load<u32>(PALETTE_PTR + ((<usize>q & 255) << 2)));
      store<u32>(d, load<u32>(PALETTE_PTR + (((<usize>q >> 8) & 255) << 2)), 4);
      store<u32>(d, load<u32>(PALETTE_PTR + (((<usize>q >> 16) & 255) << 2)), 8);
      store<u32>(d, load<u32>(PALETTE_PTR + ((<usize>q >> 24) << 2)), 12);
    }
    for (; s < end; s++, d += 4) store<u32>(d, load<u32>(PALETTE_PTR + ((<usize>load<u8>(s)) << 2)));
  }
}

/**
 * 2 colours, 1 bit per pixel: a 16-entry table turns each 4-bit group into 4 pixels (one v128), so a full
 * byte is two loads and two stores. The row's last byte holds w % 8 pixels in its high bits.
 */
function monoRows(x: i32, y: i32, w: i32, h: i32, src: usize): void {
  const c0 = load<u32>(PALETTE_PTR);
  const c1 = load<u32>(PALETTE_PTR, 4);
  for (let n = 0; n < 16; n++) {
    const e = NIBBLES_PTR + ((<usize>n) << 4);
    store<u32>(e, n & 8 ? c1 : c0);
    store<u32>(e, n & 4 ? c1 : c0, 4);
    store<u32>(e, n & 2 ? c1 : c0, 8);
    store<u32>(e, n & 1 ? c1 : c0, 12);
  }
  const full = w >> 3;
  const rest = w & 7;
  let s = src;
  for (let row = 0; row < h; row++) {
    let d = fbPtr(x, y + row);
    for (let i = 0; i < full; i++, s++, d += 32) {
      const b = <usize>load<u8>(s);
      v128.store(d, v128.load(NIBBLES_PTR + ((b >> 4) << 4)));
      v128.store(d, v128.load(NIBBLES_PTR + ((b & 15) << 4)), 16);
    }
    if (rest !== 0) {
      const b = <u32>load<u8>(s);
      s++;
      for (let k = 0; k < rest; k++, d += 4) store<u32>(d, (b >> (7 - k)) & 1 ? c1 : c0);
    }
  }
}

// ---- gradient filter ----

/**
 * Basic compression, gradient filter (bpp 16 or 32): IN holds w × h TPIXELs, each channel the difference
 * D = V − P (mod MAX + 1) from the prediction P = V[x−1] + V[y−1] − V[x−1, y−1] clamped to [0, MAX], where
 * pixels outside the rect count as 0. Returns 0, or E_OUT_OF_BOUNDS, E_TOO_LARGE, E_BAD_DATA (8 bpp: the
 * filter is not allowed there), E_TRUNCATED, E_TRAILING. An empty rect writes nothing and touches no row
 * buffer (TigerVNC CVE-2019-15693 was w = 0).
 */
export function decodeTightGradient(x: i32, y: i32, w: i32, h: i32, inLen: i32): i32 {
  let bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  bad = checkInput(inLen);
  if (bad < 0) return bad;
  if (inPixelBytes() === 1) return E_BAD_DATA;
  const tp = inTpixelSize();
  bad = exactLength(inLen, <i64>w * <i64>h * <i64>tp);
  if (bad < 0) return bad;
  if (w === 0 || h === 0) return 0;
  if (tp === 3) gradientRgb(x, y, w, h);
  else gradientPixels(x, y, w, h, tp);
  return 0;
}

function clampPrediction(p: i32, maxValue: i32): i32 {
  return min(max(p, 0), maxValue);
}

/**
 * 3-byte TPIXELs: every channel 8 bits, and V is exactly the canonical byte, so the previous row is the
 * framebuffer row above (already written by this call) and needs no buffer. One pixel's three channels
 * are lanes 0–2 of an i16x8 (lane 3 carries the next TPIXEL's first byte, masked off when stored): the
 * left-to-right dependency is one chain of six lane-wise ops per pixel. Row 0 has no row above:
 * P = V[x−1], a running sum. The 4-byte load of the last TPIXEL reads one byte past it, inside IN.
 */
function gradientRgb(x: i32, y: i32, w: i32, h: i32): void {
  const stride = (<usize>framebufferWidth()) << 2;
  const zero = i16x8.splat(0);
  const top = i16x8.splat(255);
  let s = IN;
  let d = fbPtr(x, y);
  let v = zero;
  for (let i = 0; i < w; i++, s += 3, d += 4) {
    v = v128.and(i16x8.add(v, i16x8.extend_low_i8x16_u(v128.load32_zero(s))), top);
    store<u32>(d, i32x4.extract_lane(i8x16.narrow_i16x8_u(v, v), 0) & 0xffffff);
  }
  for (let row = 1; row < h; row++) {
    d = fbPtr(x, y + row);
    let left = zero;
    let upLeft = zero;
    for (let i = 0; i < w; i++, s += 3, d += 4) {
      const up = i16x8.extend_low_i8x16_u(v128.load32_zero(d - stride));
      const p = i16x8.min_s(i16x8.max_s(i16x8.sub(i16x8.add(left, up), upLeft), zero), top);
      left = v128.and(i16x8.add(i16x8.extend_low_i8x16_u(v128.load32_zero(s)), p), top);
      upLeft = up;
      store<u32>(d, i32x4.extract_lane(i8x16.narrow_i16x8_u(left, left), 0) & 0xffffff);
    }
  }
}

/**
 * Channel widths of the input format, found through pixelIn (pixel.ts keeps the shifts and maxes to
 * itself): one device pixel per bit with only that bit set; the canonical channel it lights up owns it.
 * Byte positions rather than value bits, so either byte order works. Exact for channels of up to 8 bits,
 * every format a viewer or device uses: the lowest bit of a c-bit channel converts to round(255 / (2^c − 1))
 * ≥ 1. A wider channel's low bits convert to 0 and it would be seen as 8 bits wide; the host decodes such
 * formats itself (relay/codec/tight.ts decodeTightBody). Fills MAXES, FWD and INV.
 */
function probeChannels(bytes: i32): void {
  let nr = 0;
  let ng = 0;
  let nb = 0;
  for (let j = 0; j < bytes; j++) {
    for (let k = 0; k < 8; k++) {
      store<u32>(PROBE_PTR, 0);
      store<u8>(PROBE_PTR + <usize>j, <u8>((<u32>1) << (<u32>k)));
      const c = pixelIn(PROBE_PTR);
      if (c & 0xff) nr++;
      if (c & 0xff00) ng++;
      if (c & 0xff0000) nb++;
    }
  }
  channelTables(0, (1 << min(nr, 8)) - 1);
  channelTables(1, (1 << min(ng, 8)) - 1);
  channelTables(2, (1 << min(nb, 8)) - 1);
}

/**
 * MAXES[c] = maxValue; FWD[c][v] = round(v × 255 / maxValue) (pixel.ts scale, the host's scaleChannel);
 * INV[c] its inverse (0 where no channel value lands).
 */
function channelTables(c: i32, maxValue: i32): void {
  const fwd = FWD_PTR + ((<usize>c) << 8);
  const inv = INV_PTR + ((<usize>c) << 8);
  memory.fill(inv, 0, 256);
  const m = <u32>max(maxValue, 1);
  store<u32>(MAXES_PTR + ((<usize>c) << 2), m);
  for (let v: u32 = 0; v <= m; v++) {
    const canon = (2 * v * 255 + m) / (2 * m);
    store<u8>(fwd + <usize>v, <u8>canon);
    store<u8>(inv + <usize>canon, <u8>v);
  }
}

/**
 * TPIXELs that are PIXELs (16 or 32 bpp): channel values come from pixelIn through INV, the arithmetic runs
 * in each channel's own range [0, MAX], and the result goes to canonical through FWD. ROW keeps the
 * previous row's channel values, one u32 (R | G << 8 | B << 16) per column, updated in place.
 */
function gradientPixels(x: i32, y: i32, w: i32, h: i32, tp: i32): void {
  probeChannels(tp);
  const mr = <i32>load<u32>(MAXES_PTR);
  const mg = <i32>load<u32>(MAXES_PTR, 4);
  const mb = <i32>load<u32>(MAXES_PTR, 8);
  memory.fill(ROW_PTR, 0, (<usize>w) << 2);
  let s = IN;
  for (let row = 0; row < h; row++) {
    let d = fbPtr(x, y + row);
    let lr = 0;
    let lg = 0;
    let lb = 0;
    let ulr = 0;
    let ulg = 0;
    let ulb = 0;
    let u = ROW_PTR;
    for (let i = 0; i < w; i++, s += <usize>tp, d += 4, u += 4) {
      const c = pixelIn(s);
      const up = load<u32>(u);
      const ur = <i32>(up & 255);
      const ug = <i32>((up >> 8) & 255);
      const ub = <i32>((up >> 16) & 255);
      lr = (<i32>load<u8>(INV_PTR + <usize>(c & 255)) + clampPrediction(lr + ur - ulr, mr)) & mr;
      lg = (<i32>load<u8>(INV_PTR + 256 + <usize>((c >> 8) & 255)) + clampPrediction(lg + ug - ulg, mg)) & mg;
      lb =
        (<i32>load<u8>(INV_PTR + 512 + <usize>((c >> 16) & 255)) + clampPrediction(lb + ub - ulb, mb)) & mb;
      ulr = ur;
      ulg = ug;
      ulb = ub;
      store<u32>(u, <u32>(lr | (lg << 8) | (lb << 16)));
      store<u32>(
        d,
        <u32>load<u8>(FWD_PTR + <usize>lr) |
          ((<u32>load<u8>(FWD_PTR + 256 + <usize>lg)) << 8) |
          ((<u32>load<u8>(FWD_PTR + 512 + <usize>lb)) << 16),
      );
    }
  }
}
