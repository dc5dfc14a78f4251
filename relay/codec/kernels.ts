// The codec kernels: every hot path of the codecs behind one interface, implemented twice — by the WASM
// codec core (relay/codec/wasm-kernels.ts over wasm/assembly/) and by an idiomatic pure-TS twin
// (relay/codec/ts-kernels.ts) — so one case suite runs against the TS twin, the WASM debug build and the
// WASM release build (test/codec/kernels.cases.ts). One instance per session: it owns the session
// framebuffer (canonical R,G,B,X, X always 0, rows packed), which decoders write and encoders read.
//
// Kernels take what the wire carries after framing and inflating: the zlib streams and the Tight header
// live in the host (relay/codec/decoder.ts, relay/codec/tight.ts), shared by both implementations.
// Every method throws an RfbError on bad input and never writes outside its rect.

import { RfbError } from "../rfb/errors.ts";
import type { PixelFormat } from "../rfb/pixel-format.ts";
import type { DiffRect } from "./diff.ts";
import type { TightEncodeKernels } from "./tight-encode-kernels.ts";
import type { Inflater } from "./zstream.ts";

export interface CodecKernels {
  /** "ts", "wasm-debug" or "wasm-release". */
  readonly name: string;
  readonly width: number;
  readonly height: number;
  /** A new framebuffer size; every pixel black (0). Throws BAD_FRAMEBUFFER_SIZE / LIMIT_EXCEEDED. */
  resize(width: number, height: number): void;
  /** The device's pixel format (decoder input). Throws BAD_PIXEL_FORMAT for one the kernels cannot read. */
  setInputFormat(pf: PixelFormat): void;
  /** The viewer's pixel format (encoder output). */
  setOutputFormat(pf: PixelFormat): void;
  /** The whole framebuffer, canonical, rows packed: a view, valid until the next call on this instance. */
  pixels(): Uint8Array;
  /**
   * Where the decoders read their input, when it is memory of their own (the WASM core's IN region): a view
   * of its first `size` bytes that a host may fill (inflate into) and pass back as a decoder's `data`
   * without a copy; null when there is no such place (the TS twin) or it is smaller than `size`.
   */
  inputArea(size: number): Uint8Array | null;

  // ---- decoders: write one rect of the framebuffer ----
  /** Solid rect; `canonical` = R | G << 8 | B << 16. */
  fill(x: number, y: number, w: number, h: number, canonical: number): void;
  /** Raw: exactly w × h input pixels. */
  raw(x: number, y: number, w: number, h: number, data: Uint8Array): void;
  copyRect(x: number, y: number, w: number, h: number, srcX: number, srcY: number): void;
  /** RRE (compact = false) or CoRRE (true): the whole framed body. */
  rre(x: number, y: number, w: number, h: number, data: Uint8Array, compact: boolean): void;
  /** Hextile: the whole framed body. */
  hextile(x: number, y: number, w: number, h: number, data: Uint8Array): void;
  /** ZRLE: this rect's inflated tile data (64×64 tiles), exactly. */
  zrle(x: number, y: number, w: number, h: number, data: Uint8Array): void;
  /** TRLE: the whole body (16×16 tiles, no zlib). */
  trle(x: number, y: number, w: number, h: number, data: Uint8Array): void;
  /** Tight Basic, copy filter: w × h TPIXELs (inflated when ≥ 12 bytes). */
  tightCopy(x: number, y: number, w: number, h: number, data: Uint8Array): void;
  /** Tight Basic, palette filter: `colours` TPIXELs, then the indices (1 bit/px, rows byte-aligned, for 2). */
  tightPalette(x: number, y: number, w: number, h: number, colours: number, data: Uint8Array): void;
  /** Tight Basic, gradient filter: w × h filtered TPIXELs. */
  tightGradient(x: number, y: number, w: number, h: number, data: Uint8Array): void;

  // ---- frame diff ----
  /**
   * Compare-on-write: after decoders wrote (x, y, w, h), the changed parts of the 64×64 blocks it touches
   * against the previous frame, one rect per changed block trimmed to its differing pixels; the previous
   * frame is brought forward so the next call compares against this one.
   */
  diffRect(x: number, y: number, w: number, h: number): DiffRect[];

  // ---- encoders: read one rect of the framebuffer, return a fresh copy the caller owns ----
  /** Raw in the output format. */
  encodeRaw(x: number, y: number, w: number, h: number): Uint8Array;
  /** Hextile body in the output format. */
  encodeHextile(x: number, y: number, w: number, h: number): Uint8Array;
  /** ZRLE tile data (64×64 tiles) in the output format, before zlib. */
  encodeZrle(x: number, y: number, w: number, h: number): Uint8Array;
  /** Tight encoder kernels (palette analysis, filters, solid search). */
  readonly tight: TightEncodeKernels;
}

/** RECT_OUT_OF_BOUNDS unless the rect lies inside a width × height framebuffer, each dimension on its own. */
export function checkRectInside(
  x: number,
  y: number,
  w: number,
  h: number,
  width: number,
  height: number,
): void {
  if (x < 0 || y < 0 || w < 0 || h < 0 || x > width - w || y > height - h) {
    throw new RfbError("RECT_OUT_OF_BOUNDS", `rect ${w}x${h} at ${x},${y} in ${width}x${height}`);
  }
}

/**
 * Inflates one rect's data under the cap `maxOut`, straight into the kernels' input area when they have
 * one (the WASM core: no copy between zlib and the kernel), else into a new array.
 */
export function inflateForKernels(
  k: CodecKernels,
  inflater: Inflater,
  data: Uint8Array,
  maxOut: number,
  prefix?: Uint8Array,
): Uint8Array {
  const offset = prefix?.length ?? 0;
  const area = k.inputArea(offset + maxOut + 1);
  if (!area) {
    const out = inflater.inflate(data, maxOut);
    if (!prefix) return out;
    const joined = new Uint8Array(offset + out.length);
    joined.set(prefix);
    joined.set(out, offset);
    return joined;
  }
  if (prefix) area.set(prefix);
  const n = inflater.inflateInto(data, area.subarray(offset), maxOut);
  return area.subarray(0, offset + n);
}
