// Hextile (relay/codec/hextile.ts): hand-built vectors (one comment per field, rfbproto.rst "Hextile Encoding",
// rfb-codecs.md §2.4), framing errors, split invariance, encode→decode round trips in every viewer format we
// serve, the noVNC blank-after-Raw trap, and the recorded TigerVNC session in ../shared/corpus.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Framebuffer } from "../../relay/codec/framebuffer.ts";
import { HextileMask, hextileCodec, hextileDecodeTs, hextileEncoder } from "../../relay/codec/hextile.ts";
import { checkRectInside } from "../../relay/codec/kernels.ts";
import { type DecodeContext, NEED_MORE, type Rect } from "../../relay/codec/types.ts";
import { ByteQueue } from "../../relay/rfb/byte-queue.ts";
import { Encoding, RECT_HEADER_LENGTH, ServerMsg } from "../../relay/rfb/constants.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import { DEFAULT_LIMITS } from "../../relay/rfb/limits.ts";
import {
  CANONICAL_FORMAT,
  type PixelFormat,
  isCanonical,
  packPixel,
  unpackPixel,
  validatePixelFormat,
} from "../../relay/rfb/pixel-format.ts";
import {
  CORPUS_HEIGHT,
  CORPUS_WIDTH,
  type CorpusRect,
  compareRgb,
  corpusPixelFormat,
  loadCorpus,
  loadCorpusSummary,
  loadExpectedFinal,
} from "../helpers/corpus.ts";
import { BGR233, BGRX, RGB565_BE, RGB565_LE } from "../helpers/formats.ts";

// ---- pixel formats a viewer may set ----

const CANONICAL: PixelFormat = { ...CANONICAL_FORMAT };
/** 32 bpp big-endian, bytes X,B,G,R: canonical values, other byte order. */
const XBGR_BE: PixelFormat = { ...CANONICAL_FORMAT, bigEndian: true };

const FORMATS: ReadonlyArray<[string, PixelFormat]> = [
  ["canonical", CANONICAL],
  ["BGRX", BGRX],
  ["XBGR big-endian", XBGR_BE],
  ["RGB565 LE", RGB565_LE],
  ["RGB565 BE", RGB565_BE],
  ["BGR233", BGR233],
];

const { Raw, BackgroundSpecified, ForegroundSpecified, AnySubrects, SubrectsColoured } = HextileMask;

// ---- helpers ----

const ctxOf = (pf: PixelFormat): DecodeContext => ({ pf, limits: DEFAULT_LIMITS });
const rectOf = (x: number, y: number, w: number, h: number): Rect => ({
  x,
  y,
  w,
  h,
  encoding: Encoding.Hextile,
});
const bytes = (...parts: Array<number | ArrayLike<number>>): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "number" ? [p] : Array.from(p))));
/** A canonical PIXEL on the wire: R, G, B, X. */
const px = (r: number, g: number, b: number): number[] => [r, g, b, 0];
const repeat = (n: number, part: readonly number[]): number[] => Array.from({ length: n }, () => part).flat();

/** Bytes that precede the rect body in the queue (its header, in real life): measure() is called at this base. */
const BASE = 5;

/**
 * Feeds `body` to one framer in the chunks that `cuts` (ascending offsets inside the body) define, calling
 * measure after each push, then appends bytes of a following message. Returns every measure result.
 */
function feed(body: Uint8Array, rect: Rect, pf: PixelFormat, cuts: readonly number[]): number[] {
  const q = new ByteQueue(DEFAULT_LIMITS.maxPendingBytes, 16);
  const framer = hextileCodec.framer(rect, ctxOf(pf));
  q.push(new Uint8Array(BASE).fill(0xee));
  const results: number[] = [];
  let at = 0;
  for (const cut of [...cuts, body.length]) {
    q.push(body.subarray(at, cut));
    at = cut;
    results.push(framer.measure(q, BASE));
  }
  q.push(bytes(0xff, 0x1f, 0x00)); // the next message's bytes must not change the answer
  results.push(framer.measure(q, BASE));
  return results;
}

/** Measured length of a complete body pushed at once (with trailing bytes after it). */
function measure(body: Uint8Array, rect: Rect, pf: PixelFormat = CANONICAL): number {
  return feed(body, rect, pf, [])[0]!;
}

/** The TS twin's Hextile decoder behind the checks TsKernels makes first (rect inside the framebuffer). */
function decodeHextile(body: Uint8Array, rect: Rect, pf: PixelFormat, fb: Framebuffer): void {
  checkRectInside(rect.x, rect.y, rect.w, rect.h, fb.width, fb.height);
  hextileDecodeTs(fb, pf, rect.x, rect.y, rect.w, rect.h, body);
}

function decodeInto(fb: Framebuffer, body: Uint8Array, rect: Rect, pf: PixelFormat = CANONICAL): Framebuffer {
  decodeHextile(body, rect, pf, fb);
  return fb;
}

/** A framebuffer filled with a colour no vector uses, so writes outside the rect show. */
function sentinelFb(w: number, h: number): Framebuffer {
  const fb = new Framebuffer(w, h);
  fb.fill(0, 0, w, h, 0x5a, 0xa5, 0x3c);
  return fb;
}
const SENTINEL: [number, number, number] = [0x5a, 0xa5, 0x3c];

const rgbAt = (fb: Framebuffer, x: number, y: number): [number, number, number] => {
  const i = (y * fb.width + x) * 4;
  return [fb.data[i]!, fb.data[i + 1]!, fb.data[i + 2]!];
};

/** Every pixel of a w×h area at (x, y) as [r,g,b] rows. */
function area(
  fb: Framebuffer,
  x: number,
  y: number,
  w: number,
  h: number,
): Array<Array<[number, number, number]>> {
  return Array.from({ length: h }, (_, r) => Array.from({ length: w }, (_, c) => rgbAt(fb, x + c, y + r)));
}

/** Counts pixels outside the rect that are not the sentinel. */
function touchedOutside(fb: Framebuffer, rect: Rect): number {
  let n = 0;
  for (let y = 0; y < fb.height; y++) {
    for (let x = 0; x < fb.width; x++) {
      const inside = x >= rect.x && x < rect.x + rect.w && y >= rect.y && y < rect.y + rect.h;
      if (!inside && rgbAt(fb, x, y).some((v, k) => v !== SENTINEL[k])) n++;
    }
  }
  return n;
}

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof RfbError ? e.code : `not an RfbError: ${e}`;
  }
  return undefined;
}

/** Tile masks of a body, walked independently of the codec (any format: needs only the bytes per pixel). */
function tileMasks(body: Uint8Array, w: number, h: number, bpp: number): number[] {
  const masks: number[] = [];
  let o = 0;
  for (let ty = 0; ty < h; ty += 16) {
    for (let tx = 0; tx < w; tx += 16) {
      const tw = Math.min(16, w - tx);
      const th = Math.min(16, h - ty);
      const m = body[o++]!;
      masks.push(m);
      if (m & Raw) {
        o += tw * th * bpp;
        continue;
      }
      if (m & BackgroundSpecified) o += bpp;
      if (m & ForegroundSpecified) o += bpp;
      if (m & AnySubrects) o += 1 + body[o]! * (m & SubrectsColoured ? bpp + 2 : 2);
    }
  }
  expect(o).toBe(body.length);
  return masks;
}

/** mulberry32: a small seeded PRNG, so a failing case replays from its seed (fast-check prints it). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- hand-built vectors (canonical format unless stated: PIXEL = R, G, B, X) ----

const RED = px(255, 0, 0);
const GREEN = px(0, 255, 0);
const BLUE = px(0, 0, 255);
const WHITE = px(255, 255, 255);
const GREY = px(128, 128, 128);

interface Vector {
  name: string;
  rect: Rect;
  pf: PixelFormat;
  body: Uint8Array;
  /** Framebuffer size; the rect sits inside with a sentinel border. */
  fbW: number;
  fbH: number;
}

const rawTile: Vector = {
  name: "raw tile",
  rect: rectOf(1, 1, 2, 2),
  pf: CANONICAL,
  fbW: 4,
  fbH: 4,
  body: bytes(
    Raw, // tile 0 (2×2): mask Raw
    RED, // (0,0)
    GREEN, // (1,0)
    BLUE, // (0,1)
    px(9, 8, 7), // (1,1)
  ),
};

const bgOnly: Vector = {
  name: "bg-only tiles",
  rect: rectOf(1, 1, 48, 16),
  pf: CANONICAL,
  fbW: 50,
  fbH: 18,
  body: bytes(
    BackgroundSpecified, // tile 0: mask BackgroundSpecified
    GREY, //   bg
    0x00, // tile 1: mask 0, the same bg as tile 0
    BackgroundSpecified, // tile 2: mask BackgroundSpecified
    BLUE, //   bg
  ),
};

const mono: Vector = {
  name: "mono subrects",
  rect: rectOf(2, 1, 16, 16),
  pf: CANONICAL,
  fbW: 20,
  fbH: 18,
  body: bytes(
    BackgroundSpecified | ForegroundSpecified | AnySubrects, // tile 0: mask 0x0e
    WHITE, //   bg
    RED, //   fg
    2, //   nsub
    0x00, //   subrect 0: x 0, y 0
    0x00, //              w 1, h 1
    0x52, //   subrect 1: x 5, y 2
    0x31, //              w 4, h 2
  ),
};

const coloured: Vector = {
  name: "coloured subrects",
  rect: rectOf(0, 0, 16, 16),
  pf: CANONICAL,
  fbW: 17,
  fbH: 17,
  body: bytes(
    BackgroundSpecified | AnySubrects | SubrectsColoured, // tile 0: mask 0x1a
    WHITE, //   bg
    3, //   nsub
    GREEN, //   subrect 0 colour
    0x11, //              x 1, y 1
    0x22, //              w 3, h 3
    BLUE, //   subrect 1 colour
    0x22, //              x 2, y 2 (overlaps subrect 0: later wins)
    0x00, //              w 1, h 1
    RED, //   subrect 2 colour
    0xff, //              x 15, y 15
    0x00, //              w 1, h 1 (the tile's last pixel)
  ),
};

const fgCarry: Vector = {
  name: "fg and bg carried into the next tile",
  rect: rectOf(0, 0, 32, 16),
  pf: CANONICAL,
  fbW: 33,
  fbH: 17,
  body: bytes(
    BackgroundSpecified | ForegroundSpecified | AnySubrects, // tile 0: mask 0x0e
    WHITE, //   bg
    RED, //   fg
    1, //   nsub
    0x00, //   subrect 0: x 0, y 0
    0xf0, //              w 16, h 1 (top row)
    AnySubrects, // tile 1: mask 0x08, bg and fg carried from tile 0
    1, //   nsub
    0x0f, //   subrect 0: x 0, y 15
    0xf0, //              w 16, h 1 (bottom row)
  ),
};

const edge17 = (() => {
  const tile2: number[] = [];
  for (let i = 0; i < 16; i++) tile2.push(...px(i * 16, 255 - i * 16, i)); // (i,0) of the 16×1 tile
  return {
    name: "edge tiles of a 17×17 rect",
    rect: rectOf(1, 2, 17, 17),
    pf: CANONICAL,
    fbW: 20,
    fbH: 21,
    body: bytes(
      BackgroundSpecified, // tile 0 (16×16 at 0,0): mask BackgroundSpecified
      GREY, //   bg
      ForegroundSpecified | AnySubrects, // tile 1 (1×16 at 16,0): mask 0x0c, bg carried
      BLUE, //   fg
      1, //   nsub
      0x05, //   subrect 0: x 0, y 5
      0x02, //              w 1, h 3
      Raw, // tile 2 (16×1 at 0,16): mask Raw
      tile2, //   16 PIXELs
      BackgroundSpecified, // tile 3 (1×1 at 16,16): mask BackgroundSpecified (needed after Raw)
      RED, //   bg
    ),
  };
})();

/** RGB565 little-endian: PIXEL = U16 LE, rrrrrggggggbbbbb. */
const rgb565: Vector = {
  name: "RGB565 LE mono subrects",
  rect: rectOf(0, 0, 4, 2),
  pf: RGB565_LE,
  fbW: 5,
  fbH: 3,
  body: bytes(
    BackgroundSpecified | ForegroundSpecified | AnySubrects, // tile 0: mask 0x0e
    [0x00, 0xf8], //   bg 0xf800: red 31 → 255
    [0xe0, 0x07], //   fg 0x07e0: green 63 → 255
    1, //   nsub
    0x10, //   subrect 0: x 1, y 0
    0x11, //              w 2, h 2
  ),
};

/** BGR233: PIXEL = U8 bbgggrrr. */
const bgr233: Vector = {
  name: "BGR233 raw tile",
  rect: rectOf(0, 0, 3, 1),
  pf: BGR233,
  fbW: 3,
  fbH: 2,
  body: bytes(
    Raw, // tile 0 (3×1): mask Raw
    0x07, //   red 7 → 255,0,0
    0xc0, //   blue 3 → 0,0,255
    0x53, //   01 010 011: r 3 → 109, g 2 → 73, b 1 → 85
  ),
};

const VECTORS: readonly Vector[] = [rawTile, bgOnly, mono, coloured, fgCarry, edge17, rgb565, bgr233];

describe("hextile hand-built vectors", () => {
  test("raw tile", () => {
    const v = rawTile;
    expect(measure(v.body, v.rect)).toBe(17);
    const fb = decodeInto(sentinelFb(v.fbW, v.fbH), v.body, v.rect);
    expect(area(fb, 1, 1, 2, 2)).toEqual([
      [
        [255, 0, 0],
        [0, 255, 0],
      ],
      [
        [0, 0, 255],
        [9, 8, 7],
      ],
    ]);
    expect(touchedOutside(fb, v.rect)).toBe(0);
  });

  test("bg-only tiles; mask 0 reuses the previous bg", () => {
    const v = bgOnly;
    expect(measure(v.body, v.rect)).toBe(11);
    const fb = decodeInto(sentinelFb(v.fbW, v.fbH), v.body, v.rect);
    for (let y = 1; y < 17; y++) {
      for (let x = 1; x < 49; x++) expect(rgbAt(fb, x, y)).toEqual(x < 33 ? [128, 128, 128] : [0, 0, 255]);
    }
    expect(touchedOutside(fb, v.rect)).toBe(0);
  });

  test("mono subrects in fg over bg", () => {
    const v = mono;
    expect(measure(v.body, v.rect)).toBe(14);
    const fb = decodeInto(sentinelFb(v.fbW, v.fbH), v.body, v.rect);
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++) {
        const fg = (x === 0 && y === 0) || (x >= 5 && x < 9 && y >= 2 && y < 4);
        expect(rgbAt(fb, 2 + x, 1 + y)).toEqual(fg ? [255, 0, 0] : [255, 255, 255]);
      }
    }
    expect(touchedOutside(fb, v.rect)).toBe(0);
  });

  test("coloured subrects, later ones drawn over earlier ones", () => {
    const v = coloured;
    expect(measure(v.body, v.rect)).toBe(24);
    const fb = decodeInto(sentinelFb(v.fbW, v.fbH), v.body, v.rect);
    expect(rgbAt(fb, 0, 0)).toEqual([255, 255, 255]);
    expect(rgbAt(fb, 1, 1)).toEqual([0, 255, 0]);
    expect(rgbAt(fb, 3, 3)).toEqual([0, 255, 0]);
    expect(rgbAt(fb, 2, 2)).toEqual([0, 0, 255]);
    expect(rgbAt(fb, 4, 4)).toEqual([255, 255, 255]);
    expect(rgbAt(fb, 15, 15)).toEqual([255, 0, 0]);
    expect(touchedOutside(fb, v.rect)).toBe(0);
  });

  test("fg and bg carry over to the next tile", () => {
    const v = fgCarry;
    const fb = decodeInto(sentinelFb(v.fbW, v.fbH), v.body, v.rect);
    expect(rgbAt(fb, 5, 0)).toEqual([255, 0, 0]);
    expect(rgbAt(fb, 5, 15)).toEqual([255, 255, 255]);
    expect(rgbAt(fb, 20, 0)).toEqual([255, 255, 255]);
    expect(rgbAt(fb, 20, 15)).toEqual([255, 0, 0]);
    expect(touchedOutside(fb, v.rect)).toBe(0);
  });

  test("edge tiles of a 17×17 rect are 16×16, 1×16, 16×1 and 1×1", () => {
    const v = edge17;
    expect(measure(v.body, v.rect)).toBe(5 + 8 + 65 + 5);
    const fb = decodeInto(sentinelFb(v.fbW, v.fbH), v.body, v.rect);
    expect(rgbAt(fb, 1, 2)).toEqual([128, 128, 128]);
    expect(rgbAt(fb, 16, 17)).toEqual([128, 128, 128]);
    expect(area(fb, 17, 2, 1, 16).map((row) => row[0])).toEqual(
      Array.from({ length: 16 }, (_, y) => (y >= 5 && y < 8 ? [0, 0, 255] : [128, 128, 128])),
    );
    expect(area(fb, 1, 18, 16, 1)[0]).toEqual(
      Array.from({ length: 16 }, (_, i) => [i * 16, 255 - i * 16, i]),
    );
    expect(rgbAt(fb, 17, 18)).toEqual([255, 0, 0]);
    expect(touchedOutside(fb, v.rect)).toBe(0);
  });

  test("RGB565 little-endian pixels", () => {
    const v = rgb565;
    expect(measure(v.body, v.rect, v.pf)).toBe(8);
    const fb = decodeInto(sentinelFb(v.fbW, v.fbH), v.body, v.rect, v.pf);
    expect(area(fb, 0, 0, 4, 2)).toEqual(
      Array.from({ length: 2 }, () => [
        [255, 0, 0],
        [0, 255, 0],
        [0, 255, 0],
        [255, 0, 0],
      ]),
    );
    expect(touchedOutside(fb, v.rect)).toBe(0);
  });

  test("RGB565 big-endian pixels", () => {
    const body = bytes(
      BackgroundSpecified, // tile 0 (1×1): mask BackgroundSpecified
      [0x00, 0x1f], //   bg 0x001f big-endian: blue 31 → 255
    );
    const fb = decodeInto(sentinelFb(1, 1), body, rectOf(0, 0, 1, 1), RGB565_BE);
    expect(rgbAt(fb, 0, 0)).toEqual([0, 0, 255]);
  });

  test("BGR233 8-bit pixels", () => {
    const v = bgr233;
    expect(measure(v.body, v.rect, v.pf)).toBe(4);
    const fb = decodeInto(sentinelFb(v.fbW, v.fbH), v.body, v.rect, v.pf);
    expect(area(fb, 0, 0, 3, 1)[0]).toEqual([
      [255, 0, 0],
      [0, 0, 255],
      [109, 73, 85],
    ]);
    expect(touchedOutside(fb, v.rect)).toBe(0);
  });

  test("an empty rect has an empty body", () => {
    expect(measure(bytes(), rectOf(0, 0, 0, 7))).toBe(0);
    expect(measure(bytes(), rectOf(0, 0, 9, 0))).toBe(0);
    const fb = decodeInto(sentinelFb(2, 2), bytes(), rectOf(1, 1, 0, 1));
    expect(touchedOutside(fb, rectOf(0, 0, 0, 0))).toBe(0);
  });
});

// ---- carry-over and framing errors ----

/** Framing error code for a complete body (fed whole), or undefined when it frames. */
const frameError = (body: Uint8Array, rect: Rect, pf: PixelFormat = CANONICAL) =>
  errorCode(() => measure(body, rect, pf));
const decodeError = (body: Uint8Array, rect: Rect, pf: PixelFormat = CANONICAL) =>
  errorCode(() => decodeInto(new Framebuffer(rect.x + rect.w, rect.y + rect.h), body, rect, pf));

describe("hextile carry-over rules", () => {
  const rawTile16 = [Raw, ...repeat(256, GREEN)];

  test("bg does not carry across a Raw tile: a stream relying on it is BAD_RECT", () => {
    const rect = rectOf(0, 0, 48, 16);
    const relying = bytes(
      BackgroundSpecified, // tile 0: mask BackgroundSpecified
      GREY, //   bg
      rawTile16, // tile 1: Raw, 256 PIXELs
      0x00, // tile 2: mask 0, would reuse tile 0's bg across the Raw tile
    );
    expect(frameError(relying, rect)).toBe("BAD_RECT");
    expect(decodeError(relying, rect)).toBe("BAD_RECT");
    const mono = bytes(
      BackgroundSpecified, // tile 0: mask BackgroundSpecified
      GREY, //   bg
      rawTile16, // tile 1: Raw
      ForegroundSpecified | AnySubrects, // tile 2: mask 0x0c, still no bg
      RED, //   fg
      1, //   nsub
      0x00, //   x 0, y 0
      0x00, //   w 1, h 1
    );
    expect(frameError(mono, rect)).toBe("BAD_RECT");
    const control = bytes(
      BackgroundSpecified, // tile 0: mask BackgroundSpecified
      GREY, //   bg
      rawTile16, // tile 1: Raw
      BackgroundSpecified, // tile 2: mask BackgroundSpecified, as it must be after Raw
      GREY, //   bg
    );
    expect(measure(control, rect)).toBe(control.length);
    const fb = decodeInto(new Framebuffer(48, 16), control, rect);
    expect(rgbAt(fb, 40, 8)).toEqual([128, 128, 128]);
    expect(rgbAt(fb, 20, 8)).toEqual([0, 255, 0]);
  });

  test("fg does not carry across a Raw tile", () => {
    const body = bytes(
      BackgroundSpecified | ForegroundSpecified | AnySubrects, // tile 0: mask 0x0e
      WHITE, //   bg
      RED, //   fg
      0, //   nsub
      rawTile16, // tile 1: Raw
      BackgroundSpecified | AnySubrects, // tile 2: mask 0x0a, mono subrects but fg died at the Raw tile
      WHITE, //   bg
      1, //   nsub
      0x00, //   x 0, y 0
      0x00, //   w 1, h 1
    );
    expect(frameError(body, rectOf(0, 0, 48, 16))).toBe("BAD_RECT");
  });

  test("fg does not carry across a SubrectsColoured tile, but does across a mono one", () => {
    const rect = rectOf(0, 0, 48, 16);
    const head = [
      BackgroundSpecified | ForegroundSpecified | AnySubrects, // tile 0: mask 0x0e
      ...WHITE, //   bg
      ...RED, //   fg
      0, //   nsub
    ];
    const tail = [
      AnySubrects, // tile 2: mask 0x08, needs the carried fg
      1, //   nsub
      0x33, //   x 3, y 3
      0x11, //   w 2, h 2
    ];
    const viaColoured = bytes(
      head,
      AnySubrects | SubrectsColoured, // tile 1: mask 0x18 (bg carried)
      1, //   nsub
      BLUE, //   subrect colour
      0x00, //   x 0, y 0
      0x00, //   w 1, h 1
      tail,
    );
    expect(frameError(viaColoured, rect)).toBe("BAD_RECT");
    expect(decodeError(viaColoured, rect)).toBe("BAD_RECT");
    const viaMono = bytes(
      head,
      AnySubrects, // tile 1: mask 0x08 (bg and fg carried)
      1, //   nsub
      0x00, //   x 0, y 0
      0x00, //   w 1, h 1
      tail,
    );
    expect(measure(viaMono, rect)).toBe(viaMono.length);
    const fb = decodeInto(new Framebuffer(48, 16), viaMono, rect);
    expect(rgbAt(fb, 35, 3)).toEqual([255, 0, 0]);
    expect(rgbAt(fb, 37, 3)).toEqual([255, 255, 255]);
  });
});

describe("hextile framing errors", () => {
  test("a subrect leaving its 16×16 tile is BAD_RECT", () => {
    const rect = rectOf(0, 0, 16, 16);
    const sub = (xy: number, wh: number) =>
      bytes(
        BackgroundSpecified | ForegroundSpecified | AnySubrects, // mask 0x0e
        WHITE, // bg
        RED, // fg
        1, // nsub
        xy, // x << 4 | y
        wh, // (w-1) << 4 | (h-1)
      );
    expect(frameError(sub(0xf0, 0x00), rect)).toBeUndefined(); // x 15, w 1: the last column
    expect(frameError(sub(0xf0, 0x10), rect)).toBe("BAD_RECT"); // x 15, w 2
    expect(frameError(sub(0x0f, 0x01), rect)).toBe("BAD_RECT"); // y 15, h 2
    expect(frameError(sub(0x00, 0xff), rect)).toBeUndefined(); // 16×16 from 0,0
    expect(decodeError(sub(0xf0, 0x10), rect)).toBe("BAD_RECT");
  });

  test("a subrect leaving a smaller edge tile is BAD_RECT", () => {
    const rect = rectOf(0, 0, 17, 17);
    const body = (xy: number, wh: number) =>
      bytes(
        BackgroundSpecified, // tile 0 (16×16): mask BackgroundSpecified
        GREY, //   bg
        ForegroundSpecified | AnySubrects, // tile 1 (1×16): mask 0x0c
        BLUE, //   fg
        1, //   nsub
        xy, //   x << 4 | y
        wh, //   (w-1) << 4 | (h-1)
        0x00, // tile 2 (16×1): mask 0
        0x00, // tile 3 (1×1): mask 0
      );
    expect(frameError(body(0x0f, 0x00), rect)).toBeUndefined(); // x 0 y 15, 1×1
    expect(frameError(body(0x10, 0x00), rect)).toBe("BAD_RECT"); // x 1 in a 1-wide tile
    expect(frameError(body(0x00, 0x10), rect)).toBe("BAD_RECT"); // w 2 in a 1-wide tile
    const row = (wh: number) =>
      bytes(
        BackgroundSpecified, // tile 0 (16×16): mask BackgroundSpecified
        GREY, //   bg
        0x00, // tile 1 (1×16): mask 0
        ForegroundSpecified | AnySubrects, // tile 2 (16×1): mask 0x0c
        BLUE, //   fg
        1, //   nsub
        0x00, //   x 0, y 0
        wh, //   (w-1) << 4 | (h-1)
        0x00, // tile 3 (1×1): mask 0
      );
    expect(frameError(row(0xf0), rect)).toBeUndefined(); // 16×1
    expect(frameError(row(0xf1), rect)).toBe("BAD_RECT"); // 16×2 in a 1-high tile
  });

  test("the first tile must specify a background", () => {
    const rect = rectOf(0, 0, 16, 16);
    expect(frameError(bytes(0x00), rect)).toBe("BAD_RECT"); // mask 0
    expect(frameError(bytes(AnySubrects, 0), rect)).toBe("BAD_RECT"); // mask 0x08, nsub 0
    expect(frameError(bytes(ForegroundSpecified, RED), rect)).toBe("BAD_RECT"); // mask 0x04, fg
    expect(decodeError(bytes(0x00), rect)).toBe("BAD_RECT");
    // The error needs only the mask byte: it is reported before the rest of the tile arrives.
    expect(errorCode(() => feed(bytes(AnySubrects | SubrectsColoured, 200), rect, CANONICAL, [1]))).toBe(
      "BAD_RECT",
    );
  });

  test("mono subrects with no foreground ever given are BAD_RECT; nsub 0 needs none", () => {
    const rect = rectOf(0, 0, 16, 16);
    expect(frameError(bytes(BackgroundSpecified | AnySubrects, WHITE, 1, 0x00, 0x00), rect)).toBe("BAD_RECT");
    expect(frameError(bytes(BackgroundSpecified | AnySubrects, WHITE, 0), rect)).toBeUndefined();
  });

  test("mask bits 5–7 are BAD_RECT", () => {
    for (const bit of [0x20, 0x40, 0x80]) {
      expect(frameError(bytes(BackgroundSpecified | bit, WHITE), rectOf(0, 0, 16, 16))).toBe("BAD_RECT");
    }
  });

  test("truncated data is NEED_MORE at every length, never an error", () => {
    for (const v of VECTORS) {
      for (let n = 0; n < v.body.length; n++) {
        const q = new ByteQueue(1 << 20);
        q.push(new Uint8Array(BASE));
        q.push(v.body.subarray(0, n));
        expect(hextileCodec.framer(v.rect, ctxOf(v.pf)).measure(q, BASE)).toBe(NEED_MORE);
      }
    }
  });

  test("decode rejects a body that is shorter or longer than its tiles", () => {
    const v = mono;
    expect(decodeError(v.body.subarray(0, v.body.length - 1), v.rect)).toBe("BAD_RECT");
    expect(decodeError(bytes(v.body, 0x00), v.rect)).toBe("BAD_RECT");
  });

  test("decode refuses a rect outside the framebuffer", () => {
    const fb = new Framebuffer(16, 16);
    expect(errorCode(() => decodeInto(fb, bgOnly.body, rectOf(0, 0, 48, 16)))).toBe("RECT_OUT_OF_BOUNDS");
  });
});

// ---- split invariance ----

describe("hextile split invariance", () => {
  /** Checks one chunking: NEED_MORE until the last chunk, then the whole length, and an identical decode. */
  function checkChunking(body: Uint8Array, rect: Rect, pf: PixelFormat, cuts: readonly number[]): void {
    const results = feed(body, rect, pf, cuts);
    const last = results.length - 2;
    for (let i = 0; i < last; i++) {
      // A chunk that ends exactly at the body's end is only ever the last one (cuts are < length).
      expect(results[i]).toBe(NEED_MORE);
    }
    expect(results[last]).toBe(body.length);
    expect(results[last + 1]).toBe(body.length);
  }

  test("small vectors: every split point, and byte by byte", () => {
    for (const v of VECTORS) {
      for (let k = 0; k < v.body.length; k++) checkChunking(v.body, v.rect, v.pf, k === 0 ? [] : [k]);
      checkChunking(
        v.body,
        v.rect,
        v.pf,
        Array.from({ length: v.body.length - 1 }, (_, i) => i + 1),
      );
    }
  });

  test("the body taken from the queue decodes identically to the original", () => {
    for (const v of VECTORS) {
      const q = new ByteQueue(1 << 20);
      const framer = hextileCodec.framer(v.rect, ctxOf(v.pf));
      q.push(new Uint8Array(BASE));
      for (let i = 0; i < v.body.length; i++) {
        q.push(v.body.subarray(i, i + 1));
        framer.measure(q, BASE);
      }
      const n = framer.measure(q, BASE);
      q.skip(BASE);
      const taken = q.take(n);
      const a = decodeInto(sentinelFb(v.fbW, v.fbH), taken, v.rect, v.pf);
      const b = decodeInto(sentinelFb(v.fbW, v.fbH), v.body, v.rect, v.pf);
      expect(a.data).toEqual(b.data);
    }
  });

  test("bigger encoded rects at random split points", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 1, max: 50 }),
        fc.integer(),
        fc.constantFrom(...FORMATS),
        fc.array(fc.nat(), { maxLength: 40 }),
        (w, h, seed, [, pf], rawCuts) => {
          const fb = new Framebuffer(w, h);
          paint(fb, rectOf(0, 0, w, h), "tiles", prng(seed));
          const body = hextileEncoder.encode(fb, 0, 0, w, h, pf);
          const cuts = [...new Set(rawCuts.map((c) => 1 + (c % Math.max(1, body.length - 1))))]
            .filter((c) => c < body.length)
            .sort((a, b) => a - b);
          checkChunking(body, rectOf(0, 0, w, h), pf, cuts);
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ---- encode → decode ----

type Picture = "noise" | "palette" | "near" | "blocks" | "tiles" | "gradient";
const PICTURES: readonly Picture[] = ["noise", "palette", "near", "blocks", "tiles", "gradient"];

/** Paints a test picture into `rect` of fb (canonical), with the X byte set to junk the encoder must drop. */
function paint(fb: Framebuffer, rect: Rect, kind: Picture, rnd: () => number): void {
  const int = (n: number) => Math.floor(rnd() * n);
  const colour = () => [int(256), int(256), int(256)] as const;
  const palette = Array.from({ length: 1 + int(6) }, colour);
  // "near": colours a few units apart, which the 8- and 16-bit formats merge into one.
  const near = Array.from(
    { length: 2 + int(3) },
    () => [0x40 + int(6), 0x80 + int(3), 0xc0 + int(9)] as const,
  );
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const tileKinds = Array.from({ length: 64 }, () => int(4));
  const blocks = Array.from({ length: 1 + int(12) }, () => ({
    x: int(rect.w),
    y: int(rect.h),
    w: 1 + int(rect.w),
    h: 1 + int(rect.h),
    c: pick(palette),
  }));
  for (let y = 0; y < rect.h; y++) {
    for (let x = 0; x < rect.w; x++) {
      let c: readonly number[];
      switch (kind) {
        case "noise":
          c = colour();
          break;
        case "palette":
          c = pick(palette);
          break;
        case "near":
          c = pick(near);
          break;
        case "blocks": {
          c = palette[0]!;
          for (const b of blocks) if (x >= b.x && x < b.x + b.w && y >= b.y && y < b.y + b.h) c = b.c;
          break;
        }
        case "tiles": {
          // Per 16×16 tile: noise (Raw), solid (often the same colour again), two-colour text, or many colours.
          const t = tileKinds[((y >> 4) * 8 + (x >> 4)) % 64]!;
          const p = palette[((y >> 4) + (x >> 4)) % palette.length]!;
          c =
            t === 0
              ? colour()
              : t === 1
                ? palette[0]!
                : t === 2
                  ? (x ^ y) & 3
                    ? p
                    : palette[0]!
                  : pick(palette);
          break;
        }
        case "gradient":
          c = [Math.floor((x * 255) / rect.w), Math.floor((y * 255) / rect.h), 0x33];
          break;
      }
      const i = ((rect.y + y) * fb.width + rect.x + x) * 4;
      fb.data[i] = c[0]!;
      fb.data[i + 1] = c[1]!;
      fb.data[i + 2] = c[2]!;
      fb.data[i + 3] = int(256);
    }
  }
}

/** What a viewer in `pf` sees of a canonical colour: through packPixel, back through unpackPixel. */
const quantise = (pf: PixelFormat, r: number, g: number, b: number) =>
  unpackPixel(pf, packPixel(pf, r, g, b));

describe("hextile encode → decode round trips", () => {
  for (const [name, pf] of FORMATS) {
    test(`${name}: random and structured pictures`, () => {
      validatePixelFormat(pf);
      const exact = pf.redMax >= 255 && pf.greenMax >= 255 && pf.blueMax >= 255;
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 70 }),
          fc.integer({ min: 1, max: 50 }),
          fc.integer({ min: 0, max: 5 }),
          fc.integer({ min: 0, max: 5 }),
          fc.constantFrom(...PICTURES),
          fc.integer(),
          (w, h, ox, oy, kind, seed) => {
            const rect = rectOf(ox, oy, w, h);
            const src = new Framebuffer(w + ox + 3, h + oy + 2);
            paint(src, rect, kind, prng(seed));
            const body = hextileEncoder.encode(src, ox, oy, w, h, pf);
            // Our own framer accepts it (carry-over rules hold) and finds exactly its end.
            expect(measure(body, rect, pf)).toBe(body.length);
            const out = decodeInto(sentinelFb(src.width, src.height), body, rect, pf);
            expect(touchedOutside(out, rect)).toBe(0);
            for (let y = oy; y < oy + h; y++) {
              for (let x = ox; x < ox + w; x++) {
                const [r, g, b] = rgbAt(src, x, y);
                const want: [number, number, number] = exact ? [r, g, b] : quantise(pf, r, g, b);
                expect(rgbAt(out, x, y)).toEqual(want);
              }
            }
          },
        ),
        { numRuns: 150 },
      );
    });
  }

  test("a 1920×1080 frame round-trips in each format", () => {
    const src = new Framebuffer(1920, 1080);
    const full = rectOf(0, 0, 1920, 1080);
    paint(src, rectOf(0, 0, 960, 1080), "noise", prng(7));
    paint(src, rectOf(960, 0, 960, 540), "blocks", prng(8));
    paint(src, rectOf(960, 540, 960, 540), "tiles", prng(9));
    for (const [, pf] of FORMATS) {
      const body = hextileEncoder.encode(src, 0, 0, 1920, 1080, pf);
      expect(measure(body, full, pf)).toBe(body.length);
      const out = decodeInto(new Framebuffer(1920, 1080), body, full, pf);
      const want = new Framebuffer(1920, 1080);
      for (let i = 0; i < src.data.length; i += 4) {
        const [r, g, b] = quantise(pf, src.data[i]!, src.data[i + 1]!, src.data[i + 2]!);
        want.data[i] = r;
        want.data[i + 1] = g;
        want.data[i + 2] = b;
        want.data[i + 3] = 255;
      }
      expect(compareRgb(out.data, want.data)).toBe(0);
    }
  });
});

describe("hextile encoder choices", () => {
  const solidFb = (w: number, h: number, r: number, g: number, b: number) => {
    const fb = new Framebuffer(w, h);
    fb.fill(0, 0, w, h, r, g, b);
    return fb;
  };

  test("solid tiles: BackgroundSpecified once, then mask 0; X bytes are zero", () => {
    const fb = solidFb(48, 16, 10, 20, 30);
    for (let i = 3; i < fb.data.length; i += 4) fb.data[i] = 0xff; // junk in X must not leak
    expect(hextileEncoder.encode(fb, 0, 0, 48, 16, CANONICAL)).toEqual(
      bytes(BackgroundSpecified, px(10, 20, 30), 0x00, 0x00),
    );
    fb.fill(32, 0, 16, 16, 1, 2, 3);
    expect(hextileEncoder.encode(fb, 0, 0, 48, 16, CANONICAL)).toEqual(
      bytes(BackgroundSpecified, px(10, 20, 30), 0x00, BackgroundSpecified, px(1, 2, 3)),
    );
  });

  test("two colours → mono subrects, more → coloured subrects, noise → Raw", () => {
    const fb = solidFb(16, 16, 255, 255, 255);
    fb.fill(2, 3, 4, 5, 0, 0, 0);
    expect(hextileEncoder.encode(fb, 0, 0, 16, 16, CANONICAL)).toEqual(
      bytes(
        BackgroundSpecified | ForegroundSpecified | AnySubrects, // mask 0x0e
        WHITE, // bg: the most frequent colour
        px(0, 0, 0), // fg
        1, // nsub
        0x23, // x 2, y 3
        0x34, // w 4, h 5
      ),
    );
    fb.fill(10, 10, 2, 1, 255, 0, 0);
    const three = hextileEncoder.encode(fb, 0, 0, 16, 16, CANONICAL);
    expect(three[0]).toBe(BackgroundSpecified | AnySubrects | SubrectsColoured);
    expect(three.length).toBe(1 + 4 + 1 + 2 * 6);
    paint(fb, rectOf(0, 0, 16, 16), "noise", prng(1));
    expect(hextileEncoder.encode(fb, 0, 0, 16, 16, CANONICAL)[0]).toBe(Raw);
  });

  test("Raw when subrects would not be smaller: a checkerboard is mono at 32 bpp, Raw at 8 bpp", () => {
    const fb = solidFb(16, 16, 255, 255, 255);
    for (let y = 0; y < 16; y++) for (let x = (y & 1) ^ 1; x < 16; x += 2) fb.fill(x, y, 1, 1, 0, 0, 0);
    const wide = hextileEncoder.encode(fb, 0, 0, 16, 16, CANONICAL);
    expect(wide[0]).toBe(BackgroundSpecified | ForegroundSpecified | AnySubrects);
    expect(wide.length).toBe(1 + 4 + 4 + 1 + 128 * 2); // 266 < 1 + 1024
    const narrow = hextileEncoder.encode(fb, 0, 0, 16, 16, BGR233);
    expect(narrow[0]).toBe(Raw); // mono would be 1 + 1 + 1 + 1 + 256 = 260 ≥ 1 + 256
    expect(narrow.length).toBe(257);
  });

  test("Raw also when subrects would be exactly as large as Raw", () => {
    // BGR233, a 32×1 rect: tile 0 mono (bg black, fg red); tile 1 keeps the bg but needs a new fg (blue) and
    // 7 one-pixel subrects: 1 mask + 1 fg + 1 nsub + 7 × 2 = 17 = 1 mask + 16 PIXELs of Raw.
    const fb = new Framebuffer(32, 1);
    fb.fill(0, 0, 1, 1, 255, 0, 0);
    for (let x = 16; x < 30; x += 2) fb.fill(x, 0, 1, 1, 0, 0, 255);
    const body = hextileEncoder.encode(fb, 0, 0, 32, 1, BGR233);
    expect(tileMasks(body, 32, 1, 1)).toEqual([BackgroundSpecified | ForegroundSpecified | AnySubrects, Raw]);
    fb.fill(28, 0, 1, 1, 0, 0, 0); // one subrect fewer: 15 < 17, so subrects win
    expect(tileMasks(hextileEncoder.encode(fb, 0, 0, 32, 1, BGR233), 32, 1, 1)[1]).toBe(
      ForegroundSpecified | AnySubrects,
    );
  });

  test("colours are compared after conversion: two canonical colours one BGR233 pixel apart are one", () => {
    const fb = solidFb(16, 16, 0, 0, 0);
    fb.fill(0, 0, 8, 16, 10, 10, 10); // packs to 0 in BGR233 as (0,0,0) does
    expect(packPixel(BGR233, 10, 10, 10)).toBe(packPixel(BGR233, 0, 0, 0));
    expect(hextileEncoder.encode(fb, 0, 0, 16, 16, BGR233)).toEqual(bytes(BackgroundSpecified, 0x00));
    expect(hextileEncoder.encode(fb, 0, 0, 16, 16, CANONICAL)[0]).not.toBe(BackgroundSpecified);
  });

  test("fg is given again after a coloured tile and reused after a mono one", () => {
    const fb = solidFb(48, 16, 255, 255, 255);
    fb.fill(0, 0, 1, 1, 0, 0, 0); // tile 0: mono, fg black
    fb.fill(16, 0, 1, 1, 0, 0, 0); // tile 1: three colours
    fb.fill(17, 0, 1, 1, 255, 0, 0);
    fb.fill(32, 0, 1, 1, 0, 0, 0); // tile 2: mono, fg black again
    const masks = tileMasks(hextileEncoder.encode(fb, 0, 0, 48, 16, CANONICAL), 48, 16, 4);
    expect(masks).toEqual([
      BackgroundSpecified | ForegroundSpecified | AnySubrects,
      AnySubrects | SubrectsColoured,
      ForegroundSpecified | AnySubrects,
    ]);
    fb.fill(16, 0, 16, 16, 255, 255, 255);
    fb.fill(16, 0, 1, 1, 0, 0, 0); // tile 1 now mono with the same fg
    expect(tileMasks(hextileEncoder.encode(fb, 0, 0, 48, 16, CANONICAL), 48, 16, 4)).toEqual([
      BackgroundSpecified | ForegroundSpecified | AnySubrects,
      AnySubrects,
      AnySubrects,
    ]);
  });

  test("never a tile without BackgroundSpecified straight after a Raw tile (noVNC drops it)", () => {
    // Noise, then the same solid colour as before the noise: a naive encoder would send mask 0.
    const fb = solidFb(48, 16, 40, 50, 60);
    paint(fb, rectOf(16, 0, 16, 16), "noise", prng(3));
    const masks = tileMasks(hextileEncoder.encode(fb, 0, 0, 48, 16, CANONICAL), 48, 16, 4);
    expect(masks).toEqual([BackgroundSpecified, Raw, BackgroundSpecified]);

    let afterRaw = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 17, max: 100 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer(),
        fc.constantFrom(...FORMATS),
        (w, h, seed, [, pf]) => {
          const pic = new Framebuffer(w, h);
          paint(pic, rectOf(0, 0, w, h), "tiles", prng(seed));
          const m = tileMasks(hextileEncoder.encode(pic, 0, 0, w, h, pf), w, h, pf.bitsPerPixel / 8);
          for (let i = 1; i < m.length; i++) {
            if (m[i - 1]! & Raw && !(m[i]! & Raw)) {
              afterRaw++;
              expect(m[i]! & BackgroundSpecified).toBe(BackgroundSpecified);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
    expect(afterRaw).toBeGreaterThan(100); // the property was exercised, not vacuously true
  });

  test("encode refuses a rect outside the framebuffer", () => {
    expect(errorCode(() => hextileEncoder.encode(new Framebuffer(8, 8), 4, 0, 5, 8, CANONICAL))).toBe(
      "RECT_OUT_OF_BOUNDS",
    );
  });
});

// ---- the recorded TigerVNC session ----

const UPDATE_HEADER_LENGTH = 4; // U8 type, U8 padding, U16 number-of-rectangles

describe("hextile corpus (TigerVNC Xvnc 1.12, 1920×1080)", () => {
  const corpus = loadCorpus("hextile");
  const { index, s2c } = corpus;
  const pf = corpusPixelFormat(index.pixelFormat);
  const ctx = ctxOf(pf);
  const rectOfIndex = (r: CorpusRect): Rect => ({ x: r.x, y: r.y, w: r.w, h: r.h, encoding: r.enc });
  const bodyOf = (r: CorpusRect) => s2c.subarray(r.offset + RECT_HEADER_LENGTH, r.offset + r.length);

  test("the session is what the README says: canonical pixels, Hextile only", () => {
    expect(isCanonical(pf)).toBe(true);
    expect(index.setEncodings).toEqual([Encoding.Hextile]);
    expect(index.updates.flatMap((u) => u.rects).every((r) => r.enc === Encoding.Hextile)).toBe(true);
    expect(index.width).toBe(CORPUS_WIDTH);
    expect(index.height).toBe(CORPUS_HEIGHT);
  });

  test("framing the stream as a client would finds every rect the index lists", () => {
    // Walks FramebufferUpdate headers and rect headers from the stream itself; the index is the cross-check.
    const q = new ByteQueue(DEFAULT_LIMITS.maxPendingBytes);
    q.push(s2c.subarray(index.handshakeBytes));
    let rects = 0;
    for (const u of index.updates) {
      expect(q.consumed + index.handshakeBytes).toBe(u.offset);
      expect(q.u8(0)).toBe(ServerMsg.FramebufferUpdate);
      expect(q.u16(2)).toBe(u.rects.length);
      q.skip(UPDATE_HEADER_LENGTH);
      for (const r of u.rects) {
        expect([q.u16(0), q.u16(2), q.u16(4), q.u16(6), q.s32(8)]).toEqual([r.x, r.y, r.w, r.h, r.enc]);
        const n = hextileCodec.framer(rectOfIndex(r), ctx).measure(q, RECT_HEADER_LENGTH);
        expect(n).toBe(r.length - RECT_HEADER_LENGTH);
        q.skip(RECT_HEADER_LENGTH + n);
        rects++;
      }
    }
    expect(q.length).toBe(0);
    expect(rects).toBe(index.totals.rects);
  });

  test("decoding every rect reaches expected-final with 0 mismatched pixels at every checkpoint", () => {
    const want = loadExpectedFinal();
    const summary = loadCorpusSummary();
    const fb = new Framebuffer(CORPUS_WIDTH, CORPUS_HEIGHT);
    const checkpoints = new Set(index.checkpoints.map((c) => c.afterUpdate));
    expect(checkpoints.size).toBeGreaterThan(0);
    const seen: Array<[number, number]> = [];
    for (const u of index.updates) {
      for (const r of u.rects) decodeHextile(bodyOf(r), rectOfIndex(r), ctx.pf, fb);
      // After the first full frame the screen still differs where the xterm scrolled later: proof the
      // comparison can fail.
      if (u.i === 0)
        expect(compareRgb(fb.data, want)).toBe(summary.expected.pixelsChangedSinceFirstFullFrame);
      if (checkpoints.has(u.i)) seen.push([u.i, compareRgb(fb.data, want)]);
    }
    expect(seen).toEqual([...checkpoints].map((i) => [i, 0]));
  });

  test("one flipped bit in a rect of the last update shows at the checkpoint", () => {
    const want = loadExpectedFinal();
    const last = index.updates[index.updates.length - 1]!;
    const r = last.rects[0]!;
    const body = bodyOf(r).slice();
    // Tile 0 starts with its mask; Raw and BackgroundSpecified tiles both start their first PIXEL at byte 1.
    expect(body[0]! & (Raw | BackgroundSpecified)).not.toBe(0);
    body[1] = body[1]! ^ 0x01;
    const fb = new Framebuffer(CORPUS_WIDTH, CORPUS_HEIGHT);
    for (const u of index.updates) {
      for (const x of u.rects) decodeHextile(x === r ? body : bodyOf(x), rectOfIndex(x), ctx.pf, fb);
    }
    expect(compareRgb(fb.data, want)).toBeGreaterThan(0);
  });

  test("the stream framed in random-sized chunks gives the index's lengths", () => {
    for (const seed of [1, 2, 3]) {
      const rnd = prng(seed);
      const q = new ByteQueue(DEFAULT_LIMITS.maxPendingBytes);
      const want = index.updates.flatMap((u) => u.rects.map((r) => r.length - RECT_HEADER_LENGTH));
      const got: number[] = [];
      let at = index.handshakeBytes;
      let rectsLeft = 0;
      let framer: ReturnType<typeof hextileCodec.framer> | undefined;
      while (at < s2c.length) {
        // Mostly small chunks (down to 1 byte), sometimes up to 16 KiB: TCP-like.
        const size = 1 + Math.floor(rnd() ** 3 * 16384);
        q.push(s2c.subarray(at, Math.min(s2c.length, at + size)));
        at = Math.min(s2c.length, at + size);
        for (;;) {
          if (framer) {
            const n = framer.measure(q, RECT_HEADER_LENGTH);
            if (n === NEED_MORE) break;
            got.push(n);
            q.skip(RECT_HEADER_LENGTH + n);
            framer = undefined;
            rectsLeft--;
          } else if (rectsLeft > 0) {
            if (!q.has(RECT_HEADER_LENGTH)) break;
            const rect = rectOf(q.u16(0), q.u16(2), q.u16(4), q.u16(6));
            expect(q.s32(8)).toBe(Encoding.Hextile);
            framer = hextileCodec.framer(rect, ctx);
          } else {
            if (!q.has(UPDATE_HEADER_LENGTH)) break;
            expect(q.u8(0)).toBe(ServerMsg.FramebufferUpdate);
            rectsLeft = q.u16(2);
            q.skip(UPDATE_HEADER_LENGTH);
          }
        }
      }
      expect([q.length, rectsLeft, framer]).toEqual([0, 0, undefined]);
      expect(got).toEqual(want);
    }
  });

  test("the largest rect fed byte by byte frames in linear time", () => {
    // O(n²) rescanning would be ~10¹⁰ byte visits here and time out; resumable progress keeps it O(n).
    const r = index.updates.flatMap((u) => u.rects).reduce((a, b) => (b.length > a.length ? b : a));
    const body = bodyOf(r);
    expect(body.length).toBeGreaterThan(100_000);
    const q = new ByteQueue(DEFAULT_LIMITS.maxPendingBytes);
    const framer = hextileCodec.framer(rectOfIndex(r), ctx);
    let n = NEED_MORE;
    for (let i = 0; i < body.length; i++) {
      q.push(body.subarray(i, i + 1));
      n = framer.measure(q, 0);
      if (n !== NEED_MORE) expect(i).toBe(body.length - 1);
    }
    expect(n).toBe(body.length);
  });
});
