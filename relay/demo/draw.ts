// Clipped drawing primitives for the demo desktop: rect arithmetic and fills straight into the canonical
// framebuffer. Every primitive clips to the framebuffer (and an optional clip rect) and returns the rect it
// touched, so callers can hand exactly that to change tracking.

import type { Framebuffer } from "../codec/framebuffer.ts";

/** A rect in framebuffer pixels; w or h of 0 means empty. */
export interface DemoRect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export function makeRect(x: number, y: number, w: number, h: number): DemoRect {
  return { x, y, w: Math.max(0, w), h: Math.max(0, h) };
}

export function isEmptyRect(r: DemoRect): boolean {
  return r.w <= 0 || r.h <= 0;
}

export function rectArea(r: DemoRect): number {
  return isEmptyRect(r) ? 0 : r.w * r.h;
}

/** The overlap of a and b; an empty rect (w = h = 0) at a's corner when they do not overlap. */
export function intersectRect(a: DemoRect, b: DemoRect): DemoRect {
  const x0 = Math.max(a.x, b.x);
  const y0 = Math.max(a.y, b.y);
  const x1 = Math.min(a.x + a.w, b.x + b.w);
  const y1 = Math.min(a.y + a.h, b.y + b.h);
  if (x1 <= x0 || y1 <= y0) return { x: a.x, y: a.y, w: 0, h: 0 };
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

/** The bounding box of a and b (an empty operand does not count). */
export function unionRect(a: DemoRect, b: DemoRect): DemoRect {
  if (isEmptyRect(a)) return { ...b };
  if (isEmptyRect(b)) return { ...a };
  const x0 = Math.min(a.x, b.x);
  const y0 = Math.min(a.y, b.y);
  return { x: x0, y: y0, w: Math.max(a.x + a.w, b.x + b.w) - x0, h: Math.max(a.y + a.h, b.y + b.h) - y0 };
}

export function containsRect(outer: DemoRect, inner: DemoRect): boolean {
  return (
    inner.x >= outer.x &&
    inner.y >= outer.y &&
    inner.x + inner.w <= outer.x + outer.w &&
    inner.y + inner.h <= outer.y + outer.h
  );
}

/** Shrinks a rect by n pixels on every side. */
export function insetRect(r: DemoRect, n: number): DemoRect {
  return makeRect(r.x + n, r.y + n, r.w - 2 * n, r.h - 2 * n);
}

export function fbBounds(fb: Framebuffer): DemoRect {
  return { x: 0, y: 0, w: fb.width, h: fb.height };
}

// One 32-bit view per framebuffer: a pixel write is then one store. Framebuffer.fill already relies on the
// platform being little-endian (R in the low byte), so the same packing is used here.
const views = new WeakMap<Framebuffer, Uint32Array>();

export function pixelView(fb: Framebuffer): Uint32Array {
  let v = views.get(fb);
  if (v === undefined) {
    v = new Uint32Array(fb.data.buffer, fb.data.byteOffset, fb.width * fb.height);
    views.set(fb, v);
  }
  return v;
}

/** 0xRRGGBB → the canonical pixel as a little-endian u32 (bytes R,G,B,X with X = 0). */
export function packRgb(color: number): number {
  return ((color >>> 16) & 0xff) | (color & 0xff00) | ((color & 0xff) << 16);
}

/** Linear blend of two 0xRRGGBB colours, t in [0, 1]. */
export function mixRgb(a: number, b: number, t: number): number {
  const k = Math.min(1, Math.max(0, t));
  const ch = (shift: number): number => {
    const ca = (a >>> shift) & 0xff;
    const cb = (b >>> shift) & 0xff;
    return Math.round(ca + (cb - ca) * k) << shift;
  };
  return ch(16) | ch(8) | ch(0);
}

/** The clip rect actually usable on this framebuffer. */
export function clipTo(fb: Framebuffer, clip?: DemoRect): DemoRect {
  return clip === undefined ? fbBounds(fb) : intersectRect(clip, fbBounds(fb));
}

/** Fills r (clipped) with one colour; returns the clipped rect. */
export function fillRect(fb: Framebuffer, r: DemoRect, color: number, clip?: DemoRect): DemoRect {
  const c = intersectRect(r, clipTo(fb, clip));
  if (isEmptyRect(c)) return c;
  const px = pixelView(fb);
  const v = packRgb(color);
  for (let y = c.y; y < c.y + c.h; y++) px.fill(v, y * fb.width + c.x, y * fb.width + c.x + c.w);
  return c;
}

/** A 1-pixel outline just inside r. */
export function strokeRect(fb: Framebuffer, r: DemoRect, color: number, clip?: DemoRect): DemoRect {
  fillRect(fb, makeRect(r.x, r.y, r.w, 1), color, clip);
  fillRect(fb, makeRect(r.x, r.y + r.h - 1, r.w, 1), color, clip);
  fillRect(fb, makeRect(r.x, r.y, 1, r.h), color, clip);
  fillRect(fb, makeRect(r.x + r.w - 1, r.y, 1, r.h), color, clip);
  return intersectRect(r, clipTo(fb, clip));
}

/** The bounding box of a disc of the given radius. */
export function discBounds(cx: number, cy: number, radius: number): DemoRect {
  return makeRect(cx - radius, cy - radius, 2 * radius + 1, 2 * radius + 1);
}

/** A filled disc; r² + r as the threshold makes small discs round instead of diamond-shaped. */
export function fillDisc(
  fb: Framebuffer,
  cx: number,
  cy: number,
  radius: number,
  color: number,
  clip?: DemoRect,
): DemoRect {
  const c = clipTo(fb, clip);
  const box = intersectRect(discBounds(cx, cy, radius), c);
  if (isEmptyRect(box)) return box;
  const px = pixelView(fb);
  const v = packRgb(color);
  const limit = radius * radius + radius;
  for (let y = box.y; y < box.y + box.h; y++) {
    const dy = y - cy;
    const half = Math.floor(Math.sqrt(Math.max(0, limit - dy * dy)));
    const x0 = Math.max(cx - half, box.x);
    const x1 = Math.min(cx + half + 1, box.x + box.w);
    if (x1 > x0) px.fill(v, y * fb.width + x0, y * fb.width + x1);
  }
  return box;
}

/** A stroke from (x0,y0) to (x1,y1) with a round brush (Bresenham, a disc per step). */
export function drawLine(
  fb: Framebuffer,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  radius: number,
  color: number,
  clip?: DemoRect,
): DemoRect {
  const dx = Math.abs(x1 - x0);
  const dy = -Math.abs(y1 - y0);
  const sx = x0 < x1 ? 1 : -1;
  const sy = y0 < y1 ? 1 : -1;
  let err = dx + dy;
  let x = x0;
  let y = y0;
  for (;;) {
    fillDisc(fb, x, y, radius, color, clip);
    if (x === x1 && y === y1) break;
    const e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y += sy;
    }
  }
  const box = unionRect(discBounds(x0, y0, radius), discBounds(x1, y1, radius));
  return intersectRect(box, clipTo(fb, clip));
}
