// Tight (7) encoder kernels (rfb-codecs.md §2.8, §4.1): the per-pixel work of the lossless Tight encoder,
// driven rect by rect by relay/codec/tight-encoder.ts and mirrored byte for byte by the TS twin in
// relay/codec/tight-encode-kernels.ts. Everything reads the canonical framebuffer in FB_A (X byte always 0,
// so a pixel's u32 is its colour) and writes into OUT; nothing is compressed here (the host deflates).
//
//   tightFindSolid     the whole solid-area search of one rect in one call (TigerVNC EncodeManager style)
//   tightAnalyse       palette of a rect up to maxColours, most frequent colour first
//   tightEncodeFull    copy filter: TPIXELs, SIMD shuffle for the 3-byte R,G,B case
//   tightEncodeMono    2-colour palette filter: 1 bit per pixel, rows byte-aligned, MSB = leftmost
//   tightEncodeIndexed palette filter: 1 byte per pixel
//   tightTpixels       canonical colours → TPIXELs (Fill colours, palettes)
//
// WORK layout (each kernel uses it only during its own call; the host writes COLOURS_IN just before):
//   [0, 64 KiB)        COLOURS_IN: colours from the host (the palette for Mono/Indexed, tightTpixels input)
//   [64, 72 KiB)       HASH: 1024 slots × (u32 colour, u32 index + 1; 0 = empty), linear probing
//   [72, 73 KiB)       PAL_COLOURS: palette colours in order of first appearance (tightAnalyse)
//   [73, 74 KiB)       PAL_COUNTS: pixels per palette entry (tightAnalyse)
//   [74, 75 KiB)       PAL_ORDER: palette entries sorted by count (tightAnalyse)
//   [75, 75.25 KiB)    REVERSE: byte → its bits reversed (tightEncodeMono)
//   [128 KiB, 1 MiB)   SOLID_STACK: pending search rects of tightFindSolid, 4 × u32 each

import { E_BAD_PALETTE, E_TOO_LARGE } from "./errors";
import { checkRect, fbPtr } from "./framebuffer";
import { OUT_PTR, WORK_PTR } from "./memory";
import { outTpixelSize, writeTpixelOut } from "./pixel";

/** Side of the blocks the solid search tests (TigerVNC SolidSearchBlock). */
export const SOLID_BLOCK = 16;
/** A solid area smaller than this is left to the sub-rect encoder, unless it is the whole search rect. */
export const SOLID_MIN_AREA = 2048;
/** Solid areas one tightFindSolid call reports at most; the rest of the rect is then encoded normally. */
export const MAX_SOLID_AREAS = 8192;
/** Tight palettes hold 2…256 colours (rfb-codecs.md §2.8: U8 ncolours − 1). */
export const MAX_PALETTE = 256;
/** Colours one tightTpixels call converts at most (COLOURS_IN holds 64 KiB). */
export const MAX_TPIXELS = 16384;

const OUT: usize = <usize>OUT_PTR;
const WORK: usize = <usize>WORK_PTR;
const COLOURS_IN: usize = WORK;
const HASH: usize = WORK + 64 * 1024;
const HASH_SLOTS: u32 = 1024;
const HASH_BYTES: usize = <usize>HASH_SLOTS * 8;
const PAL_COLOURS: usize = WORK + 72 * 1024;
const PAL_COUNTS: usize = WORK + 73 * 1024;
const PAL_ORDER: usize = WORK + 74 * 1024;
const REVERSE: usize = WORK + 75 * 1024;
const SOLID_STACK: usize = WORK + 128 * 1024;
// Each area found pops one search rect and pushes at most three: ≤ 2 × MAX_SOLID_AREAS + 1 entries of 16 B
// (256 KiB) fit the 896 KiB left in WORK.

// ---- palette hash (shared by analysis and the palette filters) ----

/** Fibonacci hashing of a 24-bit colour to one of the 1024 slots. */
function slotOf(c: u32): usize {
  return HASH + ((<usize>((c * 0x9e3779b1) >>> 22)) << 3);
}

function nextSlot(s: usize): usize {
  const n = s + 8;
  return n == HASH + HASH_BYTES ? HASH : n;
}

/** Index of colour c in the hash, or -1. */
function hashLookup(c: u32): i32 {
  let s = slotOf(c);
  let idx1 = load<u32>(s, 4);
  while (idx1 != 0) {
    if (load<u32>(s) == c) return <i32>idx1 - 1;
    s = nextSlot(s);
    idx1 = load<u32>(s, 4);
  }
  return -1;
}

/** Adds colour c with index idx; c must not be present. At most 256 entries in 1024 slots: never full. */
function hashInsert(c: u32, idx: i32): void {
  let s = slotOf(c);
  while (load<u32>(s, 4) != 0) s = nextSlot(s);
  store<u32>(s, c);
  store<u32>(s, <u32>idx + 1, 4);
}

/** Fills the hash from the n colours at COLOURS_IN; a repeated colour keeps its first index. */
function hashPalette(n: i32): void {
  memory.fill(HASH, 0, HASH_BYTES);
  for (let i = 0; i < n; i++) {
    const c = load<u32>(COLOURS_IN + ((<usize>i) << 2)) & 0xffffff;
    if (hashLookup(c) < 0) hashInsert(c, i);
  }
}

// ---- solid-area search ----

/** Whether every pixel of the rect (inside the framebuffer, w, h ≥ 1) equals c. Exits at the first row that differs. */
function isSolid(x: i32, y: i32, w: i32, h: i32, c: u32): bool {
  const v = i32x4.splat(c);
  const rowBytes = (<usize>w) << 2;
  for (let row = 0; row < h; row++) {
    let p = fbPtr(x, y + row);
    const end = p + rowBytes;
    let diff = i32x4.splat(0);
    for (; p + 16 <= end; p += 16) diff = v128.or(diff, v128.xor(v128.load(p), v));
    if (v128.any_true(diff)) return false;
    for (; p < end; p += 4) if (load<u32>(p) != c) return false;
  }
  return true;
}

// The area being built by the search: globals, so the helpers can return four numbers.
let areaX: i32 = 0;
let areaY: i32 = 0;
let areaW: i32 = 0;
let areaH: i32 = 0;

/**
 * Grows the solid block at (bx, by) block by block inside the search rect ending at (rx2, ry2): each block
 * row as wide as it stays solid (never wider than the row above), keeping the width × height with the
 * largest area. Sets areaX…areaH.
 */
function extendByBlock(bx: i32, by: i32, rx2: i32, ry2: i32, c: u32): void {
  let widthCap = rx2 - bx;
  let bestW = 0;
  let bestH = 0;
  for (let dy = by; dy < ry2; dy += SOLID_BLOCK) {
    const dh = min(SOLID_BLOCK, ry2 - dy);
    let dx = bx;
    while (dx < bx + widthCap) {
      const dw = min(SOLID_BLOCK, bx + widthCap - dx);
      if (!isSolid(dx, dy, dw, dh, c)) break;
      dx += dw;
    }
    if (dx == bx) break;
    widthCap = dx - bx;
    const height = dy + dh - by;
    if (widthCap * height > bestW * bestH) {
      bestW = widthCap;
      bestH = height;
    }
  }
  areaX = bx;
  areaY = by;
  areaW = bestW;
  areaH = bestH;
}

/** Grows areaX…areaH one pixel row or column at a time inside the search rect: up, down, left, right. */
function extendByPixel(rx: i32, ry: i32, rx2: i32, ry2: i32, c: u32): void {
  let top = areaY;
  while (top > ry && isSolid(areaX, top - 1, areaW, 1, c)) top--;
  let bottom = areaY + areaH;
  while (bottom < ry2 && isSolid(areaX, bottom, areaW, 1, c)) bottom++;
  const h = bottom - top;
  let left = areaX;
  while (left > rx && isSolid(left - 1, top, 1, h, c)) left--;
  let right = areaX + areaW;
  while (right < rx2 && isSolid(right, top, 1, h, c)) right++;
  areaX = left;
  areaY = top;
  areaW = right - left;
  areaH = h;
}

let stackTop: i32 = 0;

function pushSearch(x: i32, y: i32, w: i32, h: i32): void {
  if (w <= 0 || h <= 0) return;
  const p = SOLID_STACK + ((<usize>stackTop) << 4);
  store<u32>(p, x);
  store<u32>(p, y, 4);
  store<u32>(p, w, 8);
  store<u32>(p, h, 12);
  stackTop++;
}

/**
 * Solid-area search of one rect (TigerVNC EncodeManager::findSolidRect, rfb-codecs.md §4.1), all of it in
 * one call. A search rect is scanned in 16×16 blocks (row-major, aligned to its corner); the first solid
 * block is grown block-wise, dropped when under SOLID_MIN_AREA pixels unless it is the whole search rect,
 * else grown pixel-wise and reported. What of the search rect was not scanned is then searched the same
 * way, depth first in this order: left of the area below the block row, right of the area, below the area.
 * Areas are disjoint and inside the rect. Writes 5 × u32 per area into OUT (x, y, w, h, canonical colour)
 * and returns the count (≤ MAX_SOLID_AREAS), or E_OUT_OF_BOUNDS.
 */
export function tightFindSolid(x: i32, y: i32, w: i32, h: i32): i32 {
  const bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  stackTop = 0;
  pushSearch(x, y, w, h);
  let count = 0;
  while (stackTop > 0 && count < MAX_SOLID_AREAS) {
    stackTop--;
    const p = SOLID_STACK + ((<usize>stackTop) << 4);
    const rx = load<i32>(p);
    const ry = load<i32>(p, 4);
    const rx2 = rx + load<i32>(p, 8);
    const ry2 = ry + load<i32>(p, 12);
    let found = false;
    for (let by = ry; by < ry2 && !found; by += SOLID_BLOCK) {
      const bh = min(SOLID_BLOCK, ry2 - by);
      for (let bx = rx; bx < rx2; bx += SOLID_BLOCK) {
        const bw = min(SOLID_BLOCK, rx2 - bx);
        const c = load<u32>(fbPtr(bx, by));
        if (!isSolid(bx, by, bw, bh, c)) continue;
        extendByBlock(bx, by, rx2, ry2, c);
        const whole = areaX == rx && areaY == ry && areaX + areaW == rx2 && areaY + areaH == ry2;
        if (!whole) {
          if (areaW * areaH < SOLID_MIN_AREA) continue;
          extendByPixel(rx, ry, rx2, ry2, c);
        }
        const o = OUT + <usize>count * 20;
        store<u32>(o, areaX);
        store<u32>(o, areaY, 4);
        store<u32>(o, areaW, 8);
        store<u32>(o, areaH, 12);
        store<u32>(o, c & 0xffffff, 16);
        count++;
        // Pushed in reverse so that left is searched first, then right, then below.
        const areaX2 = areaX + areaW;
        const areaY2 = areaY + areaH;
        pushSearch(rx, areaY2, rx2 - rx, ry2 - areaY2);
        pushSearch(areaX2, areaY, rx2 - areaX2, areaH);
        pushSearch(rx, by + bh, areaX - rx, areaY2 - (by + bh));
        found = true;
        break;
      }
    }
  }
  return count;
}

// ---- palette analysis ----

/**
 * Palette analysis of a rect (TigerVNC EncodeManager::analyseRect): the distinct colours while there are at
 * most maxColours (1…256). Writes them into OUT as canonical u32, the most frequent first, equal counts in
 * order of first appearance (row-major), and returns their number; returns 0 when the rect has more than
 * maxColours colours (or is empty). E_OUT_OF_BOUNDS, or E_BAD_PALETTE for maxColours outside 1…256.
 */
export function tightAnalyse(x: i32, y: i32, w: i32, h: i32, maxColours: i32): i32 {
  const bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  if (maxColours < 1 || maxColours > MAX_PALETTE) return E_BAD_PALETTE;
  if (w == 0 || h == 0) return 0;
  memory.fill(HASH, 0, HASH_BYTES);
  let cur = load<u32>(fbPtr(x, y));
  hashInsert(cur, 0);
  store<u32>(PAL_COLOURS, cur);
  store<u32>(PAL_COUNTS, 0);
  let n = 1;
  let curIdx = 0;
  let prev = cur;
  let prevIdx = 0;
  let run: u32 = 0;
  let splat = i32x4.splat(cur);
  const rowBytes = (<usize>w) << 2;
  for (let row = 0; row < h; row++) {
    let p = fbPtr(x, y + row);
    const end = p + rowBytes;
    while (p < end) {
      // Runs of the current colour go 4 pixels at a time; only a change of colour touches the hash.
      if (p + 16 <= end && i32x4.all_true(i32x4.eq(v128.load(p), splat))) {
        run += 4;
        p += 16;
        continue;
      }
      const v = load<u32>(p);
      if (v != cur) {
        const countAt = PAL_COUNTS + ((<usize>curIdx) << 2);
        store<u32>(countAt, load<u32>(countAt) + run);
        run = 0;
        // Text alternates between two colours: the one before the current run needs no hash lookup.
        let idx = v == prev ? prevIdx : hashLookup(v);
        if (idx < 0) {
          if (n == maxColours) return 0;
          idx = n++;
          hashInsert(v, idx);
          store<u32>(PAL_COLOURS + ((<usize>idx) << 2), v);
          store<u32>(PAL_COUNTS + ((<usize>idx) << 2), 0);
        }
        prev = cur;
        prevIdx = curIdx;
        cur = v;
        curIdx = idx;
        splat = i32x4.splat(cur);
      }
      run++;
      p += 4;
    }
  }
  const lastAt = PAL_COUNTS + ((<usize>curIdx) << 2);
  store<u32>(lastAt, load<u32>(lastAt) + run);
  // Stable insertion sort of the entries by count, descending (n ≤ 256).
  for (let i = 0; i < n; i++) {
    const count = load<u32>(PAL_COUNTS + ((<usize>i) << 2));
    let j = i;
    while (j > 0) {
      const prev = load<u32>(PAL_ORDER + ((<usize>(j - 1)) << 2));
      if (load<u32>(PAL_COUNTS + ((<usize>prev) << 2)) >= count) break;
      store<u32>(PAL_ORDER + ((<usize>j) << 2), prev);
      j--;
    }
    store<u32>(PAL_ORDER + ((<usize>j) << 2), i);
  }
  for (let i = 0; i < n; i++) {
    const idx = load<u32>(PAL_ORDER + ((<usize>i) << 2));
    store<u32>(OUT + ((<usize>i) << 2), load<u32>(PAL_COLOURS + ((<usize>idx) << 2)) & 0xffffff);
  }
  return n;
}

// ---- filters ----

/**
 * Copy filter: the rect's pixels as TPIXELs into OUT, rows packed; returns the length. The 3-byte R,G,B
 * TPIXEL (32 bpp depth 24, 8-bit channels) is an i8x16.swizzle of 4 pixels into 12 bytes: 16-byte stores
 * that overlap by 4, the spill past the row's end overwritten by what follows (OUT has slack).
 */
export function tightEncodeFull(x: i32, y: i32, w: i32, h: i32): i32 {
  const bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  let o = OUT;
  if (outTpixelSize() == 3) {
    const shuffle = i8x16(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 0, 0, 0, 0);
    for (let row = 0; row < h; row++) {
      let p = fbPtr(x, y + row);
      const end = p + ((<usize>w) << 2);
      for (; p + 16 <= end; p += 16, o += 12) v128.store(o, i8x16.swizzle(v128.load(p), shuffle));
      for (; p < end; p += 4, o += 3) {
        const c = load<u32>(p);
        store<u16>(o, <u16>c);
        store<u8>(o, <u8>(c >>> 16), 2);
      }
    }
  } else {
    for (let row = 0; row < h; row++) {
      let p = fbPtr(x, y + row);
      const end = p + ((<usize>w) << 2);
      for (; p < end; p += 4) o += writeTpixelOut(o, load<u32>(p));
    }
  }
  return <i32>(o - OUT);
}

/**
 * Palette filter for 2 colours: palette[0] (COLOURS_IN, written by the host) is bit 0, palette[1] bit 1
 * (a pixel matching both is palette[0]);
 * 8 pixels per byte, MSB = leftmost, each row padded to a whole byte (rfb-codecs.md §2.8). Returns
 * ⌈w/8⌉ × h, or E_BAD_PALETTE when a pixel is neither colour.
 */
export function tightEncodeMono(x: i32, y: i32, w: i32, h: i32): i32 {
  const bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  const c0 = load<u32>(COLOURS_IN) & 0xffffff;
  const c1 = load<u32>(COLOURS_IN, 4) & 0xffffff;
  for (let b: u32 = 0; b < 256; b++) {
    let r: u32 = 0;
    for (let i: u32 = 0; i < 8; i++) r |= ((b >>> i) & 1) << (7 - i);
    store<u8>(REVERSE + b, <u8>r);
  }
  const v0 = i32x4.splat(c0);
  const v1 = i32x4.splat(c1);
  let o = OUT;
  for (let row = 0; row < h; row++) {
    let p = fbPtr(x, y + row);
    const end = p + ((<usize>w) << 2);
    for (; p + 32 <= end; p += 32, o++) {
      const a = v128.load(p);
      const b = v128.load(p, 16);
      const a0 = i32x4.eq(a, v0);
      const b0 = i32x4.eq(b, v0);
      const known = v128.and(v128.or(a0, i32x4.eq(a, v1)), v128.or(b0, i32x4.eq(b, v1)));
      if (!i32x4.all_true(known)) return E_BAD_PALETTE;
      // bitmask: lane i → bit i, set where the pixel is colour 0; the wire wants bit 7 − i set for colour 1.
      const zeros = i32x4.bitmask(a0) | (i32x4.bitmask(b0) << 4);
      store<u8>(o, load<u8>(REVERSE + (~zeros & 0xff)));
    }
    if (p < end) {
      let bits: u32 = 0;
      let mask: u32 = 0x80;
      for (; p < end; p += 4, mask >>>= 1) {
        const v = load<u32>(p);
        if (v != c0) {
          if (v != c1) return E_BAD_PALETTE;
          bits |= mask;
        }
      }
      store<u8>(o, <u8>bits);
      o++;
    }
  }
  return <i32>(o - OUT);
}

/**
 * Palette filter for 2…256 colours: one byte per pixel, its index in the n-colour palette at COLOURS_IN
 * (written by the host; a repeated colour maps to its first index). Returns w × h, or E_BAD_PALETTE when
 * n is outside 1…256 or a pixel is not in the palette.
 */
export function tightEncodeIndexed(x: i32, y: i32, w: i32, h: i32, n: i32): i32 {
  const bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  if (n < 1 || n > MAX_PALETTE) return E_BAD_PALETTE;
  hashPalette(n);
  let o = OUT;
  for (let row = 0; row < h; row++) {
    let p = fbPtr(x, y + row);
    const end = p + ((<usize>w) << 2);
    for (; p < end; p += 4, o++) {
      // The first probe almost always holds the colour (≤ 256 colours in 1024 slots): one well-predicted
      // compare per pixel, where comparing against the previous colours mispredicts on busy pixels.
      const v = load<u32>(p);
      const s = slotOf(v);
      let idx = <i32>load<u32>(s, 4) - 1;
      if (load<u32>(s) != v || idx < 0) {
        idx = hashLookup(v);
        if (idx < 0) return E_BAD_PALETTE;
      }
      store<u8>(o, <u8>idx);
    }
  }
  return <i32>(o - OUT);
}

/**
 * The n canonical colours at COLOURS_IN (written by the host) as TPIXELs of the output format into OUT:
 * Fill colours and palettes. Returns the length, or E_TOO_LARGE for n outside 0…MAX_TPIXELS.
 */
export function tightTpixels(n: i32): i32 {
  if (n < 0 || n > MAX_TPIXELS) return E_TOO_LARGE;
  let o = OUT;
  for (let i = 0; i < n; i++) o += writeTpixelOut(o, load<u32>(COLOURS_IN + ((<usize>i) << 2)) & 0xffffff);
  return <i32>(o - OUT);
}
