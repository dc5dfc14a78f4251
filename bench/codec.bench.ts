// Codec benchmarks (issue "WASM codec core", STYLE.md "Benchmarks"): every decoder and encoder, the WASM
// release core against its pure-TS twin in the same run, and noVNC 1.7's own decoders (run in Bun through
// test/helpers/novnc.ts) on the same corpus as the outside baseline.
//   decode: each session of ../shared/corpus/ (TigerVNC Xvnc 1.12, 1920×1080), framed once up front, then
//           decoded whole per iteration from a fresh SessionDecoder (zlib streams from their start). Mpx/s
//           counts the pixels of every rect decoded.
//   encode: one whole 1920×1080 frame — the corpus desktop (its expected final framebuffer) and a
//           synthetic desktop (test/helpers/synthetic-desktop.ts) — per encoding, through encodeRect (the
//           relay's path: kernels, then the runtime's zlib). Mpx/s and the bytes of one frame.
//   swizzle: Raw canonical → BGRX (TigerVNC's format) and → RGB565, Gpx/s.
// Run: npm run bench:codec   (this suite, the frame diff and zlib suites), or bun bench/codec.bench.ts

import { Bench } from "tinybench";
import { SessionDecoder } from "../relay/codec/decoder.ts";
import { encodeRect } from "../relay/codec/encoder.ts";
import type { CodecKernels } from "../relay/codec/kernels.ts";
import { TsKernels } from "../relay/codec/ts-kernels.ts";
import type { Rect } from "../relay/codec/types.ts";
import { createWasmKernels } from "../relay/codec/wasm-kernels.ts";
import { ByteQueue } from "../relay/rfb/byte-queue.ts";
import { Encoding } from "../relay/rfb/constants.ts";
import { DEFAULT_LIMITS } from "../relay/rfb/limits.ts";
import { fromCanonical } from "../relay/rfb/pixel-convert.ts";
import { bytesPerPixel, CANONICAL_FORMAT, type PixelFormat } from "../relay/rfb/pixel-format.ts";
import { ServerMessageReader } from "../relay/rfb/server-messages.ts";
import {
  type CorpusSession,
  corpusPixelFormat,
  loadCorpus,
  loadExpectedFinal,
} from "../test/helpers/corpus.ts";
import { BGRX, RGB565_LE } from "../test/helpers/formats.ts";
import { createNoVncSession } from "../test/helpers/novnc.ts";
import { syntheticDesktop } from "../test/helpers/synthetic-desktop.ts";

const W = 1920;
const H = 1080;
let sink = 0;

interface Framed {
  rect: Rect;
  body: Uint8Array;
}

/** Every rect of a corpus session, framed by the protocol core (outside the timing). */
function frameSession(name: CorpusSession): { rects: Framed[]; pf: PixelFormat; pixels: number } {
  const { s2c, index } = loadCorpus(name);
  const pf = corpusPixelFormat(index.pixelFormat);
  const reader = new ServerMessageReader({
    limits: DEFAULT_LIMITS,
    pf,
    width: index.width,
    height: index.height,
    encodings: new Set(index.setEncodings),
  });
  const q = new ByteQueue(DEFAULT_LIMITS.maxPendingBytes);
  const rects: Framed[] = [];
  let pixels = 0;
  for (let o = index.handshakeBytes; o < s2c.length; o += 1 << 20) {
    q.push(s2c.subarray(o, Math.min(o + (1 << 20), s2c.length)));
    for (let m = reader.next(q); m !== null; m = reader.next(q)) {
      if (m.type === "Rect" && m.rect.encoding >= 0) {
        rects.push({ rect: { ...m.rect }, body: m.body.slice() });
        pixels += m.rect.w * m.rect.h;
      }
    }
  }
  return { rects, pf, pixels };
}

interface Row {
  section: string;
  task: string;
  medianMs: number;
  rme: number;
  mpxPerS: number;
  bytes?: number;
}

async function measure(
  section: string,
  pixels: number,
  tasks: [string, () => void][],
  bytesOf?: (task: string) => number,
): Promise<Row[]> {
  const bench = new Bench({
    name: section,
    time: 1200,
    warmup: true,
    warmupTime: 300,
    iterations: 3,
    throws: true,
  });
  for (const [name, fn] of tasks) bench.add(name, fn);
  await bench.run();
  return bench.tasks.map((t) => {
    const r = t.result;
    if (r.state !== "completed") throw new Error(`${section} / ${t.name}: ${r.state}`);
    const row: Row = {
      section,
      task: t.name,
      medianMs: r.latency.p50,
      rme: r.latency.rme,
      mpxPerS: pixels / 1e6 / (r.latency.p50 / 1000),
    };
    const bytes = bytesOf?.(t.name);
    if (bytes !== undefined) row.bytes = bytes;
    return row;
  });
}

const ts = new TsKernels();
const wasm = await createWasmKernels("release");
const impls: CodecKernels[] = [ts, wasm];
const rows: Row[] = [];

// ---- decode: the corpus ----
for (const name of ["raw", "rre", "hextile", "zrle", "tight", "copyrect"] as const) {
  const { rects, pf, pixels } = frameSession(name);
  const decodeAll = (k: CodecKernels) => () => {
    const d = new SessionDecoder(k, W, H, pf);
    for (const r of rects) d.decode(r.rect, r.body);
    sink += d.rects;
  };
  const novnc = () => {
    const s = createNoVncSession(W, H);
    for (const r of rects) s.decodeRect(r.rect.x, r.rect.y, r.rect.w, r.rect.h, r.rect.encoding, r.body);
    sink += s.rgba()[0]!;
  };
  rows.push(
    ...(await measure(`decode corpus ${name}`, pixels, [
      ["noVNC 1.7", novnc],
      ...impls.map((k): [string, () => void] => [k.name, decodeAll(k)]),
    ])),
  );
}

// ---- encode: whole 1080p frames ----
const corpusFrame = loadExpectedFinal().slice();
for (let i = 3; i < corpusFrame.length; i += 4) corpusFrame[i] = 0;
const frames: [string, Uint8Array][] = [
  ["corpus desktop", corpusFrame],
  ["synthetic desktop", syntheticDesktop(W, H)],
];
const ENCODINGS: [string, number][] = [
  ["raw", Encoding.Raw],
  ["hextile", Encoding.Hextile],
  ["zlib", Encoding.Zlib],
  ["zrle", Encoding.ZRLE],
  ["tight", Encoding.Tight],
];
for (const [frameName, frame] of frames) {
  for (const k of impls) {
    k.resize(W, H);
    k.setInputFormat(CANONICAL_FORMAT);
    k.raw(0, 0, W, H, frame);
    k.setOutputFormat(CANONICAL_FORMAT);
  }
  for (const [encName, encoding] of ENCODINGS) {
    const sizes = new Map<string, number>();
    const tasks = impls.map((k): [string, () => void] => {
      const size = encodeRect(k, encoding, 0, 0, W, H).reduce(
        (n, r) =>
          n + 12 + r.parts.reduce((m, p) => m + (p instanceof Uint8Array ? p.length : p.data.length + 4), 0),
        0,
      );
      sizes.set(k.name, size);
      return [
        k.name,
        () => {
          sink += encodeRect(k, encoding, 0, 0, W, H).length;
        },
      ];
    });
    rows.push(...(await measure(`encode ${frameName} ${encName}`, W * H, tasks, (t) => sizes.get(t)!)));
  }
}

// ---- swizzle: Raw canonical → another 32 bpp order, and → 16 bpp ----
// Kernel only: the WASM export writing into its OUT region against the TS twin's table-driven translator
// into a reused buffer (relay/rfb/pixel-convert.ts); then through encodeRaw, which adds the copy out of the
// core that a caller owns.
const canonicalFrame = corpusFrame;
for (const [fmtName, pf] of [
  ["BGRX", BGRX],
  ["RGB565", RGB565_LE],
] as const) {
  for (const k of impls) {
    k.raw(0, 0, W, H, canonicalFrame);
    k.setOutputFormat(pf);
  }
  const out = new Uint8Array(W * H * bytesPerPixel(pf));
  rows.push(
    ...(await measure(`swizzle canonical → ${fmtName}, kernel only`, W * H, [
      ["ts", () => fromCanonical(canonicalFrame, out, pf, W * H)],
      ["wasm-release", () => void wasm.core.fn.encodeRaw(0, 0, W, H)],
    ])),
  );
  rows.push(
    ...(await measure(
      `swizzle canonical → ${fmtName}, encode raw (with the copy out)`,
      W * H,
      impls.map((k): [string, () => void] => [
        k.name,
        () => {
          sink += k.encodeRaw(0, 0, W, H).length;
        },
      ]),
    )),
  );
}

console.log("| section | implementation | median ms (±rme) | rate | vs TS | vs noVNC | bytes per frame |");
console.log("|---|---|---:|---:|---:|---:|---:|");
for (const row of rows) {
  const same = (task: string) => rows.find((r) => r.section === row.section && r.task === task);
  const tsRow = same("ts");
  const novnc = same("noVNC 1.7");
  const vsTs = tsRow && row !== tsRow ? `${(tsRow.medianMs / row.medianMs).toFixed(2)}×` : "";
  const vsNovnc = novnc && row !== novnc ? `${(novnc.medianMs / row.medianMs).toFixed(2)}×` : "";
  const bytes = row.bytes === undefined ? "" : `${(row.bytes / 1024).toFixed(0)} KiB`;
  const rate =
    row.mpxPerS >= 1000 ? `${(row.mpxPerS / 1000).toFixed(2)} Gpx/s` : `${row.mpxPerS.toFixed(0)} Mpx/s`;
  console.log(
    `| ${row.section} | ${row.task} | ${row.medianMs.toFixed(2)} (±${row.rme.toFixed(1)}%) | ${rate} | ${vsTs} | ${vsNovnc} | ${bytes} |`,
  );
}
if (sink < 0) console.log(sink);
