// Encoding number → codec. The protocol core frames every rect through here; an encoding with no codec
// cannot be negotiated, so a device can never make us guess where a rect ends.

import { copyRectCodec } from "./copyrect.ts";
import { hextileCodec } from "./hextile.ts";
import { zlibFramer, zrleFramer } from "./length-prefixed.ts";
import { rawCodec } from "./raw.ts";
import { correCodec, rreCodec } from "./rre.ts";
import { tightCodec } from "./tight.ts";
import { trleCodec } from "./zrle.ts";
import type { RectCodec } from "./types.ts";

export type CodecRegistry = ReadonlyMap<number, RectCodec>;

export function makeRegistry(codecs: readonly RectCodec[]): CodecRegistry {
  return new Map(codecs.map((c) => [c.encoding, c]));
}

/**
 * The codecs this build frames: Raw, CopyRect, RRE, CoRRE and Hextile are also decoded; zlib and ZRLE are
 * framed only (enough to forward them). The codec issue adds decoders for the rest, Tight, TRLE, and the
 * WASM twins.
 */
export const BASE_CODECS: readonly RectCodec[] = [
  rawCodec,
  copyRectCodec,
  rreCodec,
  correCodec,
  hextileCodec,
  zlibFramer,
  zrleFramer,
  trleCodec,
  tightCodec,
];

export const defaultRegistry: CodecRegistry = makeRegistry(BASE_CODECS);
