// CodecKernels over the WASM codec core (wasm/assembly/): one core instance per session, the session
// framebuffer in its FB_A. Each call copies its input into IN with one set() (STYLE.md "The WASM
// boundary": one call per rect, only numbers cross), calls one export, maps a negative result to the
// RfbError it stands for, and copies encoder output out of OUT once.

import * as E from "../../wasm/assembly/errors.ts";
import {
  type CodecCore,
  type CoreBuild,
  type LoadOptions,
  loadCodecCore,
  type PixelFormatArgs,
} from "../../wasm/loader.ts";
import { RfbError, type RfbErrorCode } from "../rfb/errors.ts";
import { type PixelFormat, validatePixelFormat } from "../rfb/pixel-format.ts";
import type { DiffRect } from "./diff.ts";
import type { CodecKernels } from "./kernels.ts";
import { createWasmTightKernels, type TightEncodeKernels } from "./tight-encode-kernels.ts";

const CORE_ERRORS = new Map<number, RfbErrorCode>([
  [E.E_NEED_MORE, "BAD_RECT"],
  [E.E_BAD_DIMENSIONS, "BAD_FRAMEBUFFER_SIZE"],
  [E.E_TOO_LARGE, "LIMIT_EXCEEDED"],
  [E.E_BAD_REGION, "INTERNAL"],
  [E.E_OUT_OF_BOUNDS, "RECT_OUT_OF_BOUNDS"],
  [E.E_TRUNCATED, "BAD_RECT"],
  [E.E_TRAILING, "BAD_RECT"],
  [E.E_BAD_DATA, "BAD_RECT"],
  [E.E_BAD_PALETTE, "BAD_RECT"],
  [E.E_BAD_FORMAT, "BAD_PIXEL_FORMAT"],
  [E.E_UNSUPPORTED, "UNSUPPORTED"],
]);

const CORE_ERROR_NAMES = new Map<number, string>(
  Object.entries(E).map(([name, value]) => [value, name.slice(2).toLowerCase().replaceAll("_", " ")]),
);

/** A kernel result, or the RfbError its code stands for. */
export function checkedResult(result: number, what: string): number {
  if (result >= 0) return result;
  const code = CORE_ERRORS.get(result) ?? "CODEC_ERROR";
  throw new RfbError(code, `${what}: ${CORE_ERROR_NAMES.get(result) ?? `codec core returned ${result}`}`);
}

/**
 * One copy of the first n bytes of a region that the caller owns (it may go to many sockets while the
 * core is reused: STYLE.md "The WASM boundary"). Into uninitialised, unpooled memory that the copy
 * overwrites whole: the steadiest of the copies measured from a WASM memory, ~1 ms per 8 MB frame with a
 * p90 of 1.3 ms, where TypedArray.slice and ArrayBuffer.slice swung between 1 and 5 ms (GC of large
 * buffers; bench/RESULTS.md "Codec core").
 */
export function copyOut(region: Uint8Array, n: number): Uint8Array {
  const out = Buffer.allocUnsafeSlow(n);
  out.set(region.subarray(0, n));
  return new Uint8Array(out.buffer, out.byteOffset, n);
}

/** The ten numbers setInputFormat / setOutputFormat take, after the host's own validation. */
export function pixelFormatArgs(pf: PixelFormat): PixelFormatArgs {
  validatePixelFormat(pf);
  if (!pf.trueColour)
    throw new RfbError("UNSUPPORTED", "colour-mapped pixel formats are not decoded or encoded");
  return [
    pf.bitsPerPixel,
    pf.depth,
    pf.bigEndian ? 1 : 0,
    pf.trueColour ? 1 : 0,
    pf.redMax,
    pf.greenMax,
    pf.blueMax,
    pf.redShift,
    pf.greenShift,
    pf.blueShift,
  ];
}

/**
 * The core takes i32 arguments: a JS number outside 0…2^31−1 (or not an integer) would wrap into a valid
 * one, so geometry is checked here first, with the code the TS twin gives for the same call.
 */
function checkGeometry(...values: number[]): void {
  for (const v of values) {
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
      throw new RfbError("RECT_OUT_OF_BOUNDS", `rect coordinate ${v} is not an integer in 0…2^31−1`);
    }
  }
}

export class WasmKernels implements CodecKernels {
  readonly name: string;
  readonly core: CodecCore;
  readonly tight: TightEncodeKernels;
  #width = 0;
  #height = 0;

  constructor(core: CodecCore) {
    this.core = core;
    this.name = `wasm-${core.build}`;
    this.tight = createWasmTightKernels(core);
  }

  get width(): number {
    return this.#width;
  }

  get height(): number {
    return this.#height;
  }

  resize(width: number, height: number): void {
    checkedResult(this.core.fn.setFramebuffer(width, height), `framebuffer ${width}x${height}`);
    this.#width = width;
    this.#height = height;
  }

  setInputFormat(pf: PixelFormat): void {
    checkedResult(this.core.fn.setInputFormat(...pixelFormatArgs(pf)), "input pixel format");
  }

  setOutputFormat(pf: PixelFormat): void {
    checkedResult(this.core.fn.setOutputFormat(...pixelFormatArgs(pf)), "output pixel format");
  }

  pixels(): Uint8Array {
    return this.core.region("FB_A").subarray(0, this.#width * this.#height * 4);
  }

  inputArea(size: number): Uint8Array | null {
    const region = this.core.region("IN");
    return size <= region.length ? region.subarray(0, size) : null;
  }

  /**
   * Puts one input into IN and returns its length; the region's size is the cap (the 8 Mpx budget plus
   * slack). Input already at the start of IN (inflated there through inputArea) is not copied.
   */
  #input(data: Uint8Array, what: string): number {
    const region = this.core.region("IN");
    if (data.buffer === region.buffer && data.byteOffset === region.byteOffset) return data.length;
    if (data.length > region.length) {
      throw new RfbError(
        "LIMIT_EXCEEDED",
        `${what}: ${data.length} bytes of input exceed the core's ${region.length}`,
      );
    }
    region.set(data);
    return data.length;
  }

  fill(x: number, y: number, w: number, h: number, canonical: number): void {
    checkGeometry(x, y, w, h);
    checkedResult(this.core.fn.fillRect(x, y, w, h, canonical), "fill");
  }

  raw(x: number, y: number, w: number, h: number, data: Uint8Array): void {
    checkGeometry(x, y, w, h);
    checkedResult(this.core.fn.decodeRaw(x, y, w, h, this.#input(data, "raw")), "raw");
  }

  copyRect(x: number, y: number, w: number, h: number, srcX: number, srcY: number): void {
    checkGeometry(x, y, w, h, srcX, srcY);
    checkedResult(this.core.fn.decodeCopyRect(x, y, w, h, srcX, srcY), "copyrect");
  }

  rre(x: number, y: number, w: number, h: number, data: Uint8Array, compact: boolean): void {
    checkGeometry(x, y, w, h);
    const what = compact ? "corre" : "rre";
    checkedResult(this.core.fn.decodeRre(x, y, w, h, this.#input(data, what), compact ? 1 : 0), what);
  }

  hextile(x: number, y: number, w: number, h: number, data: Uint8Array): void {
    checkGeometry(x, y, w, h);
    checkedResult(this.core.fn.decodeHextile(x, y, w, h, this.#input(data, "hextile")), "hextile");
  }

  zrle(x: number, y: number, w: number, h: number, data: Uint8Array): void {
    checkGeometry(x, y, w, h);
    checkedResult(this.core.fn.decodeZrle(x, y, w, h, this.#input(data, "zrle")), "zrle");
  }

  trle(x: number, y: number, w: number, h: number, data: Uint8Array): void {
    checkGeometry(x, y, w, h);
    checkedResult(this.core.fn.decodeTrle(x, y, w, h, this.#input(data, "trle")), "trle");
  }

  tightCopy(x: number, y: number, w: number, h: number, data: Uint8Array): void {
    checkGeometry(x, y, w, h);
    checkedResult(this.core.fn.decodeTightCopy(x, y, w, h, this.#input(data, "tight")), "tight copy");
  }

  tightPalette(x: number, y: number, w: number, h: number, colours: number, data: Uint8Array): void {
    checkGeometry(x, y, w, h);
    const n = this.#input(data, "tight");
    checkedResult(this.core.fn.decodeTightPalette(x, y, w, h, colours, n), "tight palette");
  }

  tightGradient(x: number, y: number, w: number, h: number, data: Uint8Array): void {
    checkGeometry(x, y, w, h);
    checkedResult(this.core.fn.decodeTightGradient(x, y, w, h, this.#input(data, "tight")), "tight gradient");
  }

  diffRect(x: number, y: number, w: number, h: number): DiffRect[] {
    checkGeometry(x, y, w, h);
    const count = checkedResult(this.core.fn.diffRect(x, y, w, h), "diff");
    const scratch = this.core.region("SCRATCH");
    const words = new Uint32Array(scratch.buffer, scratch.byteOffset, count * 4);
    const rects: DiffRect[] = new Array(count);
    for (let i = 0; i < count; i++) {
      rects[i] = { x: words[i * 4]!, y: words[i * 4 + 1]!, w: words[i * 4 + 2]!, h: words[i * 4 + 3]! };
    }
    return rects;
  }

  #output(n: number): Uint8Array {
    return copyOut(this.core.region("OUT"), n);
  }

  encodeRaw(x: number, y: number, w: number, h: number): Uint8Array {
    checkGeometry(x, y, w, h);
    return this.#output(checkedResult(this.core.fn.encodeRaw(x, y, w, h), "encode raw"));
  }

  encodeHextile(x: number, y: number, w: number, h: number): Uint8Array {
    checkGeometry(x, y, w, h);
    return this.#output(checkedResult(this.core.fn.encodeHextile(x, y, w, h), "encode hextile"));
  }

  encodeZrle(x: number, y: number, w: number, h: number): Uint8Array {
    checkGeometry(x, y, w, h);
    return this.#output(checkedResult(this.core.fn.encodeZrle(x, y, w, h), "encode zrle"));
  }
}

/** Kernels over a fresh core instance of `build` (one per session). */
export async function createWasmKernels(
  build: CoreBuild = "release",
  options: LoadOptions = {},
): Promise<WasmKernels> {
  return new WasmKernels(await loadCodecCore(build, options));
}
