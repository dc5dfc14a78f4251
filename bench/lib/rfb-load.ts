// The load client of bench/pipe.bench.ts: N RFB viewers over WebSocket (binary frames, the noVNC way) that
// each ask for the whole screen in Raw, non-incremental, again and again — one request outstanding, the
// next one sent when the last byte of the previous update has arrived — and count the bytes. It runs as a
// process of its own (`bun bench/lib/rfb-load.ts CONFIG.json`) so that its CPU (TLS decryption, framing)
// is never booked to the process being measured; the orchestrator drives it with lines on stdin
// ("sample", "stop") and reads JSON lines on stdout. It exits when stdin closes, so it cannot outlive the
// bench. Framing only counts: a Raw rect is a 12-byte header and w·h·bytesPerPixel bytes (RFC 6143
// §7.6.1, §7.7.1), skipped without copying.

/** Tunables of the load client. */
export const RFB_LOAD_DEFAULTS = Object.freeze({
  /** Milliseconds for one viewer's WebSocket to open and its RFB handshake to reach ServerInit. @default 20000 */
  connectTimeoutMs: 20_000,
  /** Viewers opened at once while connecting (the relay redeems tickets and asks the agent per viewer). @default 10 */
  connectConcurrency: 10,
  /** Longest desktop name, colour map or ServerCutText accepted from the server, bytes. @default 1 MiB */
  maxSkipField: 1024 * 1024,
});

export interface LoadConfig {
  /** One ws:// or wss:// URL per viewer (each relay URL carries its own one-time ticket). */
  urls: string[];
  /** PEM of the only certificate to trust for wss:// (the relay's self-signed cert.pem). */
  caPem?: string;
  /** Offered as Sec-WebSocket-Protocol; websockify and the relay both accept "binary". */
  protocol?: string;
  connectTimeoutMs?: number;
  connectConcurrency?: number;
}

/** What one viewer has received since its WebSocket opened. */
export interface ViewerStats {
  /** Every WebSocket payload byte, handshake included. */
  bytes: number;
  /** Whole FramebufferUpdates received. */
  frames: number;
}

/** A line the load process prints (JSON). */
export type LoadEvent =
  | { event: "ready"; viewers: number; width: number; height: number; bytesPerPixel: number; ms: number }
  | {
      event: "sample";
      /** performance.now() in the load process when the counters were read. */
      t: number;
      /** Bytes received by all viewers so far. */
      bytes: number;
      /** Whole frames each viewer has received so far, in URL order. */
      frames: number[];
    }
  | { event: "error"; message: string }
  | { event: "done" };

const RFB_VERSION_38 = "RFB 003.008\n";
const SECURITY_NONE = 1;
const ENCODING_RAW = 0;
const MSG_FRAMEBUFFER_UPDATE = 0;
const MSG_SET_COLOUR_MAP_ENTRIES = 1;
const MSG_BELL = 2;
const MSG_SERVER_CUT_TEXT = 3;

type Phase =
  | "version"
  | "security-count"
  | "security-types"
  | "security-result"
  | "server-init"
  | "msg-type"
  | "fbu-header"
  | "rect-header"
  | "colour-header"
  | "cut-header";

/**
 * The RFB 3.8 client side of one viewer, as a resumable byte counter: fixed-size fields are gathered into
 * a small scratch buffer, bodies (Raw pixels, names, cut text) are skipped by count, so any chunking of the
 * stream gives the same result. `send` writes to the transport.
 */
export class RawFrameCounter {
  readonly stats: ViewerStats = { bytes: 0, frames: 0 };
  width = 0;
  height = 0;
  bytesPerPixel = 0;
  /** Set once ServerInit has been read and the first request sent. */
  onReady: () => void = () => {};
  /** Each whole FramebufferUpdate. */
  onFrame: () => void = () => {};

  #phase: Phase = "version";
  readonly #scratch = new Uint8Array(256);
  #need = 12;
  #have = 0;
  #skip = 0;
  #rectsLeft = 0;
  readonly #send: (bytes: Uint8Array) => void;
  readonly #maxSkip: number;

  constructor(send: (bytes: Uint8Array) => void, maxSkip = RFB_LOAD_DEFAULTS.maxSkipField) {
    this.#send = send;
    this.#maxSkip = maxSkip;
  }

  /** Feeds received bytes; throws on anything a Raw-only RFB 3.8 server would not send. */
  feed(chunk: Uint8Array): void {
    this.stats.bytes += chunk.length;
    let off = 0;
    const len = chunk.length;
    while (off < len) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, len - off);
        this.#skip -= n;
        off += n;
        if (this.#skip === 0) this.#bodyDone();
        continue;
      }
      const n = Math.min(this.#need - this.#have, len - off);
      this.#scratch.set(chunk.subarray(off, off + n), this.#have);
      this.#have += n;
      off += n;
      if (this.#have === this.#need) {
        this.#have = 0;
        this.#field(new DataView(this.#scratch.buffer, 0, this.#need));
      }
    }
  }

  #expect(phase: Phase, bytes: number): void {
    this.#phase = phase;
    this.#need = bytes;
  }

  #skipBody(bytes: number, what: string): void {
    if (bytes > this.#maxSkip && what !== "pixels") throw new Error(`${what} of ${bytes} bytes`);
    this.#skip = bytes;
    if (bytes === 0) this.#bodyDone();
  }

  /** A skipped body ended: the phase set before the skip says what comes next. */
  #bodyDone(): void {
    // Names, colour maps and cut text set "msg-type" before their skip: nothing more to do for them.
    if (this.#phase === "rect-header") this.#rectDone();
  }

  #rectDone(): void {
    this.#rectsLeft--;
    if (this.#rectsLeft === 0) this.#frameDone();
    else this.#expect("rect-header", 12);
  }

  #frameDone(): void {
    this.stats.frames++;
    this.#expect("msg-type", 1);
    this.#request();
    this.onFrame();
  }

  #request(): void {
    // FramebufferUpdateRequest (RFC 6143 §7.5.3): type 3, incremental 0, x, y, w, h.
    const m = new Uint8Array(10);
    const v = new DataView(m.buffer);
    m[0] = 3;
    m[1] = 0;
    v.setUint16(6, this.width);
    v.setUint16(8, this.height);
    this.#send(m);
  }

  #field(v: DataView): void {
    switch (this.#phase) {
      case "version": {
        const text = new TextDecoder().decode(new Uint8Array(v.buffer, 0, 12));
        if (text !== RFB_VERSION_38) throw new Error(`server speaks ${JSON.stringify(text)}, not 3.8`);
        this.#send(new TextEncoder().encode(RFB_VERSION_38));
        this.#expect("security-count", 1);
        return;
      }
      case "security-count": {
        const n = v.getUint8(0);
        if (n === 0) throw new Error("server refused the connection (no security types)");
        this.#expect("security-types", n);
        return;
      }
      case "security-types": {
        const types = new Uint8Array(v.buffer, 0, this.#need);
        if (!types.includes(SECURITY_NONE))
          throw new Error(`server offers security types ${types.join(",")}`);
        this.#send(new Uint8Array([SECURITY_NONE]));
        this.#expect("security-result", 4);
        return;
      }
      case "security-result": {
        if (v.getUint32(0) !== 0) throw new Error("security result: failed");
        this.#send(new Uint8Array([1])); // ClientInit, shared-flag 1
        this.#expect("server-init", 24);
        return;
      }
      case "server-init": {
        // width, height, pixel format (bits-per-pixel at offset 4), name length (RFC 6143 §7.3.2).
        this.width = v.getUint16(0);
        this.height = v.getUint16(2);
        this.bytesPerPixel = v.getUint8(4) / 8;
        const nameLength = v.getUint32(20);
        // SetEncodings [Raw] (RFC 6143 §7.5.2): type 2, padding, count 1, encoding 0.
        const enc = new Uint8Array(8);
        enc[0] = 2;
        new DataView(enc.buffer).setUint16(2, 1);
        new DataView(enc.buffer).setInt32(4, ENCODING_RAW);
        this.#send(enc);
        this.#request();
        this.#expect("msg-type", 1);
        this.#skipBody(nameLength, "desktop name");
        this.onReady();
        return;
      }
      case "msg-type": {
        const t = v.getUint8(0);
        if (t === MSG_FRAMEBUFFER_UPDATE) this.#expect("fbu-header", 3);
        else if (t === MSG_SET_COLOUR_MAP_ENTRIES) this.#expect("colour-header", 5);
        else if (t === MSG_SERVER_CUT_TEXT) this.#expect("cut-header", 7);
        else if (t !== MSG_BELL) throw new Error(`unexpected server message type ${t}`);
        return;
      }
      case "fbu-header": {
        this.#rectsLeft = v.getUint16(1);
        if (this.#rectsLeft === 0) this.#frameDone();
        else this.#expect("rect-header", 12);
        return;
      }
      case "rect-header": {
        const w = v.getUint16(4);
        const h = v.getUint16(6);
        const encoding = v.getInt32(8);
        if (encoding !== ENCODING_RAW)
          throw new Error(`rect in encoding ${encoding}, only Raw was asked for`);
        // The phase stays "rect-header": #bodyDone then counts the rect.
        this.#skipBody(w * h * this.bytesPerPixel, "pixels");
        return;
      }
      case "colour-header": {
        this.#expect("msg-type", 1);
        this.#skipBody(v.getUint16(3) * 6, "colour map");
        return;
      }
      case "cut-header": {
        this.#expect("msg-type", 1);
        this.#skipBody(v.getUint32(3), "cut text");
        return;
      }
    }
  }
}

/**
 * Proves the counter on a hand-built 3.8 stream (handshake, a Bell, a ServerCutText, a two-rect 3×2 Raw
 * update, an empty update) fed whole, byte by byte, and split in two at every offset: each way must count
 * the same two frames and answer with the same client bytes. Throws otherwise; the bench runs it first.
 */
export function checkRawFrameCounter(): void {
  const u16 = (v: number) => [v >> 8, v & 0xff];
  const u32 = (v: number) => [v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff];
  const name = [...new TextEncoder().encode("bench")];
  const pf = [32, 24, 0, 1, ...u16(255), ...u16(255), ...u16(255), 16, 8, 0, 0, 0, 0];
  const rect = (x: number, w: number, h: number) => [...u16(x), ...u16(0), ...u16(w), ...u16(h), ...u32(0)];
  // biome-ignore format: one protocol unit per line
  const stream = new Uint8Array([
    ...new TextEncoder().encode(RFB_VERSION_38),
    2, 2, SECURITY_NONE, // two security types: VncAuth, None
    ...u32(0), // SecurityResult: OK
    ...u16(3), ...u16(2), ...pf, ...u32(name.length), ...name, // ServerInit: 3×2, 32 bpp
    MSG_BELL,
    MSG_SERVER_CUT_TEXT, 0, 0, 0, ...u32(2), 0x68, 0x69, // "hi"
    MSG_FRAMEBUFFER_UPDATE, 0, ...u16(2), // two rects
    ...rect(0, 2, 2), ...new Array<number>(2 * 2 * 4).fill(7),
    ...rect(2, 1, 2), ...new Array<number>(1 * 2 * 4).fill(9),
    MSG_FRAMEBUFFER_UPDATE, 0, ...u16(0), // no rects
  ]);
  const run = (chunks: Uint8Array[]): string => {
    const sent: number[] = [];
    const c = new RawFrameCounter((b) => sent.push(...b));
    for (const chunk of chunks) c.feed(chunk);
    return `${c.stats.frames} ${c.stats.bytes} ${c.width}x${c.height}x${c.bytesPerPixel} ${sent.join(",")}`;
  };
  const whole = run([stream]);
  // 12 version + 1 security + 1 ClientInit + 8 SetEncodings + 3 × 10 FramebufferUpdateRequest = 52 bytes.
  if (!whole.startsWith(`2 ${stream.length} 3x2x4 `) || whole.split(",").length !== 52) {
    throw new Error(`RawFrameCounter self-check: ${whole.slice(0, 80)}`);
  }
  const ways = [[...stream].map((b) => new Uint8Array([b]))];
  for (let i = 1; i < stream.length; i++) ways.push([stream.subarray(0, i), stream.subarray(i)]);
  for (const chunks of ways) {
    if (run(chunks) !== whole)
      throw new Error(`RawFrameCounter self-check: chunking ${chunks.length} differs`);
  }
}

/** One viewer on a WebSocket; resolves once its handshake is done and the first request is out. */
export function openViewer(
  url: string,
  o: Pick<LoadConfig, "caPem" | "protocol" | "connectTimeoutMs">,
  onError: (message: string) => void,
): Promise<{ counter: RawFrameCounter; close(): void }> {
  return new Promise((resolve, reject) => {
    const BunWebSocket = WebSocket as unknown as new (
      url: string,
      options: Bun.WebSocketOptions,
    ) => WebSocket;
    const ws = new BunWebSocket(url, {
      ...(o.protocol ? { protocols: [o.protocol] } : {}),
      ...(o.caPem ? { tls: { ca: o.caPem } } : {}),
      perMessageDeflate: false,
    });
    ws.binaryType = "arraybuffer";
    const counter = new RawFrameCounter((bytes) => ws.send(bytes as Uint8Array<ArrayBuffer>));
    let settled = false;
    const timeoutMs = o.connectTimeoutMs ?? RFB_LOAD_DEFAULTS.connectTimeoutMs;
    const timer = setTimeout(() => fail(`no ServerInit within ${timeoutMs} ms`), timeoutMs);
    const fail = (message: string): void => {
      clearTimeout(timer);
      if (!settled) {
        settled = true;
        reject(new Error(message));
      } else onError(message);
      ws.close();
    };
    counter.onReady = () => {
      clearTimeout(timer);
      settled = true;
      resolve({ counter, close: () => ws.close(1000, "bench done") });
    };
    ws.onmessage = (e) => {
      if (typeof e.data === "string") return fail("text frame");
      try {
        counter.feed(new Uint8Array(e.data as ArrayBuffer));
      } catch (err) {
        fail(err instanceof Error ? err.message : String(err));
      }
    };
    ws.onclose = (e) => {
      if (e.code !== 1000 || !settled) fail(`closed (${e.code}) ${e.reason}`);
    };
  });
}

/** Opens every viewer (connectConcurrency at a time); resolves when each has had its first whole frame. */
export async function startLoad(
  config: LoadConfig,
  onError: (message: string) => void,
): Promise<{ counters: RawFrameCounter[]; close(): void }> {
  const viewers: Awaited<ReturnType<typeof openViewer>>[] = [];
  const concurrency = config.connectConcurrency ?? RFB_LOAD_DEFAULTS.connectConcurrency;
  const queue = [...config.urls];
  const closeAll = (): void => {
    for (const v of viewers) v.close();
  };
  try {
    await Promise.all(
      Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
        for (let url = queue.shift(); url !== undefined; url = queue.shift()) {
          viewers.push(await openViewer(url, config, onError));
        }
      }),
    );
  } catch (e) {
    closeAll();
    throw e;
  }
  const counters = viewers.map((v) => v.counter);
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (counters.every((c) => c.stats.frames > 0)) resolve();
    };
    for (const c of counters) c.onFrame = check;
    check();
  });
  for (const c of counters) c.onFrame = () => {};
  return { counters, close: closeAll };
}

function emit(e: LoadEvent): void {
  process.stdout.write(`${JSON.stringify(e)}\n`);
}

async function main(configFile: string): Promise<void> {
  const config = (await Bun.file(configFile).json()) as LoadConfig;
  const started = performance.now();
  let failed = false;
  const onError = (message: string): void => {
    if (failed) return;
    failed = true;
    emit({ event: "error", message });
  };
  const load = await startLoad(config, onError);
  const first = load.counters[0];
  emit({
    event: "ready",
    viewers: load.counters.length,
    width: first?.width ?? 0,
    height: first?.height ?? 0,
    bytesPerPixel: first?.bytesPerPixel ?? 0,
    ms: Math.round(performance.now() - started),
  });
  for await (const line of console) {
    const command = line.trim();
    if (command === "sample") {
      const t = performance.now();
      let bytes = 0;
      for (const c of load.counters) bytes += c.stats.bytes;
      emit({ event: "sample", t, bytes, frames: load.counters.map((c) => c.stats.frames) });
    } else if (command === "stop") break;
  }
  load.close();
  emit({ event: "done" });
  // Let the close frames go out before the process ends.
  await Bun.sleep(200);
  process.exit(0);
}

if (import.meta.main) {
  const file = process.argv[2];
  if (file === undefined) {
    console.error("usage: bun bench/lib/rfb-load.ts CONFIG.json   (driven by bench/pipe.bench.ts)");
    process.exit(2);
  }
  main(file).catch((e: unknown) => {
    emit({ event: "error", message: e instanceof Error ? e.message : String(e) });
    process.exit(1);
  });
}
