// The codec core's pixel formats (wasm/assembly/pixel.ts) against the host's (relay/rfb/pixel-convert.ts,
// the one scaling rule): for random valid true-colour formats, Raw decoding device pixels into the canonical
// framebuffer and Raw encoding it back out give exactly the host's translation, on the TS twin and both
// WASM builds; formats the core cannot use are refused with the host's codes.

import { expect, test } from "bun:test";
import fc from "fast-check";
import type { CodecKernels } from "../../relay/codec/kernels.ts";
import { fromCanonical, toCanonical } from "../../relay/rfb/pixel-convert.ts";
import { bytesPerPixel, CANONICAL_FORMAT, type PixelFormat } from "../../relay/rfb/pixel-format.ts";
import { codeOf } from "../helpers/errors.ts";
import { TEST_FORMATS } from "../helpers/formats.ts";
import { forEachKernel } from "./kernel-impls.ts";

/** Random valid true-colour formats: 1–16 bits per channel, channels in any order with gaps, any depth that fits. */
const formats: fc.Arbitrary<PixelFormat> = fc
  .record({
    bpp: fc.constantFrom(8, 16, 32),
    bits: fc.tuple(
      fc.integer({ min: 1, max: 16 }),
      fc.integer({ min: 1, max: 16 }),
      fc.integer({ min: 1, max: 16 }),
    ),
    order: fc.constantFrom([0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]),
    gaps: fc.tuple(fc.nat(4), fc.nat(4), fc.nat(4)),
    bigEndian: fc.boolean(),
    extraDepth: fc.nat(8),
  })
  .filter(({ bpp, bits, gaps }) => bits[0] + bits[1] + bits[2] + gaps[0] + gaps[1] + gaps[2] <= bpp)
  .map(({ bpp, bits, order, gaps, bigEndian, extraDepth }) => {
    const shifts = [0, 0, 0];
    let at = 0;
    for (let i = 0; i < 3; i++) {
      const c = order[i]!;
      at += gaps[i]!;
      shifts[c] = at;
      at += bits[c]!;
    }
    const total = bits[0] + bits[1] + bits[2];
    return {
      bitsPerPixel: bpp,
      depth: Math.min(bpp, total + extraDepth),
      bigEndian,
      trueColour: true,
      redMax: 2 ** bits[0] - 1,
      greenMax: 2 ** bits[1] - 1,
      blueMax: 2 ** bits[2] - 1,
      redShift: shifts[0]!,
      greenShift: shifts[1]!,
      blueShift: shifts[2]!,
    };
  });

/** Device bytes for `count` random pixels of `pf` (every bit random, padding bits included). */
const deviceBytes = (pf: PixelFormat, count: number) =>
  fc.uint8Array({ minLength: count * bytesPerPixel(pf), maxLength: count * bytesPerPixel(pf) });

function hostCanonical(pf: PixelFormat, bytes: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(count * 4);
  toCanonical(bytes, pf, out, count);
  for (let i = 3; i < out.length; i += 4) out[i] = 0;
  return out;
}

forEachKernel("pixel formats", (impl) => {
  let k: CodecKernels;
  const W = 7;
  const H = 3;

  test("Raw decode of random device formats equals the host's translation to canonical", async () => {
    k = await impl.make();
    k.resize(W, H);
    fc.assert(
      fc.property(
        formats.chain((pf) => fc.tuple(fc.constant(pf), deviceBytes(pf, W * H))),
        ([pf, bytes]) => {
          k.setInputFormat(pf);
          k.raw(0, 0, W, H, bytes);
          expect(k.pixels()).toEqual(hostCanonical(pf, bytes, W * H));
        },
      ),
      { numRuns: 200 },
    );
  });

  test("Raw encode into random viewer formats equals the host's translation from canonical", async () => {
    k = await impl.make();
    k.resize(W, H);
    k.setInputFormat(CANONICAL_FORMAT);
    fc.assert(
      fc.property(formats, fc.uint8Array({ minLength: W * H * 4, maxLength: W * H * 4 }), (pf, canonical) => {
        k.raw(0, 0, W, H, canonical);
        k.setOutputFormat(pf);
        const want = new Uint8Array(W * H * bytesPerPixel(pf));
        const masked = canonical.slice();
        for (let i = 3; i < masked.length; i += 4) masked[i] = 0;
        fromCanonical(masked, want, pf, W * H);
        expect(k.encodeRaw(0, 0, W, H)).toEqual(want);
      }),
      { numRuns: 200 },
    );
  });

  test("the named test formats round-trip a 256-level grey ramp as the host quantises it", async () => {
    k = await impl.make();
    k.resize(256, 1);
    const ramp = new Uint8Array(256 * 4);
    for (let v = 0; v < 256; v++) ramp.set([v, 255 - v, (v * 7) & 255, 0], v * 4);
    for (const [, pf] of TEST_FORMATS) {
      k.setInputFormat(CANONICAL_FORMAT);
      k.raw(0, 0, 256, 1, ramp);
      k.setOutputFormat(pf);
      const wire = k.encodeRaw(0, 0, 256, 1);
      k.setInputFormat(pf);
      k.raw(0, 0, 256, 1, wire);
      const want = new Uint8Array(256 * bytesPerPixel(pf));
      fromCanonical(ramp, want, pf, 256);
      expect(k.pixels()).toEqual(hostCanonical(pf, want, 256));
    }
  });

  test("formats the core cannot use are refused with the host's codes", async () => {
    k = await impl.make();
    const bad: [Partial<PixelFormat>, string][] = [
      [{ bitsPerPixel: 24 }, "BAD_PIXEL_FORMAT"],
      [{ redMax: 0 }, "BAD_PIXEL_FORMAT"],
      [{ redMax: 6 }, "BAD_PIXEL_FORMAT"], // not 2^n - 1
      [{ redShift: 30 }, "BAD_PIXEL_FORMAT"], // past the pixel
      [{ bitsPerPixel: 8, depth: 8, trueColour: false }, "UNSUPPORTED"], // colour-mapped
    ];
    for (const [change, code] of bad) {
      const pf = { ...CANONICAL_FORMAT, ...change };
      expect(codeOf(() => k.setInputFormat(pf))).toBe(code);
      expect(codeOf(() => k.setOutputFormat(pf))).toBe(code);
    }
  });
});
