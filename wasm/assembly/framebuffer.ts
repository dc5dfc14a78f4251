// The session framebuffer in FB_A: its size, the per-dimension rect check every decoder runs before it
// writes (bad-inputs.md table B "Rectangle header": x + w ≤ W and y + h ≤ H checked separately, never by
// area), and the three primitive decoders that need no parsing: Raw, CopyRect and a solid fill.
// Pixels are canonical R,G,B,X with X = 0; rows are packed, stride = width × 4.

import { E_BAD_DIMENSIONS, E_OUT_OF_BOUNDS, E_TOO_LARGE, E_TRAILING, E_TRUNCATED } from "./errors";
import { BYTES_PER_PIXEL, FB_A_PTR, FB_B_PTR, FB_SIZE, IN_PTR, IN_SIZE, MAX_SIDE } from "./memory";
import { inIsCanonical, inPixelBytes, pixelIn } from "./pixel";

let fbWidth: i32 = 0;
let fbHeight: i32 = 0;

/** Sets the framebuffer size and clears FB_A and FB_B to 0 (black, X = 0). Returns 0 or an E_* code. */
export function setFramebuffer(width: i32, height: i32): i32 {
  if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) return E_BAD_DIMENSIONS;
  // ≤ 16384² = 2^28 px, so the product cannot overflow i32.
  if (width * height > FB_SIZE / BYTES_PER_PIXEL) return E_TOO_LARGE;
  fbWidth = width;
  fbHeight = height;
  const bytes = <usize>(width * height * BYTES_PER_PIXEL);
  memory.fill(FB_A_PTR, 0, bytes);
  memory.fill(FB_B_PTR, 0, bytes);
  return 0;
}

export function framebufferWidth(): i32 {
  return fbWidth;
}

export function framebufferHeight(): i32 {
  return fbHeight;
}

/** Address of pixel (x, y) in FB_A. */
export function fbPtr(x: i32, y: i32): usize {
  return FB_A_PTR + ((<usize>y * <usize>fbWidth + <usize>x) << 2);
}

/** 0 when the rect lies inside the framebuffer, each dimension checked on its own; else E_OUT_OF_BOUNDS. */
export function checkRect(x: i32, y: i32, w: i32, h: i32): i32 {
  if (x < 0 || y < 0 || w < 0 || h < 0) return E_OUT_OF_BOUNDS;
  if (x > fbWidth - w || y > fbHeight - h) return E_OUT_OF_BOUNDS;
  return 0;
}

/** 0 when inLen fits IN; else E_TOO_LARGE. */
export function checkInput(inLen: i32): i32 {
  return inLen < 0 || inLen > IN_SIZE ? E_TOO_LARGE : 0;
}

/** Fills a rect with canonical colour c (only the low 24 bits count). The caller checked the rect. */
export function fillUnchecked(x: i32, y: i32, w: i32, h: i32, c: u32): void {
  const px = c & 0xffffff;
  const v = i32x4.splat(px);
  for (let row = 0; row < h; row++) {
    let p = fbPtr(x, y + row);
    const end = p + ((<usize>w) << 2);
    for (; p + 16 <= end; p += 16) v128.store(p, v);
    for (; p < end; p += 4) store<u32>(p, px);
  }
}

/** Fills a rect with canonical colour c: Tight Fill, and the host's own fills. */
export function fillRect(x: i32, y: i32, w: i32, h: i32, c: u32): i32 {
  const bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  fillUnchecked(x, y, w, h, c);
  return 0;
}

/**
 * Raw (encoding 0): PIXEL[w × h] in IN, rows packed, in the input format; inLen must be exactly
 * w × h × bytes per pixel. Canonical input is a masked row copy (16 B per v128); any other format goes
 * through pixelIn.
 */
export function decodeRaw(x: i32, y: i32, w: i32, h: i32, inLen: i32): i32 {
  let bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  bad = checkInput(inLen);
  if (bad < 0) return bad;
  const bpp = inPixelBytes();
  // w, h ≤ 16384 each after checkRect: the product fits i64, compared before any read.
  const need = <i64>w * <i64>h * <i64>bpp;
  if (<i64>inLen < need) return E_TRUNCATED;
  if (<i64>inLen > need) return E_TRAILING;
  rawRows(x, y, w, h, IN_PTR);
  return 0;
}

/** Writes w × h input-format pixels from src (rows packed) into the rect; used by Raw and Tight copy. */
export function rawRows(x: i32, y: i32, w: i32, h: i32, src: usize): void {
  const bpp = <usize>inPixelBytes();
  const mask = i32x4.splat(0xffffff);
  for (let row = 0; row < h; row++) {
    let d = fbPtr(x, y + row);
    let s = src + <usize>row * <usize>w * bpp;
    if (inIsCanonical()) {
      const end = d + ((<usize>w) << 2);
      for (; d + 16 <= end; d += 16, s += 16) v128.store(d, v128.and(v128.load(s), mask));
      for (; d < end; d += 4, s += 4) store<u32>(d, load<u32>(s) & 0xffffff);
    } else {
      for (let i = 0; i < w; i++, d += 4, s += bpp) store<u32>(d, pixelIn(s));
    }
  }
}

/**
 * CopyRect (encoding 1): copies the w × h source at (srcX, srcY) to (x, y) inside FB_A. Both rects are
 * checked per dimension (TigerVNC CVE-2019-15692 was a source outside the framebuffer). Overlap is fine:
 * rows go bottom-up when the destination is below the source, and memory.copy is memmove within a row.
 */
export function decodeCopyRect(x: i32, y: i32, w: i32, h: i32, srcX: i32, srcY: i32): i32 {
  let bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  bad = checkRect(srcX, srcY, w, h);
  if (bad < 0) return bad;
  const rowBytes = (<usize>w) << 2;
  if (y > srcY) {
    for (let row = h - 1; row >= 0; row--) memory.copy(fbPtr(x, y + row), fbPtr(srcX, srcY + row), rowBytes);
  } else {
    for (let row = 0; row < h; row++) memory.copy(fbPtr(x, y + row), fbPtr(srcX, srcY + row), rowBytes);
  }
  return 0;
}
