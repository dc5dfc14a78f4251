// Reconnect back-off: full jitter under an exponential ceiling, capped, resettable; bounds checked with
// fixed random sources (0, just below 1, 0.5) and a recorded sequence.

import { describe, expect, test } from "bun:test";
import { BACKOFF_DEFAULTS, Backoff } from "../../relay/agent/backoff.ts";

describe("Backoff", () => {
  test("ceilings double from the base up to the cap, and stay there (no overflow at huge attempts)", () => {
    const b = new Backoff({ baseMs: 100, capMs: 1_000, random: () => 0.5 });
    expect([0, 1, 2, 3, 4, 5].map((a) => b.ceiling(a))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(b.ceiling(5_000)).toBe(1_000);
    expect(b.ceiling(1e9)).toBe(1_000);
  });

  test("random 0.5 gives exactly half of each ceiling", () => {
    const b = new Backoff({ baseMs: 100, capMs: 1_000, random: () => 0.5 });
    expect(Array.from({ length: 7 }, () => b.next())).toEqual([50, 100, 200, 400, 500, 500, 500]);
    expect(b.attempt).toBe(7);
  });

  test("bounds: random 0 gives 0, random just below 1 stays below the ceiling", () => {
    const low = new Backoff({ random: () => 0 });
    const high = new Backoff({ random: () => 1 - Number.EPSILON / 2 });
    for (let i = 0; i < 40; i++) {
      const ceiling = high.ceiling();
      expect(low.next()).toBe(0);
      const d = high.next();
      expect(d).toBeLessThan(ceiling);
      expect(d).toBeGreaterThanOrEqual(ceiling - 1);
      expect(d).toBeLessThanOrEqual(BACKOFF_DEFAULTS.capMs);
    }
  });

  test("a random source outside [0, 1) cannot push a delay out of bounds", () => {
    for (const r of [1, 2, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const b = new Backoff({ baseMs: 100, capMs: 400, random: () => r });
      for (let i = 0; i < 5; i++) {
        const c = b.ceiling();
        const d = b.next();
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(c);
      }
    }
  });

  test("a recorded sequence, and reset() starts again from the base", () => {
    const seq = [0.9, 0.1, 0.75, 0.3];
    let i = 0;
    const b = new Backoff({ baseMs: 1_000, capMs: 60_000, random: () => seq[i++ % seq.length]! });
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([900, 200, 3_000, 2_400]);
    b.reset();
    expect(b.attempt).toBe(0);
    expect(b.next()).toBe(900);
  });

  test("defaults are named and used", () => {
    const b = new Backoff();
    expect([b.baseMs, b.capMs, b.factor]).toEqual([BACKOFF_DEFAULTS.baseMs, BACKOFF_DEFAULTS.capMs, 2]);
    for (let i = 0; i < 100; i++) {
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(BACKOFF_DEFAULTS.capMs);
    }
  });

  test("nonsense options are refused", () => {
    expect(() => new Backoff({ baseMs: 0 })).toThrow(RangeError);
    expect(() => new Backoff({ baseMs: 100, capMs: 50 })).toThrow(RangeError);
    expect(() => new Backoff({ factor: 0.5 })).toThrow(RangeError);
    expect(() => new Backoff({ capMs: Number.POSITIVE_INFINITY })).toThrow(RangeError);
  });
});
