// The built-in demo device: an RFB server (relay/rfb/server.ts) over TCP serving DemoDesktop, a synthetic
// 1280×720 desktop that keeps changing and reacts to pointer and keys. Each viewer keeps its own pending
// changes (CopyRects in order, then dirty rects) and is answered in its own pixel format and in the first
// encoding of its own list that the codec core can send (Tight, ZRLE, Hextile, zlib, Raw — as a plain VNC
// server chooses; CopyRect when offered), encoded by the WASM codec core (relay/codec/encoder.ts), so every
// real viewer that watches the demo is also an interop test of our encoders. A viewer that stops reading
// is not written to until it drains; its changes coalesce meanwhile.

import { copyRectBody } from "../codec/copyrect.ts";
import { serializeRect, ViewerStreams } from "../codec/encoded.ts";
import { compressLevelOf, encodeRect, firstSupportedEncoding } from "../codec/encoder.ts";
import type { CodecKernels } from "../codec/kernels.ts";
import { createWasmKernels } from "../codec/wasm-kernels.ts";
import { Encoding, SecurityType } from "../rfb/constants.ts";
import { CANONICAL_FORMAT } from "../rfb/pixel-format.ts";
import { RfbError, toRfbError } from "../rfb/errors.ts";
import { RfbServerConnection } from "../rfb/server.ts";
import { type TcpLink, listenTcp } from "../rfb/tcp.ts";
import { framebufferUpdateHeader, rectHeader } from "../rfb/writer.ts";
import { concat } from "../util/bytes.ts";
import { log } from "../util/log.ts";
import { type DemoChange, DemoDesktop } from "./desktop.ts";

export interface DemoDeviceOptions {
  host: string;
  port: number;
  /** When set, viewers must pass VNC Authentication with this password. */
  password?: string | Uint8Array;
  width?: number;
  height?: number;
  /** Scene updates per second; 0 stops the clock (tests then call tick()). @default 30 */
  fps?: number;
  name?: string;
  /** Deterministic clock for tests. */
  clock?: () => Date;
}

export interface DemoDevice {
  host: string;
  port: number;
  desktop: DemoDesktop;
  /** Advances the scene by hand (with fps 0) and sends the changes to viewers that asked. */
  tick(nowMs: number): void;
  /** Viewers currently connected. */
  readonly viewers: number;
  /** Rects sent so far, by encoding number (which encoder each viewer's list selected). */
  readonly rectsSent: ReadonlyMap<number, number>;
  stop(): Promise<void>;
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** A viewer's queue holds this many dirty rects; past it they merge into their bounding box. */
const MAX_DIRTY_RECTS = 48;
/** Bytes queued to a viewer above which no new update is sent until it drains. */
const SEND_BUDGET = 4 * 1024 * 1024;

const intersects = (a: Box, b: Box) =>
  a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

class DemoViewer {
  copies: { sx: number; sy: number; rect: Box }[] = [];
  dirty: Box[] = [];
  full = true;
  requested = false;
  /** Which of this viewer's zlib streams have started (their header sent). */
  streams = new ViewerStreams();

  constructor(
    readonly conn: RfbServerConnection,
    readonly link: TcpLink,
  ) {}

  addChange(c: DemoChange): void {
    if (this.full) return;
    if (c.kind === "copy") {
      const src = { x: c.src.x, y: c.src.y, w: c.rect.w, h: c.rect.h };
      // A copy whose source holds pixels the viewer has not received yet cannot be sent as CopyRect
      // (copies go out before dirty rects); send its destination as pixels instead.
      if (this.dirty.some((d) => intersects(d, src))) this.addDirty(c.rect);
      else this.copies.push({ sx: c.src.x, sy: c.src.y, rect: c.rect });
    } else {
      this.addDirty(c.rect);
    }
  }

  private addDirty(r: Box): void {
    if (r.w <= 0 || r.h <= 0) return;
    this.dirty.push({ ...r });
    if (this.dirty.length > MAX_DIRTY_RECTS) {
      let x0 = Infinity;
      let y0 = Infinity;
      let x1 = 0;
      let y1 = 0;
      for (const d of this.dirty) {
        x0 = Math.min(x0, d.x);
        y0 = Math.min(y0, d.y);
        x1 = Math.max(x1, d.x + d.w);
        y1 = Math.max(y1, d.y + d.h);
      }
      this.dirty = [{ x: x0, y: y0, w: x1 - x0, h: y1 - y0 }];
    }
  }

  /** Sends one update if one was requested, there is something to send, and the viewer is reading. */
  flush(desktop: DemoDesktop, kernels: CodecKernels, sent: Map<number, number>): void {
    if (!this.requested || this.link.buffered > SEND_BUDGET) return;
    const fb = desktop.fb;
    const pf = this.conn.pixelFormat;
    if (!pf.trueColour) throw new RfbError("UNSUPPORTED", "colour-mapped viewer pixel formats");
    const encoding = firstSupportedEncoding(this.conn.encodings);
    const compressLevel = compressLevelOf(this.conn.encodings);
    kernels.setOutputFormat(pf);
    const parts: Uint8Array[] = [];
    let n = 0;
    /** Brings the rect of the core's framebuffer up to date with the desktop, encodes it, queues it. */
    const encode = (x: number, y: number, w: number, h: number) => {
      kernels.raw(x, y, w, h, fb.readRect(x, y, w, h));
      for (const r of encodeRect(
        kernels,
        encoding,
        x,
        y,
        w,
        h,
        compressLevel === undefined ? {} : { compressLevel },
      )) {
        parts.push(serializeRect(r, this.streams));
        sent.set(r.encoding, (sent.get(r.encoding) ?? 0) + 1);
        n++;
      }
    };
    if (this.full) {
      encode(0, 0, fb.width, fb.height);
    } else {
      if (this.copies.length === 0 && this.dirty.length === 0) return;
      const copyOk = this.conn.encodings.includes(Encoding.CopyRect);
      for (const c of this.copies) {
        if (copyOk) {
          parts.push(
            rectHeader(c.rect.x, c.rect.y, c.rect.w, c.rect.h, Encoding.CopyRect),
            copyRectBody(c.sx, c.sy),
          );
          n++;
        } else {
          this.dirty.push(c.rect);
        }
      }
      for (const d of this.dirty) encode(d.x, d.y, d.w, d.h);
    }
    this.full = false;
    this.copies = [];
    this.dirty = [];
    this.requested = false;
    this.link.write(concat([framebufferUpdateHeader(n), ...parts]));
  }
}

export async function startDemoDevice(o: DemoDeviceOptions): Promise<DemoDevice> {
  const desktop = new DemoDesktop(o.width ?? 1280, o.height ?? 720, o.clock ? { clock: o.clock } : undefined);
  // One codec core for the device: its framebuffer mirrors the desktop rect by rect as rects are sent.
  const kernels = await createWasmKernels("release");
  kernels.resize(desktop.fb.width, desktop.fb.height);
  kernels.setInputFormat(CANONICAL_FORMAT);
  const rectsSent = new Map<number, number>();
  const viewers = new Set<DemoViewer>();
  const name = o.name ?? "shadowrelay demo device";

  const fail = (v: DemoViewer | null, link: TcpLink, e: unknown) => {
    const err = toRfbError(e);
    log.info("demo viewer closed", { remote: link.remote, code: err.code, detail: err.message });
    if (v) viewers.delete(v);
    link.end();
  };

  const listener = listenTcp({
    hostname: o.host,
    port: o.port,
    accept(link) {
      let viewer: DemoViewer | null = null;
      const conn = new RfbServerConnection({
        send: (b) => link.write(b),
        securityTypes: o.password !== undefined ? [SecurityType.VncAuth] : [SecurityType.None],
        ...(o.password !== undefined ? { password: o.password } : {}),
        width: desktop.fb.width,
        height: desktop.fb.height,
        name,
        onReady() {
          viewer = new DemoViewer(conn, link);
          viewers.add(viewer);
        },
        onMessage(m) {
          const v = viewer!;
          switch (m.type) {
            case "FramebufferUpdateRequest":
              if (!m.incremental) {
                v.full = true;
                v.copies = [];
                v.dirty = [];
              }
              v.requested = true;
              v.flush(desktop, kernels, rectsSent);
              return;
            case "SetPixelFormat":
              // The next update must be whole and in the new format (rfbproto.rst "SetPixelFormat").
              v.full = true;
              return;
            case "PointerEvent":
              desktop.pointer(m.x, m.y, m.buttonMask);
              return;
            case "KeyEvent":
              desktop.key(m.keysym, m.down);
              return;
            case "ClientCutText":
              if (m.text) desktop.cutText(new TextDecoder("latin1").decode(m.text));
              return;
            default:
              return;
          }
        },
      });
      const deadline = setTimeout(() => {
        if (!conn.ready) fail(viewer, link, new RfbError("HANDSHAKE_TIMEOUT"));
      }, conn.limits.handshakeTimeoutMs);
      conn.start();
      return {
        data(bytes) {
          try {
            conn.feed(bytes);
            if (conn.ready) clearTimeout(deadline);
          } catch (e) {
            clearTimeout(deadline);
            fail(viewer, link, e);
          }
        },
        drain() {
          try {
            viewer?.flush(desktop, kernels, rectsSent);
          } catch (e) {
            fail(viewer, link, e);
          }
        },
        close() {
          clearTimeout(deadline);
          if (viewer) viewers.delete(viewer);
        },
      };
    },
  });

  /** Advances the scene and offers the changes to every viewer. */
  const tick = (nowMs: number) => {
    const changes = desktop.tick(nowMs);
    for (const v of viewers) {
      try {
        for (const c of changes) v.addChange(c);
        v.flush(desktop, kernels, rectsSent);
      } catch (e) {
        fail(v, v.link, e);
      }
    }
  };
  const fps = o.fps ?? 30;
  const timer = fps > 0 ? setInterval(() => tick(performance.now()), Math.round(1000 / fps)) : undefined;

  log.info("demo device listening", { host: o.host, port: listener.port });
  return {
    host: o.host,
    port: listener.port,
    desktop,
    tick,
    get viewers() {
      return viewers.size;
    },
    rectsSent,
    async stop() {
      if (timer) clearInterval(timer);
      for (const v of viewers) v.link.abort();
      viewers.clear();
      listener.stop(true);
    },
  };
}
