// Pictures for the real-peer tests, with no processes: the RGBA image type, a parser for the binary PNM that
// ImageMagick writes losslessly, known pictures to paint (solid, a deterministic test pattern), a tolerant
// comparison for lossy captures (vncsnapshot only writes JPEG), and a PNG writer for artifacts.

import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { encodePng as encodePngBytes } from "../../relay/util/png.ts";

/** 8-bit RGBA, rows top to bottom, no padding; alpha is 255 for everything read from a screen. */
export interface RgbaImage {
  width: number;
  height: number;
  rgba: Uint8Array;
}

export type Rgb = readonly [r: number, g: number, b: number];

/** "#rrggbb" → [r, g, b]; throws on anything else (named colours would make the expected picture unknown). */
export function parseHexColour(hex: string): Rgb {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) throw new Error(`colour must be #rrggbb, got ${JSON.stringify(hex)}`);
  return [Number.parseInt(m[1]!, 16), Number.parseInt(m[2]!, 16), Number.parseInt(m[3]!, 16)];
}

export function hexColour([r, g, b]: Rgb): string {
  return `#${[r, g, b].map((c) => c.toString(16).padStart(2, "0")).join("")}`;
}

function checkSize(width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`bad image size ${width}×${height}`);
  }
  if (width * height > 16384 * 16384) throw new Error(`image ${width}×${height} is too large for a test`);
}

export function solidImage(width: number, height: number, [r, g, b]: Rgb): RgbaImage {
  checkSize(width, height);
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < rgba.length; i += 4) {
    rgba[i] = r;
    rgba[i + 1] = g;
    rgba[i + 2] = b;
    rgba[i + 3] = 255;
  }
  return { width, height, rgba };
}

const BARS: readonly Rgb[] = [
  [255, 255, 255],
  [255, 255, 0],
  [0, 255, 255],
  [0, 255, 0],
  [255, 0, 255],
  [255, 0, 0],
  [0, 0, 255],
  [0, 0, 0],
];

/**
 * A deterministic picture that shows a wrong offset, a swapped channel or a lost rectangle: eight saturated
 * colour bars (top quarter), a two-axis gradient (middle half; red follows x, green follows y, so every
 * position has its own colour), and a 16-pixel checkerboard with one-pixel lines (bottom quarter).
 */
export function testPattern(width: number, height: number): RgbaImage {
  checkSize(width, height);
  const rgba = new Uint8Array(width * height * 4);
  const barsEnd = Math.floor(height / 4);
  const gradientEnd = Math.floor((height * 3) / 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let r: number;
      let g: number;
      let b: number;
      if (y < barsEnd) {
        [r, g, b] = BARS[Math.min(BARS.length - 1, Math.floor((x * BARS.length) / width))]!;
      } else if (y < gradientEnd) {
        r = Math.floor((x * 255) / Math.max(1, width - 1));
        g = Math.floor(((y - barsEnd) * 255) / Math.max(1, gradientEnd - barsEnd - 1));
        b = 96;
      } else if (x % 32 === 31 || y % 32 === 31) {
        [r, g, b] = [255, 255, 255];
      } else if (((x >> 4) + (y >> 4)) % 2 === 0) {
        [r, g, b] = [32, 64, 160];
      } else {
        [r, g, b] = [224, 176, 32];
      }
      const i = (y * width + x) * 4;
      rgba[i] = r;
      rgba[i + 1] = g;
      rgba[i + 2] = b;
      rgba[i + 3] = 255;
    }
  }
  return { width, height, rgba };
}

/** Seeded xorshift32 noise in every channel: the worst case for a lossy codec. Same seed, same picture. */
export function noiseImage(width: number, height: number, seed = 0x2545f491): RgbaImage {
  checkSize(width, height);
  const rgba = new Uint8Array(width * height * 4);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < rgba.length; i++) {
    if (i % 4 === 3) {
      rgba[i] = 255;
      continue;
    }
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    rgba[i] = s & 0xff;
  }
  return { width, height, rgba };
}

/** `image` repeated from the top-left corner over width×height, as X does with a root background pixmap. */
export function tileImage(image: RgbaImage, width: number, height: number): RgbaImage {
  checkSize(width, height);
  if (image.width === width && image.height === height) return image;
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    const src = image.rgba.subarray(
      (y % image.height) * image.width * 4,
      ((y % image.height) + 1) * image.width * 4,
    );
    for (let x = 0; x < width; x += image.width) {
      const n = Math.min(image.width, width - x);
      rgba.set(src.subarray(0, n * 4), (y * width + x) * 4);
    }
  }
  return { width, height, rgba };
}

/** Copy of `image` with a w×h rectangle at (x, y) set to one colour: a known defect for negative checks. */
export function withRect(
  image: RgbaImage,
  x: number,
  y: number,
  w: number,
  h: number,
  [r, g, b]: Rgb,
): RgbaImage {
  const rgba = image.rgba.slice();
  for (let yy = Math.max(0, y); yy < Math.min(image.height, y + h); yy++) {
    for (let xx = Math.max(0, x); xx < Math.min(image.width, x + w); xx++) {
      const i = (yy * image.width + xx) * 4;
      rgba[i] = r;
      rgba[i + 1] = g;
      rgba[i + 2] = b;
      rgba[i + 3] = 255;
    }
  }
  return { width: image.width, height: image.height, rgba };
}

/**
 * Binary PNM (Netpbm): P6 (RGB) or P5 (grey), maxval 255, as `convert … -depth 8 ppm:-` and
 * `import … ppm:-` write it. The header is "P6", whitespace, width, height, maxval (with # comments allowed
 * between fields), then exactly one whitespace byte before the samples.
 */
export function parsePnm(bytes: Uint8Array): RgbaImage {
  let pos = 0;
  const isSpace = (c: number | undefined) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
  const field = (): string => {
    for (;;) {
      while (isSpace(bytes[pos])) pos++;
      if (bytes[pos] !== 0x23) break; // '#': comment to end of line
      while (pos < bytes.length && bytes[pos] !== 0x0a) pos++;
    }
    const start = pos;
    while (pos < bytes.length && !isSpace(bytes[pos])) pos++;
    return new TextDecoder().decode(bytes.subarray(start, pos));
  };
  const magic = field();
  if (magic !== "P6" && magic !== "P5") throw new Error(`not a binary PNM (magic ${JSON.stringify(magic)})`);
  const width = Number(field());
  const height = Number(field());
  const maxval = Number(field());
  checkSize(width, height);
  if (maxval !== 255) throw new Error(`PNM maxval ${maxval}: ask ImageMagick for -depth 8`);
  if (!isSpace(bytes[pos])) throw new Error("PNM header does not end in whitespace");
  pos++;
  const channels = magic === "P6" ? 3 : 1;
  const need = width * height * channels;
  if (bytes.length - pos < need)
    throw new Error(`PNM ${width}×${height} truncated: ${bytes.length - pos} of ${need} bytes`);
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0, s = pos; p < width * height; p++, s += channels) {
    const r = bytes[s]!;
    rgba[p * 4] = r;
    rgba[p * 4 + 1] = channels === 3 ? bytes[s + 1]! : r;
    rgba[p * 4 + 2] = channels === 3 ? bytes[s + 2]! : r;
    rgba[p * 4 + 3] = 255;
  }
  return { width, height, rgba };
}

export interface CompareOptions {
  /** A pixel is bad when any of its R, G, B differs by more than this (alpha is ignored). */
  maxChannelDiff: number;
  /** The images match when at most this share of pixels is bad (0 = none may be). */
  maxBadFraction: number;
}

export interface CompareStats {
  ok: boolean;
  sameSize: boolean;
  pixels: number;
  /** Pixels with some channel difference above maxChannelDiff. */
  badPixels: number;
  badFraction: number;
  /** Largest per-channel difference anywhere; 0 means identical RGB. */
  maxDiff: number;
  /** Mean over pixels of the largest channel difference of each pixel. */
  meanDiff: number;
  /** Pixels with any difference at all. */
  differingPixels: number;
  firstBad?: { x: number; y: number; a: Rgb; b: Rgb };
}

/** Compares RGB of two images with a stated tolerance; different sizes never match. */
export function compareImages(a: RgbaImage, b: RgbaImage, opts: CompareOptions): CompareStats {
  const pixels = a.width * a.height;
  if (a.width !== b.width || a.height !== b.height) {
    return {
      ok: false,
      sameSize: false,
      pixels,
      badPixels: pixels,
      badFraction: 1,
      maxDiff: 255,
      meanDiff: 255,
      differingPixels: pixels,
    };
  }
  let badPixels = 0;
  let differingPixels = 0;
  let maxDiff = 0;
  let sumDiff = 0;
  let firstBad: CompareStats["firstBad"];
  const pa = a.rgba;
  const pb = b.rgba;
  for (let p = 0, i = 0; p < pixels; p++, i += 4) {
    const d = Math.max(
      Math.abs(pa[i]! - pb[i]!),
      Math.abs(pa[i + 1]! - pb[i + 1]!),
      Math.abs(pa[i + 2]! - pb[i + 2]!),
    );
    if (d === 0) continue;
    differingPixels++;
    sumDiff += d;
    if (d > maxDiff) maxDiff = d;
    if (d > opts.maxChannelDiff) {
      badPixels++;
      firstBad ??= {
        x: p % a.width,
        y: Math.floor(p / a.width),
        a: [pa[i]!, pa[i + 1]!, pa[i + 2]!],
        b: [pb[i]!, pb[i + 1]!, pb[i + 2]!],
      };
    }
  }
  const badFraction = pixels === 0 ? 0 : badPixels / pixels;
  return {
    ok: badFraction <= opts.maxBadFraction,
    sameSize: true,
    pixels,
    badPixels,
    badFraction,
    maxDiff,
    meanDiff: pixels === 0 ? 0 : sumDiff / pixels,
    differingPixels,
    ...(firstBad ? { firstBad } : {}),
  };
}

/** One line for an assertion message or a log. */
export function describeStats(s: CompareStats): string {
  if (!s.sameSize) return "sizes differ";
  const first = s.firstBad
    ? `, first bad (${s.firstBad.x},${s.firstBad.y}) ${hexColour(s.firstBad.a)} vs ${hexColour(s.firstBad.b)}`
    : "";
  return (
    `${s.badPixels}/${s.pixels} bad (${(s.badFraction * 100).toFixed(3)}%), ${s.differingPixels} differ, ` +
    `max diff ${s.maxDiff}, mean ${s.meanDiff.toFixed(3)}${first}`
  );
}

/** Identical RGB: the tolerance for lossless captures (captureX, and RFB itself). */
export const EXACT: CompareOptions = { maxChannelDiff: 0, maxBadFraction: 0 };

/** A PNG of the picture (relay/util/png.ts; rig.test.ts reads one back with ImageMagick to prove it). */
export function encodePng({ width, height, rgba }: RgbaImage): Uint8Array {
  checkSize(width, height);
  return encodePngBytes(width, height, rgba);
}

/** Saves a picture as PNG, creating the folder (artifacts go under test/artifacts/, which git ignores). */
export function writePng(path: string, image: RgbaImage): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, encodePng(image));
}
