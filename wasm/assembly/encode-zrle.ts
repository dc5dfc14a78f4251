// ZRLE (16) encoder: one FB_A rect → its uncompressed ZRLE tile data in OUT, in the viewer's format with
// CPIXELs (rfbproto.rst "ZRLE"); the host deflates it (relay/codec/zstream.ts deflateRect). The TS twin is
// relay/codec/zrle.ts zrleEncodeTs and must match byte for byte.
//
// Per 64×64 tile, one pass counts runs (length ≥ 2) and single pixels and builds the palette in order of
// first appearance (at most 127 colours), then the smallest of solid / raw / plain RLE / palette RLE /
// packed palette is written (rfb-codecs.md §2.6, after RealVNC's zrleencodetemplate.c). The sizes are exact
// rather than the template's estimates: a run of L pixels costs ⌊(L−1)/255⌋ extra length bytes, and packed
// rows are padded to a byte. Ties keep the earlier candidate in the order raw, plain RLE, palette RLE,
// packed. Colours are compared as viewer pixel values, so two canonical colours that map to the same
// RGB565 or BGR233 pixel are one colour.
//
// Pixels are packed into the viewer's format once, when the tile is gathered (one packOut per colour
// change, not per pixel), and every later step works on those values: runs and the palette compare them,
// and CPIXELs are written from them by putCpixel, which is pixel.ts writeCpixelOut minus its packOut.
// Writing raw tiles through writeCpixelOut re-packed every pixel: a 1080p noise frame for a BGRX viewer
// took 19.7 ms that way, 12.3 ms this way (CPU time, bench script in the codec issue's report).
//
// WORK during a call:
//   [0, 16 KiB)          TILE       the tile as viewer pixel values (u32, rows packed at the tile's width)
//   [16 KiB, 32 KiB)     RUN_V      u32 per run: its viewer pixel value (runs are in pixel order)
//   [40 KiB, 48 KiB)     RUN_LEN    u16 per run: length (≤ 4096)
//   [48 KiB, 52 KiB)     RUN_IDX    u8 per run: palette index
//   [52 KiB, +4 KiB + 4) IDX        u8 per pixel: palette index, expanded only for a packed tile, + slack
//   [56 KiB + 64, +1 KiB) HASH_KEY  u32 × 256: viewer pixel value of each slot
//   [… , +256 B)         HASH_SLOT  u8 × 256: palette index + 1, 0 = empty (cleared per tile)
//   [… , +512 B)         PALETTE    u32 × 128: viewer pixel value of each palette entry

import { E_TOO_LARGE } from "./errors";
import { checkRect, fbPtr } from "./framebuffer";
import { OUT_PTR, OUT_SIZE, WORK_PTR } from "./memory";
import { outCpixelSize, outIsBigEndian, outIsCanonical, packOut, writePixelOut } from "./pixel";

const TILE_SIDE: i32 = 64;
const MAX_PALETTE: i32 = 127;
const HASH_SIZE: i32 = 256;

const TILE: usize = <usize>WORK_PTR;
const RUN_V: usize = TILE + 16384;
const RUN_LEN: usize = TILE + 40960;
const RUN_IDX: usize = TILE + 49152;
const IDX: usize = TILE + 53248;
const HASH_KEY: usize = TILE + 57344 + 64;
const HASH_SLOT: usize = HASH_KEY + <usize>(HASH_SIZE * 4);
const PALETTE: usize = HASH_SLOT + <usize>HASH_SIZE;

const SUB_RAW: u8 = 0;
const SUB_SOLID: u8 = 1;
const SUB_PLAIN_RLE: u8 = 128;

/** Colours in PALETTE for the current tile. */
let paletteSize: i32 = 0;
/** Output cursor in OUT. */
let out: usize = 0;
/** CPIXEL size of the output format (pixel.ts outCpixelSize). */
let cpBytes: i32 = 3;
/** 8 when a 3-byte CPIXEL holds the value's most significant bytes, else 0 (rfbproto.rst "ZRLE"). */
let cpShift: u32 = 0;
let bigEndian: bool = false;

/** Returns the number of bytes written to OUT (the host deflates them), or an E_* code. */
export function encodeZrle(x: i32, y: i32, w: i32, h: i32): i32 {
  const bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  cpBytes = outCpixelSize();
  // All channel bits set: above 24 bits only when the colour sits in the high 3 bytes.
  cpShift = cpBytes === 3 && packOut(0xffffff) > 0xffffff ? 8 : 0;
  bigEndian = outIsBigEndian();
  // No tile is ever larger than its raw form, 1 + tw·th·cp (+ 1: raw tiles store 4 bytes per 3-byte CPIXEL).
  // The rect lies inside the framebuffer (≤ 8 Mpx), so this always holds; checked in i64 all the same.
  const tiles = <i64>((w + TILE_SIDE - 1) / TILE_SIDE) * <i64>((h + TILE_SIDE - 1) / TILE_SIDE);
  if (tiles + <i64>w * <i64>h * <i64>cpBytes + 1 > <i64>OUT_SIZE) return E_TOO_LARGE;
  out = <usize>OUT_PTR;
  for (let ty = 0; ty < h; ty += TILE_SIDE) {
    const th = min(TILE_SIDE, h - ty);
    for (let tx = 0; tx < w; tx += TILE_SIDE) {
      encodeTile(x + tx, y + ty, min(TILE_SIDE, w - tx), th);
    }
  }
  return <i32>(out - <usize>OUT_PTR);
}

/** Copies a tile into TILE as viewer pixel values (canonical: X cleared). */
function gather(tx: i32, ty: i32, tw: i32, th: i32): void {
  const mask = i32x4.splat(0xffffff);
  const canonical = outIsCanonical();
  let v = TILE;
  for (let r = 0; r < th; r++) {
    let s = fbPtr(tx, ty + r);
    const e = s + ((<usize>tw) << 2);
    if (canonical) {
      for (; s + 16 <= e; s += 16, v += 16) v128.store(v, v128.and(v128.load(s), mask));
      for (; s < e; s += 4, v += 4) store<u32>(v, load<u32>(s) & 0xffffff);
    } else {
      // Neighbours are mostly equal (runs): pack a colour once per change, not once per pixel.
      let last: u32 = load<u32>(s) & 0xffffff;
      let lastV = packOut(last);
      for (; s < e; s += 4, v += 4) {
        const p = load<u32>(s) & 0xffffff;
        if (p !== last) {
          last = p;
          lastV = packOut(p);
        }
        store<u32>(v, lastV);
      }
    }
  }
}

/** Palette index of viewer value v, adding it in order of first appearance; -1 when full. */
function paletteIndex(v: u32): i32 {
  let slot = <i32>((v * 0x9e3779b1) >>> 24);
  while (true) {
    const k = <i32>load<u8>(HASH_SLOT + <usize>slot);
    if (k === 0) break;
    if (load<u32>(HASH_KEY + ((<usize>slot) << 2)) === v) return k - 1;
    slot = (slot + 1) & (HASH_SIZE - 1);
  }
  if (paletteSize === MAX_PALETTE) return -1;
  const idx = paletteSize++;
  store<u32>(HASH_KEY + ((<usize>slot) << 2), v);
  store<u8>(HASH_SLOT + <usize>slot, <u8>(idx + 1));
  store<u32>(PALETTE + ((<usize>idx) << 2), v);
  return idx;
}

/** Writes a run length: L − 1 as bytes of 255 while ≥ 255, then the remainder (< 255). */
function putLength(len: i32): void {
  let rem = len - 1;
  while (rem >= 255) {
    store<u8>(out, 255);
    out++;
    rem -= 255;
  }
  store<u8>(out, <u8>rem);
  out++;
}

/** Writes viewer pixel value v as a CPIXEL: its 3 significant bytes in the viewer's byte order, or the pixel. */
function putCpixel(v: u32): void {
  if (cpBytes !== 3) {
    writePixelOut(out, v);
    out += <usize>cpBytes;
    return;
  }
  const w = v >>> cpShift;
  if (bigEndian) {
    store<u8>(out, <u8>(w >>> 16));
    store<u8>(out, <u8>(w >>> 8), 1);
    store<u8>(out, <u8>w, 2);
  } else {
    store<u16>(out, <u16>w);
    store<u8>(out, <u8>(w >>> 16), 2);
  }
  out += 3;
}

function encodeTile(tx: i32, ty: i32, tw: i32, th: i32): void {
  const cp = cpBytes;
  gather(tx, ty, tw, th);
  const n = tw * th;

  // One pass: runs (crossing rows, as the decoder reads them), single pixels, the palette.
  memory.fill(HASH_SLOT, 0, <usize>HASH_SIZE);
  paletteSize = 0;
  let full = false; // more than 127 colours: no palette encodings
  let runs = 0;
  let singles = 0;
  let extra = 0; // length bytes beyond the first, over all runs
  let count = 0;
  let i = 0;
  while (i < n) {
    const v = load<u32>(TILE + ((<usize>i) << 2));
    let j = i + 1;
    if (j < n && load<u32>(TILE + ((<usize>j) << 2)) === v) {
      // A run: 4 pixels per compare while it lasts (noise tiles, all single pixels, never get here).
      const sv = i32x4.splat(v);
      j++;
      while (j + 4 <= n && i32x4.all_true(i32x4.eq(v128.load(TILE + ((<usize>j) << 2)), sv))) j += 4;
      while (j < n && load<u32>(TILE + ((<usize>j) << 2)) === v) j++;
    }
    const len = j - i;
    if (len === 1) singles++;
    else {
      runs++;
      extra += (len - 1) / 255;
    }
    let idx = 0;
    if (!full) {
      idx = paletteIndex(v);
      if (idx < 0) {
        full = true;
        idx = 0;
      }
    }
    store<u32>(RUN_V + ((<usize>count) << 2), v);
    store<u16>(RUN_LEN + ((<usize>count) << 1), <u16>len);
    store<u8>(RUN_IDX + <usize>count, <u8>idx);
    count++;
    i = j;
  }

  if (!full && paletteSize === 1) {
    store<u8>(out, SUB_SOLID);
    out++;
    putCpixel(load<u32>(PALETTE));
    return;
  }

  // Candidate sizes after the subencoding byte; the smallest wins, ties to the earlier one.
  const RAW = 0;
  const PLAIN = 1;
  const PALETTE_RLE = 2;
  const PACKED = 3;
  let kind = RAW;
  let best = n * cp;
  const plain = (cp + 1) * (runs + singles) + extra;
  if (plain < best) {
    kind = PLAIN;
    best = plain;
  }
  let bits = 0;
  if (!full) {
    const paletteRle = cp * paletteSize + 2 * runs + singles + extra;
    if (paletteRle < best) {
      kind = PALETTE_RLE;
      best = paletteRle;
    }
    if (paletteSize <= 16) {
      bits = paletteSize <= 2 ? 1 : paletteSize <= 4 ? 2 : 4;
      const packed = cp * paletteSize + ((tw * bits + 7) >> 3) * th;
      if (packed < best) {
        kind = PACKED;
        best = packed;
      }
    }
  }

  if (kind === RAW) {
    store<u8>(out, SUB_RAW);
    out++;
    if (cp === 3 && cpShift === 0 && !bigEndian) {
      // The common case (noVNC, TigerVNC): 4-byte stores 3 bytes apart, the spare byte overwritten next.
      for (let k = 0; k < n; k++, out += 3) store<u32>(out, load<u32>(TILE + ((<usize>k) << 2)));
    } else {
      for (let k = 0; k < n; k++) putCpixel(load<u32>(TILE + ((<usize>k) << 2)));
    }
    return;
  }
  if (kind === PLAIN) {
    store<u8>(out, SUB_PLAIN_RLE);
    out++;
    for (let r = 0; r < count; r++) {
      putCpixel(load<u32>(RUN_V + ((<usize>r) << 2)));
      putLength(<i32>load<u16>(RUN_LEN + ((<usize>r) << 1)));
    }
    return;
  }
  store<u8>(out, <u8>(kind === PACKED ? paletteSize : 128 + paletteSize));
  out++;
  for (let k = 0; k < paletteSize; k++) putCpixel(load<u32>(PALETTE + ((<usize>k) << 2)));
  if (kind === PALETTE_RLE) {
    for (let r = 0; r < count; r++) {
      const idx = load<u8>(RUN_IDX + <usize>r);
      const len = <i32>load<u16>(RUN_LEN + ((<usize>r) << 1));
      if (len === 1) {
        store<u8>(out, idx);
        out++;
      } else {
        store<u8>(out, idx | 128);
        out++;
        putLength(len);
      }
    }
    return;
  }
  // Packed: indices per pixel from the runs, then each row MSB first, padded to a byte.
  // Text runs are short: one 4-byte store covers a run of up to 4 (the spare bytes are overwritten by the
  // next run, or land in IDX's slack), so most runs cost no loop at all.
  let q = IDX;
  for (let r = 0; r < count; r++) {
    const fill = <u32>load<u8>(RUN_IDX + <usize>r) * 0x01010101;
    const e = q + <usize>load<u16>(RUN_LEN + ((<usize>r) << 1));
    store<u32>(q, fill);
    for (q += 4; q < e; q += 4) store<u32>(q, fill);
    q = e;
  }
  const perByte = 8 / bits;
  let p = IDX;
  for (let row = 0; row < th; row++) {
    for (let col = 0; col < tw; col += perByte) {
      let byte: u32 = 0;
      const k = min(perByte, tw - col);
      for (let b = 0; b < k; b++, p++) byte |= (<u32>load<u8>(p)) << (<u32>(8 - bits * (b + 1)));
      store<u8>(out, <u8>byte);
      out++;
    }
  }
}
