// Framing for the encodings whose body is `U32 length, data[length]`: zlib (6, rfbproto.rst "zlib
// Encoding") and ZRLE (16, "ZRLE Encoding"). Their zlib streams live for the whole connection, so a pipe
// session forwards them unchanged and only needs to know where each rect ends; decoding them (a persistent
// inflate per stream) is the codec core's job.

import { Encoding } from "../rfb/constants.ts";
import { RfbError } from "../rfb/errors.ts";
import { NEED_MORE, type RectCodec } from "./types.ts";

function lengthPrefixed(encoding: number, name: string): RectCodec {
  return {
    encoding,
    name,
    framer(_rect, ctx) {
      return {
        measure(q, base) {
          if (!q.has(base + 4)) return NEED_MORE;
          const len = q.u32(base);
          // Checked before waiting for the data, so a 4 GiB claim costs nothing (bad-inputs.md B).
          if (len > ctx.limits.maxPendingBytes - 4)
            throw new RfbError("LIMIT_EXCEEDED", `${name} data of ${len} bytes`);
          return q.has(base + 4 + len) ? 4 + len : NEED_MORE;
        },
      };
    },
  };
}

export const zlibFramer: RectCodec = lengthPrefixed(Encoding.Zlib, "zlib");
export const zrleFramer: RectCodec = lengthPrefixed(Encoding.ZRLE, "zrle");
