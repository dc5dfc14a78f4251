// The classic encodings in the codec core and their TS twins, every case run against the TS twin, the WASM
// debug build and the WASM release build (kernel-impls.ts): the RRE / CoRRE and Hextile decoders
// (wasm/assembly/rre.ts, hextile.ts; relay/codec/rre.ts rreDecodeTs, hextile.ts hextileDecodeTs) and the
// Raw and Hextile encoders (wasm/assembly/encode-raw.ts, encode-hextile.ts; relay/codec/raw.ts rawEncoder,
// hextile.ts hextileEncodeTs).
//
// Vectors: hand-built bodies with a comment per field (rfbproto.rst "RRE", "CoRRE", "Hextile";
// rfb-codecs.md §2.3–2.4) whose expected pictures are drawn by hand; every row of bad-inputs.md table B that
// concerns these encodings (same RfbError code on all three, nothing outside the rect changed); encode →
// decode round trips in every viewer format, against the source quantised by relay/rfb/pixel-convert.ts;
// fast-check parity (identical bytes from both encoders, identical framebuffers from both decoders, also on
// corrupted input); noVNC's own decoders as the interop oracle; the recorded TigerVNC sessions.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { CodecKernels } from "../../relay/codec/kernels.ts";
import { WasmKernels } from "../../relay/codec/wasm-kernels.ts";
import { Encoding, RECT_HEADER_LENGTH } from "../../relay/rfb/constants.ts";
import type { RfbErrorCode } from "../../relay/rfb/errors.ts";
import { fromCanonical, toCanonical } from "../../relay/rfb/pixel-convert.ts";
import { bytesPerPixel, CANONICAL_FORMAT, type PixelFormat } from "../../relay/rfb/pixel-format.ts";
import * as E from "../../wasm/assembly/errors.ts";
import { prng } from "../helpers/bytes.ts";
import { compareRgb, corpusPixelFormat, loadCorpus, loadExpectedFinal } from "../helpers/corpus.ts";
import { codeOf } from "../helpers/errors.ts";
import { BGR233, BGRX, RGB565_BE, RGB565_LE } from "../helpers/formats.ts";
import { createNoVncSession } from "../helpers/novnc.ts";
import { forEachKernel, KERNEL_IMPLS, type KernelImpl, kernelsWith } from "./kernel-impls.ts";

// ---- pixel formats ----

const CANONICAL: PixelFormat = { ...CANONICAL_FORMAT };
/** Canonical shifts, big-endian: bytes X,B,G,R. */
const XBGR_BE: PixelFormat = { ...CANONICAL_FORMAT, bigEndian: true };
/** TigerVNC's shifts, big-endian: bytes X,R,G,B. */
const XRGB_BE: PixelFormat = { ...BGRX, bigEndian: true };
/** 10-bit channels in 32 bpp: no channel is a whole byte. */
const RGB10: PixelFormat = {
  bitsPerPixel: 32,
  depth: 30,
  bigEndian: false,
  trueColour: true,
  redMax: 1023,
  greenMax: 1023,
  blueMax: 1023,
  redShift: 0,
  greenShift: 10,
  blueShift: 20,
};
/** 8-bit channels at shifts 4, 12, 20: 8-bit wide, but not on byte boundaries. */
const SHIFTED4: PixelFormat = { ...CANONICAL_FORMAT, redShift: 4, greenShift: 12, blueShift: 20 };

/** The output formats every round trip and parity run covers. */
const FORMATS: ReadonlyArray<[string, PixelFormat]> = [
  ["canonical", CANONICAL],
  ["BGRX", BGRX],
  ["RGB565 LE", RGB565_LE],
  ["RGB565 BE", RGB565_BE],
  ["BGR233", BGR233],
  ["XBGR big-endian", XBGR_BE],
  ["XRGB big-endian", XRGB_BE],
  ["RGB 10-bit", RGB10],
  ["shifted by 4", SHIFTED4],
];

// ---- wire helpers ----

/** Canonical colour value: R | G << 8 | B << 16. */
const rgb = (r: number, g: number, b: number): number => r | (g << 8) | (b << 16);
/** A canonical PIXEL on the wire: R, G, B, X. */
const px = (c: number, x = 0): number[] => [c & 255, (c >>> 8) & 255, c >>> 16, x];
const u16 = (v: number): number[] => [v >>> 8, v & 255];
const u32 = (v: number): number[] => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
/** Wire bytes from numbers, byte arrays and nested groups of them (one group per field line in the vectors). */
type Part = number | Uint8Array | readonly Part[];
const flatten = (p: Part): number[] =>
  typeof p === "number" ? [p] : Array.from(p as ArrayLike<Part>).flatMap(flatten);
const bytes = (...parts: Part[]): Uint8Array => Uint8Array.from(parts.flatMap(flatten));

const BLACK = rgb(0, 0, 0);
const WHITE = rgb(255, 255, 255);
const RED = rgb(255, 0, 0);
const GREEN = rgb(0, 255, 0);
const BLUE = rgb(0, 0, 255);
const TEAL = rgb(0x10, 0x80, 0x90);
const PLUM = rgb(0x80, 0x30, 0x70);
const OCHRE = rgb(0xc0, 0x90, 0x20);
/** What the framebuffer holds before a decode: a colour no vector uses, so stray writes show. */
const SENTINEL = rgb(0x5a, 0xa5, 0x3c);

// ---- expected pictures ----

/** The expected framebuffer, drawn by the test: canonical values, SENTINEL where nothing was drawn. */
class Picture {
  readonly px: Uint32Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.px = new Uint32Array(width * height).fill(SENTINEL);
  }

  fill(x: number, y: number, w: number, h: number, c: number): this {
    for (let r = y; r < y + h; r++) this.px.fill(c, r * this.width + x, r * this.width + x + w);
    return this;
  }

  /** Rows of one-letter pixels at (x, y); each letter is looked up in `legend`, spaces are ignored. */
  rows(x: number, y: number, rows: readonly string[], legend: Record<string, number>): this {
    rows.forEach((row, r) => {
      [...row.replaceAll(" ", "")].forEach((ch, c) => {
        const v = legend[ch];
        if (v === undefined) throw new Error(`no colour for "${ch}"`);
        this.px[(y + r) * this.width + x + c] = v;
      });
    });
    return this;
  }

  /** Canonical bytes R,G,B,0. */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.px.length * 4);
    for (const [i, v] of this.px.entries()) out.set(px(v), i * 4);
    return out;
  }
}

/** Up to 5 differing pixels as "x,y: got RRGGBBXX want RRGGBBXX" (X bytes count: they must be 0). */
function mismatches(actual: Uint8Array, expected: Uint8Array, width: number): string[] {
  const out: string[] = [];
  const hex = (b: Uint8Array, i: number) => Buffer.from(b.subarray(i, i + 4)).toString("hex");
  for (let i = 0; i < expected.length && out.length < 5; i += 4) {
    if (hex(actual, i) !== hex(expected, i)) {
      const p = i / 4;
      out.push(`${p % width},${Math.floor(p / width)}: got ${hex(actual, i)} want ${hex(expected, i)}`);
    }
  }
  if (actual.length !== expected.length) out.push(`length ${actual.length} vs ${expected.length}`);
  return out;
}

/** A fresh instance of `impl`: W × H all SENTINEL, decoder input in `input`. */
async function session(
  impl: KernelImpl,
  width: number,
  height: number,
  input: PixelFormat = CANONICAL,
): Promise<CodecKernels> {
  const k = await kernelsWith(impl, width, height);
  k.fill(0, 0, width, height, SENTINEL);
  k.setInputFormat(input);
  return k;
}

/** A fresh instance holding `frame` (canonical, W × H) and encoding to `output`. */
async function encoderWith(
  impl: KernelImpl,
  width: number,
  height: number,
  frame: Uint8Array,
  output: PixelFormat = CANONICAL,
): Promise<CodecKernels> {
  const k = await kernelsWith(impl, width, height);
  k.raw(0, 0, width, height, frame);
  k.setOutputFormat(output);
  return k;
}

/** The canonical bytes of a rect of a canonical frame, rows packed. */
function crop(frame: Uint8Array, width: number, x: number, y: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 4);
  for (let r = 0; r < h; r++) {
    out.set(frame.subarray(((y + r) * width + x) * 4, ((y + r) * width + x + w) * 4), r * w * 4);
  }
  return out;
}

/** Canonical pixels as a viewer in `pf` sees them: through pf and back (pixel-convert.ts), X = 0. */
function quantised(canonical: Uint8Array, pf: PixelFormat): Uint8Array {
  const n = canonical.length / 4;
  const wire = new Uint8Array(n * bytesPerPixel(pf));
  fromCanonical(canonical, wire, pf, n);
  const back = new Uint8Array(n * 4);
  toCanonical(wire, pf, back, n);
  for (let i = 3; i < back.length; i += 4) back[i] = 0;
  return back;
}

/** Tile masks of a Hextile body, walked by the test itself (bpp = bytes per pixel of its format). */
function tileMasks(body: Uint8Array, w: number, h: number, bpp: number): number[] {
  const masks: number[] = [];
  let o = 0;
  for (let ty = 0; ty < h; ty += 16) {
    for (let tx = 0; tx < w; tx += 16) {
      const n = Math.min(16, w - tx) * Math.min(16, h - ty);
      const m = body[o++]!;
      masks.push(m);
      if (m & 0x01) {
        o += n * bpp;
        continue;
      }
      if (m & 0x02) o += bpp;
      if (m & 0x04) o += bpp;
      if (m & 0x08) o += 1 + body[o]! * (m & 0x10 ? bpp + 2 : 2);
    }
  }
  expect(o).toBe(body.length);
  return masks;
}

// ---- desktop-like frames ----

/**
 * A deterministic desktop-like W × H canonical frame: a solid background, windows with title bars, text-like
 * 2-colour noise, a few-colour dither, a gradient and photo-like noise; X bytes random (the encoders must
 * send 0 whatever X holds — raw decoding zeroes them, and so does noise written straight into FB_A).
 */
function desktopFrame(width: number, height: number, seed: number): Uint8Array {
  const next = prng(seed);
  const px32 = new Uint32Array(width * height).fill(rgb(0x2e, 0x34, 0x40));
  const box = (x0: number, y0: number, w: number, h: number, f: (x: number, y: number) => number) => {
    for (let y = Math.max(0, y0); y < Math.min(height, y0 + h); y++) {
      for (let x = Math.max(0, x0); x < Math.min(width, x0 + w); x++) px32[y * width + x] = f(x, y);
    }
  };
  const pick = (n: number) => next() % Math.max(1, n);
  const regions = 2 + pick(6);
  for (let i = 0; i < regions; i++) {
    const x0 = pick(width);
    const y0 = pick(height);
    const w = 1 + pick(width);
    const h = 1 + pick(height);
    const a = next() & 0xffffff;
    const b = next() & 0xffffff;
    const palette = [a, b, next() & 0xffffff, next() & 0xffffff, next() & 0xffffff];
    switch (pick(6)) {
      case 0: // a window: body, title bar
        box(x0, y0, w, h, () => a);
        box(x0, y0, w, Math.min(h, 3), () => b);
        break;
      case 1: // text: mostly background with ~20% ink
        box(x0, y0, w, h, () => (next() % 5 === 0 ? b : a));
        break;
      case 2: // few colours, dithered
        box(x0, y0, w, h, () => palette[next() % palette.length]!);
        break;
      case 3: // gradient
        box(x0, y0, w, h, (x, y) => rgb((x * 7) & 255, (y * 5) & 255, (x + y) & 255));
        break;
      case 4: // photo-like noise
        box(x0, y0, w, h, () => next() & 0xffffff);
        break;
      default: // stripes of two colours
        box(x0, y0, w, h, (x, y) => ((x + 2 * y) % 3 === 0 ? a : b));
    }
  }
  const out = new Uint8Array(width * height * 4);
  for (const [i, v] of px32.entries()) out.set(px(v, next() & 255), i * 4);
  return out;
}

// ---- hand-built vectors: RRE and CoRRE ----

forEachKernel("RRE / CoRRE hand-built vectors", (impl) => {
  test("RRE: bg, then two subrects, the later drawn over the earlier", async () => {
    const k = await session(impl, 8, 6);
    const body = bytes(
      u32(2), //                                          nsub = 2
      px(TEAL), //                                        bg
      [px(RED), u16(0), u16(1), u16(3), u16(2)], //       subrect 0: red, x 0, y 1, w 3, h 2
      [px(BLUE), u16(2), u16(0), u16(3), u16(4)], //      subrect 1: blue, x 2, y 0, w 3, h 4
    );
    k.rre(2, 1, 5, 4, body, false);
    const rows = ["t t b b b", "r r b b b", "r r b b b", "t t b b b"];
    const want = new Picture(8, 6).rows(2, 1, rows, { t: TEAL, r: RED, b: BLUE });
    expect(mismatches(k.pixels(), want.bytes(), 8)).toEqual([]);
  });

  test("RRE: 16-bit coordinates past 255 are read big-endian", async () => {
    const k = await session(impl, 302, 3);
    const body = bytes(
      u32(1), //                                          nsub = 1
      px(WHITE), //                                       bg
      [px(PLUM), u16(299), u16(1), u16(1), u16(1)], //    plum, x 299 (01 2b), y 1, w 1, h 1
    );
    k.rre(1, 1, 300, 2, body, false);
    const want = new Picture(302, 3).fill(1, 1, 300, 2, WHITE).fill(300, 2, 1, 1, PLUM);
    expect(mismatches(k.pixels(), want.bytes(), 302)).toEqual([]);
  });

  test("RRE in RGB565 big-endian: pixels through the input format, channels scaled", async () => {
    const k = await session(impl, 4, 3, RGB565_BE);
    const body = bytes(
      u32(1), //                                          nsub = 1
      [0x84, 0x10], //                                    bg 0x8410: r 16/31, g 32/63, b 16/31
      [0x07, 0xe0], //                                    subrect pixel 0x07e0: r 0, g 63, b 0
      [u16(1), u16(0), u16(2), u16(1)], //                x 1, y 0, w 2, h 1
    );
    k.rre(0, 0, 3, 2, body, false);
    // round(16 × 255 / 31) = 132, round(32 × 255 / 63) = 130.
    const want = new Picture(4, 3).rows(0, 0, ["b g g", "b b b"], { b: rgb(132, 130, 132), g: GREEN });
    expect(mismatches(k.pixels(), want.bytes(), 4)).toEqual([]);
  });

  test("RRE: nsub 0 is a solid rect; a 0 × 0 subrect at the far corner is inside and paints nothing", async () => {
    const k = await session(impl, 6, 6);
    k.rre(1, 1, 3, 2, bytes(u32(0), px(OCHRE)), false); // nsub 0, bg
    const body = bytes(
      u32(1), //                                          nsub = 1
      px(PLUM), //                                        bg
      [px(RED), u16(4), u16(2), u16(0), u16(0)], //       red, x 4, y 2, w 0, h 0: ends exactly at the corner
    );
    k.rre(1, 3, 4, 2, body, false);
    const want = new Picture(6, 6).fill(1, 1, 3, 2, OCHRE).fill(1, 3, 4, 2, PLUM);
    expect(mismatches(k.pixels(), want.bytes(), 6)).toEqual([]);
  });

  test("CoRRE: U8 coordinates", async () => {
    const k = await session(impl, 5, 5);
    const body = bytes(
      u32(2), //                                          nsub = 2
      px(BLACK), //                                       bg
      [px(WHITE), 1, 1, 2, 2], //                         white, x 1, y 1, w 2, h 2
      [px(RED), 0, 2, 1, 1], //                           red, x 0, y 2, w 1, h 1
    );
    k.rre(1, 1, 3, 3, body, true);
    const rows = ["k k k", "k w w", "r w w"];
    const want = new Picture(5, 5).rows(1, 1, rows, { k: BLACK, w: WHITE, r: RED });
    expect(mismatches(k.pixels(), want.bytes(), 5)).toEqual([]);
  });

  test("CoRRE: a 255 × 2 rect is the widest allowed; its last column is reachable", async () => {
    const k = await session(impl, 256, 3);
    const body = bytes(
      u32(1), //                                          nsub = 1
      px(TEAL), //                                        bg
      [px(OCHRE), 254, 1, 1, 1], //                       ochre, x 254, y 1, w 1, h 1
    );
    k.rre(1, 0, 255, 2, body, true);
    const want = new Picture(256, 3).fill(1, 0, 255, 2, TEAL).fill(255, 1, 1, 1, OCHRE);
    expect(mismatches(k.pixels(), want.bytes(), 256)).toEqual([]);
  });

  test("CoRRE in BGR233: one byte per pixel", async () => {
    const k = await session(impl, 3, 2, BGR233);
    const body = bytes(
      u32(1), //                                          nsub = 1
      0xc7, //                                            bg 11 000 111: b 3, g 0, r 7 → magenta
      0x12, //                                            subrect pixel 00 010 010: b 0, g 2, r 2
      [2, 0, 1, 2], //                                    x 2, y 0, w 1, h 2
    );
    k.rre(0, 0, 3, 2, body, true);
    // round(2 × 255 / 7) = 73.
    const legend = { m: rgb(255, 0, 255), o: rgb(73, 73, 0) };
    const want = new Picture(3, 2).rows(0, 0, ["m m o", "m m o"], legend);
    expect(mismatches(k.pixels(), want.bytes(), 3)).toEqual([]);
  });
});

// ---- hand-built vectors: Hextile ----

forEachKernel("Hextile hand-built vectors", (impl) => {
  test("one 4 × 2 tile: bg, fg, two mono subrects", async () => {
    const k = await session(impl, 6, 4);
    const body = bytes(
      0x0e, //                                            mask: BackgroundSpecified | ForegroundSpecified | AnySubrects
      px(WHITE), //                                       bg
      px(BLACK), //                                       fg
      2, //                                               nsub
      [0x00, 0x10], //                                    xy: x 0, y 0; wh: w 2, h 1
      [0x31, 0x00], //                                    xy: x 3, y 1; wh: w 1, h 1
    );
    k.hextile(1, 1, 4, 2, body);
    const want = new Picture(6, 4).rows(1, 1, ["k k w w", "w w w k"], { k: BLACK, w: WHITE });
    expect(mismatches(k.pixels(), want.bytes(), 6)).toEqual([]);
  });

  test("a Raw tile: pixels in row order, X bytes from the wire dropped", async () => {
    const k = await session(impl, 5, 4);
    const body = bytes(
      0x01, //                                            mask: Raw
      [px(RED, 0xff), px(GREEN, 0xff), px(BLUE, 0x7f)], // row 0, X bytes non-zero
      [px(TEAL, 1), px(PLUM, 2), px(OCHRE, 3)], //        row 1
    );
    k.hextile(1, 1, 3, 2, body);
    const legend = { r: RED, g: GREEN, b: BLUE, t: TEAL, p: PLUM, o: OCHRE };
    const want = new Picture(5, 4).rows(1, 1, ["r g b", "t p o"], legend);
    expect(mismatches(k.pixels(), want.bytes(), 5)).toEqual([]);
  });

  test("a 17 × 17 rect has tiles 16 × 16, 1 × 16, 16 × 1 and 1 × 1", async () => {
    const k = await session(impl, 18, 18);
    const raw = Array.from({ length: 16 }, (_, i) => rgb(i * 16, 255 - i * 16, i));
    const body = bytes(
      [0x02, px(TEAL)], //                                tile 0 (16 × 16): BackgroundSpecified, bg teal
      [0x1a, px(PLUM)], //                                tile 1 (1 × 16): BG | AnySubrects | Coloured, bg plum
      [1, px(OCHRE), 0x0f, 0x00], //                      nsub 1: ochre, x 0 y 15, w 1 h 1: the last pixel
      [0x01, raw.map((c) => px(c))], //                   tile 2 (16 × 1): Raw, 16 pixels
      [0x02, px(RED)], //                                 tile 3 (1 × 1): after Raw, bg must be given again
    );
    k.hextile(0, 0, 17, 17, body);
    const want = new Picture(18, 18).fill(0, 0, 16, 16, TEAL).fill(16, 0, 1, 16, PLUM);
    want.fill(16, 15, 1, 1, OCHRE).fill(16, 16, 1, 1, RED);
    for (const [i, c] of raw.entries()) want.fill(i, 16, 1, 1, c);
    expect(mismatches(k.pixels(), want.bytes(), 18)).toEqual([]);
  });

  test("bg and fg carry over: mask 0 repeats bg, mask AnySubrects reuses both", async () => {
    const k = await session(impl, 48, 3);
    const body = bytes(
      [0x06, px(TEAL), px(RED)], //                       tile 0: BG | FG, bg teal, fg red, no subrects
      0x00, //                                            tile 1: mask 0, all teal
      [0x08, 1, 0x21, 0x00], //                           tile 2: AnySubrects, nsub 1, x 2 y 1 w 1 h 1 in fg
    );
    k.hextile(0, 0, 48, 2, body);
    const want = new Picture(48, 3).fill(0, 0, 48, 2, TEAL).fill(34, 1, 1, 1, RED);
    expect(mismatches(k.pixels(), want.bytes(), 48)).toEqual([]);
  });

  test("RGB565 little-endian and BGR233 input pixels", async () => {
    const k = await session(impl, 20, 4, RGB565_LE);
    const body565 = bytes(
      0x0e, //                                            tile 0 (16 × 1): BG | FG | AnySubrects
      [0x1f, 0x00], //                                    bg 0x001f: blue
      [0x00, 0xf8], //                                    fg 0xf800: red
      [1, 0x30, 0x10], //                                 nsub 1: x 3, y 0, w 2, h 1
      [0x01, 0x10, 0x84], //                              tile 1 (1 × 1): Raw, 0x8410 → 132, 130, 132
    );
    k.hextile(0, 0, 17, 1, body565);
    k.setInputFormat(BGR233);
    const body233 = bytes(
      0x1a, //                                            BG | AnySubrects | SubrectsColoured
      0xc7, //                                            bg 11 000 111: magenta
      1, //                                               nsub
      [0x38, 0x01, 0x10], //                              00 111 000: green; x 0, y 1; w 2, h 1
    );
    k.hextile(0, 2, 2, 2, body233);
    const want = new Picture(20, 4).fill(0, 0, 16, 1, BLUE).fill(3, 0, 2, 1, RED);
    want.fill(16, 0, 1, 1, rgb(132, 130, 132)).rows(0, 2, ["m m", "g g"], { m: rgb(255, 0, 255), g: GREEN });
    expect(mismatches(k.pixels(), want.bytes(), 20)).toEqual([]);
  });

  test("an empty rect has an empty body", async () => {
    const k = await session(impl, 4, 4);
    k.hextile(2, 2, 0, 2, new Uint8Array(0));
    k.hextile(2, 2, 2, 0, new Uint8Array(0));
    expect(mismatches(k.pixels(), new Picture(4, 4).bytes(), 4)).toEqual([]);
  });
});

/**
 * Every subencoding mask 0x00…0x1f as the middle tile of three 16 × 2 tiles: tile 0 sets bg A and fg B; the
 * tile under test carries whatever its mask says; tile 2 then needs the carried bg (mask 0) or the carried
 * bg and fg (mono subrects). Raw ignores every other bit; bg does not survive Raw; fg survives neither Raw
 * nor SubrectsColoured.
 */
forEachKernel("Hextile: every mask bit combination and what carries over", (impl) => {
  const [A, B, C, D, E, F] = [TEAL, RED, PLUM, OCHRE, BLUE, GREEN];
  const rawPixels = Array.from({ length: 32 }, (_, i) => rgb(i * 8, 100, 255 - i * 8));
  for (let mask = 0; mask < 32; mask++) {
    for (const next of ["bg only", "mono subrect"] as const) {
      const isRaw = (mask & 0x01) !== 0;
      const fails = isRaw || (next === "mono subrect" && (mask & 0x10) !== 0);
      test(`mask 0x${mask.toString(16).padStart(2, "0")}, then ${next}: ${fails ? "BAD_RECT" : "decodes"}`, async () => {
        const tile1: number[] = [mask];
        if (isRaw) {
          tile1.push(...rawPixels.flatMap((c) => px(c)));
        } else {
          if (mask & 0x02) tile1.push(...px(C)); //           bg C
          if (mask & 0x04) tile1.push(...px(D)); //           fg D
          if (mask & 0x08) {
            tile1.push(2); //                                 nsub 2
            if (mask & 0x10) tile1.push(...px(E));
            tile1.push(0x10, 0x20); //                         x 1, y 0, 3 × 1
            if (mask & 0x10) tile1.push(...px(F));
            tile1.push(0x51, 0x10); //                         x 5, y 1, 2 × 1
          }
        }
        const tile2 = next === "bg only" ? [0x00] : [0x08, 1, 0x00, 0x00]; // mono: nsub 1, x 0 y 0 1 × 1
        const body = bytes(0x06, px(A), px(B), tile1, tile2); // tile 0: BG | FG, bg A, fg B
        const k = await session(impl, 50, 4);
        const want = new Picture(50, 4).fill(1, 1, 16, 2, A);
        // Tile 1 as the test reads the mask.
        const bg1 = mask & 0x02 ? C : A;
        const fg1 = mask & 0x04 ? D : B;
        if (isRaw) {
          for (const [i, c] of rawPixels.entries()) want.fill(17 + (i % 16), 1 + Math.floor(i / 16), 1, 1, c);
        } else {
          want.fill(17, 1, 16, 2, bg1);
          if (mask & 0x08) {
            want.fill(18, 1, 3, 1, mask & 0x10 ? E : fg1);
            want.fill(22, 2, 2, 1, mask & 0x10 ? F : fg1);
          }
        }
        const code = codeOf(() => k.hextile(1, 1, 48, 2, body));
        if (fails) {
          expect(code).toBe("BAD_RECT");
        } else {
          expect(code).toBeUndefined();
          want.fill(33, 1, 16, 2, bg1);
          if (next === "mono subrect") want.fill(33, 1, 1, 1, fg1);
        }
        // Tiles 0 and 1 painted either way; a refused tile 2 paints nothing.
        expect(mismatches(k.pixels(), want.bytes(), 50)).toEqual([]);
      });
    }
  }
});

// ---- hand-built vectors: Raw encoder ----

forEachKernel("Raw encoder: hand-built bytes in non-canonical formats", (impl) => {
  // P0 = 12 34 56, P1 = ff 80 00; 19 × 2 of alternating pixels at x = 1 (the v128 paths, the 4-pixel
  // steps and the single-pixel tail all run), the frame's X bytes non-zero.
  const P0 = rgb(0x12, 0x34, 0x56);
  const P1 = rgb(0xff, 0x80, 0x00);
  const [W, H] = [21, 3];
  const frame = new Uint8Array(W * H * 4);
  for (let i = 0; i < W * H; i++) frame.set(px((i % W) % 2 === 1 ? P0 : P1, 0xee), i * 4);
  /** The two pixels as the format sends them, P0 first: rect column 0 is frame x 1 (odd: P0). */
  const cases: ReadonlyArray<[string, PixelFormat, string, string]> = [
    ["canonical: R,G,B,0", CANONICAL, "12345600", "ff800000"],
    ["BGRX (R at 16, B at 0, little-endian): B,G,R,0", BGRX, "56341200", "0080ff00"],
    ["XBGR big-endian: 0,B,G,R", XBGR_BE, "00563412", "000080ff"],
    ["XRGB big-endian: 0,R,G,B", XRGB_BE, "00123456", "00ff8000"],
    // r round(18·31/255) = 2, g round(52·63/255) = 13, b round(86·31/255) = 10 → 0x11aa; P1: 31, 32, 0 → 0xfc00
    ["RGB565 little-endian", RGB565_LE, "aa11", "00fc"],
    ["RGB565 big-endian", RGB565_BE, "11aa", "fc00"],
    // bbgggrrr: P0 r 0, g 1, b 1 → 0x48; P1 r 7, g round(128·7/255) = 4, b 0 → 0x27
    ["BGR233", BGR233, "48", "27"],
    // 10-bit: P0 72 | 209 << 10 | 345 << 20 = 0x15934448; P1 1023 | 514 << 10 = 0x00080bff (little-endian)
    ["10-bit channels", RGB10, "48449315", "ff0b0800"],
    // 8-bit channels at shifts 4/12/20: P0 0x05634120, P1 0x00080ff0
    ["8-bit channels off byte boundaries", SHIFTED4, "20416305", "f00f0800"],
  ];
  for (const [name, pf, p0, p1] of cases) {
    test(name, async () => {
      const k = await encoderWith(impl, W, H, frame, pf);
      const row = `${p0}${p1}`.repeat(9) + p0; // 19 pixels: P0 P1 … P0
      expect(Buffer.from(k.encodeRaw(1, 1, 19, 2)).toString("hex")).toBe(row + row);
    });
  }

  test("an empty rect encodes to no bytes", async () => {
    const k = await encoderWith(impl, W, H, frame, BGRX);
    expect(k.encodeRaw(3, 1, 0, 2).length).toBe(0);
    expect(k.encodeHextile(3, 1, 2, 0).length).toBe(0);
  });
});

// ---- bad inputs (bad-inputs.md table B) ----

interface BadCase {
  name: string;
  /** Framebuffer size; 40 × 30 unless given. */
  fb?: [number, number];
  /** Decoder input format; canonical unless given. */
  pf?: PixelFormat;
  rect: [number, number, number, number];
  run(k: CodecKernels, x: number, y: number, w: number, h: number): void;
  code: RfbErrorCode;
  /** "all": the whole framebuffer is as it was; "outside": nothing outside the rect changed. */
  untouched: "all" | "outside";
}

const RRE_RECT: [number, number, number, number] = [5, 5, 10, 8];
const rre =
  (body: Uint8Array, compact = false) =>
  (k: CodecKernels, x: number, y: number, w: number, h: number) =>
    k.rre(x, y, w, h, body, compact);
const hextile = (body: Uint8Array) => (k: CodecKernels, x: number, y: number, w: number, h: number) =>
  k.hextile(x, y, w, h, body);
/** An RRE subrect (canonical): PIXEL, U16 x, y, w, h. */
const sub16 = (c: number, x: number, y: number, w: number, h: number): Part => [
  px(c),
  u16(x),
  u16(y),
  u16(w),
  u16(h),
];
/** A CoRRE subrect (canonical): PIXEL, U8 x, y, w, h. */
const sub8 = (c: number, x: number, y: number, w: number, h: number): Part => [px(c), x, y, w, h];

/** The tiles of a valid 20 × 18 Hextile body (tiles 16 × 16, 4 × 16, 16 × 2, 4 × 2), every kind of tile. */
const HEX_RECT: [number, number, number, number] = [5, 5, 20, 18];
const HEX_TILES: readonly Part[] = [
  [
    [0x0e, px(TEAL), px(RED)],
    [2, 0x00, 0xff, 0x11, 0x00],
  ], // BG | FG | Any, bg, fg; 2 mono subrects
  [
    [0x1a, px(PLUM)],
    [1, px(OCHRE), 0x30, 0x0f],
  ], //           BG | Any | Coloured, bg; ochre x 3 y 0 1 × 16
  [0x01, Array.from({ length: 32 }, (_, i) => px(rgb(i, i, i)))], // Raw 16 × 2
  [0x02, px(BLUE)], //                                          bg again after Raw
];
const VALID_HEXTILE = bytes(...HEX_TILES);
/** VALID_HEXTILE with tile i replaced, so the bad tile is the only thing wrong with the body. */
const withTile = (i: number, tile: Part): Uint8Array =>
  bytes(...HEX_TILES.map((t, j) => (j === i ? tile : t)));

const BAD_CASES: readonly BadCase[] = [
  // RRE / CoRRE nSubrects (CVE-2018-20020 class): checked with exact arithmetic before any read.
  {
    name: "RRE nsub 0x20000001 (× 12 bytes = 6 GiB), one subrect present",
    rect: RRE_RECT,
    run: rre(bytes(u32(0x20000001), px(TEAL), sub16(RED, 0, 0, 1, 1))),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "RRE nsub 0x15555556: × 12 wraps to 8 in 32 bits, and 8 bytes follow the bg",
    rect: RRE_RECT,
    run: rre(bytes(u32(0x15555556), px(TEAL), u16(0), u16(0), u16(1), u16(1))),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "CoRRE nsub 0x20000001: × 8 wraps to 8 in 32 bits, and one 8-byte subrect follows",
    rect: RRE_RECT,
    run: rre(bytes(u32(0x20000001), px(TEAL), sub8(RED, 0, 0, 1, 1)), true),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "RRE nsub 0xffffffff",
    rect: RRE_RECT,
    run: rre(bytes(u32(0xffffffff), px(TEAL), sub16(RED, 0, 0, 1, 1))),
    code: "BAD_RECT",
    untouched: "all",
  },
  // Subrects outside their parent rect.
  ...(
    [
      ["x + w past the right edge", [8, 0, 3, 1]],
      ["y + h past the bottom edge", [0, 6, 1, 3]],
      ["x at the edge with w 1", [10, 0, 1, 1]],
      ["x 65535 + w 2 (wraps in 16 bits)", [65535, 0, 2, 1]],
      ["w 65535", [0, 0, 65535, 1]],
    ] as const
  ).flatMap(([why, [sx, sy, sw, sh]]) => [
    {
      name: `RRE subrect ${why}, after a valid one`,
      rect: RRE_RECT,
      run: rre(bytes(u32(2), px(TEAL), sub16(RED, 0, 0, 2, 2), sub16(BLUE, sx, sy, sw, sh))),
      code: "BAD_RECT" as const,
      untouched: "all" as const,
    },
    ...(sx < 256 && sw < 256
      ? [
          {
            name: `CoRRE subrect ${why}, after a valid one`,
            rect: RRE_RECT,
            run: rre(bytes(u32(2), px(TEAL), sub8(RED, 0, 0, 2, 2), sub8(BLUE, sx, sy, sw, sh)), true),
            code: "BAD_RECT" as const,
            untouched: "all" as const,
          },
        ]
      : []),
  ]),
  {
    name: "CoRRE subrect x 255 + w 255 in a 255-wide rect",
    fb: [260, 4],
    rect: [0, 0, 255, 2],
    run: rre(bytes(u32(1), px(TEAL), sub8(RED, 255, 0, 255, 1)), true),
    code: "BAD_RECT",
    untouched: "all",
  },
  // CoRRE rects are limited to 255 × 255.
  {
    name: "CoRRE rect 256 wide",
    fb: [300, 4],
    rect: [1, 1, 256, 2],
    run: rre(bytes(u32(0), px(TEAL)), true),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "CoRRE rect 256 high",
    fb: [4, 300],
    rect: [1, 1, 2, 256],
    run: rre(bytes(u32(0), px(TEAL)), true),
    code: "BAD_RECT",
    untouched: "all",
  },
  // Truncated and trailing data.
  ...[0, 3, 4, 7].map((n) => ({
    name: `RRE body of ${n} bytes (header is 8)`,
    rect: RRE_RECT,
    run: rre(bytes(u32(0), px(TEAL)).subarray(0, n)),
    code: "BAD_RECT" as const,
    untouched: "all" as const,
  })),
  {
    name: "RRE subrect data one byte short",
    rect: RRE_RECT,
    run: rre(bytes(u32(1), px(TEAL), sub16(RED, 0, 0, 1, 1)).subarray(0, 19)),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "RRE one byte after the last subrect",
    rect: RRE_RECT,
    run: rre(bytes(u32(1), px(TEAL), sub16(RED, 0, 0, 1, 1), 0)),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "CoRRE subrect data one byte short",
    rect: RRE_RECT,
    run: rre(bytes(u32(1), px(TEAL), sub8(RED, 0, 0, 1, 1)).subarray(0, 15), true),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "CoRRE one byte after the last subrect",
    rect: RRE_RECT,
    run: rre(bytes(u32(1), px(TEAL), sub8(RED, 0, 0, 1, 1), 0), true),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "RRE in RGB565: two bytes after the last subrect (16 needed, 18 given)",
    pf: RGB565_LE,
    rect: RRE_RECT,
    run: rre(bytes(u32(1), 0, 0, 0, 0, u16(0), u16(0), u16(1), u16(1), 0, 0)),
    code: "BAD_RECT",
    untouched: "all",
  },
  // Hextile subrects past the edge of their (partial) tile (CVE-2016-9941 class).
  ...(
    [
      ["x 15 + w 2 in a full tile", 0, [0x0e, px(TEAL), px(RED), 1, 0xf0, 0x10]],
      ["y 15 + h 2 in a full tile", 0, [0x0e, px(TEAL), px(RED), 1, 0x0f, 0x01]],
      ["x 3 + w 2 in the 4-wide edge tile", 1, [0x1a, px(PLUM), 1, px(OCHRE), 0x30, 0x10]],
      ["x 4 (1 wide) in the 4-wide edge tile", 1, [0x0e, px(PLUM), px(RED), 1, 0x40, 0x00]],
      ["y 1 + h 2 in the 2-high bottom tile", 2, [0x0e, px(PLUM), px(RED), 1, 0x01, 0x01]],
      ["16 × 16 in the 4 × 2 corner tile", 3, [0x0e, px(PLUM), px(RED), 1, 0x00, 0xff]],
    ] as const
  ).map(([why, tile, bad]) => ({
    name: `Hextile subrect ${why}, the rest of the body valid`,
    rect: HEX_RECT,
    run: hextile(withTile(tile, bad)),
    code: "BAD_RECT" as const,
    untouched: "outside" as const,
  })),
  // Unknown subencoding bits, on a tile that would otherwise be well formed.
  ...[
    [0x22, px(PLUM)],
    [0x42, px(PLUM)],
    [0x82, px(PLUM)],
    [0xe2, px(PLUM)],
    [0x21, Array.from({ length: 64 }, () => px(PLUM))],
  ].map((tile) => ({
    name: `Hextile mask 0x${(tile[0] as number).toString(16)} (bits 5–7) in tile 1`,
    rect: HEX_RECT,
    run: hextile(withTile(1, tile)),
    code: "BAD_RECT" as const,
    untouched: "outside" as const,
  })),
  // Carry-over violations.
  {
    name: "Hextile first tile without a bg (mask 0)",
    rect: HEX_RECT,
    run: hextile(withTile(0, [0x00])),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "Hextile first tile without a bg (AnySubrects | SubrectsColoured)",
    rect: HEX_RECT,
    run: hextile(withTile(0, [0x18, 1, px(RED), 0x00, 0x00])),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "Hextile first tile: mono subrects with no fg ever given",
    rect: HEX_RECT,
    run: hextile(withTile(0, [0x0a, px(TEAL), 1, 0x00, 0x00])),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "Hextile: bg does not carry across a Raw tile (mask 0 after Raw)",
    rect: HEX_RECT,
    run: hextile(withTile(3, [0x00])),
    code: "BAD_RECT",
    untouched: "outside",
  },
  {
    name: "Hextile: fg does not carry across a Raw tile (bg given, mono subrect after Raw)",
    rect: HEX_RECT,
    run: hextile(withTile(3, [0x0a, px(BLUE), 1, 0x00, 0x00])),
    code: "BAD_RECT",
    untouched: "outside",
  },
  {
    name: "Hextile: fg does not carry across a SubrectsColoured tile",
    rect: HEX_RECT,
    run: hextile(withTile(2, [0x08, 1, 0x00, 0x00])),
    code: "BAD_RECT",
    untouched: "outside",
  },
  // Truncated and trailing data.
  {
    name: "Hextile: one byte after the last tile",
    rect: HEX_RECT,
    run: hextile(bytes(VALID_HEXTILE, 0)),
    code: "BAD_RECT",
    untouched: "outside",
  },
  {
    name: "Hextile: empty body for a non-empty rect",
    rect: HEX_RECT,
    run: hextile(new Uint8Array(0)),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "Hextile: nsub says 3, two subrects given",
    rect: HEX_RECT,
    run: hextile(bytes(0x0e, px(TEAL), px(RED), 3, 0x00, 0x00, 0x11, 0x00)),
    code: "BAD_RECT",
    untouched: "all",
  },
  {
    name: "Hextile: data after an empty rect",
    rect: [5, 5, 0, 3],
    run: hextile(bytes(0x02, px(TEAL))),
    code: "BAD_RECT",
    untouched: "all",
  },
  // Rect outside the framebuffer, per dimension, with areas far below the framebuffer's
  // (GStreamer rfbdecoder compared areas; LibVNCClient CVE-2016-9941 had no check).
  ...(
    [
      ["x + w = W + 1, area 2", [39, 0, 2, 1]],
      ["y + h = H + 1, area 2", [0, 29, 1, 2]],
      ["x = W, w 1", [40, 0, 1, 1]],
      ["w = W + 1, h 1", [0, 0, 41, 1]],
      ["x 65535", [65535, 0, 1, 1]],
      ["y 65535, h 65535", [0, 65535, 1, 65535]],
    ] as const
  ).flatMap(([why, rect]) =>
    (
      [
        ["RRE", rre(bytes(u32(0), px(TEAL)))],
        ["CoRRE", rre(bytes(u32(0), px(TEAL)), true)],
        ["Hextile", hextile(bytes(0x02, px(TEAL)))],
        [
          "Raw encoder",
          (k: CodecKernels, x: number, y: number, w: number, h: number) => k.encodeRaw(x, y, w, h),
        ],
        [
          "Hextile encoder",
          (k: CodecKernels, x: number, y: number, w: number, h: number) => k.encodeHextile(x, y, w, h),
        ],
      ] as const
    ).map(([what, run]) => ({
      name: `${what}: rect outside the framebuffer, ${why}`,
      rect: [...rect] as [number, number, number, number],
      run,
      code: "RECT_OUT_OF_BOUNDS" as const,
      untouched: "all" as const,
    })),
  ),
];

forEachKernel("bad inputs (bad-inputs.md table B): the same RfbError, nothing outside the rect", (impl) => {
  for (const c of BAD_CASES) {
    test(`${c.name} → ${c.code}`, async () => {
      const [W, H] = c.fb ?? [40, 30];
      const k = await kernelsWith(impl, W, H);
      k.raw(0, 0, W, H, desktopFrame(W, H, 7));
      k.setInputFormat(c.pf ?? CANONICAL);
      const before = k.pixels().slice();
      const [x, y, w, h] = c.rect;
      expect(codeOf(() => c.run(k, x, y, w, h))).toBe(c.code);
      const after = k.pixels();
      if (c.untouched === "all") {
        expect(mismatches(after, before, W)).toEqual([]);
      } else {
        // Restore the rect in a copy: what is left must be the snapshot.
        const outside = after.slice();
        for (let r = y; r < y + h; r++) {
          outside.set(before.subarray((r * W + x) * 4, (r * W + x + w) * 4), (r * W + x) * 4);
        }
        expect(mismatches(outside, before, W)).toEqual([]);
      }
    });
  }

  test("Hextile: every proper prefix of a valid body is BAD_RECT, never a write outside the rect", async () => {
    const [W, H] = [40, 30];
    const [x, y, w, h] = HEX_RECT;
    const k = await kernelsWith(impl, W, H);
    const frame = desktopFrame(W, H, 9);
    for (let n = 0; n < VALID_HEXTILE.length; n++) {
      k.raw(0, 0, W, H, frame);
      const before = k.pixels().slice();
      expect(codeOf(() => k.hextile(x, y, w, h, VALID_HEXTILE.subarray(0, n)))).toBe("BAD_RECT");
      const outside = k.pixels().slice();
      for (let r = y; r < y + h; r++) {
        outside.set(before.subarray((r * W + x) * 4, (r * W + x + w) * 4), (r * W + x) * 4);
      }
      expect(mismatches(outside, before, W)).toEqual([]);
    }
    expect(codeOf(() => k.hextile(x, y, w, h, VALID_HEXTILE))).toBeUndefined();
  });
});

// ---- round trips ----

forEachKernel("encode → decode round trips in every viewer format", (impl) => {
  const [W, H] = [100, 70];
  for (const [name, pf] of FORMATS) {
    test(`${name}: Raw and Hextile, the whole frame and an offset rect`, async () => {
      for (const seed of [1, 2, 3]) {
        const frame = desktopFrame(W, H, seed);
        const enc = await encoderWith(impl, W, H, frame, pf);
        const source = enc.pixels().slice(); // X = 0 after the raw decode
        for (const [x, y, w, h] of [
          [0, 0, W, H],
          [3, 2, 81, 61],
          [99, 69, 1, 1],
        ] as const) {
          const want = quantised(crop(source, W, x, y, w, h), pf);
          const raw = enc.encodeRaw(x, y, w, h);
          expect(raw.length).toBe(w * h * bytesPerPixel(pf));
          const wire = new Uint8Array(w * h * bytesPerPixel(pf));
          fromCanonical(crop(source, W, x, y, w, h), wire, pf, w * h);
          expect(Buffer.compare(raw, wire)).toBe(0);
          const hex = enc.encodeHextile(x, y, w, h);
          expect(hex.length).toBeLessThanOrEqual(raw.length + Math.ceil(w / 16) * Math.ceil(h / 16));
          for (const [what, body] of [
            ["raw", raw],
            ["hextile", hex],
          ] as const) {
            const dec = await session(impl, W, H, pf);
            if (what === "raw") dec.raw(x, y, w, h, body);
            else dec.hextile(x, y, w, h, body);
            const got = crop(dec.pixels(), W, x, y, w, h);
            expect({ seed, rect: [x, y, w, h], what, bad: mismatches(got, want, w) }).toEqual({
              seed,
              rect: [x, y, w, h],
              what,
              bad: [],
            });
          }
        }
      }
    });
  }
});

// ---- encoder choices ----

forEachKernel("Hextile encoder choices", (impl) => {
  test("solid tiles: bg once, then mask 0; a change of colour gives bg again; X bytes 0", async () => {
    const [W, H] = [48, 16];
    const pic = new Picture(W, H).fill(0, 0, 32, 16, TEAL).fill(32, 0, 16, 16, PLUM);
    const k = await encoderWith(impl, W, H, pic.bytes());
    const body = k.encodeHextile(0, 0, W, H);
    // Mask BackgroundSpecified, bg teal; mask 0; mask BackgroundSpecified, bg plum.
    expect(Buffer.from(body).toString("hex")).toBe(["02", "10809000", "00", "02", "80307000"].join(""));
  });

  test("two colours → mono (fg given once, then reused), more → coloured, noise → Raw", async () => {
    const [W, H] = [64, 16];
    const pic = new Picture(W, H).fill(0, 0, W, H, WHITE);
    pic.fill(2, 2, 3, 1, BLACK); //                                 tile 0: white + black
    pic.fill(18, 4, 1, 5, BLACK); //                                tile 1: the same two colours
    pic.fill(34, 0, 2, 2, RED).fill(40, 8, 1, 1, BLUE); //         tile 2: three colours
    const next = prng(5);
    for (let y = 0; y < 16; y++) for (let x = 48; x < 64; x++) pic.fill(x, y, 1, 1, next() & 0xffffff);
    const k = await encoderWith(impl, W, H, pic.bytes());
    const body = k.encodeHextile(0, 0, W, H);
    // Tile 2 keeps the bg (white) and needs no BackgroundSpecified.
    expect(tileMasks(body, W, H, 4)).toEqual([0x0e, 0x08, 0x18, 0x01]);
    // Tile 0 spelled out: mask BG | FG | Any, bg white, fg black, nsub 1, xy x 2 y 2, wh w 3 h 1.
    const tile0 = ["0e", "ffffff00", "00000000", "01", "22", "20"].join("");
    expect(Buffer.from(body.subarray(0, 12)).toString("hex")).toBe(tile0);
  });

  test("Raw when subrects would not be smaller: a checkerboard is mono at 32 bpp, Raw at 8 bpp", async () => {
    const [W, H] = [16, 16];
    const pic = new Picture(W, H);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) pic.fill(x, y, 1, 1, (x + y) % 2 ? WHITE : BLACK);
    const k = await encoderWith(impl, W, H, pic.bytes());
    // 128 one-pixel subrects: 2 + 4 + 4 + 128 × 2 = 266 < 1 + 1024.
    expect(tileMasks(k.encodeHextile(0, 0, W, H), W, H, 4)).toEqual([0x0e]);
    k.setOutputFormat(BGR233);
    // 1 + 1 + 1 + 1 + 256 ≥ 1 + 256: Raw.
    expect(tileMasks(k.encodeHextile(0, 0, W, H), W, H, 1)).toEqual([0x01]);
  });

  test("Raw when subrects are exactly as large as Raw; subrects when one byte smaller", async () => {
    // BGR233, 32 × 1: tile 0 mono (bg black, fg red); tile 1 keeps the bg, needs a new fg (blue) and 7
    // one-pixel subrects: 1 mask + 1 fg + 1 nsub + 7 × 2 = 17 = 1 mask + 16 PIXELs of Raw.
    const pic = new Picture(32, 1).fill(0, 0, 32, 1, BLACK).fill(0, 0, 1, 1, RED);
    for (let x = 16; x < 30; x += 2) pic.fill(x, 0, 1, 1, BLUE);
    const k = await encoderWith(impl, 32, 1, pic.bytes(), BGR233);
    expect(tileMasks(k.encodeHextile(0, 0, 32, 1), 32, 1, 1)).toEqual([0x0e, 0x01]);
    k.fill(28, 0, 1, 1, BLACK); // 6 subrects: 15 < 17
    expect(tileMasks(k.encodeHextile(0, 0, 32, 1), 32, 1, 1)).toEqual([0x0e, 0x0c]);
  });

  test("over 48 + 2·bpp colours → Raw at once; exactly that many → coloured subrects when smaller", async () => {
    const [W, H] = [32, 16];
    const pic = new Picture(W, H).fill(0, 0, W, H, BLACK);
    // Tile 0: 112 colours (the 32 bpp limit), one pixel each, over black; tile 1: 113.
    for (let i = 0; i < 111; i++) pic.fill(i % 16, Math.floor(i / 16), 1, 1, rgb(1 + i, 2, 3));
    for (let i = 0; i < 112; i++) pic.fill(16 + (i % 16), Math.floor(i / 16), 1, 1, rgb(1 + i, 2, 3));
    const k = await encoderWith(impl, W, H, pic.bytes());
    // Tile 0: 111 one-pixel coloured subrects, 6 + 111 × 6 = 672 < 1 + 1024 bytes.
    expect(tileMasks(k.encodeHextile(0, 0, W, H), W, H, 4)).toEqual([0x1a, 0x01]);
  });

  test("colours are compared in the viewer's format: two canonical colours, one BGR233 pixel", async () => {
    const [W, H] = [16, 16];
    const pic = new Picture(W, H).fill(0, 0, W, H, rgb(0, 0, 0)).fill(3, 3, 4, 4, rgb(10, 10, 10));
    const k = await encoderWith(impl, W, H, pic.bytes(), BGR233);
    expect(Buffer.from(k.encodeHextile(0, 0, W, H)).toString("hex")).toBe("0200");
  });

  test("bg is the most frequent colour; on a tie, the one that reached the top count first", async () => {
    const [W, H] = [16, 16];
    // Left half black, right half white: 128 each, black reaches 128 first (row 15, column 7).
    const pic = new Picture(W, H).fill(0, 0, 8, 16, BLACK).fill(8, 0, 8, 16, WHITE);
    const k = await encoderWith(impl, W, H, pic.bytes());
    // BG | FG | Any, bg black, fg white, nsub 1, xy x 8 y 0, wh w 8 h 16.
    const want = ["0e", "00000000", "ffffff00", "01", "80", "7f"].join("");
    expect(Buffer.from(k.encodeHextile(0, 0, W, H)).toString("hex")).toBe(want);
  });

  test("X bytes are sent as 0 whatever the framebuffer holds there (Raw and Hextile)", async () => {
    const [W, H] = [37, 18];
    const noise = desktopFrame(W, H, 21);
    const next = prng(4);
    for (let i = 3; i < noise.length; i += 4) noise[i] = 1 + (next() % 255);
    const rgbOnly = noise.slice();
    for (let i = 3; i < rgbOnly.length; i += 4) rgbOnly[i] = 0;
    for (const pf of [CANONICAL, BGRX, XBGR_BE, XRGB_BE]) {
      const k = await kernelsWith(impl, W, H);
      k.pixels().set(noise); // straight into the framebuffer, X bytes included
      k.setOutputFormat(pf);
      const want = new Uint8Array(W * H * 4);
      fromCanonical(rgbOnly, want, pf, W * H);
      expect(Buffer.from(k.encodeRaw(0, 0, W, H)).toString("hex")).toBe(Buffer.from(want).toString("hex"));
      const dec = await session(impl, W, H, pf);
      dec.hextile(0, 0, W, H, k.encodeHextile(0, 0, W, H));
      expect(mismatches(dec.pixels(), rgbOnly, W)).toEqual([]);
    }
  });

  test("noVNC trap: the first non-raw tile after a Raw tile always has BackgroundSpecified", async () => {
    const [W, H] = [64, 16];
    const pic = new Picture(W, H).fill(0, 0, W, H, TEAL);
    const next = prng(3);
    for (let y = 0; y < 16; y++) for (let x = 16; x < 32; x++) pic.fill(x, y, 1, 1, next() & 0xffffff);
    pic.fill(48, 5, 2, 2, RED); // tile 3: teal + red, mono
    const k = await encoderWith(impl, W, H, pic.bytes());
    // Tile 2 has the same teal as tile 0, yet after the Raw tile it says so again; tile 3 reuses it.
    expect(tileMasks(k.encodeHextile(0, 0, W, H), W, H, 4)).toEqual([0x02, 0x01, 0x02, 0x0c]);
  });
});

// ---- the core's own result codes ----

describe("the core's result codes: which check refused the rect (all map to the RfbErrors above)", () => {
  for (const impl of KERNEL_IMPLS.filter((i) => i.name !== "ts")) {
    test(`[${impl.name}] RRE / CoRRE / Hextile: length rows are E_TRUNCATED / E_TRAILING, before any read`, async () => {
      const k = await kernelsWith(impl, 40, 30);
      if (!(k instanceof WasmKernels)) throw new Error("not a WASM kernel");
      const { fn } = k.core;
      const input = (body: Uint8Array): number => {
        k.core.region("IN").set(body);
        return body.length;
      };
      const rre = (body: Uint8Array, compact: boolean, rect = RRE_RECT) =>
        fn.decodeRre(...rect, input(body), compact ? 1 : 0);
      const hex = (body: Uint8Array) => fn.decodeHextile(...HEX_RECT, input(body));
      // A fresh core's IN is zeros past the body: valid 0 × 0 subrects at (0, 0). A count that wrapped
      // would walk them to the end of memory (a trap) instead of returning E_TRUNCATED.
      expect(rre(bytes(u32(0x15555556), px(TEAL), u16(0), u16(0), u16(1), u16(1)), false)).toBe(
        E.E_TRUNCATED,
      );
      expect(rre(bytes(u32(0x20000001), px(TEAL), sub8(RED, 0, 0, 1, 1)), true)).toBe(E.E_TRUNCATED);
      expect(rre(bytes(u32(0xffffffff), px(TEAL)), false)).toBe(E.E_TRUNCATED);
      expect(rre(bytes(u32(0), px(TEAL)).subarray(0, 7), false)).toBe(E.E_TRUNCATED);
      expect(rre(bytes(u32(0), px(TEAL), 0), true)).toBe(E.E_TRAILING);
      expect(rre(bytes(u32(1), px(TEAL), sub16(RED, 8, 0, 3, 1)), false)).toBe(E.E_BAD_DATA);
      expect(rre(bytes(u32(0), px(TEAL)), true, [0, 0, 39, 2])).toBe(0);
      expect(rre(bytes(u32(0), px(TEAL)), false, [39, 0, 2, 1])).toBe(E.E_OUT_OF_BOUNDS);
      expect(hex(VALID_HEXTILE)).toBe(0);
      expect(hex(VALID_HEXTILE.subarray(0, VALID_HEXTILE.length - 1))).toBe(E.E_TRUNCATED);
      expect(hex(bytes(VALID_HEXTILE, 0))).toBe(E.E_TRAILING);
      expect(hex(withTile(1, [0x22, px(PLUM)]))).toBe(E.E_BAD_DATA);
      expect(hex(withTile(3, [0x00]))).toBe(E.E_BAD_DATA);
      expect(fn.encodeRaw(0, 29, 1, 2)).toBe(E.E_OUT_OF_BOUNDS);
      expect(fn.encodeHextile(40, 0, 1, 1)).toBe(E.E_OUT_OF_BOUNDS);
    });
  }
});

// ---- parity: TS twin against both WASM builds ----

describe("parity: the TS twin and both WASM builds", () => {
  const scene = fc.record({
    width: fc.integer({ min: 1, max: 72 }),
    height: fc.integer({ min: 1, max: 56 }),
    seed: fc.integer({ min: 1, max: 0x7fffffff }),
    format: fc.integer({ min: 0, max: FORMATS.length - 1 }),
    rect: fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true })),
    size: fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true })),
  });
  type Scene = typeof scene extends fc.Arbitrary<infer T> ? T : never;
  const rectOf = (s: Scene): [number, number, number, number] => {
    const x = Math.floor(s.rect[0] * s.width);
    const y = Math.floor(s.rect[1] * s.height);
    return [x, y, Math.round(s.size[0] * (s.width - x)), Math.round(s.size[1] * (s.height - y))];
  };

  test("random frames and rects: identical Raw and Hextile bytes, identical decoded framebuffers", async () => {
    const encoders = await Promise.all(KERNEL_IMPLS.map((i) => i.make()));
    const decoders = await Promise.all(KERNEL_IMPLS.map((i) => i.make()));
    await fc.assert(
      fc.asyncProperty(scene, async (s) => {
        const pf = FORMATS[s.format]![1];
        const frame = desktopFrame(s.width, s.height, s.seed);
        const [x, y, w, h] = rectOf(s);
        const outputs = encoders.map((k) => {
          k.resize(s.width, s.height);
          k.setInputFormat(CANONICAL);
          k.raw(0, 0, s.width, s.height, frame);
          k.setOutputFormat(pf);
          return [Buffer.from(k.encodeRaw(x, y, w, h)).toString("hex"), k.encodeHextile(x, y, w, h)] as const;
        });
        const [rawTs, hexTs] = outputs[0]!;
        for (const [raw, hex] of outputs.slice(1)) {
          expect(raw).toBe(rawTs);
          expect(Buffer.from(hex).toString("hex")).toBe(Buffer.from(hexTs).toString("hex"));
        }
        const decoded = decoders.map((k) => {
          k.resize(s.width, s.height);
          k.fill(0, 0, s.width, s.height, SENTINEL);
          k.setInputFormat(pf);
          k.hextile(x, y, w, h, hexTs);
          return k.pixels().slice();
        });
        for (const d of decoded.slice(1)) expect(mismatches(d, decoded[0]!, s.width)).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });

  test("corrupted Hextile and RRE bodies: the same outcome and the same framebuffer", async () => {
    const kernels = await Promise.all(KERNEL_IMPLS.map((i) => i.make()));
    const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
      minLength: 1,
      maxLength: 4,
    });
    await fc.assert(
      fc.asyncProperty(
        scene,
        mutation,
        fc.integer({ min: -3, max: 3 }),
        fc.integer({ min: 0, max: 2 }),
        async (s, flips, grow, kind) => {
          const pf = FORMATS[s.format]![1];
          const [x, y, w, h] = rectOf(s);
          // A valid body to start from: Hextile from the TS encoder, or an RRE / CoRRE body built here.
          const src = kernels[0]!;
          src.resize(s.width, s.height);
          src.setInputFormat(CANONICAL);
          src.raw(0, 0, s.width, s.height, desktopFrame(s.width, s.height, s.seed));
          src.setOutputFormat(pf);
          let body: Uint8Array;
          if (kind === 0) {
            body = src.encodeHextile(x, y, w, h);
          } else {
            const bpp = bytesPerPixel(pf);
            const next = prng(s.seed);
            const n = next() % 6;
            const coord = kind === 1 ? 2 : 1;
            body = new Uint8Array(4 + bpp + n * (bpp + 4 * coord));
            new DataView(body.buffer).setUint32(0, n);
            for (let i = 4; i < body.length; i++) body[i] = next() & 255;
            for (let i = 0, o = 4 + 2 * bpp; i < n; i++, o += bpp + 4 * coord) {
              const sx = next() % (w + 1);
              const sy = next() % (h + 1);
              const v = [sx, sy, next() % (w - sx + 1), next() % (h - sy + 1)];
              v.forEach((c, j) => {
                if (coord === 2) new DataView(body.buffer).setUint16(o + 2 * j, c);
                else body[o + j] = c;
              });
            }
          }
          // Corrupt a few bytes, and cut or extend the end.
          const bad = new Uint8Array(Math.max(0, body.length + grow));
          bad.set(body.subarray(0, bad.length));
          for (const [at, v] of flips) if (bad.length > 0) bad[at % bad.length] = v;
          const results = kernels.map((k) => {
            k.resize(s.width, s.height);
            k.setInputFormat(CANONICAL);
            k.raw(0, 0, s.width, s.height, desktopFrame(s.width, s.height, s.seed + 1));
            k.setInputFormat(pf);
            const code = codeOf(() =>
              kind === 0 ? k.hextile(x, y, w, h, bad) : k.rre(x, y, w, h, bad, kind === 2),
            );
            return { code, pixels: k.pixels().slice() };
          });
          for (const r of results.slice(1)) {
            expect(r.code).toBe(results[0]!.code);
            expect(mismatches(r.pixels, results[0]!.pixels, s.width)).toEqual([]);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

// ---- interop: noVNC's decoders read our output ----

forEachKernel("noVNC decodes our Raw and Hextile (canonical) to exactly our pixels", (impl) => {
  /** RGB of the noVNC RGBA canvas against our canonical framebuffer, inside the rect. */
  function noVncMismatches(rgba: Uint8Array, ours: Uint8Array, W: number, rect: readonly number[]): string[] {
    const [x, y, w, h] = rect as [number, number, number, number];
    const a = crop(rgba, W, x, y, w, h);
    for (let i = 3; i < a.length; i += 4) a[i] = 0; // A = 255 in noVNC; X = 0 in ours
    return mismatches(a, crop(ours, W, x, y, w, h), w);
  }

  test("desktop-like frames, whole and offset rects, several rects on one noVNC session", async () => {
    const [W, H] = [150, 90];
    for (const seed of [11, 12, 13]) {
      const k = await encoderWith(impl, W, H, desktopFrame(W, H, seed));
      const ours = k.pixels().slice();
      for (const encoding of [Encoding.Raw, Encoding.Hextile]) {
        const novnc = createNoVncSession(W, H);
        const rects = [
          [0, 0, W, H],
          [7, 3, 100, 50],
          [149, 89, 1, 1],
          [17, 40, 33, 17],
        ];
        for (const [x, y, w, h] of rects as [number, number, number, number][]) {
          const body = encoding === Encoding.Raw ? k.encodeRaw(x, y, w, h) : k.encodeHextile(x, y, w, h);
          novnc.decodeRect(x, y, w, h, encoding, body);
          expect({ seed, encoding, bad: noVncMismatches(novnc.rgba(), ours, W, [x, y, w, h]) }).toEqual({
            seed,
            encoding,
            bad: [],
          });
        }
      }
    }
  });

  test("a Raw tile followed by a solid tile of the previous bg, and a rect ending in Raw then one solid", async () => {
    const [W, H] = [48, 32];
    const pic = new Picture(W, H).fill(0, 0, W, H, TEAL);
    const next = prng(8);
    for (let y = 0; y < 16; y++) for (let x = 16; x < 32; x++) pic.fill(x, y, 1, 1, next() & 0xffffff);
    const k = await encoderWith(impl, W, H, pic.bytes());
    const novnc = createNoVncSession(W, H);
    // Paint noVNC's canvas red first: a tile it skipped would stay red.
    novnc.decodeRect(0, 0, W, H, Encoding.Hextile, bytes(0x02, px(RED), 0x00, 0x00, 0x00, 0x00, 0x00));
    const first = k.encodeHextile(0, 0, W, 16);
    expect(tileMasks(first, W, 16, 4)).toEqual([0x02, 0x01, 0x02]);
    novnc.decodeRect(0, 0, W, 16, Encoding.Hextile, first);
    // A rect whose last tile is Raw, then a rect of one solid tile in the colour before it.
    const endsRaw = k.encodeHextile(0, 0, 32, 16);
    expect(tileMasks(endsRaw, 32, 16, 4)).toEqual([0x02, 0x01]);
    novnc.decodeRect(0, 0, 32, 16, Encoding.Hextile, endsRaw);
    const solid = k.encodeHextile(0, 16, 16, 16);
    expect(tileMasks(solid, 16, 16, 4)).toEqual([0x02]);
    novnc.decodeRect(0, 16, 16, 16, Encoding.Hextile, solid);
    const rest = k.encodeHextile(16, 16, 32, 16);
    novnc.decodeRect(16, 16, 32, 16, Encoding.Hextile, rest);
    expect(noVncMismatches(novnc.rgba(), k.pixels().slice(), W, [0, 0, W, H])).toEqual([]);
  });
});

// ---- recorded sessions ----

forEachKernel("recorded TigerVNC sessions (RRE, Hextile) reach expected-final", (impl) => {
  for (const name of ["rre", "hextile"] as const) {
    test(`${name}: 0 mismatched pixels at every checkpoint`, async () => {
      const { index, s2c } = loadCorpus(name);
      const want = loadExpectedFinal();
      const k = await kernelsWith(impl, index.width, index.height);
      k.setInputFormat(corpusPixelFormat(index.pixelFormat));
      const checkpoints = new Set(index.checkpoints.map((c) => c.afterUpdate));
      const seen: Array<[number, number]> = [];
      for (const u of index.updates) {
        for (const r of u.rects) {
          const body = s2c.subarray(r.offset + RECT_HEADER_LENGTH, r.offset + r.length);
          if (r.enc === Encoding.Raw) k.raw(r.x, r.y, r.w, r.h, body);
          else if (r.enc === Encoding.RRE) k.rre(r.x, r.y, r.w, r.h, body, false);
          else if (r.enc === Encoding.Hextile) k.hextile(r.x, r.y, r.w, r.h, body);
          else throw new Error(`unexpected encoding ${r.enc}`);
        }
        if (checkpoints.has(u.i)) seen.push([u.i, compareRgb(k.pixels(), want)]);
      }
      expect(seen).toEqual([...checkpoints].map((i) => [i, 0]));
    });
  }
});
