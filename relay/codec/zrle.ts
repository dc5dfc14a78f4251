// ZRLE (16) and TRLE (15): rfbproto.rst "ZRLE Encoding", RFC 6143 §7.7.5–7.7.6; exact layout, CPIXEL rule
// and encoder heuristic in shared/reference/rfb-codecs.md §2.6–2.7. Both cut the rect into tiles in row
// order (ZRLE 64×64 on the inflated zlib data, TRLE 16×16 on the raw body, smaller at the right and bottom
// edges); each tile is a subencoding byte and a payload of CPIXELs: raw, solid, packed palette, plain RLE or
// palette RLE. TRLE adds 127 (packed) and 129 (palette RLE), which reuse the palette of the last tile of the
// same rect that sent one; raw, solid and plain RLE tiles leave it in place, and 127 needs ≤ 16 colours.
//
// This file holds the TS twins of the codec core's kernels (wasm/assembly/zrle.ts decodeZrle / decodeTrle,
// wasm/assembly/encode-zrle.ts encodeZrle): same pixels, same output bytes, and an RfbError BAD_RECT for
// exactly the inputs the core rejects. It also holds the resumable TRLE framer (trleCodec), which walks the
// same tiles with the same checks, so framing and decoding agree on where a body ends and what is bad.
// ZRLE needs no framer here: its body is length-prefixed (relay/codec/length-prefixed.ts).

import { Encoding } from "../rfb/constants.ts";
import { RfbError } from "../rfb/errors.ts";
import { scaleChannel } from "../rfb/pixel-convert.ts";
import { bytesPerPixel, isCanonical, type PixelFormat, readPixel, writePixel } from "../rfb/pixel-format.ts";
import { checkedAdd, checkedPixels } from "../util/checked.ts";
import type { Framebuffer } from "./framebuffer.ts";
import {
  type DecodeContext,
  NEED_MORE,
  type Rect,
  type RectCodec,
  type RectFramer,
  TileFramer,
} from "./types.ts";

export const ZRLE_TILE_SIZE = 64;
export const TRLE_TILE_SIZE = 16;

/** Tile subencodings (rfb-codecs.md §2.6, §2.7). */
export const ZrleSubencoding = {
  Raw: 0,
  Solid: 1,
  /** 2…16: a packed palette of that many colours. */
  PackedMin: 2,
  PackedMax: 16,
  /** TRLE only: packed palette, reusing the palette of an earlier tile. */
  TrlePackedReuse: 127,
  PlainRle: 128,
  /** TRLE only: palette RLE, reusing the palette of an earlier tile. */
  TrleRleReuse: 129,
  /** 130…255: palette RLE of subencoding − 128 colours (2…127). */
  PaletteRleMin: 130,
} as const;

const S = ZrleSubencoding;
/** Palette RLE sizes go up to 255 − 128 (bad-inputs.md table B: palette ≤ 127). */
const MAX_PALETTE = 127;

// ---- CPIXEL ----

/**
 * Bytes per CPIXEL (rfbproto.rst "ZRLE"): 3 for a true-colour 32 bpp format of depth ≤ 24 whose colour bits
 * all sit in the least (preferred) or the most significant 3 bytes, else the pixel size.
 */
export function cpixelBytes(pf: PixelFormat): number {
  const bpp = bytesPerPixel(pf);
  if (bpp !== 4 || pf.depth > 24 || !pf.trueColour) return bpp;
  const bits = colourBits(pf);
  if (bits < 2 ** 24) return 3;
  return bits % 256 === 0 ? 3 : 4;
}

/** Every bit a channel may set, as a number (channels never overlap in a valid format). */
function colourBits(pf: PixelFormat): number {
  return pf.redMax * 2 ** pf.redShift + pf.greenMax * 2 ** pf.greenShift + pf.blueMax * 2 ** pf.blueShift;
}

/** True when a 3-byte CPIXEL holds the most significant bytes of the pixel value (the low byte is unused). */
function cpixelHigh(pf: PixelFormat): boolean {
  return cpixelBytes(pf) === 3 && colourBits(pf) >= 2 ** 24;
}

/** Reads a CPIXEL at src[off] as canonical R | G << 8 | B << 16. */
export type CpixelReader = (src: Uint8Array, off: number) => number;

/** A pixel value of `pf` → canonical, each channel scaled as pixel-convert.ts scaleChannel does. */
function valueToCanonical(pf: PixelFormat): (v: number) => number {
  const channel = (max: number, shift: number): ((v: number) => number) => {
    if (max <= 0xffff) {
      const lut = new Uint8Array(max + 1);
      for (let c = 0; c <= max; c++) lut[c] = scaleChannel(c, max, 255);
      return (v) => lut[(v >>> shift) & max]!;
    }
    return (v) => scaleChannel(Math.floor(v / 2 ** shift) % (max + 1), max, 255);
  };
  const r = channel(pf.redMax, pf.redShift);
  const g = channel(pf.greenMax, pf.greenShift);
  const b = channel(pf.blueMax, pf.blueShift);
  return (v) => r(v) | (g(v) << 8) | (b(v) << 16);
}

export function cpixelReader(pf: PixelFormat): CpixelReader {
  const convert = valueToCanonical(pf);
  if (cpixelBytes(pf) !== 3) return (s, o) => convert(readPixel(pf, s, o));
  if (isCanonical(pf)) return (s, o) => s[o]! | (s[o + 1]! << 8) | (s[o + 2]! << 16);
  // The 3 bytes in the format's byte order; in the high case they are bits 8…31 of the value.
  const scale = cpixelHigh(pf) ? 256 : 1;
  return pf.bigEndian
    ? (s, o) => convert(((s[o]! << 16) | (s[o + 1]! << 8) | s[o + 2]!) * scale)
    : (s, o) => convert((s[o]! | (s[o + 1]! << 8) | (s[o + 2]! << 16)) * scale);
}

/** Canonical R,G,B (8 bits each) → a pixel value of `pf` (scaleChannel per channel, shifted into place). */
function packer(pf: PixelFormat): (c: number) => number {
  if (isCanonical(pf)) return (c) => c & 0xffffff;
  const table = (max: number, shift: number): Uint32Array => {
    const t = new Uint32Array(256);
    for (let v = 0; v < 256; v++) t[v] = scaleChannel(v, 255, max) * 2 ** shift;
    return t;
  };
  const r = table(pf.redMax, pf.redShift);
  const g = table(pf.greenMax, pf.greenShift);
  const b = table(pf.blueMax, pf.blueShift);
  return (c) => (r[c & 255]! | g[(c >>> 8) & 255]! | b[(c >>> 16) & 255]!) >>> 0;
}

/** Writes a pixel value of `pf` as a CPIXEL at out[off]. */
type CpixelWriter = (out: Uint8Array, off: number, v: number) => void;

function cpixelWriter(pf: PixelFormat): CpixelWriter {
  if (cpixelBytes(pf) !== 3) return (out, off, v) => writePixel(pf, out, off, v);
  const shift = cpixelHigh(pf) ? 8 : 0;
  return pf.bigEndian
    ? (out, off, v) => {
        const w = v >>> shift;
        out[off] = w >>> 16;
        out[off + 1] = w >>> 8;
        out[off + 2] = w;
      }
    : (out, off, v) => {
        const w = v >>> shift;
        out[off] = w;
        out[off + 1] = w >>> 8;
        out[off + 2] = w >>> 16;
      };
}

// ---- tile walking, shared by the framer and the decoders ----

/** Bits per packed index for a palette of `size` colours (rfb-codecs.md §2.6). */
function packedBits(size: number): number {
  return size <= 2 ? 1 : size <= 4 ? 2 : 4;
}

/** What one rect's walk carries from tile to tile: TRLE 127/129 reuse the last palette sent. */
interface PaletteState {
  /** Colours of the last palette a tile of this rect sent; 0 = none yet. */
  size: number;
}

/** Present when decoding: where a tile's pixels and the current palette go. */
interface TileSink {
  read: CpixelReader;
  /** The tile's canonical pixels, rows packed at the tile's width. */
  px: Uint32Array;
  /** Palette colours, canonical; kept between tiles for TRLE reuse. */
  palette: Uint32Array;
}

function bad(name: string, tile: number, why: string): RfbError {
  return new RfbError("BAD_RECT", `${name} tile ${tile}: ${why}`);
}

/**
 * Walks the tile that starts at src[off], looking no further than src[end - 1]: returns the offset just
 * after it, or NEED_MORE while it is incomplete. Throws BAD_RECT as soon as the bytes present show it is
 * malformed (unused subencoding, palette index ≥ palette size, run past the tile, TRLE reuse with no
 * palette), in the order the codec core checks them. With a sink, also decodes the tile into sink.px.
 * `state` changes only once the tile is complete.
 */
function walkTile(
  src: Uint8Array,
  off: number,
  end: number,
  tw: number,
  th: number,
  cp: number,
  trle: boolean,
  state: PaletteState,
  sink: TileSink | null,
  name: string,
  tile: number,
): number {
  if (off >= end) return NEED_MORE;
  const sub = src[off++]!;
  const n = tw * th;

  if (sub === S.Raw) {
    if (end - off < n * cp) return NEED_MORE;
    if (sink) for (let i = 0; i < n; i++, off += cp) sink.px[i] = sink.read(src, off);
    else off += n * cp;
    return off;
  }
  if (sub === S.Solid) {
    if (end - off < cp) return NEED_MORE;
    sink?.px.fill(sink.read(src, off), 0, n);
    return off + cp;
  }

  let size = state.size;
  let packed: boolean;
  if (sub <= S.PackedMax || sub >= S.PaletteRleMin) {
    // A palette of its own: 2…16 colours for packed, 2…127 for palette RLE.
    packed = sub <= S.PackedMax;
    size = packed ? sub : sub - 128;
    if (end - off < size * cp) return NEED_MORE;
    if (sink) for (let i = 0; i < size; i++) sink.palette[i] = sink.read(src, off + i * cp);
    off += size * cp;
  } else if (sub === S.PlainRle) {
    return walkPlainRle(src, off, end, n, cp, sink, name, tile);
  } else if (trle && (sub === S.TrlePackedReuse || sub === S.TrleRleReuse)) {
    packed = sub === S.TrlePackedReuse;
    if (size === 0) throw bad(name, tile, `subencoding ${sub} reuses a palette, but no tile sent one`);
    if (packed && size > S.PackedMax) {
      throw bad(name, tile, `subencoding 127 reuses a palette of ${size} colours; packed allows 16`);
    }
  } else {
    throw bad(name, tile, `unused subencoding ${sub}`);
  }

  const next = packed
    ? walkPacked(src, off, end, tw, th, size, sink, name, tile)
    : walkPaletteRle(src, off, end, n, size, sink, name, tile);
  if (next !== NEED_MORE) state.size = size;
  return next;
}

function walkPacked(
  src: Uint8Array,
  off: number,
  end: number,
  tw: number,
  th: number,
  size: number,
  sink: TileSink | null,
  name: string,
  tile: number,
): number {
  const bits = packedBits(size);
  const mask = (1 << bits) - 1;
  const rowBytes = Math.ceil((tw * bits) / 8);
  if (end - off < rowBytes * th) return NEED_MORE;
  // Indices MSB first; each row starts on a fresh byte, so the padding bits at a row's end are skipped.
  for (let row = 0, i = 0; row < th; row++) {
    for (let col = 0; col < tw; col++, i++) {
      const bit = col * bits;
      const idx = (src[off + (bit >>> 3)]! >>> (8 - bits - (bit & 7))) & mask;
      if (idx >= size) throw bad(name, tile, `palette index ${idx} ≥ palette size ${size}`);
      if (sink) sink.px[i] = sink.palette[idx]!;
    }
    off += rowBytes;
  }
  return off;
}

/**
 * A run length from its first byte at src[off]: 1 + the sum of the bytes, each 255 meaning another follows.
 * Checked against the `room` pixels left in the tile after every byte, so an endless chain stops at the
 * tile's edge. Returns [length, next offset], or NEED_MORE when the data ends inside the chain.
 */
function runLength(
  src: Uint8Array,
  off: number,
  end: number,
  room: number,
  name: string,
  tile: number,
): [number, number] | typeof NEED_MORE {
  let len = 1;
  for (;;) {
    if (off >= end) return NEED_MORE;
    const b = src[off++]!;
    len += b;
    if (len > room) throw bad(name, tile, `a run of ${len}+ pixels with ${room} left in the tile`);
    if (b !== 255) return [len, off];
  }
}

function walkPlainRle(
  src: Uint8Array,
  off: number,
  end: number,
  n: number,
  cp: number,
  sink: TileSink | null,
  name: string,
  tile: number,
): number {
  for (let pos = 0; pos < n; ) {
    if (end - off < cp) return NEED_MORE;
    const at = off;
    const run = runLength(src, off + cp, end, n - pos, name, tile);
    if (run === NEED_MORE) return NEED_MORE;
    const [len, next] = run;
    sink?.px.fill(sink.read(src, at), pos, pos + len);
    pos += len;
    off = next;
  }
  return off;
}

function walkPaletteRle(
  src: Uint8Array,
  off: number,
  end: number,
  n: number,
  size: number,
  sink: TileSink | null,
  name: string,
  tile: number,
): number {
  for (let pos = 0; pos < n; ) {
    if (off >= end) return NEED_MORE;
    const b = src[off++]!;
    const idx = b & 127;
    if (idx >= size) throw bad(name, tile, `palette index ${idx} ≥ palette size ${size}`);
    let len = 1;
    if (b >= 128) {
      const run = runLength(src, off, end, n - pos, name, tile);
      if (run === NEED_MORE) return NEED_MORE;
      [len, off] = run;
    }
    sink?.px.fill(sink.palette[idx]!, pos, pos + len);
    pos += len;
  }
  return off;
}

// ---- decoders (TS twins of wasm/assembly/zrle.ts) ----

function decodeTiles(
  fb: Framebuffer,
  pf: PixelFormat,
  x: number,
  y: number,
  w: number,
  h: number,
  data: Uint8Array,
  side: number,
  trle: boolean,
): void {
  const name = trle ? "trle" : "zrle";
  if (x < 0 || y < 0 || w < 0 || h < 0 || x + w > fb.width || y + h > fb.height) {
    throw new RfbError("RECT_OUT_OF_BOUNDS", `${name} rect ${w}x${h} at ${x},${y}`);
  }
  if (!pf.trueColour) throw new RfbError("UNSUPPORTED", `${name}: colour-mapped pixel formats`);
  const cp = cpixelBytes(pf);
  const sink: TileSink = {
    read: cpixelReader(pf),
    px: new Uint32Array(side * side),
    palette: new Uint32Array(MAX_PALETTE),
  };
  const state: PaletteState = { size: 0 };
  const fbPx = fb.px;
  let off = 0;
  let tile = 0;
  for (let ty = 0; ty < h; ty += side) {
    const th = Math.min(side, h - ty);
    for (let tx = 0; tx < w; tx += side, tile++) {
      const tw = Math.min(side, w - tx);
      const next = walkTile(data, off, data.length, tw, th, cp, trle, state, sink, name, tile);
      if (next === NEED_MORE) throw bad(name, tile, "the data ends inside this tile");
      // The whole tile was good: only now does it reach the framebuffer.
      for (let r = 0; r < th; r++) {
        fbPx.set(sink.px.subarray(r * tw, r * tw + tw), (y + ty + r) * fb.width + x + tx);
      }
      off = next;
    }
  }
  if (off !== data.length) throw bad(name, tile, `${data.length - off} bytes after the last tile`);
}

/** ZRLE: `data` is this rect's inflated tile data (64×64 tiles), exactly. */
export function zrleDecodeTs(
  fb: Framebuffer,
  pf: PixelFormat,
  x: number,
  y: number,
  w: number,
  h: number,
  data: Uint8Array,
): void {
  decodeTiles(fb, pf, x, y, w, h, data, ZRLE_TILE_SIZE, false);
}

/** TRLE: `data` is the whole body (16×16 tiles, no zlib), exactly. */
export function trleDecodeTs(
  fb: Framebuffer,
  pf: PixelFormat,
  x: number,
  y: number,
  w: number,
  h: number,
  data: Uint8Array,
): void {
  decodeTiles(fb, pf, x, y, w, h, data, TRLE_TILE_SIZE, true);
}

// ---- TRLE framer ----

/** Frames TRLE bodies, validating the tiles as they are walked (the kernels decode them). */
export const trleCodec: RectCodec = {
  encoding: Encoding.TRLE,
  name: "trle",
  framer(rect: Rect, ctx: DecodeContext): RectFramer {
    const cp = cpixelBytes(ctx.pf);
    const palette: PaletteState = { size: 0 };
    // walkTile returns the offset after the tile; the framer counts lengths.
    return new TileFramer(rect.w, rect.h, TRLE_TILE_SIZE, (view, offset, end, tw, th, tile) => {
      const next = walkTile(view, offset, end, tw, th, cp, true, palette, null, "trle", tile);
      return next === NEED_MORE ? NEED_MORE : next - offset;
    });
  },
};

// ---- encoder (TS twin of wasm/assembly/encode-zrle.ts) ----

/** Tile encodings the chooser weighs after solid, in tie-break order. */
const Kind = { Raw: 0, PlainRle: 1, PaletteRle: 2, Packed: 3 } as const;

/** Per-call scratch for one 64×64 tile. */
class TileAnalysis {
  /** Canonical pixels (X cleared), rows packed at the tile's width. */
  readonly c = new Uint32Array(ZRLE_TILE_SIZE * ZRLE_TILE_SIZE);
  /** The same as viewer pixel values: what runs and the palette compare. */
  readonly v = new Uint32Array(ZRLE_TILE_SIZE * ZRLE_TILE_SIZE);
  readonly runStart = new Uint16Array(ZRLE_TILE_SIZE * ZRLE_TILE_SIZE);
  readonly runLen = new Uint16Array(ZRLE_TILE_SIZE * ZRLE_TILE_SIZE);
  readonly runIdx = new Uint8Array(ZRLE_TILE_SIZE * ZRLE_TILE_SIZE);
  readonly idx = new Uint8Array(ZRLE_TILE_SIZE * ZRLE_TILE_SIZE);
  /** Viewer value → palette index, in order of first appearance. */
  readonly palette = new Map<number, number>();
  /** Canonical colour of each palette entry. */
  readonly paletteC: number[] = [];
  /** More than 127 colours: no palette encodings for this tile. */
  full = false;
  count = 0;
  runs = 0;
  singles = 0;
  /** Length bytes beyond the first, summed over the runs: ⌊(L − 1) / 255⌋ each. */
  extra = 0;

  /** One pass: runs (which may cross rows), single pixels, the palette. */
  analyse(n: number): void {
    const v = this.v;
    this.palette.clear();
    this.paletteC.length = 0;
    this.full = false;
    this.count = 0;
    this.runs = 0;
    this.singles = 0;
    this.extra = 0;
    for (let i = 0; i < n; ) {
      const p = v[i]!;
      let j = i + 1;
      while (j < n && v[j] === p) j++;
      const len = j - i;
      if (len === 1) this.singles++;
      else {
        this.runs++;
        this.extra += Math.floor((len - 1) / 255);
      }
      let idx = 0;
      if (!this.full) {
        const known = this.palette.get(p);
        if (known !== undefined) idx = known;
        else if (this.palette.size < MAX_PALETTE) {
          idx = this.palette.size;
          this.palette.set(p, idx);
          this.paletteC.push(this.c[i]!);
        } else {
          this.full = true;
        }
      }
      this.runStart[this.count] = i;
      this.runLen[this.count] = len;
      this.runIdx[this.count] = idx;
      this.count++;
      i = j;
    }
  }
}

/** Appends a run length: L − 1 as bytes of 255 while ≥ 255, then the remainder. */
function putLength(out: Uint8Array, o: number, len: number): number {
  let rem = len - 1;
  for (; rem >= 255; rem -= 255) out[o++] = 255;
  out[o++] = rem;
  return o;
}

/**
 * ZRLE tile data (64×64 tiles, before zlib) for a rect of the canonical framebuffer, in `pf` with CPIXELs.
 * Per tile the smallest of solid / raw / plain RLE / palette RLE / packed palette, by exact size (ties to
 * the earlier in that order); see wasm/assembly/encode-zrle.ts for the rationale.
 */
export function zrleEncodeTs(
  fb: Framebuffer,
  pf: PixelFormat,
  x: number,
  y: number,
  w: number,
  h: number,
): Uint8Array {
  if (x < 0 || y < 0 || w < 0 || h < 0 || x + w > fb.width || y + h > fb.height) {
    throw new RfbError("RECT_OUT_OF_BOUNDS", `zrle encode ${w}x${h} at ${x},${y}`);
  }
  if (!pf.trueColour) throw new RfbError("UNSUPPORTED", "zrle: colour-mapped pixel formats");
  const cp = cpixelBytes(pf);
  const tiles = Math.ceil(w / ZRLE_TILE_SIZE) * Math.ceil(h / ZRLE_TILE_SIZE);
  // No tile is larger than its raw form, 1 + tw·th·cp.
  const bound = checkedAdd(
    tiles,
    checkedPixels(w, h, cp, Number.MAX_SAFE_INTEGER, "zrle tiles"),
    Number.MAX_SAFE_INTEGER,
    "zrle tiles",
  );
  const out = new Uint8Array(bound);
  const pack = packer(pf);
  const write = cpixelWriter(pf);
  const fbPx = fb.px;
  const t = new TileAnalysis();
  let o = 0;
  const put = (c: number): void => {
    write(out, o, pack(c));
    o += cp;
  };

  for (let ty = 0; ty < h; ty += ZRLE_TILE_SIZE) {
    const th = Math.min(ZRLE_TILE_SIZE, h - ty);
    for (let tx = 0; tx < w; tx += ZRLE_TILE_SIZE) {
      const tw = Math.min(ZRLE_TILE_SIZE, w - tx);
      const n = tw * th;
      for (let r = 0, k = 0; r < th; r++) {
        const row = (y + ty + r) * fb.width + x + tx;
        for (let col = 0; col < tw; col++, k++) {
          const c = fbPx[row + col]! & 0xffffff;
          t.c[k] = c;
          t.v[k] = pack(c);
        }
      }
      t.analyse(n);
      const size = t.palette.size;

      if (!t.full && size === 1) {
        out[o++] = S.Solid;
        put(t.paletteC[0]!);
        continue;
      }
      let kind: number = Kind.Raw;
      let best = n * cp;
      const plain = (cp + 1) * (t.runs + t.singles) + t.extra;
      if (plain < best) {
        kind = Kind.PlainRle;
        best = plain;
      }
      const bits = packedBits(size);
      if (!t.full) {
        const paletteRle = cp * size + 2 * t.runs + t.singles + t.extra;
        if (paletteRle < best) {
          kind = Kind.PaletteRle;
          best = paletteRle;
        }
        if (size <= S.PackedMax && cp * size + Math.ceil((tw * bits) / 8) * th < best) kind = Kind.Packed;
      }

      switch (kind) {
        case Kind.Raw:
          out[o++] = S.Raw;
          for (let k = 0; k < n; k++) put(t.c[k]!);
          break;
        case Kind.PlainRle:
          out[o++] = S.PlainRle;
          for (let r = 0; r < t.count; r++) {
            put(t.c[t.runStart[r]!]!);
            o = putLength(out, o, t.runLen[r]!);
          }
          break;
        case Kind.PaletteRle:
          out[o++] = 128 + size;
          for (const c of t.paletteC) put(c);
          for (let r = 0; r < t.count; r++) {
            const len = t.runLen[r]!;
            if (len === 1) {
              out[o++] = t.runIdx[r]!;
            } else {
              out[o++] = t.runIdx[r]! | 128;
              o = putLength(out, o, len);
            }
          }
          break;
        case Kind.Packed: {
          out[o++] = size;
          for (const c of t.paletteC) put(c);
          for (let r = 0; r < t.count; r++) {
            const start = t.runStart[r]!;
            t.idx.fill(t.runIdx[r]!, start, start + t.runLen[r]!);
          }
          // Each row MSB first, padded to a byte.
          const rowBytes = Math.ceil((tw * bits) / 8);
          for (let row = 0, k = 0; row < th; row++) {
            out.fill(0, o, o + rowBytes);
            for (let col = 0; col < tw; col++, k++) {
              const bit = col * bits;
              const at = o + (bit >>> 3);
              out[at] = out[at]! | (t.idx[k]! << (8 - bits - (bit & 7)));
            }
            o += rowBytes;
          }
          break;
        }
      }
    }
  }
  return out.slice(0, o);
}
