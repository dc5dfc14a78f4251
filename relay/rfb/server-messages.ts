// Reads server→client messages (the relay as an RFB client of a device). Resumable: next() returns one
// whole message, or null when more bytes are needed, and never consumes part of a unit. A
// FramebufferUpdate comes out as a start event, one event per rect (header and body consumed together),
// and an end event, so a large update never has to be buffered whole.

import type { CodecRegistry } from "../codec/registry.ts";
import { defaultRegistry } from "../codec/registry.ts";
import { NEED_MORE, type Rect, type RectFramer } from "../codec/types.ts";
import type { ByteQueue } from "./byte-queue.ts";
import { Encoding, LAST_RECT_COUNT, PseudoEncoding, RECT_HEADER_LENGTH, ServerMsg } from "./constants.ts";
import { RfbError } from "./errors.ts";
import type { RfbLimits } from "./limits.ts";
import { readCutText, readFence } from "./shared-messages.ts";
import type { PixelFormat } from "./pixel-format.ts";
import { FRAMED_PSEUDO, type Screen, checkFramebufferSize, measurePseudo, readScreens } from "./pseudo.ts";

export type ServerMessage =
  | { type: "FramebufferUpdateStart"; rects: number }
  | { type: "Rect"; rect: Rect; body: Uint8Array }
  | { type: "DesktopSize"; width: number; height: number }
  | {
      type: "ExtendedDesktopSize";
      reason: number;
      status: number;
      width: number;
      height: number;
      screens: Screen[];
    }
  | {
      type: "Cursor";
      hotX: number;
      hotY: number;
      width: number;
      height: number;
      pixels: Uint8Array;
      mask: Uint8Array;
    }
  | { type: "DesktopName"; name: string }
  | { type: "FramebufferUpdateEnd" }
  | { type: "SetColourMapEntries"; first: number; colours: [number, number, number][] }
  | { type: "Bell" }
  /** text is null when the peer sent more than maxCutText: the bytes were skipped, never stored. */
  | { type: "ServerCutText"; text: Uint8Array | null; length: number }
  | { type: "EndOfContinuousUpdates" }
  | { type: "ServerFence"; flags: number; payload: Uint8Array };

export interface ServerReaderOptions {
  limits: RfbLimits;
  /** Pixel format the server sends in (the one we set). */
  pf: PixelFormat;
  width: number;
  height: number;
  /** Encodings and pseudo-encodings we asked for: anything else in a rect header is an error. */
  encodings: ReadonlySet<number>;
  codecs?: CodecRegistry;
}

export class ServerMessageReader {
  pf: PixelFormat;
  width: number;
  height: number;
  encodings: ReadonlySet<number>;
  private readonly limits: RfbLimits;
  private readonly codecs: CodecRegistry;
  /** Rects left in the current update; -1 outside an update; LAST_RECT_COUNT streams until LastRect. */
  private rectsLeft = -1;
  private rectFramer: { rect: Rect; framer: RectFramer | null } | null = null;
  /** Rects and pixels of the current update so far (the work budget: limits maxUpdateRects/Pixels). */
  private updateRects = 0;
  private updatePixels = 0;
  /** Bytes of an oversized cut text still to discard. */

  constructor(o: ServerReaderOptions) {
    this.limits = o.limits;
    this.pf = o.pf;
    this.width = o.width;
    this.height = o.height;
    this.encodings = o.encodings;
    this.codecs = o.codecs ?? defaultRegistry;
  }

  /** True while inside a FramebufferUpdate (SetPixelFormat must wait until it ends). */
  get inUpdate(): boolean {
    return this.rectsLeft >= 0;
  }

  next(q: ByteQueue): ServerMessage | null {
    if (this.rectsLeft >= 0) return this.nextRect(q);
    if (!q.has(1)) return null;
    const type = q.u8(0);
    switch (type) {
      case ServerMsg.FramebufferUpdate: {
        if (!q.has(4)) return null;
        const n = q.u16(2);
        q.skip(4);
        this.rectsLeft = n; // 0: an empty update; the next call reports its end
        this.updateRects = 0;
        this.updatePixels = 0;
        return { type: "FramebufferUpdateStart", rects: n };
      }
      case ServerMsg.SetColourMapEntries: {
        if (!q.has(6)) return null;
        const first = q.u16(2);
        const n = q.u16(4);
        const entries = 1 << Math.min(this.pf.depth, 8);
        if (this.pf.trueColour || first + n > entries) {
          throw new RfbError(
            "BAD_COLOUR_MAP",
            `first ${first} + ${n} entries, true-colour ${this.pf.trueColour}`,
          );
        }
        if (!q.has(6 + n * 6)) return null;
        const colours: [number, number, number][] = [];
        for (let i = 0; i < n; i++) colours.push([q.u16(6 + i * 6), q.u16(8 + i * 6), q.u16(10 + i * 6)]);
        q.skip(6 + n * 6);
        return { type: "SetColourMapEntries", first, colours };
      }
      case ServerMsg.Bell:
        q.skip(1);
        return { type: "Bell" };
      case ServerMsg.ServerCutText: {
        const m = readCutText(q, this.limits.maxCutText);
        return m && { type: "ServerCutText", ...m };
      }
      case ServerMsg.EndOfContinuousUpdates:
        q.skip(1);
        return { type: "EndOfContinuousUpdates" };
      case ServerMsg.ServerFence: {
        const m = readFence(q, this.limits.maxFence);
        return m && { type: "ServerFence", ...m };
      }
      default:
        throw new RfbError("UNKNOWN_MESSAGE", `server message type ${type}`);
    }
  }

  private endUpdate(): ServerMessage {
    this.rectsLeft = -1;
    this.rectFramer = null;
    return { type: "FramebufferUpdateEnd" };
  }

  private nextRect(q: ByteQueue): ServerMessage | null {
    if (this.rectsLeft === 0) return this.endUpdate();
    if (!q.has(RECT_HEADER_LENGTH)) return null;
    let cur = this.rectFramer;
    if (cur === null) {
      const rect: Rect = { x: q.u16(0), y: q.u16(2), w: q.u16(4), h: q.u16(6), encoding: q.s32(8) };
      cur = { rect, framer: this.admit(rect) };
      this.rectFramer = cur;
    }
    const { rect, framer } = cur;
    const n = framer
      ? framer.measure(q, RECT_HEADER_LENGTH)
      : measurePseudo(q, RECT_HEADER_LENGTH, rect, this.pf, this.limits);
    if (n === NEED_MORE) return null;
    q.skip(RECT_HEADER_LENGTH);
    const body = q.take(n);
    this.rectFramer = null;
    if (this.rectsLeft !== LAST_RECT_COUNT) this.rectsLeft--;
    return this.pseudoMessage(rect, body) ?? { type: "Rect", rect, body };
  }

  /** Validates a rect header; returns the codec's framer for real encodings, null for pseudo-encodings. */
  private admit(rect: Rect): RectFramer | null {
    const enc = rect.encoding;
    // The work budget of one update, before anything of this rect is read (bad-inputs.md B: 65535 cheap
    // rects repeated, or a LastRect stream that never ends).
    if (enc !== PseudoEncoding.LastRect && ++this.updateRects > this.limits.maxUpdateRects) {
      throw new RfbError("LIMIT_EXCEEDED", `more than ${this.limits.maxUpdateRects} rects in one update`);
    }
    if (FRAMED_PSEUDO.has(enc)) {
      if (enc !== PseudoEncoding.LastRect && !this.encodings.has(enc)) {
        throw new RfbError("UNKNOWN_ENCODING", `pseudo-encoding ${enc} was not negotiated`);
      }
      return null;
    }
    const codec = this.codecs.get(enc);
    if (!codec || (enc !== Encoding.Raw && !this.encodings.has(enc))) {
      throw new RfbError("UNKNOWN_ENCODING", `encoding ${enc} was not negotiated`);
    }
    if (rect.x + rect.w > this.width || rect.y + rect.h > this.height) {
      throw new RfbError(
        "RECT_OUT_OF_BOUNDS",
        `${rect.w}x${rect.h}+${rect.x}+${rect.y} in ${this.width}x${this.height}`,
      );
    }
    this.updatePixels += rect.w * rect.h;
    if (this.updatePixels > this.limits.maxUpdatePixels) {
      throw new RfbError(
        "LIMIT_EXCEEDED",
        `rects of one update cover more than ${this.limits.maxUpdatePixels} px`,
      );
    }
    return codec.framer(rect, { pf: this.pf, limits: this.limits });
  }

  private pseudoMessage(rect: Rect, body: Uint8Array): ServerMessage | null {
    switch (rect.encoding) {
      case PseudoEncoding.LastRect:
        this.rectsLeft = 0;
        return this.endUpdate();
      case PseudoEncoding.DesktopSize:
        if (rect.w === 0 && rect.h === 0)
          return { type: "DesktopSize", width: this.width, height: this.height }; // UltraVNC sends 0×0 (LibVNC 5b4be28e): ignore
        checkFramebufferSize(rect.w, rect.h, this.limits);
        this.width = rect.w;
        this.height = rect.h;
        return { type: "DesktopSize", width: rect.w, height: rect.h };
      case PseudoEncoding.ExtendedDesktopSize: {
        const status = rect.y;
        if (status === 0) checkFramebufferSize(rect.w, rect.h, this.limits);
        const screens = status === 0 ? readScreens(body, 4, body[0]!, rect.w, rect.h) : [];
        if (status === 0) {
          this.width = rect.w;
          this.height = rect.h;
        }
        return {
          type: "ExtendedDesktopSize",
          reason: rect.x,
          status,
          width: rect.w,
          height: rect.h,
          screens,
        };
      }
      case PseudoEncoding.Cursor: {
        const pixelBytes = rect.w * rect.h * (this.pf.bitsPerPixel >>> 3);
        return {
          type: "Cursor",
          hotX: rect.x,
          hotY: rect.y,
          width: rect.w,
          height: rect.h,
          pixels: body.subarray(0, pixelBytes),
          mask: body.subarray(pixelBytes),
        };
      }
      case PseudoEncoding.DesktopName:
        return {
          type: "DesktopName",
          name: new TextDecoder("utf-8", { fatal: false }).decode(body.subarray(4)),
        };
      case PseudoEncoding.QemuExtendedKeyEvent:
      case PseudoEncoding.ExtendedMouseButtons:
        return { type: "Rect", rect, body };
      default:
        return null;
    }
  }
}
