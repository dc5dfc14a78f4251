// The pure-TS twin of the codec core: CodecKernels over a Framebuffer, each method an idiomatic TS
// function in its encoding's file (relay/codec/<encoding>.ts). It is the baseline the WASM core is
// measured against and the reference the shared case suite holds both to: same pixels, same output
// bytes, same RfbError codes.

import { RfbError } from "../rfb/errors.ts";
import { toCanonical } from "../rfb/pixel-convert.ts";
import { bytesPerPixel, CANONICAL_FORMAT, type PixelFormat } from "../rfb/pixel-format.ts";
import { pixelFormatArgs } from "./wasm-kernels.ts";
import { type DiffRect, diffRectTs } from "./diff.ts";
import { Framebuffer } from "./framebuffer.ts";
import { hextileDecodeTs, hextileEncodeTs } from "./hextile.ts";
import { type CodecKernels, checkRectInside } from "./kernels.ts";
import { rawEncoder } from "./raw.ts";
import { rreDecodeTs } from "./rre.ts";
import { tightCopyTs, tightGradientTs, tightPaletteTs } from "./tight.ts";
import { createTsTightKernels, type TightEncodeKernels } from "./tight-encode-kernels.ts";
import { trleDecodeTs, zrleDecodeTs, zrleEncodeTs } from "./zrle.ts";

const MAX_SIDE = 16384;
const MAX_PIXELS = 8 * 1024 * 1024;

export class TsKernels implements CodecKernels {
  readonly name = "ts";
  readonly tight: TightEncodeKernels;
  fb: Framebuffer = new Framebuffer(1, 1);
  /** The previous frame for compare-on-write. */
  prev: Uint8Array = new Uint8Array(4);
  inputFormat: PixelFormat = CANONICAL_FORMAT;
  outputFormat: PixelFormat = CANONICAL_FORMAT;

  constructor() {
    this.tight = createTsTightKernels(this);
  }

  get width(): number {
    return this.fb.width;
  }

  get height(): number {
    return this.fb.height;
  }

  resize(width: number, height: number): void {
    if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) {
      throw new RfbError("BAD_FRAMEBUFFER_SIZE", `framebuffer ${width}x${height}`);
    }
    if (width * height > MAX_PIXELS) throw new RfbError("LIMIT_EXCEEDED", `framebuffer ${width}x${height}`);
    this.fb = new Framebuffer(width, height);
    this.prev = new Uint8Array(width * height * 4);
  }

  setInputFormat(pf: PixelFormat): void {
    pixelFormatArgs(pf); // the same validation as the core's adapter
    this.inputFormat = { ...pf };
  }

  setOutputFormat(pf: PixelFormat): void {
    pixelFormatArgs(pf);
    this.outputFormat = { ...pf };
  }

  pixels(): Uint8Array {
    return this.fb.data;
  }

  inputArea(): null {
    return null;
  }

  #check(x: number, y: number, w: number, h: number): void {
    checkRectInside(x, y, w, h, this.fb.width, this.fb.height);
  }

  fill(x: number, y: number, w: number, h: number, canonical: number): void {
    this.#check(x, y, w, h);
    this.fb.fill(x, y, w, h, canonical & 0xff, (canonical >>> 8) & 0xff, (canonical >>> 16) & 0xff);
  }

  raw(x: number, y: number, w: number, h: number, data: Uint8Array): void {
    this.#check(x, y, w, h);
    const need = w * h * bytesPerPixel(this.inputFormat);
    if (data.length !== need) {
      throw new RfbError("BAD_RECT", `raw: ${data.length} bytes for ${w}x${h}, need ${need}`);
    }
    const pixels = new Uint8Array(w * h * 4);
    toCanonical(data, this.inputFormat, pixels, w * h);
    for (let i = 3; i < pixels.length; i += 4) pixels[i] = 0;
    this.fb.writeRect(x, y, w, h, pixels);
  }

  copyRect(x: number, y: number, w: number, h: number, srcX: number, srcY: number): void {
    this.#check(x, y, w, h);
    this.#check(srcX, srcY, w, h);
    this.fb.copyRect(srcX, srcY, x, y, w, h);
  }

  rre(x: number, y: number, w: number, h: number, data: Uint8Array, compact: boolean): void {
    this.#check(x, y, w, h);
    rreDecodeTs(this.fb, this.inputFormat, x, y, w, h, data, compact);
  }

  hextile(x: number, y: number, w: number, h: number, data: Uint8Array): void {
    this.#check(x, y, w, h);
    hextileDecodeTs(this.fb, this.inputFormat, x, y, w, h, data);
  }

  zrle(x: number, y: number, w: number, h: number, data: Uint8Array): void {
    this.#check(x, y, w, h);
    zrleDecodeTs(this.fb, this.inputFormat, x, y, w, h, data);
  }

  trle(x: number, y: number, w: number, h: number, data: Uint8Array): void {
    this.#check(x, y, w, h);
    trleDecodeTs(this.fb, this.inputFormat, x, y, w, h, data);
  }

  tightCopy(x: number, y: number, w: number, h: number, data: Uint8Array): void {
    this.#check(x, y, w, h);
    tightCopyTs(this.fb, this.inputFormat, x, y, w, h, data);
  }

  tightPalette(x: number, y: number, w: number, h: number, colours: number, data: Uint8Array): void {
    this.#check(x, y, w, h);
    tightPaletteTs(this.fb, this.inputFormat, x, y, w, h, colours, data);
  }

  tightGradient(x: number, y: number, w: number, h: number, data: Uint8Array): void {
    this.#check(x, y, w, h);
    tightGradientTs(this.fb, this.inputFormat, x, y, w, h, data);
  }

  diffRect(x: number, y: number, w: number, h: number): DiffRect[] {
    this.#check(x, y, w, h);
    return diffRectTs(this.fb.data, this.prev, this.fb.width, this.fb.height, x, y, w, h);
  }

  encodeRaw(x: number, y: number, w: number, h: number): Uint8Array {
    this.#check(x, y, w, h);
    return rawEncoder.encode(this.fb, x, y, w, h, this.outputFormat);
  }

  encodeHextile(x: number, y: number, w: number, h: number): Uint8Array {
    this.#check(x, y, w, h);
    return hextileEncodeTs(this.fb, this.outputFormat, x, y, w, h);
  }

  encodeZrle(x: number, y: number, w: number, h: number): Uint8Array {
    this.#check(x, y, w, h);
    return zrleEncodeTs(this.fb, this.outputFormat, x, y, w, h);
  }
}
