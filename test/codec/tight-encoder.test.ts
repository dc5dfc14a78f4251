// The lossless Tight (7) encoder (relay/codec/tight-encoder.ts over relay/codec/tight-encode-kernels.ts):
// hand-built bodies checked field by field against rfb-codecs.md §2.8 / rfbproto.rst "Tight Encoding",
// the solid search and sub-rect split of §4.1, TPIXELs in the viewer formats we serve, exact tiling,
// noVNC 1.7's real Tight decoder over many rects on one stream and for a viewer that joins later (one
// encode, two viewers), TS twin vs WASM parity with fast-check (outputs and error codes), and the recorded
// corpus desktop. Runs against the TS twin, WASM debug and WASM release.

import { describe, expect, test } from "bun:test";
import zlib from "node:zlib";
import fc from "fast-check";
import { SessionDecoder } from "../../relay/codec/decoder.ts";
import { type EncodedRect, serializeRect, ViewerStreams } from "../../relay/codec/encoded.ts";
import type { CodecKernels } from "../../relay/codec/kernels.ts";
import { SOLID_MIN_AREA } from "../../relay/codec/tight-encode-kernels.ts";
import {
  TIGHT_MAX_AREA,
  TIGHT_MAX_WIDTH,
  type TightEncodeOptions,
  encodeTightRect,
  encodedTightBytes,
} from "../../relay/codec/tight-encoder.ts";
import { TsKernels } from "../../relay/codec/ts-kernels.ts";
import { Encoding } from "../../relay/rfb/constants.ts";
import { fromCanonical, toCanonical } from "../../relay/rfb/pixel-convert.ts";
import { bytesPerPixel, CANONICAL_FORMAT, type PixelFormat } from "../../relay/rfb/pixel-format.ts";
import { hex, prng } from "../helpers/bytes.ts";
import { CORPUS_HEIGHT, CORPUS_WIDTH, compareRgb, loadExpectedFinal } from "../helpers/corpus.ts";
import { codeOf } from "../helpers/errors.ts";
import { BGR233, BGRX, RGB565_BE, RGB565_LE } from "../helpers/formats.ts";
import { createNoVncSession } from "../helpers/novnc.ts";
import { forEachKernel, KERNEL_IMPLS, kernelsWith } from "./kernel-impls.ts";

// ---- helpers ----

/** Canonical colour R | G << 8 | B << 16. */
const rgb = (r: number, g: number, b: number) => r | (g << 8) | (b << 16);

/** Paints the whole framebuffer from f(x, y) → canonical colour (Raw in the canonical input format). */
function paint(k: CodecKernels, f: (x: number, y: number) => number): void {
  const { width, height } = k;
  const buf = new Uint8Array(width * height * 4);
  const px = new Uint32Array(buf.buffer);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) px[y * width + x] = f(x, y) & 0xffffff;
  k.raw(0, 0, width, height, buf);
}

/** Deterministic noise colour at (x, y). */
function noise(seed: number): (x: number, y: number) => number {
  const next = prng(seed);
  const cache = new Map<number, number>();
  return (x, y) => {
    const key = y * 65536 + x;
    let c = cache.get(key);
    if (c === undefined) {
      c = next() & 0xffffff;
      cache.set(key, c);
    }
    return c;
  };
}

/** A rect's body as one viewer with fresh streams receives it (rect header stripped). */
function body(r: EncodedRect, streams = new ViewerStreams()): Uint8Array {
  return serializeRect(r, streams).subarray(12);
}

/** Inflates a viewer's stream bytes (zlib header + sync-flushed blobs). */
function inflateStream(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(zlib.inflateSync(bytes, { finishFlush: zlib.constants.Z_SYNC_FLUSH }));
}

/** Tight compact length at body[at] (rfb-codecs.md §2.8): [value, bytes used]. */
function readCompact(b: Uint8Array, at: number): [number, number] {
  const b0 = b[at]!;
  if (!(b0 & 0x80)) return [b0, 1];
  const b1 = b[at + 1]!;
  if (!(b1 & 0x80)) return [(b0 & 0x7f) | (b1 << 7), 2];
  return [(b0 & 0x7f) | ((b1 & 0x7f) << 7) | (b[at + 2]! << 14), 3];
}

/** Every pixel of (x, y, w, h) covered exactly once by the rects, nothing outside. */
function expectTiles(rects: readonly EncodedRect[], x: number, y: number, w: number, h: number): void {
  const cover = new Uint8Array(w * h);
  for (const r of rects) {
    expect(r.encoding).toBe(Encoding.Tight);
    expect(r.w).toBeGreaterThan(0);
    expect(r.h).toBeGreaterThan(0);
    expect(r.w).toBeLessThanOrEqual(TIGHT_MAX_WIDTH);
    expect(r.x >= x && r.y >= y && r.x + r.w <= x + w && r.y + r.h <= y + h).toBe(true);
    const first = r.parts[0] as Uint8Array;
    if (first[0] !== 0x80) expect(r.w * r.h).toBeLessThanOrEqual(TIGHT_MAX_AREA);
    for (let row = r.y; row < r.y + r.h; row++) {
      for (let col = r.x; col < r.x + r.w; col++) cover[(row - y) * w + (col - x)]!++;
    }
  }
  expect(cover.every((c) => c === 1)).toBe(true);
}

/** Sends rects to one noVNC viewer. */
function sendTo(
  viewer: { session: ReturnType<typeof createNoVncSession>; streams: ViewerStreams },
  rects: readonly EncodedRect[],
): void {
  for (const r of rects)
    viewer.session.decodeRect(r.x, r.y, r.w, r.h, Encoding.Tight, body(r, viewer.streams));
}

function viewer(w: number, h: number) {
  return { session: createNoVncSession(w, h), streams: new ViewerStreams(2) };
}

/** A desktop-like picture: solid panels, 2-colour "text", a few-colour area, a gradient, noise. */
function desktop(seed: number): (x: number, y: number) => number {
  const n = noise(seed);
  const text = prng(seed + 1);
  const glyphs = new Map<number, boolean>();
  return (x, y) => {
    const band = ((x >> 5) + (y >> 4) * 7 + seed) % 6;
    if (band === 0 || band === 1) return rgb(0x20, 0x40, 0x80);
    if (band === 2) {
      const key = (y >> 1) * 4096 + (x >> 1);
      if (!glyphs.has(key)) glyphs.set(key, (text() & 3) === 0);
      return glyphs.get(key) ? 0 : rgb(0xff, 0xff, 0xff);
    }
    if (band === 3) return [rgb(255, 0, 0), rgb(0, 255, 0), rgb(0, 0, 255), rgb(9, 9, 9)][(x * 3 + y) & 3]!;
    if (band === 4) return rgb(x & 0xff, y & 0xff, (x + y) & 0xff);
    return n(x, y);
  };
}

/** The framebuffer's pixels in RGB against an RGBA picture (noVNC's). */
function mismatches(k: CodecKernels, rgba: Uint8Array): number {
  return compareRgb(k.pixels(), rgba);
}

// ---- hand-built vectors ----

const A = rgb(0xff, 0x00, 0x00); // TPIXEL ff 00 00
const B = rgb(0x00, 0x00, 0xff); // TPIXEL 00 00 ff
const C = rgb(0x01, 0x02, 0x03); // TPIXEL 01 02 03

forEachKernel("tight encoder: hand-built bodies", (impl) => {
  test("a solid rect is one Fill: 80 RR GG BB", async () => {
    const k = await kernelsWith(impl, 8, 8);
    paint(k, () => rgb(0x12, 0x34, 0x56));
    const rects = encodeTightRect(k, 0, 0, 8, 8);
    expect(rects.map((r) => ({ ...r, parts: [] }))).toEqual([
      { x: 0, y: 0, w: 8, h: 8, encoding: 7, parts: [] },
    ]);
    expect(body(rects[0]!)).toEqual(
      hex(`80        # compression-control: Fill (1000 << 4), no stream resets
           12 34 56  # TPIXEL R, G, B`),
    );
  });

  test("two colours: Mono palette on stream 1, bitmap under 12 bytes sent raw", async () => {
    const k = await kernelsWith(impl, 16, 2);
    paint(k, (x) => (x % 4 === 3 ? B : A)); // 12 A and 4 B per row: A is the background
    const [rect, ...more] = encodeTightRect(k, 0, 0, 16, 2);
    expect(more).toEqual([]);
    expect(body(rect!)).toEqual(
      hex(`50        # compression-control: Basic, stream 1 (bits 4-5), explicit filter (bit 6) = (1|4) << 4
           01        # filter-id: Palette
           01        # ncolours - 1: 2 colours
           ff 00 00  # palette[0] = A, the more frequent (bit 0)
           00 00 ff  # palette[1] = B (bit 1)
           11 11     # row 0: x = 3, 7 | 11, 15 are B, MSB = leftmost
           11 11     # row 1; 4 bytes < 12: no length, no zlib`),
    );
  });

  test("Mono rows are padded to whole bytes; index 0 is the more frequent colour even when it comes second", async () => {
    const k = await kernelsWith(impl, 10, 1);
    paint(k, (x) => (x === 0 || x === 9 ? B : A));
    const [rect] = encodeTightRect(k, 0, 0, 10, 1);
    expect(body(rect!)).toEqual(
      hex(`50 01 01  # Basic stream 1 + filter, Palette, 2 colours
           ff 00 00  # A: 8 pixels
           00 00 ff  # B: 2 pixels, first seen at x = 0
           80        # x = 0 is B (bit 7), x = 1..7 A
           40        # x = 8 A, x = 9 B (bit 6), 6 padding bits`),
    );
  });

  test("more colours than maxColours: full colour, copy filter, under 12 bytes raw", async () => {
    const k = await kernelsWith(impl, 3, 1);
    paint(k, (x) => [A, B, C][x]!);
    const [rect] = encodeTightRect(k, 0, 0, 3, 1); // maxColours = max(2, 3 / 16) = 2 < 3
    expect(body(rect!)).toEqual(
      hex(`00                          # Basic, stream 0, no filter-id (copy)
           ff 00 00 00 00 ff 01 02 03  # 3 TPIXELs = 9 bytes < 12: raw`),
    );
  });

  test("Indexed palette on stream 2 with a zlib part and a 1-byte compact length", async () => {
    const k = await kernelsWith(impl, 8, 8);
    paint(k, (x) => (x < 4 ? A : x < 6 ? B : C)); // 32 A, 16 B, 16 C: B is seen first of the two
    const [rect, ...more] = encodeTightRect(k, 0, 0, 8, 8); // maxColours = 64 / 16 = 4
    expect(more).toEqual([]);
    const indices = new Uint8Array(64).map((_, i) => [0, 0, 0, 0, 1, 1, 2, 2][i % 8]!);
    const zpart = rect!.parts[2];
    expect(zpart).toMatchObject({ kind: "zlib", stream: 2, length: "compact" });
    const b = body(rect!, new ViewerStreams(6));
    expect(b.subarray(0, 12)).toEqual(
      hex(`60        # Basic, stream 2, explicit filter = (2|4) << 4
           01        # Palette
           02        # 3 colours
           ff 00 00  # A (32 px)
           00 00 ff  # B (16 px, first seen at x = 4)
           01 02 03  # C (16 px)`),
    );
    const [len, lenBytes] = readCompact(b, 12);
    expect(lenBytes).toBe(1);
    expect(len).toBe(b.length - 13); // the length covers every byte after it
    expect(b.subarray(13, 15)).toEqual(hex("78 9c")); // this viewer's first blob on stream 2: zlib header
    expect(inflateStream(b.subarray(13))).toEqual(indices);
  });

  test("compact length in 2 and 3 bytes (full colour noise)", async () => {
    const k = await kernelsWith(impl, 128, 64);
    const n = noise(7);
    paint(k, n);
    for (const [w, h, bytes] of [
      [32, 16, 2], // 1536 TPIXEL bytes of noise: 128 ≤ length < 16384
      [128, 64, 3], // 24576 bytes: length ≥ 16384
    ] as const) {
      const rects = encodeTightRect(k, 0, 0, w, h);
      expect(rects.length).toBe(1);
      const b = body(rects[0]!);
      expect(b[0]).toBe(0x00);
      const [len, lenBytes] = readCompact(b, 1);
      expect(lenBytes).toBe(bytes);
      expect(len).toBe(b.length - 1 - lenBytes);
      const want = new Uint8Array(w * h * 3);
      for (let i = 0; i < w * h; i++) {
        const c = n(i % w, Math.floor(i / w));
        want.set([c & 0xff, (c >> 8) & 0xff, c >> 16], i * 3);
      }
      expect(inflateStream(b.subarray(1 + lenBytes))).toEqual(want);
    }
  });

  test("maxColours follows the compress level: area / max(4, 8 × level)", async () => {
    const k = await kernelsWith(impl, 8, 8);
    const five = [A, B, C, rgb(4, 4, 4), rgb(5, 5, 5)];
    paint(k, (x, y) => five[(x + y * 8) % 5]!);
    const ctl = (o: TightEncodeOptions) => (encodeTightRect(k, 0, 0, 8, 8, o)[0]!.parts[0] as Uint8Array)[0];
    expect(ctl({ compressLevel: 2 })).toBe(0x00); // 64 / 16 = 4 < 5: full colour
    expect(ctl({ compressLevel: 1 })).toBe(0x60); // 64 / 8 = 8: Indexed
    expect(ctl({ compressLevel: 0 })).toBe(0x60); // 64 / 4 = 16
    expect(ctl({ compressLevel: 9 })).toBe(0x00); // 64 / 72 → at least 2
  });
});

// ---- TPIXELs in the viewer's format ----

forEachKernel("tight encoder: TPIXEL per output format", (impl) => {
  const colour = rgb(0xff, 0x80, 0x00);
  const cases: ReadonlyArray<[string, PixelFormat, string]> = [
    ["canonical (RGBX)", CANONICAL_FORMAT, "ff 80 00"], // 32 bpp depth 24, 8-bit channels: R,G,B
    ["BGRX", BGRX, "ff 80 00"], // R,G,B whatever the shifts
    ["depth 32", { ...CANONICAL_FORMAT, depth: 32 }, "ff 80 00 00"], // not depth 24: the whole pixel, LE
    ["RGB565 LE", RGB565_LE, "00 fc"], // R 31 << 11 | G round(128·63/255) = 32 << 5 = 0xfc00
    ["RGB565 BE", RGB565_BE, "fc 00"],
    ["BGR233", BGR233, "27"], // R 7 | G round(128·7/255) = 4 << 3 | B 0 << 6
  ];
  for (const [name, pf, tpixel] of cases) {
    test(`Fill and palette TPIXELs in ${name}`, async () => {
      const k = await kernelsWith(impl, 16, 2);
      k.setOutputFormat(pf);
      paint(k, () => colour);
      expect(body(encodeTightRect(k, 0, 0, 16, 2)[0]!)).toEqual(hex(`80 ${tpixel}`));
      paint(k, (x) => (x === 5 ? 0 : colour));
      const mono = body(encodeTightRect(k, 0, 0, 16, 2)[0]!);
      const size = bytesPerPixel(pf) === 4 && pf.depth === 24 ? 3 : bytesPerPixel(pf);
      expect(mono.subarray(3, 3 + size)).toEqual(hex(tpixel)); // palette[0]: the colour of 30 of 32 pixels
      expect(mono.subarray(3 + size, 3 + 2 * size)).toEqual(new Uint8Array(size)); // palette[1]: black
    });
  }
});

// ---- solid search and splitting (rfb-codecs.md §4.1) ----

forEachKernel("tight encoder: solid areas and sub-rects", (impl) => {
  test("a solid half of 32×64 = 2048 px becomes a Fill, the rest one full-colour sub-rect", async () => {
    const k = await kernelsWith(impl, 64, 64);
    const n = noise(3);
    paint(k, (x, y) => (x < 32 ? C : n(x, y)));
    const rects = encodeTightRect(k, 0, 0, 64, 64);
    expect(rects.map(({ x, y, w, h }) => [x, y, w, h])).toEqual([
      [0, 0, 32, 64],
      [32, 0, 32, 64],
    ]);
    expect(body(rects[0]!)).toEqual(hex("80 01 02 03"));
    expect((rects[1]!.parts[0] as Uint8Array)[0]).toBe(0x00);
  });

  test("block-wise growth is refined pixel-wise (a solid width of 37)", async () => {
    const k = await kernelsWith(impl, 64, 64);
    const n = noise(4);
    paint(k, (x, y) => (x < 37 ? C : n(x, y)));
    const rects = encodeTightRect(k, 0, 0, 64, 64);
    expect(rects.map(({ x, y, w, h }) => [x, y, w, h])).toEqual([
      [0, 0, 37, 64],
      [37, 0, 27, 64],
    ]);
  });

  test(`a solid block whose area stays under ${SOLID_MIN_AREA} px is not split out`, async () => {
    const k = await kernelsWith(impl, 64, 64);
    const n = noise(5);
    paint(k, (x, y) => (x >= 16 && x < 32 && y >= 16 && y < 48 ? C : n(x, y))); // 16×32 = 512 px
    const rects = encodeTightRect(k, 0, 0, 64, 64);
    expect(rects.map(({ x, y, w, h }) => [x, y, w, h])).toEqual([[0, 0, 64, 64]]);
    expect(k.tight.findSolid(0, 0, 64, 64)).toEqual([]);
  });

  test("findSolid: solid areas around a hole, each a Fill, disjoint", async () => {
    const k = await kernelsWith(impl, 96, 96);
    const n = noise(6);
    paint(k, (x, y) => (x >= 40 && x < 50 && y >= 40 && y < 50 ? n(x, y) : A));
    const areas = k.tight.findSolid(0, 0, 96, 96);
    // Search (0,0,96,96): the first block grows block-wise to 96×32 (the hole stops row 32–47 at 32 wide,
    // and 32 × 96 is no larger), then pixel-wise down to row 40. Below it, (0,40,96,56): the blocks of row
    // 40 grow to at most 32×56 = 1792 px, under 2048, so none counts; row 56 grows to 96×40, then up to 50.
    expect(areas).toEqual([
      { x: 0, y: 0, w: 96, h: 40, colour: A },
      { x: 0, y: 50, w: 96, h: 46, colour: A },
    ]);
    const rects = encodeTightRect(k, 0, 0, 96, 96);
    expectTiles(rects, 0, 0, 96, 96);
    expect(rects.map(({ x, y, w, h }) => [x, y, w, h])).toEqual([
      [0, 0, 96, 40],
      [0, 50, 96, 46],
      [0, 40, 96, 10], // the band with the hole: 101 colours > 960 / 16, full colour
    ]);
    expect(rects.map((r) => (r.parts[0] as Uint8Array)[0])).toEqual([0x80, 0x80, 0x00]);
  });

  test("Fills wider than 2048 are cut to 2048", async () => {
    const k = await kernelsWith(impl, 5000, 4);
    paint(k, () => B);
    const rects = encodeTightRect(k, 0, 0, 5000, 4);
    expect(rects.map(({ x, w }) => [x, w])).toEqual([
      [0, 2048],
      [2048, 2048],
      [4096, 904],
    ]);
    for (const r of rects) expect(body(r)).toEqual(hex("80 00 00 ff"));
  });

  test("sub-rects: ≤ 2048 wide, 65536 / width rows (EncodeManager::writeRects)", async () => {
    const k = await kernelsWith(impl, 3000, 70);
    paint(k, (x, y) => ((x + y) & 1 ? A : B)); // a checkerboard: no solid block, 2 colours
    const rects = encodeTightRect(k, 0, 0, 3000, 70);
    expect(rects.map(({ x, y, w, h }) => [x, y, w, h])).toEqual([
      [0, 0, 2048, 32],
      [2048, 0, 952, 32],
      [0, 32, 2048, 32],
      [2048, 32, 952, 32],
      [0, 64, 2048, 6],
      [2048, 64, 952, 6],
    ]);
    for (const r of rects) expect((r.parts[0] as Uint8Array)[0]).toBe(0x50);
  });

  test("an empty rect gives no rects; a rect outside the framebuffer is refused per dimension", async () => {
    const k = await kernelsWith(impl, 20, 10);
    expect(encodeTightRect(k, 20, 0, 0, 10)).toEqual([]);
    expect(encodeTightRect(k, 5, 5, 0, 0)).toEqual([]);
    for (const [x, y, w, h] of [
      [1, 0, 20, 1], // x + w > width (the area would fit)
      [0, 1, 1, 10],
      [0, 0, 21, 1],
      [-1, 0, 1, 1],
      [0, 0, 1, -1],
      [0, 0, 65536, 1],
    ] as const) {
      expect(codeOf(() => encodeTightRect(k, x, y, w, h))).toBe("RECT_OUT_OF_BOUNDS");
    }
    expect(() => encodeTightRect(k, 0, 0, 1, 1, { compressLevel: 10 })).toThrow(RangeError);
    expect(() => encodeTightRect(k, 0, 0, 1, 1, { zlibLevel: -1 })).toThrow(RangeError);
  });

  test("random rects of a desktop tile exactly", async () => {
    const k = await kernelsWith(impl, 300, 200);
    paint(k, desktop(11));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 299 }),
        fc.integer({ min: 0, max: 199 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 200 }),
        (x, y, w0, h0) => {
          const w = Math.min(w0, 300 - x);
          const h = Math.min(h0, 200 - y);
          expectTiles(encodeTightRect(k, x, y, w, h, { compressLevel: 0 }), x, y, w, h);
        },
      ),
      { numRuns: 25 },
    );
  });
});

// ---- kernel argument checks (same RfbError code in every implementation) ----

forEachKernel("tight kernels: bad arguments", (impl) => {
  test("palette sizes, pixels outside the palette, TPIXEL counts, rects", async () => {
    const k = await kernelsWith(impl, 8, 4);
    paint(k, (x) => [A, B, C][x % 3]!);
    const t = k.tight;
    expect(codeOf(() => t.analyse(0, 0, 8, 4, 0))).toBe("BAD_RECT");
    expect(codeOf(() => t.analyse(0, 0, 8, 4, 257))).toBe("BAD_RECT");
    expect(codeOf(() => t.analyse(0, 0, 9, 4, 2))).toBe("RECT_OUT_OF_BOUNDS");
    expect(t.analyse(0, 0, 8, 4, 2)).toEqual(new Uint32Array(0)); // 3 colours > 2
    expect(t.analyse(0, 0, 8, 4, 3)).toEqual(Uint32Array.of(A, B, C)); // 12, 12, 8 px: A before B on the tie
    expect(t.analyse(0, 0, 0, 4, 3)).toEqual(new Uint32Array(0));
    expect(codeOf(() => t.encodeMono(0, 0, 8, 4, [A, B]))).toBe("BAD_RECT"); // C is in the rect
    expect(codeOf(() => t.encodeMono(0, 0, 8, 4, [A, B, C]))).toBe("BAD_RECT");
    expect(t.encodeMono(0, 0, 2, 1, [A, B])).toEqual(Uint8Array.of(0x40)); // A = 0, B = 1
    expect(t.encodeMono(0, 0, 2, 1, [B, A])).toEqual(Uint8Array.of(0x80));
    expect(t.encodeMono(0, 0, 1, 4, [A, A])).toEqual(new Uint8Array(4)); // equal colours: palette[0]
    expect(t.encodeMono(3, 0, 1, 4, [A, A])).toEqual(new Uint8Array(4));
    expect(codeOf(() => t.encodeMono(7, 0, 2, 1, [A, B]))).toBe("RECT_OUT_OF_BOUNDS");
    expect(codeOf(() => t.encodeIndexed(0, 0, 8, 4, [A, B]))).toBe("BAD_RECT");
    expect(codeOf(() => t.encodeIndexed(0, 0, 8, 4, []))).toBe("BAD_RECT");
    expect(codeOf(() => t.encodeIndexed(0, 0, 8, 4, new Array(257).fill(A)))).toBe("BAD_RECT");
    expect(t.encodeIndexed(0, 0, 8, 1, [C, A, B, A])).toEqual(Uint8Array.of(1, 2, 0, 1, 2, 0, 1, 2));
    expect(codeOf(() => t.encodeFull(0, 4, 1, 1))).toBe("RECT_OUT_OF_BOUNDS");
    expect(codeOf(() => t.findSolid(0, 0, 8, 5))).toBe("RECT_OUT_OF_BOUNDS");
    expect(codeOf(() => t.tpixels(new Uint32Array(16385)))).toBe("LIMIT_EXCEEDED");
    expect(t.tpixels(new Uint32Array(16384)).length).toBe(16384 * 3);
  });
});

// ---- noVNC interop: one encode, every viewer ----

forEachKernel("tight encoder: noVNC decodes it", (impl) => {
  test("many random rects on one stream, and a second viewer that joins later", async () => {
    const W = 320;
    const H = 200;
    const k = await kernelsWith(impl, W, H);
    const rand = prng(99);
    paint(k, desktop(1));
    const a = viewer(W, H);
    sendTo(a, encodeTightRect(k, 0, 0, W, H));
    expect(mismatches(k, a.session.rgba())).toBe(0);
    let b: ReturnType<typeof viewer> | undefined;
    for (let step = 0; step < 40; step++) {
      // New content in a random rect, in a random style, then that rect encoded once for every viewer.
      const x = rand() % W;
      const y = rand() % H;
      const w = 1 + (rand() % (W - x));
      const h = 1 + (rand() % (H - y));
      const picture = desktop(step + 2);
      const rows = new Uint8Array(w * h * 4);
      const px = new Uint32Array(rows.buffer);
      for (let j = 0; j < h; j++)
        for (let i = 0; i < w; i++) px[j * w + i] = picture(x + i, y + j) & 0xffffff;
      k.raw(x, y, w, h, rows);
      const rects = encodeTightRect(k, x, y, w, h, { compressLevel: rand() % 10 });
      if (step === 20) {
        // A viewer joins: it gets a full refresh, the same rects the first viewer gets.
        b = viewer(W, H);
        const full = encodeTightRect(k, 0, 0, W, H);
        sendTo(a, full);
        sendTo(b, full);
      }
      sendTo(a, rects);
      if (b) sendTo(b, rects);
    }
    expect(mismatches(k, a.session.rgba())).toBe(0);
    expect(mismatches(k, b!.session.rgba())).toBe(0);
  });
});

// ---- our own decoder, in the formats noVNC does not take ----

forEachKernel("tight encoder: SessionDecoder round trip", (impl) => {
  for (const [name, pf] of [
    ["BGRX", BGRX],
    ["RGB565 LE", RGB565_LE],
    ["RGB565 BE", RGB565_BE],
    ["BGR233", BGR233],
  ] as const) {
    test(`${name}: decodes to the framebuffer converted through ${name}`, async () => {
      const W = 160;
      const H = 100;
      const k = await kernelsWith(impl, W, H);
      k.setOutputFormat(pf);
      paint(k, desktop(21));
      const rects = encodeTightRect(k, 0, 0, W, H);
      const decoder = new SessionDecoder(new TsKernels(), W, H, pf);
      const streams = new ViewerStreams();
      for (const r of rects) decoder.decode({ ...r }, body(r, streams));
      // Expected: each canonical pixel through pf and back, as a viewer in pf sees it.
      const inPf = new Uint8Array(W * H * bytesPerPixel(pf));
      const want = new Uint8Array(W * H * 4);
      fromCanonical(k.pixels(), inPf, pf, W * H);
      toCanonical(inPf, pf, want, W * H);
      const got = decoder.pixels();
      expect(got).toEqual(want);
    });
  }
});

// ---- TS twin vs WASM ----

describe("tight encoder: TS twin and WASM agree", () => {
  test("identical EncodedRect lists and identical error codes (fast-check)", async () => {
    const W = 72;
    const H = 56;
    const impls = await Promise.all(KERNEL_IMPLS.map((impl) => kernelsWith(impl, W, H)));
    const formats: PixelFormat[] = [CANONICAL_FORMAT, BGRX, RGB565_LE, RGB565_BE, BGR233];
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: -2, max: W + 2 }),
        fc.integer({ min: -2, max: H + 2 }),
        fc.integer({ min: 0, max: W + 4 }),
        fc.integer({ min: 0, max: H + 4 }),
        fc.integer({ min: 0, max: 9 }),
        fc.integer({ min: 0, max: formats.length - 1 }),
        fc.integer({ min: 0, max: 260 }),
        (seed, x, y, w, h, level, f, maxColours) => {
          const results = impls.map((k) => {
            k.setOutputFormat(formats[f]!);
            paint(k, desktop(seed));
            const outcome = (g: () => unknown) => {
              const code = codeOf(() => g());
              return (
                code ??
                JSON.stringify(g(), (_, v) =>
                  v instanceof Uint8Array || v instanceof Uint32Array ? [...v] : v,
                )
              );
            };
            return [
              outcome(() => encodeTightRect(k, x, y, w, h, { compressLevel: level })),
              outcome(() => k.tight.findSolid(x, y, w, h)),
              outcome(() => k.tight.analyse(x, y, w, h, maxColours)),
              outcome(() => k.tight.encodeFull(x, y, w, h)),
              outcome(() => k.tight.encodeMono(x, y, w, h, [desktop(seed)(0, 0), 0xffffff])),
              outcome(() => k.tight.encodeIndexed(x, y, w, h, [0, 0xffffff, rgb(0x20, 0x40, 0x80)])),
            ];
          });
          expect(results[1]).toEqual(results[0]!);
          expect(results[2]).toEqual(results[0]!);
        },
      ),
      { numRuns: 40 },
    );
  });
});

// ---- the corpus desktop (Xvnc 1.12: 2 911 755 bytes for this frame in lossless Tight) ----

const XVNC_FRAME_BYTES = 2911755;

forEachKernel("tight encoder: corpus desktop", (impl) => {
  test("the whole 1080p frame encodes, noVNC decodes it exactly, within 10% of Xvnc's size", async () => {
    const k = await kernelsWith(impl, CORPUS_WIDTH, CORPUS_HEIGHT);
    const frame = loadExpectedFinal().slice();
    for (let i = 3; i < frame.length; i += 4) frame[i] = 0;
    k.raw(0, 0, CORPUS_WIDTH, CORPUS_HEIGHT, frame);
    const rects = encodeTightRect(k, 0, 0, CORPUS_WIDTH, CORPUS_HEIGHT);
    expectTiles(rects, 0, 0, CORPUS_WIDTH, CORPUS_HEIGHT);
    const v = viewer(CORPUS_WIDTH, CORPUS_HEIGHT);
    sendTo(v, rects);
    expect(compareRgb(k.pixels(), v.session.rgba())).toBe(0);
    const bytes = encodedTightBytes(rects);
    console.log(
      `tight [${impl.name}] corpus desktop: ${rects.length} rects, ${bytes} bytes ` +
        `(${((100 * bytes) / XVNC_FRAME_BYTES).toFixed(1)}% of Xvnc 1.12's ${XVNC_FRAME_BYTES})`,
    );
    expect(bytes).toBeLessThanOrEqual(XVNC_FRAME_BYTES * 1.1);
  });
});
