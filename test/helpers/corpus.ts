// Loads the shared recorded-session corpus (shared/corpus/README.md): TigerVNC Xvnc 1.12 at 1920×1080, one
// gzip'd server→client stream per SetEncodings list, an index of every update and rect, and the framebuffer
// a correct decoder reaches at each checkpoint. The corpus sits beside the repo (../shared/corpus), here and
// in CI. Streams are checked against the index's sha256 so a damaged file fails loudly, not as a decode bug.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { PixelFormat } from "../../relay/rfb/pixel-format.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Absolute path of the corpus directory. */
export const CORPUS_DIR = path.resolve(REPO_ROOT, "../shared/corpus");

export const CORPUS_WIDTH = 1920;
export const CORPUS_HEIGHT = 1080;

export type CorpusSession = "raw" | "copyrect" | "rre" | "hextile" | "zrle" | "tight";

/** The `phase` of an update (README "Sequence in every stream"). */
export type CorpusPhase = "full" | "scroll" | "settle" | "region";

export interface CorpusRect {
  x: number;
  y: number;
  w: number;
  h: number;
  /** Encoding number as on the wire (5 = Hextile), not a name. */
  enc: number;
  /** Offset of the 12-byte rect header in the uncompressed s2c stream. */
  offset: number;
  /** Header included. */
  length: number;
}

export interface CorpusUpdate {
  i: number;
  /** Offset of the message-type byte in the uncompressed s2c stream. */
  offset: number;
  /** Whole FramebufferUpdate message, its 4-byte header included. */
  length: number;
  phase: CorpusPhase;
  tMs: number;
  rects: CorpusRect[];
}

export interface CorpusCheckpoint {
  /** Index of the last update applied when the framebuffer must equal the expected one. */
  afterUpdate: number;
  expected: string;
  note?: string;
}

/** The index spells the pixel format with 0/1 flags and `bpp`. */
export interface CorpusPixelFormat {
  bpp: number;
  depth: number;
  bigEndian: number;
  trueColour: number;
  redMax: number;
  greenMax: number;
  blueMax: number;
  redShift: number;
  greenShift: number;
  blueShift: number;
}

export interface CorpusStreamInfo {
  file: string;
  compression: string;
  bytes: number;
  sha256: string;
}

export interface CorpusIndex {
  format: string;
  session: CorpusSession;
  setEncodings: number[];
  setEncodingsNames: string[];
  server: string;
  desktopName: string;
  width: number;
  height: number;
  /** The format the client set (SetPixelFormat), i.e. what every rect is in. */
  pixelFormat: CorpusPixelFormat;
  serverNativePixelFormat: CorpusPixelFormat;
  s2c: CorpusStreamInfo;
  c2s: CorpusStreamInfo;
  /** Offset of the first message after ServerInit. */
  handshakeBytes: number;
  totals: { updates: number; rects: number; pixels: number; rectsByEncoding: Record<string, number> };
  checkpoints: CorpusCheckpoint[];
  expectedSha256: string;
  otherMessages: unknown[];
  updates: CorpusUpdate[];
}

export interface Corpus {
  name: CorpusSession;
  /** Server→client bytes from "RFB 003.008\n" to the end, gunzipped. */
  s2c: Uint8Array;
  /** Client→server bytes, gunzipped. */
  c2s: Uint8Array;
  index: CorpusIndex;
}

function sha256Hex(bytes: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

function gunzipFile(file: string): Uint8Array {
  return Bun.gunzipSync(readFileSync(path.join(CORPUS_DIR, file)));
}

function gunzipChecked(info: CorpusStreamInfo): Uint8Array {
  const bytes = gunzipFile(info.file);
  const sum = sha256Hex(bytes);
  if (bytes.length !== info.bytes || sum !== info.sha256) {
    throw new Error(
      `corpus ${info.file}: ${bytes.length} bytes sha256 ${sum}, index says ${info.bytes} ${info.sha256}`,
    );
  }
  return bytes;
}

const loaded = new Map<CorpusSession, Corpus>();

/** One recorded session (cached: callers must not modify the arrays). */
export function loadCorpus(name: CorpusSession): Corpus {
  const hit = loaded.get(name);
  if (hit) return hit;
  const index = JSON.parse(readFileSync(path.join(CORPUS_DIR, `${name}.index.json`), "utf8")) as CorpusIndex;
  const corpus: Corpus = { name, s2c: gunzipChecked(index.s2c), c2s: gunzipChecked(index.c2s), index };
  loaded.set(name, corpus);
  return corpus;
}

/** corpus.json: one summary line per session. */
export interface CorpusSummary {
  format: string;
  width: number;
  height: number;
  expected: { file: string; sha256: string; pixelsChangedSinceFirstFullFrame: number };
  sessions: Array<{
    session: CorpusSession;
    updates: number;
    rects: number;
    mpixels: number;
    s2cBytes: number;
    s2cGz: number;
    byEnc: Record<string, number>;
    checkpoints: number[];
  }>;
}

export function loadCorpusSummary(): CorpusSummary {
  return JSON.parse(readFileSync(path.join(CORPUS_DIR, "corpus.json"), "utf8")) as CorpusSummary;
}

let expected: Uint8Array | undefined;

/** The expected framebuffer at every checkpoint: RGBA, A = 255, 1920*1080*4 bytes (cached: do not modify). */
export function loadExpectedFinal(): Uint8Array {
  if (expected) return expected;
  const bytes = gunzipFile("expected-final.rgba.gz");
  const want = loadCorpusSummary().expected.sha256;
  const sum = sha256Hex(bytes);
  if (bytes.length !== CORPUS_WIDTH * CORPUS_HEIGHT * 4 || sum !== want) {
    throw new Error(`corpus expected-final: ${bytes.length} bytes sha256 ${sum}, corpus.json says ${want}`);
  }
  expected = bytes;
  return bytes;
}

/** The index's pixel format as the relay's PixelFormat. */
export function corpusPixelFormat(pf: CorpusPixelFormat): PixelFormat {
  return {
    bitsPerPixel: pf.bpp,
    depth: pf.depth,
    bigEndian: pf.bigEndian !== 0,
    trueColour: pf.trueColour !== 0,
    redMax: pf.redMax,
    greenMax: pf.greenMax,
    blueMax: pf.blueMax,
    redShift: pf.redShift,
    greenShift: pf.greenShift,
    blueShift: pf.blueShift,
  };
}

/**
 * Pixels whose R, G or B differ between a canonical framebuffer (R,G,B,X) and an RGBA image of the same
 * size; X and A are ignored.
 */
export function compareRgb(fbCanonical: Uint8Array, expectedRgba: Uint8Array): number {
  if (fbCanonical.length !== expectedRgba.length) {
    throw new Error(`compareRgb: ${fbCanonical.length} vs ${expectedRgba.length} bytes`);
  }
  let bad = 0;
  for (let i = 0; i < fbCanonical.length; i += 4) {
    if (
      fbCanonical[i] !== expectedRgba[i] ||
      fbCanonical[i + 1] !== expectedRgba[i + 1] ||
      fbCanonical[i + 2] !== expectedRgba[i + 2]
    ) {
      bad++;
    }
  }
  return bad;
}
