// Hextile (5) encoder: the FB_A rect → a Hextile body in the viewer's format in OUT, following TigerVNC's
// "ImprovedHextile" recipe (rfb-codecs.md §2.4) exactly as the TypeScript twin does (relay/codec/hextile.ts
// hextileEncodeTs); both produce the same bytes for every frame and format:
//   - colours are compared in the viewer's format (two canonical colours that map to one pixel are one);
//   - one colour: mask 0, or BackgroundSpecified when the bg changed;
//   - more than 48 + 2·bpp colours: Raw at once;
//   - else bg = the most frequent colour (ties: the one that reached the top count first), greedy subrects
//     (extend right, then down), mono with fg for 2 colours, SubrectsColoured for more; Raw when that would
//     not be smaller than the Raw tile or needs more than 255 subrects;
//   - bg is forgotten after a Raw tile and fg after Raw and SubrectsColoured tiles, so the first non-raw tile
//     after a Raw tile always carries BackgroundSpecified (noVNC drops a blank tile there, §9.4).
//
// Tiles are compared in canonical colours when the output format's channels are whole bytes (the mapping
// is then one to one, so equal, most frequent and first are the same either way) and packed into the
// output format on the way out; otherwise in output pixel values, packed 8 pixels per v128 (4 at 32 bpp)
// where the channels are ≤ 8 bits (encode-raw.ts packRow, the host's rounding exactly).
//
// WORK use during one call (offsets from WORK_PTR, 10.5 KiB in all):
//   0     16 B                     the swizzle pattern (encode-raw.ts prepareSwizzle)
//   1024  TILE_PX      256 × u32   the tile's pixels as compared (see above), row by row
//   2048  COVERED      16 × u32    per tile row, a bit per pixel already inside a subrect
//   3072  HASH_KEYS    512 × u32   colour counting: open addressing, 512 slots > 2 × 256 pixels
//   5120  HASH_COUNTS  512 × u32
//   7168  HASH_STAMPS  512 × u32   slot is live when its stamp is this tile's; cleared at every call
//                                  (other kernels use WORK between calls)
//   9216  SUB_COLOUR   256 × u32   the subrects found: colour, xy, wh
//   10240 SUB_XY       256 × u8
//   10496 SUB_WH       256 × u8

import { packRow, preparePack, prepareSwizzle, storePacked, swizzlePattern } from "./encode-raw";
import { checkRect, fbPtr, framebufferWidth } from "./framebuffer";
import { OUT_PTR, WORK_PTR } from "./memory";
import { outPixelBytes, packOut, writePixelOut } from "./pixel";

const TILE = 16;
const RAW: u32 = 0x01;
const BG: u32 = 0x02; // BackgroundSpecified
const FG: u32 = 0x04; // ForegroundSpecified
const ANY: u32 = 0x08; // AnySubrects
const COLOURED: u32 = 0x10; // SubrectsColoured
const MAX_SUBRECTS = 255; // nsub is a U8

const TILE_PX: usize = WORK_PTR + 1024;
const COVERED: usize = WORK_PTR + 2048;
const HASH_KEYS: usize = WORK_PTR + 3072;
const HASH_COUNTS: usize = WORK_PTR + 5120;
const HASH_STAMPS: usize = WORK_PTR + 7168;
const SUB_COLOUR: usize = WORK_PTR + 9216;
const SUB_XY: usize = WORK_PTR + 10240;
const SUB_WH: usize = WORK_PTR + 10496;
const HASH_SLOTS: u32 = 512;

// Results of the per-tile analysis.
let stamp: u32 = 0;
let colours: i32 = 0;
let mode: u32 = 0;
let other: u32 = 0;
let nsub: i32 = 0;
/** The output format's channels are whole bytes: tiles are compared in canonical colours. */
let bytewise = false;
/** Otherwise: channels ≤ 8 bits, packed with encode-raw.ts packRow. */
let simdPack = false;

/** A compared colour as an output pixel value. */
function outValue(c: u32): u32 {
  return bytewise ? packOut(c) : c;
}

/**
 * Writes the Hextile body of the rect to OUT; returns its length or E_OUT_OF_BOUNDS. A tile is never
 * larger than 1 + its Raw pixels, so the body fits OUT for any rect inside the framebuffer.
 */
export function encodeHextile(x: i32, y: i32, w: i32, h: i32): i32 {
  const bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  const ob = outPixelBytes();
  bytewise = ob == 4 && prepareSwizzle();
  simdPack = !bytewise && preparePack();
  const limit = 48 + 16 * ob; // 48 + 2 × bits per pixel
  const stride = (<usize>framebufferWidth()) << 2;
  memory.fill(HASH_STAMPS, 0, (<usize>HASH_SLOTS) << 2);
  stamp = 0;
  let o: usize = OUT_PTR;
  let bgValid = false;
  let bg: u32 = 0;
  let fgValid = false;
  let fg: u32 = 0;
  for (let ty = 0; ty < h; ty += TILE) {
    const th = min(TILE, h - ty);
    for (let tx = 0; tx < w; tx += TILE) {
      const tw = min(TILE, w - tx);
      const n = tw * th;
      const src = fbPtr(x + tx, y + ty);
      const rawSize = 1 + n * ob;
      const first = load<u32>(src) & 0xffffff;
      // Most desktop tiles are solid: test that on the canonical pixels before converting any.
      if (solid(src, stride, tw, th, first)) {
        colours = 1;
        mode = bytewise ? first : packOut(first);
      } else {
        loadTile(src, stride, tw, th);
        countColours(n, limit);
      }
      let mask: u32 = 0;
      if (colours == 1) {
        if (!bgValid || bg != mode) mask = BG;
      } else if (colours <= limit) {
        const mono = colours == 2;
        const bgCost = !bgValid || bg != mode ? ob : 0;
        const fgCost = mono && (!fgValid || fg != other) ? ob : 0;
        const head = 2 + bgCost + fgCost; // mask + [bg] + [fg] + nsub
        if (head < rawSize && subrects(tw, th, mode, mono ? 2 : ob + 2, rawSize - head)) {
          mask = ANY | (bgCost > 0 ? BG : 0) | (fgCost > 0 ? FG : 0) | (mono ? 0 : COLOURED);
        } else {
          mask = RAW;
        }
      } else {
        mask = RAW;
      }

      store<u8>(o++, <u8>mask);
      if (mask == RAW) {
        o = bytewise ? swizzleTile(o, src, stride, tw, th) : storePacked(o, TILE_PX, n, ob);
        bgValid = false;
        fgValid = false;
        continue;
      }
      if ((mask & BG) != 0) {
        bg = mode;
        bgValid = true;
        writePixelOut(o, outValue(bg));
        o += <usize>ob;
      }
      if ((mask & FG) != 0) {
        fg = other;
        fgValid = true;
        writePixelOut(o, outValue(fg));
        o += <usize>ob;
      }
      if ((mask & ANY) != 0) {
        store<u8>(o++, <u8>nsub);
        const coloured = (mask & COLOURED) != 0;
        for (let i = 0; i < nsub; i++) {
          if (coloured) {
            writePixelOut(o, outValue(load<u32>(SUB_COLOUR + ((<usize>i) << 2))));
            o += <usize>ob;
          }
          store<u8>(o, load<u8>(SUB_XY + <usize>i));
          store<u8>(o, load<u8>(SUB_WH + <usize>i), 1);
          o += 2;
        }
        if (coloured) fgValid = false;
      }
    }
  }
  return <i32>(o - OUT_PTR);
}

/** True when every canonical pixel (R,G,B; X ignored) of the tile equals c. */
function solid(src: usize, stride: usize, tw: i32, th: i32, c: u32): bool {
  const want = i32x4.splat(c);
  const rgb = i32x4.splat(0xffffff);
  const bytes = (<usize>tw) << 2;
  const wide = bytes & ~(<usize>15);
  for (let r = 0; r < th; r++, src += stride) {
    let p = src;
    const end = src + wide;
    for (; p < end; p += 16) {
      if (!i32x4.all_true(i32x4.eq(v128.and(v128.load(p), rgb), want))) return false;
    }
    const tail = src + bytes;
    for (; p < tail; p += 4) if ((load<u32>(p) & 0xffffff) != c) return false;
  }
  return true;
}

/** The tile's pixels as compared into TILE_PX, row by row: canonical (X masked) or output values. */
function loadTile(src: usize, stride: usize, tw: i32, th: i32): void {
  let d = TILE_PX;
  if (bytewise) {
    const rgb = i32x4.splat(0xffffff);
    const bytes = (<usize>tw) << 2;
    const wide = bytes & ~(<usize>15);
    for (let r = 0; r < th; r++, src += stride) {
      let p = src;
      const end = src + wide;
      for (; p < end; p += 16, d += 16) v128.store(d, v128.and(v128.load(p), rgb));
      const tail = src + bytes;
      for (; p < tail; p += 4, d += 4) store<u32>(d, load<u32>(p) & 0xffffff);
    }
  } else if (simdPack) {
    for (let r = 0; r < th; r++, src += stride, d += (<usize>tw) << 2) packRow(d, src, tw);
  } else {
    for (let r = 0; r < th; r++, src += stride) {
      const tail = src + ((<usize>tw) << 2);
      for (let p = src; p < tail; p += 4, d += 4) store<u32>(d, packOut(load<u32>(p)));
    }
  }
}

/**
 * Distinct colours of the n pixels in TILE_PX, stopping once there are more than `limit`; the most
 * frequent one (ties: the first to reach the top count) in `mode`; for two colours the other in `other`.
 */
function countColours(n: i32, limit: i32): void {
  const s = ++stamp;
  let count = 0;
  let best: u32 = 0;
  let top = load<u32>(TILE_PX);
  let second = top;
  let prev: u32 = ~top; // never equal to the first pixel: its slot is looked up
  let slot: usize = 0;
  for (let i = 0; i < n; i++) {
    const v = load<u32>(TILE_PX + ((<usize>i) << 2));
    let c: u32 = 1;
    if (v != prev) {
      slot = <usize>((v * 0x9e3779b1) >>> 23);
      while (load<u32>(HASH_STAMPS + (slot << 2)) == s && load<u32>(HASH_KEYS + (slot << 2)) != v) {
        slot = (slot + 1) & <usize>(HASH_SLOTS - 1);
      }
      prev = v;
      if (load<u32>(HASH_STAMPS + (slot << 2)) != s) {
        store<u32>(HASH_STAMPS + (slot << 2), s);
        store<u32>(HASH_KEYS + (slot << 2), v);
        store<u32>(HASH_COUNTS + (slot << 2), 1);
        if (++count > limit) break;
        if (count == 2) second = v;
        if (c > best) {
          best = c;
          top = v;
        }
        continue;
      }
    }
    c = load<u32>(HASH_COUNTS + (slot << 2)) + 1;
    store<u32>(HASH_COUNTS + (slot << 2), c);
    if (c > best) {
      best = c;
      top = v;
    }
  }
  if (second == top) second = load<u32>(TILE_PX);
  colours = count;
  mode = top;
  other = second;
}

/**
 * Greedy subrects over every pixel that is not `bgc`: from each uncovered pixel extend right while the
 * colour holds, then down while the whole span holds. False as soon as the subrects reach `budget` bytes
 * or would need more than 255 of them.
 */
function subrects(tw: i32, th: i32, bgc: u32, per: i32, budget: i32): bool {
  const zero = i32x4.splat(0);
  v128.store(COVERED, zero);
  v128.store(COVERED, zero, 16);
  v128.store(COVERED, zero, 32);
  v128.store(COVERED, zero, 48);
  let count = 0;
  let size = 0;
  for (let y = 0; y < th; y++) {
    const rowPx = TILE_PX + ((<usize>(y * tw)) << 2);
    for (let x = 0; x < tw; x++) {
      const c = load<u32>(rowPx + ((<usize>x) << 2));
      if (c == bgc || ((load<u32>(COVERED + ((<usize>y) << 2)) >>> <u32>x) & 1) != 0) continue;
      let x1 = x + 1;
      while (x1 < tw && load<u32>(rowPx + ((<usize>x1) << 2)) == c) x1++;
      let y1 = y + 1;
      for (; y1 < th; y1++) {
        const row = TILE_PX + ((<usize>(y1 * tw)) << 2);
        let k = x;
        while (k < x1 && load<u32>(row + ((<usize>k) << 2)) == c) k++;
        if (k < x1) break;
      }
      const bits = (((<u32>1) << (<u32>(x1 - x))) - 1) << (<u32>x); // x1 - x ≤ 16
      for (let r = y; r < y1; r++) {
        const at = COVERED + ((<usize>r) << 2);
        store<u32>(at, load<u32>(at) | bits);
      }
      size += per;
      if (size >= budget || count == MAX_SUBRECTS) return false;
      store<u32>(SUB_COLOUR + ((<usize>count) << 2), c);
      store<u8>(SUB_XY + <usize>count, <u8>((x << 4) | y));
      store<u8>(SUB_WH + <usize>count, <u8>(((x1 - x - 1) << 4) | (y1 - y - 1)));
      count++;
    }
  }
  nsub = count;
  return true;
}

/** A Raw tile in a byte-aligned 32 bpp format: the framebuffer rows through the swizzle. Returns the end. */
function swizzleTile(o: usize, src: usize, stride: usize, tw: i32, th: i32): usize {
  const pattern = swizzlePattern();
  const bytes = (<usize>tw) << 2;
  const wide = bytes & ~(<usize>15);
  for (let r = 0; r < th; r++, src += stride) {
    let p = src;
    const end = src + wide;
    for (; p < end; p += 16, o += 16) v128.store(o, i8x16.swizzle(v128.load(p), pattern));
    const tail = src + bytes;
    for (; p < tail; p += 4, o += 4) {
      store<u32>(o, i32x4.extract_lane(i8x16.swizzle(i32x4.splat(load<u32>(p)), pattern), 0));
    }
  }
  return o;
}
