// The lossless Tight (7) encoder's per-rect chooser, in the spirit of TigerVNC's EncodeManager
// (rfb-codecs.md §4.1) with its TightEncoder's wire layout (§2.8): solid areas first, each sent as a Fill;
// the rest cut into sub-rects of at most 65 536 px and 2048 px wide, each analysed and sent as Fill (1
// colour), Mono (2-colour palette, stream 1), Indexed (≤ maxColours, stream 2) or full colour with the copy
// filter (stream 0; no gradient, as TigerVNC lossless). The pixel work is in the kernels
// (relay/codec/tight-encode-kernels.ts); this file only decides and frames.
//
// zlib data are independent raw-deflate blobs ending in a sync flush (relay/codec/zstream.ts deflateRect),
// never with a reset bit: the same EncodedRect list goes to every viewer of one output format, and
// serializeRect() adds each viewer's zlib header before its first blob on a stream (§7.1 #4, §9.3).

import { Encoding } from "../rfb/constants.ts";
import type { EncodedPart, EncodedRect } from "./encoded.ts";
import type { CodecKernels } from "./kernels.ts";
import { Region, type RegionRect } from "./region.ts";
import { MAX_PALETTE, type TightEncodeKernels } from "./tight-encode-kernels.ts";
import { deflateRect } from "./zstream.ts";

/** Sub-rects are at most this many pixels (TigerVNC SubRectMaxArea)… */
export const TIGHT_MAX_AREA = 65536;
/** …and at most this wide: Tight's limit for any rect (rfb-codecs.md §2.8), Fill rects included here. */
export const TIGHT_MAX_WIDTH = 2048;
/** Filtered data shorter than this goes raw, with no length and no zlib (rfb-codecs.md §2.8). */
export const TIGHT_MIN_TO_COMPRESS = 12;

/** compression-control values (rfb-codecs.md §2.8): bits 4–5 stream, bit 6 explicit filter, 0x80 Fill. */
const CTL_FILL = 0x80;
const CTL_EXPLICIT_FILTER = 0x40;
const FILTER_PALETTE = 0x01;

/** Streams, as TigerVNC TightEncoder uses them (so its viewer can inflate them in parallel). */
export const TightStream = { FullColour: 0, Mono: 1, Indexed: 2 } as const;

/**
 * zlib level per compress level 0–9 for [indexed, mono, full colour]: TigerVNC TightEncoder's table, except
 * that where it says 1 we use 2, because Bun's level 1 compresses ~24% worse than zlib's for little speed
 * (rfb-codecs.md §7.1 #2).
 */
const ZLIB_LEVELS: readonly (readonly [number, number, number])[] = [
  [0, 0, 0],
  [2, 2, 2],
  [3, 3, 2],
  [5, 5, 2],
  [6, 7, 3],
  [7, 8, 4],
  [7, 8, 5],
  [8, 9, 6],
  [9, 9, 7],
  [9, 9, 9],
];

export interface TightEncodeOptions {
  /**
   * The viewer's compress level, 0–9 (pseudo-encodings −256…−247): the zlib levels, and the palette budget
   * maxColours = area / max(4, 8 × level). @default 2 (TigerVNC's when the viewer sent none)
   */
  compressLevel?: number;
  /** Overrides the zlib level of all three streams (0–9), for tuning and benchmarks. */
  zlibLevel?: number;
}

function checkLevel(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 9) throw new RangeError(`tight ${what} must be 0..9, got ${v}`);
}

/** Fill rect body: ctl 0x80 and one TPIXEL. */
function fillRect(r: RegionRect, tpixel: Uint8Array): EncodedRect {
  return { ...r, encoding: Encoding.Tight, parts: [Uint8Array.of(CTL_FILL), tpixel] };
}

/** A rect cut into pieces no wider than TIGHT_MAX_WIDTH (rows kept whole). */
function* narrow(r: RegionRect): Generator<RegionRect> {
  for (let x = r.x; x < r.x + r.w; x += TIGHT_MAX_WIDTH) {
    yield { x, y: r.y, w: Math.min(TIGHT_MAX_WIDTH, r.x + r.w - x), h: r.h };
  }
}

/** Sub-rects of at most TIGHT_MAX_AREA px and TIGHT_MAX_WIDTH wide, row-major (EncodeManager::writeRects). */
function* subRects(r: RegionRect): Generator<RegionRect> {
  const sw = Math.min(r.w, TIGHT_MAX_WIDTH);
  const sh = Math.floor(TIGHT_MAX_AREA / sw);
  for (let y = r.y; y < r.y + r.h; y += sh) {
    const h = Math.min(sh, r.y + r.h - y);
    for (let x = r.x; x < r.x + r.w; x += sw) yield { x, y, w: Math.min(sw, r.x + r.w - x), h };
  }
}

/** The filtered data: raw when short, else one shared zlib blob with a compact length. */
function dataPart(filtered: Uint8Array, stream: number, level: number): EncodedPart {
  if (filtered.length < TIGHT_MIN_TO_COMPRESS) return filtered;
  return { kind: "zlib", stream, data: deflateRect(filtered, level), length: "compact" };
}

/**
 * Full colour is where deflate spends its time. On photo-like pixels string matching gains under 1% for
 * 2–4× the time of Huffman-only coding (bench/RESULTS.md "Codec core": the corpus frame's photo), while on
 * synthetic or repetitive content it gains 10% and more. A sample of the data, deflated both ways, decides.
 */
const SAMPLE_BYTES = 16 * 1024;
/** Matching must save at least this share on the sample to be worth its time. */
const MATCHING_MIN_GAIN = 0.03;

/** Full-colour data: Huffman-only when a sample says string matching would not pay, else at `level`. */
function fullColourPart(filtered: Uint8Array, level: number): EncodedPart {
  if (filtered.length < 2 * SAMPLE_BYTES || level === 0)
    return dataPart(filtered, TightStream.FullColour, level);
  const sample = filtered.subarray(0, SAMPLE_BYTES);
  const matched = deflateRect(sample, level).length;
  const huffman = deflateRect(sample, level, "huffman").length;
  if (matched > huffman * (1 - MATCHING_MIN_GAIN)) {
    return {
      kind: "zlib",
      stream: TightStream.FullColour,
      data: deflateRect(filtered, level, "huffman"),
      length: "compact",
    };
  }
  return dataPart(filtered, TightStream.FullColour, level);
}

/** One sub-rect: analysed, then Fill, Mono, Indexed or full colour. */
function encodeSubRect(
  t: TightEncodeKernels,
  r: RegionRect,
  compressLevel: number,
  levels: readonly [number, number, number],
): EncodedRect {
  const { x, y, w, h } = r;
  const maxColours = Math.min(MAX_PALETTE, Math.max(2, Math.floor((w * h) / Math.max(4, compressLevel * 8))));
  const palette = t.analyse(x, y, w, h, maxColours);
  const [indexedLevel, monoLevel, fullLevel] = levels;
  if (palette.length === 1) return fillRect(r, t.tpixels(palette));
  let parts: EncodedPart[];
  if (palette.length === 0) {
    parts = [
      Uint8Array.of(TightStream.FullColour << 4), // Basic, stream 0, copy filter (no filter-id)
      fullColourPart(t.encodeFull(x, y, w, h), fullLevel),
    ];
  } else {
    const mono = palette.length === 2;
    const stream = mono ? TightStream.Mono : TightStream.Indexed;
    const header = Uint8Array.of(
      CTL_EXPLICIT_FILTER | (stream << 4), // Basic with a filter-id, on this stream
      FILTER_PALETTE,
      palette.length - 1, // ncolours − 1
    );
    const data = mono ? t.encodeMono(x, y, w, h, palette) : t.encodeIndexed(x, y, w, h, palette);
    parts = [header, t.tpixels(palette), dataPart(data, stream, mono ? monoLevel : indexedLevel)];
  }
  return { x, y, w, h, encoding: Encoding.Tight, parts };
}

/**
 * Encodes one rect of the framebuffer as lossless Tight rects in the kernels' output format: the solid
 * areas as Fills (cut to ≤ 2048 wide), then the rest in sub-rects. The rects tile (x, y, w, h) exactly;
 * an empty rect gives none. Throws RECT_OUT_OF_BOUNDS; RangeError for options outside 0…9.
 */
export function encodeTightRect(
  k: CodecKernels,
  x: number,
  y: number,
  w: number,
  h: number,
  options: TightEncodeOptions = {},
): EncodedRect[] {
  const compressLevel = options.compressLevel ?? 2;
  checkLevel("compress level", compressLevel);
  let levels = ZLIB_LEVELS[compressLevel]!;
  if (options.zlibLevel !== undefined) {
    checkLevel("zlib level", options.zlibLevel);
    levels = [options.zlibLevel, options.zlibLevel, options.zlibLevel];
  }
  const t = k.tight;
  const solids = t.findSolid(x, y, w, h);
  const out: EncodedRect[] = [];
  let rest: RegionRect[] = [{ x, y, w, h }];
  if (solids.length > 0) {
    const tpixels = t.tpixels(solids.map((s) => s.colour));
    const size = tpixels.length / solids.length;
    solids.forEach((s, i) => {
      const tpixel = tpixels.subarray(i * size, (i + 1) * size);
      for (const piece of narrow(s)) out.push(fillRect(piece, tpixel));
    });
    rest = Region.fromRect({ x, y, w, h }).subtract(Region.fromRects(solids)).rects();
  } else if (w === 0 || h === 0) {
    return out;
  }
  for (const r of rest) {
    for (const sub of subRects(r)) out.push(encodeSubRect(t, sub, compressLevel, levels));
  }
  return out;
}

/** Bytes the rects take on the wire, 12-byte rect headers included, per-viewer zlib headers not. */
export function encodedTightBytes(rects: readonly EncodedRect[]): number {
  let n = 0;
  for (const r of rects) {
    n += 12;
    for (const p of r.parts) {
      if (p instanceof Uint8Array) n += p.length;
      else n += p.data.length + (p.data.length < 0x80 ? 1 : p.data.length < 0x4000 ? 2 : 3);
    }
  }
  return n;
}
