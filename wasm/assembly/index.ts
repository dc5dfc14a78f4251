// The codec core's ABI: the export list and the memory-map getters, nothing else. Only numbers cross
// (STYLE.md "The WASM boundary"): every export takes i32 geometry and returns an i32, ≥ 0 a result and
// < 0 an error code from errors.ts. The kernels work on the regions of memory.ts; wasm/loader.ts is the
// host side.

import { E_BAD_REGION } from "./errors";
import {
  BLOCK_MAP_PTR,
  BLOCK_MAP_SIZE,
  FB_A_PTR,
  FB_B_PTR,
  FB_SIZE,
  IN_PTR,
  IN_SIZE,
  OUT_PTR,
  OUT_SIZE,
  PF_LUT_PTR,
  PF_LUT_SIZE,
  REGION_BLOCK_MAP,
  REGION_COUNT,
  REGION_FB_A,
  REGION_FB_B,
  REGION_IN,
  REGION_OUT,
  REGION_PF_LUT,
  REGION_SCRATCH,
  REGION_WORK,
  REGIONS_END,
  SCRATCH_PTR,
  SCRATCH_SIZE,
  WORK_PTR,
  WORK_SIZE,
} from "./memory";

export { diffBlocks, diffRect, diffRects } from "./diff";
export { setInputFormat, setOutputFormat } from "./pixel";
export { setFramebuffer, fillRect, decodeRaw, decodeCopyRect } from "./framebuffer";
export { decodeRre } from "./rre";
export { decodeHextile } from "./hextile";
export { decodeZrle, decodeTrle } from "./zrle";
export { decodeTightCopy, decodeTightPalette, decodeTightGradient } from "./tight";
export { encodeRaw } from "./encode-raw";
export { encodeHextile } from "./encode-hextile";
export { encodeZrle } from "./encode-zrle";
export {
  tightAnalyse,
  tightEncodeFull,
  tightEncodeMono,
  tightEncodeIndexed,
  tightFindSolid,
  tightTpixels,
} from "./encode-tight";

// Static data and the stub heap must sit above the regions, or an allocation would land in FB_A:
// asconfig.json memoryBase must be at least REGIONS_END. Checked when compiling, not at run time.
if (ASC_MEMORY_BASE < REGIONS_END)
  ERROR("asconfig.json memoryBase must be ≥ REGIONS_END (wasm/assembly/memory.ts)");
if (!ASC_FEATURE_SIMD) ERROR("the codec core needs SIMD: compile with --enable simd");

/** Number of regions; ids are 0 … regionCount() - 1 (memory.ts REGION_*). */
export function regionCount(): i32 {
  return REGION_COUNT;
}

/** Byte offset of a region in memory, or E_BAD_REGION. */
export function regionPtr(id: i32): i32 {
  switch (id) {
    case REGION_FB_A:
      return FB_A_PTR;
    case REGION_FB_B:
      return FB_B_PTR;
    case REGION_BLOCK_MAP:
      return BLOCK_MAP_PTR;
    case REGION_SCRATCH:
      return SCRATCH_PTR;
    case REGION_IN:
      return IN_PTR;
    case REGION_OUT:
      return OUT_PTR;
    case REGION_WORK:
      return WORK_PTR;
    case REGION_PF_LUT:
      return PF_LUT_PTR;
    default:
      return E_BAD_REGION;
  }
}

/** Byte length of a region, or E_BAD_REGION. */
export function regionSize(id: i32): i32 {
  switch (id) {
    case REGION_FB_A:
    case REGION_FB_B:
      return FB_SIZE;
    case REGION_BLOCK_MAP:
      return BLOCK_MAP_SIZE;
    case REGION_SCRATCH:
      return SCRATCH_SIZE;
    case REGION_IN:
      return IN_SIZE;
    case REGION_OUT:
      return OUT_SIZE;
    case REGION_WORK:
      return WORK_SIZE;
    case REGION_PF_LUT:
      return PF_LUT_SIZE;
    default:
      return E_BAD_REGION;
  }
}

/**
 * Always aborts, with this file and line. Exists so test/wasm/loader.test.ts can prove that an abort
 * reaches the host as a JS Error in both builds (the kernels validate their inputs and never abort).
 */
export function selfTestAbort(): void {
  throw new Error("self-test abort");
}
