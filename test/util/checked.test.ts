// Tests for relay/util/checked.ts: boundaries at 0, 1, cap, cap+1, 2^31, 2^32, 2^53−1, 2^53, and bad inputs,
// each asserting the error code (LIMIT_EXCEEDED: a real size over a cap; SIZE_OVERFLOW: not a size at all, or
// arithmetic past 2^53). Randomized checks use BigInt as the exact oracle.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { RfbError } from "../../relay/rfb/errors.ts";
import { DEFAULT_LIMITS, limitsWith } from "../../relay/rfb/limits.ts";
import { checkedAdd, checkedMul, checkedPixels, checkedSize } from "../../relay/util/checked.ts";
import { codeOf } from "../helpers/errors.ts";

const MAX = Number.MAX_SAFE_INTEGER; // 2^53 − 1
const P31 = 2 ** 31;
const P32 = 2 ** 32;
const P53 = 2 ** 53;

const NOT_SIZES = [-1, -P53, 0.5, 1.5, P31 + 0.5, P53, 2 ** 60, Number.NaN, Infinity, -Infinity];

describe("checkedSize", () => {
  test("0, 1 and exactly the cap pass through unchanged", () => {
    for (const cap of [0, 1, 255, P31, P32, MAX]) {
      expect(checkedSize(0, cap, "n")).toBe(0);
      if (cap >= 1) expect(checkedSize(1, cap, "n")).toBe(1);
      expect(checkedSize(cap, cap, "n")).toBe(cap);
    }
  });

  test("cap + 1 is LIMIT_EXCEEDED, at small caps and around 2^31, 2^32", () => {
    for (const cap of [0, 1, 255, P31 - 1, P31, P32 - 1, P32, MAX - 1]) {
      expect(codeOf(() => checkedSize(cap + 1, cap, "n"))).toBe("LIMIT_EXCEEDED");
    }
  });

  test("2^31 and 2^32 are ordinary sizes (no 32-bit wrap)", () => {
    expect(checkedSize(P31, MAX, "n")).toBe(P31);
    expect(checkedSize(P32, MAX, "n")).toBe(P32);
    expect(checkedSize(P32 + 1, MAX, "n")).toBe(P32 + 1);
    expect(codeOf(() => checkedSize(P32, P32 - 1, "n"))).toBe("LIMIT_EXCEEDED");
  });

  test("2^53 − 1 is the largest size; 2^53 is SIZE_OVERFLOW even under an infinite cap", () => {
    expect(checkedSize(MAX, MAX, "n")).toBe(MAX);
    expect(checkedSize(MAX, Infinity, "n")).toBe(MAX);
    expect(codeOf(() => checkedSize(P53, Infinity, "n"))).toBe("SIZE_OVERFLOW");
    expect(codeOf(() => checkedSize(P53 + 2, Infinity, "n"))).toBe("SIZE_OVERFLOW");
  });

  test("negative, NaN, infinite and non-integer values are SIZE_OVERFLOW, whatever the cap", () => {
    for (const n of NOT_SIZES) {
      expect(codeOf(() => checkedSize(n, Infinity, "n"))).toBe("SIZE_OVERFLOW");
      // Not a size wins over over-the-cap: the value is rejected for what it is.
      expect(codeOf(() => checkedSize(n, 0, "n"))).toBe("SIZE_OVERFLOW");
    }
  });

  test("−0 is accepted as zero", () => {
    expect(checkedSize(-0, 10, "n") === 0).toBe(true);
  });

  test("the error names what was being sized and carries the table's close code", () => {
    try {
      checkedSize(11, 10, "cut text");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(RfbError);
      const err = e as RfbError;
      expect(err.message).toContain("cut text");
      expect(err.close).toBe(4413);
    }
  });

  test("random: passes exactly when n is a safe non-negative integer ≤ cap", () => {
    fc.assert(
      fc.property(fc.oneof(fc.maxSafeNat(), fc.double()), fc.maxSafeNat(), (n, cap) => {
        const code = codeOf(() => checkedSize(n, cap, "n"));
        if (!Number.isSafeInteger(n) || n < 0) expect(code).toBe("SIZE_OVERFLOW");
        else if (n > cap) expect(code).toBe("LIMIT_EXCEEDED");
        else expect(code).toBeUndefined();
      }),
    );
  });
});

describe("checkedMul", () => {
  test("0 and 1 as factors, including 0 × 2^53 − 1 and 1 × 2^53 − 1", () => {
    expect(checkedMul(0, 0, 0, "m")).toBe(0);
    expect(checkedMul(0, MAX, 0, "m")).toBe(0);
    expect(checkedMul(MAX, 0, 0, "m")).toBe(0);
    expect(checkedMul(1, MAX, MAX, "m")).toBe(MAX);
    expect(checkedMul(MAX, 1, MAX, "m")).toBe(MAX);
  });

  test("product equal to the cap passes; one more unit is LIMIT_EXCEEDED", () => {
    expect(checkedMul(1920, 1080, 1920 * 1080, "m")).toBe(2_073_600);
    expect(codeOf(() => checkedMul(1920, 1080, 1920 * 1080 - 1, "m"))).toBe("LIMIT_EXCEEDED");
  });

  test("products at 2^31 and 2^32 are exact (no int32 wrap)", () => {
    expect(checkedMul(2 ** 16, 2 ** 15, MAX, "m")).toBe(P31);
    expect(checkedMul(2 ** 16, 2 ** 16, MAX, "m")).toBe(P32);
    expect(checkedMul(65535, 65535, MAX, "m")).toBe(4_294_836_225);
    expect(codeOf(() => checkedMul(2 ** 16, 2 ** 16, P32 - 1, "m"))).toBe("LIMIT_EXCEEDED");
  });

  test("a product of 2^53 or more is SIZE_OVERFLOW, even when the cap is also passed", () => {
    expect(checkedMul(2 ** 26, 2 ** 27 - 1, MAX, "m")).toBe(P53 - 2 ** 26);
    expect(codeOf(() => checkedMul(2 ** 26, 2 ** 27, MAX, "m"))).toBe("SIZE_OVERFLOW");
    expect(codeOf(() => checkedMul(2 ** 26, 2 ** 27, 100, "m"))).toBe("SIZE_OVERFLOW");
    expect(codeOf(() => checkedMul(MAX, 2, Infinity, "m"))).toBe("SIZE_OVERFLOW");
    // 3 × 3002399751580330 = 2^53 − 2 fits; the next multiple does not.
    expect(checkedMul(3, 3002399751580330, MAX, "m")).toBe(P53 - 2);
    expect(codeOf(() => checkedMul(3, 3002399751580331, MAX, "m"))).toBe("SIZE_OVERFLOW");
  });

  test("a factor that is not a size is SIZE_OVERFLOW, on either side, even next to a zero", () => {
    for (const n of NOT_SIZES) {
      expect(codeOf(() => checkedMul(n, 1, Infinity, "m"))).toBe("SIZE_OVERFLOW");
      expect(codeOf(() => checkedMul(1, n, Infinity, "m"))).toBe("SIZE_OVERFLOW");
      expect(codeOf(() => checkedMul(0, n, Infinity, "m"))).toBe("SIZE_OVERFLOW");
    }
  });

  test("random: equals the BigInt product, or the right code", () => {
    const factor = fc.oneof(fc.maxSafeNat(), fc.nat({ max: 2 ** 27 }), fc.nat({ max: 70_000 }));
    fc.assert(
      fc.property(factor, factor, fc.oneof(fc.maxSafeNat(), fc.nat({ max: 2 ** 32 })), (a, b, cap) => {
        const exact = BigInt(a) * BigInt(b);
        const code = codeOf(() => checkedMul(a, b, cap, "m"));
        if (exact > BigInt(MAX)) expect(code).toBe("SIZE_OVERFLOW");
        else if (exact > BigInt(cap)) expect(code).toBe("LIMIT_EXCEEDED");
        else expect(checkedMul(a, b, cap, "m")).toBe(Number(exact));
      }),
      { numRuns: 2000 },
    );
  });

  test("random near the 2^53 edge: a = random, b = ⌊MAX / a⌋ passes and b + 1 overflows", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 2 ** 40 }), (a) => {
        const b = Number(BigInt(MAX) / BigInt(a));
        expect(checkedMul(a, b, MAX, "m")).toBe(Number(BigInt(a) * BigInt(b)));
        expect(codeOf(() => checkedMul(a, b + 1, MAX, "m"))).toBe("SIZE_OVERFLOW");
      }),
      { numRuns: 2000 },
    );
  });
});

describe("checkedAdd", () => {
  test("0 and 1, sum equal to the cap, and cap + 1", () => {
    expect(checkedAdd(0, 0, 0, "a")).toBe(0);
    expect(checkedAdd(0, 1, 1, "a")).toBe(1);
    expect(checkedAdd(12, 4, 16, "a")).toBe(16);
    expect(codeOf(() => checkedAdd(12, 5, 16, "a"))).toBe("LIMIT_EXCEEDED");
  });

  test("sums across 2^31 and 2^32 are exact", () => {
    expect(checkedAdd(P31 - 1, 1, MAX, "a")).toBe(P31);
    expect(checkedAdd(P31, P31, MAX, "a")).toBe(P32);
    expect(checkedAdd(P32 - 1, 1, MAX, "a")).toBe(P32);
    expect(codeOf(() => checkedAdd(P31, P31, P32 - 1, "a"))).toBe("LIMIT_EXCEEDED");
  });

  test("2^53 − 1 is reachable; 2^53 is SIZE_OVERFLOW even when the cap is also passed", () => {
    expect(checkedAdd(MAX - 1, 1, MAX, "a")).toBe(MAX);
    expect(checkedAdd(MAX, 0, MAX, "a")).toBe(MAX);
    expect(codeOf(() => checkedAdd(MAX, 1, Infinity, "a"))).toBe("SIZE_OVERFLOW");
    expect(codeOf(() => checkedAdd(2 ** 52, 2 ** 52, Infinity, "a"))).toBe("SIZE_OVERFLOW");
    expect(codeOf(() => checkedAdd(2 ** 52, 2 ** 52, 10, "a"))).toBe("SIZE_OVERFLOW");
  });

  test("an operand that is not a size is SIZE_OVERFLOW, on either side", () => {
    for (const n of NOT_SIZES) {
      expect(codeOf(() => checkedAdd(n, 0, Infinity, "a"))).toBe("SIZE_OVERFLOW");
      expect(codeOf(() => checkedAdd(0, n, Infinity, "a"))).toBe("SIZE_OVERFLOW");
    }
  });

  test("random: equals the BigInt sum, or the right code", () => {
    const term = fc.oneof(
      fc.maxSafeNat(),
      fc.nat({ max: 2 ** 33 }),
      fc.integer({ min: MAX - 1000, max: MAX }),
    );
    fc.assert(
      fc.property(term, term, fc.maxSafeNat(), (a, b, cap) => {
        const exact = BigInt(a) + BigInt(b);
        const code = codeOf(() => checkedAdd(a, b, cap, "a"));
        if (exact > BigInt(MAX)) expect(code).toBe("SIZE_OVERFLOW");
        else if (exact > BigInt(cap)) expect(code).toBe("LIMIT_EXCEEDED");
        else expect(checkedAdd(a, b, cap, "a")).toBe(Number(exact));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("checkedPixels", () => {
  test("zero-sized rects are 0 bytes; 1×1×4 is 4", () => {
    expect(checkedPixels(0, 1080, 4, 0, "p")).toBe(0);
    expect(checkedPixels(1920, 0, 4, 0, "p")).toBe(0);
    expect(checkedPixels(1, 1, 4, 4, "p")).toBe(4);
    expect(codeOf(() => checkedPixels(1, 1, 4, 3, "p"))).toBe("LIMIT_EXCEEDED");
  });

  test("a full 1080p frame at the cap passes; one byte less of cap is LIMIT_EXCEEDED", () => {
    expect(checkedPixels(1920, 1080, 4, 8_294_400, "p")).toBe(8_294_400);
    expect(codeOf(() => checkedPixels(1920, 1080, 4, 8_294_399, "p"))).toBe("LIMIT_EXCEEDED");
  });

  test("the largest RFB rect (65535 × 65535 × 4 = 17 179 344 900, past 2^32) is exact, and refused by a real cap", () => {
    expect(checkedPixels(65535, 65535, 4, MAX, "p")).toBe(17_179_344_900);
    expect(codeOf(() => checkedPixels(65535, 65535, 4, 32 * 2 ** 20, "p"))).toBe("LIMIT_EXCEEDED");
    expect(codeOf(() => checkedPixels(2 ** 16, 2 ** 16, 1, P32 - 1, "p"))).toBe("LIMIT_EXCEEDED");
  });

  test("overflow of w × h or of × bytesPerPixel is SIZE_OVERFLOW", () => {
    expect(codeOf(() => checkedPixels(2 ** 27, 2 ** 26, 1, MAX, "p"))).toBe("SIZE_OVERFLOW");
    expect(codeOf(() => checkedPixels(2 ** 26, 2 ** 25, 4, MAX, "p"))).toBe("SIZE_OVERFLOW");
    expect(checkedPixels(2 ** 26, 2 ** 25, 2, MAX, "p")).toBe(2 ** 52);
  });

  test("bad dimensions are SIZE_OVERFLOW", () => {
    for (const n of NOT_SIZES) {
      expect(codeOf(() => checkedPixels(n, 1, 4, Infinity, "p"))).toBe("SIZE_OVERFLOW");
      expect(codeOf(() => checkedPixels(1, n, 4, Infinity, "p"))).toBe("SIZE_OVERFLOW");
      expect(codeOf(() => checkedPixels(1, 1, n, Infinity, "p"))).toBe("SIZE_OVERFLOW");
    }
  });

  test("random: equals the BigInt product w × h × bpp, or the right code", () => {
    const side = fc.oneof(fc.nat({ max: 65535 }), fc.maxSafeNat());
    fc.assert(
      fc.property(side, side, fc.constantFrom(1, 2, 4), fc.maxSafeNat(), (w, h, bpp, cap) => {
        const wh = BigInt(w) * BigInt(h);
        const exact = wh * BigInt(bpp);
        const code = codeOf(() => checkedPixels(w, h, bpp, cap, "p"));
        if (exact > BigInt(MAX)) expect(code).toBe("SIZE_OVERFLOW");
        else if (exact > BigInt(cap)) expect(code).toBe("LIMIT_EXCEEDED");
        else expect(checkedPixels(w, h, bpp, cap, "p")).toBe(Number(exact));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("limits fail closed", () => {
  test("a cap that is NaN or undefined rejects everything", () => {
    expect(() => checkedSize(1, Number.NaN, "x")).toThrow("LIMIT_EXCEEDED");
    expect(() => checkedPixels(65535, 65535, 4, undefined as unknown as number, "x")).toThrow(
      "LIMIT_EXCEEDED",
    );
  });
  test("limitsWith keeps defaults for undefined overrides and refuses bad ones", () => {
    expect(limitsWith({ maxFramebufferPixels: undefined }).maxFramebufferPixels).toBe(
      DEFAULT_LIMITS.maxFramebufferPixels,
    );
    expect(limitsWith({ maxCutText: 5 }).maxCutText).toBe(5);
    expect(() => limitsWith({ maxCutText: Number.NaN })).toThrow(RangeError);
    expect(() => limitsWith({ maxCutText: -1 })).toThrow(RangeError);
  });
});
