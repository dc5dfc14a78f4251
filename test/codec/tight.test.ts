// Tight (relay/codec/tight.ts header parser, framer and TS twins; wasm/assembly/tight.ts kernels): hand-built
// bodies with a comment per field (rfbproto.rst "Tight Encoding", rfb-codecs.md §2.8), decoded through
// SessionDecoder on the TS twin and both WASM builds; every bad input of bad-inputs.md table B that concerns
// Tight ("Tight compression-control byte", "Tight compact length", "Tight palette filter", "Tight gradient
// filter", "Rectangle header") refused with the same code on all three, nothing outside the rect written;
// the framer's split invariance and agreement with the recorded TigerVNC session's index; randomized
// TS-vs-WASM parity of the kernels; noVNC's own Tight decoder as an outside oracle; and the recorded session
// decoded pixel-exact at every checkpoint. zlib data is made here with pako (an independent deflate), one
// persistent Deflate per device stream, sync-flushed per rect.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import pako from "pako";
import { SessionDecoder } from "../../relay/codec/decoder.ts";
import type { CodecKernels } from "../../relay/codec/kernels.ts";
import {
  parseTightHeader,
  readCompactLength,
  TIGHT_MAX_COMPACT_LENGTH,
  tightCodec,
  tpixelBytes,
} from "../../relay/codec/tight.ts";
import { NEED_MORE, type Rect } from "../../relay/codec/types.ts";
import { ByteQueue } from "../../relay/rfb/byte-queue.ts";
import { Encoding, RECT_HEADER_LENGTH } from "../../relay/rfb/constants.ts";
import { DEFAULT_LIMITS, limitsWith, type RfbLimits } from "../../relay/rfb/limits.ts";
import {
  bytesPerPixel,
  CANONICAL_FORMAT,
  type PixelFormat,
  readPixel,
  validatePixelFormat,
  writePixel,
} from "../../relay/rfb/pixel-format.ts";
import { cat, hex, prng, splits } from "../helpers/bytes.ts";
import { compareRgb, corpusPixelFormat, loadCorpus, loadExpectedFinal } from "../helpers/corpus.ts";
import { codeOf } from "../helpers/errors.ts";
import { BGR233, BGRX, RGB565_BE, RGB565_LE } from "../helpers/formats.ts";
import { createNoVncSession } from "../helpers/novnc.ts";
import { forEachKernel, KERNEL_IMPLS, type KernelImpl } from "./kernel-impls.ts";

// ---- formats ----

const CANONICAL: PixelFormat = { ...CANONICAL_FORMAT };
/** 32 bpp big-endian, bytes X,B,G,R: still a 3-byte TPIXEL (depth 24, 8-bit channels). */
const XBGR_BE: PixelFormat = { ...CANONICAL_FORMAT, bigEndian: true };
/** 32 bpp, depth 32, 8-bit channels: the TPIXEL is the whole 4-byte PIXEL. */
const RGBX_DEPTH32: PixelFormat = { ...CANONICAL_FORMAT, depth: 32 };
/** 32 bpp big-endian depth 32, R in the top byte, padding in the low byte: 4-byte TPIXEL, padding below B. */
const RGBX_BE_DEPTH32: PixelFormat = {
  ...CANONICAL_FORMAT,
  depth: 32,
  bigEndian: true,
  redShift: 24,
  greenShift: 16,
  blueShift: 8,
};
/** 16 bpp, 5 bits each, blue low. */
const RGB555: PixelFormat = { ...RGB565_LE, depth: 15, greenMax: 31, redShift: 10 };
/** 32 bpp, 6-bit channels: a 4-byte TPIXEL whose channels are scaled. */
const RGB666_32: PixelFormat = {
  ...CANONICAL_FORMAT,
  depth: 18,
  redMax: 63,
  greenMax: 63,
  blueMax: 63,
  redShift: 12,
  greenShift: 6,
  blueShift: 0,
};
/** 32 bpp, 10-bit channels (X servers at depth 30): wider than the core's pixel reader can see. */
const RGB101010: PixelFormat = {
  ...CANONICAL_FORMAT,
  depth: 30,
  redMax: 1023,
  greenMax: 1023,
  blueMax: 1023,
  redShift: 20,
  greenShift: 10,
  blueShift: 0,
};

/** Every format the parity tests run in; the gradient filter is refused at 8 bpp (BGR233). */
const FORMATS: ReadonlyArray<[string, PixelFormat]> = [
  ["canonical", CANONICAL],
  ["BGRX", BGRX],
  ["XBGR big-endian", XBGR_BE],
  ["RGBX depth 32", RGBX_DEPTH32],
  ["RGBX big-endian depth 32", RGBX_BE_DEPTH32],
  ["RGB565 LE", RGB565_LE],
  ["RGB565 BE", RGB565_BE],
  ["RGB555", RGB555],
  ["RGB666 in 32 bpp", RGB666_32],
  ["BGR233", BGR233],
];

test("the test formats are valid, and their TPIXEL sizes are the spec's", () => {
  for (const [, pf] of FORMATS) validatePixelFormat(pf);
  validatePixelFormat(RGB101010);
  expect(FORMATS.map(([, pf]) => tpixelBytes(pf))).toEqual([3, 3, 3, 4, 4, 2, 2, 2, 4, 1]);
});

// ---- building bodies (the device's side, written from the spec, independent of the decoder) ----

const rectOf = (x: number, y: number, w: number, h: number): Rect => ({
  x,
  y,
  w,
  h,
  encoding: Encoding.Tight,
});

/** Compact length (rfbproto.rst "Tight Encoding"): 7 bits, 7 bits, 8 bits, low first. */
function compact(n: number): number[] {
  if (n < 0x80) return [n];
  if (n < 0x4000) return [(n & 0x7f) | 0x80, n >> 7];
  return [(n & 0x7f) | 0x80, ((n >> 7) & 0x7f) | 0x80, n >> 14];
}

/** One zlib stream of the device: persistent, every rect sync-flushed (what TigerVNC's TightEncoder does). */
class DeviceStream {
  #deflate = new pako.Deflate({ level: 6 });
  #chunks: Uint8Array[] = [];

  constructor() {
    this.#deflate.onData = (chunk) => this.#chunks.push(chunk);
  }

  chunk(data: Uint8Array): Uint8Array {
    this.#deflate.push(data, pako.constants.Z_SYNC_FLUSH);
    return cat(...this.#chunks.splice(0));
  }
}

/** The data part of a Basic body: raw under 12 bytes, else compact length + zlib on `stream`. */
function basicData(filtered: Uint8Array, stream?: DeviceStream): Uint8Array {
  if (filtered.length < 12) return filtered;
  if (!stream) throw new Error("test bug: ≥ 12 bytes need a device stream");
  const z = stream.chunk(filtered);
  return cat(compact(z.length), z);
}

/** A canonical colour (R | G << 8 | B << 16) from 8-bit channels. */
const rgb = (r: number, g: number, b: number): number => r | (g << 8) | (b << 16);
/** A canonical colour as a 3-byte TPIXEL. */
const tp3 = (c: number): number[] => [c & 255, (c >> 8) & 255, (c >> 16) & 255];

/** TPIXEL bytes of a canonical colour in format pf (the value each channel scales to, then packed). */
function tpixelOf(pf: PixelFormat, c: number): Uint8Array {
  if (tpixelBytes(pf) === 3) return Uint8Array.from(tp3(c));
  const out = new Uint8Array(bytesPerPixel(pf));
  const ch = (v: number, max: number) => Math.round((v * max) / 255);
  const v =
    ch(c & 255, pf.redMax) * 2 ** pf.redShift +
    ch((c >> 8) & 255, pf.greenMax) * 2 ** pf.greenShift +
    ch((c >> 16) & 255, pf.blueMax) * 2 ** pf.blueShift;
  writePixel(pf, out, 0, v);
  return out;
}

/** What a device TPIXEL decodes to: each channel round(v × 255 / max) (rfbproto "PIXEL_FORMAT"). */
function canonicalOf(pf: PixelFormat, tp: Uint8Array, off = 0): number {
  if (tpixelBytes(pf) === 3) return rgb(tp[off]!, tp[off + 1]!, tp[off + 2]!);
  const v = readPixel(pf, tp, off);
  const ch = (max: number, shift: number) => Math.round(((Math.floor(v / 2 ** shift) & max) * 255) / max);
  return rgb(ch(pf.redMax, pf.redShift), ch(pf.greenMax, pf.greenShift), ch(pf.blueMax, pf.blueShift));
}

/**
 * The gradient filter as an encoder computes it (rfbproto.rst "GradientFilter"): D = V − P mod (MAX + 1),
 * P = V[x−1] + V[y−1] − V[x−1, y−1] clamped to [0, MAX], outside the rect 0. `values` are w × h × 3 channel
 * values in each channel's own range; returns the TPIXELs of D.
 */
function gradientEncode(pf: PixelFormat, w: number, h: number, values: number[]): Uint8Array {
  const maxes = tpixelBytes(pf) === 3 ? [255, 255, 255] : [pf.redMax, pf.greenMax, pf.blueMax];
  const shifts = [pf.redShift, pf.greenShift, pf.blueShift];
  const size = tpixelBytes(pf);
  const out = new Uint8Array(w * h * size);
  const V = (x: number, y: number, c: number) => (x < 0 || y < 0 ? 0 : values[(y * w + x) * 3 + c]!);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const d = [0, 1, 2].map((c) => {
        const max = maxes[c]!;
        const p = Math.min(Math.max(V(x - 1, y, c) + V(x, y - 1, c) - V(x - 1, y - 1, c), 0), max);
        return (V(x, y, c) - p + max + 1) % (max + 1);
      });
      const o = (y * w + x) * size;
      if (size === 3) out.set(d, o);
      else
        writePixel(
          pf,
          out,
          o,
          d.reduce((s, v, c) => s + v * 2 ** shifts[c]!, 0),
        );
    }
  }
  return out;
}

/** Canonical colour of a channel-value triple of pf. */
function canonicalOfValues(pf: PixelFormat, r: number, g: number, b: number): number {
  if (tpixelBytes(pf) === 3) return rgb(r, g, b);
  const s = (v: number, max: number) => Math.round((v * 255) / max);
  return rgb(s(r, pf.redMax), s(g, pf.greenMax), s(b, pf.blueMax));
}

// ---- sessions and checks ----

const FB_W = 24;
const FB_H = 16;
/** A colour no vector uses: pixels still this colour were not written. */
const SENTINEL = rgb(0x5a, 0xa5, 0x3c);

async function sessionOf(impl: KernelImpl, pf = CANONICAL, w = FB_W, h = FB_H): Promise<SessionDecoder> {
  const k = await impl.make();
  const d = new SessionDecoder(k, w, h, pf);
  k.fill(0, 0, w, h, SENTINEL);
  return d;
}

/** Pixel (x, y) as a u32: R | G << 8 | B << 16 | X << 24. */
function pixelAt(px: Uint8Array, width: number, x: number, y: number): number {
  const i = (y * width + x) * 4;
  return (px[i]! | (px[i + 1]! << 8) | (px[i + 2]! << 16) | (px[i + 3]! << 24)) >>> 0;
}

/** Every pixel of the rect equals `want` (row-major, X = 0) and every pixel outside is the sentinel. */
function expectRect(d: SessionDecoder, r: Rect, want: readonly number[]): void {
  const px = d.pixels();
  const got: number[] = [];
  let outside = 0;
  for (let y = 0; y < d.height; y++) {
    for (let x = 0; x < d.width; x++) {
      const v = pixelAt(px, d.width, x, y);
      if (x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h) got.push(v);
      else if (v !== SENTINEL) outside++;
    }
  }
  expect(got.map((v) => v.toString(16))).toEqual(want.map((v) => v.toString(16)));
  expect(outside).toBe(0);
}

/** The code a decode throws, and that the framebuffer is exactly as before. */
function refused(d: SessionDecoder, r: Rect, body: Uint8Array): string | undefined {
  const before = d.pixels().slice();
  const code = codeOf(() => d.decode(r, body));
  expect(Buffer.from(d.pixels()).equals(Buffer.from(before))).toBe(true);
  return code;
}

const repeat = <T>(n: number, v: T): T[] => Array.from({ length: n }, () => v);

// ---- compact length ----

describe("compact length", () => {
  test("the spec's example and each size boundary", () => {
    expect(compact(10000)).toEqual([0x90, 0x4e]); // rfbproto.rst: 10000 → 90 4E
    const cases: Array<[number[], number, number]> = [
      [[0x00], 0, 1],
      [[0x7f], 127, 1],
      [[0x80, 0x01], 128, 2],
      [[0xff, 0x7f], 16383, 2],
      [[0x80, 0x80, 0x01], 16384, 3],
      [[0xff, 0xff, 0xff], TIGHT_MAX_COMPACT_LENGTH, 3],
      [[0x80, 0x00], 0, 2], // a needless continuation byte is still a length
    ];
    for (const [b, value, used] of cases) {
      expect(readCompactLength(Uint8Array.from(b), 0)).toEqual([value, used]);
      for (let n = 0; n < b.length; n++)
        expect(readCompactLength(Uint8Array.from(b.slice(0, n)), 0)).toBeUndefined();
    }
  });
});

// ---- hand-built bodies through SessionDecoder ----

const A = rgb(0x10, 0x20, 0x30);
const B = rgb(0xf0, 0xe0, 0xd0);
const C = rgb(0x01, 0x80, 0xff);

forEachKernel("tight decode", (impl) => {
  test("Fill: one TPIXEL for the whole rect", async () => {
    const d = await sessionOf(impl);
    const r = rectOf(2, 1, 5, 3);
    d.decode(r, hex("80 10 20 30")); // ctl 0x80: Fill, no resets; TPIXEL R 10 G 20 B 30
    expectRect(d, r, repeat(15, A));
  });

  test("Fill in RGB565 big-endian: a 2-byte TPIXEL, scaled to 8 bits", async () => {
    const d = await sessionOf(impl, RGB565_BE);
    const r = rectOf(0, 0, 2, 2);
    d.decode(r, hex("80 f8 1f")); // Fill; PIXEL 0xf81f big-endian: R 31, G 0, B 31
    expectRect(d, r, repeat(4, rgb(255, 0, 255)));
  });

  test("Fill in every format: the TPIXEL is 3 bytes only for 32 bpp depth 24 with 8-bit channels", async () => {
    for (const [name, pf] of FORMATS) {
      const d = await sessionOf(impl, pf);
      const r = rectOf(1, 2, 3, 2);
      const tp = tpixelOf(pf, C);
      expect([name, tp.length]).toEqual([name, tpixelBytes(pf)]);
      d.decode(r, cat([0x80], tp)); // Fill, then one TPIXEL
      expectRect(d, r, repeat(6, canonicalOf(pf, tp)));
    }
  });

  test("mono palette, raw: 1 bit per pixel, MSB leftmost, rows byte-aligned, pad bits ignored", async () => {
    const d = await sessionOf(impl);
    const r = rectOf(3, 2, 10, 2);
    d.decode(
      r,
      cat(
        [0x50], // ctl: Basic, stream 1, explicit filter (0x5 << 4)
        [0x01], // filter: palette
        [0x01], // colours − 1: 2 colours
        tp3(A), // palette 0
        tp3(B), // palette 1
        // ⌈10/8⌉ × 2 = 4 bytes < 12: raw, no length
        [0b1010_0000, 0b01_111111], // row 0: 1 0 1 0 0 0 0 0 | 0 1 (6 pad bits, all set)
        [0b1111_1111, 0b10_000000], // row 1: all 1 | 1 0
      ),
    );
    const row0 = [B, A, B, A, A, A, A, A, A, B];
    const row1 = [B, B, B, B, B, B, B, B, B, A];
    expectRect(d, r, [...row0, ...row1]);
  });

  test("mono palette at the 12-byte boundary: 11 bytes raw, 12 bytes through zlib", async () => {
    const d = await sessionOf(impl);
    const s1 = new DeviceStream();
    const mono = (rows: number[], stream?: DeviceStream) =>
      cat([0x50], [0x01], [0x01], tp3(A), tp3(C), basicData(Uint8Array.from(rows), stream)); // ctl: stream 1 + filter; palette; 2 colours
    const r11 = rectOf(0, 0, 8, 11);
    const rows11 = Array.from({ length: 11 }, (_, i) => 0x80 >> (i % 8));
    expect(mono(rows11).length).toBe(1 + 1 + 1 + 6 + 11); // no length byte
    d.decode(r11, mono(rows11));
    const r12 = rectOf(8, 0, 8, 12);
    const rows12 = Array.from({ length: 12 }, (_, i) => 0x01 << (i % 8));
    const body12 = mono(rows12, s1);
    expect(body12[9]).toBe(body12.length - 10); // compact length after the palette
    d.decode(r12, body12);
    const px = d.pixels();
    for (let y = 0; y < 11; y++)
      for (let x = 0; x < 8; x++) expect(pixelAt(px, FB_W, x, y)).toBe(x === y % 8 ? C : A);
    for (let y = 0; y < 12; y++)
      for (let x = 0; x < 8; x++) expect(pixelAt(px, FB_W, 8 + x, y)).toBe(7 - x === y % 8 ? C : A);
  });

  test("palette of 3 colours, raw: one byte per pixel", async () => {
    const d = await sessionOf(impl);
    const r = rectOf(1, 1, 3, 3);
    d.decode(
      r,
      cat(
        [0x60], // ctl: Basic, stream 2, explicit filter
        [0x01], // filter: palette
        [0x02], // colours − 1: 3 colours
        tp3(A),
        tp3(B),
        tp3(C), // palette
        [0, 1, 2, 2, 1, 0, 1, 1, 1], // 9 indices < 12: raw
      ),
    );
    expectRect(d, r, [A, B, C, C, B, A, B, B, B]);
  });

  test("palette of 256 colours through zlib", async () => {
    const d = await sessionOf(impl);
    const s2 = new DeviceStream();
    const palette = Array.from({ length: 256 }, (_, i) => rgb(i, 255 - i, (i * 7) & 255));
    const indices = Uint8Array.from({ length: 256 }, (_, i) => (i * 37) & 255);
    const r = rectOf(4, 0, 16, 16);
    d.decode(
      r,
      cat(
        [0x60], // ctl: stream 2, explicit filter
        [0x01], // filter: palette
        [0xff], // colours − 1: 256 colours
        palette.flatMap(tp3),
        basicData(indices, s2), // 256 bytes: compact length + zlib
      ),
    );
    expectRect(
      d,
      r,
      Array.from(indices, (i) => palette[i]!),
    );
  });

  test("copy filter: under 12 bytes raw (implicit and explicit filter), 12 and more through zlib", async () => {
    const d = await sessionOf(impl);
    const s0 = new DeviceStream();
    const r1 = rectOf(0, 0, 3, 1);
    d.decode(r1, cat([0x00], tp3(A), tp3(B), tp3(C))); // ctl 0x00: stream 0, no filter byte (copy); 9 bytes raw
    const r2 = rectOf(0, 1, 3, 1);
    d.decode(r2, cat([0x40], [0x00], tp3(C), tp3(B), tp3(A))); // ctl 0x40: filter byte follows; 0 = copy
    const r3 = rectOf(0, 2, 2, 2); // 12 bytes: the smallest compressed size
    const body3 = cat([0x00], basicData(Uint8Array.from([A, B, C, A].flatMap(tp3)), s0));
    expect(body3[1]).toBe(body3.length - 2);
    d.decode(r3, body3);
    const px = d.pixels();
    expect([0, 1, 2].map((x) => pixelAt(px, FB_W, x, 0))).toEqual([A, B, C]);
    expect([0, 1, 2].map((x) => pixelAt(px, FB_W, x, 1))).toEqual([C, B, A]);
    expect([0, 1, 0, 1].map((x, i) => pixelAt(px, FB_W, x, 2 + (i >> 1)))).toEqual([A, B, C, A]);
  });

  test("gradient, hand-computed: P = left + up − up-left clamped to [0, 255], V = D + P mod 256", async () => {
    const d = await sessionOf(impl);
    const r = rectOf(5, 5, 2, 2);
    // V (R,G,B):  (10,200,0)   (20,250,5)
    //             (30,100,255) (45,40,3)
    // (0,0): P = 0             D = (10,200,0)
    // (1,0): P = V(0,0)        D = (10,50,5)
    // (0,1): P = V(0,0)        D = (20,156,255)    100−200 = −100 ≡ 156
    // (1,1): P = 30+20−10 = 40, 100+250−200 = 150, 255+5−0 = 260 → 255 (clamped)
    //        D = (5, 40−150 ≡ 146, 3−255 ≡ 4)
    const D = Uint8Array.from([10, 200, 0, 10, 50, 5, 20, 156, 255, 5, 146, 4]);
    d.decode(
      r,
      cat(
        [0x40], // ctl: Basic, stream 0, filter byte follows
        [0x02], // filter: gradient
        basicData(D, new DeviceStream()), // 12 bytes: compact length + zlib
      ),
    );
    expectRect(d, r, [rgb(10, 200, 0), rgb(20, 250, 5), rgb(30, 100, 255), rgb(45, 40, 3)]);
  });

  test("gradient raw (3 × 1) and gradient zlib agree with an encoder written from the spec", async () => {
    const d = await sessionOf(impl);
    const r1 = rectOf(0, 0, 3, 1);
    const v1 = [250, 3, 128, 10, 255, 0, 7, 7, 200];
    d.decode(r1, cat([0x40, 0x02], gradientEncode(CANONICAL, 3, 1, v1))); // 9 bytes: raw
    const rnd = prng(7);
    const r2 = rectOf(3, 2, 17, 9);
    const v2 = Array.from({ length: 17 * 9 * 3 }, () => rnd() & 255);
    d.decode(r2, cat([0x40, 0x02], basicData(gradientEncode(CANONICAL, 17, 9, v2), new DeviceStream())));
    const px = d.pixels();
    for (let x = 0; x < 3; x++)
      expect(pixelAt(px, FB_W, x, 0)).toBe(rgb(v1[x * 3]!, v1[x * 3 + 1]!, v1[x * 3 + 2]!));
    for (let i = 0; i < 17 * 9; i++) {
      expect(pixelAt(px, FB_W, 3 + (i % 17), 2 + Math.floor(i / 17))).toBe(
        rgb(v2[i * 3]!, v2[i * 3 + 1]!, v2[i * 3 + 2]!),
      );
    }
  });

  test("gradient in RGB565: each channel in its own range (MAX 31 / 63), clamped and wrapped there", async () => {
    for (const pf of [RGB565_LE, RGB565_BE]) {
      const d = await sessionOf(impl, pf);
      const r = rectOf(1, 1, 2, 2);
      // V (R,G,B):  (31,63,0)  (31,0,31)
      //             (31,63,31) (1,2,3)
      // (1,1): P = 31+31−31 = 31, 63+0−63 = 0, 31+31−0 = 62 → 31 (MAX); D = (1−31, 2−0, 3−31) mod 32/64/32
      const values = [31, 63, 0, 31, 0, 31, 31, 63, 31, 1, 2, 3];
      const D = gradientEncode(pf, 2, 2, values);
      const px = (i: number) => readPixel(pf, D, i * 2);
      expect(px(3)).toBe(((1 - 31 + 32) << 11) | (2 << 5) | (3 - 31 + 32)); // D of (1,1), by hand
      d.decode(r, cat([0x40, 0x02], D)); // 8 bytes: raw
      expectRect(
        d,
        r,
        [0, 1, 2, 3].map((i) =>
          canonicalOfValues(pf, values[i * 3]!, values[i * 3 + 1]!, values[i * 3 + 2]!),
        ),
      );
    }
  });

  test("gradient with 10-bit channels (depth 30) keeps all 10 bits of the arithmetic", async () => {
    const d = await sessionOf(impl, RGB101010);
    const r = rectOf(0, 0, 5, 4);
    const rnd = prng(3);
    const values = Array.from({ length: 5 * 4 * 3 }, () => rnd() & 1023);
    d.decode(r, cat([0x40, 0x02], basicData(gradientEncode(RGB101010, 5, 4, values), new DeviceStream())));
    expectRect(
      d,
      r,
      Array.from({ length: 20 }, (_, i) =>
        canonicalOfValues(RGB101010, values[i * 3]!, values[i * 3 + 1]!, values[i * 3 + 2]!),
      ),
    );
  });

  test("a gradient rect wider than 2048 (row buffers sized from w, not a constant)", async () => {
    // RGB565: the core's row buffer in WORK; 3 000 columns.
    const d = await sessionOf(impl, RGB565_LE, 3000, 3);
    const w = 3000;
    const rnd16 = prng(11);
    const v16 = Array.from({ length: w * 2 }, () => [rnd16() & 31, rnd16() & 63, rnd16() & 31]).flat();
    d.decode(
      rectOf(0, 1, w, 2),
      cat([0x40, 0x02], basicData(gradientEncode(RGB565_LE, w, 2, v16), new DeviceStream())),
    );
    const px = d.pixels();
    for (let i = 0; i < w * 2; i += 97) {
      expect(pixelAt(px, w, i % w, 1 + Math.floor(i / w))).toBe(
        canonicalOfValues(RGB565_LE, v16[i * 3]!, v16[i * 3 + 1]!, v16[i * 3 + 2]!),
      );
    }
    const last = w * 2 - 1;
    expect(pixelAt(px, w, w - 1, 2)).toBe(
      canonicalOfValues(RGB565_LE, v16[last * 3]!, v16[last * 3 + 1]!, v16[last * 3 + 2]!),
    );
    expect(pixelAt(px, w, w - 1, 0)).toBe(SENTINEL);
    // 3-byte TPIXELs: the row above in the framebuffer; 2 500 columns.
    const wide = await sessionOf(impl, CANONICAL, 2500, 2);
    const r = rectOf(0, 0, 2500, 2);
    const rnd = prng(5);
    const values = Array.from({ length: 2500 * 2 * 3 }, () => rnd() & 255);
    wide.decode(
      r,
      cat([0x40, 0x02], basicData(gradientEncode(CANONICAL, 2500, 2, values), new DeviceStream())),
    );
    expect(pixelAt(wide.pixels(), 2500, 2499, 1)).toBe(
      rgb(values[4999 * 3]!, values[4999 * 3 + 1]!, values[4999 * 3 + 2]!),
    );
  });

  test("empty rects write nothing: gradient w = 0 (CVE-2019-15693), copy h = 0, palette w = 0, fill", async () => {
    const d = await sessionOf(impl);
    const before = d.pixels().slice();
    d.decode(rectOf(3, 3, 0, 5), hex("40 02")); // gradient, 0 bytes of data
    d.decode(rectOf(FB_W, 2, 0, 4), hex("40 02")); // empty at the right edge: x + w = W is inside
    d.decode(rectOf(3, 3, 5, 0), hex("00")); // copy, 0 bytes
    d.decode(rectOf(3, 3, 0, 2), cat([0x60, 0x01, 0x01], tp3(A), tp3(B))); // mono palette, 0 index bytes
    d.decode(rectOf(3, 3, 0, 0), cat([0x80], tp3(A))); // fill
    expect(Buffer.from(d.pixels()).equals(Buffer.from(before))).toBe(true);
  });

  test("several rects share a stream: back-references cross rects, and streams interleave", async () => {
    const d = await sessionOf(impl);
    const s0 = new DeviceStream();
    const s1 = new DeviceStream();
    const rnd = prng(99);
    const rowA = Uint8Array.from({ length: 8 * 3 }, () => rnd() & 255);
    const noise = Uint8Array.from({ length: 8 * 3 }, () => rnd() & 255);
    const first = cat([0x00], basicData(rowA, s0)); // 8×1 copy on stream 0
    const mono = cat([0x50, 0x01, 0x01], tp3(A), tp3(B), basicData(Uint8Array.from(repeat(12, 0xa5)), s1)); // stream 1
    const second = cat([0x00], basicData(rowA, s0)); // the same pixels again: a back-reference into rect 1
    const third = cat([0x00], basicData(noise, s0));
    expect(second.length).toBeLessThan(12); // 24 bytes in ~6: only a reference
    d.decode(rectOf(0, 0, 8, 1), first);
    d.decode(rectOf(8, 0, 8, 12), mono);
    d.decode(rectOf(0, 1, 8, 1), second);
    d.decode(rectOf(0, 2, 8, 1), third);
    const px = d.pixels();
    for (let x = 0; x < 8; x++) {
      const want = rgb(rowA[x * 3]!, rowA[x * 3 + 1]!, rowA[x * 3 + 2]!);
      expect(pixelAt(px, FB_W, x, 0)).toBe(want);
      expect(pixelAt(px, FB_W, x, 1)).toBe(want);
      expect(pixelAt(px, FB_W, x, 2)).toBe(rgb(noise[x * 3]!, noise[x * 3 + 1]!, noise[x * 3 + 2]!));
      expect(pixelAt(px, FB_W, 8 + x, 11)).toBe((0xa5 >> (7 - x)) & 1 ? B : A); // 0xa5 = 1010 0101
    }
  });

  test("reset bits restart a stream mid-session, on Basic and on Fill rects", async () => {
    const d = await sessionOf(impl);
    let s0 = new DeviceStream();
    const px12 = (c: number) => Uint8Array.from(repeat(4, c).flatMap(tp3));
    d.decode(rectOf(0, 0, 4, 1), cat([0x00], basicData(px12(A), s0)));
    // The device restarts stream 0: a new zlib header, which only a reset inflater accepts.
    s0 = new DeviceStream();
    const restarted = cat([0x01], basicData(px12(B), s0)); // ctl 0x01: reset stream 0, Basic on stream 0
    expect(restarted[2]).toBe(0x78); // compact length, then the new stream's zlib header
    d.decode(rectOf(0, 1, 4, 1), restarted);
    d.decode(rectOf(0, 2, 4, 1), cat([0x00], basicData(px12(C), s0))); // and it continues
    // A reset carried by a Fill rect (bit 2: stream 2) applies too.
    let s2 = new DeviceStream();
    d.decode(rectOf(4, 0, 4, 1), cat([0x20], basicData(px12(A), s2))); // ctl 0x20: Basic on stream 2
    d.decode(rectOf(8, 0, 1, 1), cat([0x84], tp3(C))); // ctl 0x84: Fill, reset stream 2
    s2 = new DeviceStream();
    d.decode(rectOf(4, 1, 4, 1), cat([0x20], basicData(px12(B), s2)));
    const px = d.pixels();
    expect([0, 1, 2].map((y) => pixelAt(px, FB_W, 3, y))).toEqual([A, B, C]);
    expect([0, 1].map((y) => pixelAt(px, FB_W, 7, y))).toEqual([A, B]);
  });

  test("without its reset bit, a restarted stream is a zlib error (CODEC_ERROR)", async () => {
    const d = await sessionOf(impl);
    d.decode(rectOf(0, 0, 4, 1), cat([0x00], basicData(Uint8Array.from(repeat(12, 1)), new DeviceStream())));
    const restarted = cat([0x00], basicData(Uint8Array.from(repeat(12, 2)), new DeviceStream()));
    expect(refused(d, rectOf(0, 1, 4, 1), restarted)).toBe("CODEC_ERROR");
  });
});

// ---- bad inputs ----

forEachKernel("tight bad inputs", (impl) => {
  const r = rectOf(2, 2, 4, 3);
  const copy12 = () => Uint8Array.from(repeat(12, 7)); // 4 TPIXELs
  // A session ends at its first error (SessionDecoder), so each bad body gets a fresh one.
  const bad = async (rect: Rect, body: Uint8Array, pf = CANONICAL, w = FB_W, h = FB_H) =>
    refused(await sessionOf(impl, pf, w, h), rect, body);

  test("compression types 10–15 are BAD_RECT (no -317 pseudo-encoding); JPEG is UNSUPPORTED", async () => {
    for (let type = 10; type <= 15; type++) {
      expect(await bad(r, cat([type << 4], tp3(A), [0, 0, 0]))).toBe("BAD_RECT");
    }
    expect(await bad(r, cat([0x90], compact(4), [0xff, 0xd8, 0xff, 0xd9]))).toBe("UNSUPPORTED"); // JPEG: length 4, SOI EOI
    expect(await bad(r, hex("9f 00"))).toBe("UNSUPPORTED"); // JPEG with resets
  });

  test("unknown filter ids, and the gradient filter at 8 bpp, are BAD_RECT", async () => {
    for (const filter of [3, 4, 0x80, 0xff])
      expect(await bad(r, cat([0x40, filter], copy12()))).toBe("BAD_RECT");
    expect(await bad(r, cat([0x40, 0x02], compact(12), new Uint8Array(12)), BGR233)).toBe("BAD_RECT"); // before the data
    expect(await bad(rectOf(0, 0, 2, 2), hex("40 02 01 02 03 04"), BGR233)).toBe("BAD_RECT");
  });

  test("palette: 1 colour, an index ≥ the palette size (raw and zlib), short index data", async () => {
    expect(await bad(rectOf(0, 0, 2, 2), cat([0x60, 0x01, 0x00], tp3(A), [0, 0, 0, 0]))).toBe("BAD_RECT");
    const three = cat([0x60, 0x01, 0x02], tp3(A), tp3(B), tp3(C));
    expect(await bad(rectOf(0, 0, 3, 1), cat(three, [0, 3, 1]))).toBe("BAD_RECT"); // index 3 of 3
    const big = Uint8Array.from({ length: 20 }, (_, i) => (i === 19 ? 200 : i % 3));
    expect(await bad(rectOf(0, 0, 5, 4), cat(three, basicData(big, new DeviceStream())))).toBe("BAD_RECT");
    expect(await bad(rectOf(0, 0, 3, 1), cat(three, [0, 1]))).toBe("BAD_RECT"); // 2 of 3 index bytes
    expect(await bad(rectOf(0, 0, 3, 1), cat([0x60, 0x01, 0x02], tp3(A), tp3(B)))).toBe("BAD_RECT"); // palette cut short
  });

  test("zlib data that inflates short (BAD_RECT) or long (LIMIT_EXCEEDED), corrupt zlib (CODEC_ERROR)", async () => {
    const short = cat([0x00], basicData(Uint8Array.from(repeat(12, 9)), new DeviceStream()));
    expect(await bad(rectOf(0, 0, 5, 1), short)).toBe("BAD_RECT"); // 12 bytes for a 15-byte rect
    const long = cat([0x00], basicData(Uint8Array.from(repeat(15, 9)), new DeviceStream()));
    expect(await bad(rectOf(0, 0, 4, 1), long)).toBe("LIMIT_EXCEEDED"); // 15 bytes for a 12-byte rect
    const z = basicData(copy12(), new DeviceStream());
    const corrupt = cat([0x00], z);
    corrupt[2] = 0x79; // zlib header 78 → 79: fails its check
    expect(await bad(rectOf(0, 0, 4, 1), corrupt)).toBe("CODEC_ERROR");
    expect(await bad(rectOf(0, 0, 4, 1), cat([0x00], compact(0)))).toBe("BAD_RECT"); // no zlib data at all
  });

  test("a compact length that disagrees with the body, trailing bytes, a cut body: BAD_RECT", async () => {
    const z = new DeviceStream().chunk(copy12());
    const rr = rectOf(0, 0, 4, 1);
    expect(await bad(rr, cat([0x00], compact(z.length + 1), z))).toBe("BAD_RECT");
    expect(await bad(rr, cat([0x00], compact(z.length - 1), z))).toBe("BAD_RECT");
    expect(await bad(rectOf(0, 0, 1, 1), cat([0x80], tp3(A), [0]))).toBe("BAD_RECT"); // fill + 1 byte
    expect(await bad(rectOf(0, 0, 1, 1), hex("80 01 02"))).toBe("BAD_RECT"); // fill, 2 of 3 bytes
    expect(await bad(rectOf(0, 0, 3, 1), cat([0x00], tp3(A), tp3(B), tp3(C), [0]))).toBe("BAD_RECT");
    expect(await bad(rectOf(0, 0, 3, 1), cat([0x00], tp3(A), tp3(B)))).toBe("BAD_RECT");
    expect(await bad(rr, hex("00 81"))).toBe("BAD_RECT"); // compact length cut after its first byte
    expect(await bad(rr, new Uint8Array(0))).toBe("BAD_RECT");
    expect(await bad(rectOf(0, 0, 2, 1), hex("40"))).toBe("BAD_RECT"); // filter byte missing
  });

  test("a rect outside the framebuffer, each dimension on its own, for every kind", async () => {
    // Well-formed bodies for each rect, so its position is the only thing wrong (nothing is inflated
    // before the bounds check, so each fresh device stream is fine).
    const bodies = (w: number, h: number): Uint8Array[] => [
      cat([0x80], tp3(A)),
      cat([0x00], basicData(new Uint8Array(w * h * 3), new DeviceStream())),
      cat(
        [0x50, 0x01, 0x01],
        tp3(A),
        tp3(B),
        basicData(new Uint8Array(Math.ceil(w / 8) * h), new DeviceStream()),
      ),
      cat([0x40, 0x02], basicData(new Uint8Array(w * h * 3), new DeviceStream())),
    ];
    for (const [x, y, w, h] of [
      [FB_W - 2, 0, 3, 1], // x + w = W + 1
      [0, FB_H - 1, 1, 2], // y + h = H + 1
      [FB_W, 0, 1, 0], // x = W with w = 1, h = 0
      [0, 0, FB_W + 1, 0],
      [1, 0, FB_W, 0],
    ] as const) {
      for (const body of bodies(w, h)) {
        expect(await bad(rectOf(x, y, w, h), body)).toBe("RECT_OUT_OF_BOUNDS");
      }
    }
    // A 2000 × 1 rect in a 1920 × 1080 framebuffer: its area is small, its width is not.
    expect(await bad(rectOf(0, 5, 2000, 1), cat([0x80], tp3(A)), CANONICAL, 1920, 1080)).toBe(
      "RECT_OUT_OF_BOUNDS",
    );
    expect(
      await bad(
        rectOf(0, 5, 2000, 1),
        cat([0x00], basicData(new Uint8Array(6000), new DeviceStream())),
        CANONICAL,
        1920,
        1080,
      ),
    ).toBe("RECT_OUT_OF_BOUNDS");
  });
});

// ---- kernels called directly: their own checks ----

forEachKernel("tight kernels", (impl) => {
  const withSentinel = async (pf: PixelFormat = CANONICAL): Promise<CodecKernels> => {
    const k = await impl.make();
    k.resize(8, 8);
    k.setInputFormat(pf);
    k.fill(0, 0, 8, 8, SENTINEL);
    return k;
  };
  const unchanged = (k: CodecKernels, f: () => void): string | undefined => {
    const before = k.pixels().slice();
    const code = codeOf(f);
    expect(Buffer.from(k.pixels()).equals(Buffer.from(before))).toBe(true);
    return code;
  };

  test("input lengths must be exact", async () => {
    const k = await withSentinel();
    expect(unchanged(k, () => k.tightCopy(0, 0, 2, 2, new Uint8Array(11)))).toBe("BAD_RECT");
    expect(unchanged(k, () => k.tightCopy(0, 0, 2, 2, new Uint8Array(13)))).toBe("BAD_RECT");
    expect(unchanged(k, () => k.tightGradient(0, 0, 2, 2, new Uint8Array(13)))).toBe("BAD_RECT");
    expect(unchanged(k, () => k.tightPalette(0, 0, 8, 2, 2, new Uint8Array(6 + 3)))).toBe("BAD_RECT"); // needs 6 + 2
    expect(unchanged(k, () => k.tightPalette(0, 0, 3, 2, 3, new Uint8Array(9 + 7)))).toBe("BAD_RECT");
  });

  test("palette sizes outside 2…256 and indices ≥ the size are BAD_RECT, checked before any write", async () => {
    const k = await withSentinel();
    expect(unchanged(k, () => k.tightPalette(0, 0, 1, 1, 1, new Uint8Array(3 + 1)))).toBe("BAD_RECT");
    expect(unchanged(k, () => k.tightPalette(0, 0, 1, 1, 257, new Uint8Array(257 * 3 + 1)))).toBe("BAD_RECT");
    const data = cat(
      new Uint8Array(5 * 3),
      Uint8Array.from({ length: 64 }, (_, i) => (i === 63 ? 5 : i % 5)),
    );
    expect(unchanged(k, () => k.tightPalette(0, 0, 8, 8, 5, data))).toBe("BAD_RECT"); // the last index bad
    expect(
      codeOf(() => k.tightPalette(0, 0, 8, 8, 256, cat(new Uint8Array(768), new Uint8Array(64).fill(255)))),
    ).toBe(undefined);
  });

  test("the gradient filter at 8 bpp is BAD_RECT; a rect outside is RECT_OUT_OF_BOUNDS", async () => {
    const k8 = await withSentinel(BGR233);
    expect(unchanged(k8, () => k8.tightGradient(0, 0, 2, 2, new Uint8Array(4)))).toBe("BAD_RECT");
    const k = await withSentinel();
    expect(unchanged(k, () => k.tightCopy(7, 0, 2, 1, new Uint8Array(6)))).toBe("RECT_OUT_OF_BOUNDS");
    expect(unchanged(k, () => k.tightPalette(0, 7, 1, 2, 2, new Uint8Array(8)))).toBe("RECT_OUT_OF_BOUNDS");
    expect(unchanged(k, () => k.tightGradient(0, 9, 1, 0, new Uint8Array(0)))).toBe("RECT_OUT_OF_BOUNDS");
  });
});

// ---- framing ----

const ctxOf = (pf: PixelFormat, limits: RfbLimits = DEFAULT_LIMITS) => ({ pf, limits });
const BASE = 5;

/** measure() after each chunk, then after bytes of the next message arrive. */
function frame(chunks: Uint8Array[], rect: Rect, pf: PixelFormat, limits?: RfbLimits): number[] {
  const q = new ByteQueue(DEFAULT_LIMITS.maxPendingBytes, 16);
  q.push(new Uint8Array(BASE).fill(0xee));
  const framer = tightCodec.framer(rect, ctxOf(pf, limits));
  const out: number[] = [];
  for (const c of chunks) {
    q.push(c);
    out.push(framer.measure(q, BASE));
  }
  q.push(hex("00 00 00 01"));
  out.push(framer.measure(q, BASE));
  return out;
}

/** Every chunking of body: NEED_MORE until the last chunk, then the body's length, and it stays that. */
function expectSplitInvariant(body: Uint8Array, rect: Rect, pf: PixelFormat): void {
  for (const { name, chunks } of splits(body)) {
    const got = frame(chunks, rect, pf);
    const want = [...repeat(chunks.length - 1, NEED_MORE), body.length, body.length];
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${name}: ${got} ≠ ${want}`);
  }
}

describe("tight framer", () => {
  const s = () => new DeviceStream();
  const vectors: Array<[string, Rect, PixelFormat, Uint8Array]> = [
    ["fill", rectOf(0, 0, 4, 4), CANONICAL, cat([0x80], tp3(A))],
    ["fill RGB565", rectOf(0, 0, 4, 4), RGB565_LE, hex("8f 1f f8")],
    ["fill 8 bpp", rectOf(0, 0, 4, 4), BGR233, hex("80 07")],
    [
      "jpeg (framed: a pipe session may forward it)",
      rectOf(0, 0, 4, 4),
      CANONICAL,
      cat([0x90], compact(200), new Uint8Array(200)),
    ],
    ["copy raw", rectOf(0, 0, 3, 1), CANONICAL, cat([0x00], tp3(A), tp3(B), tp3(C))],
    ["copy zlib", rectOf(0, 0, 40, 4), CANONICAL, cat([0x10], basicData(new Uint8Array(480).fill(3), s()))],
    [
      "copy zlib, 2-byte length",
      rectOf(0, 0, 64, 8),
      CANONICAL,
      cat(
        [0x00],
        basicData(
          Uint8Array.from({ length: 1536 }, (_, i) => (i * 7919) & 255),
          s(),
        ),
      ),
    ],
    ["mono raw", rectOf(0, 0, 10, 2), CANONICAL, cat([0x50, 0x01, 0x01], tp3(A), tp3(B), [1, 2, 3, 4])],
    [
      "indexed zlib",
      rectOf(0, 0, 5, 5),
      CANONICAL,
      cat([0x60, 0x01, 0x02], tp3(A), tp3(B), tp3(C), basicData(new Uint8Array(25), s())),
    ],
    [
      "palette in RGB565",
      rectOf(0, 0, 3, 1),
      RGB565_BE,
      cat([0x60, 0x01, 0x02], new Uint8Array(6), [0, 1, 2]),
    ],
    ["gradient raw RGB565", rectOf(0, 0, 5, 1), RGB565_LE, cat([0x40, 0x02], new Uint8Array(10))],
    ["gradient zlib", rectOf(0, 0, 6, 6), CANONICAL, cat([0x4f, 0x02], basicData(new Uint8Array(108), s()))],
    ["empty basic", rectOf(0, 0, 0, 9), CANONICAL, hex("40 02")],
  ];

  for (const [name, rect, pf, body] of vectors) {
    test(`split invariance: ${name}`, () => {
      expect(frame([body], rect, pf)).toEqual([body.length, body.length]);
      expectSplitInvariant(body, rect, pf);
    });
  }

  test("bad control bytes, filters and palettes throw as soon as their byte arrives", () => {
    const rect = rectOf(0, 0, 4, 4);
    for (const ctl of [0xa0, 0xb3, 0xc0, 0xd0, 0xe0, 0xff]) {
      expect(codeOf(() => frame([Uint8Array.of(ctl)], rect, CANONICAL))).toBe("BAD_RECT");
    }
    expect(codeOf(() => frame([hex("40"), hex("03")], rect, CANONICAL))).toBe("BAD_RECT");
    expect(codeOf(() => frame([hex("40 01 00")], rect, CANONICAL))).toBe("BAD_RECT"); // 1 colour
    expect(codeOf(() => frame([hex("40 02")], rect, BGR233))).toBe("BAD_RECT");
    expect(frame([hex("40"), hex("01 01")], rect, CANONICAL)).toEqual([NEED_MORE, NEED_MORE, NEED_MORE]);
  });

  test("a compact length over our cap is LIMIT_EXCEEDED before its data is waited for", () => {
    const limits = limitsWith({ maxPendingBytes: 1000 });
    const rect = rectOf(0, 0, 100, 100);
    expect(frame([cat([0x00], compact(990))], rect, CANONICAL, limits)).toEqual([NEED_MORE, NEED_MORE]);
    expect(codeOf(() => frame([cat([0x00], compact(999))], rect, CANONICAL, limits))).toBe("LIMIT_EXCEEDED");
    expect(codeOf(() => frame([cat([0x90], compact(5000))], rect, CANONICAL, limits))).toBe("LIMIT_EXCEEDED");
    // The largest length 3 bytes can say, with the default cap: accepted, and waited for.
    expect(frame([hex("00 ff ff ff")], rect, CANONICAL)).toEqual([NEED_MORE, NEED_MORE]);
    expect(parseTightHeader(hex("00 ff ff ff"), CANONICAL, 100, 100, Number.MAX_SAFE_INTEGER)?.length).toBe(
      4 + TIGHT_MAX_COMPACT_LENGTH,
    );
  });

  test("the recorded TigerVNC session: every rect framed at its recorded offset and length", () => {
    const { s2c, index } = loadCorpus("tight");
    const pf = corpusPixelFormat(index.pixelFormat);
    let n = 0;
    for (const u of index.updates) {
      for (const r of u.rects) {
        expect(r.enc).toBe(Encoding.Tight);
        const rect = rectOf(r.x, r.y, r.w, r.h);
        const q = new ByteQueue(DEFAULT_LIMITS.maxPendingBytes);
        // The rect header stands in for the bytes before the body; the next rect's bytes follow it.
        q.push(s2c.subarray(r.offset, Math.min(s2c.length, r.offset + r.length + 64)));
        expect(tightCodec.framer(rect, ctxOf(pf)).measure(q, RECT_HEADER_LENGTH)).toBe(
          r.length - RECT_HEADER_LENGTH,
        );
        n++;
      }
    }
    expect(n).toBe(index.totals.rects);
  });

  test("the recorded session's bodies: every split point in the header, bytewise when small", () => {
    const { s2c, index } = loadCorpus("tight");
    const pf = corpusPixelFormat(index.pixelFormat);
    const rnd = prng(2024);
    for (const r of index.updates.flatMap((u) => u.rects)) {
      const body = s2c.subarray(r.offset + RECT_HEADER_LENGTH, r.offset + r.length);
      const rect = rectOf(r.x, r.y, r.w, r.h);
      // Every cut up to one byte past the header (where all the framer's decisions are), and 4 beyond.
      const header = parseTightHeader(body, pf, r.w, r.h, Number.MAX_SAFE_INTEGER)!;
      const cuts = new Set<number>();
      for (let i = 1; i <= header.dataOffset + 1; i++) cuts.add(i);
      for (let i = 0; i < 4; i++) cuts.add(1 + Math.floor(rnd() * (body.length - 1)));
      for (const cut of cuts) {
        if (cut >= body.length) continue;
        expect(frame([body.subarray(0, cut), body.subarray(cut)], rect, pf)).toEqual([
          NEED_MORE,
          body.length,
          body.length,
        ]);
      }
      if (body.length <= 2048) {
        const got = frame(
          Array.from(body, (_, i) => body.subarray(i, i + 1)),
          rect,
          pf,
        );
        expect(got.slice(-2)).toEqual([body.length, body.length]);
        expect(got.slice(0, -2).every((v) => v === NEED_MORE)).toBe(true);
      }
    }
  });
});

// ---- randomized parity of the kernels: TS twin = WASM debug = WASM release ----

interface KernelCase {
  format: number;
  kind: "copy" | "palette" | "gradient";
  x: number;
  y: number;
  w: number;
  h: number;
  colours: number;
  /** −1, 0, +1: the input one byte short, exact, one byte long. */
  lengthError: number;
  seed: number;
  /** Indices drawn below `colours` + this (so some are out of range). */
  indexSlack: number;
}

const PARITY_FB = 40;

function kernelInput(c: KernelCase): Uint8Array {
  const pf = FORMATS[c.format]![1];
  const size = tpixelBytes(pf);
  const rnd = prng(c.seed);
  let n: number;
  if (c.kind === "palette") {
    const rowBytes = c.colours === 2 ? Math.ceil(c.w / 8) : c.w;
    const palette = Uint8Array.from({ length: c.colours * size }, () => rnd() & 255);
    const indices = Uint8Array.from({ length: rowBytes * c.h }, () =>
      c.colours === 2 ? rnd() & 255 : rnd() % (c.colours + c.indexSlack),
    );
    const data = cat(palette, indices);
    n = data.length + c.lengthError;
    return n <= data.length ? data.subarray(0, Math.max(0, n)) : cat(data, [0]);
  }
  n = c.w * c.h * size + c.lengthError;
  return Uint8Array.from({ length: Math.max(0, n) }, () => rnd() & 255);
}

const kernelCase: fc.Arbitrary<KernelCase> = fc
  .record({
    format: fc.integer({ min: 0, max: FORMATS.length - 1 }),
    kind: fc.constantFrom("copy" as const, "palette" as const, "gradient" as const),
    x: fc.integer({ min: 0, max: PARITY_FB }),
    y: fc.integer({ min: 0, max: PARITY_FB }),
    w: fc.integer({ min: 0, max: 37 }),
    h: fc.integer({ min: 0, max: 19 }),
    colours: fc.oneof(fc.constant(2), fc.integer({ min: 3, max: 256 }), fc.constantFrom(1, 257)),
    lengthError: fc.oneof(
      { weight: 8, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.constantFrom(-1, 1) },
    ),
    seed: fc.integer({ min: 1, max: 0x7fffffff }),
    indexSlack: fc.oneof(
      { weight: 6, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) },
    ),
  })
  // Mostly inside the framebuffer; now and then one pixel out.
  .map((c) =>
    c.seed % 9 === 0 ? c : { ...c, x: Math.min(c.x, PARITY_FB - c.w), y: Math.min(c.y, PARITY_FB - c.h) },
  )
  .filter((c) => c.x >= 0 && c.y >= 0);

describe("tight kernels: TS twin, WASM debug and WASM release agree", () => {
  test("random copy / palette / gradient inputs in every format: same pixels, same error codes", async () => {
    const kernels = await Promise.all(KERNEL_IMPLS.map((impl) => impl.make()));
    for (const k of kernels) k.resize(PARITY_FB, PARITY_FB);
    fc.assert(
      fc.property(kernelCase, (c) => {
        const pf = FORMATS[c.format]![1];
        const data = kernelInput(c);
        const results = kernels.map((k) => {
          k.setInputFormat(pf);
          k.fill(0, 0, PARITY_FB, PARITY_FB, SENTINEL);
          const code = codeOf(() => {
            if (c.kind === "copy") k.tightCopy(c.x, c.y, c.w, c.h, data);
            else if (c.kind === "palette") k.tightPalette(c.x, c.y, c.w, c.h, c.colours, data);
            else k.tightGradient(c.x, c.y, c.w, c.h, data);
          });
          return { code, pixels: Buffer.from(k.pixels()).toString("hex") };
        });
        for (const r of results.slice(1)) {
          expect(r.code).toBe(results[0]!.code);
          expect(r.pixels === results[0]!.pixels).toBe(true);
        }
      }),
      { numRuns: 300, seed: 0x7167 },
    );
  });

  test("gradient in 4-byte and 2-byte TPIXEL formats matches the spec's encoder, all implementations", async () => {
    const kernels = await Promise.all(KERNEL_IMPLS.map((impl) => impl.make()));
    for (const k of kernels) k.resize(PARITY_FB, PARITY_FB);
    const gradientFormats = FORMATS.filter(([, pf]) => pf.bitsPerPixel !== 8);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: gradientFormats.length - 1 }),
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 0x7fffffff }),
        (f, w, h, seed) => {
          const pf = gradientFormats[f]![1];
          const maxes = tpixelBytes(pf) === 3 ? [255, 255, 255] : [pf.redMax, pf.greenMax, pf.blueMax];
          const rnd = prng(seed);
          // Flat runs, ramps and noise, so the clamp and the wrap-around both happen.
          const values = Array.from({ length: w * h * 3 }, (_, i) => {
            const max = maxes[i % 3]!;
            const mode = seed % 3;
            return mode === 0 ? rnd() % (max + 1) : mode === 1 ? (i * 5) % (max + 1) : i % 7 === 0 ? max : 0;
          });
          const data = gradientEncode(pf, w, h, values);
          for (const k of kernels) {
            k.setInputFormat(pf);
            k.fill(0, 0, PARITY_FB, PARITY_FB, SENTINEL);
            k.tightGradient(1, 2, w, h, data);
            const px = k.pixels();
            for (let i = 0; i < w * h; i++) {
              const want = canonicalOfValues(pf, values[i * 3]!, values[i * 3 + 1]!, values[i * 3 + 2]!);
              const got = pixelAt(px, PARITY_FB, 1 + (i % w), 2 + Math.floor(i / w));
              if (got !== want)
                throw new Error(`${k.name} pixel ${i}: ${got.toString(16)} ≠ ${want.toString(16)}`);
            }
          }
        },
      ),
      { numRuns: 120, seed: 0x6d },
    );
  });

  test("palette colours and copied TPIXELs convert as the spec scales them, in every format", async () => {
    const kernels = await Promise.all(KERNEL_IMPLS.map((impl) => impl.make()));
    for (const k of kernels) k.resize(PARITY_FB, PARITY_FB);
    for (const [name, pf] of FORMATS) {
      const size = tpixelBytes(pf);
      const rnd = prng(name.length);
      const tpixels = Uint8Array.from({ length: 16 * size }, () => rnd() & 255);
      for (const k of kernels) {
        k.setInputFormat(pf);
        k.tightCopy(0, 0, 16, 1, tpixels);
        k.tightPalette(
          0,
          1,
          16,
          1,
          16,
          cat(
            tpixels,
            Uint8Array.from({ length: 16 }, (_, i) => 15 - i),
          ),
        );
        const px = k.pixels();
        for (let i = 0; i < 16; i++) {
          expect(pixelAt(px, PARITY_FB, i, 0)).toBe(canonicalOf(pf, tpixels, i * size));
          expect(pixelAt(px, PARITY_FB, 15 - i, 1)).toBe(canonicalOf(pf, tpixels, i * size));
        }
      }
    }
  });
});

// ---- noVNC's Tight decoder as an outside oracle (canonical format: 3-byte TPIXELs, as noVNC assumes) ----

describe("tight: the same pixels as noVNC 1.7's decoder", () => {
  test("random sequences of Fill / copy / mono / indexed / gradient rects over shared streams", async () => {
    const kernels = await Promise.all(KERNEL_IMPLS.map((impl) => impl.make()));
    const W = 48;
    const H = 32;
    const rectArb = fc.record({
      kind: fc.constantFrom("fill", "copy", "mono", "indexed", "gradient"),
      stream: fc.integer({ min: 0, max: 3 }),
      reset: fc.boolean(),
      x: fc.integer({ min: 0, max: W - 1 }),
      y: fc.integer({ min: 0, max: H - 1 }),
      w: fc.integer({ min: 1, max: 30 }),
      h: fc.integer({ min: 1, max: 20 }),
      seed: fc.integer({ min: 1, max: 0x7fffffff }),
    });
    fc.assert(
      fc.property(fc.array(rectArb, { minLength: 1, maxLength: 8 }), (specs) => {
        const novnc = createNoVncSession(W, H);
        const decoders = kernels.map((k) => new SessionDecoder(k, W, H, CANONICAL));
        const device = [0, 1, 2, 3].map(() => new DeviceStream());
        for (const spec of specs) {
          const w = Math.min(spec.w, W - spec.x);
          const h = Math.min(spec.h, H - spec.y);
          const rnd = prng(spec.seed);
          let ctl = 0;
          if (spec.reset) {
            ctl |= 1 << spec.stream;
            device[spec.stream] = new DeviceStream();
          }
          const dev = device[spec.stream]!;
          let body: Uint8Array;
          if (spec.kind === "fill") {
            body = cat([ctl | 0x80], [rnd() & 255, rnd() & 255, rnd() & 255]);
          } else if (spec.kind === "copy") {
            const px = Uint8Array.from({ length: w * h * 3 }, () => (rnd() % 4) * 85); // repetitive: zlib references
            body = cat([ctl | (spec.stream << 4)], basicData(px, dev));
          } else if (spec.kind === "gradient") {
            const values = Array.from({ length: w * h * 3 }, (_, i) => (i * 3 + (rnd() & 15)) & 255);
            body = cat(
              [ctl | ((spec.stream | 4) << 4), 0x02],
              basicData(gradientEncode(CANONICAL, w, h, values), dev),
            );
          } else {
            const colours = spec.kind === "mono" ? 2 : 3 + (rnd() % 254);
            const rowBytes = colours === 2 ? Math.ceil(w / 8) : w;
            const palette = Uint8Array.from({ length: colours * 3 }, () => rnd() & 255);
            const indices = Uint8Array.from({ length: rowBytes * h }, () =>
              colours === 2 ? rnd() & 255 : rnd() % colours,
            );
            body = cat([ctl | ((spec.stream | 4) << 4), 0x01, colours - 1], palette, basicData(indices, dev));
          }
          const rect = rectOf(spec.x, spec.y, w, h);
          novnc.decodeRect(rect.x, rect.y, w, h, Encoding.Tight, body);
          for (const d of decoders) d.decode(rect, body);
        }
        for (const d of decoders) expect(compareRgb(d.pixels(), novnc.rgba())).toBe(0);
      }),
      { numRuns: 60, seed: 0x4e56 },
    );
  });
});

// ---- the recorded TigerVNC session ----

forEachKernel("tight: the recorded TigerVNC session", (impl) => {
  test("pixel-exact at every checkpoint", async () => {
    const { s2c, index } = loadCorpus("tight");
    const expected = loadExpectedFinal();
    const d = new SessionDecoder(
      await impl.make(),
      index.width,
      index.height,
      corpusPixelFormat(index.pixelFormat),
    );
    const seen: number[] = [];
    for (const u of index.updates) {
      for (const r of u.rects) {
        d.decode(
          rectOf(r.x, r.y, r.w, r.h),
          s2c.subarray(r.offset + RECT_HEADER_LENGTH, r.offset + r.length),
        );
      }
      for (const cp of index.checkpoints) {
        if (cp.afterUpdate === u.i) {
          expect(compareRgb(d.pixels(), expected)).toBe(0);
          seen.push(u.i);
        }
      }
    }
    expect(seen).toEqual(index.checkpoints.map((c) => c.afterUpdate));
  }, 30_000);
});
