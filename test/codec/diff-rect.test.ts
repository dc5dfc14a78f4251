// Compare-on-write (CodecKernels.diffRect: wasm/assembly/diff.ts diffRect and its twin relay/codec/diff.ts
// diffRectTs), run against the TS twin and both WASM builds through forEachKernel. Pixels are written with
// the kernels' own decoders (raw, fill) or, for the X byte a decoder never writes, straight into the
// framebuffer view. Expected rects are hand-worked geometry or `rectOracle`, a per-pixel reference over
// the rect only; a randomized property holds all three implementations to it and to each other.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { DIFF_BLOCK_SIZE, type DiffRect, diffRectTs } from "../../relay/codec/diff.ts";
import type { CodecKernels } from "../../relay/codec/kernels.ts";
import { TsKernels } from "../../relay/codec/ts-kernels.ts";
import { WasmKernels } from "../../relay/codec/wasm-kernels.ts";
import { RfbError } from "../../relay/rfb/errors.ts";
import { noiseFrame } from "../helpers/bytes.ts";
import { forEachKernel, KERNEL_IMPLS, kernelsWith } from "./kernel-impls.ts";

/** The previous frame a kernel compares against: TsKernels.prev, or the core's FB_B. */
function previousFrame(k: CodecKernels): Uint8Array {
  if (k instanceof TsKernels) return k.prev;
  if (k instanceof WasmKernels) return k.core.region("FB_B").subarray(0, k.width * k.height * 4);
  throw new Error(`no previous frame for ${k.name}`);
}

/** The canonical pixels of a rect of a width-wide frame, rows packed. */
function crop(frame: Uint8Array, width: number, x: number, y: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 4);
  for (let row = 0; row < h; row++) {
    const start = ((y + row) * width + x) * 4;
    out.set(frame.subarray(start, start + w * 4), row * w * 4);
  }
  return out;
}

/** Writes the whole framebuffer with X = 0 noise through raw, then brings the previous frame up to it. */
function seed(k: CodecKernels, salt: number): Uint8Array {
  const frame = noiseFrame(k.width, k.height, salt);
  for (let i = 3; i < frame.length; i += 4) frame[i] = 0;
  k.raw(0, 0, k.width, k.height, frame);
  k.diffRect(0, 0, k.width, k.height);
  expect(k.diffRect(0, 0, k.width, k.height)).toEqual([]);
  return frame;
}

/** Changes pixel (x, y) through the raw decoder: its R, G or B byte XOR 0x80. */
function poke(k: CodecKernels, x: number, y: number, channel = 0): void {
  const px = crop(k.pixels(), k.width, x, y, 1, 1);
  px[channel] = px[channel]! ^ 0x80;
  k.raw(x, y, 1, 1, px);
}

/**
 * The reference: every pixel of the rect, R, G and B compared byte by byte; one bounding box per 64×64 block
 * of the framebuffer's grid, in block order.
 */
function rectOracle(
  current: Uint8Array,
  previous: Uint8Array,
  width: number,
  x: number,
  y: number,
  w: number,
  h: number,
): DiffRect[] {
  const boxes = new Map<number, { x0: number; y0: number; x1: number; y1: number }>();
  const blocksX = Math.ceil(width / DIFF_BLOCK_SIZE);
  for (let py = y; py < y + h; py++) {
    for (let px = x; px < x + w; px++) {
      const i = (py * width + px) * 4;
      if (
        current[i] === previous[i] &&
        current[i + 1] === previous[i + 1] &&
        current[i + 2] === previous[i + 2]
      )
        continue;
      const block = Math.floor(py / DIFF_BLOCK_SIZE) * blocksX + Math.floor(px / DIFF_BLOCK_SIZE);
      const box = boxes.get(block);
      if (!box) boxes.set(block, { x0: px, y0: py, x1: px, y1: py });
      else {
        box.x0 = Math.min(box.x0, px);
        box.x1 = Math.max(box.x1, px);
        box.y1 = py;
      }
    }
  }
  return [...boxes.keys()]
    .sort((p, q) => p - q)
    .map((block) => {
      const b = boxes.get(block)!;
      return { x: b.x0, y: b.y0, w: b.x1 - b.x0 + 1, h: b.y1 - b.y0 + 1 };
    });
}

/** `previous` with every rect copied in from `current`: what a diff must leave behind. */
function broughtForward(
  current: Uint8Array,
  previous: Uint8Array,
  width: number,
  rects: DiffRect[],
): Uint8Array {
  const out = previous.slice();
  for (const r of rects) {
    for (let row = r.y; row < r.y + r.h; row++) {
      const start = (row * width + r.x) * 4;
      out.set(current.subarray(start, start + r.w * 4), start);
    }
  }
  return out;
}

/** diffRect checked against the oracle, and the previous frame against what it must become. */
function diffChecked(k: CodecKernels, x: number, y: number, w: number, h: number): DiffRect[] {
  const current = k.pixels().slice();
  const previous = previousFrame(k).slice();
  const want = rectOracle(current, previous, k.width, x, y, w, h);
  const got = k.diffRect(x, y, w, h);
  expect(got).toEqual(want);
  expect(previousFrame(k)).toEqual(broughtForward(current, previous, k.width, want));
  return got;
}

function errorCode(run: () => unknown): string {
  try {
    run();
    return "no error";
  } catch (e) {
    return e instanceof RfbError ? e.code : `not an RfbError: ${e}`;
  }
}

forEachKernel("diffRect (compare-on-write)", (impl) => {
  test("a fresh framebuffer against its cleared previous frame: no change", async () => {
    const k = await kernelsWith(impl, 130, 70);
    expect(k.diffRect(0, 0, 130, 70)).toEqual([]);
  });

  test("the first full write: one rect per block, the block clipped to the framebuffer", async () => {
    const k = await kernelsWith(impl, 130, 70); // 3 × 2 blocks, the last column 2 px, the last row 6 px
    const frame = noiseFrame(130, 70, 3);
    for (let i = 0; i < frame.length; i += 4) frame[i] = frame[i]! | 1; // R ≠ 0 everywhere: every pixel differs from black
    k.raw(0, 0, 130, 70, frame);
    expect(k.diffRect(0, 0, 130, 70)).toEqual([
      { x: 0, y: 0, w: 64, h: 64 },
      { x: 64, y: 0, w: 64, h: 64 },
      { x: 128, y: 0, w: 2, h: 64 },
      { x: 0, y: 64, w: 64, h: 6 },
      { x: 64, y: 64, w: 64, h: 6 },
      { x: 128, y: 64, w: 2, h: 6 },
    ]);
    // Brought forward: the same call finds nothing, and the previous frame is the framebuffer.
    expect(k.diffRect(0, 0, 130, 70)).toEqual([]);
    expect(previousFrame(k)).toEqual(k.pixels());
  });

  test("an unchanged rect rewritten with the same pixels: no rects, previous frame untouched", async () => {
    const k = await kernelsWith(impl, 200, 150);
    const frame = seed(k, 5);
    const before = previousFrame(k).slice();
    k.raw(10, 20, 150, 100, crop(frame, 200, 10, 20, 150, 100));
    expect(k.diffRect(10, 20, 150, 100)).toEqual([]);
    k.fill(
      3,
      3,
      1,
      1,
      frame[(3 * 200 + 3) * 4]! |
        (frame[(3 * 200 + 3) * 4 + 1]! << 8) |
        (frame[(3 * 200 + 3) * 4 + 2]! << 16),
    );
    expect(k.diffRect(3, 3, 1, 1)).toEqual([]);
    expect(previousFrame(k)).toEqual(before);
  });

  test("one pixel at each block corner and each rect edge: a 1×1 rect, then nothing", async () => {
    // Rect (10, 20) 150 × 100 in a 200 × 150 framebuffer covers block columns 0–2 (x 10–63, 64–127,
    // 128–159) and block rows 0–1 (y 20–63, 64–119).
    const k = await kernelsWith(impl, 200, 150);
    seed(k, 7);
    const points = [
      [10, 20], // rect top-left
      [159, 20], // rect top-right
      [10, 119], // rect bottom-left
      [159, 119], // rect bottom-right
      [63, 63], // bottom-right corner of block (0, 0)
      [64, 63], // bottom-left of block (1, 0)
      [63, 64], // top-right of block (0, 1)
      [64, 64], // top-left of block (1, 1)
      [127, 20], // right edge of block (1, 0) on the rect's top row
      [128, 119], // left edge of block (2, 1) on the rect's bottom row
      [10, 64], // the rect's left edge, first row of block row 1
      [159, 63], // the rect's right edge, last row of block row 0
    ] as const;
    for (const [channel, [x, y]] of points.entries()) {
      poke(k, x, y, channel % 3);
      expect([x, y, k.diffRect(10, 20, 150, 100)]).toEqual([x, y, [{ x, y, w: 1, h: 1 }]]);
      expect(k.diffRect(10, 20, 150, 100)).toEqual([]);
    }
  });

  test("a rect over several blocks with changes in some: one trimmed rect per changed block, block order", async () => {
    const k = await kernelsWith(impl, 300, 200);
    seed(k, 11);
    // Rect (30, 40) 240 × 150: block columns 0–4 (x 30–63, 64–127, 128–191, 192–255, 256–269), block rows
    // 0–2 (y 40–63, 64–127, 128–189).
    poke(k, 200, 50); // block (3, 0)
    poke(k, 250, 60); // block (3, 0) too: box x 200–250, y 50–60
    poke(k, 31, 100); // block (0, 1)
    for (let x = 100; x < 140; x++) poke(k, x, 130, 1); // a line across blocks (1, 2) and (2, 2)
    poke(k, 269, 189, 2); // the rect's bottom-right pixel, block (4, 2)
    expect(k.diffRect(30, 40, 240, 150)).toEqual([
      { x: 200, y: 50, w: 51, h: 11 },
      { x: 31, y: 100, w: 1, h: 1 },
      { x: 100, y: 130, w: 28, h: 1 },
      { x: 128, y: 130, w: 12, h: 1 },
      { x: 269, y: 189, w: 1, h: 1 },
    ]);
    expect(k.diffRect(30, 40, 240, 150)).toEqual([]);
    expect(previousFrame(k)).toEqual(k.pixels());
  });

  test("only R, G and B count: X-byte changes in the framebuffer are not changes", async () => {
    const k = await kernelsWith(impl, 100, 80);
    seed(k, 13);
    const fb = k.pixels();
    for (let i = 3; i < fb.length; i += 4) fb[i] = 0x5a; // a decoder never writes X; this simulates garbage
    expect(k.diffRect(0, 0, 100, 80)).toEqual([]);
    for (const channel of [0, 1, 2]) {
      const i = (70 * 100 + 90) * 4 + channel;
      fb[i] = fb[i]! ^ 1;
      expect(k.diffRect(0, 0, 100, 80)).toEqual([{ x: 90, y: 70, w: 1, h: 1 }]);
      expect(previousFrame(k)[i]).toBe(fb[i]!);
    }
  });

  test("pixels outside the rect are not compared and not brought forward", async () => {
    const k = await kernelsWith(impl, 128, 128);
    seed(k, 17);
    // The rect (20, 20) 30 × 30 lies inside block (0, 0); the changes outside it share that block and
    // the rows and columns of the change inside it, so a trim over the whole block would reach them.
    poke(k, 40, 40); // inside
    poke(k, 5, 40); // left of the rect, same row
    poke(k, 60, 40); // right of the rect, same row
    poke(k, 40, 5); // above, same column
    poke(k, 40, 60); // below, same column
    expect(k.diffRect(20, 20, 30, 30)).toEqual([{ x: 40, y: 40, w: 1, h: 1 }]);
    expect(k.diffRect(0, 0, 20, 128)).toEqual([{ x: 5, y: 40, w: 1, h: 1 }]);
    expect(k.diffRect(0, 0, 128, 128)).toEqual([
      { x: 40, y: 5, w: 21, h: 56 }, // (60, 40), (40, 5), (40, 60): not brought forward before
    ]);
    expect(k.diffRect(0, 0, 128, 128)).toEqual([]);
    // A rect over two block columns, (40, 0) 50 × 10: changes beside both of its ends, in the blocks it
    // touches, on the rows it covers.
    poke(k, 39, 3); // left of it, block column 0
    poke(k, 90, 4); // right of it, block column 1
    poke(k, 127, 5); // the last pixel of block column 1
    poke(k, 60, 10); // below it
    expect(k.diffRect(40, 0, 50, 10)).toEqual([]);
    expect(k.diffRect(0, 0, 128, 64)).toEqual([
      { x: 39, y: 3, w: 22, h: 8 },
      { x: 90, y: 4, w: 38, h: 2 },
    ]);
  });

  test("unaligned and narrow rects at the framebuffer's right and bottom edges", async () => {
    const [width, height] = [197, 133]; // last block column 5 px wide (192–196), last block row 5 px (128–132)
    const k = await kernelsWith(impl, width, height);
    seed(k, 19);
    const rects = [
      [150, 100, 47, 33], // to both edges, across block column 2/3 and block row 1/2
      [196, 0, 1, 133], // the last column
      [195, 60, 2, 10], // 2 px wide across block rows 0/1
      [190, 125, 3, 8], // 3 px wide across block column 2/3 and rows 1/2, to the bottom edge
      [0, 132, 197, 1], // the last row
      [61, 127, 7, 6], // 2 × 2 blocks, 3 + 4 px wide, 1 + 5 rows
    ] as const;
    for (const [x, y, w, h] of rects) {
      // Every pixel of the rect, one at a time, and then all of its corners at once.
      for (let py = y; py < y + h; py++) {
        for (let px = x; px < x + w; px++) {
          poke(k, px, py, (px + py) % 3);
          expect([x, y, w, h, k.diffRect(x, y, w, h)]).toEqual([x, y, w, h, [{ x: px, y: py, w: 1, h: 1 }]]);
        }
      }
      for (const [px, py] of [
        [x, y],
        [x + w - 1, y],
        [x, y + h - 1],
        [x + w - 1, y + h - 1],
      ] as const) {
        poke(k, px, py);
        poke(k, px, py, 1); // the same corner twice when w or h is 1: still a change
      }
      diffChecked(k, x, y, w, h);
      expect(k.diffRect(x, y, w, h)).toEqual([]);
    }
    expect(previousFrame(k)).toEqual(k.pixels());
  });

  test("empty rects, including at the far edges, compare nothing", async () => {
    const k = await kernelsWith(impl, 64, 64);
    seed(k, 23);
    poke(k, 0, 0);
    for (const [x, y, w, h] of [
      [0, 0, 0, 0],
      [0, 0, 0, 64],
      [0, 0, 64, 0],
      [64, 64, 0, 0],
      [64, 0, 0, 64],
    ] as const) {
      expect(k.diffRect(x, y, w, h)).toEqual([]);
    }
    expect(k.diffRect(0, 0, 1, 1)).toEqual([{ x: 0, y: 0, w: 1, h: 1 }]);
  });

  test("a full 1920×1080 frame: one pixel per corner block and the middle", async () => {
    const k = await kernelsWith(impl, 1920, 1080);
    seed(k, 29);
    for (const [x, y] of [
      [0, 0],
      [1919, 0],
      [960, 540],
      [0, 1079],
      [1919, 1079],
    ] as const) {
      poke(k, x, y, 2);
    }
    expect(k.diffRect(0, 0, 1920, 1080)).toEqual([
      { x: 0, y: 0, w: 1, h: 1 },
      { x: 1919, y: 0, w: 1, h: 1 },
      { x: 960, y: 540, w: 1, h: 1 },
      { x: 0, y: 1079, w: 1, h: 1 },
      { x: 1919, y: 1079, w: 1, h: 1 },
    ]);
    expect(k.diffRect(0, 0, 1920, 1080)).toEqual([]);
  });

  test("a rect outside the framebuffer, per dimension: RECT_OUT_OF_BOUNDS, nothing compared or copied", async () => {
    const k = await kernelsWith(impl, 1920, 1080);
    seed(k, 31);
    poke(k, 0, 0);
    const before = previousFrame(k).slice();
    for (const [x, y, w, h] of [
      [0, 0, 1921, 1], // one column too wide
      [0, 0, 1, 1081], // one row too high
      [1920, 0, 1, 1], // starts at the right edge
      [0, 1080, 1, 1], // starts at the bottom edge
      [0, 0, 2000, 1], // area 2000 < 1920 × 1080: a check by area would let it through (bad-inputs.md B)
      [1919, 0, 2, 1], // x + w = W + 1
      [-1, 0, 2, 2],
      [0, -1, 2, 2],
      [0, 0, -1, 2],
      [0, 0, 2, -1],
      [0x7fffffff, 0, 2, 1], // x + w overflows an i32
      [0, 0x7fffffff, 1, 2],
      [1, 1, 0x7fffffff, 1],
    ] as const) {
      expect([x, y, w, h, errorCode(() => k.diffRect(x, y, w, h))]).toEqual([
        x,
        y,
        w,
        h,
        "RECT_OUT_OF_BOUNDS",
      ]);
    }
    expect(previousFrame(k)).toEqual(before);
    expect(k.diffRect(0, 0, 1, 1)).toEqual([{ x: 0, y: 0, w: 1, h: 1 }]);
  });
});

describe("diffRectTs on its own", () => {
  test("a previous frame at an odd byteOffset is compared and brought forward the same", () => {
    const [width, height] = [70, 66];
    const current = noiseFrame(width, height, 37);
    const backing = new Uint8Array(current.length + 1);
    backing.set(current, 1);
    const previous = backing.subarray(1); // no Uint32Array can view it
    current[(65 * width + 69) * 4] = current[(65 * width + 69) * 4]! ^ 1;
    current[(3 * width + 2) * 4 + 2] = current[(3 * width + 2) * 4 + 2]! ^ 1;
    expect(diffRectTs(current, previous, width, height, 0, 0, width, height)).toEqual([
      { x: 2, y: 3, w: 1, h: 1 },
      { x: 69, y: 65, w: 1, h: 1 },
    ]);
    expect([...previous]).toEqual([...current]);
    expect(diffRectTs(current, previous, width, height, 0, 0, width, height)).toEqual([]);
  });

  test("frames shorter than width × height × 4: BAD_FRAMEBUFFER_SIZE", () => {
    const frame = new Uint8Array(16);
    expect(errorCode(() => diffRectTs(frame, frame.subarray(0, 15), 2, 2, 0, 0, 1, 1))).toBe(
      "BAD_FRAMEBUFFER_SIZE",
    );
    expect(errorCode(() => diffRectTs(frame, frame, 2, 2, 1, 1, 2, 1))).toBe("RECT_OUT_OF_BOUNDS");
  });
});

/** One step of a random session: a sparse raw write, a solid fill, or a diff of any rect. */
type Op =
  | { kind: "raw"; x: number; y: number; w: number; h: number; changes: { at: number; channel: number }[] }
  | { kind: "fill"; x: number; y: number; w: number; h: number; colour: number }
  | { kind: "diff"; x: number; y: number; w: number; h: number };

/** A rect inside width × height from four fractions. */
function place(width: number, height: number, f: [number, number, number, number]) {
  const x = Math.floor(f[0] * width);
  const y = Math.floor(f[1] * height);
  return { x, y, w: Math.ceil(f[2] * (width - x)), h: Math.ceil(f[3] * (height - y)) };
}

const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const fractions = fc.tuple(unit, unit, unit, unit);
const sessions = fc.record({
  width: fc.integer({ min: 1, max: 200 }),
  height: fc.integer({ min: 1, max: 160 }),
  salt: fc.integer({ min: 1, max: 0x7fffffff }),
  ops: fc.array(
    fc.oneof(
      fc.record({
        kind: fc.constant("raw" as const),
        at: fractions,
        changes: fc.array(fc.record({ at: unit, channel: fc.integer({ min: 0, max: 3 }) }), {
          maxLength: 12,
        }),
        diffSame: fc.boolean(),
        other: fractions,
      }),
      fc.record({
        kind: fc.constant("fill" as const),
        at: fractions,
        colour: fc.integer({ min: 0, max: 0xffffff }),
        diffSame: fc.boolean(),
        other: fractions,
      }),
    ),
    { minLength: 1, maxLength: 8 },
  ),
});

describe("diffRect parity: TS twin, WASM debug and WASM release on random sessions", () => {
  test("every diff matches the per-pixel oracle and the three agree, previous frames included", async () => {
    const kernels = await Promise.all(KERNEL_IMPLS.map((impl) => impl.make()));
    fc.assert(
      fc.property(sessions, ({ width, height, salt, ops }) => {
        for (const k of kernels) {
          k.resize(width, height);
          seed(k, salt);
        }
        const steps: Op[] = [];
        for (const op of ops) {
          const r = place(width, height, op.at);
          if (op.kind === "raw") {
            steps.push({
              kind: "raw",
              ...r,
              changes: op.changes.map((c) => ({ at: Math.floor(c.at * r.w * r.h), channel: c.channel })),
            });
          } else {
            steps.push({ kind: "fill", ...r, colour: op.colour });
          }
          // Usually the rect just written (compare-on-write); sometimes another one, to reach pixels
          // that earlier writes changed but their own diff did not cover.
          steps.push({ kind: "diff", ...(op.diffSame ? r : place(width, height, op.other)) });
        }
        steps.push({ kind: "diff", x: 0, y: 0, w: width, h: height });
        for (const step of steps) {
          const results: DiffRect[][] = [];
          for (const k of kernels) {
            const { x, y, w, h } = step;
            if (step.kind === "raw") {
              const data = crop(k.pixels(), width, x, y, w, h);
              for (const c of step.changes) {
                if (c.at < w * h) data[c.at * 4 + c.channel] = data[c.at * 4 + c.channel]! ^ 0x41;
              }
              k.raw(x, y, w, h, data);
            } else if (step.kind === "fill") {
              k.fill(x, y, w, h, step.colour);
            } else {
              results.push(diffChecked(k, x, y, w, h));
            }
          }
          if (step.kind === "diff") {
            expect(results[1]).toEqual(results[0]!);
            expect(results[2]).toEqual(results[0]!);
          }
        }
        const [ts, ...wasm] = kernels;
        for (const k of wasm) {
          expect(k.pixels()).toEqual(ts!.pixels());
          expect(previousFrame(k)).toEqual(previousFrame(ts!));
        }
        // The final whole-frame diff left nothing behind.
        expect(previousFrame(ts!)).toEqual(ts!.pixels());
      }),
      { numRuns: 100 },
    );
  });
});
