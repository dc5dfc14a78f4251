// RRE (2) and CoRRE (4) decoder (rfbproto.rst "RRE Encoding" / "CoRRE Encoding", rfb-codecs.md §2.3):
// IN holds U32 nsub, PIXEL bg, then nsub × {PIXEL, x, y, w, h}, the coordinates U16 (RRE) or U8 (CoRRE)
// in network byte order. The whole body is validated before the first write (bad-inputs.md table B
// "RRE / CoRRE nSubrects": the byte count from nsub in exact i64 arithmetic, so 0x20000001 × 8 cannot wrap;
// every subrect inside its parent rect), so a refused rect leaves the framebuffer as it was.
// The TypeScript twin is relay/codec/rre.ts rreDecodeTs.

import { E_BAD_DATA, E_TRAILING, E_TRUNCATED } from "./errors";
import { checkInput, checkRect, fbPtr, framebufferWidth } from "./framebuffer";
import { IN_PTR } from "./memory";
import { inPixelBytes, pixelIn } from "./pixel";

/** CoRRE coordinates are U8: its rects are at most 255 × 255 (rfbproto.rst "CoRRE Encoding"). */
const CORRE_MAX_SIDE = 255;

/**
 * Decodes the RRE (compact = 0) or CoRRE (compact ≠ 0) body in IN[0, inLen) into the rect. Returns 0, or
 * E_OUT_OF_BOUNDS, E_TOO_LARGE, E_TRUNCATED, E_TRAILING, E_BAD_DATA (a subrect outside the rect, a CoRRE
 * rect over 255 × 255).
 */
export function decodeRre(x: i32, y: i32, w: i32, h: i32, inLen: i32, compact: i32): i32 {
  let bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  bad = checkInput(inLen);
  if (bad < 0) return bad;
  const coRre = compact != 0;
  if (coRre && (w > CORRE_MAX_SIDE || h > CORRE_MAX_SIDE)) return E_BAD_DATA;
  const bpp = inPixelBytes();
  const head = 4 + bpp;
  if (inLen < head) return E_TRUNCATED;
  const nsub = bswap<u32>(load<u32>(IN_PTR));
  const per = bpp + (coRre ? 4 : 8);
  // nsub < 2^32 and per ≤ 12: the product is exact in i64, compared before any subrect is read.
  const need = <i64>head + <i64>nsub * <i64>per;
  if (<i64>inLen < need) return E_TRUNCATED;
  if (<i64>inLen > need) return E_TRAILING;
  const n = <i32>nsub; // need ≤ inLen ≤ IN_SIZE, so nsub fits
  const first: usize = <usize>IN_PTR + <usize>head;

  // Pass 1: every subrect inside the rect (u16 sums stay far below 2^31).
  let p = first + <usize>bpp;
  for (let i = 0; i < n; i++, p += <usize>per) {
    let sx: i32, sy: i32, sw: i32, sh: i32;
    if (coRre) {
      sx = <i32>load<u8>(p);
      sy = <i32>load<u8>(p, 1);
      sw = <i32>load<u8>(p, 2);
      sh = <i32>load<u8>(p, 3);
    } else {
      sx = <i32>bswap<u16>(load<u16>(p));
      sy = <i32>bswap<u16>(load<u16>(p, 2));
      sw = <i32>bswap<u16>(load<u16>(p, 4));
      sh = <i32>bswap<u16>(load<u16>(p, 6));
    }
    if (sx + sw > w || sy + sh > h) return E_BAD_DATA;
  }

  // Pass 2: paint, background first, then the subrects in order (later ones over earlier ones).
  const stride = (<usize>framebufferWidth()) << 2;
  const origin = fbPtr(x, y);
  fillArea(origin, stride, w, h, pixelIn(IN_PTR + 4));
  p = first;
  for (let i = 0; i < n; i++, p += <usize>per) {
    const c = pixelIn(p);
    const q = p + <usize>bpp;
    let sx: i32, sy: i32, sw: i32, sh: i32;
    if (coRre) {
      sx = <i32>load<u8>(q);
      sy = <i32>load<u8>(q, 1);
      sw = <i32>load<u8>(q, 2);
      sh = <i32>load<u8>(q, 3);
    } else {
      sx = <i32>bswap<u16>(load<u16>(q));
      sy = <i32>bswap<u16>(load<u16>(q, 2));
      sw = <i32>bswap<u16>(load<u16>(q, 4));
      sh = <i32>bswap<u16>(load<u16>(q, 6));
    }
    fillArea(origin + <usize>sy * stride + ((<usize>sx) << 2), stride, sw, sh, c);
  }
  return 0;
}

/**
 * Fills w × h pixels at p (rows `stride` bytes apart) with canonical c: v128 stores, 4 px each, then the
 * remainder. Shared with the Hextile decoder, whose subrects are as small as 1 × 1.
 */
export function fillArea(p: usize, stride: usize, w: i32, h: i32, c: u32): void {
  const v = i32x4.splat(c);
  const bytes = (<usize>w) << 2;
  const wide = bytes & ~(<usize>15);
  for (let row = 0; row < h; row++, p += stride) {
    let d = p;
    const end = p + wide;
    for (; d < end; d += 16) v128.store(d, v);
    const tail = p + bytes;
    for (; d < tail; d += 4) store<u32>(d, c);
  }
}
