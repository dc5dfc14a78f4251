// ZRLE (16) and TRLE (15): the codec core's kernels (wasm/assembly/zrle.ts, wasm/assembly/encode-zrle.ts)
// and their TS twins (relay/codec/zrle.ts), on every implementation (forEachKernel). Hand-built tile vectors
// with a comment per field (rfbproto.rst "ZRLE", RFC 6143 §7.7.5–7.7.6, rfb-codecs.md §2.6–2.7); every bad
// input of bad-inputs.md table B ("ZRLE length plus tiles", "Rectangle header") giving the same RfbError
// everywhere with nothing outside the rect written; the resumable TRLE framer split at every point and held
// to the decoders; encode→decode round trips in every viewer format; TS-vs-WASM parity (fast-check); and
// noVNC's own ZRLE decoder reading our output over one zlib stream.

import { beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { CodecKernels } from "../../relay/codec/kernels.ts";
import { NEED_MORE, type Rect } from "../../relay/codec/types.ts";
import type { WasmKernels } from "../../relay/codec/wasm-kernels.ts";
import { trleCodec } from "../../relay/codec/zrle.ts";
import { deflateRect, zlibStreamHeader } from "../../relay/codec/zstream.ts";
import { ByteQueue } from "../../relay/rfb/byte-queue.ts";
import { Encoding } from "../../relay/rfb/constants.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import { DEFAULT_LIMITS } from "../../relay/rfb/limits.ts";
import { fromCanonical, toCanonical } from "../../relay/rfb/pixel-convert.ts";
import { bytesPerPixel, CANONICAL_FORMAT, type PixelFormat } from "../../relay/rfb/pixel-format.ts";
import * as E from "../../wasm/assembly/errors.ts";
import { prng, splits } from "../helpers/bytes.ts";
import { codeOf } from "../helpers/errors.ts";
import { BGR233, BGRX, RGB565_BE, RGB565_LE } from "../helpers/formats.ts";
import { createNoVncSession } from "../helpers/novnc.ts";
import { forEachKernel, KERNEL_IMPLS } from "./kernel-impls.ts";

// ---- pixel formats and their CPIXELs ----

const CANONICAL: PixelFormat = { ...CANONICAL_FORMAT };
/** 32 bpp big-endian, canonical shifts: CPIXEL = the low 3 bytes of the value in big-endian order, B,G,R. */
const XBGR_BE: PixelFormat = { ...CANONICAL_FORMAT, bigEndian: true };
/** 32 bpp depth 24, colour in the high 3 bytes (R 24, G 8, B 16): CPIXEL = value bytes 1…3 (LE), G,B,R. */
const HIGH24: PixelFormat = { ...CANONICAL_FORMAT, redShift: 24, greenShift: 8, blueShift: 16 };
/** Colour across byte boundaries (shifts 4, 12, 20): no compact form, CPIXEL = the whole 4-byte pixel. */
const STRADDLE32: PixelFormat = { ...CANONICAL_FORMAT, redShift: 4, greenShift: 12, blueShift: 20 };

const FORMATS: ReadonlyArray<[string, PixelFormat]> = [
  ["canonical", CANONICAL],
  ["BGRX", BGRX],
  ["XBGR big-endian", XBGR_BE],
  ["high 3 bytes", HIGH24],
  ["4-byte CPIXEL", STRADDLE32],
  ["RGB565 LE", RGB565_LE],
  ["RGB565 BE", RGB565_BE],
  ["BGR233", BGR233],
];

// ---- helpers ----

type Rgb = [number, number, number];
type Kind = "zrle" | "trle";
type Area = Pick<Rect, "x" | "y" | "w" | "h">;

const RED: Rgb = [255, 0, 0];
const GREEN: Rgb = [0, 255, 0];
const BLUE: Rgb = [0, 0, 255];
const WHITE: Rgb = [255, 255, 255];
const GREY: Rgb = [128, 128, 128];
/** A colour no vector uses: whatever still has it was not written. */
const SENTINEL: Rgb = [0x5a, 0xa5, 0x3c];
const canonicalOf = ([r, g, b]: Rgb): number => r | (g << 8) | (b << 16);

const bytes = (...parts: Array<number | ArrayLike<number>>): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "number" ? [p] : Array.from(p))));
const repeat = (n: number, part: number | readonly number[]): number[] =>
  Array.from({ length: n }, () => part).flat();
const area = (x: number, y: number, w: number, h: number): Area => ({ x, y, w, h });

/** A framebuffer of the sentinel colour, input format pf. */
function fresh(k: CodecKernels, w: number, h: number, pf: PixelFormat = CANONICAL): void {
  k.resize(w, h);
  k.setInputFormat(pf);
  k.fill(0, 0, w, h, canonicalOf(SENTINEL));
}

function rgbAt(k: CodecKernels, x: number, y: number): Rgb {
  const p = k.pixels();
  const i = (y * k.width + x) * 4;
  return [p[i]!, p[i + 1]!, p[i + 2]!];
}

/** Pixels outside the rect that lost the sentinel. */
function touchedOutside(k: CodecKernels, r: Area): number {
  const p = k.pixels();
  let n = 0;
  for (let y = 0, i = 0; y < k.height; y++) {
    for (let x = 0; x < k.width; x++, i += 4) {
      const inside = x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h;
      if (!inside && (p[i] !== SENTINEL[0] || p[i + 1] !== SENTINEL[1] || p[i + 2] !== SENTINEL[2])) n++;
    }
  }
  return n;
}

function decode(k: CodecKernels, kind: Kind, r: Area, body: Uint8Array): void {
  if (kind === "zrle") k.zrle(r.x, r.y, r.w, r.h, body);
  else k.trle(r.x, r.y, r.w, r.h, body);
}

/** The core's own result code for a body (WASM only): finer than the RfbError it maps to. */
function coreResult(k: CodecKernels, kind: Kind, r: Area, body: Uint8Array): number {
  const core = (k as WasmKernels).core;
  core.region("IN").set(body);
  const f = kind === "zrle" ? core.fn.decodeZrle : core.fn.decodeTrle;
  return f(r.x, r.y, r.w, r.h, body.length);
}

/** canonical → pf → canonical: what a viewer in pf sees of a canonical frame. */
function throughFormat(frame: Uint8Array, pf: PixelFormat): Uint8Array {
  const n = frame.length / 4;
  const packed = new Uint8Array(n * bytesPerPixel(pf));
  fromCanonical(frame, packed, pf, n);
  const back = new Uint8Array(n * 4);
  toCanonical(packed, pf, back, n);
  return back;
}

/**
 * A desktop-like frame: a solid background, windows with title bars, 2-colour "text", a gradient and a
 * photo-like noise patch (the kinds of tile each ZRLE subencoding is for). X bytes are random.
 */
function desktopFrame(w: number, h: number, seed: number): Uint8Array {
  const rand = prng(seed);
  const f = new Uint8Array(w * h * 4);
  const put = (x: number, y: number, c: Rgb) => {
    const i = (y * w + x) * 4;
    f[i] = c[0];
    f[i + 1] = c[1];
    f[i + 2] = c[2];
    f[i + 3] = rand() & 255;
  };
  const box = (x0: number, y0: number, bw: number, bh: number, pick: (x: number, y: number) => Rgb) => {
    for (let y = Math.max(0, y0); y < Math.min(h, y0 + bh); y++) {
      for (let x = Math.max(0, x0); x < Math.min(w, x0 + bw); x++) put(x, y, pick(x, y));
    }
  };
  box(0, 0, w, h, () => [0x20, 0x40, 0x60]);
  const colour = (): Rgb => [rand() & 255, rand() & 255, rand() & 255];
  for (let i = 0; i < 3; i++) {
    const x0 = rand() % w;
    const y0 = rand() % h;
    const bw = 1 + (rand() % w);
    const bh = 1 + (rand() % h);
    const body = colour();
    const title = colour();
    box(x0, y0, bw, bh, (_, y) => (y < y0 + 6 ? title : body));
  }
  // Text: 2 colours (sometimes 3) in short runs.
  const ink = colour();
  const paper: Rgb = [250, 250, 250];
  const accent = colour();
  box(rand() % w, rand() % h, w >> 1, h >> 2, () => {
    const r = rand() % 16;
    return r < 10 ? paper : r < 15 ? ink : accent;
  });
  box(rand() % w, rand() % h, w >> 2, h >> 2, (x, y) => [(x * 3) & 255, (y * 5) & 255, 128]);
  box(rand() % w, rand() % h, w >> 2, h >> 3, () => colour());
  return f;
}

// ---- hand-built vectors: canonical CPIXEL = R, G, B unless stated ----

interface Vector {
  name: string;
  kind: Kind;
  rect: Area;
  fbW: number;
  fbH: number;
  pf?: PixelFormat;
  body: Uint8Array;
  /** The colour at (dx, dy) inside the rect. */
  want: (dx: number, dy: number) => Rgb;
}

/** Colours of a palette, distinct and away from the sentinel. */
const paletteOf = (n: number): Rgb[] => Array.from({ length: n }, (_, i) => [i * 2, 255 - i, (i * 7) & 255]);
const P16: Rgb[] = Array.from({ length: 16 }, (_, i) => [i * 16, 255 - i * 16, i * 3]);
const P17 = paletteOf(17);
const P127 = paletteOf(127);
const grid = (rows: readonly string[], colours: readonly Rgb[]) => (dx: number, dy: number) =>
  colours[Number.parseInt(rows[dy]![dx]!, 36)]!;

const ZRLE_VECTORS: Vector[] = [
  {
    name: "raw tile",
    kind: "zrle",
    rect: area(1, 1, 2, 2),
    fbW: 4,
    fbH: 4,
    body: bytes(
      0, // tile 0 (2×2): subencoding 0, raw
      RED, //   (0,0)
      GREEN, //   (1,0)
      BLUE, //   (0,1)
      [9, 8, 7], //   (1,1)
    ),
    want: grid(["01", "23"], [RED, GREEN, BLUE, [9, 8, 7]]),
  },
  {
    name: "solid tiles of a 65×3 rect (64×3 and 1×3)",
    kind: "zrle",
    rect: area(1, 1, 65, 3),
    fbW: 67,
    fbH: 5,
    body: bytes(
      1, // tile 0 (64×3): solid
      GREY, //   CPIXEL
      1, // tile 1 (1×3): solid
      BLUE, //   CPIXEL
    ),
    want: (dx) => (dx < 64 ? GREY : BLUE),
  },
  {
    name: "packed palette of 2: 1 bit per index, rows padded to a byte, padding bits ignored",
    kind: "zrle",
    rect: area(0, 1, 10, 2),
    fbW: 11,
    fbH: 4,
    body: bytes(
      2, // tile 0 (10×2): packed palette, 2 colours
      WHITE, //   palette[0]
      RED, //   palette[1]
      0x81, //   row 0: 1000 0001
      0xc0, //          11 + 6 padding bits
      0x55, //   row 1: 0101 0101
      0x7f, //          01 + 6 padding bits, set (ignored)
    ),
    want: grid(["1000000111", "0101010101"], [WHITE, RED]),
  },
  {
    name: "packed palette of 3: 2 bits per index; padding 11 is not an index",
    kind: "zrle",
    rect: area(0, 0, 5, 2),
    fbW: 6,
    fbH: 3,
    body: bytes(
      3, // tile 0 (5×2): packed palette, 3 colours
      RED, //   palette[0]
      GREEN, //   palette[1]
      BLUE, //   palette[2]
      0x19, //   row 0: 00 01 10 01
      0x3f, //          00 + padding 11 11 11 (would be index 3 ≥ 3 if it were read)
      0xaa, //   row 1: 10 10 10 10
      0x40, //          01 + padding
    ),
    want: grid(["01210", "22221"], [RED, GREEN, BLUE]),
  },
  {
    name: "packed palette of 16: 4 bits per index",
    kind: "zrle",
    rect: area(2, 0, 3, 2),
    fbW: 5,
    fbH: 2,
    body: bytes(
      16, // tile 0 (3×2): packed palette, 16 colours
      P16.flat(), //   palette[0…15]
      0xf0, //   row 0: 1111 0000
      0x70, //          0111 + padding
      0x3c, //   row 1: 0011 1100
      0x90, //          1001 + padding
    ),
    want: grid(["f07", "3c9"], P16),
  },
  {
    name: "plain RLE: a run crosses a row",
    kind: "zrle",
    rect: area(2, 0, 4, 3),
    fbW: 7,
    fbH: 4,
    body: bytes(
      128, // tile 0 (4×3): plain RLE
      RED, //   run 0 colour
      4, //   length 1 + 4 = 5: row 0 and the first pixel of row 1
      GREEN, //   run 1 colour
      6, //   length 7: the rest of the tile
    ),
    want: (dx, dy) => (dy * 4 + dx < 5 ? RED : GREEN),
  },
  {
    name: "palette RLE: single pixels and runs",
    kind: "zrle",
    rect: area(0, 0, 5, 2),
    fbW: 5,
    fbH: 3,
    body: bytes(
      130, // tile 0 (5×2): palette RLE, 130 − 128 = 2 colours
      WHITE, //   palette[0]
      BLUE, //   palette[1]
      0x01, //   single pixel, index 1
      0x80, //   run, index 0
      5, //     length 6
      0x81, //   run, index 1
      1, //     length 2
      0x00, //   single pixel, index 0
    ),
    want: grid(["10000", "00110"], [WHITE, BLUE]),
  },
  {
    name: "run lengths 1, 255, 256, 510 and a 12-deep 255 chain fill one 64×64 tile",
    kind: "zrle",
    rect: area(1, 1, 64, 64),
    fbW: 66,
    fbH: 66,
    body: bytes(
      128, // tile 0 (64×64): plain RLE
      RED, //   run 0
      0, //     length 1: [0]
      GREEN, //   run 1
      254, //     length 255: [254]
      BLUE, //   run 2
      [255, 0], //     length 256: [255, 0]
      WHITE, //   run 3
      [255, 254], //     length 510: [255, 254]
      GREY, //   run 4
      repeat(12, 255), //     length 1 + 12·255 + 13 = 3074: the tile's last pixels
      13,
    ),
    want: (dx, dy) => {
      const i = dy * 64 + dx;
      return i < 1 ? RED : i < 256 ? GREEN : i < 512 ? BLUE : i < 1022 ? WHITE : GREY;
    },
  },
  {
    name: "palette RLE of 127 colours (subencoding 255), the largest",
    kind: "zrle",
    rect: area(1, 0, 64, 2),
    fbW: 66,
    fbH: 3,
    body: bytes(
      255, // tile 0 (64×2): palette RLE, 127 colours
      P127.flat(), //   palette[0…126]
      Array.from({ length: 127 }, (_, i) => 126 - i), //   127 single pixels, indices 126…0
      0x85, //   run, index 5
      0, //     length 1 (a run may be 1 long)
    ),
    want: (dx, dy) => P127[dy * 64 + dx < 127 ? 126 - (dy * 64 + dx) : 5]!,
  },
  {
    name: "edge tiles of a 65×65 rect: 64×64 solid, 1×64 plain RLE, 64×1 packed, 1×1 raw",
    kind: "zrle",
    rect: area(0, 0, 65, 65),
    fbW: 66,
    fbH: 66,
    body: bytes(
      1, // tile 0 (64×64): solid
      GREY, //   CPIXEL
      128, // tile 1 (1×64): plain RLE
      RED, //   colour
      63, //   length 64
      2, // tile 2 (64×1): packed palette, 2 colours
      WHITE, //   palette[0]
      BLUE, //   palette[1]
      [0xff, 0x00, 0xff, 0x00, 0xaa, 0x55, 0x0f, 0xf0], //   64 indices, one row of 8 bytes
      0, // tile 3 (1×1): raw
      GREEN, //   CPIXEL
    ),
    want: (dx, dy) => {
      if (dx < 64 && dy < 64) return GREY;
      if (dy < 64) return RED;
      if (dx === 64) return GREEN;
      const row = [0xff, 0x00, 0xff, 0x00, 0xaa, 0x55, 0x0f, 0xf0];
      return (row[dx >> 3]! >> (7 - (dx & 7))) & 1 ? BLUE : WHITE;
    },
  },
  {
    name: "BGRX (TigerVNC): CPIXEL is B, G, R",
    kind: "zrle",
    rect: area(0, 0, 2, 1),
    fbW: 2,
    fbH: 1,
    pf: BGRX,
    body: bytes(
      0, // tile 0 (2×1): raw
      [0x30, 0x20, 0x10], //   B 0x30, G 0x20, R 0x10
      [0xff, 0x00, 0x00], //   blue
    ),
    want: grid(["01"], [[0x10, 0x20, 0x30], BLUE]),
  },
  {
    name: "32 bpp big-endian: CPIXEL is the low 3 bytes, most significant first (B, G, R)",
    kind: "zrle",
    rect: area(0, 0, 1, 1),
    fbW: 1,
    fbH: 1,
    pf: XBGR_BE,
    body: bytes(
      1, // tile 0 (1×1): solid
      [0x30, 0x20, 0x10], //   value 0x302010: B 0x30, G 0x20, R 0x10
    ),
    want: () => [0x10, 0x20, 0x30],
  },
  {
    name: "colour in the high 3 bytes: CPIXEL is value bytes 1…3 (G, B, R here)",
    kind: "zrle",
    rect: area(0, 0, 1, 1),
    fbW: 1,
    fbH: 1,
    pf: HIGH24,
    body: bytes(
      1, // tile 0 (1×1): solid
      [0x20, 0x30, 0x10], //   value 0x10302000: G 0x20 (shift 8), B 0x30 (16), R 0x10 (24)
    ),
    want: () => [0x10, 0x20, 0x30],
  },
  {
    name: "no compact form: CPIXEL is the whole 4-byte pixel",
    kind: "zrle",
    rect: area(0, 0, 2, 1),
    fbW: 2,
    fbH: 1,
    pf: STRADDLE32,
    body: bytes(
      2, // tile 0 (2×1): packed palette, 2 colours
      [0x20, 0x41, 0x63, 0x05], //   palette[0] = 0x05634120: R 0x12 << 4, G 0x34 << 12, B 0x56 << 20
      [0xf0, 0x0f, 0x00, 0x00], //   palette[1] = 0x00000ff0: R 0xff
      0x40, //   row 0: 01 + padding
    ),
    want: grid(["01"], [[0x12, 0x34, 0x56], RED]),
  },
  {
    name: "RGB565 little-endian: CPIXEL is the 2-byte pixel",
    kind: "zrle",
    rect: area(0, 0, 3, 1),
    fbW: 3,
    fbH: 1,
    pf: RGB565_LE,
    body: bytes(
      0, // tile 0 (3×1): raw
      [0x00, 0xf8], //   0xf800: red 31 → 255
      [0xe0, 0x07], //   0x07e0: green 63 → 255
      [0x1f, 0x00], //   0x001f: blue 31 → 255
    ),
    want: grid(["012"], [RED, GREEN, BLUE]),
  },
  {
    name: "RGB565 big-endian",
    kind: "zrle",
    rect: area(0, 0, 2, 1),
    fbW: 2,
    fbH: 1,
    pf: RGB565_BE,
    body: bytes(
      130, // tile 0 (2×1): palette RLE, 2 colours
      [0xf8, 0x00], //   palette[0] 0xf800: red
      [0x00, 0x1f], //   palette[1] 0x001f: blue
      0x01, //   single, index 1
      0x00, //   single, index 0
    ),
    want: grid(["10"], [RED, BLUE]),
  },
  {
    name: "BGR233: CPIXEL is the byte",
    kind: "zrle",
    rect: area(0, 0, 3, 1),
    fbW: 3,
    fbH: 1,
    pf: BGR233,
    body: bytes(
      0, // tile 0 (3×1): raw
      0x07, //   red 7 → 255
      0xc0, //   blue 3 → 255
      0x53, //   01 010 011: r 3 → 109, g 2 → 73, b 1 → 85
    ),
    want: grid(["012"], [RED, BLUE, [109, 73, 85]]),
  },
];

const TRLE_VECTORS: Vector[] = [
  {
    name: "edge tiles of a 17×17 rect; 127 and 129 reuse the palette",
    kind: "trle",
    rect: area(1, 1, 17, 17),
    fbW: 19,
    fbH: 19,
    body: bytes(
      1, // tile 0 (16×16): solid
      GREY, //   CPIXEL
      2, // tile 1 (1×16): packed palette, 2 colours
      RED, //   palette[0]
      BLUE, //   palette[1]
      repeat(8, [0x3f, 0x80]), //   16 rows of one byte: 0 (+ padding bits set), 1, 0, 1, …
      127, // tile 2 (16×1): packed, the palette of tile 1
      0xf0, //   1111 0000
      0x0f, //   0000 1111
      129, // tile 3 (1×1): palette RLE, the palette of tile 1
      0x01, //   single pixel, index 1
    ),
    want: (dx, dy) => {
      if (dx < 16 && dy < 16) return GREY;
      if (dy < 16) return dy % 2 ? BLUE : RED;
      if (dx < 16) return dx < 4 || dx >= 12 ? BLUE : RED;
      return BLUE;
    },
  },
  {
    name: "plain RLE across rows, then a raw tile",
    kind: "trle",
    rect: area(0, 0, 32, 2),
    fbW: 33,
    fbH: 3,
    body: bytes(
      128, // tile 0 (16×2): plain RLE
      RED, //   colour
      19, //   length 20: row 0 and 4 pixels of row 1
      GREEN, //   colour
      11, //   length 12
      0, // tile 1 (16×2): raw
      Array.from({ length: 32 }, (_, i) => [(i % 16) * 8, (i >> 4) * 100, 7]).flat(), //   32 CPIXELs
    ),
    want: (dx, dy) => (dx < 16 ? (dy * 16 + dx < 20 ? RED : GREEN) : [(dx - 16) * 8, dy * 100, 7]),
  },
  {
    name: "the palette outlives a solid tile in between",
    kind: "trle",
    rect: area(0, 0, 48, 1),
    fbW: 48,
    fbH: 2,
    body: bytes(
      130, // tile 0 (16×1): palette RLE, 2 colours
      RED, //   palette[0]
      GREEN, //   palette[1]
      0x81, //   run, index 1
      15, //     length 16
      1, // tile 1 (16×1): solid
      BLUE, //   CPIXEL
      129, // tile 2 (16×1): palette RLE, the palette of tile 0
      0x80, //   run, index 0
      14, //     length 15
      0x01, //   single, index 1
    ),
    want: (dx) => (dx < 16 ? GREEN : dx < 32 ? BLUE : dx < 47 ? RED : GREEN),
  },
  {
    name: "129 reuses a palette of 17 colours",
    kind: "trle",
    rect: area(0, 0, 32, 1),
    fbW: 32,
    fbH: 1,
    body: bytes(
      128 + 17, // tile 0 (16×1): palette RLE, 17 colours
      P17.flat(), //   palette[0…16]
      Array.from({ length: 16 }, (_, i) => i), //   singles, indices 0…15
      129, // tile 1 (16×1): palette RLE, the same 17 colours
      0x90, //   run, index 16
      15, //     length 16
    ),
    want: (dx) => (dx < 16 ? P17[dx]! : P17[16]!),
  },
];

const VECTORS = [...ZRLE_VECTORS, ...TRLE_VECTORS];

// ---- bad inputs (bad-inputs.md table B) ----

/** Why a body is bad: the core's code for it and the TS twin's message. */
const WHY = {
  unused: { code: E.E_BAD_DATA, message: /unused subencoding/ },
  index: { code: E.E_BAD_PALETTE, message: /palette index/ },
  run: { code: E.E_BAD_DATA, message: /a run of/ },
  truncated: { code: E.E_TRUNCATED, message: /ends inside/ },
  trailing: { code: E.E_TRAILING, message: /after the last tile/ },
  reuse: { code: E.E_BAD_PALETTE, message: /reuses a palette/ },
} as const;

interface BadCase {
  name: string;
  kind: Kind;
  rect: Area;
  body: Uint8Array;
  why: keyof typeof WHY;
  pf?: PixelFormat;
}

const C3 = [1, 2, 3]; // a CPIXEL
const BAD: BadCase[] = [
  ...[...Array.from({ length: 111 }, (_, i) => 17 + i), 129].map(
    (sub): BadCase => ({
      name: `ZRLE subencoding ${sub} is unused`,
      kind: "zrle",
      rect: area(0, 0, 1, 1),
      body: bytes(sub, repeat(8, 0)), // subencoding, then bytes that would otherwise be read
      why: "unused",
    }),
  ),
  ...Array.from({ length: 110 }, (_, i) => 17 + i).map(
    (sub): BadCase => ({
      name: `TRLE subencoding ${sub} is unused`,
      kind: "trle",
      rect: area(0, 0, 1, 1),
      body: bytes(sub, repeat(8, 0)),
      why: "unused",
    }),
  ),
  {
    name: "packed index 3 with 3 colours",
    kind: "zrle",
    rect: area(0, 0, 2, 1),
    body: bytes(3, C3, C3, C3, 0b0011_0000), // packed 3 colours; row: indices 0, 3
    why: "index",
  },
  {
    name: "packed index 3 with 3 colours, in a whole byte of 4 indices",
    kind: "zrle",
    rect: area(0, 0, 4, 1),
    body: bytes(3, C3, C3, C3, 0b0000_1100), // packed 3 colours; row: indices 0, 0, 3, 0
    why: "index",
  },
  {
    name: "packed index 7 with 5 colours, low nibble of a whole byte",
    kind: "zrle",
    rect: area(0, 0, 2, 1),
    body: bytes(5, repeat(5, C3), 0x07), // packed 5 colours; row: indices 0, 7
    why: "index",
  },
  {
    name: "packed index 9 with 5 colours, high nibble of a whole byte",
    kind: "zrle",
    rect: area(0, 0, 2, 1),
    body: bytes(5, repeat(5, C3), 0x90), // packed 5 colours; row: indices 9, 0
    why: "index",
  },
  {
    name: "packed index 5 with 5 colours (4 bits)",
    kind: "zrle",
    rect: area(0, 0, 1, 1),
    body: bytes(5, repeat(5, C3), 0x50), // packed 5 colours; row: index 5
    why: "index",
  },
  {
    name: "packed index 15 with 15 colours, in the second tile",
    kind: "zrle",
    rect: area(0, 0, 65, 1),
    body: bytes(1, C3, 15, repeat(15, C3), 0xf0), // tile 0 solid; tile 1 (1×1) packed 15, index 15
    why: "index",
  },
  {
    name: "palette RLE single pixel index 2 with 2 colours",
    kind: "zrle",
    rect: area(0, 0, 1, 1),
    body: bytes(130, C3, C3, 0x02),
    why: "index",
  },
  {
    name: "palette RLE run index 5 with 2 colours",
    kind: "zrle",
    rect: area(0, 0, 2, 1),
    body: bytes(130, C3, C3, 0x85, 0),
    why: "index",
  },
  {
    name: "palette RLE index 127 with 127 colours",
    kind: "zrle",
    rect: area(0, 0, 2, 1),
    body: bytes(255, repeat(127, C3), 0xff, 0),
    why: "index",
  },
  {
    name: "TRLE 129 reusing 2 colours, index 2",
    kind: "trle",
    rect: area(0, 0, 32, 1),
    body: bytes(130, C3, C3, 0x80, 15, 129, 0x02),
    why: "index",
  },
  {
    name: "plain RLE run of 5 in a 2×2 tile",
    kind: "zrle",
    rect: area(0, 0, 2, 2),
    body: bytes(128, C3, 4),
    why: "run",
  },
  {
    name: "plain RLE second run passes the tile",
    kind: "zrle",
    rect: area(0, 0, 2, 2),
    body: bytes(128, C3, 2, C3, 1), // 3 + 2 > 4
    why: "run",
  },
  {
    name: "a run of 65 in a 64×1 tile would spill into the next tile",
    kind: "zrle",
    rect: area(0, 0, 65, 1),
    body: bytes(128, C3, 64, 1, C3),
    why: "run",
  },
  {
    name: "palette RLE run passes the tile",
    kind: "zrle",
    rect: area(0, 0, 4, 1),
    body: bytes(130, C3, C3, 0x80, 4),
    why: "run",
  },
  {
    name: "a 255 chain longer than a 64×64 tile stops at the tile, data or not",
    kind: "zrle",
    rect: area(0, 0, 64, 64),
    body: bytes(128, C3, repeat(17, 255), 0, repeat(32, 0)),
    why: "run",
  },
  {
    name: "TRLE run of 257 in a 16×16 tile",
    kind: "trle",
    rect: area(0, 0, 16, 16),
    body: bytes(128, C3, 255, 1),
    why: "run",
  },
  {
    name: "a 255 chain running off the data",
    kind: "zrle",
    rect: area(0, 0, 64, 64),
    body: bytes(128, C3, 255, 255),
    why: "truncated",
  },
  {
    name: "a palette RLE 255 chain running off the data",
    kind: "trle",
    rect: area(0, 0, 16, 16),
    body: bytes(130, C3, C3, 0x81, 255),
    why: "truncated",
  },
  {
    name: "no data at all",
    kind: "zrle",
    rect: area(0, 0, 1, 1),
    body: bytes(),
    why: "truncated",
  },
  {
    name: "a byte after an empty rect",
    kind: "zrle",
    rect: area(0, 0, 0, 5),
    body: bytes(0),
    why: "trailing",
  },
  {
    name: "TRLE 127 with no palette yet",
    kind: "trle",
    rect: area(0, 0, 8, 1),
    body: bytes(127, 0x00),
    why: "reuse",
  },
  {
    name: "TRLE 129 with no palette yet",
    kind: "trle",
    rect: area(0, 0, 1, 1),
    body: bytes(129, 0x00),
    why: "reuse",
  },
  {
    name: "TRLE 127 after solid and raw tiles only (neither sends a palette)",
    kind: "trle",
    rect: area(0, 0, 48, 1),
    body: bytes(1, C3, 0, repeat(16, C3), 127, 0, 0),
    why: "reuse",
  },
  {
    name: "TRLE 127 reusing 17 colours (packed allows 16)",
    kind: "trle",
    rect: area(0, 0, 32, 1),
    body: bytes(128 + 17, repeat(17, C3), 0x80, 15, 127, repeat(8, 0)),
    why: "reuse",
  },
];

// Truncated at every point and one byte too many, for every hand-built vector.
for (const v of VECTORS) {
  for (let cut = 0; cut < v.body.length; cut++) {
    BAD.push({
      name: `${v.kind} "${v.name}" cut at ${cut}`,
      kind: v.kind,
      rect: v.rect,
      body: v.body.subarray(0, cut),
      why: "truncated",
      pf: v.pf,
    });
  }
  BAD.push({
    name: `${v.kind} "${v.name}" + 1 byte`,
    kind: v.kind,
    rect: v.rect,
    body: bytes(v.body, 0),
    why: "trailing",
    pf: v.pf,
  });
}

// ---- the shared suite ----

forEachKernel("zrle/trle decoders", (impl) => {
  let k: CodecKernels;
  beforeAll(async () => {
    k = await impl.make();
  });

  for (const v of VECTORS) {
    test(`${v.kind}: ${v.name}`, () => {
      fresh(k, v.fbW, v.fbH, v.pf);
      decode(k, v.kind, v.rect, v.body);
      for (let dy = 0; dy < v.rect.h; dy++) {
        for (let dx = 0; dx < v.rect.w; dx++) {
          const got = rgbAt(k, v.rect.x + dx, v.rect.y + dy);
          if (got.some((c, i) => c !== v.want(dx, dy)[i])) {
            expect({ dx, dy, got }).toEqual({ dx, dy, got: v.want(dx, dy) });
          }
        }
      }
      expect(touchedOutside(k, v.rect)).toBe(0);
    });
  }

  test("an empty rect with an empty body writes nothing", () => {
    fresh(k, 4, 4);
    decode(k, "zrle", area(4, 0, 0, 4), bytes());
    decode(k, "trle", area(1, 1, 3, 0), bytes());
    expect(touchedOutside(k, area(0, 0, 0, 0))).toBe(0);
  });

  test("every bad input: BAD_RECT for the right reason, nothing outside the rect written", () => {
    for (const c of BAD) {
      const r = c.rect;
      fresh(k, r.x + r.w + 2, r.y + r.h + 2, c.pf);
      const thrown = (() => {
        try {
          decode(k, c.kind, r, c.body);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect({ name: c.name, code: thrown instanceof RfbError ? thrown.code : String(thrown) }).toEqual({
        name: c.name,
        code: "BAD_RECT",
      });
      expect({ name: c.name, outside: touchedOutside(k, r) }).toEqual({ name: c.name, outside: 0 });
      if (impl.name === "ts") {
        expect({ name: c.name, message: (thrown as Error).message }).toMatchObject({
          name: c.name,
          message: expect.stringMatching(WHY[c.why].message),
        });
      } else {
        fresh(k, r.x + r.w + 2, r.y + r.h + 2, c.pf);
        expect({ name: c.name, result: coreResult(k, c.kind, r, c.body) }).toEqual({
          name: c.name,
          result: WHY[c.why].code,
        });
      }
    }
  });

  test("a rect outside the framebuffer in one dimension only is RECT_OUT_OF_BOUNDS, nothing written", () => {
    const solid = bytes(1, RED); // one solid tile: valid for any rect of one tile
    // 16×8 framebuffer: each rect's area is small, one dimension passes the edge (GStreamer's area check).
    for (const r of [
      area(10, 0, 7, 1),
      area(0, 5, 1, 4),
      area(16, 0, 1, 1),
      area(0, 8, 1, 1),
      area(-1, 0, 1, 1),
    ]) {
      for (const kind of ["zrle", "trle"] as const) {
        fresh(k, 16, 8);
        expect({ r, kind, code: codeOf(() => decode(k, kind, r, solid)) }).toEqual({
          r,
          kind,
          code: "RECT_OUT_OF_BOUNDS",
        });
        expect(touchedOutside(k, area(0, 0, 0, 0))).toBe(0);
      }
      expect(codeOf(() => k.encodeZrle(r.x, r.y, r.w, r.h))).toBe("RECT_OUT_OF_BOUNDS");
    }
  });
});

// ---- encoder: hand-built expectations ----

interface EncodeVector {
  name: string;
  pf: PixelFormat;
  w: number;
  h: number;
  pixels: (x: number, y: number) => Rgb;
  /** The tile data, written from the spec by hand. */
  want: Uint8Array;
}

const A: Rgb = [10, 20, 30];
const B: Rgb = [200, 100, 50];

const ENCODE_VECTORS: EncodeVector[] = [
  {
    name: "one colour: solid",
    pf: CANONICAL,
    w: 3,
    h: 1,
    pixels: () => A,
    want: bytes(1, A), // solid, CPIXEL
  },
  {
    name: "A B A B: packed beats palette RLE (7 < 10 bytes)",
    pf: CANONICAL,
    w: 4,
    h: 1,
    pixels: (x) => (x % 2 ? B : A),
    want: bytes(
      2, // packed, 2 colours
      A, // palette[0]: first seen
      B, // palette[1]
      0b0101_0000, // indices 0 1 0 1 + padding
    ),
  },
  {
    name: "32 A then 32 B: plain RLE (8 bytes) beats palette RLE (10) and packed (14)",
    pf: CANONICAL,
    w: 64,
    h: 1,
    pixels: (x) => (x < 32 ? A : B),
    want: bytes(128, A, 31, B, 31), // plain RLE: colour, length − 1
  },
  {
    name: "20 distinct colours: raw (60 bytes) beats plain RLE (80) and palette RLE (80)",
    pf: CANONICAL,
    w: 20,
    h: 1,
    pixels: (x) => [x, 2 * x, 3 * x],
    want: bytes(0, Array.from({ length: 20 }, (_, x) => [x, 2 * x, 3 * x]).flat()),
  },
  {
    name: "17 colours in runs of 2: palette RLE (187 bytes) beats plain RLE (272)",
    pf: CANONICAL,
    w: 34,
    h: 4,
    pixels: (x, y) => P17[Math.floor((y * 34 + x) / 2) % 17]!,
    want: bytes(
      128 + 17, // palette RLE, 17 colours
      P17.flat(), // in order of first appearance
      Array.from({ length: 68 }, (_, i) => [0x80 | (i % 17), 1]).flat(), // 68 runs: index + 128, length 2
    ),
  },
  {
    name: "a 64×64 tile of A but its last pixel: a 4095 run as sixteen 255s and 14",
    pf: CANONICAL,
    w: 64,
    h: 64,
    pixels: (x, y) => (x === 63 && y === 63 ? B : A),
    // Plain RLE (3 + 1)·2 + 16 extra length bytes = 24, against palette RLE 3·2 + 2 + 1 + 16 = 25.
    want: bytes(128, A, repeat(16, 255), 14, B, 0),
  },
  {
    name: "a tie between palette RLE and packed (14 bytes each) keeps palette RLE",
    pf: CANONICAL,
    w: 64,
    h: 1,
    pixels: (x) => ((x >> 4) % 2 ? B : A),
    want: bytes(
      130, // palette RLE, 2 colours: 6 + 4 runs × 2 = 14; packed 6 + 8 = 14; plain RLE 16
      A, // palette[0]
      B, // palette[1]
      [0x80, 15, 0x81, 15, 0x80, 15, 0x81, 15], // runs of 16: index + 128, length − 1
    ),
  },
  {
    name: "a tie between plain RLE and palette RLE (12 bytes each) keeps plain RLE",
    pf: CANONICAL,
    w: 64,
    h: 1,
    pixels: (x) => (x >= 20 && x < 40 ? B : A),
    want: bytes(128, A, 19, B, 19, A, 23), // plain RLE 3 × 4 = 12; palette RLE 6 + 3 × 2 = 12; packed 14
  },
  {
    name: "a 65×1 rect is two tiles",
    pf: CANONICAL,
    w: 65,
    h: 1,
    pixels: (x) => (x < 64 ? A : B),
    want: bytes(1, A, 1, B),
  },
  {
    name: "BGRX: CPIXEL B, G, R",
    pf: BGRX,
    w: 1,
    h: 1,
    pixels: () => [0x10, 0x20, 0x30],
    want: bytes(1, 0x30, 0x20, 0x10),
  },
  {
    name: "32 bpp big-endian: CPIXEL B, G, R",
    pf: XBGR_BE,
    w: 1,
    h: 1,
    pixels: () => [0x10, 0x20, 0x30],
    want: bytes(1, 0x30, 0x20, 0x10),
  },
  {
    name: "high 3 bytes: CPIXEL = value bytes 1…3 (G, B, R)",
    pf: HIGH24,
    w: 1,
    h: 1,
    pixels: () => [0x10, 0x20, 0x30],
    want: bytes(1, 0x20, 0x30, 0x10),
  },
  {
    name: "4-byte CPIXEL",
    pf: STRADDLE32,
    w: 1,
    h: 1,
    pixels: () => [0x12, 0x34, 0x56],
    want: bytes(1, 0x20, 0x41, 0x63, 0x05), // 0x05634120 little-endian
  },
  {
    name: "RGB565 big-endian",
    pf: RGB565_BE,
    w: 2,
    h: 1,
    pixels: () => RED,
    want: bytes(1, 0xf8, 0x00),
  },
  {
    name: "BGR233: two colours that map to one viewer pixel are one colour",
    pf: BGR233,
    w: 2,
    h: 1,
    pixels: (x) => (x ? [0, 0, 0] : [1, 1, 1]),
    want: bytes(1, 0x00),
  },
];

/** Canonical R,G,B,X bytes of a w×h picture. */
function picture(w: number, h: number, at: (x: number, y: number) => Rgb): Uint8Array {
  const f = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) f.set(at(x, y), (y * w + x) * 4);
  return f;
}

function encodeFrame(k: CodecKernels, frame: Uint8Array, w: number, h: number, pf: PixelFormat, r: Area) {
  k.resize(w, h);
  k.setInputFormat(CANONICAL);
  k.raw(0, 0, w, h, frame);
  k.setOutputFormat(pf);
  return k.encodeZrle(r.x, r.y, r.w, r.h);
}

forEachKernel("zrle encoder", (impl) => {
  let k: CodecKernels;
  beforeAll(async () => {
    k = await impl.make();
  });

  for (const v of ENCODE_VECTORS) {
    test(v.name, () => {
      const got = encodeFrame(k, picture(v.w, v.h, v.pixels), v.w, v.h, v.pf, area(0, 0, v.w, v.h));
      expect(Array.from(got)).toEqual(Array.from(v.want));
    });
  }

  test("an empty rect encodes to nothing", () => {
    const f = picture(4, 4, () => A);
    expect(encodeFrame(k, f, 4, 4, CANONICAL, area(4, 0, 0, 4)).length).toBe(0);
  });

  for (const [name, pf] of FORMATS) {
    test(`round trip through ${name}: rects of a desktop-like frame`, () => {
      const w = 150;
      const h = 90;
      const frame = desktopFrame(w, h, 7);
      const seen = throughFormat(frame, pf);
      for (const r of [
        area(0, 0, w, h),
        area(3, 5, 70, 66),
        area(64, 0, 1, 1),
        area(0, 64, 130, 26),
        area(149, 0, 1, 90),
      ]) {
        const data = encodeFrame(k, frame, w, h, pf, r);
        fresh(k, w, h, pf);
        decode(k, "zrle", r, data);
        expect(touchedOutside(k, r)).toBe(0);
        const p = k.pixels();
        let bad = 0;
        for (let y = r.y; y < r.y + r.h; y++) {
          for (let x = r.x; x < r.x + r.w; x++) {
            const i = (y * w + x) * 4;
            if (p[i] !== seen[i] || p[i + 1] !== seen[i + 1] || p[i + 2] !== seen[i + 2]) bad++;
          }
        }
        expect({ r, bad }).toEqual({ r, bad: 0 });
      }
    });
  }
});

// ---- TRLE framer ----

const ctxOf = (pf: PixelFormat) => ({ pf, limits: DEFAULT_LIMITS });
const trleRect = (r: Area): Rect => ({ ...r, encoding: Encoding.TRLE });
/** Bytes before the body in the queue (its rect header, in real life). */
const BASE = 5;

/** Measures after each chunk is pushed, then (with `more`) after another message's bytes follow. */
function frame(r: Area, chunks: readonly Uint8Array[], pf = CANONICAL, more = true): number[] {
  const q = new ByteQueue(DEFAULT_LIMITS.maxPendingBytes, 16);
  const framer = trleCodec.framer(trleRect(r), ctxOf(pf));
  q.push(new Uint8Array(BASE).fill(0xee));
  const results: number[] = [];
  for (const c of chunks) {
    q.push(c);
    results.push(framer.measure(q, BASE));
  }
  if (more) {
    q.push(bytes(0, 0xff, 0x81)); // the next message's bytes must not change the answer
    results.push(framer.measure(q, BASE));
  }
  return results;
}

/** The framer's answer for a body fed in chunks: its length, "need more", or the error code it threw. */
function frameOutcome(r: Area, chunks: readonly Uint8Array[]): number | string {
  try {
    const results = frame(r, chunks, CANONICAL, false);
    // Before the body is complete: NEED_MORE; once complete: the same length on every later call.
    const first = results.findIndex((n) => n !== NEED_MORE);
    if (first >= 0) for (const n of results.slice(first)) expect(n).toBe(results[first]!);
    return first < 0 ? "need more" : results[first]!;
  } catch (e) {
    return e instanceof RfbError ? e.code : `not an RfbError: ${e}`;
  }
}

describe("trle framer", () => {
  test("every chunking of every TRLE vector gives its length, and not one byte before it is all there", () => {
    for (const v of TRLE_VECTORS) {
      for (const { name, chunks } of splits(v.body)) {
        const results = frame(v.rect, chunks);
        const whole = chunks.length === 1;
        expect({ v: v.name, name, last: results.at(-2) }).toEqual({ v: v.name, name, last: v.body.length });
        if (!whole)
          expect({ v: v.name, name, early: results.slice(0, -2) }).toEqual({
            v: v.name,
            name,
            early: results.slice(0, -2).map(() => NEED_MORE),
          });
      }
    }
  });

  test("an empty rect's body is empty", () => {
    expect(frame(area(0, 0, 0, 9), [bytes()])).toEqual([0, 0]);
  });

  test("bad TRLE bodies throw BAD_RECT, whole or byte by byte; truncated ones wait", () => {
    for (const c of BAD.filter((b) => b.kind === "trle")) {
      const bytewise = Array.from(c.body, (_, i) => c.body.subarray(i, i + 1));
      const wanted =
        c.why === "truncated" ? "need more" : c.why === "trailing" ? c.body.length - 1 : "BAD_RECT";
      for (const chunks of [[c.body], bytewise]) {
        expect({
          name: c.name,
          got: frameOutcome(c.rect, chunks.length ? chunks : [c.body]),
        }).toEqual({
          name: c.name,
          got: wanted,
        });
      }
    }
  });

  test("the framer's CPIXEL size follows the pixel format", () => {
    // One 2×1 raw tile: 1 + 2 × CPIXEL bytes.
    for (const [pf, cp] of [
      [CANONICAL, 3],
      [STRADDLE32, 4],
      [RGB565_LE, 2],
      [BGR233, 1],
      [HIGH24, 3],
    ] as const) {
      const body = bytes(0, repeat(2 * cp, 0));
      expect(frame(area(0, 0, 2, 1), [body], pf)[0]).toBe(1 + 2 * cp);
    }
  });
});

// ---- random tile data (written from the spec, independent of the code under test) ----

/** Valid ZRLE or TRLE tile data for a w×h rect with a random mix of every subencoding; CPIXEL cp bytes. */
function randomTiles(rand: () => number, w: number, h: number, kind: Kind, cp: number): Uint8Array {
  const side = kind === "zrle" ? 64 : 16;
  const out: number[] = [];
  let kept = 0; // TRLE: colours of the last palette sent
  const colour = () => {
    for (let i = 0; i < cp; i++) out.push(rand() & 255);
  };
  const length = (len: number) => {
    let rem = len - 1;
    for (; rem >= 255; rem -= 255) out.push(255);
    out.push(rem);
  };
  /** A run length for `left` pixels: often short, sometimes long enough for a 255 chain. */
  const runOf = (left: number) => 1 + (rand() % (rand() % 4 === 0 ? left : Math.min(left, 6)));
  const packed = (tw: number, th: number, size: number) => {
    const bits = size <= 2 ? 1 : size <= 4 ? 2 : 4;
    for (let y = 0; y < th; y++) {
      const row = new Array<number>(Math.ceil((tw * bits) / 8)).fill(0);
      for (let x = 0; x < tw; x++) row[(x * bits) >> 3]! |= (rand() % size) << (8 - bits - ((x * bits) & 7));
      const pad = (8 - ((tw * bits) & 7)) & 7;
      row[row.length - 1]! |= rand() & ((1 << pad) - 1); // padding bits: anything
      out.push(...row);
    }
  };
  const paletteRuns = (n: number, size: number) => {
    for (let left = n; left > 0; ) {
      const len = runOf(left);
      const idx = rand() % size;
      if (len === 1 && rand() % 2) out.push(idx);
      else {
        out.push(idx | 128);
        length(len);
      }
      left -= len;
    }
  };
  for (let ty = 0; ty < h; ty += side) {
    const th = Math.min(side, h - ty);
    for (let tx = 0; tx < w; tx += side) {
      const tw = Math.min(side, w - tx);
      const n = tw * th;
      const choice = rand() % (kind === "trle" ? 7 : 5);
      if (choice === 0) {
        out.push(0);
        for (let i = 0; i < n; i++) colour();
      } else if (choice === 1) {
        out.push(1);
        colour();
      } else if (choice === 2) {
        const size = 2 + (rand() % 15);
        out.push(size);
        for (let i = 0; i < size; i++) colour();
        packed(tw, th, size);
        kept = size;
      } else if (choice === 3) {
        out.push(128);
        for (let left = n; left > 0; ) {
          const len = runOf(left);
          colour();
          length(len);
          left -= len;
        }
      } else if (choice === 4 || kept === 0) {
        const size = 2 + (rand() % (rand() % 3 === 0 ? 126 : 8));
        out.push(128 + size);
        for (let i = 0; i < size; i++) colour();
        paletteRuns(n, size);
        kept = size;
      } else if (choice === 5 && kept <= 16) {
        out.push(127);
        packed(tw, th, kept);
      } else {
        out.push(129);
        paletteRuns(n, kept);
      }
    }
  }
  return Uint8Array.from(out);
}

/** A copy of body with a few bytes replaced, or cut short, or lengthened. */
function mutate(rand: () => number, body: Uint8Array): Uint8Array {
  const what = rand() % 6;
  if (what === 0) return body;
  if (what === 1) return body.subarray(0, rand() % (body.length + 1));
  if (what === 2) return bytes(body, rand() & 255);
  const out = body.slice();
  for (let i = 1 + (rand() % 3); i > 0 && out.length > 0; i--) {
    const at = rand() % out.length;
    out[at] = rand() % 4 === 0 ? [0, 1, 127, 128, 129, 130, 255][rand() % 7]! : rand() & 255;
  }
  return out;
}

// ---- cross-checks between implementations ----

describe("zrle/trle parity and agreement", () => {
  const kernels: CodecKernels[] = [];
  beforeAll(async () => {
    for (const impl of KERNEL_IMPLS) kernels.push(await impl.make());
  });

  /** Decodes with every implementation: the RfbError code (or "ok") and the framebuffer bytes of each. */
  function decodeAll(kind: Kind, pf: PixelFormat, fbW: number, fbH: number, r: Area, body: Uint8Array) {
    return kernels.map((k) => {
      fresh(k, fbW, fbH, pf);
      const code = codeOf(() => decode(k, kind, r, body)) ?? "ok";
      return { name: k.name, code, outside: touchedOutside(k, r), pixels: Bun.hash(k.pixels()) };
    });
  }

  test("decoders agree on random and damaged tile data: same error code, same framebuffer", () => {
    const formats = [CANONICAL, BGRX, XBGR_BE, HIGH24, STRADDLE32, RGB565_BE, BGR233];
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.constantFrom<Kind>("zrle", "trle"),
        fc.integer({ min: 0, max: formats.length - 1 }),
        fc.integer({ min: 0, max: 140 }),
        fc.integer({ min: 0, max: 80 }),
        (seed, kind, f, w, h) => {
          const rand = prng(seed);
          const pf = formats[f]!;
          const cp = pf === STRADDLE32 ? 4 : Math.min(3, bytesPerPixel(pf));
          const r = area(rand() % 3, rand() % 3, w, h);
          const body = mutate(rand, randomTiles(rand, w, h, kind, cp));
          const [ts, ...wasm] = decodeAll(kind, pf, r.x + w + 2, r.y + h + 2, r, body);
          expect(ts!.code === "ok" || ts!.code === "BAD_RECT").toBe(true);
          expect(ts!.outside).toBe(0);
          for (const other of wasm) expect({ ...other, name: "" }).toEqual({ ...ts!, name: "" });
        },
      ),
      { numRuns: 150 },
    );
  });

  test("the TRLE framer agrees with the decoders, whole and byte by byte", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 0, max: 40 }),
        (seed, w, h) => {
          const rand = prng(seed);
          const r = area(0, 0, w, h);
          const body = mutate(rand, randomTiles(rand, w, h, "trle", 3));
          const whole = frameOutcome(r, [body]);
          const bytewise = frameOutcome(
            r,
            body.length ? Array.from(body, (_, i) => body.subarray(i, i + 1)) : [body],
          );
          expect(bytewise).toEqual(whole);
          const decoded = decodeAll("trle", CANONICAL, w + 1, h + 1, r, body);
          if (typeof whole === "number") {
            // Framed: exactly that prefix decodes, and anything after it is trailing data.
            const prefix = decodeAll("trle", CANONICAL, w + 1, h + 1, r, body.subarray(0, whole));
            for (const d of prefix) expect(d.code).toBe("ok");
            for (const d of decoded) expect(d.code).toBe(whole === body.length ? "ok" : "BAD_RECT");
          } else {
            // Malformed or incomplete: every decoder refuses it too.
            expect(whole === "need more" || whole === "BAD_RECT").toBe(true);
            for (const d of decoded) expect(d.code).toBe("BAD_RECT");
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  test("encoders are byte-identical on random frames, rects and formats, and decode back", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 1, max: 140 }),
        fc.integer({ min: 0, max: FORMATS.length - 1 }),
        (seed, w, h, f) => {
          const rand = prng(seed);
          const pf = FORMATS[f]![1];
          const frame = desktopFrame(w, h, seed);
          const x = rand() % w;
          const y = rand() % h;
          const r = area(x, y, rand() % (w - x + 1), rand() % (h - y + 1));
          const [ts, ...wasm] = kernels.map((k) => encodeFrame(k, frame, w, h, pf, r));
          for (const other of wasm) expect(Bun.hash(other!)).toBe(Bun.hash(ts!));
          const k = kernels[0]!;
          fresh(k, w, h, pf);
          decode(k, "zrle", r, ts!);
          const seen = throughFormat(frame, pf);
          for (let yy = r.y; yy < r.y + r.h; yy++) {
            const i = (yy * w + r.x) * 4;
            const got = k.pixels().subarray(i, i + r.w * 4);
            const want = seen.subarray(i, i + r.w * 4);
            for (let j = 0; j < got.length; j++)
              if (j % 4 !== 3 && got[j] !== want[j]) expect(got[j]).toBe(want[j]!);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

// ---- interop: noVNC's real ZRLE decoder reads our output ----

forEachKernel("zrle encoder interop with noVNC", (impl) => {
  test("several rects in a row on one zlib stream draw exactly our pixels", async () => {
    const k = await impl.make();
    const w = 200;
    const h = 150;
    const novnc = createNoVncSession(w, h);
    const frameNow = desktopFrame(w, h, 11);
    k.resize(w, h);
    k.setInputFormat(CANONICAL);
    k.setOutputFormat(CANONICAL); // noVNC's format: CPIXEL R, G, B
    let first = true;
    const send = (r: Area) => {
      const blob = deflateRect(k.encodeZrle(r.x, r.y, r.w, r.h), 6);
      const compressed = first ? bytes(zlibStreamHeader(6), blob) : blob;
      first = false;
      const body = new Uint8Array(4 + compressed.length);
      new DataView(body.buffer).setUint32(0, compressed.length);
      body.set(compressed, 4);
      novnc.decodeRect(r.x, r.y, r.w, r.h, Encoding.ZRLE, body);
    };
    const check = () => {
      const ours = k.pixels();
      const theirs = novnc.rgba();
      let bad = 0;
      for (let i = 0; i < w * h * 4; i += 4) {
        if (ours[i] !== theirs[i] || ours[i + 1] !== theirs[i + 1] || ours[i + 2] !== theirs[i + 2]) bad++;
      }
      expect(bad).toBe(0);
    };
    k.raw(0, 0, w, h, frameNow);
    send(area(0, 0, w, h));
    check();
    for (let i = 0; i < 6; i++) {
      // Change part of the frame, send a rect around it (edge tiles of every size along the way).
      const next = desktopFrame(w, h, 100 + i);
      const r = area((i * 37) % 120, (i * 23) % 90, 30 + i * 13, 20 + i * 9);
      for (let y = r.y; y < r.y + r.h; y++)
        frameNow.set(next.subarray((y * w + r.x) * 4, (y * w + r.x + r.w) * 4), (y * w + r.x) * 4);
      k.raw(0, 0, w, h, frameNow);
      send(r);
      check();
    }
  });
});
