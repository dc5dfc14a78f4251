// Frame diff: which 64×64 blocks of a framebuffer changed between two frames, and each changed block
// trimmed to the bounding box of its differing pixels (TigerVNC ComparingUpdateTracker, "edges trimmed").
// FrameDiffer is the interface; TsFrameDiffer is the pure-TypeScript implementation, the baseline the
// WASM kernel (wasm/assembly/diff.ts, adapted by wasm-diff.ts) is tested and benchmarked against.
//
// Frames are the canonical format (relay/rfb/pixel-format.ts): R,G,B,X, 4 bytes per pixel, rows packed.
// Byte 3 (X) is padding and never counts: a device that writes noise into it must not make the relay
// resend an unchanged screen.

import { RfbError } from "../rfb/errors.ts";
import { DEFAULT_LIMITS } from "../rfb/limits.ts";
import { checkedPixels } from "../util/checked.ts";

/** Block side, as TigerVNC. Unchanged 1080p pair: 0.3 ms in WASM, 0.9 ms here (bench/RESULTS.md). */
export const DIFF_BLOCK_SIZE = 64;

export interface BlockDiff {
  /** Number of changed blocks. */
  changed: number;
  /**
   * One byte per block, row-major, blocksX × blocksY: 1 = changed, 0 = not. Owned by the differ and
   * overwritten by its next call: copy it to keep it.
   */
  map: Uint8Array;
  blocksX: number;
  blocksY: number;
}

export interface DiffRect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface FrameDiffer {
  readonly name: string;
  /**
   * Compares frame `b` (what was there) with frame `a` (what is there now), both width × height.
   * Throws RfbError BAD_FRAMEBUFFER_SIZE for sides outside 1…16384 or frames shorter than width × height × 4,
   * LIMIT_EXCEEDED past the pixel budget.
   */
  diffBlocks(a: Uint8Array, b: Uint8Array, width: number, height: number): BlockDiff;
  /**
   * One rect per changed block, in block order (row-major), each the exact bounding box of the block's
   * differing pixels. The array is the caller's. Same errors as diffBlocks.
   */
  diffRects(a: Uint8Array, b: Uint8Array, width: number, height: number): DiffRect[];
}

/**
 * The RGB bits of a pixel read as a native-endian u32. Little-endian (every platform Bun runs on): X is the
 * top byte; the big-endian branch keeps the twin honest if that ever changes.
 */
const RGB_MASK = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1 ? 0x00ffffff : 0xffffff00;

/** Checks the geometry the same way the WASM core does, then the buffers. Returns the pixel count. */
export function checkFrames(
  a: Uint8Array,
  b: Uint8Array,
  width: number,
  height: number,
  maxPixels: number,
  maxSide: number = DEFAULT_LIMITS.maxFramebufferSide,
): number {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RfbError("BAD_FRAMEBUFFER_SIZE", `frame diff: ${width}×${height}`);
  }
  if (width > maxSide || height > maxSide) {
    throw new RfbError("BAD_FRAMEBUFFER_SIZE", `frame diff: ${width}×${height} exceeds ${maxSide} per side`);
  }
  const pixels = checkedPixels(width, height, 1, maxPixels, "frame diff pixels");
  if (a.length < pixels * 4 || b.length < pixels * 4) {
    throw new RfbError(
      "BAD_FRAMEBUFFER_SIZE",
      `frame diff: ${width}×${height} needs ${pixels * 4} bytes per frame, got ${a.length} and ${b.length}`,
    );
  }
  return pixels;
}

export class TsFrameDiffer implements FrameDiffer {
  readonly name = "ts";
  readonly #maxPixels: number;
  #map = new Uint8Array(0);
  /** Per block of the current strip: its first changed row, or -1. */
  #top = new Int32Array(0);

  /** @param maxPixels pixel budget of one frame; @default 8 Mpx (RfbLimits.maxFramebufferPixels, as the WASM core) */
  constructor(maxPixels: number = DEFAULT_LIMITS.maxFramebufferPixels) {
    this.#maxPixels = maxPixels;
  }

  diffBlocks(a: Uint8Array, b: Uint8Array, width: number, height: number): BlockDiff {
    return this.#diff(a, b, width, height, undefined);
  }

  diffRects(a: Uint8Array, b: Uint8Array, width: number, height: number): DiffRect[] {
    const rects: DiffRect[] = [];
    this.#diff(a, b, width, height, rects);
    return rects;
  }

  #diff(
    a: Uint8Array,
    b: Uint8Array,
    width: number,
    height: number,
    rects: DiffRect[] | undefined,
  ): BlockDiff {
    const pixels = checkFrames(a, b, width, height, this.#maxPixels);
    const pa = pixelWords(a, pixels);
    const pb = pixelWords(b, pixels);
    const blocksX = Math.ceil(width / DIFF_BLOCK_SIZE);
    const blocksY = Math.ceil(height / DIFF_BLOCK_SIZE);
    if (this.#map.length < blocksX * blocksY) this.#map = new Uint8Array(blocksX * blocksY);
    if (this.#top.length < blocksX) this.#top = new Int32Array(blocksX);
    const map = this.#map.subarray(0, blocksX * blocksY);
    const top = this.#top;
    let changed = 0;
    for (let by = 0; by < blocksY; by++) {
      const y0 = by * DIFF_BLOCK_SIZE;
      const y1 = Math.min(y0 + DIFF_BLOCK_SIZE, height);
      // Whole rows of the strip in memory order rather than block by block: 0.8 against 1.4 ms per
      // unchanged 1080p pair in Bun. A block drops out at its first changed row, kept in top[].
      top.fill(-1, 0, blocksX);
      let pending = blocksX;
      for (let y = y0; y < y1 && pending > 0; y++) {
        const row = y * width;
        for (let bx = 0; bx < blocksX; bx++) {
          if (top[bx] !== -1) continue;
          const x0 = bx * DIFF_BLOCK_SIZE;
          if (rowDiffers(pa, pb, row + x0, row + Math.min(x0 + DIFF_BLOCK_SIZE, width))) {
            top[bx] = y;
            pending--;
          }
        }
      }
      for (let bx = 0; bx < blocksX; bx++) {
        const first = top[bx]!;
        map[by * blocksX + bx] = first === -1 ? 0 : 1;
        if (first === -1) continue;
        changed++;
        const x0 = bx * DIFF_BLOCK_SIZE;
        rects?.push(trimBlock(pa, pb, width, x0, Math.min(x0 + DIFF_BLOCK_SIZE, width), first, y1));
      }
    }
    return { changed, map, blocksX, blocksY };
  }
}

/** The frame as one u32 per pixel; copies only when the bytes are not 4-aligned (a Uint32Array cannot view them). */
function pixelWords(frame: Uint8Array, pixels: number): Uint32Array {
  if (frame.byteOffset % 4 === 0) return new Uint32Array(frame.buffer, frame.byteOffset, pixels);
  return new Uint32Array(frame.slice(0, pixels * 4).buffer);
}

/** Any RGB difference among pixels [start, end) (at most one block row)? */
function rowDiffers(pa: Uint32Array, pb: Uint32Array, start: number, end: number): boolean {
  // No branch per pixel: OR-ing the 64 XORs and testing once ran 1.5× faster than exiting at the first one.
  let acc = 0;
  for (let i = start; i < end; i++) acc |= pa[i]! ^ pb[i]!;
  return (acc & RGB_MASK) !== 0;
}

/** The bounding box of the differing pixels in columns [x0, x1) and rows [top, y1), `top` known to differ. */
function trimBlock(
  pa: Uint32Array,
  pb: Uint32Array,
  width: number,
  x0: number,
  x1: number,
  top: number,
  y1: number,
): DiffRect {
  let bottom = y1 - 1;
  while (bottom > top && !rowDiffers(pa, pb, bottom * width + x0, bottom * width + x1)) bottom--;
  let left = x1;
  let right = x0 - 1;
  for (let y = top; y <= bottom; y++) {
    const row = y * width;
    // Only the columns that could still widen the box are looked at.
    for (let x = x0; x < left; x++) {
      if (((pa[row + x]! ^ pb[row + x]!) & RGB_MASK) !== 0) {
        left = x;
        break;
      }
    }
    for (let x = x1 - 1; x > right; x--) {
      if (((pa[row + x]! ^ pb[row + x]!) & RGB_MASK) !== 0) {
        right = x;
        break;
      }
    }
  }
  return { x: left, y: top, w: right - left + 1, h: bottom - top + 1 };
}

/**
 * Compare-on-write, the TS twin of wasm/assembly/diff.ts diffRect (rfb-codecs.md §9.3). After a decoder
 * wrote the rect (x, y, w, h) of `current`, compares the parts of the framebuffer's 64×64 blocks (the grid
 * from (0, 0)) that lie inside the rect against `previous`; pixels outside the rect were not written and are
 * not compared. Returns one rect per changed block, trimmed to the bounding box of its differing pixels
 * (R, G, B only), in block order (row-major), and copies each returned rect from `current` into `previous`,
 * so `previous` changes exactly inside the returned rects and a second call returns [].
 * Throws RfbError RECT_OUT_OF_BOUNDS for a rect outside width × height (each dimension on its own),
 * BAD_FRAMEBUFFER_SIZE for frames shorter than width × height × 4. Frames at a byteOffset that is not a
 * multiple of 4 are compared through a copy (pixelWords) and still brought forward in place; the session
 * framebuffers (TsKernels) are always aligned.
 */
export function diffRectTs(
  current: Uint8Array,
  previous: Uint8Array,
  width: number,
  height: number,
  x: number,
  y: number,
  w: number,
  h: number,
): DiffRect[] {
  if (!(x >= 0 && y >= 0 && w >= 0 && h >= 0 && x <= width - w && y <= height - h)) {
    throw new RfbError("RECT_OUT_OF_BOUNDS", `diff rect ${w}x${h} at ${x},${y} in ${width}x${height}`);
  }
  const pixels = width * height;
  if (current.length < pixels * 4 || previous.length < pixels * 4) {
    throw new RfbError("BAD_FRAMEBUFFER_SIZE", `diff rect: ${width}×${height} frames are too short`);
  }
  const rects: DiffRect[] = [];
  if (w === 0 || h === 0) return rects;
  const pa = pixelWords(current, pixels);
  const pb = pixelWords(previous, pixels);
  const x1 = x + w;
  const y1 = y + h;
  // The rect's part of each block column it touches: columns [lefts[c], rights[c]).
  const lefts: number[] = [];
  const rights: number[] = [];
  for (let left = x; left < x1; left = rights[rights.length - 1]!) {
    lefts.push(left);
    rights.push(Math.min((Math.floor(left / DIFF_BLOCK_SIZE) + 1) * DIFF_BLOCK_SIZE, x1));
  }
  const cols = lefts.length;
  const top = new Int32Array(cols);
  for (let y0 = y; y0 < y1; ) {
    const yEnd = Math.min((Math.floor(y0 / DIFF_BLOCK_SIZE) + 1) * DIFF_BLOCK_SIZE, y1);
    // Strip order, as TsFrameDiffer: whole rows of the strip, a block column dropping out at its first
    // changed row (kept in top[]).
    top.fill(-1);
    let pending = cols;
    for (let row = y0; row < yEnd && pending > 0; row++) {
      const start = row * width;
      for (let c = 0; c < cols; c++) {
        if (top[c] === -1 && rowDiffers(pa, pb, start + lefts[c]!, start + rights[c]!)) {
          top[c] = row;
          pending--;
        }
      }
    }
    for (let c = 0; c < cols; c++) {
      const first = top[c]!;
      if (first === -1) continue;
      const rect = trimBlock(pa, pb, width, lefts[c]!, rights[c]!, first, yEnd);
      rects.push(rect);
      for (let row = rect.y; row < rect.y + rect.h; row++) {
        const start = (row * width + rect.x) * 4;
        previous.set(current.subarray(start, start + rect.w * 4), start);
      }
    }
    y0 = yEnd;
  }
  return rects;
}
