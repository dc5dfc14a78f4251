// PNG writer (ISO/IEC 15948): signature, IHDR, one IDAT, IEND; colour type 6 (RGBA), bit depth 8, filter
// None per row, zlib by the runtime. Used by `shadowrelay replay --out FILE.png` and by the peer tests'
// image helpers (test/peers/rig.test.ts reads one back with ImageMagick to prove it).

import { deflateSync } from "node:zlib";
import { concat } from "./bytes.ts";

const PNG_SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, Bun.hash.crc32(out.subarray(4, 8 + data.length)) >>> 0);
  return out;
}

/** A PNG of width × height RGBA pixels (rows packed). */
export function encodePng(width: number, height: number, rgba: Uint8Array, level = 6): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`PNG of ${width}×${height}`);
  }
  if (rgba.length !== width * height * 4)
    throw new Error(`rgba has ${rgba.length} bytes for ${width}×${height}`);
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // colour type: RGBA; compression 0, filter method 0, interlace 0
  const stride = width * 4;
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(rgba.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  return concat([
    PNG_SIGNATURE,
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", deflateSync(raw, { level })),
    pngChunk("IEND", new Uint8Array(0)),
  ]);
}
