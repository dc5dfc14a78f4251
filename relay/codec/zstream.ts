// The codec core's zlib layer, on the runtime's native zlib (rfb-codecs.md §2.5 zlib, §2.6 ZRLE, §2.8 Tight;
// §7.1 and §9.2–9.3 for the measurements and the fan-out scheme).
//
// Inflate: one Inflater per upstream zlib stream: the zlib encoding and ZRLE have one for the whole
// connection, Tight four, each restarted by its reset bit (reset()). The decoders are synchronous, so the
// stream is too: inflate() takes one rect's compressed bytes and returns exactly the bytes they produce,
// under a hard output cap (bad-inputs.md table B, "Zlib encoding length").
//
// Deflate: "compress once, fan out". deflateRect() compresses one rect as raw deflate ending in a sync
// flush. Such a blob uses no dictionary and ends byte-aligned at a block boundary, so it is valid at any
// point of any deflate stream. A viewer's zlib stream is zlibStreamHeader() sent once before its first
// blob, then the shared blobs concatenated, as many and in whatever order that viewer is sent. The stream
// is never finished, so it never needs the adler-32 trailer: viewers inflate every rect with
// Z_SYNC_FLUSH and never reach the end of the stream.

import zlib from "node:zlib";
import { RfbError } from "../rfb/errors.ts";

const { Z_SYNC_FLUSH, Z_FINISH } = zlib.constants;

/** The deflate window (RFC 1951 §2): no back-reference reaches further, so no dictionary needs more. */
const WINDOW_SIZE = 32 * 1024;
/** First output buffer of a stream; it doubles up to the caller's cap. */
const FIRST_OUT = 64 * 1024;
/**
 * Output buffers up to this size stay with the stream for its next rect. A larger one (a whole-screen rect
 * of the zlib encoding) is dropped after use, so four idle Tight streams never hold a frame each.
 */
const KEEP_OUT = 1024 * 1024;
/** The empty stored block that ends a Z_SYNC_FLUSH or Z_FULL_FLUSH, byte-aligned (zlib.h deflate()). */
const SYNC_MARKER = [0x00, 0x00, 0xff, 0xff] as const;
/** An empty final block with fixed codes (BFINAL 1, BTYPE 01, end-of-block 0000000), RFC 1951 §3.2.3. */
const FINAL_EMPTY_BLOCK = new Uint8Array([0x03, 0x00]);

/**
 * Which machinery inflates. "stream": one persistent native zlib stream per Inflater, driven synchronously
 * (NativeStreamInflater), the default: the fastest of everything measured (645 MB/s of output on the
 * recorded ZRLE session against 507 for "oneshot", 249 for pako's Inflate; 987 / 581 / 342 on 64×64
 * rects) and exact for every producer flush mode. "oneshot": one native raw inflate per rect, with the
 * stream's last 32 KiB as preset dictionary (OneShotInflater): public API only, sync-flushed producers
 * only; the fallback where the handle is missing. Figures: bench/RESULTS.md "zlib".
 */
export type InflaterEngine = "stream" | "oneshot";

/** One upstream zlib stream. */
export interface Inflater {
  readonly engine: InflaterEngine;
  /**
   * Inflates the next compressed bytes of this stream (the first call's begin with the 2-byte zlib
   * header) and returns exactly the bytes they produce, in a new array the caller owns. Throws
   * RfbError LIMIT_EXCEEDED as soon as the output would pass maxOut bytes, having allocated no more than
   * maxOut + 1 for it, and CODEC_ERROR on any zlib error: corrupt data, a bad header, a preset
   * dictionary (FDICT), data after the end of the stream. After any error the stream is unusable (there is
   * no resync in RFB: the session ends) until reset().
   */
  inflate(data: Uint8Array, maxOut: number): Uint8Array;
  /**
   * As inflate(), but writes into `target` (at least maxOut + 1 bytes: the extra byte proves the cap is
   * passed) and returns the number of bytes produced: how a decoder inflates straight into the codec
   * core's input region without a copy.
   */
  inflateInto(data: Uint8Array, target: Uint8Array, maxOut: number): number;
  /** Starts a new stream: the next chunk begins with a zlib header (Tight's reset bits). */
  reset(): void;
  /** Frees the native state now rather than at garbage collection; the Inflater is unusable after. */
  close(): void;
}

/**
 * The Inflater of the fastest engine this runtime supports: "stream" where the native zlib handle can be
 * driven synchronously (Bun 1.4.5 and Node 20.20 can), "oneshot" otherwise. Pass an engine to force one.
 */
export function createInflater(engine: InflaterEngine = defaultEngine()): Inflater {
  return engine === "stream" ? new NativeStreamInflater() : new OneShotInflater();
}

/** Output caps are computed by the decoders from checked geometry; anything else is a bug, not peer input. */
function checkCap(maxOut: number): void {
  if (!Number.isSafeInteger(maxOut) || maxOut < 0)
    throw new RangeError(`maxOut must be a size, got ${maxOut}`);
}

const EMPTY = new Uint8Array(0);

function closedError(): RfbError {
  return new RfbError("INTERNAL", "zlib stream used after close()");
}

function failedError(cause: RfbError): RfbError {
  return new RfbError("CODEC_ERROR", `zlib stream failed earlier (${cause.message}); it needs reset()`);
}

function limitError(maxOut: number): RfbError {
  return new RfbError("LIMIT_EXCEEDED", `inflated data passes the ${maxOut}-byte cap`);
}

// ---------------------------------------------------------------------------------------------------------
// Engine "stream": a persistent native stream, driven synchronously.
//
// The public API has no synchronous streaming inflate: the *Sync functions and `_processChunk(chunk, flush)`
// close the native handle after one chunk, in Bun and in Node. But the handle underneath every zlib object
// has the call `_processChunk` loops on, `writeSync(flush, in, inOff, inLen, out, outOff, outLen)`,
// which reports [availOut, availIn] in the object's `_writeState` and errors through `handle.onerror`,
// synchronously. We run that loop ourselves and never close the handle. It is undocumented, so
// nativeStreamSupported() probes it once; test/codec/zstream.test.ts pins that the probe passes.

interface NativeZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  onerror: (message: string, errno: number) => void;
}

interface NativeZlibObject {
  readonly _handle?: NativeZlibHandle;
  readonly _writeState?: Uint32Array;
  close(): void;
}

interface NativeStream {
  object: NativeZlibObject;
  handle: NativeZlibHandle;
  /** [availOut, availIn] after each writeSync. */
  state: Uint32Array;
}

function openNativeStream(): NativeStream | undefined {
  const object = zlib.createInflate() as unknown as NativeZlibObject;
  const handle = object._handle;
  const state = object._writeState;
  if (typeof handle?.writeSync !== "function" || !(state instanceof Uint32Array) || state.length < 2) {
    object.close();
    return undefined;
  }
  return { object, handle, state };
}

export class NativeStreamInflater implements Inflater {
  readonly engine = "stream";
  #stream: NativeStream | undefined;
  /** Set by the handle's onerror during writeSync. */
  #zlibError: string | undefined;
  #failed: RfbError | undefined;
  #out: Uint8Array = EMPTY;

  constructor() {
    this.#open();
  }

  inflate(data: Uint8Array, maxOut: number): Uint8Array {
    checkCap(maxOut);
    const stream = this.#stream;
    if (!stream) throw closedError();
    if (this.#failed) throw failedError(this.#failed);
    if (data.length === 0) return EMPTY.slice();
    try {
      return this.#inflate(stream, data, maxOut);
    } catch (e) {
      this.#failed = e instanceof RfbError ? e : new RfbError("INTERNAL", String(e));
      throw e;
    }
  }

  inflateInto(data: Uint8Array, target: Uint8Array, maxOut: number): number {
    checkCap(maxOut);
    if (target.length < maxOut + 1)
      throw new RangeError(`target of ${target.length} bytes for a cap of ${maxOut}`);
    const stream = this.#stream;
    if (!stream) throw closedError();
    if (this.#failed) throw failedError(this.#failed);
    if (data.length === 0) return 0;
    try {
      return this.#drive(stream, data, target, maxOut);
    } catch (e) {
      this.#failed = e instanceof RfbError ? e : new RfbError("INTERNAL", String(e));
      throw e;
    }
  }

  /** One writeSync loop into a buffer that already holds the cap plus one byte: no growing, no copy. */
  #drive({ handle, state }: NativeStream, data: Uint8Array, out: Uint8Array, maxOut: number): number {
    const room = maxOut + 1;
    handle.writeSync(Z_SYNC_FLUSH, data, 0, data.length, out, 0, room);
    if (this.#zlibError !== undefined) throw new RfbError("CODEC_ERROR", `zlib: ${this.#zlibError}`);
    const availOut = state[0]!;
    const availIn = state[1]!;
    const produced = room - availOut;
    if (produced > maxOut) throw limitError(maxOut);
    if (availIn !== 0) throw new RfbError("CODEC_ERROR", "data after the end of the zlib stream");
    return produced;
  }

  reset(): void {
    this.close();
    this.#open();
  }

  close(): void {
    this.#stream?.object.close();
    this.#stream = undefined;
  }

  #open(): void {
    const stream = openNativeStream();
    if (!stream) throw new RfbError("INTERNAL", "this runtime's zlib handle has no synchronous writeSync");
    stream.handle.onerror = (message) => {
      this.#zlibError = message;
    };
    this.#stream = stream;
    this.#zlibError = undefined;
    this.#failed = undefined;
  }

  #inflate({ handle, state }: NativeStream, data: Uint8Array, maxOut: number): Uint8Array {
    // Room for one byte past the cap: zlib writing it is the proof that the cap is passed.
    const limit = maxOut + 1;
    let out = this.#out;
    if (out.length === 0) out = new Uint8Array(Math.min(limit, FIRST_OUT));
    let produced = 0;
    let inOff = 0;
    let inLen = data.length;
    for (;;) {
      const room = Math.min(out.length, limit) - produced;
      handle.writeSync(Z_SYNC_FLUSH, data, inOff, inLen, out, produced, room);
      if (this.#zlibError !== undefined) throw new RfbError("CODEC_ERROR", `zlib: ${this.#zlibError}`);
      const availOut = state[0]!;
      const availIn = state[1]!;
      produced += room - availOut;
      inOff += inLen - availIn;
      inLen = availIn;
      // Room left over means zlib has nothing more to give for this input.
      if (availOut !== 0) break;
      if (produced >= limit) throw limitError(maxOut);
      const bigger = new Uint8Array(Math.min(limit, Math.max(out.length * 2, FIRST_OUT)));
      bigger.set(out.subarray(0, produced));
      out = bigger;
    }
    // Input left over with room to spare: the producer finished the stream (final block, adler-32) and
    // sent more. RFB streams never end, so that is corrupt.
    if (inLen !== 0) throw new RfbError("CODEC_ERROR", "data after the end of the zlib stream");
    if (out.length <= KEEP_OUT && out.length > this.#out.length) this.#out = out;
    return out.slice(0, produced);
  }
}

let nativeStream: boolean | undefined;

/** Whether this runtime's zlib handle can be driven synchronously (probed once, on a real inflate). */
export function nativeStreamSupported(): boolean {
  if (nativeStream === undefined) {
    let ok = false;
    try {
      const text = new TextEncoder().encode("shadowrelay zlib probe");
      const inflater = new NativeStreamInflater();
      const header = zlib.deflateSync(text.subarray(0, 5), { finishFlush: Z_SYNC_FLUSH });
      const first = inflater.inflate(header, text.length);
      const second = inflater.inflate(deflateRect(text.subarray(5), 6), text.length);
      inflater.close();
      ok = Buffer.from(text).equals(Buffer.concat([first, second]));
    } catch {
      ok = false;
    }
    nativeStream = ok;
  }
  return nativeStream;
}

function defaultEngine(): InflaterEngine {
  return nativeStreamSupported() ? "stream" : "oneshot";
}

// ---------------------------------------------------------------------------------------------------------
// Engine "oneshot": public API only. Each rect is its own `inflateRawSync`, given the last 32 KiB this
// stream produced as preset dictionary. That equals continuing the stream only where the previous rect's
// data ended byte-aligned at a block boundary, which Z_SYNC_FLUSH (and Z_FULL_FLUSH) guarantee and
// nothing else does: Z_PARTIAL_FLUSH and Z_BLOCK end mid-byte (most of the time), Z_NO_FLUSH anywhere,
// and a one-shot call keeps no bit position or half-read block for the next call. Two checks:
// - Exact: the rect is inflated with Z_FINISH after an appended empty final block (03 00). zlib reaches
//   the end of the stream with every byte consumed only if the rect's data ended byte-aligned at a block
//   boundary: cut inside a stored block, the block's length swallows our bytes; cut inside a Huffman
//   block, our bits would have to finish its end-of-block code at once and then be a final block,
//   which their pattern (1, 1, then zeros) cannot do after a partial code. Anything else is
//   "unexpected end of file", or bytes left unread (the producer's own final block).
// - Deterministic: the rect must end in the sync marker 00 00 FF FF. A Z_PARTIAL_FLUSH rect never does
//   (its last byte holds part of an empty fixed block), yet about one in ten lands byte-aligned and
//   passes the exact check (41 of 400 in a trial, all decoded right); so such a producer is refused on
//   its first rect, with a message that names the cause, not on some random later one.

export class OneShotInflater implements Inflater {
  readonly engine = "oneshot";
  /** The last windowLength bytes this stream produced, oldest first. */
  #window = new Uint8Array(WINDOW_SIZE);
  #windowLength = 0;
  /** Header bytes seen so far (it may arrive split across chunks). */
  #headerLength = 0;
  #cmf = 0;
  #failed: RfbError | undefined;
  #closed = false;

  inflate(data: Uint8Array, maxOut: number): Uint8Array {
    checkCap(maxOut);
    if (this.#closed) throw closedError();
    if (this.#failed) throw failedError(this.#failed);
    try {
      return this.#inflate(data, maxOut);
    } catch (e) {
      this.#failed = e instanceof RfbError ? e : new RfbError("INTERNAL", String(e));
      throw e;
    }
  }

  inflateInto(data: Uint8Array, target: Uint8Array, maxOut: number): number {
    if (target.length < maxOut + 1)
      throw new RangeError(`target of ${target.length} bytes for a cap of ${maxOut}`);
    const out = this.inflate(data, maxOut);
    target.set(out);
    return out.length;
  }

  reset(): void {
    this.#windowLength = 0;
    this.#headerLength = 0;
    this.#failed = undefined;
    this.#closed = false;
  }

  close(): void {
    this.#closed = true;
  }

  #inflate(data: Uint8Array, maxOut: number): Uint8Array {
    let body = data;
    while (this.#headerLength < 2 && body.length > 0) {
      this.#header(body[0]!);
      body = body.subarray(1);
    }
    if (body.length === 0) return EMPTY.slice();
    const n = body.length;
    if (n < 4 || SYNC_MARKER.some((b, i) => body[n - 4 + i] !== b)) {
      throw new RfbError(
        "CODEC_ERROR",
        "rect data does not end in a zlib sync flush (00 00 FF FF); the oneshot engine cannot continue " +
          "a stream cut elsewhere (Z_PARTIAL_FLUSH, Z_BLOCK, Z_NO_FLUSH): use the stream engine",
      );
    }
    const input = new Uint8Array(n + FINAL_EMPTY_BLOCK.length);
    input.set(body);
    input.set(FINAL_EMPTY_BLOCK, n);
    let result: { buffer: Buffer; engine: { bytesWritten: number } };
    try {
      result = zlib.inflateRawSync(input, {
        finishFlush: Z_FINISH,
        // Node's option range is 1..2^32; a 0 cap is checked below.
        maxOutputLength: Math.min(Math.max(1, maxOut), 2 ** 32),
        dictionary: this.#windowLength > 0 ? this.#window.subarray(0, this.#windowLength) : undefined,
        info: true,
      }) as unknown as typeof result;
    } catch (e) {
      const err = e as { code?: unknown; message?: unknown };
      if (err.code === "ERR_BUFFER_TOO_LARGE") throw limitError(maxOut);
      const why = String(err.message ?? e);
      throw new RfbError(
        "CODEC_ERROR",
        why === "unexpected end of file"
          ? "rect data does not end at a deflate block boundary (unexpected end of file)"
          : `zlib: ${why}`,
      );
    }
    // Our final block left unread: the producer's own final block ended the stream inside this rect.
    if (result.engine.bytesWritten !== input.length) {
      throw new RfbError("CODEC_ERROR", "data after the end of the zlib stream");
    }
    const out = result.buffer;
    if (out.length > maxOut) throw limitError(maxOut);
    this.#slide(out);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  /** Checks the 2-byte zlib header (RFC 1950 §2.2) one byte at a time, as zlib's inflate does. */
  #header(byte: number): void {
    if (this.#headerLength === 0) {
      this.#cmf = byte;
      this.#headerLength = 1;
      return;
    }
    const cmf = this.#cmf;
    if ((cmf * 256 + byte) % 31 !== 0) throw new RfbError("CODEC_ERROR", "zlib: incorrect header check");
    if ((cmf & 0x0f) !== 8) throw new RfbError("CODEC_ERROR", "zlib: unknown compression method");
    if (cmf >> 4 > 7) throw new RfbError("CODEC_ERROR", "zlib: invalid window size");
    if (byte & 0x20) throw new RfbError("CODEC_ERROR", "zlib: preset dictionary (FDICT) is not supported"); // FDICT
    this.#headerLength = 2;
  }

  /** Keeps the last 32 KiB of (window ++ out). */
  #slide(out: Uint8Array): void {
    const window = this.#window;
    if (out.length >= WINDOW_SIZE) {
      window.set(out.subarray(out.length - WINDOW_SIZE));
      this.#windowLength = WINDOW_SIZE;
      return;
    }
    const keep = Math.min(this.#windowLength, WINDOW_SIZE - out.length);
    window.copyWithin(0, this.#windowLength - keep, this.#windowLength);
    window.set(out, keep);
    this.#windowLength = keep + out.length;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Deflate for the encoders: shared blobs, and the per-viewer stream header.

function checkLevel(level: number): void {
  if (!Number.isInteger(level) || level < 0 || level > 9) {
    throw new RangeError(`zlib level must be an integer 0..9, got ${level}`);
  }
}

/**
 * "huffman": entropy coding only, no string matching (Z_HUFFMAN_ONLY): 2–4× faster on photo-like pixels,
 * where matching finds little (bench/RESULTS.md "Codec core", Tight full colour).
 */
export type DeflateStrategy = "default" | "huffman";

/**
 * One rect as raw deflate ending in a sync flush (byte-aligned, ends in 00 00 FF FF, no dictionary, not
 * final): valid after zlibStreamHeader() and after any other blob, so one blob serves every viewer.
 */
export function deflateRect(
  data: Uint8Array,
  level: number,
  strategy: DeflateStrategy = "default",
): Uint8Array {
  checkLevel(level);
  const out = zlib.deflateRawSync(data, {
    level,
    finishFlush: Z_SYNC_FLUSH,
    ...(strategy === "huffman" ? { strategy: zlib.constants.Z_HUFFMAN_ONLY } : {}),
  });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * The 2-byte zlib header (RFC 1950 §2.2) a viewer's stream gets once, before its first deflateRect() blob:
 * deflate with a 32 KiB window, FLEVEL as zlib's deflate sets it for `level`, no preset dictionary, and
 * FCHECK making it a multiple of 31. `78 01` for levels 0–1, `78 5E` for 2–5, `78 9C` for 6, `78 DA` for
 * 7–9. FLEVEL is informational; inflaters ignore it.
 */
export function zlibStreamHeader(level: number): Uint8Array {
  checkLevel(level);
  const flevel = level < 2 ? 0 : level < 6 ? 1 : level === 6 ? 2 : 3; // zlib deflate.c level_flags
  const cmf = 0x78; // CM 8 (deflate), CINFO 7 (32 KiB window)
  const flg = flevel << 6; // FDICT 0
  return new Uint8Array([cmf, flg + 31 - ((cmf * 256 + flg) % 31)]);
}
