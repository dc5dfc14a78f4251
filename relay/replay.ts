// `shadowrelay replay`: decodes a recorded RFB session and renders its framebuffer. The server→client bytes
// run from the first byte ("RFB 003.008\n") through the handshake and every update; the optional
// client→server bytes say which security type, pixel format and encodings the client chose (as in
// ../shared/corpus/). Without them the security type is inferred from the server's bytes and the pixel
// format is ServerInit's. It is the relay's own decoder (SessionDecoder over the WASM core or its TS
// twin), so a recording that replays is one the relay can serve, and a user can check a recording with it.

import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { SessionDecoder } from "./codec/decoder.ts";
import type { CodecKernels } from "./codec/kernels.ts";
import { defaultRegistry } from "./codec/registry.ts";
import { ByteQueue } from "./rfb/byte-queue.ts";
import { ClientMessageReader } from "./rfb/client-messages.ts";
import { PIXEL_FORMAT_LENGTH, PseudoEncoding, SecurityType, VERSION_LENGTH } from "./rfb/constants.ts";
import { RfbError } from "./rfb/errors.ts";
import { DEFAULT_LIMITS, type RfbLimits } from "./rfb/limits.ts";
import { type PixelFormat, readPixelFormat, validatePixelFormat } from "./rfb/pixel-format.ts";
import { checkFramebufferSize } from "./rfb/pseudo.ts";
import { ServerMessageReader } from "./rfb/server-messages.ts";
import { parseVersion, type Version } from "./rfb/version.ts";

export interface ReplayOptions {
  /** Server→client bytes from the first byte. */
  server: Uint8Array;
  /** Client→server bytes from the first byte, if recorded. */
  client?: Uint8Array;
  /** Stop after this update (0-based, as the corpus index's afterUpdate); default: the whole recording. */
  atUpdate?: number;
  kernels: CodecKernels;
  limits?: RfbLimits;
  /** Called at the end of every update with its 0-based number and the framebuffer (a view, valid during the call). */
  onUpdate?(update: number, pixels: Uint8Array): void;
}

export interface ReplayResult {
  width: number;
  height: number;
  desktopName: string;
  pixelFormat: PixelFormat;
  /** Updates applied (FramebufferUpdate messages seen to their end). */
  updates: number;
  /** Pixel rects decoded and the pixels they covered. */
  rects: number;
  pixelsDecoded: number;
  /** The framebuffer, canonical R,G,B,X (X = 0), rows packed: a copy. */
  pixels: Uint8Array;
  /** False when the recording ends in the middle of a message (a cut-off capture). */
  complete: boolean;
}

/** Reads a recording, gunzipping it when its name ends in .gz or it starts with the gzip magic. */
export function readRecording(path: string): Uint8Array {
  const bytes = new Uint8Array(readFileSync(path));
  if (path.endsWith(".gz") || (bytes[0] === 0x1f && bytes[1] === 0x8b))
    return new Uint8Array(gunzipSync(bytes));
  return bytes;
}

/** A bounds-checked cursor over a whole recording; running off the end is a coded error. */
class Cursor {
  pos = 0;
  constructor(
    readonly bytes: Uint8Array,
    readonly what: string,
  ) {}

  take(n: number): Uint8Array {
    if (this.pos + n > this.bytes.length) {
      throw new RfbError(
        "BAD_MESSAGE",
        `${this.what} recording ends inside the handshake (at byte ${this.pos})`,
      );
    }
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  u8(): number {
    return this.take(1)[0]!;
  }

  u16(): number {
    const b = this.take(2);
    return (b[0]! << 8) | b[1]!;
  }

  u32(): number {
    const b = this.take(4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
  }
}

interface ClientChoices {
  pixelFormat?: PixelFormat;
  encodings?: number[];
}

/** The client's version and (3.7+) its chosen security type; the cursor is left after them. */
function readClientSecurity(c: Cursor): number | undefined {
  const version = parseVersion(c.take(VERSION_LENGTH));
  return version.minor >= 7 ? c.u8() : undefined;
}

/** After the security choice: the VNC Authentication response, ClientInit, then the last SetPixelFormat / SetEncodings. */
function readClientChoices(c: Cursor, securityType: number, limits: RfbLimits): ClientChoices {
  if (securityType === SecurityType.VncAuth) c.take(16);
  c.take(1); // ClientInit shared-flag
  const q = new ByteQueue(limits.maxPendingBytes);
  q.push(c.bytes.subarray(c.pos));
  const out: ClientChoices = {};
  const reader = new ClientMessageReader(limits);
  for (let m = reader.next(q); m !== null; m = reader.next(q)) {
    if (m.type === "SetPixelFormat") out.pixelFormat = m.pf;
    else if (m.type === "SetEncodings") out.encodings = m.encodings;
  }
  return out;
}

interface ServerHandshake {
  version: Version;
  securityType: number;
  width: number;
  height: number;
  pixelFormat: PixelFormat;
  name: string;
  /** Offset of the first message after ServerInit. */
  end: number;
}

/** Walks the server's handshake: version, security, SecurityResult, ServerInit. */
function readServerHandshake(
  bytes: Uint8Array,
  chosen: number | undefined,
  limits: RfbLimits,
): ServerHandshake {
  const c = new Cursor(bytes, "server");
  const version = parseVersion(c.take(VERSION_LENGTH));
  let type: number;
  if (version.minor < 7) {
    type = c.u32();
    if (type === SecurityType.Invalid)
      throw new RfbError("SECURITY_REFUSED", "the recorded server refused the client");
  } else {
    const n = c.u8();
    if (n === 0) throw new RfbError("SECURITY_REFUSED", "the recorded server refused the client");
    const offered = [...c.take(n)];
    type = chosen ?? inferSecurityType(offered, bytes, c.pos, version);
    if (!offered.includes(type)) throw new RfbError("SECURITY_NOT_OFFERED", `client chose ${type}`);
  }
  if (type === SecurityType.VncAuth) c.take(16);
  else if (type !== SecurityType.None)
    throw new RfbError("UNSUPPORTED", `security type ${type} in a recording`);
  if (type === SecurityType.VncAuth || version.minor >= 8) {
    if (c.u32() !== 0) throw new RfbError("AUTH_FAILED", "the recorded session failed authentication");
  }
  const width = c.u16();
  const height = c.u16();
  checkFramebufferSize(width, height, limits);
  const pixelFormat = readPixelFormat(c.take(PIXEL_FORMAT_LENGTH));
  validatePixelFormat(pixelFormat);
  const nameLength = c.u32();
  if (nameLength > limits.maxString)
    throw new RfbError("LIMIT_EXCEEDED", `desktop name of ${nameLength} bytes`);
  const name = new TextDecoder().decode(c.take(nameLength));
  return { version, securityType: type, width, height, pixelFormat, name, end: c.pos };
}

/**
 * Without the client's bytes: None when offered and the bytes after it read as a successful result plus a
 * plausible ServerInit, else VNC Authentication (16-byte challenge before the result).
 */
function inferSecurityType(offered: number[], bytes: Uint8Array, at: number, version: Version): number {
  const usable = offered.filter((t) => t === SecurityType.None || t === SecurityType.VncAuth);
  if (usable.length === 1) return usable[0]!;
  if (usable.length === 0)
    throw new RfbError("UNSUPPORTED", `security types ${offered.join(",")} in a recording`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const resultLength = version.minor >= 8 ? 4 : 0;
  const plausibleInit = (o: number) =>
    o + 4 <= bytes.length &&
    dv.getUint16(o) > 0 &&
    dv.getUint16(o + 2) > 0 &&
    (resultLength === 0 || dv.getUint32(o - 4) === 0);
  return plausibleInit(at + resultLength) ? SecurityType.None : SecurityType.VncAuth;
}

/** Every encoding and pseudo-encoding we can frame: the assumption when the client's bytes are missing. */
function everyEncoding(): number[] {
  return [...defaultRegistry.keys(), ...Object.values(PseudoEncoding)];
}

/** Decodes a recording; throws the RfbError of the first bad byte (with its position in the message). */
export function replay(o: ReplayOptions): ReplayResult {
  const limits = o.limits ?? DEFAULT_LIMITS;
  const client = o.client ? new Cursor(o.client, "client") : undefined;
  const chosen = client ? readClientSecurity(client) : undefined;
  const hs = readServerHandshake(o.server, chosen, limits);
  const choices = client ? readClientChoices(client, hs.securityType, limits) : {};
  const pf = choices.pixelFormat ?? hs.pixelFormat;
  const decoder = new SessionDecoder(o.kernels, hs.width, hs.height, pf);
  const reader = new ServerMessageReader({
    limits,
    pf,
    width: hs.width,
    height: hs.height,
    encodings: new Set(choices.encodings ?? everyEncoding()),
  });
  const q = new ByteQueue(limits.maxPendingBytes);
  let updates = 0;
  let rects = 0;
  let pixelsDecoded = 0;
  const CHUNK = 1 << 20;
  let done = false;
  for (let off = hs.end; off < o.server.length && !done; off += CHUNK) {
    q.push(o.server.subarray(off, Math.min(off + CHUNK, o.server.length)));
    for (let m = reader.next(q); m !== null && !done; m = reader.next(q)) {
      switch (m.type) {
        case "Rect":
          if (m.rect.encoding >= 0) {
            decoder.decode(m.rect, m.body);
            rects++;
            pixelsDecoded += m.rect.w * m.rect.h;
          }
          break;
        case "DesktopSize":
        case "ExtendedDesktopSize":
          // The reader's size: a refused ExtendedDesktopSize never applies (relay/rfb/client.ts).
          if (reader.width !== decoder.width || reader.height !== decoder.height)
            decoder.resize(reader.width, reader.height);
          break;
        case "FramebufferUpdateEnd":
          o.onUpdate?.(updates, decoder.pixels());
          if (o.atUpdate !== undefined && updates === o.atUpdate) done = true;
          updates++;
          break;
        default:
          break;
      }
    }
  }
  if (o.atUpdate !== undefined && !done) {
    throw new RfbError(
      "BAD_MESSAGE",
      `the recording has ${updates} updates; update ${o.atUpdate} is not in it`,
    );
  }
  return {
    width: decoder.width,
    height: decoder.height,
    desktopName: hs.name,
    pixelFormat: pf,
    updates,
    rects,
    pixelsDecoded,
    pixels: decoder.pixels().slice(),
    complete: done || q.length === 0,
  };
}

/** Canonical R,G,B,X → R,G,B,A with A = 255 (the .rgba output and PNG input). */
export function canonicalToRgba(pixels: Uint8Array): Uint8Array {
  const out = pixels.slice();
  for (let i = 3; i < out.length; i += 4) out[i] = 255;
  return out;
}
