// FrameDiffer over the WASM codec core (wasm/assembly/diff.ts): copies the two frames into FB_A / FB_B,
// makes one kernel call per frame (per-call overhead matters, rfb-codecs.md §7.2), and reads the block
// map and rect list back. A caller that decodes straight into the core's framebuffers (frames()) skips
// both copies; that is the relay's path, where the session framebuffer lives in WASM memory.

import { E_BAD_DIMENSIONS, E_BAD_REGION, E_TOO_LARGE } from "../../wasm/assembly/errors.ts";
import { type CodecCore, type CoreBuild, type LoadOptions, loadCodecCore } from "../../wasm/loader.ts";
import { RfbError, type RfbErrorCode } from "../rfb/errors.ts";
import { type BlockDiff, checkFrames, DIFF_BLOCK_SIZE, type DiffRect, type FrameDiffer } from "./diff.ts";

const CORE_ERRORS = new Map<number, RfbErrorCode>([
  [E_BAD_DIMENSIONS, "BAD_FRAMEBUFFER_SIZE"],
  [E_TOO_LARGE, "LIMIT_EXCEEDED"],
  [E_BAD_REGION, "INTERNAL"],
]);

/** A kernel result, or the RfbError its code stands for. */
function checked(result: number, what: string): number {
  if (result >= 0) return result;
  throw new RfbError(CORE_ERRORS.get(result) ?? "CODEC_ERROR", `${what}: codec core returned ${result}`);
}

export class WasmFrameDiffer implements FrameDiffer {
  readonly name: string;
  readonly core: CodecCore;

  constructor(core: CodecCore) {
    this.core = core;
    this.name = `wasm-${core.build}`;
  }

  /** The core's two framebuffers; diffing frames written in place costs no copy. Valid until memory grows. */
  frames(): { a: Uint8Array; b: Uint8Array } {
    return { a: this.core.region("FB_A"), b: this.core.region("FB_B") };
  }

  diffBlocks(a: Uint8Array, b: Uint8Array, width: number, height: number): BlockDiff {
    this.#load(a, b, width, height);
    const changed = checked(this.core.fn.diffBlocks(width, height), "diffBlocks");
    return this.#blockDiff(changed, width, height);
  }

  diffRects(a: Uint8Array, b: Uint8Array, width: number, height: number): DiffRect[] {
    this.#load(a, b, width, height);
    const count = checked(this.core.fn.diffRects(width, height), "diffRects");
    const scratch = this.core.region("SCRATCH");
    const words = new Uint32Array(scratch.buffer, scratch.byteOffset, count * 4);
    const rects: DiffRect[] = new Array(count);
    for (let i = 0; i < count; i++) {
      rects[i] = { x: words[i * 4]!, y: words[i * 4 + 1]!, w: words[i * 4 + 2]!, h: words[i * 4 + 3]! };
    }
    return rects;
  }

  #blockDiff(changed: number, width: number, height: number): BlockDiff {
    const blocksX = Math.ceil(width / DIFF_BLOCK_SIZE);
    const blocksY = Math.ceil(height / DIFF_BLOCK_SIZE);
    return { changed, map: this.core.region("BLOCK_MAP").subarray(0, blocksX * blocksY), blocksX, blocksY };
  }

  /** Validates as the TS twin does (same codes), then copies each frame unless it already is FB_A / FB_B. */
  #load(a: Uint8Array, b: Uint8Array, width: number, height: number): void {
    const fbA = this.core.region("FB_A");
    const fbB = this.core.region("FB_B");
    // The region is the budget: 32 MiB = 8 Mpx (wasm/assembly/memory.ts).
    const bytes = checkFrames(a, b, width, height, fbA.length / 4) * 4;
    // The diff is symmetric, so frames handed over the other way round are used where they are.
    if (isRegion(a, fbB) || isRegion(b, fbA)) [a, b] = [b, a];
    // Other bytes inside the core's memory could be overwritten by the first copy: snapshot them first.
    if (a.buffer === fbA.buffer && !isRegion(a, fbA)) a = a.slice(0, bytes);
    if (b.buffer === fbB.buffer && !isRegion(b, fbB)) b = b.slice(0, bytes);
    if (!isRegion(a, fbA)) fbA.set(a.subarray(0, bytes));
    if (!isRegion(b, fbB)) fbB.set(b.subarray(0, bytes));
  }
}

/** Does `frame` start where `region` does, in the same memory? */
function isRegion(frame: Uint8Array, region: Uint8Array): boolean {
  return frame.buffer === region.buffer && frame.byteOffset === region.byteOffset;
}

/** A WasmFrameDiffer over a fresh core instance (one per session). */
export async function createWasmDiffer(
  build: CoreBuild = "release",
  options?: LoadOptions,
): Promise<WasmFrameDiffer> {
  return new WasmFrameDiffer(await loadCodecCore(build, options));
}
