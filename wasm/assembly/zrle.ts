// ZRLE (16) and TRLE (15) decoders (rfbproto.rst "ZRLE", RFC 6143 §7.7.5–7.7.6, rfb-codecs.md §2.6–2.7).
// Both walk tiles in row order (ZRLE 64×64 on the inflated data, TRLE 16×16 on the raw body), each tile a
// subencoding byte then its payload in CPIXELs (pixel.ts cpixelIn, any true-colour input format).
// The TS twins and the resumable TRLE framer are relay/codec/zrle.ts; they report the same errors.
//
// Every tile is validated completely before it is painted: raw and solid tiles check their length first
// and then write the framebuffer directly; palette and RLE tiles decode into TILE (below) while every
// index and run is checked, and are copied into the rect only when the whole tile was good. So an error
// leaves earlier tiles painted, the bad tile untouched, and nothing outside the rect written
// (bad-inputs.md table B "ZRLE length plus tiles": palette ≤ 127, runs within the tile, real checks).
//
// TRLE 127 and 129 reuse the palette of the last tile of the same rect that sent one (2…16 or 130…255);
// raw, solid and plain RLE tiles leave it in place, and 127 needs one of ≤ 16 colours. Reuse before any
// palette, or 127 with 17…127 colours, is E_BAD_PALETTE. The palette never carries over to the next rect.
//
// WORK during a call (kernels run one at a time):
//   [0, 16 KiB)          TILE: one decoded tile, canonical u32, rows packed at the tile's width
//   [16 KiB, +512 B)     PALETTE: up to 127 canonical u32; TRLE keeps it from tile to tile of one rect

import { E_BAD_DATA, E_BAD_PALETTE, E_TRAILING, E_TRUNCATED } from "./errors";
import { checkInput, checkRect, fbPtr, fillUnchecked } from "./framebuffer";
import { IN_PTR, WORK_PTR } from "./memory";
import { cpixelIn, inCpixelSize, inIsCanonical } from "./pixel";

const ZRLE_TILE: i32 = 64;
const TRLE_TILE: i32 = 16;
const TILE_PTR: usize = <usize>WORK_PTR;
const PALETTE_PTR: usize = TILE_PTR + <usize>(ZRLE_TILE * ZRLE_TILE * 4);

// Subencodings (rfb-codecs.md §2.6, §2.7).
const SUB_RAW: i32 = 0;
const SUB_SOLID: i32 = 1;
const SUB_PACKED_MAX: i32 = 16; // 2…16: packed palette of that many colours
const SUB_TRLE_PACKED_REUSE: i32 = 127; // TRLE only: packed, the previous tile's palette
const SUB_PLAIN_RLE: i32 = 128;
const SUB_TRLE_RLE_REUSE: i32 = 129; // TRLE only: palette RLE, the previous tile's palette
const SUB_PALETTE_RLE_MIN: i32 = 130; // 130…255: palette RLE of subenc − 128 colours (2…127)

/** Swizzle indices: 4 R,G,B triples → 4 R,G,B,0 pixels. */
const RGB_TO_RGBX = i8x16(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);

/** Next unread byte of IN while a call runs. */
let at: usize = 0;
/** One past the last byte of this rect's data. */
let end: usize = 0;
/** Colours in PALETTE; 0 until a tile of this rect sent one (TRLE 127 / 129 need one). */
let paletteSize: i32 = 0;

/** IN: the inflated tile data of one ZRLE rect (64×64 tiles), exactly. 0 or an E_* code. */
export function decodeZrle(x: i32, y: i32, w: i32, h: i32, inLen: i32): i32 {
  return decodeTiles(x, y, w, h, inLen, ZRLE_TILE, false);
}

/** IN: the TRLE body (16×16 tiles, no zlib), exactly. 0 or an E_* code. */
export function decodeTrle(x: i32, y: i32, w: i32, h: i32, inLen: i32): i32 {
  return decodeTiles(x, y, w, h, inLen, TRLE_TILE, true);
}

function decodeTiles(x: i32, y: i32, w: i32, h: i32, inLen: i32, side: i32, trle: bool): i32 {
  let bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  bad = checkInput(inLen);
  if (bad < 0) return bad;
  const cp = inCpixelSize();
  at = <usize>IN_PTR;
  end = at + <usize>inLen;
  paletteSize = 0;
  for (let ty = 0; ty < h; ty += side) {
    const th = min(side, h - ty);
    for (let tx = 0; tx < w; tx += side) {
      const tw = min(side, w - tx);
      bad = decodeTile(x + tx, y + ty, tw, th, cp, trle);
      if (bad < 0) return bad;
    }
  }
  return at === end ? 0 : E_TRAILING;
}

/** Bytes of IN not read yet; inLen ≤ IN_SIZE, so it fits i32. */
function left(): i32 {
  return <i32>(end - at);
}

/** Bits per packed index for a palette of `size` colours (2 → 1, 3–4 → 2, 5–16 → 4). */
function packedBits(size: i32): i32 {
  return size <= 2 ? 1 : size <= 4 ? 2 : 4;
}

/** One tile at (tx, ty) of the framebuffer, tw × th pixels. */
function decodeTile(tx: i32, ty: i32, tw: i32, th: i32, cp: i32, trle: bool): i32 {
  if (at >= end) return E_TRUNCATED;
  const sub = <i32>load<u8>(at);
  at++;
  const n = tw * th;
  if (sub === SUB_RAW) {
    if (left() < n * cp) return E_TRUNCATED; // ≤ 4096 × 4: no overflow
    const fast = cp === 3 && inIsCanonical();
    for (let r = 0; r < th; r++) {
      let d = fbPtr(tx, ty + r);
      const e = d + ((<usize>tw) << 2);
      // Canonical CPIXELs are R,G,B: 4 of them (12 bytes) → 4 pixels with X = 0 in one swizzle (indices
      // ≥ 16 give 0). The 16-byte load may read 4 bytes past the tile, still inside memory; they are unused.
      if (fast)
        for (; d + 16 <= e; d += 16, at += 12) v128.store(d, i8x16.swizzle(v128.load(at), RGB_TO_RGBX));
      for (; d < e; d += 4, at += <usize>cp) store<u32>(d, cpixelIn(at));
    }
    return 0;
  }
  if (sub === SUB_SOLID) {
    if (left() < cp) return E_TRUNCATED;
    fillUnchecked(tx, ty, tw, th, cpixelIn(at));
    at += <usize>cp;
    return 0;
  }
  let bad: i32;
  if (sub <= SUB_PACKED_MAX) {
    bad = readPalette(sub, cp);
    if (bad < 0) return bad;
    bad = decodePacked(tw, th);
  } else if (sub === SUB_PLAIN_RLE) {
    bad = decodePlainRle(n, cp);
  } else if (sub >= SUB_PALETTE_RLE_MIN) {
    bad = readPalette(sub - 128, cp);
    if (bad < 0) return bad;
    bad = decodePaletteRle(n);
  } else if (trle && sub === SUB_TRLE_PACKED_REUSE) {
    // A packed tile needs ≤ 16 colours: a kept palette of 17…127 (from palette RLE) cannot be reused here.
    if (paletteSize === 0 || paletteSize > SUB_PACKED_MAX) return E_BAD_PALETTE;
    bad = decodePacked(tw, th);
  } else if (trle && sub === SUB_TRLE_RLE_REUSE) {
    if (paletteSize === 0) return E_BAD_PALETTE;
    bad = decodePaletteRle(n);
  } else {
    return E_BAD_DATA; // 17…127 and 129 (ZRLE), 17…126 (TRLE): unused
  }
  if (bad < 0) return bad;
  // The tile is good: copy it into the rect, one row at a time.
  const rowBytes = (<usize>tw) << 2;
  for (let r = 0; r < th; r++) memory.copy(fbPtr(tx, ty + r), TILE_PTR + <usize>r * rowBytes, rowBytes);
  return 0;
}

function readPalette(size: i32, cp: i32): i32 {
  if (left() < size * cp) return E_TRUNCATED;
  for (let i = 0; i < size; i++, at += <usize>cp) store<u32>(PALETTE_PTR + ((<usize>i) << 2), cpixelIn(at));
  paletteSize = size;
  return 0;
}

/** Packed indices, MSB = leftmost pixel, each row padded to a byte; every index < paletteSize. */
function decodePacked(tw: i32, th: i32): i32 {
  const size = paletteSize;
  const bits = packedBits(size);
  const rowBytes = (tw * bits + 7) >> 3;
  if (left() < rowBytes * th) return E_TRUNCATED;
  if (bits === 1) {
    decodePacked1(tw, th);
    return 0;
  }
  // Only 3 colours (2 bits) and 5…15 (4 bits) leave indices that name no colour.
  const check = size < 1 << bits;
  const perByte = 8 / bits;
  const full = tw / perByte;
  const tail = tw - full * perByte;
  const mask = (1 << bits) - 1;
  let o = TILE_PTR;
  for (let r = 0; r < th; r++) {
    if (bits === 2) {
      for (let b = 0; b < full; b++, o += 16) {
        const byte = <u32>load<u8>(at);
        at++;
        // Size 3: index 3 is "11" in some slot.
        if (check && (byte & (byte >> 1) & 0x55) !== 0) return E_BAD_PALETTE;
        store<u32>(o, load<u32>(PALETTE_PTR + ((<usize>(byte >> 6)) << 2)));
        store<u32>(o, load<u32>(PALETTE_PTR + ((<usize>((byte >> 4) & 3)) << 2)), 4);
        store<u32>(o, load<u32>(PALETTE_PTR + ((<usize>((byte >> 2) & 3)) << 2)), 8);
        store<u32>(o, load<u32>(PALETTE_PTR + ((<usize>(byte & 3)) << 2)), 12);
      }
    } else {
      for (let b = 0; b < full; b++, o += 8) {
        const byte = <u32>load<u8>(at);
        at++;
        const hi = byte >> 4;
        const lo = byte & 15;
        if (check && (hi >= <u32>size || lo >= <u32>size)) return E_BAD_PALETTE;
        store<u32>(o, load<u32>(PALETTE_PTR + ((<usize>hi) << 2)));
        store<u32>(o, load<u32>(PALETTE_PTR + ((<usize>lo) << 2)), 4);
      }
    }
    if (tail !== 0) {
      const byte = <i32>load<u8>(at);
      at++;
      for (let k = 0, s = 8 - bits; k < tail; k++, s -= bits, o += 4) {
        const idx = (byte >> s) & mask;
        if (idx >= size) return E_BAD_PALETTE;
        store<u32>(o, load<u32>(PALETTE_PTR + ((<usize>idx) << 2)));
      }
    }
  }
  return 0;
}

/** Two colours, 1 bit per pixel (text): 8 pixels per byte by select, no index can be out of range. */
function decodePacked1(tw: i32, th: i32): void {
  const c0 = load<u32>(PALETTE_PTR);
  const c1 = load<u32>(PALETTE_PTR, 4);
  const full = tw >> 3;
  const tail = tw & 7;
  let o = TILE_PTR;
  for (let r = 0; r < th; r++) {
    for (let b = 0; b < full; b++, o += 32) {
      const byte = <u32>load<u8>(at);
      at++;
      store<u32>(o, select<u32>(c1, c0, byte & 0x80));
      store<u32>(o, select<u32>(c1, c0, byte & 0x40), 4);
      store<u32>(o, select<u32>(c1, c0, byte & 0x20), 8);
      store<u32>(o, select<u32>(c1, c0, byte & 0x10), 12);
      store<u32>(o, select<u32>(c1, c0, byte & 0x08), 16);
      store<u32>(o, select<u32>(c1, c0, byte & 0x04), 20);
      store<u32>(o, select<u32>(c1, c0, byte & 0x02), 24);
      store<u32>(o, select<u32>(c1, c0, byte & 0x01), 28);
    }
    if (tail !== 0) {
      const byte = <u32>load<u8>(at);
      at++;
      for (let k = 0; k < tail; k++, o += 4) store<u32>(o, select<u32>(c1, c0, (byte << k) & 0x80));
    }
  }
}

/**
 * A run length after its first byte: 1 + the sum of the bytes, a byte of 255 meaning another follows.
 * The run must fit in the tile's `room` pixels left, checked after every byte (so a long chain stops as
 * soon as it passes the tile); the data ending inside the chain is E_TRUNCATED. Returns the length or E_*.
 */
function runLength(room: i32): i32 {
  let len = 1;
  while (true) {
    if (at >= end) return E_TRUNCATED;
    const b = <i32>load<u8>(at);
    at++;
    len += b;
    if (len > room) return E_BAD_DATA;
    if (b !== 255) return len;
  }
}

/** Fills count u32 at p with v. */
function fill32(p: usize, v: u32, count: i32): void {
  const e = p + ((<usize>count) << 2);
  if (count >= 8) {
    const s = i32x4.splat(v);
    for (; p + 16 <= e; p += 16) v128.store(p, s);
  }
  for (; p < e; p += 4) store<u32>(p, v);
}

/** Plain RLE: CPIXEL then a run length, until the tile's n pixels are covered; runs may cross rows. */
function decodePlainRle(n: i32, cp: i32): i32 {
  let pos = 0;
  while (pos < n) {
    if (left() < cp) return E_TRUNCATED;
    const c = cpixelIn(at);
    at += <usize>cp;
    const len = runLength(n - pos);
    if (len < 0) return len;
    fill32(TILE_PTR + ((<usize>pos) << 2), c, len);
    pos += len;
  }
  return 0;
}

/** Palette RLE: U8 index (< 128, a single pixel) or index + 128 then a run length; index < paletteSize. */
function decodePaletteRle(n: i32): i32 {
  const size = paletteSize;
  let pos = 0;
  while (pos < n) {
    if (at >= end) return E_TRUNCATED;
    const b = <i32>load<u8>(at);
    at++;
    const idx = b & 127;
    if (idx >= size) return E_BAD_PALETTE;
    const c = load<u32>(PALETTE_PTR + ((<usize>idx) << 2));
    if (b < 128) {
      store<u32>(TILE_PTR + ((<usize>pos) << 2), c);
      pos++;
      continue;
    }
    const len = runLength(n - pos);
    if (len < 0) return len;
    fill32(TILE_PTR + ((<usize>pos) << 2), c, len);
    pos += len;
  }
  return 0;
}
