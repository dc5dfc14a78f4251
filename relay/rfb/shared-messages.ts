// Messages with the same layout in both directions after their type byte: cut text (rfbproto.rst
// "ClientCutText" / "ServerCutText") and fences ("ClientFence" / "ServerFence"). Both readers use these, so
// the caps are checked the same way whichever peer sends them.

import type { ByteQueue } from "./byte-queue.ts";
import { RfbError } from "./errors.ts";

/**
 * Type, 3 padding, U32 length, text. Over maxCutText the text is discarded without being stored and
 * `text` is null; a length ≥ 2^31 is the Extended Clipboard form (a negative S32), which we never
 * announce, so it is refused from the header alone.
 */
export function readCutText(
  q: ByteQueue,
  maxCutText: number,
): { text: Uint8Array | null; length: number } | null {
  if (!q.has(8)) return null;
  const length = q.u32(4);
  if (length >= 0x80000000) throw new RfbError("BAD_MESSAGE", "extended clipboard was not negotiated");
  if (length > maxCutText) {
    q.skip(8);
    q.discard(length);
    return { text: null, length };
  }
  if (!q.has(8 + length)) return null;
  q.skip(8);
  return { text: q.take(length), length };
}

/** Type, 3 padding, U32 flags, U8 length, payload; the length is checked before the payload is read. */
export function readFence(q: ByteQueue, maxFence: number): { flags: number; payload: Uint8Array } | null {
  if (!q.has(9)) return null;
  const len = q.u8(8);
  if (len > maxFence) throw new RfbError("LIMIT_EXCEEDED", `fence payload of ${len} bytes`);
  if (!q.has(9 + len)) return null;
  const flags = q.u32(4);
  q.skip(9);
  return { flags, payload: q.take(len) };
}

/**
 * A failure reason (handshake: security list of 0, SecurityResult failed): U32 length + text at `off`, the
 * length capped at maxString before anything is buffered (CVE-2018-20019 class). Consumes everything up to
 * the reason's end once it is all there and returns it made printable; null while it is incomplete.
 */
export function readReason(q: ByteQueue, off: number, maxString: number): string | null {
  if (!q.has(off + 4)) return null;
  const len = q.u32(off);
  if (len > maxString) throw new RfbError("LIMIT_EXCEEDED", `reason string of ${len} bytes`);
  if (!q.has(off + 4 + len)) return null;
  q.skip(off + 4);
  return printable(q.take(len));
}

/** Peer-supplied text for logs and errors: Latin-1, control characters replaced. */
export function printable(b: Uint8Array): string {
  let s = "";
  for (const c of b) s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : "?";
  return s;
}
