// The codec kernels: every hot path of the codecs behind one interface, implemented twice — by the WASM
// codec core (relay/codec/wasm-kernels.ts over wasm/assembly/) and by an idiomatic pure-TS twin
// (relay/codec/ts-kernels.ts) — so one case suite runs against the TS twin, the WASM debug build and the
// WASM release build (test/codec/kernels.cases.ts). One instance per session: it owns the session
// framebuffer (canonical R,G,B,X, X always 0, rows packed), which decoders write and encoders read.
//
// Kernels take what the wire carries after framing and inflating: the zlib streams and the Tight header
// live in the host (relay/codec/decoder.ts, relay/codec/tight.ts), shared by both implementations.
// Every method throws an RfbError on bad input and never writes outside its rect.

import type { PixelFormat } from "../rfb/pixel-format.ts";
import type { DiffRect } from "./diff.ts";
import type { TightEncodeKernels } from "./tight-encode-kernels.ts";

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
