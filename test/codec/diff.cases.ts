// The shared case suite for FrameDiffer (relay/codec/diff.ts), run by diff.test.ts against the TS twin and
// both WASM builds, as hono's common.case.test.ts runs one suite against every adapter. Expected results
// come from hand-worked geometry or from `oracle` below, a per-pixel, per-byte reference simple enough to
// be obviously right; a randomized property checks every implementation against it.

import { beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { DIFF_BLOCK_SIZE, type DiffRect, type FrameDiffer } from "../../relay/codec/diff.ts";
import { RfbError, type RfbErrorCode } from "../../relay/rfb/errors.ts";
import { noiseFrame } from "../helpers/bytes.ts";

export type MakeDiffer = () => FrameDiffer | Promise<FrameDiffer>;

/** Makes pixel (x, y) differ in one byte: 0 = R, 1 = G, 2 = B, 3 = X (padding). */
export function touch(
  frame: Uint8Array,
  width: number,
  x: number,
  y: number,
  channel = 0,
  flip = 0x80,
): void {
  const i = (y * width + x) * 4 + channel;
  frame[i] = frame[i]! ^ flip;
}

/** The reference: every pixel, R, G and B compared byte by byte, one bounding box per 64×64 block. */
export function oracle(
  a: Uint8Array,
  b: Uint8Array,
  width: number,
  height: number,
): { map: number[]; rects: DiffRect[] } {
  const blocksX = Math.ceil(width / DIFF_BLOCK_SIZE);
  const blocksY = Math.ceil(height / DIFF_BLOCK_SIZE);
  const boxes = new Map<number, { x0: number; y0: number; x1: number; y1: number }>();
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      if (a[i] === b[i] && a[i + 1] === b[i + 1] && a[i + 2] === b[i + 2]) continue;
      const block = Math.floor(y / DIFF_BLOCK_SIZE) * blocksX + Math.floor(x / DIFF_BLOCK_SIZE);
      const box = boxes.get(block);
      if (!box) boxes.set(block, { x0: x, y0: y, x1: x, y1: y });
      else {
        box.x0 = Math.min(box.x0, x);
        box.x1 = Math.max(box.x1, x);
        box.y1 = y;
      }
    }
  }
  const map = new Array<number>(blocksX * blocksY).fill(0);
  const rects: DiffRect[] = [];
  for (const block of [...boxes.keys()].sort((p, q) => p - q)) {
    const box = boxes.get(block)!;
    map[block] = 1;
    rects.push({ x: box.x0, y: box.y0, w: box.x1 - box.x0 + 1, h: box.y1 - box.y0 + 1 });
  }
  return { map, rects };
}

/** diffBlocks and diffRects of one differ, copied out (the map belongs to the differ). */
export function diffBoth(
  differ: FrameDiffer,
  a: Uint8Array,
  b: Uint8Array,
  width: number,
  height: number,
): { changed: number; map: number[]; blocksX: number; blocksY: number; rects: DiffRect[] } {
  const blocks = differ.diffBlocks(a, b, width, height);
  const result = { ...blocks, map: [...blocks.map] };
  return { ...result, rects: differ.diffRects(a, b, width, height) };
}

function errorCode(run: () => unknown): RfbErrorCode | "no error" | "not an RfbError" {
  try {
    run();
    return "no error";
  } catch (e) {
    return e instanceof RfbError ? e.code : "not an RfbError";
  }
}

/** Random frame pairs: sizes up to 300×300, up to 24 sparse one-byte changes (some only in X). */
export const framePairs = fc
  .record({
    width: fc.integer({ min: 1, max: 300 }),
    height: fc.integer({ min: 1, max: 300 }),
    seed: fc.integer({ min: 1, max: 0x7fffffff }),
    changes: fc.array(
      fc.record({
        x: fc.nat(),
        y: fc.nat(),
        channel: fc.integer({ min: 0, max: 3 }),
        flip: fc.integer({ min: 1, max: 255 }),
      }),
      { maxLength: 24 },
    ),
  })
  .map(({ width, height, seed, changes }) => {
    const a = noiseFrame(width, height, seed);
    const b = a.slice();
    for (const c of changes) touch(b, width, c.x % width, c.y % height, c.channel, c.flip);
    return { width, height, a, b };
  });

export function runDiffCases(name: string, makeDiffer: MakeDiffer): void {
  describe(`FrameDiffer: ${name}`, () => {
    let differ: FrameDiffer;
    beforeAll(async () => {
      differ = await makeDiffer();
    });

    test("identical frames: no changed block, an all-zero map, no rects", () => {
      for (const [width, height] of [
        [1920, 1080],
        [1, 1],
        [63, 65],
        [1921, 1081],
      ] as const) {
        const a = noiseFrame(width, height, width);
        const blocks = differ.diffBlocks(a, a.slice(), width, height);
        expect(blocks.changed).toBe(0);
        expect(blocks.blocksX).toBe(Math.ceil(width / 64));
        expect(blocks.blocksY).toBe(Math.ceil(height / 64));
        expect(blocks.map.length).toBe(blocks.blocksX * blocks.blocksY);
        expect(blocks.map.every((m) => m === 0)).toBe(true);
        expect(differ.diffRects(a, a.slice(), width, height)).toEqual([]);
      }
    });

    test("one pixel in each corner block and in the middle: that block only, a 1×1 rect", () => {
      const [width, height] = [1920, 1080]; // 30 × 17 blocks; the bottom row of blocks is 56 px high
      const a = noiseFrame(width, height, 7);
      const points = [
        { x: 0, y: 0, block: 0 },
        { x: 1919, y: 0, block: 29 },
        { x: 0, y: 1079, block: 16 * 30 },
        { x: 1919, y: 1079, block: 16 * 30 + 29 },
        { x: 960, y: 540, block: 8 * 30 + 15 },
      ];
      for (const p of points) {
        const b = a.slice();
        touch(b, width, p.x, p.y);
        const blocks = differ.diffBlocks(a, b, width, height);
        expect(blocks.changed).toBe(1);
        expect(blocks.map[p.block]).toBe(1);
        expect(differ.diffRects(a, b, width, height)).toEqual([{ x: p.x, y: p.y, w: 1, h: 1 }]);
      }
      const b = a.slice();
      for (const p of points) touch(b, width, p.x, p.y, 2);
      expect(differ.diffBlocks(a, b, width, height).changed).toBe(5);
      const rects = points.map((p) => ({ x: p.x, y: p.y, w: 1, h: 1 }));
      expect(differ.diffRects(a, b, width, height)).toEqual([
        rects[0]!,
        rects[1]!,
        rects[4]!,
        rects[2]!,
        rects[3]!,
      ]);
    });

    test("sizes that are not multiples of 64 or of 4: first, last and edge-block pixels", () => {
      for (const [width, height] of [
        [1, 1],
        [2, 3],
        [3, 1],
        [5, 7],
        [63, 65],
        [65, 63],
        [67, 2],
        [130, 129],
        [1921, 1081],
      ] as const) {
        const a = noiseFrame(width, height, height);
        const lastBlockX = Math.floor((width - 1) / 64) * 64;
        const lastBlockY = Math.floor((height - 1) / 64) * 64;
        for (const [x, y] of [
          [0, 0],
          [width - 1, height - 1],
          [lastBlockX, lastBlockY],
          [width - 1, 0],
          [0, height - 1],
        ] as const) {
          const b = a.slice();
          touch(b, width, x, y, 1);
          const got = diffBoth(differ, a, b, width, height);
          const want = oracle(a, b, width, height);
          expect(got.changed).toBe(1);
          expect(got.map).toEqual(want.map);
          expect(got.rects).toEqual([{ x, y, w: 1, h: 1 }]);
        }
      }
    });

    test("every pixel position of narrow frames and edge blocks (vector lanes and scalar tails)", () => {
      // Widths around 4 (one v128 = 4 px) and around 64 (edge blocks 1…17 px wide) reach every code path:
      // full 64-byte steps, 16-byte steps, the overlapping tail load and the scalar loop for rows < 4 px.
      for (const width of [1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 63, 64, 65, 66, 67, 68, 69, 71, 80, 81]) {
        const height = 3;
        const a = noiseFrame(width, height, width + 100);
        for (let y = 0; y < height; y++) {
          for (let x = 0; x < width; x++) {
            const b = a.slice();
            touch(b, width, x, y, x % 3);
            expect(differ.diffRects(a, b, width, height)).toEqual([{ x, y, w: 1, h: 1 }]);
            expect(differ.diffBlocks(a, b, width, height).changed).toBe(1);
          }
        }
      }
    });

    test("trimmed boxes are exact, per block", () => {
      const [width, height] = [200, 150];
      const a = noiseFrame(width, height, 3);
      let b = a.slice();
      // Two pixels in block (1, 0): the box spans them, not the block.
      touch(b, width, 64 + 5, 7);
      touch(b, width, 64 + 40, 60);
      expect(differ.diffRects(a, b, width, height)).toEqual([{ x: 69, y: 7, w: 36, h: 54 }]);
      // A horizontal line across three blocks: one rect per block, each clipped to its block.
      b = a.slice();
      for (let x = 30; x < 150; x++) touch(b, width, x, 100);
      expect(differ.diffRects(a, b, width, height)).toEqual([
        { x: 30, y: 100, w: 34, h: 1 },
        { x: 64, y: 100, w: 64, h: 1 },
        { x: 128, y: 100, w: 22, h: 1 },
      ]);
      // A diagonal inside one block: left and right come from different rows than top and bottom.
      b = a.slice();
      touch(b, width, 140, 70);
      touch(b, width, 130, 80);
      touch(b, width, 150, 75);
      touch(b, width, 135, 90);
      expect(differ.diffRects(a, b, width, height)).toEqual([{ x: 130, y: 70, w: 21, h: 21 }]);
    });

    test("a completely changed frame: every block, each rect the block clipped to the frame", () => {
      const [width, height] = [130, 70];
      const a = noiseFrame(width, height, 5);
      const b = a.map((v, i) => (i % 4 === 3 ? v : v ^ 0xff));
      const got = diffBoth(differ, a, b, width, height);
      expect(got.changed).toBe(6);
      expect(got.map).toEqual([1, 1, 1, 1, 1, 1]);
      expect(got.rects).toEqual([
        { x: 0, y: 0, w: 64, h: 64 },
        { x: 64, y: 0, w: 64, h: 64 },
        { x: 128, y: 0, w: 2, h: 64 },
        { x: 0, y: 64, w: 64, h: 6 },
        { x: 64, y: 64, w: 64, h: 6 },
        { x: 128, y: 64, w: 2, h: 6 },
      ]);
    });

    test("only R, G and B count: a change in the X byte (padding) is not a change", () => {
      const [width, height] = [300, 200];
      const a = noiseFrame(width, height, 11);
      const b = a.slice();
      for (let i = 3; i < b.length; i += 4) b[i] = b[i]! ^ 0x5a;
      expect(differ.diffBlocks(a, b, width, height).changed).toBe(0);
      expect(differ.diffRects(a, b, width, height)).toEqual([]);
      for (const channel of [0, 1, 2]) {
        const c = b.slice();
        touch(c, width, 250, 150, channel, 1);
        expect(differ.diffRects(a, c, width, height)).toEqual([{ x: 250, y: 150, w: 1, h: 1 }]);
      }
    });

    test("a smaller frame after a larger one leaves no stale map bytes", () => {
      const big = noiseFrame(1920, 1080, 2);
      const inverted = big.map((v) => v ^ 0xff);
      expect(differ.diffBlocks(big, inverted, 1920, 1080).changed).toBe(30 * 17);
      const small = noiseFrame(200, 100, 2);
      const blocks = differ.diffBlocks(small, small.slice(), 200, 100);
      expect(blocks.changed).toBe(0);
      expect([...blocks.map]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    });

    test("unaligned and over-long inputs give the same result", () => {
      const [width, height] = [97, 67];
      const a = noiseFrame(width, height, 9);
      const b = a.slice();
      touch(b, width, 96, 66);
      touch(b, width, 10, 3);
      const want = diffBoth(differ, a, b, width, height);
      const shifted = (f: Uint8Array): Uint8Array => {
        const backing = new Uint8Array(f.length + 17);
        backing.set(f, 1);
        return backing.subarray(1); // byteOffset 1: no Uint32Array can view it; 16 spare bytes at the end
      };
      expect(diffBoth(differ, shifted(a), shifted(b), width, height)).toEqual(want);
      expect(want.rects).toEqual([
        { x: 10, y: 3, w: 1, h: 1 },
        { x: 96, y: 66, w: 1, h: 1 },
      ]);
    });

    test("frames at the 8 Mpx pixel budget, square and 16384 wide", () => {
      const frame = new Uint8Array(8 * 1024 * 1024 * 4); // 32 MiB, shared by both shapes
      const changedFrame = frame.slice();
      for (const [width, height] of [
        [4096, 2048],
        [16384, 512],
      ] as const) {
        changedFrame.fill(0);
        touch(changedFrame, width, width - 1, height - 1);
        touch(changedFrame, width, 0, 0, 2);
        const blocks = differ.diffBlocks(frame, changedFrame, width, height);
        expect(blocks.changed).toBe(2);
        expect(blocks.map.length).toBe((width / 64) * (height / 64));
        expect(differ.diffRects(frame, changedFrame, width, height)).toEqual([
          { x: 0, y: 0, w: 1, h: 1 },
          { x: width - 1, y: height - 1, w: 1, h: 1 },
        ]);
      }
    });

    test("bad geometry and short frames throw coded errors", () => {
      const none = new Uint8Array(0);
      const cases: [number, number, RfbErrorCode][] = [
        [0, 1, "BAD_FRAMEBUFFER_SIZE"],
        [1, 0, "BAD_FRAMEBUFFER_SIZE"],
        [-1, 5, "BAD_FRAMEBUFFER_SIZE"],
        [16385, 1, "BAD_FRAMEBUFFER_SIZE"],
        [1, 16385, "BAD_FRAMEBUFFER_SIZE"],
        [1.5, 2, "BAD_FRAMEBUFFER_SIZE"],
        [Number.NaN, 1, "BAD_FRAMEBUFFER_SIZE"],
        [2 ** 32 + 1, 1, "BAD_FRAMEBUFFER_SIZE"], // would be 1 after an i32 conversion
        [4097, 2048, "LIMIT_EXCEEDED"], // 8 Mpx + 2048
        [16384, 16384, "LIMIT_EXCEEDED"],
        [2, 2, "BAD_FRAMEBUFFER_SIZE"], // needs 16 bytes per frame, has none
      ];
      for (const [width, height, code] of cases) {
        expect([width, height, errorCode(() => differ.diffBlocks(none, none, width, height))]).toEqual([
          width,
          height,
          code,
        ]);
        expect(errorCode(() => differ.diffRects(none, none, width, height))).toBe(code);
      }
      const frame = new Uint8Array(16);
      expect(errorCode(() => differ.diffBlocks(frame, frame.subarray(0, 15), 2, 2))).toBe(
        "BAD_FRAMEBUFFER_SIZE",
      );
    });

    test("random frames and sparse changes match the per-pixel oracle", () => {
      fc.assert(
        fc.property(framePairs, ({ width, height, a, b }) => {
          const got = diffBoth(differ, a, b, width, height);
          const want = oracle(a, b, width, height);
          expect(got.map).toEqual(want.map);
          expect(got.changed).toBe(want.rects.length);
          expect(got.rects).toEqual(want.rects);
        }),
        { numRuns: 150 },
      );
    });
  });
}
