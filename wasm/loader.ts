// Host side of the codec core, and the only file in the repo that touches WebAssembly.*: compiles each
// build (debug / release) once, instantiates one core per caller (one per session: a trap ends that
// session and its instance is discarded), turns an AssemblyScript abort into a thrown CoreAbortError
// carrying file and line, and hands out typed views of the static memory map (wasm/assembly/memory.ts),
// rebuilt whenever memory.buffer changed (growth detaches every view).

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  REGION_BLOCK_MAP,
  REGION_COUNT,
  REGION_FB_A,
  REGION_FB_B,
  REGION_IN,
  REGION_OUT,
  REGION_PF_LUT,
  REGION_SCRATCH,
  REGION_WORK,
} from "./assembly/memory.ts";

export type CoreBuild = "debug" | "release";

// Region ids only; offsets and sizes always come from the instance (regionPtr / regionSize).
const REGION_IDS = {
  FB_A: REGION_FB_A,
  FB_B: REGION_FB_B,
  BLOCK_MAP: REGION_BLOCK_MAP,
  SCRATCH: REGION_SCRATCH,
  IN: REGION_IN,
  OUT: REGION_OUT,
  WORK: REGION_WORK,
  PF_LUT: REGION_PF_LUT,
} as const;

export type RegionName = keyof typeof REGION_IDS;
export const REGION_NAMES = Object.keys(REGION_IDS) as readonly RegionName[];

/** The exports of wasm/assembly/index.ts. Every function returns ≥ 0 or an E_* code (errors.ts). */
export interface CoreExports {
  /** Changed 64×64 blocks of FB_A against FB_B (width × height, packed RGBX); map in BLOCK_MAP. */
  diffBlocks(width: number, height: number): number;
  /** As diffBlocks, plus one trimmed rect (u32 x, y, w, h) per changed block in SCRATCH; returns the count. */
  diffRects(width: number, height: number): number;
  /** Compare-on-write of one rect of the session framebuffer: trimmed rects in SCRATCH, FB_B brought forward. */
  diffRect(x: number, y: number, w: number, h: number): number;
  regionCount(): number;
  regionPtr(id: number): number;
  regionSize(id: number): number;
  /** Always aborts; for the loader tests. */
  selfTestAbort(): void;

  // Pixel formats (wasm/assembly/pixel.ts): bpp, depth, bigEndian, trueColour, maxes, shifts.
  setInputFormat(...pf: PixelFormatArgs): number;
  setOutputFormat(...pf: PixelFormatArgs): number;

  // Session framebuffer and decoders (input in IN, output in FB_A); 0 or an E_* code.
  setFramebuffer(width: number, height: number): number;
  fillRect(x: number, y: number, w: number, h: number, canonical: number): number;
  decodeRaw(x: number, y: number, w: number, h: number, inLen: number): number;
  decodeCopyRect(x: number, y: number, w: number, h: number, srcX: number, srcY: number): number;
  decodeRre(x: number, y: number, w: number, h: number, inLen: number, compact: number): number;
  decodeHextile(x: number, y: number, w: number, h: number, inLen: number): number;
  decodeZrle(x: number, y: number, w: number, h: number, inLen: number): number;
  decodeTrle(x: number, y: number, w: number, h: number, inLen: number): number;
  decodeTightCopy(x: number, y: number, w: number, h: number, inLen: number): number;
  decodeTightPalette(x: number, y: number, w: number, h: number, colours: number, inLen: number): number;
  decodeTightGradient(x: number, y: number, w: number, h: number, inLen: number): number;

  // Encoders (input FB_A, output OUT in the output format); the output length or an E_* code.
  encodeRaw(x: number, y: number, w: number, h: number): number;
  encodeHextile(x: number, y: number, w: number, h: number): number;
  encodeZrle(x: number, y: number, w: number, h: number): number;
  /** Tight palette (≤ maxColours, most frequent first) as u32 in OUT; the count, 0 when exceeded. */
  tightAnalyse(x: number, y: number, w: number, h: number, maxColours: number): number;
  /** Tight copy filter: TPIXELs in OUT. */
  tightEncodeFull(x: number, y: number, w: number, h: number): number;
  /** Tight 2-colour filter against the palette in WORK: 1-bit rows in OUT. */
  tightEncodeMono(x: number, y: number, w: number, h: number): number;
  /** Tight palette filter against the n-colour palette in WORK: index bytes in OUT. */
  tightEncodeIndexed(x: number, y: number, w: number, h: number, n: number): number;
  /** Tight solid-area search: 5 u32 (x, y, w, h, colour) per area in OUT; the count. */
  tightFindSolid(x: number, y: number, w: number, h: number): number;
  /** n canonical colours in WORK → TPIXELs in OUT. */
  tightTpixels(n: number): number;
}

/** bpp, depth, bigEndian (0/1), trueColour (0/1), redMax, greenMax, blueMax, redShift, greenShift, blueShift. */
export type PixelFormatArgs = [
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
];

const EXPORT_NAMES: readonly (keyof CoreExports)[] = [
  "diffBlocks",
  "diffRects",
  "diffRect",
  "regionCount",
  "regionPtr",
  "regionSize",
  "selfTestAbort",
  "setInputFormat",
  "setOutputFormat",
  "setFramebuffer",
  "fillRect",
  "decodeRaw",
  "decodeCopyRect",
  "decodeRre",
  "decodeHextile",
  "decodeZrle",
  "decodeTrle",
  "decodeTightCopy",
  "decodeTightPalette",
  "decodeTightGradient",
  "encodeRaw",
  "encodeHextile",
  "encodeZrle",
  "tightAnalyse",
  "tightEncodeFull",
  "tightEncodeMono",
  "tightEncodeIndexed",
  "tightFindSolid",
  "tightTpixels",
];

export interface RegionInfo {
  readonly name: RegionName;
  /** Byte offset in memory. */
  readonly ptr: number;
  /** Byte length. */
  readonly size: number;
}

export interface CodecCore {
  readonly build: CoreBuild;
  readonly memory: WebAssembly.Memory;
  readonly fn: CoreExports;
  /** The memory map as this instance reports it, in id order. */
  readonly regions: readonly RegionInfo[];
  /** A view of a region; the same object until memory.buffer changes, then a fresh one. */
  region(name: RegionName): Uint8Array;
}

export interface LoadOptions {
  /** Directory holding debug.wasm / release.wasm. @default wasm/build next to this file */
  buildDir?: string;
}

/** An AssemblyScript abort (a failed assert, a throw, unreachable code) surfaced in the host. */
export class CoreAbortError extends Error {
  readonly file: string;
  readonly line: number;
  readonly column: number;

  constructor(message: string, file: string, line: number, column: number) {
    super(`codec core aborted: ${message} (${file}:${line}:${column})`);
    this.name = "CoreAbortError";
    this.file = file;
    this.line = line;
    this.column = column;
  }
}

/** wasm/build, or SHADOWRELAY_WASM_BUILD_DIR when set (as wasm/build.ts). */
const DEFAULT_BUILD_DIR = process.env.SHADOWRELAY_WASM_BUILD_DIR ?? join(import.meta.dir, "build");

// One compiled Module per file: compiling is the expensive part; instances are cheap and per session.
const modules = new Map<string, Promise<WebAssembly.Module>>();

/** Compiles a build once per process and returns the cached Module. */
export function compileCodecCore(build: CoreBuild, options: LoadOptions = {}): Promise<WebAssembly.Module> {
  const path = join(options.buildDir ?? DEFAULT_BUILD_DIR, `${build}.wasm`);
  let compiled = modules.get(path);
  if (!compiled) {
    compiled = readFile(path).then(
      (bytes) => WebAssembly.compile(bytes),
      (e: unknown) => {
        const reason = e instanceof Error ? e.message : String(e);
        throw new Error(
          `codec core ${path} is missing or unreadable (${reason}): run \`npm run build:wasm\``,
        );
      },
    );
    // A failed compile is not cached, so building and retrying in the same process works.
    compiled.catch(() => modules.delete(path));
    modules.set(path, compiled);
  }
  return compiled;
}

/** A fresh codec core (its own memory) over the cached Module of `build`. */
export async function loadCodecCore(
  build: CoreBuild = "release",
  options: LoadOptions = {},
): Promise<CodecCore> {
  const module = await compileCodecCore(build, options);
  let memory: WebAssembly.Memory | undefined;
  const imports = {
    env: {
      abort(messagePtr: number, filePtr: number, line: number, column: number): never {
        throw new CoreAbortError(
          readAsString(memory, messagePtr),
          readAsString(memory, filePtr),
          line >>> 0,
          column >>> 0,
        );
      },
    },
  };
  const instance = await WebAssembly.instantiate(module, imports);
  const exported = instance.exports;
  if (!(exported.memory instanceof WebAssembly.Memory))
    throw new Error(`codec core ${build}: no exported memory`);
  memory = exported.memory;
  for (const name of EXPORT_NAMES) {
    if (typeof exported[name] !== "function") {
      throw new Error(`codec core ${build} has no export ${name}: run \`npm run build:wasm\``);
    }
  }
  const fn = exported as unknown as CoreExports;
  return new Core(build, memory, fn, readRegions(build, memory, fn));
}

class Core implements CodecCore {
  readonly build: CoreBuild;
  readonly memory: WebAssembly.Memory;
  readonly fn: CoreExports;
  readonly regions: readonly RegionInfo[];
  #buffer: ArrayBuffer | undefined;
  #views = new Map<RegionName, Uint8Array>();

  constructor(build: CoreBuild, memory: WebAssembly.Memory, fn: CoreExports, regions: readonly RegionInfo[]) {
    this.build = build;
    this.memory = memory;
    this.fn = fn;
    this.regions = regions;
  }

  region(name: RegionName): Uint8Array {
    const buffer = this.memory.buffer;
    if (buffer !== this.#buffer) {
      this.#buffer = buffer;
      this.#views.clear();
      for (const r of this.regions) this.#views.set(r.name, new Uint8Array(buffer, r.ptr, r.size));
    }
    return this.#views.get(name)!;
  }
}

/** Reads and checks the memory map once per instance: every region inside memory, none overlapping. */
function readRegions(build: CoreBuild, memory: WebAssembly.Memory, fn: CoreExports): RegionInfo[] {
  const count = fn.regionCount();
  if (count !== REGION_COUNT) {
    throw new Error(`codec core ${build} reports ${count} regions, the host knows ${REGION_COUNT}: rebuild`);
  }
  const regions = REGION_NAMES.map((name) => ({
    name,
    ptr: fn.regionPtr(REGION_IDS[name]),
    size: fn.regionSize(REGION_IDS[name]),
  }));
  const sorted = [...regions].sort((a, b) => a.ptr - b.ptr);
  let end = 0;
  for (const r of sorted) {
    if (r.ptr < end || r.size <= 0 || r.ptr + r.size > memory.buffer.byteLength) {
      throw new Error(`codec core ${build}: region ${r.name} [${r.ptr}, +${r.size}) is not a valid region`);
    }
    end = r.ptr + r.size;
  }
  return regions;
}

/** An AssemblyScript string: UTF-16LE code units at ptr, byte length in the u32 at ptr - 4 (rt/common.ts). */
function readAsString(memory: WebAssembly.Memory | undefined, ptr: number): string {
  if (ptr === 0) return "";
  if (!memory) return `<string at ${ptr}: abort during instantiation>`;
  const buffer = memory.buffer;
  if (ptr < 4 || ptr > buffer.byteLength) return `<string at ${ptr}: out of bounds>`;
  const length = new DataView(buffer).getUint32(ptr - 4, true);
  if (ptr + length > buffer.byteLength) return `<string at ${ptr}: out of bounds>`;
  return new TextDecoder("utf-16le").decode(new Uint8Array(buffer, ptr, length));
}
