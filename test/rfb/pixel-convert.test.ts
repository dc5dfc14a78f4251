// Tests for relay/rfb/pixel-convert.ts: hand-built pixels with a comment per field, the rounding rule, the path
// each format pair takes, and randomized cross-checks over random valid formats against a slow per-pixel
// reference built on pixel-format.ts (readPixel/writePixel, packPixel/unpackPixel).

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  convertPixels,
  fromCanonical,
  makeTranslator,
  type PixelTranslator,
  scaleChannel,
  type TranslatorKind,
  toCanonical,
  translatorFor,
} from "../../relay/rfb/pixel-convert.ts";
import {
  bytesPerPixel,
  CANONICAL_FORMAT,
  type PixelFormat,
  packPixel,
  readPixel,
  samePixelFormat,
  unpackPixel,
  validatePixelFormat,
  writePixel,
} from "../../relay/rfb/pixel-format.ts";
import { codeOf } from "../helpers/errors.ts";

function pf(
  bitsPerPixel: number,
  depth: number,
  bigEndian: boolean,
  [redMax, greenMax, blueMax]: [number, number, number],
  [redShift, greenShift, blueShift]: [number, number, number],
): PixelFormat {
  return {
    bitsPerPixel,
    depth,
    bigEndian,
    trueColour: true,
    redMax,
    greenMax,
    blueMax,
    redShift,
    greenShift,
    blueShift,
  };
}

const CANONICAL: PixelFormat = { ...CANONICAL_FORMAT };
/** TigerVNC's default server format on little-endian hosts: bytes B,G,R,X. */
const BGRX = pf(32, 24, false, [255, 255, 255], [16, 8, 0]);
/** The same channel layout stored big-endian: bytes X,R,G,B. */
const XRGB_BE = pf(32, 24, true, [255, 255, 255], [16, 8, 0]);
const RGB565_LE = pf(16, 16, false, [31, 63, 31], [11, 5, 0]);
const RGB565_BE = pf(16, 16, true, [31, 63, 31], [11, 5, 0]);
const RGB555_BE = pf(16, 15, true, [31, 31, 31], [10, 5, 0]);
/** 8 bpp true colour as TigerVNC's "bgr233": R 3 bits at 0, G 3 bits at 3, B 2 bits at 6. */
const BGR233 = pf(8, 8, false, [7, 7, 3], [0, 3, 6]);
const RGB222 = pf(8, 6, false, [3, 3, 3], [4, 2, 0]);
/** 10 bits per channel (X2R10G10B10). */
const RGB101010 = pf(32, 30, false, [1023, 1023, 1023], [20, 10, 0]);
/** A 16-bit red channel: the largest per-channel table a valid format can ask for. */
const R16G8B8 = pf(32, 32, true, [65535, 255, 255], [16, 8, 0]);
const COLOUR_MAPPED: PixelFormat = { ...pf(8, 8, false, [0, 0, 0], [0, 0, 0]), trueColour: false };

const NAMED = [CANONICAL, BGRX, XRGB_BE, RGB565_LE, RGB565_BE, RGB555_BE, BGR233, RGB222, RGB101010, R16G8B8];

/** Converts with a fresh (uncached) translator and returns the destination bytes. */
function run(
  src: PixelFormat,
  dst: PixelFormat,
  bytes: number[] | Uint8Array,
  count?: number,
): Uint8Array<ArrayBuffer> {
  const t = makeTranslator(src, dst);
  const n = count ?? bytes.length / t.srcBytesPerPixel;
  const out = new Uint8Array(n * t.dstBytesPerPixel);
  t.translate(Uint8Array.from(bytes), out, n);
  return out;
}

// ---- the slow reference ---------------------------------------------------------------------------------

/** Channel values of a pixel value, by division (independent of the module's shifts and masks). */
function channelsOf(f: PixelFormat, v: number): [number, number, number] {
  return [
    Math.floor(v / 2 ** f.redShift) % (f.redMax + 1),
    Math.floor(v / 2 ** f.greenShift) % (f.greenMax + 1),
    Math.floor(v / 2 ** f.blueShift) % (f.blueMax + 1),
  ];
}

/** Per pixel: read, take each channel, Math.round(c × dstMax / srcMax), assemble, write. */
function reference(a: PixelFormat, b: PixelFormat, src: Uint8Array, count: number): Uint8Array<ArrayBuffer> {
  const ab = bytesPerPixel(a);
  const bb = bytesPerPixel(b);
  if (samePixelFormat(a, b)) return src.slice(0, count * ab); // the documented copy path keeps padding bits
  const out = new Uint8Array(count * bb);
  for (let i = 0; i < count; i++) {
    const [r, g, bl] = channelsOf(a, readPixel(a, src, i * ab));
    const v =
      Math.round((r * b.redMax) / a.redMax) * 2 ** b.redShift +
      Math.round((g * b.greenMax) / a.greenMax) * 2 ** b.greenShift +
      Math.round((bl * b.blueMax) / a.blueMax) * 2 ** b.blueShift;
    writePixel(b, out, i * bb, v);
  }
  return out;
}

// ---- random valid formats ---------------------------------------------------------------------------------

const ORDERS = [
  [0, 1, 2],
  [0, 2, 1],
  [1, 0, 2],
  [1, 2, 0],
  [2, 0, 1],
  [2, 1, 0],
] as const;

/** A valid true-colour format with the given channel widths: random order, gaps, depth and byte order. */
function layout(bpp: number, bits: [number, number, number]): fc.Arbitrary<PixelFormat> {
  const used = bits[0] + bits[1] + bits[2];
  const free = bpp - used;
  return fc
    .record({
      order: fc.constantFrom(...ORDERS),
      cuts: fc.array(fc.integer({ min: 0, max: free }), { minLength: 3, maxLength: 3 }),
      depth: fc.integer({ min: used, max: bpp }),
      bigEndian: fc.boolean(),
    })
    .map(({ order, cuts, depth, bigEndian }) => {
      const [c1, c2, c3] = [...cuts].sort((x, y) => x - y) as [number, number, number];
      const gaps = [c1, c2 - c1, c3 - c2]; // the rest, free − c3, is left above the last channel
      const shifts: [number, number, number] = [0, 0, 0];
      let pos = 0;
      for (let k = 0; k < 3; k++) {
        const ch = order[k]!;
        pos += gaps[k]!;
        shifts[ch] = pos;
        pos += bits[ch]!;
      }
      const maxes = bits.map((n) => 2 ** n - 1) as [number, number, number];
      return pf(bpp, depth, bigEndian, maxes, shifts);
    });
}

const randomFormat: fc.Arbitrary<PixelFormat> = fc.constantFrom(8, 16, 32).chain((bpp) =>
  fc
    .tuple(
      fc.integer({ min: 1, max: Math.min(16, bpp - 2) }),
      fc.integer({ min: 1, max: 16 }),
      fc.integer({ min: 1, max: 16 }),
    )
    .map(([r, g, b]): [number, number, number] => {
      const g2 = Math.min(g, bpp - r - 1);
      return [r, g2, Math.min(b, bpp - r - g2)];
    })
    .chain((bits) => layout(bpp, bits)),
);

/** Random formats, often one of the named ones so that every fast path turns up. */
const anyFormat = fc.oneof(randomFormat, fc.constantFrom(...NAMED));

/** Formats with at least 8 bits in every channel (these are 32 bpp). */
const wideFormat = fc
  .tuple(fc.integer({ min: 8, max: 10 }), fc.integer({ min: 8, max: 10 }), fc.integer({ min: 8, max: 10 }))
  .chain((bits) => layout(32, bits));

/** Pairs: two random formats, a format and a copy of itself, or two named formats (the fast paths). */
const formatPair: fc.Arbitrary<[PixelFormat, PixelFormat]> = fc.oneof(
  fc.tuple(anyFormat, anyFormat),
  anyFormat.map((a): [PixelFormat, PixelFormat] => [a, { ...a }]),
  fc.tuple(fc.constantFrom(...NAMED), fc.constantFrom(...NAMED)),
);

/** Random pixel bytes for count pixels of f, padding bits included (they must be ignored). */
function pixelsOf(f: PixelFormat): fc.Arbitrary<{ bytes: Uint8Array<ArrayBuffer>; count: number }> {
  return fc
    .integer({ min: 0, max: 40 })
    .chain((count) =>
      fc
        .uint8Array({ minLength: count * bytesPerPixel(f), maxLength: count * bytesPerPixel(f) })
        .map((bytes) => ({ bytes, count })),
    );
}

describe("the random format generator", () => {
  test("only makes formats that validatePixelFormat accepts, in every bpp", () => {
    const seen = new Set<number>();
    fc.assert(
      fc.property(randomFormat, (f) => {
        validatePixelFormat(f);
        seen.add(f.bitsPerPixel);
      }),
      { numRuns: 500 },
    );
    expect([...seen].sort((a, b) => a - b)).toEqual([8, 16, 32]);
  });
});

// ---- rounding ---------------------------------------------------------------------------------------------

describe("scaleChannel", () => {
  test("is round-half-up of value × dstMax / srcMax, and a half never occurs (every max is odd)", () => {
    const mismatches: number[][] = [];
    let halves = 0;
    let checked = 0;
    for (let sn = 1; sn <= 16; sn++) {
      const sMax = 2 ** sn - 1;
      for (let dn = 1; dn <= 16; dn++) {
        const dMax = 2 ** dn - 1;
        for (let v = 0; v <= sMax; v += sn > 12 ? 37 : 1) {
          if ((2 * v * dMax) % (2 * sMax) === sMax) halves++; // the exact quotient would be k + ½
          if (scaleChannel(v, sMax, dMax) !== Math.round((v * dMax) / sMax)) mismatches.push([sn, dn, v]);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(100_000);
    expect(halves).toBe(0);
    expect(mismatches).toEqual([]);
  });

  test("endpoints map to endpoints; equal maxes are the identity", () => {
    for (let n = 1; n <= 16; n++) {
      const m = 2 ** n - 1;
      expect(scaleChannel(0, m, 255)).toBe(0);
      expect(scaleChannel(m, m, 255)).toBe(255);
      for (let v = 0; v <= m; v += n > 10 ? 97 : 1) expect(scaleChannel(v, m, m)).toBe(v);
    }
  });

  test("hand-worked values: 5-bit 1 → 8, 16 → 132; 6-bit 1 → 4, 32 → 130; 8-bit 128 → 3-bit 4, 2-bit 2", () => {
    expect(scaleChannel(1, 31, 255)).toBe(8); // 255/31 = 8.23
    expect(scaleChannel(16, 31, 255)).toBe(132); // 131.61
    expect(scaleChannel(1, 63, 255)).toBe(4); // 4.05
    expect(scaleChannel(32, 63, 255)).toBe(130); // 129.52
    expect(scaleChannel(128, 255, 7)).toBe(4); // 3.51
    expect(scaleChannel(128, 255, 3)).toBe(2); // 1.51
  });

  test("direct scaling, not via 8 bits: 5-bit 6 → 7-bit 25 (via 8 bits it would be 24)", () => {
    expect(scaleChannel(6, 31, 127)).toBe(25); // 6 × 127 / 31 = 24.58
    expect(scaleChannel(scaleChannel(6, 31, 255), 255, 127)).toBe(24); // 49, then 49 × 127 / 255 = 24.40
    const f5 = pf(16, 15, false, [31, 31, 31], [10, 5, 0]);
    const f7 = pf(32, 21, false, [127, 127, 127], [14, 7, 0]);
    expect(run(f5, f7, [6 << 5, 0])).toEqual(Uint8Array.of(25 << 7, 25 >>> 1, 0, 0)); // green 6 → 25 at shift 7
  });
});

// ---- hand-built vectors -------------------------------------------------------------------------------------

describe("hand-built vectors", () => {
  // Canonical pixels: bytes R, G, B, X.
  const RED = [255, 0, 0, 0];
  const GREEN = [0, 255, 0, 0];
  const BLUE = [0, 0, 255, 0];
  const WHITE = [255, 255, 255, 0];
  const GREY = [128, 128, 128, 0];

  test("RGB565 little-endian: red F800, green 07E0, blue 001F, white FFFF (low byte first)", () => {
    expect([...run(CANONICAL, RGB565_LE, [...RED, ...GREEN, ...BLUE, ...WHITE])]).toEqual([
      0x00, 0xf8, 0xe0, 0x07, 0x1f, 0x00, 0xff, 0xff,
    ]);
  });

  test("RGB565 big-endian: the same values, high byte first", () => {
    expect([...run(CANONICAL, RGB565_BE, [...RED, ...GREEN, ...BLUE, ...WHITE])]).toEqual([
      0xf8, 0x00, 0x07, 0xe0, 0x00, 0x1f, 0xff, 0xff,
    ]);
  });

  test("RGB565 to canonical: 5- and 6-bit values scale up with rounding", () => {
    // R=16 (10000), G=32 (100000), B=1 → 1000 0100 0000 0001 = 0x8401; LE bytes 01 84.
    expect([...run(RGB565_LE, CANONICAL, [0x01, 0x84])]).toEqual([132, 130, 8, 0]);
  });

  test("BGR233: red 07, green 38, blue C0, white FF; mid grey → R4 G4 B2 = A4", () => {
    expect([...run(CANONICAL, BGR233, [...RED, ...GREEN, ...BLUE, ...WHITE, ...GREY])]).toEqual([
      0x07, 0x38, 0xc0, 0xff, 0xa4,
    ]);
  });

  test("BGR233 to canonical: A4 → R 4/7, G 4/7, B 2/3 of 255", () => {
    expect([...run(BGR233, CANONICAL, [0xa4])]).toEqual([146, 146, 170, 0]); // 145.71, 145.71, 170
  });

  test("canonical → BGRX: bytes R,G,B,X become B,G,R,0 (padding written as zero)", () => {
    expect([...run(CANONICAL, BGRX, [0x11, 0x22, 0x33, 0x99])]).toEqual([0x33, 0x22, 0x11, 0x00]);
  });

  test("canonical → XRGB big-endian: 0,R,G,B", () => {
    expect([...run(CANONICAL, XRGB_BE, [0x11, 0x22, 0x33, 0x99])]).toEqual([0x00, 0x11, 0x22, 0x33]);
  });

  test("canonical → 10-bit channels: 255 → 1023, 1 → 4 (4.01)", () => {
    // R=1023 at 20, G=4 at 10, B=0: 0x3FF01000 little-endian.
    expect([...run(CANONICAL, RGB101010, [255, 1, 0, 0])]).toEqual([0x00, 0x10, 0xf0, 0x3f]);
  });

  test("a 16-bit channel scales to 8 bits: 0x8080 → 128, 0x807F → 128, 0x7F7F → 127", () => {
    // R16G8B8 big-endian: R in the top two bytes, G, B.
    const src = [0x80, 0x80, 0, 0, 0x80, 0x7f, 0, 0, 0x7f, 0x7f, 0, 0];
    expect([...run(R16G8B8, CANONICAL, src)]).toEqual([128, 0, 0, 0, 128, 0, 0, 0, 127, 0, 0, 0]);
  });
});

// ---- which path ---------------------------------------------------------------------------------------------

describe("path selection", () => {
  const cases: [string, PixelFormat, PixelFormat, TranslatorKind][] = [
    ["canonical → canonical", CANONICAL, CANONICAL, "copy"],
    ["BGRX → BGRX (another object, another depth)", BGRX, { ...BGRX, depth: 32 }, "copy"],
    ["BGR233 LE → BGR233 BE (byte order is moot at 8 bpp)", BGR233, { ...BGR233, bigEndian: true }, "copy"],
    ["canonical → BGRX", CANONICAL, BGRX, "byte-shuffle"],
    ["BGRX → canonical", BGRX, CANONICAL, "byte-shuffle"],
    ["canonical → XRGB big-endian", CANONICAL, XRGB_BE, "byte-shuffle"],
    ["canonical → RGB565", CANONICAL, RGB565_LE, "byte-lut"],
    ["canonical → BGR233", CANONICAL, BGR233, "byte-lut"],
    ["canonical → 10-bit", CANONICAL, RGB101010, "byte-lut"],
    ["BGR233 → canonical", BGR233, CANONICAL, "pixel-lut"],
    ["BGR233 → RGB222", BGR233, RGB222, "pixel-lut"],
    ["RGB565 → canonical", RGB565_LE, CANONICAL, "general"],
    ["RGB565 LE → BE", RGB565_LE, RGB565_BE, "general"],
    ["10-bit → canonical", RGB101010, CANONICAL, "general"],
  ];
  test.each(cases)("%s: %s", (_name, a, b, kind) => {
    expect(makeTranslator(a, b).kind).toBe(kind);
  });

  test("every path agrees with the reference on random pixels", () => {
    for (const [, a, b] of cases) {
      fc.assert(
        fc.property(pixelsOf(a), ({ bytes, count }) => {
          expect(run(a, b, bytes, count)).toEqual(reference(a, b, bytes, count));
        }),
        { numRuns: 30 },
      );
    }
  });
});

// ---- randomized cross-checks --------------------------------------------------------------------------------

describe("random formats", () => {
  test("convert(A → B) equals the per-pixel reference, padding bits in the source ignored", () => {
    const seen = new Set<TranslatorKind>();
    fc.assert(
      fc.property(
        formatPair.chain(([a, b]) => fc.tuple(fc.constant(a), fc.constant(b), pixelsOf(a))),
        ([a, b, { bytes, count }]) => {
          seen.add(makeTranslator(a, b).kind);
          expect(run(a, b, bytes, count)).toEqual(reference(a, b, bytes, count));
        },
      ),
      { numRuns: 400 },
    );
    expect(seen.size).toBe(5); // every path was exercised
  });

  test("toCanonical equals unpackPixel per pixel (X = 0) for any source format", () => {
    fc.assert(
      fc.property(
        anyFormat
          .filter((f) => !samePixelFormat(f, CANONICAL))
          .chain((a) => fc.tuple(fc.constant(a), pixelsOf(a))),
        ([a, { bytes, count }]) => {
          const out = new Uint8Array(count * 4);
          toCanonical(bytes, a, out, count);
          for (let i = 0; i < count; i++) {
            const [r, g, b] = unpackPixel(a, readPixel(a, bytes, i * bytesPerPixel(a)));
            expect([...out.subarray(i * 4, i * 4 + 4)]).toEqual([r, g, b, 0]);
          }
        },
      ),
    );
  });

  test("fromCanonical equals packPixel per pixel for any destination format", () => {
    fc.assert(
      fc.property(
        anyFormat.filter((f) => !samePixelFormat(f, CANONICAL)),
        pixelsOf(CANONICAL),
        (b, { bytes, count }) => {
          const out = new Uint8Array(count * bytesPerPixel(b));
          fromCanonical(bytes, out, b, count);
          const expected = new Uint8Array(out.length);
          for (let i = 0; i < count; i++) {
            const [r, g, bl] = [bytes[i * 4]!, bytes[i * 4 + 1]!, bytes[i * 4 + 2]!];
            writePixel(b, expected, i * bytesPerPixel(b), packPixel(b, r, g, bl));
          }
          expect(out).toEqual(expected);
        },
      ),
    );
  });

  test("when either side has 8-bit channels, A → B equals packPixel(B, unpackPixel(A))", () => {
    const eight = fc.oneof(fc.constantFrom(CANONICAL, BGRX, XRGB_BE), layout(32, [8, 8, 8]));
    const pair = fc.oneof(fc.tuple(eight, anyFormat), fc.tuple(anyFormat, eight));
    fc.assert(
      fc.property(
        pair
          .filter(([a, b]) => !samePixelFormat(a, b))
          .chain(([a, b]) => fc.tuple(fc.constant(a), fc.constant(b), pixelsOf(a))),
        ([a, b, { bytes, count }]) => {
          const expected = new Uint8Array(count * bytesPerPixel(b));
          for (let i = 0; i < count; i++) {
            const [r, g, bl] = unpackPixel(a, readPixel(a, bytes, i * bytesPerPixel(a)));
            writePixel(b, expected, i * bytesPerPixel(b), packPixel(b, r, g, bl));
          }
          expect(run(a, b, bytes, count)).toEqual(expected);
        },
      ),
    );
  });

  test("identity: A → A is an exact byte copy, padding bits included", () => {
    fc.assert(
      fc.property(
        anyFormat.chain((a) => fc.tuple(fc.constant(a), pixelsOf(a))),
        ([a, { bytes, count }]) => {
          expect(run(a, a, bytes, count)).toEqual(bytes);
        },
      ),
    );
  });

  test("equal maxes and shifts keep every channel value exactly, across byte order and depth", () => {
    fc.assert(
      fc.property(
        anyFormat.chain((a) => fc.tuple(fc.constant(a), fc.boolean(), pixelsOf(a))),
        ([a, flip, { bytes, count }]) => {
          const b = { ...a, bigEndian: flip ? !a.bigEndian : a.bigEndian, depth: a.bitsPerPixel };
          const out = run(a, b, bytes, count);
          const n = bytesPerPixel(a);
          for (let i = 0; i < count; i++) {
            expect(channelsOf(b, readPixel(b, out, i * n))).toEqual(
              channelsOf(a, readPixel(a, bytes, i * n)),
            );
          }
        },
      ),
    );
  });

  test("canonical → F → canonical is exact when F has ≥ 8 bits per channel", () => {
    fc.assert(
      fc.property(wideFormat, pixelsOf(CANONICAL), (f, { bytes, count }) => {
        const mid = new Uint8Array(count * 4);
        const back = new Uint8Array(count * 4);
        fromCanonical(bytes, mid, f, count);
        toCanonical(mid, f, back, count);
        // X comes back as zero, except when F is canonical itself (the copy path keeps it).
        const expected = samePixelFormat(f, CANONICAL) ? bytes : bytes.map((v, i) => (i % 4 === 3 ? 0 : v));
        expect(back).toEqual(expected);
      }),
    );
  });

  test("…and is not exact with fewer bits: canonical red 4 → RGB565 0 → 0", () => {
    const mid = run(CANONICAL, RGB565_LE, [4, 0, 0, 0]);
    expect([...run(RGB565_LE, CANONICAL, mid)]).toEqual([0, 0, 0, 0]);
  });

  test("in place, when both formats have the same bytes per pixel, equals out of place", () => {
    const sameSize = anyFormat.chain((a) =>
      fc.tuple(
        fc.constant(a),
        anyFormat.filter((b) => b.bitsPerPixel === a.bitsPerPixel),
        pixelsOf(a),
      ),
    );
    fc.assert(
      fc.property(sameSize, ([a, b, { bytes, count }]) => {
        const buf = bytes.slice();
        makeTranslator(a, b).translate(buf, buf, count);
        expect(buf).toEqual(run(a, b, bytes, count));
      }),
    );
  });
});

// ---- buffers, offsets, errors -------------------------------------------------------------------------------

describe("runs and buffers", () => {
  test("only count pixels are written; the rest of dst is untouched", () => {
    for (const [a, b] of [
      [CANONICAL, CANONICAL],
      [CANONICAL, BGRX],
      [CANONICAL, RGB565_LE],
      [BGR233, CANONICAL],
      [RGB565_LE, CANONICAL],
    ] as const) {
      const t = makeTranslator(a, b);
      const dst = new Uint8Array(10 * t.dstBytesPerPixel).fill(0xab);
      t.translate(new Uint8Array(10 * t.srcBytesPerPixel).fill(0x5a), dst, 3);
      expect(dst.subarray(3 * t.dstBytesPerPixel).every((v) => v === 0xab)).toBe(true);
      expect(dst.subarray(0, 3 * t.dstBytesPerPixel).every((v) => v === 0xab)).toBe(false);
    }
  });

  test("count 0 writes nothing", () => {
    const dst = new Uint8Array(4).fill(7);
    convertPixels(new Uint8Array(0), RGB565_LE, dst, CANONICAL, 0);
    expect([...dst]).toEqual([7, 7, 7, 7]);
  });

  test("subarrays at odd byte offsets work (no aligned typed-array views inside)", () => {
    const backing = new Uint8Array(1 + 8);
    backing.set([0x11, 0x22, 0x33, 0x00, 0x44, 0x55, 0x66, 0x00], 1);
    const out = new Uint8Array(3 + 4);
    convertPixels(backing.subarray(1), CANONICAL, out.subarray(3), RGB565_BE, 2);
    expect([...out.subarray(3)]).toEqual([...run(CANONICAL, RGB565_BE, [...backing.subarray(1)])]);
  });

  test("a run longer than either buffer is LIMIT_EXCEEDED, before anything is written", () => {
    const t = makeTranslator(CANONICAL, RGB565_LE);
    const dst = new Uint8Array(8).fill(9);
    expect(codeOf(() => t.translate(new Uint8Array(12), dst, 4))).toBe("LIMIT_EXCEEDED"); // src holds 3
    expect(codeOf(() => t.translate(new Uint8Array(20), dst, 5))).toBe("LIMIT_EXCEEDED"); // dst holds 4
    expect([...dst]).toEqual([9, 9, 9, 9, 9, 9, 9, 9]);
  });

  test("a count that is not a size is SIZE_OVERFLOW", () => {
    const t = makeTranslator(CANONICAL, RGB565_LE);
    for (const n of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(codeOf(() => t.translate(new Uint8Array(8), new Uint8Array(8), n))).toBe("SIZE_OVERFLOW");
    }
  });
});

describe("formats that are refused", () => {
  test("colour-mapped on either side is UNSUPPORTED", () => {
    expect(codeOf(() => makeTranslator(COLOUR_MAPPED, CANONICAL))).toBe("UNSUPPORTED");
    expect(codeOf(() => makeTranslator(CANONICAL, COLOUR_MAPPED))).toBe("UNSUPPORTED");
    expect(codeOf(() => toCanonical(new Uint8Array(1), COLOUR_MAPPED, new Uint8Array(4), 1))).toBe(
      "UNSUPPORTED",
    );
  });

  test("invalid formats are BAD_PIXEL_FORMAT, on either side", () => {
    const bad = [
      { ...CANONICAL, bitsPerPixel: 24 },
      { ...RGB565_LE, redMax: 30 },
      { ...RGB565_LE, greenShift: 6 }, // overlaps red
      { ...COLOUR_MAPPED, bitsPerPixel: 16, depth: 16 },
    ];
    for (const f of bad) {
      expect(codeOf(() => makeTranslator(f, CANONICAL))).toBe("BAD_PIXEL_FORMAT");
      expect(codeOf(() => makeTranslator(CANONICAL, f))).toBe("BAD_PIXEL_FORMAT");
    }
  });
});

describe("translator cache", () => {
  test("equal formats (different objects) share a translator; a changed format gets another", () => {
    const a: PixelTranslator = translatorFor({ ...RGB565_LE }, { ...CANONICAL });
    expect(translatorFor({ ...RGB565_LE }, { ...CANONICAL })).toBe(a);
    expect(translatorFor({ ...RGB565_LE, bigEndian: true }, CANONICAL)).not.toBe(a);
  });

  test("past its size it still gives correct results", () => {
    // 40 distinct formats (R shift 0–1, G shift 9–15, depth 24–32 vary together), more than the cache holds.
    for (let i = 0; i < 40; i++) {
      const f = pf(32, 24 + (i % 9), false, [255, 255, 255], [i % 2, 9 + (i % 7), 24]);
      const src = Uint8Array.of(1, 2, 3, 4);
      const out = new Uint8Array(4);
      toCanonical(src, f, out, 1);
      expect(out).toEqual(reference(f, CANONICAL, src, 1));
    }
  });
});
