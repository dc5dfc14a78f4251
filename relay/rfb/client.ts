// The RFB client role (the relay towards a device's VNC server), independent of the transport: feed() it
// the bytes that arrive, it calls send() with the bytes to write. Handshake (version, security None or VNC
// Authentication, ClientInit/ServerInit), then SetPixelFormat + SetEncodings, then server messages. With
// `decode` on it keeps a canonical framebuffer up to date through the codec core's SessionDecoder (the
// WASM core when the caller passes its kernels, else the TS twin). Protocol errors are thrown as RfbError from
// feed(); the caller's session boundary closes the connection.

import { DECODED_ENCODINGS, SessionDecoder } from "../codec/decoder.ts";
import type { CodecKernels } from "../codec/kernels.ts";
import { type CodecRegistry, defaultRegistry } from "../codec/registry.ts";
import { TsKernels } from "../codec/ts-kernels.ts";
import { ByteQueue } from "./byte-queue.ts";
import { Encoding, PIXEL_FORMAT_LENGTH, PseudoEncoding, SecurityType, VERSION_LENGTH } from "./constants.ts";
import { RfbError } from "./errors.ts";
import { readReason } from "./shared-messages.ts";
import { type RfbLimits, limitsWith } from "./limits.ts";
import { CANONICAL_FORMAT, type PixelFormat, readPixelFormat, validatePixelFormat } from "./pixel-format.ts";
import { checkFramebufferSize } from "./pseudo.ts";
import { type ServerMessage, ServerMessageReader } from "./server-messages.ts";
import { type Version, clientVersionFor, parseVersion } from "./version.ts";
import { vncAuthResponse } from "./vnc-auth.ts";
import {
  clientInitMsg,
  framebufferUpdateRequestMsg,
  setEncodingsMsg,
  setPixelFormatMsg,
  versionString,
} from "./writer.ts";

export interface RfbClientOptions {
  send(bytes: Uint8Array): void;
  /** Password for VNC Authentication; without one, only security None is chosen. */
  password?: string | Uint8Array;
  /** ClientInit shared-flag. @default true */
  shared?: boolean;
  /** Pixel format to ask for after ServerInit. @default CANONICAL_FORMAT */
  pixelFormat?: PixelFormat;
  /** Encodings to ask for, in preference order. @default [Raw, CopyRect, DesktopSize, ExtendedDesktopSize, LastRect, Cursor, DesktopName] */
  encodings?: number[];
  /** Keep a canonical framebuffer decoded from the updates. @default true */
  decode?: boolean;
  /** The kernels that decode (one instance per client). @default a new TS twin (relay/codec/ts-kernels.ts) */
  kernels?: CodecKernels;
  limits?: Partial<RfbLimits>;
  codecs?: CodecRegistry;
  onReady?(info: ServerInfo): void;
  onMessage?(m: ServerMessage): void;
}

export interface ServerInfo {
  version: Version;
  securityType: number;
  width: number;
  height: number;
  /** The server's native pixel format from ServerInit. */
  serverPixelFormat: PixelFormat;
  name: string;
}

type State = "version" | "security" | "challenge" | "result" | "init" | "ready" | "failed";

export const DEFAULT_CLIENT_ENCODINGS: readonly number[] = [
  Encoding.CopyRect,
  Encoding.Raw,
  PseudoEncoding.DesktopSize,
  PseudoEncoding.ExtendedDesktopSize,
  PseudoEncoding.LastRect,
  PseudoEncoding.Cursor,
  PseudoEncoding.DesktopName,
];

export class RfbClient {
  readonly limits: RfbLimits;
  info: ServerInfo | null = null;
  /** The decoder and its framebuffer, once ServerInit arrived (null with decode: false). */
  decoder: SessionDecoder | null = null;
  /** Updates fully received (FramebufferUpdateEnd seen). */
  updates = 0;
  private state: State = "version";
  private version: Version = { major: 3, minor: 8 };
  private securityType = 0;
  private readonly q: ByteQueue;
  private reader: ServerMessageReader | null = null;
  private readonly o: RfbClientOptions;
  private readonly codecs: CodecRegistry;

  constructor(o: RfbClientOptions) {
    this.o = o;
    this.limits = limitsWith(o.limits);
    this.q = new ByteQueue(this.limits.maxPendingBytes);
    this.codecs = o.codecs ?? defaultRegistry;
  }

  get ready(): boolean {
    return this.state === "ready";
  }

  /** The framebuffer: canonical R,G,B,X rows (a view, valid until the next feed()). */
  get fb(): { width: number; height: number; data: Uint8Array } | null {
    const d = this.decoder;
    return d && { width: d.width, height: d.height, data: d.pixels() };
  }

  /** The pixel format updates arrive in. */
  get pixelFormat(): PixelFormat {
    return this.reader?.pf ?? this.o.pixelFormat ?? CANONICAL_FORMAT;
  }

  feed(chunk: Uint8Array): void {
    if (this.state === "failed") return;
    try {
      this.q.push(chunk);
      while (this.step()) {}
    } catch (e) {
      this.state = "failed";
      throw e;
    }
  }

  requestUpdate(incremental: boolean, x = 0, y = 0, w?: number, h?: number): void {
    const r = this.reader;
    if (!r) throw new RfbError("INTERNAL", "requestUpdate before the handshake finished");
    this.o.send(framebufferUpdateRequestMsg(incremental, x, y, w ?? r.width, h ?? r.height));
  }

  send(bytes: Uint8Array): void {
    this.o.send(bytes);
  }

  private step(): boolean {
    const q = this.q;
    switch (this.state) {
      case "version": {
        if (!q.has(VERSION_LENGTH)) return false;
        const server = parseVersion(q.peek(0, VERSION_LENGTH));
        q.skip(VERSION_LENGTH);
        this.version = clientVersionFor(server);
        this.o.send(versionString(this.version.major, this.version.minor));
        this.state = "security";
        return true;
      }
      case "security":
        return this.security();
      case "challenge": {
        if (!q.has(16)) return false;
        this.o.send(vncAuthResponse(q.take(16), this.o.password ?? ""));
        this.state = "result";
        return true;
      }
      case "result": {
        if (!q.has(4)) return false;
        const result = q.u32(0);
        if (result === 0) {
          q.skip(4);
          this.sendClientInit();
          return true;
        }
        if (this.version.minor >= 8) {
          const reason = this.reasonAt(4);
          if (reason === null) return false;
          throw new RfbError("AUTH_FAILED", `server said: ${reason}`);
        }
        throw new RfbError("AUTH_FAILED", `SecurityResult ${result}`);
      }
      case "init":
        return this.serverInit();
      case "ready":
        return this.message();
      case "failed":
        return false;
    }
  }

  /** A failure reason at `off` (shared-messages.ts readReason). */
  private reasonAt(off: number): string | null {
    return readReason(this.q, off, this.limits.maxString);
  }

  private security(): boolean {
    const q = this.q;
    let chosen: number;
    if (this.version.minor >= 7) {
      if (!q.has(1)) return false;
      const n = q.u8(0);
      if (n === 0) {
        const reason = this.reasonAt(1);
        if (reason === null) return false;
        throw new RfbError("SECURITY_REFUSED", `server said: ${reason}`);
      }
      if (!q.has(1 + n)) return false;
      const offered = [...q.peek(1, n)];
      q.skip(1 + n);
      const usable = offered.filter(
        (t) => t === SecurityType.None || (t === SecurityType.VncAuth && this.o.password !== undefined),
      );
      if (usable.length === 0) {
        throw new RfbError(
          offered.includes(SecurityType.VncAuth) ? "AUTH_REQUIRED" : "SECURITY_REFUSED",
          `server offers security types ${offered.join(",")}`,
        );
      }
      chosen = usable[0]!;
      this.o.send(new Uint8Array([chosen]));
    } else {
      if (!q.has(4)) return false;
      chosen = q.u32(0);
      if (chosen === SecurityType.Invalid) {
        const reason = this.reasonAt(4);
        if (reason === null) return false;
        throw new RfbError("SECURITY_REFUSED", `server said: ${reason}`);
      }
      q.skip(4);
      if (chosen !== SecurityType.None && chosen !== SecurityType.VncAuth) {
        throw new RfbError("SECURITY_REFUSED", `server chose security type ${chosen}`);
      }
      if (chosen === SecurityType.VncAuth && this.o.password === undefined) {
        throw new RfbError("AUTH_REQUIRED", "server requires VNC Authentication");
      }
    }
    this.securityType = chosen;
    if (chosen === SecurityType.VncAuth) this.state = "challenge";
    else if (this.version.minor >= 8) this.state = "result";
    else this.sendClientInit(); // 3.3 and 3.7 send no SecurityResult after None
    return true;
  }

  private sendClientInit(): void {
    this.o.send(clientInitMsg(this.o.shared ?? true));
    this.state = "init";
  }

  private serverInit(): boolean {
    const q = this.q;
    const fixed = 4 + PIXEL_FORMAT_LENGTH + 4;
    if (!q.has(fixed)) return false;
    const width = q.u16(0);
    const height = q.u16(2);
    const nameLen = q.u32(4 + PIXEL_FORMAT_LENGTH);
    checkFramebufferSize(width, height, this.limits);
    const serverPf = readPixelFormat(q.peek(4, PIXEL_FORMAT_LENGTH));
    validatePixelFormat(serverPf);
    if (nameLen > this.limits.maxString)
      throw new RfbError("LIMIT_EXCEEDED", `desktop name of ${nameLen} bytes`);
    if (!q.has(fixed + nameLen)) return false;
    q.skip(fixed);
    const name = new TextDecoder("utf-8").decode(q.take(nameLen));
    const pf = this.o.pixelFormat ?? CANONICAL_FORMAT;
    const encodings = this.o.encodings ?? [...DEFAULT_CLIENT_ENCODINGS];
    for (const e of encodings) {
      const codec = this.codecs.get(e);
      if (e >= 0 && !codec) throw new RfbError("UNSUPPORTED", `no codec for encoding ${e}`);
      if (e >= 0 && !DECODED_ENCODINGS.includes(e) && this.o.decode !== false) {
        throw new RfbError("UNSUPPORTED", `encoding ${codec!.name} can be framed but not decoded`);
      }
    }
    this.reader = new ServerMessageReader({
      limits: this.limits,
      pf,
      width,
      height,
      encodings: new Set(encodings),
      codecs: this.codecs,
    });
    if (this.o.decode !== false)
      this.decoder = new SessionDecoder(this.o.kernels ?? new TsKernels(), width, height, pf);
    this.o.send(setPixelFormatMsg(pf));
    this.o.send(setEncodingsMsg(encodings));
    this.info = {
      version: this.version,
      securityType: this.securityType,
      width,
      height,
      serverPixelFormat: serverPf,
      name,
    };
    this.state = "ready";
    this.o.onReady?.(this.info);
    return true;
  }

  private message(): boolean {
    const r = this.reader!;
    const m = r.next(this.q);
    if (m === null) return false;
    if (this.decoder) this.apply(m, r, this.decoder);
    if (m.type === "FramebufferUpdateEnd") this.updates++;
    this.o.onMessage?.(m);
    return true;
  }

  private apply(m: ServerMessage, r: ServerMessageReader, d: SessionDecoder): void {
    switch (m.type) {
      case "Rect":
        if (m.rect.encoding >= 0) d.decode(m.rect, m.body);
        return;
      case "DesktopSize":
      case "ExtendedDesktopSize":
        // The reader's size, not the message's: a refused ExtendedDesktopSize (status ≠ 0) carries a size
        // that was never validated and never applies.
        if (r.width !== d.width || r.height !== d.height) d.resize(r.width, r.height);
        return;
      default:
        return;
    }
  }
}
