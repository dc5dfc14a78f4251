// A synthetic desktop-like frame (canonical R,G,B,X, X = 0) for codec tests and benchmarks, after the
// mix rfb-codecs.md §7 measured: a solid background, a title bar, two windows of 2-colour "text" noise
// (glyph-sized runs) and anti-aliased text (few colours), a gradient panel and a photo-like noisy area.
// Deterministic for a seed, so a benchmark's compressed sizes are comparable between runs.

import { prng } from "./bytes.ts";

export function syntheticDesktop(width = 1920, height = 1080, seed = 0x5eed): Uint8Array {
  const out = new Uint8Array(width * height * 4);
  const rand = prng(seed);
  const put = (x: number, y: number, r: number, g: number, b: number) => {
    const i = (y * width + x) * 4;
    out[i] = r;
    out[i + 1] = g;
    out[i + 2] = b;
  };
  const rect = (
    x0: number,
    y0: number,
    w: number,
    h: number,
    f: (x: number, y: number) => [number, number, number],
  ) => {
    for (let y = Math.max(0, y0); y < Math.min(height, y0 + h); y++)
      for (let x = Math.max(0, x0); x < Math.min(width, x0 + w); x++) put(x, y, ...f(x, y));
  };
  const W = (f: number) => Math.floor(width * f);
  const H = (f: number) => Math.floor(height * f);
  // Background and a title bar.
  rect(0, 0, width, height, () => [58, 110, 165]);
  rect(0, 0, width, 24, () => [212, 208, 200]);
  // Window 1: white with black 2-colour "text": glyph cells of 9×15 with random strokes, blank line gaps.
  rect(W(0.05), H(0.08), W(0.45), H(0.5), (x, y) => {
    const row = Math.floor((y - H(0.08)) / 15);
    if (row % 4 === 3) return [255, 255, 255];
    const cell = Math.floor((x - W(0.05)) / 9) + row * 997;
    const on = ((cell * 2654435761) >>> 0) % 5 !== 0 && (rand() & 7) < 2;
    return on ? [0, 0, 0] : [255, 255, 255];
  });
  // Window 2: light grey with anti-aliased text: a handful of greys.
  const greys = [240, 200, 150, 90, 30];
  rect(W(0.55), H(0.1), W(0.4), H(0.35), () => {
    const g = greys[rand() % 3 === 0 ? rand() % greys.length : 0]!;
    return [g, g, g];
  });
  // A gradient panel.
  rect(W(0.55), H(0.5), W(0.4), H(0.2), (x, y) => [(x * 3) & 255, (y * 2) & 255, ((x + y) >> 1) & 255]);
  // A photo-like area: smooth colour plus noise.
  rect(W(0.05), H(0.62), W(0.45), H(0.35), (x, y) => {
    const n = rand();
    return [
      (128 + 100 * Math.sin(x / 37) + (n & 15)) & 255,
      (128 + 100 * Math.cos(y / 29) + ((n >> 4) & 15)) & 255,
      (128 + 60 * Math.sin((x + y) / 53) + ((n >> 8) & 15)) & 255,
    ];
  });
  // Solid buttons.
  for (let i = 0; i < 6; i++) rect(W(0.55) + i * 90, H(0.75), 80, 30, () => [40 * i, 200 - 30 * i, 120]);
  return out;
}
