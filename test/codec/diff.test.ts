// Runs the shared FrameDiffer cases (diff.cases.ts) against the TS twin and both WASM builds, then checks
// that the twin and the WASM release/debug builds agree on random frames, and the WASM adapter's
// zero-copy path (frames decoded straight into the core's framebuffers).

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { TsFrameDiffer } from "../../relay/codec/diff.ts";
import { createWasmDiffer } from "../../relay/codec/wasm-diff.ts";
import { noiseFrame } from "../helpers/bytes.ts";
import { diffBoth, framePairs, runDiffCases, touch } from "./diff.cases.ts";

runDiffCases("ts", () => new TsFrameDiffer());
runDiffCases("wasm debug", () => createWasmDiffer("debug"));
runDiffCases("wasm release", () => createWasmDiffer("release"));

describe("FrameDiffer parity: TS twin against WASM", () => {
  for (const build of ["debug", "release"] as const) {
    test(`random frames and sparse changes: ts and wasm ${build} agree`, async () => {
      const ts = new TsFrameDiffer();
      const wasm = await createWasmDiffer(build);
      fc.assert(
        fc.property(framePairs, ({ width, height, a, b }) => {
          expect(diffBoth(wasm, a, b, width, height)).toEqual(diffBoth(ts, a, b, width, height));
        }),
        { numRuns: 200 },
      );
    });
  }
});

describe("WasmFrameDiffer: frames already in the core's framebuffers", () => {
  test("diffing the core's own regions (no copy) gives the copied result, either way round", async () => {
    const differ = await createWasmDiffer("release");
    const [width, height] = [333, 222];
    const a = noiseFrame(width, height, 4);
    const b = a.slice();
    touch(b, width, 300, 200);
    touch(b, width, 5, 6, 1);
    const copied = diffBoth(differ, a, b, width, height);
    expect(copied.rects).toEqual([
      { x: 5, y: 6, w: 1, h: 1 },
      { x: 300, y: 200, w: 1, h: 1 },
    ]);
    const frames = differ.frames();
    frames.a.set(a);
    frames.b.set(b);
    expect(diffBoth(differ, frames.a, frames.b, width, height)).toEqual(copied);
    expect(diffBoth(differ, frames.b, frames.a, width, height)).toEqual(copied);
    // A frame elsewhere in the core's memory (here inside FB_B, which the call overwrites with `b`) is
    // snapshotted before the copies.
    frames.b.set(a, 64);
    expect(differ.diffRects(frames.b.subarray(64), b, width, height)).toEqual(copied.rects);
  });
});
