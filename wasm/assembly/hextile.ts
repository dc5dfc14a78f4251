// Hextile (5) decoder (rfbproto.rst "Hextile Encoding", exact layout and carry-over rules in
// rfb-codecs.md §2.4): IN holds the framed body of a w × h rect, 16 × 16 tiles in row order (the right
// column and bottom row smaller), each a subencoding mask then either raw pixels or [bg] [fg] [nsub,
// subrects…]. One pass; each tile is validated completely before it is painted (bad-inputs.md table B
// "Hextile subencoding / subrects": every subrect inside its tile, which lies inside the rect), so a bad
// tile never writes and the tiles before it are exactly what the TypeScript twin paints
// (relay/codec/hextile.ts hextileDecodeTs, which makes the same choices in the same order).
//
// Carry-over: bg survives every tile but a Raw one; fg survives neither a Raw nor a SubrectsColoured tile.
// A non-raw tile that needs a bg (or mono subrects that need an fg) not given since is E_BAD_DATA, as are
// mask bits 5–7 (noVNC rejects them too).

import { E_BAD_DATA, E_TRAILING, E_TRUNCATED } from "./errors";
import { checkInput, checkRect, fbPtr, framebufferWidth, rawRows } from "./framebuffer";
import { IN_PTR } from "./memory";
import { inPixelBytes, pixelIn } from "./pixel";
import { fillArea } from "./rre";

const TILE = 16;
const RAW: u32 = 0x01;
const BG: u32 = 0x02; // BackgroundSpecified
const FG: u32 = 0x04; // ForegroundSpecified
const ANY: u32 = 0x08; // AnySubrects
const COLOURED: u32 = 0x10; // SubrectsColoured
const UNKNOWN: u32 = 0xe0;

/**
 * Decodes the Hextile body in IN[0, inLen) into the rect. Returns 0, or E_OUT_OF_BOUNDS, E_TOO_LARGE,
 * E_TRUNCATED (the body ends inside a tile), E_TRAILING (bytes after the last tile), E_BAD_DATA.
 */
export function decodeHextile(x: i32, y: i32, w: i32, h: i32, inLen: i32): i32 {
  let bad = checkRect(x, y, w, h);
  if (bad < 0) return bad;
  bad = checkInput(inLen);
  if (bad < 0) return bad;
  const bpp = <usize>inPixelBytes();
  const stride = (<usize>framebufferWidth()) << 2;
  const end: usize = <usize>IN_PTR + <usize>inLen;
  let p: usize = IN_PTR;
  let bgOk = false;
  let fgOk = false;
  let bg: u32 = 0;
  let fg: u32 = 0;
  for (let ty = 0; ty < h; ty += TILE) {
    const th = min(TILE, h - ty);
    for (let tx = 0; tx < w; tx += TILE) {
      const tw = min(TILE, w - tx);
      if (p >= end) return E_TRUNCATED;
      const mask = <u32>load<u8>(p++);
      if ((mask & UNKNOWN) != 0) return E_BAD_DATA;
      if ((mask & RAW) != 0) {
        const n = <usize>(tw * th) * bpp;
        if (end - p < n) return E_TRUNCATED;
        rawRows(x + tx, y + ty, tw, th, p);
        p += n;
        bgOk = false;
        fgOk = false;
        continue;
      }
      if ((mask & BG) == 0 && !bgOk) return E_BAD_DATA;
      let head: usize = 0;
      if ((mask & BG) != 0) head += bpp;
      if ((mask & FG) != 0) head += bpp;
      if ((mask & ANY) != 0) head += 1;
      if (end - p < head) return E_TRUNCATED;
      const coloured = (mask & COLOURED) != 0;
      let subs = p + head; // the subrects, after nsub
      let nsub = 0;
      let per: usize = 2;
      if ((mask & ANY) != 0) {
        nsub = <i32>load<u8>(subs - 1);
        if (coloured) per += bpp;
        if (end - subs < <usize>nsub * per) return E_TRUNCATED;
        if (nsub > 0 && !coloured && (mask & FG) == 0 && !fgOk) return E_BAD_DATA;
        // xy = x << 4 | y, wh = (w - 1) << 4 | (h - 1): each subrect must end inside this tile.
        const geo = coloured ? bpp : 0;
        for (let i = 0, q: usize = subs + geo; i < nsub; i++, q += per) {
          const xy = <i32>load<u8>(q);
          const wh = <i32>load<u8>(q, 1);
          if ((xy >> 4) + (wh >> 4) >= tw || (xy & 15) + (wh & 15) >= th) return E_BAD_DATA;
        }
      }
      // The tile is valid: read its colours and paint it.
      if ((mask & BG) != 0) {
        bg = pixelIn(p);
        p += bpp;
      }
      if ((mask & FG) != 0) {
        fg = pixelIn(p);
        fgOk = true;
      }
      bgOk = true;
      if (coloured) fgOk = false;
      const origin = fbPtr(x + tx, y + ty);
      fillArea(origin, stride, tw, th, bg);
      for (let i = 0; i < nsub; i++, subs += per) {
        let c = fg;
        let q = subs;
        if (coloured) {
          c = pixelIn(q);
          q += bpp;
        }
        const xy = <u32>load<u8>(q);
        const wh = <u32>load<u8>(q, 1);
        const at = origin + <usize>(xy & 15) * stride + ((<usize>(xy >> 4)) << 2);
        fillArea(at, stride, <i32>(wh >> 4) + 1, <i32>(wh & 15) + 1, c);
      }
      p = subs;
    }
  }
  return p == end ? 0 : E_TRAILING;
}
