// The codec core's boundary, for both builds: the memory map as the instance reports it, error codes
// instead of traps on bad arguments, an AssemblyScript abort as a JS Error with file and line, one memory
// per instance, views rebuilt after growth, one compiled Module per build, and the missing-build message.

import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { E_BAD_DIMENSIONS, E_BAD_REGION, E_TOO_LARGE } from "../../wasm/assembly/errors.ts";
import {
  type CodecCore,
  CoreAbortError,
  compileCodecCore,
  loadCodecCore,
  REGION_NAMES,
  type RegionName,
} from "../../wasm/loader.ts";

for (const build of ["debug", "release"] as const) {
  describe(`codec core (${build})`, () => {
    test("loads, exports memory and a memory map of eight regions", async () => {
      const core = await loadCodecCore(build);
      expect(core.build).toBe(build);
      expect(core.memory).toBeInstanceOf(WebAssembly.Memory);
      expect(core.fn.regionCount()).toBe(8);
      const names: RegionName[] = ["FB_A", "FB_B", "BLOCK_MAP", "SCRATCH", "IN", "OUT", "WORK", "PF_LUT"];
      expect(core.regions.map((r) => r.name)).toEqual(names);
      expect(REGION_NAMES).toEqual(names);
    });

    test("regions do not overlap, lie inside memory, are 16-byte aligned and big enough", async () => {
      const core = await loadCodecCore(build);
      const sorted = [...core.regions].sort((a, b) => a.ptr - b.ptr);
      // A null-pointer write must not land in a region.
      expect(sorted[0]!.ptr).toBeGreaterThan(0);
      for (let i = 0; i < sorted.length; i++) {
        const r = sorted[i]!;
        expect(r.ptr % 16).toBe(0);
        expect(r.ptr + r.size).toBeLessThanOrEqual(core.memory.buffer.byteLength);
        if (i > 0) expect(r.ptr).toBeGreaterThanOrEqual(sorted[i - 1]!.ptr + sorted[i - 1]!.size);
      }
      const size = (name: string): number => core.regions.find((r) => r.name === name)!.size;
      expect(size("FB_A")).toBe(8 * 1024 * 1024 * 4); // the 8 Mpx pixel budget at 4 B/px
      expect(size("FB_B")).toBe(size("FB_A"));
      expect(size("BLOCK_MAP")).toBe((16384 / 64) ** 2); // one byte per block at the 16384 side limit
      expect(size("SCRATCH")).toBeGreaterThanOrEqual(size("BLOCK_MAP") * 16); // one x,y,w,h rect per block
      // A Raw rect at the pixel budget fits the input and the output, with room for per-tile bytes.
      expect(size("IN")).toBeGreaterThan(size("FB_A"));
      expect(size("OUT")).toBeGreaterThan(size("FB_A") + (8 * 1024 * 1024) / 256);
      expect(size("PF_LUT")).toBeGreaterThanOrEqual(65536 * 4 + 3 * 256 * 4); // 16 bpp input table + output tables
      for (const r of core.regions) expect(core.region(r.name).byteOffset).toBe(r.ptr);
    });

    test("bad arguments return error codes, not traps", async () => {
      const core = await loadCodecCore(build);
      for (const [w, h] of [
        [0, 1],
        [1, 0],
        [-1, 1],
        [16385, 1],
        [1, 16385],
        [-2147483648, -2147483648],
        [2147483647, 2147483647],
      ] as const) {
        expect(core.fn.diffBlocks(w, h)).toBe(E_BAD_DIMENSIONS);
        expect(core.fn.diffRects(w, h)).toBe(E_BAD_DIMENSIONS);
      }
      expect(core.fn.diffBlocks(4097, 2048)).toBe(E_TOO_LARGE); // 8 Mpx + 2048
      expect(core.fn.diffRects(16384, 16384)).toBe(E_TOO_LARGE);
      expect(core.fn.regionPtr(8)).toBe(E_BAD_REGION);
      expect(core.fn.regionSize(-1)).toBe(E_BAD_REGION);
      // The instance is still usable after all of them.
      expect(core.fn.diffBlocks(64, 64)).toBe(0);
    });

    test("an AssemblyScript abort becomes a CoreAbortError with file and line", async () => {
      const core = await loadCodecCore(build);
      let caught: unknown;
      try {
        core.fn.selfTestAbort();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(CoreAbortError);
      const error = caught as CoreAbortError;
      expect(error.message).toContain("self-test abort");
      expect(error.file).toMatch(/assembly\/index\.ts$/);
      expect(error.line).toBeGreaterThan(0);
      expect(error.message).toContain(`index.ts:${error.line}:`);
    });

    test("two instances do not share memory", async () => {
      const one = await loadCodecCore(build);
      const two = await loadCodecCore(build);
      expect(one.memory).not.toBe(two.memory);
      one.region("FB_A").fill(7, 0, 64 * 4);
      expect(two.region("FB_A")[0]).toBe(0);
      // 64×64 block: FB_A differs from FB_B in one, in the other both are still zero.
      expect(one.fn.diffBlocks(64, 64)).toBe(1);
      expect(two.fn.diffBlocks(64, 64)).toBe(0);
    });

    test("views are rebuilt after memory growth detaches the old buffer", async () => {
      const core: CodecCore = await loadCodecCore(build);
      const before = core.region("SCRATCH");
      expect(core.region("SCRATCH")).toBe(before); // cached while the buffer is the same
      before[10] = 42;
      core.memory.grow(1);
      expect(before.byteLength).toBe(0); // detached
      const after = core.region("SCRATCH");
      expect(after).not.toBe(before);
      expect(after.byteLength).toBe(core.regions[3]!.size);
      expect(after[10]).toBe(42);
    });
  });
}

describe("compiling and finding the builds", () => {
  test("each build is compiled once per process", async () => {
    expect(await compileCodecCore("release")).toBe(await compileCodecCore("release"));
    expect(await compileCodecCore("debug")).not.toBe(await compileCodecCore("release"));
  });

  test("a missing build says to run npm run build:wasm", async () => {
    const empty = mkdtempSync(join(tmpdir(), "shadowrelay-no-wasm-"));
    await expect(loadCodecCore("release", { buildDir: empty })).rejects.toThrow("npm run build:wasm");
  });
});
