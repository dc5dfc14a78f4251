// Encoding one rect of the session framebuffer for viewers that share (encoding, pixel format, compress
// level): the kernels (WASM core or TS twin) produce the pixel bytes, the runtime's zlib compresses them as
// independent raw-deflate blobs, and the result is an EncodedRect list whose bytes serve every viewer of
// the group (relay/codec/encoded.ts adds each viewer's zlib header). Tight has its own chooser
// (relay/codec/tight-encoder.ts, after TigerVNC's EncodeManager); the others encode the rect whole.

import { Encoding, PseudoEncoding } from "../rfb/constants.ts";
import { RfbError } from "../rfb/errors.ts";
import type { EncodedRect } from "./encoded.ts";
import type { CodecKernels } from "./kernels.ts";
import { encodeTightRect } from "./tight-encoder.ts";
import { deflateRect } from "./zstream.ts";

/** Encodings the relay can send, in its order of preference (rfb-codecs.md §9.1). */
export const ENCODABLE: readonly number[] = [
  Encoding.Tight,
  Encoding.ZRLE,
  Encoding.Hextile,
  Encoding.Zlib,
  Encoding.Raw,
];

export interface EncodeOptions {
  /** The viewer's compression level hint (0–9, from its CompressLevel pseudo-encoding). @default 2 */
  compressLevel?: number;
}

/**
 * zlib level for a compression level: TigerVNC uses the level itself for ZRLE and zlib; Bun's level 1
 * compresses ~24% worse than Node's (rfb-codecs.md §7.1 #2), so 1 is lifted to 2.
 */
export function zlibLevelFor(compressLevel = 2): number {
  if (!Number.isInteger(compressLevel) || compressLevel < 0 || compressLevel > 9) {
    throw new RfbError("INTERNAL", `compress level ${compressLevel}`);
  }
  return compressLevel === 1 ? 2 : compressLevel;
}

/** The compression level a viewer asked for with -256…-247, or undefined. */
export function compressLevelOf(encodings: readonly number[]): number | undefined {
  const hint = encodings.find(
    (e) => e >= PseudoEncoding.CompressLevel0 && e <= PseudoEncoding.CompressLevel9,
  );
  return hint === undefined ? undefined : hint - PseudoEncoding.CompressLevel0;
}

/**
 * The encoding a relay serving many viewers picks from a viewer's list: by our preference (Tight, ZRLE,
 * Hextile, zlib, Raw), so never ZRLE to a client that also offers Tight (rfb-codecs.md §3.1).
 */
export function preferredEncoding(viewer: readonly number[]): number {
  return ENCODABLE.find((e) => viewer.includes(e)) ?? Encoding.Raw;
}

/** The first encoding of the viewer's own list that we can send (what a plain VNC server does), else Raw. */
export function firstSupportedEncoding(viewer: readonly number[]): number {
  return viewer.find((e) => ENCODABLE.includes(e)) ?? Encoding.Raw;
}

/**
 * Encodes the rect (x, y, w, h) of k's framebuffer in k's output format (k.setOutputFormat) as `encoding`.
 * Returns one rect, or several for Tight (solid areas and sub-rects of ≤ 2048 px width).
 */
export function encodeRect(
  k: CodecKernels,
  encoding: number,
  x: number,
  y: number,
  w: number,
  h: number,
  o: EncodeOptions = {},
): EncodedRect[] {
  const level = zlibLevelFor(o.compressLevel);
  const one = (parts: EncodedRect["parts"]): EncodedRect[] => [{ x, y, w, h, encoding, parts }];
  switch (encoding) {
    case Encoding.Raw:
      return one([k.encodeRaw(x, y, w, h)]);
    case Encoding.Hextile:
      return one([k.encodeHextile(x, y, w, h)]);
    case Encoding.Zlib:
      return one([
        { kind: "zlib", stream: 0, data: deflateRect(k.encodeRaw(x, y, w, h), level), length: "u32" },
      ]);
    case Encoding.ZRLE:
      return one([
        { kind: "zlib", stream: 0, data: deflateRect(k.encodeZrle(x, y, w, h), level), length: "u32" },
      ]);
    case Encoding.Tight:
      return encodeTightRect(k, x, y, w, h, { compressLevel: o.compressLevel ?? 2 });
    default:
      throw new RfbError("UNSUPPORTED", `encoding ${encoding} is not one the relay sends`);
  }
}
