// Frame diff: the TS twin (relay/codec/diff.ts) against the WASM release core, measured in the same run
// (STYLE.md "Benchmarks"). Sections by size: an unchanged 1080p pair (the worst case: every byte compared),
// 1080p with 10 scattered one-pixel changes, one 64×64 block. WASM is measured twice: with the frames
// already in its memory (the relay's path: the session framebuffer lives there) and through the adapter
// copying both frames in. Prints the median ms per frame, GB/s over both frames, and the TS/WASM speed-up.
// Compare-on-write (CodecKernels.diffRect, rfb-codecs.md §9.3) is measured through the kernels a session
// uses, TsKernels against WasmKernels (release): a whole unchanged 1080p rect, the same rect after 10
// one-pixel writes (re-applied before every call, as diffRect brings the previous frame forward), and one
// 64×64 block of a 1080p framebuffer.
// Run: npm run bench -- diff   (or: bun bench/run.ts diff)

import { Bench } from "tinybench";
import { type FrameDiffer, TsFrameDiffer } from "../relay/codec/diff.ts";
import type { CodecKernels } from "../relay/codec/kernels.ts";
import { TsKernels } from "../relay/codec/ts-kernels.ts";
import { createWasmDiffer } from "../relay/codec/wasm-diff.ts";
import { createWasmKernels } from "../relay/codec/wasm-kernels.ts";
import { noiseFrame } from "../test/helpers/bytes.ts";

interface Section {
  name: string;
  width: number;
  height: number;
  /** One-pixel changes, spread over the frame. */
  changes: number;
}

const SECTIONS: Section[] = [
  { name: "1920×1080 unchanged", width: 1920, height: 1080, changes: 0 },
  { name: "1920×1080, 10 one-pixel changes", width: 1920, height: 1080, changes: 10 },
  { name: "64×64 block unchanged", width: 64, height: 64, changes: 0 },
];

interface Row {
  section: string;
  task: string;
  /** The operation the speed-up compares: the TS row with the same section and op is the baseline. */
  op: "diffBlocks" | "diffRects" | "diffRect";
  medianMs: number;
  meanMs: number;
  rme: number;
  gbPerS: number;
}

let sink = 0;

async function runSection(section: Section): Promise<Row[]> {
  const { width, height } = section;
  const a = noiseFrame(width, height, 0x9e3779b9); // content is irrelevant to a compare
  const b = a.slice();
  for (let k = 0; k < section.changes; k++) {
    // Scattered on a coarse diagonal lattice: 10 different blocks, none on a block edge.
    const x = Math.floor(((k * 7 + 3) % 10) * (width / 10) + 17) % width;
    const y = Math.floor((k + 0.5) * (height / section.changes)) % height;
    const i = (y * width + x) * 4;
    b[i] = b[i]! ^ 0xff;
  }
  const ts = new TsFrameDiffer();
  const wasm = await createWasmDiffer("release");
  const resident = wasm.frames();
  resident.a.set(a);
  resident.b.set(b);

  // Both must agree before anything is timed, or the figures compare different work.
  const expected = ts.diffBlocks(a, b, width, height).changed;
  const check = (d: FrameDiffer, fa: Uint8Array, fb: Uint8Array): void => {
    const got = d.diffBlocks(fa, fb, width, height).changed;
    if (got !== expected || got !== section.changes) {
      throw new Error(`${section.name}: ${d.name} found ${got} changed blocks, ts ${expected}`);
    }
  };
  check(wasm, resident.a, resident.b);
  check(wasm, a, b);

  const bench = new Bench({ name: section.name, time: 1500, warmup: true, warmupTime: 300, throws: true });
  bench
    .add("ts diffBlocks", () => {
      sink += ts.diffBlocks(a, b, width, height).changed;
    })
    .add("wasm diffBlocks (frames in WASM memory)", () => {
      sink += wasm.diffBlocks(resident.a, resident.b, width, height).changed;
    })
    .add("wasm diffBlocks (adapter copies both frames in)", () => {
      sink += wasm.diffBlocks(a, b, width, height).changed;
    });
  if (section.changes > 0) {
    bench
      .add("ts diffRects", () => {
        sink += ts.diffRects(a, b, width, height).length;
      })
      .add("wasm diffRects (frames in WASM memory)", () => {
        sink += wasm.diffRects(resident.a, resident.b, width, height).length;
      });
  }
  await bench.run();
  return rowsOf(bench, section.name, 2 * width * height * 4);
}

/** The finished tasks as rows; `bytes` is what one call compares (both frames). */
function rowsOf(bench: Bench, section: string, bytes: number): Row[] {
  return bench.tasks.map((task) => {
    const result = task.result;
    if (result.state !== "completed") throw new Error(`${section} / ${task.name}: ${result.state}`);
    const medianMs = result.latency.p50;
    return {
      section,
      task: task.name,
      op: task.name.includes("diffRects")
        ? "diffRects"
        : task.name.includes("diffRect")
          ? "diffRect"
          : "diffBlocks",
      medianMs,
      meanMs: result.latency.mean,
      rme: result.latency.rme,
      gbPerS: bytes / (medianMs / 1000) / 1e9,
    };
  });
}

interface RectSection {
  name: string;
  /** The rect diffed in a 1920×1080 framebuffer. */
  rect: { x: number; y: number; w: number; h: number };
  /** One-pixel writes before every call. */
  changes: number;
}

const RECT_SECTIONS: RectSection[] = [
  { name: "1920×1080 rect unchanged (diffRect)", rect: { x: 0, y: 0, w: 1920, h: 1080 }, changes: 0 },
  {
    name: "1920×1080 rect, 10 one-pixel changes (diffRect)",
    rect: { x: 0, y: 0, w: 1920, h: 1080 },
    changes: 10,
  },
  { name: "64×64 rect unchanged (diffRect)", rect: { x: 640, y: 512, w: 64, h: 64 }, changes: 0 },
];

async function runRectSection(section: RectSection): Promise<Row[]> {
  const [width, height] = [1920, 1080];
  const { x, y, w, h } = section.rect;
  const frame = noiseFrame(width, height, 0x9e3779b9);
  for (let i = 3; i < frame.length; i += 4) frame[i] = 0; // canonical: X = 0
  const points: number[] = [];
  for (let k = 0; k < section.changes; k++) {
    // The lattice of runSection, inside the rect: 10 different blocks.
    const px = x + (Math.floor(((k * 7 + 3) % 10) * (w / 10) + 17) % w);
    const py = y + (Math.floor((k + 0.5) * (h / section.changes)) % h);
    points.push((py * width + px) * 4);
  }
  const ts = new TsKernels();
  const wasm = await createWasmKernels("release");
  const sessions: CodecKernels[] = [ts, wasm];
  for (const k of sessions) {
    k.resize(width, height);
    k.raw(0, 0, width, height, frame);
    k.diffRect(0, 0, width, height); // the previous frame is now this one
  }
  /** Flips the R byte of every point in the framebuffer, as a decoder writing 10 pixels would, then diffs. */
  const writeAndDiff = (k: CodecKernels): number => {
    const fb = k.pixels();
    for (const i of points) fb[i] = fb[i]! ^ 0xff;
    return k.diffRect(x, y, w, h).length;
  };
  for (const k of sessions) {
    const got = writeAndDiff(k);
    if (got !== section.changes) throw new Error(`${section.name}: ${k.name} found ${got} rects`);
  }

  const bench = new Bench({ name: section.name, time: 1500, warmup: true, warmupTime: 300, throws: true });
  bench
    .add("ts diffRect (TsKernels)", () => {
      sink += writeAndDiff(ts);
    })
    .add("wasm diffRect (WasmKernels, release)", () => {
      sink += writeAndDiff(wasm);
    });
  await bench.run();
  return rowsOf(bench, section.name, 2 * w * h * 4);
}

function ms(v: number): string {
  return v >= 0.1 ? v.toFixed(3) : v.toFixed(5);
}

const rows: Row[] = [];
for (const section of SECTIONS) rows.push(...(await runSection(section)));
for (const section of RECT_SECTIONS) rows.push(...(await runRectSection(section)));

console.log("| section | implementation | median ms | mean ms (±rme) | GB/s | TS/WASM speed-up |");
console.log("|---|---|---:|---:|---:|---:|");
for (const row of rows) {
  // The speed-up is against the TS row of the same section and operation.
  const base = rows.find((r) => r.section === row.section && r.op === row.op && r.task.startsWith("ts"))!;
  const ratio = row.task.startsWith("ts") ? "1×" : `${(base.medianMs / row.medianMs).toFixed(2)}×`;
  console.log(
    `| ${row.section} | ${row.task} | ${ms(row.medianMs)} | ${ms(row.meanMs)} (±${row.rme.toFixed(1)}%) | ${row.gbPerS.toFixed(1)} | ${ratio} |`,
  );
}
if (sink < 0) console.log(sink); // keeps the results observable
