// Tests for relay/rfb/pixel-format.ts: PIXEL_FORMAT bytes (rfbproto.rst "ServerInit", 16 bytes), validation
// (each rejection asserts BAD_PIXEL_FORMAT), and the per-pixel helpers the translators are checked against.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  bytesPerPixel,
  CANONICAL_FORMAT,
  isCanonical,
  type PixelFormat,
  packPixel,
  readPixel,
  readPixelFormat,
  samePixelFormat,
  unpackPixel,
  validatePixelFormat,
  writePixel,
  writePixelFormat,
} from "../../relay/rfb/pixel-format.ts";
import { codeOf } from "../helpers/errors.ts";
import { BGR233, BGRX, RGB565_LE as RGB565 } from "../helpers/formats.ts";

const CANONICAL: PixelFormat = { ...CANONICAL_FORMAT };
const COLOUR_MAPPED: PixelFormat = {
  bitsPerPixel: 8,
  depth: 8,
  bigEndian: false,
  trueColour: false,
  redMax: 0,
  greenMax: 0,
  blueMax: 0,
  redShift: 0,
  greenShift: 0,
  blueShift: 0,
};

// The canonical format on the wire, one comment per field.
const CANONICAL_BYTES = [
  32, // bits-per-pixel
  24, // depth
  0, // big-endian-flag
  1, // true-colour-flag
  0x00,
  0xff, // red-max U16 (big-endian, like every RFB integer)
  0x00,
  0xff, // green-max
  0x00,
  0xff, // blue-max
  0, // red-shift
  8, // green-shift
  16, // blue-shift
  0,
  0,
  0, // padding
];

describe("readPixelFormat / writePixelFormat", () => {
  test("canonical format: hand-built bytes both ways", () => {
    expect(readPixelFormat(Uint8Array.from(CANONICAL_BYTES))).toEqual(CANONICAL);
    const out = new Uint8Array(16);
    writePixelFormat(CANONICAL, out);
    expect([...out]).toEqual(CANONICAL_BYTES);
  });

  test("RGB565 big-endian: maxes are U16 big-endian, flags are 0/1", () => {
    const out = new Uint8Array(16);
    writePixelFormat({ ...RGB565, bigEndian: true }, out);
    expect([...out]).toEqual([16, 16, 1, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0]);
  });

  test("padding is written as zero over a buffer pre-filled with 0xff; bytes outside the 16 are untouched", () => {
    const buf = new Uint8Array(4 + 16 + 4).fill(0xff);
    writePixelFormat(CANONICAL, buf, 4);
    expect([...buf.subarray(4, 20)]).toEqual(CANONICAL_BYTES);
    expect([...buf.subarray(17, 20)]).toEqual([0, 0, 0]);
    expect([...buf.subarray(0, 4)]).toEqual([0xff, 0xff, 0xff, 0xff]);
    expect([...buf.subarray(20)]).toEqual([0xff, 0xff, 0xff, 0xff]);
  });

  test("read at an offset, and from a subarray with its own byteOffset", () => {
    const buf = new Uint8Array(3 + 16);
    buf.set(CANONICAL_BYTES, 3);
    expect(readPixelFormat(buf, 3)).toEqual(CANONICAL);
    expect(readPixelFormat(buf.subarray(3))).toEqual(CANONICAL);
    expect(readPixelFormat(buf.subarray(1), 2)).toEqual(CANONICAL);
  });

  test("padding on input is ignored; any non-zero flag byte reads as true", () => {
    const bytes = Uint8Array.from(CANONICAL_BYTES);
    bytes.set([0xaa, 0xbb, 0xcc], 13);
    bytes[2] = 0x80;
    bytes[3] = 0x02;
    expect(readPixelFormat(bytes)).toEqual({ ...CANONICAL, bigEndian: true });
  });

  test("random 16 bytes: write(read(b)) = b with padding zeroed and flags normalised to 0/1", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        const out = new Uint8Array(16).fill(0xff);
        writePixelFormat(readPixelFormat(b), out);
        const expected = b.slice();
        expected[2] = b[2] ? 1 : 0;
        expected[3] = b[3] ? 1 : 0;
        expected.fill(0, 13);
        expect(out).toEqual(expected);
      }),
    );
  });

  test("random formats: read(write(f)) = f", () => {
    const u8 = fc.nat({ max: 255 });
    const u16 = fc.nat({ max: 65535 });
    const format = fc.record({
      bitsPerPixel: u8,
      depth: u8,
      bigEndian: fc.boolean(),
      trueColour: fc.boolean(),
      redMax: u16,
      greenMax: u16,
      blueMax: u16,
      redShift: u8,
      greenShift: u8,
      blueShift: u8,
    });
    fc.assert(
      fc.property(format, (f) => {
        const out = new Uint8Array(16);
        writePixelFormat(f, out);
        expect(readPixelFormat(out)).toEqual(f);
      }),
    );
  });

  test("fewer than 16 bytes is an error, not a read past the end", () => {
    expect(() => readPixelFormat(new Uint8Array(15))).toThrow();
    expect(() => readPixelFormat(new Uint8Array(16), 1)).toThrow();
  });
});

describe("validatePixelFormat accepts", () => {
  const ok: [string, PixelFormat][] = [
    ["canonical (32 bpp depth 24, R0 G8 B16)", CANONICAL],
    ["BGRX (R16 G8 B0)", BGRX],
    ["canonical big-endian", { ...CANONICAL, bigEndian: true }],
    ["32 bpp depth 32", { ...CANONICAL, depth: 32 }],
    ["RGB565", RGB565],
    ["RGB555 depth 15", { ...RGB565, depth: 15, greenMax: 31, redShift: 10 }],
    ["BGR233 (8 bpp true colour: R max 7 shift 0, G max 7 shift 3, B max 3 shift 6)", BGR233],
    ["8-bit colour-mapped", COLOUR_MAPPED],
    ["colour-mapped maxes and shifts are ignored", { ...COLOUR_MAPPED, redMax: 254, blueShift: 200 }],
    [
      "1-bit channels at the top of 32 bpp",
      {
        ...CANONICAL,
        depth: 3,
        redMax: 1,
        greenMax: 1,
        blueMax: 1,
        redShift: 31,
        greenShift: 30,
        blueShift: 29,
      },
    ],
    [
      "a 16-bit channel",
      { ...CANONICAL, depth: 32, redMax: 65535, redShift: 16, greenShift: 8, blueShift: 0 },
    ],
    [
      "10-bit channels",
      {
        ...CANONICAL,
        depth: 30,
        redMax: 1023,
        greenMax: 1023,
        blueMax: 1023,
        redShift: 20,
        greenShift: 10,
        blueShift: 0,
      },
    ],
  ];
  test.each(ok)("%s", (_name, f) => {
    expect(codeOf(() => validatePixelFormat(f))).toBeUndefined();
  });
});

describe("validatePixelFormat rejects with BAD_PIXEL_FORMAT", () => {
  const bad: [string, PixelFormat][] = [
    ["bpp 0", { ...CANONICAL, bitsPerPixel: 0, depth: 0 }],
    ["bpp 7", { ...BGR233, bitsPerPixel: 7, depth: 7 }],
    ["bpp 24", { ...CANONICAL, bitsPerPixel: 24 }],
    ["bpp 64", { ...CANONICAL, bitsPerPixel: 64 }],
    ["bpp 255", { ...CANONICAL, bitsPerPixel: 255 }],
    ["depth 0", { ...CANONICAL, depth: 0 }],
    ["depth 0, colour-mapped", { ...COLOUR_MAPPED, depth: 0 }],
    ["depth > bpp (8 bpp, depth 9)", { ...BGR233, depth: 9 }],
    ["depth > bpp (16 bpp, depth 17)", { ...RGB565, depth: 17 }],
    ["depth > bpp (32 bpp, depth 33)", { ...CANONICAL, depth: 33 }],
    ["depth > bpp, colour-mapped (depth 16 at 8 bpp)", { ...COLOUR_MAPPED, depth: 16 }],
    ["red-max 254 (not 2^n − 1)", { ...CANONICAL, redMax: 254 }],
    ["green-max 0", { ...CANONICAL, greenMax: 0 }],
    ["blue-max 256", { ...CANONICAL, blueMax: 256 }],
    ["red-max 65534", { ...CANONICAL, depth: 32, redMax: 65534, redShift: 16, greenShift: 8, blueShift: 0 }],
    ["green-max 5 (101)", { ...RGB565, greenMax: 5 }],
    ["shift + bits > bpp: RGB565 red at 12", { ...RGB565, redShift: 12 }],
    ["shift + bits > bpp: canonical blue at 25", { ...CANONICAL, blueShift: 25 }],
    ["shift + bits > bpp: BGR233 blue at 7", { ...BGR233, blueShift: 7 }],
    ["shift far past bpp", { ...CANONICAL, redShift: 200 }],
    ["overlapping channels: green over red", { ...CANONICAL, greenShift: 4 }],
    ["overlapping channels: all at 0", { ...CANONICAL, greenShift: 0, blueShift: 0 }],
    ["overlapping channels: RGB565 green 6 bits at 6 touches red at 11", { ...RGB565, greenShift: 6 }],
    ["overlapping channels: BGR233 blue over green", { ...BGR233, blueShift: 5 }],
    ["true-colour=0 at 16 bpp", { ...RGB565, trueColour: false }],
    ["true-colour=0 at 32 bpp", { ...CANONICAL, trueColour: false }],
    ["channels use more bits than depth (24 bits, depth 23)", { ...CANONICAL, depth: 23 }],
  ];
  test.each(bad)("%s", (_name, f) => {
    expect(codeOf(() => validatePixelFormat(f))).toBe("BAD_PIXEL_FORMAT");
  });

  test("every bits-per-pixel value other than 8, 16, 32 is rejected; colour-mapped only at 8", () => {
    for (let bpp = 0; bpp <= 255; bpp++) {
      const valid = bpp === 8 || bpp === 16 || bpp === 32;
      const trueColour = codeOf(() => validatePixelFormat({ ...BGR233, bitsPerPixel: bpp }));
      expect([bpp, trueColour]).toEqual([bpp, valid ? undefined : "BAD_PIXEL_FORMAT"]);
      const mapped = codeOf(() => validatePixelFormat({ ...COLOUR_MAPPED, bitsPerPixel: bpp }));
      expect([bpp, mapped]).toEqual([bpp, bpp === 8 ? undefined : "BAD_PIXEL_FORMAT"]);
    }
  });

  test("every max that is not 2^n − 1 is rejected (all 16-bit values, as the blue channel of 32 bpp)", () => {
    const base = { ...CANONICAL, depth: 32, redShift: 24, greenShift: 16, blueShift: 0 };
    let accepted = 0;
    for (let max = 0; max <= 65535; max++) {
      const ok = codeOf(() => validatePixelFormat({ ...base, blueMax: max })) === undefined;
      const isMask = max > 0 && (max & (max + 1)) === 0;
      if (ok !== isMask) expect([max, ok]).toEqual([max, isMask]);
      if (ok) accepted++;
    }
    expect(accepted).toBe(16); // 1, 3, 7, … 65535
  });
});

describe("per-pixel helpers", () => {
  test("bytesPerPixel", () => {
    expect([CANONICAL, RGB565, BGR233].map(bytesPerPixel)).toEqual([4, 2, 1]);
  });

  test("samePixelFormat ignores depth, and byte order at 8 bpp only", () => {
    expect(samePixelFormat(CANONICAL, { ...CANONICAL, depth: 32 })).toBe(true);
    expect(samePixelFormat(BGR233, { ...BGR233, bigEndian: true })).toBe(true);
    expect(samePixelFormat(RGB565, { ...RGB565, bigEndian: true })).toBe(false);
    expect(samePixelFormat(CANONICAL, BGRX)).toBe(false);
    expect(isCanonical({ ...CANONICAL })).toBe(true);
    expect(isCanonical(BGRX)).toBe(false);
  });

  test("packPixel: canonical is R | G<<8 | B<<16; RGB565 and BGR233 scale with rounding", () => {
    expect(packPixel(CANONICAL, 0x11, 0x22, 0x33)).toBe(0x332211);
    expect(packPixel(RGB565, 255, 0, 0)).toBe(0xf800);
    expect(packPixel(RGB565, 0, 255, 0)).toBe(0x07e0);
    expect(packPixel(BGR233, 128, 128, 128)).toBe(0xa4);
  });

  test("packPixel with a channel in the top byte stays positive", () => {
    expect(packPixel({ ...CANONICAL, redShift: 24, greenShift: 16, blueShift: 8 }, 255, 0, 0)).toBe(
      0xff000000,
    );
  });

  test("unpackPixel ignores padding bits and scales up", () => {
    expect(unpackPixel(CANONICAL, 0xff332211)).toEqual([0x11, 0x22, 0x33]);
    expect(unpackPixel(RGB565, 0xf800)).toEqual([255, 0, 0]);
    expect(unpackPixel(BGR233, 0xa4)).toEqual([146, 146, 170]);
  });

  test("unpack(pack(r, g, b)) is exact for 8-bit channels", () => {
    fc.assert(
      fc.property(fc.constantFrom(CANONICAL, BGRX), fc.nat(255), fc.nat(255), fc.nat(255), (f, r, g, b) => {
        expect(unpackPixel(f, packPixel(f, r, g, b))).toEqual([r, g, b]);
      }),
    );
  });

  test("writePixel / readPixel round trip in every size and byte order, at odd offsets", () => {
    const formats = [
      CANONICAL,
      { ...CANONICAL, bigEndian: true },
      RGB565,
      { ...RGB565, bigEndian: true },
      BGR233,
    ];
    fc.assert(
      fc.property(fc.constantFrom(...formats), fc.nat({ max: 2 ** 32 - 1 }), fc.nat(3), (f, v, off) => {
        const value = v % 2 ** f.bitsPerPixel;
        const buf = new Uint8Array(off + 4);
        writePixel(f, buf, off, value);
        expect(readPixel(f, buf, off)).toBe(value);
      }),
    );
  });

  test("byte order on the wire: 0x11223344 LE is 44 33 22 11, BE is 11 22 33 44; 0xABCD is CD AB / AB CD", () => {
    const buf = new Uint8Array(4);
    writePixel(CANONICAL, buf, 0, 0x11223344);
    expect([...buf]).toEqual([0x44, 0x33, 0x22, 0x11]);
    writePixel({ ...CANONICAL, bigEndian: true }, buf, 0, 0x11223344);
    expect([...buf]).toEqual([0x11, 0x22, 0x33, 0x44]);
    const two = new Uint8Array(2);
    writePixel(RGB565, two, 0, 0xabcd);
    expect([...two]).toEqual([0xcd, 0xab]);
    writePixel({ ...RGB565, bigEndian: true }, two, 0, 0xabcd);
    expect([...two]).toEqual([0xab, 0xcd]);
  });
});
