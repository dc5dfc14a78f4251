// The noVNC harness (test/helpers/novnc.ts): noVNC 1.7.0's own decoders over our fake receive queue and
// Display must reproduce every recorded session of shared/corpus exactly (README "Verify a decoder"), a
// flipped bit must show up as a mismatch, hand-built rects must draw the pixels the spec says
// (rfb-codecs.md §2.1–2.4), and a body of the wrong length must be refused.

import { describe, expect, test } from "bun:test";
import { deflateSync } from "node:zlib";
import { Encoding, RECT_HEADER_LENGTH } from "../../relay/rfb/constants.ts";
import { cat, hex } from "../helpers/bytes.ts";
import {
  type Corpus,
  type CorpusSession,
  compareRgb,
  loadCorpus,
  loadExpectedFinal,
} from "../helpers/corpus.ts";
import { createNoVncSession, decodeCorpusWithNoVnc, type NoVncSession } from "../helpers/novnc.ts";

/** Mismatched pixels (R,G,B) against expected-final at each checkpoint, by `afterUpdate`. */
function checkpointMismatches(corpus: Corpus): Map<number, number> {
  const expected = loadExpectedFinal();
  const out = new Map<number, number>();
  const run = decodeCorpusWithNoVnc(corpus, (cp, rgba) =>
    out.set(cp.afterUpdate, compareRgb(rgba, expected)),
  );
  expect(run.rects).toBe(corpus.index.totals.rects);
  expect(run.pixels).toBe(corpus.index.totals.pixels);
  return out;
}

/** R,G,B,A of one pixel. */
function pixel(s: NoVncSession, x: number, y: number): number[] {
  const i = (y * s.width + x) * 4;
  return Array.from(s.rgba().subarray(i, i + 4));
}

describe("noVNC decodes every recorded session to the expected framebuffer", () => {
  const sessions: CorpusSession[] = ["raw", "copyrect", "rre", "hextile", "zrle", "tight"];
  for (const name of sessions) {
    test(name, () => {
      const corpus = loadCorpus(name);
      const mismatches = checkpointMismatches(corpus);
      const want = new Map(corpus.index.checkpoints.map((cp) => [cp.afterUpdate, 0]));
      expect(want.size).toBeGreaterThan(0);
      expect(mismatches).toEqual(want);
    });
  }

  test("a flipped bit in a hextile rect makes the checkpoints fail", () => {
    const corpus = loadCorpus("hextile");
    const rect = corpus.index.updates[0]!.rects[0]!;
    const body = rect.offset + RECT_HEADER_LENGTH;
    // Rect 0 of the full-screen update starts at (0,0) in the photo (never redrawn later) with a Raw tile:
    // subencoding 1, then pixel (0,0) as R,G,B,X. Flip the low bit of its R.
    expect([rect.x, rect.y, corpus.s2c[body]]).toEqual([0, 0, 1]);
    const s2c = corpus.s2c.slice();
    s2c[body + 1]! ^= 1;
    const mismatches = checkpointMismatches({ ...corpus, s2c });
    expect(mismatches).toEqual(new Map(corpus.index.checkpoints.map((cp) => [cp.afterUpdate, 1])));
  });
});

describe("hand-built rects", () => {
  // Framebuffer pixels are R,G,B,X in memory (noVNC's SetPixelFormat); the decoders force A = 255.
  const RAW_2X2 = hex(`
    ff0000 00   00ff00 00   # row 0: red, green (R,G,B,X)
    0000ff 00   102030 7f   # row 1: blue, (16,32,48) with X = 0x7f, ignored
  `);

  test("Raw 2×2 at (1,1) draws its four pixels and nothing else", () => {
    const s = createNoVncSession(4, 3);
    s.decodeRect(1, 1, 2, 2, Encoding.Raw, RAW_2X2);
    expect(pixel(s, 1, 1)).toEqual([255, 0, 0, 255]);
    expect(pixel(s, 2, 1)).toEqual([0, 255, 0, 255]);
    expect(pixel(s, 1, 2)).toEqual([0, 0, 255, 255]);
    expect(pixel(s, 2, 2)).toEqual([16, 32, 48, 255]);
    for (const [x, y] of [
      [0, 0],
      [3, 0],
      [0, 1],
      [3, 1],
      [0, 2],
      [3, 2],
      [1, 0],
      [2, 0],
    ] as const) {
      expect(pixel(s, x, y)).toEqual([0, 0, 0, 0]); // untouched canvas: transparent black
    }
    expect(RAW_2X2[15]).toBe(0x7f); // the caller's body is not modified (decoders write A in place)
  });

  test("Hextile solid tile: BackgroundSpecified fills the whole 5×3 tile", () => {
    const s = createNoVncSession(8, 5);
    const body = hex(`
      02          # subencoding: BackgroundSpecified
      0a141e 00   # background R,G,B,X = (10,20,30)
    `);
    s.decodeRect(2, 1, 5, 3, Encoding.Hextile, body);
    let inside = 0;
    for (let y = 0; y < s.height; y++) {
      for (let x = 0; x < s.width; x++) {
        const isIn = x >= 2 && x < 7 && y >= 1 && y < 4;
        expect(pixel(s, x, y)).toEqual(isIn ? [10, 20, 30, 255] : [0, 0, 0, 0]);
        if (isIn) inside++;
      }
    }
    expect(inside).toBe(15);
  });

  test("CopyRect down by one row over itself reads the source as it was (canvas drawImage)", () => {
    const s = createNoVncSession(2, 3);
    s.decodeRect(0, 0, 2, 2, Encoding.Raw, RAW_2X2);
    s.decodeRect(0, 1, 2, 2, Encoding.CopyRect, hex("0000 0000")); // src-x, src-y
    expect([pixel(s, 0, 0), pixel(s, 1, 0)]).toEqual([
      [255, 0, 0, 255],
      [0, 255, 0, 255],
    ]);
    expect([pixel(s, 0, 1), pixel(s, 1, 1), pixel(s, 0, 2), pixel(s, 1, 2)]).toEqual([
      [255, 0, 0, 255],
      [0, 255, 0, 255],
      [0, 0, 255, 255],
      [16, 32, 48, 255],
    ]);
  });

  test("Zlib 2×2: U32 length, then the Raw pixels through the connection's zlib stream", () => {
    const s = createNoVncSession(2, 2);
    const z = deflateSync(RAW_2X2);
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, z.length);
    s.decodeRect(0, 0, 2, 2, Encoding.Zlib, cat(length, z));
    expect([pixel(s, 0, 0), pixel(s, 1, 0), pixel(s, 0, 1), pixel(s, 1, 1)]).toEqual([
      [255, 0, 0, 255],
      [0, 255, 0, 255],
      [0, 0, 255, 255],
      [16, 32, 48, 255],
    ]);
  });

  test("a body one byte short, or one byte long, is refused and fails the session", () => {
    const short = createNoVncSession(2, 2);
    expect(() => short.decodeRect(0, 0, 2, 2, Encoding.Raw, RAW_2X2.subarray(0, 15))).toThrow(
      /wants more bytes/,
    );
    expect(() => short.decodeRect(0, 0, 2, 2, Encoding.Raw, RAW_2X2)).toThrow(/already failed/);

    const long = createNoVncSession(2, 2);
    const padded = new Uint8Array(17);
    padded.set(RAW_2X2);
    expect(() => long.decodeRect(0, 0, 2, 2, Encoding.Raw, padded)).toThrow(/1 bytes left unread/);
  });

  test("an encoding noVNC cannot draw synchronously is refused", () => {
    const s = createNoVncSession(2, 2);
    expect(() => s.decodeRect(0, 0, 2, 2, Encoding.TRLE, new Uint8Array(1))).toThrow(/unsupported encoding/);
  });
});
