// Tight (encoding 7, rfbproto.rst "Tight Encoding"; exact layout and interop traps in
// shared/reference/rfb-codecs.md §2.8). A body is a compression-control byte, then one of:
//   Fill   one TPIXEL for the whole rect;
//   JPEG   a compact length and a JFIF image (refused: the relay never asks for lossy input, §9.2);
//   Basic  an optional filter id (copy, palette with its colours, gradient), then the filtered data: sent
//          as is when under 12 bytes, else a compact length and zlib data on one of four streams that live
//          for the whole connection and restart when their reset bit is set.
// Basic rects wider than the spec's 2048 are accepted (TigerVNC refuses them, noVNC does not): nothing here
// or in the kernels depends on that width, every buffer is sized from the checked w.
// The header is parsed here, once, in TS, for both kernel implementations: parseTightHeader() serves the
// resumable framer (tightCodec, which only needs to know where a body ends) and decodeTightBody(), which
// inflates and hands the pixels to one CodecKernels call. The pixel work is the WASM core
// (wasm/assembly/tight.ts) or the TS twins below (tightCopyTs, tightPaletteTs, tightGradientTs).

import type { ByteQueue } from "../rfb/byte-queue.ts";
import { Encoding } from "../rfb/constants.ts";
import { RfbError } from "../rfb/errors.ts";
import { toCanonical } from "../rfb/pixel-convert.ts";
import { bytesPerPixel, type PixelFormat, readPixel, writePixel } from "../rfb/pixel-format.ts";
import type { Framebuffer } from "./framebuffer.ts";
import { type CodecKernels, checkRectInside, inflateForKernels } from "./kernels.ts";
import { type DecodeContext, NEED_MORE, type Rect, type RectCodec, type RectFramer } from "./types.ts";
import { createInflater, type Inflater } from "./zstream.ts";

/** Compression types: compression-control >> 4 (rfbproto.rst "Tight Encoding"). 0–7 are Basic. */
export const TightCompression = {
  /** One TPIXEL follows. */
  Fill: 8,
  /** Compact length + JFIF; only with a JPEG quality pseudo-encoding, which the relay never sends. */
  Jpeg: 9,
} as const;

/** Basic: bits 4–5 of compression-control = stream id, bit 6 = a filter id follows (here as ctl >> 4). */
const BASIC_STREAM_MASK = 0x03;
const BASIC_EXPLICIT_FILTER = 0x04;
/** Bits 0–3 of compression-control: reset zlib stream n before this rect, even for Fill and JPEG. */
const RESET_MASK = 0x0f;

export const TightFilter = {
  Copy: 0,
  /** U8 colours − 1 (1 … 255), then the palette as TPIXELs. */
  Palette: 1,
  /** Only at 16 and 32 bpp. */
  Gradient: 2,
} as const;

/** Filtered data shorter than this is sent without a length and without zlib. */
export const TIGHT_MIN_TO_COMPRESS = 12;
/** The largest compact length: 7 + 7 + 8 bits. */
export const TIGHT_MAX_COMPACT_LENGTH = 4_194_303;

/** Bytes per TPIXEL: 3 (R, G, B whatever the shifts) for 32 bpp, depth 24, 8-bit channels; else the pixel. */
export function tpixelBytes(pf: PixelFormat): number {
  const is888 =
    pf.trueColour && pf.bitsPerPixel === 32 && pf.redMax === 255 && pf.greenMax === 255 && pf.blueMax === 255;
  return is888 && pf.depth === 24 ? 3 : bytesPerPixel(pf);
}

/** What a body's header says, with the offsets of its parts. */
export interface TightHeader {
  /** The compression-control byte, reset bits included. */
  ctl: number;
  kind: "fill" | "jpeg" | "basic";
  /** Basic: the zlib stream (0–3). */
  stream: number;
  /** Basic: TightFilter.*. */
  filter: number;
  /** Palette filter: 2 … 256; otherwise 0. */
  colours: number;
  /** Offset of the Fill TPIXEL or of the palette's first TPIXEL. */
  pixelsOffset: number;
  /** Basic: bytes of filtered data (before zlib). */
  dataSize: number;
  /** Offset of the raw filtered data, of the zlib data, or of the JPEG data. */
  dataOffset: number;
  /** True when the data is zlib data behind a compact length. */
  compressed: boolean;
  /** The whole body's length. */
  length: number;
}

function badRect(why: string): RfbError {
  return new RfbError("BAD_RECT", `tight: ${why}`);
}

/**
 * A compact length at src[off]: [value, bytes used], or undefined while it is incomplete. Each byte's
 * top bit says another follows; the third byte is all 8 bits, so 4 194 303 is the most it can say.
 */
export function readCompactLength(src: Uint8Array, off: number): [number, number] | undefined {
  if (off >= src.length) return undefined;
  const b0 = src[off]!;
  if ((b0 & 0x80) === 0) return [b0, 1];
  if (off + 1 >= src.length) return undefined;
  const b1 = src[off + 1]!;
  if ((b1 & 0x80) === 0) return [(b0 & 0x7f) | (b1 << 7), 2];
  if (off + 2 >= src.length) return undefined;
  return [(b0 & 0x7f) | ((b1 & 0x7f) << 7) | (src[off + 2]! << 14), 3];
}

/** Bytes of filtered data for a w × h rect: what decides between raw (< 12) and zlib. */
function filteredSize(filter: number, colours: number, w: number, h: number, tpixel: number): number {
  if (filter === TightFilter.Palette) return colours === 2 ? Math.ceil(w / 8) * h : w * h;
  return w * h * tpixel;
}

/**
 * Parses the header at the start of src (a body, or as much of one as has arrived) for a w × h rect in
 * format pf. Returns undefined while more bytes are needed to know the body's length; throws BAD_RECT for
 * an unknown compression type or filter, a palette of one colour, the gradient filter at 8 bpp, and
 * LIMIT_EXCEEDED for a compact length that would make the body longer than maxLength. Reads no byte past
 * the header, so a framer can run it on every call in O(1).
 */
export function parseTightHeader(
  src: Uint8Array,
  pf: PixelFormat,
  w: number,
  h: number,
  maxLength: number,
): TightHeader | undefined {
  if (src.length < 1) return undefined;
  const ctl = src[0]!;
  const type = ctl >> 4;
  const tpixel = tpixelBytes(pf);
  const header: TightHeader = {
    ctl,
    kind: "basic",
    stream: 0,
    filter: TightFilter.Copy,
    colours: 0,
    pixelsOffset: 1,
    dataSize: 0,
    dataOffset: 1,
    compressed: false,
    length: 0,
  };
  if (type === TightCompression.Fill) {
    header.kind = "fill";
    header.length = 1 + tpixel;
    return header;
  }
  if (type === TightCompression.Jpeg) {
    header.kind = "jpeg";
    return withCompactLength(header, src, 1, maxLength);
  }
  // 10 and 14 are Basic without zlib only after the -317 pseudo-encoding, which the relay never sends.
  if (type > 7) throw badRect(`compression type ${type} (control byte 0x${ctl.toString(16)})`);
  header.stream = type & BASIC_STREAM_MASK;
  let off = 1;
  if ((type & BASIC_EXPLICIT_FILTER) !== 0) {
    if (src.length < 2) return undefined;
    header.filter = src[1]!;
    off = 2;
  }
  switch (header.filter) {
    case TightFilter.Copy:
      break;
    case TightFilter.Palette: {
      if (src.length <= off) return undefined;
      header.colours = src[off]! + 1;
      // rfbproto.rst: "1 means 2 colors, 255 means 256": a 1-colour palette is not Tight (that is Fill).
      if (header.colours < 2) throw badRect("a palette of 1 colour");
      off++;
      header.pixelsOffset = off;
      off += header.colours * tpixel;
      break;
    }
    case TightFilter.Gradient:
      if (pf.bitsPerPixel === 8) throw badRect("the gradient filter at 8 bits per pixel");
      break;
    default:
      throw badRect(`filter id ${header.filter}`);
  }
  header.dataSize = filteredSize(header.filter, header.colours, w, h, tpixel);
  if (header.dataSize < TIGHT_MIN_TO_COMPRESS) {
    header.dataOffset = off;
    header.length = off + header.dataSize;
    return header;
  }
  header.compressed = true;
  return withCompactLength(header, src, off, maxLength);
}

/** Completes a header whose data is a compact length at src[off] and that many bytes. */
function withCompactLength(
  header: TightHeader,
  src: Uint8Array,
  off: number,
  maxLength: number,
): TightHeader | undefined {
  const compact = readCompactLength(src, off);
  if (!compact) return undefined;
  const [len, used] = compact;
  header.dataOffset = off + used;
  header.length = header.dataOffset + len;
  // Checked before waiting for the data, so a 4 MiB claim costs nothing (bad-inputs.md B "Tight compact length").
  if (header.length > maxLength) {
    throw new RfbError("LIMIT_EXCEEDED", `tight: ${len} bytes of data, over the ${maxLength}-byte cap`);
  }
  return header;
}

// ---- framing ----

/**
 * Resumable framer: the header is re-read (in O(1): no loops) until it names the body's length, which is
 * then kept, so later calls only compare that length with what has arrived.
 */
class TightFramer implements RectFramer {
  #length = -1;

  constructor(
    private readonly rect: Rect,
    private readonly ctx: DecodeContext,
  ) {}

  measure(q: ByteQueue, base: number): number {
    if (this.#length < 0) {
      const avail = q.length - base;
      if (avail <= 0) return NEED_MORE;
      const header = parseTightHeader(
        q.peek(base, avail),
        this.ctx.pf,
        this.rect.w,
        this.rect.h,
        this.ctx.limits.maxPendingBytes,
      );
      if (!header) return NEED_MORE;
      this.#length = header.length;
    }
    return q.has(base + this.#length) ? this.#length : NEED_MORE;
  }
}

/**
 * Frames Tight rects. No decode(): the four zlib streams belong to the connection, so decoding goes
 * through SessionDecoder (relay/codec/decoder.ts) and decodeTightBody().
 */
export const tightCodec: RectCodec = {
  encoding: Encoding.Tight,
  name: "tight",
  framer(rect: Rect, ctx: DecodeContext): RectFramer {
    return new TightFramer(rect, ctx);
  },
};

// ---- decoding ----

/** The four persistent Tight zlib streams of one upstream connection. */
export class TightStreams {
  readonly streams: readonly Inflater[];

  constructor(make: () => Inflater = createInflater) {
    this.streams = [make(), make(), make(), make()];
  }

  /** Restarts every stream whose bit is set in the low 4 bits of `bits` (compression-control bits 0–3). */
  reset(bits: number): void {
    for (let i = 0; i < 4; i++) if ((bits >> i) & 1) this.streams[i]!.reset();
  }

  stream(id: number): Inflater {
    const s = this.streams[id];
    if (!s) throw new RfbError("INTERNAL", `tight stream ${id}`);
    return s;
  }

  close(): void {
    for (const s of this.streams) s.close();
  }
}

/**
 * Decodes one framed Tight body (exactly what tightCodec measured) into the kernels' framebuffer: resets
 * the streams the control byte names (before anything else, Fill and JPEG included), parses the header,
 * checks the rect against the framebuffer before inflating, inflates with a hard cap at the filtered size
 * (a short result is BAD_RECT), and makes one kernel call. Bytes after the data are BAD_RECT.
 */
export function decodeTightBody(
  k: CodecKernels,
  streams: TightStreams,
  pf: PixelFormat,
  rect: Rect,
  body: Uint8Array,
): void {
  if (body.length === 0) throw badRect("empty body");
  streams.reset(body[0]! & RESET_MASK);
  if (body[0]! >> 4 === TightCompression.Jpeg) {
    throw new RfbError("UNSUPPORTED", "tight: JPEG rect (the relay never asks for lossy input)");
  }
  const { x, y, w, h } = rect;
  const header = parseTightHeader(body, pf, w, h, Number.MAX_SAFE_INTEGER);
  if (!header || header.length > body.length) throw badRect("the body ends inside the rect");
  if (header.length < body.length) throw badRect(`${body.length - header.length} bytes after the rect`);
  if (header.kind === "fill") {
    k.fill(x, y, w, h, tpixelsToCanonical(pf, body.subarray(header.pixelsOffset), 1)[0]!);
    return;
  }
  // Before inflating: the inflate cap is computed from w × h, which only the framebuffer bounds.
  checkRectInside(x, y, w, h, k.width, k.height);
  // The palette kernel takes the palette and the indices as one input: contiguous in the body when raw,
  // and the palette goes in front of the inflated indices otherwise.
  const paletteEnd = header.pixelsOffset + header.colours * tpixelBytes(pf);
  const palette =
    header.filter === TightFilter.Palette ? body.subarray(header.pixelsOffset, paletteEnd) : undefined;
  let data = body.subarray(header.dataOffset);
  if (header.compressed) {
    data = inflateForKernels(k, streams.stream(header.stream), data, header.dataSize, palette);
    const got = data.length - (palette?.length ?? 0);
    if (got !== header.dataSize) throw badRect(`zlib data inflated to ${got} of ${header.dataSize} bytes`);
  }
  switch (header.filter) {
    case TightFilter.Copy:
      k.tightCopy(x, y, w, h, data);
      return;
    case TightFilter.Palette:
      k.tightPalette(
        x,
        y,
        w,
        h,
        header.colours,
        header.compressed ? data : body.subarray(header.pixelsOffset),
      );
      return;
    default:
      // The core works out channel widths through its pixel reader, exact up to 8 bits per channel; a
      // wider channel (a 10-bit format, which no viewer asks for) is un-filtered here, per the spec.
      if (pf.redMax > 255 || pf.greenMax > 255 || pf.blueMax > 255) {
        k.tightCopy(x, y, w, h, unfilterGradient(pf, w, h, data));
      } else {
        k.tightGradient(x, y, w, h, data);
      }
  }
}

// ---- the TS twins of wasm/assembly/tight.ts ----

/** n TPIXELs from the start of src → canonical R | G << 8 | B << 16. */
export function tpixelsToCanonical(pf: PixelFormat, src: Uint8Array, n: number): Uint32Array {
  const out = new Uint32Array(n);
  if (tpixelBytes(pf) === 3) {
    for (let i = 0, s = 0; i < n; i++, s += 3) out[i] = src[s]! | (src[s + 1]! << 8) | (src[s + 2]! << 16);
    return out;
  }
  // A TPIXEL that is a PIXEL: the shared translator, then X cleared (a same-layout copy keeps padding).
  toCanonical(src, pf, new Uint8Array(out.buffer), n);
  for (let i = 0; i < n; i++) out[i]! &= 0xffffff;
  return out;
}

function expectLength(what: string, data: Uint8Array, need: number): void {
  if (data.length !== need) throw badRect(`${what}: ${data.length} bytes, need ${need}`);
}

/** Copy filter: w × h TPIXELs, rows packed. The caller checked the rect. */
export function tightCopyTs(
  fb: Framebuffer,
  pf: PixelFormat,
  x: number,
  y: number,
  w: number,
  h: number,
  data: Uint8Array,
): void {
  expectLength("copy", data, w * h * tpixelBytes(pf));
  const colours = tpixelsToCanonical(pf, data, w * h);
  const px = fb.px;
  for (let row = 0; row < h; row++) {
    px.set(colours.subarray(row * w, (row + 1) * w), (y + row) * fb.width + x);
  }
}

/**
 * Palette filter: `colours` TPIXELs (2 … 256), then the indices, 1 bit per pixel (most significant bit
 * leftmost, rows byte-aligned) for 2 colours, else 1 byte. Every index is checked before the first write.
 */
export function tightPaletteTs(
  fb: Framebuffer,
  pf: PixelFormat,
  x: number,
  y: number,
  w: number,
  h: number,
  colours: number,
  data: Uint8Array,
): void {
  if (!Number.isInteger(colours) || colours < 2 || colours > 256) {
    throw badRect(`a palette of ${colours} colours`);
  }
  const paletteBytes = colours * tpixelBytes(pf);
  const rowBytes = colours === 2 ? Math.ceil(w / 8) : w;
  expectLength("palette", data, paletteBytes + rowBytes * h);
  const palette = tpixelsToCanonical(pf, data, colours);
  const indices = data.subarray(paletteBytes);
  if (colours > 2) {
    const bad = indices.findIndex((i) => i >= colours);
    if (bad >= 0) throw badRect(`palette index ${indices[bad]} of ${colours} colours`);
  }
  const px = fb.px;
  for (let row = 0; row < h; row++) {
    const line = indices.subarray(row * rowBytes, (row + 1) * rowBytes);
    const o = (y + row) * fb.width + x;
    for (let col = 0; col < w; col++) {
      const index = colours === 2 ? (line[col >> 3]! >> (7 - (col & 7))) & 1 : line[col]!;
      px[o + col] = palette[index]!;
    }
  }
}

/** Gradient filter (16 and 32 bpp): un-filtered to plain TPIXELs, then copied. */
export function tightGradientTs(
  fb: Framebuffer,
  pf: PixelFormat,
  x: number,
  y: number,
  w: number,
  h: number,
  data: Uint8Array,
): void {
  if (pf.bitsPerPixel === 8) throw badRect("the gradient filter at 8 bits per pixel");
  expectLength("gradient", data, w * h * tpixelBytes(pf));
  tightCopyTs(fb, pf, x, y, w, h, unfilterGradient(pf, w, h, data));
}

/**
 * Undoes the gradient filter (rfbproto.rst "GradientFilter"): per channel, V = D + P mod (MAX + 1) with
 * P = V[x−1] + V[y−1] − V[x−1, y−1] clamped to [0, MAX], pixels outside the rect 0. Returns TPIXELs in
 * the same layout as `data`. The arithmetic runs in each channel's own range, as the encoders that send
 * this filter compute it (TightVNC, LibVNCServer); the bits of a 16/32-bit pixel that no channel uses
 * come out 0.
 */
export function unfilterGradient(pf: PixelFormat, w: number, h: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length);
  if (tpixelBytes(pf) === 3) {
    // Bytes R, G, B: every channel 8 bits, and a Uint8Array store is the mod 256.
    const stride = w * 3;
    for (let row = 0; row < h; row++) {
      for (let col = 0; col < w; col++) {
        for (let c = 0, i = row * stride + col * 3; c < 3; c++, i++) {
          const left = col > 0 ? out[i - 3]! : 0;
          const up = row > 0 ? out[i - stride]! : 0;
          const upLeft = col > 0 && row > 0 ? out[i - stride - 3]! : 0;
          out[i] = data[i]! + Math.min(Math.max(left + up - upLeft, 0), 255);
        }
      }
    }
    return out;
  }
  const channels = [
    { max: pf.redMax, shift: pf.redShift },
    { max: pf.greenMax, shift: pf.greenShift },
    { max: pf.blueMax, shift: pf.blueShift },
  ];
  const bpp = bytesPerPixel(pf);
  // Channel values of the previous row and of this one, three per column.
  let above = new Uint32Array(w * 3);
  let current = new Uint32Array(w * 3);
  for (let row = 0, off = 0; row < h; row++) {
    for (let col = 0; col < w; col++, off += bpp) {
      const d = readPixel(pf, data, off);
      let v = 0;
      for (let c = 0; c < 3; c++) {
        const { max, shift } = channels[c]!;
        const j = col * 3 + c;
        const left = col > 0 ? current[j - 3]! : 0;
        const upLeft = col > 0 ? above[j - 3]! : 0;
        const p = Math.min(Math.max(left + above[j]! - upLeft, 0), max);
        const value = (Math.floor(d / 2 ** shift) + p) & max;
        current[j] = value;
        v += value * 2 ** shift;
      }
      writePixel(pf, out, off, v);
    }
    [above, current] = [current, above];
  }
  return out;
}
