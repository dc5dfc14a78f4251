// Region (relay/codec/region.ts): every operation checked against a bitmap model on random rects (union,
// intersect, subtract, translate, clip, contains, area, bounds, equals, coalesce), the canonical banded form
// of rects(), hand-built shapes with the rects worked out by hand, and input checking.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { REGION_COORD_LIMIT, Region, type RegionRect } from "../../relay/codec/region.ts";
import { codeOf } from "../helpers/errors.ts";

// The framebuffer for clip() is W × H; random rects stray up to 8 px outside it, and translate moves them by
// up to ±MAX_SHIFT, so the model's window (OX, OY, MW × MH) holds everything any case can produce.
const W = 64;
const H = 48;
const MAX_SHIFT = 24;
const OX = -8 - MAX_SHIFT;
const OY = -8 - MAX_SHIFT;
const MW = W + 24 + 2 * MAX_SHIFT + 8;
const MH = H + 24 + 2 * MAX_SHIFT + 8;
const RUNS = { numRuns: 300 };

/** The model: one byte per pixel of the window. */
type Bitmap = Uint8Array;

function blank(): Bitmap {
  return new Uint8Array(MW * MH);
}

function inWindow(x: number, y: number): boolean {
  return x >= OX && x < OX + MW && y >= OY && y < OY + MH;
}

/** Paints rects the model's way (overlaps allowed, w or h ≤ 0 paint nothing). */
function modelOf(rects: readonly RegionRect[]): Bitmap {
  const m = blank();
  for (const r of rects) {
    for (let y = r.y; y < r.y + r.h; y++) {
      for (let x = r.x; x < r.x + r.w; x++) m[(y - OY) * MW + (x - OX)] = 1;
    }
  }
  return m;
}

/** Paints a region's rects(), failing if any two overlap or one leaves the window. */
function bitmapOf(region: Region): Bitmap {
  const m = blank();
  for (const r of region.rects()) {
    for (let y = r.y; y < r.y + r.h; y++) {
      for (let x = r.x; x < r.x + r.w; x++) {
        if (!inWindow(x, y)) throw new Error(`pixel ${x},${y} outside the model window`);
        const i = (y - OY) * MW + (x - OX);
        if (m[i]) throw new Error(`rects overlap at ${x},${y}`);
        m[i] = 1;
      }
    }
  }
  return m;
}

const OR = 0;
const AND = 1;
const AND_NOT = 2;

function combineModels(a: Bitmap, b: Bitmap, op: typeof OR | typeof AND | typeof AND_NOT): Bitmap {
  const m = blank();
  for (let i = 0; i < m.length; i++)
    m[i] = op === OR ? a[i]! | b[i]! : op === AND ? a[i]! & b[i]! : a[i]! & ~b[i]!;
  return m;
}

function translateModel(a: Bitmap, dx: number, dy: number): Bitmap {
  const m = blank();
  for (let y = 0; y < MH; y++) {
    for (let x = 0; x < MW; x++) {
      if (a[y * MW + x] && inWindow(x + OX + dx, y + OY + dy)) m[(y + dy) * MW + (x + dx)] = 1;
    }
  }
  return m;
}

/** The model's pixels as one rect per horizontal run per row: a very different way to build the same set. */
function rowRuns(m: Bitmap): RegionRect[] {
  const out: RegionRect[] = [];
  for (let y = 0; y < MH; y++) {
    for (let x = 0; x < MW; x++) {
      if (!m[y * MW + x]) continue;
      let end = x;
      while (end < MW && m[y * MW + end]) end++;
      out.push({ x: x + OX, y: y + OY, w: end - x, h: 1 });
      x = end;
    }
  }
  return out;
}

/** The model's pixel count and bounding box, in one pass. */
function modelSummary(m: Bitmap): { area: number; bounds: RegionRect | null } {
  let [area, x1, y1, x2, y2] = [0, MW, MH, 0, 0];
  for (let y = 0; y < MH; y++) {
    for (let x = 0; x < MW; x++) {
      if (!m[y * MW + x]) continue;
      area++;
      if (x < x1) x1 = x;
      if (x >= x2) x2 = x + 1;
      if (y < y1) y1 = y;
      y2 = y + 1;
    }
  }
  return { area, bounds: area === 0 ? null : { x: x1 + OX, y: y1 + OY, w: x2 - x1, h: y2 - y1 } };
}

/**
 * The banded canonical form, from rects() alone: positive integer sizes; rects of one band share y and h,
 * run left to right and never touch; bands run top to bottom without overlapping; two bands that touch
 * vertically never hold the same spans (they would have been coalesced into one).
 */
function expectCanonical(region: Region): void {
  const rects = region.rects();
  const fail = (why: string, r: RegionRect) => {
    throw new Error(`not canonical: ${why} at ${JSON.stringify(r)} in ${JSON.stringify(rects)}`);
  };
  const bands: RegionRect[][] = [];
  for (const r of rects) {
    if (!Number.isInteger(r.x) || !Number.isInteger(r.y) || !(r.w > 0) || !(r.h > 0)) fail("bad rect", r);
    const band = bands[bands.length - 1];
    const prev = band?.[band.length - 1];
    if (band && prev && r.y === prev.y) {
      if (r.h !== prev.h) fail("height differs within a band", r);
      if (r.x <= prev.x + prev.w) fail("spans overlap, touch or are out of order", r);
      band.push(r);
    } else {
      if (prev && r.y < prev.y + prev.h) fail("bands overlap or are out of order", r);
      bands.push([r]);
    }
  }
  const spans = (band: RegionRect[]) => band.map((r) => `${r.x}+${r.w}`).join(",");
  for (let i = 1; i < bands.length; i++) {
    const [a, b] = [bands[i - 1]!, bands[i]!];
    if (b[0]!.y === a[0]!.y + a[0]!.h && spans(a) === spans(b)) fail("touching bands not coalesced", b[0]!);
  }
  expect(region.rectCount).toBe(rects.length);
}

/** Expects two bitmaps to be the same; a plain byte comparison first, toEqual's diff only on failure. */
function expectSameBitmap(got: Bitmap, want: Bitmap): void {
  if (!Buffer.from(got).equals(want)) expect(got).toEqual(want);
}

/** Expects the region to be exactly the model's pixels, in canonical form, with matching summaries. */
function expectModel(region: Region, model: Bitmap): void {
  expectSameBitmap(bitmapOf(region), model);
  expectCanonical(region);
  const { area, bounds } = modelSummary(model);
  expect(region.area).toBe(area);
  expect(region.bounds).toEqual(bounds);
  expect(region.isEmpty).toBe(area === 0);
}

const anyRect = fc.record({
  x: fc.integer({ min: -8, max: W }),
  y: fc.integer({ min: -8, max: H }),
  w: fc.integer({ min: -2, max: 24 }),
  h: fc.integer({ min: -2, max: 24 }),
});
// On an 8-px grid: rects that touch edge to edge and line up, so bands merge and coalesce often.
const gridRect = fc
  .record({
    x: fc.integer({ min: -1, max: 7 }),
    y: fc.integer({ min: -1, max: 5 }),
    w: fc.integer({ min: 0, max: 3 }),
    h: fc.integer({ min: 0, max: 3 }),
  })
  .map((c) => r8(c.x, c.y, c.w, c.h));
const rect = fc.oneof(anyRect, gridRect);

function r8(x: number, y: number, w: number, h: number): RegionRect {
  return { x: x * 8, y: y * 8, w: w * 8, h: h * 8 };
}
const rects = fc.array(rect, { maxLength: 14 });

describe("Region against the bitmap model", () => {
  test("fromRects gives the union of the rects, canonical, with area, bounds and isEmpty", () => {
    fc.assert(
      fc.property(rects, (rs) => {
        expectModel(Region.fromRects(rs), modelOf(rs));
      }),
      RUNS,
    );
  });

  test("fromRect gives the rect's pixels", () => {
    fc.assert(
      fc.property(rect, (r) => {
        expectModel(Region.fromRect(r), modelOf([r]));
      }),
      RUNS,
    );
  });

  test("canonical: the same pixels built three different ways give identical rects()", () => {
    fc.assert(
      fc.property(rects, (rs) => {
        const a = Region.fromRects(rs);
        const b = Region.fromRects(rowRuns(modelOf(rs)));
        const c = [...rs].reverse().reduce((r: Region, x) => r.union(x), Region.empty);
        expect(b.rects()).toEqual(a.rects());
        expect(c.rects()).toEqual(a.rects());
        expect(a.equals(b) && b.equals(c)).toBe(true);
      }),
      RUNS,
    );
  });

  test("union, intersect and subtract, with a region and with a single rect", () => {
    fc.assert(
      fc.property(rects, rects, rect, (ra, rb, r) => {
        const [a, b] = [Region.fromRects(ra), Region.fromRects(rb)];
        const [ma, mb, mr] = [modelOf(ra), modelOf(rb), modelOf([r])];
        expectModel(a.union(b), combineModels(ma, mb, OR));
        expectModel(a.intersect(b), combineModels(ma, mb, AND));
        expectModel(a.subtract(b), combineModels(ma, mb, AND_NOT));
        expectModel(b.subtract(a), combineModels(mb, ma, AND_NOT));
        expectModel(a.union(r), combineModels(ma, mr, OR));
        expectModel(a.intersect(r), combineModels(ma, mr, AND));
        expectModel(a.subtract(r), combineModels(ma, mr, AND_NOT));
      }),
      RUNS,
    );
  });

  test("translate moves every pixel by (dx, dy)", () => {
    const shift = fc.integer({ min: -MAX_SHIFT, max: MAX_SHIFT });
    fc.assert(
      fc.property(rects, shift, shift, (rs, dx, dy) => {
        expectModel(Region.fromRects(rs).translate(dx, dy), translateModel(modelOf(rs), dx, dy));
      }),
      RUNS,
    );
  });

  test("clip keeps the pixels inside a width × height framebuffer", () => {
    const side = fc.integer({ min: -1, max: 80 });
    fc.assert(
      fc.property(rects, side, side, (rs, w, h) => {
        const inside = modelOf([{ x: 0, y: 0, w, h }]);
        expectModel(Region.fromRects(rs).clip(w, h), combineModels(modelOf(rs), inside, AND));
      }),
      RUNS,
    );
  });

  test("contains agrees with the model at every pixel of the window", () => {
    fc.assert(
      fc.property(rects, (rs) => {
        const region = Region.fromRects(rs);
        const m = modelOf(rs);
        for (let y = 0; y < MH; y++) {
          for (let x = 0; x < MW; x++) {
            if (region.contains(x + OX, y + OY) !== (m[y * MW + x] === 1)) {
              throw new Error(`contains(${x + OX}, ${y + OY}) disagrees with the model`);
            }
          }
        }
      }),
      { numRuns: 100 },
    );
  });

  test("equals is true exactly when the pixels are the same", () => {
    // Up to three rects on a 3×3 grid of 8-px cells: random pairs are often equal, and when they are not
    // they often differ only in where a band ends.
    const cell = fc.integer({ min: 0, max: 2 });
    const tiny = fc.array(
      fc.record({ x: cell, y: cell, w: cell, h: cell }).map((c) => r8(c.x, c.y, c.w, c.h)),
      { maxLength: 3 },
    );
    let equalPairs = 0;
    fc.assert(
      fc.property(fc.oneof(rects, tiny), fc.oneof(rects, tiny), (ra, rb) => {
        const same = Buffer.from(modelOf(ra)).equals(modelOf(rb));
        if (same) equalPairs++;
        expect(Region.fromRects(ra).equals(Region.fromRects(rb))).toBe(same);
      }),
      RUNS,
    );
    expect(equalPairs).toBeGreaterThan(10);
    // Random pairs are almost never equal; these pairs are, and differ by one pixel from each other.
    fc.assert(
      fc.property(rects, (rs) => {
        const a = Region.fromRects(rs);
        const b = Region.fromRects(rowRuns(modelOf(rs)));
        expect(a.equals(b)).toBe(true);
        const dot = { x: OX, y: OY, w: 1, h: 1 }; // the window corner, which no random rect reaches
        expect(a.equals(b.union(dot))).toBe(false);
        expect(a.union(dot).equals(b.union(dot))).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  test("coalesce(n): covers the input, stays inside its bounds, at most n rects, canonical", () => {
    fc.assert(
      fc.property(rects, fc.integer({ min: 1, max: 12 }), (rs, n) => {
        const region = Region.fromRects(rs);
        const out = region.coalesce(n);
        const [m, mo] = [modelOf(rs), bitmapOf(out)];
        expect(mo.every((p, i) => p >= m[i]!)).toBe(true);
        const box = region.bounds ? modelOf([region.bounds]) : blank();
        expect(mo.every((p, i) => p <= box[i]!)).toBe(true);
        expect(out.rectCount).toBeLessThanOrEqual(n);
        expect(out.bounds).toEqual(region.bounds);
        expectCanonical(out);
        if (region.rectCount <= n) expect(out).toBe(region);
        if (n === 1 && region.bounds) expect(out.rects()).toEqual([region.bounds]);
      }),
      RUNS,
    );
  });
});

describe("Region: hand-built shapes", () => {
  const r = (x: number, y: number, w: number, h: number): RegionRect => ({ x, y, w, h });

  test("L shape: a bar on top of a post is two bands, two rects", () => {
    // ██████████   y 0–1: the bar, x 0–9
    // ██           y 2–9: the post, x 0–1
    const l = Region.fromRects([r(0, 0, 10, 2), r(0, 0, 2, 10)]);
    expect(l.rects()).toEqual([r(0, 0, 10, 2), r(0, 2, 2, 8)]);
    expect(l.area).toBe(20 + 16);
    expect(l.bounds).toEqual(r(0, 0, 10, 10));
    expect(l.contains(9, 1)).toBe(true);
    expect(l.contains(2, 2)).toBe(false); // just right of the post, just below the bar
  });

  test("hole: a square minus its middle is four rects around it", () => {
    const ring = Region.fromRect(r(0, 0, 10, 10)).subtract(r(3, 3, 4, 4));
    expect(ring.rects()).toEqual([
      r(0, 0, 10, 3), // above the hole
      r(0, 3, 3, 4), // left of it
      r(7, 3, 3, 4), // right of it
      r(0, 7, 10, 3), // below it
    ]);
    expect(ring.area).toBe(100 - 16);
    expect(ring.contains(5, 5)).toBe(false);
    expect(ring.contains(2, 5)).toBe(true);
    expect(ring.contains(7, 6)).toBe(true);
    expect(ring.contains(6, 6)).toBe(false);
    // Filling the hole gives the plain square back, as one rect.
    expect(ring.union(r(3, 3, 4, 4)).rects()).toEqual([r(0, 0, 10, 10)]);
  });

  test("touching rects merge: side by side into one span, stacked into one band", () => {
    expect(Region.fromRects([r(0, 0, 5, 5), r(5, 0, 5, 5)]).rects()).toEqual([r(0, 0, 10, 5)]);
    expect(Region.fromRects([r(0, 0, 5, 5), r(0, 5, 5, 5)]).rects()).toEqual([r(0, 0, 5, 10)]);
    // A 2×2 grid of 64×64 blocks, as the differ reports them, is one rect.
    const blocks = [r(64, 64, 64, 64), r(0, 0, 64, 64), r(0, 64, 64, 64), r(64, 0, 64, 64)];
    expect(Region.fromRects(blocks).rects()).toEqual([r(0, 0, 128, 128)]);
    // Side by side with different heights: the shared band is one span, the rest a band of its own.
    expect(Region.fromRects([r(0, 0, 5, 10), r(5, 0, 5, 5)]).rects()).toEqual([
      r(0, 0, 10, 5),
      r(0, 5, 5, 5),
    ]);
    // One pixel apart: two spans in one band, never merged.
    expect(Region.fromRects([r(0, 0, 5, 5), r(6, 0, 5, 5)]).rects()).toEqual([r(0, 0, 5, 5), r(6, 0, 5, 5)]);
  });

  test("overlapping rects count their shared pixels once", () => {
    const a = Region.fromRects([r(0, 0, 10, 10), r(5, 5, 10, 10)]);
    expect(a.area).toBe(100 + 100 - 25);
    expect(a.rects()).toEqual([r(0, 0, 10, 5), r(0, 5, 15, 5), r(5, 10, 10, 5)]);
    expect(a.intersect(r(5, 5, 10, 10)).rects()).toEqual([r(5, 5, 10, 10)]);
  });

  test("empty inputs: every operation on or with the empty region", () => {
    const e = Region.fromRects([]);
    expect(e.isEmpty).toBe(true);
    expect(e.area).toBe(0);
    expect(e.bounds).toBeNull();
    expect(e.rects()).toEqual([]);
    expect(e.rectCount).toBe(0);
    expect(e.contains(0, 0)).toBe(false);
    expect(e.equals(Region.empty)).toBe(true);
    const sq = Region.fromRect(r(1, 2, 3, 4));
    expect(e.union(sq).rects()).toEqual([r(1, 2, 3, 4)]);
    expect(sq.union(e)).toBe(sq);
    expect(sq.intersect(e).isEmpty).toBe(true);
    expect(e.intersect(sq).isEmpty).toBe(true);
    expect(sq.subtract(e)).toBe(sq);
    expect(e.subtract(sq).isEmpty).toBe(true);
    expect(e.translate(5, 5).isEmpty).toBe(true);
    expect(e.clip(10, 10).isEmpty).toBe(true);
    expect(e.coalesce(1).isEmpty).toBe(true);
    // Subtracting everything, or intersecting disjoint rects, empties the region.
    expect(sq.subtract(r(0, 0, 10, 10)).isEmpty).toBe(true);
    expect(sq.intersect(r(4, 2, 3, 4)).isEmpty).toBe(true); // touches at x = 4, shares no pixel
  });

  test("zero-size and negative-size rects are ignored", () => {
    expect(Region.fromRect(r(3, 3, 0, 5)).isEmpty).toBe(true);
    expect(Region.fromRect(r(3, 3, 5, -1)).isEmpty).toBe(true);
    expect(Region.fromRects([r(0, 0, 0, 9), r(1, 1, 2, 2), r(5, 5, 9, 0), r(7, 7, -3, -3)]).rects()).toEqual([
      r(1, 1, 2, 2),
    ]);
    const sq = Region.fromRect(r(0, 0, 4, 4));
    expect(sq.union(r(10, 10, 0, 10))).toBe(sq);
    expect(sq.subtract(r(0, 0, 0, 4))).toBe(sq);
    expect(sq.intersect(r(0, 0, 4, 0)).isEmpty).toBe(true);
  });

  test("clip: parts outside the framebuffer go, a region already inside is returned as is", () => {
    // One pixel too wide, one too tall: each is cut, however little sticks out.
    expect(
      Region.fromRect(r(0, 0, 11, 5))
        .clip(10, 10)
        .rects(),
    ).toEqual([r(0, 0, 10, 5)]);
    expect(
      Region.fromRect(r(0, 0, 5, 11))
        .clip(10, 10)
        .rects(),
    ).toEqual([r(0, 0, 5, 10)]);
    const a = Region.fromRects([r(-5, -5, 10, 10), r(60, 40, 10, 10)]);
    expect(a.clip(64, 48).rects()).toEqual([r(0, 0, 5, 5), r(60, 40, 4, 8)]);
    const inside = Region.fromRect(r(0, 0, 64, 48));
    expect(inside.clip(64, 48)).toBe(inside);
    expect(inside.clip(0, 48).isEmpty).toBe(true);
  });

  test("equals compares where bands end, not only where they start", () => {
    expect(Region.fromRect(r(0, 0, 5, 5)).equals(Region.fromRect(r(0, 0, 5, 6)))).toBe(false);
    expect(Region.fromRect(r(0, 0, 5, 5)).equals(Region.fromRect(r(0, 0, 6, 5)))).toBe(false);
    expect(Region.fromRect(r(0, 0, 5, 5)).equals(Region.fromRects([r(0, 0, 5, 2), r(0, 2, 5, 3)]))).toBe(
      true,
    );
  });

  test("translate moves bands and spans, and (0, 0) returns the same region", () => {
    const ring = Region.fromRect(r(0, 0, 10, 10)).subtract(r(3, 3, 4, 4));
    expect(ring.translate(-3, 100).rects()).toEqual([
      r(-3, 100, 10, 3),
      r(-3, 103, 3, 4),
      r(4, 103, 3, 4),
      r(-3, 107, 10, 3),
    ]);
    expect(ring.translate(0, 0)).toBe(ring);
  });

  test("immutable: operations, rects() and Region.empty leave every region as it was", () => {
    const a = Region.fromRects([r(0, 0, 10, 10), r(20, 0, 5, 5)]);
    const before = a.rects();
    a.union(r(5, 5, 20, 20));
    a.subtract(r(2, 2, 2, 2));
    a.intersect(r(0, 0, 3, 3));
    a.translate(7, 7);
    a.clip(4, 4);
    a.coalesce(1);
    const got = a.rects();
    got[0]!.w = 999; // the caller owns the array and its rects
    got.push(r(50, 50, 1, 1));
    expect(a.rects()).toEqual(before);
    expect(a.area).toBe(125);
    // bounds is frozen: writing to it throws (modules are strict) and changes nothing.
    expect(() => {
      (a.bounds as RegionRect).w = 1;
    }).toThrow(TypeError);
    expect(a.bounds).toEqual(r(0, 0, 25, 10));
    // Region.empty is shared by everyone: union hands back the other operand, never changes it.
    expect(Region.empty.union(a)).toBe(a);
    expect(Region.empty.isEmpty).toBe(true);
  });

  test("coalesce fills the narrowest gap first", () => {
    // Three squares in one band: gaps of 38 px, then 2 px; three rects must go to two.
    const a = Region.fromRects([r(0, 0, 10, 10), r(48, 0, 10, 10), r(60, 0, 10, 10)]);
    expect(a.coalesce(2).rects()).toEqual([r(0, 0, 10, 10), r(48, 0, 22, 10)]);
    expect(a.coalesce(1).rects()).toEqual([r(0, 0, 70, 10)]);
  });

  test("coalesce ranks moves by added area per rect removed", () => {
    // Rows 0–19: two columns; the left one steps from 10 to 13 px wide at row 10, so it is two bands of
    // two spans. Merging them removes two rects for 3 × 10 px (15 px a rect). Rows 100–109: two squares
    // 2 px apart; filling that gap removes one rect for 2 × 10 px. Six rects must go to four: the merge
    // alone does it with 30 px; the cheaper gap first would need the merge too (50 px, one rect too few).
    const a = Region.fromRects([
      r(0, 0, 10, 10),
      r(0, 10, 13, 10),
      r(50, 0, 10, 20),
      r(0, 100, 10, 10),
      r(12, 100, 10, 10),
    ]);
    expect(a.rectCount).toBe(6);
    const out = a.coalesce(4);
    expect(out.rects()).toEqual([r(0, 0, 13, 20), r(50, 0, 10, 20), r(0, 100, 10, 10), r(12, 100, 10, 10)]);
    expect(out.area - a.area).toBe(30);
  });

  test("coalesce merges bands when that adds less than filling a gap", () => {
    // Left column: two stacked rects 10 and 11 px wide; right column one 20-px-tall rect at x = 50.
    // Four rects in two bands. Merging the bands adds 10 px (the left column's 1-px step) and removes
    // two rects; filling a gap would add 40 × 10 px for one.
    const a = Region.fromRects([r(0, 0, 10, 10), r(0, 10, 11, 10), r(50, 0, 10, 20)]);
    expect(a.rectCount).toBe(4);
    const out = a.coalesce(2);
    expect(out.rects()).toEqual([r(0, 0, 11, 20), r(50, 0, 10, 20)]);
    expect(out.area - a.area).toBe(10);
  });

  test("coalesce of two trimmed 64×64 blocks picks the cheaper band merge", () => {
    // Block A trimmed at the top (rows 2–63), block B to its right trimmed at the bottom (rows 0–59):
    // bands 0–1 (B only), 2–59 (both, one span), 60–63 (A only). Merging the top two bands adds 2 × 64
    // px; merging the bottom two adds 4 × 64.
    const a = Region.fromRects([r(0, 2, 64, 62), r(64, 0, 64, 60)]);
    expect(a.rects()).toEqual([r(64, 0, 64, 2), r(0, 2, 128, 58), r(0, 60, 64, 4)]);
    const out = a.coalesce(2);
    expect(out.rects()).toEqual([r(0, 0, 128, 60), r(0, 60, 64, 4)]);
    expect(out.area - a.area).toBe(128);
  });

  test("coalesce of a staircase stays within bounds and within the count", () => {
    // 300 one-pixel-tall steps, each in a band of its own, walking right and wrapping.
    const steps = Array.from({ length: 300 }, (_, i) => r((i * 37) % 400, i, 2, 1));
    const a = Region.fromRects(steps);
    expect(a.rectCount).toBe(300);
    for (const n of [1, 2, 7, 50, 299, 300]) {
      const out = a.coalesce(n);
      expect(out.rectCount).toBeLessThanOrEqual(n);
      expect(a.subtract(out).isEmpty).toBe(true);
      expect(out.subtract(a.bounds!).isEmpty).toBe(true);
    }
  });
});

describe("Region: input checking", () => {
  test("non-integer or out-of-range coordinates throw INTERNAL", () => {
    expect(codeOf(() => Region.fromRect({ x: 0.5, y: 0, w: 1, h: 1 }))).toBe("INTERNAL");
    expect(codeOf(() => Region.fromRects([{ x: 0, y: 0, w: Number.NaN, h: 1 }]))).toBe("INTERNAL");
    expect(codeOf(() => Region.fromRect({ x: REGION_COORD_LIMIT, y: 0, w: 1, h: 1 }))).toBe("INTERNAL");
    expect(codeOf(() => Region.fromRect({ x: REGION_COORD_LIMIT - 1, y: 0, w: 1, h: 1 }))).toBeUndefined();
    const sq = Region.fromRect({ x: 0, y: 0, w: 4, h: 4 });
    expect(codeOf(() => sq.union({ x: 0, y: 1e300, w: 1, h: 1 }))).toBe("INTERNAL");
    expect(codeOf(() => sq.translate(0.5, 0))).toBe("INTERNAL");
    expect(codeOf(() => sq.translate(REGION_COORD_LIMIT - 3, 0))).toBe("INTERNAL"); // right edge past it
    expect(codeOf(() => sq.translate(REGION_COORD_LIMIT - 4, 0))).toBeUndefined();
    expect(codeOf(() => sq.clip(Number.POSITIVE_INFINITY, 4))).toBe("INTERNAL");
  });

  test("coalesce needs an integer maxRects ≥ 1", () => {
    const sq = Region.fromRect({ x: 0, y: 0, w: 4, h: 4 });
    expect(codeOf(() => sq.coalesce(0))).toBe("INTERNAL");
    expect(codeOf(() => sq.coalesce(1.5))).toBe("INTERNAL");
    // Refused up front, not by running out of moves half-way.
    expect(() => sq.coalesce(0)).toThrow(/maxRects 0 is not an integer ≥ 1/);
    expect(() => Region.empty.coalesce(-1)).toThrow(/maxRects -1/);
    expect(codeOf(() => sq.coalesce(1))).toBeUndefined();
  });
});
