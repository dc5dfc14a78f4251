// The zlib layer (relay/codec/zstream.ts). One case suite runs against both inflate engines; where they
// differ on purpose (producers that do not sync-flush) each has its own expectation. Oracles: node:zlib
// inflateSync over the whole stream, and pako (an independent zlib, the one noVNC uses) rect by rect.
// Producers: our own blobs, real zlib (node:zlib createDeflate, one stream across many rects), pako's
// Deflate with every flush mode, and the recorded TigerVNC ZRLE session.

import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import zlib from "node:zlib";
import fc from "fast-check";
import pako from "pako";
import {
  createInflater,
  deflateRect,
  type Inflater,
  type InflaterEngine,
  nativeStreamSupported,
  zlibStreamHeader,
} from "../../relay/codec/zstream.ts";
import { cat, offsetCopy, prng } from "../helpers/bytes.ts";
import { loadCorpus } from "../helpers/corpus.ts";
import { codeOf } from "../helpers/errors.ts";

const ENGINES: InflaterEngine[] = ["stream", "oneshot"];
const { Z_SYNC_FLUSH } = zlib.constants;
const { Z_PARTIAL_FLUSH, Z_FULL_FLUSH, Z_BLOCK } = pako.constants;
const MiB = 1024 * 1024;

// --- Content: random bytes, short repeated units (runs, dithers, text-like), and a mix of both.

function randomBytes(n: number, seed: number): Uint8Array {
  const next = prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = next() >>> 24;
  return out;
}

function repeated(unit: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = unit[i % unit.length]!;
  return out;
}

/** Text-like: words of a small alphabet, so the compressor finds matches at many distances. */
function textLike(n: number, seed: number): Uint8Array {
  const next = prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const r = next();
    out[i] = r % 7 === 0 ? 0x20 : 0x61 + ((r >>> 8) % 12);
  }
  return out;
}

const contentArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constantFrom(0, 1).map((n) => randomBytes(n, n + 1)),
  fc.record({ n: fc.nat({ max: 70_000 }), seed: fc.integer() }).map(({ n, seed }) => randomBytes(n, seed)),
  fc
    .record({ unit: fc.uint8Array({ minLength: 1, maxLength: 12 }), n: fc.nat({ max: 70_000 }) })
    .map(({ unit, n }) => repeated(unit, n)),
  fc.record({ n: fc.nat({ max: 70_000 }), seed: fc.integer() }).map(({ n, seed }) => textLike(n, seed)),
);

// --- Producers

/** A viewer's stream as the relay builds it: header, then one shared blob per rect. */
function blobStream(rects: Uint8Array[], levels: number[]): Uint8Array[] {
  return [
    zlibStreamHeader(levels[0] ?? 6),
    ...rects.map((r, i) => deflateRect(r, levels[i % levels.length]!)),
  ];
}

type Flush = 0 | 1 | 2 | 3 | 5;

/**
 * One persistent pako deflate stream, a flush after every rect (`flush`, or flush[i] for rect i): one chunk
 * per rect, the first with the header.
 */
function pakoStream(rects: Uint8Array[], level: number, flush: Flush | Flush[]): Uint8Array[] {
  const deflater = new pako.Deflate({ level });
  let got: Uint8Array[] = [];
  deflater.onData = (c) => got.push(c.slice());
  return rects.map((r, i) => {
    deflater.push(r, typeof flush === "number" ? flush : flush[i]!);
    if (deflater.err) throw new Error(`pako deflate: ${deflater.msg}`);
    const chunk = cat(...got);
    got = [];
    return chunk;
  });
}

/** One persistent real-zlib stream (node:zlib, async), Z_SYNC_FLUSH after every rect. */
async function nodeStream(rects: Uint8Array[], level: number): Promise<Uint8Array[]> {
  const deflater = zlib.createDeflate({ level });
  const got: Buffer[] = [];
  deflater.on("data", (c: Buffer) => got.push(c));
  const chunks: Uint8Array[] = [];
  for (const r of rects) {
    await new Promise<void>((resolve) => {
      deflater.write(r);
      deflater.flush(Z_SYNC_FLUSH, () => resolve());
    });
    chunks.push(new Uint8Array(Buffer.concat(got)));
    got.length = 0;
  }
  deflater.close();
  return chunks;
}

// --- Consumers

function inflateEach(inflater: Inflater, chunks: Uint8Array[], maxOut = 4 * MiB): Uint8Array[] {
  return chunks.map((c) => inflater.inflate(c, maxOut));
}

/** pako's Inflate, rect by rect with Z_SYNC_FLUSH: how noVNC reads these streams. */
function pakoEach(chunks: Uint8Array[]): Uint8Array[] {
  const inflater = new pako.Inflate();
  let got: Uint8Array[] = [];
  inflater.onData = (c) => got.push(c.slice());
  return chunks.map((c) => {
    inflater.push(c, pako.constants.Z_SYNC_FLUSH);
    if (inflater.err) throw new Error(`pako inflate: ${inflater.msg}`);
    const out = cat(...got);
    got = [];
    return out;
  });
}

function zlibWhole(chunks: Uint8Array[]): Uint8Array {
  return new Uint8Array(zlib.inflateSync(cat(...chunks), { finishFlush: Z_SYNC_FLUSH }));
}

/** Deep equality that prints lengths, not megabytes, when it fails. */
function expectSameBytes(got: Uint8Array[], want: Uint8Array[]): void {
  expect(got.map((g) => g.length)).toEqual(want.map((w) => w.length));
  for (let i = 0; i < want.length; i++) {
    if (!Buffer.from(got[i]!).equals(Buffer.from(want[i]!))) throw new Error(`chunk ${i}: bytes differ`);
  }
}

function peakRssMiB(): number {
  const kb = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
  if (kb === undefined) throw new Error("no VmHWM in /proc/self/status");
  return Number(kb) / 1024;
}

/** Zeroes the kernel's peak-RSS counter (Linux ≥ 4.0, `5` in /proc/self/clear_refs) so growth from here shows. */
function resetPeakRss(): void {
  Bun.gc(true);
  writeFileSync("/proc/self/clear_refs", "5");
}

/** `reps` independent 1 MiB zero blobs after a header: ~1 KiB each, so ~1:1000 (deflate's ceiling is 1032:1). */
function zerosBomb(reps: number): Uint8Array {
  const blob = deflateRect(new Uint8Array(MiB), 9);
  const out = new Uint8Array(2 + blob.length * reps);
  out.set(zlibStreamHeader(9));
  for (let i = 0; i < reps; i++) out.set(blob, 2 + i * blob.length);
  return out;
}

// The memory bound runs first, while nothing else has touched the heap much.
describe("zip bombs: the cap holds before memory is spent", () => {
  for (const engine of ENGINES) {
    test(`${engine}: 100 KiB that inflates to 100 MiB fails at a 1 MiB cap without the 100 MiB`, () => {
      const bomb = zerosBomb(100);
      expect(bomb.length).toBeLessThan(110 * 1024);
      const inflater = createInflater(engine);
      resetPeakRss();
      const before = peakRssMiB();
      expect(codeOf(() => inflater.inflate(bomb, MiB))).toBe("LIMIT_EXCEEDED");
      // Inflating it whole would raise the peak by ≥ 100 MiB; the cap allows ~1 MiB plus buffers.
      expect(peakRssMiB() - before).toBeLessThan(32);
    });

    test(`${engine}: 1 KiB that inflates to 1 MiB fails at a 64 KiB cap; the exact size passes`, () => {
      const bomb = zerosBomb(1);
      expect(bomb.length).toBeLessThan(1100);
      expect(codeOf(() => createInflater(engine).inflate(bomb, 64 * 1024))).toBe("LIMIT_EXCEEDED");
      expect(codeOf(() => createInflater(engine).inflate(bomb, MiB - 1))).toBe("LIMIT_EXCEEDED");
      expect(createInflater(engine).inflate(bomb, MiB).length).toBe(MiB);
    });
  }
});

describe("engine selection", () => {
  test("this runtime drives a native zlib handle synchronously, so the default engine is 'stream'", () => {
    // Pins the undocumented handle API (zstream.ts "Engine stream"): a Bun upgrade that drops it fails here
    // instead of silently switching every session to the slower engine.
    expect(nativeStreamSupported()).toBe(true);
    expect(createInflater().engine).toBe("stream");
    expect(createInflater("oneshot").engine).toBe("oneshot");
  });
});

describe("zlibStreamHeader and deflateRect", () => {
  test("the header is zlib's own for every level (FLEVEL, FCHECK), with FDICT clear", () => {
    for (let level = 0; level <= 9; level++) {
      const h = zlibStreamHeader(level);
      const fromZlib = zlib.deflateSync(Buffer.from("x"), { level }).subarray(0, 2);
      expect(Array.from(h)).toEqual(Array.from(fromZlib));
      expect((h[0]! * 256 + h[1]!) % 31).toBe(0);
      expect(h[1]! & 0x20).toBe(0); // FDICT
    }
    expect(Array.from(zlibStreamHeader(1))).toEqual([0x78, 0x01]);
    expect(Array.from(zlibStreamHeader(6))).toEqual([0x78, 0x9c]);
  });

  test("levels outside 0..9 are refused", () => {
    for (const bad of [-1, 10, 1.5, Number.NaN]) {
      expect(() => zlibStreamHeader(bad)).toThrow(RangeError);
      expect(() => deflateRect(new Uint8Array(4), bad)).toThrow(RangeError);
    }
  });

  test("a blob ends in the sync marker and is not final: alone, it is an unfinished stream", () => {
    for (const data of [new Uint8Array(0), textLike(5000, 3)]) {
      const blob = deflateRect(data, 6);
      expect(Array.from(blob.subarray(-4))).toEqual([0x00, 0x00, 0xff, 0xff]);
      expectSameBytes([zlib.inflateRawSync(blob, { finishFlush: Z_SYNC_FLUSH })], [data]);
      // Z_FINISH demands a final block; a sync-flushed blob has none.
      expect(() => zlib.inflateRawSync(blob)).toThrow(/unexpected end/);
    }
  });
});

for (const engine of ENGINES) {
  describe(`Inflater (${engine}): round trips`, () => {
    test("header + blobs of random sizes, contents and levels: zlib, pako and ours give each rect back", () => {
      fc.assert(
        fc.property(
          fc.array(contentArb, { minLength: 1, maxLength: 8 }),
          fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 8 }),
          (rects, levels) => {
            const chunks = blobStream(rects, levels);
            expectSameBytes([zlibWhole(chunks)], [cat(...rects)]);
            expectSameBytes(pakoEach(chunks), [new Uint8Array(0), ...rects]);
            expectSameBytes(
              inflateEach(
                createInflater(engine),
                chunks.map((c) => offsetCopy(c)),
              ),
              [new Uint8Array(0), ...rects],
            );
          },
        ),
        { numRuns: 40 },
      );
    });

    test("blobs over 32 KiB and over 1 MiB, every level, in one stream", () => {
      const rects = [
        textLike(1536 * 1024, 11),
        new Uint8Array(0),
        randomBytes(1, 2),
        randomBytes(1100 * 1024, 12),
        repeated(Uint8Array.of(0x10, 0x20, 0x30), 40_000),
        textLike(33_000, 13),
        new Uint8Array(1200 * 1024),
        randomBytes(40_000, 14),
        textLike(70_000, 15),
        randomBytes(3, 16),
      ];
      const levels = [1, 0, 2, 3, 4, 5, 6, 7, 8, 9];
      const chunks = blobStream(rects, levels);
      expectSameBytes([zlibWhole(chunks)], [cat(...rects)]);
      expectSameBytes(inflateEach(createInflater(engine), chunks), [new Uint8Array(0), ...rects]);
    }, 20_000);

    test("real zlib, one persistent stream across rects (back-references cross rects)", async () => {
      // Each rect repeats most of the one before (a scroll), so the stream refers back into earlier rects.
      const rects: Uint8Array[] = [textLike(20_000, 21)];
      for (let i = 1; i < 12; i++) {
        const r = cat(rects[i - 1]!.subarray(700), textLike(700, 21 + i));
        rects.push(r);
      }
      const chunks = await nodeStream(rects, 6);
      // Proof the references cross: after the first, a rect costs far less than an independent blob of it.
      expect(chunks[5]!.length * 4).toBeLessThan(deflateRect(rects[5]!, 6).length);
      expectSameBytes(inflateEach(createInflater(engine), chunks), rects);
    });

    test("pako, one persistent stream across rects, random rects and levels", () => {
      fc.assert(
        fc.property(
          fc.array(contentArb, { minLength: 1, maxLength: 6 }),
          fc.integer({ min: 0, max: 9 }),
          fc.boolean(),
          (rects, level, full) => {
            // Repeat some rects whole, so later chunks are mostly back-references into earlier ones.
            const all = [...rects, ...rects.slice(0, 2)];
            const chunks = pakoStream(all, level, full ? Z_FULL_FLUSH : pako.constants.Z_SYNC_FLUSH);
            expectSameBytes(inflateEach(createInflater(engine), chunks), all);
          },
        ),
        { numRuns: 30 },
      );
    });

    test("reset() starts a new stream: a new header is read, the old window is gone", () => {
      const inflater = createInflater(engine);
      const a = textLike(10_000, 31);
      expectSameBytes(inflateEach(inflater, blobStream([a], [6])), [new Uint8Array(0), a]);
      inflater.reset();
      // A second stream that refers back into its own first rect, not into the old stream.
      const b = textLike(10_000, 32);
      const chunks = pakoStream([b, b], 6, pako.constants.Z_SYNC_FLUSH);
      expectSameBytes(inflateEach(inflater, chunks), [b, b]);
    });

    test("without reset(), a second header mid-stream is corrupt data", () => {
      const inflater = createInflater(engine);
      inflateEach(inflater, blobStream([textLike(1000, 33)], [6]));
      expect(
        codeOf(() => inflater.inflate(cat(zlibStreamHeader(6), deflateRect(textLike(1000, 34), 6)), MiB)),
      ).toBe("CODEC_ERROR");
    });

    test("returned arrays belong to the caller: later rects do not overwrite them, nor they the stream", () => {
      const inflater = createInflater(engine);
      const rects = [textLike(3000, 41), textLike(3000, 42), textLike(3000, 43)];
      // One stream whose later rects refer back into earlier ones.
      const chunks = pakoStream([...rects, ...rects], 6, pako.constants.Z_SYNC_FLUSH);
      const first = inflater.inflate(chunks[0]!, MiB);
      const second = inflater.inflate(chunks[1]!, MiB);
      expectSameBytes([first], [rects[0]!]);
      second.fill(0);
      expectSameBytes(inflateEach(inflater, chunks.slice(2)), [rects[2]!, ...rects]);
    });
  });

  describe(`Inflater (${engine}): errors`, () => {
    const good = blobStream([textLike(1000, 51)], [6]);

    test("bad headers: FCHECK, method, window size, preset dictionary (FDICT)", () => {
      const flg = (cmf: number, bits: number) => bits + 31 - ((cmf * 256 + bits) % 31);
      const headers = [
        [0x78, 0x02], // FCHECK wrong
        [0x79, flg(0x79, 0x80)], // CM 9
        [0x88, flg(0x88, 0x80)], // CINFO 8: 64 KiB window
        [0x78, 0xbb], // FDICT set (0x78bb = 31 × 997)
      ];
      // Each followed by a good blob, so only the header check can refuse it.
      const blob = deflateRect(textLike(100, 52), 6);
      expect(createInflater(engine).inflate(cat(zlibStreamHeader(6), blob), MiB)).toEqual(textLike(100, 52));
      for (const h of headers) {
        expect((h[0]! * 256 + h[1]!) % 31 === 0).toBe(h[1] !== 0x02);
        expect(codeOf(() => createInflater(engine).inflate(cat(h, blob), MiB))).toBe("CODEC_ERROR");
      }
      // The header split over two chunks is still read (and still checked).
      const split = createInflater(engine);
      expect(split.inflate(Uint8Array.of(0x78), MiB).length).toBe(0);
      expectSameBytes(
        [split.inflate(good[0]!.subarray(1), MiB), split.inflate(good[1]!, MiB)],
        [new Uint8Array(0), textLike(1000, 51)],
      );
      const badSplit = createInflater(engine);
      badSplit.inflate(Uint8Array.of(0x78), MiB);
      expect(codeOf(() => badSplit.inflate(Uint8Array.of(0xbb, 0, 0, 0, 0), MiB))).toBe("CODEC_ERROR");
    });

    test("corrupt data: an invalid block type, stored-block lengths that disagree", () => {
      // 0xff: BFINAL 1, BTYPE 11 (reserved). Then a sync marker, so the oneshot engine reaches zlib.
      expect(
        codeOf(() =>
          createInflater(engine).inflate(cat(good[0]!, [0xff, 0xff, 0x00, 0x00, 0xff, 0xff]), MiB),
        ),
      ).toBe("CODEC_ERROR");
      const inflater = createInflater(engine);
      inflateEach(inflater, good);
      // 00: stored block; LEN 5, NLEN 0 (must be ~LEN); then a sync marker.
      expect(
        codeOf(() =>
          inflater.inflate(Uint8Array.of(0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff), MiB),
        ),
      ).toBe("CODEC_ERROR");
    });

    test("a back-reference to before the stream's start (distance too far back)", () => {
      // Compressed against a preset dictionary the inflater does not have.
      const dictionary = randomBytes(20_000, 61);
      const refers = zlib.deflateRawSync(dictionary.subarray(5000, 15_000), {
        dictionary,
        finishFlush: Z_SYNC_FLUSH,
      });
      const inflater = createInflater(engine);
      inflater.inflate(cat(zlibStreamHeader(6), deflateRect(randomBytes(100, 62), 6)), MiB);
      expect(codeOf(() => inflater.inflate(new Uint8Array(refers), MiB))).toBe("CODEC_ERROR");
    });

    test("data after the end of the stream (a producer that finished it)", () => {
      const finished = zlib.deflateSync(Buffer.from(textLike(500, 71))); // final block + adler-32
      expect(
        codeOf(() => createInflater(engine).inflate(cat(finished, deflateRect(textLike(10, 72), 6)), MiB)),
      ).toBe("CODEC_ERROR");
    });

    test("the cap: exactly maxOut passes, one byte less fails; 0 allows rects that produce nothing", () => {
      const rect = textLike(1000, 81);
      const chunks = blobStream([rect], [6]);
      const ok = createInflater(engine);
      expect(ok.inflate(chunks[0]!, 0).length).toBe(0);
      expect(ok.inflate(chunks[1]!, 1000)).toEqual(rect);
      expect(ok.inflate(deflateRect(new Uint8Array(0), 6), 0).length).toBe(0);
      const over = createInflater(engine);
      over.inflate(chunks[0]!, 0);
      expect(codeOf(() => over.inflate(chunks[1]!, 999))).toBe("LIMIT_EXCEEDED");
      const one = createInflater(engine);
      one.inflate(chunks[0]!, 0);
      expect(codeOf(() => one.inflate(deflateRect(new Uint8Array(1), 6), 0))).toBe("LIMIT_EXCEEDED");
      expect(() => createInflater(engine).inflate(chunks[0]!, -1)).toThrow(RangeError);
    });

    test("after an error the stream stays failed until reset(); after close() it is unusable", () => {
      const inflater = createInflater(engine);
      expect(codeOf(() => inflater.inflate(Uint8Array.of(0x78, 0x02), MiB))).toBe("CODEC_ERROR");
      // Even a good chunk now fails: there is no resync inside a zlib stream.
      expect(codeOf(() => inflater.inflate(good[0]!, MiB))).toBe("CODEC_ERROR");
      inflater.reset();
      expectSameBytes(inflateEach(inflater, good), [new Uint8Array(0), textLike(1000, 51)]);
      // Over the cap, then an independent blob that would decode on its own: still failed.
      expect(codeOf(() => inflater.inflate(good[1]!, 999))).toBe("LIMIT_EXCEEDED");
      expect(codeOf(() => inflater.inflate(deflateRect(textLike(10, 53), 6), MiB))).toBe("CODEC_ERROR");
      inflater.close();
      expect(codeOf(() => inflater.inflate(good[1]!, MiB))).toBe("INTERNAL");
    });
  });
}

describe("producers that do not end each rect at a byte-aligned block boundary", () => {
  const rects = [
    textLike(30_000, 91),
    randomBytes(5000, 92),
    textLike(30_000, 93),
    repeated(Uint8Array.of(7), 999),
  ];

  for (const [name, flush] of [
    ["Z_PARTIAL_FLUSH", Z_PARTIAL_FLUSH],
    ["Z_BLOCK", Z_BLOCK],
  ] as const) {
    test(`${name}: the stream engine decodes it; the oneshot engine refuses it with CODEC_ERROR`, () => {
      // Then one empty rect with a sync flush, so everything the producer held back comes out.
      const flushes: Flush[] = [...rects.map(() => flush), pako.constants.Z_SYNC_FLUSH];
      const chunks = pakoStream([...rects, new Uint8Array(0)], 6, flushes);
      // Each rect's chunk ends mid-byte, never in the sync marker.
      for (const c of chunks.slice(0, -1)) expect(Array.from(c.subarray(-2))).not.toEqual([0xff, 0xff]);
      const outs = inflateEach(createInflater("stream"), chunks);
      expectSameBytes([cat(...outs)], [cat(...rects)]);
      if (flush === Z_PARTIAL_FLUSH) {
        expectSameBytes(outs, [...rects, new Uint8Array(0)]); // each rect decodes whole from its own chunk
      } else {
        // Z_BLOCK leaves the last bits of each rect with the deflater: its rects come out late.
        expect(outs[0]!.length).toBeLessThan(rects[0]!.length);
      }
      const oneshot = createInflater("oneshot");
      expect(codeOf(() => inflateEach(oneshot, chunks))).toBe("CODEC_ERROR");
    });
  }

  test("a rect ending at an aligned block boundary without the sync marker: stream decodes, oneshot refuses", () => {
    // 00: BFINAL 0, BTYPE 00 (stored), padding; LEN 3, NLEN ~3; "abc". Ends byte-aligned, but not in a
    // sync flush: the oneshot engine's contract is sync-flushed rects only (zstream.ts "Deterministic").
    const chunk = cat(zlibStreamHeader(6), [0x00, 0x03, 0x00, 0xfc, 0xff], [0x61, 0x62, 0x63]);
    expect(createInflater("stream").inflate(chunk, MiB)).toEqual(Uint8Array.of(0x61, 0x62, 0x63));
    expect(codeOf(() => createInflater("oneshot").inflate(chunk, MiB))).toBe("CODEC_ERROR");
  });

  test("Z_NO_FLUSH / arbitrary cuts: the stream engine is exact at every split point", () => {
    const rect = textLike(3000, 94);
    const whole = cat(zlibStreamHeader(6), deflateRect(rect, 6), deflateRect(rect.subarray(0, 100), 1));
    const want = cat(rect, rect.subarray(0, 100));
    for (let i = 0; i <= whole.length; i++) {
      const inflater = createInflater("stream");
      const outs = [inflater.inflate(whole.subarray(0, i), MiB), inflater.inflate(whole.subarray(i), MiB)];
      if (!Buffer.from(cat(...outs)).equals(Buffer.from(want)))
        throw new Error(`split at ${i}: bytes differ`);
    }
  });

  test("arbitrary cuts: the oneshot engine gives the exact bytes or CODEC_ERROR, never other bytes", () => {
    const rect = textLike(3000, 95);
    const whole = cat(zlibStreamHeader(6), deflateRect(rect, 6), deflateRect(rect.subarray(0, 100), 1));
    const want = cat(rect, rect.subarray(0, 100));
    let exact = 0;
    for (let i = 0; i <= whole.length; i++) {
      const inflater = createInflater("oneshot");
      let outs: Uint8Array[];
      try {
        outs = [inflater.inflate(whole.subarray(0, i), MiB), inflater.inflate(whole.subarray(i), MiB)];
      } catch (e) {
        expect(
          codeOf(() => {
            throw e;
          }),
        ).toBe("CODEC_ERROR");
        continue;
      }
      if (!Buffer.from(cat(...outs)).equals(Buffer.from(want))) throw new Error(`split at ${i}: other bytes`);
      exact++;
    }
    // Exact: no cut, cuts inside or right after the header, and the cut between the two blobs.
    expect(exact).toBe(5);
  });

  test("oneshot: a stored block cut right after data bytes 00 00 FF FF is caught (ends like a sync flush)", () => {
    // Level 0 stores the bytes verbatim, so a cut after them looks like a sync marker to a suffix check;
    // only inflating to the end of the stream (zstream.ts: Z_FINISH after an empty final block) tells.
    const rect = cat(textLike(100, 96), [0x00, 0x00, 0xff, 0xff], textLike(100, 97));
    const chunks = blobStream([rect], [0]);
    const blob = chunks[1]!;
    // Just after "00 00 ff ff" inside the stored data (past the block's own LEN/NLEN at 1..4).
    const cut = Buffer.from(blob).indexOf(Buffer.from([0x00, 0x00, 0xff, 0xff]), 5) + 4;
    expect(cut).toBe(5 + 100 + 4);
    expect(cut).toBeLessThan(blob.length - 4);
    const oneshot = createInflater("oneshot");
    oneshot.inflate(chunks[0]!, MiB);
    expect(codeOf(() => oneshot.inflate(blob.subarray(0, cut), MiB))).toBe("CODEC_ERROR");
    // The stream engine returns what it has and carries on where the cut was.
    const stream = createInflater("stream");
    stream.inflate(chunks[0]!, MiB);
    const first = stream.inflate(blob.subarray(0, cut), MiB);
    const rest = stream.inflate(blob.subarray(cut), MiB);
    expectSameBytes([cat(first, rest)], [rect]);
  });

  test("a rect cut short: the stream engine returns the bytes so far and completes with the rest", () => {
    const rect = textLike(20_000, 98);
    const chunks = blobStream([rect], [6]);
    const body = chunks[1]!;
    const stream = createInflater("stream");
    stream.inflate(chunks[0]!, MiB);
    const part = stream.inflate(body.subarray(0, body.length - 10), MiB);
    expect(part.length).toBeLessThan(rect.length);
    expectSameBytes([cat(part, stream.inflate(body.subarray(body.length - 10), MiB))], [rect]);
    const oneshot = createInflater("oneshot");
    oneshot.inflate(chunks[0]!, MiB);
    expect(codeOf(() => oneshot.inflate(body.subarray(0, body.length - 10), MiB))).toBe("CODEC_ERROR");
  });
});

describe("the recorded TigerVNC ZRLE session (shared/corpus/zrle.s2c.rfb.gz)", () => {
  function zrleRects() {
    const corpus = loadCorpus("zrle");
    const view = new DataView(corpus.s2c.buffer, corpus.s2c.byteOffset, corpus.s2c.byteLength);
    const rects = corpus.index.updates.flatMap((u) => u.rects);
    expect(rects.length).toBe(corpus.index.totals.rects);
    // Each rect: 12-byte header, U32 length, zlib data (rfb-codecs.md §2.6).
    const chunks = rects.map((r) => {
      expect(r.enc).toBe(16);
      const length = view.getUint32(r.offset + 12);
      expect(16 + length).toBe(r.length);
      return corpus.s2c.subarray(r.offset + 16, r.offset + 16 + length);
    });
    return { rects, chunks };
  }

  for (const engine of ENGINES) {
    test(`${engine}: every rect inflates, rect by rect, to pako's bytes; tiles look like ZRLE`, () => {
      const { rects, chunks } = zrleRects();
      const inflater = createInflater(engine);
      const want = pakoEach(chunks);
      const outs = chunks.map((c, i) => {
        const r = rects[i]!;
        const tiles = Math.ceil(r.w / 64) * Math.ceil(r.h / 64);
        // The most a rect's tiles can take: a 127-colour palette each, plus raw 3-byte CPIXELs.
        const out = inflater.inflate(c, tiles * (1 + 127 * 3) + r.w * r.h * 3);
        // Every tile is at least a subencoding byte and one CPIXEL (a solid tile).
        expect(out.length).toBeGreaterThanOrEqual(tiles * 4);
        const sub = out[0]!;
        expect(sub <= 16 || sub === 128 || sub >= 130).toBe(true);
        return out;
      });
      expectSameBytes(outs, want);
    });
  }
});

describe("inflateInto: straight into a caller's buffer (the codec core's input region)", () => {
  for (const engine of ENGINES) {
    test(`${engine}: the same bytes as inflate(), rect after rect on one stream, with the cap enforced`, () => {
      const rects = [randomBytes(5000, 1), repeated(new Uint8Array([1, 2, 3]), 70000), randomBytes(10, 2)];
      const chunks = [
        cat(zlibStreamHeader(6), deflateRect(rects[0]!, 6)),
        ...rects.slice(1).map((r) => deflateRect(r, 6)),
      ];
      const a = createInflater(engine);
      const b = createInflater(engine);
      const target = new Uint8Array(80000);
      for (let i = 0; i < rects.length; i++) {
        const n = b.inflateInto(chunks[i]!, target, rects[i]!.length);
        expect(target.subarray(0, n)).toEqual(new Uint8Array(a.inflate(chunks[i]!, rects[i]!.length)));
        expect(n).toBe(rects[i]!.length);
      }
      // One byte over the cap is refused, and the target must hold the cap plus one byte.
      const c = createInflater(engine);
      expect(codeOf(() => c.inflateInto(chunks[0]!, target, rects[0]!.length - 1))).toBe("LIMIT_EXCEEDED");
      expect(() => createInflater(engine).inflateInto(chunks[0]!, new Uint8Array(5000), 5000)).toThrow(
        RangeError,
      );
    });
  }
});
