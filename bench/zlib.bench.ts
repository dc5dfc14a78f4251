// zlib on the relay's hot path (relay/codec/zstream.ts), every candidate measured in the same run
// (STYLE.md "Benchmarks"; rfb-codecs.md §7.1 for the earlier survey).
// Inflate, one upstream stream rect by rect, output MB/s, ratio against pako (the fastest synchronous
// option in rfb-codecs.md §9.2):
//   (a) pako Inflate kept alive, Z_SYNC_FLUSH per rect;
//   (b) zstream "oneshot": native inflateRawSync per rect, last 32 KiB as dictionary, with its checks
//       (copy + Z_FINISH after an empty final block), and (b0) the same without the checks;
//   (c) native async createInflate + flush(cb) per rect, for the record;
//   (d) zstream "stream": the persistent native handle driven synchronously (writeSync).
// Inputs: the recorded TigerVNC ZRLE session (214 rects), and a synthetic 1080p frame (3-byte pixels:
// solid, 2-colour text, gradient, noisy photo) cut into 32 strips of 1920×34 (≤ 65536 px) or into 510
// tiles of 64×64 (small incremental updates), each deflated as one persistent stream, level 6, sync
// flush per rect (what a device sends). Each section runs 5 rounds in rotated order (the VM is shared).
// Deflate of that frame: deflateRect (one-shot raw + sync flush, the shared blob) at levels 1, 2, 3, 6,
// input MB/s and bytes per frame, against persistent streams (pako, native async, native handle) for the
// size the independent blobs lose; then sizes alone for the frame as 64×64 rects.
// Run: npx bun bench/zlib.bench.ts (or: bun bench/run.ts zlib)

import zlib from "node:zlib";
import pako from "pako";
import { Bench } from "tinybench";
import { NativeStreamInflater, OneShotInflater, deflateRect } from "../relay/codec/zstream.ts";
import { prng } from "../test/helpers/bytes.ts";
import { loadCorpus } from "../test/helpers/corpus.ts";

const { Z_SYNC_FLUSH } = zlib.constants;
const MAX_OUT = 16 * 1024 * 1024;

// --- Inputs

function corpusChunks(): Uint8Array[] {
  const corpus = loadCorpus("zrle");
  const view = new DataView(corpus.s2c.buffer, corpus.s2c.byteOffset, corpus.s2c.byteLength);
  return corpus.index.updates.flatMap((u) =>
    u.rects.map((r) => corpus.s2c.subarray(r.offset + 16, r.offset + 16 + view.getUint32(r.offset + 12))),
  );
}

const WIDTH = 1920;
const HEIGHT = 1080;
const STRIP = 34; // 1920 × 34 = 65280 px ≤ 65536 (TigerVNC's sub-rect budget); 32 strips

/** A synthetic desktop in 3-byte pixels: four vertical bands, so every strip mixes all four. */
function syntheticFrame(): Uint8Array {
  const next = prng(0x5eed);
  const frame = new Uint8Array(WIDTH * HEIGHT * 3);
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      const i = (y * WIDTH + x) * 3;
      let r: number;
      let g: number;
      let b: number;
      if (x < 480) {
        [r, g, b] = [0x3a, 0x6e, 0xa5]; // solid background
      } else if (x < 960) {
        const ink = y % 16 < 12 && x % 9 < 7 && next() % 3 === 0; // glyph-like noise on text rows
        [r, g, b] = ink ? [0x10, 0x10, 0x10] : [0xff, 0xff, 0xff];
      } else if (x < 1440) {
        [r, g, b] = [(x - 960) >> 1, y >> 2, 255 - ((x - 960) >> 1)]; // gradient
      } else {
        const j = (next() >>> 24) & 0x07; // photo: smooth base plus 3 bits of noise
        [r, g, b] = [((x * 3 + y) & 0xff) ^ j, ((y * 2) & 0xff) ^ j, ((x + y * 5) & 0xff) ^ (j >> 1)];
      }
      frame[i] = r;
      frame[i + 1] = g;
      frame[i + 2] = b;
    }
  }
  return frame;
}

function strips(frame: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let y = 0; y < HEIGHT; y += STRIP) {
    const h = Math.min(STRIP, HEIGHT - y);
    out.push(frame.subarray(y * WIDTH * 3, (y + h) * WIDTH * 3));
  }
  return out;
}

/** One persistent pako stream, sync flush per rect: chunk i is rect i's compressed data. */
function pakoDeflateChunks(rects: Uint8Array[], level: number): Uint8Array[] {
  const deflater = new pako.Deflate({ level });
  let got: Uint8Array[] = [];
  deflater.onData = (c) => got.push(c);
  return rects.map((r) => {
    deflater.push(r, pako.constants.Z_SYNC_FLUSH);
    const chunk = Buffer.concat(got);
    got = [];
    return new Uint8Array(chunk);
  });
}

// --- Inflate candidates: each takes a whole stream's chunks and returns the total output length.

function inflatePako(chunks: Uint8Array[]): number {
  const inflater = new pako.Inflate();
  let got: Uint8Array[] = [];
  inflater.onData = (c) => got.push(c);
  let total = 0;
  for (const c of chunks) {
    inflater.push(c, pako.constants.Z_SYNC_FLUSH);
    if (inflater.err) throw new Error(`pako: ${inflater.msg}`);
    // One array per rect, as the other candidates return.
    const out = got.length === 1 ? got[0]! : new Uint8Array(Buffer.concat(got));
    total += out.length;
    got = [];
  }
  return total;
}

function inflateWith(make: () => { inflate(d: Uint8Array, max: number): Uint8Array }) {
  return (chunks: Uint8Array[]): number => {
    const inflater = make();
    let total = 0;
    for (const c of chunks) total += inflater.inflate(c, MAX_OUT).length;
    return total;
  };
}

/** (b0): the one-shot idea with no checks at all: header stripped, dictionary, Z_SYNC_FLUSH. */
function inflateOneShotBare(chunks: Uint8Array[]): number {
  const window = new Uint8Array(32768);
  let windowLength = 0;
  let total = 0;
  chunks.forEach((c, i) => {
    const out = zlib.inflateRawSync(i === 0 ? c.subarray(2) : c, {
      finishFlush: Z_SYNC_FLUSH,
      dictionary: windowLength > 0 ? window.subarray(0, windowLength) : undefined,
    });
    if (out.length >= 32768) {
      window.set(out.subarray(out.length - 32768));
      windowLength = 32768;
    } else {
      const keep = Math.min(windowLength, 32768 - out.length);
      window.copyWithin(0, windowLength - keep, windowLength);
      window.set(out, keep);
      windowLength = keep + out.length;
    }
    total += out.length;
  });
  return total;
}

/** (c): node:zlib's async persistent stream, one flush(Z_SYNC_FLUSH) per rect. */
async function inflateAsync(chunks: Uint8Array[]): Promise<number> {
  const inflater = zlib.createInflate();
  let got: Buffer[] = [];
  inflater.on("data", (c: Buffer) => got.push(c));
  let total = 0;
  for (const c of chunks) {
    await new Promise<void>((resolve, reject) => {
      inflater.once("error", reject);
      inflater.write(c);
      inflater.flush(Z_SYNC_FLUSH, () => {
        inflater.off("error", reject);
        resolve();
      });
    });
    total += Buffer.concat(got).length;
    got = [];
  }
  inflater.close();
  return total;
}

// --- Deflate candidates: each takes the frame's rects and returns the compressed bytes per frame.

function deflateOneShot(rects: Uint8Array[], level: number): number {
  let n = 0;
  for (const r of rects) n += deflateRect(r, level).length;
  return n;
}

function deflatePakoPersistent(rects: Uint8Array[], level: number): number {
  return pakoDeflateChunks(rects, level).reduce((n, c) => n + c.length, 0);
}

async function deflateAsyncPersistent(rects: Uint8Array[], level: number): Promise<number> {
  const deflater = zlib.createDeflate({ level });
  let n = 0;
  deflater.on("data", (c: Buffer) => {
    n += c.length;
  });
  for (const r of rects) {
    await new Promise<void>((resolve) => {
      deflater.write(r);
      deflater.flush(Z_SYNC_FLUSH, () => resolve());
    });
  }
  deflater.close();
  return n;
}

interface DeflateHandle {
  writeSync(f: number, i: Uint8Array, io: number, il: number, o: Uint8Array, oo: number, ol: number): void;
  reset(): void;
  onerror: (message: string) => void;
}

/** The persistent native handle, driven synchronously as zstream's "stream" inflater drives its own. */
function deflateHandlePersistent(rects: Uint8Array[], level: number, resetEach: boolean): number {
  const object = zlib.createDeflateRaw({ level }) as unknown as {
    _handle: DeflateHandle;
    _writeState: Uint32Array;
    close(): void;
  };
  const handle = object._handle;
  handle.onerror = (message) => {
    throw new Error(message);
  };
  const out = new Uint8Array(512 * 1024); // > any strip's worst case (195840 B stored)
  let n = 0;
  for (const r of rects) {
    handle.writeSync(Z_SYNC_FLUSH, r, 0, r.length, out, 0, out.length);
    if (object._writeState[1] !== 0) throw new Error("deflate output buffer too small");
    n += out.length - object._writeState[0]!;
    if (resetEach) handle.reset();
  }
  object.close();
  return n;
}

// --- Running

interface Row {
  section: string;
  task: string;
  /** Median over the rounds of each round's median. */
  medianMs: number;
  /** Fastest and slowest round medians: the spread the shared VM adds. */
  bestMs: number;
  worstMs: number;
  mbPerS: number;
  bytes?: number;
  baseline: string;
}

let sink = 0;

/** Rounds per section; the task order rotates each round, so load from other workers spreads over all. */
const ROUNDS = 5;

async function timed(
  section: string,
  tasks: Array<{ name: string; fn: () => unknown }>,
  mbPerIteration: number,
  baseline: string,
  bytesOf: Map<string, number> = new Map(),
): Promise<Row[]> {
  const medians = new Map<string, number[]>(tasks.map((t) => [t.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const bench = new Bench({
      name: section,
      time: 300,
      iterations: 8,
      warmup: true,
      warmupTime: 100,
      warmupIterations: 4,
      throws: true,
    });
    for (let k = 0; k < tasks.length; k++) {
      const t = tasks[(k + round) % tasks.length]!;
      bench.add(t.name, async () => {
        const v = await t.fn();
        sink += typeof v === "number" ? v : 0;
      });
    }
    await bench.run();
    for (const task of bench.tasks) {
      const result = task.result;
      if (result.state !== "completed") throw new Error(`${section} / ${task.name}: ${result.state}`);
      medians.get(task.name)!.push(result.latency.p50);
    }
  }
  return tasks.map((t) => {
    const ms = medians.get(t.name)!.sort((a, b) => a - b);
    const medianMs = ms[Math.floor(ms.length / 2)]!;
    return {
      section,
      task: t.name,
      medianMs,
      bestMs: ms[0]!,
      worstMs: ms[ms.length - 1]!,
      mbPerS: mbPerIteration / (medianMs / 1000),
      bytes: bytesOf.get(t.name),
      baseline,
    };
  });
}

async function inflateSection(section: string, chunks: Uint8Array[]): Promise<Row[]> {
  const want = inflatePako(chunks);
  const candidates: Array<{ name: string; fn: (c: Uint8Array[]) => number | Promise<number> }> = [
    { name: "(a) pako Inflate, persistent", fn: inflatePako },
    { name: "(b) zstream oneshot (dictionary + checks)", fn: inflateWith(() => new OneShotInflater()) },
    { name: "(b0) inflateRawSync + dictionary, no checks", fn: inflateOneShotBare },
    { name: "(c) node:zlib async stream + flush(cb)", fn: inflateAsync },
    { name: "(d) zstream stream (native handle, sync)", fn: inflateWith(() => new NativeStreamInflater()) },
  ];
  // Every candidate must produce the same byte count before anything is timed.
  for (const c of candidates) {
    const got = await c.fn(chunks);
    if (got !== want) throw new Error(`${section}: ${c.name} produced ${got} bytes, pako ${want}`);
  }
  const inBytes = chunks.reduce((n, c) => n + c.length, 0);
  console.log(`${section}: ${chunks.length} rects, ${inBytes} B compressed → ${want} B`);
  return timed(
    section,
    candidates.map((c) => ({ name: c.name, fn: () => c.fn(chunks) })),
    want / 1e6,
    candidates[0]!.name,
  );
}

async function deflateSection(rects: Uint8Array[], level: number): Promise<Row[]> {
  const section = `deflate 1080p frame, level ${level}`;
  const oneShot = "deflateRect (one-shot raw + sync flush)";
  const candidates: Array<{ name: string; fn: () => number | Promise<number> }> = [
    { name: oneShot, fn: () => deflateOneShot(rects, level) },
    {
      name: "native handle, reset per rect (= one-shot bytes)",
      fn: () => deflateHandlePersistent(rects, level, true),
    },
    { name: "native handle, persistent, sync", fn: () => deflateHandlePersistent(rects, level, false) },
    { name: "node:zlib async stream, persistent", fn: () => deflateAsyncPersistent(rects, level) },
    { name: "pako Deflate, persistent", fn: () => deflatePakoPersistent(rects, level) },
  ];
  const bytes = new Map<string, number>();
  for (const c of candidates) bytes.set(c.name, await c.fn());
  if (bytes.get(oneShot) !== bytes.get(candidates[1]!.name)) {
    throw new Error("the reset handle's bytes differ from deflateRect's");
  }
  const inBytes = rects.reduce((n, r) => n + r.length, 0);
  return timed(section, candidates, inBytes / 1e6, oneShot, bytes);
}

/** 64×64 tiles of the frame, row by row, each one rect (the size of small incremental updates). */
function tiles(frame: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let ty = 0; ty < HEIGHT; ty += 64) {
    for (let tx = 0; tx < WIDTH; tx += 64) {
      const w = Math.min(64, WIDTH - tx);
      const h = Math.min(64, HEIGHT - ty);
      const tile = new Uint8Array(w * h * 3);
      for (let y = 0; y < h; y++) {
        const from = ((ty + y) * WIDTH + tx) * 3;
        tile.set(frame.subarray(from, from + w * 3), y * w * 3);
      }
      out.push(tile);
    }
  }
  return out;
}

const rows: Row[] = [];
const frame = syntheticFrame();
const frameRects = strips(frame);
rows.push(...(await inflateSection("inflate corpus ZRLE session", corpusChunks())));
rows.push(...(await inflateSection("inflate 1080p, 32 strips, L6 stream", pakoDeflateChunks(frameRects, 6))));
rows.push(
  ...(await inflateSection("inflate 1080p, 510 64×64 tiles, L6 stream", pakoDeflateChunks(tiles(frame), 6))),
);
for (const level of [1, 2, 3, 6]) rows.push(...(await deflateSection(frameRects, level)));

console.log(
  `| section | implementation | median ms (${ROUNDS} rounds) | best–worst round | MB/s | ratio | bytes/frame | size vs one-shot |`,
);
console.log("|---|---|---:|---:|---:|---:|---:|---:|");
for (const row of rows) {
  const base = rows.find((r) => r.section === row.section && r.task === row.baseline)!;
  const ratio = row === base ? "1×" : `${(base.medianMs / row.medianMs).toFixed(2)}×`;
  const size = row.bytes === undefined ? "" : String(row.bytes);
  const vs =
    row.bytes === undefined || base.bytes === undefined
      ? ""
      : `${((row.bytes / base.bytes) * 100).toFixed(1)}%`;
  console.log(
    `| ${row.section} | ${row.task} | ${row.medianMs.toFixed(2)} | ${row.bestMs.toFixed(2)}–${row.worstMs.toFixed(2)} | ${row.mbPerS.toFixed(0)} | ${ratio} | ${size} | ${vs} |`,
  );
}

// Sizes only (deterministic, not timed): the same frame as 510 small rects, where independent blobs lose
// the most (each starts with an empty window and pays its own block headers).
const tileRects = tiles(frame);
console.log(
  "\n| 1080p as 510 64×64 rects, bytes/frame | deflateRect | native persistent | pako persistent |",
);
console.log("|---|---:|---:|---:|");
for (const level of [1, 2, 3, 6]) {
  const one = deflateOneShot(tileRects, level);
  const nat = deflateHandlePersistent(tileRects, level, false);
  const pk = deflatePakoPersistent(tileRects, level);
  const pct = (n: number) => `${n} (${((n / one) * 100).toFixed(1)}%)`;
  console.log(`| level ${level} | ${one} | ${pct(nat)} | ${pct(pk)} |`);
}
if (sink < 0) console.log(sink); // keeps the results observable
