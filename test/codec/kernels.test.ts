// The CodecKernels primitives every decoder builds on, on the TS twin and both WASM builds: framebuffer
// size checks, Fill, Raw, CopyRect (overlap both ways, source checked against the framebuffer: TigerVNC
// CVE-2019-15692), per-dimension rect checks (bad-inputs.md B "Rectangle header": a 2000×1 rect must not
// pass an area check), and geometry that would wrap in the core's i32 arguments.

import { expect, test } from "bun:test";
import { hex } from "../helpers/bytes.ts";
import { codeOf } from "../helpers/errors.ts";
import { forEachKernel, kernelsWith } from "./kernel-impls.ts";

/** A w×h canonical frame whose pixel i is (i, i >> 8, 7, 0). */
function ramp(w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) out.set([i & 255, i >> 8, 7, 0], i * 4);
  return out;
}

forEachKernel("kernels", (impl) => {
  test("resize: sides 1…16384 within the 8 Mpx budget; every pixel starts black", async () => {
    const k = await impl.make();
    expect(codeOf(() => k.resize(0, 10))).toBe("BAD_FRAMEBUFFER_SIZE");
    expect(codeOf(() => k.resize(16385, 1))).toBe("BAD_FRAMEBUFFER_SIZE");
    expect(codeOf(() => k.resize(4097, 2048))).toBe("LIMIT_EXCEEDED"); // 8 Mpx + 2048
    k.resize(3, 2);
    expect([k.width, k.height]).toEqual([3, 2]);
    expect(k.pixels()).toEqual(new Uint8Array(24));
    k.fill(0, 0, 3, 2, 0x123456);
    k.resize(2, 2);
    expect(k.pixels()).toEqual(new Uint8Array(16));
  });

  test("fill writes R, G, B with X = 0 and nothing outside the rect", async () => {
    const k = await kernelsWith(impl, 4, 3);
    k.fill(1, 1, 2, 1, 0xffcc8844);
    const want = new Uint8Array(48);
    want.set(hex("4488cc00 4488cc00"), 20); // pixels (1,1) and (2,1): bytes R, G, B, X
    expect(k.pixels()).toEqual(want);
  });

  test("CopyRect copies overlapping rects as if through a temporary, in every direction", async () => {
    for (const [dx, dy] of [
      [1, 0],
      [-1, 0],
      [0, 1],
      [0, -1],
      [2, 2],
      [-3, -2],
    ] as const) {
      const [w, h] = [9, 8];
      const k = await kernelsWith(impl, w, h);
      const frame = ramp(w, h);
      k.raw(0, 0, w, h, frame);
      const [sx, sy, cw, ch] = [3, 3, 4, 3];
      k.copyRect(sx + dx, sy + dy, cw, ch, sx, sy);
      const want = frame.slice();
      for (let y = 0; y < ch; y++)
        want.set(
          frame.subarray(((sy + y) * w + sx) * 4, ((sy + y) * w + sx + cw) * 4),
          ((sy + dy + y) * w + sx + dx) * 4,
        );
      expect(k.pixels()).toEqual(want);
    }
  });

  test("rects and CopyRect sources are checked per dimension, before anything is written", async () => {
    const k = await kernelsWith(impl, 1920, 1080);
    const before = k.pixels().slice();
    const cases: [string, () => void][] = [
      ["2000×1 at 0,0 (area 2000 < 1920×1080)", () => k.fill(0, 0, 2000, 1, 0xffffff)],
      ["x + w = W + 1", () => k.fill(1, 0, 1920, 1, 0xffffff)],
      ["y + h = H + 1", () => k.fill(0, 1080, 1, 1, 0xffffff)],
      ["raw past the right edge", () => k.raw(1919, 0, 2, 1, new Uint8Array(8))],
      ["copy source past the bottom", () => k.copyRect(0, 0, 10, 10, 0, 1075)],
      ["copy source past the right", () => k.copyRect(0, 0, 10, 10, 1911, 0)],
      ["x = 2^32 (wraps to 0 as an i32)", () => k.fill(2 ** 32, 0, 1, 1, 0xffffff)],
      ["w = 2^31 (negative as an i32)", () => k.fill(0, 0, 2 ** 31, 1, 0xffffff)],
      ["negative y", () => k.fill(0, -1, 1, 1, 0xffffff)],
    ];
    for (const [what, call] of cases) expect([what, codeOf(call)]).toEqual([what, "RECT_OUT_OF_BOUNDS"]);
    expect(k.pixels()).toEqual(before);
  });

  test("Raw needs exactly w × h × bpp bytes; an empty rect takes none", async () => {
    const k = await kernelsWith(impl, 4, 4);
    expect(codeOf(() => k.raw(0, 0, 2, 2, new Uint8Array(15)))).toBe("BAD_RECT");
    expect(codeOf(() => k.raw(0, 0, 2, 2, new Uint8Array(17)))).toBe("BAD_RECT");
    expect(codeOf(() => k.raw(4, 4, 0, 0, new Uint8Array(0)))).toBeUndefined();
    expect(codeOf(() => k.raw(0, 0, 0, 3, new Uint8Array(1)))).toBe("BAD_RECT");
  });
});
