// The relay's framebuffer: canonical format (relay/rfb/pixel-format.ts CANONICAL_FORMAT), 4 bytes per pixel,
// bytes R,G,B,X, rows packed (stride = width * 4). Sized through the checked helper.

import { checkedPixels } from "../util/checked.ts";

export class Framebuffer {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
  /** The same bytes as whole pixels (little-endian: R in the low byte, X in the high byte), rows packed. */
  readonly px: Uint32Array;

  constructor(width: number, height: number, maxBytes: number = 16384 * 16384 * 4) {
    this.width = width;
    this.height = height;
    this.data = new Uint8Array(checkedPixels(width, height, 4, maxBytes, "framebuffer"));
    this.px = new Uint32Array(this.data.buffer, 0, width * height);
  }

  get stride(): number {
    return this.width * 4;
  }

  /** Fills a rect (already bounds-checked by the caller) with one RGB colour. */
  fill(x: number, y: number, w: number, h: number, r: number, g: number, b: number): void {
    const px = (r & 0xff) | ((g & 0xff) << 8) | ((b & 0xff) << 16);
    for (let row = y; row < y + h; row++) this.px.fill(px, row * this.width + x, row * this.width + x + w);
  }

  /** Copies a rect within the framebuffer (CopyRect semantics: overlapping source and destination are fine). */
  copyRect(sx: number, sy: number, dx: number, dy: number, w: number, h: number): void {
    const s = this.stride;
    const rowBytes = w * 4;
    if (dy > sy) {
      for (let r = h - 1; r >= 0; r--)
        this.data.copyWithin((dy + r) * s + dx * 4, (sy + r) * s + sx * 4, (sy + r) * s + sx * 4 + rowBytes);
    } else {
      for (let r = 0; r < h; r++)
        this.data.copyWithin((dy + r) * s + dx * 4, (sy + r) * s + sx * 4, (sy + r) * s + sx * 4 + rowBytes);
    }
  }

  /** A copy of a rect's canonical bytes, rows packed. */
  readRect(x: number, y: number, w: number, h: number): Uint8Array {
    const out = new Uint8Array(w * h * 4);
    for (let r = 0; r < h; r++) {
      out.set(
        this.data.subarray((y + r) * this.stride + x * 4, (y + r) * this.stride + (x + w) * 4),
        r * w * 4,
      );
    }
    return out;
  }

  /** Writes packed canonical rows into a rect. */
  writeRect(x: number, y: number, w: number, h: number, src: Uint8Array): void {
    for (let r = 0; r < h; r++) {
      this.data.set(src.subarray(r * w * 4, (r + 1) * w * 4), (y + r) * this.stride + x * 4);
    }
  }
}
