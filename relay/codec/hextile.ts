// Hextile (encoding 5, rfbproto.rst "Hextile Encoding"; exact layout, carry-over rules and interop traps in
// shared/reference/rfb-codecs.md §2.4): the rect is cut into 16×16 tiles in row order, the right column and
// bottom row smaller; each tile is a subencoding mask then either raw pixels or [bg] [fg] [nsub, subrects…].
// Framing walks the tiles resumably (TigerVNC HextileDecoder::readRect); decoding is a pure function of the
// framed body (hextileDecodeTs, the TS twin of wasm/assembly/hextile.ts); the encoder follows TigerVNC's
// "ImprovedHextile" (hextileEncodeBetter) and is the TS twin of wasm/assembly/encode-hextile.ts, which
// produces the same bytes (hextileEncodeTs).

import { Encoding } from "../rfb/constants.ts";
import { RfbError } from "../rfb/errors.ts";
import {
  bytesPerPixel,
  isCanonical,
  type PixelFormat,
  readPixel,
  unpackPixel,
  writePixel,
} from "../rfb/pixel-format.ts";
import { checkedAdd, checkedPixels } from "../util/checked.ts";
import type { Framebuffer } from "./framebuffer.ts";
import {
  type DecodeContext,
  NEED_MORE,
  type Rect,
  type RectCodec,
  type RectEncoder,
  type RectFramer,
  TileFramer,
} from "./types.ts";

/** Subencoding mask bits (rfbproto.rst "Hextile Encoding", TigerVNC hextileConstants.h). */
export const HextileMask = {
  /** PIXEL[tw*th] follows; every other bit is ignored. */
  Raw: 0x01,
  /** PIXEL bg follows. */
  BackgroundSpecified: 0x02,
  /** PIXEL fg follows; meant for mono subrects only. */
  ForegroundSpecified: 0x04,
  /** U8 nsub follows, then the subrects. */
  AnySubrects: 0x08,
  /** Each subrect carries its own PIXEL before xy, wh. */
  SubrectsColoured: 0x10,
} as const;

export const HEXTILE_TILE_SIZE = 16;

const RAW = HextileMask.Raw;
const BG = HextileMask.BackgroundSpecified;
const FG = HextileMask.ForegroundSpecified;
const ANY = HextileMask.AnySubrects;
const COLOURED = HextileMask.SubrectsColoured;
/** Bits 5–7 have no meaning; noVNC rejects them ("Illegal hextile subencoding"), so do we. */
const KNOWN_BITS = 0x1f;
const MAX_SUBRECTS = 255; // nsub is a U8

/** What the next tile may inherit (§2.4): bg survives everything but Raw; fg also dies at SubrectsColoured. */
interface Carry {
  bg: boolean;
  fg: boolean;
}

function badRect(tile: number, why: string): RfbError {
  return new RfbError("BAD_RECT", `hextile tile ${tile}: ${why}`);
}

/** Bytes per pixel for framing; the caller validated the format, this only guards the arithmetic. */
function pixelBytes(pf: PixelFormat): number {
  const bpp = bytesPerPixel(pf);
  if (bpp !== 1 && bpp !== 2 && bpp !== 4) {
    throw new RfbError("BAD_PIXEL_FORMAT", `hextile: ${pf.bitsPerPixel} bits per pixel`);
  }
  return bpp;
}

/**
 * Length of the tile starting at src[off], looking no further than src[end - 1]; NEED_MORE while it is
 * incomplete. Validates the mask, the carry-over rules and every subrect's geometry against its tw×th tile
 * (bad-inputs.md table B, "Hextile subencoding / subrects"), and updates `carry` only for a complete tile.
 */
function tileLength(
  src: Uint8Array,
  off: number,
  end: number,
  tw: number,
  th: number,
  bpp: number,
  carry: Carry,
  tile: number,
): number {
  const avail = end - off;
  if (avail < 1) return NEED_MORE;
  const mask = src[off]!;
  if ((mask & ~KNOWN_BITS) !== 0) {
    throw badRect(tile, `subencoding mask 0x${mask.toString(16)} has unknown bits`);
  }
  if ((mask & RAW) !== 0) {
    const n = 1 + tw * th * bpp;
    if (avail < n) return NEED_MORE;
    carry.bg = false;
    carry.fg = false;
    return n;
  }
  if ((mask & BG) === 0 && !carry.bg) {
    throw badRect(
      tile,
      "no background: the first non-raw tile, and the first after a Raw tile, must specify one",
    );
  }
  const coloured = (mask & COLOURED) !== 0;
  let n = 1;
  if ((mask & BG) !== 0) n += bpp;
  if ((mask & FG) !== 0) n += bpp;
  if ((mask & ANY) !== 0) {
    if (avail < n + 1) return NEED_MORE;
    const nsub = src[off + n]!;
    const per = coloured ? bpp + 2 : 2;
    const total = n + 1 + nsub * per;
    if (avail < total) return NEED_MORE;
    if (nsub > 0 && !coloured && (mask & FG) === 0 && !carry.fg) {
      throw badRect(
        tile,
        "mono subrects without a foreground (none given since the last Raw or coloured tile)",
      );
    }
    for (let i = 0, p = off + n + 1 + (coloured ? bpp : 0); i < nsub; i++, p += per) {
      const xy = src[p]!;
      const wh = src[p + 1]!;
      // xy = x<<4 | y, wh = (w-1)<<4 | (h-1): each must end inside the tile (CVE-2016-9941 class).
      if ((xy >>> 4) + (wh >>> 4) + 1 > tw || (xy & 15) + (wh & 15) + 1 > th) {
        throw badRect(tile, `subrect ${i} leaves its ${tw}x${th} tile`);
      }
    }
    n = total;
  } else if (avail < n) {
    return NEED_MORE;
  }
  carry.bg = true;
  if (coloured) carry.fg = false;
  else if ((mask & FG) !== 0) carry.fg = true;
  return n;
}

/** Reads one pixel of `pf` at src[off] as a canonical 0x00BBGGRR value. */
export type ColourReader = (src: Uint8Array, off: number) => number;

/** Channel value → 8 bits, exactly as unpackPixel scales it. */
function channelTo8(max: number): Uint8Array {
  const lut = new Uint8Array(max + 1);
  for (let c = 0; c <= max; c++) lut[c] = Math.round((c * 255) / max);
  return lut;
}

/** A reader of `pf` pixels as canonical values (channel tables for ≤ 16-bit channels); shared with rre.ts. */
export function canonicalPixelReader(pf: PixelFormat): ColourReader {
  if (isCanonical(pf)) return (s, o) => s[o]! | (s[o + 1]! << 8) | (s[o + 2]! << 16);
  if (pf.redMax > 0xffff || pf.greenMax > 0xffff || pf.blueMax > 0xffff) {
    return (s, o) => {
      const [r, g, b] = unpackPixel(pf, readPixel(pf, s, o));
      return r | (g << 8) | (b << 16);
    };
  }
  const { redShift: rs, greenShift: gs, blueShift: bs, redMax: rm, greenMax: gm, blueMax: bm } = pf;
  const rl = channelTo8(rm);
  const gl = channelTo8(gm);
  const bl = channelTo8(bm);
  return (s, o) => {
    const v = readPixel(pf, s, o);
    return rl[(v >>> rs) & rm]! | (gl[(v >>> gs) & gm]! << 8) | (bl[(v >>> bs) & bm]! << 16);
  };
}

/** Fills a w×h area of the canonical framebuffer viewed as 32-bit pixels (X byte 0); shared with rre.ts. */
export function fillArea(
  px: Uint32Array,
  stride: number,
  x: number,
  y: number,
  w: number,
  h: number,
  c: number,
): void {
  for (let i = y * stride + x, end = i + h * stride; i < end; i += stride) px.fill(c, i, i + w);
}

/** Frames Hextile bodies, validating every tile as it is walked (the kernels decode them). */
export const hextileCodec: RectCodec = {
  encoding: Encoding.Hextile,
  name: "hextile",
  framer(rect: Rect, ctx: DecodeContext): RectFramer {
    const bpp = pixelBytes(ctx.pf);
    const carry: Carry = { bg: false, fg: false };
    return new TileFramer(rect.w, rect.h, HEXTILE_TILE_SIZE, (view, offset, end, tw, th, tile) =>
      tileLength(view, offset, end, tw, th, bpp, carry, tile),
    );
  },
};

/**
 * TS twin of wasm/assembly/hextile.ts decodeHextile: decodes a whole Hextile body into the rect, which the
 * caller checked against the framebuffer. Each tile is validated completely (tileLength) before it is
 * painted, so a bad tile never writes and the tiles before it stay painted, exactly as in the core.
 * Throws BAD_RECT (a truncated tile, bytes after the last tile, a malformed tile).
 */
export function hextileDecodeTs(
  fb: Framebuffer,
  pf: PixelFormat,
  x: number,
  y: number,
  w: number,
  h: number,
  data: Uint8Array,
): void {
  const bpp = pixelBytes(pf);
  const fast = isCanonical(pf);
  const read = canonicalPixelReader(pf);
  const stride = fb.width;
  const px = fb.px;
  const carry: Carry = { bg: false, fg: false };
  let bg = 0;
  let fg = 0;
  let off = 0;
  let tile = 0;
  for (let ty = 0; ty < h; ty += HEXTILE_TILE_SIZE) {
    const th = Math.min(HEXTILE_TILE_SIZE, h - ty);
    for (let tx = 0; tx < w; tx += HEXTILE_TILE_SIZE, tile++) {
      const tw = Math.min(HEXTILE_TILE_SIZE, w - tx);
      // Validates before anything is painted, so a bad tile never writes outside itself.
      const n = tileLength(data, off, data.length, tw, th, bpp, carry, tile);
      if (n === NEED_MORE) throw badRect(tile, "the body ends inside this tile");
      const mask = data[off]!;
      const x0 = x + tx;
      const y0 = y + ty;
      let p = off + 1;
      if ((mask & RAW) !== 0) {
        if (fast) {
          // Row copies, then the X byte zeroed: the framebuffer's X is always 0.
          const rowBytes = tw * 4;
          for (let r = 0; r < th; r++, p += rowBytes) {
            const at = ((y0 + r) * stride + x0) * 4;
            fb.data.set(data.subarray(p, p + rowBytes), at);
            for (let i = at + 3, e = at + rowBytes; i < e; i += 4) fb.data[i] = 0;
          }
        } else {
          for (let r = 0; r < th; r++) {
            for (let i = (y0 + r) * stride + x0, e = i + tw; i < e; i++, p += bpp) px[i] = read(data, p);
          }
        }
      } else {
        if ((mask & BG) !== 0) {
          bg = read(data, p);
          p += bpp;
        }
        if ((mask & FG) !== 0) {
          fg = read(data, p);
          p += bpp;
        }
        fillArea(px, stride, x0, y0, tw, th, bg);
        if ((mask & ANY) !== 0) {
          const nsub = data[p++]!;
          const coloured = (mask & COLOURED) !== 0;
          for (let i = 0; i < nsub; i++) {
            let c = fg;
            if (coloured) {
              c = read(data, p);
              p += bpp;
            }
            const xy = data[p]!;
            const wh = data[p + 1]!;
            p += 2;
            fillArea(px, stride, x0 + (xy >>> 4), y0 + (xy & 15), (wh >>> 4) + 1, (wh & 15) + 1, c);
          }
        }
      }
      off += n;
    }
  }
  if (off !== data.length) throw badRect(tile, `${data.length - off} bytes after the last tile`);
}

// ---- Encoder ----

/** Canonical R,G,B (8 bits each) → a pixel value of `pf`, exactly as packPixel computes it. */
type Packer = (r: number, g: number, b: number) => number;

function packer(pf: PixelFormat): Packer {
  const lut = (max: number, shift: number): Uint32Array => {
    const t = new Uint32Array(256);
    for (let v = 0; v < 256; v++) t[v] = (Math.round((v * max) / 255) << shift) >>> 0;
    return t;
  };
  const rl = lut(pf.redMax, pf.redShift);
  const gl = lut(pf.greenMax, pf.greenShift);
  const bl = lut(pf.blueMax, pf.blueShift);
  return (r, g, b) => (rl[r]! | gl[g]! | bl[b]!) >>> 0;
}

/**
 * TigerVNC's palette bail-out (rfb-codecs.md §2.4, HextileTile::analyze): a tile with more than 48 + 2·bpp
 * colours goes Raw without looking for subrects. Such tiles are photo-like; subrects rarely win there and
 * cost the most to find.
 */
function maxColours(pf: PixelFormat): number {
  return 48 + 2 * pf.bitsPerPixel;
}

const HASH_SIZE = 512; // > 2 × 256 pixels of a tile: linear probing stays short

/** Per-call scratch for one tile: pixel values, colour counts, subrect list. */
class TileScratch {
  readonly px = new Uint32Array(256);
  readonly covered = new Uint8Array(256);
  readonly keys = new Uint32Array(HASH_SIZE);
  readonly counts = new Uint16Array(HASH_SIZE);
  readonly stamps = new Uint32Array(HASH_SIZE);
  stamp = 0;
  readonly subColour = new Uint32Array(MAX_SUBRECTS);
  readonly subXY = new Uint8Array(MAX_SUBRECTS);
  readonly subWH = new Uint8Array(MAX_SUBRECTS);
  nsub = 0;
  colours = 0;
  /** The most frequent colour (TigerVNC picks it as the background). */
  mode = 0;
  /** Another colour when there are exactly two. */
  other = 0;

  /** Counts distinct colours of the n pixels in px, stopping once there are more than `limit`. */
  countColours(n: number, limit: number): void {
    const stamp = ++this.stamp;
    let colours = 0;
    let best = 0;
    let mode = this.px[0]!;
    let other = mode;
    for (let i = 0; i < n; i++) {
      const v = this.px[i]!;
      let slot = Math.imul(v, 0x9e3779b1) >>> 23;
      while (this.stamps[slot] === stamp && this.keys[slot] !== v) slot = (slot + 1) & (HASH_SIZE - 1);
      let c = 1;
      if (this.stamps[slot] !== stamp) {
        this.stamps[slot] = stamp;
        this.keys[slot] = v;
        this.counts[slot] = 1;
        if (++colours > limit) break;
        if (colours === 2) other = v;
      } else {
        c = this.counts[slot]! + 1;
        this.counts[slot] = c;
      }
      if (c > best) {
        best = c;
        mode = v;
      }
    }
    if (other === mode) other = this.px[0]!;
    this.colours = colours;
    this.mode = mode;
    this.other = other;
  }

  /**
   * Greedy subrects over everything that is not `bg`: from each uncovered pixel extend right while the colour
   * holds, then down while the whole span holds (TigerVNC HextileTile::analyze). Stops and returns false as
   * soon as the encoded subrects reach `budget` bytes.
   */
  subrects(tw: number, th: number, bg: number, per: number, budget: number): boolean {
    const px = this.px;
    const covered = this.covered;
    covered.fill(0, 0, tw * th);
    let nsub = 0;
    let size = 0;
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        const i = y * tw + x;
        const c = px[i]!;
        if (c === bg || covered[i] !== 0) continue;
        let x1 = x + 1;
        while (x1 < tw && px[y * tw + x1] === c) x1++;
        let y1 = y + 1;
        rows: for (; y1 < th; y1++) {
          for (let k = y1 * tw + x, e = y1 * tw + x1; k < e; k++) if (px[k] !== c) break rows;
        }
        for (let r = y; r < y1; r++) covered.fill(1, r * tw + x, r * tw + x1);
        size += per;
        if (size >= budget || nsub === MAX_SUBRECTS) return false;
        this.subColour[nsub] = c;
        this.subXY[nsub] = (x << 4) | y;
        this.subWH[nsub] = ((x1 - x - 1) << 4) | (y1 - y - 1);
        nsub++;
      }
    }
    this.nsub = nsub;
    return true;
  }
}

function encodeHextile(
  fb: Framebuffer,
  x: number,
  y: number,
  w: number,
  h: number,
  pf: PixelFormat,
): Uint8Array {
  if (x < 0 || y < 0 || w < 0 || h < 0 || x > fb.width - w || y > fb.height - h) {
    throw new RfbError("RECT_OUT_OF_BOUNDS", `hextile encode ${x},${y} ${w}x${h}`);
  }
  if (!pf.trueColour) throw new RfbError("UNSUPPORTED", "hextile: colour-mapped pixel formats");
  return hextileEncodeTs(fb, pf, x, y, w, h);
}

export const hextileEncoder: RectEncoder = {
  encoding: Encoding.Hextile,
  name: "hextile",
  encode: encodeHextile,
};

/**
 * TS twin of wasm/assembly/encode-hextile.ts encodeHextile: the Hextile body of a rect the caller checked
 * against the framebuffer, in the true-colour format `pf`. The core produces the same bytes: every choice
 * below (colour count, the most frequent colour as bg with ties to the first to reach the top count, greedy
 * subrects, the Raw bail-outs, what carries over) is made identically there.
 */
export function hextileEncodeTs(
  fb: Framebuffer,
  pf: PixelFormat,
  x: number,
  y: number,
  w: number,
  h: number,
): Uint8Array {
  const bpp = pixelBytes(pf);
  const tiles = Math.ceil(w / HEXTILE_TILE_SIZE) * Math.ceil(h / HEXTILE_TILE_SIZE);
  // A tile never ends up larger than its Raw form, so this bounds the whole body.
  const bound = checkedAdd(
    tiles,
    checkedPixels(w, h, bpp, Number.MAX_SAFE_INTEGER, "hextile body"),
    Number.MAX_SAFE_INTEGER,
    "hextile body",
  );
  const out = new Uint8Array(bound);
  const canonical = isCanonical(pf);
  const pack = packer(pf);
  const limit = maxColours(pf);
  const src = fb.data;
  const srcPx = new Uint32Array(src.buffer, src.byteOffset, fb.width * fb.height);
  const s = new TileScratch();
  const tp = s.px;
  let bgValid = false;
  let bg = 0;
  let fgValid = false;
  let fg = 0;
  let o = 0;
  const put = (v: number): void => {
    writePixel(pf, out, o, v);
    o += bpp;
  };

  for (let ty = 0; ty < h; ty += HEXTILE_TILE_SIZE) {
    const th = Math.min(HEXTILE_TILE_SIZE, h - ty);
    for (let tx = 0; tx < w; tx += HEXTILE_TILE_SIZE) {
      const tw = Math.min(HEXTILE_TILE_SIZE, w - tx);
      const n = tw * th;
      // Convert first, so colours are compared in the viewer's format (two canonical colours that map to
      // the same BGR233 pixel are one colour).
      for (let r = 0, k = 0; r < th; r++) {
        const row = (y + ty + r) * fb.width + x + tx;
        if (canonical) {
          for (let c = 0; c < tw; c++) tp[k++] = srcPx[row + c]! & 0xffffff;
        } else {
          for (let c = 0, b = row * 4; c < tw; c++, b += 4) tp[k++] = pack(src[b]!, src[b + 1]!, src[b + 2]!);
        }
      }
      const rawSize = 1 + n * bpp;
      s.countColours(n, limit);
      let mask = 0;
      if (s.colours === 1) {
        if (!bgValid || bg !== s.mode) mask = BG;
        // Always BG right after a Raw tile (bgValid is false there): noVNC drops a blank tile after Raw.
      } else if (s.colours <= limit) {
        const tileBg = s.mode;
        const mono = s.colours === 2;
        const bgCost = !bgValid || bg !== tileBg ? bpp : 0;
        const fgCost = mono && (!fgValid || fg !== s.other) ? bpp : 0;
        const head = 2 + bgCost + fgCost; // mask + [bg] + [fg] + nsub
        if (head < rawSize && s.subrects(tw, th, tileBg, mono ? 2 : bpp + 2, rawSize - head)) {
          mask = ANY | (bgCost > 0 ? BG : 0) | (fgCost > 0 ? FG : 0) | (mono ? 0 : COLOURED);
        } else {
          mask = RAW;
        }
      } else {
        mask = RAW;
      }

      out[o++] = mask;
      if (mask === RAW) {
        for (let k = 0; k < n; k++) put(tp[k]!);
        bgValid = false;
        fgValid = false;
        continue;
      }
      if ((mask & BG) !== 0) {
        bg = s.mode;
        bgValid = true;
        put(bg);
      }
      if ((mask & FG) !== 0) {
        fg = s.other;
        fgValid = true;
        put(fg);
      }
      if ((mask & ANY) !== 0) {
        out[o++] = s.nsub;
        const coloured = (mask & COLOURED) !== 0;
        for (let i = 0; i < s.nsub; i++) {
          if (coloured) put(s.subColour[i]!);
          out[o++] = s.subXY[i]!;
          out[o++] = s.subWH[i]!;
        }
        if (coloured) fgValid = false;
      }
    }
  }
  return out.slice(0, o);
}
