// The session decoder: turns framed rect bodies (relay/rfb/server-messages.ts hands them over complete)
// into pixels of the session framebuffer. It owns what is per upstream connection and shared by both
// kernel implementations — the persistent zlib streams (zlib: one, ZRLE: one, Tight: four with reset
// bits; relay/codec/zstream.ts) and the Tight header parser (relay/codec/tight.ts) — and hands the
// pixel work to CodecKernels (the WASM core or its TS twin). Errors are RfbErrors; a zlib stream that
// failed cannot be resynchronised, so the session must end (bad-inputs.md B "ZRLE length plus tiles").

import { Encoding } from "../rfb/constants.ts";
import { RfbError, toRfbError } from "../rfb/errors.ts";
import { bytesPerPixel, CANONICAL_FORMAT, type PixelFormat } from "../rfb/pixel-format.ts";
import { copyRectSource } from "./copyrect.ts";
import { type CodecKernels, inflateForKernels } from "./kernels.ts";
import { decodeTightBody, TightStreams } from "./tight.ts";
import type { Rect } from "./types.ts";
import { cpixelBytes } from "./zrle.ts";
import { createInflater } from "./zstream.ts";

/** Pseudo-rects never reach the decoder; these are the pixel encodings it decodes. */
export const DECODED_ENCODINGS: readonly number[] = [
  Encoding.Raw,
  Encoding.CopyRect,
  Encoding.RRE,
  Encoding.CoRRE,
  Encoding.Hextile,
  Encoding.Zlib,
  Encoding.TRLE,
  Encoding.ZRLE,
  Encoding.Tight,
];

/** Largest inflated ZRLE rect: per 64×64 tile one subencoding byte, and at worst plain RLE of 1-pixel runs. */
function zrleInflatedBound(w: number, h: number, cpixel: number): number {
  const tiles = Math.ceil(w / 64) * Math.ceil(h / 64);
  return tiles * (1 + 127 * cpixel) + w * h * (cpixel + 1);
}

export class SessionDecoder {
  readonly kernels: CodecKernels;
  #pf: PixelFormat = CANONICAL_FORMAT;
  #zlib = createInflater();
  #zrle = createInflater();
  #tight = new TightStreams();
  /** Rects decoded, for metrics and replay. */
  rects = 0;
  /** The first error: after it the zlib streams and the framebuffer are in an unknown state. */
  #failed: RfbError | null = null;

  constructor(kernels: CodecKernels, width: number, height: number, pf: PixelFormat = CANONICAL_FORMAT) {
    this.kernels = kernels;
    kernels.resize(width, height);
    this.setPixelFormat(pf);
  }

  get pixelFormat(): PixelFormat {
    return this.#pf;
  }

  get width(): number {
    return this.kernels.width;
  }

  get height(): number {
    return this.kernels.height;
  }

  /** The format the device sends (what SetPixelFormat asked for, or ServerInit's). */
  setPixelFormat(pf: PixelFormat): void {
    this.kernels.setInputFormat(pf);
    this.#pf = { ...pf };
  }

  /** A new framebuffer size (DesktopSize / ExtendedDesktopSize, applied between updates); black. */
  resize(width: number, height: number): void {
    this.kernels.resize(width, height);
  }

  /** The canonical framebuffer: a view valid until the next call. */
  pixels(): Uint8Array {
    return this.kernels.pixels();
  }

  /**
   * Decodes one framed body (exactly what the framer measured) into the framebuffer. After the first error
   * (an RfbError, or a trap of the WASM core as INTERNAL) every later call throws it again: there is no
   * resynchronising a zlib stream or a half-written rect, so the session must end.
   */
  decode(rect: Rect, body: Uint8Array): void {
    if (this.#failed) throw this.#failed;
    try {
      this.#decode(rect, body);
    } catch (e) {
      this.#failed = toRfbError(e);
      throw this.#failed;
    }
    this.rects++;
  }

  /** The error that ended this decoder, if any. */
  get failed(): RfbError | null {
    return this.#failed;
  }

  #decode(rect: Rect, body: Uint8Array): void {
    const k = this.kernels;
    const { x, y, w, h } = rect;
    switch (rect.encoding) {
      case Encoding.Raw:
        k.raw(x, y, w, h, body);
        break;
      case Encoding.CopyRect: {
        if (body.length !== 4) throw new RfbError("BAD_RECT", `copyrect body of ${body.length} bytes`);
        const { sx, sy } = copyRectSource(body);
        k.copyRect(x, y, w, h, sx, sy);
        break;
      }
      case Encoding.RRE:
        k.rre(x, y, w, h, body, false);
        break;
      case Encoding.CoRRE:
        k.rre(x, y, w, h, body, true);
        break;
      case Encoding.Hextile:
        k.hextile(x, y, w, h, body);
        break;
      case Encoding.Zlib: {
        // Inflates to exactly a Raw body: a hard cap at the expected size, and a short result is an error.
        const need = w * h * bytesPerPixel(this.#pf);
        const raw = inflateForKernels(k, this.#zlib, lengthPrefixed(body, "zlib"), need);
        if (raw.length !== need)
          throw new RfbError("BAD_RECT", `zlib rect inflated to ${raw.length} of ${need} bytes`);
        k.raw(x, y, w, h, raw);
        break;
      }
      case Encoding.ZRLE: {
        const cpixel = cpixelBytes(this.#pf);
        const tiles = inflateForKernels(
          k,
          this.#zrle,
          lengthPrefixed(body, "zrle"),
          zrleInflatedBound(w, h, cpixel),
        );
        k.zrle(x, y, w, h, tiles);
        break;
      }
      case Encoding.TRLE:
        k.trle(x, y, w, h, body);
        break;
      case Encoding.Tight:
        decodeTightBody(k, this.#tight, this.#pf, rect, body);
        break;
      default:
        throw new RfbError("UNKNOWN_ENCODING", `encoding ${rect.encoding} has no decoder`);
    }
  }
}

/** The data of a `U32 length, data[length]` body; the framer checked the length already, this re-checks. */
function lengthPrefixed(body: Uint8Array, name: string): Uint8Array {
  if (body.length < 4) throw new RfbError("BAD_RECT", `${name} body of ${body.length} bytes`);
  const len = new DataView(body.buffer, body.byteOffset, 4).getUint32(0);
  if (len !== body.length - 4)
    throw new RfbError("BAD_RECT", `${name} length ${len} for ${body.length - 4} bytes`);
  return body.subarray(4);
}
