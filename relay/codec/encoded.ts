// Encoded rects as the encoders produce them and the session layer sends them. A rect body is a list of
// parts: literal bytes, and zlib parts — a raw-deflate blob that ends in a sync flush (relay/codec/
// zstream.ts deflateRect) on a named stream of the viewer's connection, with the length field the
// encoding wants in front of it. The parts are the same for every viewer with the same format and
// encoding ("encode once per group", rfb-codecs.md §7.1 #4, §9.3): what differs per viewer is only
// whether that viewer's stream has started, i.e. whether the 2-byte zlib header goes in front of the
// blob (and into its length). serializeRect() does that per viewer; nothing else is per viewer.

import { RfbError } from "../rfb/errors.ts";
import { zlibStreamHeader } from "./zstream.ts";

export interface ZlibPart {
  readonly kind: "zlib";
  /** The stream within the encoding: 0 for zlib and ZRLE, 0…3 for Tight. */
  readonly stream: number;
  /** Raw deflate ending in a sync flush. */
  readonly data: Uint8Array;
  /** The length in front of the data: U32 (zlib, ZRLE) or Tight's 1–3 byte compact length. */
  readonly length: "u32" | "compact";
}

export type EncodedPart = Uint8Array | ZlibPart;

export interface EncodedRect {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
  readonly encoding: number;
  readonly parts: readonly EncodedPart[];
}

/** Tight's compact length (rfb-codecs.md §2.8): 7 bits per byte, high bit = more, third byte 8 bits. */
export const MAX_COMPACT_LENGTH = 4194303;

export function compactLength(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > MAX_COMPACT_LENGTH) {
    throw new RfbError("LIMIT_EXCEEDED", `Tight compact length ${n}`);
  }
  if (n < 0x80) return Uint8Array.of(n);
  if (n < 0x4000) return Uint8Array.of((n & 0x7f) | 0x80, n >>> 7);
  return Uint8Array.of((n & 0x7f) | 0x80, ((n >>> 7) & 0x7f) | 0x80, n >>> 14);
}

/** One viewer connection's zlib streams: which have started (had their header sent). */
export class ViewerStreams {
  readonly #started = new Set<number>();
  readonly #level: number;

  /** `level` only sets the header's FLEVEL hint; the blobs carry their own. */
  constructor(level = 6) {
    this.#level = level;
  }

  /** The header to put before the first blob of (encoding, stream), once; then an empty array. */
  headerFor(encoding: number, stream: number): Uint8Array {
    const key = encoding * 4 + stream;
    if (this.#started.has(key)) return EMPTY;
    this.#started.add(key);
    return zlibStreamHeader(this.#level);
  }
}

const EMPTY = new Uint8Array(0);

/** The rect header and body as this viewer must receive them; marks the viewer's streams as started. */
export function serializeRect(rect: EncodedRect, streams: ViewerStreams): Uint8Array {
  const pieces: Uint8Array[] = [];
  const header = new Uint8Array(12);
  const dv = new DataView(header.buffer);
  dv.setUint16(0, rect.x);
  dv.setUint16(2, rect.y);
  dv.setUint16(4, rect.w);
  dv.setUint16(6, rect.h);
  dv.setInt32(8, rect.encoding);
  pieces.push(header);
  for (const part of rect.parts) {
    if (part instanceof Uint8Array) {
      pieces.push(part);
      continue;
    }
    const zhead = streams.headerFor(rect.encoding, part.stream);
    const n = zhead.length + part.data.length;
    if (part.length === "u32") {
      const len = new Uint8Array(4);
      new DataView(len.buffer).setUint32(0, n);
      pieces.push(len);
    } else {
      pieces.push(compactLength(n));
    }
    pieces.push(zhead, part.data);
  }
  let total = 0;
  for (const p of pieces) total += p.length;
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of pieces) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
