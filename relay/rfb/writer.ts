// Builders for every RFB message we send, both roles. Each message is built in a fresh zero-filled buffer,
// so padding bytes are always 0 (bad-inputs.md B, "padding and uninitialised bytes": CVE-2018-20022).

import { ClientMsg, PIXEL_FORMAT_LENGTH, RECT_HEADER_LENGTH, ServerMsg } from "./constants.ts";
import { type PixelFormat, writePixelFormat } from "./pixel-format.ts";

const latin1 = (s: string): Uint8Array => {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out[i] = c < 256 ? c : 0x3f; // '?' for characters Latin-1 cannot carry (rfbproto.rst "ClientCutText")
  }
  return out;
};

class Out {
  readonly buf: Uint8Array;
  private readonly dv: DataView;
  private o = 0;
  constructor(n: number) {
    this.buf = new Uint8Array(n);
    this.dv = new DataView(this.buf.buffer);
  }
  u8(v: number): this {
    this.dv.setUint8(this.o, v);
    this.o += 1;
    return this;
  }
  u16(v: number): this {
    this.dv.setUint16(this.o, v);
    this.o += 2;
    return this;
  }
  u32(v: number): this {
    this.dv.setUint32(this.o, v >>> 0);
    this.o += 4;
    return this;
  }
  s32(v: number): this {
    this.dv.setInt32(this.o, v);
    this.o += 4;
    return this;
  }
  pad(n: number): this {
    this.o += n;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.buf.set(b, this.o);
    this.o += b.byteLength;
    return this;
  }
  pf(pf: PixelFormat): this {
    writePixelFormat(pf, this.buf, this.o);
    this.o += PIXEL_FORMAT_LENGTH;
    return this;
  }
}

// ---- handshake ---------------------------------------------------------------------------------------

export function versionString(major: number, minor: number): Uint8Array {
  return latin1(`RFB ${String(major).padStart(3, "0")}.${String(minor).padStart(3, "0")}\n`);
}

/** 3.7+: U8 count, U8[count] types. */
export function securityTypesMsg(types: readonly number[]): Uint8Array {
  const o = new Out(1 + types.length).u8(types.length);
  for (const t of types) o.u8(t);
  return o.buf;
}

/** 3.3: the server decides, U32 type. */
export function securityType33Msg(type: number): Uint8Array {
  return new Out(4).u32(type).buf;
}

export function securityResultMsg(ok: boolean, minor: number, reason = ""): Uint8Array {
  if (ok || minor < 8) return new Out(4).u32(ok ? 0 : 1).buf;
  const r = latin1(reason);
  return new Out(8 + r.length).u32(1).u32(r.length).bytes(r).buf;
}

export function clientInitMsg(shared: boolean): Uint8Array {
  return new Out(1).u8(shared ? 1 : 0).buf;
}

export function serverInitMsg(width: number, height: number, pf: PixelFormat, name: string): Uint8Array {
  const n = new TextEncoder().encode(name);
  return new Out(2 + 2 + PIXEL_FORMAT_LENGTH + 4 + n.length)
    .u16(width)
    .u16(height)
    .pf(pf)
    .u32(n.length)
    .bytes(n).buf;
}

// ---- client → server ---------------------------------------------------------------------------------

export function setPixelFormatMsg(pf: PixelFormat): Uint8Array {
  return new Out(4 + PIXEL_FORMAT_LENGTH).u8(ClientMsg.SetPixelFormat).pad(3).pf(pf).buf;
}

export function setEncodingsMsg(encodings: readonly number[]): Uint8Array {
  const o = new Out(4 + 4 * encodings.length).u8(ClientMsg.SetEncodings).pad(1).u16(encodings.length);
  for (const e of encodings) o.s32(e);
  return o.buf;
}

export function framebufferUpdateRequestMsg(
  incremental: boolean,
  x: number,
  y: number,
  w: number,
  h: number,
) {
  return new Out(10)
    .u8(ClientMsg.FramebufferUpdateRequest)
    .u8(incremental ? 1 : 0)
    .u16(x)
    .u16(y)
    .u16(w)
    .u16(h).buf;
}

export function keyEventMsg(down: boolean, keysym: number): Uint8Array {
  return new Out(8)
    .u8(ClientMsg.KeyEvent)
    .u8(down ? 1 : 0)
    .pad(2)
    .u32(keysym).buf;
}

export function pointerEventMsg(buttonMask: number, x: number, y: number): Uint8Array {
  return new Out(6).u8(ClientMsg.PointerEvent).u8(buttonMask).u16(x).u16(y).buf;
}

/** Cut text has the same layout both ways: type, 3 padding, U32 length, Latin-1 text. */
function cutTextMsg(type: number, text: string): Uint8Array {
  const t = latin1(text);
  return new Out(8 + t.length).u8(type).pad(3).u32(t.length).bytes(t).buf;
}

/** Fences have the same layout both ways: type, 3 padding, U32 flags, U8 length, payload. */
function fenceMsg(type: number, flags: number, payload: Uint8Array): Uint8Array {
  return new Out(9 + payload.length).u8(type).pad(3).u32(flags).u8(payload.length).bytes(payload).buf;
}

export function clientCutTextMsg(text: string): Uint8Array {
  return cutTextMsg(ClientMsg.ClientCutText, text);
}

export function clientFenceMsg(flags: number, payload: Uint8Array): Uint8Array {
  return fenceMsg(ClientMsg.ClientFence, flags, payload);
}

export function enableContinuousUpdatesMsg(enable: boolean, x: number, y: number, w: number, h: number) {
  return new Out(10)
    .u8(ClientMsg.EnableContinuousUpdates)
    .u8(enable ? 1 : 0)
    .u16(x)
    .u16(y)
    .u16(w)
    .u16(h).buf;
}

// ---- server → client ---------------------------------------------------------------------------------

/** FramebufferUpdate header; the rects follow (nrects = 0xFFFF when a LastRect ends the update). */
export function framebufferUpdateHeader(nrects: number): Uint8Array {
  return new Out(4).u8(ServerMsg.FramebufferUpdate).pad(1).u16(nrects).buf;
}

export function rectHeader(x: number, y: number, w: number, h: number, encoding: number): Uint8Array {
  return new Out(RECT_HEADER_LENGTH).u16(x).u16(y).u16(w).u16(h).s32(encoding).buf;
}

export function setColourMapEntriesMsg(
  first: number,
  colours: readonly [number, number, number][],
): Uint8Array {
  const o = new Out(6 + 6 * colours.length)
    .u8(ServerMsg.SetColourMapEntries)
    .pad(1)
    .u16(first)
    .u16(colours.length);
  for (const [r, g, b] of colours) o.u16(r).u16(g).u16(b);
  return o.buf;
}

export function bellMsg(): Uint8Array {
  return new Out(1).u8(ServerMsg.Bell).buf;
}

export function serverCutTextMsg(text: string): Uint8Array {
  return cutTextMsg(ServerMsg.ServerCutText, text);
}

export function serverFenceMsg(flags: number, payload: Uint8Array): Uint8Array {
  return fenceMsg(ServerMsg.ServerFence, flags, payload);
}

export function endOfContinuousUpdatesMsg(): Uint8Array {
  return new Out(1).u8(ServerMsg.EndOfContinuousUpdates).buf;
}

/** DesktopName pseudo-rect body: U32 length, UTF-8 name. */
export function desktopNameBody(name: string): Uint8Array {
  const n = new TextEncoder().encode(name);
  return new Out(4 + n.length).u32(n.length).bytes(n).buf;
}
