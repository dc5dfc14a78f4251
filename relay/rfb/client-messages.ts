// Reads client→server messages (the relay, or the demo device, as an RFB server of a viewer). Resumable:
// next() returns one whole message or null, never consuming part of one. Every count and length is
// checked against its limit before the body is waited for, so a peer cannot make us buffer or allocate
// more than the caps (bad-inputs.md table C).

import type { ByteQueue } from "./byte-queue.ts";
import { ClientMsg, PIXEL_FORMAT_LENGTH, SCREEN_LENGTH } from "./constants.ts";
import { RfbError } from "./errors.ts";
import type { RfbLimits } from "./limits.ts";
import { readCutText, readFence } from "./shared-messages.ts";
import { type PixelFormat, readPixelFormat, validatePixelFormat } from "./pixel-format.ts";
import { type Screen, checkFramebufferSize, readScreens } from "./pseudo.ts";

export type ClientMessage =
  | { type: "SetPixelFormat"; pf: PixelFormat }
  /** encodings: de-duplicated, in the client's order of preference. */
  | { type: "SetEncodings"; encodings: number[] }
  | { type: "FramebufferUpdateRequest"; incremental: boolean; x: number; y: number; w: number; h: number }
  | { type: "KeyEvent"; down: boolean; keysym: number }
  | { type: "PointerEvent"; buttonMask: number; x: number; y: number }
  /** text is null when the viewer sent more than maxCutText: the bytes were skipped, never stored. */
  | { type: "ClientCutText"; text: Uint8Array | null; length: number }
  | { type: "EnableContinuousUpdates"; enable: boolean; x: number; y: number; w: number; h: number }
  | { type: "ClientFence"; flags: number; payload: Uint8Array }
  | { type: "SetDesktopSize"; width: number; height: number; screens: Screen[] }
  | { type: "QemuKeyEvent"; down: boolean; keysym: number; keycode: number };

export class ClientMessageReader {
  constructor(private readonly limits: RfbLimits) {}

  next(q: ByteQueue): ClientMessage | null {
    if (!q.has(1)) return null;
    const type = q.u8(0);
    switch (type) {
      case ClientMsg.SetPixelFormat: {
        if (!q.has(4 + PIXEL_FORMAT_LENGTH)) return null;
        const pf = readPixelFormat(q.peek(4, PIXEL_FORMAT_LENGTH));
        validatePixelFormat(pf);
        q.skip(4 + PIXEL_FORMAT_LENGTH);
        return { type: "SetPixelFormat", pf };
      }
      case ClientMsg.SetEncodings: {
        if (!q.has(4)) return null;
        const n = q.u16(2);
        if (n > this.limits.maxEncodings) {
          throw new RfbError(
            "LIMIT_EXCEEDED",
            `SetEncodings with ${n} entries (limit ${this.limits.maxEncodings})`,
          );
        }
        if (!q.has(4 + 4 * n)) return null;
        const seen = new Set<number>();
        for (let i = 0; i < n; i++) seen.add(q.s32(4 + 4 * i));
        q.skip(4 + 4 * n);
        return { type: "SetEncodings", encodings: [...seen] };
      }
      case ClientMsg.FramebufferUpdateRequest: {
        const r = readFlaggedRect(q);
        return r && { type: "FramebufferUpdateRequest", incremental: r.flag, x: r.x, y: r.y, w: r.w, h: r.h };
      }
      case ClientMsg.KeyEvent: {
        if (!q.has(8)) return null;
        const m = { type: "KeyEvent" as const, down: q.u8(1) !== 0, keysym: q.u32(4) };
        q.skip(8);
        return m;
      }
      case ClientMsg.PointerEvent: {
        if (!q.has(6)) return null;
        const m = { type: "PointerEvent" as const, buttonMask: q.u8(1), x: q.u16(2), y: q.u16(4) };
        q.skip(6);
        return m;
      }
      case ClientMsg.ClientCutText: {
        const m = readCutText(q, this.limits.maxCutText);
        return m && { type: "ClientCutText", ...m };
      }
      case ClientMsg.EnableContinuousUpdates: {
        const r = readFlaggedRect(q);
        return r && { type: "EnableContinuousUpdates", enable: r.flag, x: r.x, y: r.y, w: r.w, h: r.h };
      }
      case ClientMsg.ClientFence: {
        const m = readFence(q, this.limits.maxFence);
        return m && { type: "ClientFence", ...m };
      }
      case ClientMsg.SetDesktopSize: {
        if (!q.has(8)) return null;
        const width = q.u16(2);
        const height = q.u16(4);
        const n = q.u8(6);
        if (n === 0 || n > this.limits.maxScreens) throw new RfbError("BAD_SCREEN_LAYOUT", `${n} screens`);
        checkFramebufferSize(width, height, this.limits);
        if (!q.has(8 + n * SCREEN_LENGTH)) return null;
        q.skip(8);
        const screens = readScreens(q.take(n * SCREEN_LENGTH), 0, n, width, height);
        return { type: "SetDesktopSize", width, height, screens };
      }
      case ClientMsg.Qemu: {
        if (!q.has(2)) return null;
        const sub = q.u8(1);
        if (sub !== 0) throw new RfbError("UNKNOWN_MESSAGE", `QEMU client message subtype ${sub}`);
        if (!q.has(12)) return null;
        const m = {
          type: "QemuKeyEvent" as const,
          down: q.u16(2) !== 0,
          keysym: q.u32(4),
          keycode: q.u32(8),
        };
        q.skip(12);
        return m;
      }
      case ClientMsg.Xvp:
        // Power control (shutdown/reboot/reset) never passes the relay (bad-inputs.md C "xvp").
        throw new RfbError("UNSUPPORTED", "xvp power control is not allowed");
      default:
        throw new RfbError("UNKNOWN_MESSAGE", `client message type ${type}`);
    }
  }
}

/** FramebufferUpdateRequest and EnableContinuousUpdates share a layout: type, U8 flag, U16 x, y, w, h. */
function readFlaggedRect(q: ByteQueue): { flag: boolean; x: number; y: number; w: number; h: number } | null {
  if (!q.has(10)) return null;
  const r = { flag: q.u8(1) !== 0, x: q.u16(2), y: q.u16(4), w: q.u16(6), h: q.u16(8) };
  q.skip(10);
  return r;
}
