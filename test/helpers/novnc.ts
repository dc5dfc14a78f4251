// noVNC 1.7.0's own rect decoders (node_modules/@novnc/novnc/core/decoders/*.js) run in Bun, unmodified,
// over two small fakes: a receive queue with core/websock.js's rQ* API and a Display that draws into a
// plain RGBA array with the canvas semantics of core/display.js. It is the interop oracle for our encoders
// (what noVNC draws is what a browser viewer shows) and the outside baseline for decoder benchmarks.
// One decoder instance per encoding per session, as core/rfb.js keeps them: ZRLE's and Tight's zlib
// streams live for the whole connection.

import { Encoding, RECT_HEADER_LENGTH } from "../../relay/rfb/constants.ts";
import type { Corpus, CorpusCheckpoint } from "./corpus.ts";

/** core/rfb.js `_fbDepth` for the format noVNC sets (rfb-codecs.md §3.1); 8 only for Intel AMT KVM. */
const NOVNC_DEPTH = 24;

/** Length of a FramebufferUpdate header: U8 type, U8 padding, U16 number-of-rectangles. */
const UPDATE_HEADER = 4;

// ---- the fakes ----

/**
 * core/websock.js's receive queue, only what the decoders call. Pushed bytes are copied in, as
 * `_recvMessage` does, so decoders that write into `rQshiftBytes(n, false)` views (Raw and Hextile
 * force A = 255 in place) never touch the caller's buffer.
 */
export class FakeWebsock {
  private rQ = new Uint8Array(1 << 16);
  private rQi = 0;
  private rQend = 0;

  /** Appends received bytes (websock.js `_recvMessage`, minus the 40 MiB cap: we hand whole rects). */
  push(bytes: Uint8Array): void {
    if (this.rQend === this.rQi) {
      this.rQend = 0;
      this.rQi = 0;
    }
    const unread = this.rQend - this.rQi;
    if (bytes.length > this.rQ.length - this.rQend) {
      const grown = new Uint8Array(Math.max(this.rQ.length * 2, (unread + bytes.length) * 2));
      grown.set(this.rQ.subarray(this.rQi, this.rQend));
      this.rQ = grown;
      this.rQend = unread;
      this.rQi = 0;
    }
    this.rQ.set(bytes, this.rQend);
    this.rQend += bytes.length;
  }

  /** Drops whatever is unread (after a failed rect). */
  clear(): void {
    this.rQi = 0;
    this.rQend = 0;
  }

  rQlen(): number {
    return this.rQend - this.rQi;
  }

  rQpeek8(): number {
    return this.rQ[this.rQi]!;
  }

  rQskipBytes(bytes: number): void {
    this.rQi += bytes;
  }

  rQshift8(): number {
    return this.rQ[this.rQi++]!;
  }

  rQshift16(): number {
    const v = (this.rQ[this.rQi]! << 8) | this.rQ[this.rQi + 1]!;
    this.rQi += 2;
    return v;
  }

  rQshift32(): number {
    const q = this.rQ;
    const i = this.rQi;
    this.rQi += 4;
    return ((q[i]! << 24) | (q[i + 1]! << 16) | (q[i + 2]! << 8) | q[i + 3]!) >>> 0;
  }

  rQshiftBytes(len: number, copy = true): Uint8Array {
    this.rQi += len;
    return copy ? this.rQ.slice(this.rQi - len, this.rQi) : this.rQ.subarray(this.rQi - len, this.rQi);
  }

  rQshiftTo(target: Uint8Array, len: number): void {
    target.set(this.rQ.subarray(this.rQi, this.rQi + len));
    this.rQi += len;
  }

  rQpeekBytes(len: number, copy = true): Uint8Array {
    return copy ? this.rQ.slice(this.rQi, this.rQi + len) : this.rQ.subarray(this.rQi, this.rQi + len);
  }

  /** True = "need more data"; `goback` rewinds that many bytes first, as websock.js does. */
  rQwait(_msg: string, num: number, goback?: number): boolean {
    if (this.rQend - this.rQi < num) {
      if (goback) {
        if (this.rQi < goback) throw new Error(`rQwait cannot backup ${goback} bytes`);
        this.rQi -= goback;
      }
      return true;
    }
    return false;
  }
}

/**
 * core/display.js drawing into RGBA bytes with the canvas 2D semantics it relies on: every call clips to
 * the framebuffer, fillRect paints opaque `rgb(color[0..2])`, blitImage is putImageData (RGBA copied as
 * is; every decoder forces A = 255 first), copyImage is drawImage of the canvas onto itself (the source
 * read as it was before the copy, clipped to the canvas with the destination shifted alike). No render
 * queue: it only ever holds images still decoding (imageRect), which this fake refuses.
 */
export class FakeDisplay {
  readonly data: Uint8Array;
  private readonly px32: Uint32Array;
  /** One pixel to turn R,G,B,255 into a Uint32 fill value in the host's byte order. */
  private readonly one8 = new Uint8Array(4);
  private readonly one32 = new Uint32Array(this.one8.buffer);
  /** The canvas's fillStyle: starts black, and an unparsable style (rgb(undefined,…)) leaves it as it was. */
  private fill = 0;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    // A fresh canvas is transparent black.
    this.data = new Uint8Array(width * height * 4);
    this.px32 = new Uint32Array(this.data.buffer, this.data.byteOffset, width * height);
    this.one8.set([0, 0, 0, 255]);
    this.fill = this.one32[0]!;
  }

  fillRect(x: number, y: number, w: number, h: number, color: ArrayLike<number>): void {
    const r = color[0];
    const g = color[1];
    const b = color[2];
    if (typeof r === "number" && typeof g === "number" && typeof b === "number") {
      this.one8[0] = r;
      this.one8[1] = g;
      this.one8[2] = b;
      this.fill = this.one32[0]!;
    }
    const x0 = Math.max(0, x);
    const x1 = Math.min(this.width, x + w);
    const y1 = Math.min(this.height, y + h);
    if (x0 >= x1) return;
    for (let row = Math.max(0, y); row < y1; row++) {
      const o = row * this.width;
      this.px32.fill(this.fill, o + x0, o + x1);
    }
  }

  blitImage(x: number, y: number, w: number, h: number, arr: Uint8Array, offset: number): void {
    // display.js views `arr` from its byteOffset + offset, exactly w*h*4 bytes.
    const src = new Uint8Array(arr.buffer, arr.byteOffset + offset, w * h * 4);
    const x0 = Math.max(0, x);
    const x1 = Math.min(this.width, x + w);
    const y1 = Math.min(this.height, y + h);
    if (x0 >= x1) return;
    const rowBytes = (x1 - x0) * 4;
    for (let row = Math.max(0, y); row < y1; row++) {
      const s = ((row - y) * w + (x0 - x)) * 4;
      this.data.set(src.subarray(s, s + rowBytes), (row * this.width + x0) * 4);
    }
  }

  copyImage(oldX: number, oldY: number, newX: number, newY: number, w: number, h: number): void {
    // Clip the source to the canvas and move the destination by the same amount, then clip the destination.
    let sx = oldX;
    let sy = oldY;
    let dx = newX;
    let dy = newY;
    const clip = (s: number, d: number, len: number, max: number): [number, number, number] => {
      if (s < 0) {
        d -= s;
        len += s;
        s = 0;
      }
      if (d < 0) {
        s -= d;
        len += d;
        d = 0;
      }
      len = Math.min(len, max - s, max - d);
      return [s, d, len];
    };
    [sx, dx, w] = clip(sx, dx, w, this.width);
    [sy, dy, h] = clip(sy, dy, h, this.height);
    if (w <= 0 || h <= 0) return;
    // Rows in the order that never reads a row already overwritten; copyWithin handles overlap within a row.
    const down = dy > sy;
    for (let k = 0; k < h; k++) {
      const r = down ? h - 1 - k : k;
      const s = (sy + r) * this.width + sx;
      this.px32.copyWithin((dy + r) * this.width + dx, s, s + w);
    }
  }

  imageRect(): never {
    throw new Error("noVNC harness: imageRect (JPEG/PNG decoded by the browser) is not reproduced");
  }

  videoFrame(): never {
    throw new Error("noVNC harness: videoFrame (H.264 via WebCodecs) is not reproduced");
  }
}

// ---- loading noVNC's modules ----

interface NoVncDecoder {
  /** True when the rect is complete; false = "need more bytes", progress kept on the instance. */
  decodeRect(
    x: number,
    y: number,
    w: number,
    h: number,
    sock: FakeWebsock,
    display: FakeDisplay,
    depth: number,
  ): boolean;
}

type NoVncDecoderClass = new () => NoVncDecoder;

/** The decoders core/rfb.js registers that draw synchronously, by wire encoding number. */
const DECODER_FILES: ReadonlyArray<[encoding: number, name: string, file: string]> = [
  [Encoding.Raw, "Raw", "raw.js"],
  [Encoding.CopyRect, "CopyRect", "copyrect.js"],
  [Encoding.RRE, "RRE", "rre.js"],
  [Encoding.Hextile, "Hextile", "hextile.js"],
  [Encoding.Zlib, "Zlib", "zlib.js"],
  [Encoding.Tight, "Tight", "tight.js"],
  [Encoding.ZRLE, "ZRLE", "zrle.js"],
];

async function loadDecoders(): Promise<Map<number, { name: string; ctor: NoVncDecoderClass }>> {
  // The package exports only core/rfb.js, so the decoders are imported by path from beside it.
  const base = new URL("decoders/", import.meta.resolve("@novnc/novnc"));
  // core/util/logging.js reads window.console when first imported; Bun has no window. Lend it one for
  // the import only, so no other test sees a `window` global.
  const g = globalThis as { window?: unknown };
  const lent = g.window === undefined;
  if (lent) g.window = globalThis;
  try {
    const out = new Map<number, { name: string; ctor: NoVncDecoderClass }>();
    for (const [encoding, name, file] of DECODER_FILES) {
      const mod = (await import(new URL(file, base).href)) as { default?: unknown };
      if (typeof mod.default !== "function") throw new Error(`noVNC ${file}: no default export class`);
      out.set(encoding, { name, ctor: mod.default as NoVncDecoderClass });
    }
    return out;
  } finally {
    if (lent) delete g.window;
  }
}

const DECODERS = await loadDecoders();

/** Encodings the harness decodes (wire numbers). */
export const NOVNC_ENCODINGS: readonly number[] = DECODER_FILES.map(([e]) => e);

// ---- sessions ----

export interface NoVncSession {
  readonly width: number;
  readonly height: number;
  /**
   * Decodes one rect with noVNC's decoder for `encoding`; `body` is exactly the rect's bytes after its
   * 12-byte header (not modified). Throws if noVNC throws, wants more bytes, or leaves bytes unread; after
   * a throw the session is failed (decoder state is mid-rect, as noVNC's `_fail` would leave it).
   */
  decodeRect(x: number, y: number, w: number, h: number, encoding: number, body: Uint8Array): void;
  /** The live framebuffer: RGBA, width*height*4 bytes, A = 255 wherever something was drawn. */
  rgba(): Uint8Array;
}

export function createNoVncSession(width: number, height: number): NoVncSession {
  const sock = new FakeWebsock();
  const display = new FakeDisplay(width, height);
  // core/rfb.js creates every decoder up front, one per encoding, for the connection's lifetime.
  const decoders = new Map<number, { name: string; decoder: NoVncDecoder }>();
  for (const [encoding, { name, ctor }] of DECODERS) decoders.set(encoding, { name, decoder: new ctor() });
  let failed: string | undefined;

  return {
    width,
    height,
    decodeRect(x, y, w, h, encoding, body) {
      if (failed !== undefined) throw new Error(`noVNC session already failed: ${failed}`);
      const entry = decoders.get(encoding);
      const where = `${entry?.name ?? `encoding ${encoding}`} rect ${w}x${h}+${x}+${y}, ${body.length}-byte body`;
      try {
        if (!entry) throw new Error("unsupported encoding");
        sock.push(body);
        if (!entry.decoder.decodeRect(x, y, w, h, sock, display, NOVNC_DEPTH)) {
          throw new Error(`decoder wants more bytes (${sock.rQlen()} unread)`);
        }
        const left = sock.rQlen();
        if (left !== 0) {
          throw new Error(left > 0 ? `${left} bytes left unread` : `read ${-left} bytes past the end`);
        }
      } catch (e) {
        failed = `${where}: ${e instanceof Error ? e.message : String(e)}`;
        sock.clear();
        throw new Error(`noVNC ${failed}`, { cause: e });
      }
    },
    rgba: () => display.data,
  };
}

// ---- recorded sessions ----

export interface NoVncCorpusRun {
  session: NoVncSession;
  rects: number;
  /** Sum of w*h over every rect decoded (CopyRect included). */
  pixels: number;
}

/**
 * Decodes a recorded session (shared/corpus) from its first update with noVNC, checking the stream's
 * update and rect headers against the index as it goes. At each checkpoint `onCheckpoint` gets the live
 * framebuffer (valid until it returns; copy it to keep it). `session` must be fresh (zlib streams start
 * with the recording); benchmarks pass one made outside the timed part.
 */
export function decodeCorpusWithNoVnc(
  corpus: Corpus,
  onCheckpoint?: (checkpoint: CorpusCheckpoint, rgba: Uint8Array) => void,
  session: NoVncSession = createNoVncSession(corpus.index.width, corpus.index.height),
): NoVncCorpusRun {
  const { s2c, index } = corpus;
  if (session.width !== index.width || session.height !== index.height) {
    throw new Error(
      `corpus ${corpus.name} is ${index.width}x${index.height}, session ${session.width}x${session.height}`,
    );
  }
  const view = new DataView(s2c.buffer, s2c.byteOffset, s2c.byteLength);
  const run: NoVncCorpusRun = { session, rects: 0, pixels: 0 };
  for (const update of index.updates) {
    const what = `corpus ${corpus.name} update ${update.i}`;
    if (s2c[update.offset] !== 0 || view.getUint16(update.offset + 2) !== update.rects.length) {
      throw new Error(`${what}: no FramebufferUpdate of ${update.rects.length} rects at ${update.offset}`);
    }
    let at = update.offset + UPDATE_HEADER;
    for (const r of update.rects) {
      if (
        r.offset !== at ||
        view.getUint16(at) !== r.x ||
        view.getUint16(at + 2) !== r.y ||
        view.getUint16(at + 4) !== r.w ||
        view.getUint16(at + 6) !== r.h ||
        view.getInt32(at + 8) !== r.enc
      ) {
        throw new Error(`${what}: rect header at ${at} differs from the index (${JSON.stringify(r)})`);
      }
      session.decodeRect(r.x, r.y, r.w, r.h, r.enc, s2c.subarray(at + RECT_HEADER_LENGTH, at + r.length));
      run.rects++;
      run.pixels += r.w * r.h;
      at += r.length;
    }
    if (at !== update.offset + update.length) throw new Error(`${what}: rects end at ${at}`);
    for (const cp of index.checkpoints) {
      if (cp.afterUpdate === update.i) onCheckpoint?.(cp, session.rgba());
    }
  }
  return run;
}

/** The framebuffer (an RGBA copy) at each checkpoint of a recorded session, by `afterUpdate`. */
export function noVncCheckpointFrames(corpus: Corpus): Map<number, Uint8Array> {
  const frames = new Map<number, Uint8Array>();
  decodeCorpusWithNoVnc(corpus, (cp, rgba) => frames.set(cp.afterUpdate, rgba.slice()));
  return frames;
}
