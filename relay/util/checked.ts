// Checked size arithmetic: every allocation size and every length derived from peer input goes through
// here (bad-inputs.md §c.13, the Guacamole ckd_mul lesson). Plain numbers are exact up to 2^53; anything
// that would pass a cap, or leave the safe-integer range, throws a coded error before memory is touched.

import { RfbError } from "../rfb/errors.ts";

/** A non-negative safe integer, or a coded error. */
export function checkedSize(n: number, cap: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RfbError("SIZE_OVERFLOW", `${what}: ${n} is not a size`);
  // Fails closed: a cap that is NaN or undefined (a bad override) rejects everything.
  if (!(n <= cap)) throw new RfbError("LIMIT_EXCEEDED", `${what}: ${n} exceeds the limit ${cap}`);
  return n + 0; // normalises -0
}

/** a * b, checked against cap (and against 2^53 on the way). */
export function checkedMul(a: number, b: number, cap: number, what: string): number {
  checkedSize(a, Number.MAX_SAFE_INTEGER, what);
  checkedSize(b, Number.MAX_SAFE_INTEGER, what);
  if (a !== 0 && b > Number.MAX_SAFE_INTEGER / a) {
    throw new RfbError("SIZE_OVERFLOW", `${what}: ${a} × ${b} overflows`);
  }
  return checkedSize(a * b, cap, what);
}

/** a + b, checked against cap. */
export function checkedAdd(a: number, b: number, cap: number, what: string): number {
  checkedSize(a, Number.MAX_SAFE_INTEGER, what);
  checkedSize(b, Number.MAX_SAFE_INTEGER, what);
  if (a > Number.MAX_SAFE_INTEGER - b) throw new RfbError("SIZE_OVERFLOW", `${what}: ${a} + ${b} overflows`);
  return checkedSize(a + b, cap, what);
}

/** w * h * bytesPerPixel, each factor and the product checked; the usual pixel-buffer size. */
export function checkedPixels(
  w: number,
  h: number,
  bytesPerPixel: number,
  cap: number,
  what: string,
): number {
  return checkedMul(checkedMul(w, h, Number.MAX_SAFE_INTEGER, what), bytesPerPixel, cap, what);
}
